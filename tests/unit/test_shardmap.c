/* test_shardmap.c - the shard a request reads (backend/shardmap.h, params.h shard keys): the
 * published hash test vectors (SHARDS.md section 3; computed apart, with Python), the jump
 * hash's consistency (a new shard takes keys only for itself), routing by hash and by
 * ranges (edges, a key in no range, a NULL key), pinned queries, the types refused as a
 * shard key, and the one implicit shard of a config without shards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shardmap.h"

static char tmpdir[] = "/tmp/test_shardmap.XXXXXX";
static char ini_path[sizeof(tmpdir) + 32];
static char err[CS_CONFIG_ERRLEN];

#include "config_load.h"

static cs_value vint(int64_t i)
{
	return (cs_value){.type = CS_V_INT, .u.i = i};
}

static cs_value vstr(const char *s)
{
	return (cs_value){.type = CS_V_STR, .u.s = {s, (uint32_t)strlen(s)}};
}

static cs_value vbin(const char *s, uint32_t n)
{
	return (cs_value){.type = CS_V_BIN, .u.s = {s, n}};
}

/* A query whose one parameter, of type t, is its shard key. */
static cs_query_def keyed(cs_param_type t)
{
	cs_query_def q;
	memset(&q, 0, sizeof q);
	snprintf(q.name, sizeof q.name, "q");
	q.nparams = 1;
	snprintf(q.params[0].name, sizeof q.params[0].name, "id");
	q.params[0].type = t;
	q.shard_key_index = 0;
	q.shard_index = -1;
	return q;
}

static uint64_t hash_of(cs_param_type t, cs_value v)
{
	cs_query_def q = keyed(t);
	cs_shard_key k;
	char e[256] = "";
	assert_int_equal(cs_params_shard_key(&q, &v, 1, &k, e, sizeof e), 0);
	return k.hash;
}

