/* engine.h - the read-through engine: cache lookups, single-flight misses, routing to
 * replicas, LSN-fenced fills, generations, read-your-writes. One event loop, no blocking.
 *
 * The daemon's client connections (server.c) and library mode both drive the engine
 * through cs_engine_get. The engine owns the Redis connections and the PostgreSQL servers;
 * it never owns a client.
 *
 * Redis keys and channels: keyspace.h. */
#ifndef CS_ENGINE_H
#define CS_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "cs_proto.h"
#include "hist.h"
#include "metrics.h"

struct event_base;

typedef struct cs_engine cs_engine;

/* Result of a request. err == 0: meta and result (the pre-encoded result object) are valid
 * during the call only. err < 0: a CS_ERR_* code and a message. */
typedef void cs_engine_cb(void *priv, int err, const char *msg, const cs_meta *meta,
	const uint8_t *result, size_t len);

typedef struct cs_engine_stats {
	uint64_t requests;
	uint64_t errors[CS_ERR_MAX + 1];
	uint64_t hits, stale_hits, misses, coalesced;
	uint64_t fills, fill_refused_gen, fill_refused_fence, fill_refused_horizon, fill_errors;
	uint64_t fill_refused_qfence, fill_refused_epoch, epoch_invalid, epoch_changes;
	uint64_t gens_errors; /* generations polls refused or malformed */
	uint64_t fill_refused_eviction, negative_skipped;
	uint64_t not_cached_large, not_cached_primary, not_cached_key, negative_fills;
	uint64_t bypass_redis, bypass_requested, bypass_paused;
	uint64_t refresh_early, refresh_expired, refresh_revalidate, refresh_forced;
	uint64_t stale_if_error; /* stale served because the refresh failed (within max_stale) */
	uint64_t retries, primary_fallbacks;
	uint64_t promoted_reads; /* answers from a [replica] out of recovery (LSN 0): primary data */
	uint64_t server_reloads; /* servers started or retired by reloads */
	uint64_t ryw_cache, ryw_replica, ryw_primary, ryw_waits;
	uint64_t token_checks;    /* tokens past the primary's known position: re-checked */
	uint64_t token_refused;   /* ... and refused (FUTURE_LSN): the primary never wrote them */
	uint64_t ryw_other_shard; /* tokens of another shard than the key's: its primary read */
	uint64_t invalidations, gen_bumps;
	uint64_t def_bumps;   /* bumps recording this process's definition (start, reload) */
	uint64_t def_foreign; /* polls that found another process's definition in Redis */
	uint64_t unmapped;    /* polls that found the leader mapping another definition (or
	                       * none) of a query: it bypassed the cache (review 36 R36-1) */
	uint64_t map_covers;  /* bumps that covered a leader's new mapping record */
	uint64_t near_echo_lost;     /* near cache heartbeats without an echo (engine_near.c) */
	uint64_t near_hb_failed;     /* ... whose write Redis refused */
	uint64_t near_track_refused; /* CLIENT TRACKING refused */
	uint64_t flights; /* gauge: misses in flight */
	cs_hist hit_us, miss_us;
} cs_engine_stats;

/* Creates the engine on `base` from a loaded config (ownership of cfg passes to the engine)
 * and starts connecting to Redis and PostgreSQL. NULL with a message in err. */
