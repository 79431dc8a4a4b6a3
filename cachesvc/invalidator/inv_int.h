/* inv_int.h - what the invalidator's files share, private to them: its state (struct
 * cs_inv), the setup steps, the limits, and the functions one file calls in another.
 * invalidator.c: connection, restart, periodic work, slot health and the API;
 * inv_stream.c: the stream (transaction key sets, commits, confirmation, status);
 * inv_setup.c: the setup steps (IDENTIFY_SYSTEM, the slot, the Redis synchronisation). */
#ifndef CS_INV_INT_H
#define CS_INV_INT_H

#include "invalidator.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "cs_proto.h"
#include "fence.h"
#include "keyspace.h"
#include "ledger.h"
#include "log.h"
#include "mapping.h"
#include "pgconn.h"
#include "pgoutput.h"
#include "pgpool.h"
#include "rcluster.h"
#include "redis.h"
#include "resolve.h"
#include "textutil.h"
#include "util.h"

#define FIFO_MAX 65536 /* commits waiting for Redis; beyond: stop reading */
#define CMDS_MAX                                                                                   \
	65536                    /* a cluster: Redis commands in flight or owed; beyond: stop      \
	                          * reading (review V3) */
#define BATCH_KEYS         128   /* keys per INVAL script call (4 arguments each, see redis.c) */
#define QUERY_KEYS_MAX     10000 /* keys of one query in one transaction; beyond: drop the query */
#define TXN_ARENA_MAX      (64u << 20)
#define SAMPLES            16384 /* horizon ring */
#define TICK_MS            10
#define RETRY_BASE_MS      200
#define RETRY_MAX_MS       5000
#define STANDBY_RETRY_MS   1000
#define STABLE_US          30000000u /* streaming this long resets the reconnect backoff */
#define STEP_TIMEOUT_MS    10000     /* the connect, and each setup step */
#define POS_RETRY_BASE_MS  20        /* a failed position write: retried after 20 ms, 40 ms, ... */
#define POS_RETRY_MAX_MS   2000      /* ... up to 2 s (review W3) */
#define RQ_NODES           (CS_RC_MAX_NODES + 1) /* retry queues: the masters and "none" */
#define RQ_MAX_CMDS        16384      /* commands queued per node; beyond: restart (review V2) */
#define RQ_MAX_BYTES       (32 << 20) /* bytes queued per node; beyond: restart */
#define RQ_MAX_TOTAL_BYTES (64 << 20) /* bytes queued over every node; beyond: restart */
#define RQ_RETRY_BASE_MS   50         /* a node's failed retry: the next after 50 ms, 100 ms, ... */
#define RQ_RETRY_MAX_MS    2000       /* ... up to 2 s (as W3) */
#define RQ_SLOTS           32  /* slots set apart per node (review G2); beyond: the node waits */
#define RQ_DRAIN_TICK      64  /* commands a node's retry queue sends per tick (paced drain) */
#define RQ_DRAIN_WINDOW    256 /* commands of a node's retry queue in flight at most */

/* Replication connection steps, in order. */
typedef enum step {
	ST_NONE = 0,
	ST_CONNECTING,  /* libpq's connect (pgconn.h; conn still NULL) */
	ST_IDENTIFY,    /* IDENTIFY_SYSTEM */
	ST_TIMELINE,    /* Redis: record (sysid, timeline); refuse an old primary that came back */
	ST_SLOT_QUERY,  /* does the slot exist, is it lost? */
	ST_SLOT_DROP,   /* DROP_REPLICATION_SLOT of a lost slot */
	ST_PRE_CREATE,  /* Redis: a gap flush is owed (durably) before the slot is created */
	ST_SLOT_CREATE, /* CREATE_REPLICATION_SLOT */
	ST_START,       /* START_REPLICATION */
	ST_HELD,        /* the stream holds the slot: its position read again (the pool) */
	ST_SYNC,        /* Redis: epoch check, gap flush or data-loss resync, owed bumps */
	ST_STREAMING,   /* CopyBoth */
} step;

struct cs_inv {
	struct event_base *base;
	int shard;                        /* cs_inv_where.shard: -1 without shards */
	char shard_name[CS_MAX_NAME + 1]; /* "" without shards */
	char *conninfo;
	char *slot, *publication;
	int64_t fence_ttl_ms, status_interval_ms, horizon_ttl_ms;
	int64_t receive_timeout_ms; /* 0: off */
	bool eviction_check;        /* fence.c (i); off only as a test's negative control */
	bool fence_on;
	bool policy_busy; /* an INFO memory in flight */
	char policy[32];  /* Redis's maxmemory-policy last seen ("" unknown) */
	struct cs_pgserver *primary;

