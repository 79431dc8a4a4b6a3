/* fuzz_proto.c - libFuzzer harness for the wire codec: frame reader, every request body
 * decoder, the reply decoders, and two properties (split-invariance of the reader and
 * decode/encode/decode stability of GET, MGET, HELLO and INVALIDATE). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cs_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BODY (64u << 10)

static cs_get_req g_items[CS_PROTO_MAX_MGET], g_items2[CS_PROTO_MAX_MGET];

static void check(int cond)
{
	if (!cond)
		abort();
}

static void touch_value(const cs_value *v)
{
	volatile uint8_t sink = 0;
	if (v->type == CS_V_STR || v->type == CS_V_BIN)
		for (uint32_t i = 0; i < v->u.s.len; i++)
			sink ^= (uint8_t)v->u.s.p[i];
	(void)sink;
}

static int same_value(const cs_value *a, const cs_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case CS_V_BOOL:
		return a->u.b == b->u.b;
	case CS_V_INT:
		return a->u.i == b->u.i;
	case CS_V_FLOAT:
		return memcmp(&a->u.f, &b->u.f, sizeof a->u.f) == 0 || a->u.f != a->u.f;
	case CS_V_STR:
	case CS_V_BIN:
		return a->u.s.len == b->u.s.len && memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0;
	case CS_V_TS:
		return a->u.ts.sec == b->u.ts.sec && a->u.ts.nsec == b->u.ts.nsec;
	default:
		return 1;
	}
}

static int same_get(const cs_get_req *a, const cs_get_req *b)
{
	if (a->query_len != b->query_len || memcmp(a->query, b->query, a->query_len) != 0 ||
	        a->nparams != b->nparams || a->tier != b->tier || a->min_lsn != b->min_lsn ||
	        a->bypass != b->bypass || a->shard_len != b->shard_len ||
	        (a->shard == NULL) != (b->shard == NULL) ||
	        (a->shard != NULL && memcmp(a->shard, b->shard, a->shard_len) != 0))
		return 0;
	/* a decoded shard is always one the encoder accepts: a name, with a token */
	if (a->shard != NULL &&
	        (a->min_lsn == 0 || !cs_proto_shard_name_ok(a->shard, a->shard_len)))
		return 0;
	for (uint32_t i = 0; i < a->nparams; i++)
		if (!same_value(&a->params[i], &b->params[i]))
			return 0;
	return 1;
}

/* Encodes a frame into b and returns its body (asserting the header round-trips). */
static const uint8_t *reparse(cs_buf *b, uint32_t *len)
{
	cs_frame f;
	check(b->len >= CS_PROTO_HDR);
	check(cs_proto_parse_header(b->data, UINT32_MAX, &f) == 0);
	check(f.body_len == b->len - CS_PROTO_HDR);
	*len = f.body_len;
	return b->data + CS_PROTO_HDR;
}

static void roundtrip_get(const cs_get_req *req, uint8_t op)
{
	cs_buf b;
	cs_get_req again;
	uint32_t len;
	char err[128];
	cs_buf_init(&b, 0);
	check(cs_proto_write_get(&b, 7, op, req) == 0);
	const uint8_t *body = reparse(&b, &len);
	check(cs_proto_decode_get(body, len, &again, err, sizeof err) == 0);
	check(same_get(req, &again));
	cs_buf_free(&b);
}

static void roundtrip_mget(uint32_t n)
{
	cs_buf b;
	uint32_t len, n2 = 0;
	char err[128];
	cs_buf_init(&b, 0);
	check(cs_proto_write_mget(&b, 9, g_items, n) == 0);
	const uint8_t *body = reparse(&b, &len);
	check(cs_proto_decode_mget(body, len, g_items2, CS_PROTO_MAX_MGET, &n2, err, sizeof err) ==
	        0);
	check(n2 == n);
	for (uint32_t i = 0; i < n; i++)
		check(same_get(&g_items[i], &g_items2[i]));
	cs_buf_free(&b);
}

static void roundtrip_hello(const cs_hello_req *h)
{
	cs_buf b;
	cs_hello_req again;
	uint32_t len;
	char err[128];
	cs_buf_init(&b, 0);
	check(cs_proto_write_hello(&b, 1, h) == 0);
	const uint8_t *body = reparse(&b, &len);
	check(cs_proto_decode_hello(body, len, &again, err, sizeof err) == 0);
	check(again.version == h->version && again.client_len == h->client_len &&
	        memcmp(again.client, h->client, h->client_len) == 0);
	check((again.token == NULL) == (h->token == NULL));
	cs_buf_free(&b);
}

