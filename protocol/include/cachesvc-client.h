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
	/* Detected by the client. */
	CS_CLIENT_E_IO = -100,       /* socket error (fatal) */
	CS_CLIENT_E_TIMEOUT = -101,  /* no reply within timeout_ms (fatal) */
	CS_CLIENT_E_CLOSED = -102,   /* the server closed the connection, or it is dead (fatal) */
	CS_CLIENT_E_PROTOCOL = -103, /* malformed or unexpected reply (fatal) */
	CS_CLIENT_E_NOMEM = -104,    /* out of memory */
	CS_CLIENT_E_ARG = -105,      /* invalid argument or usage; nothing was sent */
	CS_CLIENT_E_CONNECT = -106,  /* could not connect (address, refused, timed out) */
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

/* ---- LSN tokens (read-your-writes): PostgreSQL's "X/Y" text form ------------------------ */
#define CS_CLIENT_LSN_STRLEN 18
/* Parses "16/B374D848" into *out; returns 0 or CS_CLIENT_E_ARG (then *out is untouched). */
CS_CLIENT_API int cs_client_lsn_parse(const char *s, uint64_t *out);
/* Formats into buf (CS_CLIENT_LSN_STRLEN bytes); returns buf. */
CS_CLIENT_API char *cs_client_lsn_format(uint64_t lsn, char buf[CS_CLIENT_LSN_STRLEN]);

#ifdef __cplusplus
}
#endif
#endif
