/* invalidator.h - consumes the primary's logical replication stream (pgoutput) on the event
 * loop and deletes exactly the cache entries each committed change affects.
 *
 * One process holds the slot at a time (PostgreSQL allows one walsender per slot: the
 * slot is the leader lock); others configured as invalidators stand by and retry.
 * Invariant I4: the LSN confirmed to PostgreSQL is the end LSN of the last commit whose
 * invalidations Redis has acknowledged, never more; after any crash the slot replays what
 * was not confirmed (at-least-once; invalidation is idempotent). The leader also publishes
 * cs:inv:pos (its confirmed position, for read-your-writes) and cs:horizon (fence.c).
 *
 * Nothing here blocks. */
#ifndef CS_INVALIDATOR_H
#define CS_INVALIDATOR_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "hist.h"
#include "lsn.h"
#include "metrics.h"

struct event_base;
struct cs_pgserver;

typedef struct cs_inv cs_inv;

/* Leadership state. */
typedef enum cs_inv_state {
	CS_INV_IDLE = 0,   /* not connected (starting, or reconnecting after a failure) */
	CS_INV_STANDBY,	   /* another process holds the slot: retrying on a timer */
	CS_INV_SETUP,	   /* connected: slot checks, creation, gap flush */
	CS_INV_STREAMING,  /* the leader: consuming the stream */
} cs_inv_state;

typedef struct cs_inv_stats {
	cs_inv_state state;
	cs_lsn_t confirmed;	  /* last LSN confirmed to PostgreSQL */
	cs_lsn_t horizon;	  /* last horizon published */
	uint64_t transactions;	  /* commits decoded */
	uint64_t rows;		  /* row changes decoded */
	uint64_t keys;		  /* keys invalidated (sent to Redis) */
	uint64_t query_bumps[4]; /* whole-query invalidations by cs_inv_reason (CS_INV_REASONS) */
	uint64_t debounced;	  /* whole-table invalidations absorbed by min_lifetime */
	uint64_t reconnects;	  /* replication connections (re)started */
	uint64_t slot_lost;	  /* slots found lost (invalidated) and recreated: a loud event */
	uint64_t slot_created;	  /* slots created because missing (first start, or dropped) */
	uint64_t redis_failures;  /* invalidations Redis did not acknowledge (stream replayed) */
	uint64_t receive_timeouts; /* streams restarted: nothing received for receive_timeout */
	uint64_t redis_data_loss; /* Redis lost data (flush, restart, failover): resynchronised */
	uint64_t gap_flushes;	  /* gap flushes performed (new or lost slot, or owed by a crash) */
	uint64_t start_moved;	  /* streams synchronised from the position read again: the slot
				   * moved between its read and START_REPLICATION (a leader handing
				   * over; review 41 R41-2) */
	uint64_t stale_primary;	  /* connections refused: a server on a timeline older than the
				   * newest recorded for its system (an old primary came back) */
	uint64_t cmds_max;	  /* Redis commands in flight or owed, at most (review V3) */
	uint64_t pauses;	  /* times reading the stream stopped: FIFO or commands full */
	/* review V2: a cluster's commands a node did not take, retried from a per-node queue */
	uint64_t rq_queued;       /* commands put in a retry queue */
	uint64_t rq_retries;      /* commands sent again from a retry queue */
	uint64_t rq_overflows;    /* a queue full: the stream restarted instead (as before) */
	uint64_t rq_depth;        /* commands in the retry queues now */
	uint64_t rq_slot_holds;   /* a slot's commands set apart (its own failure), the rest
	                           * of its node's queue draining (review G2) */
	uint64_t rq_out_max;      /* most commands of one retry queue in flight at once */
	uint64_t rq_rid_checks;   /* run_id checks sent before a down node's first retry (G5) */
	/* review V9b: slot migrations (inv_open.c) */
	uint64_t open_losses;     /* a migrating bucket's endpoint changed: the SYNC flushed */
	uint64_t open_marks;      /* buckets marked as being migrated now */
	uint64_t open_marked;     /* marks written (a bucket seen with its slot open) */
	uint64_t open_incomplete; /* rounds not complete (a master unanswered, an error) */
	uint64_t open_holds;      /* no complete round for the hold bound: a loss (R18-5) */
	uint64_t open_rounds;     /* rounds complete (every master answered, marks written) */
	uint64_t open_hold_ms;    /* the hold bound now (doubles after a hold: R22-3) */
	uint64_t open_record_retries; /* a loss's record in bucket 0 failed, sent again (R51-1) */
	uint64_t open_record_fallbacks; /* not recorded within the bound: restarted anyway */
	cs_hist lag_us;		  /* commit timestamp -> Redis acknowledged */
	cs_hist recv_us;	  /* commit timestamp -> its Commit message decoded here: the
				   * primary's and the network's share of lag_us */
	cs_hist send_us;	  /* commit timestamp -> the walsender sent its Commit message
				   * (the XLogData's send time): the primary's share of recv_us,
				   * both times on the primary's clock */
} cs_inv_stats;