	cs_inv_map *map;
	cs_rc *rc; /* Redis (rcluster.h: one connection, or a cluster's masters) */
	cs_keyspace ks;
	char epoch_str[96]; /* the epoch this leader synchronised with (keyspace.h; on a
	                     * cluster: bucket 0's copy) */
	size_t epoch_len;
	/* Redis Cluster (CLUSTER.md; inv_cluster.c): ":<random>", the part of the epoch every
	 * bucket's copy ends with */
	char epoch_sfx[24];
	size_t epoch_sfx_len;
	bool c1_del;            /* C1: DEL an INVAL's entry keys again, routed (test hook) */
	bool c_hold;            /* I4: hold a commit for its per-bucket INVALs (test hook) */
	bool v1_check;          /* V1: a stamp re-checks the probe's verdict (test hook) */
	bool c2_raise;          /* C2: raise a kept bucket's horizon and fmax to S (test hook) */
	bool pos_every;         /* V5: every bucket's position on every advance (test hook) */
	bool pos_min;           /* V5: flush <= the lowest position copy (test hook) */
	bool pos_backoff;       /* W3: a failed position write backs off (test hook) */
	bool open_watch;        /* V9b: watch slot migrations (inv_open.c; test hook) */
	int open_hold_ms;       /* its hold bound's base, 0 the default (test hook) */
	bool open_hold_fixed;   /* no backoff of the hold bound (R22-3's negative control) */
	bool open_hold_nocarry; /* a stream restart restarts the hold's clock (R26-2's control) */
	bool loss_record_nowait; /* a loss restarts before its record is acknowledged (R51-1's
	                          * control) */
	int rec_hold_ms;         /* the stream kept for a loss's record at most, 0 the default
	                          * (5 s; test hook) */
	struct inv_open *open;  /* V9b: the marks and the round in flight (a cluster) */
	uint64_t *kb;           /* the commit's keys sorted by bucket: bucket << 32 | offset */
	size_t kb_cap;
	struct inv_csync *csync; /* the cluster resynchronisation in progress */
	struct inv_cbuf *cbuf;   /* inv_c_send_keys' argument arrays (inv_cluster.c) */
	/* Review V2 (inv_retry.c): commands a node did not take, per node (its "host:port"
	 * when the failure was seen, "none" for a slot without a master), retried with a
	 * backoff instead of restarting the stream; their commits stay held in the ledger. */
	struct inv_rq *rq; /* RQ_NODES queues, allocated at the first failure */
	int nrq;
	int64_t rq_max_cmds;  /* per node; 0: no queue (restart, as before V2) */
	int64_t rq_max_bytes; /* per node */
	int64_t rq_bytes;     /* every queue's */
	bool rq_oldest_only;  /* G2's negative control: a slot's failure stops its whole node
	                       * (one probe, the oldest command), as before (test hook) */
	bool v9c_off;         /* V9c's negative control: a script refused "non local key"
	                       * restarts the stream, as before (test hook) */
	bool rq_unpaced;      /* the paced drain's negative control: a node back sends its
	                       * whole queue at once, as before (test hook) */
	bool rq_no_rid;       /* G5's negative control: a down node's first retry is its oldest
	                       * command, with no run_id check first, as before (test hook) */
	cs_inv_state state;

