/* copyframe.h - CopyBoth payloads of a logical replication connection ('w', 'k', 'r'). Pure. */
#ifndef CS_COPYFRAME_H
#define CS_COPYFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Error convention for the whole pgoutput module (copyframe.c and pgoutput.c):
 * functions return 0 (or a non-negative value where documented) on success and
 * one of these negative codes on failure. Where a decoder exists, cs_pgo_errstr()
 * says what exactly was wrong; cs_pgo_strerror() names a code.
 */
#define CS_PGO_ETRUNC    (-1) /* the message ends before its layout does */
#define CS_PGO_EPROTO    (-2) /* malformed: bad count, missing NUL, bad byte, trailing bytes */
#define CS_PGO_EUNKNOWN  (-3) /* message type not known to this decoder */
#define CS_PGO_ESTATE    (-4) /* valid bytes that contradict the stream so far (unknown
			       * relation, column count differs from the Relation, S inside S) */
#define CS_PGO_ENOMEM    (-5) /* allocation failed; the decoder is unchanged */
#define CS_PGO_ENULL     (-6) /* cs_pgo_datum_text: the datum is SQL NULL */
#define CS_PGO_EUNCHANGED (-7) /* cs_pgo_datum_text: unchanged TOAST value, not sent */
#define CS_PGO_EBINARY   (-8) /* cs_pgo_datum_text: binary datum, not text */
#define CS_PGO_ETOOLONG  (-9) /* cs_pgo_datum_text: value does not fit the buffer */

/* Static text for a CS_PGO_E* code ("unknown error" for anything else). */
const char *cs_pgo_strerror(int code);

/* Header sizes (type byte included) and the fixed size of a standby status update. */
#define CS_PGO_XLOGDATA_HDRLEN 25
#define CS_PGO_KEEPALIVE_LEN   18
#define CS_PGO_STATUS_LEN      34

/* 'w' XLogData: exactly one pgoutput message in payload[0..len). dataStart and
 * walEnd are 0 for writes that are not the last of a decoding callback (Relation,
 * Type, a Begin followed by Origin): do not treat them as positions. */
typedef struct cs_pgo_xlogdata {
	uint64_t data_start;
	uint64_t wal_end;
	int64_t send_time;      /* microseconds since 2000-01-01 UTC */
	const uint8_t *payload; /* borrowed: points into the buffer given to parse */
	size_t len;
} cs_pgo_xlogdata;

/* 'k' primary keepalive. reply_requested: answer with a status update at once or
 * be disconnected after wal_sender_timeout. */
typedef struct cs_pgo_keepalive {
	uint64_t wal_end;
	int64_t send_time; /* microseconds since 2000-01-01 UTC */
	bool reply_requested;
} cs_pgo_keepalive;

/*
 * Parses one CopyData payload received on a replication connection.
 * On success returns 0, sets *kind to 'w' (fills *w) or 'k' (fills *k); the other
 * struct is left untouched. Either may be NULL (then only *kind says what it was).
 * Never reads buf past len.
 * Errors: CS_PGO_ETRUNC (too short; len 0 included), CS_PGO_EPROTO (a keepalive
 * longer than 18 bytes), CS_PGO_EUNKNOWN (any other first byte). On error *kind is
 * set to the first byte (or 0 when len is 0) and *w / *k are untouched.
 */
__attribute__((warn_unused_result)) int cs_pgo_parse_copydata(const uint8_t *buf, size_t len,
	char *kind, cs_pgo_xlogdata *w, cs_pgo_keepalive *k);

/* Writes the 34-byte Standby Status Update ('r', write, flush, apply, send_time,
 * reply_requested) in network byte order. For a logical slot only flush_lsn
 * matters: it becomes confirmed_flush_lsn. */
void cs_pgo_build_status(uint8_t out[CS_PGO_STATUS_LEN], uint64_t write_lsn, uint64_t flush_lsn,
	uint64_t apply_lsn, int64_t send_time, bool reply_requested);

/* Microseconds since the Unix epoch <-> since the PostgreSQL epoch (2000-01-01 UTC).
 * Saturate at INT64_MIN / INT64_MAX instead of overflowing. */
int64_t cs_pgo_time_from_unix_us(int64_t unix_us);
int64_t cs_pgo_time_to_unix_us(int64_t pg_us);

#endif
