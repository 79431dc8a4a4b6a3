/* proto_reply.c - reply body decoders (client side) and the result validator.
 *
 * A result is walked twice over a private copy of its bytes: the first pass validates the
 * whole structure and every limit without allocating and counts columns and rows; only
 * then are the index arrays allocated, at most a few bytes per input byte, and filled by
 * the second pass. Values are decoded lazily from their recorded offsets. */
#include "cs_proto.h"
#include "mpread.h"

#include <stdlib.h>
#include <string.h>

#define CS_PROTO_MAX_COLS 1664 /* PostgreSQL's MaxTupleAttributeNumber */

struct cs_result {
	int err;      /* 0, or the negated code of an MGET error item */
	char *errmsg; /* NUL-terminated, for error items */
	cs_meta meta;
	uint32_t ncols, nrows;
	uint8_t *coltypes;
	uint32_t *name_off; /* into names */
	char *names;        /* NUL-terminated column names, back to back */
	uint32_t *cells;    /* nrows * ncols offsets into raw, row-major */
	uint8_t *raw;       /* private copy of the [meta, result] bytes */
	size_t raw_len;
};

/* Pass-two outputs; NULL during the validation pass. */
typedef struct result_sink {
	const uint8_t *base;
	uint8_t *coltypes;
	uint32_t *name_off;
	char *names;
	size_t names_len;
	uint32_t *cells;
} result_sink;

static int perr(char *err, size_t errlen, int rc)
{
	return mp_fail(err, errlen, -CS_ERR_PROTOCOL, "%s", mp_strerror(rc));
}

#define NEXT(r, o)                                                                                 \
	do {                                                                                       \
		int rc_ = mp_next((r), (o));                                                       \
		if (rc_ != 0)                                                                      \
			return perr(err, errlen, rc_);                                             \
	} while (0)

#define BAD(...) mp_fail(err, errlen, -CS_ERR_PROTOCOL, __VA_ARGS__)

static bool depth_ok(int depth)
{
	return depth <= CS_PROTO_MAX_DEPTH;
}

/* The result object [cols, rows] at nesting depth `depth`. */
static int walk_result(mp_reader *r, int depth, uint32_t *ncols, uint32_t *nrows, result_sink *s,
        char *err, size_t errlen)
{
	mp_obj o, c, v;
	if (!depth_ok(depth + 3))
		return BAD("%s", mp_strerror(MP_EDEPTH));
	NEXT(r, &o);
	if (o.kind != MP_ARRAY || o.len != 2)
		return BAD("result must be an array of 2 (cols, rows)");
	NEXT(r, &o);
	if (o.kind != MP_ARRAY)
		return BAD("result columns must be an array");
	if (o.len > CS_PROTO_MAX_COLS)
		return BAD("%u columns, the limit is %d", o.len, CS_PROTO_MAX_COLS);
	*ncols = o.len;
	for (uint32_t i = 0; i < *ncols; i++) {
		NEXT(r, &c);
		if (c.kind != MP_ARRAY || c.len != 2)
			return BAD("column %u must be [name, type]", i);
		NEXT(r, &v);
		if (v.kind != MP_STR || v.len > CS_PROTO_MAX_NAME)
			return BAD("column %u: name must be a string of at most %d bytes", i,
			        CS_PROTO_MAX_NAME);
		if (s != NULL) {
			s->name_off[i] = (uint32_t)s->names_len;
			memcpy(s->names + s->names_len, v.data, v.len);
			s->names_len += v.len;
			s->names[s->names_len++] = '\0';
		}
		uint64_t t;
		NEXT(r, &v);
		if (!mp_as_u64(&v, &t) || t < 1 || t > 255)
			return BAD("column %u: type must be an integer 1..255", i);
		if (s != NULL)
			s->coltypes[i] = (uint8_t)t;
	}
	NEXT(r, &o);
	if (o.kind != MP_ARRAY)
		return BAD("result rows must be an array");
	*nrows = o.len;
	for (uint32_t i = 0; i < *nrows; i++) {
		NEXT(r, &o);
		if (o.kind != MP_ARRAY || o.len != *ncols)
			return BAD("row %u must be an array of %u values", i, *ncols);
		for (uint32_t j = 0; j < *ncols; j++) {
			if (s != NULL)
				s->cells[(size_t)i * *ncols + j] = (uint32_t)(r->p - s->base);
			cs_value cv;
			NEXT(r, &v);
			if (mp_to_value(&v, &cv) != 0)
				return BAD("row %u column %u: not a scalar value", i, j);
		}
	}
	return 0;
}

