/* pgoutput.h - pure decoder of pgoutput logical replication messages (proto 1 and 2). */
#ifndef CS_PGOUTPUT_H
#define CS_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "copyframe.h" /* CS_PGO_E* codes, CopyBoth framing */

/*
 * Feed the payload of each XLogData ('w') to cs_pgo_decode(), in order, on one
 * decoder per replication connection (pgoutput resends Relation messages in every
 * walsender session, so a new connection wants a new decoder). No I/O, never blocks.
 *
 * Lifetimes (the rules every consumer must follow):
 *  - Strings, tuple datum bytes and Message content point into the buffer passed to
 *    cs_pgo_decode(): borrowed, valid while that buffer is. Strings are NUL-terminated
 *    inside it (the decoder checks).
 *  - cs_pgo_tuple.cols and cs_pgo_truncate.relids point into decoder scratch: valid
 *    until the next cs_pgo_decode() on the same decoder.
 *  - A cs_pgo_relation (and its names and columns) is owned by the decoder. It stays
 *    valid until the next Relation message for the same OID in the same context
 *    (outside streams, or inside the same streamed transaction), the Stream Commit or
 *    Stream Abort that ends the streamed transaction it arrived in (at Stream Commit a
 *    streamed Relation replaces the committed one for its OID, as pgoutput assumes),
 *    or cs_pgo_decoder_free(). Simplest safe rule: do not keep one across a decode that
 *    returns 'R', 'c' or 'A'.
 */

/* MaxTupleAttributeNumber: no tuple or relation has more columns. */
#define CS_PGO_MAX_COLUMNS 1664
/* Bound on cached relations (committed plus streamed), against a runaway stream. */
#define CS_PGO_MAX_RELATIONS 1000000

typedef struct cs_pgo_decoder cs_pgo_decoder;

typedef struct cs_pgo_column {
	char *name;
	uint32_t type_oid;
	int32_t typmod;
	bool key; /* part of the replica identity (every column when FULL) */
} cs_pgo_column;

typedef struct cs_pgo_relation {
	uint32_t oid;
	char *nspname; /* "" means pg_catalog */
	char *relname;
	char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
	int ncols;      /* 0..CS_PGO_MAX_COLUMNS; published columns only (PG15 column lists) */
	cs_pgo_column *cols;
} cs_pgo_relation;

/* One column of a TupleData. kind 'n' NULL and 'u' unchanged TOAST (value not sent)
 * have data NULL and len 0; 't' text (no NUL terminator) and 'b' binary (the type's
 * send format) have len bytes at data. */
typedef struct cs_pgo_datum {
	char kind;
	const uint8_t *data;
	uint32_t len;
} cs_pgo_datum;

/* ncols equals the relation's ncols (the decoder enforces it). */
typedef struct cs_pgo_tuple {
	int ncols;
	const cs_pgo_datum *cols;
} cs_pgo_tuple;

/* 'B' */
typedef struct cs_pgo_begin {
	uint64_t final_lsn; /* LSN of the commit record */
	int64_t commit_ts;  /* microseconds since 2000-01-01 UTC */
	uint32_t xid;
} cs_pgo_begin;

/* 'C' */
typedef struct cs_pgo_commit {
	uint8_t flags; /* 0 so far */
	uint64_t commit_lsn;
	uint64_t end_lsn; /* end of the commit record: the LSN to confirm */
	int64_t commit_ts;
} cs_pgo_commit;

/* 'O' */
typedef struct cs_pgo_origin {
	uint64_t lsn;     /* commit LSN on the origin server */
	const char *name; /* borrowed */
} cs_pgo_origin;

/* 'R': the decoder has already cached it. */
typedef struct cs_pgo_relmsg {
	const cs_pgo_relation *rel;
} cs_pgo_relmsg;

/* 'Y' (user-defined types only) */
typedef struct cs_pgo_type {
	uint32_t oid;
	const char *nspname; /* borrowed */
	const char *typname; /* borrowed */
} cs_pgo_type;

/* 'I' */
typedef struct cs_pgo_insert {
	const cs_pgo_relation *rel;
	cs_pgo_tuple newtup;
} cs_pgo_insert;

/* 'U'. old_kind 'K': oldtup holds the old replica identity (only when a key column
 * changed; other columns 'n'); 'O': the full old row (REPLICA IDENTITY FULL); 0: no
 * old tuple (key unchanged: take it from newtup), oldtup.ncols is 0. */
typedef struct cs_pgo_update {
	const cs_pgo_relation *rel;
	char old_kind;
	cs_pgo_tuple oldtup;
	cs_pgo_tuple newtup;
} cs_pgo_update;

/* 'D'. old_kind is 'K' or 'O', as for Update. */
typedef struct cs_pgo_delete {
	const cs_pgo_relation *rel;
	char old_kind;
	cs_pgo_tuple oldtup;
} cs_pgo_delete;

#define CS_PGO_TRUNCATE_CASCADE          1
#define CS_PGO_TRUNCATE_RESTART_IDENTITY 2

