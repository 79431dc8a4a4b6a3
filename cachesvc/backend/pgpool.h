/* pgpool.h - PostgreSQL servers (replicas and the primary) and their pools of non-blocking
 * libpq connections, driven by the event loop.
 *
 * Each server has up to pool_size query connections, opened lazily with
 * PQconnectStartParams/PQconnectPoll and kept in pipeline mode, a bounded FIFO of waiting
 * jobs, and one monitor connection that checks health and measures replication lag every
 * health interval (faster while read-your-writes requests wait for a replay LSN). A server
 * whose connections fail is banned and retried with exponential backoff.
 *
 * A job runs one named query: prepared once per connection under a name derived from its
 * definition (a 128-bit hash of the SQL text and parameter types, never its position in
 * the config, so a job queued across a reload still runs exactly the SQL it carries; at
 * most 256 per connection, the least recently used DEALLOCATEd), then in one pipeline
 * EXECUTE <replay or current LSN>, EXECUTE, SYNC. The LSN read is a separate statement
 * before the query, so on a replica the data is at least as new as it (REFERENCE.md 6); it
 * is prepared once per connection too (and again after a reload's DEALLOCATE ALL).
 *
 * Nothing here blocks. Server objects live as long as the pool set; jobs are owned by the
 * caller and must stay allocated until their callback has run. */
#ifndef CS_PGPOOL_H
#define CS_PGPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"
#include "lsn.h"
#include "params.h"

struct event_base;

typedef struct cs_pgserver cs_pgserver;
typedef struct cs_pgjob cs_pgjob;

/* Runs exactly once per submitted job. On success err == 0 and `res` is the data result
 * (PGRES_TUPLES_OK; owned by the pool, valid only during the call) and `lsn` the LSN read
 * before the query (replica: pg_last_wal_replay_lsn; primary: pg_current_wal_lsn; 0 when
 * unknown). On failure res == NULL, err is a negative CS_ERR_* code and msg says why
 * (never a password). `retryable` is true when the failure was the server's or the
 * connection's, not the query's (another server may succeed). */
typedef void cs_pgjob_cb(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err,
	const char *msg, bool retryable);

struct cs_pgjob {
	/* set by the caller */
	int qindex;		    /* >= 0: a named statement, prepared once per connection
				     * (named after q's SQL and types, not after qindex);
				     * < 0: a one-off statement (prepared unnamed each time) */
	const cs_query_def *q;	    /* must outlive the job */
	const cs_pg_params *params; /* must outlive the job */
	uint64_t deadline_us;	    /* monotonic; queue wait + execution must end by then */
	cs_pgjob_cb *cb;
	void *priv;
	/* private to the pool */
	cs_pgjob *next;
	cs_pgserver *srv;
	uint64_t enqueued_us;
	int conn_retries; /* runs again after its connection broke (at most 1 per submit) */
};

/* Health of a server, as routing sees it. */
typedef enum cs_pgserver_state {
	CS_SRV_UNKNOWN = 0, /* not checked yet: not routed to */
	CS_SRV_UP,	    /* monitor answered within the last interval */
	CS_SRV_DOWN,	    /* failing: banned until the backoff expires */
} cs_pgserver_state;

typedef struct cs_pgserver_info {
	const char *name;
	bool primary;
	unsigned tiers;
	cs_pgserver_state state;
	bool in_recovery;     /* a "replica" that is not in recovery was promoted */
	bool promoted;	      /* a replica out of recovery: not routed to, its reads are the
			       * primary's (LSN 0, never cached with fences on) */
	bool old_timeline;    /* a replica receiving a timeline below the primary's: not routed */
	uint32_t tli;	      /* timeline (primary: current; replica: received); 0 unknown */
	cs_lsn_t lsn;	      /* replay LSN (replica) or current LSN (primary), last seen */
	int64_t lag_ms;	      /* replay delay behind the primary; 0 when caught up */
	uint64_t lag_bytes;   /* primary LSN - replay LSN; 0 for the primary */
	int pool_size, conns, busy, queued;
	uint64_t queries, errors, timeouts, overloaded, bans, promotions;
	uint64_t conn_errors;             /* established connections lost (closed by the server,
					   * reset) and statements canceled by a recovery
					   * conflict: not server failures, not bans */
	uint64_t prepares;                /* statements prepared (a kept one is not prepared again) */
	uint64_t lsn_prepares;            /* LSN statements prepared: one per connection, and one
					   * more after each DEALLOCATE ALL */
	uint64_t queue_wait_us_sum, queue_waits;
} cs_pgserver_info;

