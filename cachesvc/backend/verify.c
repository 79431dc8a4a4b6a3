/* verify.c - the steps of the cache verifier (verify.h), result comparison and ORDER BY
 * detection. Pure: the callers do the I/O. */
#include "verify.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cs_proto.h"
#include "decanon.h"

/* ---- Diff text ---------------------------------------------------------------------------- */

/* A bounded string builder over the caller's diff buffer: silently truncates. */
typedef struct dtext {
	char *p;
	size_t len, cap;
} dtext;

static void dt_add(dtext *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dt_add(dtext *d, const char *fmt, ...)
{
	if (d->cap == 0 || d->len + 1 >= d->cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(d->p + d->len, d->cap - d->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		d->len = d->len + (size_t)n < d->cap ? d->len + (size_t)n : d->cap - 1;
}

#define SHOW_BYTES 40 /* of one string or binary value in a diff */

static void dt_value(dtext *d, const cs_value *v)
{
	switch (v->type) {
	case CS_V_NIL:
		dt_add(d, "null");
		return;
	case CS_V_BOOL:
		dt_add(d, "%s", v->u.b ? "true" : "false");
		return;
	case CS_V_INT:
		dt_add(d, "%" PRId64, v->u.i);
		return;
	case CS_V_FLOAT:
		dt_add(d, "%.17g", v->u.f);
		return;
	case CS_V_STR: {
		uint32_t n = v->u.s.len < SHOW_BYTES ? v->u.s.len : SHOW_BYTES;
		dt_add(d, "\"");
		for (uint32_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)v->u.s.p[i];
			if (c == '"' || c == '\\')
				dt_add(d, "\\%c", c);
			else if (c < 0x20 || c == 0x7f)
				dt_add(d, "\\x%02x", c);
			else
				dt_add(d, "%c", c);
		}
		dt_add(d, "\"%s", v->u.s.len > n ? "..." : "");
		return;
	}
	case CS_V_BIN: {
		uint32_t n = v->u.s.len < SHOW_BYTES / 2 ? v->u.s.len : SHOW_BYTES / 2;
		dt_add(d, "\\x");
		for (uint32_t i = 0; i < n; i++)
			dt_add(d, "%02x", (unsigned char)v->u.s.p[i]);
		dt_add(d, "%s", v->u.s.len > n ? "..." : "");
		return;
	}
	case CS_V_TS: {
		if (v->u.ts.nsec == 0 && (v->u.ts.sec == INT64_MAX || v->u.ts.sec == INT64_MIN)) {
			dt_add(d, "%sinfinity", v->u.ts.sec == INT64_MIN ? "-" : "");
			return;
		}
		struct tm tm;
		time_t t = (time_t)v->u.ts.sec;
		if ((int64_t)t == v->u.ts.sec && gmtime_r(&t, &tm) != NULL)
			dt_add(d, "%04d-%02d-%02dT%02d:%02d:%02d.%06" PRIu32 "Z", tm.tm_year + 1900,
			        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			        v->u.ts.nsec / 1000u);
		else
			dt_add(d, "ts(%" PRId64 ".%09" PRIu32 ")", v->u.ts.sec, v->u.ts.nsec);
		return;
	}
	default:
		dt_add(d, "?");
	}
}

#define SHOW_ROW 200 /* bytes of one row in a diff */

static void dt_row(dtext *d, const cs_result *r, uint32_t row)
{
	size_t start = d->len;
	dt_add(d, "[");
	for (uint32_t c = 0; c < cs_result_ncols(r); c++) {
		cs_value v;
		if (d->len - start > SHOW_ROW) {
			dt_add(d, ", ...");
			break;
		}
		if (c > 0)
			dt_add(d, ", ");
		if (cs_result_value(r, row, c, &v) == 0)
			dt_value(d, &v);
	}
	dt_add(d, "]");
}

/* ---- Value and row order ------------------------------------------------------------------ */

static int cmp_u(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_i(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

/* A total order on doubles: -inf < ... < -0 < 0 < ... < inf < NaN (all NaNs equal). */
static int cmp_f(double a, double b)
{
	if (isnan(a) || isnan(b))
		return isnan(a) - isnan(b);
	if (a != b)
		return a < b ? -1 : 1;
	return (signbit(b) != 0) - (signbit(a) != 0);
}

static int cmp_bytes(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
	uint32_t n = alen < blen ? alen : blen;
	int c = n > 0 ? memcmp(a, b, n) : 0;
	if (c != 0)
		return c < 0 ? -1 : 1;
	return cmp_u(alen, blen);
}

static int cmp_value(const cs_value *a, const cs_value *b)
{
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	switch (a->type) {
	case CS_V_BOOL:
		return (int)a->u.b - (int)b->u.b;
	case CS_V_INT:
		return cmp_i(a->u.i, b->u.i);
	case CS_V_FLOAT:
		return cmp_f(a->u.f, b->u.f);
	case CS_V_STR:
	case CS_V_BIN:
		return cmp_bytes(a->u.s.p, a->u.s.len, b->u.s.p, b->u.s.len);
	case CS_V_TS: {
		int c = cmp_i(a->u.ts.sec, b->u.ts.sec);
		return c != 0 ? c : cmp_u(a->u.ts.nsec, b->u.ts.nsec);
	}
	default:
		return 0;
	}
}

/* Compares row ra of a with row rb of b (same column count); the first differing column
 * goes to *col. */
static int cmp_row(const cs_result *a, uint32_t ra, const cs_result *b, uint32_t rb, uint32_t *col)
{
	uint32_t n = cs_result_ncols(a);
	for (uint32_t c = 0; c < n; c++) {
		cs_value va, vb;
		if (cs_result_value(a, ra, c, &va) != 0 || cs_result_value(b, rb, c, &vb) != 0)
			return 0; /* cannot happen: indexes are in range */
		int r = cmp_value(&va, &vb);
		if (r != 0) {
			if (col)
				*col = c;
			return r;
		}
	}
	return 0;
}

static int cmp_row_index(const void *x, const void *y, void *arg)
{
	const cs_result *r = arg;
	return cmp_row(r, *(const uint32_t *)x, r, *(const uint32_t *)y, NULL);
}

/* Row indexes of r in sorted order (malloc'd; NULL on OOM or when r has no rows). */
static uint32_t *sorted_rows(const cs_result *r)
{
	uint32_t n = cs_result_nrows(r);
	if (n == 0)
		return NULL;
	uint32_t *ix = malloc((size_t)n * sizeof *ix);
	if (ix == NULL)
		return NULL;
	for (uint32_t i = 0; i < n; i++)
		ix[i] = i;
	qsort_r(ix, n, sizeof *ix, cmp_row_index, (void *)r);
	return ix;
}

/* ---- Comparison ----------------------------------------------------------------------------- */

/* Wraps a bare result object into a GET reply body [meta, result] so that the protocol's
 * decoder (which checks every limit) can read it. */
static int decode_result(const uint8_t *p, size_t len, cs_result **out, const char *which, dtext *d)
{
	char err[256];
	if (len > UINT32_MAX - 64) {
		dt_add(d, "%s result: too large", which);
		return -CS_ERR_PROTOCOL;
	}
	cs_buf body;
	cs_buf_init(&body, len + 64);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &body, cs_buf_msgpack_write);
	cs_meta meta = {0};
	int rc = msgpack_pack_array(&pk, 2) == 0 && cs_proto_pack_meta(&pk, &meta) == 0
	                 ? cs_buf_append(&body, p, len)
	                 : -CS_ERR_INTERNAL;
	if (rc != 0 || body.failed) {
		cs_buf_free(&body);
		dt_add(d, "out of memory");
		return -CS_ERR_INTERNAL;
	}
	rc = cs_result_decode(body.data, (uint32_t)body.len, out, err, sizeof err);
	cs_buf_free(&body);
	if (rc != 0)
		dt_add(d, "%s result: %s", which, err);
	return rc;
}

static int compare_cols(const cs_result *a, const cs_result *b, dtext *d)
{
	uint32_t na = cs_result_ncols(a), nb = cs_result_ncols(b);
	if (na != nb) {
		dt_add(d, "columns: cache has %" PRIu32 ", primary %" PRIu32, na, nb);
		return 1;
	}
	for (uint32_t c = 0; c < na; c++) {
		const char *an = cs_result_col_name(a, c), *bn = cs_result_col_name(b, c);
		int at = cs_result_col_type(a, c), bt = cs_result_col_type(b, c);
		if (strcmp(an, bn) != 0 || at != bt) {
			dt_add(d,
			        "column %" PRIu32
			        ": cache \"%s\" (type %d), primary \"%s\" (type %d)",
			        c + 1, an, at, bn, bt);
			return 1;
		}
	}
	return 0;
}

/* Rows as multisets: a merge walk over both sorted row lists finds the rows one side has
 * more often than the other. The first such row of each side is reported: when both exist
 * (typically one row changed), by the first column where they differ. Returns 0 equal,
 * 1 different, -CS_ERR_INTERNAL on OOM. */
static int compare_multiset(const cs_result *a, const cs_result *b, dtext *d)
{
	uint32_t na = cs_result_nrows(a), nb = cs_result_nrows(b);
	uint32_t *sa = sorted_rows(a), *sb = sorted_rows(b);
	if ((na > 0 && sa == NULL) || (nb > 0 && sb == NULL)) {
		free(sa);
		free(sb);
		dt_add(d, "out of memory");
		return -CS_ERR_INTERNAL;
	}
	uint32_t i = 0, j = 0;
	int64_t only_a = -1, only_b = -1; /* first row found on one side only */
	while ((i < na || j < nb) && (only_a < 0 || only_b < 0)) {
		int c = i == na ? 1 : j == nb ? -1 : cmp_row(a, sa[i], b, sb[j], NULL);
		if (c == 0) {
			i++, j++;
		} else if (c < 0) {
			if (only_a < 0)
				only_a = sa[i];
			i++;
		} else {
			if (only_b < 0)
				only_b = sb[j];
			j++;
		}
	}
	int rc = only_a >= 0 || only_b >= 0;
	if (rc && na != nb)
		dt_add(d, "rows: cache has %" PRIu32 ", primary %" PRIu32 "; ", na, nb);
	if (only_a >= 0 && only_b >= 0) {
		uint32_t col = 0;
		cs_value va, vb;
		(void)cmp_row(a, (uint32_t)only_a, b, (uint32_t)only_b, &col);
		if (cs_result_value(a, (uint32_t)only_a, col, &va) == 0 &&
		        cs_result_value(b, (uint32_t)only_b, col, &vb) == 0) {
			dt_add(d, "a row differs in column \"%s\": cache ",
			        cs_result_col_name(a, col));
			dt_value(d, &va);
			dt_add(d, ", primary ");
			dt_value(d, &vb);
			dt_add(d, "; cache row ");
			dt_row(d, a, (uint32_t)only_a);
		}
	} else if (only_a >= 0) {
		dt_add(d, "cache has a row the primary lacks: ");
		dt_row(d, a, (uint32_t)only_a);
	} else if (only_b >= 0) {
		dt_add(d, "primary has a row the cache lacks: ");
		dt_row(d, b, (uint32_t)only_b);
	}
	free(sa);
	free(sb);
	return rc;
}

static int compare_ordered(const cs_result *a, const cs_result *b, dtext *d)
{
	uint32_t na = cs_result_nrows(a), nb = cs_result_nrows(b);
	uint32_t n = na < nb ? na : nb;
	for (uint32_t r = 0; r < n; r++) {
		uint32_t col = 0;
		if (cmp_row(a, r, b, r, &col) == 0)
			continue;
		cs_value va, vb;
		if (cs_result_value(a, r, col, &va) != 0 || cs_result_value(b, r, col, &vb) != 0)
			return -CS_ERR_INTERNAL;
		dt_add(d, "row %" PRIu32 " column \"%s\": cache ", r + 1,
		        cs_result_col_name(a, col));
		dt_value(d, &va);
		dt_add(d, ", primary ");
		dt_value(d, &vb);
		if (na == nb) {
			dtext none = {NULL, 0, 0};
			if (compare_multiset(a, b, &none) == 0)
				dt_add(d,
				        " (the same rows in another order: ties in the ORDER BY?)");
		}
		return 1;
	}
	if (na != nb) {
		dt_add(d, "rows: cache has %" PRIu32 ", primary %" PRIu32 "; first extra: ", na,
		        nb);
		dt_row(d, na > nb ? a : b, n);
		return 1;
	}
	return 0;
}

int cs_verify_compare(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, bool ordered,
        char *diff, size_t difflen)
{
	dtext d = {diff, 0, difflen};
	if (difflen > 0)
		diff[0] = '\0';
	cs_result *ra = NULL, *rb = NULL;
	int rc = decode_result(a, alen, &ra, "cache", &d);
	if (rc == 0)
		rc = decode_result(b, blen, &rb, "primary", &d);
	if (rc == 0)
		rc = compare_cols(ra, rb, &d);
	if (rc == 0)
		rc = ordered ? compare_ordered(ra, rb, &d) : compare_multiset(ra, rb, &d);
	cs_result_free(ra);
	cs_result_free(rb);
	return rc;
}

/* ---- ORDER BY detection ------------------------------------------------------------------- */

static bool ident_start(char c)
{
	return isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

static bool ident_char(char c)
{
	return ident_start(c) || isdigit((unsigned char)c) || c == '$';
}

/* Skips a quoted run starting at s[i] == q; a doubled quote is an escaped one, and with
 * backslashes (E'...') a backslash escapes the next byte. Returns the index after it. */
static size_t skip_quoted(const char *s, size_t i, char q, bool backslashes)
{
	for (i++; s[i]; i++) {
		if (backslashes && s[i] == '\\' && s[i + 1]) {
			i++;
		} else if (s[i] == q) {
			if (s[i + 1] != q)
				return i + 1;
			i++;
		}
	}
	return i;
}

/* At s[i] == '$': a dollar quote $tag$...$tag$ (returns the index after it) or not (returns
 * i + 1: a parameter $1 or a stray '$'). */
static size_t skip_dollar(const char *s, size_t i)
{
	size_t t = i + 1;
	if (s[t] != '$' && !ident_start(s[t]))
		return i + 1;
	while (s[t] != '$' && s[t] && (ident_start(s[t]) || isdigit((unsigned char)s[t])))
		t++;
	if (s[t] != '$')
		return i + 1;
	size_t taglen = t + 1 - i; /* "$tag$" */
	for (size_t k = t + 1; s[k]; k++)
		if (s[k] == '$' && strncmp(s + k, s + i, taglen) == 0)
			return k + taglen;
	return strlen(s);
}

bool cs_verify_sql_ordered(const char *s)
{
	int depth = 0;
	bool after_order = false; /* the last token at depth 0 was ORDER */
	size_t i = 0;
	while (s[i]) {
		char c = s[i];
		if (c == '-' && s[i + 1] == '-') {
			while (s[i] && s[i] != '\n')
				i++;
		} else if (c == '/' && s[i + 1] == '*') {
			int nest = 0; /* PostgreSQL's block comments nest */
			do {
				if (s[i] == '/' && s[i + 1] == '*')
					nest++, i += 2;
				else if (s[i] == '*' && s[i + 1] == '/')
					nest--, i += 2;
				else
					i++;
			} while (nest > 0 && s[i]);
		} else if (isspace((unsigned char)c)) {
			i++;
		} else if (c == '\'') {
			i = skip_quoted(s, i, '\'', false);
			after_order = false;
		} else if (c == '"') {
			i = skip_quoted(s, i, '"', false);
			after_order = false;
		} else if (c == '$') {
			i = skip_dollar(s, i);
			after_order = false;
		} else if (ident_start(c)) {
			size_t w = i;
			while (ident_char(s[i]))
				i++;
			size_t n = i - w;
			if (n == 1 && (s[w] == 'e' || s[w] == 'E') && s[i] == '\'') {
				i = skip_quoted(s, i, '\'', true); /* E'...' */
				after_order = false;
				continue;
			}
			if (depth == 0 && after_order && n == 2 && strncasecmp(s + w, "by", 2) == 0)
				return true;
			after_order = depth == 0 && n == 5 && strncasecmp(s + w, "order", 5) == 0;
		} else {
			if (c == '(')
				depth++;
			else if (c == ')' && depth > 0)
				depth--;
			after_order = false;
			i++;
		}
	}
	return false;
}

/* ---- The check of one entry (verify.h) ------------------------------------------------------ */

cs_verify_outcome cs_verify_first(bool exists, bool is_string, const void *val, size_t len,
	cs_entry *e)
{
	if (!exists)
		return CS_VERIFY_GONE;
	if (!is_string || !cs_entry_parse(val, len, e))
		return CS_VERIFY_NOT_ENTRY;
	return CS_VERIFY_OK;
}

cs_pg_params *cs_verify_key_params(const cs_query_def *q, const char *canon, size_t clen,
	char *err, size_t errlen)
{
	cs_value vals[CS_MAX_PARAMS];
	char buf[2 * (CS_CANON_MAX + 1) + CS_MAX_PARAMS];
	if (clen > CS_CANON_MAX) {
		snprintf(err, errlen, "canonical parameters longer than %d bytes", CS_CANON_MAX);
		return NULL;
	}
	if (cs_params_decanon(q, canon, clen, vals, buf, sizeof buf, err, errlen) != 0)
		return NULL;
	/* Trust the key only when it is exactly what the daemon would have written. */
	char again[CS_CANON_MAX + 1];
	size_t alen = 0;
	int rc = cs_params_canon(q, vals, (uint32_t)q->nparams, again, sizeof again, &alen, err,
		errlen);
	if (rc != 0 || alen != clen || memcmp(again, canon, clen) != 0) {
		if (rc == 0)
			snprintf(err, errlen, "parameters re-encode as \"%.*s\"", (int)alen, again);
		return NULL;
	}
	return cs_params_pg(q, vals, (uint32_t)q->nparams, err, errlen);
}

cs_verify_wait cs_verify_wait_step(uint64_t pos, uint64_t lsn, uint64_t now_us,
	uint64_t deadline_us, uint64_t *stalled)
{
	if (pos >= lsn)
		return CS_VERIFY_PASSED;
	if (stalled && *stalled != 0 && pos <= *stalled)
		return CS_VERIFY_BEHIND;
	if (now_us >= deadline_us) {
		if (stalled)
			*stalled = pos > 0 ? pos : 1;
		return CS_VERIFY_BEHIND;
	}
	return CS_VERIFY_WAIT;
}

cs_verify_outcome cs_verify_judge(const void *first, size_t first_len, bool exists, bool is_string,
	const void *again, size_t again_len, const uint8_t *fresh, size_t fresh_len, bool ordered,
	cs_entry *e, char *diff, size_t difflen)
{
	if (!exists || !is_string || again_len != first_len || memcmp(again, first, first_len) != 0) {
		snprintf(diff, difflen, "%s", exists ? "rewritten" : "deleted");
		return CS_VERIFY_CHANGED;
	}
	if (!cs_entry_parse(first, first_len, e)) {
		snprintf(diff, difflen, "not a cache entry");
		return CS_VERIFY_NOT_ENTRY;
	}
	int rc = cs_verify_compare(e->result, e->result_len, fresh, fresh_len, ordered, diff, difflen);
	return rc == 0 ? CS_VERIFY_OK : rc == 1 ? CS_VERIFY_STALE : CS_VERIFY_NOT_ENTRY;
}
