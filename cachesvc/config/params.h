/* params.h - query parameters: coercion of wire values to declared types, the canonical
 * parameter text used in cache keys, and the values bound to the prepared statement.
 *
 * Pure: no I/O, no event loop; only cs_params_pg allocates.
 *
 * ---- Canonical form (part of the on-Redis key format: changing it orphans every key) -----
 * The read path (wire values, cs_params_canon) and the invalidator (PostgreSQL text output
 * of a column in a session with DateStyle=ISO, TimeZone=UTC, extra_float_digits=3,
 * bytea_output=hex, cs_params_canon_append_text) both parse into the same typed value and
 * print it with the same printer, so equal values give byte-identical text. Rules:
 *   - parameters are joined with ':'; zero parameters give "".
 *   - SQL NULL (wire nil, or a NULL column) is "~".
 *   - bool: "t" / "f".
 *   - int2/int4/int8: decimal, no leading zeros or '+', range-checked per type ("042" -> "42").
 *   - float4/float8: the value (float4 rounded to float) printed with the fewest significant
 *     digits (printf %.Ng, N = 1..9 / 1..17) that read back (strtof / strtod) to the same
 *     value: 0.1 -> "0.1", 1e300 -> "1e+300", 42 -> "42". -0 is "0" (PostgreSQL compares
 *     them equal). Special values "NaN", "Infinity", "-Infinity".
 *   - text: the bytes, each byte outside [A-Za-z0-9_.-] written as %XX (upper-case hex), so
 *     ':' and '~' never appear raw.
 *   - bytea: lower-case hex of the bytes, no prefix ("" for empty).
 *   - uuid: lower-case 8-4-4-4-12.
 *   - numeric: plain decimal without exponent, no leading zeros in the integer part ("0" when
 *     it is empty), no trailing zeros in the fraction, no '.' without a fraction, "-" only
 *     for non-zero values: "-00012.3400e2" -> "-1234", "0.0" -> "0". "NaN", "Infinity",
 *     "-Infinity".
 *   - date: "YYYY-MM-DD" (year at least 4 digits), "YYYY-MM-DDBC" for BC dates,
 *     "infinity" / "-infinity".
 *   - timestamptz: decimal microseconds since 1970-01-01 00:00:00 UTC; "infinity" /
 *     "-infinity".
 * Numbers are printed and parsed in the "C" locale (the daemon never calls setlocale).
 *
 * ---- Accepted wire forms (anything else is CS_ERR_BAD_PARAMS naming the parameter) ------
 *   any type     nil -> SQL NULL
 *   bool         bool; str "t" "f" "true" "false" (any case)
 *   int2/4/8     int; str decimal with optional sign (leading zeros allowed)
 *   float4/8     float; int; str decimal/exponent, "NaN", "[+-]Infinity", "[+-]inf" (any case)
 *   text         str (valid UTF-8 without NUL bytes)
 *   bytea        bin; str in PostgreSQL hex format "\x0a1B.."
 *   uuid         str as PostgreSQL's uuid_in (any case, optional braces, a hyphen allowed
 *                after any group of four digits); bin of 16 bytes
 *   numeric      int; float (via its shortest round-trip text); str as PostgreSQL's
 *                numeric_in ([+-]digits[.digits][e[+-]digits], exponent within +-1000,
 *                "NaN", "[+-]Infinity", "[+-]inf")
 *   date         str "YYYY-MM-DD" [" BC"], "[+-]infinity"
 *   timestamptz  timestamp ext (nsec a multiple of 1000); int = microseconds since the epoch
 *                (INT64_MAX / INT64_MIN mean infinity / -infinity); str ISO 8601
 *                "YYYY-MM-DD[ T]HH:MM:SS[.ffffff](Z|+HH|+HHMM|+HH:MM|+HH:MM:SS)[ BC]" (the
 *                zone is required), "[+-]infinity". Values whose microseconds do not fit an
 *                int64 (after year 294246) or lie before 4714-11-24 BC are rejected.
 * Strings are parsed strictly: no surrounding white space, no trailing junk, no silent
 * truncation or rounding (float text is rounded to the type, as PostgreSQL does).
 *
 * ---- Values sent to PostgreSQL -----------------------------------------------------------
 * Derived from the same parsed value as the canonical text, so what runs is exactly what the
 * key names: text and bytea in binary format (raw bytes), everything else as text in the
 * type's input syntax (timestamptz as "YYYY-MM-DD HH:MM:SS.ffffff+00"). */
#ifndef CS_PARAMS_H
#define CS_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#include "cs_proto.h"
#include "textutil.h"

#define CS_CANON_MAX 1024 /* canonical params longer than this are not cacheable */

/* Canonical params of a request (see the rules above) into out (NUL-terminated), length in
 * *len. No allocation. Returns 0; -CS_ERR_BAD_PARAMS with a message in err (e.g.
 * `parameter 1 (id): expected int8, got "abc"`) when the count is wrong or a value does not
 * fit its type; 1 when every value is valid but the text is longer than
 * min(CS_CANON_MAX, outlen - 1) bytes: the caller serves the request uncached (*len then
 * holds the full length; out's contents are unspecified). Never blocks. */
