/* test_params.c - unit tests for cachesvc/config/params.c: coercion, canonical key text, and the
 * read-path / invalidator equality that keeps invalidation exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "params.h"

/* ---- Fixtures ---------------------------------------------------------------------------- */

static cs_query_def make_query(int n, const cs_param_type *types, const char *const *names)
{
	cs_query_def q;
	memset(&q, 0, sizeof q);
	snprintf(q.name, sizeof q.name, "q");
	q.nparams = n;
	for (int i = 0; i < n; i++) {
		q.params[i].type = types[i];
		snprintf(q.params[i].name, sizeof q.params[i].name, "%s", names ? names[i] : "p");
	}
	return q;
}

static cs_value vnil(void)
{
	cs_value v = {.type = CS_V_NIL};
	return v;
}

static cs_value vbool(bool b)
{
	cs_value v = {.type = CS_V_BOOL, .u.b = b};
	return v;
}

static cs_value vint(int64_t i)
{
	cs_value v = {.type = CS_V_INT, .u.i = i};
	return v;
}

static cs_value vflt(double f)
{
	cs_value v = {.type = CS_V_FLOAT, .u.f = f};
	return v;
}

static cs_value vstrn(const char *s, size_t n)
{
	cs_value v = {.type = CS_V_STR};
	v.u.s.p = s;
	v.u.s.len = (uint32_t)n;
	return v;
}

static cs_value vstr(const char *s)
{
	return vstrn(s, strlen(s));
}

static cs_value vbin(const void *p, size_t n)
{
	cs_value v = {.type = CS_V_BIN};
	v.u.s.p = p;
	v.u.s.len = (uint32_t)n;
	return v;
}

static cs_value vts(int64_t sec, uint32_t nsec)
{
	cs_value v = {.type = CS_V_TS};
	v.u.ts.sec = sec;
	v.u.ts.nsec = nsec;
	return v;
}

/* Canonical text of one wire value, asserting success. Static buffer. */
static const char *canon1(cs_param_type t, cs_value v)
{
	static char out[CS_CANON_MAX + 1];
	char err[256] = "";
	size_t len = 0;
	cs_query_def q = make_query(1, &t, NULL);
	int rc = cs_params_canon(&q, &v, 1, out, sizeof out, &len, err, sizeof err);
	if (rc != 0)
		fail_msg("canon rc %d: %s", rc, err);
	assert_int_equal(len, strlen(out));
	return out;
}

/* Canonical text of one PostgreSQL text value, asserting success. Static buffer. */
static const char *text1(cs_param_type t, const char *pgtext)
{
	static char out[CS_CANON_MAX + 1];
	size_t len = 0;
	int rc = cs_params_canon_append_text(
		t, false, pgtext, strlen(pgtext), 0, out, sizeof out, &len);
	if (rc != 0)
		fail_msg("append_text(%d, \"%s\") rc %d", (int)t, pgtext, rc);
	assert_int_equal(len, strlen(out));
	return out;
}

static void expect_canon(cs_param_type t, cs_value v, const char *want)
{
	assert_string_equal(canon1(t, v), want);
}

static void expect_text(cs_param_type t, const char *pgtext, const char *want)
{
	assert_string_equal(text1(t, pgtext), want);
}

/* The same value as a wire str and as PostgreSQL text: both give `want`. */
static void expect_both(cs_param_type t, const char *s, const char *want)
{
	expect_canon(t, vstr(s), want);
	expect_text(t, s, want);
}

static void expect_reject(cs_param_type t, cs_value v)
{
	char out[64], err[256] = "";
	size_t len = 0;
	cs_query_def q = make_query(1, &t, NULL);
	int rc = cs_params_canon(&q, &v, 1, out, sizeof out, &len, err, sizeof err);
	if (rc != -CS_ERR_BAD_PARAMS)
		fail_msg("type %d: expected rejection, rc %d out \"%.*s\"", (int)t, rc, (int)len,
			out);
	assert_true(strncmp(err, "parameter 1 (p): expected ", 26) == 0);
}

static void expect_text_reject(cs_param_type t, const char *s)
{
	char out[64];
	size_t len = 0;
	int rc = cs_params_canon_append_text(t, false, s, strlen(s), 0, out, sizeof out, &len);
	if (rc != -CS_ERR_BAD_PARAMS)
		fail_msg("type %d text \"%s\": expected rejection, rc %d", (int)t, s, rc);
	assert_int_equal(len, 0);
}

/* Both as wire str and PostgreSQL text. */
static void expect_str_reject(cs_param_type t, const char *s)
{
	expect_reject(t, vstr(s));
	expect_text_reject(t, s);
}

/* ---- bool -------------------------------------------------------------------------------- */

static void bool_forms(void **state)
{
	expect_canon(CS_PT_BOOL, vbool(true), "t");
	expect_canon(CS_PT_BOOL, vbool(false), "f");
	expect_both(CS_PT_BOOL, "t", "t");
	expect_both(CS_PT_BOOL, "f", "f");
	expect_both(CS_PT_BOOL, "true", "t");
	expect_both(CS_PT_BOOL, "FALSE", "f");
	expect_both(CS_PT_BOOL, "True", "t");
	expect_canon(CS_PT_BOOL, vnil(), "~");
	expect_reject(CS_PT_BOOL, vint(1));
	expect_reject(CS_PT_BOOL, vflt(1));
	expect_reject(CS_PT_BOOL, vbin("t", 1));
	expect_reject(CS_PT_BOOL, vts(0, 0));
	const char *bad[] = {"", "yes", "1", "0", "on", " t", "t ", "tr", "truee", NULL};
	for (int i = 0; bad[i]; i++)
		expect_str_reject(CS_PT_BOOL, bad[i]);
}

/* ---- integers ---------------------------------------------------------------------------- */

