/* engine_int.h - what the engine's files (engine*.c) share: its types, limits and internal
 * functions. Private to the engine: not installed, not included outside engine*.c (engine.h
 * is the API). Each function is documented where it is defined. */
#ifndef CS_ENGINE_INT_H
#define CS_ENGINE_INT_H

#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>

#include "encode.h"
#include "entry.h"
#include "fence.h"
#include "invalidator.h"
#include "keyspace.h"
#include "log.h"
#include "metrics.h"
#include "near.h"
#include "params.h"
#include "pgpool.h"
#include "rcluster.h"
#include "redis.h"
#include "resolve.h"
#include "textutil.h"
#include "util.h"
#include "verify.h"

#define TICK_MS		 5	/* housekeeping, while work waits (tick_arm) */
#define TOKEN_WAIT_MAX	 4096	/* tokens waiting for a fresh primary position (all shards) */
#define TOKEN_WAIT_MS	 1000	/* longest such wait: then the token is used unchecked */
#define GEN_POLL_MS	 1000	/* generations re-read even when pub/sub is quiet */
#define MAX_ATTEMPTS	 3	/* a miss tries at most this many servers */
#define MAX_REPLY	 (64u << 20) /* largest result served at all */
#define FLIGHT_BUCKETS	 4096
#define LEASE_POLL_MIN_MS 2	/* a miss-lease waiter re-reads the entry after 2, 4, 8 ... */
#define LEASE_POLL_MAX_MS 64	/* ... ms, at most this far apart (engine_fill.c) */
#define KEY_MAX		 CS_KEY_MAX

/* ---- Types ------------------------------------------------------------------------------ */

/* A query's generation in one shard's keyspace (SHARDS.md section 2: a gap or bump on one
 * shard retires that shard's entries only). */
typedef struct qgen {
	uint64_t gen;
	bool gen_known;
	bool pending_bump; /* a reload or resume changed it and the bump is not in Redis yet */
	bool bump_inflight; /* a bump sent, not answered: owed still, should a reload come */
	/* Redis's record of the definition the generation answers (keyspace.h <ns>:qd:<q>)
	 * is not this process's: since the start or the reload that made this table, a
	 * mismatch is taken over with a bump (def_claim); after that, another process's
	 * definition owns the query and this one bypasses the cache for it (def_foreign) */
	bool def_claim;
	bool def_foreign;
	/* resumed while def_foreign: if a poll finds the query's definition this one's after
	 * all (the flag lags Redis by a poll), it is bumped before the cache is used, as a
	 * resume of a query it owns (review 45 R45-3) */
	bool resume_owed;
	/* the leader's record of its mapping of the query (keyspace.h <ns>:inv:qmap) is not
	 * this definition's: the stream's changes are not decoded into its keys, so the query
	 * bypasses the cache here until it is (review 36 R36-1); set by each poll */
	bool unmapped;
} qgen;

typedef struct qstate {
	const cs_query_def *def;
	int index;
	char fp[17];	   /* query_fingerprint of def: 16 hex digits */
	char mfp[17];	   /* query_map_fingerprint of def: what the leader must map */
	bool paused;	   /* ADMIN pause: served from PostgreSQL, nothing read from or stored in
			    * Redis, until resumed; this process only, kept across reloads */
	/* the verifier sampler walks the query's entries of each shard k with its own cursor
	 * (review 31 R31-1, review 34 R34-3), on the node of scan_slot[k] (a cluster; 0 on
	 * one Redis) */
	unsigned long long scan_cursor[CS_MAX_SHARDS];
	uint16_t scan_slot[CS_MAX_SHARDS];
	uint64_t hits, stale_hits, misses, fills, refresh_early, refresh_expired,
		refresh_revalidate;
	/* per shard, sg[k] for e->sh[k] (k < e->nsh): inline, so a reload's copy of the qstate
	 * carries the generations over, and the hit path reads sg[0] beside the fields above */
	qgen sg[CS_MAX_SHARDS];
} qstate;
/* SHARDS.md's "1 KiB per query" (review 19 R19-3) */
_Static_assert(sizeof(qgen) == 16, "qgen grew: qstate holds CS_MAX_SHARDS of them");

