/* test_config_shards.c - unit tests of the sharding keys of config.c (backend/SHARDS.md):
 * [shard NAME], [cachesvc] shard_map and shard_ranges, [replica NAME] shard, [query NAME]
 * shard_key and shard. Every accepted form, and every refusal with the section and key its
 * message must name; a config without shards loads and shows exactly as before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char tmpdir[] = "/tmp/test_config_shards.XXXXXX";
static char ini_path[sizeof(tmpdir) + 32];
static char err[CS_CONFIG_ERRLEN];

/* ---- helpers ------------------------------------------------------------------------- */

#include "config_load.h"

/* Two shards, one replica each, a keyed query, a pinned one. */
#define SHARDS                                                                                     \
	"[shard s1]\nconninfo = host=127.0.0.1 port=5432 dbname=app\n"                             \
	"[shard s2]\nconninfo = host=127.0.0.1 port=5442 dbname=app\n"
#define REPLICAS                                                                                   \
	"[replica r1]\nconninfo = host=127.0.0.1 port=5433 dbname=app\nshard = s1\n"               \
	"[replica r2]\nconninfo = host=127.0.0.1 port=5443 dbname=app\nshard = s2\n"
#define Q_KEYED                                                                                    \
	"[query user_profile]\nsql = SELECT id, name FROM users WHERE id = $1\n"                   \
	"params = id:int8\nshard_key = id\ninvalidate_on = users(id = $1)\n"
#define Q_PINNED                                                                                   \
	"[query plan]\nsql = SELECT name FROM plans WHERE id = $1\nparams = id:int4\n"             \
	"shard = s1\n"
#define HASH      "[cachesvc]\nshard_map = hash\n"
#define RANGES(r) "[cachesvc]\nshard_map = ranges\nshard_ranges = " r "\n"

/* ---- accepted forms -------------------------------------------------------------------- */

static void test_no_shards_unchanged(void **state)
{
	/* one implicit shard: nothing set, nothing shown that was not shown before */
	cs_config *cfg =
	        load_ok("[primary]\nconninfo = host=127.0.0.1\n"
	                "[replica r1]\nconninfo = host=127.0.0.1 port=5433\n"
	                "[query q]\nsql = SELECT 1 WHERE $1::int8 = 1\nparams = id:int8\n");
	assert_int_equal(cfg->nshards, 0);
	assert_null(cfg->shards);
	assert_int_equal(cfg->shard_map, CS_SHARD_MAP_NONE);
	assert_int_equal(cfg->nshard_ranges, 0);
	assert_null(cfg->shard_map_text);
	assert_int_equal(cfg->replicas[0].shard_index, -1);
	assert_null(cfg->replicas[0].shard);
	assert_int_equal(cfg->queries[0].shard_key_index, -1);
	assert_int_equal(cfg->queries[0].shard_index, -1);
	char *shown = show_to_string(cfg);
	assert_null(strstr(strchr(shown, '\n'), "shard")); /* line 1 holds the file's path */
	free(shown);
	cs_config_free(cfg);
}