static void int_forms(void **state)
{
	cs_param_type ts[] = {CS_PT_INT2, CS_PT_INT4, CS_PT_INT8};
	for (int k = 0; k < 3; k++) {
		cs_param_type t = ts[k];
		expect_canon(t, vint(42), "42");
		expect_canon(t, vint(-7), "-7");
		expect_canon(t, vint(0), "0");
		expect_both(t, "42", "42");
		expect_both(t, "042", "42");
		expect_both(t, "+42", "42");
		expect_both(t, "-0", "0");
		expect_both(t, "-0042", "-42");
		expect_canon(t, vnil(), "~");
		expect_reject(t, vflt(42.0));
		expect_reject(t, vflt(0.5));
		expect_reject(t, vbool(true));
		expect_reject(t, vbin("42", 2));
		expect_reject(t, vts(42, 0));
		const char *bad[] = {"", "-", "+", "abc", "4 2", " 42", "42 ", "42x", "0x2A", "4.0",
			"1e3", "--1", "+-1", NULL};
		for (int i = 0; bad[i]; i++)
			expect_str_reject(t, bad[i]);
	}
	/* Ranges per type, as int and as text. */
	expect_canon(CS_PT_INT2, vint(32767), "32767");
	expect_canon(CS_PT_INT2, vint(-32768), "-32768");
	expect_reject(CS_PT_INT2, vint(32768));
	expect_reject(CS_PT_INT2, vint(-32769));
	expect_str_reject(CS_PT_INT2, "32768");
	expect_canon(CS_PT_INT4, vint(INT32_MAX), "2147483647");
	expect_canon(CS_PT_INT4, vint(INT32_MIN), "-2147483648");
	expect_reject(CS_PT_INT4, vint((int64_t)INT32_MAX + 1));
	expect_str_reject(CS_PT_INT4, "-2147483649");
	expect_canon(CS_PT_INT8, vint(INT64_MAX), "9223372036854775807");
	expect_canon(CS_PT_INT8, vint(INT64_MIN), "-9223372036854775808");
	expect_both(CS_PT_INT8, "9223372036854775807", "9223372036854775807");
	expect_both(CS_PT_INT8, "-9223372036854775808", "-9223372036854775808");
	expect_str_reject(CS_PT_INT8, "9223372036854775808");
	expect_str_reject(CS_PT_INT8, "-9223372036854775809");
	expect_str_reject(CS_PT_INT8, "99999999999999999999999999");
	/* The example from the brief: int 42, "42", "042" and row text "42" share one key. */
	expect_canon(CS_PT_INT8, vstr("042"), text1(CS_PT_INT8, "42"));
}

/* ---- floats ------------------------------------------------------------------------------ */

static void float_forms(void **state)
{
	expect_canon(CS_PT_FLOAT8, vflt(0.1), "0.1");
	expect_canon(CS_PT_FLOAT8, vflt(1e300), "1e+300");
	expect_canon(CS_PT_FLOAT8, vflt(-0.0), "0");
	expect_canon(CS_PT_FLOAT8, vflt(0.0), "0");
	expect_canon(CS_PT_FLOAT8, vflt(42), "42");
	expect_canon(CS_PT_FLOAT8, vint(42), "42");
	expect_canon(CS_PT_FLOAT8, vflt(1.0 / 3), "0.3333333333333333");
	expect_canon(CS_PT_FLOAT8, vflt(1e16), "1e+16");
	expect_canon(CS_PT_FLOAT8, vflt(1e-5), "1e-05");
	expect_canon(CS_PT_FLOAT8, vflt(NAN), "NaN");
	expect_canon(CS_PT_FLOAT8, vflt(-NAN), "NaN");
	expect_canon(CS_PT_FLOAT8, vflt(INFINITY), "Infinity");
	expect_canon(CS_PT_FLOAT8, vflt(-INFINITY), "-Infinity");
	expect_canon(CS_PT_FLOAT8, vflt(5e-324), "5e-324");
	expect_canon(CS_PT_FLOAT8, vflt(DBL_MAX), "1.7976931348623157e+308");
	expect_canon(CS_PT_FLOAT8, vint(INT64_MAX), "9.223372036854776e+18");
	expect_canon(CS_PT_FLOAT8, vnil(), "~");
	expect_both(CS_PT_FLOAT8, "0.1", "0.1");
	expect_both(CS_PT_FLOAT8, "0.10000", "0.1");
	expect_both(CS_PT_FLOAT8, "1e-1", "0.1");
	expect_both(CS_PT_FLOAT8, ".1", "0.1");
	expect_both(CS_PT_FLOAT8, "42.", "42");
	expect_both(CS_PT_FLOAT8, "42", "42");
	expect_both(CS_PT_FLOAT8, "4.2E+1", "42");
	expect_both(CS_PT_FLOAT8, "-0", "0");
	expect_both(CS_PT_FLOAT8, "+1.5", "1.5");
	expect_both(CS_PT_FLOAT8, "NaN", "NaN");
	expect_both(CS_PT_FLOAT8, "nan", "NaN");
	expect_both(CS_PT_FLOAT8, "Infinity", "Infinity");
	expect_both(CS_PT_FLOAT8, "-Infinity", "-Infinity");
	expect_both(CS_PT_FLOAT8, "+inf", "Infinity");
	expect_both(CS_PT_FLOAT8, "-INF", "-Infinity");
	expect_both(CS_PT_FLOAT8, "4.9406564584124654e-324", "5e-324");
	expect_both(CS_PT_FLOAT8, "1.7976931348623157e+308", "1.7976931348623157e+308");
	const char *bad[] = {"", "-", ".", "e5", "1e", "1e+", "1.2.3", " 1", "1 ", "0x1p3", "-NaN",
		"NaN(1)", "infinit", "1,5", "1e400", "-1e400", "1e-400", "abc", NULL};
	for (int i = 0; bad[i]; i++)
		expect_str_reject(CS_PT_FLOAT8, bad[i]);
	expect_reject(CS_PT_FLOAT8, vbool(true));
	expect_reject(CS_PT_FLOAT8, vbin("1", 1));
	expect_reject(CS_PT_FLOAT8, vts(1, 0));

	/* float4: the value is rounded to float first, then printed shortest for a float. */
	expect_canon(CS_PT_FLOAT4, vflt(0.1), "0.1");
	expect_canon(CS_PT_FLOAT4, vflt((float)0.1), "0.1");
	expect_canon(CS_PT_FLOAT4, vflt(1.0 / 3), "0.33333334");
	expect_canon(CS_PT_FLOAT4, vint(16777217), "16777216");
	expect_canon(CS_PT_FLOAT4, vflt(-0.0), "0");
	expect_canon(CS_PT_FLOAT4, vflt(FLT_MAX), "3.4028235e+38");
	expect_canon(CS_PT_FLOAT4, vflt(NAN), "NaN");
	expect_canon(CS_PT_FLOAT4, vflt(-INFINITY), "-Infinity");
	expect_both(CS_PT_FLOAT4, "0.1", "0.1");
	expect_both(CS_PT_FLOAT4, "0.100000001", "0.1");
	expect_both(CS_PT_FLOAT4, "3.4028235e+38", "3.4028235e+38");
	expect_both(CS_PT_FLOAT4, "1e-45", "1e-45");
	expect_reject(CS_PT_FLOAT4, vflt(1e300));
	expect_reject(CS_PT_FLOAT4, vflt(3.5e38));
	expect_reject(CS_PT_FLOAT4, vflt(1e-50));
	expect_reject(CS_PT_FLOAT4, vflt(-1e-50));
	expect_str_reject(CS_PT_FLOAT4, "3.5e38");
	expect_str_reject(CS_PT_FLOAT4, "1e-50");
	/* Text too long to be a reasonable float: refused, not truncated. */
	char longf[1100];
	memset(longf, '1', sizeof longf - 1);
	longf[sizeof longf - 1] = '\0';
	longf[1] = '.';
	expect_str_reject(CS_PT_FLOAT8, longf);
}

