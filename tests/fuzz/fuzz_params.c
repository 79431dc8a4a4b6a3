/* fuzz_params.c - fuzzes the parameter parsers: PostgreSQL text values as the replication
 * stream delivers them (cs_params_canon_append_text), wire string values from clients
 * (cs_params_canon, cs_params_pg), and the inverse of the canonical encoding
 * (cs_params_decanon). Checks the invariant that keeps invalidation exact: a value's
 * canonical text, decoded and (when the read path accepts it) encoded again, is the same
 * text.
 *
 * Input: byte 0 picks the parameter type, the rest is the value text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "cs_proto.h"
#include "decanon.h"
#include "params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	cs_param_type t = (cs_param_type)(data[0] % CS_PT__COUNT);
	const char *text = (const char *)data + 1;
	size_t len = size - 1;

	/* 1. PostgreSQL text output -> canonical (invalidator side). */
	char canon[CS_CANON_MAX + 1];
	size_t clen = 0;
	int rc = cs_params_canon_append_text(t, data[0] & 0x80, text, len, 0, canon, sizeof canon, &clen);

	/* 2. The same bytes as a client's string value (read path). */
	cs_query_def q;
	memset(&q, 0, sizeof q);
	strcpy(q.name, "fz");
	q.nparams = 1;
	q.params[0].type = t;
	cs_value v = { .type = CS_V_STR };
	v.u.s.p = text;
	v.u.s.len = (uint32_t)len;
	char canon2[CS_CANON_MAX + 1], err[256];
	size_t clen2 = 0;
	int rc2 = cs_params_canon(&q, &v, 1, canon2, sizeof canon2, &clen2, err, sizeof err);
	cs_pg_params *pg = cs_params_pg(&q, &v, 1, err, sizeof err);
	free(pg);

	/* 3. Round trip of whatever canonical text step 1 produced. */
	if (rc == 0) {
		cs_value back[CS_MAX_PARAMS];
		char buf[CS_CANON_MAX + CS_MAX_PARAMS + 1];
		if (cs_params_decanon(&q, canon, clen, back, buf, sizeof buf, err, sizeof err) == 0) {
			char again[CS_CANON_MAX + 1];
			size_t alen = 0;
			/* If the read path accepts the value at all (it refuses what PostgreSQL can
			 * never send, e.g. NUL bytes in text), it must name the same key. */
			int arc = cs_params_canon(&q, back, 1, again, sizeof again, &alen, err, sizeof err);
			if (arc == 0 && (alen != clen || memcmp(again, canon, clen) != 0))
				abort(); /* decanon(canon(x)) must canonicalise to canon(x) */
		}
	}
	/* 4. Arbitrary bytes as a key's canonical part: must never crash. */
	{
		cs_value back[CS_MAX_PARAMS];
		char buf[CS_CANON_MAX + CS_MAX_PARAMS + 1];
		int drc = cs_params_decanon(&q, text, len < CS_CANON_MAX ? len : CS_CANON_MAX, back,
			buf, sizeof buf, err, sizeof err);
		(void)drc; /* any answer is fine; a crash is not */
	}
	(void)rc2;
	return 0;
}
