/* decanon.c - canonical parameter text (params.h) back to wire values, for the verifier. */
#include "decanon.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The output area: values are copied here so they never point into the key. */
typedef struct obuf {
	char *p;
	size_t len, cap;
} obuf;

static char *take(obuf *b, size_t n)
{
	if (n > b->cap - b->len)
		return NULL;
	char *p = b->p + b->len;
	b->len += n;
	return p;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static int upper_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int lower_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool seg_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

static bool is_special_float(const char *s, size_t n)
{
	return seg_is(s, n, "NaN") || seg_is(s, n, "Infinity") || seg_is(s, n, "-Infinity");
}

/* Canonical integer: "0", or an optional '-' and digits without a leading zero. */
static bool parse_canon_int(const char *s, size_t n, int64_t *out)
{
	bool neg = n > 0 && s[0] == '-';
	size_t i = neg ? 1 : 0;
	if (i == n || (s[i] == '0' && (n - i > 1 || neg)))
		return false;
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (limit - d) / 10)
			return false;
		v = v * 10 + d;
	}
	/* -2^63 has no positive counterpart: negate in unsigned arithmetic. */
	*out = neg ? (int64_t)(~v + 1u) : (int64_t)v;
	return true;
}

/* Float text as emit_float writes it (%g digits, sign, '.', exponent); the strict parse
 * (and rounding to float4) is cs_params_canon's job. */
static bool canon_float_ok(const char *s, size_t n)
{
	if (is_special_float(s, n))
		return true;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]) && s[i] != '.' && s[i] != 'e' && s[i] != '+' && s[i] != '-')
			return false;
	return true;
}

/* Numeric: "-"? digits ("." digits)?, no leading zeros, no trailing fraction zeros. */
static bool canon_numeric_ok(const char *s, size_t n)
{
	if (is_special_float(s, n))
		return true;
	size_t i = n > 0 && s[0] == '-' ? 1 : 0, start = i;
	while (i < n && is_digit(s[i]))
		i++;
	size_t intlen = i - start;
	if (intlen == 0 || (intlen > 1 && s[start] == '0'))
		return false;
	if (i == n)
		return !(start == 1 && intlen == 1 && s[start] == '0'); /* no "-0" */
	if (s[i] != '.' || i + 1 == n || s[n - 1] == '0')
		return false;
	for (i++; i < n; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

static bool canon_uuid_ok(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : lower_hex(s[i]) < 0)
			return false;
	}
	return true;
}

/* Date: "YYYY-MM-DD" (4 or more year digits) with an optional "BC" suffix; returns the
 * length without the suffix in *core, or 0 when not canonical. */
static bool canon_date_ok(const char *s, size_t n, size_t *core, bool *bc)
{
	*bc = n >= 2 && s[n - 2] == 'B' && s[n - 1] == 'C';
	size_t m = *bc ? n - 2 : n;
	size_t y = 0;
	while (y < m && is_digit(s[y]))
		y++;
	if (y < 4 || m != y + 6 || s[y] != '-' || s[y + 3] != '-' || !is_digit(s[y + 1]) ||
	        !is_digit(s[y + 2]) || !is_digit(s[y + 4]) || !is_digit(s[y + 5]))
		return false;
	*core = m;
	return true;
}

/* Copies s[0..n) into the output area as a CS_V_STR. */
static bool put_str(obuf *b, const char *s, size_t n, cs_value *v)
{
	char *p = take(b, n);
	if (p == NULL)
		return false;
	memcpy(p, s, n);
	v->type = CS_V_STR;
	v->u.s.p = p;
	v->u.s.len = (uint32_t)n;
	return true;
}

enum outcome { OK = 0, SYNTAX, NOROOM };

static enum outcome decode_text(obuf *b, const char *s, size_t n, cs_value *v)
{
	char *p = b->p + b->len;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int hi = i + 2 < n ? upper_hex(s[i + 1]) : -1;
			int lo = i + 2 < n ? upper_hex(s[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return SYNTAX;
			c = (unsigned char)(hi << 4 | lo);
			if (is_plain(c)) /* canon never escapes a plain byte */
				return SYNTAX;
			i += 2;
		} else if (!is_plain(c)) {
			return SYNTAX;
		}
		if (b->len + o >= b->cap)
			return NOROOM;
		p[o++] = (char)c;
	}
	b->len += o;
	v->type = CS_V_STR;
	v->u.s.p = p;
	v->u.s.len = (uint32_t)o;
	return OK;
}

static enum outcome decode_bytea(obuf *b, const char *s, size_t n, cs_value *v)
{
	if (n % 2 != 0)
		return SYNTAX;
	char *p = take(b, n / 2);
	if (p == NULL)
		return NOROOM;
	for (size_t i = 0; i < n; i += 2) {
		int hi = lower_hex(s[i]), lo = lower_hex(s[i + 1]);
		if (hi < 0 || lo < 0)
			return SYNTAX;
		p[i / 2] = (char)(hi << 4 | lo);
	}
	v->type = CS_V_BIN;
	v->u.s.p = p;
	v->u.s.len = (uint32_t)(n / 2);
	return OK;
}

