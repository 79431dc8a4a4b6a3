/* cs_proto.h - the cachesvc wire protocol: frames, limits, request and reply bodies. Pure.
 *
 * Everything here is bytes in, bytes out: no sockets, no event loop. The daemon decodes
 * requests with the allocation-free cs_proto_decode_* functions and encodes replies into a
 * capped cs_buf; the client library does the reverse and decodes replies with the
 * (allocating, but bounds- and limit-checked) cs_result_* functions. The wire format is
 * specified in protocol/PROTOCOL.md.
 *
 * Error convention: functions return 0 (or a non-negative value) on success and a negated
 * enum cs_err on failure. Decoders also write a NUL-terminated message into `err` (which
 * may be NULL when errlen is 0). CS_ERR_PROTOCOL means the peer broke the framing or a
 * hard limit: send the error frame, then close. Every other code leaves the connection
 * usable. */
#ifndef CS_PROTO_H
#define CS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#ifndef CS_PROTO_MUST_CHECK
#define CS_PROTO_MUST_CHECK __attribute__((warn_unused_result))
#endif
#define CS_PROTO_STR_(x) #x
#define CS_PROTO_STR(x)  CS_PROTO_STR_(x)

#ifndef CS_PROTO_PRINTF
#define CS_PROTO_PRINTF(f, a) __attribute__((format(printf, f, a)))
#endif

/* ---- Frame ------------------------------------------------------------------------------
 * 0 u32 BE body length | 4 u8 version | 5 u8 opcode | 6 u16 BE flags (0) | 8 u32 BE reqid
 * 12 body: exactly one msgpack object. */
#define CS_PROTO_VERSION 1
#define CS_PROTO_HDR     12

/* ---- Hard limits (all checked before any allocation) ---------------------------------- */
#define CS_PROTO_MAX_FRAME       (1u << 20)  /* default max request body, bytes */
#define CS_PROTO_MAX_REPLY_FRAME (64u << 20) /* default max reply body a client accepts */
#define CS_PROTO_MAX_DEPTH       8           /* nesting: the body itself is depth 1 */
#define CS_PROTO_MAX_PARAMS      16          /* parameters per GET/REFRESH/INVALIDATE */
#define CS_PROTO_MAX_NAME        64          /* query name and HELLO client name, bytes */
#define CS_PROTO_MAX_TOKEN       256         /* HELLO auth token, bytes */
#define CS_PROTO_MAX_SHARD                                                                         \
	64                                   /* shard name of a read-your-writes token, bytes      \
	                                      * (the config's shard name limit, CS_MAX_NAME) */
#define CS_PROTO_MAX_MGET        256         /* items per MGET */
#define CS_PROTO_MAX_MSG         1024        /* error message in an error reply, bytes */

/* Opcodes. A successful reply carries CS_OP_REPLY_FLAG | request opcode; an error reply
 * carries CS_OP_ERROR. */
enum cs_op {
	CS_OP_HELLO = 1,      /* version negotiation and optional auth */
	CS_OP_PING = 2,       /* liveness; body nil */
	CS_OP_GET = 3,        /* read-through one query/parameters */
	CS_OP_MGET = 4,       /* several GETs in one frame */
	CS_OP_REFRESH = 5,    /* GET that always re-runs the query and refills the cache */
	CS_OP_INVALIDATE = 6, /* admin: drop one key or a whole query */
	CS_OP_STATS = 7,      /* counters */
	CS_OP_SHOW = 8,       /* admin views: rows of {column: value} (PROTOCOL.md 3.8) */
	CS_OP_ADMIN = 9,      /* admin operations: pause/resume/claim a query, reload (3.9) */
	CS_OP_REPLY_FLAG = 0x80,
	CS_OP_ERROR = 0xFF,
};