static void test_hash_map(void **state)
{
	cs_config *cfg = load_ok(HASH SHARDS REPLICAS Q_KEYED Q_PINNED);
	assert_int_equal(cfg->nshards, 2);
	assert_string_equal(cfg->shards[0].name, "s1");
	assert_string_equal(cfg->shards[1].name, "s2");
	assert_string_equal(cfg->shards[1].conninfo, "host=127.0.0.1 port=5442 dbname=app");
	assert_int_equal(cfg->shards[0].pool_size, 4);
	assert_null(cfg->shards[0].slot); /* no invalidator: no slot */
	assert_null(cfg->primary_conninfo);
	assert_int_equal(cfg->shard_map, CS_SHARD_MAP_HASH);
	assert_int_equal(cfg->nshard_ranges, 0);
	assert_int_equal(cfg->replicas[0].shard_index, 0);
	assert_int_equal(cfg->replicas[1].shard_index, 1);
	const cs_query_def *q = cs_config_query(cfg, "user_profile", 12);
	assert_non_null(q);
	assert_string_equal(q->shard_key, "id");
	assert_int_equal(q->shard_key_index, 0);
	assert_int_equal(q->shard_index, -1);
	q = cs_config_query(cfg, "plan", 4);
	assert_int_equal(q->shard_key_index, -1);
	assert_int_equal(q->shard_index, 0);
	cs_config_free(cfg);
	/* review 28 R28-1: each shard its own slot by default, "<[invalidator] slot>_<shard>" */
	cfg = load_ok(HASH SHARDS REPLICAS Q_KEYED "[invalidator]\nenabled = on\n");
	assert_string_equal(cfg->shards[0].slot, "cachesvc_s1");
	assert_string_equal(cfg->shards[1].slot, "cachesvc_s2");
	cs_config_free(cfg);

	/* any parameter type routes by hash; the key may be the second parameter */
	cfg = load_ok(HASH SHARDS "[query t]\nsql = SELECT 1 WHERE $1::int4 = 1 AND $2::text = ''\n"
	                          "params = a:int4, tenant:text\nshard_key = tenant\n");
	assert_int_equal(cfg->queries[0].shard_key_index, 1);
	cs_config_free(cfg);
}

static void test_shard_keys_and_invalidator(void **state)
{
	/* per-shard pool and slot; the invalidator needs no [primary] with shards */
	cs_config *cfg = load_ok(HASH "[invalidator]\nenabled = on\nslot = cs\n"
	                              "[shard a]\nconninfo = host=h1 dbname=app\npool_size = 9\n"
	                              "slot = cs_a\n"
	                              "[shard b]\nconninfo = postgresql://h2/app\n" Q_KEYED);
	assert_int_equal(cfg->shards[0].pool_size, 9);
	assert_string_equal(cfg->shards[0].slot, "cs_a");
	assert_string_equal(cfg->shards[1].slot, "cs_b");
	assert_true(cfg->inval_enabled);
	cs_config_free(cfg);
	/* one database per shard on one server is two shards */
	cfg = load_ok(HASH "[shard a]\nconninfo = host=h dbname=app1\n"
	                   "[shard b]\nconninfo = host=h dbname=app2\n" Q_KEYED);
	assert_int_equal(cfg->nshards, 2);
	cs_config_free(cfg);
	/* a shard without replicas reads from its primary */
	cfg = load_ok(HASH SHARDS Q_KEYED);
	assert_int_equal(cfg->nreplicas, 0);
	cs_config_free(cfg);
}

static void test_ranges_map(void **state)
{
	cs_config *cfg =
	        load_ok(RANGES("1-1000000:s1, 1000001-2000000:s2") SHARDS REPLICAS Q_KEYED);
	assert_int_equal(cfg->shard_map, CS_SHARD_MAP_RANGES);
	assert_int_equal(cfg->nshard_ranges, 2);
	assert_int_equal(cfg->shard_ranges[0].lo, 1);
	assert_int_equal(cfg->shard_ranges[0].hi, 1000000);
	assert_int_equal(cfg->shard_ranges[0].shard, 0);
	assert_int_equal(cfg->shard_ranges[1].lo, 1000001);
	assert_int_equal(cfg->shard_ranges[1].hi, 2000000);
	assert_int_equal(cfg->shard_ranges[1].shard, 1);
	cs_config_free(cfg);

	/* written in any order (sorted on load), negative keys, several ranges per shard,
	 * int2 and int4 keys, the extremes of int8 */
	cfg = load_ok(RANGES("0-9:s2, -9223372036854775808--1:s1, 10-9223372036854775807:s1") SHARDS
	        "[query q]\nsql = SELECT $1::int2\nparams = k:int2\nshard_key = k\n"
	        "[query r]\nsql = SELECT $1::int4\nparams = k:int4\nshard_key = k\n");
	assert_int_equal(cfg->nshard_ranges, 3);
	assert_true(cfg->shard_ranges[0].lo == INT64_MIN);
	assert_int_equal(cfg->shard_ranges[0].hi, -1);
	assert_int_equal(cfg->shard_ranges[0].shard, 0);
	assert_int_equal(cfg->shard_ranges[1].lo, 0);
	assert_int_equal(cfg->shard_ranges[1].shard, 1);
	assert_true(cfg->shard_ranges[2].hi == INT64_MAX);
	cs_config_free(cfg);

	/* a shard in no range is fine when a query is pinned to it */
	cfg = load_ok(RANGES("1-10:s2") SHARDS Q_KEYED Q_PINNED);
	assert_int_equal(cfg->nshard_ranges, 1);
	cs_config_free(cfg);
}

