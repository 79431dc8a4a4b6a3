/* cachesvc.h - library mode: the cachesvc read-through engine inside your process.
 *
 * The same engine as the cachesvc daemon, driven by the same INI configuration file
 * (cachesvc/config/CONFIG.md): Redis lookups, single-flight misses, routing to replicas with
 * primary fallback, LSN-fenced fills, generations, read-your-writes (min_lsn) and the TTL
 * policies behave exactly as they do behind the daemon. The [cachesvc] listen / admin
 * keys are ignored: there is no socket between you and the engine. If the configuration
 * enables the invalidator ([invalidator] enabled = true), it runs in-process on the same
 * event loop, as it would in the daemon; otherwise leave invalidation to a daemon (or a
 * standalone invalidator) pointed at the same Redis, and keep fence = off unless one runs.
 *
 * Two ways in:
 *
 *  - Asynchronous (cachesvc_open ...): you own a libevent 2.1 event_base and its thread;
 *    the engine registers its sockets and timers on it. Every cachesvc_* call on such a
 *    handle must be made from the thread that runs the loop (or while it is not running),
 *    and every callback runs on that thread, from inside event_base_dispatch/loop, never
 *    from inside the call that started the request. Nothing blocks except the startup
 *    checks in cachesvc_open (see there).
 *
 *  - Blocking (cachesvc_sync_open ...): for programs without an event loop. The engine
 *    runs on a private thread with its own event_base for the whole life of the handle:
 *    it has to keep running between your calls (Redis pub/sub for generation bumps,
 *    replica health checks and lag sampling, connection pool maintenance, the invalidator),
 *    so a loop that only ran during calls would starve all of it. Calls from any number of
 *    threads are queued to that thread (a bounded queue: past its bound, an OVERLOADED
 *    error) and wait on a condition variable with a timeout.
 *
 * Errors: functions return 0 (or a count) on success and a negative CACHESVC_E_* code on
 * failure. Codes -1..-10 are the engine's (the same codes and meanings as the wire
 * protocol's error frames, protocol/PROTOCOL.md); codes below -99 are the library's own.
 *
 * Logging: the engine logs to stderr at the configuration's log_level. The level is
 * process-wide (the last handle opened sets it).
 *
 * Signals: the engine writes to Redis sockets with write(2). A program using the
 * asynchronous API should ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)), as the daemon does;
 * the blocking API blocks every signal on its private thread, so it needs nothing.
 *
 * Compiles alone, as C99 or later and as C++; needs no other header of the project, and no
 * libevent header (struct event_base is only declared). Link with `pkg-config --libs
 * cachesvc`. */
#ifndef CACHESVC_H
#define CACHESVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CACHESVC_API        __attribute__((visibility("default")))
#define CACHESVC_MUST_CHECK __attribute__((warn_unused_result))
#else
#define CACHESVC_API
#define CACHESVC_MUST_CHECK
#endif

/* Version of this header; cachesvc_version() gives the library's. */
#define CACHESVC_VERSION_MAJOR 0
#define CACHESVC_VERSION_MINOR 1
#define CACHESVC_VERSION_PATCH 0

/* ---- Errors ------------------------------------------------------------------------------ */

enum cachesvc_errcode {
	CACHESVC_OK = 0,
	/* From the engine: the request failed, the handle stays usable. */
	CACHESVC_E_UNKNOWN_QUERY = -1,  /* no query of that name is configured */
	CACHESVC_E_BAD_PARAMS = -2,     /* wrong parameter count, type or value */
	CACHESVC_E_OVERLOADED = -3,     /* a bounded queue is full (a pool's, or the blocking
	                                 * handle's own): back off and retry */
	CACHESVC_E_UNAVAILABLE = -4,    /* no replica or primary fit to answer */
	CACHESVC_E_TOO_LARGE = -5,      /* parameters over max_frame, or a result over max_reply */
	CACHESVC_E_AUTH = -6,           /* (wire only; never returned by the library) */
	CACHESVC_E_PROTOCOL = -7,       /* (wire only; never returned by the library) */
	CACHESVC_E_INTERNAL = -8,       /* a database error (the message says which) or a bug */
	CACHESVC_E_SERVER_TIMEOUT = -9, /* the engine gave up waiting for the database */
	CACHESVC_E_SHUTTING_DOWN = -10, /* the handle is being closed */
	CACHESVC_E_FUTURE_LSN = -11,    /* a read-your-writes LSN beyond the primary's current
	                                 * position: not one it wrote (the request is refused) */
	CACHESVC_E_NO_SHARD = -12,      /* the shard key maps to no shard (sharded origins: a
	                                 * key in no range of [cachesvc] shard_ranges) */
	/* From the library. */
	CACHESVC_E_TIMEOUT = -101, /* blocking call: no answer within its timeout_ms */
	CACHESVC_E_CLOSED = -102,  /* the handle is closing: nothing was started */
	CACHESVC_E_NOMEM = -104,   /* out of memory */
	CACHESVC_E_ARG = -105,     /* invalid argument or usage; nothing was started */
	CACHESVC_E_CONFIG = -106,  /* open: the configuration file is invalid or unreadable */
	CACHESVC_E_CHECK = -107,   /* open: a startup check found the configuration wrong
	                            * against the servers (SQL, parameter types, Redis policy) */
	CACHESVC_E_START = -108,   /* open: the engine, its loop or its thread could not start */
};

