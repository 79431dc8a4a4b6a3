/* cachesvc-client.h - C client library for the cachesvc binary protocol (sync and pipelined).
 *
 * A cs_client is one connection, used by one thread at a time. Every call that talks to
 * the server blocks the calling thread, never longer than the timeouts given at connect
 * time (poll()-based; no signals, no blocking DNS: host names must be numeric IPs).
 *
 * Errors: functions return 0 (or a count) on success and a negative CS_CLIENT_E_* code on
 * failure; cs_client_errstr() describes the last error. Codes -1..-10 are errors the server
 * sent (the connection stays usable); the CS_CLIENT_E_* codes below -99 are detected by the
 * client, and those marked "fatal" close the connection: every later call returns
 * CS_CLIENT_E_CLOSED until cs_client_free(). The wire format is protocol/PROTOCOL.md. */
#ifndef CACHESVC_CLIENT_H
#define CACHESVC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#ifndef CS_EXPORT
#define CS_EXPORT __attribute__((visibility("default")))
#endif
#define CS_CLIENT_API        CS_EXPORT
#define CS_CLIENT_MUST_CHECK __attribute__((warn_unused_result))
#else
#define CS_CLIENT_API
#define CS_CLIENT_MUST_CHECK
#endif

#define CS_CLIENT_DEFAULT_PORT 6380

/* Error codes (negative). */
enum cs_client_error {
	CS_CLIENT_OK = 0,
	/* Sent by the server; the connection stays usable (except PROTOCOL). */
	CS_CLIENT_E_UNKNOWN_QUERY = -1,   /* no such query configured */
	CS_CLIENT_E_BAD_PARAMS = -2,      /* wrong parameter count, type or value */
	CS_CLIENT_E_OVERLOADED = -3,      /* server queue full: back off and retry */
	CS_CLIENT_E_UNAVAILABLE = -4,     /* no database fit to answer */
	CS_CLIENT_E_TOO_LARGE = -5,       /* reply or request over a size limit */
	CS_CLIENT_E_AUTH = -6,            /* token missing or wrong */
	CS_CLIENT_E_SERVER_PROTOCOL = -7, /* the server rejected our frame (fatal) */
	CS_CLIENT_E_INTERNAL = -8,        /* server-side failure */
	CS_CLIENT_E_SERVER_TIMEOUT = -9,  /* the server timed out waiting for the database */
	CS_CLIENT_E_SHUTTING_DOWN = -10,  /* server draining: reconnect */
	CS_CLIENT_E_FUTURE_LSN = -11,     /* read-your-writes LSN beyond the primary's position */
	CS_CLIENT_E_NO_SHARD = -12,       /* the request's shard key maps to no shard (sharded
	                                   * deployments: a key in no range); not retryable */
	/* Detected by the client. */
	CS_CLIENT_E_IO = -100,         /* socket error (fatal) */
	CS_CLIENT_E_TIMEOUT = -101,    /* no reply within timeout_ms (fatal) */
	CS_CLIENT_E_CLOSED = -102,     /* the server closed the connection, or it is dead (fatal) */
	CS_CLIENT_E_PROTOCOL = -103,   /* malformed or unexpected reply (fatal) */
	CS_CLIENT_E_NOMEM = -104,      /* out of memory */
	CS_CLIENT_E_ARG = -105,        /* invalid argument or usage; nothing was sent */
	CS_CLIENT_E_CONNECT = -106,    /* could not connect (address, refused, timed out) */
	CS_CLIENT_E_QUEUE_FULL = -107, /* async API: send queue or in-flight table full; nothing
	                                * was queued (drain replies, then retry) */
};

/* Value types (same numbering as the wire protocol's decoded values). */
enum cs_client_vtype {
	CS_CLIENT_V_NIL,   /* SQL NULL */
	CS_CLIENT_V_BOOL,  /* u.b */
	CS_CLIENT_V_INT,   /* u.i */
	CS_CLIENT_V_FLOAT, /* u.f */
	CS_CLIENT_V_STR,   /* u.s: UTF-8 text, NOT NUL-terminated */
	CS_CLIENT_V_BIN,   /* u.s: bytes (bytea) */
	CS_CLIENT_V_TS,    /* u.ts: Unix seconds + nanoseconds, UTC */
};

