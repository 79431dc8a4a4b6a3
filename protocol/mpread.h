/* mpread.h - a small bounds-checked, allocation-free msgpack reader (internal to protocol/).
 *
 * msgpack-c's unpacker allocates arrays from their header counts before the elements
 * arrive; this reader never allocates and rejects any count or length that the bytes
 * remaining could not possibly hold, so a decoder built on it does O(input) work. */
#ifndef CS_MPREAD_H
#define CS_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_proto.h"

typedef struct mp_reader {
	const uint8_t *p;   /* next byte */
	const uint8_t *end; /* one past the last byte */
} mp_reader;

/* Kinds of object header. Integers: MP_UINT for the unsigned formats and positive fixint,
 * MP_INT for the signed formats (whatever the sign of the value). */
enum mp_kind {
	MP_NIL,
	MP_BOOL,
	MP_UINT,
	MP_INT,
	MP_FLOAT,
	MP_STR,
	MP_BIN,
	MP_ARRAY,
	MP_MAP,
	MP_EXT
};

typedef struct mp_obj {
	uint8_t kind;        /* enum mp_kind */
	int8_t ext_type;     /* MP_EXT */
	uint32_t len;        /* STR/BIN/EXT byte length; ARRAY/MAP element/pair count */
	const uint8_t *data; /* STR/BIN/EXT payload (inside the input) */
	union {
		bool b;
		uint64_t u;
		int64_t i;
		double f;
	} v;
} mp_obj;

/* Reader errors (negative). */
enum { MP_ETRUNC = -1, MP_EBADBYTE = -2, MP_ECOUNT = -3, MP_EDEPTH = -4 };

static inline void mp_init(mp_reader *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->end = p + len;
}

static inline size_t mp_left(const mp_reader *r)
{
	return (size_t)(r->end - r->p);
}

/* Reads one object header. Str/bin/ext payloads are skipped (o->data points at them);
 * array/map elements are not. A count larger than the remaining bytes could hold (one
 * byte per element, two per pair) is MP_ECOUNT. Returns 0 or an MP_E* code; on error the
 * reader position is unspecified. */
int mp_next(mp_reader *r, mp_obj *o);

/* Skips one whole object that sits at nesting depth `depth` (the body is depth 1).
 * Objects deeper than CS_PROTO_MAX_DEPTH are MP_EDEPTH. Returns 0 or an MP_E* code. */
int mp_skip(mp_reader *r, int depth);

/* Same as mp_skip for the elements of a container whose header `o` was just read at
 * depth `depth`. */
int mp_skip_children(mp_reader *r, const mp_obj *o, int depth);

/* Integer views: true when the object is an integer that fits. */
bool mp_as_u64(const mp_obj *o, uint64_t *out);
bool mp_as_i64(const mp_obj *o, int64_t *out);

/* Whether a STR object equals the NUL-terminated `s`. */
bool mp_str_eq(const mp_obj *o, const char *s);

/* Decodes a msgpack timestamp (ext -1, 4/8/12 bytes). False for any other ext or an
 * out-of-range nanosecond field. */
bool mp_timestamp(const mp_obj *o, int64_t *sec, uint32_t *nsec);

/* Converts a scalar object to a cs_value (str/bin borrowed). Returns 0, or
 * -CS_ERR_BAD_PARAMS for a uint64 above INT64_MAX, a non-timestamp ext or a container
 * (whose children are NOT skipped). */
int mp_to_value(const mp_obj *o, cs_value *out);

/* Human-readable text of an MP_E* code. */
const char *mp_strerror(int e);

/* Writes "fmt..." into err (if errlen > 0) and returns code; used by every decoder. */
int mp_fail(char *err, size_t errlen, int code, const char *fmt, ...) CS_PROTO_PRINTF(4, 5);

#endif
