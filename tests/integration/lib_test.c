/* lib_test.c - library-mode scenarios against the sandbox, driven by lib_*.sh: the daemon's
 * read path through the public API only (cachesvc.h), blocking and asynchronous.
 *
 *   lib_test readpath CONFIG             miss then hit, errors, invalidate, refresh, stats
 *   lib_test ryw CONFIG PRIMARY_CONNINFO read-your-writes with min_lsn
 *   lib_test timeout CONFIG              bounded timeouts; late results discarded
 *   lib_test overload CONFIG             queue_max: OVERLOADED past the bound
 *   lib_test close CONFIG                close with blocking calls in flight
 *   lib_test async CONFIG                the asynchronous API on our own event_base
 *   lib_test coalesce CONFIG THREADS QUERY PARAM     concurrent blocking misses on one key
 *   lib_test coalesce_async CONFIG N QUERY PARAM     N asynchronous misses on one key
 *                                                    (both warm up on query co_warm first)
 *   lib_test near_chain CONFIG QUERY PARAM  callbacks re-issuing near-cache hits for ever:
 *                                           a timer of the application still fires
 *   lib_test shards CONFIG QUERY TOKEN ROUNDS KEY...  a sharded config (lib_shards.sh):
 *       waits until healthy, then GETs QUERY(KEY) for every KEY, ROUNDS times, each with the
 *       read-your-writes token TOKEN ("-": none; "SHARD:X/Y" or "X/Y", cachesvc_token_parse,
 *       sent with cachesvc_sync_get_token), printing one line per answer:
 *         round=R key=K err=NAME src=cache|replica|primary|- value=FIRST-COLUMN|message
 *   lib_test shards_async CONFIG QUERY TOKEN KEY  the same, one GET of KEY through the
 *       asynchronous API (cachesvc_get_token on our own event_base), printed as round=1
 *
 * Queries (lib_read_path.sh): lp_user(id) -> id, name; lp_boom(id) divides by zero;
 * lp_slow(secs, n) sleeps. Prints "ok - ..." per check; exits 1 at the first failure. */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "cachesvc.h"

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (!(cond))                                                               \
			fail(__VA_ARGS__);                                                 \
	} while (0)

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static const char *src_name(int s)
{
	return s == CACHESVC_SRC_CACHE	 ? "cache"
	       : s == CACHESVC_SRC_REPLICA ? "replica"
					   : "primary";
}

static cachesvc_sync *open_sync(const char *conf, uint32_t queue_max)
{
	cachesvc_options opt = { .queue_max = queue_max };
	cachesvc_error err;
	cachesvc_sync *h = cachesvc_sync_open(conf, &opt, &err);
	CHECK(h != NULL, "cachesvc_sync_open: %s: %s", cachesvc_strerror(err.code), err.msg);
	return h;
}

/* One blocking GET with text parameters; returns the code, *out the result (to free). */
static int get(cachesvc_sync *h, const char *query, int timeout_ms, uint64_t min_lsn,
	cachesvc_result **out, int nparams, ...)
{
	cachesvc_value p[16];
	va_list ap;
	va_start(ap, nparams);
	for (int i = 0; i < nparams; i++)
		p[i] = cachesvc_text(va_arg(ap, const char *));
	va_end(ap);
	cachesvc_request req = { .query = query, .params = p, .nparams = (uint32_t)nparams,
		.tier = CACHESVC_TIER_DEFAULT, .min_lsn = min_lsn };
	return cachesvc_sync_get(h, &req, timeout_ms, out);
}

/* The text of (row, col), as a NUL-terminated copy in buf ("NULL" for SQL NULL). */
static const char *cell(const cachesvc_result *r, uint32_t row, uint32_t col, char *buf,
	size_t len)
{
	cachesvc_value v;
	if (cachesvc_result_value(r, row, col, &v) != 0)
		return "<out of range>";
	switch (v.type) {
	case CACHESVC_V_STR:
		snprintf(buf, len, "%.*s", (int)v.u.s.len, v.u.s.p);
		break;
	case CACHESVC_V_INT:
		snprintf(buf, len, "%" PRId64, v.u.i);
		break;
	case CACHESVC_V_BOOL:
		snprintf(buf, len, "%s", v.u.b ? "true" : "false");
		break;
	case CACHESVC_V_NIL:
		snprintf(buf, len, "NULL");
		break;
	default:
		snprintf(buf, len, "<type %d>", v.type);
		break;
	}
	return buf;
}

static const char *errmsg(const cachesvc_result *r)
{
	const char *msg = "";
	if (r != NULL)
		cachesvc_result_err(r, &msg);
	return msg;
}

/* Reads query(key) until it comes from the cache (the engine loads the query generations
 * just after Redis connects; until then reads bypass the cache). */
static void wait_cache_ready(cachesvc_sync *h, const char *query, const char *key)
{
	for (int i = 0; i < 100; i++) {
		cachesvc_result *r = NULL;
		int rc = get(h, query, 0, 0, &r, 1, key);
		bool hit = rc == 0 && cachesvc_result_source(r) == CACHESVC_SRC_CACHE;
		cachesvc_result_free(r);
		if (hit)
			return;
		sleep_ms(50);
	}
	fail("%s %s never came from the cache", query, key);
}