/* Which primary an invalidator follows (backend/SHARDS.md section 4). */
typedef struct cs_inv_where {
	int shard;            /* index into cfg->shards; -1: no [shard NAME] sections ([primary],
	                       * the unsharded keyspace: byte for byte as before shards) */
	const char *conninfo; /* NULL: the shard's primary. A test's negative control only:
	                       * stream another server's WAL into this shard's keyspace */
} cs_inv_where;

/* Creates the invalidator and starts connecting. `where` NULL is { -1, NULL }. Shard k's
 * invalidator streams from [shard k] conninfo with slot [shard k] slot (else [invalidator]
 * slot), writes every key (entries, fences, generations, horizon, position, epoch, ledger,
 * timeline and debounce records) under "<ns>@<shard k>" (cs_ks_init_shard) and maps only the
 * queries that read from shard k (every keyed query, and the queries pinned to k).
 * `primary` (may be NULL) is the engine's server for that primary, used for the primary's LSN
 * (bytes behind) and the slot health. NULL with a message. */
cs_inv *cs_inv_new(struct event_base *base, const cs_config *cfg, const cs_inv_where *where,
        struct cs_pgserver *primary, char *err, size_t errlen) __attribute__((warn_unused_result));
/* The shard it follows (-1: none) and its name ("" without shards). */
int cs_inv_shard(const cs_inv *inv);
const char *cs_inv_shard_name(const cs_inv *inv);
/* Its replication slot. */
const char *cs_inv_slot(const cs_inv *inv);
void cs_inv_free(cs_inv *inv);
/* The engine is about to free its servers (their jobs fail): a failure of the invalidator's
 * own job then is the shutdown's, not news (no restart, no warning). */
void cs_inv_stopping(cs_inv *inv);

/* The highest LSN this invalidator decoded or confirmed with its current query mapping:
 * changes up to it were mapped with the definitions in force (a reload's new mapping
 * decodes only what comes after, from the slot's confirmed position on). 0 before any. */
cs_lsn_t cs_inv_mapped_upto(const cs_inv *inv);

/* Rebuilds the key mapping from reloaded query definitions. 0, or -1 on OOM (old kept). */
int cs_inv_reload(cs_inv *inv, const cs_config *cfg);

/* Called for every key the invalidator sends to Redis, with the commit time of its
 * transaction (the engine measures the near cache's staleness from it). Runs on the loop;
 * must not call back into the invalidator. NULL fn: none. */
typedef void cs_inv_key_hook(void *priv, const char *query, const char *canon, size_t canon_len,
	int64_t commit_unix_us);
void cs_inv_set_key_hook(cs_inv *inv, cs_inv_key_hook *fn, void *priv);

/* Cluster mode only, a test's negative control: off, an INVAL's entry keys are not DELeted
 * again with plain routed DELs (CLUSTER.md C1). On by default. */
void cs_inv_set_cluster_c1(cs_inv *inv, bool on);
/* Cluster mode only, a test's negative control: off, a commit is not held for its
 * per-bucket INVALs (and their DELs): it may be confirmed before every node acknowledged
 * (breaks I4). On by default. */
void cs_inv_set_cluster_hold(cs_inv *inv, bool on);
/* Cluster mode only, a test's negative control: off, a bucket found kept by the
 * resynchronisation keeps its horizon and fmax (CLUSTER.md C2). On by default. */
void cs_inv_set_cluster_c2(cs_inv *inv, bool on);
/* Test hook: off, the cluster SYNC's stamp does not re-check the probe's verdict (review V1). */
void cs_inv_set_cluster_v1(cs_inv *inv, bool on);
/* Cluster mode only, test hooks (negative controls of review V5): pos_every, the position is
 * written to all 256 buckets on every advance (the behaviour before V5; off by default);
 * pos_min off, the position reported to PostgreSQL as flushed follows bucket 0's copy alone,
 * not the lowest copy acknowledged in every bucket (on by default). */