static void roundtrip_inval(const cs_inval_req *q)
{
	cs_buf b;
	cs_inval_req again;
	uint32_t len;
	char err[128];
	cs_buf_init(&b, 0);
	check(cs_proto_write_inval(&b, 1, q) == 0);
	const uint8_t *body = reparse(&b, &len);
	check(cs_proto_decode_inval(body, len, &again, err, sizeof err) == 0);
	check(again.has_params == q->has_params && again.nparams == q->nparams);
	for (uint32_t i = 0; i < q->nparams; i++)
		check(same_value(&q->params[i], &again.params[i]));
	cs_buf_free(&b);
}

static void touch_result(const cs_result *r)
{
	const char *msg;
	if (cs_result_error(r, &msg) != 0) {
		check(msg != NULL);
		return;
	}
	for (uint32_t c = 0; c < cs_result_ncols(r); c++) {
		check(cs_result_col_name(r, c) != NULL);
		check(cs_result_col_type(r, c) >= 1);
	}
	for (uint32_t i = 0; i < cs_result_nrows(r); i++)
		for (uint32_t c = 0; c < cs_result_ncols(r); c++) {
			cs_value v;
			check(cs_result_value(r, i, c, &v) == 0);
			touch_value(&v);
		}
}

/* SHOW reply cells: touch every byte of every key and value. */
static int touch_cell(void *priv, uint32_t row, const char *key, uint32_t key_len, const cs_value *v)
{
	(void)priv;
	(void)row;
	volatile uint8_t sink = 0;
	for (uint32_t i = 0; i < key_len; i++)
		sink ^= (uint8_t)key[i];
	(void)sink;
	touch_value(v);
	return 0;
}

/* A decoded SHOW request re-encodes to a body that decodes to the same view name. */
static void roundtrip_show(const char *what, uint32_t what_len)
{
	char name[CS_PROTO_MAX_NAME + 1], err[256];
	check(what_len <= CS_PROTO_MAX_NAME);
	memcpy(name, what, what_len);
	name[what_len] = '\0';
	if (strlen(name) != what_len)
		return; /* an embedded NUL: the C encoder takes NUL-terminated names */
	cs_buf b;
	cs_buf_init(&b, 0);
	check(cs_proto_write_show(&b, 1, name) == 0);
	const char *w2;
	uint32_t l2;
	check(cs_proto_decode_show(b.data + CS_PROTO_HDR, (uint32_t)(b.len - CS_PROTO_HDR), &w2, &l2,
	              err, sizeof err) == 0);
	check(l2 == what_len && memcmp(w2, what, what_len) == 0);
	cs_buf_free(&b);
}

/* A decoded ADMIN request re-encodes to a body that decodes to the same op and query. */
static void roundtrip_admin(const cs_admin_req *a)
{
	char op[CS_PROTO_MAX_NAME + 1], q[CS_PROTO_MAX_NAME + 1], err[256];
	check(a->op != NULL && a->op_len <= CS_PROTO_MAX_NAME && a->query_len <= CS_PROTO_MAX_NAME);
	check(a->query != NULL || a->query_len == 0);
	memcpy(op, a->op, a->op_len);
	op[a->op_len] = '\0';
	if (a->query)
		memcpy(q, a->query, a->query_len);
	q[a->query_len] = '\0';
	if (strlen(op) != a->op_len || strlen(q) != a->query_len)
		return; /* an embedded NUL: the C encoder takes NUL-terminated strings */
	cs_buf b;
	cs_buf_init(&b, 0);
	check(cs_proto_write_admin(&b, 1, op, a->query ? q : NULL) == 0);
	cs_admin_req a2;
	check(cs_proto_decode_admin(b.data + CS_PROTO_HDR, (uint32_t)(b.len - CS_PROTO_HDR), &a2,
	              err, sizeof err) == 0);
	check(a2.op_len == a->op_len && memcmp(a2.op, a->op, a->op_len) == 0);
	check((a2.query == NULL) == (a->query == NULL) && a2.query_len == a->query_len);
	check(a->query == NULL || memcmp(a2.query, a->query, a->query_len) == 0);
	cs_buf_free(&b);
}