int cs_proto_check_result(const uint8_t *p, size_t len, char *err, size_t errlen)
{
	mp_reader r;
	uint32_t ncols, nrows;
	mp_init(&r, p, len);
	int rc = walk_result(&r, 3, &ncols, &nrows, NULL, err, errlen);
	if (rc != 0)
		return rc;
	if (mp_left(&r) != 0)
		return BAD("trailing bytes after the result");
	return 0;
}

/* The meta map, sitting at nesting depth `depth`: src, lsn, age and stale are required;
 * "stored" (bool) is optional; any other str key is skipped with its value (within the
 * depth and length limits), so servers can add meta keys. A duplicate known key, a key
 * that is not a str, or a known key of the wrong type is a protocol error. */
static int read_meta(mp_reader *r, int depth, cs_meta *m, char *err, size_t errlen)
{
	enum { K_SRC, K_LSN, K_AGE, K_STALE, K_STORED };
	static const char *const keys[] = {"src", "lsn", "age", "stale", "stored", NULL};
	const unsigned required = (1u << K_SRC) | (1u << K_LSN) | (1u << K_AGE) | (1u << K_STALE);
	mp_obj o, k, v;
	if (!depth_ok(depth + 1))
		return BAD("%s", mp_strerror(MP_EDEPTH));
	NEXT(r, &o);
	if (o.kind != MP_MAP)
		return BAD("meta must be a map");
	unsigned seen = 0;
	m->stored = CS_STORED_UNSAID;
	for (uint32_t i = 0; i < o.len; i++) {
		NEXT(r, &k);
		if (k.kind != MP_STR)
			return BAD("meta: keys must be strings");
		int key = -1;
		for (int j = 0; keys[j]; j++)
			if (mp_str_eq(&k, keys[j]))
				key = j;
		NEXT(r, &v);
		if (key < 0) { /* unknown: skip the value and anything inside it */
			int rc = mp_skip_children(r, &v, depth + 1);
			if (rc != 0)
				return perr(err, errlen, rc);
			continue;
		}
		if (seen & (1u << key))
			return BAD("meta: duplicate key \"%s\"", keys[key]);
		seen |= 1u << key;
		uint64_t u = 0;
		if (key == K_STALE || key == K_STORED) {
			if (v.kind != MP_BOOL)
				return BAD("meta: \"%s\" must be a boolean", keys[key]);
			if (key == K_STALE)
				m->stale = v.v.b;
			else
				m->stored = v.v.b ? CS_STORED_YES : CS_STORED_NO;
			continue;
		}
		if (!mp_as_u64(&v, &u))
			return BAD("meta: \"%s\" must be an unsigned integer", keys[key]);
		if (key == K_SRC) {
			if (u > CS_SRC_PRIMARY)
				return BAD("meta: src %llu out of range", (unsigned long long)u);
			m->src = (uint8_t)u;
		} else if (key == K_LSN) {
			m->lsn = u;
		} else {
			m->age_ms = u;
		}
	}
	if ((seen & required) != required)
		return BAD("meta needs src, lsn, age and stale");
	return 0;
}

void cs_result_free(cs_result *r)
{
	if (r == NULL)
		return;
	free(r->errmsg);
	free(r->coltypes);
	free(r->name_off);
	free(r->names);
	free(r->cells);
	free(r->raw);
	free(r);
}

cs_result *cs_result_new_error(int code, const char *msg, size_t msg_len)
{
	cs_result *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->err = code < 0 ? code : -code;
	if (r->err == 0)
		r->err = -CS_ERR_INTERNAL;
	r->errmsg = malloc(msg_len + 1);
	if (r->errmsg == NULL) {
		free(r);
		return NULL;
	}
	memcpy(r->errmsg, msg, msg_len);
	r->errmsg[msg_len] = '\0';
	return r;
}

