/* warm_bucket.c - token bucket arithmetic for cachesvc-warm's --rate (see warm_bucket.h). */
#include "warm_bucket.h"

#include <math.h>

void cs_warm_bucket_init(cs_warm_bucket *b, double rate, double burst, int64_t now_ns)
{
	b->rate = rate > 0 ? rate : 0;
	b->burst = burst >= 1 ? burst : 1;
	b->tokens = 0;
	b->last_ns = now_ns;
}

int64_t cs_warm_bucket_take(cs_warm_bucket *b, int64_t now_ns)
{
	if (b->rate == 0)
		return 0;
	if (now_ns > b->last_ns) {
		b->tokens += (double)(now_ns - b->last_ns) * b->rate / 1e9;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ns = now_ns;
	}
	/* A hair of tolerance: 1/rate steps summed in floating point may land a rounding
	 * error below 1.0 exactly when the token is due. */
	if (b->tokens >= 1.0 - 1e-9) {
		b->tokens -= 1.0;
		if (b->tokens < 0)
			b->tokens = 0;
		return 0;
	}
	int64_t wait = (int64_t)ceil((1.0 - b->tokens) * 1e9 / b->rate);
	return wait > 0 ? wait : 1;
}