/* The vectors SHARDS.md publishes: an application's router must give the same numbers. */
static void hash_vectors(void **state)
{
	(void)state;
	/* FNV-1a-64 itself: the reference vectors of the algorithm */
	assert_true(cs_fnv1a64(CS_FNV1A64_INIT, "", 0) == UINT64_C(0xcbf29ce484222325));
	assert_true(cs_fnv1a64(CS_FNV1A64_INIT, "a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
	/* integers: int64 big-endian, whatever the declared width and the wire form */
	assert_true(hash_of(CS_PT_INT8, vint(42)) == UINT64_C(0xa8c7de32281a0d97));
	assert_true(hash_of(CS_PT_INT4, vint(42)) == UINT64_C(0xa8c7de32281a0d97));
	assert_true(hash_of(CS_PT_INT2, vstr("042")) == UINT64_C(0xa8c7de32281a0d97));
	assert_true(hash_of(CS_PT_INT8, vint(0)) == UINT64_C(0xa8c7f832281a39c5));
	assert_true(hash_of(CS_PT_INT8, vint(-1)) == UINT64_C(0x8cf51a8bfca3883d));
	assert_true(hash_of(CS_PT_INT8, vint(1000000)) == UINT64_C(0x2606cf31ddcedd12));
	assert_true(hash_of(CS_PT_INT8, vint(INT64_MAX)) == UINT64_C(0x2338a5f81f5ba4bd));
	/* text: the UTF-8 bytes as sent, not the escaped canonical text */
	assert_true(hash_of(CS_PT_TEXT, vstr("")) == UINT64_C(0xcbf29ce484222325));
	assert_true(hash_of(CS_PT_TEXT, vstr("user:42")) == UINT64_C(0x6c151ea4dcd221c2));
	assert_true(hash_of(CS_PT_TEXT, vstr("Zo\xc3\xab")) == UINT64_C(0x17a3b76d1a6f5cbc));
	/* uuid: its 16 bytes, from any accepted form */
	assert_true(hash_of(CS_PT_UUID, vstr("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")) ==
	            UINT64_C(0x922c7bdf539eeddf));
	assert_true(hash_of(CS_PT_UUID, vstr("{A0EEBC999C0B4EF8BB6D6BB9BD380A11}")) ==
	            UINT64_C(0x922c7bdf539eeddf));
	/* bytea: its bytes, binary or hex */
	assert_true(hash_of(CS_PT_BYTEA, vbin("\x00\xff", 2)) == UINT64_C(0x0831c907b4ea2b60));
	assert_true(hash_of(CS_PT_BYTEA, vstr("\\x00FF")) == UINT64_C(0x0831c907b4ea2b60));
	/* the shard: jump(h, S), shards in section order; {h, S=2, S=3, S=4} as SHARDS.md */
	static const struct {
		uint64_t h;
		int s[3];
	} v[] = {
	        {UINT64_C(0xa8c7de32281a0d97), {0, 0, 0}}, /* int 42 */
	        {UINT64_C(0xa8c7f832281a39c5), {0, 0, 3}}, /* int 0 */
	        {UINT64_C(0x8cf51a8bfca3883d), {0, 0, 0}}, /* int -1 */
	        {UINT64_C(0x2606cf31ddcedd12), {1, 2, 2}}, /* int 1000000 */
	        {UINT64_C(0x2338a5f81f5ba4bd), {0, 2, 2}}, /* int INT64_MAX */
	        {UINT64_C(0xcbf29ce484222325), {1, 1, 1}}, /* text '' */
	        {UINT64_C(0x6c151ea4dcd221c2), {1, 1, 1}}, /* text user:42 */
	        {UINT64_C(0x17a3b76d1a6f5cbc), {1, 2, 2}}, /* text Zoë */
	        {UINT64_C(0x922c7bdf539eeddf), {0, 2, 2}}, /* uuid */
	        {UINT64_C(0x0831c907b4ea2b60), {1, 1, 3}}, /* bytea 00ff */
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		assert_int_equal(cs_shard_of_hash(v[i].h, 1), 0);
		for (int s = 2; s <= 4; s++)
			assert_int_equal(cs_shard_of_hash(v[i].h, s), v[i].s[s - 2]);
	}
	/* jump itself, beyond small S (Python, SHARDS.md) */
	assert_int_equal(cs_jump_hash(UINT64_C(0xa8c7de32281a0d97), 1000), 779);
	assert_int_equal(cs_jump_hash(UINT64_C(0xa8c7de32281a0d97), 65536), 49558);
	assert_int_equal(cs_jump_hash(UINT64_MAX, 1000), 313);
	assert_int_equal(cs_jump_hash(0, 10), 0);
	assert_int_equal(cs_shard_of_hash(1, 0), -1);
}

/* Going from S to S+1 shards moves a key only to the new shard, and about 1/(S+1) of them:
 * 10,000 int keys from 3 to 4 shards (Python: 2470 move), and every step 1..15 to 2..16.
 * Control: the same check on `h mod S` (the map before review 14) must fail it. */
static void hash_consistent(void **state)
{
	(void)state;
	enum { N = 10000 };
	int moved = 0, moved_mod = 0, to_old_mod = 0, count[4] = {0};
	for (int i = 0; i < N; i++) {
		uint64_t h = hash_of(CS_PT_INT8, vint(i));
		int a = cs_shard_of_hash(h, 3), b = cs_shard_of_hash(h, 4);
		assert_in_range(a, 0, 2);
		assert_in_range(b, 0, 3);
		count[b]++;
		if (a != b) {
			assert_int_equal(b, 3); /* only to the new shard */
			moved++;
		}
		int am = (int)(h % 3), bm = (int)(h % 4);
		if (am != bm) {
			moved_mod++;
			to_old_mod += bm != 3;
		}
	}
	/* 1/4 of N, within 12 % of it; the 4 shards each within 12 % of N/4 */
	assert_in_range(moved, N / 4 - N / 32, N / 4 + N / 32);
	for (int s = 0; s < 4; s++)
		assert_in_range(count[s], N / 4 - N / 32, N / 4 + N / 32);
	/* control: modulo moves most keys, and among old shards */
	assert_true(moved_mod > N / 2);
	assert_true(to_old_mod > 0);
	/* every step from S to S+1 up to 16 shards, over text keys too */
	char key[32];
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof key, "user:%d", i);
		uint64_t h = hash_of(CS_PT_TEXT, vstr(key));
		for (int s = 1; s < 16; s++) {
			int a = cs_shard_of_hash(h, s), b = cs_shard_of_hash(h, s + 1);
			if (a != b)
				assert_int_equal(b, s);
		}
	}
}

/* bool, float, numeric, date, timestamptz are no shard key: their text forms are not
 * reproducible byte for byte by another language's router (config load refuses them;
 * this is the message if one reached the map anyway). */
