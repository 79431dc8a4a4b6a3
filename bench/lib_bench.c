/* lib_bench.c - library-mode hit throughput and latency: N threads call cachesvc_sync_get
 * on one handle for D seconds over K keys (pre-filled, so every read should be a hit) and
 * print one JSON line (ops/s, p50/p99/p999 in microseconds, hits, errors) for the bench
 * driver to put next to the daemon's numbers.
 *
 *   cachesvc-lib-bench -c CONFIG [-t THREADS] [-d SECONDS] [-k KEYS] QUERY PARAM...
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

int main(int argc, char **argv)
{
	const char *config = NULL;
	int threads = 4, seconds = 5, ch;
	while ((ch = getopt(argc, argv, "c:t:d:k:")) != -1) {
		switch (ch) {
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
	fprintf(stderr, "usage: %s -c CONFIG [-t THREADS] [-d SECONDS] [-k KEYS] QUERY PARAM...\n"
			"  a PARAM of %%k is replaced by the key number (1..KEYS)\n",
		argv[0]);
	return 2;
}
