/* test_hist.c - unit tests for cachesvc/base/hist.c: accuracy against sorted data, Prometheus text. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hist.h"

/* ---------------------------------------------------------------- helpers */

/* splitmix64: a fixed-seed generator, so every run sees the same data. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi], hi - lo < 2^63. */
static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
	return lo + rng_next() % (hi - lo + 1);
}

/* Log-uniform in [0, 2^40): a random magnitude, then a random value inside it. */
static uint64_t rng_latency(void)
{
	unsigned bits = (unsigned)rng_range(0, 40);
	return bits == 0 ? 0 : rng_range(UINT64_C(1) << (bits - 1), (UINT64_C(1) << bits) - 1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The exact nearest-rank quantile of sorted[0..n), the definition cs_hist_quantile uses. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
	double r = q * (double)n;
	size_t rank = r >= (double)n ? n : (size_t)ceil(r);
	return sorted[rank ? rank - 1 : 0];
}

/* Values in sorted[0..n) that are <= bound. */
static uint64_t exact_count_le(const uint64_t *sorted, size_t n, uint64_t bound)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] <= bound)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* reported >= exact, and above it by less than 1% of it (exactly equal when exact is 0). */
static void assert_within_1pct(uint64_t reported, uint64_t exact)
{
	int ok = reported >= exact &&
	         (exact == 0 ? reported == 0 : (reported - exact) * 100 < exact);
	if (!ok)
		fail_msg("reported %llu for exact %llu", (unsigned long long)reported,
		        (unsigned long long)exact);
}

static cs_hist *hist_new(void)
{
	cs_hist *h = malloc(sizeof *h);
	assert_non_null(h);
	cs_hist_init(h);
	return h;
}

static const double qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1};
#define NQ (sizeof qs / sizeof qs[0])

/* ---------------------------------------------------------------- tests */

static void empty_histogram(void **state)
{
	cs_hist *h = hist_new();
	assert_int_equal(cs_hist_count(h), 0);
	assert_int_equal(cs_hist_sum(h), 0);
	assert_int_equal(cs_hist_min(h), 0);
	assert_int_equal(cs_hist_max(h), 0);
	assert_true(cs_hist_mean(h) == 0.0);
	assert_int_equal(cs_hist_overflow(h), 0);
	for (size_t i = 0; i < NQ; i++)
		assert_int_equal(cs_hist_quantile(h, qs[i]), 0);
	assert_int_equal(cs_hist_count_le(h, 0), 0);
	assert_int_equal(cs_hist_count_le(h, UINT64_MAX), 0);
	cs_hist_record_n(h, 77, 0); /* records nothing, moves nothing */
	assert_int_equal(cs_hist_count(h), 0);
	assert_int_equal(cs_hist_min(h), 0);
	assert_int_equal(cs_hist_max(h), 0);
	free(h);
}

static void memory_is_modest(void **state)
{
	assert_true(sizeof(cs_hist) <= 36 * 1024);
	assert_int_equal(CS_HIST_BUCKETS, 34 * 128);
}

/* Values below 256 have buckets of their own: everything is exact. */
static void exact_small_values(void **state)
{
	cs_hist *h = hist_new();
	for (uint64_t v = 0; v < 256; v++) {
		assert_int_equal(cs_hist_bucket_lowest(v), v);
		assert_int_equal(cs_hist_bucket_highest(v), v);
		cs_hist_record(h, v);
	}
	assert_int_equal(cs_hist_count(h), 256);
	assert_int_equal(cs_hist_sum(h), 255 * 256 / 2);
	assert_int_equal(cs_hist_min(h), 0);
	assert_int_equal(cs_hist_max(h), 255);
	assert_true(cs_hist_mean(h) == 127.5);
	for (uint64_t v = 0; v < 256; v++) {
		assert_int_equal(cs_hist_count_le(h, v), v + 1);
		/* rank v + 1 of 256 is the value v */
		assert_int_equal(cs_hist_quantile(h, (double)(v + 1) / 256.0), v);
	}
	cs_hist_reset(h);
	cs_hist_record(h, 42);
	for (size_t i = 0; i < NQ; i++)
		assert_int_equal(cs_hist_quantile(h, qs[i]), 42);
	assert_int_equal(cs_hist_min(h), 42);
	assert_int_equal(cs_hist_max(h), 42);
	free(h);
}