/* Error codes: positive on the wire, negated as return values. */
enum cs_err {
	CS_ERR_UNKNOWN_QUERY = 1,  /* no query of that name is configured */
	CS_ERR_BAD_PARAMS = 2,     /* wrong parameter count, type or value */
	CS_ERR_OVERLOADED = 3,     /* a bounded queue is full; retry with backoff */
	CS_ERR_UNAVAILABLE = 4,    /* no replica/primary fit to answer */
	CS_ERR_TOO_LARGE = 5,      /* a reply (or buffer) would exceed its cap */
	CS_ERR_AUTH = 6,           /* HELLO token missing or wrong */
	CS_ERR_PROTOCOL = 7,       /* malformed frame/body or a hard limit broken: closes */
	CS_ERR_INTERNAL = 8,       /* server bug or unexpected database error */
	CS_ERR_TIMEOUT = 9,        /* the server gave up waiting for the database */
	CS_ERR_SHUTTING_DOWN = 10, /* draining; reconnect elsewhere */
	CS_ERR_FUTURE_LSN = 11,    /* read-your-writes LSN beyond the primary's position */
	CS_ERR_NO_SHARD = 12, /* the request's shard key maps to no shard (a key in no range) */
};
#define CS_ERR_MAX 12

/* Column types of a result. */
enum cs_coltype {
	CS_COL_BOOL = 1,
	CS_COL_INT = 2,
	CS_COL_FLOAT = 3,
	CS_COL_TEXT = 4,
	CS_COL_BYTEA = 5,
	CS_COL_TIMESTAMP = 6,
	CS_COL_TIMESTAMPTZ = 7,
	CS_COL_NUMERIC = 8, /* as text */
	CS_COL_JSON = 9,    /* as text */
	CS_COL_OTHER = 10,  /* as text: arrays, dates, uuids, anything else */
};

/* Tiers of a GET. */
/* (cachesvc/config/config.h declares the same enum; whichever header comes first defines it.) */
#ifndef CS_TIER_ENUM
#define CS_TIER_ENUM
enum cs_tier { CS_TIER_CRITICAL = 0, CS_TIER_DEFAULT = 1, CS_TIER_BATCH = 2 };
#endif

/* Meta "src": where the data came from. */
enum cs_src { CS_SRC_CACHE = 0, CS_SRC_REPLICA = 1, CS_SRC_PRIMARY = 2 };

/* Returns the stable lower-case name of an error code ("unknown_query"); the code may be
 * positive or negative. Unknown codes give "unknown_error". Static string. */
const char *cs_err_name(int code);

/* Returns the name of an opcode ("get", "get_reply", "error") or "unknown". Static. */
const char *cs_op_name(uint8_t op);

/* True for the request opcodes HELLO..ADMIN. */
bool cs_op_is_request(uint8_t op);

/* True when s[0..len) is a shard name a token may carry: 1..CS_PROTO_MAX_SHARD bytes of
 * A-Z a-z 0-9 _ . - (the configuration's rule for [shard NAME]). Pure. */
bool cs_proto_shard_name_ok(const char *s, size_t len);

/* ---- Values ------------------------------------------------------------------------------ */
enum { CS_V_NIL, CS_V_BOOL, CS_V_INT, CS_V_FLOAT, CS_V_STR, CS_V_BIN, CS_V_TS };

/* One scalar value. Decoded str/bin point into the frame body (borrowed). */
typedef struct cs_value {
	uint8_t type;
	union {
		bool b;
		int64_t i;
		double f;
		struct {
			const char *p;
			uint32_t len;
		} s; /* CS_V_STR and CS_V_BIN */
		struct {
			int64_t sec; /* Unix seconds */
			uint32_t nsec;
		} ts;
	} u;
} cs_value;

/* ---- Requests (decoded views; strings borrowed from the body) ---------------------------- */
typedef struct cs_get_req {
	const char *query; /* not NUL-terminated */
	uint32_t query_len;
	uint32_t nparams;
	cs_value params[CS_PROTO_MAX_PARAMS];
	uint8_t tier;     /* enum cs_tier */
	uint64_t min_lsn; /* read-your-writes token, 0 = none */
	bool bypass;      /* skip the cache (read from the database, do not fill) */
	/* The shard the token's LSN belongs to ("s1" of the token "s1:0/16B3748"), not
	 * NUL-terminated; NULL (shard_len 0) for a token without a shard. Only with min_lsn != 0;
	 * 1..CS_PROTO_MAX_SHARD bytes of A-Z a-z 0-9 _ . - (cs_proto_shard_name_ok). */
	const char *shard;
	uint32_t shard_len;
} cs_get_req;

typedef struct cs_hello_req {
	uint32_t version;
	const char *client;
	uint32_t client_len;
	const char *token; /* NULL when absent */
	uint32_t token_len;
} cs_hello_req;

