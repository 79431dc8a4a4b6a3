/* encode.c - PGresult (text format) to the protocol's msgpack result object [cols, rows].
 *
 * Every value is parsed from PostgreSQL's text output and checked; input we do not
 * understand is an error, never a guess and never a crash. */
#include "encode.h"

#include "params.h" /* cs_pg_parse_timestamp */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL type OIDs (pg_type.dat; stable across releases). */
enum {
	OID_BOOL = 16,
	OID_BYTEA = 17,
	OID_CHAR = 18,
	OID_NAME = 19,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_OID = 26,
	OID_JSON = 114,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_BPCHAR = 1042,
	OID_VARCHAR = 1043,
	OID_TIMESTAMP = 1114,
	OID_TIMESTAMPTZ = 1184,
	OID_NUMERIC = 1700,
	OID_JSONB = 3802,
};

int cs_coltype_for_oid(unsigned oid)
{
	switch (oid) {
	case OID_BOOL:
		return CS_COL_BOOL;
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
		return CS_COL_INT;
	case OID_FLOAT4:
	case OID_FLOAT8:
		return CS_COL_FLOAT;
	case OID_TEXT:
	case OID_VARCHAR:
	case OID_BPCHAR:
	case OID_NAME:
	case OID_CHAR:
		return CS_COL_TEXT;
	case OID_BYTEA:
		return CS_COL_BYTEA;
	case OID_TIMESTAMP:
		return CS_COL_TIMESTAMP;
	case OID_TIMESTAMPTZ:
		return CS_COL_TIMESTAMPTZ;
	case OID_NUMERIC:
		return CS_COL_NUMERIC;
	case OID_JSON:
	case OID_JSONB:
		return CS_COL_JSON;
	default:
		return CS_COL_OTHER;
	}
}

/* ---- Value parsers (text output -> typed value) ------------------------------------------ */

static bool parse_i64(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i == n)
		return false;
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (lim - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
	return true;
}

/* float4/float8 output: decimal or exponent notation, NaN, Infinity, -Infinity. `s` is
 * NUL-terminated (PQgetvalue guarantees it) and n its length. */
static bool parse_f64(const char *s, size_t n, double *out)
{
	if (n == 3 && memcmp(s, "NaN", 3) == 0) {
		*out = NAN;
		return true;
	}
	if (n == 8 && memcmp(s, "Infinity", 8) == 0) {
		*out = INFINITY;
		return true;
	}
	if (n == 9 && memcmp(s, "-Infinity", 9) == 0) {
		*out = -INFINITY;
		return true;
	}
	bool digit = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			digit = true;
		else if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-')
			return false;
	}
	if (!digit)
		return false;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end != s + n || (errno == ERANGE && isinf(v)))
		return false;
	*out = v;
	return true;
}

static bool is_odigit(char c)
{
	return c >= '0' && c <= '7';
}

/* Decodes escape-format bytea (a doubled backslash for one, \ooo octal for others) into
 * out, at most max bytes (out NULL: count only); *used is the input consumed. Returns the bytes
 * produced, or -1 when malformed. */
static long long bytea_unescape(const char *s, size_t n, uint8_t *out, size_t max, size_t *used)
{
	size_t k = 0, i = 0;
	while (i < n && k < max) {
		uint8_t c;
		if (s[i] != '\\') {
			c = (uint8_t)s[i];
			i++;
		} else if (i + 1 < n && s[i + 1] == '\\') {
			c = '\\';
			i += 2;
		} else if (i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' && is_odigit(s[i + 2]) &&
			   is_odigit(s[i + 3])) {
			c = (uint8_t)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 |
				      (s[i + 3] - '0'));
			i += 4;
		} else {
			return -1;
		}
		if (out != NULL)
			out[k] = c;
		k++;
	}
	*used = i;
	return (long long)k;
}

/* ---- Packing ----------------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -CS_ERR_INTERNAL;
}

/* Packs bytea text output (hex "\\x0a1b", or the escape format) as bin, decoding in
 * stack-sized chunks after a validating pass. Returns as pack_cell. */
static int pack_bytea(msgpack_packer *pk, const char *s, size_t n)
{
	uint8_t chunk[1024];
	if (n >= 2 && s[0] == '\\' && s[1] == 'x') {
		s += 2;
		n -= 2;
		if (n % 2 != 0 || n / 2 > UINT32_MAX)
			return 1;
		for (size_t i = 0; i < n; i++)
			if (cs_hex_digit(s[i]) < 0)
				return 1;
		if (msgpack_pack_bin(pk, n / 2) != 0)
			return -1;
		for (size_t pos = 0; pos < n;) {
			size_t k = (n - pos) / 2 < sizeof chunk ? (n - pos) / 2 : sizeof chunk;
			for (size_t j = 0; j < k; j++)
				chunk[j] = (uint8_t)(cs_hex_digit(s[pos + 2 * j]) << 4 |
						     cs_hex_digit(s[pos + 2 * j + 1]));
			if (msgpack_pack_bin_body(pk, chunk, k) != 0)
				return -1;
			pos += 2 * k;
		}
		return 0;
	}
	size_t used;
	long long total = bytea_unescape(s, n, NULL, SIZE_MAX, &used);
	if (total < 0 || (unsigned long long)total > UINT32_MAX)
		return 1;
	if (msgpack_pack_bin(pk, (size_t)total) != 0)
		return -1;
	for (size_t pos = 0; pos < n; pos += used) {
		long long k = bytea_unescape(s + pos, n - pos, chunk, sizeof chunk, &used);
		if (k < 0)
			return 1;
		if (msgpack_pack_bin_body(pk, chunk, (size_t)k) != 0)
			return -1;
	}
	return 0;
}