static void hash_refused_types(void **state)
{
	(void)state;
	static const cs_param_type bad[] = {CS_PT_BOOL, CS_PT_FLOAT4, CS_PT_FLOAT8, CS_PT_NUMERIC,
	        CS_PT_DATE, CS_PT_TIMESTAMPTZ};
	static const char *const val[] = {
	        "true", "1.5", "1.5", "012.50", "2024-01-31", "2024-01-31 12:00:00+00"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cs_query_def q = keyed(bad[i]);
		cs_shard_key k;
		char e[256] = "";
		cs_value v = vstr(val[i]);
		assert_int_equal(
		        cs_params_shard_key(&q, &v, 1, &k, e, sizeof e), -CS_ERR_BAD_PARAMS);
		assert_non_null(strstr(e, "query q: parameter 1 (id) is the shard key and is "));
		assert_non_null(strstr(e, "must be int2, int4, int8, text, bytea or uuid"));
	}
	/* a query neither pinned nor keyed (config.c refuses it): a message all the same */
	cs_shard_def sh[2] = {{.name = "s1"}, {.name = "s2"}};
	cs_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.nshards = 2;
	cfg.shards = sh;
	cfg.shard_map = CS_SHARD_MAP_HASH;
	cs_query_def q = keyed(CS_PT_INT8);
	q.shard_key_index = -1;
	char e[256] = "";
	cs_value v = vint(1);
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), -CS_ERR_BAD_PARAMS);
	assert_string_equal(e, "query q: neither pinned to a shard ([query] shard) nor keyed "
	                       "([query] shard_key): it routes to no shard");
	cs_shard_key k;
	e[0] = '\0';
	assert_int_equal(cs_params_shard_key(&q, &v, 1, &k, e, sizeof e), -CS_ERR_BAD_PARAMS);
	assert_string_equal(e, "query q: has no shard key ([query] shard_key)");
}

static cs_shard_def two[2] = {{.name = "s1"}, {.name = "s2"}};

static void route_hash(void **state)
{
	(void)state;
	cs_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.nshards = 2;
	cfg.shards = two;
	cfg.shard_map = CS_SHARD_MAP_HASH;
	cs_query_def q = keyed(CS_PT_INT8);
	char e[256] = "";
	cs_value v = vint(42);
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), 0);
	v = vint(1000000);
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), 1);
	/* a NULL key, a bad key, a wrong count: errors naming query and parameter */
	v = (cs_value){.type = CS_V_NIL};
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), -CS_ERR_BAD_PARAMS);
	assert_non_null(strstr(e, "query q: parameter 1 (id) is the shard key and is NULL"));
	v = vstr("abc");
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), -CS_ERR_BAD_PARAMS);
	assert_non_null(strstr(e, "(id)"));
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 0, e, sizeof e), -CS_ERR_BAD_PARAMS);
	/* pinned: the key is not even read */
	cs_query_def p = keyed(CS_PT_INT8);
	p.shard_key_index = -1;
	p.shard_index = 1;
	v = (cs_value){.type = CS_V_NIL};
	assert_int_equal(cs_shard_pick(&cfg, &p, &v, 1, e, sizeof e), 1);
	/* the shard key among several parameters */
	cs_query_def m = keyed(CS_PT_TEXT);
	m.nparams = 2;
	snprintf(m.params[1].name, sizeof m.params[1].name, "uid");
	m.params[1].type = CS_PT_INT4;
	m.shard_key_index = 1;
	cs_value two_v[2] = {vstr("whatever"), vint(1000000)};
	assert_int_equal(cs_shard_pick(&cfg, &m, two_v, 2, e, sizeof e), 1);
}

static void route_ranges(void **state)
{
	(void)state;
	cs_shard_range r[3] = {{INT64_MIN, 0, 0}, {1, 1000000, 0}, {1000001, 2000000, 1}};
	cs_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.nshards = 2;
	cfg.shards = two;
	cfg.shard_map = CS_SHARD_MAP_RANGES;
	cfg.shard_ranges = r;
	cfg.nshard_ranges = 3;
	assert_int_equal(cs_shard_of_int(&cfg, INT64_MIN), 0);
	assert_int_equal(cs_shard_of_int(&cfg, 0), 0);
	assert_int_equal(cs_shard_of_int(&cfg, 1000000), 0);
	assert_int_equal(cs_shard_of_int(&cfg, 1000001), 1);
	assert_int_equal(cs_shard_of_int(&cfg, 2000000), 1);
	assert_int_equal(cs_shard_of_int(&cfg, 2000001), -1);
	assert_int_equal(cs_shard_of_int(&cfg, INT64_MAX), -1);
	cs_query_def q = keyed(CS_PT_INT4);
	char e[256] = "";
	cs_value v = vint(1000001);
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), 1);
	v = vstr("1000000");
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), 0);
	v = vint(2000001);
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), -CS_ERR_NO_SHARD);
	assert_string_equal(e, "query q: parameter 1 (id) = 2000001 is the shard key and lies in "
	                       "no range of [cachesvc] shard_ranges "
	                       "(-9223372036854775808..2000000): no shard holds it");
	/* below the first range */
	cfg.shard_ranges = r + 1;
	cfg.nshard_ranges = 2;
	v = vint(0);
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), -CS_ERR_NO_SHARD);
	assert_non_null(strstr(e, "= 0 is the shard key and lies in no range"));
	assert_non_null(strstr(e, "(1..2000000)"));
	/* one range */
	cfg.shard_ranges = r + 2;
	cfg.nshard_ranges = 1;
	assert_int_equal(cs_shard_of_int(&cfg, 1500000), 1);
	assert_int_equal(cs_shard_of_int(&cfg, 1000000), -1);
}