static int64_t stat_of(cachesvc_sync *h, const char *name)
{
	cachesvc_stat st[64];
	int n = cachesvc_sync_stats(h, st, 64, 0);
	CHECK(n > 0, "cachesvc_sync_stats: %d", n);
	for (int i = 0; i < n; i++)
		if (strcmp(st[i].name, name) == 0)
			return st[i].value;
	fail("no stat %s", name);
}

/* ---- readpath ---------------------------------------------------------------------------- */

static void expect_err(cachesvc_sync *h, const cachesvc_request *req, int want, const char *what)
{
	cachesvc_result *r = NULL;
	int rc = cachesvc_sync_get(h, req, 0, &r);
	CHECK(rc == want, "%s: got %s (%s), want %s", what, cachesvc_strerror(rc), errmsg(r),
		cachesvc_strerror(want));
	CHECK(r != NULL && cachesvc_result_err(r, NULL) == want, "%s: no error result", what);
	printf("ok - %s: %s: %s\n", what, cachesvc_strerror(rc), errmsg(r));
	cachesvc_result_free(r);
}

static void scenario_readpath(const char *conf)
{
	cachesvc_sync *h = open_sync(conf, 0);
	char why[256];
	CHECK(cachesvc_sync_healthy(h, 0, why, sizeof why) == 1, "not healthy: %s", why);
	wait_cache_ready(h, "lp_user", "1");

	cachesvc_result *r = NULL;
	char buf[128];
	int rc = get(h, "lp_user", 0, 0, &r, 1, "7");
	CHECK(rc == 0, "lp_user 7: %s %s", cachesvc_strerror(rc), errmsg(r));
	CHECK(cachesvc_result_source(r) == CACHESVC_SRC_REPLICA, "first read from %s",
		src_name(cachesvc_result_source(r)));
	CHECK(cachesvc_result_nrows(r) == 1 && cachesvc_result_ncols(r) == 2, "shape %ux%u",
		cachesvc_result_nrows(r), cachesvc_result_ncols(r));
	CHECK(strcmp(cachesvc_result_col_name(r, 1), "name") == 0, "column 1 is %s",
		cachesvc_result_col_name(r, 1));
	CHECK(cachesvc_result_col_type(r, 0) == CACHESVC_COL_INT, "id type %d",
		cachesvc_result_col_type(r, 0));
	CHECK(strcmp(cell(r, 0, 1, buf, sizeof buf), "user 7") == 0, "name %s", buf);
	CHECK(cachesvc_result_col_name(r, 9) == NULL, "column 9 exists");
	uint64_t lsn = cachesvc_result_lsn(r);
	CHECK(lsn != 0, "no LSN on a replica read");
	cachesvc_result_free(r);
	rc = get(h, "lp_user", 0, 0, &r, 1, "7");
	CHECK(rc == 0 && cachesvc_result_source(r) == CACHESVC_SRC_CACHE, "second read: %s %s",
		cachesvc_strerror(rc), rc ? "" : src_name(cachesvc_result_source(r)));
	CHECK(strcmp(cell(r, 0, 1, buf, sizeof buf), "user 7") == 0, "cached name %s", buf);
	CHECK(cachesvc_result_lsn(r) == lsn, "cache lost the data's LSN");
	CHECK(!cachesvc_result_stale(r), "fresh entry marked stale");
	cachesvc_result_free(r);
	printf("ok - miss from a replica, then the same row from the cache\n");

	rc = get(h, "lp_user", 0, 0, &r, 1, "07");
	CHECK(rc == 0 && cachesvc_result_source(r) == CACHESVC_SRC_CACHE, "07 did not hit 7");
	cachesvc_result_free(r);
	cachesvc_value iv = cachesvc_int(7);
	cachesvc_request ireq = { .query = "lp_user", .params = &iv, .nparams = 1 };
	rc = cachesvc_sync_get(h, &ireq, 0, &r);
	CHECK(rc == 0 && cachesvc_result_source(r) == CACHESVC_SRC_CACHE, "int 7 did not hit");
	cachesvc_result_free(r);
	printf("ok - parameters are canonical: \"07\" and int 7 hit the entry of \"7\"\n");

	/* errors */
	cachesvc_value p1 = cachesvc_text("1"), pabc = cachesvc_text("abc"), many[17];
	for (int i = 0; i < 17; i++)
		many[i] = cachesvc_text("1");
	cachesvc_request e1 = { .query = "lp_nosuch", .params = &p1, .nparams = 1 };
	expect_err(h, &e1, CACHESVC_E_UNKNOWN_QUERY, "unknown query");
	cachesvc_request e2 = { .query = "lp_user", .params = &pabc, .nparams = 1 };
	expect_err(h, &e2, CACHESVC_E_BAD_PARAMS, "bad parameter value");
	cachesvc_request e3 = { .query = "lp_user", .params = many, .nparams = 2 };
	expect_err(h, &e3, CACHESVC_E_BAD_PARAMS, "wrong parameter count");
	cachesvc_request e4 = { .query = "lp_user", .params = many, .nparams = 17 };
	expect_err(h, &e4, CACHESVC_E_ARG, "17 parameters");
	cachesvc_request e5 = { .query = NULL };
	expect_err(h, &e5, CACHESVC_E_ARG, "no query name");
	cachesvc_request e6 = { .query = "lp_user", .params = &p1, .nparams = 1, .tier = 7 };
	expect_err(h, &e6, CACHESVC_E_ARG, "tier out of range");
	cachesvc_value bad = { .type = 99 };
	cachesvc_request e7 = { .query = "lp_user", .params = &bad, .nparams = 1 };
	expect_err(h, &e7, CACHESVC_E_ARG, "unknown value type");
	cachesvc_value p5 = cachesvc_text("5");
	cachesvc_request e8 = { .query = "lp_boom", .params = &p5, .nparams = 1 };
	expect_err(h, &e8, CACHESVC_E_INTERNAL, "division by zero in the database");
	CHECK(cachesvc_sync_get(h, &e1, -1, &r) == CACHESVC_E_ARG, "negative timeout accepted");
	cachesvc_result_free(r);
	CHECK(cachesvc_sync_get(h, &e1, 0, NULL) == CACHESVC_E_ARG, "NULL out accepted");

	/* refresh */
	cachesvc_value p7 = cachesvc_text("7");
	cachesvc_request rf = { .query = "lp_user", .params = &p7, .nparams = 1, .refresh = true };
	rc = cachesvc_sync_get(h, &rf, 0, &r);
	CHECK(rc == 0 && cachesvc_result_source(r) != CACHESVC_SRC_CACHE, "REFRESH from cache");
	CHECK(cachesvc_result_stored(r) == 1, "REFRESH answer says stored %d, want 1",
		cachesvc_result_stored(r));
	cachesvc_result_free(r);
	printf("ok - REFRESH re-reads the database and says it stored the result\n");
	rc = get(h, "lp_user", 0, 0, &r, 1, "7");
	CHECK(rc == 0 && cachesvc_result_stored(r) == -1, "a hit says stored %d, want -1 (unsaid)",
		rc ? 0 : cachesvc_result_stored(r));
	cachesvc_result_free(r);
	cachesvc_request bp = { .query = "lp_user", .params = &p7, .nparams = 1, .bypass = true };
	rc = cachesvc_sync_get(h, &bp, 0, &r);
	CHECK(rc == 0 && cachesvc_result_source(r) != CACHESVC_SRC_CACHE, "bypass from cache");
	CHECK(cachesvc_result_stored(r) == 0, "bypass answer says stored %d, want 0",
		cachesvc_result_stored(r));
	cachesvc_result_free(r);
	printf("ok - bypass reads the database and is not stored\n");

	/* invalidate */
	uint64_t n = 0;
	rc = cachesvc_sync_invalidate_key(h, "lp_user", &p7, 1, 0, &n);
	CHECK(rc == 0 && n == 1, "invalidate key: %s, deleted %" PRIu64, cachesvc_strerror(rc), n);
	rc = get(h, "lp_user", 0, 0, &r, 1, "7");
	CHECK(rc == 0 && cachesvc_result_source(r) != CACHESVC_SRC_CACHE, "after INVALIDATE: hit");
	cachesvc_result_free(r);
	printf("ok - INVALIDATE of one key deletes it\n");
	rc = cachesvc_sync_invalidate_query(h, "lp_user", 0, &n);
	CHECK(rc == 0 && n >= 1, "invalidate query: %s gen %" PRIu64, cachesvc_strerror(rc), n);
	rc = get(h, "lp_user", 0, 0, &r, 1, "7");
	CHECK(rc == 0 && cachesvc_result_source(r) != CACHESVC_SRC_CACHE, "after a bump: hit");
	cachesvc_result_free(r);
	rc = cachesvc_sync_invalidate_query(h, "lp_nosuch", 0, &n);
	CHECK(rc == CACHESVC_E_UNKNOWN_QUERY, "invalidate unknown query: %s",
		cachesvc_strerror(rc));
	printf("ok - INVALIDATE of a query bumps its generation to %" PRIu64 "\n", n);

	/* stats and metrics */
	CHECK(stat_of(h, "hits") >= 3, "hits %" PRId64, stat_of(h, "hits"));
	CHECK(stat_of(h, "requests") >= 10, "requests %" PRId64, stat_of(h, "requests"));
	char *text = NULL;
	long len = cachesvc_sync_metrics(h, &text, 0);
	CHECK(len > 0 && text && strstr(text, "cachesvc_") != NULL, "metrics: %ld", len);
	const char *mpath = getenv("CS_LIB_METRICS_OUT"); /* lib_read_path.sh runs promtool on it */
	if (mpath) {
		FILE *mf = fopen(mpath, "w");
		CHECK(mf && fwrite(text, 1, (size_t)len, mf) == (size_t)len && fclose(mf) == 0,
			"writing %s", mpath);
	}
	free(text);
	printf("ok - stats (hits %" PRId64 ") and Prometheus metrics (%ld bytes)\n",
		stat_of(h, "hits"), len);
	cachesvc_sync_close(h);
}