/* Query definitions of one config generation; in-flight work keeps a reference so a
 * SIGHUP reload never frees a definition under a running query. */
typedef struct qtable {
	int refs;
	cs_config *cfg;
	qstate *qs;
	int nq;
	int *slots; /* open addressing by name: slot -> index + 1 */
	int nslots;
} qtable;

typedef struct flight flight;

/* A set of server ids: the servers a miss has tried. Every server gets the lowest id no
 * other live or retiring server holds (engine.c servers_reload), so ids stay put across
 * reloads; an id freed by a retired server and reused by a new one makes a flight's set
 * approximate, never out of bounds. Sized for every server a config can have
 * (CS_MAX_REPLICAS + a primary per shard) plus as many retiring after a reload. */
#define MAX_SERVERS 640
_Static_assert(MAX_SERVERS >= 2 * (CS_MAX_REPLICAS + CS_MAX_SHARDS),
        "the tried set must hold every server");
_Static_assert(MAX_SERVERS % 64 == 0, "srvset holds whole words");
typedef struct srvset {
	uint64_t w[MAX_SERVERS / 64];
} srvset;

/* One client request (GET or REFRESH) until its callback has run. */
typedef struct greq {
	cs_engine *e;
	cs_engine_cb *cb;
	void *priv;
	uint8_t op, tier;
	bool bypass;
	/* a token of another shard than the key's (SHARDS.md section 5): only the key's
	 * shard's primary answers, never the cache or a replica; min_lsn is then 0 */
	bool primary_only;
	uint64_t min_lsn;
	uint64_t start_us;
	uint8_t *stale;	   /* an expired entry to serve if the refresh fails (stale-if-error) */
	size_t stale_len;
	int64_t stale_until_ms; /* filled + max_stale: never served past it */
	struct greq *next; /* waiter chain of a flight */
} greq;

static inline void greq_free(greq *r)
{
	free(r->stale);
	free(r);
}

/* A miss in progress: one database query shared by every request for the same key. */
struct flight {
	flight *hnext;
	cs_engine *e;
	qtable *qt;
	qstate *qs;
	uint64_t hash;
	uint64_t min_lsn;
	uint64_t gen;
	uint16_t shard; /* e->sh[shard]: the key's shard, its servers and keyspace */
	uint8_t tier;
	bool store;	   /* fill Redis with the result */
	bool background;   /* refresh with nobody waiting */
	bool leased;	   /* holds the key's cross-process lease (refresh or miss): released
			    * (DEL) when the flight is freed, after its fill is acknowledged */
	/* The miss lease (engine_fill.c): where a flight is before it queries. */
	enum {
		LEASE_NONE,	/* not waiting on the lease: querying, or never asked */
		LEASE_ASKING,	/* SET NX sent: the reply decides holder or waiter */
		LEASE_SLEEPING, /* a waiter between two re-reads: lease_ev armed, on e->lease_head */
		LEASE_POLLING,	/* a waiter's re-read (MGET entry, lease) sent */
	} lease_state;
	uint32_t lease_delay_ms;  /* the next backoff */
	uint64_t lease_until_us;  /* the waiter queries itself past this */
	flight *lprev, *lnext;	  /* e->lease_head list, while LEASE_SLEEPING */
	struct event lease_ev;	  /* the backoff timer; pending only while LEASE_SLEEPING */
	int refresh_cause; /* for stats: 0 miss, 1 early, 2 revalidate */
	int attempts;
	srvset tried;	   /* server indices already tried */
	bool overloaded;   /* an eligible replica refused for a full queue */
	bool primary_only; /* its request's greq.primary_only: the shard's primary only */
	uint64_t start_us, deadline_us, ryw_deadline_us;
	bool in_ryw;
	flight *rnext; /* read-your-writes wait list */
	greq *waiters;
	cs_pgjob job;
	cs_pg_params *pgp;
	size_t keylen, canon_off;
	/* After the database answered: the result, kept (with the flight findable) until the
	 * fill is acknowledged, so requests arriving meanwhile share it instead of missing. */
	bool answered, filling;
	cs_meta meta;
	uint8_t *result;
	size_t result_len;
	greq *held; /* waiters that asked for the fill's outcome (REFRESH, batch tier) */
	char key[]; /* "<ns>:e:<q>:<g>:<p>" */
};