int cs_params_canon(const cs_query_def *q, const cs_value *in, uint32_t n, char *out, size_t outlen,
	size_t *len, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Invalidator side: appends the canonical form of ONE value given as PostgreSQL text output
 * (text/textlen, not necessarily NUL-terminated; ignored when is_null) at out + *len,
 * preceded by ':' when index > 0, so that appending params 0..n-1 in order gives exactly
 * cs_params_canon's output. Returns 0 (*len advanced, out NUL-terminated), 1 when the total
 * would exceed min(CS_CANON_MAX, outlen - 1) (no key can exist: nothing to invalidate), or
 * -CS_ERR_BAD_PARAMS when the text does not parse as the type. On non-zero returns *len is
 * unchanged and the bytes after it unspecified. */
int cs_params_canon_append_text(cs_param_type t, bool is_null, const char *text, size_t textlen,
	int index, char *out, size_t outlen, size_t *len) __attribute__((warn_unused_result));

/* PostgreSQL values for PQsendQueryPrepared(conn, stmt, p->n, p->values, p->lengths,
 * p->formats, 0). values[i] NULL = SQL NULL; text-format values are NUL-terminated; text and
 * bytea are binary (formats[i] = 1, lengths[i] set). The statement must be prepared with the
 * parameter types of q (cs_param_type_oid). */
typedef struct cs_pg_params {
	int n;
	const char *const *values;
	const int *lengths;
	const int *formats;
} cs_pg_params;

/* Coerces in[0..n) to q's parameter types. Returns one malloc'd block holding everything
 * (independent of `in`'s memory; the caller frees it with free()), or NULL with a message in
 * err on a bad value or count (same messages as cs_params_canon), on a value PostgreSQL could
 * not take (longer than INT_MAX) or on OOM. Never blocks. */
cs_pg_params *cs_params_pg(const cs_query_def *q, const cs_value *in, uint32_t n, char *err,
	size_t errlen) __attribute__((warn_unused_result));

/* ---- Shard keys (backend/SHARDS.md section 3; the map itself is backend/shardmap.h) ------
 * The routing value of a query's shard key is FNV-1a-64 (offset basis 0xcbf29ce484222325,
 * prime 0x100000001b3, over bytes) of the key's type-family bytes:
 *   int2/int4/int8  its value as an int64, 8 bytes big-endian two's complement (so int4 42
 *                   and int8 42 hash alike)
 *   text            its UTF-8 bytes as sent (not the %XX-escaped canonical text)
 *   bytea           its bytes
 *   uuid            its 16 bytes
 * No other type can be a shard key (config.h cs_shard_family_of; config load refuses bool,
 * float, numeric, date and timestamptz: their text forms are not reproducible byte for byte
 * in other languages). shardmap.h maps the hash to a shard (jump consistent hash). A part
 * of the deployment's contract: applications and the other clients reproduce it (the test
 * vectors are in SHARDS.md and tests/unit/test_shardmap.c); never change it.
 * cs_fnv1a64 and CS_FNV1A64_INIT are textutil.h's. */

typedef struct cs_shard_key {
	bool integer; /* int2/4/8: i holds the value (shard_map = ranges needs one) */
	int64_t i;
	uint64_t hash; /* the FNV-1a-64 above */
} cs_shard_key;

/* Parses q's shard key (q->shard_key_index, which must be set) among in[0..n) and fills out.
 * Returns 0; -CS_ERR_BAD_PARAMS with a message naming the query and parameter when the count
 * is wrong, the value does not fit its type (the messages of cs_params_canon), or it is NULL
 * (a NULL key lives on no shard). No allocation; never blocks. */
int cs_params_shard_key(const cs_query_def *q, const cs_value *in, uint32_t n, cs_shard_key *out,
        char *err, size_t errlen) __attribute__((warn_unused_result));

/* cs_hex_digit (textutil.h) is what params.c, encode.c and fence.c read hex digits with. */

/* ---- Date/time text, shared with encode.c ------------------------------------------------ */

/* A PostgreSQL timestamp: seconds since the Unix epoch (floor) and the microseconds within
 * that second, or an infinity. */
typedef struct cs_pg_time {
	int64_t sec;
	uint32_t usec; /* 0..999999 */
	int inf;       /* 0, +1 = infinity, -1 = -infinity (sec/usec then 0) */
} cs_pg_time;

enum cs_pg_zone {
	CS_ZONE_NONE = 0,     /* timestamp without time zone: a zone is an error */
	CS_ZONE_REQUIRED = 1, /* timestamptz: "Z" or a numeric offset must be present */
};

/* Parses ISO date/time text "YYYY-MM-DD[ T]HH:MM:SS[.ffffff][zone][ BC]" or
 * "[+-]infinity" (any case) as PostgreSQL prints it with DateStyle=ISO (and as ISO 8601
 * clients write it). Years of 4 or more digits up to PostgreSQL's range; more than 6
 * fractional digits only when the extra ones are zeros. Returns true and fills *out, or
 * false. Pure. */
bool cs_pg_parse_timestamp(const char *s, size_t len, enum cs_pg_zone zone, cs_pg_time *out);

#endif