cs_engine *cs_engine_new(struct event_base *base, cs_config *cfg, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Stops everything; pending requests are answered SHUTTING_DOWN first. Not from inside an
 * engine callback. */
void cs_engine_free(cs_engine *e);

/* Runs a GET or REFRESH (op) for a decoded request. Strings in req are copied as needed
 * before this returns. cb runs exactly once, possibly before cs_engine_get returns (for
 * errors found at once). */
void cs_engine_get(cs_engine *e, uint8_t op, const cs_get_req *req, cs_engine_cb *cb, void *priv);

/* n GETs (n <= CS_PROTO_MAX_MGET) as one batch: those the near cache cannot answer are
 * looked up in Redis with one MGET. cb runs exactly once per item with privs[i], possibly
 * before this returns; items complete in any order. */
void cs_engine_mget(cs_engine *e, const cs_get_req *reqs, uint32_t n, cs_engine_cb *cb,
	void *const *privs);

/* Admin INVALIDATE: one key (with params) or the whole query (generation bump).
 * cb(priv, err, msg, n): n = keys deleted or the new generation. */
typedef void cs_engine_inval_cb(void *priv, int err, const char *msg, uint64_t n);
void cs_engine_invalidate(cs_engine *e, const cs_inval_req *req, cs_engine_inval_cb *cb,
	void *priv);

/* Swaps in new query definitions (SIGHUP). Fails, keeping the old ones, when a
 * non-reloadable key changed (message in err). Ownership of cfg passes on success only. */
int cs_engine_reload(cs_engine *e, cs_config *cfg, char *err, size_t errlen);

/* The daemon's SIGHUP: like cs_engine_reload, but first every query whose SQL or parameters
 * are new is planned (EXPLAIN, parameters NULL, nothing executed) on an up replica (else the
 * primary); one that does not prepare refuses the whole reload, keeping the running
 * definitions. Returns -1 when refused at once (err says why; cfg stays the caller's), else
 * 0: cfg is the engine's and done(priv, result, err) runs exactly once, maybe before this
 * returns (result 0: applied; -1: refused, err says why). Servers that cannot be reached
 * leave the SQL unchecked (logged), as at startup. One at a time. */
typedef void cs_engine_reload_cb(void *priv, int result, const char *err);
int cs_engine_reload_checked(cs_engine *e, cs_config *cfg, cs_engine_reload_cb *done, void *priv,
	char *err, size_t errlen);

const cs_config *cs_engine_config(const cs_engine *e);
const cs_engine_stats *cs_engine_get_stats(const cs_engine *e);

/* Ready to serve: every PostgreSQL server checked at least once and a replica up (the
 * primary when no replica is configured), Redis connected, and every query's generation
 * known (until then requests bypass the cache).
 * Writes a reason into why when not. */
bool cs_engine_healthy(const cs_engine *e, char *why, size_t whylen);

/* Writes the Prometheus text of every engine metric into a malloc'd string (*out, caller
 * frees). Returns its length, or -1 on OOM. */
long cs_engine_metrics(const cs_engine *e, char **out);

/* Adds the engine's samples (and its invalidator's, when it has one) to m, so that a caller
 * with more samples (admin.c: server, process) writes every family once. */
void cs_engine_metrics_add(const cs_engine *e, cs_metrics *m);

/* Fills up to max STATS entries (static names). Returns the count. */
uint32_t cs_engine_stats_list(const cs_engine *e, cs_stat *out, uint32_t max);

/* Test-only, a negative control of SHARDS.md section 4: every shard's invalidator is made
 * again on the first shard's primary (each in its own keyspace, with its own slot): the
 * shards' entries are then invalidated by the first shard's WAL. Call right after
 * cs_engine_new, before the loop runs. 0, or -1 with a message. */
int cs_engine_test_inv_on_shard0(cs_engine *e, char *err, size_t errlen);

/* Test hook (the negative control of SHARDS.md step 3b (2)): on a Redis Cluster, every
 * master's pub/sub connection subscribes the first shard's generations channel alone and the
 * per-master epoch check reads the first shard's copies alone (as before that step). Call
 * right after cs_engine_new. 0, or -1 when not on a cluster. */
int cs_engine_test_cluster_shard0(cs_engine *e);
/* Test hook (review 13 L7), process-wide: the next n pub/sub connections to a cluster's masters
 * fail to be made, as on out of memory (each logged; such a master is tried again every 5 s).
 * Call before cs_engine_new to fail them at start. */
void cs_engine_test_psn_fail(int n);
/* Test-only, a negative control of SHARDS.md section 5: a read-your-writes token of another
 * shard than the key's is dropped (the request is read as if it had no token: from the
 * cache or a replica) instead of being sent to the key's shard's primary. */
void cs_engine_test_other_shard_plain(cs_engine *e);

/* Test-only, the negative control of the query definitions (keyspace.h <ns>:qd:<q>): Redis's
 * record of a query's definition is neither read nor written; a generation found in Redis is
 * used whatever definition filled it, and nothing is bumped at a start (as before the record
 * existed). Call right after cs_engine_new. */
void cs_engine_test_no_definitions(cs_engine *e);
/* Test hook, a negative control: the leader's record of its query mappings is ignored (a
 * query is used whatever the leader maps, as before review 36 R36-1). */
void cs_engine_test_no_query_map(cs_engine *e);

/* Test-only switch (config "fence = off" does the same for a whole deployment): fills
 * stop checking fences and the horizon. Exists so the race test can prove it can fail. */
void cs_engine_set_fence(cs_engine *e, bool on);

/* SHOW views (PROTOCOL.md 3.8): calls cb once per row of the view `what` ("queries",
 * "servers", "invalidator", "config"; the daemon adds "clients"). A nonzero return of cb
 * stops the walk and is returned. Unknown views return -CS_ERR_BAD_PARAMS before any row. */
/* ADMIN pause/resume of one query (this process; kept across reloads by name). *changed
 * says whether the state changed. -1 for an unknown query. */
int cs_engine_pause(cs_engine *e, const char *name, size_t len, bool pause, bool *changed);
/* ADMIN claim: where another process's definition of the query owns its cache in Redis
 * (this process bypasses the cache for it), this process's definition takes it over at the
 * next generations poll, with a new generation, as at a start. *changed: it was another's on
 * some shard. -1 for an unknown query. */
int cs_engine_claim(cs_engine *e, const char *name, size_t len, bool *changed);

typedef int cs_engine_show_cb(void *priv, const cs_show_cell *cells, uint32_t n);
int cs_engine_show(const cs_engine *e, const char *what, cs_engine_show_cb *cb, void *priv);

#endif