/* A small deterministic generator (xorshift64*). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Every representation of the same double gives the same key: the msgpack float, its
 * %.17g / %.20e / shortest text as a wire str and as PostgreSQL text, and (when integral)
 * the msgpack int. */
static void check_double(double d)
{
	char want[64], s[64];
	snprintf(want, sizeof want, "%s", canon1(CS_PT_FLOAT8, vflt(d)));
	const char *fmts[] = {"%.17g", "%.20e", "%.25g", NULL};
	for (int i = 0; fmts[i]; i++) {
		snprintf(s, sizeof s, fmts[i], d);
		if (isnan(d) || isinf(d))
			break;
		assert_string_equal(canon1(CS_PT_FLOAT8, vstr(s)), want);
		assert_string_equal(text1(CS_PT_FLOAT8, s), want);
	}
	/* The canonical text is itself accepted and is a fixed point. */
	assert_string_equal(text1(CS_PT_FLOAT8, want), want);
	if (!isnan(d))
		assert_true(strtod(want, NULL) == d || (d == 0 && strtod(want, NULL) == 0));
	if (d == floor(d) && fabs(d) < 9e18)
		assert_string_equal(canon1(CS_PT_FLOAT8, vint((int64_t)d)), want);
	/* numeric from the float and from the float's text agree too. */
	if (isfinite(d) && fabs(d) < 1e200 && fabs(d) > 1e-200) {
		char num[CS_CANON_MAX + 1];
		size_t len = 0;
		int rc = cs_params_canon_append_text(
			CS_PT_NUMERIC, false, want, strlen(want), 0, num, sizeof num, &len);
		if (rc == 0)
			assert_string_equal(canon1(CS_PT_NUMERIC, vflt(d)), num);
	}
}

static void check_float4(float f)
{
	char want[64], s[64];
	snprintf(want, sizeof want, "%s", canon1(CS_PT_FLOAT4, vflt(f)));
	assert_true(strtof(want, NULL) == f || f == 0 || isnan(f));
	if (isnan(f) || isinf(f))
		return;
	snprintf(s, sizeof s, "%.9g", (double)f);
	assert_string_equal(canon1(CS_PT_FLOAT4, vstr(s)), want);
	assert_string_equal(text1(CS_PT_FLOAT4, s), want);
	snprintf(s, sizeof s, "%.12e", (double)f);
	assert_string_equal(text1(CS_PT_FLOAT4, s), want);
	assert_string_equal(text1(CS_PT_FLOAT4, want), want);
}

static void float_invariant(void **state)
{
	const double fixed[] = {0.1, 0.2, 0.3, 1e300, -1e300, -0.0, 0.0, 1.0, -1.0, 1e-300, 5e-324,
		2.2250738585072014e-308, DBL_MAX, -DBL_MAX, 1.0 / 3, 2.0 / 3, 123456789.125,
		9007199254740993.0, 1e15, 1e16, 1e17, 1e-4, 1e-5, 100, 3.14159265358979,
		0.30000000000000004, NAN, INFINITY, -INFINITY};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		check_double(fixed[i]);
	for (int i = 0; i < 20000; i++) {
		uint64_t bits = rnd();
		double d;
		memcpy(&d, &bits, sizeof d);
		if (isnan(d) || isinf(d))
			continue;
		check_double(d);
		/* And some "human" decimals. */
		check_double((double)(int64_t)(rnd() % 2000001 - 1000000) / 1000.0);
	}
	const float ffixed[] = {
		0.1f, 0.2f, 1e38f, -1e-38f, 1e-45f, FLT_MAX, 16777216.0f, 1.0f / 3, -0.0f};
	for (size_t i = 0; i < sizeof ffixed / sizeof ffixed[0]; i++)
		check_float4(ffixed[i]);
	for (int i = 0; i < 20000; i++) {
		uint32_t bits = (uint32_t)rnd();
		float f;
		memcpy(&f, &bits, sizeof f);
		if (!isnan(f) && !isinf(f))
			check_float4(f);
	}
}

/* ---- text -------------------------------------------------------------------------------- */

static void text_forms(void **state)
{
	expect_both(CS_PT_TEXT, "hello", "hello");
	expect_both(CS_PT_TEXT, "", "");
	expect_both(CS_PT_TEXT, "A-z_0.9", "A-z_0.9");
	expect_both(CS_PT_TEXT, "a:b~c d/%", "a%3Ab%7Ec%20d%2F%25");
	expect_both(CS_PT_TEXT, "\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9");
	expect_both(CS_PT_TEXT, "\xf0\x9f\x98\x80", "%F0%9F%98%80");
	expect_canon(CS_PT_TEXT, vnil(), "~");
	/* "~" as text is not NULL. */
	expect_both(CS_PT_TEXT, "~", "%7E");
	expect_reject(CS_PT_TEXT, vbin("abc", 3));
	expect_reject(CS_PT_TEXT, vint(1));
	expect_reject(CS_PT_TEXT, vflt(1));
	expect_reject(CS_PT_TEXT, vbool(true));
	expect_reject(CS_PT_TEXT, vts(0, 0));
	/* Not UTF-8, or NUL inside: refused on the wire. */
	expect_reject(CS_PT_TEXT, vstr("\xff"));
	expect_reject(CS_PT_TEXT, vstr("\xc3"));
	expect_reject(CS_PT_TEXT, vstr("\xc0\x80"));         /* overlong NUL */
	expect_reject(CS_PT_TEXT, vstr("\xed\xa0\x80"));     /* surrogate */
	expect_reject(CS_PT_TEXT, vstr("\xf4\x90\x80\x80")); /* past U+10FFFF */
	expect_reject(CS_PT_TEXT, vstrn("a\0b", 3));
	/* Every byte value round-trips through the encoding distinctly. */
	char seen[256][4];
	for (int c = 1; c < 128; c++) {
		char s[2] = {(char)c, 0};
		snprintf(seen[c], sizeof seen[c], "%s", text1(CS_PT_TEXT, s));
		assert_true(strchr(seen[c], ':') == NULL && strchr(seen[c], '~') == NULL);
		for (int d = 1; d < c; d++)
			assert_string_not_equal(seen[c], seen[d]);
	}
}