static void test_show_round_trip(void **state)
{
	cs_config *cfg = load_ok(RANGES("1-10:s1, 11-20:s2") SHARDS REPLICAS Q_KEYED Q_PINNED);
	char *a = show_to_string(cfg);
	assert_non_null(
	        strstr(a, "\n[shard s1]\nconninfo = host=127.0.0.1 port=5432 dbname=app\n"));
	assert_non_null(strstr(a, "shard_map = ranges\n"));
	assert_non_null(strstr(a, "shard_ranges = 1-10:s1, 11-20:s2\n"));
	assert_non_null(strstr(a, "shard_key = id\n"));
	cs_config_free(cfg);
	/* what show prints loads back to the same config */
	const char *body = strchr(a, '\n');
	cfg = load_ok(body);
	char *b = show_to_string(cfg);
	assert_string_equal(strchr(b, '\n'), body);
	free(a);
	free(b);
	cs_config_free(cfg);
}

static void test_reload(void **state)
{
	cs_config *a = load_ok(HASH SHARDS Q_KEYED);
	cs_config *b = load_ok(HASH SHARDS Q_PINNED REPLICAS);
	/* queries and replicas are reloadable */
	assert_true(cs_config_reloadable(a, b, err));
	cs_config_free(b);
	b = load_ok(HASH "[shard s1]\nconninfo = host=127.0.0.1 port=5432 dbname=app\n"
	                 "[shard s2]\nconninfo = host=127.0.0.1 port=5442 dbname=app\n"
	                 "pool_size = 8\n" Q_KEYED);
	assert_false(cs_config_reloadable(a, b, err));
	assert_non_null(strstr(err, "[shard NAME] sections changed"));
	cs_config_free(b);
	b = load_ok(RANGES("1-5:s1, 6-9:s2") SHARDS Q_KEYED);
	assert_false(cs_config_reloadable(a, b, err));
	assert_non_null(strstr(err, "[cachesvc] shard_map changed"));
	cs_config_free(b);
	/* from no shards to shards: refused (the running engine has one implicit shard) */
	b = load_ok("[primary]\nconninfo = host=x\n");
	assert_false(cs_config_reloadable(b, a, err));
	cs_config_free(b);
	cs_config_free(a);
}

/* ---- refusals: each names the section and the key ------------------------------------ */

static void test_refused_without_shards(void **state)
{
#define P "[primary]\nconninfo = host=x\n"
	assert_load_error(P "[cachesvc]\nshard_map = hash\n",
	        "cachesvc.ini:4: [cachesvc] shard_map: set but there are no [shard NAME]", NULL);
	assert_load_error(P "[cachesvc]\nshard_ranges = 1-2:a\n",
	        "cachesvc.ini:4: [cachesvc] shard_ranges: set but there are no [shard NAME]", NULL);
	assert_load_error(P "[replica r]\nconninfo = host=y\nshard = s1\n",
	        "cachesvc.ini:5: [replica r] shard: unknown shard \"s1\"", "no [shard NAME]", NULL);
	assert_load_error(P "[query q]\nsql = SELECT $1::int8\nparams = id:int8\nshard_key = id\n",
	        "cachesvc.ini:6: [query q] shard_key: set but there are no [shard NAME]", NULL);
	assert_load_error(P "[query q]\nsql = SELECT 1\nshard = s1\n",
	        "cachesvc.ini:5: [query q] shard: unknown shard \"s1\"", NULL);
#undef P
}