/* ---- read-your-writes -------------------------------------------------------------------- */

static char *pg_one(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	CHECK(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK,
		"%s: %s", sql, PQerrorMessage(c));
	char *v = PQntuples(res) > 0 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
	PQclear(res);
	return v;
}

static void scenario_ryw(const char *conf, const char *primary)
{
	cachesvc_sync *h = open_sync(conf, 0);
	PGconn *pc = PQconnectdb(primary);
	CHECK(PQstatus(pc) == CONNECTION_OK, "primary: %s", PQerrorMessage(pc));
	wait_cache_ready(h, "lp_user", "1");
	char buf[128];
	for (int round = 0; round < 3; round++) {
		/* fill the cache with the current name of user 8 */
		cachesvc_result *r = NULL;
		int rc = get(h, "lp_user", 0, 0, &r, 1, "8");
		CHECK(rc == 0, "lp_user 8: %s", errmsg(r));
		cachesvc_result_free(r);
		rc = get(h, "lp_user", 0, 0, &r, 1, "8");
		CHECK(rc == 0 && cachesvc_result_source(r) == CACHESVC_SRC_CACHE, "not cached");
		cachesvc_result_free(r);

		char sql[128], want[64];
		snprintf(want, sizeof want, "renamed %d", round);
		snprintf(sql, sizeof sql, "UPDATE users SET name = '%s' WHERE id = 8", want);
		free(pg_one(pc, sql));
		char *lsn_text = pg_one(pc, "SELECT pg_current_wal_lsn()");
		uint64_t token = 0;
		CHECK(cachesvc_lsn_parse(lsn_text, &token) == 0, "token %s", lsn_text);

		/* Without the token the stale entry may be served (no invalidator runs)... */
		rc = get(h, "lp_user", 0, 0, &r, 1, "8");
		CHECK(rc == 0, "lp_user 8 without token: %s", errmsg(r));
		const char *seen = cell(r, 0, 1, buf, sizeof buf);
		printf("ok - without the token: \"%s\" from %s\n", seen,
			src_name(cachesvc_result_source(r)));
		cachesvc_result_free(r);
		/* ...with it, never. */
		rc = get(h, "lp_user", 0, token, &r, 1, "8");
		CHECK(rc == 0, "lp_user 8 with token %s: %s %s", lsn_text, cachesvc_strerror(rc),
			errmsg(r));
		CHECK(strcmp(cell(r, 0, 1, buf, sizeof buf), want) == 0,
			"read-your-writes broken: token %s, got \"%s\" from %s (lsn %" PRIx64 ")",
			lsn_text, buf, src_name(cachesvc_result_source(r)), cachesvc_result_lsn(r));
		CHECK(cachesvc_result_lsn(r) >= token, "result LSN below the token");
		printf("ok - with min_lsn %s: \"%s\" from %s\n", lsn_text, buf,
			src_name(cachesvc_result_source(r)));
		cachesvc_result_free(r);
		free(lsn_text);
	}
	PQfinish(pc);
	cachesvc_sync_close(h);
}