/* Longest message in a cachesvc_error, NUL included. */
#define CACHESVC_ERRLEN 2048

/* Why an open failed: a code and a message naming file, section and key where relevant. */
typedef struct cachesvc_error {
	int code; /* enum cachesvc_errcode */
	char msg[CACHESVC_ERRLEN];
} cachesvc_error;

/* Static lower-case name of an error code ("unknown_query", "timeout", ...); unknown codes
 * give "unknown_error". Never blocks; thread-safe. */
CACHESVC_API const char *cachesvc_strerror(int code);

/* The library's version, "MAJOR.MINOR.PATCH" (static). Never blocks; thread-safe. */
CACHESVC_API const char *cachesvc_version(void);

/* ---- Values and requests ------------------------------------------------------------------ */

/* Value types (the numbering of the client library's cs_client_vtype). */
enum cachesvc_vtype {
	CACHESVC_V_NIL,   /* SQL NULL */
	CACHESVC_V_BOOL,  /* u.b */
	CACHESVC_V_INT,   /* u.i */
	CACHESVC_V_FLOAT, /* u.f */
	CACHESVC_V_STR,   /* u.s: UTF-8 text, NOT NUL-terminated */
	CACHESVC_V_BIN,   /* u.s: bytes (bytea) */
	CACHESVC_V_TS,    /* u.ts: Unix seconds + nanoseconds, UTC */
};

/* Column types of a result. */
enum cachesvc_coltype {
	CACHESVC_COL_BOOL = 1,
	CACHESVC_COL_INT = 2,
	CACHESVC_COL_FLOAT = 3,
	CACHESVC_COL_TEXT = 4,
	CACHESVC_COL_BYTEA = 5,
	CACHESVC_COL_TIMESTAMP = 6,
	CACHESVC_COL_TIMESTAMPTZ = 7,
	CACHESVC_COL_NUMERIC = 8, /* text */
	CACHESVC_COL_JSON = 9,    /* text */
	CACHESVC_COL_OTHER = 10,  /* text; also how to take unknown future types */
};

/* Where a result came from. */
enum cachesvc_source {
	CACHESVC_SRC_CACHE = 0,
	CACHESVC_SRC_REPLICA = 1,
	CACHESVC_SRC_PRIMARY = 2,
};

/* Priority tiers (a replica serves the tiers its config section lists). */
enum cachesvc_tier {
	CACHESVC_TIER_CRITICAL = 0, /* user-facing, latency-critical reads */
	CACHESVC_TIER_DEFAULT = 1,  /* ordinary reads */
	CACHESVC_TIER_BATCH = 2,    /* warm-up and background work */
};

typedef struct cachesvc_value {
	int type; /* enum cachesvc_vtype */
	union {
		bool b;
		int64_t i;
		double f;
		struct {
			const char *p;
			uint32_t len;
		} s;
		struct {
			int64_t sec;
			uint32_t nsec;
		} ts;
	} u;
} cachesvc_value;

/* A text parameter from a NUL-terminated string (borrowed, not copied). Text is the usual
 * way to pass parameters: the engine converts it to the declared type. */
static inline cachesvc_value cachesvc_text(const char *s)
{
	cachesvc_value v;
	size_t n = 0;
	while (s[n] != '\0')
		n++;
	v.type = CACHESVC_V_STR;
	v.u.s.p = s;
	v.u.s.len = (uint32_t)n;
	return v;
}

static inline cachesvc_value cachesvc_int(int64_t i)
{
	cachesvc_value v;
	v.type = CACHESVC_V_INT;
	v.u.i = i;
	return v;
}