/* Column types of a result. */
enum cs_client_coltype {
	CS_CLIENT_COL_BOOL = 1,
	CS_CLIENT_COL_INT = 2,
	CS_CLIENT_COL_FLOAT = 3,
	CS_CLIENT_COL_TEXT = 4,
	CS_CLIENT_COL_BYTEA = 5,
	CS_CLIENT_COL_TIMESTAMP = 6,
	CS_CLIENT_COL_TIMESTAMPTZ = 7,
	CS_CLIENT_COL_NUMERIC = 8, /* text */
	CS_CLIENT_COL_JSON = 9,    /* text */
	CS_CLIENT_COL_OTHER = 10,  /* text; also what unknown future types should be taken as */
};

/* Where a result came from. */
enum cs_client_source {
	CS_CLIENT_SRC_CACHE = 0,
	CS_CLIENT_SRC_REPLICA = 1,
	CS_CLIENT_SRC_PRIMARY = 2
};

/* Priority tiers. */
enum cs_client_tier {
	CS_CLIENT_TIER_CRITICAL = 0,
	CS_CLIENT_TIER_DEFAULT = 1,
	CS_CLIENT_TIER_BATCH = 2
};

typedef struct cs_client_value {
	int type; /* enum cs_client_vtype */
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
} cs_client_value;

/* Builds a text parameter from a NUL-terminated string (borrowed, not copied). Text is the
 * usual way to pass parameters: the server converts it to the declared type. */
static inline cs_client_value cs_client_text(const char *s)
{
	cs_client_value v;
	size_t n = 0;
	while (s[n] != '\0')
		n++;
	v.type = CS_CLIENT_V_STR;
	v.u.s.p = s;
	v.u.s.len = (uint32_t)n;
	return v;
}

static inline cs_client_value cs_client_int(int64_t i)
{
	cs_client_value v;
	v.type = CS_CLIENT_V_INT;
	v.u.i = i;
	return v;
}

static inline cs_client_value cs_client_nil(void)
{
	cs_client_value v;
	v.type = CS_CLIENT_V_NIL;
	v.u.i = 0;
	return v;
}

/* A GET or REFRESH request. All pointers are borrowed for the duration of the call. */
typedef struct cs_client_request {
	const char *query;             /* configured query name, 1..64 bytes, NUL-terminated */
	const cs_client_value *params; /* nparams values (at most 16) */
	uint32_t nparams;
	int tier;         /* enum cs_client_tier; use CS_CLIENT_TIER_DEFAULT when unsure */
	uint64_t min_lsn; /* read-your-writes token (see cs_client_lsn_parse), 0 = none */
	bool bypass;      /* skip the cache */
	/* The shard of the token "s1:0/16B3748" (cs_client_token_parse: .shard), NULL or "" for
	 * a token without one. Only with min_lsn != 0; 1..64 bytes of A-Z a-z 0-9 _ . -. An
	 * unsharded server refuses a token naming a shard (bad_params). Added after min_lsn and
	 * bypass: zero-initialise requests ({0} or designated initialisers). */
	const char *shard;
} cs_client_request;

/* Connection options. Zeroed fields take the defaults shown. */
typedef struct cs_client_options {
	const char *host;        /* numeric IPv4/IPv6 address; NULL = "127.0.0.1" */
	uint16_t port;           /* 0 = 6380 */
	const char *unix_path;   /* if set, connect to this unix socket instead of host:port */
	int connect_timeout_ms;  /* 0 = 2000: TCP connect plus HELLO */
	int timeout_ms;          /* 0 = 5000: per call, from sending to the last reply byte */
	const char *client_name; /* sent in HELLO; NULL = "cachesvc-client" */
	const char *token;       /* HELLO auth token; NULL = none */
	uint32_t max_reply;      /* largest reply body accepted; 0 = 64 MiB */
} cs_client_options;

typedef struct cs_client cs_client;
/* A decoded result (or, from MGET and pipelines, a per-request error). Opaque. */
typedef struct cs_result cs_client_result;

/* Connects and performs HELLO. Always returns a context (NULL only when out of memory):
 * check cs_client_err(); on failure cs_client_errstr() says why and the context must still
 * be freed. Blocks at most connect_timeout_ms. `opt` may be NULL for all defaults; it is
 * only read during the call. */
CS_CLIENT_API cs_client *cs_client_connect(const cs_client_options *opt);

/* Closes the connection and frees the context. Never blocks. NULL is a no-op. */
CS_CLIENT_API void cs_client_free(cs_client *c);

/* The last error code of the context (0 if the last call succeeded). */
CS_CLIENT_API int cs_client_err(const cs_client *c);
/* Human-readable description of the last error ("" if none), owned by the context and
 * valid until the next call on it. */