/* The named quantiles on data whose answers are known by hand. */
static void named_quantiles(void **state)
{
	cs_hist *h = hist_new();
	for (uint64_t v = 1; v <= 200; v++)
		cs_hist_record(h, v);
	assert_int_equal(cs_hist_quantile(h, 0), 1);
	assert_int_equal(cs_hist_quantile(h, 0.5), 100);
	assert_int_equal(cs_hist_quantile(h, 0.99), 198);
	assert_int_equal(cs_hist_quantile(h, 0.999), 200);
	assert_int_equal(cs_hist_quantile(h, 1), 200);
	assert_int_equal(cs_hist_quantile(h, -3), 1); /* clamped */
	assert_int_equal(cs_hist_quantile(h, 7), 200);
	assert_int_equal(cs_hist_quantile(h, NAN), 1);

	/* 1000 values: 990 at 100µs, 9 at 10ms, 1 at 2s. p99.9 is the 999th value. */
	cs_hist_reset(h);
	cs_hist_record_n(h, 100, 990);
	cs_hist_record_n(h, 10000, 9);
	cs_hist_record(h, 2000000);
	assert_int_equal(cs_hist_quantile(h, 0), 100);
	assert_int_equal(cs_hist_quantile(h, 0.5), 100);
	assert_int_equal(cs_hist_quantile(h, 0.99), 100);
	assert_int_equal(cs_hist_quantile(h, 0.999), cs_hist_bucket_highest(10000));
	assert_int_equal(cs_hist_quantile(h, 1), cs_hist_bucket_highest(2000000));
	assert_within_1pct(cs_hist_quantile(h, 0.999), 10000);
	assert_within_1pct(cs_hist_quantile(h, 1), 2000000);
	assert_int_equal(cs_hist_sum(h), 990 * 100 + 9 * 10000 + 2000000);
	free(h);
}

/* Every value's bucket contains it and is narrower than 1% of it. */
static void bucket_bounds(void **state)
{
	rng_state = 1;
	for (int i = 0; i < 200000; i++) {
		uint64_t v = i < 100000 ? rng_latency() : rng_range(0, CS_HIST_HIGHEST);
		uint64_t lo = cs_hist_bucket_lowest(v), hi = cs_hist_bucket_highest(v);
		assert_true(lo <= v && v <= hi);
		assert_within_1pct(hi, lo);
		/* neighbours: the next bucket starts right after this one */
		if (hi < CS_HIST_HIGHEST)
			assert_int_equal(cs_hist_bucket_lowest(hi + 1), hi + 1);
		if (lo > 0)
			assert_int_equal(cs_hist_bucket_highest(lo - 1), lo - 1);
	}
	/* edges of the range */
	assert_int_equal(cs_hist_bucket_highest(CS_HIST_HIGHEST), CS_HIST_HIGHEST);
	assert_int_equal(cs_hist_bucket_lowest(256), 256);
	assert_int_equal(cs_hist_bucket_highest(256), 257);
	assert_int_equal(cs_hist_bucket_highest(UINT64_MAX), CS_HIST_HIGHEST);
	/* a single value: the quantile is its bucket's highest value */
	cs_hist *h = hist_new();
	for (unsigned bits = 0; bits <= 40; bits++) {
		uint64_t v = (UINT64_C(1) << bits) - 1;
		cs_hist_reset(h);
		cs_hist_record(h, v);
		assert_int_equal(cs_hist_quantile(h, 0.5), cs_hist_bucket_highest(v));
		assert_within_1pct(cs_hist_quantile(h, 0.5), v);
	}
	free(h);
}

