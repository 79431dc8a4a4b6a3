/* ledger.c - the invalidator's confirmation bookkeeping: commit FIFO, keepalive rule, horizon
 * samples, min_lifetime debounce (ledger.h). Pure: no I/O, no clock. */
#include "ledger.h"

#include <stdlib.h>
#include <string.h>

typedef struct pending {
	cs_lsn_t end_lsn;
	int64_t commit_unix_us;
	int remaining; /* Redis commands not yet acknowledged */
} pending;

typedef struct sample {
	uint64_t us;
	cs_lsn_t lsn;
} sample;

typedef struct debounce {
	uint64_t absorbed; /* table-level changes folded into a deferred bump */
	uint64_t last_us;  /* last table-level bump sent */
	uint64_t due_us;   /* deferred bump, 0 = none */
	cs_lsn_t lsn;	   /* the deferred bump's query-level fence: the last change it covers */
} debounce;

struct cs_ledger {
	/* commits in flight: sequence numbers [head, tail); entry = fifo[seq % fifo_cap] */
	pending *fifo;
	size_t fifo_cap;
	uint64_t head, tail;
	bool in_txn;
	cs_lsn_t confirmed;

	/* horizon samples: a ring of len samples ending before index s_head */
	sample *samples;
	size_t samples_cap, s_head, s_len;
	cs_lsn_t h_start, horizon;

	debounce *deb;
	int nq;
};

cs_ledger *cs_ledger_new(size_t fifo_cap, size_t samples_cap, int nq)
{
	if (fifo_cap < 2 || samples_cap < 2 || nq < 0)
		return NULL;
	cs_ledger *l = calloc(1, sizeof *l);
	if (l == NULL)
		return NULL;
	l->fifo = calloc(fifo_cap, sizeof *l->fifo);
	l->samples = calloc(samples_cap, sizeof *l->samples);
	l->fifo_cap = fifo_cap;
	l->samples_cap = samples_cap;
	if (l->fifo == NULL || l->samples == NULL || cs_ledger_set_queries(l, nq) != 0) {
		cs_ledger_free(l);
		return NULL;
	}
	return l;
}

void cs_ledger_free(cs_ledger *l)
{
	if (l == NULL)
		return;
	free(l->fifo);
	free(l->samples);
	free(l->deb);
	free(l);
}

void cs_ledger_reset(cs_ledger *l)
{
	l->head = l->tail;
	l->in_txn = false;
	for (int q = 0; q < l->nq; q++) {
		l->deb[q].due_us = 0;
		l->deb[q].lsn = 0;
	}
}

void cs_ledger_start_at(cs_ledger *l, cs_lsn_t lsn)
{
	l->confirmed = lsn;
}

/* ---- Commit FIFO ---------------------------------------------------------------------------- */

static pending *fifo_get(cs_ledger *l, uint64_t seq)
{
	if (seq < l->head || seq >= l->tail)
		return NULL;
	return &l->fifo[seq % l->fifo_cap];
}

void cs_ledger_begin(cs_ledger *l)
{
	l->in_txn = true;
}

int cs_ledger_commit(cs_ledger *l, cs_lsn_t end_lsn, int64_t commit_unix_us, uint64_t *seq)
{
	if (l->tail - l->head >= l->fifo_cap)
		return -1;
	*seq = l->tail++;
	l->fifo[*seq % l->fifo_cap] =
		(pending){ .end_lsn = end_lsn, .commit_unix_us = commit_unix_us, .remaining = 0 };
	l->in_txn = false;
	return 0;
}

void cs_ledger_hold(cs_ledger *l, uint64_t seq)
{
	pending *p = fifo_get(l, seq);
	if (p)
		p->remaining++;
}

void cs_ledger_release(cs_ledger *l, uint64_t seq)
{
	pending *p = fifo_get(l, seq);
	if (p && p->remaining > 0)
		p->remaining--;
}

bool cs_ledger_advance(cs_ledger *l, int64_t *commit_unix_us)
{
	pending *p = fifo_get(l, l->head);
	if (p == NULL || p->remaining > 0)
		return false;
	if (p->end_lsn > l->confirmed)
		l->confirmed = p->end_lsn;
	*commit_unix_us = p->commit_unix_us;
	l->head++;
	return true;
}

bool cs_ledger_keepalive(cs_ledger *l, cs_lsn_t wal_end)
{
	/* Idle (nothing decoded and not yet acknowledged, not inside a transaction): every
	 * commit before wal_end has been sent and applied, so the position may follow it. */
	if (l->in_txn || l->head != l->tail || wal_end <= l->confirmed)
		return false;
	l->confirmed = wal_end;
	return true;
}

cs_lsn_t cs_ledger_confirmed(const cs_ledger *l)
{
	return l->confirmed;
}

size_t cs_ledger_in_flight(const cs_ledger *l)
{
	return (size_t)(l->tail - l->head);
}

bool cs_ledger_oldest(const cs_ledger *l, int64_t *commit_unix_us)
{
	if (l->head == l->tail)
		return false;
	*commit_unix_us = l->fifo[l->head % l->fifo_cap].commit_unix_us;
	return true;
}

bool cs_ledger_should_pause(const cs_ledger *l)
{
	return l->tail - l->head >= l->fifo_cap - 1;
}

bool cs_ledger_may_resume(const cs_ledger *l)
{
	return l->tail - l->head < l->fifo_cap / 2;
}

/* ---- Horizon samples ------------------------------------------------------------------------ */