CS_CLIENT_API const char *cs_client_errstr(const cs_client *c);
/* Static name of an error code ("timeout", "unknown_query", ...). */
CS_CLIENT_API const char *cs_client_strerror(int code);
/* Server identity from HELLO (owned by the context) and its max request frame. */
CS_CLIENT_API const char *cs_client_server_name(const cs_client *c);
CS_CLIENT_API uint32_t cs_client_server_max_frame(const cs_client *c);

/* ---- Synchronous calls: each sends one request and waits for its reply, blocking at most
 * timeout_ms. They must not be mixed with outstanding pipelined requests (then they return
 * CS_CLIENT_E_ARG). ---------------------------------------------------------------------- */

/* GET: read through the cache. On success *out is a new result owned by the caller (free
 * with cs_client_result_free). On failure *out is NULL. */
CS_CLIENT_API int cs_client_get(
        cs_client *c, const cs_client_request *req, cs_client_result **out) CS_CLIENT_MUST_CHECK;
/* REFRESH: re-run the query and refill the cache; same contract as cs_client_get. */
CS_CLIENT_API int cs_client_refresh(
        cs_client *c, const cs_client_request *req, cs_client_result **out) CS_CLIENT_MUST_CHECK;
/* MGET: n (1..256) GETs in one frame. On success returns 0 and fills out[0..n): every
 * entry is a result to free; an entry may carry a per-item error (cs_client_result_err).
 * On failure no entry is set. */
CS_CLIENT_API int cs_client_mget(cs_client *c, const cs_client_request *reqs, uint32_t n,
        cs_client_result **out) CS_CLIENT_MUST_CHECK;
/* INVALIDATE one key (query + params). *deleted (may be NULL) = keys removed (0 or 1). */
CS_CLIENT_API int cs_client_invalidate_key(cs_client *c, const char *query,
        const cs_client_value *params, uint32_t nparams, uint64_t *deleted) CS_CLIENT_MUST_CHECK;
/* INVALIDATE a whole query (generation bump). *generation (may be NULL) = the new one. */
CS_CLIENT_API int cs_client_invalidate_query(
        cs_client *c, const char *query, uint64_t *generation) CS_CLIENT_MUST_CHECK;
/* PING. */
CS_CLIENT_API int cs_client_ping(cs_client *c) CS_CLIENT_MUST_CHECK;

/* One STATS entry: a counter (is_float false, value in i) or a gauge (value in f). */
typedef struct cs_client_stat {
	const char *name; /* NUL-terminated */
	bool is_float;
	int64_t i;
	double f;
} cs_client_stat;
/* STATS. On success *out is one malloc'd block of *n entries (names inside it) that the
 * caller frees with cs_client_stats_free. */
CS_CLIENT_API int cs_client_stats(
        cs_client *c, cs_client_stat **out, uint32_t *n) CS_CLIENT_MUST_CHECK;
CS_CLIENT_API void cs_client_stats_free(cs_client_stat *stats);

/* One cell of a SHOW row: column name and a scalar value (nil, bool, int, float or str; a
 * str is NOT NUL-terminated: use value.u.s.len). */
typedef struct cs_client_cell {
	const char *name; /* NUL-terminated */
	cs_client_value value;
} cs_client_cell;
typedef struct cs_client_row {
	const cs_client_cell *cells;
	uint32_t ncells;
} cs_client_row;
/* SHOW a view ("queries", "servers", "clients", "invalidator", "config"; PROTOCOL.md 3.8).
 * On success *rows is one malloc'd block of *nrows rows (cells and strings inside it) that
 * the caller frees with cs_client_show_free. An unknown view is CS_CLIENT_E_BAD_PARAMS. */
CS_CLIENT_API int cs_client_show(cs_client *c, const char *what, cs_client_row **rows,
        uint32_t *nrows) CS_CLIENT_MUST_CHECK;
CS_CLIENT_API void cs_client_show_free(cs_client_row *rows);
/* ADMIN (PROTOCOL.md 3.9): op "pause" or "resume" with a query name, or "reload" with
 * query NULL. Rows as for SHOW (one row saying what happened), freed with
 * cs_client_show_free. Without the admin token: CS_CLIENT_E_AUTH. */
CS_CLIENT_API int cs_client_admin(cs_client *c, const char *op, const char *query,
        cs_client_row **rows, uint32_t *nrows) CS_CLIENT_MUST_CHECK;