/* The primary's LSN over time, sampled at each health round: a replica whose replay LSN
 * is R lags by (now - the time the primary first went past R). Accurate to one health
 * interval, and unlike pg_last_xact_replay_timestamp() it is not fooled by an idle primary
 * or by WAL without commits. */
#define LSN_HISTORY 1024
typedef struct lsn_sample {
	uint64_t us;
	cs_lsn_t lsn;
} lsn_sample;

/* One PostgreSQL shard (SHARDS.md): what the engine holds once per shard, because a shard
 * is a namespace of its own for everything that carries an LSN (SHARDS.md section 1: LSNs
 * of two shards are incomparable). Without [shard NAME] sections there is one, e->sh[0],
 * the implicit shard: its keyspace is the unsharded one, byte for byte, and its primary is
 * [primary]. Every use below goes through a shard: a request's (lookup.shard,
 * flight.shard), a server's, or each in turn. */
typedef struct shard {
	cs_keyspace ks; /* "<ns>" (implicit shard) or "<ns>@<shard>" (cs_ks_init_shard) */
	/* Redis Cluster (ks.cluster; CLUSTER.md): the slot of every bucket's hash tag, so a hit
	 * finds its slot without a CRC16 (key_slot); all 0 on a single Redis. Per shard:
	 * {<ns>@<s>:<b>} hashes to other slots than {<ns>:<b>}. */
	uint16_t bslot[CS_KS_BUCKETS];
	/* The shard's epoch (keyspace.h) this process has synchronised the shard's generations
	 * with; "" while unknown or Redis lost data (then, with fences on, the cache is
	 * bypassed for the shard: nothing is served from it or stored). */
	char epoch[96];
	size_t epoch_len;
	bool gens_busy;       /* a generations poll of the shard is in flight: at most one */
	bool gens_again;      /* a poll was wanted while one was in flight: another after it */
	cs_lsn_t bump_floor;  /* the least query-level fence of a bump: a primary position a
			       * checked reload read (review 34 R34-1), a leader's mapping
			       * record's start (review 36 R36-1) */
	bool qmap_seen;       /* a poll found a leader's mapping record ("@"): from then on
	                       * the record decides (engine_gen.c map_applies) */
	uint32_t gen_msgs;    /* generation messages of the shard heard that raised one: a
	                       * poll answer older than one of them is read again */
	uint32_t gens_seq;    /* bumped when its generations stop being trusted: a poll sent
			       * before then proves nothing after (review 32 R32-3) */
	/* The per-master loss check of the shard's epoch copies (engine_cluster_epoch.c) */
	bool cepoch_busy; /* a round is in flight: at most one per shard */
	bool cepoch_lost; /* a master's copy names another run: the shard's epoch stays unknown */
	cs_pgserver *primary; /* in e->servers too; NULL without one (no [primary]) */
	/* The primary's LSN over time (lag_behind) and its timeline */
	lsn_sample hist[LSN_HISTORY];
	int hist_head, hist_len;
	uint32_t max_tli; /* the highest primary timeline seen: never lowered */
	bool stale_primary_logged;
	/* Requests whose read-your-writes token is beyond the primary's last known position,
	 * waiting for a fresh one (token_park); every shard's together bounded by TOKEN_WAIT_MAX
	 * (e->ntoken). */
	struct lookup *token_head;
	uint64_t primary_rounds; /* monitor rounds of the primary that found it up */
	/* The shard's invalidator, when this process runs them (SHARDS.md section 4: one per
	 * shard, on its primary, in its keyspace), else NULL. */
	cs_inv *inv;
	/* Requests per shard (SHARDS.md section 6), counted only when sharded (SHARD_COUNT):
	 * routed (MGET items each), cache hits, stale hits, misses. */
	uint64_t requests, hits, stale_hits, misses;
} shard;