/* Quantiles of random data, one magnitude at a time and mixed, against sorted arrays. */
static void relative_error_vs_sorted(void **state)
{
	enum { N = 20001 };
	uint64_t *vals = malloc(N * sizeof *vals);
	assert_non_null(vals);
	cs_hist *h = hist_new();
	rng_state = 42;
	for (unsigned mag = 0; mag <= 40; mag++) { /* 40: the log-uniform mix */
		cs_hist_reset(h);
		uint64_t sum = 0;
		for (size_t i = 0; i < N; i++) {
			uint64_t v = mag == 40 ? rng_latency()
			                       : rng_range(UINT64_C(1) << mag >> 1,
			                                 (UINT64_C(1) << mag) * 3 / 2);
			vals[i] = v;
			sum += v;
			cs_hist_record(h, v);
		}
		qsort(vals, N, sizeof *vals, cmp_u64);
		assert_int_equal(cs_hist_count(h), N);
		assert_int_equal(cs_hist_sum(h), sum);
		assert_int_equal(cs_hist_min(h), vals[0]);
		assert_int_equal(cs_hist_max(h), vals[N - 1]);
		for (size_t i = 0; i < NQ; i++)
			assert_within_1pct(
			        cs_hist_quantile(h, qs[i]), exact_quantile(vals, N, qs[i]));
		for (int i = 1; i <= 1000; i++) { /* a dense sweep too */
			double q = i / 1000.0;
			assert_within_1pct(cs_hist_quantile(h, q), exact_quantile(vals, N, q));
		}
	}
	free(h);
	free(vals);
}

/* Merging two histograms equals recording everything into one. */
static void merge_equals_single(void **state)
{
	cs_hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *empty = hist_new();
	rng_state = 7;
	for (int i = 0; i < 50000; i++) {
		uint64_t v = rng_latency();
		cs_hist_record(i % 3 ? a : b, v);
		cs_hist_record(all, v);
	}
	cs_hist_record(b, CS_HIST_HIGHEST + 5); /* overflow merges too */
	cs_hist_record(all, CS_HIST_HIGHEST + 5);
	cs_hist_merge(a, b);
	cs_hist_merge(a, empty); /* an empty source changes nothing, min included */
	assert_memory_equal(a, all, sizeof *a);
	assert_int_equal(cs_hist_overflow(a), 1);
	for (size_t i = 0; i < NQ; i++)
		assert_int_equal(cs_hist_quantile(a, qs[i]), cs_hist_quantile(all, qs[i]));

	/* into an empty destination */
	cs_hist_merge(empty, all);
	assert_memory_equal(empty, all, sizeof *all);
	assert_int_equal(cs_hist_min(empty), cs_hist_min(all));

	/* self-merge doubles */
	cs_hist_merge(empty, empty);
	assert_int_equal(cs_hist_count(empty), 2 * cs_hist_count(all));
	assert_int_equal(cs_hist_quantile(empty, 0.5), cs_hist_quantile(all, 0.5));
	free(a);
	free(b);
	free(all);
	free(empty);
}

/* count_le: exact at bucket edges, bounded inside buckets, non-decreasing. */
static void count_le_edges(void **state)
{
	enum { N = 30000 };
	uint64_t *vals = malloc(N * sizeof *vals);
	assert_non_null(vals);
	cs_hist *h = hist_new();
	rng_state = 99;
	for (size_t i = 0; i < N; i++) {
		vals[i] = i < 2000   ? cs_hist_bucket_highest(rng_latency()) /* values on edges */
		          : i < 4000 ? cs_hist_bucket_lowest(rng_latency())
		                     : rng_latency();
		cs_hist_record(h, vals[i]);
	}
	qsort(vals, N, sizeof *vals, cmp_u64);

	uint64_t prev = 0;
	for (uint64_t bound = 0; bound < CS_HIST_HIGHEST;
	        bound = cs_hist_bucket_highest(bound) + 1) {
		uint64_t lo = cs_hist_bucket_lowest(bound), hi = cs_hist_bucket_highest(bound);
		/* at a bucket's highest value: exact */
		assert_int_equal(cs_hist_count_le(h, hi), exact_count_le(vals, N, hi));
		/* just below the bucket: exact as well */
		if (lo > 0)
			assert_int_equal(
			        cs_hist_count_le(h, lo - 1), exact_count_le(vals, N, lo - 1));
		/* inside: between the truth and the truth at the bucket's end */
		uint64_t mid = lo + (hi - lo) / 2;
		uint64_t got = cs_hist_count_le(h, mid);
		assert_true(got >= exact_count_le(vals, N, mid));
		assert_true(got <= exact_count_le(vals, N, hi));
		/* non-decreasing */
		assert_true(got >= prev);
		assert_true(cs_hist_count_le(h, hi) >= got);
		prev = cs_hist_count_le(h, hi);
	}
	assert_int_equal(cs_hist_count_le(h, CS_HIST_HIGHEST), N);
	assert_int_equal(cs_hist_count_le(h, UINT64_MAX), N);
	/* random bounds, non-decreasing when sorted */
	uint64_t bounds[2000];
	for (size_t i = 0; i < 2000; i++)
		bounds[i] = rng_latency();
	qsort(bounds, 2000, sizeof bounds[0], cmp_u64);
	prev = 0;
	for (size_t i = 0; i < 2000; i++) {
		uint64_t got = cs_hist_count_le(h, bounds[i]);
		assert_true(got >= prev);
		assert_true(got >= exact_count_le(vals, N, bounds[i]));
		prev = got;
	}
	free(h);
	free(vals);
}

