/* test_config.c - unit tests of config.c: parsing, defaults, validation messages, masking,
 * show round trip, reload rules, hostile files, and CONFIG.md against the key table.
 * Usage: test_config CONFIG.md cachesvc.ini.example */
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
#include "parse.h"
#include "log.h"
#include "redis_url.h"

static const char *doc_path;     /* argv[1]: cachesvc/config/CONFIG.md */
static const char *example_path; /* argv[2]: cachesvc/config/cachesvc.ini.example */
static char tmpdir[] = "/tmp/test_config.XXXXXX";
static char ini_path[sizeof(tmpdir) + 32];
static char err[CS_CONFIG_ERRLEN];

#define BASE "[primary]\nconninfo = host=127.0.0.1 dbname=app\n"

/* ---- helpers ------------------------------------------------------------------------- */

#include "config_load.h"

/* Asserts two show outputs are equal after their first line (which names the file). */
static void assert_same_show(const char *a, const char *b)
{
	size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
	assert_string_equal(a + la, b + lb);
}

/* noinline: gcc 12 -Wdangling-pointer misreads open_memstream(&local) once inlined */
__attribute__((noinline)) static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(f);
	fclose(m);
	return buf;
}

/* ---- the DESIGN.md example ------------------------------------------------------------- */

static const char design_example[] =
        "[cachesvc]\n"
        "listen = 127.0.0.1:6380\n"
        "admin_listen = 127.0.0.1:9180       ; /metrics, /healthz\n"
        "[redis]\n"
        "url = redis://127.0.0.1:6379/0\n"
        "[primary]\n"
        "conninfo = host=127.0.0.1 port=5432 dbname=app user=cachesvc\n"
        "[replica r1]\n"
        "conninfo = host=127.0.0.1 port=5433 dbname=app user=cachesvc\n"
        "tier = critical                      ; priority pools, see 4\n"
        "[query user_profile]\n"
        "sql = SELECT id, name, email FROM users WHERE id = $1\n"
        "params = id:int8\n"
        "ttl = 1h\n"
        "invalidate_on = users(id = $1)\n"
        "[query conv_messages]\n"
        "sql = SELECT id, user_id, content, created_at FROM messages\n"
        "      WHERE conv_id = $1 ORDER BY created_at DESC LIMIT 50\n"
        "params = conv_id:int8\n"
        "ttl = 10m\n"
        "invalidate_on = messages(conv_id = $1)\n"
        "[query user_message_count]\n"
        "sql = SELECT count(*) FROM messages WHERE user_id = $1\n"
        "params = user_id:int8\n"
        "kind = aggregate\n"
        "ttl = 30s\n"
        "ttl_jitter = 10%\n"
        "stale_while_revalidate = 60s\n"
        "invalidate_on = messages(user_id = $1)\n"
        "min_lifetime = 5s\n";

static void test_design_example(void **state)
{
	cs_config *cfg = load_ok(design_example);
	assert_string_equal(cfg->listen, "127.0.0.1:6380");
	assert_string_equal(cfg->admin_listen, "127.0.0.1:9180");
	assert_null(cfg->unix_socket);
	assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
	assert_string_equal(
	        cfg->primary_conninfo, "host=127.0.0.1 port=5432 dbname=app user=cachesvc");
	assert_int_equal(cfg->nreplicas, 1);
	assert_string_equal(cfg->replicas[0].name, "r1");
	assert_int_equal(cfg->replicas[0].tiers, 1u << CS_TIER_CRITICAL);
	assert_int_equal(cfg->replicas[0].pool_size, 4);
	assert_int_equal(cfg->nqueries, 3);

	const cs_query_def *q = cs_config_query(cfg, "user_profile", strlen("user_profile"));
	assert_non_null(q);
	assert_string_equal(q->sql, "SELECT id, name, email FROM users WHERE id = $1");
	assert_int_equal(q->nparams, 1);
	assert_string_equal(q->params[0].name, "id");
	assert_int_equal(q->params[0].type, CS_PT_INT8);
	assert_int_equal(q->kind, CS_KIND_ROW);
	assert_int_equal(q->ttl_ms, 3600000);
	assert_int_equal(q->ninval, 1);
	assert_string_equal(q->inval[0].schema, "public");
	assert_string_equal(q->inval[0].table, "users");
	assert_int_equal(q->inval[0].ncols, 1);
	assert_string_equal(q->inval[0].cols[0], "id");
	assert_int_equal(q->inval[0].param_index[0], 0);

	q = cs_config_query(cfg, "conv_messages", strlen("conv_messages"));
	assert_non_null(q);
	/* continuation lines are joined with a newline, leading whitespace dropped */
	assert_string_equal(q->sql, "SELECT id, user_id, content, created_at FROM messages\n"
	                            "WHERE conv_id = $1 ORDER BY created_at DESC LIMIT 50");
	assert_int_equal(q->ttl_ms, 600000);
	assert_string_equal(q->inval[0].cols[0], "conv_id");

	q = cs_config_query(cfg, "user_message_count", strlen("user_message_count"));
	assert_non_null(q);
	assert_int_equal(q->kind, CS_KIND_AGGREGATE);
	assert_int_equal(q->ttl_ms, 30000);
	assert_int_equal(q->ttl_jitter_pct, 10);
	assert_int_equal(q->stale_while_revalidate_ms, 60000);
	assert_int_equal(q->max_stale_ms, 90000);
	assert_int_equal(q->min_lifetime_ms, 5000);
	assert_int_equal(q->negative_ttl_ms, 0);
	assert_true(q->xfetch_beta == 1.0);

	/* lookup by (pointer, length): not NUL-terminated input */
	assert_non_null(cs_config_query(cfg, "user_profileXYZ", 12));
	assert_null(cs_config_query(cfg, "user_prof", 9));
	assert_null(cs_config_query(cfg, "nope", 4));
	cs_config_free(cfg);
}

static void test_example_file_loads(void **state)
{
	cs_config *cfg = cs_config_load(example_path, err);
	if (!cfg)
		fail_msg("%s", err);
	assert_int_equal(cfg->nreplicas, 2);
	assert_true(cfg->inval_enabled);
	assert_int_equal(cfg->replicas[1].tiers, 1u << CS_TIER_BATCH);
	const cs_query_def *q = cs_config_query(cfg, "top_posters", 11);
	assert_non_null(q);
	assert_int_equal(q->nparams, 0);
	assert_int_equal(q->ninval, 1);
	assert_int_equal(q->inval[0].ncols, 0);
	cs_config_free(cfg);
}

/* ---- defaults ---------------------------------------------------------------------- */