/* ---- bytea ------------------------------------------------------------------------------- */

static void bytea_forms(void **state)
{
	expect_canon(CS_PT_BYTEA, vbin("\x00\xff\x3a", 3), "00ff3a");
	expect_canon(CS_PT_BYTEA, vbin("", 0), "");
	expect_both(CS_PT_BYTEA, "\\x00ff3a", "00ff3a");
	expect_both(CS_PT_BYTEA, "\\x00FF3A", "00ff3a");
	expect_both(CS_PT_BYTEA, "\\X00ff3A", "00ff3a");
	expect_both(CS_PT_BYTEA, "\\x", "");
	expect_canon(CS_PT_BYTEA, vnil(), "~");
	const char *bad[] = {
		"", "00ff", "\\x0", "\\xzz", "\\x00 ff", "x00", "\\\\x00", "\\001", NULL};
	for (int i = 0; bad[i]; i++)
		expect_str_reject(CS_PT_BYTEA, bad[i]);
	expect_reject(CS_PT_BYTEA, vint(1));
	expect_reject(CS_PT_BYTEA, vbool(false));
	/* bin and its PG hex text agree for every byte value. */
	uint8_t all[256];
	char hex[2 + 512 + 1] = "\\x";
	for (int i = 0; i < 256; i++) {
		all[i] = (uint8_t)i;
		snprintf(hex + 2 + 2 * i, 3, "%02X", i);
	}
	char a[600];
	snprintf(a, sizeof a, "%s", canon1(CS_PT_BYTEA, vbin(all, sizeof all)));
	assert_int_equal(strlen(a), 512);
	assert_string_equal(text1(CS_PT_BYTEA, hex), a);
	assert_string_equal(canon1(CS_PT_BYTEA, vstr(hex)), a);
}

/* ---- uuid -------------------------------------------------------------------------------- */

static void uuid_forms(void **state)
{
	const char *want = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
	const char *good[] = {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
		"a0eebc999c0b4ef8bb6d6bb9bd380a11", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
		"{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}", NULL};
	for (int i = 0; good[i]; i++)
		expect_both(CS_PT_UUID, good[i], want);
	const uint8_t raw[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b,
		0xb9, 0xbd, 0x38, 0x0a, 0x11};
	expect_canon(CS_PT_UUID, vbin(raw, 16), want);
	expect_canon(CS_PT_UUID, vnil(), "~");
	const char *bad[] = {"", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
		"-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
		"a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11", "a0eeb-c99-9c0b-4ef8-bb6d-6bb9bd380a11",
		" a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", NULL};
	for (int i = 0; bad[i]; i++)
		expect_str_reject(CS_PT_UUID, bad[i]);
	expect_reject(CS_PT_UUID, vbin(raw, 15));
	expect_reject(CS_PT_UUID, vint(1));
}

/* ---- numeric ----------------------------------------------------------------------------- */

static void numeric_forms(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"0", "0"},
		{"-0", "0"},
		{"+0.000", "0"},
		{"0e10", "0"},
		{"-0.0e-5", "0"},
		{"00012.3400", "12.34"},
		{"-00012.3400e2", "-1234"},
		{"1e3", "1000"},
		{"1E+3", "1000"},
		{"1.5e-3", "0.0015"},
		{".5", "0.5"},
		{"5.", "5"},
		{"+7", "7"},
		{"100", "100"},
		{"1000.000", "1000"},
		{"0.001", "0.001"},
		{"123.456e1", "1234.56"},
		{"123.456e-5", "0.00123456"},
		{"-1.0", "-1"},
		{"12345678901234567890.12345678901234567890",
			"12345678901234567890.1234567890123456789"},
		{"NaN", "NaN"},
		{"nan", "NaN"},
		{"Infinity", "Infinity"},
		{"-Infinity", "-Infinity"},
		{"+inf", "Infinity"},
		{"-INF", "-Infinity"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		expect_both(CS_PT_NUMERIC, cases[i].in, cases[i].want);
		/* The canonical text is accepted and a fixed point. */
		expect_text(CS_PT_NUMERIC, cases[i].want, cases[i].want);
	}
	expect_canon(CS_PT_NUMERIC, vint(42), "42");
	expect_canon(CS_PT_NUMERIC, vint(-42), "-42");
	expect_canon(CS_PT_NUMERIC, vint(0), "0");
	expect_canon(CS_PT_NUMERIC, vint(INT64_MIN), "-9223372036854775808");
	expect_canon(CS_PT_NUMERIC, vflt(0.1), "0.1");
	expect_canon(CS_PT_NUMERIC, vflt(-0.0), "0");
	expect_canon(CS_PT_NUMERIC, vflt(12.5), "12.5");
	expect_canon(CS_PT_NUMERIC, vflt(1e-5), "0.00001");
	expect_canon(CS_PT_NUMERIC, vflt(NAN), "NaN");
	expect_canon(CS_PT_NUMERIC, vflt(-INFINITY), "-Infinity");
	expect_canon(CS_PT_NUMERIC, vnil(), "~");
	char big[400] = "1";
	memset(big + 1, '0', 300);
	big[301] = '\0';
	expect_canon(CS_PT_NUMERIC, vflt(1e300), big);
	expect_text(CS_PT_NUMERIC, "1e300", big);
	/* Int and text forms of one value agree. */
	expect_canon(CS_PT_NUMERIC, vint(1500), text1(CS_PT_NUMERIC, "1500.00"));
	const char *bad[] = {"", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", " 1", "1 ", "0x10",
		"1e1001", "1e-1001", "-NaN", "1,5", "abc", "Infinit", "1_000", NULL};
	for (int i = 0; bad[i]; i++)
		expect_str_reject(CS_PT_NUMERIC, bad[i]);
	expect_reject(CS_PT_NUMERIC, vbool(true));
	expect_reject(CS_PT_NUMERIC, vbin("1", 1));
	expect_reject(CS_PT_NUMERIC, vts(1, 0));
}

/* ---- date -------------------------------------------------------------------------------- */