/* Values above the range land in the top bucket and are counted apart. */
static void overflow(void **state)
{
	cs_hist *h = hist_new();
	cs_hist_record(h, 1000);
	cs_hist_record(h, CS_HIST_HIGHEST); /* in range */
	assert_int_equal(cs_hist_overflow(h), 0);
	cs_hist_record(h, CS_HIST_HIGHEST + 1);
	cs_hist_record_n(h, UINT64_MAX / 4, 2);
	assert_int_equal(cs_hist_overflow(h), 3);
	assert_int_equal(cs_hist_count(h), 5);
	assert_int_equal(cs_hist_max(h), UINT64_MAX / 4); /* max and sum see real values */
	assert_int_equal(
	        cs_hist_sum(h), 1000 + CS_HIST_HIGHEST + CS_HIST_HIGHEST + 1 + UINT64_MAX / 4 * 2);
	assert_int_equal(cs_hist_quantile(h, 0.2), cs_hist_bucket_highest(1000));
	assert_int_equal(cs_hist_quantile(h, 0.4), CS_HIST_HIGHEST);
	assert_int_equal(cs_hist_quantile(h, 1), CS_HIST_HIGHEST);
	/* below max, overflowed values are left out; from max on, everything counts */
	assert_int_equal(cs_hist_count_le(h, CS_HIST_HIGHEST), 2);
	assert_int_equal(cs_hist_count_le(h, UINT64_MAX / 4 - 1), 2);
	assert_int_equal(cs_hist_count_le(h, UINT64_MAX / 4), 5);
	cs_hist_reset(h);
	assert_int_equal(cs_hist_overflow(h), 0);
	free(h);
}

/* reset empties everything, and the histogram records normally afterwards. */
static void reset(void **state)
{
	cs_hist *h = hist_new(), *fresh = hist_new();
	rng_state = 3;
	for (int i = 0; i < 1000; i++)
		cs_hist_record(h, rng_latency());
	cs_hist_reset(h);
	assert_memory_equal(h, fresh, sizeof *h);
	assert_int_equal(cs_hist_count(h), 0);
	assert_int_equal(cs_hist_min(h), 0);
	assert_int_equal(cs_hist_max(h), 0);
	assert_int_equal(cs_hist_quantile(h, 0.99), 0);
	assert_int_equal(cs_hist_count_le(h, UINT64_MAX), 0);
	cs_hist_record(h, 5);
	assert_int_equal(cs_hist_min(h), 5);
	assert_int_equal(cs_hist_max(h), 5);
	assert_int_equal(cs_hist_quantile(h, 0.99), 5);
	free(h);
	free(fresh);
}

/* ---------------------------------------------------------------- Prometheus text */

static const char *const std_le[] = {"0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"};
#define NLE (sizeof std_le / sizeof std_le[0])

/* Parses text as written by cs_hist_prometheus for `name` and `labels` and checks it:
 * every standard bound in order, cumulative non-decreasing counts matching count_le, +Inf
 * equal to _count, _sum in seconds. */
