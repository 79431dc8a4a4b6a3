/* metrics.h - the Prometheus text exposition (format 0.0.4) writer behind /metrics.
 *
 * Every module adds its samples to one cs_metrics in any order; cs_metrics_finish writes
 * each family once: "# HELP", "# TYPE", then all of its samples together, families in the
 * order they were first used. A family is declared by its first sample (name, type, help);
 * a later sample that disagrees on the type is dropped and counted (a programming error the
 * promtool test catches). Label values are escaped as the format requires. Nothing here
 * blocks; memory grows with the number of samples and is freed by cs_metrics_finish. */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <stdint.h>

#include "hist.h"

typedef enum { CS_M_COUNTER, CS_M_GAUGE, CS_M_HISTOGRAM, CS_M_SUMMARY } cs_mtype;

typedef struct cs_metrics cs_metrics;

/* NULL when out of memory. */
cs_metrics *cs_metrics_new(void);

/* One sample of family name with value v. The variable arguments are label pairs
 * (const char *key, const char *value), ended by NULL. Integers up to 2^53 print exactly. */
void cs_m(cs_metrics *m, cs_mtype type, const char *name, const char *help, double v, ...)
	__attribute__((sentinel));

/* Same, for a 64-bit integer value printed exactly (counters that may pass 2^53). */
void cs_m_u64(cs_metrics *m, cs_mtype type, const char *name, const char *help, uint64_t v, ...)
	__attribute__((sentinel));

/* Until called again with key NULL, every sample gets the label key="value" before its own
 * (a module's samples per instance, e.g. shard="s1"). Both strings must outlive the scope. */
void cs_metrics_scope(cs_metrics *m, const char *key, const char *value);

/* A histogram of microseconds, exposed in seconds: name_bucket/_sum/_count. */
void cs_m_hist(cs_metrics *m, const char *name, const char *help, const cs_hist *h, ...)
	__attribute__((sentinel));

/* The histogram's quantiles 0.5, 0.9, 0.99, 0.999 (exact within the histogram's 0.8%, unlike
 * bounds between Prometheus buckets) as a gauge in seconds labelled q. */
void cs_m_quantiles(cs_metrics *m, const char *name, const char *help, const cs_hist *h);

/* A summary without quantiles: name_sum (sum) and name_count (count). */
void cs_m_summary(cs_metrics *m, const char *name, const char *help, double sum, uint64_t count,
	...) __attribute__((sentinel));

/* A state as a labelled gauge: one sample per state in states (NULL-terminated), 1 for
 * the current one, 0 for the others; extra labels (key, value pairs, NULL) go first. */
void cs_m_state(cs_metrics *m, const char *name, const char *help, const char *label,
	const char *const *states, const char *current, ...) __attribute__((sentinel));

/* The standard process_* families of Prometheus clients (CPU, memory, file descriptors,
 * start time), read from getrusage, getrlimit and /proc (in-memory files: no disk I/O). */
void cs_m_process(cs_metrics *m);

/* cachesvc_build_info{version=...} 1. */
void cs_m_build_info(cs_metrics *m, const char *version);

/* Writes the exposition to *out (malloc'ed; the caller frees it) and frees m. Returns the
 * length, or -1 when out of memory (then *out is NULL). */
long cs_metrics_finish(cs_metrics *m, char **out);

/* Samples dropped because their type disagreed with the family's (tests assert 0). */
uint64_t cs_metrics_mismatches(const cs_metrics *m);

#endif