static void date_forms(void **state)
{
	expect_both(CS_PT_DATE, "2024-01-02", "2024-01-02");
	expect_both(CS_PT_DATE, "2024-02-29", "2024-02-29");
	expect_both(CS_PT_DATE, "2000-02-29", "2000-02-29");
	expect_both(CS_PT_DATE, "0001-01-01", "0001-01-01");
	expect_both(CS_PT_DATE, "0044-03-15 BC", "0044-03-15BC");
	expect_both(CS_PT_DATE, "0001-02-29 BC", "0001-02-29BC"); /* 1 BC is a leap year */
	expect_both(CS_PT_DATE, "4714-11-24 BC", "4714-11-24BC");
	expect_both(CS_PT_DATE, "10000-01-01", "10000-01-01");
	expect_both(CS_PT_DATE, "5874897-12-31", "5874897-12-31");
	expect_both(CS_PT_DATE, "infinity", "infinity");
	expect_both(CS_PT_DATE, "-infinity", "-infinity");
	expect_both(CS_PT_DATE, "Infinity", "infinity");
	expect_canon(CS_PT_DATE, vnil(), "~");
	const char *bad[] = {"", "2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01",
		"2024-00-10", "2024-01-00", "2024-1-2", "20240102", "24-01-02", "0000-01-01",
		"2024-01-02 00:00:00", "2024-01-02 ", " 2024-01-02", "2024/01/02", "4714-11-23 BC",
		"5874898-01-01", "0002-02-29 BC", "02024-01-01", "inf", NULL};
	for (int i = 0; bad[i]; i++)
		expect_str_reject(CS_PT_DATE, bad[i]);
	expect_reject(CS_PT_DATE, vint(19000));
	expect_reject(CS_PT_DATE, vts(0, 0));
	expect_reject(CS_PT_DATE, vflt(1));
}

/* ---- timestamptz ------------------------------------------------------------------------- */