typedef struct cs_inval_req {
	const char *query;
	uint32_t query_len;
	bool has_params; /* false: invalidate the whole query (generation bump) */
	uint32_t nparams;
	cs_value params[CS_PROTO_MAX_PARAMS];
} cs_inval_req;

/* ADMIN request: an operation ("pause", "resume", "claim", "reload") and, for all but
 * reload, a query name. Strings borrowed from the body, not NUL-terminated; query NULL when absent. */
typedef struct cs_admin_req {
	const char *op;
	uint32_t op_len;
	const char *query;
	uint32_t query_len;
} cs_admin_req;

typedef struct cs_frame {
	uint8_t version, opcode;
	uint16_t flags;
	uint32_t reqid;
	uint32_t body_len;
	const uint8_t *body; /* borrowed; see the function that produced the frame */
} cs_frame;

/* Metadata of a result. */
typedef struct cs_meta {
	uint8_t src;     /* enum cs_src */
	uint64_t lsn;    /* the data is at least as new as this LSN */
	uint64_t age_ms; /* time since the data was read from the database */
	bool stale;      /* served past its TTL (stale-while-revalidate) */
	uint8_t stored;  /* enum cs_stored: whether an answer read from the database was stored */
} cs_meta;

/* cs_meta.stored: sent as the optional meta key "stored" (bool) unless CS_STORED_UNSAID. */
enum cs_stored { CS_STORED_UNSAID = 0, CS_STORED_YES = 1, CS_STORED_NO = 2 };

/* One STATS entry (encoder input, decoder output; decoded names borrowed). */
typedef struct cs_stat {
	const char *name;
	uint32_t name_len;
	bool is_float;
	int64_t i;
	double f;
} cs_stat;

/* ---- Frame header and the incremental reader --------------------------------------------- */

/* Parses a 12-byte header into *out (body stays NULL). Returns 0, or -CS_ERR_PROTOCOL for a
 * bad version, nonzero flags or body_len > max_body. Never blocks, never allocates. */
int cs_proto_parse_header(
        const uint8_t hdr[CS_PROTO_HDR], uint32_t max_body, cs_frame *out) CS_PROTO_MUST_CHECK;

/* Feed-bytes/take-frames reader (client side, tests, fuzzer). The reader buffers at most
 * CS_PROTO_HDR + max_body + CS_PROTO_READER_SLACK unconsumed bytes: drain frames with
 * cs_proto_reader_next before feeding more than that. */
#define CS_PROTO_READER_SLACK (1u << 20)
typedef struct cs_proto_reader cs_proto_reader;

/* Returns a new reader (caller frees with cs_proto_reader_free) or NULL on OOM. */
cs_proto_reader *cs_proto_reader_new(uint32_t max_body);
/* Appends bytes (copied). Returns 0, -CS_ERR_TOO_LARGE when the buffer cap would be
 * exceeded, -CS_ERR_INTERNAL on OOM, or the reader's sticky error. Invalidates the body of
 * the last frame returned. */
int cs_proto_reader_feed(cs_proto_reader *r, const void *data, size_t len) CS_PROTO_MUST_CHECK;
/* Takes the next complete frame: returns 1 and fills *out (out->body points into the
 * reader, valid until the next feed/next/free), 0 when more bytes are needed, or
 * -CS_ERR_PROTOCOL (sticky) on a bad header. */
int cs_proto_reader_next(cs_proto_reader *r, cs_frame *out) CS_PROTO_MUST_CHECK;
/* Bytes buffered and not yet returned as frames. */
size_t cs_proto_reader_pending(const cs_proto_reader *r);
/* Message describing the reader's error ("" if none). Owned by the reader. */
const char *cs_proto_reader_errstr(const cs_proto_reader *r);
void cs_proto_reader_free(cs_proto_reader *r);

/* ---- Request decoders (server side). Allocation-free; validate while walking. ----------
 * Each returns 0 or a negated cs_err (CS_ERR_PROTOCOL for malformed bodies and broken
 * limits, CS_ERR_BAD_PARAMS for well-formed bodies carrying an unusable value) and writes
 * a message into err. Decoded strings point into `body`. */
int cs_proto_decode_get(const uint8_t *body, uint32_t len, cs_get_req *out, char *err,
        size_t errlen) CS_PROTO_MUST_CHECK;
