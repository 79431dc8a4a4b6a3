/* test_client_header.c - the public client header compiles alone, first, with -Wpedantic. */
#include "cachesvc-client.h"

int main(void)
{
	cs_client_value v = cs_client_text("42");
	cs_client_value n = cs_client_nil();
	cs_client_value i = cs_client_int(7);
	char buf[CS_CLIENT_LSN_STRLEN];
	uint64_t lsn = 0;
	if (cs_client_lsn_parse(cs_client_lsn_format(0x16B374D848ull, buf), &lsn) != 0)
		return 1;
	return (v.u.s.len == 2 && n.type == CS_CLIENT_V_NIL && i.u.i == 7 && lsn == 0x16B374D848ull)
	               ? 0
	               : 1;
}