	/* replication connection */
	PGconn *conn;            /* once connected */
	cs_pgconn pc;            /* the host name lookup and the connect (pgconn.h) */
	cs_pgconn_lookup lookup; /* over the engine's resolver */
	step st;
	struct event ev;
	bool ev_added;
	uint64_t step_deadline_us;
	int attempt;
	struct event *retry, *tick;
	/* issue 16: the tick is one-shot, armed for the next deadline there is (inv_tick_rearm),
	 * not run every TICK_MS; it polls every TICK_MS only while work is outstanding */
	uint64_t tick_at_us; /* when it is armed for, 0 not armed */
	bool tick_polled;    /* every TICK_MS, as before issue 16 (a test's negative control) */
	bool c_deadlines;    /* a cluster's own deadlines arm the tick (off: a test's control) */
	uint64_t epoch; /* bumped on every restart: late Redis replies are ignored */
	cs_pgo_decoder *dec;
	bool slot_missing, slot_lost;
	bool slot_was_lost;      /* this setup found the slot lost (not merely missing) */
	bool gap_owed;           /* this setup created the slot: the sync flushes */
	cs_lsn_t slot_confirmed; /* the existing slot's confirmed_flush_lsn */
	cs_lsn_t xlogpos;        /* IDENTIFY_SYSTEM's WAL position */
	char sysid[32];          /* IDENTIFY_SYSTEM's system identifier */
	uint32_t tli;            /* IDENTIFY_SYSTEM's timeline */
	uint32_t stream_tli;     /* the timeline of the last stream (0: none yet) */
	bool stale_server;       /* this connection's server is on an old timeline: refused */
	char stale_recorded[64]; /* the newer "<sysid>:<tli>" recorded in Redis */
	/* Servers (host:port) refused as stale primaries: left out of a multi-host conninfo
	 * for a while, so libpq reaches the next host (target_session_attrs alone would pick
	 * the first writable one: the stale server again). */
	struct {
		char hostport[300];
		uint64_t until_us;
	} skip[8];
	cs_lsn_t consistent; /* CREATE_REPLICATION_SLOT's consistent point */
	cs_lsn_t sync_lsn;   /* the resynchronisation's fence LSN */
	uint64_t streaming_since_us;
	uint64_t redis_ok_us;  /* Redis last acknowledged one of this stream's writes */
	uint64_t last_recv_us; /* the last CopyData from the walsender (receive_timeout) */
	bool ever_synced;      /* this process has synchronised with an epoch before */
	uint64_t last_status_us, last_horizon_us;
	bool status_pending; /* could not queue a status message: retry */
	bool paused;         /* FIFO full (a cluster: or too many commands): not reading */
	bool pause_fifo;     /* the pause was the FIFO's (else the commands', V3) */
	/* Redis commands sent and not answered, plus those owed by them (a bump's GEN_SET
	 * fan-out, an INVAL's routed DELs: counted when the bump or INVAL is sent). A cluster
	 * stops reading the stream at cmds_limit (review V3), so at most cmds_limit plus one
	 * commit's commands are in flight. */
	int64_t cmds, cmds_limit; /* cmds_limit 0: none (a test's negative control) */

	/* Commits waiting for Redis and the confirmed position (I4), horizon samples, the
	 * min_lifetime debounce (ledger.h). min_lifetime: at most one table-level bump per
	 * query per min_lifetime. A bump that has to wait is recorded in Redis (<ns>:inv:deb)
	 * before its commit is confirmed, so it survives a crash and never holds back the
	 * confirmed position. */
	cs_ledger *ledger;

	/* positions */
	cs_lsn_t received;  /* highest LSN seen in the stream */
	cs_lsn_t lag_seen;  /* highest commit end LSN whose send and receive lags were
	                     * recorded: a commit the stream delivers again after a restart is
	                     * not sampled twice (its new send time would measure the restart) */
	bool first_start;   /* this setup created the slot on a first start (not a loss) */
	cs_lsn_t h_start;   /* the horizon's floor from the last sync (cs_ledger_set_floor) */
	cs_lsn_t pos_sent;  /* cs:inv:pos last raised to (a cluster: the lowest copy
	                     * acknowledged in every bucket, min(pos0_sent, posr_sent)) */
	bool pos_in_flight; /* the cs:inv:pos write (a cluster: bucket 0's copy) */
	/* a cluster (inv_cluster.c, review V5): bucket 0's copy follows every advance, the
	 * copies of buckets 1..255 once per status interval */
	cs_lsn_t pos0_sent; /* bucket 0's copy acknowledged at */
	cs_lsn_t posr_sent; /* every copy of buckets 1..255 acknowledged at */
	bool posr_in_flight;
	uint64_t posr_last_us; /* the last fan-out to buckets 1..255 started (0: at once) */
	/* review W3: after a failed position write (single, or bucket 0) or fan-out (buckets
	 * 1..255), the next waits cs_backoff_ms(fails, POS_RETRY_BASE_MS, POS_RETRY_MAX_MS) */
	int pos_fails, posr_fails;
	uint64_t pos_retry_us, posr_retry_us;

