/* proto_req.c - request body decoders (server side): allocation-free, validate while walking.
 *
 * Two classes of failure. A "hard" failure (malformed msgpack, wrong shape, unknown or
 * duplicate key, a broken limit, trailing bytes) is CS_ERR_PROTOCOL: the peer cannot be
 * trusted to frame the next request sensibly, so the connection closes. A "soft" failure
 * (a well-formed value the server cannot use: a parameter above INT64_MAX, an array as a
 * parameter, a tier out of range) is CS_ERR_BAD_PARAMS and the connection stays usable.
 * The walk always completes so that a hard failure anywhere in the body wins over a soft
 * one found earlier; the first soft failure's message is kept. */
#include "cs_proto.h"
#include "mpread.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct dctx {
	char *err;
	size_t errlen;
	int soft;          /* first soft failure (negated), 0 if none */
	long item;         /* >= 0: an MGET item's, the message starts "item <item>: " */
} dctx;

/* Writes "item N: " (in an MGET item) and the message into d->err. */
static void set_err(dctx *d, const char *fmt, va_list ap) CS_PROTO_PRINTF(2, 0);
static void set_err(dctx *d, const char *fmt, va_list ap)
{
	if (d->err != NULL && d->errlen > 0) {
		int n = d->item >= 0 ? snprintf(d->err, d->errlen, "item %ld: ", d->item) : 0;
		if (n >= 0 && (size_t)n < d->errlen)
			vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
	}
}

static int hard(dctx *d, const char *fmt, ...) CS_PROTO_PRINTF(2, 3);
static int hard(dctx *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_err(d, fmt, ap);
	va_end(ap);
	return -CS_ERR_PROTOCOL;
}

static void soft(dctx *d, const char *fmt, ...) CS_PROTO_PRINTF(2, 3);
static void soft(dctx *d, const char *fmt, ...)
{
	if (d->soft != 0)
		return;
	d->soft = -CS_ERR_BAD_PARAMS;
	va_list ap;
	va_start(ap, fmt);
	set_err(d, fmt, ap);
	va_end(ap);
}

static int next(mp_reader *r, mp_obj *o, dctx *d)
{
	int rc = mp_next(r, o);
	return rc == 0 ? 0 : hard(d, "%s", mp_strerror(rc));
}

/* Reads a map key, which must be a str (matched against the known keys by the caller). */
static int read_key(mp_reader *r, mp_obj *k, dctx *d)
{
	int rc = next(r, k, d);
	if (rc != 0)
		return rc;
	if (k->kind != MP_STR)
		return hard(d, "map keys must be strings");
	return 0;
}

/* Finds key k in names[]; returns its index, or reports an unknown/duplicate key. */
static int match_key(const mp_obj *k, const char *const *names, unsigned *seen, dctx *d)
{
	for (int i = 0; names[i] != NULL; i++) {
		if (!mp_str_eq(k, names[i]))
			continue;
		if (*seen & (1u << i))
			return hard(d, "duplicate key \"%s\"", names[i]);
		*seen |= 1u << i;
		return i;
	}
	return hard(
	        d, "unknown key \"%.*s\"", (int)(k->len > 32 ? 32 : k->len), (const char *)k->data);
}

/* Reads the next map key and matches it (match_key): the key's index, or an error. */
static int next_key(mp_reader *r, const char *const *names, unsigned *seen, dctx *d)
{
	mp_obj k;
	int rc = read_key(r, &k, d);
	return rc != 0 ? rc : match_key(&k, names, seen, d);
}

/* Starts reading a request body: its top object, which must be of `kind` (MP_MAP or
 * MP_ARRAY; `what` names the request in the message). 0, or the error. */
static int open_body(mp_reader *r, const uint8_t *body, uint32_t len, mp_obj *top, int kind,
        const char *what, dctx *d)
{
	mp_init(r, body, len);
	int rc = next(r, top, d);
	if (rc != 0)
		return rc;
	if ((int)top->kind != kind)
		return hard(d, "%s body must be %s", what, kind == MP_MAP ? "a map" : "an array");
	return 0;
}

