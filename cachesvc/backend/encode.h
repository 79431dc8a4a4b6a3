/* encode.h - turns a text-format PGresult into the protocol's result object [cols, rows]
 * (protocol/PROTOCOL.md "result"), the bytes that are stored in Redis and sent to clients.
 * Pure: no I/O. */
#ifndef CS_ENCODE_H
#define CS_ENCODE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "cs_proto.h"

/* Most columns a result may have (PostgreSQL's MaxTupleAttributeNumber, and the limit the
 * protocol's result validator enforces). */
#define CS_ENCODE_MAX_COLS 1664

/* Appends [cols, rows] for `res` (status PGRES_TUPLES_OK or PGRES_SINGLE_TUPLE, every column
 * in text format) from a session with DateStyle=ISO and TimeZone=UTC. Column i is
 * [name, enum cs_coltype] with the type from cs_coltype_for_oid(PQftype(res, i)); values:
 *   SQL NULL                          nil, whatever the type
 *   bool                              bool
 *   int2, int4, int8, oid             int
 *   float4, float8                    float64 (NaN and +-Infinity as IEEE values)
 *   bytea                             bin (hex output "\x.." or the escape format)
 *   timestamp, timestamptz            timestamp ext -1 (UTC); infinity is sec = INT64_MAX,
 *                                     -infinity sec = INT64_MIN, nsec 0 for both
 *   everything else                   str: PostgreSQL's text output, byte for byte
 * Returns 0; -CS_ERR_TOO_LARGE when out's cap is hit (or it cannot grow: the buffer does not
 * tell the two apart); -CS_ERR_INTERNAL with a message in err for a result we cannot encode
 * (bad status, binary columns, too many columns, a name longer than CS_PROTO_MAX_NAME, a
 * value that does not parse as its type). On failure `out` is rolled back to its length at
 * entry. `res` is only read; `out` stays the caller's. Never blocks. */
int cs_encode_result(const PGresult *res, cs_buf *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The enum cs_coltype a PostgreSQL type OID is sent as (CS_COL_OTHER for unknown OIDs). */
int cs_coltype_for_oid(unsigned oid);

#endif
