/* mpread.c - a small bounds-checked, allocation-free msgpack reader (see mpread.h). */
#include "mpread.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

/* Consumes n bytes, returning where they start, or NULL if fewer remain. */
static const uint8_t *take(mp_reader *r, size_t n)
{
	if (mp_left(r) < n)
		return NULL;
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

/* Reads a payload of `len` bytes (str/bin/ext) after its header. */
static int payload(mp_reader *r, mp_obj *o, uint8_t kind, uint32_t len)
{
	o->kind = kind;
	o->len = len;
	o->data = take(r, len);
	return o->data ? 0 : MP_ETRUNC;
}

/* Checks a container count against what the remaining bytes could hold. */
static int container(mp_reader *r, mp_obj *o, uint8_t kind, uint32_t n)
{
	uint64_t need = kind == MP_MAP ? 2 * (uint64_t)n : n;
	o->kind = kind;
	o->len = n;
	return need > mp_left(r) ? MP_ECOUNT : 0;
}

/* Reads an ext of `len` payload bytes: type byte then payload. */
static int ext(mp_reader *r, mp_obj *o, uint32_t len)
{
	const uint8_t *t = take(r, 1);
	if (t == NULL)
		return MP_ETRUNC;
	o->ext_type = (int8_t)*t;
	return payload(r, o, MP_EXT, len);
}

int mp_next(mp_reader *r, mp_obj *o)
{
	const uint8_t *q = take(r, 1);
	if (q == NULL)
		return MP_ETRUNC;
	uint8_t c = *q;
	memset(o, 0, sizeof *o);
	if (c <= 0x7f) {
		o->kind = MP_UINT;
		o->v.u = c;
		return 0;
	}
	if (c >= 0xe0) {
		o->kind = MP_INT;
		o->v.i = (int8_t)c;
		return 0;
	}
	if ((c & 0xf0) == 0x80)
		return container(r, o, MP_MAP, c & 0x0f);
	if ((c & 0xf0) == 0x90)
		return container(r, o, MP_ARRAY, c & 0x0f);
	if ((c & 0xe0) == 0xa0)
		return payload(r, o, MP_STR, c & 0x1f);

	/* Fixed-size argument formats: the argument length by first byte. */
	static const uint8_t arglen[0x20] = {
	        [0x04] = 1,
	        [0x05] = 2,
	        [0x06] = 4, /* bin 8/16/32 */
	        [0x07] = 1,
	        [0x08] = 2,
	        [0x09] = 4, /* ext 8/16/32 */
	        [0x0a] = 4,
	        [0x0b] = 8, /* float 32/64 */
	        [0x0c] = 1,
	        [0x0d] = 2,
	        [0x0e] = 4,
	        [0x0f] = 8, /* uint */
	        [0x10] = 1,
	        [0x11] = 2,
	        [0x12] = 4,
	        [0x13] = 8, /* int */
	        [0x14] = 1,
	        [0x15] = 1,
	        [0x16] = 1,
	        [0x17] = 1,
	        [0x18] = 1, /* fixext (type) */
	        [0x19] = 1,
	        [0x1a] = 2,
	        [0x1b] = 4, /* str */
	        [0x1c] = 2,
	        [0x1d] = 4, /* array */
	        [0x1e] = 2,
	        [0x1f] = 4, /* map */
	};
	switch (c) {
	case 0xc0:
		o->kind = MP_NIL;
		return 0;
	case 0xc1:
		return MP_EBADBYTE;
	case 0xc2:
	case 0xc3:
		o->kind = MP_BOOL;
		o->v.b = c == 0xc3;
		return 0;
	default:
		break;
	}
	uint8_t n = arglen[c - 0xc0];
	if (c >= 0xd4 && c <= 0xd8) /* fixext: type byte, then 1/2/4/8/16 bytes */
		return ext(r, o, 1u << (c - 0xd4));
	const uint8_t *a = take(r, n);
	if (a == NULL)
		return MP_ETRUNC;
	uint32_t len = n == 1 ? a[0] : n == 2 ? be16(a) : n == 4 ? be32(a) : 0;
	switch (c) {
	case 0xc4:
	case 0xc5:
	case 0xc6:
		return payload(r, o, MP_BIN, len);
	case 0xc7:
	case 0xc8:
	case 0xc9:
		return ext(r, o, len);
	case 0xca: {
		uint32_t bits = be32(a);
		float f;
		memcpy(&f, &bits, sizeof f);
		o->kind = MP_FLOAT;
		o->v.f = f;
		return 0;
	}
	case 0xcb: {
		uint64_t bits = be64(a);
		memcpy(&o->v.f, &bits, sizeof o->v.f);
		o->kind = MP_FLOAT;
		return 0;
	}
	case 0xcc:
	case 0xcd:
	case 0xce:
		o->kind = MP_UINT;
		o->v.u = len;
		return 0;
	case 0xcf:
		o->kind = MP_UINT;
		o->v.u = be64(a);
		return 0;
	case 0xd0:
		o->kind = MP_INT;
		o->v.i = (int8_t)a[0];
		return 0;
	case 0xd1:
		o->kind = MP_INT;
		o->v.i = (int16_t)be16(a);
		return 0;
	case 0xd2:
		o->kind = MP_INT;
		o->v.i = (int32_t)be32(a);
		return 0;
	case 0xd3:
		o->kind = MP_INT;
		o->v.i = (int64_t)be64(a);
		return 0;
	case 0xd9:
	case 0xda:
	case 0xdb:
		return payload(r, o, MP_STR, len);
	case 0xdc:
	case 0xdd:
		return container(r, o, MP_ARRAY, len);
	default: /* 0xde, 0xdf */
		return container(r, o, MP_MAP, len);
	}
}

int mp_skip_children(mp_reader *r, const mp_obj *o, int depth)
{
	if (o->kind != MP_ARRAY && o->kind != MP_MAP)
		return 0;
	uint64_t n = o->kind == MP_MAP ? 2 * (uint64_t)o->len : o->len;
	for (uint64_t i = 0; i < n; i++) {
		int rc = mp_skip(r, depth + 1);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int mp_skip(mp_reader *r, int depth)
{
	if (depth > CS_PROTO_MAX_DEPTH)
		return MP_EDEPTH;
	mp_obj o;
	int rc = mp_next(r, &o);
	if (rc != 0)
		return rc;
	return mp_skip_children(r, &o, depth);
}

bool mp_as_u64(const mp_obj *o, uint64_t *out)
{
	if (o->kind == MP_UINT) {
		*out = o->v.u;
		return true;
	}
	if (o->kind == MP_INT && o->v.i >= 0) {
		*out = (uint64_t)o->v.i;
		return true;
	}
	return false;
}

bool mp_as_i64(const mp_obj *o, int64_t *out)
{
	if (o->kind == MP_INT) {
		*out = o->v.i;
		return true;
	}
	if (o->kind == MP_UINT && o->v.u <= (uint64_t)INT64_MAX) {
		*out = (int64_t)o->v.u;
		return true;
	}
	return false;
}

bool mp_str_eq(const mp_obj *o, const char *s)
{
	size_t n = strlen(s);
	return o->kind == MP_STR && o->len == n && memcmp(o->data, s, n) == 0;
}

bool mp_timestamp(const mp_obj *o, int64_t *sec, uint32_t *nsec)
{
	if (o->kind != MP_EXT || o->ext_type != -1)
		return false;
	uint32_t ns;
	int64_t s;
	switch (o->len) {
	case 4:
		ns = 0;
		s = be32(o->data);
		break;
	case 8: {
		uint64_t v = be64(o->data);
		ns = (uint32_t)(v >> 34);
		s = (int64_t)(v & 0x3ffffffffull);
		break;
	}
	case 12:
		ns = be32(o->data);
		s = (int64_t)be64(o->data + 4);
		break;
	default:
		return false;
	}
	if (ns > 999999999u)
		return false;
	*sec = s;
	*nsec = ns;
	return true;
}

int mp_to_value(const mp_obj *o, cs_value *out)
{
	memset(out, 0, sizeof *out);
	switch (o->kind) {
	case MP_NIL:
		out->type = CS_V_NIL;
		return 0;
	case MP_BOOL:
		out->type = CS_V_BOOL;
		out->u.b = o->v.b;
		return 0;
	case MP_UINT:
	case MP_INT:
		out->type = CS_V_INT;
		return mp_as_i64(o, &out->u.i) ? 0 : -CS_ERR_BAD_PARAMS;
	case MP_FLOAT:
		out->type = CS_V_FLOAT;
		out->u.f = o->v.f;
		return 0;
	case MP_STR:
	case MP_BIN:
		out->type = o->kind == MP_STR ? CS_V_STR : CS_V_BIN;
		out->u.s.p = (const char *)o->data;
		out->u.s.len = o->len;
		return 0;
	case MP_EXT:
		out->type = CS_V_TS;
		return mp_timestamp(o, &out->u.ts.sec, &out->u.ts.nsec) ? 0 : -CS_ERR_BAD_PARAMS;
	default:
		return -CS_ERR_BAD_PARAMS;
	}
}

const char *mp_strerror(int e)
{
	switch (e) {
	case MP_ETRUNC:
		return "truncated msgpack";
	case MP_EBADBYTE:
		return "invalid msgpack byte 0xc1";
	case MP_ECOUNT:
		return "array/map count exceeds the bytes remaining";
	case MP_EDEPTH:
		return "nesting deeper than " CS_PROTO_STR(CS_PROTO_MAX_DEPTH);
	default:
		return "msgpack error";
	}
}

int mp_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}
