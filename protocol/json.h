/* json.h - the one JSON writer of the tools (cachesvc-cli, cachesvc-warm, cachesvc-verify,
 * cs_load): string literals, numbers, and objects and arrays whose commas it places, written
 * into a cs_sb. Pure: no I/O; the caller prints the buffer.
 *
 * Strings: '"' and '\\' escaped, \b \f \n \r \t by name, other bytes below 0x20 as \u00XX;
 * valid UTF-8 is copied and each byte of invalid UTF-8 becomes \ufffd, so the output is
 * valid JSON whatever the input holds. */
#ifndef CS_JSON_H
#define CS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

/* Nesting deeper than this is not tracked (commas stay right up to it). */
#define CS_JSON_MAX_DEPTH 32

typedef struct cs_json {
	cs_sb *sb;
	int depth;                            /* open objects and arrays */
	bool more[CS_JSON_MAX_DEPTH + 1];     /* a value was written at this depth: next needs ',' */
	bool after_key;                       /* a key was written: its value takes no comma */
	bool big_int_strings;                 /* cs_json_int beyond +-2^53 writes a string */
} cs_json;

/* A writer appending to sb (which the caller owns). big_int_strings: integers that a
 * JavaScript number cannot hold exactly (beyond +-2^53) are written as strings, as
 * cachesvc-cli --json-int string does. */
void cs_json_init(cs_json *j, cs_sb *sb, bool big_int_strings);

/* Containers. cs_json_key writes the comma when needed and "key": ; the next value is the
 * key's. Values written outside an object's key or an array are top-level values. */
void cs_json_object(cs_json *j);
void cs_json_object_end(cs_json *j);
void cs_json_array(cs_json *j);
void cs_json_array_end(cs_json *j);
void cs_json_key(cs_json *j, const char *key);

/* Values. */
void cs_json_str(cs_json *j, const char *s);            /* NULL writes null */
void cs_json_strn(cs_json *j, const char *p, size_t n);
void cs_json_int(cs_json *j, int64_t v);
void cs_json_uint(cs_json *j, uint64_t v);
void cs_json_bool(cs_json *j, bool v);
void cs_json_null(cs_json *j);
/* A double with `decimals` digits after the point ("%.*f"). */
void cs_json_fixed(cs_json *j, double v, int decimals);
/* A double in the fewest of %.15g / %.17g digits that read back exactly; NaN and the
 * infinities as the strings "NaN", "Infinity", "-Infinity". */
void cs_json_double(cs_json *j, double v);

/* A key and its value in one call (cs_json_key, then the value). */
void cs_json_kv_str(cs_json *j, const char *key, const char *s);
void cs_json_kv_int(cs_json *j, const char *key, int64_t v);
void cs_json_kv_uint(cs_json *j, const char *key, uint64_t v);
void cs_json_kv_bool(cs_json *j, const char *key, bool v);
void cs_json_kv_fixed(cs_json *j, const char *key, double v, int decimals);

/* Starts a value the caller writes itself into j->sb (with cs_json_quote and the cs_sb
 * functions): places the comma as cs_json_str would. */
void cs_json_value(cs_json *j);

/* Appends p[0..n) to sb as a JSON string literal (quotes included). */
void cs_json_quote(cs_sb *sb, const char *p, size_t n);
/* Appends v as %.15g, or %.17g when that does not read back as v; NaN and the infinities
 * as the bare words NaN, Infinity, -Infinity (not JSON: for text output). */
void cs_fmt_double(cs_sb *sb, double v);

#endif
