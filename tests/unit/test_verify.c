/* test_verify.c - unit tests for cachesvc/backend/verify.c: result comparison (ordered and as
 * multisets, every value type, malformed input), ORDER BY detection, and the steps of the
 * check of one entry (first read, key parameters, the wait, the verdict). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_proto.h"
#include "entry.h"
#include "verify.h"

/* ---- Building result objects --------------------------------------------------------------
 * A result is described by a column spec ("id:int,name:text") and rows of values. */

typedef struct res {
	cs_buf b;
	msgpack_packer pk;
} res;

static void res_begin(
        res *r, uint32_t ncols, const char *const *names, const uint8_t *types, uint32_t nrows)
{
	cs_buf_init(&r->b, 1u << 20);
	msgpack_packer_init(&r->pk, &r->b, cs_buf_msgpack_write);
	assert_int_equal(cs_proto_pack_result_begin(&r->pk, ncols), 0);
	for (uint32_t c = 0; c < ncols; c++)
		assert_int_equal(cs_proto_pack_col(&r->pk, names[c], types[c]), 0);
	assert_int_equal(msgpack_pack_array(&r->pk, nrows), 0);
}

static void res_row(res *r, uint32_t n, const cs_value *vals)
{
	assert_int_equal(msgpack_pack_array(&r->pk, n), 0);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(cs_proto_pack_value(&r->pk, &vals[i]), 0);
}

static cs_value I(int64_t i)
{
	return (cs_value){.type = CS_V_INT, .u.i = i};
}

static cs_value S(const char *s)
{
	cs_value v = {.type = CS_V_STR};
	v.u.s.p = s;
	v.u.s.len = (uint32_t)strlen(s);
	return v;
}

static cs_value F(double f)
{
	return (cs_value){.type = CS_V_FLOAT, .u.f = f};
}

static cs_value N(void)
{
	return (cs_value){.type = CS_V_NIL};
}

/* A two-column (id int, name text) result from rows {ids[i], names[i]}. */
static void two_cols(res *r, uint32_t n, const int64_t *ids, const char *const *names)
{
	static const char *const cols[] = {"id", "name"};
	static const uint8_t types[] = {CS_COL_INT, CS_COL_TEXT};
	res_begin(r, 2, cols, types, n);
	for (uint32_t i = 0; i < n; i++) {
		cs_value row[2] = {I(ids[i]), names[i] ? S(names[i]) : N()};
		res_row(r, 2, row);
	}
}

static int cmp(res *a, res *b, bool ordered, char *diff, size_t difflen)
{
	return cs_verify_compare(a->b.data, a->b.len, b->b.data, b->b.len, ordered, diff, difflen);
}

/* ---- Comparison ------------------------------------------------------------------------------ */

static void equal_results(void **state)
{
	(void)state;
	res a, b;
	const int64_t ids[] = {1, 2, 3};
	const char *const names[] = {"ann", "bob", NULL};
	two_cols(&a, 3, ids, names);
	two_cols(&b, 3, ids, names);
	char diff[256];
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 0);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 0);
	assert_string_equal(diff, "");
	assert_int_equal(cmp(&a, &b, false, NULL, 0), 0);
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);

	/* Empty results (negative entries) equal each other. */
	two_cols(&a, 0, NULL, NULL);
	two_cols(&b, 0, NULL, NULL);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 0);
	cs_buf_free(&b.b);
	two_cols(&b, 1, ids, names);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "rows: cache has 0, primary 1"));
	assert_non_null(strstr(diff, "[1, \"ann\"]"));
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);
}

static void value_differs(void **state)
{
	(void)state;
	res a, b;
	const int64_t ids[] = {1, 2};
	const char *const n1[] = {"ann", "bob"};
	const char *const n2[] = {"ann", "alice"};
	two_cols(&a, 2, ids, n1);
	two_cols(&b, 2, ids, n2);
	char diff[256];
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 1);
	assert_string_equal(diff, "row 2 column \"name\": cache \"bob\", primary \"alice\"");
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	assert_string_equal(diff, "a row differs in column \"name\": cache \"bob\", primary "
	                          "\"alice\"; cache row [2, \"bob\"]");
	/* A tiny diff buffer is truncated, not overrun. */
	char small[8];
	assert_int_equal(cmp(&a, &b, true, small, sizeof small), 1);
	assert_int_equal(strlen(small), sizeof small - 1);
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);

	/* NULL vs a value, and vs an empty string. */
	const char *const n3[] = {"ann", NULL};
	const char *const n4[] = {"ann", ""};
	two_cols(&a, 2, ids, n3);
	two_cols(&b, 2, ids, n4);
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "cache null, primary \"\""));
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);
}