/* Packs one non-NULL value. Returns 0, -1 when the packer failed, 1 when the text does not
 * parse as the column's type. */
static int pack_cell(msgpack_packer *pk, int type, const char *s, size_t n)
{
	switch (type) {
	case CS_COL_BOOL:
		if (n == 1 && (s[0] == 't' || s[0] == 'f'))
			return s[0] == 't' ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		return 1;
	case CS_COL_INT: {
		int64_t v;
		if (!parse_i64(s, n, &v))
			return 1;
		return msgpack_pack_int64(pk, v);
	}
	case CS_COL_FLOAT: {
		double v;
		if (!parse_f64(s, n, &v))
			return 1;
		return msgpack_pack_double(pk, v);
	}
	case CS_COL_BYTEA:
		return pack_bytea(pk, s, n);
	case CS_COL_TIMESTAMP:
	case CS_COL_TIMESTAMPTZ: {
		cs_pg_time t;
		if (!cs_pg_parse_timestamp(
			    s, n, type == CS_COL_TIMESTAMPTZ ? CS_ZONE_REQUIRED : CS_ZONE_NONE, &t))
			return 1;
		msgpack_timestamp ts;
		if (t.inf != 0) {
			ts.tv_sec = t.inf > 0 ? INT64_MAX : INT64_MIN;
			ts.tv_nsec = 0;
		} else {
			ts.tv_sec = t.sec;
			ts.tv_nsec = t.usec * 1000;
		}
		return msgpack_pack_timestamp(pk, &ts);
	}
	default:
		if (n > UINT32_MAX)
			return 1;
		return msgpack_pack_str_with_body(pk, s, n);
	}
}

static const char *type_word(int type)
{
	switch (type) {
	case CS_COL_BOOL:
		return "bool";
	case CS_COL_INT:
		return "integer";
	case CS_COL_FLOAT:
		return "float";
	case CS_COL_BYTEA:
		return "bytea";
	case CS_COL_TIMESTAMP:
		return "timestamp";
	case CS_COL_TIMESTAMPTZ:
		return "timestamptz";
	default:
		return "text";
	}
}

int cs_encode_result(const PGresult *res, cs_buf *out, char *err, size_t errlen)
{
	if (res == NULL)
		return fail(err, errlen, "no result");
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE)
		return fail(err, errlen, "result status %s is not a row set", PQresStatus(st));
	int ncols = PQnfields(res), nrows = PQntuples(res);
	if (ncols < 0 || nrows < 0)
		return fail(err, errlen, "malformed result");
	if (ncols > CS_ENCODE_MAX_COLS)
		return fail(err, errlen, "%d columns, at most %d can be encoded", ncols,
			CS_ENCODE_MAX_COLS);
	uint8_t types[CS_ENCODE_MAX_COLS];
	for (int j = 0; j < ncols; j++) {
		const char *name = PQfname(res, j);
		if (name == NULL || strlen(name) > CS_PROTO_MAX_NAME)
			return fail(err, errlen, "column %d: name missing or longer than %d bytes",
				j + 1, CS_PROTO_MAX_NAME);
		if (PQfformat(res, j) != 0)
			return fail(err, errlen, "column %d (%s) is in binary format", j + 1, name);
		types[j] = (uint8_t)cs_coltype_for_oid((unsigned)PQftype(res, j));
	}

	size_t start = out->len;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, cs_buf_msgpack_write);
	int rc = cs_proto_pack_result_begin(&pk, (uint32_t)ncols);
	for (int j = 0; j < ncols && rc == 0; j++)
		rc = cs_proto_pack_col(&pk, PQfname(res, j), types[j]);
	if (rc == 0)
		rc = msgpack_pack_array(&pk, (size_t)nrows);
	for (int i = 0; i < nrows && rc == 0 && !out->failed; i++) {
		rc = msgpack_pack_array(&pk, (size_t)ncols);
		for (int j = 0; j < ncols && rc == 0; j++) {
			if (PQgetisnull(res, i, j)) {
				rc = msgpack_pack_nil(&pk);
				continue;
			}
			const char *s = PQgetvalue(res, i, j);
			int n = PQgetlength(res, i, j);
			if (s == NULL || n < 0) {
				cs_buf_truncate(out, start);
				return fail(
					err, errlen, "row %d column %d: no value", i + 1, j + 1);
			}
			rc = pack_cell(&pk, types[j], s, (size_t)n);
			if (rc > 0) {
				cs_buf_truncate(out, start);
				return fail(err, errlen,
					"row %d column %d (%s): bad %s value \"%.40s\"%s", i + 1,
					j + 1, PQfname(res, j), type_word(types[j]), s,
					n > 40 ? "..." : "");
			}
		}
	}
	if (rc != 0 || out->failed) {
		cs_buf_truncate(out, start);
		return -CS_ERR_TOO_LARGE;
	}
	return 0;
}
