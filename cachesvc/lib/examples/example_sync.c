/* example_sync.c - library mode, blocking API: read one named query through the cache and
 * print the rows. Build against an installed libcachesvc:
 *     cc example_sync.c $(pkg-config --cflags --libs cachesvc) -o example_sync
 *     ./example_sync cachesvc.ini user_profile 42 */
#include <inttypes.h>
#include <stdio.h>

#include <cachesvc.h>

static void print_value(const cachesvc_value *v)
{
	switch (v->type) {
	case CACHESVC_V_NIL:
		printf("NULL");
		break;
	case CACHESVC_V_BOOL:
		printf("%s", v->u.b ? "true" : "false");
		break;
	case CACHESVC_V_INT:
		printf("%" PRId64, v->u.i);
		break;
	case CACHESVC_V_FLOAT:
		printf("%g", v->u.f);
		break;
	case CACHESVC_V_STR:
		printf("%.*s", (int)v->u.s.len, v->u.s.p);
		break;
	case CACHESVC_V_BIN:
		printf("<%" PRIu32 " bytes>", v->u.s.len);
		break;
	case CACHESVC_V_TS:
		printf("@%" PRId64 ".%09" PRIu32, v->u.ts.sec, v->u.ts.nsec);
		break;
	}
}

static void print_result(const cachesvc_result *r)
{
	static const char *const src[] = { "cache", "replica", "primary" };
	char lsn[CACHESVC_LSN_STRLEN];
	int s = cachesvc_result_source(r);
	printf("source=%s lsn=%s age_ms=%" PRIu64 " rows=%" PRIu32 "\n",
		s >= 0 && s <= 2 ? src[s] : "?", cachesvc_lsn_format(cachesvc_result_lsn(r), lsn),
		cachesvc_result_age_ms(r), cachesvc_result_nrows(r));
	for (uint32_t row = 0; row < cachesvc_result_nrows(r); row++) {
		for (uint32_t col = 0; col < cachesvc_result_ncols(r); col++) {
			cachesvc_value v;
			if (cachesvc_result_value(r, row, col, &v) != 0)
				continue;
			printf("%s%s=", col ? " " : "  ", cachesvc_result_col_name(r, col));
			print_value(&v);
		}
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc - 3 > 16) {
		fprintf(stderr, "usage: %s CONFIG QUERY [PARAM...]\n", argv[0]);
		return 2;
	}
	cachesvc_error err;
	cachesvc_sync *cs = cachesvc_sync_open(argv[1], NULL, &err);
	if (cs == NULL) {
		fprintf(stderr, "open: %s: %s\n", cachesvc_strerror(err.code), err.msg);
		return 1;
	}
	cachesvc_value params[16];
	for (int i = 3; i < argc; i++)
		params[i - 3] = cachesvc_text(argv[i]); /* converted to the declared type */
	cachesvc_request req = {
		.query = argv[2],
		.params = params,
		.nparams = (uint32_t)(argc - 3),
		.tier = CACHESVC_TIER_DEFAULT,
	};
	int rc = 0;
	for (int round = 0; round < 2 && rc == 0; round++) { /* a miss, then (usually) a hit */
		cachesvc_result *r = NULL;
		rc = cachesvc_sync_get(cs, &req, 0, &r);
		if (rc == 0) {
			print_result(r);
		} else {
			const char *msg;
			cachesvc_result_err(r, &msg);
			fprintf(stderr, "get: %s: %s\n", cachesvc_strerror(rc), msg);
		}
		cachesvc_result_free(r);
	}
	cachesvc_sync_close(cs);
	return rc == 0 ? 0 : 1;
}