static void test_service_defaults(void **state)
{
	cs_config *cfg = load_ok(BASE);
	assert_string_equal(cfg->listen, "127.0.0.1:6380");
	assert_string_equal(cfg->admin_listen, "127.0.0.1:9180");
	assert_null(cfg->unix_socket);
	assert_int_equal(cfg->max_clients, 10000);
	assert_int_equal(cfg->max_inflight, 128);
	assert_int_equal(cfg->idle_timeout_ms, 0);
	assert_int_equal(cfg->request_timeout_ms, 5000);
	assert_int_equal(cfg->max_frame, 1 << 20);
	assert_int_equal(cfg->max_result, 1 << 20);
	assert_int_equal(cfg->queue_max, 1024);
	assert_int_equal(cfg->queue_timeout_ms, 1000);
	assert_int_equal(cfg->max_replica_lag_ms, 5000);
	assert_int_equal(cfg->max_replica_lag_bytes, 0);
	assert_true(cfg->primary_fallback);
	assert_int_equal(cfg->health_interval_ms, 1000);
	assert_int_equal(cfg->ryw_wait_ms, 200);
	assert_null(cfg->auth_token);
	assert_true(cfg->fence);
	assert_string_equal(cfg->log_level, "info");
	assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
	assert_int_equal(cfg->redis_timeout_ms, 1000);
	assert_int_equal(cfg->primary_pool_size, 4);
	assert_false(cfg->inval_enabled);
	assert_string_equal(cfg->inval_slot, "cachesvc");
	assert_string_equal(cfg->inval_publication, "cachesvc");
	assert_true(cfg->inval_create_publication);
	assert_int_equal(cfg->fence_ttl_ms, 60000);
	assert_int_equal(cfg->status_interval_ms, 1000);
	assert_int_equal(cfg->nreplicas, 0);
	assert_int_equal(cfg->nqueries, 0);
	cs_config_free(cfg);

	cfg = load_ok("[replica a]\nconninfo = host=x\n");
	assert_null(cfg->primary_conninfo);
	assert_int_equal(cfg->replicas[0].tiers, 7u);
	assert_int_equal(cfg->replicas[0].pool_size, 4);
	cs_config_free(cfg);
}

static void test_kind_defaults(void **state)
{
	cs_config *cfg = load_ok(BASE "[query r]\nsql = SELECT 1\n"
	                              "[query l]\nsql = SELECT 1\nkind = list\n"
	                              "[query a]\nsql = SELECT 1\nkind = aggregate\n");
	const cs_query_def *r = cs_config_query(cfg, "r", 1);
	assert_int_equal(r->kind, CS_KIND_ROW);
	assert_int_equal(r->ttl_ms, 3600000);
	assert_int_equal(r->ttl_jitter_pct, 0);
	assert_int_equal(r->stale_while_revalidate_ms, 0);
	assert_int_equal(r->max_stale_ms, 3600000);
	assert_int_equal(r->min_lifetime_ms, 0);
	assert_int_equal(r->negative_ttl_ms, 60000);
	assert_true(r->xfetch_beta == 0.0);
	assert_int_equal(r->ninval, 0);

	const cs_query_def *l = cs_config_query(cfg, "l", 1);
	assert_int_equal(l->ttl_ms, 600000);
	assert_int_equal(l->ttl_jitter_pct, 5);
	assert_int_equal(l->stale_while_revalidate_ms, 0);
	assert_int_equal(l->max_stale_ms, 600000);
	assert_int_equal(l->negative_ttl_ms, 60000);
	assert_true(l->xfetch_beta == 0.0);

	const cs_query_def *a = cs_config_query(cfg, "a", 1);
	assert_int_equal(a->ttl_ms, 30000);
	assert_int_equal(a->ttl_jitter_pct, 10);
	assert_int_equal(a->stale_while_revalidate_ms, 30000);
	assert_int_equal(a->max_stale_ms, 60000);
	assert_int_equal(a->min_lifetime_ms, 5000);
	assert_int_equal(a->negative_ttl_ms, 0);
	assert_true(a->xfetch_beta == 1.0);
	cs_config_free(cfg);

	/* derived defaults follow an explicit ttl, whatever the key order; explicit keys stay */
	cfg = load_ok(BASE "[query a]\nttl_jitter = 3%\nttl = 2m\nkind = aggregate\n"
	                   "sql = SELECT 1\nnegative_ttl = 7s\n");
	a = cs_config_query(cfg, "a", 1);
	assert_int_equal(a->ttl_ms, 120000);
	assert_int_equal(a->stale_while_revalidate_ms, 120000);
	assert_int_equal(a->max_stale_ms, 240000);
	assert_int_equal(a->ttl_jitter_pct, 3);
	assert_int_equal(a->negative_ttl_ms, 7000);
	cs_config_free(cfg);

	cfg = load_ok(BASE "[query a]\nsql = SELECT 1\nkind = aggregate\nttl = 10s\n"
	                   "stale_while_revalidate = 5s\nmax_stale = 1h\n");
	a = cs_config_query(cfg, "a", 1);
	assert_int_equal(a->max_stale_ms, 3600000);
	cs_config_free(cfg);

	assert_load_error(BASE "[query a]\nsql = SELECT 1\nttl = 10m\nmax_stale = 5m\n",
	        "cachesvc.ini:6: [query a] max_stale:", "5m", "ttl + stale_while_revalidate (10m)",
	        NULL);
	assert_load_error(BASE "[query a]\nsql = SELECT 1\nttl = 10m\n"
	                       "stale_while_revalidate = 1m\nmax_stale = 10m\n",
	        "[query a] max_stale:", "(11m)", NULL);
}

/* ---- value syntax ------------------------------------------------------------------ */

static void test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		int64_t ms;
	} good[] = {
	        {"0", 0},
	        {"250ms", 250},
	        {"30s", 30000},
	        {"10m", 600000},
	        {"1h", 3600000},
	        {"2d", 172800000},
	        {"15", 15000},
	        {"0ms", 0},
	        {"007s", 7000},
	};
	static const char *const bad[] = {
	        "",
	        "1x",
	        "-1s",
	        "-5",
	        "s",
	        "1.5s",
	        " 1s",
	        "1s ",
	        "1 s",
	        "1S",
	        "1sm",
	        "ms",
	        "99999999999999999999",
	        "9223372036854775807s",
	        "106751991167301d",
	        "+1s",
	        "1e3",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t ms = -1;
		assert_true(cs_parse_duration(good[i].s, &ms));
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms;
		if (cs_parse_duration(bad[i], &ms))
			fail_msg("accepted duration \"%s\"", bad[i]);
	}
	int64_t ms;
	assert_false(cs_parse_duration(NULL, &ms));
	assert_true(cs_parse_duration("9223372036854775807ms", &ms));
	assert_int_equal(ms, INT64_MAX);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t b;
	} good[] = {
	        {"0", 0},
	        {"512", 512},
	        {"512B", 512},
	        {"64kB", 65536},
	        {"64KB", 65536},
	        {"1MB", 1048576},
	        {"1mb", 1048576},
	        {"1M", 1048576},
	        {"1GB", 1073741824},
	        {"2G", 2147483648u},
	        {"1TB", 1099511627776ull},
	};
	static const char *const bad[] = {
	        "",
	        "-1",
	        "1XB",
	        "1.5MB",
	        "MB",
	        "1 MB",
	        "18446744073709551616",
	        "17179869184GB",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t b = 1;
		assert_true(cs_parse_size(good[i].s, &b));
		assert_int_equal(b, good[i].b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t b;
		if (cs_parse_size(bad[i], &b))
			fail_msg("accepted size \"%s\"", bad[i]);
	}
}

/* Loads BASE + "[section]\nkey = value" and returns the config (or NULL with err set). */
static cs_config *load_key(const char *section, const char *key, const char *value)
{
	char text[1024];
	if (strcmp(section, "query q") == 0)
		snprintf(text, sizeof(text), BASE "[query q]\nsql = SELECT 1\n%s = %s\n", key,
		        value);
	else if (strcmp(section, "primary") == 0)
		snprintf(text, sizeof(text), "[primary]\nconninfo = host=x\n%s = %s\n", key, value);
	else
		snprintf(text, sizeof(text), BASE "[%s]\n%s = %s\n", section, key, value);
	return load_text(text);
}

