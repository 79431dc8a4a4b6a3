/* test_encode.c - unit tests for cachesvc/backend/encode.c: PGresults built in memory with libpq
 * (no server), encoded, then decoded back with msgpack-c and checked value by value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"

#include "encode.h"

/* ---- Building results -------------------------------------------------------------------- */

typedef struct col {
	const char *name;
	unsigned oid;
} col;

static PGresult *make_result(const col *cols, int ncols)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	assert_non_null(res);
	PGresAttDesc att[64];
	assert_true(ncols <= 64);
	memset(att, 0, sizeof att);
	for (int i = 0; i < ncols; i++) {
		att[i].name = (char *)cols[i].name;
		att[i].typid = cols[i].oid;
		att[i].typlen = -1;
		att[i].atttypmod = -1;
		att[i].format = 0;
	}
	assert_int_equal(PQsetResultAttrs(res, ncols, att), 1);
	return res;
}

/* Sets row `row` from `vals` (NULL = SQL NULL). */
static void set_row(PGresult *res, int row, const char *const *vals, int n)
{
	for (int j = 0; j < n; j++)
		assert_int_equal(PQsetvalue(res, row, j, (char *)vals[j],
					 vals[j] ? (int)strlen(vals[j]) : -1),
			1);
}

/* One-column, one-row result. */
static PGresult *single(unsigned oid, const char *val)
{
	col c = {"v", oid};
	PGresult *res = make_result(&c, 1);
	set_row(res, 0, &val, 1);
	return res;
}

/* ---- Decoding back ----------------------------------------------------------------------- */

typedef struct decoded {
	msgpack_unpacked u;
	const msgpack_object *cols, *rows;
} decoded;

static void decode(const cs_buf *b, size_t start, decoded *d)
{
	char err[256] = "";
	assert_int_equal(
		cs_proto_check_result(b->data + start, b->len - start, err, sizeof err), 0);
	size_t off = 0;
	msgpack_unpacked_init(&d->u);
	assert_int_equal(
		msgpack_unpack_next(&d->u, (const char *)b->data + start, b->len - start, &off),
		MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, b->len - start);
	const msgpack_object *o = &d->u.data;
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 2);
	d->cols = &o->via.array.ptr[0];
	d->rows = &o->via.array.ptr[1];
	assert_int_equal(d->cols->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(d->rows->type, MSGPACK_OBJECT_ARRAY);
}

static const msgpack_object *cell(const decoded *d, uint32_t row, uint32_t c)
{
	assert_true(row < d->rows->via.array.size);
	const msgpack_object *r = &d->rows->via.array.ptr[row];
	assert_int_equal(r->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(r->via.array.size, d->cols->via.array.size);
	return &r->via.array.ptr[c];
}

static void check_col(const decoded *d, uint32_t c, const char *name, int type)
{
	const msgpack_object *o = &d->cols->via.array.ptr[c];
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 2);
	const msgpack_object *n = &o->via.array.ptr[0], *t = &o->via.array.ptr[1];
	assert_int_equal(n->type, MSGPACK_OBJECT_STR);
	assert_int_equal(n->via.str.size, strlen(name));
	assert_memory_equal(n->via.str.ptr, name, strlen(name));
	assert_int_equal(t->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(t->via.u64, (uint64_t)type);
}

static int64_t as_i64(const msgpack_object *o)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		assert_true(o->via.u64 <= INT64_MAX);
		return (int64_t)o->via.u64;
	}
	assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	return o->via.i64;
}

static void check_str(const msgpack_object *o, const char *s)
{
	assert_int_equal(o->type, MSGPACK_OBJECT_STR);
	assert_int_equal(o->via.str.size, strlen(s));
	assert_memory_equal(o->via.str.ptr, s, strlen(s));
}

static void check_bin(const msgpack_object *o, const void *p, size_t n)
{
	assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
	assert_int_equal(o->via.bin.size, n);
	if (n > 0)
		assert_memory_equal(o->via.bin.ptr, p, n);
}