/* "q": a query name of 1..CS_PROTO_MAX_NAME bytes. */
static int read_query(mp_reader *r, const char **q, uint32_t *qlen, dctx *d)
{
	mp_obj o;
	int rc = next(r, &o, d);
	if (rc != 0)
		return rc;
	if (o.kind != MP_STR)
		return hard(d, "\"q\" must be a string");
	if (o.len == 0 || o.len > CS_PROTO_MAX_NAME)
		return hard(d, "query name must be 1..%d bytes, got %u", CS_PROTO_MAX_NAME, o.len);
	*q = (const char *)o.data;
	*qlen = o.len;
	return 0;
}

/* "p": an array of at most CS_PROTO_MAX_PARAMS scalar values; the array sits at `depth`. */
static int read_params(mp_reader *r, int depth, cs_value *params, uint32_t *nparams, dctx *d)
{
	mp_obj o;
	int rc = next(r, &o, d);
	if (rc != 0)
		return rc;
	if (o.kind != MP_ARRAY)
		return hard(d, "\"p\" must be an array");
	if (o.len > CS_PROTO_MAX_PARAMS)
		return hard(d, "%u parameters, the limit is %d", o.len, CS_PROTO_MAX_PARAMS);
	if (depth + 1 > CS_PROTO_MAX_DEPTH && o.len > 0)
		return hard(d, "%s", mp_strerror(MP_EDEPTH));
	*nparams = o.len;
	for (uint32_t i = 0; i < o.len; i++) {
		mp_obj v;
		rc = next(r, &v, d);
		if (rc != 0)
			return rc;
		if (v.kind == MP_ARRAY || v.kind == MP_MAP) {
			rc = mp_skip_children(r, &v, depth + 1);
			if (rc != 0)
				return hard(d, "%s", mp_strerror(rc));
			soft(d, "parameter %u: arrays and maps are not supported", i + 1);
			params[i].type = CS_V_NIL;
			continue;
		}
		if (mp_to_value(&v, &params[i]) != 0) {
			if (v.kind == MP_EXT)
				soft(d, "parameter %u: unsupported ext type %d or bad timestamp",
				        i + 1, v.ext_type);
			else
				soft(d, "parameter %u: integer above INT64_MAX", i + 1);
			params[i].type = CS_V_NIL;
		}
	}
	return 0;
}

/* "shard": the shard of the read-your-writes token, a str of 1..CS_PROTO_MAX_SHARD bytes (a
 * hard limit, as for query names); a name with other bytes than A-Z a-z 0-9 _ . - can name
 * no shard: bad_params. */
static int read_shard(mp_reader *r, cs_get_req *out, dctx *d)
{
	mp_obj o;
	int rc = next(r, &o, d);
	if (rc != 0)
		return rc;
	if (o.kind != MP_STR)
		return hard(d, "\"shard\" must be a string");
	if (o.len == 0 || o.len > CS_PROTO_MAX_SHARD)
		return hard(d, "shard name must be 1..%d bytes, got %u", CS_PROTO_MAX_SHARD, o.len);
	if (!cs_proto_shard_name_ok((const char *)o.data, o.len)) {
		soft(d, "shard name may only contain A-Z a-z 0-9 _ . -");
		return 0;
	}
	out->shard = (const char *)o.data;
	out->shard_len = o.len;
	return 0;
}