/* Shard k's request counter `field`, only when sharded: the unsharded hit path pays one
 * compare (e->sharded), and its /metrics has no per-shard series. */
#define SHARD_COUNT(e, k, field)                                                                   \
	do {                                                                                       \
		if (__builtin_expect((e)->sharded, 0))                                             \
			(e)->sh[(k)].field++;                                                      \
	} while (0)

/* The verifier sampler (fence.c's claim, checked live): one entry per verify_interval. */
typedef struct sampler {
	struct event *timer, *poll;
	bool busy;
	int qnext;
	qtable *qt;
	qstate *qs;
	uint16_t shard; /* e->sh[shard]: the sample's shard (engine_sampler.c, round-robin) */
	char key[KEY_MAX];
	size_t keylen;
	size_t prefix_len; /* of key: "<ns>:e:<q>:<gen>:", before the canonical parameters */
	uint8_t *entry;
	size_t entry_len;
	uint8_t *fresh; /* the primary's result */
	size_t fresh_len;
	cs_pg_params *pgp;
	cs_pgjob job, lsn_job;
	cs_query_def lsn_q;
	cs_pg_params no_params;
	cs_lsn_t lsn_after;
	uint64_t wait_until_us;
	uint64_t checked, ok, stale, skipped;
	uint64_t skipped_by[CS_VERIFY_SKIPS]; /* index: outcome - CS_VERIFY_GONE */
} sampler;

/* Negative entries' memory share ([cachesvc] negative_share): bytes this process stored,
 * bucketed by the slot their entry expires in (rounded up), so the bytes still possibly
 * alive in Redis are the buckets from the current slot on. No Redis round trip. */
#define NEG_SLOTS 256
typedef struct negbudget {
	int64_t slot_ms; /* 0 until the first negative fill */
	int64_t sid[NEG_SLOTS];
	uint64_t bytes[NEG_SLOTS];
} negbudget;

/* The commit time of a key this process's invalidator sent (engine_near.c): a direct-mapped
 * table, newest wins. */
#define NEAR_COMMITS 4096
typedef struct near_commit {
	uint64_t hash; /* of "<q>\0<p>"; 0: empty */
	int64_t commit_unix_us;
} near_commit;

/* Cluster mode (engine_near.c, "On a cluster"): one pub/sub connection per master of the
 * slot map, subscribed to the generations channel and, with a tracked near cache, to
 * __redis__:invalidate; that master's data connection is tracked with REDIRECT to it (Redis
 * tracks per node). Freed once it left the map and no callback of its data connection
 * holds it (refs). */
typedef struct psnode {
	struct cs_engine *e;
	cs_redis *ps;	 /* this master's pub/sub connection (NULL once dead) */
	cs_redis *data;	 /* the master's data connection (cs_rc_node): identifies it */
	char addr[CS_RC_HOST_MAX + 8];
	bool dead;	 /* left the map */
	int refs;	 /* callbacks pending on the data connection with this as priv */
	bool subscribed; /* __redis__:invalidate confirmed */
	bool busy;	 /* CLIENT TRACKING in flight */
	bool tracked;	 /* ... answered OK on the current data connection */
	bool proven;	 /* a heartbeat of this session echoed since the last near_off */
	int64_t redirect;     /* the pub/sub connection id CLIENT TRACKING named */
	uint64_t seq;	      /* heartbeat sessions: names the key */
	uint64_t hb_sent_us;  /* a heartbeat waits for its echo since; 0: none */
	uint32_t hbk;	      /* the heartbeat key's tag {<ns>:n<hbk>}: a slot this node owns */
	char hb[CS_NAME_MAX]; /* the heartbeat key in flight (hb_sent_us), its echo's name */
	size_t hbl;
	uint64_t echo_us;     /* the last echo (0: none since the last near_off) */
	uint64_t gens_sub;    /* bit k: shard k's generations channel's subscription confirmed */
	uint64_t echoes;      /* heartbeats echoed (metrics, per node) */
	uint64_t echo_lost;   /* heartbeats without an echo in time */
	struct psnode *next_dead;
} psnode;
_Static_assert(CS_MAX_SHARDS <= 64, "psnode.gens_sub holds a bit per shard");

