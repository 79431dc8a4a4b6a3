/* ledger.h - the invalidator's confirmation bookkeeping (DESIGN.md I4, fence.c (b)), pure.
 *
 * No libpq, no Redis, no event loop and no clock: every time is passed in, in microseconds
 * (a monotonic clock for sample, horizon and debounce times; commit timestamps are opaque
 * wall-clock values handed back as they were given). Memory is allocated when the ledger is
 * created (and when the number of queries changes), never per commit.
 *
 * Four parts:
 *  - The commit FIFO. Every decoded commit takes an entry, in stream order, holding its end
 *    LSN, its commit timestamp and the number of Redis commands not yet acknowledged. The
 *    confirmed position (the only LSN ever reported to PostgreSQL as flushed) is the end LSN
 *    of the last entry of the acknowledged prefix: it never passes an entry that still
 *    waits, and never decreases. The FIFO is bounded: when cs_ledger_should_pause() says so
 *    the caller stops reading the stream until cs_ledger_may_resume().
 *  - The idle keepalive rule: a keepalive's wal_end becomes the confirmed position only when
 *    no commit is in flight and no transaction is open (every commit before wal_end was then
 *    decoded and acknowledged).
 *  - The horizon samples: when each commit's fences were sent. The horizon H covers every
 *    fence that may expire while the horizon key lives: H = max(H_start, max{lsn : sent <=
 *    now + V - F}) (F = fence TTL, V = horizon TTL), never decreasing.
 *  - The min_lifetime debounce: per query, when its last table-level bump was sent, when a
 *    deferred bump is due and the LSN it owes (the last change it covers).
 *
 * Not thread-safe: one owner (the invalidator, on its event loop). Nothing here blocks. */
#ifndef CS_LEDGER_H
#define CS_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

/* Samples sent within this many microseconds of the newest sample are merged into it. */
#define CS_LEDGER_SAMPLE_MERGE_US 10000u

typedef struct cs_ledger cs_ledger;

/* Creates a ledger for up to fifo_cap commits in flight and samples_cap horizon samples
 * (both at least 2), with nq queries (nq >= 0) for the debounce. Everything starts empty:
 * confirmed position 0, horizon 0, floor 0, no transaction open. NULL on OOM or bad sizes.
 * The caller owns it (cs_ledger_free). */
cs_ledger *cs_ledger_new(size_t fifo_cap, size_t samples_cap, int nq)
	__attribute__((warn_unused_result));
void cs_ledger_free(cs_ledger *l);

/* Forgets everything in flight (a restart of the replication stream: the slot replays what
 * was not confirmed): the FIFO empties, the open transaction closes, deferred bumps are
 * dropped (they are recorded in Redis; the next synchronisation reloads them with
 * cs_ledger_owe). Kept: the confirmed position, the horizon samples, the horizon and its
 * floor, every query's last bump time and absorbed count. Sequence numbers keep rising, so a
 * late acknowledgement for a forgotten commit (cs_ledger_release) changes nothing. */
void cs_ledger_reset(cs_ledger *l);

/* A new stream starts at the slot's confirmed position: the confirmed position becomes lsn,
 * even when lower than the one kept across the restart (what a previous stream confirmed
 * in memory may not have reached PostgreSQL or may have been lost by Redis: only the slot
 * knows). Call with the FIFO empty (after cs_ledger_reset). */
void cs_ledger_start_at(cs_ledger *l, cs_lsn_t lsn);

/* ---- Commit FIFO and confirmation (I4) ---------------------------------------------------- */

/* A transaction began (pgoutput Begin): keepalives confirm nothing until it commits. */
void cs_ledger_begin(cs_ledger *l);

/* The open transaction committed at end_lsn (commit_unix_us: its timestamp, returned by
 * cs_ledger_advance for the lag). Appends its entry with no command outstanding (add them with
 * cs_ledger_hold) and closes the transaction. Returns 0 with *seq set, or -1 when the FIFO
 * holds fifo_cap entries (nothing changed; see cs_ledger_should_pause). */
int cs_ledger_commit(cs_ledger *l, cs_lsn_t end_lsn, int64_t commit_unix_us, uint64_t *seq)
	__attribute__((warn_unused_result));

/* One more Redis command of commit seq waits for its acknowledgement. No-op when seq is not
 * in flight. */
void cs_ledger_hold(cs_ledger *l, uint64_t seq);

/* Redis acknowledged one command of commit seq. No-op when seq is not in flight (forgotten
 * by a reset, already confirmed) or has nothing outstanding. */
void cs_ledger_release(cs_ledger *l, uint64_t seq);