/* A GET/REFRESH map sitting at nesting depth `depth`. */
static int read_get(mp_reader *r, int depth, cs_get_req *out, dctx *d)
{
	static const char *const keys[] = {"q", "p", "tier", "lsn", "bypass", "shard", NULL};
	mp_obj m, v;
	int rc = next(r, &m, d);
	if (rc != 0)
		return rc;
	if (m.kind != MP_MAP)
		return hard(d, "request body must be a map");
	out->query = NULL;
	out->query_len = 0;
	out->nparams = 0;
	out->tier = CS_TIER_DEFAULT;
	out->min_lsn = 0;
	out->bypass = false;
	out->shard = NULL;
	out->shard_len = 0;
	unsigned seen = 0;
	for (uint32_t i = 0; i < m.len; i++) {
		int key = next_key(r, keys, &seen, d);
		if (key < 0)
			return key;
		switch (key) {
		case 0:
			rc = read_query(r, &out->query, &out->query_len, d);
			break;
		case 1:
			rc = read_params(r, depth + 1, out->params, &out->nparams, d);
			break;
		case 2: {
			uint64_t t;
			if ((rc = next(r, &v, d)) != 0)
				break;
			if (!mp_as_u64(&v, &t)) {
				rc = hard(d, "\"tier\" must be an unsigned integer");
				break;
			}
			if (t > CS_TIER_BATCH)
				soft(d, "tier %llu out of range 0..2", (unsigned long long)t);
			else
				out->tier = (uint8_t)t;
			break;
		}
		case 3:
			if ((rc = next(r, &v, d)) != 0)
				break;
			if (!mp_as_u64(&v, &out->min_lsn))
				rc = hard(d, "\"lsn\" must be an unsigned integer");
			break;
		case 4:
			if ((rc = next(r, &v, d)) != 0)
				break;
			if (v.kind != MP_BOOL)
				rc = hard(d, "\"bypass\" must be a boolean");
			else
				out->bypass = v.v.b;
			break;
		default:
			rc = read_shard(r, out, d);
			break;
		}
		if (rc != 0)
			return rc;
	}
	if (out->query == NULL)
		return hard(d, "missing \"q\"");
	if (out->shard != NULL && out->min_lsn == 0) {
		soft(d, "\"shard\" names the shard of a read-your-writes token: it needs a nonzero "
		        "\"lsn\"");
		out->shard = NULL;
		out->shard_len = 0;
	}
	return 0;
}

static int finish(mp_reader *r, dctx *d, int rc)
{
	if (rc != 0)
		return rc;
	if (mp_left(r) != 0)
		return hard(d, "%zu trailing bytes after the body", mp_left(r));
	if (d->soft == 0 && d->err != NULL && d->errlen > 0)
		d->err[0] = '\0';
	return d->soft;
}

int cs_proto_decode_get(
        const uint8_t *body, uint32_t len, cs_get_req *out, char *err, size_t errlen)
{
	dctx d = {err, errlen, 0, -1};
	mp_reader r;
	mp_init(&r, body, len);
	return finish(&r, &d, read_get(&r, 1, out, &d));
}

int cs_proto_decode_mget(const uint8_t *body, uint32_t len, cs_get_req *items, uint32_t max_items,
        uint32_t *nitems, char *err, size_t errlen)
{
	dctx d = {err, errlen, 0, -1};
	mp_reader r;
	mp_obj a;
	*nitems = 0;
	int rc = open_body(&r, body, len, &a, MP_ARRAY, "MGET", &d);
	if (rc != 0)
		return rc;
	uint32_t limit = max_items < CS_PROTO_MAX_MGET ? max_items : CS_PROTO_MAX_MGET;
	if (a.len > limit)
		return hard(&d, "MGET of %u items, the limit is %u", a.len, limit);
	for (uint32_t i = 0; i < a.len; i++) {
		d.item = i; /* no snprintf per item: "item N: " is written only for an error */
		rc = read_get(&r, 2, &items[i], &d);
		d.item = -1;
		if (rc != 0)
			return rc;
	}
	*nitems = a.len;
	return finish(&r, &d, 0);
}

int cs_proto_decode_hello(
        const uint8_t *body, uint32_t len, cs_hello_req *out, char *err, size_t errlen)
{
	static const char *const keys[] = {"v", "client", "token", NULL};
	dctx d = {err, errlen, 0, -1};
	mp_reader r;
	mp_obj m, v;
	int rc = open_body(&r, body, len, &m, MP_MAP, "HELLO", &d);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof *out);
	unsigned seen = 0;
	for (uint32_t i = 0; i < m.len; i++) {
		int key = next_key(&r, keys, &seen, &d);
		if (key < 0)
			return key;
		if ((rc = next(&r, &v, &d)) != 0)
			return rc;
		uint64_t u;
		switch (key) {
		case 0:
			if (!mp_as_u64(&v, &u) || u > UINT32_MAX)
				return hard(&d, "\"v\" must be an unsigned 32-bit integer");
			out->version = (uint32_t)u;
			break;
		case 1:
			if (v.kind != MP_STR || v.len > CS_PROTO_MAX_NAME)
				return hard(&d, "\"client\" must be a string of at most %d bytes",
				        CS_PROTO_MAX_NAME);
			out->client = (const char *)v.data;
			out->client_len = v.len;
			break;
		default:
			if (v.kind != MP_STR || v.len > CS_PROTO_MAX_TOKEN)
				return hard(&d, "\"token\" must be a string of at most %d bytes",
				        CS_PROTO_MAX_TOKEN);
			out->token = (const char *)v.data;
			out->token_len = v.len;
			break;
		}
	}
	if ((seen & 3u) != 3u)
		return hard(&d, "HELLO needs \"v\" and \"client\"");
	return finish(&r, &d, 0);
}