static inline cachesvc_value cachesvc_nil(void)
{
	cachesvc_value v;
	v.type = CACHESVC_V_NIL;
	v.u.i = 0;
	return v;
}

/* A GET (or REFRESH) request. Every pointer is borrowed for the duration of the call that
 * takes the request only: the library copies what it keeps. */
typedef struct cachesvc_request {
	const char *query;            /* configured query name, NUL-terminated */
	const cachesvc_value *params; /* nparams values (at most 16) */
	uint32_t nparams;
	int tier;         /* enum cachesvc_tier; CACHESVC_TIER_DEFAULT when unsure */
	uint64_t min_lsn; /* read-your-writes token (cachesvc_lsn_parse of the text of
	                   * SELECT pg_current_wal_lsn() after your commit), 0 = none */
	bool bypass;      /* skip the cache: read the database, do not fill */
	bool refresh;     /* REFRESH: always re-run the query and refill the cache */
} cachesvc_request;

/* ---- Results (never block; thread-safe on distinct results; pointers are valid until
 * the result is freed, or for a callback's result, until the callback returns) -------------- */

typedef struct cachesvc_result cachesvc_result;

/* 0 for a data result; for an error result (blocking calls only), its negative code and,
 * in *msg (may be NULL), its message (owned by the result). */
CACHESVC_API int cachesvc_result_err(const cachesvc_result *r, const char **msg);
CACHESVC_API uint32_t cachesvc_result_ncols(const cachesvc_result *r);
CACHESVC_API uint32_t cachesvc_result_nrows(const cachesvc_result *r);
/* NUL-terminated column name, or NULL when col is out of range. */
CACHESVC_API const char *cachesvc_result_col_name(const cachesvc_result *r, uint32_t col);
/* enum cachesvc_coltype, or 0 when col is out of range. */
CACHESVC_API int cachesvc_result_col_type(const cachesvc_result *r, uint32_t col);
/* The value at (row, col) into *out (strings point into r). 0 or CACHESVC_E_ARG. */
CACHESVC_API int cachesvc_result_value(
	const cachesvc_result *r, uint32_t row, uint32_t col, cachesvc_value *out);
/* enum cachesvc_source. */
CACHESVC_API int cachesvc_result_source(const cachesvc_result *r);
/* The data is at least as new as this LSN. */
CACHESVC_API uint64_t cachesvc_result_lsn(const cachesvc_result *r);
/* Milliseconds since the data was read from the database. */
CACHESVC_API uint64_t cachesvc_result_age_ms(const cachesvc_result *r);
/* Served past its TTL (stale-while-revalidate). */
CACHESVC_API bool cachesvc_result_stale(const cachesvc_result *r);
/* Whether an answer read from the database was stored in the cache: 1 stored, 0 not
 * (refused by a fence, too large, read on the primary...), -1 not said (a hit, or a fill
 * still in flight; REFRESH and batch-tier requests always get 1 or 0). */
CACHESVC_API int cachesvc_result_stored(const cachesvc_result *r);
/* Frees a result returned by a blocking call. NULL is a no-op. Never pass the result of a
 * callback: the library frees that one when the callback returns. */
CACHESVC_API void cachesvc_result_free(cachesvc_result *r);

/* One STATS counter or gauge. The name is a static string. */
typedef struct cachesvc_stat {
	const char *name;
	int64_t value;
} cachesvc_stat;

/* ---- Options ------------------------------------------------------------------------------ */

/* Skip the startup checks of cachesvc_open / cachesvc_sync_open (see there). */
#define CACHESVC_F_NO_STARTUP_CHECKS 0x1u

/* Options of an open. Zeroed fields take the defaults shown; NULL = all defaults. */
typedef struct cachesvc_options {
	unsigned flags;        /* CACHESVC_F_* */
	int ready_timeout_ms;  /* blocking open: wait this long for the engine to become
	                        * healthy (cachesvc_sync_healthy) before returning; 0 = 5000,
	                        * negative = do not wait. Ignored by cachesvc_open. */
	uint32_t queue_max;    /* blocking handle: requests pending at once (queued or in
	                        * the engine) before calls fail OVERLOADED; 0 = 4096 */
} cachesvc_options;

/* ---- Asynchronous API: on your event loop --------------------------------------------- */

typedef struct cachesvc cachesvc;
struct event_base; /* libevent's; include <event2/event.h> to make one */

