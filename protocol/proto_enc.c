/* proto_enc.c - frame encoders: requests (client side) and replies (server side). */
#include "cs_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- Frame plumbing ---------------------------------------------------------------------- */

/* Appends; a failure is sticky in b->failed and checked once when the frame is closed. */
static void put(cs_buf *b, const void *p, size_t n)
{
	if (cs_buf_append(b, p, n) != 0)
		return;
}

size_t cs_proto_begin(cs_buf *b, uint8_t opcode, uint32_t reqid)
{
	size_t off = b->len;
	uint8_t hdr[CS_PROTO_HDR] = {0, 0, 0, 0, CS_PROTO_VERSION, opcode, 0, 0,
	        (uint8_t)(reqid >> 24), (uint8_t)(reqid >> 16), (uint8_t)(reqid >> 8),
	        (uint8_t)reqid};
	put(b, hdr, sizeof hdr);
	return off;
}

void cs_proto_end(cs_buf *b, size_t hdr_off)
{
	if (b->failed || hdr_off + CS_PROTO_HDR > b->len)
		return;
	size_t body = b->len - hdr_off - CS_PROTO_HDR;
	if (body > UINT32_MAX) {
		b->failed = true;
		return;
	}
	uint8_t *p = b->data + hdr_off;
	p[0] = (uint8_t)(body >> 24);
	p[1] = (uint8_t)(body >> 16);
	p[2] = (uint8_t)(body >> 8);
	p[3] = (uint8_t)body;
}

/* Closes the frame begun at hdr_off; on failure rolls back to `start`. */
static int frame_done(cs_buf *b, size_t start, size_t hdr_off)
{
	cs_proto_end(b, hdr_off);
	if (b->failed) {
		cs_buf_truncate(b, start);
		return -CS_ERR_TOO_LARGE;
	}
	return 0;
}

static void packer(msgpack_packer *pk, cs_buf *b)
{
	msgpack_packer_init(pk, b, cs_buf_msgpack_write);
}

/* A frame being written: where it starts (rolled back to on failure), its header, and a
 * msgpack packer appending to the buffer. */
typedef struct frame {
	cs_buf *b;
	size_t start, off;
	msgpack_packer pk;
} frame;

/* Begins a frame of opcode; -CS_ERR_TOO_LARGE (nothing written) when b already failed. */
static int frame_begin(frame *f, cs_buf *b, uint8_t opcode, uint32_t reqid)
{
	if (b->failed)
		return -CS_ERR_TOO_LARGE;
	f->b = b;
	f->start = b->len;
	f->off = cs_proto_begin(b, opcode, reqid);
	packer(&f->pk, b);
	return 0;
}

/* Closes it: 0, or -CS_ERR_TOO_LARGE with the frame rolled back. */
static int frame_end(frame *f)
{
	return frame_done(f->b, f->start, f->off);
}