struct cs_engine {
	struct event_base *base;
	negbudget neg;
	sampler smp;
	qtable *qt;
	/* The cache connection: every data-path command goes through cs_rc_cmd / cs_rc_script
	 * with its key's slot (CLUSTER.md section 5 step 3b). Single mode: the slot is ignored
	 * and cs_rc passes straight through to its one cs_redis; what belongs to the connection
	 * (the near cache's tracking) takes that cs_redis: cache_conn(). Cluster mode
	 * ([redis] cluster = on): routed by slot to the masters; the near cache tracks each
	 * master's connection through that master's pub/sub connection (psn). */
	cs_rc *redis;
	bool repair_on; /* a fill refused for a bucket behind repairs it (CLUSTER.md (e')) */
	uint32_t repairs_inflight; /* bounded by REPAIRS_MAX */
	struct {
		uint64_t repairs;	/* buckets repaired: GEN_SET from bucket 0's generation */
		uint64_t repair_errors; /* repairs that failed or were not sent */
		uint64_t fanouts;	/* GEN_SET fan-outs of this process's bumps */
		uint64_t fanout_errors; /* GEN_SETs of those that failed (repaired by fills) */
		uint64_t mget_parts;	/* MGETs sent for client MGETs, one per slot */
	} cl;
	cs_redis *pubsub;      /* generations channel, near cache invalidations (single) */
	/* cluster: one pub/sub connection per master, in cs_rc's node order (psnode) */
	psnode *psn[CS_RC_MAX_NODES];
	int npsn;
	psnode *psn_dead;	  /* left the map, freed once refs is 0 */
	bool ps_client_id;	  /* the pub/sub connections learn their CLIENT ID (near on) */
	bool ps_track;		  /* ... and subscribe to __redis__:invalidate (tracked) */
	int64_t ps_timeout_ms;
	uint64_t near_map_sum;  /* the slot map's owners as last seen (a change flushes) */
	uint64_t psn_retry_us;  /* the last retry of a master's missing pub/sub connection */
	uint64_t psn_warned_us; /* the last error about one that could not be made */
	uint32_t *hbk_of_slot;  /* cluster near: a k whose tag {<ns>:n<k>} hashes to each slot */
	/* cluster near: each node index's highest slot (-1: none), for the map version
	 * psn_top_ver + 1 (0: not made) and psn_top_nodes nodes (review 13 L2, L6) */
	int32_t psn_top[CS_RC_MAX_NODES];
	uint64_t psn_top_ver;
	int psn_top_nodes;
	bool near_resend_check; /* cluster_near_resend_check (E1): a resent read is not stored */
	bool near_map_refresh;  /* cluster_near_refresh (N3): the slot map asked every heartbeat */
	char near_untracked_node[CS_RC_HOST_MAX + 8]; /* N6's negative control: "" none */
	uint64_t near_resent;   /* watched reads cs_rc sent again: not stored (E1) */
	cs_pgserver **servers;  /* replicas first, then each shard's primary (if any) */
	int *srv_id;            /* servers[i]'s id in tried sets */
	int *srv_shard;         /* servers[i]'s shard (e->sh[...]) */
	int nservers;
	/* Servers a reload removed or changed: no new work; freed once idle or past their
	 * deadline (on_tick). */
	cs_pgserver **retiring;
	int *retiring_id;
	int *retiring_shard;
	uint64_t *retiring_until_us;
	int nretiring;
	cs_resolver *resolver; /* host names, for every connection of the engine (resolve.h) */
	struct event *tick, *gen_timer;
	flight *buckets[FLIGHT_BUCKETS];
	flight *ryw_head;
	struct ryw_cursor *ryw_cursors; /* walks of the ryw list in progress (see ryw_unlink) */
	bool fence_on;
	bool stopping; /* cs_engine_free runs: no retries, everything answers SHUTTING_DOWN */
	struct reload_check *rchk; /* a reload whose new SQL is being checked on a server */
	cs_engine_stats stats;
	cs_buf scratch;
	/* The shards (SHARDS.md): 1 <= nsh <= CS_MAX_SHARDS; sh[0] is the implicit shard
	 * without [shard] sections, else sh[k] is cfg->shards[k]. The daemon serves sharded
	 * configs (step 4); library mode and the verifier still refuse them. */
	shard *sh;
	int nsh;
	bool sharded; /* [shard] sections exist (even one): every key is routed */
	bool test_other_plain; /* cs_engine_test_other_shard_plain: the negative control */
	int ntoken; /* lookups parked in every shard's token queue: at most TOKEN_WAIT_MAX */
	/* The per-master loss check (engine_cluster_epoch.c, CLUSTER.md C5; per shard: shard's
	 * cepoch_busy, cepoch_lost) */
	bool cepoch_on; /* [redis] cluster_epoch_check */
	/* Test hook (cs_engine_test_cluster_shard0): on a cluster, the masters' pub/sub
	 * subscribes and the per-master epoch check reads only the first shard's (as before
	 * SHARDS.md step 3b (2)) */
	bool cl_shard0_only;
	/* The near cache (near.h) and its coherence (engine_near.c); near is NULL when off. */
	cs_near *near;
	struct event *near_reclaim; /* frees a flushed near cache a budget per loop pass */
	bool near_subscribed;	  /* the pub/sub connection confirmed __redis__:invalidate */
	bool near_untracked;	  /* near_cache_tracking = false (a negative control) */
	bool near_track_busy;	  /* a CLIENT TRACKING is in flight */
	bool near_tracked;	  /* ... answered OK: on once this session's heartbeat echoes */
	uint64_t near_track_seq;  /* tracking sessions: names the heartbeat key */
	uint64_t near_warned_us;  /* last rate-limited warning */
	uint64_t gens_warned_us;  /* last warning of a failed generations poll */
	uint64_t def_warned_us;   /* last warning of a query under another definition */
	bool test_no_defs;        /* cs_engine_test_no_definitions: the negative control */
	bool test_no_qmap;        /* cs_engine_test_no_query_map: the negative control */
	uint64_t map_warned_us;   /* last warning of a query the leader does not map */
	uint64_t bump_wait_warned_us; /* last warning of a bump waiting for the primary */
	int64_t near_redirect;	  /* the pub/sub connection id it named */
	uint64_t near_hb_sent_us; /* a heartbeat waits for its echo since; 0: none */
	uint64_t near_echo_us;	  /* the last echo of this session's heartbeat; 0: none */
	near_commit near_commits[NEAR_COMMITS];
	cs_hist near_stale_us;	  /* commit -> near entry dropped */
	flight *lease_head; /* miss-lease waiters sleeping between two re-reads */
	struct {
		uint64_t acquired;    /* misses that took the lease and queried */
		uint64_t waited;      /* misses that found it taken and waited */
		uint64_t served;      /* ... and were served the holder's fill from the cache */
		uint64_t gone;	      /* ... saw it released with no usable entry (or the cache
				       * unfit: generation moved, epoch lost): queried */
		uint64_t timeouts;    /* ... waited the whole bound: queried */
		uint64_t unavailable; /* Redis could not be asked: queried without a lease */
	} lease;
};