/* Loads the configuration at config_path, runs the startup checks and creates the engine
 * on `base` (a libevent 2.1 event_base you own; it must outlive the handle). The engine
 * starts connecting to Redis and PostgreSQL when your loop runs; until a server is up,
 * requests may fail UNAVAILABLE (see cachesvc_healthy).
 *
 * Blocking: the startup checks are the daemon's, run before its loop starts: every
 * query's SQL is prepared on the first reachable replica (else the primary) with the
 * declared parameter types; with [invalidator] enabled, the publication on the primary
 * holds every invalidate_on table and the replica identities cover the key columns; with
 * fence = on, Redis has maxmemory-policy noeviction. They block the calling thread on
 * libpq/hiredis calls with timeouts (a few seconds per unreachable server). A server that cannot be reached is only logged (the checks
 * are skipped, as in the daemon); a check that fails is CACHESVC_E_CHECK.
 * CACHESVC_F_NO_STARTUP_CHECKS skips them: then cachesvc_open never blocks beyond reading
 * the file.
 *
 * Returns a new handle (free with cachesvc_close), or NULL with the reason in *err (may be
 * NULL): CACHESVC_E_ARG, _CONFIG, _CHECK, _START or _NOMEM. opt may be NULL; it and
 * config_path are only read during the call. Call from the loop's thread. */
CACHESVC_API cachesvc *cachesvc_open(struct event_base *base, const char *config_path,
	const cachesvc_options *opt, cachesvc_error *err) CACHESVC_MUST_CHECK;

/* Result callback. err == 0: r is the result (borrowed: valid until the callback returns;
 * copy what you keep; do not free it) and msg is NULL. err < 0: an engine error code (or
 * CACHESVC_E_SHUTTING_DOWN from cachesvc_close, CACHESVC_E_NOMEM), msg its message
 * (borrowed likewise) and r NULL. Runs on the loop's thread. It may call any function of
 * this API, cachesvc_close included. */
typedef void cachesvc_get_cb(void *priv, int err, const char *msg, const cachesvc_result *r);

/* Starts a GET (or a REFRESH, req->refresh) through the cache. Never blocks. Returns 0: cb
 * will run exactly once, later, from your loop (never from inside this call); or a negative
 * code with cb never run: CACHESVC_E_ARG (NULL arguments, more than 16 parameters, an
 * unknown value type), CACHESVC_E_TOO_LARGE (parameters over the config's max_frame),
 * CACHESVC_E_CLOSED (after cachesvc_close), CACHESVC_E_NOMEM. Everything else (unknown
 * query, bad parameters, database errors, timeouts) arrives through cb. */
CACHESVC_API int cachesvc_get(cachesvc *h, const cachesvc_request *req, cachesvc_get_cb *cb,
	void *priv) CACHESVC_MUST_CHECK;

/* Invalidation callback: n = keys deleted (0 or 1) for a key, the new generation for a
 * whole query. err and msg as in cachesvc_get_cb. */
typedef void cachesvc_invalidate_cb(void *priv, int err, const char *msg, uint64_t n);

/* Admin INVALIDATE of one key (query + params; params borrowed for the call) or of a whole
 * query (a generation bump: O(1), every process stops using the old entries). Application
 * code does not normally need these: the invalidator follows the primary's WAL. Never
 * block. Returns as cachesvc_get; cb runs exactly once, later, from your loop. */
CACHESVC_API int cachesvc_invalidate_key(cachesvc *h, const char *query,
	const cachesvc_value *params, uint32_t nparams, cachesvc_invalidate_cb *cb,
	void *priv) CACHESVC_MUST_CHECK;
CACHESVC_API int cachesvc_invalidate_query(cachesvc *h, const char *query,
	cachesvc_invalidate_cb *cb, void *priv) CACHESVC_MUST_CHECK;

/* Ready to serve: every PostgreSQL server checked once and a replica up (the primary when
 * none is configured), Redis connected, query generations loaded. When not, writes the
 * reason into why (may be NULL). Never blocks. */
CACHESVC_API bool cachesvc_healthy(const cachesvc *h, char *why, size_t whylen);

/* Copies up to max counters and gauges (requests, hits, misses, coalesced, fills, hit and
 * miss latency quantiles, ...) into out. Returns how many. Never blocks. */
CACHESVC_API uint32_t cachesvc_stats(const cachesvc *h, cachesvc_stat *out, uint32_t max);