/* Decodes [meta, result] held in p[0..len), the item sitting at nesting depth `depth`. */
static int decode_item(
        const uint8_t *p, size_t len, int depth, cs_result **out, char *err, size_t errlen)
{
	*out = NULL;
	if (len > UINT32_MAX)
		return BAD("result too large");
	cs_result *res = calloc(1, sizeof *res);
	if (res == NULL)
		return mp_fail(err, errlen, -CS_ERR_INTERNAL, "out of memory");
	res->raw = malloc(len ? len : 1);
	if (res->raw == NULL) {
		free(res);
		return mp_fail(err, errlen, -CS_ERR_INTERNAL, "out of memory");
	}
	memcpy(res->raw, p, len);
	res->raw_len = len;

	mp_reader r;
	mp_obj o;
	int rc;
	mp_init(&r, res->raw, len);
	if ((rc = mp_next(&r, &o)) != 0) {
		rc = perr(err, errlen, rc);
		goto fail;
	}
	if (o.kind != MP_ARRAY || o.len != 2) {
		rc = BAD("reply must be [meta, result]");
		goto fail;
	}
	if ((rc = read_meta(&r, depth + 1, &res->meta, err, errlen)) != 0)
		goto fail;
	const uint8_t *result_at = r.p;
	if ((rc = walk_result(&r, depth + 1, &res->ncols, &res->nrows, NULL, err, errlen)) != 0)
		goto fail;
	if (mp_left(&r) != 0) {
		rc = BAD("trailing bytes after the result");
		goto fail;
	}
	/* Validated: every cell took at least one byte, every name at most its bytes. */
	size_t ncells = (size_t)res->nrows * res->ncols;
	size_t names_cap = (size_t)(r.p - result_at) + res->ncols;
	result_sink s = {res->raw, NULL, NULL, NULL, 0, NULL};
	s.coltypes = res->coltypes = malloc(res->ncols ? res->ncols : 1);
	s.name_off = res->name_off = malloc(res->ncols ? res->ncols * sizeof(uint32_t) : 1);
	s.names = res->names = malloc(names_cap ? names_cap : 1);
	s.cells = res->cells = malloc(ncells ? ncells * sizeof(uint32_t) : 1);
	if (!res->coltypes || !res->name_off || !res->names || !res->cells) {
		rc = mp_fail(err, errlen, -CS_ERR_INTERNAL, "out of memory");
		goto fail;
	}
	uint32_t nc, nr;
	mp_init(&r, result_at, len - (size_t)(result_at - res->raw));
	if ((rc = walk_result(&r, depth + 1, &nc, &nr, &s, err, errlen)) != 0)
		goto fail;
	*out = res;
	return 0;
fail:
	cs_result_free(res);
	return rc;
}

int cs_result_decode(const uint8_t *body, uint32_t len, cs_result **out, char *err, size_t errlen)
{
	return decode_item(body, len, 1, out, err, errlen);
}

/* An MGET error item {"code": code, "msg": str}, whose map header `m` was just read.
 * Servers before the error frame's shape was adopted sent the code as "err": either name is
 * accepted, but only one of them (a second code is a duplicate key). */
static int read_item_error(mp_reader *r, const mp_obj *m, cs_result **out, char *err, size_t errlen)
{
	uint64_t code = 0;
	const char *msg = NULL;
	uint32_t msg_len = 0;
	unsigned seen = 0;
	mp_obj k, v;
	for (uint32_t i = 0; i < m->len; i++) {
		NEXT(r, &k);
		NEXT(r, &v);
		if ((mp_str_eq(&k, "code") || mp_str_eq(&k, "err")) && !(seen & 1u)) {
			if (!mp_as_u64(&v, &code) || code < 1 || code > 255)
				return BAD("item error code must be 1..255");
			seen |= 1u;
		} else if (mp_str_eq(&k, "msg") && !(seen & 2u)) {
			if (v.kind != MP_STR || v.len > CS_PROTO_MAX_MSG)
				return BAD(
				        "item error message must be a string of at most %d bytes",
				        CS_PROTO_MAX_MSG);
			msg = (const char *)v.data;
			msg_len = v.len;
			seen |= 2u;
		} else {
			return BAD("item error: unknown or duplicate key");
		}
	}
	if (seen != 3u)
		return BAD("item error needs code and msg");
	*out = cs_result_new_error(-(int)code, msg, msg_len);
	return *out ? 0 : mp_fail(err, errlen, -CS_ERR_INTERNAL, "out of memory");
}

int cs_result_decode_mget(const uint8_t *body, uint32_t len, cs_result **out, uint32_t max,
        uint32_t *n, char *err, size_t errlen)
{
	mp_reader r;
	mp_obj a, o;
	int rc = 0;
	uint32_t i = 0;
	*n = 0;
	mp_init(&r, body, len);
	NEXT(&r, &a);
	if (a.kind != MP_ARRAY)
		return BAD("MGET reply must be an array");
	if (a.len > max || a.len > CS_PROTO_MAX_MGET)
		return BAD("MGET reply of %u items, expected at most %u", a.len, max);
	for (i = 0; i < a.len; i++) {
		const uint8_t *start = r.p;
		if ((rc = mp_next(&r, &o)) != 0) {
			rc = perr(err, errlen, rc);
			break;
		}
		if (o.kind == MP_MAP) {
			if ((rc = read_item_error(&r, &o, &out[i], err, errlen)) != 0)
				break;
			continue;
		}
		if (o.kind != MP_ARRAY) {
			rc = BAD("MGET item %u must be [meta, result] or an error map", i);
			break;
		}
		r.p = start;
		if ((rc = mp_skip(&r, 2)) != 0) {
			rc = perr(err, errlen, rc);
			break;
		}
		if ((rc = decode_item(start, (size_t)(r.p - start), 2, &out[i], err, errlen)) != 0)
			break;
	}
	if (rc == 0 && mp_left(&r) != 0)
		rc = BAD("trailing bytes after the MGET reply");
	if (rc != 0) {
		for (uint32_t j = 0; j < i && j < a.len; j++)
			cs_result_free(out[j]);
		return rc;
	}
	*n = a.len;
	return 0;
}