static void check_ts(const msgpack_object *o, int64_t sec, uint32_t nsec)
{
	assert_int_equal(o->type, MSGPACK_OBJECT_EXT);
	assert_int_equal(o->via.ext.type, -1);
	msgpack_timestamp ts;
	assert_true(msgpack_object_to_timestamp(o, &ts));
	assert_int_equal(ts.tv_sec, sec);
	assert_int_equal(ts.tv_nsec, nsec);
}

static double as_f64(const msgpack_object *o)
{
	assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
	return o->via.f64;
}

/* Encodes a one-cell result and decodes it; the caller frees d->u and b. */
static const msgpack_object *encode_one(unsigned oid, const char *val, cs_buf *b, decoded *d)
{
	PGresult *res = single(oid, val);
	char err[256] = "";
	cs_buf_init(b, 1u << 20);
	int rc = cs_encode_result(res, b, err, sizeof err);
	if (rc != 0)
		fail_msg("oid %u value \"%s\": rc %d %s", oid, val, rc, err);
	PQclear(res);
	decode(b, 0, d);
	check_col(d, 0, "v", cs_coltype_for_oid(oid));
	return cell(d, 0, 0);
}

/* Expects -CS_ERR_INTERNAL, a message, and the buffer rolled back. */
static void expect_bad(unsigned oid, const char *val)
{
	PGresult *res = single(oid, val);
	cs_buf b;
	cs_buf_init(&b, 1u << 20);
	assert_int_equal(cs_buf_append(&b, "prefix", 6), 0);
	char err[256] = "";
	int rc = cs_encode_result(res, &b, err, sizeof err);
	if (rc != -CS_ERR_INTERNAL)
		fail_msg("oid %u value \"%s\": expected an error, rc %d", oid, val, rc);
	assert_true(strlen(err) > 0);
	assert_non_null(strstr(err, "row 1 column 1 (v)"));
	assert_int_equal(b.len, 6);
	assert_false(b.failed);
	cs_buf_free(&b);
	PQclear(res);
}

/* ---- Tests ------------------------------------------------------------------------------- */

static void coltypes(void **state)
{
	static const struct {
		unsigned oid;
		int type;
	} m[] = {
		{16, CS_COL_BOOL},
		{21, CS_COL_INT},
		{23, CS_COL_INT},
		{20, CS_COL_INT},
		{26, CS_COL_INT},
		{700, CS_COL_FLOAT},
		{701, CS_COL_FLOAT},
		{25, CS_COL_TEXT},
		{1043, CS_COL_TEXT},
		{1042, CS_COL_TEXT},
		{19, CS_COL_TEXT},
		{18, CS_COL_TEXT},
		{17, CS_COL_BYTEA},
		{1114, CS_COL_TIMESTAMP},
		{1184, CS_COL_TIMESTAMPTZ},
		{1700, CS_COL_NUMERIC},
		{114, CS_COL_JSON},
		{3802, CS_COL_JSON},
		{1082, CS_COL_OTHER}, /* date */
		{2950, CS_COL_OTHER}, /* uuid */
		{1007, CS_COL_OTHER}, /* int4[] */
		{0, CS_COL_OTHER},
		{4294967295u, CS_COL_OTHER},
	};
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
		assert_int_equal(cs_coltype_for_oid(m[i].oid), m[i].type);
}