/* Writes every engine metric as Prometheus text into a new string (*out, caller frees with
 * free()). Returns its length, or CACHESVC_E_NOMEM. Never blocks. */
CACHESVC_API long cachesvc_metrics(const cachesvc *h, char **out) CACHESVC_MUST_CHECK;

/* Stops the engine and frees the handle. Requests still pending are answered
 * CACHESVC_E_SHUTTING_DOWN: their callbacks run before this returns. Never blocks (open
 * connections are closed, not drained). NULL is a no-op. Called from inside a callback of
 * this handle, it only marks the handle closed (later calls return CACHESVC_E_CLOSED) and
 * the teardown runs on the next turn of the loop: keep the loop running until then. */
CACHESVC_API void cachesvc_close(cachesvc *h);

/* ---- Blocking API: the engine on a private thread -------------------------------------- */

typedef struct cachesvc_sync cachesvc_sync;

/* Loads the configuration, runs the startup checks (as cachesvc_open: they block, with
 * timeouts, unless CACHESVC_F_NO_STARTUP_CHECKS), starts the engine's thread and waits up
 * to opt->ready_timeout_ms for it to become healthy (not being healthy by then is not an
 * error: requests are then answered as the engine can). Returns a new handle (free with
 * cachesvc_sync_close) or NULL with the reason in *err (may be NULL), as cachesvc_open.
 * Thread-safe. */
CACHESVC_API cachesvc_sync *cachesvc_sync_open(const char *config_path,
	const cachesvc_options *opt, cachesvc_error *err) CACHESVC_MUST_CHECK;

/* GET (or REFRESH) through the cache, blocking the calling thread at most timeout_ms
 * (0 = the config's request_timeout + 1 s; negative is CACHESVC_E_ARG). Thread-safe: any
 * number of threads may call it at once on one handle; concurrent misses on one key share
 * one database query.
 *
 * Returns 0 with a data result in *out. On failure returns a negative code, and *out is an
 * error result holding the same code and a message (cachesvc_result_err), or NULL when
 * not even that could be allocated. Either way the caller owns *out and frees it with
 * cachesvc_result_free. Beyond the engine's codes: CACHESVC_E_TIMEOUT (no answer within
 * timeout_ms: the request goes on in the engine, still counts against queue_max until it
 * ends, and its result is discarded), CACHESVC_E_OVERLOADED (queue_max requests already
 * pending), CACHESVC_E_SHUTTING_DOWN (cachesvc_sync_close ran meanwhile), and the argument
 * errors of cachesvc_get. */
CACHESVC_API int cachesvc_sync_get(cachesvc_sync *h, const cachesvc_request *req,
	int timeout_ms, cachesvc_result **out) CACHESVC_MUST_CHECK;

/* Admin INVALIDATE of one key / of a whole query (see cachesvc_invalidate_key), blocking
 * at most timeout_ms as cachesvc_sync_get. *deleted / *generation (may be NULL) receive
 * the count / the new generation. Returns 0 or a negative code. Thread-safe. */
CACHESVC_API int cachesvc_sync_invalidate_key(cachesvc_sync *h, const char *query,
	const cachesvc_value *params, uint32_t nparams, int timeout_ms,
	uint64_t *deleted) CACHESVC_MUST_CHECK;
CACHESVC_API int cachesvc_sync_invalidate_query(cachesvc_sync *h, const char *query,
	int timeout_ms, uint64_t *generation) CACHESVC_MUST_CHECK;

/* Asks the engine thread whether it is healthy (see cachesvc_healthy), blocking at most
 * timeout_ms (0 = 1000). Returns 1 healthy, 0 not (reason in why, may be NULL), or a
 * negative code. Thread-safe. */
CACHESVC_API int cachesvc_sync_healthy(
	cachesvc_sync *h, int timeout_ms, char *why, size_t whylen) CACHESVC_MUST_CHECK;

/* Copies up to max stats into out (see cachesvc_stats), blocking at most timeout_ms (0 =
 * 1000). Returns the count or a negative code. Thread-safe. */
CACHESVC_API int cachesvc_sync_stats(
	cachesvc_sync *h, cachesvc_stat *out, uint32_t max, int timeout_ms) CACHESVC_MUST_CHECK;

/* Prometheus text of every engine metric into a new string (*out, caller frees with
 * free()), blocking at most timeout_ms (0 = 1000). Returns its length or a negative code.
 * Thread-safe. */
CACHESVC_API long cachesvc_sync_metrics(
	cachesvc_sync *h, char **out, int timeout_ms) CACHESVC_MUST_CHECK;