int cs_proto_decode_mget(const uint8_t *body, uint32_t len, cs_get_req *items, uint32_t max_items,
        uint32_t *nitems, char *err, size_t errlen) CS_PROTO_MUST_CHECK;
int cs_proto_decode_hello(const uint8_t *body, uint32_t len, cs_hello_req *out, char *err,
        size_t errlen) CS_PROTO_MUST_CHECK;
int cs_proto_decode_inval(const uint8_t *body, uint32_t len, cs_inval_req *out, char *err,
        size_t errlen) CS_PROTO_MUST_CHECK;
/* SHOW request body {"what": str}; *what borrowed from body (not NUL-terminated). */
int cs_proto_decode_show(const uint8_t *body, uint32_t len, const char **what,
        uint32_t *what_len, char *err, size_t errlen) CS_PROTO_MUST_CHECK;
/* ADMIN request body {"op": str, "q": str}; "q" optional here (the server checks which
 * operations need it). */
int cs_proto_decode_admin(const uint8_t *body, uint32_t len, cs_admin_req *out, char *err,
        size_t errlen) CS_PROTO_MUST_CHECK;
/* PING/STATS request body: nil or an empty map. */
int cs_proto_decode_empty(const uint8_t *body, uint32_t len) CS_PROTO_MUST_CHECK;

/* Checks that `p` holds exactly one well-formed result object ([cols, rows], see
 * PROTOCOL.md) within the limits. Returns 0 or -CS_ERR_PROTOCOL. For the daemon to vet
 * bytes read back from Redis before passing them through. */
int cs_proto_check_result(
        const uint8_t *p, size_t len, char *err, size_t errlen) CS_PROTO_MUST_CHECK;

/* ---- Growable, capped output buffer ------------------------------------------------------
 * Appends past `max` fail and mark the buffer failed: every later append fails too until
 * cs_buf_truncate/cs_buf_reset, so a half-written frame is never mistaken for a whole. */
typedef struct cs_buf {
	uint8_t *data;
	size_t len, cap;
	size_t max;  /* hard cap on len */
	bool failed; /* an append failed (cap or OOM) since the last reset/truncate */
} cs_buf;

/* Initialises an empty buffer holding at most `max` bytes (0 = CS_PROTO_MAX_FRAME+HDR). */
void cs_buf_init(cs_buf *b, size_t max);
/* Makes room for `n` more bytes. Returns 0, or -CS_ERR_TOO_LARGE (cap) / -CS_ERR_INTERNAL
 * (OOM), marking the buffer failed. */
int cs_buf_reserve(cs_buf *b, size_t n) CS_PROTO_MUST_CHECK;
/* Appends n bytes. Returns as cs_buf_reserve. */
int cs_buf_append(cs_buf *b, const void *p, size_t n) CS_PROTO_MUST_CHECK;
/* Drops everything after `len` and clears the failed mark. */
void cs_buf_truncate(cs_buf *b, size_t len);
/* len = 0, failed cleared; memory kept. */
void cs_buf_reset(cs_buf *b);
/* Frees the memory; the buffer is empty and reusable after. */
void cs_buf_free(cs_buf *b);
/* msgpack_packer write callback: `data` is a cs_buf*. Returns 0 or -1. */
int cs_buf_msgpack_write(void *data, const char *buf, size_t len);

/* ---- Frame encoders ----------------------------------------------------------------------
 * All write into a cs_buf. The int-returning ones return 0 or a negated cs_err
 * (-CS_ERR_TOO_LARGE when the buffer cap is hit) and on failure roll the buffer back to
 * where they started, so the caller can write an error frame instead. */

/* Writes a header with a length placeholder; returns its offset for cs_proto_end. */
size_t cs_proto_begin(cs_buf *b, uint8_t opcode, uint32_t reqid);
/* Patches the body length of the frame at hdr_off. Does nothing if the buffer failed:
 * check b->failed (and roll back with cs_buf_truncate(b, hdr_off)). */
void cs_proto_end(cs_buf *b, size_t hdr_off);

/* Packs a value (timestamps as msgpack ext type -1). Returns the packer's result. */
int cs_proto_pack_value(msgpack_packer *pk, const cs_value *v);
/* Packs the meta map {"src","lsn","age","stale"}, plus "stored" (bool) when meta->stored is
 * CS_STORED_YES or CS_STORED_NO (the map then has 5 entries). Returns the packer's result. */
