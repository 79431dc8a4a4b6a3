/* params.c - query parameters: wire values and PostgreSQL text parsed into one typed value,
 * printed as the canonical key text (params.h) or as the value bound to the statement.
 *
 * Why one parser and one printer: the read path and the invalidator must agree byte for byte
 * on the canonical text, or an invalidation misses its key. Both sides therefore go through
 * parse_text() for every textual form (a wire str and a column's text output are parsed by
 * the same code) and through emit_canon() for printing; the non-text wire forms (int, float,
 * bin, timestamp) are converted to the same typed value first. */
#include "params.h"
#include "sbuf.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output goes through a bounded cs_sb (sbuf.h): it writes what fits in the caller's memory
 * and keeps counting past its cap, so one pass both measures and writes. */

/* ---- The parsed value -------------------------------------------------------------------- */

enum special { SP_NONE = 0, SP_NAN, SP_PINF, SP_NINF };

/* Why a value was refused; picks the tail of the error message. */
enum reason {
	R_OK = 0,
	R_TYPE,    /* this wire type cannot become the declared type */
	R_SYNTAX,  /* the text does not parse */
	R_RANGE,   /* out of range for the type */
	R_NSEC,    /* timestamp with sub-microsecond nanoseconds */
	R_UTF8,    /* text that is not valid UTF-8, or holds a NUL byte */
	R_TOOLONG, /* a number written with more characters than we parse */
};

typedef struct pval {
	cs_param_type t;
	bool null;
	union {
		bool b;
		int64_t i;
		struct {
			double v; /* float4: the float's exact value */
			enum special sp;
		} f;
		uint8_t uuid[16];
		struct {
			const char *p;
			size_t len;
			bool hex; /* bytea given as hex digits (len digits, even) */
		} bytes;          /* text, bytea */
		struct {
			enum special sp;
			bool neg;
			const char *p, *end; /* significant digits, may contain the '.' */
			int64_t ndig;        /* significant digits; 0 = zero */
			int64_t point;       /* digits before the decimal point, from p */
		} num;
		struct {
			int64_t y; /* astronomical: 0 = 1 BC */
			int m, d;
			int inf;
		} date;
		struct {
			int64_t us;
			int inf;
		} ts;
	} u;
	char tmp[48]; /* backing text of a numeric converted from int or float */
} pval;

/* ---- Small helpers ----------------------------------------------------------------------- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive whole-string comparison with a lower-case word. */
static bool word_eq(const char *s, size_t n, const char *word)
{
	size_t k = strlen(word);
	if (n != k)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != word[i])
			return false;
	return true;
}

/* "[+-]infinity" -> +1/-1, "[+-]inf" too when allow_inf; 0 otherwise. */
static int parse_infinity(const char *s, size_t n, bool allow_inf)
{
	int sign = 1;
	if (n > 0 && (s[0] == '+' || s[0] == '-')) {
		sign = s[0] == '-' ? -1 : 1;
		s++;
		n--;
	}
	if (word_eq(s, n, "infinity") || (allow_inf && word_eq(s, n, "inf")))
		return sign;
	return 0;
}

/* Floor division and modulo for possibly negative numerators. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- Calendar (proleptic Gregorian, astronomical years) ---------------------------------- */

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
	static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

/* Days from 0000-01-01 to January 1st of year y: 365 a year plus the leap years in [0, y). */
static int64_t days_before_year(int64_t y)
{
	return 365 * y + floor_div(y + 3, 4) - floor_div(y + 99, 100) + floor_div(y + 399, 400);
}

#define DAYS_0000_TO_1970 INT64_C(719528)

static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t days = days_before_year(y);
	for (int i = 1; i < m; i++)
		days += month_days(y, i);
	return days + d - 1 - DAYS_0000_TO_1970;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t n = z + DAYS_0000_TO_1970;
	int64_t yy = floor_div(n * 400, 146097);
	while (days_before_year(yy) > n)
		yy--;
	while (days_before_year(yy + 1) <= n)
		yy++;
	int64_t doy = n - days_before_year(yy);
	int mm = 1;
	while (doy >= month_days(yy, mm))
		doy -= month_days(yy, mm++);
	*y = yy;
	*m = mm;
	*d = (int)doy + 1;
}

/* PostgreSQL's range: 4714-11-24 00:00:00 BC (UTC) up to the end of 294276 AD. */
#define PG_TS_MIN_SEC (INT64_C(-210866803200))
#define PG_TS_END_SEC (INT64_C(9224318016000))
#define PG_DATE_MAX_Y 5874897

/* Reads exactly `n` digits at *pp (within end) into *v. */
static bool read_digits(const char **pp, const char *end, int n, int *v)
{
	const char *p = *pp;
	if (end - p < n)
		return false;
	int x = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return false;
		x = x * 10 + (p[i] - '0');
	}
	*v = x;
	*pp = p + n;
	return true;
}

/* "YYYY-MM-DD" with 4..7 year digits (leading zeros only up to 4); astronomical year out. */
static bool read_ymd(const char **pp, const char *end, int64_t *y, int *m, int *d)
{
	const char *p = *pp;
	int64_t yy = 0;
	int nd = 0;
	while (p < end && is_digit(*p) && nd < 8) {
		yy = yy * 10 + (*p++ - '0');
		nd++;
	}
	if (nd < 4 || nd > 7 || (nd > 4 && (*pp)[0] == '0'))
		return false;
	if (p >= end || *p++ != '-' || !read_digits(&p, end, 2, m) || p >= end || *p++ != '-' ||
		!read_digits(&p, end, 2, d))
		return false;
	if (yy == 0 || *m < 1 || *m > 12 || *d < 1)
		return false;
	*y = yy;
	*pp = p;
	return true;
}