static void all_types(void **state)
{
	static const col cols[] = {
		{"b", 16},
		{"i2", 21},
		{"i4", 23},
		{"i8", 20},
		{"o", 26},
		{"f4", 700},
		{"f8", 701},
		{"t", 25},
		{"vc", 1043},
		{"bp", 1042},
		{"nm", 19},
		{"ch", 18},
		{"by", 17},
		{"ts", 1114},
		{"tz", 1184},
		{"num", 1700},
		{"js", 114},
		{"jb", 3802},
		{"d", 1082},
		{"u", 2950},
	};
	enum { N = sizeof cols / sizeof cols[0] };
	PGresult *res = make_result(cols, N);
	const char *r0[N] = {"t", "-32768", "2147483647", "9223372036854775807", "4294967295",
		"0.1", "1e+300", "hello", "v\xc3\xa9", "ab   ", "pg_class", "x", "\\x00ff10",
		"2024-01-02 03:04:05.123456", "2024-01-02 03:04:05.123456+00", "-12.3400",
		"{\"a\": [1, 2]}", "{\"a\": [1, 2]}", "2024-01-02",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"};
	const char *r1[N] = {"f", "0", "-2147483648", "-9223372036854775808", "0", "NaN",
		"-Infinity", "", "", "", "", "", "\\x", "infinity", "-infinity", "NaN", "null", "1",
		"infinity", "00000000-0000-0000-0000-000000000000"};
	const char *r2[N] = {NULL};
	set_row(res, 0, r0, N);
	set_row(res, 1, r1, N);
	set_row(res, 2, r2, N);

	cs_buf b;
	cs_buf_init(&b, 0);
	assert_int_equal(cs_buf_append(&b, "hdr", 3), 0); /* appends after existing bytes */
	char err[256] = "";
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), 0);
	decoded d;
	decode(&b, 3, &d);
	assert_int_equal(d.cols->via.array.size, N);
	assert_int_equal(d.rows->via.array.size, 3);
	for (int j = 0; j < N; j++)
		check_col(&d, (uint32_t)j, cols[j].name, cs_coltype_for_oid(cols[j].oid));

	/* Row 0 */
	assert_int_equal(cell(&d, 0, 0)->type, MSGPACK_OBJECT_BOOLEAN);
	assert_true(cell(&d, 0, 0)->via.boolean);
	assert_int_equal(as_i64(cell(&d, 0, 1)), -32768);
	assert_int_equal(as_i64(cell(&d, 0, 2)), 2147483647);
	assert_int_equal(as_i64(cell(&d, 0, 3)), INT64_MAX);
	assert_int_equal(as_i64(cell(&d, 0, 4)), 4294967295LL);
	assert_true(as_f64(cell(&d, 0, 5)) == 0.1);
	assert_true(as_f64(cell(&d, 0, 6)) == 1e300);
	check_str(cell(&d, 0, 7), "hello");
	check_str(cell(&d, 0, 8), "v\xc3\xa9");
	check_str(cell(&d, 0, 9), "ab   ");
	check_str(cell(&d, 0, 10), "pg_class");
	check_str(cell(&d, 0, 11), "x");
	check_bin(cell(&d, 0, 12), "\x00\xff\x10", 3);
	check_ts(cell(&d, 0, 13), 1704164645, 123456000);
	check_ts(cell(&d, 0, 14), 1704164645, 123456000);
	check_str(cell(&d, 0, 15), "-12.3400");
	check_str(cell(&d, 0, 16), "{\"a\": [1, 2]}");
	check_str(cell(&d, 0, 17), "{\"a\": [1, 2]}");
	check_str(cell(&d, 0, 18), "2024-01-02");
	check_str(cell(&d, 0, 19), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
	/* Row 1 */
	assert_false(cell(&d, 1, 0)->via.boolean);
	assert_int_equal(as_i64(cell(&d, 1, 1)), 0);
	assert_int_equal(as_i64(cell(&d, 1, 2)), INT32_MIN);
	assert_int_equal(as_i64(cell(&d, 1, 3)), INT64_MIN);
	assert_int_equal(as_i64(cell(&d, 1, 4)), 0);
	assert_true(isnan(as_f64(cell(&d, 1, 5))));
	assert_true(isinf(as_f64(cell(&d, 1, 6))) && as_f64(cell(&d, 1, 6)) < 0);
	check_str(cell(&d, 1, 7), "");
	check_bin(cell(&d, 1, 12), NULL, 0);
	check_ts(cell(&d, 1, 13), INT64_MAX, 0);
	check_ts(cell(&d, 1, 14), INT64_MIN, 0);
	check_str(cell(&d, 1, 15), "NaN");
	check_str(cell(&d, 1, 18), "infinity");
	/* Row 2: NULL in every column, whatever the type. */
	for (int j = 0; j < N; j++)
		assert_int_equal(cell(&d, 2, (uint32_t)j)->type, MSGPACK_OBJECT_NIL);

	msgpack_unpacked_destroy(&d.u);
	cs_buf_free(&b);
	PQclear(res);
}