int cs_proto_pack_meta(msgpack_packer *pk, const cs_meta *meta);

/* Error reply {"code","msg"}; code may be given positive or negative; the message is
 * truncated to CS_PROTO_MAX_MSG bytes. */
int cs_proto_write_error(cs_buf *b, uint32_t reqid, int code, const char *fmt, ...)
        CS_PROTO_PRINTF(4, 5);
/* GET/REFRESH reply [meta, result]; `result` is pre-encoded msgpack copied verbatim. */
int cs_proto_write_result(cs_buf *b, uint32_t reqid, uint8_t op, const cs_meta *meta,
        const uint8_t *result, size_t len);
/* MGET reply: begin (n items follow), then exactly n item calls, then end. Items return
 * 0 or -CS_ERR_TOO_LARGE (then roll back the whole frame: cs_buf_truncate(b, off)). */
size_t cs_proto_mget_begin(cs_buf *b, uint32_t reqid, uint32_t n);
int cs_proto_mget_item_ok(cs_buf *b, const cs_meta *meta, const uint8_t *result, size_t len);
/* An item error {"code", "msg"} (the error frame's shape; servers before it sent "err"). */
int cs_proto_mget_item_err(cs_buf *b, int code, const char *msg);
void cs_proto_mget_end(cs_buf *b, size_t off);
/* HELLO reply {"v","server","max_frame"}. */
int cs_proto_write_hello_reply(
        cs_buf *b, uint32_t reqid, uint32_t version, const char *server, uint32_t max_frame);
/* A reply with a nil body (PING). */
int cs_proto_write_nil_reply(cs_buf *b, uint32_t reqid, uint8_t op);
/* INVALIDATE reply: {"generation": n} when whole_query, else {"deleted": n}. */
int cs_proto_write_inval_reply(cs_buf *b, uint32_t reqid, bool whole_query, uint64_t n);
/* STATS reply: map name -> int or float. */
int cs_proto_write_stats(cs_buf *b, uint32_t reqid, const cs_stat *stats, uint32_t n);

/* SHOW reply: an array of rows, each a map column name -> scalar (str/int/float/bool/nil).
 * cs_proto_show_begin writes the frame header and an array32 whose count
 * cs_proto_show_end patches; between them call cs_proto_show_row once per row with its
 * cells. Rows return 0 or -CS_ERR_TOO_LARGE (then roll back: cs_buf_truncate(b, off)). */
typedef struct cs_show_cell {
	const char *key; /* NUL-terminated column name */
	cs_value v;	 /* CS_V_NIL, CS_V_BOOL, CS_V_INT, CS_V_FLOAT or CS_V_STR */
} cs_show_cell;
size_t cs_proto_show_begin(cs_buf *b, uint32_t reqid);
/* The same for the reply of another rows-shaped request (CS_OP_ADMIN). */
size_t cs_proto_rows_begin(cs_buf *b, uint8_t op, uint32_t reqid);
int cs_proto_show_row(cs_buf *b, const cs_show_cell *cells, uint32_t n);
void cs_proto_show_end(cs_buf *b, size_t off, uint32_t nrows);
/* SHOW request. */
int cs_proto_write_show(cs_buf *b, uint32_t reqid, const char *what);
/* ADMIN request; query NULL for "reload". */
int cs_proto_write_admin(cs_buf *b, uint32_t reqid, const char *op, const char *query);

/* Request encoders (client side). They check the limits the server checks. */
int cs_proto_write_get(cs_buf *b, uint32_t reqid, uint8_t op, const cs_get_req *req);
int cs_proto_write_mget(cs_buf *b, uint32_t reqid, const cs_get_req *items, uint32_t n);
int cs_proto_write_hello(cs_buf *b, uint32_t reqid, const cs_hello_req *req);
int cs_proto_write_inval(cs_buf *b, uint32_t reqid, const cs_inval_req *req);
/* PING or STATS request (nil body). */
int cs_proto_write_empty(cs_buf *b, uint32_t reqid, uint8_t op);

/* Result encoder helpers (for whoever turns database rows into `result` bytes): write
 * array(2), array(ncols) then per column cs_proto_pack_col; then array(nrows), and per row
 * array(ncols) + values with cs_proto_pack_value. */