/* ---- Pipelining ---------------------------------------------------------------------------
 * cs_client_send queues a GET/REFRESH without waiting (nothing is written until the next
 * cs_client_recv or cs_client_pipeline, or the queue exceeds 64 KiB, which may then block
 * up to timeout_ms writing). cs_client_recv returns the next reply, in whatever order the
 * server answers. At most 4096 requests may be outstanding. Replies are buffered while
 * requests are written: receive regularly, since more than max_reply + 1 MiB of unreceived
 * replies fails the connection (CS_CLIENT_E_PROTOCOL). */

/* Queues a request; *reqid (may be NULL) receives its id. `refresh` picks REFRESH. */
CS_CLIENT_API int cs_client_send(cs_client *c, const cs_client_request *req, bool refresh,
        uint32_t *reqid) CS_CLIENT_MUST_CHECK;
/* Waits at most timeout_ms for the next reply to a sent request. Returns 0 with *reqid and
 * *out set (a result, possibly carrying a server error for that request: check
 * cs_client_result_err), or a fatal client error. */
CS_CLIENT_API int cs_client_recv(
        cs_client *c, uint32_t *reqid, cs_client_result **out) CS_CLIENT_MUST_CHECK;
/* Number of sent requests not yet received. */
CS_CLIENT_API uint32_t cs_client_pending(const cs_client *c);
/* The batch helper: sends n requests (GET, or REFRESH if `refresh`) as separate frames on
 * one connection and collects the n replies, matched by request id, into out[0..n) (each
 * a result to free; per-request errors inside). Blocks at most timeout_ms in total. On
 * failure returns the error and leaves no entry set; a failure after the first request was
 * written (timeout, close, a request over the size limit) also closes the connection, since
 * replies still in flight could no longer be paired with requests. */
CS_CLIENT_API int cs_client_pipeline(cs_client *c, const cs_client_request *reqs, uint32_t n,
        bool refresh, cs_client_result **out) CS_CLIENT_MUST_CHECK;

/* ---- Results (never block; pointers valid until cs_client_result_free) ------------------ */

/* 0, or the negative server error of this request (MGET item / pipelined request), with
 * its message in *msg (may be NULL). */
CS_CLIENT_API int cs_client_result_err(const cs_client_result *r, const char **msg);
CS_CLIENT_API uint32_t cs_client_result_ncols(const cs_client_result *r);
CS_CLIENT_API uint32_t cs_client_result_nrows(const cs_client_result *r);
/* NUL-terminated column name, or NULL when col is out of range. */
CS_CLIENT_API const char *cs_client_result_col_name(const cs_client_result *r, uint32_t col);
/* enum cs_client_coltype, or 0 when col is out of range. */
CS_CLIENT_API int cs_client_result_col_type(const cs_client_result *r, uint32_t col);
/* The value at (row, col) into *out (strings point into r). 0 or CS_CLIENT_E_ARG. */
CS_CLIENT_API int cs_client_result_value(
        const cs_client_result *r, uint32_t row, uint32_t col, cs_client_value *out);
CS_CLIENT_API int cs_client_result_source(const cs_client_result *r); /* cs_client_source */
CS_CLIENT_API uint64_t cs_client_result_lsn(const cs_client_result *r);
CS_CLIENT_API uint64_t cs_client_result_age_ms(const cs_client_result *r);
CS_CLIENT_API bool cs_client_result_stale(const cs_client_result *r);
/* Whether an answer read from the database (source replica or primary) was stored in the
 * cache: 1 stored, 0 not stored, -1 when the server did not say (meta key "stored" absent:
 * cache hits, error items, servers that predate it). */
CS_CLIENT_API int cs_client_result_stored(const cs_client_result *r);
CS_CLIENT_API void cs_client_result_free(cs_client_result *r);