static void floats(void **state)
{
	static const struct {
		const char *text;
		double want;
	} cases[] = {
		{"0", 0.0},
		{"-0", -0.0},
		{"0.1", 0.1},
		{"1e-05", 1e-5},
		{"1.7976931348623157e+308", 1.7976931348623157e308},
		{"5e-324", 5e-324},
		{"Infinity", INFINITY},
		{"-3.4028235e+38", -3.4028235e38},
		{"42", 42},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cs_buf b;
		decoded d;
		double v = as_f64(encode_one(701, cases[i].text, &b, &d));
		assert_true(v == cases[i].want);
		assert_int_equal(signbit(v) != 0, signbit(cases[i].want) != 0);
		msgpack_unpacked_destroy(&d.u);
		cs_buf_free(&b);
	}
	cs_buf b;
	decoded d;
	assert_true(isnan(as_f64(encode_one(700, "NaN", &b, &d))));
	msgpack_unpacked_destroy(&d.u);
	cs_buf_free(&b);
}

static void byteas(void **state)
{
	cs_buf b;
	decoded d;
	/* The escape format (bytea_output = escape) is understood too. */
	check_bin(encode_one(17, "ab\\\\\\001\\377z", &b, &d), "ab\\\x01\xffz", 6);
	msgpack_unpacked_destroy(&d.u);
	cs_buf_free(&b);
	check_bin(encode_one(17, "\\xDEADbeef", &b, &d), "\xde\xad\xbe\xef", 4);
	msgpack_unpacked_destroy(&d.u);
	cs_buf_free(&b);
	check_bin(encode_one(17, "", &b, &d), NULL, 0);
	msgpack_unpacked_destroy(&d.u);
	cs_buf_free(&b);

	/* Large values cross the decoder's chunk size in both formats. */
	enum { BIG = 5000 };
	uint8_t raw[BIG];
	static char hex[2 + 2 * BIG + 1], esc[4 * BIG + 1];
	strcpy(hex, "\\x");
	size_t e = 0;
	for (int i = 0; i < BIG; i++) {
		raw[i] = (uint8_t)(i * 7 + 3);
		snprintf(hex + 2 + 2 * i, 3, "%02x", raw[i]);
		if (raw[i] == '\\') {
			esc[e++] = '\\';
			esc[e++] = '\\';
		} else if (raw[i] < 0x20 || raw[i] >= 0x7f) {
			snprintf(esc + e, 5, "\\%03o", raw[i]);
			e += 4;
		} else {
			esc[e++] = (char)raw[i];
		}
	}
	esc[e] = '\0';
	check_bin(encode_one(17, hex, &b, &d), raw, BIG);
	msgpack_unpacked_destroy(&d.u);
	cs_buf_free(&b);
	check_bin(encode_one(17, esc, &b, &d), raw, BIG);
	msgpack_unpacked_destroy(&d.u);
	cs_buf_free(&b);
}

