/* lib_bench.c - library-mode hit throughput and latency: N threads call cachesvc_sync_get
 * on one handle for D seconds over K keys (pre-filled, so every read should be a hit) and
 * print one JSON line (ops/s, p50/p99/p999 in microseconds, hits, errors) for the bench
 * driver to put next to the daemon's numbers.
 *
 *   cachesvc-lib-bench -c CONFIG [-t THREADS] [-d SECONDS] [-k KEYS] QUERY PARAM...
 *   lib_bench -c CONFIG -a OUTSTANDING [-d SECONDS] [-k KEYS] QUERY PARAM...
 *
 * -a N: the asynchronous API instead (built as build/bench/lib_bench, with libevent): this
 * thread owns an event_base, opens the engine on it (cachesvc_open) and keeps N
 * cachesvc_get requests outstanding, issuing the next one from each callback - no thread
 * hop per call, as an application on its own loop would use library mode. "mode" in the
 * JSON says which ("library_sync" or "library_async").
 *
 * A PARAM of "%k" is replaced by the key number (1..KEYS, uniform); others are passed as
 * text. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cachesvc.h>
#ifdef LIB_BENCH_ASYNC
#include <event2/event.h>
#endif

#define SUB_BITS 6 /* 64 sub-buckets per power of two: ~1.6% resolution */
#define NBUCKETS (64 << SUB_BITS)

/* Log-linear latency histogram (microseconds), one per thread, merged at the end. */
typedef struct lat_hist {
	uint64_t n[NBUCKETS];
} lat_hist;

static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << SUB_BITS))
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - SUB_BITS;
	return ((shift + 1) << SUB_BITS) + (unsigned)((v >> shift) & ((1u << SUB_BITS) - 1));
}

static uint64_t bucket_value(unsigned b)
{
	if (b < (1u << SUB_BITS))
		return b;
	unsigned shift = (b >> SUB_BITS) - 1;
	uint64_t sub = b & ((1u << SUB_BITS) - 1);
	return ((1ull << SUB_BITS) + sub) << shift;
}

static uint64_t quantile(const lat_hist *h, uint64_t total, double q)
{
	uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		seen += h->n[b];
		if (seen >= want && want > 0)
			return bucket_value(b);
	}
	return 0;
}

typedef struct worker {
	pthread_t tid;
	int id;
	lat_hist hist;
	uint64_t ops, hits, errors;
} worker;

static cachesvc_sync *cs;
static const char *query;
static char **params;
static int nparams;
static long nkeys = 1;
static atomic_bool stop;

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Builds the request for key k; keybuf holds the key's text. */
static void make_req(long k, char *keybuf, size_t len, cachesvc_value *vals, cachesvc_request *req)
{
	snprintf(keybuf, len, "%ld", k);
	for (int i = 0; i < nparams; i++)
		vals[i] = cachesvc_text(strcmp(params[i], "%k") == 0 ? keybuf : params[i]);
	*req = (cachesvc_request){ .query = query, .params = vals, .nparams = (uint32_t)nparams,
		.tier = CACHESVC_TIER_CRITICAL };
}

static void *run(void *arg)
{
	worker *w = arg;
	uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(w->id + 1);
	char keybuf[24];
	cachesvc_value vals[16];
	cachesvc_request req;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		make_req(1 + (long)(rng % (uint64_t)nkeys), keybuf, sizeof keybuf, vals, &req);
		cachesvc_result *r = NULL;
		uint64_t t0 = now_us();
		int rc = cachesvc_sync_get(cs, &req, 0, &r);
		uint64_t dt = now_us() - t0;
		w->hist.n[bucket_of(dt)]++;
		w->ops++;
		if (rc != 0)
			w->errors++;
		else if (cachesvc_result_source(r) == CACHESVC_SRC_CACHE)
			w->hits++;
		cachesvc_result_free(r);
	}
	return NULL;
}

#ifdef LIB_BENCH_ASYNC
/* ---- asynchronous mode: one thread, one event_base, N requests outstanding ---- */
typedef struct aslot {
	char keybuf[24];
	cachesvc_value vals[16];
	uint64_t t0;
} aslot;

static struct {
	struct event_base *base;
	cachesvc *h;
	aslot *slots;
	int outstanding, pending;
	bool measuring, stopping;
	lat_hist hist;
	uint64_t ops, hits, errors, rng;
	uint64_t fill_next, fill_done;
	int fill_failed;
	uint64_t ready_deadline, end_us;
} A;

static void a_issue(aslot *s);

