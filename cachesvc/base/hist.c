/* hist.c - fixed-memory log-linear latency histogram: recording, quantiles, Prometheus text. */
#include "hist.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(cs_hist) <= 36 * 1024, "cs_hist must stay a modest fixed size");

/* ---------------------------------------------------------------- bucket layout
 *
 * For a value v let s = max(0, msb(v) - 7), computed branch-free as msb(v | 128) - 7.
 * The bucket index is s * 128 + (v >> s):
 *   v < 256:  s = 0 and the index is v itself (rows 0 and 1, exact);
 *   v >= 256: v >> s lies in [128, 256), so octave [2^(s+7), 2^(s+8)) maps onto the
 *             128 indices [(s+1) * 128, (s+2) * 128), each covering 2^s values.
 * A bucket's width 2^s is at most 1/128 of its lowest value 128 * 2^s, hence the < 1%
 * error. v <= 2^40 - 1 gives s <= 32 and index <= 32 * 128 + 255 = CS_HIST_BUCKETS - 1. */

static inline unsigned bucket_index(uint64_t v)
{
	unsigned shift = (unsigned)(63 - __builtin_clzll(v | CS_HIST_SUB_COUNT)) - CS_HIST_SUB_BITS;
	return (shift << CS_HIST_SUB_BITS) + (unsigned)(v >> shift);
}

/* The shift (log2 of the width) of bucket i: the inverse of bucket_index. */
static inline unsigned index_shift(unsigned i)
{
	unsigned row = i >> CS_HIST_SUB_BITS;
	return row ? row - 1 : 0;
}

static inline uint64_t index_lowest(unsigned i)
{
	unsigned shift = index_shift(i);
	return (uint64_t)(i - (shift << CS_HIST_SUB_BITS)) << shift;
}

static inline uint64_t index_highest(unsigned i)
{
	return index_lowest(i) + (UINT64_C(1) << index_shift(i)) - 1;
}

/* Values above the range are kept in the top bucket. */
static inline uint64_t clamp_value(uint64_t v)
{
	return v > CS_HIST_HIGHEST ? CS_HIST_HIGHEST : v;
}

uint64_t cs_hist_bucket_lowest(uint64_t v)
{
	return index_lowest(bucket_index(clamp_value(v)));
}

uint64_t cs_hist_bucket_highest(uint64_t v)
{
	return index_highest(bucket_index(clamp_value(v)));
}

/* ---------------------------------------------------------------- recording */