static void columns_differ(void **state)
{
	(void)state;
	res a, b;
	char diff[256];
	const char *const c1[] = {"id", "name"}, *const c2[] = {"id", "title"};
	const uint8_t t1[] = {CS_COL_INT, CS_COL_TEXT}, t2[] = {CS_COL_INT, CS_COL_JSON};
	res_begin(&a, 2, c1, t1, 0);
	res_begin(&b, 2, c2, t1, 0);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "column 2"));
	assert_non_null(strstr(diff, "title"));
	cs_buf_free(&b.b);
	res_begin(&b, 2, c1, t2, 0);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	cs_buf_free(&b.b);
	res_begin(&b, 1, c1, t1, 0);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	assert_string_equal(diff, "columns: cache has 2, primary 1");
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);
}

static void multiset(void **state)
{
	(void)state;
	res a, b;
	char diff[256];
	const int64_t i1[] = {3, 1, 2, 1}, i2[] = {1, 2, 1, 3};
	const char *const n1[] = {"c", "a", "b", "a"}, *const n2[] = {"a", "b", "a", "c"};
	two_cols(&a, 4, i1, n1);
	two_cols(&b, 4, i2, n2);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 0);
	/* Order matters under ORDER BY; the diff says the rows are the same. */
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "another order"));
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);

	/* Duplicates count: {a, a, b} is not {a, b, b}. */
	const int64_t i3[] = {1, 1, 2}, i4[] = {1, 2, 2};
	const char *const n3[] = {"a", "a", "b"}, *const n4[] = {"a", "b", "b"};
	two_cols(&a, 3, i3, n3);
	two_cols(&b, 3, i4, n4);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	assert_string_equal(diff, "a row differs in column \"id\": cache 1, primary 2; cache row "
	                          "[1, \"a\"]");
	assert_int_equal(cmp(&b, &a, false, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "cache 2, primary 1; cache row [2, \"b\"]"));
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 1);
	assert_null(strstr(diff, "another order"));
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);

	/* Different counts, unordered: the first unmatched row is named. */
	two_cols(&a, 2, i3 + 1, n3 + 1);
	two_cols(&b, 3, i3, n3);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "rows: cache has 2, primary 3"));
	assert_non_null(strstr(diff, "primary has a row the cache lacks: [1, \"a\"]"));
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);

	/* A large shuffled result. */
	enum { BIG = 2000 };
	static int64_t ids[BIG], rev[BIG];
	static const char *names[BIG], *rnames[BIG];
	for (int i = 0; i < BIG; i++) {
		ids[i] = i % 700;
		names[i] = i % 3 ? "x" : "y";
		rev[BIG - 1 - i] = ids[i];
		rnames[BIG - 1 - i] = names[i];
	}
	two_cols(&a, BIG, ids, names);
	two_cols(&b, BIG, rev, rnames);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 0);
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 1);
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);
}