	/* the transaction being decoded */
	int64_t txn_commit_unix_us;
	cs_inv_key_hook *key_hook; /* cs_inv_set_key_hook */
	void *key_hook_priv;
	char *arena;
	size_t arena_len, arena_cap;
	uint32_t *kset; /* open addressing: arena offset + 1 */
	size_t kset_cap, kset_n;
	int *qkeys;     /* keys per query in this transaction */
	uint8_t *qbump; /* bit per cs_inv_reason: whole query to drop */
	char (*mfp)[17]; /* each query's cs_query_map_fingerprint (recorded: R36-1) */
	bool map_pending;         /* the stream's start record not acknowledged yet: not read */
	/* Review 41 R41-2's residue, reviews 48-49: the slot's confirmed position is read again
	 * once this stream holds the slot (inv_setup.c start_read), before the Redis
	 * synchronisation, which then rests on the position the stream really starts at */
	bool start_check;        /* [invalidator] start_position_check */
	bool slot_free_at_read;  /* ST_SLOT_QUERY found it held by nobody (or this setup made it) */
	bool stopping;           /* cs_inv_stopping: the engine frees its servers (review 48 R48-4) */
	cs_query_def start_q;
	uint64_t remap_warned_us; /* last re-assertion failure said */
	int nq;

	cs_inv_stats stats;
	uint64_t last_reconnect_log_us;

	/* slot health, checked through the engine's primary pool */
	cs_pgjob health_job;
	bool health_busy;
	uint64_t last_health_us;
	char wal_status[16];   /* reserved / extended / unreserved / lost / "" unknown */
	int64_t safe_wal_size; /* bytes until the slot is lost; -1 unknown or unlimited */
	cs_query_def health_q;
	const char *health_vals[1];
	int health_lens[1], health_fmts[1];
	cs_pg_params health_params;
};

/* A log line's shard: "invalidator: ..." without shards, "invalidator of shard s1: ..." with
 * them (two arguments for "invalidator%s%s: "). */
#define INV_LOG_SHARD(inv) ((inv)->shard_name[0] ? " of shard " : ""), (inv)->shard_name

/* A Redis write's context: the invalidator, the stream epoch it belongs to (a reply of an
 * older one is ignored), and the LSN it carries (cs:inv:pos, the horizon). */
typedef struct posctx {
	cs_inv *inv;
	uint64_t epoch;
	cs_lsn_t lsn;
} posctx;

void inv_conn_wait(cs_inv *inv, short what);
/* Arms the tick for the next deadline there is (issue 16): every TICK_MS while work is
 * outstanding (commands in flight, held commits, a position or status message owed, a pause,
 * Redis not ready), else the earliest of the step deadline, the next status message and
 * horizon, the receive timeout, a debounced bump, the slot health check, and on a cluster
 * the position copies, the retry queues and the watch of open slots (inv_c_pos_next_us,
 * inv_rq_next_us, inv_open_next_us). Called after anything that may start work or move a
 * deadline earlier. */
void inv_tick_rearm(cs_inv *inv);
/* A setup step starts: its deadline is STEP_TIMEOUT_MS from now (the tick is armed for it). */
void inv_step_deadline(cs_inv *inv);
void inv_restart(cs_inv *inv, const char *why, bool standby);
/* Redis acknowledged one of this stream's writes (redis_ok_us); streaming for STABLE_US, the
 * reconnect backoff resets (attempt 0). */
void inv_redis_ok(cs_inv *inv);
void inv_txn_reset(cs_inv *inv);
bool inv_epoch_error(const redisReply *reply);
/* A script on the node holding bucket b's keys (keyspace.h; 0 on a single Redis). Returns
 * as cs_rc_script. */
int inv_script(cs_inv *inv, uint32_t b, int script, cs_rc_cb *cb, void *priv, int nkeys, int argc,
        const char **argv, const size_t *lens) __attribute__((warn_unused_result));
void inv_publish_pos(cs_inv *inv);
/* A position write (or fan-out) ended: ok resets its backoff, a failure sets *retry_us
 * (review W3: every retry a backoff, bounded by POS_RETRY_MAX_MS). */
void inv_pos_backoff(cs_inv *inv, bool ok, int *fails, uint64_t *retry_us);
void inv_run_debounced(cs_inv *inv);
void inv_send_status(cs_inv *inv, bool reply);
void inv_stream_read(cs_inv *inv);
void inv_send_cmd(cs_inv *inv, step next, const char *sql);
bool inv_conninfo_without_skipped(
        cs_inv *inv, char *out_host, char *out_addr, char *out_port, size_t cap);