/* ---- timeouts ---------------------------------------------------------------------------- */

typedef struct slow_arg {
	cachesvc_sync *h;
	int n;           /* distinct second parameter: no coalescing */
	const char *secs;
	int timeout_ms;
	int rc;
	uint64_t took_ms;
	pthread_barrier_t *start;
} slow_arg;

static void *slow_get(void *p)
{
	slow_arg *a = p;
	char n[16];
	snprintf(n, sizeof n, "%d", a->n);
	if (a->start)
		pthread_barrier_wait(a->start);
	cachesvc_result *r = NULL;
	uint64_t t0 = now_ms();
	a->rc = get(a->h, "lp_slow", a->timeout_ms, 0, &r, 2, a->secs, n);
	a->took_ms = now_ms() - t0;
	cachesvc_result_free(r);
	return NULL;
}

static void run_slow(cachesvc_sync *h, slow_arg *args, int nthreads, const char *secs,
	int timeout_ms, int base_n)
{
	pthread_t t[64];
	pthread_barrier_t b;
	pthread_barrier_init(&b, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		args[i] = (slow_arg){ .h = h, .n = base_n + i, .secs = secs,
			.timeout_ms = timeout_ms, .start = &b };
		pthread_create(&t[i], NULL, slow_get, &args[i]);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&b);
}

static void scenario_timeout(const char *conf)
{
	cachesvc_sync *h = open_sync(conf, 0);
	wait_cache_ready(h, "lp_user", "1");
	cachesvc_result *r = NULL;
	uint64_t t0 = now_ms();
	int rc = get(h, "lp_slow", 200, 0, &r, 2, "1.5", "1");
	uint64_t took = now_ms() - t0;
	CHECK(rc == CACHESVC_E_TIMEOUT, "slow get: %s, want timeout", cachesvc_strerror(rc));
	CHECK(took >= 190 && took < 1000, "timeout after %" PRIu64 " ms (timeout 200)", took);
	CHECK(r != NULL && cachesvc_result_err(r, NULL) == CACHESVC_E_TIMEOUT, "no error result");
	printf("ok - a 1.5 s query with timeout_ms 200 returns timeout after %" PRIu64 " ms: %s\n",
		took, errmsg(r));
	cachesvc_result_free(r);

	sleep_ms(1500); /* that query ends: the replica's pool (4) is free again */

	/* Four at once (one per pooled connection), all timing out; their late results
	 * arrive while nobody waits for them. */
	slow_arg args[4];
	run_slow(h, args, 4, "1", 150, 100);
	for (int i = 0; i < 4; i++)
		CHECK(args[i].rc == CACHESVC_E_TIMEOUT && args[i].took_ms < 1000,
			"thread %d: %s after %" PRIu64 " ms", i, cachesvc_strerror(args[i].rc),
			args[i].took_ms);
	printf("ok - 4 concurrent calls time out in bounded time\n");
	/* The late answers come in and are discarded (ASan watches): wait for the engine
	 * to have no miss in flight. */
	for (int i = 0; i < 80 && (stat_of(h, "flights") > 0 || i < 10); i++)
		sleep_ms(100);
	CHECK(stat_of(h, "flights") == 0, "misses still in flight");

	/* The handle is still fine, and the late results were filled. */
	rc = get(h, "lp_slow", 0, 0, &r, 2, "1", "100");
	CHECK(rc == 0 && cachesvc_result_source(r) == CACHESVC_SRC_CACHE,
		"late result not cached: %s", rc ? errmsg(r) : src_name(cachesvc_result_source(r)));
	cachesvc_result_free(r);
	printf("ok - late results were discarded safely; the handle serves on (and they filled "
	       "the cache)\n");

	/* A timeout with the late answer arriving during close. */
	rc = get(h, "lp_slow", 100, 0, &r, 2, "0.5", "2");
	CHECK(rc == CACHESVC_E_TIMEOUT, "%s", cachesvc_strerror(rc));
	cachesvc_result_free(r);
	cachesvc_sync_close(h);
	printf("ok - close with an abandoned request in the engine\n");
}