int cs_proto_pack_result_begin(msgpack_packer *pk, uint32_t ncols);
int cs_proto_pack_col(msgpack_packer *pk, const char *name, uint8_t type);

/* ---- Reply decoders (client side) -------------------------------------------------------- */

/* Error reply body: *code is the positive wire code (0 < code; unknown codes are kept), msg
 * borrowed from body. Returns 0 or -CS_ERR_PROTOCOL. */
int cs_proto_decode_error(const uint8_t *body, uint32_t len, int *code, const char **msg,
        uint32_t *msg_len) CS_PROTO_MUST_CHECK;
/* HELLO reply body. server borrowed. */
int cs_proto_decode_hello_reply(const uint8_t *body, uint32_t len, uint32_t *version,
        const char **server, uint32_t *server_len, uint32_t *max_frame) CS_PROTO_MUST_CHECK;
/* INVALIDATE reply body. */
int cs_proto_decode_inval_reply(
        const uint8_t *body, uint32_t len, bool *whole_query, uint64_t *n) CS_PROTO_MUST_CHECK;
/* PING reply body (nil). */
int cs_proto_decode_nil(const uint8_t *body, uint32_t len) CS_PROTO_MUST_CHECK;
/* STATS reply body: fills at most max entries (names borrowed from body) and *n with the
 * count; more entries than max is -CS_ERR_TOO_LARGE. */
int cs_proto_decode_stats(const uint8_t *body, uint32_t len, cs_stat *out, uint32_t max,
        uint32_t *n) CS_PROTO_MUST_CHECK;

/* SHOW reply body: calls cb for every cell (row index, column name borrowed from body, not
 * NUL-terminated, and a scalar value; strings borrowed) in order; a nonzero return of cb
 * stops the walk and is returned. *nrows gets the row count. Returns 0 or -CS_ERR_PROTOCOL
 * (a non-array body, a row that is not a map, a non-string key, a non-scalar value). */
typedef int cs_show_cell_cb(
        void *priv, uint32_t row, const char *key, uint32_t key_len, const cs_value *v);
int cs_proto_decode_show_reply(const uint8_t *body, uint32_t len, uint32_t *nrows,
        cs_show_cell_cb *cb, void *priv) CS_PROTO_MUST_CHECK;

/* A decoded [meta, result] (or an MGET error item). Owns a private copy of its bytes. */
typedef struct cs_result cs_result;

/* Decodes a GET/REFRESH reply body. Returns 0 and a new result in *out (free with
 * cs_result_free), -CS_ERR_PROTOCOL for a malformed body (message in err), or
 * -CS_ERR_INTERNAL on OOM. Allocates at most O(len) memory. */
int cs_result_decode(const uint8_t *body, uint32_t len, cs_result **out, char *err,
        size_t errlen) CS_PROTO_MUST_CHECK;
/* Decodes an MGET reply body into out[0..*n) (each a result or an error item; the caller
 * frees each); more than max items is -CS_ERR_PROTOCOL. Same returns as cs_result_decode;
 * on failure nothing is left allocated. */
int cs_result_decode_mget(const uint8_t *body, uint32_t len, cs_result **out, uint32_t max,
        uint32_t *n, char *err, size_t errlen) CS_PROTO_MUST_CHECK;
/* Builds an error item (for the client library's per-request errors). NULL on OOM. */
cs_result *cs_result_new_error(int code, const char *msg, size_t msg_len);
void cs_result_free(cs_result *r);

/* Accessors. Row/column indexes out of range return -CS_ERR_BAD_PARAMS / NULL / 0. */
int cs_result_error(const cs_result *r, const char **msg); /* 0, or the negated error code */
const cs_meta *cs_result_meta(const cs_result *r);
uint32_t cs_result_ncols(const cs_result *r);
uint32_t cs_result_nrows(const cs_result *r);
const char *cs_result_col_name(const cs_result *r, uint32_t col); /* NUL-terminated */
int cs_result_col_type(const cs_result *r, uint32_t col);         /* enum cs_coltype or 0 */
/* The value at (row, col); strings point into the result (valid until cs_result_free). */
int cs_result_value(const cs_result *r, uint32_t row, uint32_t col, cs_value *out);

#endif