/* ---- Accessors --------------------------------------------------------------------------- */

int cs_result_error(const cs_result *r, const char **msg)
{
	if (msg != NULL)
		*msg = r->errmsg ? r->errmsg : "";
	return r->err;
}

const cs_meta *cs_result_meta(const cs_result *r)
{
	return &r->meta;
}

uint32_t cs_result_ncols(const cs_result *r)
{
	return r->ncols;
}

uint32_t cs_result_nrows(const cs_result *r)
{
	return r->nrows;
}

const char *cs_result_col_name(const cs_result *r, uint32_t col)
{
	return col < r->ncols ? r->names + r->name_off[col] : NULL;
}

int cs_result_col_type(const cs_result *r, uint32_t col)
{
	return col < r->ncols ? r->coltypes[col] : 0;
}

int cs_result_value(const cs_result *r, uint32_t row, uint32_t col, cs_value *out)
{
	if (row >= r->nrows || col >= r->ncols)
		return -CS_ERR_BAD_PARAMS;
	size_t off = r->cells[(size_t)row * r->ncols + col];
	mp_reader rd;
	mp_obj o;
	mp_init(&rd, r->raw + off, r->raw_len - off);
	if (mp_next(&rd, &o) != 0 || mp_to_value(&o, out) != 0)
		return -CS_ERR_INTERNAL; /* cannot happen: validated when decoded */
	return 0;
}

/* Starts reading a reply body: true when its top object reads and is of `kind`. */
static bool body_open(mp_reader *r, const uint8_t *body, uint32_t len, mp_obj *top, int kind)
{
	mp_init(r, body, len);
	return mp_next(r, top) == 0 && (int)top->kind == kind;
}

/* Reads a map entry: true when both the key and the value read. */
static bool map_pair(mp_reader *r, mp_obj *k, mp_obj *v)
{
	return mp_next(r, k) == 0 && mp_next(r, v) == 0;
}

/* ---- Small replies ----------------------------------------------------------------------- */

int cs_proto_decode_error(
        const uint8_t *body, uint32_t len, int *code, const char **msg, uint32_t *msg_len)
{
	mp_reader r;
	mp_obj m, k, v;
	uint64_t c = 0;
	unsigned seen = 0;
	if (!body_open(&r, body, len, &m, MP_MAP))
		return -CS_ERR_PROTOCOL;
	for (uint32_t i = 0; i < m.len; i++) {
		if (!map_pair(&r, &k, &v))
			return -CS_ERR_PROTOCOL;
		if (mp_str_eq(&k, "code") && !(seen & 1u)) {
			if (!mp_as_u64(&v, &c) || c < 1 || c > 255)
				return -CS_ERR_PROTOCOL;
			seen |= 1u;
		} else if (mp_str_eq(&k, "msg") && !(seen & 2u)) {
			if (v.kind != MP_STR || v.len > CS_PROTO_MAX_MSG)
				return -CS_ERR_PROTOCOL;
			*msg = (const char *)v.data;
			*msg_len = v.len;
			seen |= 2u;
		} else {
			return -CS_ERR_PROTOCOL;
		}
	}
	if (seen != 3u || mp_left(&r) != 0)
		return -CS_ERR_PROTOCOL;
	*code = (int)c;
	return 0;
}