/* ---- overload ---------------------------------------------------------------------------- */

static void scenario_overload(const char *conf)
{
	cachesvc_sync *h = open_sync(conf, 4);
	slow_arg args[12];
	run_slow(h, args, 12, "0.5", 5000, 1000);
	int ok = 0, over = 0;
	for (int i = 0; i < 12; i++) {
		if (args[i].rc == 0)
			ok++;
		else if (args[i].rc == CACHESVC_E_OVERLOADED)
			over++;
		else
			fail("thread %d: %s", i, cachesvc_strerror(args[i].rc));
	}
	CHECK(over >= 1 && ok >= 1 && ok <= 4 + 4, "queue_max 4, 12 calls: %d ok, %d overloaded",
		ok, over);
	printf("ok - queue_max 4: %d answered, %d refused OVERLOADED at once\n", ok, over);
	cachesvc_sync_close(h);
}

/* ---- close with calls in flight ---------------------------------------------------------- */

typedef struct close_arg {
	slow_arg *args;
	int n;
} close_arg;

static void *closer_threads(void *p)
{
	close_arg *c = p;
	pthread_t t[16];
	for (int i = 0; i < c->n; i++)
		pthread_create(&t[i], NULL, slow_get, &c->args[i]);
	for (int i = 0; i < c->n; i++)
		pthread_join(t[i], NULL);
	return NULL;
}

static void scenario_close(const char *conf)
{
	cachesvc_sync *h = open_sync(conf, 0);
	slow_arg args[10];
	for (int i = 0; i < 10; i++)
		args[i] = (slow_arg){ .h = h, .n = 2000 + i, .secs = "2", .timeout_ms = 20000 };
	close_arg c = { args, 10 };
	pthread_t runner;
	pthread_create(&runner, NULL, closer_threads, &c);
	sleep_ms(300); /* every call is queued or in the engine by now */
	uint64_t t0 = now_ms();
	cachesvc_sync_close(h);
	uint64_t took = now_ms() - t0;
	pthread_join(runner, NULL);
	for (int i = 0; i < 10; i++)
		CHECK(args[i].rc == CACHESVC_E_SHUTTING_DOWN && args[i].took_ms < 2000,
			"call %d: %s after %" PRIu64 " ms", i, cachesvc_strerror(args[i].rc),
			args[i].took_ms);
	CHECK(took < 1500, "close took %" PRIu64 " ms", took);
	printf("ok - close with 10 calls in flight: all answered shutting_down, close took %" PRIu64
	       " ms\n", took);
}

/* ---- asynchronous API -------------------------------------------------------------------- */

typedef struct actx {
	struct event_base *base;
	cachesvc *cs;
	int answered, errors, expect;
	int last_err, last_src;
	bool in_call;   /* a cachesvc_get is on the stack */
	bool reentered; /* a callback ran inside it */
	bool close_in_cb;
	char name[64];
} actx;