void cs_ledger_sample(cs_ledger *l, uint64_t now_us, cs_lsn_t lsn)
{
	size_t cap = l->samples_cap;
	if (l->s_len > 0) {
		sample *last = &l->samples[(l->s_head + cap - 1) % cap];
		if (now_us - last->us < CS_LEDGER_SAMPLE_MERGE_US) {
			if (lsn > last->lsn)
				last->lsn = lsn; /* earliest time, highest LSN: H only grows */
			return;
		}
	}
	if (l->s_len == cap) {
		/* Full: fold the oldest into the next (its earlier time, the higher LSN: after a
		 * replay a lower sample can follow a higher one, and H must only grow). */
		sample *oldest = &l->samples[(l->s_head + cap - l->s_len) % cap];
		sample *next = &l->samples[(l->s_head + cap - l->s_len + 1) % cap];
		next->us = oldest->us;
		if (oldest->lsn > next->lsn)
			next->lsn = oldest->lsn;
		l->s_len--;
	}
	l->samples[l->s_head] = (sample){ .us = now_us, .lsn = lsn };
	l->s_head = (l->s_head + 1) % cap;
	l->s_len++;
}

size_t cs_ledger_samples(const cs_ledger *l)
{
	return l->s_len;
}

void cs_ledger_set_floor(cs_ledger *l, cs_lsn_t h_start)
{
	l->h_start = h_start;
	if (h_start > l->horizon)
		l->horizon = h_start;
}

cs_lsn_t cs_ledger_horizon(cs_ledger *l, uint64_t now_us, uint64_t fence_ttl_us,
	uint64_t horizon_ttl_us)
{
	/* A fence sent at t expires at t + F; the horizon key lives until now + V: every fence
	 * sent at or before now + V - F may be gone while it lives, so H must cover it. */
	uint64_t cutoff;
	if (horizon_ttl_us >= fence_ttl_us) {
		uint64_t ahead = horizon_ttl_us - fence_ttl_us;
		cutoff = UINT64_MAX - now_us < ahead ? UINT64_MAX : now_us + ahead;
	} else {
		uint64_t behind = fence_ttl_us - horizon_ttl_us;
		cutoff = now_us > behind ? now_us - behind : 0;
	}
	size_t cap = l->samples_cap;
	while (l->s_len > 0) {
		size_t oldest = (l->s_head + cap - l->s_len) % cap;
		if (l->samples[oldest].us > cutoff)
			break;
		if (l->samples[oldest].lsn > l->horizon)
			l->horizon = l->samples[oldest].lsn;
		l->s_len--;
	}
	if (l->h_start > l->horizon)
		l->horizon = l->h_start;
	return l->horizon;
}

/* ---- min_lifetime debounce ------------------------------------------------------------------ */

int cs_ledger_set_queries(cs_ledger *l, int nq)
{
	if (nq < 0)
		return -1;
	debounce *deb = calloc((size_t)(nq ? nq : 1), sizeof *deb);
	if (deb == NULL)
		return -1;
	free(l->deb);
	l->deb = deb;
	l->nq = nq;
	return 0;
}

static debounce *deb_get(cs_ledger *l, int q)
{
	return q >= 0 && q < l->nq ? &l->deb[q] : NULL;
}

bool cs_ledger_debounce(cs_ledger *l, int q, uint64_t now_us, uint64_t min_life_us, cs_lsn_t lsn,
	uint64_t *due_us)
{
	debounce *d = deb_get(l, q);
	if (d == NULL || min_life_us == 0 || (d->due_us == 0 && now_us - d->last_us >= min_life_us))
		return false;
	/* One bump at the end of the window covers this change too. */
	d->absorbed++;
	if (d->due_us == 0)
		d->due_us = d->last_us + min_life_us;
	if (lsn > d->lsn)
		d->lsn = lsn;
	*due_us = d->due_us;
	return true;
}

void cs_ledger_bump_sent(cs_ledger *l, int q, uint64_t now_us)
{
	debounce *d = deb_get(l, q);
	if (d)
		d->last_us = now_us;
}

void cs_ledger_owe(cs_ledger *l, int q, cs_lsn_t lsn, uint64_t now_us)
{
	debounce *d = deb_get(l, q);
	if (d == NULL)
		return;
	if (lsn > d->lsn)
		d->lsn = lsn;
	d->due_us = now_us;
}

int cs_ledger_next_due(const cs_ledger *l, int from, uint64_t now_us, cs_lsn_t *lsn)
{
	for (int q = from < 0 ? 0 : from; q < l->nq; q++) {
		const debounce *d = &l->deb[q];
		if (d->due_us != 0 && now_us >= d->due_us) {
			*lsn = d->lsn;
			return q;
		}
	}
	return -1;
}

uint64_t cs_ledger_next_due_at(const cs_ledger *l)
{
	uint64_t at = 0;
	for (int q = 0; q < l->nq; q++)
		if (l->deb[q].due_us != 0 && (at == 0 || l->deb[q].due_us < at))
			at = l->deb[q].due_us;
	return at;
}

void cs_ledger_due_sent(cs_ledger *l, int q, uint64_t now_us)
{
	debounce *d = deb_get(l, q);
	if (d == NULL)
		return;
	d->due_us = 0;
	d->lsn = 0;
	d->last_us = now_us;
}

uint64_t cs_ledger_absorbed(const cs_ledger *l, int q)
{
	return q >= 0 && q < l->nq ? l->deb[q].absorbed : 0;
}
