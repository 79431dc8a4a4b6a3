/* util.c - clocks, a fast PRNG and small helpers shared by the engine. */
#include "util.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t cs_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t cs_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cs_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Per thread: library mode may run engines on several threads. */
static _Thread_local uint64_t rng_state[2];
static _Thread_local bool rng_seeded;

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t cs_rand64(void)
{
	if (!rng_seeded) {
		if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
			rng_state[0] = cs_now_us() ^ 0x9E3779B97F4A7C15ull;
			rng_state[1] = (uint64_t)cs_wall_ms() * 0xBF58476D1CE4E5B9ull;
		}
		if ((rng_state[0] | rng_state[1]) == 0)
			rng_state[0] = 1;
		rng_seeded = true;
	}
	/* xoroshiro128+ */
	uint64_t s0 = rng_state[0], s1 = rng_state[1];
	uint64_t result = s0 + s1;
	s1 ^= s0;
	rng_state[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
	rng_state[1] = rotl(s1, 37);
	return result;
}

double cs_rand_unit(void)
{
	return ((double)(cs_rand64() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

struct timeval cs_tv_ms(int64_t ms)
{
	struct timeval tv;
	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

int64_t cs_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms)
{
	int64_t d = base_ms;
	for (int i = 0; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* +-25% so a fleet that lost the same server does not come back in lockstep */
	int64_t span = d / 2;
	if (span > 0)
		d = d - span / 2 + (int64_t)(cs_rand64() % (uint64_t)(span + 1));
	return d < 1 ? 1 : d;
}

bool cs_ratelimit_pass(cs_ratelimit *r, uint64_t interval_us, uint64_t *suppressed)
{
	uint64_t now = cs_now_us();
	if (now < r->next_us) {
		r->suppressed++;
		return false;
	}
	r->next_us = now + interval_us;
	*suppressed = r->suppressed;
	r->suppressed = 0;
	return true;
}

int cs_split_list(char *s, char **items, int max)
{
	int n = 0;
	if (s == NULL || *s == '\0')
		return 0;
	for (char *p = s; n < max;) {
		items[n++] = p;
		char *c = strchr(p, ',');
		if (c == NULL)
			break;
		*c = '\0';
		p = c + 1;
	}
	return n;
}