static void value_types(void **state)
{
	(void)state;
	static const char *const cols[] = {"f", "b", "bin", "ts"};
	static const uint8_t types[] = {
	        CS_COL_FLOAT, CS_COL_BOOL, CS_COL_BYTEA, CS_COL_TIMESTAMPTZ};
	cs_value bin = {.type = CS_V_BIN};
	bin.u.s.p = "\x01\xff";
	bin.u.s.len = 2;
	cs_value ts = {.type = CS_V_TS};
	ts.u.ts.sec = 1700000000;
	ts.u.ts.nsec = 5000;
	cs_value row[4] = {F(NAN), {.type = CS_V_BOOL, .u.b = true}, bin, ts};
	res a, b;
	char diff[256];
	res_begin(&a, 4, cols, types, 1);
	res_row(&a, 4, row);
	res_begin(&b, 4, cols, types, 1);
	res_row(&b, 4, row);
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 0); /* NaN equals NaN */
	cs_buf_free(&b.b);

	cs_value row2[4];
	memcpy(row2, row, sizeof row);
	row2[3].u.ts.nsec = 6000;
	res_begin(&b, 4, cols, types, 1);
	res_row(&b, 4, row2);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "2023-11-14T22:13:20.000005Z"));
	cs_buf_free(&b.b);

	memcpy(row2, row, sizeof row);
	row2[2].u.s.len = 1;
	res_begin(&b, 4, cols, types, 1);
	res_row(&b, 4, row2);
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "cache \\x01ff, primary \\x01"));
	cs_buf_free(&b.b);

	memcpy(row2, row, sizeof row);
	row2[0] = F(-0.0);
	row2[1].u.b = false;
	res_begin(&b, 4, cols, types, 1);
	res_row(&b, 4, row2);
	assert_int_equal(cmp(&a, &b, true, diff, sizeof diff), 1);
	assert_non_null(strstr(diff, "column \"f\""));
	cs_buf_free(&b.b);
	cs_buf_free(&a.b);

	/* An int is not a float of the same value, nor a string. */
	static const char *const c1[] = {"x"};
	static const uint8_t t1[] = {CS_COL_OTHER};
	cs_value vi = I(1), vf = F(1.0), vs = S("1");
	res_begin(&a, 1, c1, t1, 1);
	res_row(&a, 1, &vi);
	res_begin(&b, 1, c1, t1, 1);
	res_row(&b, 1, &vf);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	cs_buf_free(&b.b);
	res_begin(&b, 1, c1, t1, 1);
	res_row(&b, 1, &vs);
	assert_int_equal(cmp(&a, &b, false, diff, sizeof diff), 1);
	cs_buf_free(&a.b);
	cs_buf_free(&b.b);
}

static void malformed(void **state)
{
	(void)state;
	res a;
	const int64_t ids[] = {1};
	const char *const names[] = {"ann"};
	two_cols(&a, 1, ids, names);
	char diff[256];
	const uint8_t junk[] = {0x92, 0x90}; /* [[], <missing>] */
	assert_true(cs_verify_compare(
	                    a.b.data, a.b.len, junk, sizeof junk, false, diff, sizeof diff) < 0);
	assert_non_null(strstr(diff, "primary result"));
	assert_true(cs_verify_compare(
	                    junk, sizeof junk, a.b.data, a.b.len, false, diff, sizeof diff) < 0);
	assert_non_null(strstr(diff, "cache result"));
	/* Trailing bytes after the object. */
	uint8_t *more = malloc(a.b.len + 1);
	memcpy(more, a.b.data, a.b.len);
	more[a.b.len] = 0xc0;
	assert_true(cs_verify_compare(
	                    a.b.data, a.b.len, more, a.b.len + 1, false, diff, sizeof diff) < 0);
	assert_true(cs_verify_compare(a.b.data, a.b.len, a.b.data, a.b.len - 1, true, NULL, 0) < 0);
	assert_true(cs_verify_compare(a.b.data, 0, a.b.data, a.b.len, true, NULL, 0) < 0);
	free(more);
	cs_buf_free(&a.b);
}

/* ---- ORDER BY ------------------------------------------------------------------------------ */