/* Strips a trailing " BC" (any case). */
static bool strip_bc(const char *s, size_t *n)
{
	if (*n >= 3 && s[*n - 3] == ' ' && lower(s[*n - 2]) == 'b' && lower(s[*n - 1]) == 'c') {
		*n -= 3;
		return true;
	}
	return false;
}

static bool parse_date(const char *s, size_t n, pval *pv)
{
	int inf = parse_infinity(s, n, false);
	if (inf != 0) {
		pv->u.date.inf = inf;
		return true;
	}
	bool bc = strip_bc(s, &n);
	const char *p = s, *end = s + n;
	int64_t y;
	int m, d;
	if (!read_ymd(&p, end, &y, &m, &d) || p != end)
		return false;
	if (bc)
		y = 1 - y;
	if (d > month_days(y, m) || y > PG_DATE_MAX_Y)
		return false;
	if (days_from_civil(y, m, d) * 86400 < PG_TS_MIN_SEC)
		return false;
	pv->u.date.y = y;
	pv->u.date.m = m;
	pv->u.date.d = d;
	pv->u.date.inf = 0;
	return true;
}

bool cs_pg_parse_timestamp(const char *s, size_t len, enum cs_pg_zone zone, cs_pg_time *out)
{
	int inf = parse_infinity(s, len, false);
	if (inf != 0) {
		out->sec = 0;
		out->usec = 0;
		out->inf = inf;
		return true;
	}
	size_t n = len;
	bool bc = strip_bc(s, &n);
	const char *p = s, *end = s + n;
	int64_t y;
	int m, d, hh, mi, ss;
	if (!read_ymd(&p, end, &y, &m, &d))
		return false;
	if (p >= end || (*p != ' ' && *p != 'T' && *p != 't'))
		return false;
	p++;
	if (!read_digits(&p, end, 2, &hh) || p >= end || *p++ != ':' ||
		!read_digits(&p, end, 2, &mi) || p >= end || *p++ != ':' ||
		!read_digits(&p, end, 2, &ss))
		return false;
	if (hh > 23 || mi > 59 || ss > 59)
		return false;
	uint32_t usec = 0;
	if (p < end && *p == '.') {
		p++;
		int nd = 0;
		while (p < end && is_digit(*p)) {
			if (nd < 6)
				usec = usec * 10 + (uint32_t)(*p - '0');
			else if (*p != '0')
				return false; /* would round: refuse rather than guess */
			nd++;
			p++;
		}
		if (nd == 0)
			return false;
		for (; nd < 6; nd++)
			usec *= 10;
	}
	int64_t offset = 0;
	bool has_zone = false;
	if (p < end && (*p == 'Z' || *p == 'z')) {
		p++;
		has_zone = true;
	} else if (p < end && (*p == '+' || *p == '-')) {
		int sign = *p++ == '-' ? -1 : 1;
		int oh, om = 0, os = 0;
		if (!read_digits(&p, end, 2, &oh))
			return false;
		if (p < end && *p == ':') {
			p++;
			if (!read_digits(&p, end, 2, &om))
				return false;
			if (p < end && *p == ':') {
				p++;
				if (!read_digits(&p, end, 2, &os))
					return false;
			}
		} else if (end - p >= 2) {
			if (!read_digits(&p, end, 2, &om))
				return false;
		}
		if (oh > 15 || om > 59 || os > 59)
			return false;
		offset = sign * ((int64_t)oh * 3600 + om * 60 + os);
		has_zone = true;
	}
	if (p != end || has_zone != (zone == CS_ZONE_REQUIRED))
		return false;
	if (bc)
		y = 1 - y;
	if (d > month_days(y, m) || y > 294277)
		return false;
	int64_t sec = days_from_civil(y, m, d) * 86400 + hh * 3600 + mi * 60 + ss - offset;
	if (sec < PG_TS_MIN_SEC || sec >= PG_TS_END_SEC)
		return false;
	out->sec = sec;
	out->usec = usec;
	out->inf = 0;
	return true;
}

/* Microseconds since the epoch of a finite time; false when they do not fit (the two int64
 * extremes are reserved for the infinities). */
static bool time_to_us(int64_t sec, uint32_t usec, int64_t *us)
{
	int64_t v;
	if (__builtin_mul_overflow(sec, INT64_C(1000000), &v) ||
		__builtin_add_overflow(v, (int64_t)usec, &v) || v == INT64_MAX || v == INT64_MIN)
		return false;
	*us = v;
	return true;
}

static enum reason ts_from_us(int64_t us, pval *pv)
{
	if (us == INT64_MAX || us == INT64_MIN) {
		pv->u.ts.inf = us == INT64_MAX ? 1 : -1;
		pv->u.ts.us = 0;
		return R_OK;
	}
	if (floor_div(us, 1000000) < PG_TS_MIN_SEC)
		return R_RANGE;
	pv->u.ts.us = us;
	pv->u.ts.inf = 0;
	return R_OK;
}

/* ---- Numbers ----------------------------------------------------------------------------- */

