/* test_verify_route.c - cachesvc-verify's routing of a cached key back to its shard
 * (verify/verify_route.h): the canonical text of a key decodes to the parameters the map
 * routes, by ranges and by hash (the published vectors of SHARDS.md section 3); a pinned
 * query's keys belong to its shard; a key in no range, or a key that does not decode, is an
 * error; without shards every key is the implicit shard's. */
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
#include "cs_proto.h"
#include "verify_route.h"

static char tmpdir[] = "/tmp/test_verify_route.XXXXXX";
static char ini_path[sizeof(tmpdir) + 32];
static char err[CS_CONFIG_ERRLEN];

#include "config_load.h"

static int shard_of(const cs_config *cfg, const char *q, const char *canon)
{
	char e[CS_CONFIG_ERRLEN] = "";
	const cs_query_def *d = cs_config_query(cfg, q, strlen(q));
	assert_non_null(d);
	return cs_verify_key_shard(cfg, d, canon, strlen(canon), e, sizeof e);
}

static void by_ranges(void **state)
{
	(void)state;
	cs_config *cfg =
	        load_ok("[cachesvc]\nshard_map = ranges\nshard_ranges = 1-1000:s1, 1001-2000:s2\n"
	                "[shard s1]\nconninfo = host=127.0.0.1 port=5432 dbname=app\n"
	                "[shard s2]\nconninfo = host=127.0.0.1 port=5442 dbname=app\n"
	                "[query u]\nsql = SELECT $1::int8, $2::text\nparams = id:int8, t:text\n"
	                "shard_key = id\n"
	                "[query v]\nsql = SELECT $1::text, $2::int4\nparams = t:text, "
	                "id:int4\nshard_key = id\n"
	                "[query p]\nsql = SELECT $1::text\nparams = t:text\nshard = s2\n");
	assert_int_equal(shard_of(cfg, "u", "1:x"), 0);
	assert_int_equal(shard_of(cfg, "u", "1000:x"), 0);
	assert_int_equal(shard_of(cfg, "u", "1001:x"), 1);
	assert_int_equal(shard_of(cfg, "u", "2000:"), 1);
	/* the shard key is the second parameter */
	assert_int_equal(shard_of(cfg, "v", "a:5"), 0);
	assert_int_equal(shard_of(cfg, "v", "a:1500"), 1);
	/* pinned: its shard, whatever the parameters */
	assert_int_equal(shard_of(cfg, "p", "anything"), 1);
	/* in no range, not decodable, NULL key */
	assert_int_equal(shard_of(cfg, "u", "2001:x"), -CS_ERR_NO_SHARD);
	assert_int_equal(shard_of(cfg, "u", "abc:x"), -CS_ERR_BAD_PARAMS);
	assert_int_equal(shard_of(cfg, "u", "~:x"), -CS_ERR_BAD_PARAMS);
	cs_config_free(cfg);
}

static void by_hash(void **state)
{
	(void)state;
	cs_config *cfg = load_ok("[cachesvc]\nshard_map = hash\n"
	                         "[shard a]\nconninfo = host=127.0.0.1 port=5432 dbname=app\n"
	                         "[shard b]\nconninfo = host=127.0.0.1 port=5442 dbname=app\n"
	                         "[query u]\nsql = SELECT $1::int8\nparams = id:int8\n"
	                         "shard_key = id\n");
	/* SHARDS.md section 3: 42 -> 0 of 2, 1000000 -> 1 of 2 */
	assert_int_equal(shard_of(cfg, "u", "42"), 0);
	assert_int_equal(shard_of(cfg, "u", "1000000"), 1);
	cs_config_free(cfg);
}

static void unsharded(void **state)
{
	(void)state;
	cs_config *cfg = load_ok("[primary]\nconninfo = host=127.0.0.1 port=5432 dbname=app\n"
	                         "[query u]\nsql = SELECT $1::int8\nparams = id:int8\n");
	assert_int_equal(shard_of(cfg, "u", "42"), 0);
	assert_int_equal(shard_of(cfg, "u", "not canonical at all"), 0);
	cs_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(by_ranges),
	        cmocka_unit_test(by_hash),
	        cmocka_unit_test(unsharded),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