/* ---- Asynchronous API: one thread drives many connections -------------------------------
 *
 * A cs_aclient is one connection that never blocks: its socket is non-blocking and every
 * call returns at once. The caller's event loop (epoll, poll, libevent, libuv...) watches
 * cs_aclient_fd() for reading always and for writing while cs_aclient_want_write() is
 * true, calls cs_aclient_on_readable() / cs_aclient_on_writable() when it fires, and
 * calls cs_aclient_tick() when cs_aclient_timeout_ms() expires (or simply every loop
 * iteration: a tick before the next deadline costs one clock read). Replies are delivered
 * to per-request callbacks, matched by request id, in whatever order the server sends
 * them; many requests may be in flight (pipelining).
 *
 * Why a bare file descriptor rather than a libevent base: the library links only the codec
 * and msgpack-c, and a loop-agnostic fd + callbacks works with any loop (including
 * libevent: an event_new on cs_aclient_fd() with EV_READ|EV_PERSIST and EV_WRITE while
 * cs_aclient_want_write()), without making every user of the client library link, and
 * agree on the version of, one particular event library.
 *
 * Bounds: at most max_inflight requests sent or queued and not yet answered (or timed
 * out), and at most max_queue_bytes of encoded requests not yet written to the socket.
 * A request that would pass either bound is refused with CS_CLIENT_E_QUEUE_FULL and
 * nothing is queued: the queue never grows without bound.
 *
 * Requests may be submitted while the connection is still being set up (after
 * cs_aclient_connect returned); they are written after HELLO. Submitting functions write
 * nothing themselves: call cs_aclient_on_writable() (or wait for the fd to be writable)
 * after submitting; one write then carries every queued request.
 *
 * Timeouts: each request has a deadline (timeout_ms given at submit, or the options'
 * timeout_ms when 0). A request past its deadline completes with CS_CLIENT_E_TIMEOUT at
 * the next cs_aclient_tick(); the connection stays usable and the late reply, if it ever
 * comes, is discarded. Connect plus HELLO must finish within connect_timeout_ms, checked
 * by cs_aclient_tick() too.
 *
 * Fatal errors (socket error, the server closing, a malformed reply, a protocol error
 * from the server, connect failure) close the socket and complete every outstanding
 * request with that error; later submits return CS_CLIENT_E_CLOSED. Remove the fd from
 * your loop before or when that happens (cs_aclient_status() < 0; the fd is closed).
 *
 * Callbacks run inside cs_aclient_on_readable/on_writable/tick/free (never from another
 * thread). A callback may submit new requests on any connection, but must not free the
 * connection it was called for. One cs_aclient is used by one thread at a time. */

typedef struct cs_aclient cs_aclient;

/* What a callback receives; valid only during the callback. */
typedef struct cs_aclient_reply {
	uint32_t reqid;
	/* 0 on success; a server error (-1..-11) for the whole request; or a client error
	 * (<= -100): CS_CLIENT_E_TIMEOUT (this request only), or the fatal error that ended
	 * the connection (CS_CLIENT_E_CLOSED also when the context is freed). */
	int err;
	const char *errmsg; /* "" when err == 0 */
	/* err == 0: GET/REFRESH 1 result, MGET one per key in request order (an item may carry
	 * a per-key error: cs_client_result_err), PING 0. The results belong to the library
	 * unless the callback takes one (copy the pointer and set the slot to NULL): results
	 * left in the array are freed after the callback returns. */
	cs_client_result **results;
	uint32_t nresults;
} cs_aclient_reply;

typedef void cs_aclient_cb(cs_aclient *a, void *arg, cs_aclient_reply *rep);

typedef struct cs_aclient_options {
	/* host/port/unix_path, connect_timeout_ms (connect plus HELLO), timeout_ms (default
	 * per-request timeout), client_name, token, max_reply: as for cs_client_connect. */
	cs_client_options conn;
	uint32_t max_inflight;    /* 0 = 1024; at most 65536 */
	uint32_t max_queue_bytes; /* 0 = 1 MiB of encoded requests not yet written */
} cs_aclient_options;

/* Starts connecting (non-blocking connect; HELLO is queued behind it). Never blocks.
 * Returns NULL only when out of memory; check cs_aclient_status(): an immediate failure
 * (bad address) is already < 0. `opt` may be NULL; it is only read during the call. */
CS_CLIENT_API cs_aclient *cs_aclient_connect(const cs_aclient_options *opt);
/* Completes every outstanding request with CS_CLIENT_E_CLOSED, closes and frees. */
CS_CLIENT_API void cs_aclient_free(cs_aclient *a);

/* The socket to watch (-1 once the connection is dead). */
CS_CLIENT_API int cs_aclient_fd(const cs_aclient *a);
/* Whether the caller should watch the fd for writability (connecting, or output queued
 * that the kernel did not take). */
CS_CLIENT_API bool cs_aclient_want_write(const cs_aclient *a);
/* Event handlers: return 0, or the fatal error that just closed the connection. */
CS_CLIENT_API int cs_aclient_on_readable(cs_aclient *a);
CS_CLIENT_API int cs_aclient_on_writable(cs_aclient *a);
/* Expires requests past their deadline (and a connect past connect_timeout_ms). Returns 0
 * or the fatal error (a connect timeout). */