typedef struct fillctx {
	cs_engine *e;
	qtable *qt;
	qstate *qs;
	int shard; /* the bump's shard (e->sh[shard], qs->sg[shard]) */
} fillctx;

/* A request's parameters, copied out of the frame so they outlive it. */
typedef struct lookup {
	cs_engine *e;
	greq *r; /* NULL for a background refresh */
	int cause;
	qtable *qt;
	qstate *qs;
	uint64_t gen;
	uint16_t shard; /* e->sh[shard]: the request's shard (key, servers, token) */
	size_t keylen, canon_off;
	uint32_t nparams;
	cs_value params[CS_PROTO_MAX_PARAMS];
	char *strs;
	/* parked while its read-your-writes token is checked (token_park) */
	struct lookup *tnext;
	uint8_t op;
	bool cacheable;
	uint64_t trounds; /* e->primary_rounds when parked */
	uint64_t tuntil_us;
	bool watched; /* the near cache watches this lookup's GET (nt) */
	cs_near_ticket nt;
	char key[KEY_MAX];
} lookup;

/* ---- Functions shared between the engine's files ----------------------------------- */

/* engine_read.c */
uint64_t hash_bytes(const void *p, size_t n);
qtable *qtable_new(cs_config *cfg);
void qtable_unref(qtable *t);
qstate *qtable_find(qtable *t, const char *name, size_t len);
void greq_error(greq *r, int err, const char *msg);
cs_pgserver *route_replica(
        cs_engine *e, const shard *sh, int tier, uint64_t min_lsn, const srvset *tried);