bool inv_setup_result(cs_inv *inv, PGresult *res);
void inv_setup_next(cs_inv *inv, step done);
/* START_REPLICATION answered: the slot's position read again, then the synchronisation, then
 * inv_streaming_begins (inv_setup.c) */
void inv_stream_held(cs_inv *inv);
void inv_streaming_begins(cs_inv *inv);
void inv_map_reassert(cs_inv *inv);

/* A key of the transaction being decoded, in inv->arena (8-byte aligned records). */
typedef struct keyrec {
	int query;
	uint32_t len;
	char canon[]; /* len bytes */
} keyrec;

static inline keyrec *rec_at(cs_inv *inv, uint32_t off)
{
	return (keyrec *)(void *)(inv->arena + off);
}

static inline size_t rec_size(const keyrec *r)
{
	return (sizeof(keyrec) + r->len + 7) & ~(size_t)7;
}

/* ---- Redis Cluster (inv_cluster.c) ---- */
/* How a command was sent from its retry queue (inv_retry.c, review G2). */
enum { RQ_SENT_NONE, RQ_SENT_NODE, RQ_SENT_SLOT, RQ_SENT_DRAIN };
typedef struct cmdctx {
	cs_inv *inv;
	uint64_t epoch;
	uint64_t seq; /* FIFO entry, or UINT64_MAX for none */
	int query;    /* generation bumps: which query */
	int reserve;  /* commands its success will send, counted in inv->cmds (V3) */
	bool counted; /* sent: 1 + reserve counted in inv->cmds until its reply */
	/* Review V2 (inv_retry.c): the command itself, kept for a retry (inv_cmd_make; argc 0:
	 * not kept, inv_cmd_new) */
	bool probe;          /* sent from a retry queue (sent_as says how): its reply goes to
	                      * inv_rq_ok or inv_rq_failed */
	int sent_as;         /* RQ_SENT_*: a node's probe, a slot's probe, or drained */
	int rq;              /* the retry queue it is in (or was sent from), -1 none */
	int owes;            /* the reserve it is sent with, again on every retry */
	struct cmdctx *next; /* in its retry queue */
	cs_rc_cb *cb;
	int script; /* -1: a plain command */
	uint16_t slot;
	int nkeys, argc;
	size_t size;   /* bytes of the allocation (the queues' byte bound) */
	size_t data[]; /* argc lengths, then the arguments' bytes */
} cmdctx;
cmdctx *inv_cmd_new(cs_inv *inv, uint64_t seq);
void inv_on_cmd_reply(cs_rc *r, redisReply *reply, void *priv);
/* c was sent (its callback will run): counts it and the `reserve` commands it owes. */
void inv_cmd_sent(cs_inv *inv, cmdctx *c, int reserve);
/* c's reply came: what it owed is no longer counted (sent now, each counting for itself). */
void inv_cmd_unreserve(cs_inv *inv, cmdctx *c);
/* Review V2 (inv_retry.c). A cluster command kept for a retry: script (-1: a plain
 * command) on slot, cb called with the context. NULL on OOM or too many arguments. */
cmdctx *inv_cmd_make(cs_inv *inv, uint64_t seq, int script, uint16_t slot, cs_rc_cb *cb, int nkeys,
        int argc, const char **argv, const size_t *lens);
/* Sends c (owing `owes` commands, V3); refused at once, it waits in its node's retry queue.
 * 0: sent or queued (c owned by the callback or the queue); -1: neither (queue off or
 * full): c freed, the stream restarted with `why`. */
int inv_cmd_go(cs_inv *inv, cmdctx *c, int owes, const char *why);
/* The slot of bucket b's keys (0 on a single Redis). */
uint16_t inv_bucket_slot(cs_inv *inv, uint32_t b);
/* inv_on_cmd_reply's failure of a kept command: true when c was queued for a retry (or the
 * queue overflowed: the stream restarted, c freed): the caller forgets c. */
bool inv_rq_failed(cs_inv *inv, cmdctx *c, const redisReply *reply);
/* A kept command was acknowledged: a node's probe puts the node up (its queue drains, paced,
 * from the next tick), a slot's probe ends the slot's wait. */
void inv_rq_ok(cs_inv *inv, cmdctx *c);
/* The tick: a node down whose backoff passed sends its oldest command (its probe); a node up
 * sends the probes of its waiting slots whose backoff passed, then drains the rest, at most
 * RQ_DRAIN_TICK commands and RQ_DRAIN_WINDOW in flight. */
