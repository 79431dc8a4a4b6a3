/* test_decanon.c - unit tests for cachesvc/backend/decanon.c: for values of every parameter type,
 * canon(decanon(canon(x))) == canon(x), the wire types it picks, and what it rejects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decanon.h"
#include "params.h"

/* ---- Fixtures ---------------------------------------------------------------------------- */

static cs_query_def make_query(int n, const cs_param_type *types)
{
	cs_query_def q;
	memset(&q, 0, sizeof q);
	snprintf(q.name, sizeof q.name, "q");
	q.nparams = n;
	for (int i = 0; i < n; i++) {
		q.params[i].type = types[i];
		snprintf(q.params[i].name, sizeof q.params[i].name, "p%d", i + 1);
	}
	return q;
}

static cs_value vnil(void)
{
	return (cs_value){.type = CS_V_NIL};
}

static cs_value vbool(bool b)
{
	return (cs_value){.type = CS_V_BOOL, .u.b = b};
}

static cs_value vint(int64_t i)
{
	return (cs_value){.type = CS_V_INT, .u.i = i};
}

static cs_value vflt(double f)
{
	return (cs_value){.type = CS_V_FLOAT, .u.f = f};
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

/* Deterministic xorshift64*, so a failure reproduces. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717u;
}

/* canon(in) -> c1; decanon(c1) -> w; canon(w) must be c1, and cs_params_pg must take w.
 * Returns false (and skips) when `in` itself is not a valid value. Writes the decoded
 * values into out (which must stay valid with buf). */
static bool roundtrip_into(
        const cs_query_def *q, const cs_value *in, cs_value *w, char *buf, size_t buflen)
{
	char c1[CS_CANON_MAX + 1], c2[CS_CANON_MAX + 1], err[256];
	size_t l1 = 0, l2 = 0;
	int rc = cs_params_canon(q, in, (uint32_t)q->nparams, c1, sizeof c1, &l1, err, sizeof err);
	if (rc != 0)
		return false;
	rc = cs_params_decanon(q, c1, l1, w, buf, buflen, err, sizeof err);
	if (rc != 0)
		fail_msg("decanon(\"%s\") failed: %s", c1, err);
	rc = cs_params_canon(q, w, (uint32_t)q->nparams, c2, sizeof c2, &l2, err, sizeof err);
	if (rc != 0)
		fail_msg("canon(decanon(\"%s\")) failed: %s", c1, err);
	if (l1 != l2 || memcmp(c1, c2, l1) != 0)
		fail_msg("canon(decanon(\"%s\")) = \"%s\"", c1, c2);
	cs_pg_params *p = cs_params_pg(q, w, (uint32_t)q->nparams, err, sizeof err);
	if (p == NULL)
		fail_msg("cs_params_pg refused decanon(\"%s\"): %s", c1, err);
	free(p);
	return true;
}

static bool roundtrip1(cs_param_type t, cs_value in, cs_value *w)
{
	static char buf[2 * CS_CANON_MAX + 64];
	cs_query_def q = make_query(1, &t);
	return roundtrip_into(&q, &in, w, buf, sizeof buf);
}

static void must_roundtrip(cs_param_type t, cs_value in)
{
	cs_value w;
	if (!roundtrip1(t, in, &w))
		fail_msg("test value of type %d is not valid", (int)t);
}

/* ---- Per type ---------------------------------------------------------------------------- */

static void nil_and_bool(void **state)
{
	(void)state;
	cs_value w;
	for (int t = 0; t < CS_PT__COUNT; t++) {
		assert_true(roundtrip1((cs_param_type)t, vnil(), &w));
		assert_int_equal(w.type, CS_V_NIL);
	}
	assert_true(roundtrip1(CS_PT_BOOL, vbool(true), &w));
	assert_int_equal(w.type, CS_V_BOOL);
	assert_true(w.u.b);
	assert_true(roundtrip1(CS_PT_BOOL, vstr("FALSE"), &w));
	assert_int_equal(w.type, CS_V_BOOL);
	assert_false(w.u.b);
}

static void ints(void **state)
{
	(void)state;
	cs_value w;
	const int64_t fixed[] = {0, 1, -1, 42, 32767, -32768, 2147483647, -2147483647 - 1,
	        INT64_MAX, INT64_MIN, 1000000007};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		assert_true(roundtrip1(CS_PT_INT8, vint(fixed[i]), &w));
		assert_int_equal(w.type, CS_V_INT);
		assert_true(w.u.i == fixed[i]);
		roundtrip1(CS_PT_INT4, vint(fixed[i]), &w); /* out of range: skipped */
		roundtrip1(CS_PT_INT2, vint(fixed[i]), &w);
	}
	must_roundtrip(CS_PT_INT4, vstr("-000123"));
	for (int i = 0; i < 2000; i++) {
		int64_t v = (int64_t)rnd() >> (rnd() % 64);
		must_roundtrip(CS_PT_INT8, vint(v));
		if (v >= INT32_MIN && v <= INT32_MAX)
			must_roundtrip(CS_PT_INT4, vint(v));
		if (v >= INT16_MIN && v <= INT16_MAX)
			must_roundtrip(CS_PT_INT2, vint(v));
	}
}

