/* test_lib_header.c - the public library-mode header compiles alone, first, as C99 with
 * -Wpedantic, and its inline helpers and pure functions work. Only cachesvc/lib/include is on
 * the include path: an internal header pulled in by cachesvc.h would fail the build. */
#include "cachesvc.h"

#include <string.h>

int main(void)
{
	cachesvc_value v = cachesvc_text("42");
	cachesvc_value n = cachesvc_nil();
	cachesvc_value i = cachesvc_int(7);
	cachesvc_request req = { "q", &v, 1, CACHESVC_TIER_DEFAULT, 0, false, false };
	cachesvc_options opt = { CACHESVC_F_NO_STARTUP_CHECKS, -1, 16 };
	cachesvc_error err;
	char buf[CACHESVC_LSN_STRLEN];
	uint64_t lsn = 0;
	if (cachesvc_lsn_parse(cachesvc_lsn_format(0x16B374D848ull, buf), &lsn) != 0 ||
		lsn != 0x16B374D848ull || cachesvc_lsn_parse("nope", &lsn) != CACHESVC_E_ARG)
		return 1;
	if (strcmp(cachesvc_strerror(CACHESVC_E_UNKNOWN_QUERY), "unknown_query") != 0 ||
		strcmp(cachesvc_strerror(CACHESVC_E_TIMEOUT), "timeout") != 0 ||
		strcmp(cachesvc_version(), "0.1.0") != 0)
		return 1;
	/* Argument errors never touch a server. */
	if (cachesvc_sync_open(NULL, &opt, &err) != NULL || err.code != CACHESVC_E_ARG)
		return 1;
	if (cachesvc_sync_open("/nonexistent/cachesvc.ini", &opt, &err) != NULL ||
		err.code != CACHESVC_E_CONFIG)
		return 1;
	if (cachesvc_open(NULL, "x.ini", &opt, &err) != NULL || err.code != CACHESVC_E_ARG)
		return 1;
	cachesvc_sync_close(NULL);
	cachesvc_close(NULL);
	cachesvc_result_free(NULL);
	const char *msg = NULL;
	if (cachesvc_result_err(NULL, &msg) != CACHESVC_E_ARG || msg == NULL)
		return 1;
	return (v.u.s.len == 2 && n.type == CACHESVC_V_NIL && i.u.i == 7 && req.nparams == 1)
		       ? 0
		       : 1;
}
