/* lsn.c - PostgreSQL WAL positions (LSNs): parse and format "X/Y" text. */
#include "lsn.h"
#include "cs_proto.h"
#include "textutil.h"

#include <stdio.h>
#include <string.h>

_Static_assert(CS_TOKEN_MAX_SHARD == CS_PROTO_MAX_SHARD, "one shard name limit");

/* Reads 1-8 hex digits ending at `stop`; returns the position after them or NULL. */
static const char *hex32(const char *s, char stop, uint32_t *out)
{
	uint32_t v = 0;
	int n = 0;
	for (; *s != stop; s++, n++) {
		int d = cs_hex_digit(*s);
		if (d < 0 || n == 8)
			return NULL;
		v = (v << 4) | (uint32_t)d;
	}
	if (n == 0)
		return NULL;
	*out = v;
	return s;
}

bool cs_lsn_parse(const char *s, cs_lsn_t *out)
{
	uint32_t hi, lo;
	if (s == NULL)
		return false;
	s = hex32(s, '/', &hi);
	if (s == NULL)
		return false;
	if (hex32(s + 1, '\0', &lo) == NULL)
		return false;
	*out = ((cs_lsn_t)hi << 32) | lo;
	return true;
}

char *cs_lsn_format(cs_lsn_t lsn, char buf[CS_LSN_STRLEN])
{
	snprintf(buf, CS_LSN_STRLEN, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
	return buf;
}

bool cs_token_parse(const char *s, cs_token *out)
{
	if (s == NULL)
		return false;
	const char *colon = strchr(s, ':');
	if (colon == NULL) {
		cs_lsn_t lsn;
		if (!cs_lsn_parse(s, &lsn))
			return false;
		out->shard[0] = '\0';
		out->lsn = lsn;
		return true;
	}
	size_t n = (size_t)(colon - s);
	cs_lsn_t lsn;
	if (!cs_proto_shard_name_ok(s, n) || !cs_lsn_parse(colon + 1, &lsn) || lsn == 0)
		return false;
	memcpy(out->shard, s, n);
	out->shard[n] = '\0';
	out->lsn = lsn;
	return true;
}

char *cs_token_format(const cs_token *t, char buf[CS_TOKEN_STRLEN])
{
	char l[CS_LSN_STRLEN];
	cs_lsn_format(t->lsn, l);
	if (t->shard[0] == '\0')
		snprintf(buf, CS_TOKEN_STRLEN, "%s", l);
	else
		snprintf(buf, CS_TOKEN_STRLEN, "%.*s:%s", CS_TOKEN_MAX_SHARD, t->shard, l);
	return buf;
}