static void sql_ordered(void **state)
{
	(void)state;
	assert_true(cs_verify_sql_ordered("SELECT id FROM t WHERE a = $1 ORDER BY id"));
	assert_true(cs_verify_sql_ordered("select id from t order   by id desc limit 5"));
	assert_true(cs_verify_sql_ordered("SELECT * FROM t ORDER\n  -- why\n  /* c */ BY 1"));
	assert_true(cs_verify_sql_ordered("SELECT (SELECT 1) AS x FROM t ORDER BY x"));
	assert_true(cs_verify_sql_ordered(
	        "WITH c AS (SELECT * FROM t ORDER BY a) SELECT * FROM c ORDER BY b"));
	assert_true(cs_verify_sql_ordered("SELECT 'it''s' AS s ORDER BY s"));
	assert_true(cs_verify_sql_ordered("SELECT E'\\'' AS s ORDER BY s"));
	assert_true(cs_verify_sql_ordered("SELECT $$x$$ AS s, $1 ORDER BY s"));

	assert_false(cs_verify_sql_ordered("SELECT id FROM t WHERE id = $1"));
	assert_false(cs_verify_sql_ordered("SELECT 'ORDER BY' FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT E'\\' ORDER BY' FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT \"order\" FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT \"x ORDER BY y\" FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT x FROM t -- ORDER BY x"));
	assert_false(cs_verify_sql_ordered("SELECT x FROM t /* ORDER BY x */"));
	assert_false(cs_verify_sql_ordered("SELECT x FROM t /* a /* nested */ ORDER BY x */"));
	assert_false(cs_verify_sql_ordered("SELECT $$ ORDER BY $$ FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT $q$ ORDER BY $q$ FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT * FROM (SELECT x FROM t ORDER BY x) s"));
	assert_false(cs_verify_sql_ordered("SELECT row_number() OVER (ORDER BY x) FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT string_agg(x, ',' ORDER BY x) FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT order_by, by_order FROM t"));
	assert_false(cs_verify_sql_ordered("SELECT x AS order FROM t GROUP BY x"));
	assert_false(cs_verify_sql_ordered("SELECT 'unterminated ORDER BY"));
	assert_false(cs_verify_sql_ordered(""));
}

/* ---- The steps of the check of one entry (shared by the tool and the sampler) ---------------- */

/* An entry (header + result) around the result r, with data LSN lsn. */
static uint8_t *make_entry(const res *r, uint64_t lsn, size_t *len)
{
	cs_entry e = {.lsn = lsn, .filled_ms = 1000, .expires_ms = 2000};
	*len = CS_ENTRY_HDR + r->b.len;
	uint8_t *buf = malloc(*len);
	assert_non_null(buf);
	cs_entry_write_header(&e, buf);
	memcpy(buf + CS_ENTRY_HDR, r->b.data, r->b.len);
	return buf;
}

static void one_int(res *r, int64_t v)
{
	static const char *const names[] = {"id"};
	static const uint8_t types[] = {CS_COL_INT};
	res_begin(r, 1, names, types, 1);
	cs_value vals[] = {I(v)};
	res_row(r, 1, vals);
}

static void first_read(void **state)
{
	(void)state;
	res r;
	one_int(&r, 1);
	size_t len;
	uint8_t *ent = make_entry(&r, 42, &len);
	cs_entry e;
	assert_int_equal(cs_verify_first(false, false, NULL, 0, &e), CS_VERIFY_GONE);
	assert_int_equal(cs_verify_first(true, false, NULL, 0, &e), CS_VERIFY_NOT_ENTRY);
	assert_int_equal(cs_verify_first(true, true, "foreign", 7, &e), CS_VERIFY_NOT_ENTRY);
	assert_int_equal(cs_verify_first(true, true, ent, len, &e), CS_VERIFY_OK);
	assert_int_equal(e.lsn, 42);
	assert_true(cs_verify_skipped(CS_VERIFY_GONE) && cs_verify_skipped(CS_VERIFY_CHANGED));
	assert_false(cs_verify_skipped(CS_VERIFY_OK) || cs_verify_skipped(CS_VERIFY_STALE));
	free(ent);
	cs_buf_free(&r.b);
}

static void judge(void **state)
{
	(void)state;
	res r1, r2;
	one_int(&r1, 1);
	one_int(&r2, 2);
	size_t len, len2;
	uint8_t *ent = make_entry(&r1, 42, &len);
	uint8_t *other = make_entry(&r2, 43, &len2);
	cs_entry e;
	char diff[256];
	/* the second read differs: changed, whatever the primary says */
	assert_int_equal(cs_verify_judge(ent, len, false, false, NULL, 0, r2.b.data, r2.b.len, false,
	                         &e, diff, sizeof diff),
	        CS_VERIFY_CHANGED);
	assert_string_equal(diff, "deleted");
	assert_int_equal(cs_verify_judge(ent, len, true, true, other, len2, r2.b.data, r2.b.len, false,
	                         &e, diff, sizeof diff),
	        CS_VERIFY_CHANGED);
	assert_string_equal(diff, "rewritten");
	assert_int_equal(cs_verify_judge(ent, len, true, false, NULL, 0, r2.b.data, r2.b.len, false,
	                         &e, diff, sizeof diff),
	        CS_VERIFY_CHANGED);
	/* unchanged: equal is ok, different is stale, not comparable is not an entry */
	assert_int_equal(cs_verify_judge(ent, len, true, true, ent, len, r1.b.data, r1.b.len, false,
	                         &e, diff, sizeof diff),
	        CS_VERIFY_OK);
	assert_int_equal(cs_verify_judge(ent, len, true, true, ent, len, r2.b.data, r2.b.len, false,
	                         &e, diff, sizeof diff),
	        CS_VERIFY_STALE);
	assert_int_equal(e.lsn, 42);
	assert_non_null(strstr(diff, "column"));
	assert_int_equal(cs_verify_judge(ent, len, true, true, ent, len, (const uint8_t *)"x", 1,
	                         false, &e, diff, sizeof diff),
	        CS_VERIFY_NOT_ENTRY);
	free(ent);
	free(other);
	cs_buf_free(&r1.b);
	cs_buf_free(&r2.b);
}