/* Optional sign and decimal digits, into [min, max]. */
static enum reason parse_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i == n)
		return R_SYNTAX;
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	bool over = false;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return R_SYNTAX;
		unsigned dg = (unsigned)(s[i] - '0');
		if (v > (lim - dg) / 10)
			over = true;
		else
			v = v * 10 + dg;
	}
	if (over)
		return R_RANGE;
	int64_t x = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
	if (x < min || x > max)
		return R_RANGE;
	*out = x;
	return R_OK;
}

#define FLOAT_TEXT_MAX 1024

/* A float in PostgreSQL's float4in/float8in syntax (decimal only, no white space). */
static enum reason parse_float(const char *s, size_t n, bool f4, pval *pv)
{
	if (word_eq(s, n, "nan")) {
		pv->u.f.sp = SP_NAN;
		pv->u.f.v = NAN;
		return R_OK;
	}
	int inf = parse_infinity(s, n, true);
	if (inf != 0) {
		pv->u.f.sp = inf > 0 ? SP_PINF : SP_NINF;
		pv->u.f.v = inf > 0 ? INFINITY : -INFINITY;
		return R_OK;
	}
	size_t i = 0;
	bool nonzero = false;
	int mant = 0;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	for (; i < n && is_digit(s[i]); i++, mant++)
		nonzero |= s[i] != '0';
	if (i < n && s[i] == '.')
		for (i++; i < n && is_digit(s[i]); i++, mant++)
			nonzero |= s[i] != '0';
	if (mant == 0)
		return R_SYNTAX;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t e0 = i;
		while (i < n && is_digit(s[i]))
			i++;
		if (i == e0)
			return R_SYNTAX;
	}
	if (i != n)
		return R_SYNTAX;
	if (n > FLOAT_TEXT_MAX)
		return R_TOOLONG;
	char buf[FLOAT_TEXT_MAX + 1];
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	double v;
	if (f4)
		v = strtof(buf, NULL);
	else
		v = strtod(buf, NULL);
	/* As PostgreSQL: overflow and underflow to zero are errors, denormals are fine. */
	if (isinf(v) || (v == 0 && nonzero))
		return R_RANGE;
	pv->u.f.sp = SP_NONE;
	pv->u.f.v = v == 0 ? 0.0 : v; /* -0 compares equal to 0: one key */
	return R_OK;
}

/* A double as wire value for a float4/float8 parameter. */
static enum reason float_from_double(double d, bool f4, pval *pv)
{
	if (isnan(d)) {
		pv->u.f.sp = SP_NAN;
		pv->u.f.v = NAN;
		return R_OK;
	}
	if (isinf(d)) {
		pv->u.f.sp = d > 0 ? SP_PINF : SP_NINF;
		pv->u.f.v = d;
		return R_OK;
	}
	if (f4) {
		/* 2^128 - 2^103 and above round to infinity; the cast would be undefined. */
		if (fabs(d) >= 0x1.ffffffp127)
			return R_RANGE;
		float f = (float)d;
		if (f == 0 && d != 0)
			return R_RANGE;
		d = f;
	}
	pv->u.f.sp = SP_NONE;
	pv->u.f.v = d == 0 ? 0.0 : d;
	return R_OK;
}

/* Shortest %.Ng text of a finite value that reads back to it. */
static void shortest_float(char *buf, size_t len, double v, bool f4)
{
	int maxp = f4 ? 9 : 17;
	for (int p = 1; p <= maxp; p++) {
		snprintf(buf, len, "%.*g", p, v);
		if (f4 ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
			return;
	}
}

/* NaN, Infinity, -Infinity as float and numeric print them; false for a finite value. */
static bool emit_special(enum special sp, cs_sb *w)
{
	static const char *const text[] = {[SP_NAN] = "NaN", [SP_PINF] = "Infinity",
		[SP_NINF] = "-Infinity"};
	if (sp == SP_NONE)
		return false;
	cs_sb_str(w, text[sp]);
	return true;
}

static void emit_float(const pval *pv, cs_sb *w)
{
	if (emit_special(pv->u.f.sp, w))
		return;
	char buf[40];
	shortest_float(buf, sizeof buf, pv->u.f.v, pv->t == CS_PT_FLOAT4);
	cs_sb_str(w, buf);
}

#define NUMERIC_MAX_EXP  1000   /* numeric_in's exponent limit */
#define NUMERIC_MAX_INT  131072 /* digits before the decimal point */
#define NUMERIC_MAX_FRAC 16383  /* digits after it */

/* A significant (non-zero) digit at digit position pos, at p: remembered as the first one
 * when none was seen yet, and as the last one so far. */
static void note_significant(const char *p, int64_t pos, int64_t *first, int64_t *last,
	const char **pfirst, const char **plast)
{
	if (*first < 0) {
		*first = pos;
		*pfirst = p;
	}
	*last = pos;
	*plast = p;
}

/* PostgreSQL numeric_in syntax, reduced to sign, significant digits and point position. */
static enum reason parse_numeric(const char *s, size_t n, pval *pv)
{
	memset(&pv->u.num, 0, sizeof pv->u.num);
	if (word_eq(s, n, "nan")) {
		pv->u.num.sp = SP_NAN;
		return R_OK;
	}
	int inf = parse_infinity(s, n, true);
	if (inf != 0) {
		pv->u.num.sp = inf > 0 ? SP_PINF : SP_NINF;
		return R_OK;
	}
	size_t i = 0;
	bool neg = false;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	int64_t nint = 0, pos = 0, first = -1, last = -1;
	const char *pfirst = NULL, *plast = NULL;
	for (; i < n && is_digit(s[i]); i++, nint++, pos++)
		if (s[i] != '0')
			note_significant(s + i, pos, &first, &last, &pfirst, &plast);
	if (i < n && s[i] == '.')
		for (i++; i < n && is_digit(s[i]); i++, pos++)
			if (s[i] != '0')
				note_significant(s + i, pos, &first, &last, &pfirst, &plast);
	if (pos == 0)
		return R_SYNTAX;
	int64_t exp = 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		bool eneg = false;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		size_t e0 = i;
		for (; i < n && is_digit(s[i]); i++)
			if (exp <= NUMERIC_MAX_EXP)
				exp = exp * 10 + (s[i] - '0');
		if (i == e0)
			return R_SYNTAX;
		if (exp > NUMERIC_MAX_EXP)
			return R_RANGE;
		if (eneg)
			exp = -exp;
	}
	if (i != n)
		return R_SYNTAX;
	if (first < 0)
		return R_OK; /* zero, whatever its sign and scale */
	pv->u.num.neg = neg;
	pv->u.num.p = pfirst;
	pv->u.num.end = plast + 1;
	pv->u.num.ndig = last - first + 1;
	pv->u.num.point = nint - first + exp;
	int64_t frac = pv->u.num.ndig - pv->u.num.point;
	if (pv->u.num.point > NUMERIC_MAX_INT || frac > NUMERIC_MAX_FRAC)
		return R_RANGE;
	return R_OK;
}

