/* test_ledger.c - unit tests for invalidation/ledger.c: the confirmation FIFO and I4, the
 * keepalive rule, the horizon samples, the min_lifetime debounce; a randomized comparison
 * of the FIFO with a reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ledger.h"

#define SEC 1000000u
#define MS  1000u
/* a monotonic clock that has run a while (debounce windows start from "never bumped" = 0) */
#define T0 (1000u * SEC)

/* ---------------------------------------------------------------- helpers */

/* splitmix64: a fixed seed, so every run sees the same sequence. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
	return lo + rng_next() % (hi - lo + 1);
}

static cs_ledger *new_ledger(size_t fifo, size_t samples, int nq)
{
	cs_ledger *l = cs_ledger_new(fifo, samples, nq);
	assert_non_null(l);
	return l;
}

static uint64_t commit(cs_ledger *l, cs_lsn_t end, int64_t ts, int holds)
{
	uint64_t seq;
	assert_int_equal(cs_ledger_commit(l, end, ts, &seq), 0);
	for (int i = 0; i < holds; i++)
		cs_ledger_hold(l, seq);
	return seq;
}

/* Advances as far as possible; returns how many commits were confirmed, their timestamps in
 * ts (up to max). */
static int advance_all(cs_ledger *l, int64_t *ts, int max)
{
	int n = 0;
	int64_t t;
	while (cs_ledger_advance(l, &t)) {
		if (n < max)
			ts[n] = t;
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------- FIFO and I4 */

static void bad_sizes(void **state)
{
	assert_null(cs_ledger_new(1, 16, 0));
	assert_null(cs_ledger_new(16, 1, 0));
	assert_null(cs_ledger_new(16, 16, -1));
	cs_ledger *l = new_ledger(2, 2, 0);
	assert_int_equal(cs_ledger_confirmed(l), 0);
	assert_int_equal(cs_ledger_in_flight(l), 0);
	int64_t ts;
	assert_false(cs_ledger_oldest(l, &ts));
	assert_false(cs_ledger_advance(l, &ts));
	cs_ledger_free(l);
	cs_ledger_free(NULL);
}

/* A commit is confirmed only once every command of it and of every earlier commit was
 * acknowledged; the timestamps come back in stream order, once each. */
static void confirms_in_order(void **state)
{
	cs_ledger *l = new_ledger(16, 16, 0);
	int64_t ts[8];
	uint64_t a = commit(l, 100, 11, 2);
	uint64_t b = commit(l, 200, 22, 1);
	assert_int_equal(cs_ledger_in_flight(l), 2);
	int64_t old;
	assert_true(cs_ledger_oldest(l, &old));
	assert_int_equal(old, 11);

	cs_ledger_release(l, b); /* b done, a still waits */
	assert_int_equal(advance_all(l, ts, 8), 0);
	assert_int_equal(cs_ledger_confirmed(l), 0);
	cs_ledger_release(l, a);
	assert_int_equal(advance_all(l, ts, 8), 0);
	assert_int_equal(cs_ledger_confirmed(l), 0);
	cs_ledger_release(l, a);
	assert_int_equal(advance_all(l, ts, 8), 2);
	assert_int_equal(ts[0], 11);
	assert_int_equal(ts[1], 22);
	assert_int_equal(cs_ledger_confirmed(l), 200);
	assert_int_equal(cs_ledger_in_flight(l), 0);
	assert_false(cs_ledger_oldest(l, &old));
	assert_int_equal(advance_all(l, ts, 8), 0); /* reported once */
	cs_ledger_free(l);
}

/* A commit with nothing to send (no key, no bump) is confirmed at the next advance, but never
 * before an earlier commit that still waits. */
static void empty_commit(void **state)
{
	cs_ledger *l = new_ledger(16, 16, 0);
	int64_t ts[4];
	commit(l, 50, 1, 0);
	assert_int_equal(advance_all(l, ts, 4), 1);
	assert_int_equal(cs_ledger_confirmed(l), 50);
	uint64_t a = commit(l, 60, 2, 1);
	commit(l, 70, 3, 0);
	assert_int_equal(advance_all(l, ts, 4), 0);
	assert_int_equal(cs_ledger_confirmed(l), 50);
	cs_ledger_release(l, a);
	assert_int_equal(advance_all(l, ts, 4), 2);
	assert_int_equal(cs_ledger_confirmed(l), 70);
	cs_ledger_free(l);
}

/* Acknowledgements out of order confirm only the contiguous acknowledged prefix. */
static void out_of_order_prefix(void **state)
{
	cs_ledger *l = new_ledger(16, 16, 0);
	uint64_t s[6];
	for (int i = 0; i < 6; i++)
		s[i] = commit(l, (cs_lsn_t)(i + 1) * 100, i, 1);
	int64_t ts[8];
	static const int order[] = { 3, 1, 5, 0, 4, 2 };
	static const cs_lsn_t want[] = { 0, 0, 0, 200, 200, 600 };
	for (int k = 0; k < 6; k++) {
		cs_ledger_release(l, s[order[k]]);
		advance_all(l, ts, 8);
		assert_int_equal(cs_ledger_confirmed(l), want[k]);
	}
	assert_int_equal(cs_ledger_in_flight(l), 0);
	cs_ledger_free(l);
}

/* Extra or stray acknowledgements never release a command that was not acknowledged. */
static void stray_releases(void **state)
{
	cs_ledger *l = new_ledger(16, 16, 0);
	int64_t ts[4];
	uint64_t a = commit(l, 100, 1, 1);
	uint64_t b = commit(l, 200, 2, 2);
	cs_ledger_release(l, a);
	cs_ledger_release(l, a); /* a has nothing left: ignored, not taken from b */
	cs_ledger_release(l, b + 1);
	cs_ledger_release(l, UINT64_MAX);
	cs_ledger_hold(l, b + 1); /* not in flight: ignored */
	assert_int_equal(advance_all(l, ts, 4), 1);
	assert_int_equal(cs_ledger_confirmed(l), 100);
	cs_ledger_release(l, a); /* already confirmed */
	cs_ledger_release(l, b);
	assert_int_equal(advance_all(l, ts, 4), 0);
	assert_int_equal(cs_ledger_confirmed(l), 100);
	cs_ledger_release(l, b);
	assert_int_equal(advance_all(l, ts, 4), 1);
	assert_int_equal(cs_ledger_confirmed(l), 200);
	/* an acknowledgement before the command was counted is not credited to it */
	uint64_t c = commit(l, 300, 3, 0);
	cs_ledger_release(l, c);
	cs_ledger_hold(l, c);
	assert_int_equal(advance_all(l, ts, 4), 0);
	assert_int_equal(cs_ledger_confirmed(l), 200);
	cs_ledger_release(l, c);
	assert_int_equal(advance_all(l, ts, 4), 1);
	assert_int_equal(cs_ledger_confirmed(l), 300);
	cs_ledger_free(l);
}

/* The confirmed position never decreases (a replay after a restart confirms lower LSNs). */
static void confirmed_never_decreases(void **state)
{
	cs_ledger *l = new_ledger(16, 16, 0);
	int64_t ts[4];
	commit(l, 500, 1, 0);
	advance_all(l, ts, 4);
	commit(l, 300, 2, 0);
	assert_int_equal(advance_all(l, ts, 4), 1);
	assert_int_equal(cs_ledger_confirmed(l), 500);
	cs_ledger_free(l);
}

/* A keepalive moves the position only when idle: nothing in flight, no transaction open. */
static void keepalive_rule(void **state)
{
	cs_ledger *l = new_ledger(16, 16, 0);
	int64_t ts[4];
	assert_true(cs_ledger_keepalive(l, 100));
	assert_int_equal(cs_ledger_confirmed(l), 100);
	assert_false(cs_ledger_keepalive(l, 100)); /* not a rise */
	assert_false(cs_ledger_keepalive(l, 90));  /* never lower */
	assert_int_equal(cs_ledger_confirmed(l), 100);

	/* inside a transaction: its commit may end before wal_end */
	cs_ledger_begin(l);
	assert_false(cs_ledger_keepalive(l, 400));
	assert_int_equal(cs_ledger_confirmed(l), 100);
	uint64_t a = commit(l, 300, 1, 1);
	/* in flight: not past it */
	assert_false(cs_ledger_keepalive(l, 400));
	assert_int_equal(cs_ledger_confirmed(l), 100);
	cs_ledger_release(l, a);
	/* acknowledged but not yet advanced: still in flight */
	assert_false(cs_ledger_keepalive(l, 400));
	assert_int_equal(advance_all(l, ts, 4), 1);
	assert_int_equal(cs_ledger_confirmed(l), 300);
	assert_true(cs_ledger_keepalive(l, 400));
	assert_int_equal(cs_ledger_confirmed(l), 400);

	/* a transaction whose commit was decoded is closed */
	cs_ledger_begin(l);
	commit(l, 450, 2, 0);
	advance_all(l, ts, 4);
	assert_true(cs_ledger_keepalive(l, 500));
	assert_int_equal(cs_ledger_confirmed(l), 500);
	cs_ledger_free(l);
}

/* A restart forgets every commit in flight and the open transaction; late acknowledgements of
 * forgotten commits change nothing, the confirmed position stays. */
static void reset_forgets_in_flight(void **state)
{
	cs_ledger *l = new_ledger(8, 16, 0);
	int64_t ts[4];
	commit(l, 100, 1, 0);
	advance_all(l, ts, 4);
	uint64_t a = commit(l, 200, 2, 1);
	uint64_t b = commit(l, 300, 3, 1);
	cs_ledger_begin(l);
	cs_ledger_reset(l);
	assert_int_equal(cs_ledger_in_flight(l), 0);
	assert_int_equal(cs_ledger_confirmed(l), 100);
	assert_false(cs_ledger_advance(l, &ts[0]));

	/* the replay */
	uint64_t a2 = commit(l, 200, 4, 1);
	assert_true(a2 != a && a2 != b);
	cs_ledger_release(l, a); /* late, for the forgotten commits */
	cs_ledger_release(l, b);
	assert_int_equal(advance_all(l, ts, 4), 0);
	assert_int_equal(cs_ledger_confirmed(l), 100);
	cs_ledger_release(l, a2);
	assert_int_equal(advance_all(l, ts, 4), 1);
	assert_int_equal(ts[0], 4);
	assert_int_equal(cs_ledger_confirmed(l), 200);

	/* the transaction open at the reset is closed: keepalives confirm again */
	cs_ledger_begin(l);
	cs_ledger_reset(l);
	assert_true(cs_ledger_keepalive(l, 250));
	cs_ledger_free(l);
}

/* The FIFO is bounded: a commit beyond the capacity is refused, the caller pauses one entry
 * before, resumes below half; wrapping around the ring keeps order. */
static void capacity_and_pause(void **state)
{
	enum { CAP = 8 };
	cs_ledger *l = new_ledger(CAP, 16, 0);
	uint64_t s[CAP];
	int64_t ts[CAP];
	for (int round = 0; round < 3; round++) {
		cs_lsn_t base = (cs_lsn_t)(round + 1) * 1000;
		for (int i = 0; i < CAP; i++) {
			assert_int_equal(cs_ledger_should_pause(l), i >= CAP - 1);
			s[i] = commit(l, base + (cs_lsn_t)i, i, 1);
		}
		uint64_t seq;
		assert_int_equal(cs_ledger_commit(l, base + 99, 99, &seq), -1);
		assert_int_equal(cs_ledger_in_flight(l), CAP);
		assert_true(cs_ledger_should_pause(l));
		for (int i = 0; i < CAP; i++) {
			assert_int_equal(cs_ledger_may_resume(l), CAP - i < CAP / 2);
			cs_ledger_release(l, s[i]);
			assert_int_equal(advance_all(l, ts, CAP), 1);
			assert_int_equal(ts[0], i);
			assert_int_equal(cs_ledger_confirmed(l), base + (cs_lsn_t)i);
		}
		assert_true(cs_ledger_may_resume(l));
	}
	cs_ledger_free(l);
}

/* ---------------------------------------------------------------- randomized FIFO vs model */

/* The reference model: every commit ever made in an unbounded array, a head index, a linear
 * scan. Nothing shared with the ledger's ring. */
typedef struct mentry {
	uint64_t seq;
	cs_lsn_t end;
	int64_t ts;
	int remaining;
} mentry;

typedef struct model {
	mentry *e;
	size_t n, head, cap;
	bool in_txn;
	cs_lsn_t confirmed;
} model;

static mentry *model_find(model *m, uint64_t seq)
{
	for (size_t i = m->head; i < m->n; i++)
		if (m->e[i].seq == seq)
			return &m->e[i];
	return NULL;
}

static void fifo_random_run(size_t cap, uint64_t seed, int ops)
{
	rng_state = seed;
	cs_ledger *l = new_ledger(cap, 16, 0);
	model m = { .e = calloc((size_t)ops + 1, sizeof(mentry)), .cap = cap };
	assert_non_null(m.e);
	cs_lsn_t stream = 1000; /* the walsender's position: commits end above it */
	uint64_t next_seq = 0;
	int confirms = 0, refusals = 0, keepalives = 0, resets = 0;
	for (int op = 0; op < ops; op++) {
		uint64_t r = rng_range(0, 99);
		size_t inflight = m.n - m.head;
		if (r < 5) {
			cs_ledger_begin(l);
			m.in_txn = true;
		} else if (r < 30) {
			cs_lsn_t end = stream + rng_range(1, 1000);
			int64_t ts = (int64_t)rng_next();
			int holds = (int)rng_range(0, 3);
			uint64_t seq;
			int rc = cs_ledger_commit(l, end, ts, &seq);
			if (inflight == cap) {
				assert_int_equal(rc, -1);
				refusals++;
				continue;
			}
			assert_int_equal(rc, 0);
			assert_int_equal(seq, next_seq); /* rising, across resets too */
			next_seq++;
			for (int i = 0; i < holds; i++)
				cs_ledger_hold(l, seq);
			m.e[m.n++] =
				(mentry){ .seq = seq, .end = end, .ts = ts, .remaining = holds };
			m.in_txn = false;
			stream = end;
		} else if (r < 78) {
			/* an acknowledgement: mostly in flight, sometimes stale or not issued */
			uint64_t base = m.head < m.n ? m.e[m.head].seq : next_seq;
			uint64_t lo = base > 3 ? base - 3 : 0;
			uint64_t seq = rng_range(lo, next_seq + 2);
			if (m.head < m.n && rng_range(0, 4) != 0) {
				/* most go to a command actually outstanding */
				size_t i = (size_t)rng_range(m.head, m.n - 1);
				while (i < m.n - 1 && m.e[i].remaining == 0)
					i++;
				seq = m.e[i].seq;
			}
			cs_ledger_release(l, seq);
			mentry *e = model_find(&m, seq);
			if (e && e->remaining > 0)
				e->remaining--;
		} else if (r < 90) {
			int64_t ts[64];
			int n = 0;
			int64_t t;
			while (cs_ledger_advance(l, &t)) {
				assert_true(n < 64);
				ts[n++] = t;
			}
			int k = 0;
			while (m.head < m.n && m.e[m.head].remaining == 0) {
				assert_true(k < n);
				assert_int_equal(ts[k], m.e[m.head].ts);
				if (m.e[m.head].end > m.confirmed)
					m.confirmed = m.e[m.head].end;
				m.head++;
				k++;
			}
			assert_int_equal(k, n);
			confirms += n;
		} else if (r < 99) {
			/* a keepalive: mostly at or past the stream, sometimes behind */
			cs_lsn_t back = rng_range(0, m.confirmed < 10 ? m.confirmed : 10);
			cs_lsn_t w =
				rng_range(0, 3) == 0 ? m.confirmed - back : stream + rng_range(0, 500);
			bool moved = cs_ledger_keepalive(l, w);
			bool want = !m.in_txn && m.head == m.n && w > m.confirmed;
			assert_int_equal(moved, want);
			if (want) {
				m.confirmed = w;
				stream = w;
				keepalives++;
			}
		} else {
			cs_ledger_reset(l);
			m.head = m.n;
			m.in_txn = false;
			stream = m.confirmed; /* the slot replays from the confirmed position */
			resets++;
		}
		/* After every step: the same state, and I4. */
		inflight = m.n - m.head;
		assert_int_equal(cs_ledger_confirmed(l), m.confirmed);
		assert_int_equal(cs_ledger_in_flight(l), inflight);
		assert_int_equal(cs_ledger_should_pause(l), inflight >= cap - 1);
		assert_int_equal(cs_ledger_may_resume(l), inflight < cap / 2);
		int64_t oldest;
		assert_int_equal(cs_ledger_oldest(l, &oldest), inflight > 0);
		if (inflight)
			assert_int_equal(oldest, m.e[m.head].ts);
		for (size_t i = m.head; i < m.n; i++)
			if (m.e[i].remaining > 0)
				assert_true(cs_ledger_confirmed(l) < m.e[i].end);
	}
	/* the run exercised every branch */
	assert_true(confirms > ops / 20);
	assert_true(keepalives > 0);
	assert_true(resets > 0);
	if (cap <= 8)
		assert_true(refusals > 0);
	free(m.e);
	cs_ledger_free(l);
}

static void fifo_random_small(void **state)
{
	fifo_random_run(4, 42, 20000);
	fifo_random_run(8, 7, 20000);
}

static void fifo_random_large(void **state)
{
	fifo_random_run(64, 1234, 20000);
}

/* ---------------------------------------------------------------- horizon */

#define F (60u * SEC) /* fence TTL */
#define V (10u * SEC) /* horizon TTL */

/* With no sample the horizon is its floor; it never decreases, even when the floor does. */
static void horizon_floor(void **state)
{
	cs_ledger *l = new_ledger(4, 8, 0);
	assert_int_equal(cs_ledger_horizon(l, T0, F, V), 0);
	cs_ledger_set_floor(l, 500);
	assert_int_equal(cs_ledger_horizon(l, T0, F, V), 500);
	cs_ledger_set_floor(l, 200); /* a later synchronisation from a lower slot position */
	assert_int_equal(cs_ledger_horizon(l, T0 + SEC, F, V), 500);
	/* a sample below the floor is covered by it */
	cs_ledger_sample(l, T0 + SEC, 100);
	cs_ledger_set_floor(l, 300);
	assert_int_equal(cs_ledger_horizon(l, T0 + SEC + F, F, V), 500);
	cs_ledger_set_floor(l, 900);
	assert_int_equal(cs_ledger_horizon(l, T0 + 2 * F, F, V), 900);
	/* setting the floor raises the horizon at once: a lower floor set before the next
	 * publication does not undo it */
	cs_ledger_set_floor(l, 1500);
	cs_ledger_set_floor(l, 600);
	assert_int_equal(cs_ledger_horizon(l, T0 + 2 * F, F, V), 1500);
	cs_ledger_free(l);
}

/* A fence sent at t with LSN L is covered exactly from now = t + F - V on: before, the horizon
 * key (alive until now + V) cannot outlive the fence (alive until t + F). */
static void horizon_coverage_time(void **state)
{
	cs_ledger *l = new_ledger(4, 8, 0);
	cs_ledger_set_floor(l, 100);
	uint64_t t = T0;
	cs_ledger_sample(l, t, 1000);
	cs_ledger_sample(l, t + SEC, 2000);
	assert_int_equal(cs_ledger_samples(l), 2);
	assert_int_equal(cs_ledger_horizon(l, t, F, V), 100);
	assert_int_equal(cs_ledger_horizon(l, t + F - V - 1, F, V), 100);
	assert_int_equal(cs_ledger_horizon(l, t + F - V, F, V), 1000);
	assert_int_equal(cs_ledger_samples(l), 1);
	assert_int_equal(cs_ledger_horizon(l, t + SEC + F - V - 1, F, V), 1000);
	assert_int_equal(cs_ledger_horizon(l, t + SEC + F - V, F, V), 2000);
	assert_int_equal(cs_ledger_samples(l), 0);
	/* a horizon TTL at least the fence TTL: any fence sent so far may expire while it lives */
	cs_ledger_sample(l, t + 2 * F, 3000);
	assert_int_equal(cs_ledger_horizon(l, t + 2 * F - 1, 10 * SEC, 10 * SEC), 2000);
	assert_int_equal(cs_ledger_horizon(l, t + 2 * F, 10 * SEC, 10 * SEC), 3000);
	cs_ledger_sample(l, t + 3 * F, 4000);
	assert_int_equal(cs_ledger_horizon(l, t + 3 * F - SEC, 10 * SEC, 11 * SEC), 4000);
	cs_ledger_sample(l, UINT64_MAX - SEC, 5000);
	assert_int_equal(cs_ledger_horizon(l, UINT64_MAX - 2 * SEC, SEC, 4 * SEC), 5000);
	cs_ledger_free(l);
}

/* Samples within 10 ms of the newest merge: the earliest time and the highest LSN. */
static void horizon_merge(void **state)
{
	cs_ledger *l = new_ledger(4, 8, 0);
	uint64_t t = T0;
	cs_ledger_sample(l, t, 1000);
	cs_ledger_sample(l, t + 5 * MS, 3000);
	cs_ledger_sample(l, t + 9 * MS, 2000); /* lower: the merged LSN stays 3000 */
	assert_int_equal(cs_ledger_samples(l), 1);
	cs_ledger_sample(l, t + 10 * MS, 4000); /* 10 ms after the newest's time: a new sample */
	assert_int_equal(cs_ledger_samples(l), 2);
	/* the merged sample counts from the earliest time, with the highest LSN */
	assert_int_equal(cs_ledger_horizon(l, t + F - V - 1, F, V), 0);
	assert_int_equal(cs_ledger_horizon(l, t + F - V, F, V), 3000);
	assert_int_equal(cs_ledger_horizon(l, t + 10 * MS + F - V - 1, F, V), 3000);
	assert_int_equal(cs_ledger_horizon(l, t + 10 * MS + F - V, F, V), 4000);
	cs_ledger_free(l);
}

/* A full ring folds its oldest sample into the next (earliest time): every fence is still
 * covered by its deadline, the horizon only grows. */
static void horizon_full_ring(void **state)
{
	enum { CAP = 4, N = 11 };
	cs_ledger *l = new_ledger(4, CAP, 0);
	uint64_t t[N];
	cs_lsn_t lsn[N];
	for (int i = 0; i < N; i++) {
		t[i] = T0 + (uint64_t)i * 20 * MS;
		lsn[i] = 1000 + (cs_lsn_t)i * 100;
		cs_ledger_sample(l, t[i], lsn[i]);
		assert_true(cs_ledger_samples(l) <= CAP);
	}
	assert_int_equal(cs_ledger_samples(l), CAP);
	cs_lsn_t prev = 0;
	for (uint64_t now = T0 + F - V - 5 * MS; now <= t[N - 1] + F - V + 5 * MS; now += MS) {
		cs_lsn_t h = cs_ledger_horizon(l, now, F, V);
		assert_true(h >= prev);
		prev = h;
		for (int i = 0; i < N; i++)
			if (t[i] + F - V <= now)
				assert_true(h >= lsn[i]);
	}
	assert_int_equal(prev, lsn[N - 1]);
	assert_int_equal(cs_ledger_samples(l), 0);
	cs_ledger_free(l);
}

/* A full ring fed LSNs out of order (a replay after a restart re-sends lower fences after
 * higher ones): folding keeps the higher LSN, so every fence is still covered by its
 * deadline. */
static void horizon_full_ring_out_of_order(void **state)
{
	enum { CAP = 4, N = 9 };
	cs_ledger *l = new_ledger(4, CAP, 0);
	uint64_t t[N];
	cs_lsn_t lsn[N];
	for (int i = 0; i < N; i++) {
		t[i] = T0 + (uint64_t)i * 20 * MS;
		lsn[i] = i % 2 ? 1000 + (cs_lsn_t)i : 9000 - (cs_lsn_t)i * 10; /* high, low, ... */
		cs_ledger_sample(l, t[i], lsn[i]);
	}
	for (uint64_t now = T0; now <= t[N - 1] + F - V + 5 * MS; now += MS) {
		cs_lsn_t h = cs_ledger_horizon(l, now, F, V);
		for (int i = 0; i < N; i++)
			if (t[i] + F - V <= now)
				assert_true(h >= lsn[i]);
	}
	cs_ledger_free(l);
}

/* Random samples and publications: the horizon never decreases, is at least the floor, and
 * covers every fence by its deadline. */
static void horizon_random(void **state)
{
	enum { CAP = 16, N = 4000 };
	rng_state = 99;
	cs_ledger *l = new_ledger(4, CAP, 0);
	static uint64_t ts[N];
	static cs_lsn_t ls[N];
	int n = 0, first = 0; /* samples [first, n) not yet certainly covered */
	uint64_t now = T0;
	cs_lsn_t lsn = 5000, prev = 0, floor = 0;
	uint64_t f = 2 * SEC, v = SEC / 2;
	for (int step = 0; step < 3 * N && n < N; step++) {
		now += rng_range(0, 30 * MS);
		uint64_t r = rng_range(0, 9);
		if (r < 6) {
			lsn += rng_range(1, 500);
			cs_ledger_sample(l, now, lsn);
			ts[n] = now;
			ls[n++] = lsn;
			assert_true(cs_ledger_samples(l) <= CAP);
		} else if (r == 6) {
			floor = rng_range(0, lsn);
			cs_ledger_set_floor(l, floor);
		} else {
			cs_lsn_t h = cs_ledger_horizon(l, now, f, v);
			assert_true(h >= prev);
			assert_true(h >= floor);
			for (int i = first; i < n; i++)
				if (ts[i] + f - v <= now)
					assert_true(h >= ls[i]);
			while (first < n && ts[first] + f - v <= now)
				first++;
			prev = h;
		}
	}
	assert_true(n > N / 2);
	cs_ledger_free(l);
}

#undef F
#undef V

/* ---------------------------------------------------------------- debounce */

#define LIFE (2u * SEC)

/* The first change after a quiet period bumps at once; later ones within min_lifetime of the
 * last bump fold into one bump at last + min_lifetime owing the highest LSN; it is reported
 * when due, until sent, and not after. */
static void debounce_window(void **state)
{
	cs_ledger *l = new_ledger(4, 4, 2);
	uint64_t due = 0, t = T0;
	cs_lsn_t lsn = 0;
	assert_false(cs_ledger_debounce(l, 0, t, LIFE, 100, &due));
	cs_ledger_bump_sent(l, 0, t);
	assert_int_equal(cs_ledger_next_due(l, 0, t + 10 * SEC, &lsn), -1);

	assert_true(cs_ledger_debounce(l, 0, t + 300 * MS, LIFE, 200, &due));
	assert_int_equal(due, t + LIFE);
	assert_true(cs_ledger_debounce(l, 0, t + 900 * MS, LIFE, 400, &due));
	assert_int_equal(due, t + LIFE);
	assert_true(cs_ledger_debounce(l, 0, t + 1000 * MS, LIFE, 300, &due)); /* lower LSN */
	assert_int_equal(due, t + LIFE);
	assert_int_equal(cs_ledger_absorbed(l, 0), 3);
	assert_int_equal(cs_ledger_absorbed(l, 1), 0);

	assert_int_equal(cs_ledger_next_due(l, 0, t + LIFE - 1, &lsn), -1);
	assert_int_equal(cs_ledger_next_due(l, 0, t + LIFE, &lsn), 0);
	assert_int_equal(lsn, 400); /* max of the folded commits */
	/* not sent (Redis not ready): reported again */
	assert_int_equal(cs_ledger_next_due(l, 0, t + LIFE + 10 * MS, &lsn), 0);
	assert_int_equal(cs_ledger_next_due(l, 1, t + LIFE + 10 * MS, &lsn), -1);
	uint64_t sent = t + LIFE + 10 * MS;
	cs_ledger_due_sent(l, 0, sent);
	assert_int_equal(cs_ledger_next_due(l, 0, sent + 100 * SEC, &lsn), -1); /* once */

	/* the sent deferred bump starts a new window */
	assert_true(cs_ledger_debounce(l, 0, sent + SEC, LIFE, 500, &due));
	assert_int_equal(due, sent + LIFE);
	/* a deferred bump keeps folding even after its due time, until sent */
	assert_true(cs_ledger_debounce(l, 0, sent + 5 * SEC, LIFE, 600, &due));
	assert_int_equal(due, sent + LIFE);
	assert_int_equal(cs_ledger_next_due(l, 0, sent + 5 * SEC, &lsn), 0);
	assert_int_equal(lsn, 600);
	cs_ledger_due_sent(l, 0, sent + 5 * SEC);
	/* quiet for min_lifetime: at once again */
	assert_false(cs_ledger_debounce(l, 0, sent + 5 * SEC + LIFE, LIFE, 700, &due));
	cs_ledger_free(l);
}

/* Queries are independent; a change that is not table-level only (min_life 0) bumps at once,
 * and leaves a scheduled deferred bump scheduled. */
static void debounce_independent(void **state)
{
	cs_ledger *l = new_ledger(4, 4, 3);
	uint64_t due = 0, t = T0;
	cs_lsn_t lsn = 0;
	assert_int_equal(cs_ledger_next_due_at(l), 0); /* none scheduled */
	cs_ledger_bump_sent(l, 1, t);
	assert_true(cs_ledger_debounce(l, 1, t + SEC, LIFE, 100, &due));
	/* the invalidator's timer is armed for the earliest deferred bump (issue 16) */
	assert_int_equal(cs_ledger_next_due_at(l), t + LIFE);
	cs_ledger_bump_sent(l, 0, t + SEC / 2);
	assert_true(cs_ledger_debounce(l, 0, t + SEC, LIFE, 100, &due));
	assert_int_equal(cs_ledger_next_due_at(l), t + LIFE); /* not query 0's, later */
	cs_ledger_due_sent(l, 1, t + LIFE);
	assert_int_equal(cs_ledger_next_due_at(l), t + SEC / 2 + LIFE);
	cs_ledger_due_sent(l, 0, t + SEC / 2 + LIFE);
	assert_int_equal(cs_ledger_next_due_at(l), 0);
	t += 10 * SEC;
	cs_ledger_bump_sent(l, 1, t);
	assert_true(cs_ledger_debounce(l, 1, t + SEC, LIFE, 100, &due));
	assert_false(cs_ledger_debounce(l, 0, t + SEC, LIFE, 100, &due));
	assert_false(cs_ledger_debounce(l, 2, t + SEC, 0, 100, &due)); /* no min_lifetime */
	/* a TRUNCATE of query 1: at once */
	assert_false(cs_ledger_debounce(l, 1, t + SEC + 1, 0, 150, &due));
	cs_ledger_bump_sent(l, 1, t + SEC + 1);
	assert_int_equal(cs_ledger_next_due(l, 0, t + LIFE, &lsn), 1);
	assert_int_equal(lsn, 100);
	assert_int_equal(cs_ledger_next_due(l, 2, t + LIFE, &lsn), -1);
	/* out of range */
	assert_false(cs_ledger_debounce(l, 3, t, LIFE, 1, &due));
	assert_false(cs_ledger_debounce(l, -1, t, LIFE, 1, &due));
	cs_ledger_bump_sent(l, 3, t);
	cs_ledger_owe(l, 7, 1, t);
	cs_ledger_due_sent(l, -2, t);
	assert_int_equal(cs_ledger_absorbed(l, 9), 0);
	cs_ledger_free(l);
}

/* Owed bumps (loaded from Redis) are due at once; a reset drops deferred bumps but keeps the
 * windows; resizing zeroes everything. */
static void debounce_owe_reset_resize(void **state)
{
	cs_ledger *l = new_ledger(4, 4, 2);
	uint64_t due = 0, t = T0;
	cs_lsn_t lsn = 0;
	cs_ledger_bump_sent(l, 0, t);
	assert_true(cs_ledger_debounce(l, 0, t + SEC, LIFE, 300, &due));
	cs_ledger_reset(l);
	assert_int_equal(cs_ledger_next_due(l, 0, t + 10 * LIFE, &lsn), -1);
	/* still within the window of the last bump */
	assert_true(cs_ledger_debounce(l, 0, t + SEC + 1, LIFE, 310, &due));
	assert_int_equal(due, t + LIFE);
	cs_ledger_reset(l);

	cs_ledger_owe(l, 1, 900, t + 3 * SEC);
	cs_ledger_owe(l, 1, 800, t + 3 * SEC);
	assert_int_equal(cs_ledger_next_due(l, 0, t + 3 * SEC, &lsn), 1);
	assert_int_equal(lsn, 900);
	cs_ledger_due_sent(l, 1, t + 3 * SEC);
	assert_int_equal(cs_ledger_next_due(l, 0, t + 4 * SEC, &lsn), -1);
	assert_int_equal(cs_ledger_absorbed(l, 0), 2);

	assert_int_equal(cs_ledger_set_queries(l, 3), 0);
	assert_int_equal(cs_ledger_absorbed(l, 0), 0);
	assert_false(cs_ledger_debounce(l, 0, t + 3 * SEC, LIFE, 1, &due));
	assert_int_equal(cs_ledger_set_queries(l, 0), 0);
	assert_int_equal(cs_ledger_next_due(l, 0, t, &lsn), -1);
	assert_int_equal(cs_ledger_set_queries(l, -1), -1);
	cs_ledger_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_sizes),
		cmocka_unit_test(confirms_in_order),
		cmocka_unit_test(empty_commit),
		cmocka_unit_test(out_of_order_prefix),
		cmocka_unit_test(stray_releases),
		cmocka_unit_test(confirmed_never_decreases),
		cmocka_unit_test(keepalive_rule),
		cmocka_unit_test(reset_forgets_in_flight),
		cmocka_unit_test(capacity_and_pause),
		cmocka_unit_test(fifo_random_small),
		cmocka_unit_test(fifo_random_large),
		cmocka_unit_test(horizon_floor),
		cmocka_unit_test(horizon_coverage_time),
		cmocka_unit_test(horizon_merge),
		cmocka_unit_test(horizon_full_ring),
		cmocka_unit_test(horizon_full_ring_out_of_order),
		cmocka_unit_test(horizon_random),
		cmocka_unit_test(debounce_window),
		cmocka_unit_test(debounce_independent),
		cmocka_unit_test(debounce_owe_reset_resize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