static void check_prometheus(
        const cs_hist *h, const char *text, const char *name, const char *labels)
{
	char prefix[256], le[32], rest[64];
	const char *line = text;
	unsigned long long prev = 0, inf = 0, count = 0;
	double sum = -1;
	size_t nbucket = 0;
	int have_count = 0;

	while (*line) {
		const char *nl = strchr(line, '\n');
		assert_non_null(nl); /* every line ends with a newline */
		char one[512];
		assert_true((size_t)(nl - line) < sizeof one);
		memcpy(one, line, (size_t)(nl - line));
		one[nl - line] = '\0';
		line = nl + 1;

		unsigned long long n;
		snprintf(prefix, sizeof prefix, "%s_bucket{%s%sle=\"", name, labels,
		        labels[0] ? "," : "");
		if (strncmp(one, prefix, strlen(prefix)) == 0) {
			const char *p = one + strlen(prefix);
			const char *q = strchr(p, '"');
			assert_non_null(q);
			assert_true((size_t)(q - p) < sizeof le);
			memcpy(le, p, (size_t)(q - p));
			le[q - p] = '\0';
			assert_true(nbucket < NLE);
			assert_string_equal(le, std_le[nbucket]);
			assert_int_equal(sscanf(q, "\"} %llu%63s", &n, rest), 1);
			assert_true(n >= prev);
			if (strcmp(le, "+Inf") == 0) {
				inf = n;
			} else {
				/* the bound in µs, from the text itself */
				uint64_t us = (uint64_t)(strtod(le, NULL) * 1e6 + 0.5);
				assert_int_equal(n, cs_hist_count_le(h, us));
			}
			prev = n;
			nbucket++;
			continue;
		}
		if (labels[0])
			snprintf(prefix, sizeof prefix, "%s_sum{%s} ", name, labels);
		else
			snprintf(prefix, sizeof prefix, "%s_sum ", name);
		if (strncmp(one, prefix, strlen(prefix)) == 0) {
			assert_true(nbucket == NLE); /* after all buckets */
			assert_int_equal(sscanf(one + strlen(prefix), "%lf%63s", &sum, rest), 1);
			continue;
		}
		if (labels[0])
			snprintf(prefix, sizeof prefix, "%s_count{%s} ", name, labels);
		else
			snprintf(prefix, sizeof prefix, "%s_count ", name);
		if (strncmp(one, prefix, strlen(prefix)) == 0) {
			assert_true(sum >= 0); /* after _sum */
			assert_int_equal(sscanf(one + strlen(prefix), "%llu%63s", &count, rest), 1);
			have_count = 1;
			continue;
		}
		fail_msg("unexpected line: %s", one);
	}
	assert_int_equal(nbucket, NLE);
	assert_true(have_count);
	assert_int_equal(count, cs_hist_count(h));
	assert_int_equal(inf, count);
	double want = (double)cs_hist_sum(h) / 1e6;
	assert_true(sum >= want * (1 - 1e-12) && sum <= want * (1 + 1e-12) + 1e-9);
}