static void test_key_types(void **state)
{
	static const struct {
		const char *section, *key, *value;
		bool ok;
		const char *msg; /* part of the error */
	} cases[] = {
	        {"cachesvc", "max_clients", "500", true, NULL},
	        {"cachesvc", "max_clients", "0", false, "out of range 1..1000000"},
	        {"cachesvc", "max_clients", "12abc", false, "bad integer \"12abc\""},
	        {"cachesvc", "max_clients", "99999999999999999999", false, "bad integer"},
	        {"cachesvc", "max_inflight", "65537", false, "out of range"},
	        {"cachesvc", "max_inflight", "-3", false, "out of range"},
	        {"cachesvc", "request_timeout", "1x", false, "bad duration \"1x\""},
	        {"cachesvc", "request_timeout", "0", false, "out of range"},
	        {"cachesvc", "idle_timeout", "0", true, NULL},
	        {"cachesvc", "max_frame", "64kB", true, NULL},
	        {"cachesvc", "max_frame", "5GB", false, "out of range"},
	        {"cachesvc", "max_frame", "big", false, "bad size \"big\""},
	        {"cachesvc", "max_replica_lag_bytes", "16MB", true, NULL},
	        {"cachesvc", "primary_fallback", "off", true, NULL},
	        {"cachesvc", "primary_fallback", "YES", true, NULL},
	        {"cachesvc", "primary_fallback", "maybe", false, "bad boolean \"maybe\""},
	        {"cachesvc", "fence", "off", true, NULL},
	        {"cachesvc", "fence", "2", false, "bad boolean \"2\""},
	        {"cachesvc", "log_level", "debug", true, NULL},
	        {"cachesvc", "log_level", "loud", false, "must be debug, info, warning or error"},
	        {"cachesvc", "listen", "[::1]:6380", true, NULL},
	        {"cachesvc", "listen", "", true, NULL},
	        {"cachesvc", "listen", "localhost", false, "expected host:port"},
	        {"cachesvc", "listen", "127.0.0.1:70000", false, "port must be 1..65535"},
	        {"cachesvc", "listen", "0.0.0.0:6380", false,
	                "not a loopback address and auth_token is unset"},
	        {"cachesvc", "listen", "[::]:6380", false, "not a loopback address"},
	        {"cachesvc", "listen", "10.1.2.3:6380", false, "allow_unauthenticated = on"},
	        {"cachesvc", "listen", "127.0.0.2:6380", true, NULL},
	        {"cachesvc", "listen", "[::ffff:127.0.0.1]:6380", true, NULL},
	        {"cachesvc", "client_output_hard_limit", "1MB", false, "above max_reply"},
	        {"cachesvc", "admin_listen", "[::1]", false, "[v6addr]:port"},
	        {"cachesvc", "auth_token", "s3cret", true, NULL},
	        {"redis", "url", "redis://:pw@10.0.0.1:6390/2", true, NULL},
	        {"redis", "url", "unix:///run/redis.sock?db=3", true, NULL},
	        {"redis", "url", "http://x", false, "must start with redis:// or unix://"},
	        {"redis", "url", "redis://host:0", false, "port must be 1..65535"},
	        {"redis", "url", "redis://host/x", false, "database must be a number"},
	        {"redis", "url", "", false, "must not be empty"},
	        {"redis", "lease", "100ms", true, NULL}, /* the miss lease (engine_fill.c) */
	        {"redis", "lease", "0", true, NULL},     /* off */
	        {"redis", "lease", "2m", false, "out of range 0ms..60000ms"},
	        {"redis", "lease", "on", false, "bad duration \"on\""},
	        {"primary", "pool_size", "0", false, "out of range 1..256"},
	        {"primary", "pool_size", "257", false, "out of range 1..256"},
	        {"invalidator", "slot", "Bad-Slot", false, "a-z 0-9 _"},
	        {"invalidator", "publication", "MyPub", true, NULL},
	        {"invalidator", "fence_ttl", "10ms", false, "out of range"},
	        {"invalidator", "create_publication", "no", true, NULL},
	        {"query q", "ttl_jitter", "100%", true, NULL},
	        {"query q", "ttl_jitter", "15", true, NULL},
	        {"query q", "ttl_jitter", "101%", false, "out of range 0..100"},
	        {"query q", "ttl_jitter", "5%%", false, "bad percentage"},
	        {"query q", "ttl_jitter", "-1%", false, "bad percentage"},
	        {"query q", "xfetch_beta", "0.5", true, NULL},
	        {"query q", "xfetch_beta", "11", false, "out of range 0..10"},
	        {"query q", "xfetch_beta", "nan", false, "bad number"},
	        {"query q", "xfetch_beta", "-1", false, "bad number"},
	        {"query q", "kind", "LIST", true, NULL},
	        {"query q", "kind", "table", false, "bad kind \"table\""},
	        {"query q", "ttl", "0", false, "out of range"},
	        {"query q", "ttl", "1x", false,
	                "cachesvc.ini:5: [query q] ttl: bad duration \"1x\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cs_config *cfg = load_key(cases[i].section, cases[i].key, cases[i].value);
		if (cases[i].ok) {
			if (!cfg)
				fail_msg("[%s] %s = %s: %s", cases[i].section, cases[i].key,
				        cases[i].value, err);
			cs_config_free(cfg);
			continue;
		}
		if (cfg)
			fail_msg("[%s] %s = %s accepted", cases[i].section, cases[i].key,
			        cases[i].value);
		char label[64];
		snprintf(label, sizeof(label), "[%s] %s: ", cases[i].section, cases[i].key);
		if (!strstr(err, label) || !strstr(err, cases[i].msg))
			fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, label, cases[i].msg);
	}
}

/* Issue 14.16: a non-loopback listen without auth_token needs allow_unauthenticated. */
static void test_listen_beyond_loopback(void **state)
{
	cs_config *cfg = load_ok(BASE "[cachesvc]\nlisten = 0.0.0.0:6380\nauth_token = t\n");
	cs_config_free(cfg);
	cfg = load_ok(BASE "[cachesvc]\nlisten = 0.0.0.0:6380\nallow_unauthenticated = on\n");
	assert_true(cfg->allow_unauthenticated);
	cs_config_free(cfg);
	/* the admin endpoint is exempt; so is a daemon without TCP */
	cfg = load_ok(BASE "[cachesvc]\nlisten =\nadmin_listen = 0.0.0.0:9180\n");
	cs_config_free(cfg);
	assert_load_error(BASE "[cachesvc]\nunix_socket = /tmp/x.sock\n\nlisten = [::]:1\n",
	        "cachesvc.ini:6: [cachesvc] listen: [::]:1 is not a loopback address", NULL);
}