/* 'T'. relids need not have been announced by a Relation message (pgoutput sends R
 * for each first, but the decoder does not require it). */
typedef struct cs_pgo_truncate {
	uint32_t nrels;
	uint8_t flags; /* CS_PGO_TRUNCATE_* */
	const uint32_t *relids; /* decoder scratch */
} cs_pgo_truncate;

#define CS_PGO_MESSAGE_TRANSACTIONAL 1

/* 'M' (pg_logical_emit_message; only with the 'messages' option). A
 * non-transactional one arrives at once, outside any Begin/Commit. */
typedef struct cs_pgo_message {
	uint8_t flags; /* CS_PGO_MESSAGE_TRANSACTIONAL */
	uint64_t lsn;
	const char *prefix;     /* borrowed */
	const uint8_t *content; /* borrowed, not NUL-terminated */
	uint32_t len;
} cs_pgo_message;

/* 'S' */
typedef struct cs_pgo_stream_start {
	uint32_t xid; /* top-level transaction */
	bool first_segment;
} cs_pgo_stream_start;

/* 'c' */
typedef struct cs_pgo_stream_commit {
	uint32_t xid;
	uint8_t flags;
	uint64_t commit_lsn;
	uint64_t end_lsn;
	int64_t commit_ts;
} cs_pgo_stream_commit;

/* 'A'. subxid == xid aborts the whole streamed transaction, otherwise only that
 * subtransaction. abort_lsn/abort_ts only exist with proto 4 parallel streaming. */
typedef struct cs_pgo_stream_abort {
	uint32_t xid;
	uint32_t subxid;
	bool has_abort_info;
	uint64_t abort_lsn;
	int64_t abort_ts;
} cs_pgo_stream_abort;

/* One decoded message. 'E' (Stream Stop) has no body. */
typedef struct cs_pgo_msg {
	char type; /* 'B','C','O','R','Y','I','U','D','T','M','S','E','c','A' */
	/* R/Y/I/U/D/T/M inside a streamed block (between S and E) carry an [xid]
	 * prefix: then streamed is true and xid holds it (a subtransaction's xid is
	 * possible; the top-level one is in the Stream Start). Otherwise false and 0. */
	bool streamed;
	uint32_t xid;
	union {
		cs_pgo_begin begin;
		cs_pgo_commit commit;
		cs_pgo_origin origin;
		cs_pgo_relmsg relation;
		cs_pgo_type pgtype;
		cs_pgo_insert insert;
		cs_pgo_update update;
		cs_pgo_delete delete;
		cs_pgo_truncate truncate;
		cs_pgo_message message;
		cs_pgo_stream_start stream_start;
		cs_pgo_stream_commit stream_commit;
		cs_pgo_stream_abort stream_abort;
	};
} cs_pgo_msg;

/* Returns a new decoder (owned by the caller: cs_pgo_decoder_free) or NULL on OOM. */
__attribute__((warn_unused_result)) cs_pgo_decoder *cs_pgo_decoder_new(void);

/* Frees the decoder and every relation it cached. NULL is fine. */
void cs_pgo_decoder_free(cs_pgo_decoder *d);

/*
 * Decodes one pgoutput message buf[0..len) (one XLogData payload) into *out.
 * Returns 0, or a negative CS_PGO_E* code with cs_pgo_errstr(d) saying what was
 * wrong; *out is then zeroed. Never reads past len, never keeps buf. A failed
 * decode leaves the relation cache and the stream state as they were (the stream
 * is broken anyway: the caller should reconnect with a new decoder).
 */
__attribute__((warn_unused_result)) int cs_pgo_decode(cs_pgo_decoder *d, const uint8_t *buf,
	size_t len, cs_pgo_msg *out);

/* The last error's description; "" when none. Valid until the next decode. */
const char *cs_pgo_errstr(const cs_pgo_decoder *d);

/* The committed (non-streamed) relation cached for oid, or NULL. Lifetime above. */
const cs_pgo_relation *cs_pgo_relation_get(const cs_pgo_decoder *d, uint32_t oid);

/* Index of the column called name (exact, case-sensitive), or -1. */
int cs_pgo_relation_column(const cs_pgo_relation *rel, const char *name);

/* True while between a Stream Start and its Stream Stop; *xid (if not NULL) is then
 * the streamed top-level xid. */
bool cs_pgo_in_stream(const cs_pgo_decoder *d, uint32_t *xid);

/*
 * For key building: copies text datum d into buf as a NUL-terminated string.
 * Returns its length (>= 0), or CS_PGO_ENULL ('n'), CS_PGO_EUNCHANGED ('u'),
 * CS_PGO_EBINARY ('b'), CS_PGO_ETOOLONG (len >= size), CS_PGO_EPROTO (embedded NUL
 * or unknown kind). On any error buf is set to "" when size > 0.
 */
__attribute__((warn_unused_result)) int cs_pgo_datum_text(const cs_pgo_datum *d, char *buf,
	size_t size);

#endif