static void wait_step(void **state)
{
	(void)state;
	uint64_t stalled = 0;
	assert_int_equal(cs_verify_wait_step(100, 100, 0, 10, NULL), CS_VERIFY_PASSED);
	assert_int_equal(cs_verify_wait_step(99, 100, 0, 10, NULL), CS_VERIFY_WAIT);
	assert_int_equal(cs_verify_wait_step(99, 100, 10, 10, NULL), CS_VERIFY_BEHIND);
	/* a timed-out wait is remembered: the next entry gives up at once until pos moves */
	assert_int_equal(cs_verify_wait_step(99, 100, 0, 10, &stalled), CS_VERIFY_WAIT);
	assert_int_equal(cs_verify_wait_step(99, 100, 11, 10, &stalled), CS_VERIFY_BEHIND);
	assert_int_equal(stalled, 99);
	assert_int_equal(cs_verify_wait_step(99, 200, 0, 10, &stalled), CS_VERIFY_BEHIND);
	assert_int_equal(cs_verify_wait_step(150, 200, 0, 10, &stalled), CS_VERIFY_WAIT);
	assert_int_equal(cs_verify_wait_step(200, 200, 0, 10, &stalled), CS_VERIFY_PASSED);
	stalled = 0;
	assert_int_equal(cs_verify_wait_step(0, 100, 11, 10, &stalled), CS_VERIFY_BEHIND);
	assert_int_equal(stalled, 1);
}

static void key_params(void **state)
{
	(void)state;
	cs_query_def q;
	memset(&q, 0, sizeof q);
	snprintf(q.name, sizeof q.name, "q");
	q.nparams = 2;
	q.params[0].type = CS_PT_INT4;
	q.params[1].type = CS_PT_TEXT;
	char err[256];
	cs_pg_params *p = cs_verify_key_params(&q, "42:a%3Ab", 8, err, sizeof err);
	assert_non_null(p);
	assert_int_equal(p->n, 2);
	free(p);
	/* not what the daemon writes: syntax (decanon), then values (the key must re-encode
	 * to itself: an int4 out of range passes decanon, not canon) */
	assert_null(cs_verify_key_params(&q, "42:a%3ab", 8, err, sizeof err));
	assert_non_null(strstr(err, "not a canonical text"));
	err[0] = '\0';
	assert_null(cs_verify_key_params(&q, "99999999999:ab", 14, err, sizeof err));
	assert_true(err[0] != '\0' && strstr(err, "canonical text") == NULL);
	assert_null(cs_verify_key_params(&q, "42", 2, err, sizeof err));
	static char big[CS_CANON_MAX + 2];
	memset(big, '1', sizeof big);
	assert_null(cs_verify_key_params(&q, big, sizeof big, err, sizeof err));
	assert_non_null(strstr(err, "longer than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(equal_results),
	        cmocka_unit_test(value_differs),
	        cmocka_unit_test(columns_differ),
	        cmocka_unit_test(multiset),
	        cmocka_unit_test(value_types),
	        cmocka_unit_test(malformed),
	        cmocka_unit_test(sql_ordered),
	        cmocka_unit_test(first_read),
	        cmocka_unit_test(judge),
	        cmocka_unit_test(wait_step),
	        cmocka_unit_test(key_params),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