/* Issue 17: [redis] cluster and nodes, and what a cluster refuses at load. */
static void test_redis_cluster(void **state)
{
	cs_config *cfg = load_ok(BASE);
	assert_false(cfg->redis_cluster);
	assert_null(cfg->redis_nodes);
	cs_config_free(cfg);
	cfg = load_ok(
	        BASE "[redis]\ncluster = on\nnodes = 127.0.0.1:7000, 10.0.0.2:7001,[::1]:7002\n"
	             "url = redis://:pw@127.0.0.1\n");
	assert_true(cfg->redis_cluster);
	assert_string_equal(cfg->redis_nodes, "127.0.0.1:7000, 10.0.0.2:7001,[::1]:7002");
	cs_config_free(cfg);
	assert_load_error(BASE "[redis]\ncluster = on\n",
	        "cachesvc.ini:4: [redis] cluster: on needs nodes", NULL);
	assert_load_error(
	        BASE "[redis]\nnodes = h:1\n", "[redis] nodes: set but cluster is off", NULL);
	assert_load_error(BASE "[redis]\ncluster = on\nnodes = h\n", "'h' is not host:port", NULL);
	assert_load_error(
	        BASE "[redis]\ncluster = on\nnodes = h:1, :2\n", "':2' is not host:port", NULL);
	assert_load_error(
	        BASE "[redis]\ncluster = on\nnodes = h:70000\n", "is not host:port", NULL);
	assert_load_error(BASE "[redis]\ncluster = on\nnodes = h:1\nnamespace = {x}\n",
	        "cachesvc.ini:6: [redis] namespace: \"{x}\" may not hold { or } on a cluster",
	        NULL);
	assert_load_error(BASE "[redis]\ncluster = on\nnodes = h:1\nurl = redis://h/2\n",
	        "database 0 alone", NULL);
	/* the near cache runs on a cluster too (per-master tracking: CLUSTER.md E1, E2) */
	cfg = load_ok(BASE
	        "[redis]\ncluster = on\nnodes = h:1\n[cachesvc]\nnear_cache_size = 1MB\n");
	assert_int_equal(cfg->near_cache_size, 1 << 20);
	assert_true(cfg->redis_cluster_near_resend_check);
	cs_config_free(cfg);
	/* braces stay legal on a single Redis */
	cfg = load_ok(BASE "[redis]\nnamespace = {x}\n");
	cs_config_free(cfg);
}

static void test_tiers_and_values_stored(void **state)
{
	cs_config *cfg = load_ok(BASE "[cachesvc]\nmax_frame = 64kB\nprimary_fallback = off\n"
	                              "max_replica_lag_bytes = 16MB\nunix_socket = /tmp/cs.sock\n"
	                              "listen =\n"
	                              "[replica a]\nconninfo = host=a\ntier = Batch , critical\n"
	                              "pool_size = 9\n");
	assert_int_equal(cfg->max_frame, 65536);
	assert_false(cfg->primary_fallback);
	assert_int_equal(cfg->max_replica_lag_bytes, 16u << 20);
	assert_string_equal(cfg->unix_socket, "/tmp/cs.sock");
	assert_null(cfg->listen);
	assert_int_equal(cfg->replicas[0].tiers, (1u << CS_TIER_BATCH) | (1u << CS_TIER_CRITICAL));
	assert_int_equal(cfg->replicas[0].pool_size, 9);
	cs_config_free(cfg);
	assert_load_error(BASE "[replica a]\nconninfo = host=a\ntier = gold\n",
	        "cachesvc.ini:5: [replica a] tier: bad tier list \"gold\"", NULL);
	assert_load_error(
	        BASE "[replica a]\nconninfo = host=a\ntier =\n", "[replica a] tier:", NULL);
	assert_load_error(BASE "[replica a]\nconninfo = host=a\ntier = critical,,batch\n",
	        "[replica a] tier:", NULL);
}

static void test_params(void **state)
{
	cs_config *cfg =
	        load_ok(BASE "[query q]\n"
	                     "sql = SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12\n"
	                     "params = a:bool, b:smallint, c:integer, d:BIGINT, e:real,\n"
	                     "  f:double precision, g:varchar, h:bytea, i:uuid,\n"
	                     "  j:numeric, k:date, l:timestamptz\n");
	const cs_query_def *q = cs_config_query(cfg, "q", 1);
	static const cs_param_type want[] = {CS_PT_BOOL, CS_PT_INT2, CS_PT_INT4, CS_PT_INT8,
	        CS_PT_FLOAT4, CS_PT_FLOAT8, CS_PT_TEXT, CS_PT_BYTEA, CS_PT_UUID, CS_PT_NUMERIC,
	        CS_PT_DATE, CS_PT_TIMESTAMPTZ};
	assert_int_equal(q->nparams, 12);
	for (int i = 0; i < 12; i++)
		assert_int_equal(q->params[i].type, want[i]);
	assert_string_equal(q->params[5].name, "f");
	cs_config_free(cfg);

	assert_load_error(BASE "[query q]\nsql = SELECT $1\nparams = id:int9\n",
	        "cachesvc.ini:5: [query q] params: parameter id: unknown type \"int9\"", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT $1\nparams = id\n",
	        "[query q] params: expected name:type", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT $1, $2\nparams = id:int8, id:text\n",
	        "[query q] params: parameter id declared twice", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT $1\nparams = 1x:int8\n",
	        "[query q] params: bad parameter name", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT $1\nparams = id:int8,\n",
	        "[query q] params: trailing comma", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT $1\n"
	                       "params = a:int8,b:int8,c:int8,d:int8,e:int8,f:int8,g:int8,h:int8,"
	                       "i:int8,j:int8,k:int8,l:int8,m:int8,n:int8,o:int8,p:int8,q:int8\n",
	        "[query q] params: more than 16 parameters", NULL);
}