static void a_done(void *priv, int err, const char *msg, const cachesvc_result *r)
{
	aslot *s = priv;
	A.pending--;
	if (!A.measuring) { /* warm-up: every key once, in order */
		if (err != 0) {
			if (A.fill_failed++ == 0)
				fprintf(stderr, "lib_bench: warm-up: %s\n", msg ? msg : "error");
		}
		A.fill_done++;
		if (A.fill_next <= (uint64_t)nkeys && A.fill_failed == 0)
			a_issue(s);
		else if (A.pending == 0)
			event_base_loopbreak(A.base);
		return;
	}
	uint64_t now = now_us(), dt = now - s->t0;
	/* The end is checked here, not only by the timer: near hits are answered through the
	 * library's deferred event, which a callback re-issuing a near hit keeps active, and
	 * libevent then never leaves its active queue to run timers. */
	if (now >= A.end_us)
		A.stopping = true;
	A.hist.n[bucket_of(dt)]++;
	A.ops++;
	if (err != 0)
		A.errors++;
	else if (cachesvc_result_source(r) == CACHESVC_SRC_CACHE)
		A.hits++;
	if (!A.stopping)
		a_issue(s);
	else if (A.pending == 0)
		event_base_loopbreak(A.base);
}

static void a_issue(aslot *s)
{
	long k;
	if (!A.measuring) {
		k = (long)A.fill_next++;
	} else {
		A.rng ^= A.rng << 13;
		A.rng ^= A.rng >> 7;
		A.rng ^= A.rng << 17;
		k = 1 + (long)(A.rng % (uint64_t)nkeys);
	}
	cachesvc_request req;
	make_req(k, s->keybuf, sizeof s->keybuf, s->vals, &req);
	s->t0 = now_us();
	int rc = cachesvc_get(A.h, &req, a_done, s);
	if (rc != 0) {
		/* Refused synchronously (cb never runs): count it and stop this slot. */
		A.errors++;
		if (A.pending == 0)
			event_base_loopbreak(A.base);
		return;
	}
	A.pending++;
}

static void a_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	A.stopping = true;
}

static void a_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct event *ev = arg;
	char why[256];
	if (!cachesvc_healthy(A.h, why, sizeof why) && now_us() < A.ready_deadline) {
		struct timeval tv = { 0, 20000 };
		event_add(ev, &tv);
		return;
	}
	event_base_loopbreak(A.base);
}

static int run_async(const char *config, int seconds)
{
	cachesvc_error err;
	A.base = event_base_new();
	if (A.base == NULL)
		return 1;
	A.h = cachesvc_open(A.base, config, NULL, &err);
	if (A.h == NULL) {
		fprintf(stderr, "lib_bench: %s\n", err.msg);
		return 1;
	}
	A.slots = calloc((size_t)A.outstanding, sizeof *A.slots);
	if (A.slots == NULL)
		return 1;
	A.rng = 0x9E3779B97F4A7C15ull;
	/* Wait (bounded) until the engine is healthy. */
	struct event *ready = evtimer_new(A.base, a_ready, event_self_cbarg());
	struct timeval tv0 = { 0, 0 };
	A.ready_deadline = now_us() + 10000000u;
	evtimer_add(ready, &tv0);
	event_base_dispatch(A.base);
	event_free(ready);
	if (!cachesvc_healthy(A.h, NULL, 0)) {
		fprintf(stderr, "lib_bench: the engine did not become healthy\n");
		cachesvc_close(A.h);
		return 1;
	}
	/* Warm-up: every key once, N at a time, so the measured reads are hits (and, with a
	 * near cache, near hits). */
	A.fill_next = 1;
	for (int i = 0; i < A.outstanding && A.fill_next <= (uint64_t)nkeys; i++)
		a_issue(&A.slots[i]);
	if (A.pending > 0)
		event_base_dispatch(A.base);
	if (A.fill_failed) {
		cachesvc_close(A.h);
		return 1;
	}
	A.measuring = true;
	struct event *stop_ev = evtimer_new(A.base, a_stop, NULL);
	struct timeval tv = { seconds, 0 };
	evtimer_add(stop_ev, &tv);
	uint64_t t0 = now_us();
	A.end_us = t0 + (uint64_t)seconds * 1000000u;
	for (int i = 0; i < A.outstanding; i++)
		a_issue(&A.slots[i]);
	if (A.pending > 0)
		event_base_dispatch(A.base);
	double secs = (double)(now_us() - t0) / 1e6;
	event_free(stop_ev);
	printf("{\"mode\":\"library_async\",\"threads\":1,\"outstanding\":%d,\"seconds\":%.3f,"
	       "\"keys\":%ld,\"ops\":%" PRIu64 ",\"ops_per_sec\":%.0f,\"p50_us\":%" PRIu64
	       ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 ",\"hits\":%" PRIu64
	       ",\"errors\":%" PRIu64 "}\n",
		A.outstanding, secs, nkeys, A.ops, (double)A.ops / secs, quantile(&A.hist, A.ops, 0.5),
		quantile(&A.hist, A.ops, 0.99), quantile(&A.hist, A.ops, 0.999), A.hits, A.errors);
	cachesvc_close(A.h);
	event_base_loop(A.base, EVLOOP_NONBLOCK); /* let the close's teardown run */
	event_base_free(A.base);
	free(A.slots);
	return A.errors == 0 ? 0 : 1;
}
#endif