/* One canonical value of type t. */
static enum outcome decode_one(cs_param_type t, const char *s, size_t n, obuf *b, cs_value *v)
{
	memset(v, 0, sizeof *v);
	if (seg_is(s, n, "~")) {
		v->type = CS_V_NIL;
		return OK;
	}
	switch (t) {
	case CS_PT_BOOL:
		if (!seg_is(s, n, "t") && !seg_is(s, n, "f"))
			return SYNTAX;
		v->type = CS_V_BOOL;
		v->u.b = s[0] == 't';
		return OK;
	case CS_PT_INT2:
	case CS_PT_INT4:
	case CS_PT_INT8:
		v->type = CS_V_INT;
		return parse_canon_int(s, n, &v->u.i) ? OK : SYNTAX;
	case CS_PT_FLOAT4:
	case CS_PT_FLOAT8:
		if (!canon_float_ok(s, n))
			return SYNTAX;
		return put_str(b, s, n, v) ? OK : NOROOM;
	case CS_PT_NUMERIC:
		if (!canon_numeric_ok(s, n))
			return SYNTAX;
		return put_str(b, s, n, v) ? OK : NOROOM;
	case CS_PT_UUID:
		if (!canon_uuid_ok(s, n))
			return SYNTAX;
		return put_str(b, s, n, v) ? OK : NOROOM;
	case CS_PT_TEXT:
		return decode_text(b, s, n, v);
	case CS_PT_BYTEA:
		return decode_bytea(b, s, n, v);
	case CS_PT_DATE: {
		if (seg_is(s, n, "infinity") || seg_is(s, n, "-infinity"))
			return put_str(b, s, n, v) ? OK : NOROOM;
		size_t core;
		bool bc;
		if (!canon_date_ok(s, n, &core, &bc))
			return SYNTAX;
		/* The wire form of a BC date is "YYYY-MM-DD BC" (PostgreSQL's own spelling). */
		char *p = take(b, core + (bc ? 3 : 0));
		if (p == NULL)
			return NOROOM;
		memcpy(p, s, core);
		if (bc)
			memcpy(p + core, " BC", 3);
		v->type = CS_V_STR;
		v->u.s.p = p;
		v->u.s.len = (uint32_t)(core + (bc ? 3 : 0));
		return OK;
	}
	case CS_PT_TIMESTAMPTZ:
		if (seg_is(s, n, "infinity") || seg_is(s, n, "-infinity"))
			return put_str(b, s, n, v) ? OK : NOROOM;
		v->type = CS_V_INT;
		return parse_canon_int(s, n, &v->u.i) ? OK : SYNTAX;
	default:
		return SYNTAX;
	}
}

int cs_params_decanon(const cs_query_def *q, const char *canon, size_t len, cs_value *out,
        char *buf, size_t buflen, char *err, size_t errlen)
{
	if (errlen > 0)
		err[0] = '\0';
	if (q->nparams < 0 || q->nparams > CS_MAX_PARAMS) {
		if (errlen > 0)
			snprintf(err, errlen, "query %s: bad parameter count %d", q->name,
			        q->nparams);
		return -CS_ERR_BAD_PARAMS;
	}
	if (len > UINT32_MAX) {
		if (errlen > 0)
			snprintf(err, errlen, "canonical parameters too long");
		return -CS_ERR_BAD_PARAMS;
	}
	if (q->nparams == 0) {
		if (len == 0)
			return 0;
		if (errlen > 0)
			snprintf(err, errlen, "query %s takes no parameters, key has \"%.*s\"",
			        q->name, (int)(len < 40 ? len : 40), canon);
		return -CS_ERR_BAD_PARAMS;
	}
	obuf b = {buf, 0, buflen};
	size_t pos = 0;
	for (int i = 0; i < q->nparams; i++) {
		const char *colon = pos < len ? memchr(canon + pos, ':', len - pos) : NULL;
		size_t end = colon ? (size_t)(colon - canon) : len;
		bool last = i == q->nparams - 1;
		if ((colon != NULL) == last) { /* a separator after the last, or one missing */
			if (errlen > 0)
				snprintf(err, errlen, "query %s: key has %s than %d parameters",
				        q->name, last ? "more" : "fewer", q->nparams);
			return -CS_ERR_BAD_PARAMS;
		}
		const cs_param_def *pd = &q->params[i];
		enum outcome o = decode_one(pd->type, canon + pos, end - pos, &b, &out[i]);
		if (o == NOROOM) {
			if (errlen > 0)
				snprintf(err, errlen, "decanon buffer too small (%zu bytes)",
				        buflen);
			return -CS_ERR_TOO_LARGE;
		}
		if (o != OK) {
			size_t n = end - pos;
			if (errlen > 0)
				snprintf(err, errlen,
				        "parameter %d (%s): not a canonical %s: \"%.*s%s\"", i + 1,
				        pd->name, cs_param_type_name(pd->type),
				        (int)(n < 60 ? n : 60), canon + pos, n > 60 ? "..." : "");
			return -CS_ERR_BAD_PARAMS;
		}
		pos = end + 1;
	}
	return 0;
}