static void test_sql_placeholders(void **state)
{
	/* $N inside literals, quoted identifiers, comments and dollar quotes do not count */
	cs_config *cfg =
	        load_ok(BASE "[query q]\n"
	                     "sql = SELECT '$7', E'\\'$8', \"$9\", $$ $10 $$, $t$ $11 $t$\n"
	                     "  -- $12\n"
	                     "  /* $13 /* nested $14 */ $15 */ FROM a$5 WHERE x = $1\n"
	                     "params = x:text\n");
	cs_config_free(cfg);

	assert_load_error(BASE "[query q]\nsql = SELECT $1, $2\nparams = id:int8\n",
	        "cachesvc.ini:5: [query q] params: sql uses $2 but params declares 1 parameter",
	        NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT 1\nparams = id:int8\n",
	        "[query q] params: 1 parameter declared but sql uses only up to $0", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT $1, $3\nparams = a:int8, b:int8, c:int8\n",
	        "cachesvc.ini:4: [query q] sql: $2 (b) is never used", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT 'oops\n",
	        "[query q] sql:", "unterminated string literal", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT 1 /* x\n", "unterminated /* comment", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT $0\n", "$0 is not a parameter", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT $99999999999999999999999\n",
	        "[query q] params: sql uses $", NULL);
}

static void test_invalidate_on(void **state)
{
	cs_config *cfg =
	        load_ok(BASE "[query q]\nsql = SELECT 1 FROM t WHERE a = $1 AND b = $2\n"
	                     "params = a:int8, b:text\n"
	                     "invalidate_on = Sales.\"Order Items\"(\"Col\"\"X\" = $2, a = $1),\n"
	                     "   messages, public.users(b = $2, id = $1)\n");
	const cs_query_def *q = cs_config_query(cfg, "q", 1);
	assert_int_equal(q->ninval, 3);
	assert_string_equal(q->inval[0].schema, "sales");
	assert_string_equal(q->inval[0].table, "Order Items");
	assert_int_equal(q->inval[0].ncols, 2);
	assert_string_equal(q->inval[0].cols[0], "Col\"X");
	assert_int_equal(q->inval[0].param_index[0], 1);
	assert_string_equal(q->inval[0].cols[1], "a");
	assert_int_equal(q->inval[0].param_index[1], 0);
	assert_string_equal(q->inval[1].schema, "public");
	assert_string_equal(q->inval[1].table, "messages");
	assert_int_equal(q->inval[1].ncols, 0);
	assert_string_equal(q->inval[2].table, "users");
	assert_int_equal(q->inval[2].param_index[1], 0);
	cs_config_free(cfg);

	const char *head = BASE "[query q]\nsql = SELECT $1, $2\nparams = a:int8, b:int8\n";
	static const struct {
		const char *clause, *msg;
	} bad[] = {
	        {"t(a = $1)", "t(...) does not bind $2 (b)"},
	        {"t(a = $1, b = $3)", "t(b = $3): the query has 2 parameters"},
	        {"t(a = $1, b = $1)", "$1 bound twice"},
	        {"t(a = $1, a = $2)", "column a listed twice"},
	        {"t(a = 1, b = $2)", "column a must be bound to a parameter"},
	        {"t(a $1)", "expected \"= $N\" after column a"},
	        {"t(a = $1 b = $2)", "expected ',' or ')'"},
	        {"t(a = $1, b = $2", "expected ',' or ')'"},
	        {"t x", "expected ',' between clauses"},
	        {"t,", "expected a table name at end of value"},
	        {"\"t", "unterminated quoted table name"},
	        {"\"\"", "empty quoted table name"},
	        {"1t", "expected a table name"},
	        {"a,b,c,d,e,f,g,h,i", "more than 8 clauses"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text), "%sinvalidate_on = %s\n", head, bad[i].clause);
		cs_config *c = load_text(text);
		if (c)
			fail_msg("invalidate_on = %s accepted", bad[i].clause);
		if (!strstr(err, "cachesvc.ini:6: [query q] invalidate_on: ") ||
		        !strstr(err, bad[i].msg))
			fail_msg("invalidate_on = %s: \"%s\" lacks \"%s\"", bad[i].clause, err,
			        bad[i].msg);
	}
	/* the suggestion names the whole-table form */
	assert_load_error(BASE "[query q]\nsql = SELECT $1, $2\nparams = a:int8, b:int8\n"
	                       "invalidate_on = messages(a = $1)\n",
	        "does not bind $2", "invalidate on the whole table: messages", NULL);
	/* more key columns than CS_MAX_KEYCOLS */
	assert_load_error(BASE "[query q]\nsql = SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9\n"
	                       "params = a:int8,b:int8,c:int8,d:int8,e:int8,f:int8,g:int8,h:int8,"
	                       "i:int8\ninvalidate_on = t(a=$1,b=$2,c=$3,d=$4,e=$5,f=$6,g=$7,h=$8,"
	                       "i=$9)\n",
	        "more than 8 key columns", NULL);
}

/* ---- structural validation -------------------------------------------------------- */

static void test_validation_errors(void **state)
{
	assert_load_error("", "cachesvc.ini: no [primary] and no [replica NAME]", NULL);
	assert_load_error(
	        "[cachesvc]\nlisten = 127.0.0.1:1\n", "no [primary] and no [replica", NULL);
	assert_load_error(
	        BASE "[bogus]\nx = 1\n", "cachesvc.ini:3: unknown section", "bogus", NULL);
	assert_load_error(BASE "[bogus]\n", "cachesvc.ini:3: unknown section", NULL);
	assert_load_error(BASE "[cachesvc]\nlisten_addr = x\n",
	        "cachesvc.ini:4: [cachesvc] listen_addr: unknown key", NULL);
	assert_load_error(BASE "[cachesvc]\nttl = 1h\n",
	        "[cachesvc] ttl: unknown key here (it belongs in [query NAME])", NULL);
	assert_load_error(
	        BASE "[primary]\n", "cachesvc.ini:3: duplicate section [primary]", "line 1", NULL);
	assert_load_error("[primary]\npool_size = 2\n",
	        "cachesvc.ini:1: [primary] conninfo: required key missing", NULL);
	assert_load_error(BASE "[query q]\nttl = 1h\n",
	        "cachesvc.ini:3: [query q] sql: required key missing", NULL);
	assert_load_error(BASE "[query q]\nsql = SELECT 1\n[query q]\nsql = SELECT 2\n",
	        "cachesvc.ini:5: duplicate [query q] (first at line 3)", NULL);
	assert_load_error(BASE "[replica a]\nconninfo = host=a\n[replica a]\nconninfo = host=b\n",
	        "cachesvc.ini:5: duplicate [replica a]", NULL);
	assert_load_error(BASE "[query]\nsql = SELECT 1\n", "[query", "name missing", NULL);
	assert_load_error(BASE "[query a b]\nsql = SELECT 1\n", "name may only contain", NULL);
	assert_load_error(BASE "[query a:b]\nsql = SELECT 1\n", "name may only contain", NULL);
	assert_load_error(BASE "[redis main]\n", "[redis] takes no name", NULL);
	char text[256];
	snprintf(text, sizeof(text), BASE "[query %0*d]\nsql = SELECT 1\n", CS_MAX_NAME + 1, 0);
	assert_load_error(text, "name longer than 64 characters", NULL);
	snprintf(text, sizeof(text), BASE "[query %0*d]\nsql = SELECT 1\n", CS_MAX_NAME, 0);
	cs_config *cfg = load_ok(text);
	assert_int_equal(strlen(cfg->queries[0].name), CS_MAX_NAME);
	cs_config_free(cfg);
	assert_load_error(BASE "[query q]\nsql = SELECT 1\nttl = 1h\nTTL = 2h\n",
	        "cachesvc.ini:6: [query q] TTL: set twice (first at line 5)", NULL);
	assert_load_error(
	        "listen = x\n" BASE, "cachesvc.ini:1: listen: key outside any section", NULL);
	assert_load_error(BASE "this is not ini\n", "cachesvc.ini:3: syntax error", NULL);
	assert_load_error(BASE "[cachesvc\n", "cachesvc.ini:3: syntax error", NULL);
	assert_load_error(BASE "[query q]\nsql =\n", "[query q] sql: must not be empty", NULL);
	assert_load_error("[invalidator]\nenabled = true\n[replica a]\nconninfo = host=a\n",
	        "cachesvc.ini:2: [invalidator] enabled: needs a [primary]", NULL);
	assert_load_error("[primary]\nconninfo = host=a port\n",
	        "cachesvc.ini:2: [primary] "
	        "conninfo: bad conninfo",
	        NULL);
	/* libpq's message must not echo a password */
	assert_load_error(
	        "[primary]\nconninfo = host=a password=hunter2 port\n", "bad conninfo", NULL);
	assert_null(strstr(err, "hunter2"));
	assert_load_error(
	        "[primary]\nconninfo = postgresql://u:hunter2%zz@h/db\n", "bad conninfo", NULL);
	assert_null(strstr(err, "hunter2"));
	assert_null(cs_config_load("/nonexistent/cachesvc.ini", err));
	assert_non_null(strstr(err, "/nonexistent/cachesvc.ini: cannot open"));
	/* inline comments, ':' separators, sections case-insensitive, CRLF, BOM */
	cfg = load_ok("\xEF\xBB\xBF[Primary]\r\nconninfo: host=a ; the primary\r\n"
	              "# comment\r\n[CACHESVC]\r\nMAX_CLIENTS = 7\r\n");
	assert_string_equal(cfg->primary_conninfo, "host=a");
	assert_int_equal(cfg->max_clients, 7);
	cs_config_free(cfg);
}

static void test_hostile_files(void **state)
{
	/* binary junk, NUL bytes */
	char junk[4096];
	unsigned x = 12345;
	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (char)(x >> 16);
	}
	write_file(ini_path, junk, sizeof(junk));
	assert_null(cs_config_load(ini_path, err));
	assert_non_null(strstr(err, "cachesvc.ini"));
	for (size_t i = 0; i < sizeof(junk); i++)
		if (junk[i] == '\0')
			junk[i] = '[';
	write_file(ini_path, junk, sizeof(junk));
	assert_null(cs_config_load(ini_path, err));

	write_file(ini_path, BASE "\0x", sizeof(BASE) + 1);
	assert_null(cs_config_load(ini_path, err));
	assert_non_null(strstr(err, "cachesvc.ini:3: NUL byte"));

	/* a 1 MB line */
	size_t big = 1 << 20;
	char *text = malloc(big + 8192);
	assert_non_null(text);
	int n = snprintf(text, 256, BASE "[query q]\nsql = ");
	memset(text + n, 'x', big);
	strcpy(text + n + big, "\n");
	assert_load_error(text, "cachesvc.ini:4: line longer than", NULL);
	/* a long line under the limit works: no silent split (inih's was 200 bytes) */
	n = snprintf(text, 256, BASE "[query q]\nsql = SELECT 1");
	memset(text + n, ' ', 5000);
	strcpy(text + n + 5000, "+ $1\nparams = a:int8\n");
	cs_config *cfg = load_ok(text);
	assert_int_equal(strlen(cfg->queries[0].sql), 5000 + 12);
	cs_config_free(cfg);
	free(text);

	/* 10k sections */
	size_t cap = 10000 * 64 + 256, len = 0;
	text = malloc(cap);
	assert_non_null(text);
	len += (size_t)snprintf(text, cap, BASE);
	for (int i = 0; i < 10000; i++)
		len += (size_t)snprintf(text + len, cap - len,
		        "[query q%d]\nsql = SELECT $1\nparams = a:int4\n", i);
	cfg = load_ok(text);
	assert_int_equal(cfg->nqueries, 10000);
	assert_non_null(cs_config_query(cfg, "q9999", 5));
	cs_config_free(cfg);
	/* the same with an error at the very end */
	strcpy(text + len, "[query q0]\nsql = SELECT 1\n");
	assert_load_error(text, "duplicate [query q0]", NULL);
	/* 10k empty unknown sections */
	len = 0;
	for (int i = 0; i < 10000; i++)
		len += (size_t)snprintf(text + len, cap - len, "[s%d]\n", i);
	assert_load_error(text, "cachesvc.ini:1: unknown section", NULL);
	free(text);
}

