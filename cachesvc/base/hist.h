/* hist.h - fixed-memory log-linear latency histogram (hist.c), shared by /metrics and the bench.
 *
 * Values are non-negative integers; every caller records microseconds. The range
 * [0, CS_HIST_HIGHEST] is split into power-of-two rows, each cut into CS_HIST_SUB_COUNT
 * equal sub-buckets (HdrHistogram's log-linear idea, with 128 sub-buckets per octave):
 * values below 256 are exact, and every other bucket is narrower than 1/128 of its lowest
 * value, so any value reported for a bucket is within 0.79% of every value it holds.
 *
 * Memory: one cs_hist is ~34 KB (4352 64-bit counters plus five totals), all inline; it
 * can live on the stack, in a struct or in static storage. Nothing here allocates, does
 * I/O or blocks. A cs_hist is not thread-safe: give each thread its own and merge them.
 * Counters and the sum wrap modulo 2^64 (never reached in practice; no undefined
 * behaviour either way). */
#ifndef CS_HIST_H
#define CS_HIST_H

#include <stddef.h>
#include <stdint.h>

#define CS_HIST_SUB_BITS  7                        /* log2 of sub-buckets per octave */
#define CS_HIST_SUB_COUNT (1u << CS_HIST_SUB_BITS) /* 128 sub-buckets per octave */
#define CS_HIST_MAX_BITS  40                       /* values below 2^40 (~12.7 days in µs) */
#define CS_HIST_HIGHEST   ((UINT64_C(1) << CS_HIST_MAX_BITS) - 1) /* largest value kept apart */
/* Rows: [0,128), [128,256), then one per octave up to [2^39, 2^40): 34 rows of 128. */
#define CS_HIST_BUCKETS ((CS_HIST_MAX_BITS - CS_HIST_SUB_BITS + 1) * CS_HIST_SUB_COUNT)

/* A histogram. Read it through the functions below; the fields are public only so that
 * callers can embed it without an allocation. */
typedef struct cs_hist {
	uint64_t count;    /* values recorded, overflowed ones included */
	uint64_t sum;      /* sum of the values as recorded (not clamped) */
	uint64_t min;      /* smallest value recorded; UINT64_MAX while empty */
	uint64_t max;      /* largest value recorded (not clamped); 0 while empty */
	uint64_t overflow; /* values above CS_HIST_HIGHEST, also counted in the top bucket */
	uint64_t counts[CS_HIST_BUCKETS];
} cs_hist;

/* Makes *h an empty histogram. Must be called before any other use. */
void cs_hist_init(cs_hist *h);

/* Empties *h (same as cs_hist_init). */
void cs_hist_reset(cs_hist *h);

/* Records one value. O(1): a clz, a shift and a few adds, no data-dependent branch.
 * Values above CS_HIST_HIGHEST go to the top bucket and are counted in `overflow`;
 * sum, min and max still see the value as given. */
void cs_hist_record(cs_hist *h, uint64_t v);

/* Records the value v n times (n == 0 records nothing). */
void cs_hist_record_n(cs_hist *h, uint64_t v, uint64_t n);

/* Adds every value of *src into *dst, as if each had been recorded into *dst.
 * *src is only read; dst == src doubles every count. */
void cs_hist_merge(cs_hist *dst, const cs_hist *src);

/* Totals: number of values, their sum, smallest and largest value (min and max return 0
 * when the histogram is empty), and the mean (sum / count, 0.0 when empty). */
uint64_t cs_hist_count(const cs_hist *h);
uint64_t cs_hist_sum(const cs_hist *h);
uint64_t cs_hist_min(const cs_hist *h);
uint64_t cs_hist_max(const cs_hist *h);
double cs_hist_mean(const cs_hist *h);

/* Number of values recorded above CS_HIST_HIGHEST. */
uint64_t cs_hist_overflow(const cs_hist *h);

/* The value at quantile q (clamped to [0,1]; NaN counts as 0), by nearest rank: the
 * bucket holding the ceil(q * count)-th smallest value (at least the first), reported as
 * that bucket's highest equivalent value, as HdrHistogram does. So the result is never
 * below the exact quantile and exceeds it by less than 1% (exact below 256). Returns 0 when
 * the histogram is empty; overflowed values report CS_HIST_HIGHEST. */
uint64_t cs_hist_quantile(const cs_hist *h, double q);

/* Cumulative count of values <= bound, at bucket granularity: counts every bucket whose
 * lowest value is <= bound. Exact when bound is the highest value of a bucket (every bound
 * below 256 is) and when bound < min or bound >= max; otherwise it may also count values
 * of bound's own bucket that lie above bound, by less than 1%. Overflowed values count
 * only once bound >= max. Non-decreasing in bound. */
uint64_t cs_hist_count_le(const cs_hist *h, uint64_t bound);

/* The lowest and highest value sharing v's bucket (v above CS_HIST_HIGHEST: the top
 * bucket's). lowest <= v <= highest for every v in range. */
uint64_t cs_hist_bucket_lowest(uint64_t v);
uint64_t cs_hist_bucket_highest(uint64_t v);

/* Writes *h as the sample lines of a Prometheus text-format histogram, values in seconds
 * (recorded values are taken as microseconds):
 *     NAME_bucket{LABELS,le="0.00005"} N   ... one line per standard bound 50µs..10s
 *     NAME_bucket{LABELS,le="+Inf"} COUNT
 *     NAME_sum{LABELS} SECONDS              (exact decimal, 6 places)
 *     NAME_count{LABELS} COUNT
 * Bucket counts come from cs_hist_count_le() at each bound. LABELS is a ready-made label
 * list such as `query="x"` (escaping is the caller's job) or "" / NULL for none. The
 * `# TYPE NAME histogram` line is not written: a family with several label sets must have
 * it once, so the caller writes it.
 * Returns the length of the full text, excluding the NUL, like snprintf: when it is
 * >= buflen the text was cut (still NUL-terminated if buflen > 0) and the caller should
 * retry with a buffer of at least the returned length + 1. buf may be NULL if buflen is 0.
 * The caller owns buf; nothing is kept. */
size_t cs_hist_prometheus(
        const cs_hist *h, const char *name, const char *labels, char *buf, size_t buflen);

#endif