static void prometheus_text(void **state)
{
	cs_hist *h = hist_new();
	char buf[4096];

	/* values on and around the standard bounds, in µs */
	const uint64_t us[] = {0, 1, 49, 50, 51, 100, 101, 250, 499, 500, 502, 999, 1000, 1004,
	        2500, 7000, 10000, 30000, 99999, 100000, 250000, 999999, 1000000, 2500000, 4999999,
	        10000000, 10000001, 60000000};
	for (size_t i = 0; i < sizeof us / sizeof us[0]; i++)
		cs_hist_record(h, us[i]);
	rng_state = 11;
	for (int i = 0; i < 10000; i++)
		cs_hist_record(h, rng_range(0, 20000000));

	size_t need = cs_hist_prometheus(h, "cachesvc_query_latency_seconds",
	        "query=\"user_by_id\",tier=\"critical\"", buf, sizeof buf);
	assert_true(need < sizeof buf);
	assert_int_equal(strlen(buf), need);
	check_prometheus(
	        h, buf, "cachesvc_query_latency_seconds", "query=\"user_by_id\",tier=\"critical\"");

	/* at the bounds: 50µs is exact; 500µs shares its bucket [500, 501] with 501 */
	cs_hist_reset(h);
	cs_hist_record(h, 50);
	cs_hist_record(h, 51);
	cs_hist_record(h, 500);
	cs_hist_record(h, 501);
	cs_hist_record(h, 502);
	cs_hist_prometheus(h, "b", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "b_bucket{le=\"0.00005\"} 1\n"));
	assert_non_null(strstr(buf, "b_bucket{le=\"0.00025\"} 2\n"));
	assert_non_null(strstr(buf, "b_bucket{le=\"0.0005\"} 4\n"));
	assert_non_null(strstr(buf, "b_bucket{le=\"0.001\"} 5\n"));
	assert_non_null(strstr(buf, "b_bucket{le=\"+Inf\"} 5\n"));
	check_prometheus(h, buf, "b", "");

	/* no labels: NULL and "" write the same */
	need = cs_hist_prometheus(h, "lat", NULL, buf, sizeof buf);
	assert_int_equal(strlen(buf), need);
	check_prometheus(h, buf, "lat", "");
	assert_non_null(strstr(buf, "lat_bucket{le=\"+Inf\"} "));
	char buf2[4096];
	assert_int_equal(cs_hist_prometheus(h, "lat", "", buf2, sizeof buf2), need);
	assert_string_equal(buf, buf2);

	/* the sum is exact to the microsecond */
	cs_hist_reset(h);
	cs_hist_record(h, 1234567);
	cs_hist_record(h, 1);
	need = cs_hist_prometheus(h, "x", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "\nx_sum 1.234568\n"));
	assert_non_null(strstr(buf, "\nx_count 2\n"));
	check_prometheus(h, buf, "x", "");

	/* empty histogram: all zeros */
	cs_hist_reset(h);
	need = cs_hist_prometheus(h, "x", "a=\"b\"", buf, sizeof buf);
	check_prometheus(h, buf, "x", "a=\"b\"");
	assert_non_null(strstr(buf, "x_sum{a=\"b\"} 0.000000\n"));
	free(h);
}

/* snprintf-style sizing: the return value is the length needed, whatever buflen is. */
static void prometheus_buffer_sizing(void **state)
{
	cs_hist *h = hist_new();
	rng_state = 5;
	for (int i = 0; i < 1000; i++)
		cs_hist_record(h, rng_latency());
	size_t need = cs_hist_prometheus(h, "lat", "q=\"a\"", NULL, 0);
	assert_true(need > 100);

	char *full = malloc(need + 1);
	assert_non_null(full);
	assert_int_equal(cs_hist_prometheus(h, "lat", "q=\"a\"", full, need + 1), need);
	assert_int_equal(strlen(full), need);
	check_prometheus(h, full, "lat", "q=\"a\"");

	/* one byte short: the same answer, a truncated NUL-terminated prefix */
	char *small = malloc(need);
	assert_non_null(small);
	assert_int_equal(cs_hist_prometheus(h, "lat", "q=\"a\"", small, need), need);
	assert_int_equal(strlen(small), need - 1);
	assert_memory_equal(small, full, need - 1);

	/* tiny buffers */
	char tiny[8];
	assert_int_equal(cs_hist_prometheus(h, "lat", "q=\"a\"", tiny, 1), need);
	assert_int_equal(tiny[0], '\0');
	assert_int_equal(cs_hist_prometheus(h, "lat", "q=\"a\"", tiny, sizeof tiny), need);
	assert_int_equal(strlen(tiny), sizeof tiny - 1);
	free(small);
	free(full);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(empty_histogram),
	        cmocka_unit_test(memory_is_modest),
	        cmocka_unit_test(exact_small_values),
	        cmocka_unit_test(named_quantiles),
	        cmocka_unit_test(bucket_bounds),
	        cmocka_unit_test(relative_error_vs_sorted),
	        cmocka_unit_test(merge_equals_single),
	        cmocka_unit_test(count_le_edges),
	        cmocka_unit_test(overflow),
	        cmocka_unit_test(reset),
	        cmocka_unit_test(prometheus_text),
	        cmocka_unit_test(prometheus_buffer_sizing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