typedef struct cs_pgpool_opts {
	int64_t connect_timeout_ms;
	int64_t queue_timeout_ms;	/* longest wait in the queue before OVERLOADED */
	int64_t health_interval_ms;
	int64_t statement_timeout_ms;
	int queue_max;
	struct cs_resolver *resolver; /* host names resolved on the loop (resolve.h); NULL: libpq
				       * resolves them itself, blocking (tools only) */
} cs_pgpool_opts;

/* The options= to connect with: the conninfo's own options (if any) first, then `ours`, so
 * that where both set one GUC `ours` wins (PostgreSQL applies -c settings in order).
 * Returns a malloc'd string (the caller frees it), NULL when out of memory. */
char *cs_pg_merge_options(const char *conninfo, const char *ours);

/* Creates a server; does not connect yet (cs_pgserver_start does). name/conninfo copied. */
cs_pgserver *cs_pgserver_new(struct event_base *base, const char *name, const char *conninfo,
	bool primary, unsigned tiers, int pool_size, const cs_pgpool_opts *opts);
/* Starts the monitor. */
void cs_pgserver_start(cs_pgserver *s);
/* Fails every queued and running job (UNAVAILABLE), closes all connections, frees. Not from
 * inside one of this server's callbacks. */
void cs_pgserver_free(cs_pgserver *s);

/* Queues a job. Returns 0 (the callback will run), -CS_ERR_OVERLOADED when the queue is
 * full or -CS_ERR_UNAVAILABLE when the server is down (the callback will not run). */
int cs_pgserver_submit(cs_pgserver *s, cs_pgjob *job) __attribute__((warn_unused_result));

/* A reload removed or changed the server: it takes no new work (submit says UNAVAILABLE),
 * fails its queue (retryable), stops its monitor and closes connections as they become
 * idle. Free it with cs_pgserver_free once cs_pgserver_idle says so, or at a deadline (then
 * running jobs fail with UNAVAILABLE, retryable). */
void cs_pgserver_retire(cs_pgserver *s);
bool cs_pgserver_idle(const cs_pgserver *s);
/* A reload's new timeouts for a server it keeps: connect_timeout_ms and queue_timeout_ms
 * apply at once (to connects and waits that start from now, and to jobs already queued);
 * statement_timeout_ms to connections opened from now: an idle connection opened with the
 * old one is closed before its next job and opened again (a connection's session settings
 * are fixed when it connects). Other fields of opts are ignored. Returns 0, or -1 when out
 * of memory (the statement timeout stays the old one; the others are applied). */
int cs_pgserver_set_timeouts(cs_pgserver *s, const cs_pgpool_opts *opts);
/* True when the server was made from this definition (a reload keeps it). */
bool cs_pgserver_same(const cs_pgserver *s, const char *conninfo, unsigned tiers, int pool_size);
/* Tells a replica the primary's timeline (a replica on an older one is not routed to). */
void cs_pgserver_set_primary_tli(cs_pgserver *s, uint32_t tli);
uint32_t cs_pgserver_timeline(const cs_pgserver *s);

/* Drops prepared statements on every connection before its next job (query definitions
 * were reloaded: statements of definitions no longer in use are garbage). Correctness
 * does not depend on it: statement names are bound to definitions. */
void cs_pgserver_reset_statements(cs_pgserver *s);

/* Polls the monitor every few milliseconds (read-your-writes waiters need a fresh replay
 * LSN) until `until_us`, then back to the health interval. */
void cs_pgserver_fast_monitor(cs_pgserver *s, uint64_t until_us);

/* Tells a replica the primary's current LSN, to compute byte lag. */
void cs_pgserver_set_primary_lsn(cs_pgserver *s, cs_lsn_t lsn);

/* Sets a replica's time lag as measured against the primary's LSN history
 * (engine_housekeeping.c); without it the lag is estimated from
 * pg_last_xact_replay_timestamp(). */
void cs_pgserver_set_lag(cs_pgserver *s, int64_t lag_ms);

/* Called after every monitor round (and state change) of any server. */
typedef void cs_pgserver_notify_cb(cs_pgserver *s, void *priv);
void cs_pgserver_set_notify(cs_pgserver *s, cs_pgserver_notify_cb *cb, void *priv);

void cs_pgserver_info_get(const cs_pgserver *s, cs_pgserver_info *out);
const char *cs_pgserver_name(const cs_pgserver *s);
/* The resolver the server connects with (for the invalidator's replication connection). */
struct cs_resolver *cs_pgserver_resolver(const cs_pgserver *s);
bool cs_pgserver_is_primary(const cs_pgserver *s);
cs_pgserver_state cs_pgserver_state_get(const cs_pgserver *s);
cs_lsn_t cs_pgserver_lsn(const cs_pgserver *s);
/* Load: (busy + queued) / pool_size, for least-loaded routing. */
double cs_pgserver_load(const cs_pgserver *s);

#endif