/* ---- masking, show, reload ---------------------------------------------------------- */

/* The INI grammar of config_ini.c, pinned as Debian's inih 55 read it (the configs written
 * for it keep their meaning). */
static void test_ini_grammar(void **state)
{
	(void)state;
	/* inline comments after whitespace in key lines; "key: value"; CRLF; comment and blank
	 * lines inside a continued value skipped; a continuation line is taken whole, " ;"
	 * included; text after a header's ']' ignored */
	cs_config *cfg = load_ok("\xEF\xBB\xBF" BASE "[cachesvc] ; c\r\n"
	                         "log_level: debug ; inline\r\n"
	                         "[query q]  trailing\n"
	                         "sql = SELECT $1 ;c\n"
	                         "\n"
	                         "  ; comment\n"
	                         "  # comment\n"
	                         "\t+ 0 -- a ;b\n"
	                         "params=a:int8\t;x\n");
	assert_string_equal(cfg->log_level, "debug");
	assert_string_equal(cfg->queries[0].sql, "SELECT $1\n+ 0 -- a ;b");
	cs_config_free(cfg);
	/* a ';' glued to a value is part of it */
	assert_load_error(BASE "[query q]\nsql = SELECT $1\nparams=a:int8;x\n",
	        "cachesvc.ini:5:", "[query q] params:", NULL);
	/* an empty key name is a key line ("" is no key) and starts no continuation */
	assert_load_error(BASE "[cachesvc]\n= x\n  y = 1\n",
	        "cachesvc.ini:4: [cachesvc] : unknown key", NULL);
	assert_load_error(BASE "[cachesvc]\nlog_level = info\n  more\n",
	        "cachesvc.ini:4: [cachesvc] log_level: must be debug", NULL);
	/* syntax errors, first in line order */
	assert_load_error(BASE "[cachesvc\n[nope]\n", "cachesvc.ini:3: syntax error", NULL);
	assert_load_error(BASE "[cachesvc ;]\n", "cachesvc.ini:3: syntax error", NULL);
	assert_load_error(BASE "[cachesvc]\nflag\n", "cachesvc.ini:4: syntax error", NULL);
	assert_load_error(BASE "[cachesvc]\na ;b = c\n", "cachesvc.ini:4: syntax error", NULL);
	/* the whole file is read before keys are checked */
	assert_load_error(BASE "[cachesvc]\nx = 1\nx\n", "cachesvc.ini:5: syntax error", NULL);
	assert_load_error("key = 1\n" BASE, "cachesvc.ini:1: key: key outside any section", NULL);
	/* the longest line: 65533 bytes before its '\n' */
	size_t n = 65533 + 1;
	char *text = malloc(sizeof(BASE) + n + 64);
	assert_non_null(text);
	int h = snprintf(text, 64 + sizeof(BASE), BASE "[cachesvc]\n");
	memset(text + h, ';', n - 1);
	strcpy(text + h + n - 1, "\n");
	cs_config_free(load_ok(text));
	strcpy(text + h + n - 1, ";\n");
	assert_load_error(text, "cachesvc.ini:4: line longer than 65533 bytes", NULL);
	free(text);
}