/* Confirms the oldest commit in flight if none of its commands is outstanding: the confirmed
 * position rises to its end LSN (never falls) and *commit_unix_us gets its commit timestamp.
 * Returns true when it confirmed one; call until false. */
bool cs_ledger_advance(cs_ledger *l, int64_t *commit_unix_us);

/* A keepalive from the walsender at wal_end: when no commit is in flight and no transaction
 * is open, the confirmed position follows it. Returns true when the position rose. */
bool cs_ledger_keepalive(cs_ledger *l, cs_lsn_t wal_end);

cs_lsn_t cs_ledger_confirmed(const cs_ledger *l);
/* Commits decoded and not yet confirmed. */
size_t cs_ledger_in_flight(const cs_ledger *l);
/* The oldest commit in flight's timestamp: true with *commit_unix_us set, false when none. */
bool cs_ledger_oldest(const cs_ledger *l, int64_t *commit_unix_us);
/* At most one more commit fits: stop reading the stream. */
bool cs_ledger_should_pause(const cs_ledger *l);
/* Less than half full: a paused stream may be read again. */
bool cs_ledger_may_resume(const cs_ledger *l);

/* ---- Horizon samples (fence.c (b)) -------------------------------------------------------- */

/* Fences up to lsn were sent at now_us. A sample within CS_LEDGER_SAMPLE_MERGE_US of the newest
 * one merges into it (earliest time, highest LSN); when the ring is full its oldest sample is
 * folded into the next (earliest time). Both only make the horizon larger or earlier. */
void cs_ledger_sample(cs_ledger *l, uint64_t now_us, cs_lsn_t lsn);
/* Samples held (not yet folded into the horizon). */
size_t cs_ledger_samples(const cs_ledger *l);

/* Sets the horizon's floor H_start (the position below which every earlier leader's fences
 * lie, or nothing may fill) and raises the horizon to it. It may be set lower later; the
 * horizon itself never decreases. */
void cs_ledger_set_floor(cs_ledger *l, cs_lsn_t h_start);

/* The horizon to publish at now_us with fence TTL fence_ttl_us (F) and horizon TTL
 * horizon_ttl_us (V): folds every sample sent at or before now + V - F into it, floors it at
 * H_start. Never lower than any value it returned before. */
cs_lsn_t cs_ledger_horizon(cs_ledger *l, uint64_t now_us, uint64_t fence_ttl_us,
	uint64_t horizon_ttl_us);

/* ---- min_lifetime debounce ---------------------------------------------------------------- */

/* Sizes the debounce for nq queries (nq >= 0), every query's state zeroed (query indexes
 * changed: a reload). 0, or -1 on OOM with the old state kept. */
int cs_ledger_set_queries(cs_ledger *l, int nq) __attribute__((warn_unused_result));

/* Query q must be bumped for a change committed at lsn, at now_us; min_life_us is the
 * query's min_lifetime when the change is table-level only, 0 otherwise (bump at once).
 * Returns false: bump now, and call cs_ledger_bump_sent once it was sent. Returns true: the
 * change is folded into a deferred bump due at *due_us (last bump + min_lifetime, or the one
 * already scheduled) that owes the highest LSN folded into it (the caller records it
 * durably). Always false for q out of range. */
bool cs_ledger_debounce(cs_ledger *l, int q, uint64_t now_us, uint64_t min_life_us, cs_lsn_t lsn,
	uint64_t *due_us);

/* An immediate bump of q was sent at now_us (starts its min_lifetime window). A deferred bump
 * already scheduled stays scheduled. */
void cs_ledger_bump_sent(cs_ledger *l, int q, uint64_t now_us);

/* A bump owed by an earlier leader (loaded from Redis at synchronisation): due at now_us,
 * owing at least lsn. */
void cs_ledger_owe(cs_ledger *l, int q, cs_lsn_t lsn, uint64_t now_us);

/* The first query at index >= from whose deferred bump is due at now_us, with the LSN it owes
 * in *lsn; -1 when none. Reports the same query again until cs_ledger_due_sent. */
int cs_ledger_next_due(const cs_ledger *l, int from, uint64_t now_us, cs_lsn_t *lsn);

/* When the first deferred bump is due (the earliest of every query's), 0 when none is
 * scheduled: the invalidator's timer is armed for it (issue 16), not polled. */
uint64_t cs_ledger_next_due_at(const cs_ledger *l);

/* q's deferred bump was sent at now_us: nothing is owed, its window restarts. */
void cs_ledger_due_sent(cs_ledger *l, int q, uint64_t now_us);

/* Table-level changes of q folded into a deferred bump since the queries were sized. */
uint64_t cs_ledger_absorbed(const cs_ledger *l, int q);

#endif