CS_CLIENT_API int cs_aclient_tick(cs_aclient *a);
/* Milliseconds until the next deadline tick must see (0 = overdue), -1 when none. */
CS_CLIENT_API int cs_aclient_timeout_ms(const cs_aclient *a);

/* 0 while connecting (HELLO not answered yet), 1 when ready, or the negative fatal error. */
CS_CLIENT_API int cs_aclient_status(const cs_aclient *a);
/* The last error of the context and its description (fatal error, or why a submit was
 * refused); "" / 0 when none. */
CS_CLIENT_API int cs_aclient_err(const cs_aclient *a);
CS_CLIENT_API const char *cs_aclient_errstr(const cs_aclient *a);
/* Requests submitted and not yet completed. */
CS_CLIENT_API uint32_t cs_aclient_inflight(const cs_aclient *a);

/* Submit functions: queue one request and return 0 (with *reqid set when reqid is not
 * NULL), or an error and queue nothing: CS_CLIENT_E_ARG / CS_CLIENT_E_TOO_LARGE (bad
 * request), CS_CLIENT_E_QUEUE_FULL (a bound is reached), CS_CLIENT_E_CLOSED (dead). On
 * success cb is called exactly once for the request. timeout_ms 0 = the default. The
 * request's pointers are only read during the call. */
CS_CLIENT_API int cs_aclient_get(cs_aclient *a, const cs_client_request *req, int timeout_ms,
        cs_aclient_cb *cb, void *arg, uint32_t *reqid) CS_CLIENT_MUST_CHECK;
CS_CLIENT_API int cs_aclient_refresh(cs_aclient *a, const cs_client_request *req,
        int timeout_ms, cs_aclient_cb *cb, void *arg, uint32_t *reqid) CS_CLIENT_MUST_CHECK;
/* MGET of n (1..256) requests in one frame. */
CS_CLIENT_API int cs_aclient_mget(cs_aclient *a, const cs_client_request *reqs, uint32_t n,
        int timeout_ms, cs_aclient_cb *cb, void *arg, uint32_t *reqid) CS_CLIENT_MUST_CHECK;
/* PING (the cheapest round trip: no cache, no database). */
CS_CLIENT_API int cs_aclient_ping(cs_aclient *a, int timeout_ms, cs_aclient_cb *cb, void *arg,
        uint32_t *reqid) CS_CLIENT_MUST_CHECK;

/* ---- LSN tokens (read-your-writes): PostgreSQL's "X/Y" text form ------------------------ */
#define CS_CLIENT_LSN_STRLEN 18
/* Parses "16/B374D848" into *out; returns 0 or CS_CLIENT_E_ARG (then *out is untouched). */
CS_CLIENT_API int cs_client_lsn_parse(const char *s, uint64_t *out);
/* Formats into buf (CS_CLIENT_LSN_STRLEN bytes); returns buf. */
CS_CLIENT_API char *cs_client_lsn_format(uint64_t lsn, char buf[CS_CLIENT_LSN_STRLEN]);

/* Tokens that name their shard (sharded origins): "s1:0/16B3748", or a bare "X/Y". */
#define CS_CLIENT_SHARD_MAX    64 /* shard name, bytes */
#define CS_CLIENT_TOKEN_STRLEN (CS_CLIENT_SHARD_MAX + 1 + CS_CLIENT_LSN_STRLEN)
typedef struct cs_client_token {
	char shard[CS_CLIENT_SHARD_MAX + 1]; /* "" = a token without a shard */
	uint64_t lsn;
} cs_client_token;
/* Parses "X/Y" (shard "") or "NAME:X/Y" (NAME 1..64 bytes of A-Z a-z 0-9 _ . -, LSN not
 * 0/0) into *out; returns 0 or CS_CLIENT_E_ARG (then *out is untouched). Use it as
 * req.min_lsn = tok.lsn; req.shard = tok.shard. */
CS_CLIENT_API int cs_client_token_parse(const char *s, cs_client_token *out);
/* Formats "X/Y" or "NAME:X/Y" into buf (CS_CLIENT_TOKEN_STRLEN bytes); returns buf. */
CS_CLIENT_API char *cs_client_token_format(
        const cs_client_token *t, char buf[CS_CLIENT_TOKEN_STRLEN]);

#ifdef __cplusplus
}
#endif
#endif