static void test_mask_conninfo(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	        {"host=a password=secret dbname=x", "host=a password=*** dbname=x"},
	        {"host=a password = 'se cr\\'et' user=u", "host=a password = *** user=u"},
	        {"password=p sslpassword=q", "password=*** sslpassword=***"},
	        {"host=a", "host=a"},
	        {"", ""},
	        {"postgresql://u:secret@h:5432/db?sslmode=require",
	                "postgresql://u:***@h:5432/db?sslmode=require"},
	        {"postgres://u@h/db?password=secret&x=1", "postgres://u@h/db?password=***&x=1"},
	        {"postgresql://h/db", "postgresql://h/db"},
	        {"postgresql://u:se@cret@h/db", "postgresql://u:***@h/db"},
	        {"host=a garbage secret", "host=a garbage ***"},
	        /* libpq percent-decodes option names: these are passwords too */
	        {"postgresql://h/db?pass%77ord=hunter2&x=1",
	                "postgresql://h/db?pass%77ord=***&x=1"},
	        {"postgresql://h/db?%73slpassword=q", "postgresql://h/db?%73slpassword=***"},
	        {"postgresql://h/db?pass%7word=q", "postgresql://h/db?pass%7word=q"},
	        /* a dbname that is a connection string of its own */
	        {"host=a dbname=postgresql://u:pw@h/db", "host=a dbname=***"},
	        {"host=a dbname='user=u password=pw'", "host=a dbname=***"},
	        {"host=a dbname=app", "host=a dbname=app"},
	};
	char buf[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cs_log_mask_conninfo(cases[i].in, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
	}
	/* truncation stays NUL-terminated */
	cs_log_mask_conninfo("host=averyveryverylonghostname", buf, 8);
	assert_int_equal(strlen(buf), 7);
	cs_log_mask_conninfo(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void test_show_masks_secrets(void **state)
{
	cs_config *cfg = load_ok("[cachesvc]\nauth_token = TOKEN-hunter2\n"
	                         "[redis]\nurl = redis://:REDIS-hunter2@10.0.0.1:6390/1\n"
	                         "[primary]\nconninfo = host=p password=PG-hunter2\n"
	                         "[replica a]\nconninfo = postgresql://u:URI-hunter2@h/db\n");
	char *s = show_to_string(cfg);
	assert_null(strstr(s, "hunter2"));
	assert_non_null(strstr(s, "auth_token = ***\n"));
	assert_non_null(strstr(s, "url = redis://:***@10.0.0.1:6390/1\n"));
	assert_non_null(strstr(s, "conninfo = host=p password=***\n"));
	assert_non_null(strstr(s, "conninfo = postgresql://u:***@h/db\n"));
	free(s);
	cs_config_free(cfg);

	/* a long conninfo split over continuation lines is shown whole and loads back */
	char text[4096];
	int n = snprintf(text, sizeof(text), "[primary]\nconninfo = host=h password=hunter2");
	for (int i = 0; i < 60; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "\n  application_name=a%040d", i);
	snprintf(text + n, sizeof(text) - (size_t)n, "\n");
	cfg = load_ok(text);
	s = show_to_string(cfg);
	assert_null(strstr(s, "hunter2"));
	char last[64];
	snprintf(last, sizeof(last), "application_name=a%040d\n", 59);
	assert_non_null(strstr(s, last));
	cs_config *again = load_ok(s);
	char *s2 = show_to_string(again);
	assert_same_show(s, s2);
	free(s2);
	free(s);
	cs_config_free(again);
	cs_config_free(cfg);

	cfg = load_ok(BASE "[redis]\nurl = redis://bare-hunter2@h\n");
	s = show_to_string(cfg);
	assert_null(strstr(s, "hunter2"));
	assert_non_null(strstr(s, "url = redis://***@h\n"));
	free(s);
	cs_config_free(cfg);
}

static void test_show_round_trip(void **state)
{
	cs_config *a = load_ok(design_example);
	char *sa = show_to_string(a);
	/* every key is shown, defaults included */
	assert_non_null(strstr(sa, "\nmax_replica_lag_bytes = 0\n"));
	assert_non_null(strstr(sa, "\nunix_socket =\n"));
	assert_non_null(strstr(sa, "\n[invalidator]\nenabled = false\n"));
	cs_config *b = load_ok(sa);
	char *sb = show_to_string(b);
	assert_same_show(sa, sb);
	assert_int_equal(a->nqueries, b->nqueries);
	for (int i = 0; i < a->nqueries; i++) {
		const cs_query_def *qa = &a->queries[i], *qb = &b->queries[i];
		assert_string_equal(qa->name, qb->name);
		assert_string_equal(qa->sql, qb->sql);
		assert_int_equal(qa->max_stale_ms, qb->max_stale_ms);
		assert_int_equal(qa->ninval, qb->ninval);
	}
	free(sa);
	free(sb);
	cs_config_free(a);
	cs_config_free(b);

	/* unusual values: quoted identifiers, odd sizes and durations, fractions */
	a = load_ok(BASE "[cachesvc]\nmax_frame = 1025\nrequest_timeout = 1500ms\nlisten =\n"
	                 "[query q]\nsql = SELECT $1\nparams = x:double precision\n"
	                 "xfetch_beta = 0.1\nttl = 90s\n"
	                 "invalidate_on = \"My\"\"Schema\".\"T\"(\"C d\" = $1), t2\n");
	sa = show_to_string(a);
	assert_non_null(strstr(sa, "\"My\"\"Schema\".\"T\"(\"C d\" = $1), public.t2"));
	b = load_ok(sa);
	sb = show_to_string(b);
	assert_same_show(sa, sb);
	assert_true(a->queries[0].xfetch_beta == b->queries[0].xfetch_beta);
	assert_null(b->listen);
	free(sa);
	free(sb);
	cs_config_free(a);
	cs_config_free(b);
}

static void test_reloadable(void **state)
{
	cs_config *cur = load_ok(design_example);
	cs_config *same = load_ok(design_example);
	assert_true(cs_config_reloadable(cur, same, err));
	cs_config_free(same);

	static const struct {
		const char *from, *to;
		bool ok;
		const char *msg;
	} cases[] = {
	        {"ttl = 1h", "ttl = 2h", true, NULL},
	        {"sql = SELECT count(*) FROM messages WHERE user_id = $1",
	                "sql = SELECT count(*) + 0 FROM messages WHERE user_id = $1", true, NULL},
	        {"[cachesvc]\n", "[cachesvc]\nlog_level = debug\nauth_token = t\n", true, NULL},
	        {"listen = 127.0.0.1:6380", "listen = 127.0.0.1:6381", false,
	                "[cachesvc] listen changed"},
	        {"[cachesvc]\n", "[cachesvc]\nmax_inflight = 1\n", false,
	                "[cachesvc] max_inflight changed"},
	        {"[cachesvc]\n", "[cachesvc]\nfence = off\n", false, "[cachesvc] fence changed"},
	        {"url = redis://127.0.0.1:6379/0", "url = redis://127.0.0.1:6379/1", false,
	                "[redis] url changed"},
	        {"port=5432", "port=5431", false, "[primary] conninfo changed"},
	        /* the replica set is reloadable: add, remove, re-point (engine.c servers_reload) */
	        {"tier = critical ", "tier = batch ", true, NULL},
	        {"[replica r1]", "[replica r9]", true, NULL},
	        {"[query user_profile]", "[replica r2]\nconninfo = host=x\n[query user_profile]",
	                true, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *at = strstr(design_example, cases[i].from);
		assert_non_null(at);
		char text[4096];
		snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - design_example), design_example,
		        cases[i].to, at + strlen(cases[i].from));
		cs_config *next = load_ok(text);
		bool ok = cs_config_reloadable(cur, next, err);
		if (ok != cases[i].ok)
			fail_msg("%s -> %s: reloadable=%d (%s)", cases[i].from, cases[i].to, ok,
			        err);
		if (!ok && !strstr(err, cases[i].msg))
			fail_msg("\"%s\" lacks \"%s\"", err, cases[i].msg);
		cs_config_free(next);
	}
	cs_config_free(cur);
}

/* ---- helpers of config.h ------------------------------------------------------------ */

static void test_names_and_oids(void **state)
{
	static const struct {
		cs_param_type t;
		const char *name;
		unsigned oid;
	} types[] = {
	        {CS_PT_BOOL, "bool", 16},
	        {CS_PT_INT2, "int2", 21},
	        {CS_PT_INT4, "int4", 23},
	        {CS_PT_INT8, "int8", 20},
	        {CS_PT_FLOAT4, "float4", 700},
	        {CS_PT_FLOAT8, "float8", 701},
	        {CS_PT_TEXT, "text", 25},
	        {CS_PT_BYTEA, "bytea", 17},
	        {CS_PT_UUID, "uuid", 2950},
	        {CS_PT_NUMERIC, "numeric", 1700},
	        {CS_PT_DATE, "date", 1082},
	        {CS_PT_TIMESTAMPTZ, "timestamptz", 1184},
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		assert_string_equal(cs_param_type_name(types[i].t), types[i].name);
		assert_int_equal(cs_param_type_oid(types[i].t), types[i].oid);
	}
	assert_int_equal(cs_param_type_oid(CS_PT__COUNT), 0);
	cs_tier t;
	for (int i = 0; i < CS_TIER_COUNT; i++) {
		assert_true(cs_tier_parse(cs_tier_name((cs_tier)i), &t));
		assert_int_equal(t, i);
	}
	assert_string_equal(cs_tier_name(CS_TIER_BATCH), "batch");
	assert_false(cs_tier_parse("gold", &t));
	assert_false(cs_tier_parse(NULL, &t));
}

static void test_redis_url_parse(void **state)
{
	cs_redis_url u;
	char why[128];
	assert_true(cs_redis_url_parse("redis://127.0.0.1:6379/0", &u, why, sizeof(why)));
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	assert_string_equal(u.password, "");
	assert_true(cs_redis_url_parse("redis://app:p%40ss@[::1]:7000/5", &u, why, sizeof(why)));
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 7000);
	assert_int_equal(u.db, 5);
	assert_string_equal(u.username, "app");
	assert_string_equal(u.password, "p@ss");
	assert_true(cs_redis_url_parse("redis://secret@h", &u, why, sizeof(why)));
	assert_string_equal(u.username, "");
	assert_string_equal(u.password, "secret");
	assert_int_equal(u.port, 6379);
	assert_true(cs_redis_url_parse("redis://:p@ss@h:1", &u, why, sizeof(why)));
	assert_string_equal(u.password, "p@ss");
	assert_string_equal(u.host, "h");
	assert_true(cs_redis_url_parse("unix:///tmp/a@b.sock", &u, why, sizeof(why)));
	assert_string_equal(u.unix_path, "/tmp/a@b.sock");
	assert_string_equal(u.password, "");
	assert_true(cs_redis_url_parse("unix://:pw@/run/r.sock?db=2", &u, why, sizeof(why)));
	assert_string_equal(u.unix_path, "/run/r.sock");
	assert_string_equal(u.password, "pw");
	assert_int_equal(u.db, 2);
	static const char *const bad[] = {"redis://", "redis://h:", "redis://h:x", "redis://h/1/2",
	        "unix://run.sock", "unix:///s?x=1", "redis://:%zz@h", "redis://:%4@h", "rediss://h",
	        "redis://[::1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cs_redis_url_parse(bad[i], &u, why, sizeof(why)))
			fail_msg("accepted %s", bad[i]);
	}
}