static void test_refused_sections(void **state)
{
	assert_load_error(HASH SHARDS "[shard s1]\nconninfo = host=z\n" Q_KEYED,
	        "cachesvc.ini:7: duplicate [shard s1] (first at line 3)", NULL);
	assert_load_error(HASH SHARDS
	        "[shard s3]\nconninfo = port=5442 host=127.0.0.1 dbname=app\n" Q_KEYED,
	        "cachesvc.ini:8: [shard s3] conninfo: the same server and database as [shard s2]",
	        NULL);
	assert_load_error(HASH "[shard s1]\npool_size = 2\n",
	        "cachesvc.ini:3: [shard s1] conninfo: required key missing", NULL);
	assert_load_error(HASH "[shard s1]\nconninfo = host=x\nslot = Bad-Slot\n",
	        "cachesvc.ini:5: [shard s1] slot:", NULL);
	/* review 28 R28-1: two shards' slots of one name (a slot name is per server); a default
	 * made lower case with '.' and '-' as '_' meeting another shard's */
	assert_load_error(HASH "[shard a]\nconninfo = host=h dbname=d1\nslot = cs_x\n"
	                       "[shard b]\nconninfo = host=h dbname=d2\nslot = cs_x\n" Q_KEYED
	                       "[invalidator]\nenabled = on\n",
	        "cachesvc.ini:8: [shard b] slot: \"cs_x\" is also [shard a]'s", NULL);
	assert_load_error(HASH "[shard S-1]\nconninfo = host=h dbname=d1\n"
	                       "[shard s_1]\nconninfo = host=h dbname=d2\n" Q_KEYED
	                       "[invalidator]\nenabled = on\n",
	        "[shard s_1] slot: \"cachesvc_s_1\" is also [shard S-1]'s", NULL);
	assert_load_error(HASH "[shard s1]\nconninfo = host=x\nsql = SELECT 1\n",
	        "[shard s1] sql: unknown key here (it belongs in [query NAME])", NULL);
	assert_load_error(HASH "[shard]\nconninfo = host=x\n", "[shard", "name missing", NULL);
	assert_load_error("[primary]\nconninfo = host=p\n" HASH SHARDS Q_KEYED,
	        "cachesvc.ini:1: [primary]: not allowed with [shard NAME] sections", NULL);
	assert_load_error(HASH "[shard s1]\nconninfo = host=x\n[shard s2]\nconninfo = =\n",
	        "cachesvc.ini:6: [shard s2] conninfo: bad conninfo", NULL);
}

static void test_refused_map(void **state)
{
	assert_load_error(SHARDS Q_KEYED,
	        "cachesvc.ini: [cachesvc] shard_map: required with [shard NAME] sections", NULL);
	assert_load_error("[cachesvc]\nshard_map = modulo\n" SHARDS Q_KEYED,
	        "cachesvc.ini:2: [cachesvc] shard_map: must be hash or ranges", NULL);
	assert_load_error("[cachesvc]\nshard_map = hash\nshard_ranges = 1-2:s1\n" SHARDS Q_KEYED,
	        "cachesvc.ini:3: [cachesvc] shard_ranges: set but shard_map = hash", NULL);
	assert_load_error("[cachesvc]\nshard_map = ranges\n" SHARDS Q_KEYED,
	        "cachesvc.ini:2: [cachesvc] shard_ranges: required by shard_map = ranges", NULL);
}