static int pack_cstr(msgpack_packer *pk, const char *s)
{
	return msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* ---- Values and pieces ------------------------------------------------------------------- */

int cs_proto_pack_value(msgpack_packer *pk, const cs_value *v)
{
	switch (v->type) {
	case CS_V_NIL:
		return msgpack_pack_nil(pk);
	case CS_V_BOOL:
		return v->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	case CS_V_INT:
		return msgpack_pack_int64(pk, v->u.i);
	case CS_V_FLOAT:
		return msgpack_pack_double(pk, v->u.f);
	case CS_V_STR:
		return msgpack_pack_str_with_body(pk, v->u.s.p, v->u.s.len);
	case CS_V_BIN:
		return msgpack_pack_bin_with_body(pk, v->u.s.p, v->u.s.len);
	case CS_V_TS: {
		if (v->u.ts.nsec > 999999999u)
			return -1;
		msgpack_timestamp ts = {v->u.ts.sec, v->u.ts.nsec};
		return msgpack_pack_timestamp(pk, &ts);
	}
	default:
		return -1;
	}
}

/* The meta map: src, lsn, age, stale, then "stored" only when the server knows it (a value
 * other than CS_STORED_YES/NO is sent as unsaid: the frame stays well formed). */
/* A fixed buffer a packer writes into (the meta map, at most 48 bytes). */
typedef struct small_out {
	size_t len;
	char data[64];
} small_out;

static int small_write(void *data, const char *buf, size_t len)
{
	small_out *o = data;
	if (len > sizeof o->data - o->len)
		return -1;
	memcpy(o->data + o->len, buf, len);
	o->len += len;
	return 0;
}

/* The meta map is packed on the stack and handed to pk in one write: one append per reply
 * (and per MGET item) instead of one per key and value. */
int cs_proto_pack_meta(msgpack_packer *out, const cs_meta *meta)
{
	small_out o = { .len = 0 };
	msgpack_packer stack_pk, *pk = &stack_pk;
	msgpack_packer_init(pk, &o, small_write);
	bool stored = meta->stored == CS_STORED_YES || meta->stored == CS_STORED_NO;
	int rc = msgpack_pack_map(pk, stored ? 5 : 4);
	rc |= pack_cstr(pk, "src");
	rc |= msgpack_pack_uint8(pk, meta->src);
	rc |= pack_cstr(pk, "lsn");
	rc |= msgpack_pack_uint64(pk, meta->lsn);
	rc |= pack_cstr(pk, "age");
	rc |= msgpack_pack_uint64(pk, meta->age_ms);
	rc |= pack_cstr(pk, "stale");
	rc |= meta->stale ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	if (stored) {
		rc |= pack_cstr(pk, "stored");
		rc |= meta->stored == CS_STORED_YES ? msgpack_pack_true(pk)
		                                    : msgpack_pack_false(pk);
	}
	if (rc != 0)
		return rc; /* cannot happen: 48 bytes at most */
	return out->callback(out->data, o.data, o.len);
}

int cs_proto_pack_result_begin(msgpack_packer *pk, uint32_t ncols)
{
	int rc = msgpack_pack_array(pk, 2);
	return rc | msgpack_pack_array(pk, ncols);
}

int cs_proto_pack_col(msgpack_packer *pk, const char *name, uint8_t type)
{
	int rc = msgpack_pack_array(pk, 2);
	rc |= pack_cstr(pk, name);
	return rc | msgpack_pack_uint8(pk, type);
}

/* ---- Replies ----------------------------------------------------------------------------- */

static int wire_code(int code)
{
	return code < 0 ? -code : code;
}

/* Error message truncated to CS_PROTO_MAX_MSG bytes, not inside a UTF-8 sequence. */
static size_t msg_len(const char *msg)
{
	size_t n = strlen(msg);
	if (n <= CS_PROTO_MAX_MSG)
		return n;
	n = CS_PROTO_MAX_MSG;
	while (n > 0 && ((uint8_t)msg[n] & 0xc0) == 0x80)
		n--;
	return n;
}

static int pack_error_map(msgpack_packer *pk, int code, const char *msg)
{
	int rc = msgpack_pack_map(pk, 2);
	rc |= pack_cstr(pk, "code");
	rc |= msgpack_pack_uint32(pk, (uint32_t)wire_code(code));
	rc |= pack_cstr(pk, "msg");
	rc |= msgpack_pack_str_with_body(pk, msg, msg_len(msg));
	return rc;
}

int cs_proto_write_error(cs_buf *b, uint32_t reqid, int code, const char *fmt, ...)
{
	char msg[CS_PROTO_MAX_MSG + 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	frame f;
	if (frame_begin(&f, b, CS_OP_ERROR, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)pack_error_map(&f.pk, code, msg);
	return frame_end(&f);
}

int cs_proto_write_result(cs_buf *b, uint32_t reqid, uint8_t op, const cs_meta *meta,
        const uint8_t *result, size_t len)
{
	frame f;
	if (frame_begin(&f, b, CS_OP_REPLY_FLAG | op, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)msgpack_pack_array(&f.pk, 2);
	(void)cs_proto_pack_meta(&f.pk, meta);
	put(b, result, len);
	return frame_end(&f);
}

size_t cs_proto_mget_begin(cs_buf *b, uint32_t reqid, uint32_t n)
{
	size_t off = cs_proto_begin(b, CS_OP_REPLY_FLAG | CS_OP_MGET, reqid);
	msgpack_packer pk;
	packer(&pk, b);
	(void)msgpack_pack_array(&pk, n);
	return off;
}

int cs_proto_mget_item_ok(cs_buf *b, const cs_meta *meta, const uint8_t *result, size_t len)
{
	msgpack_packer pk;
	packer(&pk, b);
	(void)msgpack_pack_array(&pk, 2);
	(void)cs_proto_pack_meta(&pk, meta);
	put(b, result, len);
	return b->failed ? -CS_ERR_TOO_LARGE : 0;
}

int cs_proto_mget_item_err(cs_buf *b, int code, const char *msg)
{
	msgpack_packer pk;
	packer(&pk, b);
	int rc = pack_error_map(&pk, code, msg); /* {"code", "msg"}, as an error frame */
	return rc != 0 || b->failed ? -CS_ERR_TOO_LARGE : 0;
}

void cs_proto_mget_end(cs_buf *b, size_t off)
{
	cs_proto_end(b, off);
}

int cs_proto_write_hello_reply(
        cs_buf *b, uint32_t reqid, uint32_t version, const char *server, uint32_t max_frame)
{
	frame f;
	if (frame_begin(&f, b, CS_OP_REPLY_FLAG | CS_OP_HELLO, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)msgpack_pack_map(&f.pk, 3);
	(void)pack_cstr(&f.pk, "v");
	(void)msgpack_pack_uint32(&f.pk, version);
	(void)pack_cstr(&f.pk, "server");
	(void)pack_cstr(&f.pk, server);
	(void)pack_cstr(&f.pk, "max_frame");
	(void)msgpack_pack_uint32(&f.pk, max_frame);
	return frame_end(&f);
}

int cs_proto_write_nil_reply(cs_buf *b, uint32_t reqid, uint8_t op)
{
	frame f;
	if (frame_begin(&f, b, CS_OP_REPLY_FLAG | op, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	put(b, "\xc0", 1);
	return frame_end(&f);
}

int cs_proto_write_inval_reply(cs_buf *b, uint32_t reqid, bool whole_query, uint64_t n)
{
	frame f;
	if (frame_begin(&f, b, CS_OP_REPLY_FLAG | CS_OP_INVALIDATE, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)msgpack_pack_map(&f.pk, 1);
	(void)pack_cstr(&f.pk, whole_query ? "generation" : "deleted");
	(void)msgpack_pack_uint64(&f.pk, n);
	return frame_end(&f);
}

int cs_proto_write_stats(cs_buf *b, uint32_t reqid, const cs_stat *stats, uint32_t n)
{
	frame f;
	if (frame_begin(&f, b, CS_OP_REPLY_FLAG | CS_OP_STATS, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)msgpack_pack_map(&f.pk, n);
	for (uint32_t i = 0; i < n && !b->failed; i++) {
		(void)msgpack_pack_str_with_body(&f.pk, stats[i].name, stats[i].name_len);
		if (stats[i].is_float)
			(void)msgpack_pack_double(&f.pk, stats[i].f);
		else
			(void)msgpack_pack_int64(&f.pk, stats[i].i);
	}
	return frame_end(&f);
}

/* ---- Requests ---------------------------------------------------------------------------- */

static bool value_ok(const cs_value *v)
{
	if (v->type > CS_V_TS)
		return false;
	return v->type != CS_V_TS || v->u.ts.nsec <= 999999999u;
}

static int check_get(const cs_get_req *req)
{
	if (req->query == NULL || req->query_len == 0 || req->query_len > CS_PROTO_MAX_NAME)
		return -CS_ERR_BAD_PARAMS;
	if (req->nparams > CS_PROTO_MAX_PARAMS || req->tier > CS_TIER_BATCH)
		return -CS_ERR_BAD_PARAMS;
	/* a shard only with the token's LSN, which the server refuses otherwise */
	if (req->shard != NULL &&
	        (req->min_lsn == 0 || !cs_proto_shard_name_ok(req->shard, req->shard_len)))
		return -CS_ERR_BAD_PARAMS;
	for (uint32_t i = 0; i < req->nparams; i++)
		if (!value_ok(&req->params[i]))
			return -CS_ERR_BAD_PARAMS;
	return 0;
}

static void pack_params(msgpack_packer *pk, const cs_value *params, uint32_t n)
{
	(void)pack_cstr(pk, "p");
	(void)msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		(void)cs_proto_pack_value(pk, &params[i]);
}

/* The GET map, omitting optional keys that hold their default; keys in the canonical order
 * q, p, tier, lsn, shard, bypass (conformance/README.md). */
static void pack_get(msgpack_packer *pk, const cs_get_req *req)
{
	uint32_t n = 2 + (req->tier != CS_TIER_DEFAULT) + (req->min_lsn != 0) +
	             (req->shard != NULL) + req->bypass;
	(void)msgpack_pack_map(pk, n);
	(void)pack_cstr(pk, "q");
	(void)msgpack_pack_str_with_body(pk, req->query, req->query_len);
	pack_params(pk, req->params, req->nparams);
	if (req->tier != CS_TIER_DEFAULT) {
		(void)pack_cstr(pk, "tier");
		(void)msgpack_pack_uint8(pk, req->tier);
	}
	if (req->min_lsn != 0) {
		(void)pack_cstr(pk, "lsn");
		(void)msgpack_pack_uint64(pk, req->min_lsn);
	}
	if (req->shard != NULL) {
		(void)pack_cstr(pk, "shard");
		(void)msgpack_pack_str_with_body(pk, req->shard, req->shard_len);
	}
	if (req->bypass) {
		(void)pack_cstr(pk, "bypass");
		(void)msgpack_pack_true(pk);
	}
}

int cs_proto_write_get(cs_buf *b, uint32_t reqid, uint8_t op, const cs_get_req *req)
{
	if (op != CS_OP_GET && op != CS_OP_REFRESH)
		return -CS_ERR_BAD_PARAMS;
	int rc = check_get(req);
	if (rc != 0)
		return rc;
	frame f;
	if (frame_begin(&f, b, op, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	pack_get(&f.pk, req);
	return frame_end(&f);
}

int cs_proto_write_mget(cs_buf *b, uint32_t reqid, const cs_get_req *items, uint32_t n)
{
	if (n > CS_PROTO_MAX_MGET)
		return -CS_ERR_BAD_PARAMS;
	for (uint32_t i = 0; i < n; i++) {
		int rc = check_get(&items[i]);
		if (rc != 0)
			return rc;
	}
	frame f;
	if (frame_begin(&f, b, CS_OP_MGET, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)msgpack_pack_array(&f.pk, n);
	for (uint32_t i = 0; i < n && !b->failed; i++)
		pack_get(&f.pk, &items[i]);
	return frame_end(&f);
}

int cs_proto_write_hello(cs_buf *b, uint32_t reqid, const cs_hello_req *req)
{
	if (req->client_len > CS_PROTO_MAX_NAME || (req->client == NULL && req->client_len) ||
	        req->token_len > CS_PROTO_MAX_TOKEN)
		return -CS_ERR_BAD_PARAMS;
	frame f;
	if (frame_begin(&f, b, CS_OP_HELLO, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)msgpack_pack_map(&f.pk, req->token ? 3 : 2);
	(void)pack_cstr(&f.pk, "v");
	(void)msgpack_pack_uint32(&f.pk, req->version);
	(void)pack_cstr(&f.pk, "client");
	(void)msgpack_pack_str_with_body(&f.pk, req->client ? req->client : "", req->client_len);
	if (req->token) {
		(void)pack_cstr(&f.pk, "token");
		(void)msgpack_pack_str_with_body(&f.pk, req->token, req->token_len);
	}
	return frame_end(&f);
}

int cs_proto_write_inval(cs_buf *b, uint32_t reqid, const cs_inval_req *req)
{
	if (req->query == NULL || req->query_len == 0 || req->query_len > CS_PROTO_MAX_NAME ||
	        req->nparams > CS_PROTO_MAX_PARAMS)
		return -CS_ERR_BAD_PARAMS;
	for (uint32_t i = 0; req->has_params && i < req->nparams; i++)
		if (!value_ok(&req->params[i]))
			return -CS_ERR_BAD_PARAMS;
	frame f;
	if (frame_begin(&f, b, CS_OP_INVALIDATE, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)msgpack_pack_map(&f.pk, req->has_params ? 2 : 1);
	(void)pack_cstr(&f.pk, "q");
	(void)msgpack_pack_str_with_body(&f.pk, req->query, req->query_len);
	if (req->has_params)
		pack_params(&f.pk, req->params, req->nparams);
	return frame_end(&f);
}

int cs_proto_write_empty(cs_buf *b, uint32_t reqid, uint8_t op)
{
	if (op != CS_OP_PING && op != CS_OP_STATS)
		return -CS_ERR_BAD_PARAMS;
	frame f;
	if (frame_begin(&f, b, op, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	put(b, "\xc0", 1);
	return frame_end(&f);
}

/* ---- SHOW -------------------------------------------------------------------------------- */

size_t cs_proto_rows_begin(cs_buf *b, uint8_t op, uint32_t reqid)
{
	size_t off = cs_proto_begin(b, CS_OP_REPLY_FLAG | op, reqid);
	put(b, "\xdd\0\0\0\0", 5); /* array32, count patched by cs_proto_show_end */
	return off;
}

size_t cs_proto_show_begin(cs_buf *b, uint32_t reqid)
{
	return cs_proto_rows_begin(b, CS_OP_SHOW, reqid);
}

int cs_proto_show_row(cs_buf *b, const cs_show_cell *cells, uint32_t n)
{
	if (b->failed)
		return -CS_ERR_TOO_LARGE;
	size_t start = b->len;
	msgpack_packer pk;
	packer(&pk, b);
	(void)msgpack_pack_map(&pk, n);
	for (uint32_t i = 0; i < n && !b->failed; i++) {
		(void)pack_cstr(&pk, cells[i].key);
		const cs_value *v = &cells[i].v;
		if (v->type == CS_V_NIL || v->type == CS_V_BOOL || v->type == CS_V_INT ||
		        v->type == CS_V_FLOAT || v->type == CS_V_STR)
			(void)cs_proto_pack_value(&pk, v);
		else
			(void)msgpack_pack_nil(&pk);
	}
	if (b->failed) {
		cs_buf_truncate(b, start);
		b->failed = true;
		return -CS_ERR_TOO_LARGE;
	}
	return 0;
}

void cs_proto_show_end(cs_buf *b, size_t off, uint32_t nrows)
{
	if (b->failed || off + CS_PROTO_HDR + 5 > b->len)
		return;
	uint8_t *p = b->data + off + CS_PROTO_HDR + 1;
	p[0] = (uint8_t)(nrows >> 24);
	p[1] = (uint8_t)(nrows >> 16);
	p[2] = (uint8_t)(nrows >> 8);
	p[3] = (uint8_t)nrows;
	cs_proto_end(b, off);
}

/* A request whose body maps keys[i] to vals[i] (strings of at most CS_PROTO_MAX_NAME
 * bytes; a NULL value leaves its key out). */
static int write_names(cs_buf *b, uint8_t op, uint32_t reqid, const char *const *keys,
        const char *const *vals, int n)
{
	uint32_t present = 0;
	for (int i = 0; i < n; i++) {
		if (vals[i] != NULL && (vals[i][0] == '\0' || strlen(vals[i]) > CS_PROTO_MAX_NAME))
			return -CS_ERR_BAD_PARAMS;
		present += vals[i] != NULL;
	}
	frame f;
	if (frame_begin(&f, b, op, reqid) != 0)
		return -CS_ERR_TOO_LARGE;
	(void)msgpack_pack_map(&f.pk, present);
	for (int i = 0; i < n; i++) {
		if (vals[i] == NULL)
			continue;
		(void)pack_cstr(&f.pk, keys[i]);
		(void)msgpack_pack_str_with_body(&f.pk, vals[i], strlen(vals[i]));
	}
	return frame_end(&f);
}

int cs_proto_write_show(cs_buf *b, uint32_t reqid, const char *what)
{
	static const char *const keys[] = {"what"};
	const char *vals[] = {what};
	return write_names(b, CS_OP_SHOW, reqid, keys, vals, 1);
}

int cs_proto_write_admin(cs_buf *b, uint32_t reqid, const char *op, const char *query)
{
	static const char *const keys[] = {"op", "q"};
	const char *vals[] = {op, query};
	if (op == NULL)
		return -CS_ERR_BAD_PARAMS;
	return write_names(b, CS_OP_ADMIN, reqid, keys, vals, 2);
}