/* ---- CONFIG.md covers every key ------------------------------------------------------ */

/* "[query user_profile]" -> "query" */
static void section_kind_of(const char *line, char *out, size_t outlen)
{
	size_t n = strcspn(line + 1, " ]");
	snprintf(out, outlen, "%.*s", (int)n, line + 1);
}

static bool doc_has_key(const char *doc, const char *kind, const char *key)
{
	/* the key must appear as a table row "| `key` |" under the heading "## [kind..." */
	char heading[64], row[96];
	snprintf(heading, sizeof(heading), "\n## [%s", kind);
	snprintf(row, sizeof(row), "\n| `%s` |", key);
	const char *h = strstr(doc, heading);
	if (!h)
		return false;
	const char *next = strstr(h + 1, "\n#"); /* the key table ends at the next heading */
	const char *r = strstr(h, row);
	return r && (!next || r < next);
}

/* Shards show the keys an unsharded config hides (KF_SHARDING) and [shard NAME]. */
static const char sharded_example[] = "[cachesvc]\nshard_map = hash\n"
                                      "[shard s1]\nconninfo = host=a\n"
                                      "[replica r1]\nconninfo = host=b\nshard = s1\n"
                                      "[query q]\nsql = SELECT $1::int8\nparams = id:int8\n"
                                      "shard_key = id\n";

static void test_doc_covers_every_key(void **state)
{
	char *doc = read_all(doc_path);
	/* configs with every section, so show walks the whole key table */
	cs_config *cfg = load_ok(design_example);
	char *shown1 = show_to_string(cfg);
	cs_config_free(cfg);
	cfg = load_ok(sharded_example);
	char *shown2 = show_to_string(cfg);
	size_t l1 = strlen(shown1), l2 = strlen(shown2);
	char *shown = malloc(l1 + l2 + 1);
	assert_non_null(shown);
	memcpy(shown, shown1, l1);
	memcpy(shown + l1, shown2, l2 + 1);
	free(shown1);
	free(shown2);
	char kind[32] = "";
	int nkeys = 0;
	for (char *line = strtok(shown, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == ';' || line[0] == ' ')
			continue; /* comment, continuation line */
		if (line[0] == '[') {
			section_kind_of(line, kind, sizeof(kind));
			continue;
		}
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)strcspn(line, " ="), line);
		if (!doc_has_key(doc, kind, key))
			fail_msg("CONFIG.md: no row | `%s` | under ## [%s", key, kind);
		nkeys++;
	}
	assert_true(nkeys > 40);
	free(shown);

	/* and the reverse: every documented row is a real key */
	const char *p = doc;
	kind[0] = '\0';
	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncmp(p, "## [", 4) == 0) {
			section_kind_of(p + 3, kind, sizeof(kind));
		} else if (p[0] == '#') {
			kind[0] = '\0'; /* other tables (types, defaults by kind) are not keys */
		} else if (strncmp(p, "| `", 3) == 0 && kind[0]) {
			char key[64], text[512];
			snprintf(key, sizeof(key), "%.*s", (int)strcspn(p + 3, "`"), p + 3);
			if (strcmp(kind, "primary") == 0)
				snprintf(text, sizeof(text), "[primary]\nconninfo = h=1\n%s = x\n",
				        key);
			else
				snprintf(text, sizeof(text), BASE "[%s%s]\n%s = @@@\n", kind,
				        strcmp(kind, "query") && strcmp(kind, "replica") &&
				                        strcmp(kind, "shard")
				                ? ""
				                : " n",
				        key);
			cs_config *c = load_text(text);
			cs_config_free(c);
			if (strstr(err, "unknown key"))
				fail_msg("CONFIG.md documents [%s] %s, which is not a key", kind,
				        key);
		}
	}
	cs_config_free(cfg);
	free(doc);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s CONFIG.md cachesvc.ini.example\n", argv[0]);
		return 2;
	}
	doc_path = argv[1];
	example_path = argv[2];
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_design_example),
	        cmocka_unit_test(test_example_file_loads),
	        cmocka_unit_test(test_service_defaults),
	        cmocka_unit_test(test_kind_defaults),
	        cmocka_unit_test(test_parse_duration),
	        cmocka_unit_test(test_parse_size),
	        cmocka_unit_test(test_key_types),
	        cmocka_unit_test(test_tiers_and_values_stored),
	        cmocka_unit_test(test_listen_beyond_loopback),
	        cmocka_unit_test(test_redis_cluster),
	        cmocka_unit_test(test_params),
	        cmocka_unit_test(test_sql_placeholders),
	        cmocka_unit_test(test_invalidate_on),
	        cmocka_unit_test(test_validation_errors),
	        cmocka_unit_test(test_hostile_files),
	        cmocka_unit_test(test_ini_grammar),
	        cmocka_unit_test(test_mask_conninfo),
	        cmocka_unit_test(test_show_masks_secrets),
	        cmocka_unit_test(test_show_round_trip),
	        cmocka_unit_test(test_reloadable),
	        cmocka_unit_test(test_names_and_oids),
	        cmocka_unit_test(test_redis_url_parse),
	        cmocka_unit_test(test_doc_covers_every_key),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