/* Runs every decoder on one body; the ones that succeed are round-tripped. */
static void decode_body(const uint8_t *body, uint32_t len)
{
	char err[256];
	cs_get_req get;
	cs_hello_req hello;
	cs_inval_req inval;
	uint32_t n = 0;

	if (cs_proto_decode_get(body, len, &get, err, sizeof err) == 0) {
		for (uint32_t i = 0; i < get.nparams; i++)
			touch_value(&get.params[i]);
		roundtrip_get(&get, CS_OP_GET);
	}
	if (cs_proto_decode_mget(body, len, g_items, CS_PROTO_MAX_MGET, &n, err, sizeof err) == 0)
		roundtrip_mget(n);
	if (cs_proto_decode_hello(body, len, &hello, err, sizeof err) == 0)
		roundtrip_hello(&hello);
	if (cs_proto_decode_inval(body, len, &inval, err, sizeof err) == 0)
		roundtrip_inval(&inval);
	(void)!cs_proto_decode_empty(body, len);
	const char *what;
	uint32_t what_len;
	if (cs_proto_decode_show(body, len, &what, &what_len, err, sizeof err) == 0)
		roundtrip_show(what, what_len);
	cs_admin_req admin;
	if (cs_proto_decode_admin(body, len, &admin, err, sizeof err) == 0)
		roundtrip_admin(&admin);
	(void)!cs_proto_check_result(body, len, err, sizeof err);

	cs_result *res = NULL;
	if (cs_result_decode(body, len, &res, err, sizeof err) == 0) {
		touch_result(res);
		cs_result_free(res);
	}
	cs_result *items[CS_PROTO_MAX_MGET];
	if (cs_result_decode_mget(body, len, items, CS_PROTO_MAX_MGET, &n, err, sizeof err) == 0)
		for (uint32_t i = 0; i < n; i++) {
			touch_result(items[i]);
			cs_result_free(items[i]);
		}

	int code;
	const char *s;
	uint32_t slen, v, maxf;
	bool whole;
	uint64_t cnt;
	cs_stat stats[64];
	(void)!cs_proto_decode_error(body, len, &code, &s, &slen);
	(void)!cs_proto_decode_hello_reply(body, len, &v, &s, &slen, &maxf);
	(void)!cs_proto_decode_inval_reply(body, len, &whole, &cnt);
	(void)!cs_proto_decode_nil(body, len);
	(void)!cs_proto_decode_stats(body, len, stats, 64, &n);
	(void)!cs_proto_decode_show_reply(body, len, &n, touch_cell, NULL);
}

/* Reads all frames from data fed in chunks of `chunk` bytes; records (opcode, reqid, len). */
static size_t read_frames(const uint8_t *data, size_t size, size_t chunk, uint64_t *sig,
        size_t maxsig, int *final, int decode)
{
	cs_proto_reader *r = cs_proto_reader_new(FUZZ_MAX_BODY);
	size_t nsig = 0;
	int rc = 0;
	check(r != NULL);
	for (size_t off = 0; off < size && rc >= 0; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		rc = cs_proto_reader_feed(r, data + off, n);
		cs_frame f;
		while (rc >= 0 && (rc = cs_proto_reader_next(r, &f)) == 1) {
			if (nsig < maxsig)
				sig[nsig++] = ((uint64_t)f.opcode << 56) ^
				              ((uint64_t)f.reqid << 24) ^ f.body_len;
			if (decode)
				decode_body(f.body, f.body_len);
		}
	}
	*final = rc < 0 ? rc : 0;
	cs_proto_reader_free(r);
	return nsig;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4 * FUZZ_MAX_BODY)
		return 0;
	/* The whole input as a body. */
	decode_body(data, (uint32_t)size);

	/* The input as a stream of frames: whole, and split into chunks picked by the input. */
	static uint64_t sig1[256], sig2[256];
	int fin1, fin2;
	size_t chunk = size ? (size_t)(data[size - 1] % 13) + 1 : 1;
	size_t n1 = read_frames(data, size, size ? size : 1, sig1, 256, &fin1, 1);
	size_t n2 = read_frames(data, size, chunk, sig2, 256, &fin2, 0);
	check(n1 == n2 && fin1 == fin2);
	check(memcmp(sig1, sig2, n1 * sizeof sig1[0]) == 0);
	return 0;
}