void cs_inv_set_cluster_pos(cs_inv *inv, bool pos_every, bool pos_min);
/* Test hook (a negative control of review W3): off, a failed position write is retried on
 * the next 10 ms tick instead of after an exponential backoff (20 ms up to 2 s). On by
 * default. */
void cs_inv_set_pos_backoff(cs_inv *inv, bool on);
/* Test hook: the tick runs every 10 ms whatever there is to watch, as before issue 16 (a
 * negative control of tests/integration/idle_wakeups.sh). Off by default: the tick is armed
 * for the next deadline there is. */
void cs_inv_set_tick_polled(cs_inv *inv, bool on);
/* Cluster mode only, test hook: the tick is armed for the cluster's own deadlines (the position
 * copies' backoffs, the retry queues, the watch of open slots); on by default. Off: only the
 * status interval (and the other non-cluster deadlines) drive that work (review 43 R43-1, a
 * negative control of tests/integration/cluster_deadlines.sh). */
void cs_inv_set_cluster_deadlines(cs_inv *inv, bool on);
/* Cluster mode only, test hook: reading the stream stops at `limit` Redis commands in flight
 * or owed (review V3; default 65536); 0: no such bound (a negative control). */
void cs_inv_set_cmd_limit(cs_inv *inv, int64_t limit);
/* Cluster mode only, test hook: the per-node retry queue's bounds (review V2; defaults 16384
 * commands and 32 MB per node); max_cmds 0: no queue, a command a node did not take restarts
 * the stream (the behaviour before V2, a negative control). */
void cs_inv_set_retry_queue(cs_inv *inv, int64_t max_cmds, int64_t max_bytes);
/* Cluster mode only, test hook (the negative control of review G2): off, a command failing
 * for its own slot (TRYAGAIN, ASK, MOVED, non local key) stops its node's whole retry queue,
 * probed by its oldest command alone, as before; on (the default), only that slot's commands
 * wait, probed apart, and the rest drains. */
void cs_inv_set_retry_per_slot(cs_inv *inv, bool on);
/* Cluster mode only, test hook (the negative control of review V9c): off, a script refused
 * "non local key" (C_INVAL on a migrating node whose entry is not there) restarts the stream,
 * as before, instead of waiting in its node's retry queue. On by default. */
void cs_inv_set_cluster_v9c(cs_inv *inv, bool on);
/* Cluster mode only, test hook (the negative control of the paced drain): off, a node that
 * takes commands again is sent its whole retry queue at once, as before; on (the default), at
 * most 64 per 10 ms tick and 256 in flight. */
void cs_inv_set_retry_paced(cs_inv *inv, bool on);
/* Cluster mode only, test hook (the negative control of review G5): off, a node that was down
 * is sent its oldest queued command at once, as before, with no run_id check first. On by
 * default. */
void cs_inv_set_retry_rid_check(cs_inv *inv, bool on);

/* Cluster mode only, a test's negative control (review V9b): off, the invalidator does not
 * watch slot migrations (no CLUSTER NODES round, no marks, the flushed position not bound
 * by them). On by default. */
void cs_inv_set_cluster_v9b(cs_inv *inv, bool on);
/* Testing: the base of the watch's hold bound (no complete round of open slots for this long
 * is a loss; doubled after each hold, back at a complete round; 0: the default, max(60 s,
 * 4 x cluster-node-timeout, 10 status intervals)). */
void cs_inv_set_open_hold_ms(cs_inv *inv, int ms);
/* Testing, R22-3's negative control: true, the hold bound does not double after a hold. */
void cs_inv_set_open_hold_fixed(cs_inv *inv, bool fixed);
/* Testing, review 26 R26-2's negative control: true, a stream restart restarts the hold's
 * clock (the streaming time without a complete round is not carried over). */
void cs_inv_set_open_hold_nocarry(cs_inv *inv, bool nocarry);
/* Testing, review 51 R51-1's negative control: true, a loss the watch of open slots found
 * restarts the stream (letting the slot go) without waiting for its record in bucket 0. */
void cs_inv_set_loss_record_nowait(cs_inv *inv, bool nowait);
/* Testing: the longest the stream is kept while a loss's record is refused (default 5 s). */
void cs_inv_set_record_hold_ms(cs_inv *inv, int ms);

const cs_inv_stats *cs_inv_get_stats(const cs_inv *inv);
void cs_inv_metrics(const cs_inv *inv, cs_metrics *m);

#endif