int main(int argc, char **argv)
{
	const char *config = NULL;
	int threads = 4, seconds = 5, ch, outstanding = 0;
	while ((ch = getopt(argc, argv, "a:c:t:d:k:")) != -1) {
		switch (ch) {
		case 'a':
			outstanding = atoi(optarg);
			break;
		case 'c':
			config = optarg;
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'd':
			seconds = atoi(optarg);
			break;
		case 'k':
			nkeys = atol(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (config == NULL || optind >= argc || threads < 1 || seconds < 1 || nkeys < 1 ||
		argc - optind - 1 > 16)
		goto usage;
	query = argv[optind];
	params = argv + optind + 1;
	nparams = argc - optind - 1;
	if (outstanding > 0) {
#ifdef LIB_BENCH_ASYNC
		A.outstanding = outstanding;
		return run_async(config, seconds);
#else
		fprintf(stderr, "lib_bench: -a needs the build with libevent (build/bench/lib_bench)\n");
		return 2;
#endif
	}

	cachesvc_error err;
	cs = cachesvc_sync_open(config, NULL, &err);
	if (cs == NULL) {
		fprintf(stderr, "lib_bench: %s\n", err.msg);
		return 1;
	}
	/* Fill every key first, so the measured reads are hits. */
	for (long k = 1; k <= nkeys; k++) {
		char keybuf[24];
		cachesvc_value vals[16];
		cachesvc_request req;
		make_req(k, keybuf, sizeof keybuf, vals, &req);
		cachesvc_result *r = NULL;
		int rc = cachesvc_sync_get(cs, &req, 0, &r);
		if (rc != 0) {
			const char *msg;
			cachesvc_result_err(r, &msg);
			fprintf(stderr, "lib_bench: warm-up of key %ld: %s\n", k, msg);
			cachesvc_result_free(r);
			cachesvc_sync_close(cs);
			return 1;
		}
		cachesvc_result_free(r);
	}

	worker *ws = calloc((size_t)threads, sizeof *ws);
	if (ws == NULL)
		return 1;
	uint64_t t0 = now_us();
	for (int i = 0; i < threads; i++) {
		ws[i].id = i;
		pthread_create(&ws[i].tid, NULL, run, &ws[i]);
	}
	struct timespec d = { .tv_sec = seconds };
	nanosleep(&d, NULL);
	atomic_store(&stop, true);
	lat_hist *all = calloc(1, sizeof *all);
	uint64_t ops = 0, hits = 0, errors = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(ws[i].tid, NULL);
		for (unsigned b = 0; b < NBUCKETS; b++)
			all->n[b] += ws[i].hist.n[b];
		ops += ws[i].ops;
		hits += ws[i].hits;
		errors += ws[i].errors;
	}
	double secs = (double)(now_us() - t0) / 1e6;
	printf("{\"mode\":\"library_sync\",\"threads\":%d,\"seconds\":%.3f,\"keys\":%ld,"
	       "\"ops\":%" PRIu64 ",\"ops_per_sec\":%.0f,\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
	       ",\"p999_us\":%" PRIu64 ",\"hits\":%" PRIu64 ",\"errors\":%" PRIu64 "}\n",
		threads, secs, nkeys, ops, (double)ops / secs, quantile(all, ops, 0.5),
		quantile(all, ops, 0.99), quantile(all, ops, 0.999), hits, errors);
	free(all);
	free(ws);
	cachesvc_sync_close(cs);
	return errors == 0 ? 0 : 1;

usage:
	fprintf(stderr, "usage: %s -c CONFIG [-t THREADS | -a OUTSTANDING] [-d SECONDS] [-k KEYS] QUERY PARAM...\n"
			"  a PARAM of %%k is replaced by the key number (1..KEYS)\n",
		argv[0]);
	return 2;
}