static void floats(void **state)
{
	(void)state;
	const double fixed[] = {0.0, -0.0, 0.1, 1e300, -1e-300, 42, 4.9e-324,
	        1.7976931348623157e308, NAN, INFINITY, -INFINITY, 3.14159, 1.0 / 3, 123456789.0,
	        1e16, 1e-5};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		must_roundtrip(CS_PT_FLOAT8, vflt(fixed[i]));
		cs_value w;
		roundtrip1(CS_PT_FLOAT4, vflt(fixed[i]), &w); /* 1e300 overflows float4 */
		roundtrip1(CS_PT_NUMERIC, vflt(fixed[i]), &w);
	}
	must_roundtrip(CS_PT_FLOAT4, vstr("-inf"));
	must_roundtrip(CS_PT_FLOAT4, vstr("1.00000001"));
	for (int i = 0; i < 3000; i++) {
		uint64_t bits = rnd();
		double d;
		memcpy(&d, &bits, sizeof d);
		must_roundtrip(CS_PT_FLOAT8, vflt(d));
		float f;
		uint32_t b32 = (uint32_t)bits;
		memcpy(&f, &b32, sizeof f);
		must_roundtrip(CS_PT_FLOAT4, vflt((double)f));
	}
}

static void text(void **state)
{
	(void)state;
	cs_value w;
	assert_true(roundtrip1(CS_PT_TEXT, vstr("hello world: ~50% off/é"), &w));
	assert_int_equal(w.type, CS_V_STR);
	assert_int_equal(w.u.s.len, strlen("hello world: ~50% off/é"));
	assert_memory_equal(w.u.s.p, "hello world: ~50% off/é", w.u.s.len);
	assert_true(roundtrip1(CS_PT_TEXT, vstr(""), &w));
	assert_int_equal(w.u.s.len, 0);
	must_roundtrip(CS_PT_TEXT, vstr("a:b:c~"));
	must_roundtrip(CS_PT_TEXT, vstr("%41%%"));
	must_roundtrip(CS_PT_TEXT, vstr("日本語 \t\n\x7f"));
	/* Random valid UTF-8. */
	for (int i = 0; i < 1000; i++) {
		char s[200];
		size_t n = 0, want = rnd() % 40;
		while (n + 4 < sizeof s && want-- > 0) {
			uint32_t cp;
			do
				cp = (uint32_t)(rnd() % (rnd() % 2 ? 0x80 : 0x110000));
			while (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF));
			if (cp < 0x80) {
				s[n++] = (char)cp;
			} else if (cp < 0x800) {
				s[n++] = (char)(0xC0 | cp >> 6);
				s[n++] = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				s[n++] = (char)(0xE0 | cp >> 12);
				s[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
				s[n++] = (char)(0x80 | (cp & 0x3F));
			} else {
				s[n++] = (char)(0xF0 | cp >> 18);
				s[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
				s[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
				s[n++] = (char)(0x80 | (cp & 0x3F));
			}
		}
		assert_true(roundtrip1(CS_PT_TEXT, vstrn(s, n), &w));
		assert_int_equal(w.u.s.len, n);
		assert_memory_equal(w.u.s.p, s, n);
	}
}

static void bytea(void **state)
{
	(void)state;
	cs_value w;
	const uint8_t bytes[] = {0, 1, 0x7f, 0x80, 0xff, ':', '~', '%'};
	assert_true(roundtrip1(CS_PT_BYTEA, vbin(bytes, sizeof bytes), &w));
	assert_int_equal(w.type, CS_V_BIN);
	assert_int_equal(w.u.s.len, sizeof bytes);
	assert_memory_equal(w.u.s.p, bytes, sizeof bytes);
	assert_true(roundtrip1(CS_PT_BYTEA, vbin("", 0), &w));
	assert_int_equal(w.type, CS_V_BIN);
	assert_int_equal(w.u.s.len, 0);
	must_roundtrip(CS_PT_BYTEA, vstr("\\xDEADbeef"));
	for (int i = 0; i < 500; i++) {
		uint8_t b[100];
		size_t n = rnd() % sizeof b;
		for (size_t k = 0; k < n; k++)
			b[k] = (uint8_t)rnd();
		must_roundtrip(CS_PT_BYTEA, vbin(b, n));
	}
}

static void uuid_numeric(void **state)
{
	(void)state;
	must_roundtrip(CS_PT_UUID, vstr("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"));
	must_roundtrip(CS_PT_UUID, vstr("{a0eebc999c0b4ef8bb6d6bb9bd380a11}"));
	uint8_t raw[16];
	for (int i = 0; i < 200; i++) {
		for (int k = 0; k < 16; k++)
			raw[k] = (uint8_t)rnd();
		must_roundtrip(CS_PT_UUID, vbin(raw, 16));
	}
	const char *nums[] = {"0", "-0.000", "00012.3400", "-00012.3400e2", "1e-20", "1e20", "NaN",
	        "-Infinity", "inf", "123456789012345678901234567890.000000000000000000001", ".5",
	        "-.5e1", "9.99e-1000"};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
		must_roundtrip(CS_PT_NUMERIC, vstr(nums[i]));
	must_roundtrip(CS_PT_NUMERIC, vint(INT64_MIN));
	for (int i = 0; i < 1000; i++) {
		char s[80];
		snprintf(s, sizeof s, "%s%" PRIu64 ".%" PRIu64 "e%d", rnd() % 2 ? "-" : "",
		        rnd() % 100000000, rnd() % 1000, (int)(rnd() % 60) - 30);
		must_roundtrip(CS_PT_NUMERIC, vstr(s));
	}
}

static void dates_and_timestamps(void **state)
{
	(void)state;
	cs_value w;
	const char *dates[] = {"2024-02-29", "0001-01-01", "0001-01-01 BC", "4713-01-01 BC",
	        "5874897-12-31", "infinity", "-infinity", "1999-12-31"};
	for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++)
		must_roundtrip(CS_PT_DATE, vstr(dates[i]));
	assert_true(roundtrip1(CS_PT_DATE, vstr("0044-03-15 BC"), &w));
	assert_int_equal(w.type, CS_V_STR);
	assert_int_equal(w.u.s.len, strlen("0044-03-15 BC"));
	assert_memory_equal(w.u.s.p, "0044-03-15 BC", w.u.s.len);
	for (int i = 0; i < 1000; i++) {
		char s[40];
		bool bc = rnd() % 5 == 0; /* BC dates reach back to 4713 BC */
		snprintf(s, sizeof s, "%04d-%02d-%02d%s", (int)(rnd() % (bc ? 4713 : 99999)) + 1,
		        (int)(rnd() % 12) + 1, (int)(rnd() % 28) + 1, bc ? " BC" : "");
		must_roundtrip(CS_PT_DATE, vstr(s));
	}

	assert_true(roundtrip1(CS_PT_TIMESTAMPTZ, vts(1700000000, 123456000), &w));
	assert_int_equal(w.type, CS_V_INT);
	assert_true(w.u.i == 1700000000123456);
	must_roundtrip(CS_PT_TIMESTAMPTZ, vts(INT64_MAX, 0));
	must_roundtrip(CS_PT_TIMESTAMPTZ, vts(INT64_MIN, 0));
	must_roundtrip(CS_PT_TIMESTAMPTZ, vstr("2024-01-02 03:04:05.123456+05:30"));
	must_roundtrip(CS_PT_TIMESTAMPTZ, vstr("0100-01-01T00:00:00Z BC"));
	must_roundtrip(CS_PT_TIMESTAMPTZ, vstr("-infinity"));
	for (int i = 0; i < 2000; i++) {
		/* about 4300 BC .. 290000 AD, to the microsecond */
		int64_t us = (int64_t)(rnd() % 9200000000000000000u) - 200000000000000000;
		must_roundtrip(CS_PT_TIMESTAMPTZ, vint(us >> (rnd() % 40)));
	}
}

/* Many parameters of mixed types in one key: the ':' split must line up. */
static void mixed(void **state)
{
	(void)state;
	static char buf[2 * CS_CANON_MAX + 64];
	for (int round = 0; round < 500; round++) {
		cs_param_type types[CS_MAX_PARAMS];
		cs_value in[CS_MAX_PARAMS], w[CS_MAX_PARAMS];
		char strs[CS_MAX_PARAMS][16];
		int n = (int)(rnd() % CS_MAX_PARAMS) + 1;
		for (int i = 0; i < n; i++) {
			types[i] = (cs_param_type)(rnd() % CS_PT__COUNT);
			uint64_t r = rnd();
			switch (r % 9 == 0 ? -1 : (int)types[i]) {
			case -1:
				in[i] = vnil();
				break;
			case CS_PT_BOOL:
				in[i] = vbool(r & 16);
				break;
			case CS_PT_INT2:
			case CS_PT_INT4:
			case CS_PT_INT8:
				in[i] = vint((int64_t)(r >> 50) - 8000);
				break;
			case CS_PT_FLOAT4:
			case CS_PT_FLOAT8:
			case CS_PT_NUMERIC:
				in[i] = vflt((double)(int64_t)(r >> 20) / 1024.0);
				break;
			case CS_PT_TEXT:
				snprintf(strs[i], sizeof strs[i], ":~%c%" PRIu64,
				        (char)('a' + r % 26), r % 997);
				in[i] = vstr(strs[i]);
				break;
			case CS_PT_BYTEA:
				memcpy(strs[i], &r, 8);
				in[i] = vbin(strs[i], r % 9);
				break;
			case CS_PT_UUID:
				memcpy(strs[i], &r, 8);
				memcpy(strs[i] + 8, &r, 8);
				in[i] = vbin(strs[i], 16);
				break;
			case CS_PT_DATE:
				snprintf(strs[i], sizeof strs[i], "%04d-01-%02d%s",
				        (int)(r % 3000) + 1, (int)(r % 28) + 1,
				        r & 64 ? " BC" : "");
				in[i] = vstr(strs[i]);
				break;
			default:
				in[i] = vint((int64_t)(r >> 8) - (int64_t)(1ull << 55));
				break;
			}
		}
		cs_query_def q = make_query(n, types);
		assert_true(roundtrip_into(&q, in, w, buf, sizeof buf));
	}
}

/* ---- Rejections --------------------------------------------------------------------------- */

static int decanon1(cs_param_type t, const char *canon)
{
	cs_query_def q = make_query(1, &t);
	cs_value w[1];
	char buf[256], err[256];
	return cs_params_decanon(&q, canon, strlen(canon), w, buf, sizeof buf, err, sizeof err);
}

static void rejects(void **state)
{
	(void)state;
	const int bad = -CS_ERR_BAD_PARAMS;
	assert_int_equal(decanon1(CS_PT_INT8, "042"), bad);
	assert_int_equal(decanon1(CS_PT_INT8, "-0"), bad);
	assert_int_equal(decanon1(CS_PT_INT8, "+1"), bad);
	assert_int_equal(decanon1(CS_PT_INT8, "9223372036854775808"), bad);
	assert_int_equal(decanon1(CS_PT_INT8, "-9223372036854775808"), 0);
	assert_int_equal(decanon1(CS_PT_INT8, ""), bad);
	assert_int_equal(decanon1(CS_PT_BOOL, "true"), bad);
	assert_int_equal(decanon1(CS_PT_TEXT, "a b"), bad);
	assert_int_equal(decanon1(CS_PT_TEXT, "%41"), bad); /* a plain byte escaped */
	assert_int_equal(decanon1(CS_PT_TEXT, "%3a"), bad); /* lower-case hex */
	assert_int_equal(decanon1(CS_PT_TEXT, "%3"), bad);
	assert_int_equal(decanon1(CS_PT_TEXT, "%3A%7E"), 0);
	assert_int_equal(decanon1(CS_PT_BYTEA, "abc"), bad);
	assert_int_equal(decanon1(CS_PT_BYTEA, "AB"), bad);
	assert_int_equal(decanon1(CS_PT_UUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), bad);
	assert_int_equal(decanon1(CS_PT_NUMERIC, "1.50"), bad);
	assert_int_equal(decanon1(CS_PT_NUMERIC, "01"), bad);
	assert_int_equal(decanon1(CS_PT_NUMERIC, "1."), bad);
	assert_int_equal(decanon1(CS_PT_NUMERIC, "-0"), bad);
	assert_int_equal(decanon1(CS_PT_NUMERIC, "1e5"), bad);
	assert_int_equal(decanon1(CS_PT_FLOAT8, "inf"), bad);
	assert_int_equal(decanon1(CS_PT_DATE, "2024-1-01"), bad);
	assert_int_equal(decanon1(CS_PT_DATE, "2024-01-01 BC"), bad);
	assert_int_equal(decanon1(CS_PT_TIMESTAMPTZ, "2024-01-01"), bad);
	assert_int_equal(decanon1(CS_PT_TIMESTAMPTZ, "Infinity"), bad);

	/* Counts. */
	cs_param_type two[2] = {CS_PT_INT8, CS_PT_TEXT};
	cs_query_def q = make_query(2, two);
	cs_value w[2];
	char buf[64], err[256];
	assert_int_equal(cs_params_decanon(&q, "1", 1, w, buf, sizeof buf, err, sizeof err), bad);
	assert_non_null(strstr(err, "fewer"));
	assert_int_equal(
	        cs_params_decanon(&q, "1:a:b", 5, w, buf, sizeof buf, err, sizeof err), bad);
	assert_non_null(strstr(err, "more"));
	assert_int_equal(cs_params_decanon(&q, "1:", 2, w, buf, sizeof buf, err, sizeof err), 0);
	assert_int_equal(w[1].type, CS_V_STR);
	assert_int_equal(w[1].u.s.len, 0);
	assert_int_equal(cs_params_decanon(&q, "x:a", 3, w, buf, sizeof buf, err, sizeof err), bad);
	assert_non_null(strstr(err, "parameter 1 (p1)"));
	cs_query_def none = make_query(0, NULL);
	assert_int_equal(cs_params_decanon(&none, "", 0, w, buf, sizeof buf, err, sizeof err), 0);
	assert_int_equal(
	        cs_params_decanon(&none, "1", 1, w, buf, sizeof buf, err, sizeof err), bad);

	/* The output buffer is checked. */
	assert_int_equal(cs_params_decanon(&q, "1:abcdef", 8, w, buf, 3, err, sizeof err),
	        -CS_ERR_TOO_LARGE);
	cs_param_type d = CS_PT_DATE;
	cs_query_def qd = make_query(1, &d);
	const char *bc = "0044-03-15BC";
	assert_int_equal(
	        cs_params_decanon(&qd, bc, strlen(bc), w, buf, strlen(bc), err, sizeof err),
	        -CS_ERR_TOO_LARGE);
	assert_int_equal(
	        cs_params_decanon(&qd, bc, strlen(bc), w, buf, strlen(bc) + 1, err, sizeof err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(nil_and_bool),
	        cmocka_unit_test(ints),
	        cmocka_unit_test(floats),
	        cmocka_unit_test(text),
	        cmocka_unit_test(bytea),
	        cmocka_unit_test(uuid_numeric),
	        cmocka_unit_test(dates_and_timestamps),
	        cmocka_unit_test(mixed),
	        cmocka_unit_test(rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