/* Stops the engine thread and frees the handle. Requests queued or in flight are answered
 * CACHESVC_E_SHUTTING_DOWN; close then waits for every thread still inside a call on this
 * handle to return before freeing it, so it blocks at most as long as those threads need
 * to wake up (and the engine's thread to close its connections, which never waits on a
 * server). No call on the handle may start after close has begun. NULL is a no-op. */
CACHESVC_API void cachesvc_sync_close(cachesvc_sync *h);

/* ---- LSN tokens (read-your-writes): PostgreSQL's "X/Y" text ---------------------------- */

#define CACHESVC_LSN_STRLEN 18
/* Parses "16/B374D848" into *out. Returns 0, or CACHESVC_E_ARG (then *out is untouched).
 * Never blocks; thread-safe. */
CACHESVC_API int cachesvc_lsn_parse(const char *s, uint64_t *out) CACHESVC_MUST_CHECK;
/* Formats lsn into buf (CACHESVC_LSN_STRLEN bytes). Returns buf. */
CACHESVC_API char *cachesvc_lsn_format(uint64_t lsn, char buf[CACHESVC_LSN_STRLEN]);

/* ---- Sharded origins ([shard NAME] sections, backend/SHARDS.md) ------------------------- */

/* With [shard NAME] sections every request goes to its key's shard (the query's shard_key
 * through [cachesvc] shard_map, or its pinned shard): nothing changes in cachesvc_request.
 * A read-your-writes token is then an LSN of one shard's WAL, "SHARD:X/Y" (what the
 * application read with SELECT pg_current_wal_lsn() on that shard's primary after its
 * commit): pass its LSN as min_lsn and its shard to the *_get_token calls below. A bare
 * LSN (no shard) is BAD_PARAMS on a sharded deployment (it could be any shard's); a token
 * of another shard than the key's is answered by the key's shard's primary (an LSN of one
 * shard says nothing of another's WAL). Without [shard] sections a token naming a shard is
 * BAD_PARAMS. */

#define CACHESVC_SHARD_MAXLEN 64 /* a shard name's bytes (A-Z a-z 0-9 _ . -) */
/* "NAME:FFFFFFFF/FFFFFFFF" with the longest name, NUL included. */
#define CACHESVC_TOKEN_STRLEN (CACHESVC_SHARD_MAXLEN + 1 + CACHESVC_LSN_STRLEN)

typedef struct cachesvc_token {
	char shard[CACHESVC_SHARD_MAXLEN + 1]; /* NUL-terminated; "" = a bare LSN */
	uint64_t lsn;
} cachesvc_token;

/* Parses "X/Y" (shard "") or "NAME:X/Y" (NAME 1..64 bytes of A-Z a-z 0-9 _ . -, LSN not
 * 0/0) into *out. Returns 0, or CACHESVC_E_ARG (then *out is untouched). Never blocks;
 * thread-safe. */
CACHESVC_API int cachesvc_token_parse(const char *s, cachesvc_token *out) CACHESVC_MUST_CHECK;
/* Formats t as "X/Y" or "NAME:X/Y" into buf (CACHESVC_TOKEN_STRLEN bytes); "" when t->shard
 * is no shard name or t is NULL. Returns buf (NULL when buf is). Never blocks; thread-safe. */
CACHESVC_API char *cachesvc_token_format(const cachesvc_token *t, char buf[CACHESVC_TOKEN_STRLEN]);

/* cachesvc_get with a token of shard token_shard (NUL-terminated, borrowed for the call;
 * NULL or "" = none: then exactly cachesvc_get): req->min_lsn is an LSN of that shard's
 * WAL. Returns as cachesvc_get; also CACHESVC_E_ARG when token_shard is not a shard name
 * or req->min_lsn is 0. A token the deployment refuses (see above) is BAD_PARAMS through
 * cb. */
CACHESVC_API int cachesvc_get_token(cachesvc *h, const cachesvc_request *req,
        const char *token_shard, cachesvc_get_cb *cb, void *priv) CACHESVC_MUST_CHECK;
/* cachesvc_sync_get with a token of shard token_shard, as cachesvc_get_token. */
CACHESVC_API int cachesvc_sync_get_token(cachesvc_sync *h, const cachesvc_request *req,
        const char *token_shard, int timeout_ms, cachesvc_result **out) CACHESVC_MUST_CHECK;

#ifdef __cplusplus
}
#endif
#endif