flight *flight_find(cs_engine *e, const char *key, size_t keylen, uint64_t hash, uint64_t min_lsn,
        const cs_query_def *def);
void ryw_walk(cs_engine *e, void (*fn)(cs_engine *e, flight *f, uint64_t now), uint64_t now);
void flight_free(flight *f);
void flight_fail(flight *f, int err, const char *msg);
void flight_dispatch(flight *f);
void lookup_free(lookup *l);
void token_recheck(cs_engine *e, shard *sh, uint64_t now, bool expire_only);

/* engine_fill.c */
void flight_job_done(
        cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg, bool retryable);
void miss(cs_engine *e, int shard_ix, qstate *qs, const char *key, size_t keylen, size_t canon_off,
        uint64_t gen, bool store, greq *r, uint8_t tier, uint64_t min_lsn, const cs_value *params,
        uint32_t nparams, int cause);
void lease_fail_all(cs_engine *e);
void bucket_repair(cs_engine *e, shard *sh, const char *q, uint32_t b);

/* engine_gen.c */
void load_gens(cs_engine *e);
void load_shard_gens(cs_engine *e, int k);
void gen_heard(cs_engine *e, qstate *qs, int k, uint64_t gen);
void gens_unknown(cs_engine *e);
void gens_unknown_shard(cs_engine *e, int k);
int gen_channel_shard(const cs_engine *e, const redisReply *ch);
void cluster_epoch_check(cs_engine *e); /* engine_cluster_epoch.c */
void on_gen_message(cs_redis *rd, redisReply *reply, void *priv);
void on_pubsub_state(cs_redis *rd, bool up, void *priv);
void on_cache_state(cs_redis *rd, bool up, void *priv);
void on_gen_timer(evutil_socket_t fd, short what, void *arg);
/* A cluster bump's outcome: err 0 and the new generation (its GEN_SET fan-out answered,
 * failures counted), or -1 and a message (bucket 0's bump failed). */
typedef void cluster_bump_cb(cs_engine *e, void *priv, int err, const char *msg, uint64_t gen);
/* C_GEN_BUMP of query q on shard sh's bucket 0 with query fence lsnhex, then GEN_SET on its
 * buckets 1..255. 0 (cb runs once) or -1 (not sent; cb never runs). */
int cluster_bump(cs_engine *e, const shard *sh, const char *q, const char *lsnhex,
        const char *fp, const char *cover, cluster_bump_cb *cb, void *priv);

/* engine_housekeeping.c */
void on_server_notify(cs_pgserver *s, void *priv);
void on_tick(evutil_socket_t fd, short what, void *arg);
/* Arms the tick (TICK_MS) unless it is armed: called whenever its work appears (a
 * read-your-writes flight or token waiting, a retiring server); it re-arms itself while
 * work remains. */