static void emit_zeros(cs_sb *w, int64_t k)
{
	static const char z[16] = "0000000000000000";
	for (; k > 0; k -= 16)
		cs_sb_put(w, z, k < 16 ? (size_t)k : 16);
}

static void emit_numeric(const pval *pv, cs_sb *w)
{
	if (emit_special(pv->u.num.sp, w))
		return;
	int64_t nd = pv->u.num.ndig, point = pv->u.num.point;
	if (nd == 0) {
		cs_sb_ch(w, '0');
		return;
	}
	if (pv->u.num.neg)
		cs_sb_ch(w, '-');
	if (point <= 0) {
		cs_sb_put(w, "0.", 2);
		emit_zeros(w, -point);
	}
	int64_t k = 0;
	for (const char *c = pv->u.num.p; c < pv->u.num.end; c++) {
		if (*c == '.')
			continue;
		if (k == point && k > 0)
			cs_sb_ch(w, '.');
		cs_sb_ch(w, *c);
		k++;
	}
	if (point > nd)
		emit_zeros(w, point - nd);
}

/* ---- Other types ------------------------------------------------------------------------- */

/* PostgreSQL's uuid_in: optional braces, 32 hex digits, a '-' allowed after each group of 4. */
static bool parse_uuid(const char *s, size_t n, uint8_t out[16])
{
	size_t i = 0;
	bool brace = n > 0 && s[0] == '{';
	if (brace)
		i++;
	for (int b = 0; b < 16; b++) {
		if (n - i < 2)
			return false;
		int hi = cs_hex_digit(s[i]), lo = cs_hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[b] = (uint8_t)(hi << 4 | lo);
		i += 2;
		if (b % 2 == 1 && b < 15 && i < n && s[i] == '-')
			i++;
	}
	if (brace) {
		if (i >= n || s[i] != '}')
			return false;
		i++;
	}
	return i == n;
}

/* bytea hex input "\x..." (pairs of hex digits, any case). */
static bool parse_bytea_hex(const char *s, size_t n, pval *pv)
{
	if (n < 2 || s[0] != '\\' || (s[1] != 'x' && s[1] != 'X') || (n - 2) % 2 != 0)
		return false;
	for (size_t i = 2; i < n; i++)
		if (cs_hex_digit(s[i]) < 0)
			return false;
	pv->u.bytes.p = s + 2;
	pv->u.bytes.len = n - 2;
	pv->u.bytes.hex = true;
	return true;
}

static bool bool_from_text(const char *s, size_t n, bool *b)
{
	if (word_eq(s, n, "t") || word_eq(s, n, "true")) {
		*b = true;
		return true;
	}
	if (word_eq(s, n, "f") || word_eq(s, n, "false")) {
		*b = false;
		return true;
	}
	return false;
}