int cs_proto_decode_inval(
        const uint8_t *body, uint32_t len, cs_inval_req *out, char *err, size_t errlen)
{
	static const char *const keys[] = {"q", "p", NULL};
	dctx d = {err, errlen, 0, -1};
	mp_reader r;
	mp_obj m;
	int rc = open_body(&r, body, len, &m, MP_MAP, "INVALIDATE", &d);
	if (rc != 0)
		return rc;
	out->query = NULL;
	out->query_len = 0;
	out->has_params = false;
	out->nparams = 0;
	unsigned seen = 0;
	for (uint32_t i = 0; i < m.len; i++) {
		int key = next_key(&r, keys, &seen, &d);
		if (key < 0)
			return key;
		if (key == 0) {
			rc = read_query(&r, &out->query, &out->query_len, &d);
		} else {
			out->has_params = true;
			rc = read_params(&r, 2, out->params, &out->nparams, &d);
		}
		if (rc != 0)
			return rc;
	}
	if (out->query == NULL)
		return hard(&d, "missing \"q\"");
	return finish(&r, &d, 0);
}

int cs_proto_decode_empty(const uint8_t *body, uint32_t len)
{
	if (len == 1 && (body[0] == 0xc0 || body[0] == 0x80))
		return 0;
	return -CS_ERR_PROTOCOL;
}

/* A map whose values are all strings of at most CS_PROTO_MAX_NAME bytes: SHOW and ADMIN.
 * vals[i]/lens[i] get keys[i]'s value (NULL/0 when absent); every key in `required` (a bit
 * per index) must be present. */
static int decode_names(const uint8_t *body, uint32_t len, const char *const *keys,
        unsigned required, const char *op, const char **vals, uint32_t *lens, dctx *d)
{
	mp_reader r;
	mp_obj m, v;
	int rc = open_body(&r, body, len, &m, MP_MAP, op, d);
	if (rc != 0)
		return rc;
	for (int i = 0; keys[i] != NULL; i++) {
		vals[i] = NULL;
		lens[i] = 0;
	}
	unsigned seen = 0;
	for (uint32_t i = 0; i < m.len; i++) {
		int key = next_key(&r, keys, &seen, d);
		if (key < 0)
			return key;
		if ((rc = next(&r, &v, d)) != 0)
			return rc;
		if (v.kind != MP_STR || v.len < 1 || v.len > CS_PROTO_MAX_NAME)
			return hard(d, "\"%s\" must be a string of 1 to %d bytes", keys[key],
			        CS_PROTO_MAX_NAME);
		vals[key] = (const char *)v.data;
		lens[key] = v.len;
	}
	for (int i = 0; keys[i] != NULL; i++)
		if ((required & (1u << i)) && !(seen & (1u << i)))
			return hard(d, "%s needs \"%s\"", op, keys[i]);
	return finish(&r, d, 0);
}

int cs_proto_decode_show(const uint8_t *body, uint32_t len, const char **what, uint32_t *what_len,
        char *err, size_t errlen)
{
	static const char *const keys[] = {"what", NULL};
	dctx d = {err, errlen, 0, -1};
	return decode_names(body, len, keys, 1u, "SHOW", what, what_len, &d);
}

int cs_proto_decode_admin(
        const uint8_t *body, uint32_t len, cs_admin_req *out, char *err, size_t errlen)
{
	static const char *const keys[] = {"op", "q", NULL};
	dctx d = {err, errlen, 0, -1};
	const char *vals[2];
	uint32_t lens[2];
	int rc = decode_names(body, len, keys, 1u, "ADMIN", vals, lens, &d);
	if (rc != 0)
		return rc;
	*out = (cs_admin_req){ .op = vals[0], .op_len = lens[0], .query = vals[1],
		.query_len = lens[1] };
	return 0;
}