int cs_proto_decode_hello_reply(const uint8_t *body, uint32_t len, uint32_t *version,
        const char **server, uint32_t *server_len, uint32_t *max_frame)
{
	mp_reader r;
	mp_obj m, k, v;
	uint64_t u;
	unsigned seen = 0;
	if (!body_open(&r, body, len, &m, MP_MAP))
		return -CS_ERR_PROTOCOL;
	for (uint32_t i = 0; i < m.len; i++) {
		if (!map_pair(&r, &k, &v))
			return -CS_ERR_PROTOCOL;
		if (mp_str_eq(&k, "v") && !(seen & 1u) && mp_as_u64(&v, &u) && u <= UINT32_MAX) {
			*version = (uint32_t)u;
			seen |= 1u;
		} else if (mp_str_eq(&k, "server") && !(seen & 2u) && v.kind == MP_STR &&
		           v.len <= CS_PROTO_MAX_NAME) {
			*server = (const char *)v.data;
			*server_len = v.len;
			seen |= 2u;
		} else if (mp_str_eq(&k, "max_frame") && !(seen & 4u) && mp_as_u64(&v, &u) &&
		           u <= UINT32_MAX) {
			*max_frame = (uint32_t)u;
			seen |= 4u;
		} else {
			return -CS_ERR_PROTOCOL;
		}
	}
	return seen == 7u && mp_left(&r) == 0 ? 0 : -CS_ERR_PROTOCOL;
}

int cs_proto_decode_inval_reply(const uint8_t *body, uint32_t len, bool *whole_query, uint64_t *n)
{
	mp_reader r;
	mp_obj m, k, v;
	if (!body_open(&r, body, len, &m, MP_MAP) || m.len != 1)
		return -CS_ERR_PROTOCOL;
	if (!map_pair(&r, &k, &v) || !mp_as_u64(&v, n))
		return -CS_ERR_PROTOCOL;
	if (mp_str_eq(&k, "generation"))
		*whole_query = true;
	else if (mp_str_eq(&k, "deleted"))
		*whole_query = false;
	else
		return -CS_ERR_PROTOCOL;
	return mp_left(&r) == 0 ? 0 : -CS_ERR_PROTOCOL;
}

int cs_proto_decode_nil(const uint8_t *body, uint32_t len)
{
	return len == 1 && body[0] == 0xc0 ? 0 : -CS_ERR_PROTOCOL;
}

int cs_proto_decode_stats(
        const uint8_t *body, uint32_t len, cs_stat *out, uint32_t max, uint32_t *n)
{
	mp_reader r;
	mp_obj m, k, v;
	*n = 0;
	if (!body_open(&r, body, len, &m, MP_MAP))
		return -CS_ERR_PROTOCOL;
	if (m.len > max)
		return -CS_ERR_TOO_LARGE;
	for (uint32_t i = 0; i < m.len; i++) {
		if (mp_next(&r, &k) != 0 || k.kind != MP_STR || k.len > 2 * CS_PROTO_MAX_NAME)
			return -CS_ERR_PROTOCOL;
		if (mp_next(&r, &v) != 0)
			return -CS_ERR_PROTOCOL;
		cs_stat *s = &out[i];
		s->name = (const char *)k.data;
		s->name_len = k.len;
		s->is_float = v.kind == MP_FLOAT;
		s->i = 0;
		s->f = 0;
		if (s->is_float)
			s->f = v.v.f;
		else if (!mp_as_i64(&v, &s->i))
			return -CS_ERR_PROTOCOL;
	}
	if (mp_left(&r) != 0)
		return -CS_ERR_PROTOCOL;
	*n = m.len;
	return 0;
}

int cs_proto_decode_show_reply(
        const uint8_t *body, uint32_t len, uint32_t *nrows, cs_show_cell_cb *cb, void *priv)
{
	mp_reader r;
	mp_obj a, m, k, v;
	*nrows = 0;
	if (!body_open(&r, body, len, &a, MP_ARRAY))
		return -CS_ERR_PROTOCOL;
	for (uint32_t row = 0; row < a.len; row++) {
		if (mp_next(&r, &m) != 0 || m.kind != MP_MAP)
			return -CS_ERR_PROTOCOL;
		for (uint32_t i = 0; i < m.len; i++) {
			if (mp_next(&r, &k) != 0 || k.kind != MP_STR || k.len > 2 * CS_PROTO_MAX_NAME)
				return -CS_ERR_PROTOCOL;
			if (mp_next(&r, &v) != 0)
				return -CS_ERR_PROTOCOL;
			cs_value cv;
			if (v.kind != MP_NIL && v.kind != MP_BOOL && v.kind != MP_UINT &&
			        v.kind != MP_INT && v.kind != MP_FLOAT && v.kind != MP_STR)
				return -CS_ERR_PROTOCOL;
			if (mp_to_value(&v, &cv) != 0)
				return -CS_ERR_PROTOCOL;
			int rc = cb(priv, row, (const char *)k.data, k.len, &cv);
			if (rc != 0)
				return rc;
		}
	}
	if (mp_left(&r) != 0)
		return -CS_ERR_PROTOCOL;
	*nrows = a.len;
	return 0;
}