static void test_refused_ranges(void **state)
{
#define R(r, ...)                                                                                  \
	assert_load_error(RANGES(r) SHARDS Q_KEYED,                                                \
	        "cachesvc.ini:3: [cachesvc] "                                                      \
	        "shard_ranges: ",                                                                  \
	        __VA_ARGS__, NULL)
	R("1-100:s1, 50-200:s2", "1-100:s1 and 50-200:s2 overlap");
	R("1-100:s1, 1-100:s2", "overlap");
	R("1-100:s1, 101-200:s2, 150-160:s1", "overlap");
	R("1-100:s1, 102-200:s2", "gap: keys 101-101 are in no range");
	R("1-100:s1, 201-300:s2", "gap: keys 101-200");
	R("1-100:s1, 101-200:s9", "unknown shard \"s9\" (shards: s1, s2)");
	R("1-100:s1, 101-200:", "unknown shard \"\"");
	R("100-1:s1", "100 is above 1");
	R("1-x:s1", "expected LO-HI:SHARD");
	R("1:s1", "expected LO-HI:SHARD");
	R("1-100 s1", "expected LO-HI:SHARD");
	R("1-99999999999999999999:s1", "expected LO-HI:SHARD");
	R(",", "\"\": expected LO-HI:SHARD");
	R("1-100:s1", "[shard s2] is in no range and no query is pinned to it");
#undef R
}

static void test_refused_replicas(void **state)
{
	assert_load_error(HASH SHARDS "[replica r1]\nconninfo = host=r\n" Q_KEYED,
	        "cachesvc.ini:7: [replica r1] shard: missing", "(shards: s1, s2)", NULL);
	assert_load_error(HASH SHARDS "[replica r1]\nconninfo = host=r\nshard = s3\n" Q_KEYED,
	        "cachesvc.ini:9: [replica r1] shard: unknown shard \"s3\" (shards: s1, s2)", NULL);
}

static void test_refused_queries(void **state)
{
	/* no shard key on a sharded deployment: every table is sharded unless pinned */
	assert_load_error(HASH SHARDS "[query q]\nsql = SELECT $1::int8\nparams = id:int8\n",
	        "cachesvc.ini:7: [query q] shard_key: missing", "shard = NAME", NULL);
	assert_load_error(
	        HASH SHARDS "[query q]\nsql = SELECT 1\n", "[query q] shard_key: missing", NULL);
	assert_load_error(HASH SHARDS "[query q]\nsql = SELECT $1::int8\nparams = id:int8\n"
	                              "shard_key = user_id\n",
	        "cachesvc.ini:10: [query q] shard_key: \"user_id\" is not one of the query's "
	        "parameters (id)",
	        NULL);
	assert_load_error(HASH SHARDS "[query q]\nsql = SELECT 1\nshard_key = id\n",
	        "[query q] shard_key: \"id\" is not one of the query's parameters (it has none)",
	        NULL);
	assert_load_error(RANGES("1-10:s1, 11-20:s2") SHARDS
	        "[query q]\nsql = SELECT $1::text\nparams = name:text\nshard_key = name\n",
	        "cachesvc.ini:11: [query q] shard_key: \"name\" is text; shard_map = ranges needs "
	        "an integer parameter",
	        NULL);
	assert_load_error(RANGES("1-10:s1, 11-20:s2") SHARDS
	        "[query q]\nsql = SELECT $1::uuid\nparams = u:uuid\nshard_key = u\n",
	        "[query q] shard_key: \"u\" is uuid", NULL);
	assert_load_error(HASH SHARDS "[query q]\nsql = SELECT 1\nshard = s7\n",
	        "cachesvc.ini:9: [query q] shard: unknown shard \"s7\" (shards: s1, s2)", NULL);
	assert_load_error(HASH SHARDS "[query q]\nsql = SELECT $1::int8\nparams = id:int8\n"
	                              "shard_key = id\nshard = s1\n",
	        "cachesvc.ini:11: [query q] shard: set together with shard_key", NULL);
}