void cs_hist_init(cs_hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

void cs_hist_reset(cs_hist *h)
{
	cs_hist_init(h);
}

/* The hot path: everything below compiles to conditional moves. */
static inline void record(cs_hist *h, uint64_t v, uint64_t n)
{
	uint64_t over = v > CS_HIST_HIGHEST;
	h->counts[bucket_index(clamp_value(v))] += n;
	h->overflow += over * n;
	h->count += n;
	h->sum += v * n;
	h->min = v < h->min ? v : h->min;
	h->max = v > h->max ? v : h->max;
}

void cs_hist_record(cs_hist *h, uint64_t v)
{
	record(h, v, 1);
}

void cs_hist_record_n(cs_hist *h, uint64_t v, uint64_t n)
{
	if (n == 0)
		return; /* would otherwise move min/max without recording anything */
	record(h, v, n);
}

void cs_hist_merge(cs_hist *dst, const cs_hist *src)
{
	for (unsigned i = 0; i < CS_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	dst->sum += src->sum;
	dst->overflow += src->overflow;
	/* An empty src has min UINT64_MAX and max 0, so it leaves both alone. */
	dst->min = src->min < dst->min ? src->min : dst->min;
	dst->max = src->max > dst->max ? src->max : dst->max;
}

/* ---------------------------------------------------------------- reading */

uint64_t cs_hist_count(const cs_hist *h)
{
	return h->count;
}

uint64_t cs_hist_sum(const cs_hist *h)
{
	return h->sum;
}

uint64_t cs_hist_min(const cs_hist *h)
{
	return h->count ? h->min : 0;
}

uint64_t cs_hist_max(const cs_hist *h)
{
	return h->max;
}

double cs_hist_mean(const cs_hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}

uint64_t cs_hist_overflow(const cs_hist *h)
{
	return h->overflow;
}

uint64_t cs_hist_quantile(const cs_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (!(q > 0.0)) /* also catches NaN */
		q = 0.0;
	if (q > 1.0)
		q = 1.0;
	/* Nearest rank. r < count (as a double, itself an integer) keeps ceil(r) in range. */
	double r = q * (double)h->count;
	uint64_t rank = r >= (double)h->count ? h->count : (uint64_t)ceil(r);
	if (rank == 0)
		rank = 1;

	uint64_t seen = 0;
	for (unsigned i = 0; i < CS_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			return index_highest(i);
	}
	return CS_HIST_HIGHEST; /* unreachable while the counts sum to count */
}

uint64_t cs_hist_count_le(const cs_hist *h, uint64_t bound)
{
	if (h->count == 0 || bound < h->min)
		return 0;
	if (bound >= h->max)
		return h->count;
	/* Here bound < max. Overflowed values sit in the top bucket but are above
	 * CS_HIST_HIGHEST; their true values are unknown except that the largest is max >
	 * bound, so all of them are left out (the walk below would include them). */
	unsigned last = bucket_index(clamp_value(bound));
	uint64_t n = 0;
	for (unsigned i = 0; i <= last; i++)
		n += h->counts[i];
	if (last == CS_HIST_BUCKETS - 1)
		n -= h->overflow;
	return n;
}

/* ---------------------------------------------------------------- Prometheus text */

/* The standard latency bounds, in microseconds and as written in `le` (seconds). */
static const struct {
	uint64_t us;
	const char *le;
} prom_bounds[] = {
        {50, "0.00005"},
        {100, "0.0001"},
        {250, "0.00025"},
        {500, "0.0005"},
        {1000, "0.001"},
        {2500, "0.0025"},
        {5000, "0.005"},
        {10000, "0.01"},
        {25000, "0.025"},
        {50000, "0.05"},
        {100000, "0.1"},
        {250000, "0.25"},
        {500000, "0.5"},
        {1000000, "1"},
        {2500000, "2.5"},
        {5000000, "5"},
        {10000000, "10"},
};

/* An snprintf-style appender: counts every byte it was asked for, stores what fits. */
typedef struct text_out {
	char *buf;
	size_t cap;
	size_t len; /* bytes wanted so far, may exceed cap */
} text_out;

__attribute__((format(printf, 2, 3))) static void out_printf(text_out *o, const char *fmt, ...)
{
	char *at = o->len < o->cap ? o->buf + o->len : NULL;
	size_t room = o->len < o->cap ? o->cap - o->len : 0;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(at, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

size_t cs_hist_prometheus(
        const cs_hist *h, const char *name, const char *labels, char *buf, size_t buflen)
{
	text_out o = {buf, buflen, 0};
	int has_labels = labels && labels[0];
	const char *sep = has_labels ? "," : "";
	if (!labels)
		labels = "";

	if (buflen > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof prom_bounds / sizeof prom_bounds[0]; i++)
		out_printf(&o, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep,
		        prom_bounds[i].le,
		        (unsigned long long)cs_hist_count_le(h, prom_bounds[i].us));
	out_printf(&o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
	        (unsigned long long)h->count);
	/* Seconds with six exact decimals: a double would round sums above 2^53 µs. */
	const char *open = has_labels ? "{" : "", *close = has_labels ? "}" : "";
	out_printf(&o, "%s_sum%s%s%s %llu.%06llu\n", name, open, labels, close,
	        (unsigned long long)(h->sum / 1000000), (unsigned long long)(h->sum % 1000000));
	out_printf(&o, "%s_count%s%s%s %llu\n", name, open, labels, close,
	        (unsigned long long)h->count);
	return o.len;
}