void tick_arm(cs_engine *e);

/* engine_sampler.c */
int sampler_start(cs_engine *e, int64_t interval_ms);
void sampler_stop(cs_engine *e);

/* engine.c */
bool query_same(const cs_query_def *a, const cs_query_def *b);

/* engine_near.c */
int near_setup(cs_engine *e, const cs_config *cfg, char *err, size_t errlen);
/* The near cache's key hook on an invalidator (its staleness samples), when tracked. */
void near_inv_hook(cs_engine *e, cs_inv *inv);
void near_flush(cs_engine *e); /* drops every entry; memory freed over later loop passes */
void near_track_start(cs_engine *e);
bool near_caching_yes(cs_engine *e, uint16_t slot);
void near_heartbeat(cs_engine *e);
void near_conn_state(cs_engine *e, cs_redis *rd, bool pubsub, bool up);
bool near_resent(const cs_engine *e, const cs_rc *rc);
int psn_setup(cs_engine *e);
void psn_on_nodes(cs_rc *rc, void *priv);
void psn_free_all(cs_engine *e, bool mem);
void on_tracking_message(cs_redis *rd, redisReply *reply, void *priv);
void bump_generation(cs_engine *e, qstate *qs, int shard_ix);
/* The leader's mapping record decides whether qs is usable on shard k (engine_gen.c). */
bool map_applies(const cs_engine *e, const qstate *qs, int k);
/* The same, covering the leader's mapping record `cover` ("<map fingerprint> <lsn>": fence.h
 * CS_SCRIPT_DEF_BUMP); NULL: none. */
void bump_generation_cover(cs_engine *e, qstate *qs, int shard_ix, const char *cover);

#define REPAIRS_MAX 64 /* bucket repairs in flight at most (engine_fill.c) */

/* The bucket of a key built by shard sh's keyspace ("{<ns>:<b>}:..." on a cluster, <ns> the
 * shard's; 0 on a single Redis), read back from its hash tag. */
static inline uint32_t key_bucket(const shard *sh, const char *key, size_t len)
{
	if (!sh->ks.cluster || len < sh->ks.nslen + 3)
		return 0;
	uint32_t b = 0;
	for (size_t i = sh->ks.nslen + 2; i < len && key[i] >= '0' && key[i] <= '9'; i++)
		b = b * 10 + (uint32_t)(key[i] - '0');
	return b % CS_KS_BUCKETS;
}

/* The slot of a key of shard sh's keyspace: its bucket's, from the shard's table (no CRC16). */
static inline uint16_t key_slot(const shard *sh, const char *key, size_t len)
{
	return sh->ks.cluster ? sh->bslot[key_bucket(sh, key, len)] : 0;
}

/* Whether s is a shard's primary (e->servers holds the replicas, then the primaries). */
static inline bool is_primary(const cs_engine *e, const cs_pgserver *s)
{
	for (int k = 0; k < e->nsh; k++)
		if (e->sh[k].primary == s)
			return true;
	return false;
}

/* The shard of server s (e->sh[...]), live or retiring: a replica's ([replica] shard =), a
 * primary's own. Callers that hold the server's index read e->srv_shard[i] instead. */
static inline int server_shard(const cs_engine *e, const cs_pgserver *s)
{
	if (e->nsh == 1)
		return 0;
	for (int i = 0; i < e->nservers; i++)
		if (e->servers[i] == s)
			return e->srv_shard[i];
	for (int i = 0; i < e->nretiring; i++)
		if (e->retiring[i] == s)
			return e->retiring_shard[i];
	return 0; /* not the engine's: never asked */
}

/* The cache connection's one cs_redis (single mode), for what belongs to the connection
 * rather than to a key: CLIENT TRACKING and the near cache's heartbeat, stats. On a cluster
 * the near cache uses each master's own (psnode.data). */
static inline cs_redis *cache_conn(const cs_engine *e)
{
	return cs_rc_node(e->redis, 0);
}

#endif
