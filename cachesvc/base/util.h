/* util.h - clocks, a fast PRNG and small helpers shared by the engine. */
#ifndef CS_UTIL_H
#define CS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

/* Monotonic clock, microseconds. For timeouts and latencies. */
uint64_t cs_now_us(void);
/* Wall clock, milliseconds since the Unix epoch. For data ages stored in Redis. */
int64_t cs_wall_ms(void);
/* Wall clock, microseconds since the Unix epoch. For commit-to-invalidation lag. */
int64_t cs_wall_us(void);
/* xoshiro-style PRNG seeded from getrandom(2) once per process; not for secrets. */
uint64_t cs_rand64(void);
/* Uniform double in (0, 1]: never 0, so log() of it is finite. */
double cs_rand_unit(void);
/* A timeval for libevent from milliseconds. */
struct timeval cs_tv_ms(int64_t ms);
/* Exponential backoff with +-25% jitter: base * 2^attempt, capped at max. */
int64_t cs_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms);

/* A log rate limiter for error paths a peer can trigger at will (accept errors, failed
 * authentication): at most one line per interval, and the next line that passes reports how
 * many were swallowed. Zero-initialise. */
typedef struct cs_ratelimit {
	uint64_t next_us;    /* cs_now_us() from which the next line may pass */
	uint64_t suppressed; /* lines swallowed since the last one that passed */
} cs_ratelimit;
/* True when a line may be logged now; then *suppressed is the count swallowed before it
 * (and the count restarts). False: the caller logs nothing (counted as suppressed). */
bool cs_ratelimit_pass(cs_ratelimit *r, uint64_t interval_us, uint64_t *suppressed);

#define CS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CS_MIN(a, b)	((a) < (b) ? (a) : (b))
#define CS_MAX(a, b)	((a) > (b) ? (a) : (b))

/* Splits a comma list (libpq's multi-host syntax) in place into at most max items; returns
 * how many (0 for NULL or ""). */
int cs_split_list(char *s, char **items, int max);

#endif