/* Well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF) without NUL. */
static bool utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
			(cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* ---- Parsing: text (wire str and PostgreSQL output) and the other wire forms -------------- */

static const int64_t int_min[] = {
	[CS_PT_INT2] = INT16_MIN, [CS_PT_INT4] = INT32_MIN, [CS_PT_INT8] = INT64_MIN};
static const int64_t int_max[] = {
	[CS_PT_INT2] = INT16_MAX, [CS_PT_INT4] = INT32_MAX, [CS_PT_INT8] = INT64_MAX};

static enum reason parse_text(cs_param_type t, const char *s, size_t n, pval *pv)
{
	pv->t = t;
	pv->null = false;
	switch (t) {
	case CS_PT_BOOL:
		return bool_from_text(s, n, &pv->u.b) ? R_OK : R_SYNTAX;
	case CS_PT_INT2:
	case CS_PT_INT4:
	case CS_PT_INT8:
		return parse_int(s, n, int_min[t], int_max[t], &pv->u.i);
	case CS_PT_FLOAT4:
	case CS_PT_FLOAT8:
		return parse_float(s, n, t == CS_PT_FLOAT4, pv);
	case CS_PT_TEXT:
		pv->u.bytes.p = s;
		pv->u.bytes.len = n;
		pv->u.bytes.hex = false;
		return R_OK;
	case CS_PT_BYTEA:
		return parse_bytea_hex(s, n, pv) ? R_OK : R_SYNTAX;
	case CS_PT_UUID:
		return parse_uuid(s, n, pv->u.uuid) ? R_OK : R_SYNTAX;
	case CS_PT_NUMERIC:
		return parse_numeric(s, n, pv);
	case CS_PT_DATE:
		return parse_date(s, n, pv) ? R_OK : R_SYNTAX;
	case CS_PT_TIMESTAMPTZ: {
		cs_pg_time tm;
		if (!cs_pg_parse_timestamp(s, n, CS_ZONE_REQUIRED, &tm))
			return R_SYNTAX;
		if (tm.inf != 0) {
			pv->u.ts.inf = tm.inf;
			pv->u.ts.us = 0;
			return R_OK;
		}
		pv->u.ts.inf = 0;
		return time_to_us(tm.sec, tm.usec, &pv->u.ts.us) ? R_OK : R_RANGE;
	}
	default:
		return R_TYPE;
	}
}

static enum reason parse_wire(cs_param_type t, const cs_value *v, pval *pv)
{
	pv->t = t;
	pv->null = false;
	if ((unsigned)t >= CS_PT__COUNT)
		return R_TYPE;
	switch (v->type) {
	case CS_V_NIL:
		pv->null = true;
		return R_OK;
	case CS_V_STR:
		if (t == CS_PT_TEXT && !utf8_ok((const uint8_t *)v->u.s.p, v->u.s.len))
			return R_UTF8;
		return parse_text(t, v->u.s.p, v->u.s.len, pv);
	case CS_V_BOOL:
		if (t != CS_PT_BOOL)
			return R_TYPE;
		pv->u.b = v->u.b;
		return R_OK;
	case CS_V_INT:
		switch (t) {
		case CS_PT_INT2:
		case CS_PT_INT4:
		case CS_PT_INT8:
			if (v->u.i < int_min[t] || v->u.i > int_max[t])
				return R_RANGE;
			pv->u.i = v->u.i;
			return R_OK;
		case CS_PT_FLOAT4:
		case CS_PT_FLOAT8:
			return float_from_double((double)v->u.i, t == CS_PT_FLOAT4, pv);
		case CS_PT_NUMERIC: {
			int k = snprintf(pv->tmp, sizeof pv->tmp, "%" PRId64, v->u.i);
			return parse_numeric(pv->tmp, (size_t)k, pv);
		}
		case CS_PT_TIMESTAMPTZ:
			return ts_from_us(v->u.i, pv);
		default:
			return R_TYPE;
		}
	case CS_V_FLOAT:
		if (t == CS_PT_FLOAT4 || t == CS_PT_FLOAT8)
			return float_from_double(v->u.f, t == CS_PT_FLOAT4, pv);
		if (t == CS_PT_NUMERIC) {
			pval f;
			f.t = CS_PT_FLOAT8;
			(void)float_from_double(v->u.f, false, &f);
			cs_sb w = cs_sb_bounded(pv->tmp, sizeof pv->tmp - 1);
			emit_float(&f, &w);
			return parse_numeric(pv->tmp, w.len, pv);
		}
		return R_TYPE;
	case CS_V_BIN:
		if (t == CS_PT_BYTEA) {
			pv->u.bytes.p = v->u.s.p;
			pv->u.bytes.len = v->u.s.len;
			pv->u.bytes.hex = false;
			return R_OK;
		}
		if (t == CS_PT_UUID && v->u.s.len == 16) {
			memcpy(pv->u.uuid, v->u.s.p, 16);
			return R_OK;
		}
		return R_TYPE;
	case CS_V_TS: {
		if (t != CS_PT_TIMESTAMPTZ)
			return R_TYPE;
		int64_t sec = v->u.ts.sec;
		if (v->u.ts.nsec == 0 && (sec == INT64_MAX || sec == INT64_MIN)) {
			pv->u.ts.inf = sec == INT64_MAX ? 1 : -1;
			pv->u.ts.us = 0;
			return R_OK;
		}
		if (v->u.ts.nsec > 999999999u)
			return R_RANGE;
		if (v->u.ts.nsec % 1000 != 0)
			return R_NSEC;
		if (sec < PG_TS_MIN_SEC || sec >= PG_TS_END_SEC)
			return R_RANGE;
		int64_t us;
		if (!time_to_us(sec, v->u.ts.nsec / 1000, &us))
			return R_RANGE;
		pv->u.ts.us = us;
		pv->u.ts.inf = 0;
		return R_OK;
	}
	default:
		return R_TYPE;
	}
}

/* ---- Printing ---------------------------------------------------------------------------- */

static void emit_hex(cs_sb *w, const pval *pv)
{
	static const char hx[] = "0123456789abcdef";
	const char *p = pv->u.bytes.p;
	for (size_t i = 0; i < pv->u.bytes.len; i++) {
		if (pv->u.bytes.hex) {
			cs_sb_ch(w, lower(p[i]));
		} else {
			uint8_t c = (uint8_t)p[i];
			char two[2] = {hx[c >> 4], hx[c & 15]};
			cs_sb_put(w, two, 2);
		}
	}
}

static void emit_uuid(cs_sb *w, const uint8_t u[16])
{
	cs_sb_printf(w, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
		u[15]);
}

static void emit_inf(cs_sb *w, int inf)
{
	cs_sb_str(w, inf > 0 ? "infinity" : "-infinity");
}

/* Year in PostgreSQL's style: at least 4 digits, BC years counted from 1. */
static void emit_ymd(cs_sb *w, int64_t y, int m, int d)
{
	cs_sb_printf(w, "%04" PRId64 "-%02d-%02d", y > 0 ? y : 1 - y, m, d);
}

/* A date: infinity / -infinity, or YYYY-MM-DD followed by `bc` for years before 1 AD (the
 * canonical text and PostgreSQL's input differ only there). */
static void emit_date(cs_sb *w, const pval *pv, const char *bc)
{
	if (pv->u.date.inf != 0) {
		emit_inf(w, pv->u.date.inf);
		return;
	}
	emit_ymd(w, pv->u.date.y, pv->u.date.m, pv->u.date.d);
	if (pv->u.date.y <= 0)
		cs_sb_str(w, bc);
}

static void emit_canon(const pval *pv, cs_sb *w)
{
	if (pv->null) {
		cs_sb_ch(w, '~');
		return;
	}
	switch (pv->t) {
	case CS_PT_BOOL:
		cs_sb_ch(w, pv->u.b ? 't' : 'f');
		return;
	case CS_PT_INT2:
	case CS_PT_INT4:
	case CS_PT_INT8:
		cs_sb_printf(w, "%" PRId64, pv->u.i);
		return;
	case CS_PT_FLOAT4:
	case CS_PT_FLOAT8:
		emit_float(pv, w);
		return;
	case CS_PT_TEXT: {
		static const char hx[] = "0123456789ABCDEF";
		const uint8_t *p = (const uint8_t *)pv->u.bytes.p;
		size_t n = pv->u.bytes.len, run = 0;
		for (size_t i = 0; i < n; i++) {
			uint8_t c = p[i];
			bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				     (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
			if (plain) {
				run++;
				continue;
			}
			cs_sb_put(w, p + i - run, run);
			run = 0;
			char esc[3] = {'%', hx[c >> 4], hx[c & 15]};
			cs_sb_put(w, esc, 3);
		}
		cs_sb_put(w, p + n - run, run);
		return;
	}
	case CS_PT_BYTEA:
		emit_hex(w, pv);
		return;
	case CS_PT_UUID:
		emit_uuid(w, pv->u.uuid);
		return;
	case CS_PT_NUMERIC:
		emit_numeric(pv, w);
		return;
	case CS_PT_DATE:
		emit_date(w, pv, "BC");
		return;
	case CS_PT_TIMESTAMPTZ:
		if (pv->u.ts.inf != 0)
			emit_inf(w, pv->u.ts.inf);
		else
			cs_sb_printf(w, "%" PRId64, pv->u.ts.us);
		return;
	default:
		return;
	}
}

/* The value handed to PostgreSQL: raw bytes for text and bytea (binary format), the type's
 * input syntax otherwise (without the NUL). */
static void emit_pg(const pval *pv, cs_sb *w)
{
	switch (pv->t) {
	case CS_PT_TEXT:
		cs_sb_put(w, pv->u.bytes.p, pv->u.bytes.len);
		return;
	case CS_PT_BYTEA:
		if (!pv->u.bytes.hex) {
			cs_sb_put(w, pv->u.bytes.p, pv->u.bytes.len);
			return;
		}
		for (size_t i = 0; i + 1 < pv->u.bytes.len; i += 2) {
			char c = (char)(cs_hex_digit(pv->u.bytes.p[i]) << 4 |
					cs_hex_digit(pv->u.bytes.p[i + 1]));
			cs_sb_ch(w, c);
		}
		return;
	case CS_PT_DATE:
		emit_date(w, pv, " BC");
		return;
	case CS_PT_TIMESTAMPTZ: {
		if (pv->u.ts.inf != 0) {
			emit_inf(w, pv->u.ts.inf);
			return;
		}
		int64_t sec = floor_div(pv->u.ts.us, 1000000);
		int64_t usec = pv->u.ts.us - sec * 1000000;
		int64_t days = floor_div(sec, 86400), tod = sec - days * 86400;
		int64_t y;
		int m, d;
		civil_from_days(days, &y, &m, &d);
		emit_ymd(w, y, m, d);
		cs_sb_printf(w, " %02d:%02d:%02d.%06d+00", (int)(tod / 3600), (int)(tod / 60 % 60),
			(int)(tod % 60), (int)usec);
		if (y <= 0)
			cs_sb_str(w, " BC");
		return;
	}
	default:
		emit_canon(pv, w); /* bool, integers, floats, uuid, numeric: same text */
		return;
	}
}

/* ---- Errors ------------------------------------------------------------------------------ */

static const char *const type_names[CS_PT__COUNT] = {
	[CS_PT_BOOL] = "bool",
	[CS_PT_INT2] = "int2",
	[CS_PT_INT4] = "int4",
	[CS_PT_INT8] = "int8",
	[CS_PT_FLOAT4] = "float4",
	[CS_PT_FLOAT8] = "float8",
	[CS_PT_TEXT] = "text",
	[CS_PT_BYTEA] = "bytea",
	[CS_PT_UUID] = "uuid",
	[CS_PT_NUMERIC] = "numeric",
	[CS_PT_DATE] = "date",
	[CS_PT_TIMESTAMPTZ] = "timestamptz",
};

static const char *type_name(cs_param_type t)
{
	return (unsigned)t < CS_PT__COUNT ? type_names[t] : "unknown type";
}

/* A short description of a wire value for messages: `"abc"`, `int 5`, `bin (3 bytes)`. */
static void describe(const cs_value *v, char *buf, size_t len)
{
	cs_sb w = cs_sb_bounded(buf, len - 1);
	switch (v->type) {
	case CS_V_NIL:
		cs_sb_str(&w, "nil");
		break;
	case CS_V_BOOL:
		cs_sb_str(&w, v->u.b ? "bool true" : "bool false");
		break;
	case CS_V_INT:
		cs_sb_printf(&w, "int %" PRId64, v->u.i);
		break;
	case CS_V_FLOAT:
		cs_sb_printf(&w, "float %.17g", v->u.f);
		break;
	case CS_V_STR: {
		cs_sb_ch(&w, '"');
		uint32_t n = v->u.s.len;
		for (uint32_t i = 0; i < n && i < 40; i++) {
			unsigned char c = (unsigned char)v->u.s.p[i];
			if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
				cs_sb_printf(&w, "\\x%02x", c);
			else
				cs_sb_ch(&w, (char)c);
		}
		cs_sb_str(&w, n > 40 ? "\"..." : "\"");
		break;
	}
	case CS_V_BIN:
		cs_sb_printf(&w, "bin (%" PRIu32 " bytes)", v->u.s.len);
		break;
	case CS_V_TS:
		cs_sb_printf(&w, "timestamp (%" PRId64 " s, %" PRIu32 " ns)", v->u.ts.sec, v->u.ts.nsec);
		break;
	default:
		cs_sb_printf(&w, "wire type %u", v->type);
		break;
	}
	buf[w.len < len ? w.len : len - 1] = '\0';
}

static int bad_value(char *err, size_t errlen, int idx, const cs_param_def *pd, const cs_value *v,
	enum reason why)
{
	static const char *const tails[] = {
		[R_OK] = "",
		[R_TYPE] = "",
		[R_SYNTAX] = "",
		[R_RANGE] = " (out of range)",
		[R_NSEC] = " (nanoseconds must be a multiple of 1000)",
		[R_UTF8] = " (not valid UTF-8, or contains a NUL byte)",
		[R_TOOLONG] = " (too long)",
	};
	if (errlen > 0) {
		char d[200];
		describe(v, d, sizeof d);
		snprintf(err, errlen, "parameter %d (%s): expected %s, got %s%s", idx + 1, pd->name,
			type_name(pd->type), d, tails[why]);
	}
	return -CS_ERR_BAD_PARAMS;
}

static int bad_count(char *err, size_t errlen, const cs_query_def *q, uint32_t n)
{
	if (errlen > 0)
		snprintf(err, errlen, "query %s: expected %d parameter%s, got %" PRIu32, q->name,
			q->nparams, q->nparams == 1 ? "" : "s", n);
	return -CS_ERR_BAD_PARAMS;
}

/* Parses every value of a request into pv[0..n). */
static int parse_all(
	const cs_query_def *q, const cs_value *in, uint32_t n, pval *pv, char *err, size_t errlen)
{
	if (q->nparams < 0 || q->nparams > CS_MAX_PARAMS || n != (uint32_t)q->nparams)
		return bad_count(err, errlen, q, n);
	for (uint32_t i = 0; i < n; i++) {
		enum reason r = parse_wire(q->params[i].type, &in[i], &pv[i]);
		if (r != R_OK)
			return bad_value(err, errlen, (int)i, &q->params[i], &in[i], r);
	}
	return 0;
}

static size_t canon_cap(size_t outlen)
{
	size_t cap = outlen > 0 ? outlen - 1 : 0;
	return cap < CS_CANON_MAX ? cap : CS_CANON_MAX;
}

/* ---- API --------------------------------------------------------------------------------- */

int cs_params_canon(const cs_query_def *q, const cs_value *in, uint32_t n, char *out, size_t outlen,
	size_t *len, char *err, size_t errlen)
{
	pval pv[CS_MAX_PARAMS];
	int rc = parse_all(q, in, n, pv, err, errlen);
	if (rc != 0)
		return rc;
	cs_sb w = cs_sb_bounded(out, canon_cap(outlen));
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0)
			cs_sb_ch(&w, ':');
		emit_canon(&pv[i], &w);
	}
	*len = w.len;
	if (w.len > w.cap)
		return 1;
	if (outlen > 0)
		out[w.len] = '\0';
	return 0;
}