static void timestamps(void **state)
{
	static const struct {
		unsigned oid;
		const char *text;
		int64_t sec;
		uint32_t nsec;
	} cases[] = {
		{1114, "1970-01-01 00:00:00", 0, 0},
		{1114, "1969-12-31 23:59:59.5", -1, 500000000},
		{1114, "2024-02-29 12:00:00.000001", 1709208000, 1000},
		{1114, "0001-01-01 00:00:00", -62135596800, 0},
		{1114, "0001-12-31 23:59:59 BC", -62135596801, 0},
		{1114, "4714-11-24 00:00:00 BC", -210866803200, 0},
		{1114, "294276-12-31 23:59:59.999999", 9224318015999, 999999000},
		{1114, "2106-02-07 06:28:16", 4294967296, 0}, /* needs the 96-bit form */
		{1184, "2024-01-02 03:04:05+00", 1704164645, 0},
		{1184, "2024-01-02 04:04:05.25+01", 1704164645, 250000000},
		{1184, "2024-01-02 08:34:05+05:30", 1704164645, 0},
		{1184, "1850-06-01 00:00:00-00:01:15", -3773779125, 0},
		{1184, "infinity", INT64_MAX, 0},
		{1114, "-infinity", INT64_MIN, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cs_buf b;
		decoded d;
		check_ts(encode_one(cases[i].oid, cases[i].text, &b, &d), cases[i].sec,
			cases[i].nsec);
		msgpack_unpacked_destroy(&d.u);
		cs_buf_free(&b);
	}
}

static void bad_values(void **state)
{
	const char *bad_int[] = {"", "abc", "1.5", " 1", "1 ", "9223372036854775808",
		"-9223372036854775809", "0x10", "+", NULL};
	for (int i = 0; bad_int[i]; i++) {
		expect_bad(20, bad_int[i]);
		expect_bad(23, bad_int[i]);
	}
	const char *bad_bool[] = {"", "true", "1", "T", "tt", NULL};
	for (int i = 0; bad_bool[i]; i++)
		expect_bad(16, bad_bool[i]);
	const char *bad_float[] = {
		"", "1.5x", "nan", "inf", "0x1p3", "1e400", "--1", ".", "e", NULL};
	for (int i = 0; bad_float[i]; i++)
		expect_bad(701, bad_float[i]);
	const char *bad_bytea[] = {"\\x0", "\\xzz", "\\x 00", "a\\", "\\9", "\\400", "\\12", NULL};
	for (int i = 0; bad_bytea[i]; i++)
		expect_bad(17, bad_bytea[i]);
	const char *bad_ts[] = {"", "now", "2024-01-02", "2024-01-02 03:04:05+00",
		"2024-13-02 03:04:05", "2024-01-02 03:04:05.1234567", "4714-11-23 00:00:00 BC",
		"294277-01-01 00:00:00", "999999999-01-01 00:00:00", NULL};
	for (int i = 0; bad_ts[i]; i++)
		expect_bad(1114, bad_ts[i]);
	const char *bad_tz[] = {"", "2024-01-02 03:04:05", "2024-01-02 03:04:05+99",
		"2024-01-02 03:04:05 UTC", NULL};
	for (int i = 0; bad_tz[i]; i++)
		expect_bad(1184, bad_tz[i]);
}

static void odd_results(void **state)
{
	char err[256];
	cs_buf b;
	cs_buf_init(&b, 0);

	/* NULL and non-row results. */
	assert_int_equal(cs_encode_result(NULL, &b, err, sizeof err), -CS_ERR_INTERNAL);
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), -CS_ERR_INTERNAL);
	assert_non_null(strstr(err, "PGRES_COMMAND_OK"));
	PQclear(res);
	res = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), -CS_ERR_INTERNAL);
	PQclear(res);
	assert_int_equal(b.len, 0);

	/* No columns at all: [[], []]. */
	res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), 0);
	decoded d;
	decode(&b, 0, &d);
	assert_int_equal(d.cols->via.array.size, 0);
	assert_int_equal(d.rows->via.array.size, 0);
	msgpack_unpacked_destroy(&d.u);
	PQclear(res);

	/* Columns but no rows. */
	cs_buf_reset(&b);
	col c2[] = {{"id", 20}, {"name", 25}};
	res = make_result(c2, 2);
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), 0);
	decode(&b, 0, &d);
	assert_int_equal(d.cols->via.array.size, 2);
	check_col(&d, 0, "id", CS_COL_INT);
	check_col(&d, 1, "name", CS_COL_TEXT);
	assert_int_equal(d.rows->via.array.size, 0);
	msgpack_unpacked_destroy(&d.u);
	PQclear(res);

	/* A column name past the protocol's limit; exactly at it is fine. */
	cs_buf_reset(&b);
	char name[80];
	memset(name, 'n', sizeof name);
	name[CS_PROTO_MAX_NAME] = '\0';
	col cn = {name, 25};
	res = make_result(&cn, 1);
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), 0);
	PQclear(res);
	cs_buf_reset(&b);
	name[CS_PROTO_MAX_NAME] = 'n';
	name[CS_PROTO_MAX_NAME + 1] = '\0';
	res = make_result(&cn, 1);
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), -CS_ERR_INTERNAL);
	assert_int_equal(b.len, 0);
	PQclear(res);

	/* A binary-format column is refused (we only parse text output). */
	res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc att = {.name = (char *)"x", .typid = 20, .format = 1, .typlen = 8};
	assert_int_equal(PQsetResultAttrs(res, 1, &att), 1);
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), -CS_ERR_INTERNAL);
	assert_non_null(strstr(err, "binary"));
	PQclear(res);
	cs_buf_free(&b);
}

