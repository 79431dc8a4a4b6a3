/* warm_bucket.h - the token bucket that paces cachesvc-warm's requests. Pure: the caller
 * passes the time, so the arithmetic is testable without sleeping.
 *
 * The bucket starts EMPTY and gains `rate` tokens per second up to `burst`; one request
 * takes one token. Starting empty means that by time t after the start at most rate * t
 * requests have been sent: N requests take at least N / rate seconds. */
#ifndef CS_WARM_BUCKET_H
#define CS_WARM_BUCKET_H

#include <stdint.h>

typedef struct cs_warm_bucket {
	double rate;     /* tokens per second; 0 = unlimited */
	double burst;    /* most tokens held (>= 1) */
	double tokens;   /* held now */
	int64_t last_ns; /* time of the last refill */
} cs_warm_bucket;

/* Sets up an empty bucket at time now_ns. rate 0 = no limit; burst < 1 is taken as 1. */
void cs_warm_bucket_init(cs_warm_bucket *b, double rate, double burst, int64_t now_ns);

/* Takes one token at time now_ns. Returns 0 when taken, otherwise the nanoseconds (> 0)
 * until one will be there (nothing taken). Time going backwards is treated as no time. */
int64_t cs_warm_bucket_take(cs_warm_bucket *b, int64_t now_ns);

#endif