static void no_shards(void **state)
{
	(void)state;
	cs_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cs_query_def q = keyed(CS_PT_INT8);
	q.shard_key_index = -1;
	char e[8] = "";
	/* the implicit shard: nothing parsed, even a value the type would refuse */
	cs_value v = vstr("not a number");
	assert_int_equal(cs_shard_pick(&cfg, &q, &v, 1, e, sizeof e), 0);
}

/* The map as config.c loads it: ranges written out of order, the extremes of int8, a shard
 * reached by two ranges, a pinned query; hash over the file's section order. */
static void route_loaded(void **state)
{
	(void)state;
	cs_config *cfg = load_ok(
	        "[cachesvc]\nshard_map = ranges\nshard_ranges = 1000001-9223372036854775807:b, "
	        "-9223372036854775808-0:b, 1-1000000:a\n"
	        "[shard a]\nconninfo = host=127.0.0.1 port=5432 dbname=app\n"
	        "[shard b]\nconninfo = host=127.0.0.1 port=5442 dbname=app\n"
	        "[query u]\nsql = SELECT $1::int4\nparams = id:int4\nshard_key = id\n"
	        "[query p]\nsql = SELECT $1::text\nparams = t:text\nshard = a\n");
	const cs_query_def *u = cs_config_query(cfg, "u", 1), *p = cs_config_query(cfg, "p", 1);
	char e[256];
	cs_value v = vint(0);
	assert_int_equal(cs_shard_pick(cfg, u, &v, 1, e, sizeof e), 1);
	v = vint(1);
	assert_int_equal(cs_shard_pick(cfg, u, &v, 1, e, sizeof e), 0);
	v = vint(1000000);
	assert_int_equal(cs_shard_pick(cfg, u, &v, 1, e, sizeof e), 0);
	v = vint(1000001);
	assert_int_equal(cs_shard_pick(cfg, u, &v, 1, e, sizeof e), 1);
	v = vint(INT32_MIN);
	assert_int_equal(cs_shard_pick(cfg, u, &v, 1, e, sizeof e), 1);
	v = vstr("x");
	assert_int_equal(cs_shard_pick(cfg, p, &v, 1, e, sizeof e), 0);
	cs_config_free(cfg);
	/* hash: shards numbered in section order (42 -> 0 of 2, 1000000 -> 1 of 2) */
	cfg = load_ok("[cachesvc]\nshard_map = hash\n"
	              "[shard z]\nconninfo = host=127.0.0.1 port=5432 dbname=app\n"
	              "[shard a]\nconninfo = host=127.0.0.1 port=5442 dbname=app\n"
	              "[query u]\nsql = SELECT $1::int8\nparams = id:int8\nshard_key = id\n");
	u = cs_config_query(cfg, "u", 1);
	v = vint(42);
	assert_int_equal(cs_shard_pick(cfg, u, &v, 1, e, sizeof e), 0);
	assert_string_equal(cfg->shards[0].name, "z");
	v = vint(1000000);
	assert_int_equal(cs_shard_pick(cfg, u, &v, 1, e, sizeof e), 1);
	assert_string_equal(cfg->shards[1].name, "a");
	cs_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(hash_vectors),
	        cmocka_unit_test(hash_consistent),
	        cmocka_unit_test(hash_refused_types),
	        cmocka_unit_test(route_hash),
	        cmocka_unit_test(route_ranges),
	        cmocka_unit_test(no_shards),
	        cmocka_unit_test(route_loaded),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