int cs_params_canon_append_text(cs_param_type t, bool is_null, const char *text, size_t textlen,
	int index, char *out, size_t outlen, size_t *len)
{
	pval pv;
	pv.t = t;
	pv.null = is_null;
	if ((unsigned)t >= CS_PT__COUNT)
		return -CS_ERR_BAD_PARAMS;
	if (!is_null && parse_text(t, text, textlen, &pv) != R_OK)
		return -CS_ERR_BAD_PARAMS;
	cs_sb w = cs_sb_bounded(out, canon_cap(outlen));
	w.len = *len;
	if (outlen == 0 || w.len > w.cap)
		return 1;
	if (index > 0)
		cs_sb_ch(&w, ':');
	emit_canon(&pv, &w);
	if (w.len > w.cap)
		return 1;
	out[w.len] = '\0';
	*len = w.len;
	return 0;
}

cs_pg_params *cs_params_pg(
	const cs_query_def *q, const cs_value *in, uint32_t n, char *err, size_t errlen)
{
	pval pv[CS_MAX_PARAMS];
	size_t vlen[CS_MAX_PARAMS];
	if (parse_all(q, in, n, pv, err, errlen) != 0)
		return NULL;
	size_t head = sizeof(cs_pg_params) + n * (sizeof(char *) + 2 * sizeof(int));
	size_t total = head;
	for (uint32_t i = 0; i < n; i++) {
		vlen[i] = 0;
		if (pv[i].null)
			continue;
		cs_sb w = cs_sb_bounded(NULL, 0);
		emit_pg(&pv[i], &w);
		if (w.len > INT_MAX - 1) {
			if (errlen > 0)
				snprintf(err, errlen, "parameter %" PRIu32 " (%s): value too large",
					i + 1, q->params[i].name);
			return NULL;
		}
		vlen[i] = w.len;
		total += w.len + 1;
	}
	char *block = malloc(total);
	if (block == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cs_pg_params *p = (cs_pg_params *)(void *)block;
	const char **values = (const char **)(void *)(block + sizeof *p);
	int *lengths = (int *)(void *)(values + n);
	int *formats = lengths + n;
	char *data = (char *)(formats + n);
	for (uint32_t i = 0; i < n; i++) {
		bool binary = pv[i].t == CS_PT_TEXT || pv[i].t == CS_PT_BYTEA;
		formats[i] = binary ? 1 : 0;
		lengths[i] = (int)vlen[i];
		if (pv[i].null) {
			values[i] = NULL;
			lengths[i] = 0;
			continue;
		}
		cs_sb w = cs_sb_bounded(data, vlen[i]);
		emit_pg(&pv[i], &w);
		data[vlen[i]] = '\0';
		values[i] = data;
		data += vlen[i] + 1;
	}
	p->n = (int)n;
	p->values = values;
	p->lengths = lengths;
	p->formats = formats;
	return p;
}

/* ---- Shard keys (backend/SHARDS.md section 3) -------------------------------------------- */

int cs_params_shard_key(const cs_query_def *q, const cs_value *in, uint32_t n, cs_shard_key *out,
        char *err, size_t errlen)
{
	int k = q->shard_key_index;
	if (k < 0 || k >= q->nparams) {
		/* the config guarantees a key: not reachable from a loaded config */
		if (errlen > 0)
			snprintf(err, errlen, "query %s: has no shard key ([query] shard_key)",
			        q->name);
		return -CS_ERR_BAD_PARAMS;
	}
	if (q->nparams > CS_MAX_PARAMS || n != (uint32_t)q->nparams)
		return bad_count(err, errlen, q, n);
	const cs_param_def *pd = &q->params[k];
	pval pv;
	enum reason r = parse_wire(pd->type, &in[k], &pv);
	if (r != R_OK)
		return bad_value(err, errlen, k, pd, &in[k], r);
	memset(out, 0, sizeof *out);
	if (pv.null) {
		if (errlen > 0)
			snprintf(err, errlen,
			        "query %s: parameter %d (%s) is the shard key and is NULL: "
			        "a NULL key lives on no shard",
			        q->name, k + 1, pd->name);
		return -CS_ERR_BAD_PARAMS;
	}
	uint64_t h = CS_FNV1A64_INIT;
	switch (pd->type) {
	case CS_PT_INT2:
	case CS_PT_INT4:
	case CS_PT_INT8: {
		/* every integer type as its int64 value, big-endian two's complement */
		uint64_t u = (uint64_t)pv.u.i;
		uint8_t be[8];
		for (int i = 0; i < 8; i++)
			be[i] = (uint8_t)(u >> (56 - 8 * i));
		out->integer = true;
		out->i = pv.u.i;
		h = cs_fnv1a64(h, be, 8);
		break;
	}
	case CS_PT_TEXT: /* its UTF-8 bytes as sent (no escaping) */
		h = cs_fnv1a64(h, pv.u.bytes.p, pv.u.bytes.len);
		break;
	case CS_PT_BYTEA: /* its bytes */
		if (!pv.u.bytes.hex) {
			h = cs_fnv1a64(h, pv.u.bytes.p, pv.u.bytes.len);
			break;
		}
		for (size_t i = 0; i + 1 < pv.u.bytes.len; i += 2) {
			uint8_t b = (uint8_t)(cs_hex_digit(pv.u.bytes.p[i]) << 4 |
			                      cs_hex_digit(pv.u.bytes.p[i + 1]));
			h = cs_fnv1a64(h, &b, 1);
		}
		break;
	case CS_PT_UUID: /* its 16 bytes */
		h = cs_fnv1a64(h, pv.u.uuid, 16);
		break;
	default:
		/* bool, float, numeric, date, timestamptz: config load refuses them as a shard
		 * key (their text forms are not reproducible byte for byte in every language) */
		if (errlen > 0)
			snprintf(err, errlen,
			        "query %s: parameter %d (%s) is the shard key and is %s; a "
			        "shard key must be int2, int4, int8, text, bytea or uuid",
			        q->name, k + 1, pd->name, type_name(pd->type));
		return -CS_ERR_BAD_PARAMS;
	}
	out->hash = h;
	return 0;
}