static void on_async(void *priv, int err, const char *msg, const cachesvc_result *r)
{
	actx *a = priv;
	if (a->in_call)
		a->reentered = true;
	a->answered++;
	a->last_err = err;
	if (err != 0) {
		a->errors++;
		CHECK(msg != NULL && r == NULL, "error callback without message, or with a result");
	} else {
		a->last_src = cachesvc_result_source(r);
		char buf[64];
		snprintf(a->name, sizeof a->name, "%s", cell(r, 0, 1, buf, sizeof buf));
	}
	if (a->close_in_cb) {
		a->close_in_cb = false;
		cachesvc_close(a->cs); /* deferred: the engine is on the stack */
		cachesvc_value p = cachesvc_text("1");
		cachesvc_request req = { .query = "lp_user", .params = &p, .nparams = 1 };
		CHECK(cachesvc_get(a->cs, &req, on_async, a) == CACHESVC_E_CLOSED,
			"get after close accepted");
	}
	if (a->answered >= a->expect)
		event_base_loopbreak(a->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	fail("async: no answer within 10 s");
}

/* Starts n GETs of query(param) and runs the loop until all are answered. */
static void async_run(actx *a, const char *query, const char *param, int n, uint64_t min_lsn)
{
	cachesvc_value p = cachesvc_text(param);
	cachesvc_request req = { .query = query, .params = &p, .nparams = 1,
		.tier = CACHESVC_TIER_DEFAULT, .min_lsn = min_lsn };
	a->answered = a->errors = 0;
	a->expect = n;
	for (int i = 0; i < n; i++) {
		a->in_call = true;
		int rc = cachesvc_get(a->cs, &req, on_async, a);
		a->in_call = false;
		CHECK(rc == 0, "cachesvc_get: %s", cachesvc_strerror(rc));
	}
	struct event *t = evtimer_new(a->base, on_timeout, NULL);
	struct timeval tv = { 10, 0 };
	evtimer_add(t, &tv);
	event_base_dispatch(a->base);
	event_free(t);
	CHECK(!a->reentered, "a callback ran inside cachesvc_get");
}

static cachesvc *async_open(struct event_base *base, const char *conf)
{
	cachesvc_error err;
	cachesvc *cs = cachesvc_open(base, conf, NULL, &err);
	CHECK(cs != NULL, "cachesvc_open: %s: %s", cachesvc_strerror(err.code), err.msg);
	/* wait for health on the loop */
	for (int i = 0; i < 500 && !cachesvc_healthy(cs, NULL, 0); i++) {
		struct timeval tv = { 0, 10000 };
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	char why[128];
	CHECK(cachesvc_healthy(cs, why, sizeof why), "async: not healthy: %s", why);
	return cs;
}

static void scenario_async(const char *conf)
{
	signal(SIGPIPE, SIG_IGN);
	actx a = { .base = event_base_new() };
	a.cs = async_open(a.base, conf);
	for (int i = 0; i < 100; i++) { /* generations loaded: reads of key 1 hit */
		async_run(&a, "lp_user", "1", 1, 0);
		if (a.last_err == 0 && a.last_src == CACHESVC_SRC_CACHE)
			break;
	}
	CHECK(a.last_src == CACHESVC_SRC_CACHE, "async: key 1 never cached");
	async_run(&a, "lp_user", "9", 1, 0);
	CHECK(a.last_err == 0 && a.last_src == CACHESVC_SRC_REPLICA &&
			strcmp(a.name, "user 9") == 0,
		"async miss: err %d src %d name %s", a.last_err, a.last_src, a.name);
	async_run(&a, "lp_user", "9", 1, 0);
	CHECK(a.last_err == 0 && a.last_src == CACHESVC_SRC_CACHE, "async hit: %d %d", a.last_err,
		a.last_src);
	printf("ok - async: miss from a replica, then a hit, callbacks on our loop\n");

	async_run(&a, "lp_nosuch", "1", 1, 0);
	CHECK(a.last_err == CACHESVC_E_UNKNOWN_QUERY, "async unknown query: %d", a.last_err);
	async_run(&a, "lp_user", "abc", 3, 0);
	CHECK(a.errors == 3 && a.last_err == CACHESVC_E_BAD_PARAMS, "async bad params: %d",
		a.last_err);
	printf("ok - async: errors found at once still arrive from the loop, never inside "
	       "cachesvc_get\n");

	cachesvc_stat st[64];
	uint32_t n = cachesvc_stats(a.cs, st, 64);
	CHECK(n > 0 && strcmp(st[0].name, "requests") == 0 && st[0].value >= 5, "async stats");
	printf("ok - async: stats (%" PRId64 " requests)\n", st[0].value);

	/* close from inside a callback: deferred to the next turn of the loop */
	a.close_in_cb = true;
	async_run(&a, "lp_user", "9", 1, 0);
	struct timeval tv = { 0, 50000 };
	event_base_loopexit(a.base, &tv);
	event_base_dispatch(a.base); /* runs the deferred teardown */
	printf("ok - async: close from inside a callback\n");

	/* close with requests in flight: their callbacks run before close returns */
	a.cs = async_open(a.base, conf);
	cachesvc_value p[2] = { cachesvc_text("2"), cachesvc_text("77") };
	cachesvc_request req = { .query = "lp_slow", .params = p, .nparams = 2 };
	a.answered = a.errors = 0;
	a.expect = 1000;
	for (int i = 0; i < 5; i++)
		CHECK(cachesvc_get(a.cs, &req, on_async, &a) == 0, "slow get");
	tv = (struct timeval){ 0, 200000 };
	event_base_loopexit(a.base, &tv);
	event_base_dispatch(a.base);
	CHECK(a.answered == 0, "slow answered early");
	cachesvc_close(a.cs);
	CHECK(a.answered == 5 && a.errors == 5 && a.last_err == CACHESVC_E_SHUTTING_DOWN,
		"close in flight: %d answered, last %s", a.answered, cachesvc_strerror(a.last_err));
	printf("ok - async: close answers 5 requests in flight shutting_down before it returns\n");
	event_base_free(a.base);
}

/* ---- coalescing -------------------------------------------------------------------------- */

typedef struct co_arg {
	cachesvc_sync *h;
	const char *query, *param;
	pthread_barrier_t *start;
	int rc, src;
} co_arg;

static void *co_get(void *p)
{
	co_arg *a = p;
	pthread_barrier_wait(a->start);
	cachesvc_result *r = NULL;
	a->rc = get(a->h, a->query, 20000, 0, &r, 1, a->param);
	a->src = a->rc == 0 ? cachesvc_result_source(r) : -1;
	cachesvc_result_free(r);
	return NULL;
}

static void scenario_coalesce(const char *conf, int nthreads, const char *query,
	const char *param)
{
	cachesvc_sync *h = open_sync(conf, 0);
	wait_cache_ready(h, "co_warm", "1");
	int64_t coalesced0 = stat_of(h, "coalesced");
	pthread_t *t = calloc((size_t)nthreads, sizeof *t);
	co_arg *args = calloc((size_t)nthreads, sizeof *args);
	pthread_barrier_t b;
	pthread_barrier_init(&b, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		args[i] = (co_arg){ .h = h, .query = query, .param = param, .start = &b };
		CHECK(pthread_create(&t[i], NULL, co_get, &args[i]) == 0, "thread %d", i);
	}
	int ok = 0, from_db = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		ok += args[i].rc == 0;
		from_db += args[i].rc == 0 && args[i].src != CACHESVC_SRC_CACHE;
	}
	pthread_barrier_destroy(&b);
	int64_t coalesced = stat_of(h, "coalesced") - coalesced0;
	printf("{\"ok\":%d,\"from_db\":%d,\"coalesced\":%" PRId64 "}\n", ok, from_db, coalesced);
	CHECK(ok == nthreads, "%d of %d answered", ok, nthreads);
	free(t);
	free(args);
	cachesvc_sync_close(h);
}

static void scenario_coalesce_async(const char *conf, int n, const char *query,
	const char *param)
{
	signal(SIGPIPE, SIG_IGN);
	actx a = { .base = event_base_new() };
	a.cs = async_open(a.base, conf);
	for (int i = 0; i < 100; i++) { /* generations loaded: co_warm(1) hits */
		async_run(&a, "co_warm", "1", 1, 0);
		if (a.last_err == 0 && a.last_src == CACHESVC_SRC_CACHE)
			break;
	}
	CHECK(a.last_src == CACHESVC_SRC_CACHE, "async: co_warm never cached");
	async_run(&a, query, param, n, 0);
	printf("{\"ok\":%d,\"errors\":%d}\n", a.answered - a.errors, a.errors);
	CHECK(a.errors == 0, "%d errors, last %s", a.errors, cachesvc_strerror(a.last_err));
	cachesvc_close(a.cs);
	event_base_free(a.base);
}

/* A chain of GETs, each issued from the previous one's callback, all answered from the near
 * cache (immediately, parked by the library until the loop runs): the application's timer
 * must still fire within its time, the loop's I/O and timers not starved by the chain. */
typedef struct chain {
	actx *a;
	cachesvc_request req;
	cachesvc_value p;
	int n;
	uint64_t t0_ms, fired_ms;
} chain;

static void on_chain(void *priv, int err, const char *msg, const cachesvc_result *r)
{
	chain *c = priv;
	c->n++;
	CHECK(err == 0, "chain: %s", msg);
	if (c->fired_ms || now_ms() - c->t0_ms > 5000) {
		event_base_loopbreak(c->a->base);
		return;
	}
	CHECK(cachesvc_get(c->a->cs, &c->req, on_chain, c) == 0, "chain: get refused");
}

static void on_chain_timer(evutil_socket_t fd, short what, void *arg)
{
	chain *c = arg;
	c->fired_ms = now_ms() - c->t0_ms;
}

static void scenario_near_chain(const char *conf, const char *query, const char *param)
{
	signal(SIGPIPE, SIG_IGN);
	actx a = { .base = event_base_new() };
	a.cs = async_open(a.base, conf);
	for (int i = 0; i < 200; i++) { /* filled, then held near */
		async_run(&a, query, param, 1, 0);
		if (a.last_err == 0 && a.last_src == CACHESVC_SRC_CACHE && i > 3)
			break;
		usleep(20000);
	}
	CHECK(a.last_src == CACHESVC_SRC_CACHE, "near_chain: %s %s never cached", query, param);
	chain c = { .a = &a };
	c.p = cachesvc_text(param);
	c.req = (cachesvc_request){ .query = query, .params = &c.p, .nparams = 1,
		.tier = CACHESVC_TIER_DEFAULT };
	struct event *t = evtimer_new(a.base, on_chain_timer, &c);
	struct timeval tv = { 0, 200000 };
	evtimer_add(t, &tv);
	c.t0_ms = now_ms();
	CHECK(cachesvc_get(a.cs, &c.req, on_chain, &c) == 0, "chain: get refused");
	event_base_dispatch(a.base);
	event_free(t);
	printf("{\"answers\":%d,\"timer_ms\":%llu}\n", c.n, (unsigned long long)c.fired_ms);
	CHECK(c.fired_ms > 0 && c.fired_ms < 2000, "a 200 ms timer fired after %llu ms (0: never) "
						    "while %d chained answers ran",
		(unsigned long long)c.fired_ms, c.n);
	cachesvc_close(a.cs);
	event_base_free(a.base);
}

static void scenario_shards(
        const char *conf, const char *query, const char *token, int rounds, char **keys, int nkeys)
{
	cachesvc_token t = {.shard = "", .lsn = 0};
	if (strcmp(token, "-") != 0) {
		CHECK(cachesvc_token_parse(token, &t) == 0, "cachesvc_token_parse(%s) refused",
		        token);
		char back[CACHESVC_TOKEN_STRLEN];
		CHECK(strcasecmp(cachesvc_token_format(&t, back), token) == 0,
		        "token %s formats back as %s", token, back);
	}
	cachesvc_sync *h = open_sync(conf, 0);
	char why[256];
	int healthy = 0;
	for (int i = 0; i < 300 && (healthy = cachesvc_sync_healthy(h, 1000, why, sizeof why)) != 1;
	        i++)
		sleep_ms(100);
	CHECK(healthy == 1, "not healthy in 30 s: %s", why);
	for (int r = 1; r <= rounds; r++) {
		for (int i = 0; i < nkeys; i++) {
			cachesvc_value p = cachesvc_text(keys[i]);
			cachesvc_request req = {.query = query,
			        .params = &p,
			        .nparams = 1,
			        .tier = CACHESVC_TIER_DEFAULT,
			        .min_lsn = t.lsn};
			cachesvc_result *res = NULL;
			int rc = cachesvc_sync_get_token(h, &req, t.shard, 0, &res);
			char buf[256];
			printf("round=%d key=%s err=%s src=%s value=%s\n", r, keys[i],
			        rc == 0 ? "0" : cachesvc_strerror(rc),
			        rc == 0 ? src_name(cachesvc_result_source(res)) : "-",
			        rc == 0 ? (cachesvc_result_nrows(res)
			                                  ? cell(res, 0, 0, buf, sizeof buf)
			                                  : "<no row>")
			                : errmsg(res));
			cachesvc_result_free(res);
		}
	}
	cachesvc_sync_close(h);
}

typedef struct shard_async {
	struct event_base *base;
	const char *key;
	bool in_call, reentered;
	int answered;
} shard_async;

static void on_shard_async(void *priv, int err, const char *msg, const cachesvc_result *r)
{
	shard_async *sa = priv;
	sa->reentered |= sa->in_call;
	sa->answered++;
	char buf[256];
	printf("round=1 key=%s err=%s src=%s value=%s\n", sa->key,
	        err == 0 ? "0" : cachesvc_strerror(err),
	        err == 0 ? src_name(cachesvc_result_source(r)) : "-",
	        err == 0 ? (cachesvc_result_nrows(r) ? cell(r, 0, 0, buf, sizeof buf) : "<no row>")
	                 : msg);
	event_base_loopbreak(sa->base);
}

static void scenario_shards_async(
        const char *conf, const char *query, const char *token, const char *key)
{
	signal(SIGPIPE, SIG_IGN);
	cachesvc_token t = {.shard = "", .lsn = 0};
	if (strcmp(token, "-") != 0)
		CHECK(cachesvc_token_parse(token, &t) == 0, "cachesvc_token_parse(%s) refused",
		        token);
	shard_async sa = {.base = event_base_new(), .key = key};
	cachesvc *cs = async_open(sa.base, conf);
	cachesvc_value p = cachesvc_text(key);
	cachesvc_request req = {.query = query,
	        .params = &p,
	        .nparams = 1,
	        .tier = CACHESVC_TIER_DEFAULT,
	        .min_lsn = t.lsn};
	sa.in_call = true;
	int rc = cachesvc_get_token(cs, &req, t.shard, on_shard_async, &sa);
	sa.in_call = false;
	CHECK(rc == 0, "cachesvc_get_token: %s", cachesvc_strerror(rc));
	struct event *tm = evtimer_new(sa.base, on_timeout, NULL);
	struct timeval tv = {10, 0}; /* on_timeout's bound */
	evtimer_add(tm, &tv);
	event_base_dispatch(sa.base);
	event_free(tm);
	CHECK(sa.answered == 1 && !sa.reentered, "async: %d answers, %s inside the call",
	        sa.answered, sa.reentered ? "one" : "none");
	cachesvc_close(cs);
	event_base_free(sa.base);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		goto usage;
	const char *mode = argv[1], *conf = argv[2];
	if (strcmp(mode, "readpath") == 0)
		scenario_readpath(conf);
	else if (strcmp(mode, "ryw") == 0 && argc == 4)
		scenario_ryw(conf, argv[3]);
	else if (strcmp(mode, "timeout") == 0)
		scenario_timeout(conf);
	else if (strcmp(mode, "overload") == 0)
		scenario_overload(conf);
	else if (strcmp(mode, "close") == 0)
		scenario_close(conf);
	else if (strcmp(mode, "async") == 0)
		scenario_async(conf);
	else if (strcmp(mode, "coalesce") == 0 && argc == 6)
		scenario_coalesce(conf, atoi(argv[3]), argv[4], argv[5]);
	else if (strcmp(mode, "near_chain") == 0 && argc == 5)
		scenario_near_chain(conf, argv[3], argv[4]);
	else if (strcmp(mode, "shards_async") == 0 && argc == 6)
		scenario_shards_async(conf, argv[3], argv[4], argv[5]);
	else if (strcmp(mode, "shards") == 0 && argc >= 7)
		scenario_shards(conf, argv[3], argv[4], atoi(argv[5]), argv + 6, argc - 6);
	else if (strcmp(mode, "coalesce_async") == 0 && argc == 6)
		scenario_coalesce_async(conf, atoi(argv[3]), argv[4], argv[5]);
	else
		goto usage;
	return 0;
usage:
	fprintf(stderr, "usage: lib_test MODE CONFIG [ARGS] (see the file's first comment)\n");
	return 2;
}