void inv_rq_tick(cs_inv *inv);
/* When inv_rq_tick has work next (issue 16: the tick is armed for it): now while a queue
 * drains or has bookkeeping to do, a down node's or a waiting slot's backoff, a waiting slot's
 * warning; 0 none. A probe or a full window waits for its reply, which re-arms the tick. */
uint64_t inv_rq_next_us(const cs_inv *inv, uint64_t now);
/* Frees every queued command (a restart: the slot replays them). */
void inv_rq_clear(cs_inv *inv);
/* True when failed commands are queued for a retry (a cluster, queue not off). */
bool inv_rq_on(const cs_inv *inv);
void inv_rq_metrics(const cs_inv *inv, cs_metrics *m);
/* Stops reading the stream when the FIFO or (a cluster) the commands in flight are at their
 * bound; reads again below half of both. */
void inv_pause_update(cs_inv *inv);
/* The commit's keys (not under a whole-query bump), one INVAL per bucket and batch, each
 * held in the ledger for seq; false when the invalidator restarted. */
bool inv_c_send_keys(cs_inv *inv, uint64_t seq, cs_lsn_t end_lsn, bool *sent);
/* A generation bump of query q at lsn for commit seq (UINT64_MAX: none): on bucket 0, then
 * GEN_SET on every other bucket; counted with the GEN_SETs it owes, kept for a retry (review
 * V2). As inv_cmd_go: 0 sent or queued, -1 the stream restarted. */
int inv_c_send_bump(cs_inv *inv, int q, uint64_t seq, cs_lsn_t lsn, bool debounced);
/* The position: bucket 0's copy now, the other buckets' once per status interval (V5). */
void inv_c_publish_pos(cs_inv *inv, cs_lsn_t confirmed);
/* When inv_c_publish_pos has a write to start (issue 16: the tick is armed for it): bucket 0's
 * copy behind (now, or after its backoff), the other buckets' behind (once per status
 * interval, after their backoff); 0 none. One in flight: its end re-arms the tick. */
uint64_t inv_c_pos_next_us(const cs_inv *inv, uint64_t now);
void inv_c_publish_horizon(cs_inv *inv, cs_lsn_t horizon);
/* The resynchronisation (probe every bucket, stamp every bucket, finish on bucket 0). */
void inv_c_sync(cs_inv *inv, cs_lsn_t lsn);
void inv_c_sync_free(cs_inv *inv);
/* ---- Slot migrations (inv_open.c, review V9b) ---- */
/* Allocates inv->open (a cluster): 0, or -1 on OOM. */
int inv_open_new(cs_inv *inv);
void inv_open_free(cs_inv *inv);
/* The tick: starts a round once per status interval while streaming; drops one past its
 * timeout. */
void inv_open_tick(cs_inv *inv);
/* When inv_open_tick has work next (issue 16: the tick is armed for it): the next round (one
 * per status interval), the round in flight's timeout, the marks' read-back after its
 * backoff, the hold bound; 0 none (not watching, not streaming). */
uint64_t inv_open_next_us(const cs_inv *inv, uint64_t now);
/* The position reported to PostgreSQL as flushed never passes this (UINT64_MAX: not
 * watching). */
cs_lsn_t inv_open_safe(const cs_inv *inv);
/* A marked bucket's endpoint changed: the SYNC must flush. */
bool inv_open_loss(const cs_inv *inv);
/* A restart: the round in flight is dropped, the marks are read back at the next stream. */
void inv_open_restart(cs_inv *inv);
/* A SYNC flushed the namespace: every mark is retired (DELeted before the next round). */
void inv_open_flushed(cs_inv *inv);
/* Review 51 R51-1: a loss's record in bucket 0 (its DEL) sent again after its backoff, in any
 * state (a restart meanwhile does not end it); when that is due (0: none). */
void inv_open_rec_tick(cs_inv *inv, uint64_t now);
uint64_t inv_open_rec_next_us(const cs_inv *inv);
/* Shutting down: a record still owed is given up (logged); late replies are ignored. */
void inv_open_abandon(cs_inv *inv);
/* The SYNC is done: bookkeeping shared with the single-Redis path (status as
 * CS_SCRIPT_SYNC's), then the stream begins (it holds the slot already: inv_stream_held; with
 * start_position_check off, START_REPLICATION). */
void inv_sync_finish(cs_inv *inv, long long status, bool had_mark, const redisReply *deb);

#endif