/* A shard key is int2/4/8, text, bytea or uuid: the other types' text forms are not
 * reproducible byte for byte by an application's router (SHARDS.md section 3). */
static void test_refused_key_types(void **state)
{
	static const char *const bad[] = {
	        "bool", "float4", "float8", "numeric", "date", "timestamptz"};
	char text[512], want[128];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text,
		        HASH SHARDS
		        "[query q]\nsql = SELECT $1::%s\nparams = k:%s\nshard_key = k\n",
		        bad[i], bad[i]);
		snprintf(want, sizeof want, "cachesvc.ini:10: [query q] shard_key: \"k\" is %s; ",
		        bad[i]);
		assert_load_error(text, want,
		        "a shard key must be int2, int4, int8, text, bytea or uuid", NULL);
	}
	/* each accepted family loads */
	static const char *const good[] = {"int2", "int4", "int8", "text", "bytea", "uuid"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		snprintf(text, sizeof text,
		        HASH SHARDS
		        "[query q]\nsql = SELECT $1::%s\nparams = k:%s\nshard_key = k\n",
		        good[i], good[i]);
		cs_config_free(load_ok(text));
	}
}

/* Every query's shard key is of one type family: int8 42 and text "42" hash apart, so a user
 * id keyed as int8 in one query and as text in another would live on two shards. The
 * message names both queries and both parameters. */
static void test_refused_mixed_families(void **state)
{
	/* integers of any width agree (int64 big-endian), and a pinned query does not count */
	cs_config *cfg = load_ok(HASH SHARDS Q_KEYED Q_PINNED
	        "[query q2]\nsql = SELECT $1::int4\nparams = uid:int4\nshard_key = uid\n"
	        "[query q3]\nsql = SELECT $1::text\nparams = t:text\nshard = s2\n");
	cs_config_free(cfg);
	assert_load_error(HASH SHARDS Q_KEYED
	        "[query by_name]\nsql = SELECT $1::text\nparams = uid:text\nshard_key = uid\n",
	        "cachesvc.ini:15: [query by_name] shard_key: \"uid\" is text, but [query "
	        "user_profile] shard_key \"id\" is int8: every shard key must be of one type "
	        "family (here integer (int2, int4, int8))",
	        NULL);
	/* the first keyed query sets the family, whatever its position */
	assert_load_error(HASH SHARDS Q_PINNED
	        "[query a]\nsql = SELECT $1::uuid\nparams = u:uuid\nshard_key = u\n"
	        "[query b]\nsql = SELECT $1::uuid\nparams = v:uuid\nshard_key = v\n"
	        "[query c]\nsql = SELECT $1::bytea\nparams = w:bytea\nshard_key = w\n",
	        "[query c] shard_key: \"w\" is bytea, but [query a] shard_key \"u\" is uuid", NULL);
	/* text and bytea hash the same bytes, but are two families all the same */
	assert_load_error(HASH SHARDS
	        "[query a]\nsql = SELECT $1::text\nparams = u:text\nshard_key = u\n"
	        "[query b]\nsql = SELECT $1::bytea\nparams = v:bytea\nshard_key = v\n",
	        "[query b] shard_key: \"v\" is bytea, but [query a] shard_key \"u\" is text", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_no_shards_unchanged),
	        cmocka_unit_test(test_hash_map),
	        cmocka_unit_test(test_shard_keys_and_invalidator),
	        cmocka_unit_test(test_ranges_map),
	        cmocka_unit_test(test_show_round_trip),
	        cmocka_unit_test(test_reload),
	        cmocka_unit_test(test_refused_without_shards),
	        cmocka_unit_test(test_refused_sections),
	        cmocka_unit_test(test_refused_map),
	        cmocka_unit_test(test_refused_ranges),
	        cmocka_unit_test(test_refused_replicas),
	        cmocka_unit_test(test_refused_queries),
	        cmocka_unit_test(test_refused_key_types),
	        cmocka_unit_test(test_refused_mixed_families),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