static void too_large(void **state)
{
	col c = {"t", 25};
	PGresult *res = make_result(&c, 1);
	static char big[5000];
	memset(big, 'x', sizeof big - 1);
	const char *v = big;
	for (int i = 0; i < 10; i++)
		set_row(res, i, &v, 1);
	char err[256];
	cs_buf b;
	cs_buf_init(&b, 20000);
	assert_int_equal(cs_buf_append(&b, "hdr", 3), 0);
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), -CS_ERR_TOO_LARGE);
	assert_int_equal(b.len, 3);
	assert_false(b.failed);
	/* The same buffer still works for something that fits. */
	PQclear(res);
	res = single(20, "1");
	assert_int_equal(cs_encode_result(res, &b, err, sizeof err), 0);
	decoded d;
	decode(&b, 3, &d);
	assert_int_equal(as_i64(cell(&d, 0, 0)), 1);
	msgpack_unpacked_destroy(&d.u);
	PQclear(res);
	/* A cap hit in the header itself. */
	cs_buf tiny;
	cs_buf_init(&tiny, 2);
	res = single(20, "1");
	assert_int_equal(cs_encode_result(res, &tiny, err, sizeof err), -CS_ERR_TOO_LARGE);
	assert_int_equal(tiny.len, 0);
	PQclear(res);
	cs_buf_free(&tiny);
	cs_buf_free(&b);
}

/* Arbitrary bytes as values of every type: a clean 0 or -CS_ERR_INTERNAL, never a crash, and
 * whatever is produced is a valid result object. */
static void garbage(void **state)
{
	static const unsigned oids[] = {
		16, 20, 21, 23, 26, 700, 701, 25, 17, 1114, 1184, 1700, 114, 1082};
	static const char *const seeds[] = {"\\x", "\\", "t", "-", "1e", "2024-01-02 ",
		"2024-01-02 03:04:05", "infinity", "NaN", "\\x0g", "+00", "BC"};
	uint64_t s = 88172645463325252ull;
	char val[64];
	for (int it = 0; it < 20000; it++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		const char *seed = seeds[s % (sizeof seeds / sizeof seeds[0])];
		size_t n = (size_t)(s >> 8) % 40;
		snprintf(val, sizeof val, "%s", seed);
		size_t k = strlen(val);
		for (size_t i = 0; i < n && k + 1 < sizeof val; i++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			char ch = (char)(s & 0xff);
			if (ch == 0)
				ch = '0' + (char)(s % 10);
			if ((s >> 9) % 2)
				ch = "0123456789-+:. TZxe\\"[(s >> 11) % 20];
			val[k++] = ch;
		}
		val[k] = '\0';
		unsigned oid = oids[(s >> 20) % (sizeof oids / sizeof oids[0])];
		PGresult *res = single(oid, val);
		cs_buf b;
		cs_buf_init(&b, 0);
		char err[256];
		int rc = cs_encode_result(res, &b, err, sizeof err);
		assert_true(rc == 0 || rc == -CS_ERR_INTERNAL);
		if (rc == 0) {
			decoded d;
			decode(&b, 0, &d);
			msgpack_unpacked_destroy(&d.u);
		} else {
			assert_int_equal(b.len, 0);
		}
		cs_buf_free(&b);
		PQclear(res);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(coltypes),
		cmocka_unit_test(all_types),
		cmocka_unit_test(floats),
		cmocka_unit_test(byteas),
		cmocka_unit_test(timestamps),
		cmocka_unit_test(bad_values),
		cmocka_unit_test(odd_results),
		cmocka_unit_test(too_large),
		cmocka_unit_test(garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