static void ts_forms(void **state)
{
	const char *us = "1704164645123456"; /* 2024-01-02 03:04:05.123456 UTC */
	expect_canon(CS_PT_TIMESTAMPTZ, vts(1704164645, 123456000), us);
	expect_canon(CS_PT_TIMESTAMPTZ, vint(1704164645123456), us);
	const char *good[] = {"2024-01-02 03:04:05.123456+00", "2024-01-02T03:04:05.123456Z",
		"2024-01-02t03:04:05.123456z", "2024-01-02T04:04:05.123456+01:00",
		"2024-01-02T04:04:05.123456+0100", "2024-01-02T04:04:05.123456+01",
		"2024-01-01 22:04:05.123456-05", "2024-01-02 08:34:05.123456+05:30",
		"2024-01-02 08:34:05.123456+05:30:00", "2024-01-02 03:04:05.1234560000+00", NULL};
	for (int i = 0; good[i]; i++)
		expect_both(CS_PT_TIMESTAMPTZ, good[i], us);
	expect_both(CS_PT_TIMESTAMPTZ, "2024-01-02 03:04:05+00", "1704164645000000");
	expect_both(CS_PT_TIMESTAMPTZ, "2024-01-02 03:04:05.5+00", "1704164645500000");
	expect_both(CS_PT_TIMESTAMPTZ, "1970-01-01 00:00:00+00", "0");
	expect_both(CS_PT_TIMESTAMPTZ, "1969-12-31 23:59:59.999999+00", "-1");
	expect_both(CS_PT_TIMESTAMPTZ, "0001-12-31 23:59:59+00 BC", "-62135596801000000");
	expect_both(CS_PT_TIMESTAMPTZ, "4714-11-24 00:00:00+00 BC", "-210866803200000000");
	expect_both(CS_PT_TIMESTAMPTZ, "infinity", "infinity");
	expect_both(CS_PT_TIMESTAMPTZ, "-infinity", "-infinity");
	expect_both(CS_PT_TIMESTAMPTZ, "+Infinity", "infinity");
	expect_canon(CS_PT_TIMESTAMPTZ, vts(INT64_MAX, 0), "infinity");
	expect_canon(CS_PT_TIMESTAMPTZ, vts(INT64_MIN, 0), "-infinity");
	expect_canon(CS_PT_TIMESTAMPTZ, vint(INT64_MAX), "infinity");
	expect_canon(CS_PT_TIMESTAMPTZ, vint(INT64_MIN), "-infinity");
	expect_canon(CS_PT_TIMESTAMPTZ, vts(-1, 999999000), "-1");
	expect_canon(CS_PT_TIMESTAMPTZ, vint(INT64_MAX - 1), "9223372036854775806");
	expect_canon(CS_PT_TIMESTAMPTZ, vnil(), "~");
	/* The last microsecond that fits an int64 (INT64_MAX itself means infinity). */
	expect_both(CS_PT_TIMESTAMPTZ, "294247-01-10 04:00:54.775806+00", "9223372036854775806");
	expect_str_reject(CS_PT_TIMESTAMPTZ, "294247-01-10 04:00:54.775807+00");
	expect_str_reject(CS_PT_TIMESTAMPTZ, "294276-12-31 23:59:59+00");
	expect_str_reject(CS_PT_TIMESTAMPTZ, "4714-11-23 23:59:59+00 BC");
	expect_reject(CS_PT_TIMESTAMPTZ, vint(-210866803200000001));
	expect_reject(CS_PT_TIMESTAMPTZ, vts(1, 123456789));
	expect_reject(CS_PT_TIMESTAMPTZ, vts(1, 1000000000));
	expect_reject(CS_PT_TIMESTAMPTZ, vts(INT64_MAX, 1000));
	expect_reject(CS_PT_TIMESTAMPTZ, vts(INT64_MAX - 1, 0));
	expect_reject(CS_PT_TIMESTAMPTZ, vflt(1.5));
	expect_reject(CS_PT_TIMESTAMPTZ, vbool(true));
	expect_reject(CS_PT_TIMESTAMPTZ, vbin("x", 1));
	const char *bad[] = {"", "2024-01-02", "2024-01-02 03:04:05", "2024-01-02T03:04:05",
		"2024-13-01 00:00:00Z", "2024-02-30 00:00:00Z", "2024-01-02 24:00:00Z",
		"2024-01-02 23:60:00Z", "2024-01-02 23:59:60Z", "2024-01-02 03:04:05.1234567Z",
		"2024-01-02 03:04:05.Z", "2024-01-02 03:04:05+16:00", "2024-01-02 03:04:05+01:60",
		"2024-01-02 03:04:05+1", "2024-01-02 03:04:05+012", "2024-01-02 03:04:05Z junk",
		"2024-1-2 03:04:05Z", "2024-01-02 3:04:05Z", "2024-01-02_03:04:05Z",
		" 2024-01-02 03:04:05Z", "2024-01-02 03:04:05ZZ", "1704164645", "now", "inf", NULL};
	for (int i = 0; bad[i]; i++)
		expect_str_reject(CS_PT_TIMESTAMPTZ, bad[i]);
	char err[256];
	size_t len;
	char out[64];
	cs_param_type t = CS_PT_TIMESTAMPTZ;
	cs_query_def q = make_query(1, &t, (const char *const[]){"at"});
	cs_value v = vts(1, 1);
	assert_int_equal(cs_params_canon(&q, &v, 1, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_non_null(strstr(err, "multiple of 1000"));
	assert_non_null(strstr(err, "parameter 1 (at): expected timestamptz"));
}

/* PostgreSQL's ISO output of a UTC timestamp: fraction trimmed of trailing zeros, "+00". */
static void pg_ts_text(int64_t us, int offset_min, char *buf, size_t len, bool iso_t)
{
	int64_t sec = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	int64_t frac = us - sec * 1000000;
	time_t local = (time_t)(sec + (int64_t)offset_min * 60);
	struct tm tm;
	gmtime_r(&local, &tm);
	char f[16] = "";
	if (frac != 0) {
		snprintf(f, sizeof f, ".%06d", (int)frac);
		size_t k = strlen(f);
		while (f[k - 1] == '0')
			f[--k] = '\0';
	}
	char z[16];
	int a = offset_min < 0 ? -offset_min : offset_min;
	if (offset_min == 0)
		snprintf(z, sizeof z, iso_t ? "Z" : "+00");
	else
		snprintf(z, sizeof z, "%c%02d:%02d", offset_min < 0 ? '-' : '+', a / 60, a % 60);
	snprintf(buf, len, "%04d-%02d-%02d%c%02d:%02d:%02d%s%s", tm.tm_year + 1900, tm.tm_mon + 1,
		tm.tm_mday, iso_t ? 'T' : ' ', tm.tm_hour, tm.tm_min, tm.tm_sec, f, z);
}

/* Timestamps with and without fractions and offsets: wire ts, wire int and every text form
 * (rendered independently with gmtime) give the same microseconds. */
static void ts_invariant(void **state)
{
	const int offsets[] = {0, 60, -300, 330, 345, -570, 840, -720};
	for (int i = 0; i < 20000; i++) {
		/* Years 0001..9999 AD. */
		int64_t lo = -62135596800LL, hi = 253402300799LL;
		int64_t sec = lo + (int64_t)(rnd() % (uint64_t)(hi - lo));
		int64_t frac = 0;
		switch (i % 3) {
		case 0:
			frac = (int64_t)(rnd() % 1000000);
			break;
		case 1:
			frac = (int64_t)(rnd() % 1000) * 1000;
			break;
		default:
			break;
		}
		int64_t us = sec * 1000000 + frac;
		char want[32], s[64];
		snprintf(want, sizeof want, "%" PRId64, us);
		expect_canon(CS_PT_TIMESTAMPTZ, vint(us), want);
		expect_canon(CS_PT_TIMESTAMPTZ, vts(sec, (uint32_t)frac * 1000), want);
		pg_ts_text(us, 0, s, sizeof s, false);
		expect_both(CS_PT_TIMESTAMPTZ, s, want);
		pg_ts_text(us, 0, s, sizeof s, true);
		expect_both(CS_PT_TIMESTAMPTZ, s, want);
		int off = offsets[rnd() % (sizeof offsets / sizeof offsets[0])];
		if (sec + off * 60 > lo && sec + off * 60 < hi) {
			pg_ts_text(us, off, s, sizeof s, i % 2 == 0);
			expect_both(CS_PT_TIMESTAMPTZ, s, want);
		}
	}
}

/* ---- several parameters, counts, NULLs, errors, limits ------------------------------------ */

static void multi_params(void **state)
{
	cs_param_type types[] = {CS_PT_INT8, CS_PT_TEXT, CS_PT_BOOL, CS_PT_FLOAT8};
	const char *names[] = {"id", "name", "flag", "score"};
	cs_query_def q = make_query(4, types, names);
	cs_value in[4] = {vint(42), vstr("bob x"), vbool(true), vflt(0.5)};
	char out[CS_CANON_MAX + 1], err[256] = "";
	size_t len = 0;
	assert_int_equal(cs_params_canon(&q, in, 4, out, sizeof out, &len, err, sizeof err), 0);
	assert_string_equal(out, "42:bob%20x:t:0.5");
	assert_int_equal(len, strlen(out));

	/* The invalidator's concatenation gives the same text. */
	const char *texts[] = {"42", "bob x", "t", "0.5"};
	char inv[CS_CANON_MAX + 1];
	size_t ilen = 0;
	for (int i = 0; i < 4; i++)
		assert_int_equal(cs_params_canon_append_text(types[i], false, texts[i],
					 strlen(texts[i]), i, inv, sizeof inv, &ilen),
			0);
	assert_string_equal(inv, out);
	assert_int_equal(ilen, len);

	/* NULLs on both sides. */
	in[1] = vnil();
	assert_int_equal(cs_params_canon(&q, in, 4, out, sizeof out, &len, err, sizeof err), 0);
	assert_string_equal(out, "42:~:t:0.5");
	ilen = 0;
	for (int i = 0; i < 4; i++)
		assert_int_equal(
			cs_params_canon_append_text(types[i], i == 1, i == 1 ? NULL : texts[i],
				i == 1 ? 0 : strlen(texts[i]), i, inv, sizeof inv, &ilen),
			0);
	assert_string_equal(inv, "42:~:t:0.5");

	/* Empty text and NULL differ; empty text params still separate. */
	in[1] = vstr("");
	assert_int_equal(cs_params_canon(&q, in, 4, out, sizeof out, &len, err, sizeof err), 0);
	assert_string_equal(out, "42::t:0.5");

	/* Errors name the parameter (1-based), its name, the type and the value. */
	in[0] = vstr("abc");
	assert_int_equal(cs_params_canon(&q, in, 4, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_string_equal(err, "parameter 1 (id): expected int8, got \"abc\"");
	in[0] = vint(42);
	in[3] = vbool(true);
	assert_int_equal(cs_params_canon(&q, in, 4, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_string_equal(err, "parameter 4 (score): expected float8, got bool true");
	in[3] = vbin("xy", 2);
	assert_int_equal(cs_params_canon(&q, in, 4, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_string_equal(err, "parameter 4 (score): expected float8, got bin (2 bytes)");
	in[3] = vflt(0.5);

	/* Wrong count, both ways. */
	assert_int_equal(cs_params_canon(&q, in, 3, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_string_equal(err, "query q: expected 4 parameters, got 3");
	cs_query_def q1 = make_query(1, types, names);
	assert_int_equal(cs_params_canon(&q1, in, 2, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_string_equal(err, "query q: expected 1 parameter, got 2");

	/* Zero parameters: "". */
	cs_query_def q0 = make_query(0, types, names);
	assert_int_equal(cs_params_canon(&q0, in, 0, out, sizeof out, &len, err, sizeof err), 0);
	assert_string_equal(out, "");
	assert_int_equal(len, 0);

	/* Messages for odd values are bounded and escaped. */
	cs_param_type it = CS_PT_INT2;
	cs_query_def qi = make_query(1, &it, names);
	char longs[300];
	memset(longs, 'x', sizeof longs - 1);
	longs[sizeof longs - 1] = '\0';
	longs[0] = '"';
	longs[1] = '\n';
	cs_value lv = vstr(longs);
	assert_int_equal(cs_params_canon(&qi, &lv, 1, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_true(strlen(err) < 120);
	assert_non_null(strstr(err, "\\x22\\x0a"));
	lv = vint(70000);
	assert_int_equal(cs_params_canon(&qi, &lv, 1, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_string_equal(err, "parameter 1 (id): expected int2, got int 70000 (out of range)");
	/* A tiny err buffer is fine; errlen 0 too. */
	char tiny[8];
	assert_int_equal(cs_params_canon(&qi, &lv, 1, out, sizeof out, &len, tiny, sizeof tiny),
		-CS_ERR_BAD_PARAMS);
	assert_int_equal(strlen(tiny), 7);
	assert_int_equal(
		cs_params_canon(&qi, &lv, 1, out, sizeof out, &len, NULL, 0), -CS_ERR_BAD_PARAMS);
	/* An unknown type in a definition is refused, not crashed on. */
	cs_param_type ut = CS_PT__COUNT;
	cs_query_def qu = make_query(1, &ut, names);
	lv = vint(1);
	assert_int_equal(cs_params_canon(&qu, &lv, 1, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	assert_int_equal(cs_params_canon_append_text(ut, false, "1", 1, 0, out, sizeof out, &len),
		-CS_ERR_BAD_PARAMS);
}

static void limits(void **state)
{
	static char big[4096];
	memset(big, 'a', sizeof big);
	cs_param_type t = CS_PT_TEXT;
	cs_query_def q = make_query(1, &t, NULL);
	char out[CS_CANON_MAX + 1], err[128];
	size_t len = 0;

	cs_value v = vstrn(big, CS_CANON_MAX);
	assert_int_equal(cs_params_canon(&q, &v, 1, out, sizeof out, &len, err, sizeof err), 0);
	assert_int_equal(len, CS_CANON_MAX);
	v = vstrn(big, CS_CANON_MAX + 1);
	assert_int_equal(cs_params_canon(&q, &v, 1, out, sizeof out, &len, err, sizeof err), 1);
	assert_int_equal(len, CS_CANON_MAX + 1);
	/* A bigger buffer does not raise the limit: keys are the same on every side. */
	static char huge[8192];
	assert_int_equal(cs_params_canon(&q, &v, 1, huge, sizeof huge, &len, err, sizeof err), 1);
	/* Escaping counts: 342 ':' are 1026 bytes. */
	static char colons[342];
	memset(colons, ':', sizeof colons);
	v = vstrn(colons, sizeof colons);
	assert_int_equal(cs_params_canon(&q, &v, 1, out, sizeof out, &len, err, sizeof err), 1);
	assert_int_equal(len, 1026);
	/* A small caller buffer: "too long" for this caller. */
	v = vstr("12345");
	assert_int_equal(cs_params_canon(&q, &v, 1, out, 5, &len, err, sizeof err), 1);
	assert_int_equal(cs_params_canon(&q, &v, 1, out, 6, &len, err, sizeof err), 0);
	assert_string_equal(out, "12345");
	assert_int_equal(cs_params_canon(&q, &v, 1, NULL, 0, &len, err, sizeof err), 1);

	/* A bad value wins over "too long". */
	cs_param_type t2[] = {CS_PT_TEXT, CS_PT_INT4};
	cs_query_def q2 = make_query(2, t2, NULL);
	cs_value in[2] = {vstrn(big, sizeof big), vstr("x")};
	assert_int_equal(cs_params_canon(&q2, in, 2, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);

	/* The invalidator side: same limit, *len untouched on 1. */
	len = 0;
	assert_int_equal(cs_params_canon_append_text(CS_PT_TEXT, false, big, CS_CANON_MAX - 2, 0,
				 out, sizeof out, &len),
		0);
	assert_int_equal(len, CS_CANON_MAX - 2);
	assert_int_equal(
		cs_params_canon_append_text(CS_PT_INT4, false, "7", 1, 1, out, sizeof out, &len),
		0);
	assert_int_equal(len, CS_CANON_MAX);
	assert_int_equal(
		cs_params_canon_append_text(CS_PT_INT4, true, NULL, 0, 2, out, sizeof out, &len),
		1);
	assert_int_equal(len, CS_CANON_MAX);
	len = 0;
	assert_int_equal(
		cs_params_canon_append_text(CS_PT_INT4, false, "7", 1, 0, out, 0, &len), 1);
	/* Unparsable text. */
	assert_int_equal(
		cs_params_canon_append_text(CS_PT_INT4, false, "x", 1, 0, out, sizeof out, &len),
		-CS_ERR_BAD_PARAMS);
	assert_int_equal(len, 0);
	/* A numeric whose expansion passes the limit is valid but not cacheable. */
	cs_param_type nt = CS_PT_NUMERIC;
	cs_query_def qn = make_query(1, &nt, NULL);
	v = vstr("1e1000");
	assert_int_equal(cs_params_canon(&qn, &v, 1, out, sizeof out, &len, err, sizeof err), 0);
	assert_int_equal(len, 1001);
	v = vstr("1e1000.5");
	assert_int_equal(cs_params_canon(&qn, &v, 1, out, sizeof out, &len, err, sizeof err),
		-CS_ERR_BAD_PARAMS);
	v = vstr("123456789e1000");
	assert_int_equal(cs_params_canon(&qn, &v, 1, out, sizeof out, &len, err, sizeof err), 0);
	assert_int_equal(len, 1009);
	v = vstr("12345678901234567890123456789012345e1000");
	assert_int_equal(cs_params_canon(&qn, &v, 1, out, sizeof out, &len, err, sizeof err), 1);
	assert_int_equal(len, 1035);
}

/* ---- cs_params_pg ------------------------------------------------------------------------ */

static void pg_values(void **state)
{
	cs_param_type types[] = {CS_PT_INT8, CS_PT_TEXT, CS_PT_BYTEA, CS_PT_BYTEA, CS_PT_BOOL,
		CS_PT_TEXT, CS_PT_FLOAT8, CS_PT_TIMESTAMPTZ, CS_PT_DATE, CS_PT_NUMERIC, CS_PT_UUID,
		CS_PT_FLOAT4, CS_PT_TIMESTAMPTZ, CS_PT_DATE, CS_PT_INT2, CS_PT_TIMESTAMPTZ};
	cs_query_def q = make_query(16, types, NULL);
	char text[] = "a\xc3\xa9:b";
	cs_value in[16] = {vstr("042"), vstr(text), vbin("\x00\x01\xff", 3), vstr("\\x00AB"),
		vstr("TRUE"), vnil(), vflt(0.1), vts(1704164645, 123456000), vstr("0044-03-15 BC"),
		vstr("-000.50e1"), vstr("{A0EEBC999C0B4EF8BB6D6BB9BD380A11}"), vflt(1.0 / 3),
		vstr("0001-12-31 23:59:59.5+00 BC"), vstr("infinity"), vint(-5), vint(INT64_MIN)};
	char err[256] = "";
	cs_pg_params *p = cs_params_pg(&q, in, 16, err, sizeof err);
	assert_non_null(p);
	assert_int_equal(p->n, 16);
	static const struct {
		const char *text; /* NULL = SQL NULL */
		int format;
	} want[16] = {
		{"42", 0},
		{NULL, 1}, /* checked below: binary */
		{NULL, 1},
		{NULL, 1},
		{"t", 0},
		{NULL, 1},
		{"0.1", 0},
		{"2024-01-02 03:04:05.123456+00", 0},
		{"0044-03-15 BC", 0},
		{"-5", 0},
		{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 0},
		{"0.33333334", 0},
		{"0001-12-31 23:59:59.500000+00 BC", 0},
		{"infinity", 0},
		{"-5", 0},
		{"-infinity", 0},
	};
	for (int i = 0; i < 16; i++) {
		assert_int_equal(p->formats[i], want[i].format);
		if (want[i].text != NULL) {
			assert_non_null(p->values[i]);
			assert_string_equal(p->values[i], want[i].text);
		}
	}
	assert_int_equal(p->lengths[1], (int)strlen(text));
	assert_memory_equal(p->values[1], text, strlen(text));
	assert_int_equal(p->lengths[2], 3);
	assert_memory_equal(p->values[2], "\x00\x01\xff", 3);
	assert_int_equal(p->lengths[3], 2);
	assert_memory_equal(p->values[3], "\x00\xab", 2);
	assert_null(p->values[5]);
	/* The values live in the block, not in the request. */
	text[0] = 'z';
	assert_int_equal(p->values[1][0], 'a');
	free(p);

	/* Errors: same messages as the canonical path, NULL result. */
	in[0] = vstr("x");
	err[0] = '\0';
	assert_null(cs_params_pg(&q, in, 16, err, sizeof err));
	assert_string_equal(err, "parameter 1 (p): expected int8, got \"x\"");
	assert_null(cs_params_pg(&q, in, 15, err, sizeof err));
	assert_non_null(strstr(err, "expected 16 parameters, got 15"));

	/* No parameters: a valid empty block. */
	cs_query_def q0 = make_query(0, types, NULL);
	p = cs_params_pg(&q0, NULL, 0, err, sizeof err);
	assert_non_null(p);
	assert_int_equal(p->n, 0);
	free(p);
}

/* The value sent to PostgreSQL, read back as PostgreSQL text, gives the same key: what runs
 * is what the key names. */
static void pg_roundtrip(void **state)
{
	cs_param_type t = CS_PT_TIMESTAMPTZ;
	cs_query_def q = make_query(1, &t, NULL);
	char err[256];
	for (int i = 0; i < 5000; i++) {
		int64_t us;
		switch (i % 3) {
		case 0:
			us = (int64_t)(rnd() % 20000000000000000ull) - 10000000000000000LL;
			break;
		case 1:
			us = (int64_t)(rnd() >> 1);
			break;
		default:
			us = -210866803200000000LL + (int64_t)(rnd() % 210866803200000000ull);
			break;
		}
		if (us == INT64_MAX)
			continue;
		cs_value v = vint(us);
		cs_pg_params *p = cs_params_pg(&q, &v, 1, err, sizeof err);
		assert_non_null(p);
		char want[32];
		snprintf(want, sizeof want, "%" PRId64, us);
		expect_text(t, p->values[0], want);
		free(p);
	}
	/* Dates and numerics too. */
	cs_param_type ts2[] = {CS_PT_DATE, CS_PT_NUMERIC, CS_PT_FLOAT8};
	cs_query_def q2 = make_query(3, ts2, NULL);
	const char *dates[] = {
		"2024-02-29", "0001-01-01 BC", "4714-11-24 BC", "5874897-12-31", "-infinity"};
	const char *nums[] = {"0", "-0.5e-3", "12e2", "NaN", "-Infinity"};
	const double fl[] = {0.1, -0.0, 1e300, NAN, -INFINITY};
	for (int i = 0; i < 5; i++) {
		cs_value in[3] = {vstr(dates[i]), vstr(nums[i]), vflt(fl[i])};
		char k1[CS_CANON_MAX + 1], k2[CS_CANON_MAX + 1];
		size_t l1 = 0, l2 = 0;
		assert_int_equal(
			cs_params_canon(&q2, in, 3, k1, sizeof k1, &l1, err, sizeof err), 0);
		cs_pg_params *p = cs_params_pg(&q2, in, 3, err, sizeof err);
		assert_non_null(p);
		for (int j = 0; j < 3; j++)
			assert_int_equal(cs_params_canon_append_text(ts2[j], false, p->values[j],
						 strlen(p->values[j]), j, k2, sizeof k2, &l2),
				0);
		assert_string_equal(k1, k2);
		free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bool_forms),
		cmocka_unit_test(int_forms),
		cmocka_unit_test(float_forms),
		cmocka_unit_test(float_invariant),
		cmocka_unit_test(text_forms),
		cmocka_unit_test(bytea_forms),
		cmocka_unit_test(uuid_forms),
		cmocka_unit_test(numeric_forms),
		cmocka_unit_test(date_forms),
		cmocka_unit_test(ts_forms),
		cmocka_unit_test(ts_invariant),
		cmocka_unit_test(multi_params),
		cmocka_unit_test(limits),
		cmocka_unit_test(pg_values),
		cmocka_unit_test(pg_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
