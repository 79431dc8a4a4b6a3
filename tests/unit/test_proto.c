/* test_proto.c - unit tests for the wire codec (protocol/: frames, reader, decoders, encoders). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_proto.h"

/* ---- Helpers ----------------------------------------------------------------------------- */

static char err[256];

/* Returns the body of the single frame in b after checking the header. */
static const uint8_t *body_of(const cs_buf *b, uint8_t op, uint32_t reqid, uint32_t *len)
{
	cs_frame f;
	assert_true(b->len >= CS_PROTO_HDR);
	assert_int_equal(cs_proto_parse_header(b->data, CS_PROTO_MAX_REPLY_FRAME, &f), 0);
	assert_int_equal(f.opcode, op);
	assert_int_equal(f.reqid, reqid);
	assert_int_equal(f.body_len, b->len - CS_PROTO_HDR);
	*len = f.body_len;
	return b->data + CS_PROTO_HDR;
}

static cs_value v_int(int64_t i)
{
	cs_value v = {.type = CS_V_INT, .u.i = i};
	return v;
}

static cs_value v_str(const char *s)
{
	cs_value v = {.type = CS_V_STR, .u.s = {s, (uint32_t)strlen(s)}};
	return v;
}

static void assert_value_eq(const cs_value *a, const cs_value *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case CS_V_BOOL:
		assert_int_equal(a->u.b, b->u.b);
		break;
	case CS_V_INT:
		assert_int_equal(a->u.i, b->u.i);
		break;
	case CS_V_FLOAT:
		assert_true(a->u.f == b->u.f);
		break;
	case CS_V_STR:
	case CS_V_BIN:
		assert_int_equal(a->u.s.len, b->u.s.len);
		assert_memory_equal(a->u.s.p, b->u.s.p, a->u.s.len);
		break;
	case CS_V_TS:
		assert_int_equal(a->u.ts.sec, b->u.ts.sec);
		assert_int_equal(a->u.ts.nsec, b->u.ts.nsec);
		break;
	default:
		break;
	}
}

/* Every value type, including all three timestamp encodings and int edge cases. */
static const cs_value *all_values(uint32_t *n)
{
	static cs_value vals[16];
	int i = 0;
	vals[i++] = (cs_value){.type = CS_V_NIL};
	vals[i++] = (cs_value){.type = CS_V_BOOL, .u.b = true};
	vals[i++] = (cs_value){.type = CS_V_BOOL, .u.b = false};
	vals[i++] = v_int(0);
	vals[i++] = v_int(-1);
	vals[i++] = v_int(INT64_MAX);
	vals[i++] = v_int(INT64_MIN);
	vals[i++] = (cs_value){.type = CS_V_FLOAT, .u.f = -2.25};
	vals[i++] = v_str("héllo");
	vals[i++] = (cs_value){.type = CS_V_STR, .u.s = {"", 0}};
	vals[i++] = (cs_value){.type = CS_V_BIN, .u.s = {"\x00\x01\xff", 3}};
	vals[i++] = (cs_value){.type = CS_V_TS, .u.ts = {1700000000, 0}};         /* ts32 */
	vals[i++] = (cs_value){.type = CS_V_TS, .u.ts = {1700000000, 123456789}}; /* ts64 */
	vals[i++] = (cs_value){.type = CS_V_TS, .u.ts = {-86400, 5}};             /* ts96 */
	vals[i++] = (cs_value){.type = CS_V_TS, .u.ts = {INT64_MAX, 999999999}};
	vals[i++] = v_str("42");
	*n = (uint32_t)i;
	return vals;
}

static cs_get_req sample_get(void)
{
	cs_get_req g;
	memset(&g, 0, sizeof g);
	g.query = "user_profile";
	g.query_len = 12;
	g.tier = CS_TIER_DEFAULT;
	const cs_value *v = all_values(&g.nparams);
	memcpy(g.params, v, g.nparams * sizeof *v);
	return g;
}

static void assert_get_eq(const cs_get_req *a, const cs_get_req *b)
{
	assert_int_equal(a->query_len, b->query_len);
	assert_memory_equal(a->query, b->query, a->query_len);
	assert_int_equal(a->nparams, b->nparams);
	for (uint32_t i = 0; i < a->nparams; i++)
		assert_value_eq(&a->params[i], &b->params[i]);
	assert_int_equal(a->tier, b->tier);
	assert_int_equal(a->min_lsn, b->min_lsn);
	assert_int_equal(a->bypass, b->bypass);
	assert_int_equal(a->shard_len, b->shard_len);
	assert_int_equal(a->shard == NULL, b->shard == NULL);
	if (a->shard != NULL)
		assert_memory_equal(a->shard, b->shard, a->shard_len);
}

/* A packer over a fresh buffer, for hand-built bodies. */
typedef struct mp {
	cs_buf b;
	msgpack_packer pk;
} mp;

static void mp_open(mp *m)
{
	cs_buf_init(&m->b, 1u << 22);
	msgpack_packer_init(&m->pk, &m->b, cs_buf_msgpack_write);
}

static void mp_s(mp *m, const char *s)
{
	assert_int_equal(msgpack_pack_str_with_body(&m->pk, s, strlen(s)), 0);
}

/* A result: cols (id int, name text, at timestamptz) and two rows. */
static void build_result(cs_buf *out)
{
	msgpack_packer pk;
	cs_buf_init(out, 0);
	msgpack_packer_init(&pk, out, cs_buf_msgpack_write);
	assert_int_equal(cs_proto_pack_result_begin(&pk, 3), 0);
	assert_int_equal(cs_proto_pack_col(&pk, "id", CS_COL_INT), 0);
	assert_int_equal(cs_proto_pack_col(&pk, "name", CS_COL_TEXT), 0);
	assert_int_equal(cs_proto_pack_col(&pk, "at", CS_COL_TIMESTAMPTZ), 0);
	assert_int_equal(msgpack_pack_array(&pk, 2), 0);
	cs_value row1[3] = {v_int(1), v_str("ann"), {.type = CS_V_TS, .u.ts = {1700000000, 5000}}};
	cs_value row2[3] = {v_int(2), {.type = CS_V_NIL}, {.type = CS_V_NIL}};
	assert_int_equal(msgpack_pack_array(&pk, 3), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(cs_proto_pack_value(&pk, &row1[i]), 0);
	assert_int_equal(msgpack_pack_array(&pk, 3), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(cs_proto_pack_value(&pk, &row2[i]), 0);
	assert_false(out->failed);
}

/* ---- Round trips ------------------------------------------------------------------------- */

static void roundtrip_get_and_refresh(void **state)
{
	uint8_t ops[2] = {CS_OP_GET, CS_OP_REFRESH};
	for (int k = 0; k < 2; k++) {
		cs_buf b;
		cs_get_req g = sample_get(), back;
		uint32_t len;
		if (k == 1) {
			g.tier = CS_TIER_BATCH;
			g.min_lsn = ((uint64_t)0x16 << 32) | 0xB374D848u;
			g.bypass = true;
		}
		cs_buf_init(&b, 0);
		assert_int_equal(cs_proto_write_get(&b, 77, ops[k], &g), 0);
		const uint8_t *body = body_of(&b, ops[k], 77, &len);
		assert_int_equal(cs_proto_decode_get(body, len, &back, err, sizeof err), 0);
		assert_get_eq(&g, &back);
		/* Decoded strings are borrowed from the body. */
		assert_true((const uint8_t *)back.query > body &&
		            (const uint8_t *)back.query < body + len);
		cs_buf_free(&b);
	}
}

/* A token naming its shard: "shard" beside "lsn", borrowed from the body; the encoder refuses
 * a shard without a nonzero LSN or with a name no shard can have. */
static void roundtrip_get_shard(void **state)
{
	static const char *const names[] = {"s1", "eu-west_2.a",
	        "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS"};
	for (int k = 0; k < 3; k++) {
		cs_buf b;
		cs_get_req g = sample_get(), back;
		uint32_t len;
		g.min_lsn = 0x16B3748;
		g.shard = names[k];
		g.shard_len = (uint32_t)strlen(names[k]);
		g.bypass = k == 1;
		cs_buf_init(&b, 0);
		assert_int_equal(cs_proto_write_get(&b, 78, CS_OP_GET, &g), 0);
		const uint8_t *body = body_of(&b, CS_OP_GET, 78, &len);
		assert_int_equal(cs_proto_decode_get(body, len, &back, err, sizeof err), 0);
		assert_get_eq(&g, &back);
		assert_true((const uint8_t *)back.shard > body &&
		            (const uint8_t *)back.shard < body + len);
		cs_buf_free(&b);
	}
	/* Refused by the encoder (nothing written). */
	struct {
		uint64_t lsn;
		const char *shard;
		uint32_t len;
	} bad[] = {{0, "s1", 2}, {5, "", 0}, {5, "s:1", 3}, {5, "s 1", 3}, {5, names[2], 65},
	        {5, "\xc3\xa9", 2}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cs_buf b;
		cs_get_req g = sample_get();
		g.min_lsn = bad[i].lsn;
		g.shard = bad[i].shard;
		g.shard_len = bad[i].len;
		cs_buf_init(&b, 0);
		assert_int_equal(cs_proto_write_get(&b, 1, CS_OP_GET, &g), -CS_ERR_BAD_PARAMS);
		assert_int_equal(cs_proto_write_mget(&b, 1, &g, 1), -CS_ERR_BAD_PARAMS);
		assert_int_equal(b.len, 0);
		cs_buf_free(&b);
	}
	/* Without a shard, the bytes are what they always were (no "shard" key). */
	cs_buf b;
	cs_get_req g = sample_get();
	g.min_lsn = 7;
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_get(&b, 1, CS_OP_GET, &g), 0);
	assert_null(memmem(b.data, b.len, "shard", 5));
	cs_buf_free(&b);
}

/* The decoder's rules for "shard" (PROTOCOL.md 3.3): type and length are hard limits
 * (protocol), a name no shard can have and a shard without a token are bad_params. */
static void decode_get_shard(void **state)
{
	static const struct {
		const char *bytes;
		uint32_t len;
		int want;
		const char *msg;
	} cases[] = {
	        {"\x83\xa1q\xa1x\xa3lsn\x05\xa5shard\xa2s1", 19, 0, ""},
	        {"\x83\xa1q\xa1x\xa3lsn\x05\xa5shard\x01", 17, -CS_ERR_PROTOCOL,
	                "\"shard\" must be a string"},
	        {"\x83\xa1q\xa1x\xa3lsn\x05\xa5shard\xc0", 17, -CS_ERR_PROTOCOL,
	                "\"shard\" must be a string"},
	        {"\x83\xa1q\xa1x\xa3lsn\x05\xa5shard\xa0", 17, -CS_ERR_PROTOCOL,
	                "shard name must be 1..64 bytes, got 0"},
	        {"\x83\xa1q\xa1x\xa3lsn\x05\xa5shard\xa3s:1", 20, -CS_ERR_BAD_PARAMS,
	                "shard name may only contain"},
	        {"\x82\xa1q\xa1x\xa5shard\xa2s1", 14, -CS_ERR_BAD_PARAMS,
	                "needs a nonzero \"lsn\""},
	        {"\x83\xa1q\xa1x\xa3lsn\x00\xa5shard\xa2s1", 19, -CS_ERR_BAD_PARAMS,
	                "needs a nonzero \"lsn\""},
	        /* order does not matter: shard before lsn */
	        {"\x83\xa1q\xa1x\xa5shard\xa2s1\xa3lsn\x05", 19, 0, ""},
	        /* a hard failure later in the body wins over the soft one */
	        {"\x83\xa1q\xa1x\xa5shard\xa2s1\xa3lsn\xa1x", 20, -CS_ERR_PROTOCOL,
	                "\"lsn\" must be"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cs_get_req g;
		err[0] = '\0';
		int rc = cs_proto_decode_get(
		        (const uint8_t *)cases[i].bytes, cases[i].len, &g, err, sizeof err);
		if (rc != cases[i].want || strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: rc %d want %d, err \"%s\" want \"%s\"", i, rc,
			        cases[i].want, err, cases[i].msg);
		if (rc == 0) {
			assert_int_equal(g.shard_len, 2);
			assert_memory_equal(g.shard, "s1", 2);
			assert_int_equal(g.min_lsn, 5);
		}
	}
	/* 65 bytes: over the limit; 64: the limit. */
	for (uint32_t n = 64; n <= 65; n++) {
		uint8_t body[128];
		uint32_t o = 0;
		memcpy(body, "\x83\xa1q\xa1x\xa3lsn\x05\xa5shard\xd9", 17);
		o = 17;
		body[o++] = (uint8_t)n;
		memset(body + o, 's', n);
		o += n;
		cs_get_req g;
		int rc = cs_proto_decode_get(body, o, &g, err, sizeof err);
		assert_int_equal(rc, n == 64 ? 0 : -CS_ERR_PROTOCOL);
	}
	/* Absent: NULL. */
	cs_get_req g;
	assert_int_equal(
	        cs_proto_decode_get((const uint8_t *)"\x81\xa1q\xa1x", 5, &g, err, sizeof err), 0);
	assert_null(g.shard);
	assert_int_equal(g.shard_len, 0);
	assert_true(cs_proto_shard_name_ok("a-Z_0.9", 7));
	assert_false(cs_proto_shard_name_ok("", 0));
	assert_false(cs_proto_shard_name_ok(NULL, 0));
}

static void roundtrip_mget(void **state)
{
	static cs_get_req items[3], back[CS_PROTO_MAX_MGET];
	uint32_t n = 0, len;
	cs_buf b;
	for (int i = 0; i < 3; i++)
		items[i] = sample_get();
	items[1].nparams = 0;
	items[2].tier = CS_TIER_CRITICAL;
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_mget(&b, 5, items, 3), 0);
	const uint8_t *body = body_of(&b, CS_OP_MGET, 5, &len);
	assert_int_equal(
	        cs_proto_decode_mget(body, len, back, CS_PROTO_MAX_MGET, &n, err, sizeof err), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++)
		assert_get_eq(&items[i], &back[i]);
	cs_buf_free(&b);
}

static void roundtrip_hello(void **state)
{
	cs_hello_req h = {1, "app-7", 5, NULL, 0}, back;
	cs_buf b;
	uint32_t len;
	cs_buf_init(&b, 0);
	for (int k = 0; k < 2; k++) {
		if (k == 1) {
			h.token = "s3cret";
			h.token_len = 6;
		}
		cs_buf_reset(&b);
		assert_int_equal(cs_proto_write_hello(&b, 1, &h), 0);
		const uint8_t *body = body_of(&b, CS_OP_HELLO, 1, &len);
		assert_int_equal(cs_proto_decode_hello(body, len, &back, err, sizeof err), 0);
		assert_int_equal(back.version, 1);
		assert_int_equal(back.client_len, 5);
		assert_memory_equal(back.client, "app-7", 5);
		if (k == 0) {
			assert_null(back.token);
		} else {
			assert_int_equal(back.token_len, 6);
			assert_memory_equal(back.token, "s3cret", 6);
		}
	}
	/* Reply. */
	uint32_t v, sl, mf;
	const char *s;
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_hello_reply(&b, 1, 1, "cachesvc/0.1", 1u << 20), 0);
	const uint8_t *body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_HELLO, 1, &len);
	assert_int_equal(cs_proto_decode_hello_reply(body, len, &v, &s, &sl, &mf), 0);
	assert_int_equal(v, 1);
	assert_int_equal(mf, 1u << 20);
	assert_int_equal(sl, 12);
	assert_memory_equal(s, "cachesvc/0.1", 12);
	cs_buf_free(&b);
}

static void roundtrip_invalidate(void **state)
{
	cs_inval_req q = {"conv_messages", 13, true, 1, {{.type = CS_V_INT, .u.i = 42}}};
	cs_inval_req back;
	cs_buf b;
	uint32_t len;
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_inval(&b, 3, &q), 0);
	const uint8_t *body = body_of(&b, CS_OP_INVALIDATE, 3, &len);
	assert_int_equal(cs_proto_decode_inval(body, len, &back, err, sizeof err), 0);
	assert_true(back.has_params);
	assert_int_equal(back.nparams, 1);
	assert_value_eq(&back.params[0], &q.params[0]);
	/* Without p: the whole query. An empty p is still "one key" (zero-parameter query). */
	q.has_params = false;
	q.nparams = 0;
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_inval(&b, 4, &q), 0);
	body = body_of(&b, CS_OP_INVALIDATE, 4, &len);
	assert_int_equal(cs_proto_decode_inval(body, len, &back, err, sizeof err), 0);
	assert_false(back.has_params);
	q.has_params = true;
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_inval(&b, 4, &q), 0);
	body = body_of(&b, CS_OP_INVALIDATE, 4, &len);
	assert_int_equal(cs_proto_decode_inval(body, len, &back, err, sizeof err), 0);
	assert_true(back.has_params);
	assert_int_equal(back.nparams, 0);
	/* Replies. */
	bool whole;
	uint64_t n;
	for (int k = 0; k < 2; k++) {
		cs_buf_reset(&b);
		assert_int_equal(cs_proto_write_inval_reply(&b, 9, k == 1, 1234567890123ull), 0);
		body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_INVALIDATE, 9, &len);
		assert_int_equal(cs_proto_decode_inval_reply(body, len, &whole, &n), 0);
		assert_int_equal(whole, k == 1);
		assert_int_equal(n, 1234567890123ull);
	}
	cs_buf_free(&b);
}

static void roundtrip_ping_stats(void **state)
{
	cs_buf b;
	uint32_t len;
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_empty(&b, 1, CS_OP_PING), 0);
	const uint8_t *body = body_of(&b, CS_OP_PING, 1, &len);
	assert_int_equal(cs_proto_decode_empty(body, len), 0);
	assert_int_equal(cs_proto_decode_empty((const uint8_t *)"\x80", 1), 0);
	assert_int_equal(
	        cs_proto_decode_empty((const uint8_t *)"\x81\xa1q\xc0", 4), -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_empty((const uint8_t *)"", 0), -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_empty((const uint8_t *)"\xc0\xc0", 2), -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_write_empty(&b, 1, CS_OP_GET), -CS_ERR_BAD_PARAMS);
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_empty(&b, 2, CS_OP_STATS), 0);
	body_of(&b, CS_OP_STATS, 2, &len);
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_nil_reply(&b, 2, CS_OP_PING), 0);
	body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_PING, 2, &len);
	assert_int_equal(cs_proto_decode_nil(body, len), 0);

	cs_stat st[3] = {{"hits", 4, false, 10, 0}, {"hit_ratio", 9, true, 0, 0.25},
	        {"neg", 3, false, -5, 0}},
	        out[3];
	uint32_t n;
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_stats(&b, 3, st, 3), 0);
	body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_STATS, 3, &len);
	assert_int_equal(cs_proto_decode_stats(body, len, out, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(out[0].i, 10);
	assert_true(out[1].is_float && out[1].f == 0.25);
	assert_int_equal(out[2].i, -5);
	assert_memory_equal(out[1].name, "hit_ratio", 9);
	assert_int_equal(cs_proto_decode_stats(body, len, out, 2, &n), -CS_ERR_TOO_LARGE);
	cs_buf_free(&b);
}

static int show_collect(void *priv, uint32_t row, const char *key, uint32_t key_len,
        const cs_value *v)
{
	char *out = priv;
	size_t o = strlen(out);
	snprintf(out + o, 512 - o, "%u:%.*s=", row, (int)key_len, key);
	o = strlen(out);
	switch (v->type) {
	case CS_V_STR:
		snprintf(out + o, 512 - o, "s'%.*s' ", (int)v->u.s.len, v->u.s.p);
		break;
	case CS_V_INT:
		snprintf(out + o, 512 - o, "i%lld ", (long long)v->u.i);
		break;
	case CS_V_FLOAT:
		snprintf(out + o, 512 - o, "f%g ", v->u.f);
		break;
	case CS_V_BOOL:
		snprintf(out + o, 512 - o, "b%d ", v->u.b);
		break;
	default:
		snprintf(out + o, 512 - o, "nil ");
	}
	return 0;
}

/* ADMIN: the request decodes to its operation and optional query; "op" is required; bad
 * bodies are refused; its reply is SHOW's row format under opcode 0x89. */
static void roundtrip_admin(void **state)
{
	cs_buf b;
	uint32_t len;
	cs_admin_req a;
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_admin(&b, 3, "pause", "q1"), 0);
	const uint8_t *body = body_of(&b, CS_OP_ADMIN, 3, &len);
	assert_int_equal(cs_proto_decode_admin(body, len, &a, err, sizeof err), 0);
	assert_int_equal(a.op_len, 5);
	assert_memory_equal(a.op, "pause", 5);
	assert_int_equal(a.query_len, 2);
	assert_memory_equal(a.query, "q1", 2);
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_admin(&b, 4, "reload", NULL), 0);
	body = body_of(&b, CS_OP_ADMIN, 4, &len);
	assert_int_equal(cs_proto_decode_admin(body, len, &a, err, sizeof err), 0);
	assert_memory_equal(a.op, "reload", 6);
	assert_null(a.query);
	assert_true(cs_op_is_request(CS_OP_ADMIN));
	assert_false(cs_op_is_request(CS_OP_ADMIN + 1));
	assert_string_equal(cs_op_name(CS_OP_ADMIN), "admin");
	assert_string_equal(cs_op_name(CS_OP_REPLY_FLAG | CS_OP_ADMIN), "admin_reply");
	/* no "op"; unknown key; duplicate key; a non-string "q"; trailing bytes */
	assert_int_equal(cs_proto_decode_admin((const uint8_t *)"\x81\xa1q\xa1y", 5, &a, err,
	                         sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_non_null(strstr(err, "ADMIN needs \"op\""));
	assert_int_equal(cs_proto_decode_admin((const uint8_t *)"\x81\xa1x\xa1y", 5, &a, err,
	                         sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_admin((const uint8_t *)"\x82\xa2op\xa1y\xa2op\xa1z", 11,
	                         &a, err, sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_admin((const uint8_t *)"\x82\xa2op\xa1y\xa1q\x07", 9, &a,
	                         err, sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_admin((const uint8_t *)"\x81\xa2op\xa1y\xc0", 7, &a, err,
	                         sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_write_admin(&b, 1, NULL, NULL), -CS_ERR_BAD_PARAMS);
	/* the reply: one row under 0x89 */
	cs_buf_reset(&b);
	size_t off = cs_proto_rows_begin(&b, CS_OP_ADMIN, 5);
	cs_show_cell cells[] = { { "paused", { .type = CS_V_BOOL, .u.b = true } } };
	assert_int_equal(cs_proto_show_row(&b, cells, 1), 0);
	cs_proto_show_end(&b, off, 1);
	body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_ADMIN, 5, &len);
	assert_int_equal(len, 1 + 4 + 1 + 7 + 1);
	assert_memory_equal(body, "\xdd\0\0\0\x01\x81\xa6paused\xc3", len);
	cs_buf_free(&b);
	(void)state;
}

/* SHOW: the request decodes to its view; the row writer's rows decode cell by cell with
 * their types; bad bodies are refused; a full buffer fails the row, not half of it. */
static void roundtrip_show(void **state)
{
	cs_buf b;
	uint32_t len, n;
	const char *w;
	uint32_t wl;
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_show(&b, 7, "servers"), 0);
	const uint8_t *body = body_of(&b, CS_OP_SHOW, 7, &len);
	assert_int_equal(cs_proto_decode_show(body, len, &w, &wl, err, sizeof err), 0);
	assert_int_equal(wl, 7);
	assert_memory_equal(w, "servers", 7);
	assert_true(cs_op_is_request(CS_OP_SHOW));
	assert_string_equal(cs_op_name(CS_OP_SHOW), "show");
	assert_string_equal(cs_op_name(CS_OP_REPLY_FLAG | CS_OP_SHOW), "show_reply");
	/* bad bodies: not a map, no "what", unknown key, non-string, too long */
	assert_int_equal(cs_proto_decode_show((const uint8_t *)"\xc0", 1, &w, &wl, err, sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_show((const uint8_t *)"\x80", 1, &w, &wl, err, sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_show((const uint8_t *)"\x81\xa1x\xa1y", 5, &w, &wl, err,
	                         sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_show((const uint8_t *)"\x81\xa4what\x01", 7, &w, &wl, err,
	                         sizeof err),
	        -CS_ERR_PROTOCOL);
	char longname[CS_PROTO_MAX_NAME + 2];
	memset(longname, 'v', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_show(&b, 1, longname), -CS_ERR_BAD_PARAMS);

	cs_buf_reset(&b);
	size_t off = cs_proto_show_begin(&b, 9);
	cs_show_cell r0[] = {
	        {"name", {.type = CS_V_STR, .u.s = {"r1", 2}}},
	        {"up", {.type = CS_V_BOOL, .u.b = true}},
	        {"lag_ms", {.type = CS_V_INT, .u.i = -3}},
	        {"ratio", {.type = CS_V_FLOAT, .u.f = 0.5}},
	        {"gen", {.type = CS_V_NIL}},
	};
	cs_show_cell r1[] = {{"name", {.type = CS_V_STR, .u.s = {"primary", 7}}}};
	assert_int_equal(cs_proto_show_row(&b, r0, 5), 0);
	assert_int_equal(cs_proto_show_row(&b, r1, 1), 0);
	cs_proto_show_end(&b, off, 2);
	body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_SHOW, 9, &len);
	char got[512] = "";
	assert_int_equal(cs_proto_decode_show_reply(body, len, &n, show_collect, got), 0);
	assert_int_equal(n, 2);
	assert_string_equal(got, "0:name=s'r1' 0:up=b1 0:lag_ms=i-3 0:ratio=f0.5 0:gen=nil "
	                         "1:name=s'primary' ");
	/* an empty view */
	cs_buf_reset(&b);
	off = cs_proto_show_begin(&b, 1);
	cs_proto_show_end(&b, off, 0);
	body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_SHOW, 1, &len);
	assert_int_equal(cs_proto_decode_show_reply(body, len, &n, show_collect, got), 0);
	assert_int_equal(n, 0);
	/* malformed replies: not an array, a row not a map, a container value */
	assert_int_equal(cs_proto_decode_show_reply((const uint8_t *)"\x80", 1, &n, show_collect, got),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(
	        cs_proto_decode_show_reply((const uint8_t *)"\x91\x01", 2, &n, show_collect, got),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_show_reply((const uint8_t *)"\x91\x81\xa1k\x90", 5, &n,
	                         show_collect, got),
	        -CS_ERR_PROTOCOL);
	cs_buf_free(&b);

	/* a row past the cap fails whole and leaves the buffer failed */
	cs_buf_init(&b, CS_PROTO_HDR + 5 + 8);
	off = cs_proto_show_begin(&b, 1);
	assert_int_equal(cs_proto_show_row(&b, r1, 1), 0 - CS_ERR_TOO_LARGE);
	assert_true(b.failed);
	assert_int_equal(b.len, CS_PROTO_HDR + 5);
	cs_buf_free(&b);
}

static void roundtrip_result(void **state)
{
	cs_buf res, b;
	cs_meta m = {CS_SRC_REPLICA, 0xABCDEF0123ull, 1500, true, CS_STORED_UNSAID};
	uint32_t len;
	build_result(&res);
	assert_int_equal(cs_proto_check_result(res.data, res.len, err, sizeof err), 0);
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_result(&b, 8, CS_OP_GET, &m, res.data, res.len), 0);
	const uint8_t *body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_GET, 8, &len);
	/* The result bytes are copied verbatim at the end of the body. */
	assert_memory_equal(body + len - res.len, res.data, res.len);

	cs_result *r = NULL;
	assert_int_equal(cs_result_decode(body, len, &r, err, sizeof err), 0);
	assert_int_equal(cs_result_error(r, NULL), 0);
	const cs_meta *rm = cs_result_meta(r);
	assert_int_equal(rm->src, CS_SRC_REPLICA);
	assert_int_equal(rm->lsn, 0xABCDEF0123ull);
	assert_int_equal(rm->age_ms, 1500);
	assert_true(rm->stale);
	assert_int_equal(cs_result_ncols(r), 3);
	assert_int_equal(cs_result_nrows(r), 2);
	assert_string_equal(cs_result_col_name(r, 1), "name");
	assert_int_equal(cs_result_col_type(r, 2), CS_COL_TIMESTAMPTZ);
	assert_null(cs_result_col_name(r, 3));
	cs_value v;
	assert_int_equal(cs_result_value(r, 0, 1, &v), 0);
	assert_int_equal(v.type, CS_V_STR);
	assert_int_equal(v.u.s.len, 3);
	assert_memory_equal(v.u.s.p, "ann", 3);
	assert_int_equal(cs_result_value(r, 0, 2, &v), 0);
	assert_int_equal(v.type, CS_V_TS);
	assert_int_equal(v.u.ts.sec, 1700000000);
	assert_int_equal(v.u.ts.nsec, 5000);
	assert_int_equal(cs_result_value(r, 1, 1, &v), 0);
	assert_int_equal(v.type, CS_V_NIL);
	assert_int_equal(cs_result_value(r, 2, 0, &v), -CS_ERR_BAD_PARAMS);
	cs_result_free(r);

	/* Every value type survives a trip through a one-row result. */
	uint32_t nv;
	const cs_value *vals = all_values(&nv);
	mp p;
	mp_open(&p);
	assert_int_equal(cs_proto_pack_result_begin(&p.pk, nv), 0);
	for (uint32_t i = 0; i < nv; i++)
		assert_int_equal(cs_proto_pack_col(&p.pk, "c", CS_COL_OTHER), 0);
	assert_int_equal(msgpack_pack_array(&p.pk, 1), 0);
	assert_int_equal(msgpack_pack_array(&p.pk, nv), 0);
	for (uint32_t i = 0; i < nv; i++)
		assert_int_equal(cs_proto_pack_value(&p.pk, &vals[i]), 0);
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_result(&b, 9, CS_OP_REFRESH, &m, p.b.data, p.b.len), 0);
	body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_REFRESH, 9, &len);
	assert_int_equal(cs_result_decode(body, len, &r, err, sizeof err), 0);
	for (uint32_t i = 0; i < nv; i++) {
		assert_int_equal(cs_result_value(r, 0, i, &v), 0);
		assert_value_eq(&v, &vals[i]);
	}
	cs_result_free(r);
	cs_buf_free(&p.b);
	cs_buf_free(&b);
	cs_buf_free(&res);
}

static void roundtrip_mget_reply(void **state)
{
	cs_buf res, b;
	cs_meta m = {CS_SRC_CACHE, 7, 0, false, CS_STORED_UNSAID};
	uint32_t len, n;
	build_result(&res);
	cs_buf_init(&b, 0);
	size_t off = cs_proto_mget_begin(&b, 4, 3);
	assert_int_equal(cs_proto_mget_item_ok(&b, &m, res.data, res.len), 0);
	assert_int_equal(cs_proto_mget_item_err(&b, -CS_ERR_UNKNOWN_QUERY, "no query \"x\""), 0);
	assert_int_equal(cs_proto_mget_item_ok(&b, &m, res.data, res.len), 0);
	cs_proto_mget_end(&b, off);
	assert_false(b.failed);
	const uint8_t *body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_MGET, 4, &len);
	cs_result *items[4];
	assert_int_equal(cs_result_decode_mget(body, len, items, 4, &n, err, sizeof err), 0);
	assert_int_equal(n, 3);
	const char *msg;
	assert_int_equal(cs_result_error(items[0], NULL), 0);
	assert_int_equal(cs_result_nrows(items[0]), 2);
	assert_int_equal(cs_result_error(items[1], &msg), -CS_ERR_UNKNOWN_QUERY);
	assert_string_equal(msg, "no query \"x\"");
	assert_int_equal(cs_result_meta(items[2])->lsn, 7);
	for (uint32_t i = 0; i < n; i++)
		cs_result_free(items[i]);
	/* More items than the caller has room for. */
	assert_int_equal(
	        cs_result_decode_mget(body, len, items, 2, &n, err, sizeof err), -CS_ERR_PROTOCOL);
	cs_buf_free(&b);
	cs_buf_free(&res);
}

/* The meta map on the wire: exactly the four keys while "stored" is unsaid (byte-identical
 * to servers that predate it), else "stored" as a fifth key. */
static void meta_stored(void **state)
{
	static const uint8_t four[] = {0x84, 0xa3, 's', 'r', 'c', 0x02, 0xa3, 'l', 's', 'n', 0xcf,
	        0x00, 0x00, 0x00, 0x16, 0xb3, 0x74, 0xd8, 0x48, 0xa3, 'a', 'g', 'e', 0xcd, 0x05,
	        0xdc, 0xa5, 's', 't', 'a', 'l', 'e', 0xc2};
	static const struct {
		uint8_t stored, want;
	} cases[] = {{CS_STORED_UNSAID, CS_STORED_UNSAID}, {CS_STORED_YES, CS_STORED_YES},
	        {CS_STORED_NO, CS_STORED_NO}, {7, CS_STORED_UNSAID} /* out of range: unsaid */};
	cs_buf res;
	build_result(&res);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint8_t want[64];
		size_t wn = sizeof four;
		memcpy(want, four, sizeof four);
		if (cases[i].want != CS_STORED_UNSAID) {
			want[0] = 0x85;
			memcpy(want + wn, "\xa6stored", 7);
			wn += 7;
			want[wn++] = cases[i].want == CS_STORED_YES ? 0xc3 : 0xc2;
		}
		cs_meta m = {CS_SRC_PRIMARY, 0x16B374D848ull, 1500, false, cases[i].stored};
		mp p;
		mp_open(&p);
		assert_int_equal(cs_proto_pack_meta(&p.pk, &m), 0);
		assert_int_equal(p.b.len, wn);
		assert_memory_equal(p.b.data, want, wn);
		cs_buf_free(&p.b);

		/* The whole reply [meta, result] carries it, and the decoder reads it back. */
		cs_buf b;
		uint32_t len, n;
		cs_buf_init(&b, 0);
		assert_int_equal(
		        cs_proto_write_result(&b, 3, CS_OP_REFRESH, &m, res.data, res.len), 0);
		const uint8_t *body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_REFRESH, 3, &len);
		assert_int_equal(len, 1 + wn + res.len);
		assert_int_equal(body[0], 0x92);
		assert_memory_equal(body + 1, want, wn);
		cs_result *r = NULL;
		assert_int_equal(cs_result_decode(body, len, &r, err, sizeof err), 0);
		const cs_meta *rm = cs_result_meta(r);
		assert_int_equal(rm->src, CS_SRC_PRIMARY);
		assert_int_equal(rm->lsn, 0x16B374D848ull);
		assert_int_equal(rm->age_ms, 1500);
		assert_false(rm->stale);
		assert_int_equal(rm->stored, cases[i].want);
		assert_int_equal(cs_result_nrows(r), 2);
		cs_result_free(r);

		/* And so does an MGET item. */
		cs_buf_reset(&b);
		size_t off = cs_proto_mget_begin(&b, 4, 1);
		assert_int_equal(cs_proto_mget_item_ok(&b, &m, res.data, res.len), 0);
		cs_proto_mget_end(&b, off);
		body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_MGET, 4, &len);
		assert_memory_equal(body + 2, want, wn);
		cs_result *items[1];
		assert_int_equal(
		        cs_result_decode_mget(body, len, items, 1, &n, err, sizeof err), 0);
		assert_int_equal(n, 1);
		assert_int_equal(cs_result_meta(items[0])->stored, cases[i].want);
		cs_result_free(items[0]);
		cs_buf_free(&b);
	}
	cs_buf_free(&res);
}

/* Decodes [meta, [[], []]] with the meta map given as bytes, as a GET reply (meta at depth
 * 2) into *out, and as the one item of an MGET reply (meta at depth 3). Both copies are
 * exact-size allocations (ASan catches over-reads). Returns the GET decoder's code. */
static int decode_meta_bytes(const uint8_t *meta, size_t n, cs_meta *out, int *mget_rc)
{
	uint8_t *body = malloc(n + 5);
	assert_non_null(body);
	body[0] = 0x91; /* the MGET array */
	body[1] = 0x92;
	memcpy(body + 2, meta, n);
	memcpy(body + 2 + n, "\x92\x90\x90", 3);
	uint8_t *get = malloc(n + 4);
	assert_non_null(get);
	memcpy(get, body + 1, n + 4);
	cs_result *r = NULL, *items[1];
	uint32_t cnt = 0;
	err[0] = '\0';
	int rc = cs_result_decode(get, (uint32_t)(n + 4), &r, err, sizeof err);
	if (rc == 0) {
		*out = *cs_result_meta(r);
		cs_result_free(r);
	} else {
		assert_null(r);
	}
	char err2[256];
	*mget_rc =
	        cs_result_decode_mget(body, (uint32_t)(n + 5), items, 1, &cnt, err2, sizeof err2);
	if (*mget_rc == 0) {
		assert_int_equal(cnt, 1);
		if (rc == 0)
			assert_memory_equal(cs_result_meta(items[0]), out, sizeof *out);
		cs_result_free(items[0]);
	}
	free(get);
	free(body);
	return rc;
}

/* Packs the four required meta keys (src 1, lsn 9, age 4, stale true) into p. */
static void pack_required_meta(mp *p)
{
	mp_s(p, "src");
	msgpack_pack_uint8(&p->pk, 1);
	mp_s(p, "lsn");
	msgpack_pack_uint8(&p->pk, 9);
	mp_s(p, "age");
	msgpack_pack_uint8(&p->pk, 4);
	mp_s(p, "stale");
	msgpack_pack_true(&p->pk);
}

/* Nested arrays [[...[1]...]], `levels` deep. */
static void pack_nested(mp *p, int levels)
{
	for (int i = 0; i < levels; i++)
		msgpack_pack_array(&p->pk, 1);
	msgpack_pack_uint8(&p->pk, 1);
}

/* Clients ignore meta keys they do not know, whatever their value and position; known keys
 * are still checked. */
static void meta_unknown_keys(void **state)
{
	cs_meta m;
	int mrc;
	mp p;

	/* Unknown keys of every kind, before, between and after the known ones, one twice. */
	mp_open(&p);
	msgpack_pack_map(&p.pk, 13);
	mp_s(&p, "stale");
	msgpack_pack_false(&p.pk);
	mp_s(&p, "zz");
	msgpack_pack_array(&p.pk, 2);
	msgpack_pack_uint8(&p.pk, 1);
	msgpack_pack_map(&p.pk, 1);
	mp_s(&p, "k");
	msgpack_pack_nil(&p.pk);
	mp_s(&p, "age");
	msgpack_pack_uint16(&p.pk, 300);
	mp_s(&p, "bin");
	msgpack_pack_bin_with_body(&p.pk, "\x00\xff", 2);
	mp_s(&p, "lsn");
	msgpack_pack_uint64(&p.pk, UINT64_MAX);
	mp_s(&p, "ext");
	msgpack_pack_ext_with_body(&p.pk, "\x01\x02\x03", 3, 5);
	mp_s(&p, "src");
	msgpack_pack_uint8(&p.pk, 2);
	mp_s(&p, "stored");
	msgpack_pack_false(&p.pk);
	mp_s(&p, "f");
	msgpack_pack_double(&p.pk, 1.5);
	mp_s(&p, "zz"); /* an unknown key twice is still ignored */
	mp_s(&p, "again");
	mp_s(&p, "");
	msgpack_pack_int64(&p.pk, INT64_MIN);
	mp_s(&p, "ts");
	cs_value ts = {.type = CS_V_TS, .u.ts = {-1, 5}};
	cs_proto_pack_value(&p.pk, &ts);
	mp_s(&p, "m");
	msgpack_pack_map(&p.pk, 0);
	memset(&m, 0xee, sizeof m);
	assert_int_equal(decode_meta_bytes(p.b.data, p.b.len, &m, &mrc), 0);
	assert_int_equal(mrc, 0);
	assert_int_equal(m.src, CS_SRC_PRIMARY);
	assert_int_equal(m.lsn, UINT64_MAX);
	assert_int_equal(m.age_ms, 300);
	assert_false(m.stale);
	assert_int_equal(m.stored, CS_STORED_NO);
	cs_buf_free(&p.b);

	/* Without "stored": unsaid. */
	mp_open(&p);
	msgpack_pack_map(&p.pk, 5);
	mp_s(&p, "future");
	mp_s(&p, "key");
	pack_required_meta(&p);
	memset(&m, 0xee, sizeof m);
	assert_int_equal(decode_meta_bytes(p.b.data, p.b.len, &m, &mrc), 0);
	assert_int_equal(mrc, 0);
	assert_int_equal(m.src, CS_SRC_REPLICA);
	assert_int_equal(m.lsn, 9);
	assert_int_equal(m.age_ms, 4);
	assert_true(m.stale);
	assert_int_equal(m.stored, CS_STORED_UNSAID);
	cs_buf_free(&p.b);

	/* The depth limit holds inside a skipped value: meta is at depth 2 in a GET reply (so
	 * the value at 3, its innermost element at 3 + levels) and one deeper in an MGET. */
	for (int levels = 4; levels <= 6; levels++) {
		mp_open(&p);
		msgpack_pack_map(&p.pk, 5);
		pack_required_meta(&p);
		mp_s(&p, "deep");
		pack_nested(&p, levels);
		int rc = decode_meta_bytes(p.b.data, p.b.len, &m, &mrc);
		assert_int_equal(rc, 3 + levels <= CS_PROTO_MAX_DEPTH ? 0 : -CS_ERR_PROTOCOL);
		assert_int_equal(mrc, 4 + levels <= CS_PROTO_MAX_DEPTH ? 0 : -CS_ERR_PROTOCOL);
		if (rc != 0)
			assert_non_null(strstr(err, "nesting deeper than 8"));
		cs_buf_free(&p.b);
	}

	/* Known keys stay strict; unknown values must still be whole objects. */
	static const struct {
		const char *extra_key;
		const char *extra_val; /* raw msgpack, NULL: no extra pair */
		size_t val_len;
		const char *msg;
	} bad[] = {
	        {"src", "\x00", 1, "duplicate"}, {"stale", "\xc2", 1, "duplicate"},
	        {"stored", "\x01", 1, "boolean"}, {"stored", "\xc0", 1, "boolean"},
	        {"stored", "\xa4true", 5, "boolean"},
	        {NULL, "\x01", 1, "strings"},                  /* a non-str key */
	        {"x", "\xc1", 1, "0xc1"},                      /* a reserved byte */
	        {"x", "\xdd\xff\xff\xff\xff", 5, "count"},     /* count beyond the body */
	        {"x", "\xdb\x00\x00\x01\x00", 5, "truncated"}, /* str length beyond the body */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		mp_open(&p);
		msgpack_pack_map(&p.pk, 5);
		pack_required_meta(&p);
		if (bad[i].extra_key)
			mp_s(&p, bad[i].extra_key);
		else
			msgpack_pack_uint8(&p.pk, 1);
		assert_int_equal(cs_buf_append(&p.b, bad[i].extra_val, bad[i].val_len), 0);
		int rc = decode_meta_bytes(p.b.data, p.b.len, &m, &mrc);
		if (rc != -CS_ERR_PROTOCOL || mrc != -CS_ERR_PROTOCOL || !strstr(err, bad[i].msg))
			fail_msg("bad meta %zu: rc %d, mget %d, err \"%s\" want \"%s\"", i, rc, mrc,
			        err, bad[i].msg);
		cs_buf_free(&p.b);
	}
	/* A duplicate "stored" (its first value is valid). */
	mp_open(&p);
	msgpack_pack_map(&p.pk, 6);
	pack_required_meta(&p);
	mp_s(&p, "stored");
	msgpack_pack_true(&p.pk);
	mp_s(&p, "stored");
	msgpack_pack_true(&p.pk);
	assert_int_equal(decode_meta_bytes(p.b.data, p.b.len, &m, &mrc), -CS_ERR_PROTOCOL);
	assert_int_equal(mrc, -CS_ERR_PROTOCOL);
	assert_non_null(strstr(err, "duplicate key \"stored\""));
	cs_buf_free(&p.b);
	/* Unknown keys and "stored" do not stand in for a required key. */
	mp_open(&p);
	msgpack_pack_map(&p.pk, 5);
	mp_s(&p, "src");
	msgpack_pack_uint8(&p.pk, 0);
	mp_s(&p, "lsn");
	msgpack_pack_uint8(&p.pk, 0);
	mp_s(&p, "age");
	msgpack_pack_uint8(&p.pk, 0);
	mp_s(&p, "stored");
	msgpack_pack_true(&p.pk);
	mp_s(&p, "stalf");
	msgpack_pack_false(&p.pk);
	assert_int_equal(decode_meta_bytes(p.b.data, p.b.len, &m, &mrc), -CS_ERR_PROTOCOL);
	assert_int_equal(mrc, -CS_ERR_PROTOCOL);
	assert_non_null(strstr(err, "meta needs"));
	cs_buf_free(&p.b);
}

/* MGET item errors are written {"code", "msg"} (an error frame's shape); "err", what older
 * servers wrote, is still read. */
static void item_error_forms(void **state)
{
	cs_buf b;
	uint32_t len, n;
	cs_buf_init(&b, 0);
	size_t off = cs_proto_mget_begin(&b, 6, 1);
	assert_int_equal(cs_proto_mget_item_err(&b, -CS_ERR_OVERLOADED, "queue full"), 0);
	cs_proto_mget_end(&b, off);
	const uint8_t *body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_MGET, 6, &len);
	static const uint8_t want[] = "\x91\x82\xa4"
	                              "code\x03\xa3msg\xaa"
	                              "queue full";
	assert_int_equal(len, sizeof want - 1);
	assert_memory_equal(body, want, len);
	cs_buf_free(&b);

	/* Both names, in either order, next to a result. */
	mp p;
	mp_open(&p);
	msgpack_pack_array(&p.pk, 5);
	msgpack_pack_map(&p.pk, 2);
	mp_s(&p, "code");
	msgpack_pack_uint8(&p.pk, 3);
	mp_s(&p, "msg");
	mp_s(&p, "a");
	msgpack_pack_map(&p.pk, 2);
	mp_s(&p, "err");
	msgpack_pack_uint8(&p.pk, 4);
	mp_s(&p, "msg");
	mp_s(&p, "b");
	msgpack_pack_map(&p.pk, 2);
	mp_s(&p, "msg");
	mp_s(&p, "c");
	mp_s(&p, "code");
	msgpack_pack_uint8(&p.pk, 200); /* unknown codes are kept */
	msgpack_pack_map(&p.pk, 2);
	mp_s(&p, "msg");
	mp_s(&p, "");
	mp_s(&p, "err");
	msgpack_pack_uint8(&p.pk, 1);
	cs_buf res;
	build_result(&res);
	cs_meta m = {CS_SRC_CACHE, 5, 0, false, CS_STORED_UNSAID};
	msgpack_pack_array(&p.pk, 2);
	assert_int_equal(cs_proto_pack_meta(&p.pk, &m), 0);
	assert_int_equal(cs_buf_append(&p.b, res.data, res.len), 0);
	cs_result *items[5];
	assert_int_equal(
	        cs_result_decode_mget(p.b.data, (uint32_t)p.b.len, items, 5, &n, err, sizeof err),
	        0);
	assert_int_equal(n, 5);
	static const struct {
		int code;
		const char *msg;
	} got[] = {{-3, "a"}, {-4, "b"}, {-200, "c"}, {-1, ""}, {0, ""}};
	for (int i = 0; i < 5; i++) {
		const char *msg;
		assert_int_equal(cs_result_error(items[i], &msg), got[i].code);
		assert_string_equal(msg, got[i].msg);
		if (got[i].code != 0)
			assert_int_equal(cs_result_meta(items[i])->stored, CS_STORED_UNSAID);
		cs_result_free(items[i]);
	}
	cs_buf_free(&p.b);
	cs_buf_free(&res);

	/* One code only, under either name; both keys present; no unknown keys. */
	static const struct {
		const char *bytes;
		uint32_t len;
	} bad[] = {
	        {"\x91\x83\xa4"
	         "code\x01\xa3"
	         "err\x01\xa3msg\xa0",
	                16},
	        {"\x91\x83\xa3"
	         "err\x01\xa4"
	         "code\x02\xa3msg\xa0",
	                16},
	        {"\x91\x83\xa4"
	         "code\x01\xa4"
	         "code\x01\xa3msg\xa0",
	                17},
	        {"\x91\x81\xa4"
	         "code\x01",
	                7},
	        {"\x91\x81\xa3msg\xa0", 6},
	        {"\x91\x82\xa4"
	         "code\x00\xa3msg\xa0",
	                12},
	        {"\x91\x82\xa4"
	         "code\xcd\x01\x00\xa3msg\xa0",
	                14},
	        {"\x91\x83\xa4"
	         "code\x01\xa3msg\xa0\xa1x\x01",
	                15},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cs_result *it[1];
		if (cs_result_decode_mget((const uint8_t *)bad[i].bytes, bad[i].len, it, 1, &n, err,
		            sizeof err) != -CS_ERR_PROTOCOL)
			fail_msg("bad item error %zu accepted", i);
	}
}

static void every_error_code(void **state)
{
	static const char *names[] = {NULL, "unknown_query", "bad_params", "overloaded",
	        "unavailable", "too_large", "auth", "protocol", "internal", "timeout",
	        "shutting_down", "future_lsn", "no_shard"};
	cs_buf b;
	cs_buf_init(&b, 0);
	for (int code = 1; code <= CS_ERR_MAX; code++) {
		assert_string_equal(cs_err_name(code), names[code]);
		assert_string_equal(cs_err_name(-code), names[code]);
		cs_buf_reset(&b);
		/* Negative and positive codes encode the same. */
		assert_int_equal(cs_proto_write_error(&b, (uint32_t)code, code % 2 ? -code : code,
		                         "%s happened %d", names[code], code),
		        0);
		uint32_t len, ml;
		const char *msg;
		int got;
		const uint8_t *body = body_of(&b, CS_OP_ERROR, (uint32_t)code, &len);
		assert_int_equal(cs_proto_decode_error(body, len, &got, &msg, &ml), 0);
		assert_int_equal(got, code);
		char want[64];
		snprintf(want, sizeof want, "%s happened %d", names[code], code);
		assert_int_equal(ml, strlen(want));
		assert_memory_equal(msg, want, ml);
	}
	assert_string_equal(cs_err_name(0), "unknown_error");
	assert_string_equal(cs_err_name(99), "unknown_error");
	assert_string_equal(cs_op_name(CS_OP_GET), "get");
	assert_string_equal(cs_op_name(CS_OP_REPLY_FLAG | CS_OP_MGET), "mget_reply");
	assert_string_equal(cs_op_name(CS_OP_ERROR), "error");
	assert_string_equal(cs_op_name(0x42), "unknown");

	/* Long messages are truncated to CS_PROTO_MAX_MSG bytes. */
	char big[4000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	cs_buf_reset(&b);
	assert_int_equal(cs_proto_write_error(&b, 1, CS_ERR_INTERNAL, "%s", big), 0);
	uint32_t len, ml;
	const char *msg;
	int got;
	const uint8_t *body = body_of(&b, CS_OP_ERROR, 1, &len);
	assert_int_equal(cs_proto_decode_error(body, len, &got, &msg, &ml), 0);
	assert_int_equal(ml, CS_PROTO_MAX_MSG);
	/* Malformed error bodies. */
	assert_int_equal(cs_proto_decode_error((const uint8_t *)"\x81\xa4"
	                                                        "code\x00",
	                         7, &got, &msg, &ml),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_decode_error((const uint8_t *)"\xc0", 1, &got, &msg, &ml),
	        -CS_ERR_PROTOCOL);
	cs_buf_free(&b);
}

/* ---- Frames and the reader --------------------------------------------------------------- */

static void header_checks(void **state)
{
	uint8_t h[CS_PROTO_HDR] = {0, 0, 0, 5, 1, 3, 0, 0, 0xde, 0xad, 0xbe, 0xef};
	cs_frame f;
	assert_int_equal(cs_proto_parse_header(h, 5, &f), 0);
	assert_int_equal(f.body_len, 5);
	assert_int_equal(f.opcode, CS_OP_GET);
	assert_int_equal(f.reqid, 0xdeadbeefu);
	assert_int_equal(cs_proto_parse_header(h, 4, &f), -CS_ERR_PROTOCOL); /* oversized */
	h[4] = 2;
	assert_int_equal(cs_proto_parse_header(h, 5, &f), -CS_ERR_PROTOCOL); /* version */
	h[4] = 1;
	h[7] = 1;
	assert_int_equal(cs_proto_parse_header(h, 5, &f), -CS_ERR_PROTOCOL); /* flags */
	h[7] = 0;
	h[6] = 0x80;
	assert_int_equal(cs_proto_parse_header(h, 5, &f), -CS_ERR_PROTOCOL);
}

/* Three frames of different shapes back to back. */
static void build_stream(cs_buf *b)
{
	cs_get_req g = sample_get();
	cs_buf_init(b, 0);
	assert_int_equal(cs_proto_write_get(b, 1, CS_OP_GET, &g), 0);
	assert_int_equal(cs_proto_write_empty(b, 2, CS_OP_PING), 0);
	assert_int_equal(cs_proto_write_error(b, 3, CS_ERR_TIMEOUT, "slow"), 0);
}

static int drain(cs_proto_reader *r, cs_frame *frames, int *n)
{
	int rc;
	cs_frame f;
	while ((rc = cs_proto_reader_next(r, &f)) == 1) {
		/* Bodies are only valid until the next call: compare now. */
		frames[*n] = f;
		(*n)++;
	}
	return rc;
}

static void reader_every_split(void **state)
{
	cs_buf s;
	build_stream(&s);
	uint8_t *copy = malloc(s.len);
	for (size_t split = 0; split <= s.len; split++) {
		for (size_t split2 = split; split2 <= s.len; split2 += 7) {
			cs_proto_reader *r = cs_proto_reader_new(CS_PROTO_MAX_FRAME);
			cs_frame frames[3];
			int n = 0;
			size_t cuts[4] = {0, split, split2, s.len};
			size_t got_off = 0;
			for (int c = 0; c < 3; c++) {
				assert_int_equal(cs_proto_reader_feed(r, s.data + cuts[c],
				                         cuts[c + 1] - cuts[c]),
				        0);
				int before = n;
				assert_int_equal(drain(r, frames, &n), 0);
				for (int i = before; i < n; i++) {
					memcpy(copy + got_off, s.data + got_off, CS_PROTO_HDR);
					assert_memory_equal(frames[i].body,
					        s.data + got_off + CS_PROTO_HDR,
					        frames[i].body_len);
					got_off += CS_PROTO_HDR + frames[i].body_len;
				}
			}
			assert_int_equal(n, 3);
			assert_int_equal(frames[0].reqid, 1);
			assert_int_equal(frames[1].opcode, CS_OP_PING);
			assert_int_equal(frames[2].opcode, CS_OP_ERROR);
			assert_int_equal(got_off, s.len);
			assert_int_equal(cs_proto_reader_pending(r), 0);
			cs_proto_reader_free(r);
		}
	}
	/* Byte by byte. */
	cs_proto_reader *r = cs_proto_reader_new(CS_PROTO_MAX_FRAME);
	cs_frame frames[3];
	int n = 0;
	for (size_t i = 0; i < s.len; i++) {
		assert_int_equal(cs_proto_reader_feed(r, s.data + i, 1), 0);
		assert_int_equal(drain(r, frames, &n), 0);
	}
	assert_int_equal(n, 3);
	cs_proto_reader_free(r);
	free(copy);
	cs_buf_free(&s);
}

static void reader_errors(void **state)
{
	/* Oversized frame: detected from the header alone, before the body arrives. */
	cs_proto_reader *r = cs_proto_reader_new(16);
	cs_frame f;
	uint8_t h[CS_PROTO_HDR] = {0, 0, 0, 17, 1, 3, 0, 0, 0, 0, 0, 1};
	assert_int_equal(cs_proto_reader_feed(r, h, sizeof h), 0);
	assert_int_equal(cs_proto_reader_next(r, &f), -CS_ERR_PROTOCOL);
	assert_non_null(strstr(cs_proto_reader_errstr(r), "exceeds"));
	/* Sticky. */
	assert_int_equal(cs_proto_reader_feed(r, h, 1), -CS_ERR_PROTOCOL);
	assert_int_equal(cs_proto_reader_next(r, &f), -CS_ERR_PROTOCOL);
	cs_proto_reader_free(r);

	r = cs_proto_reader_new(16);
	h[3] = 1;
	h[6] = 1;
	assert_int_equal(cs_proto_reader_feed(r, h, sizeof h), 0);
	assert_int_equal(cs_proto_reader_next(r, &f), -CS_ERR_PROTOCOL);
	assert_non_null(strstr(cs_proto_reader_errstr(r), "flags"));
	cs_proto_reader_free(r);

	/* The buffer cap: HDR + max_body + slack unconsumed bytes. */
	r = cs_proto_reader_new(16);
	size_t lim = CS_PROTO_HDR + 16 + CS_PROTO_READER_SLACK;
	uint8_t *junk = calloc(1, lim + 1);
	assert_int_equal(cs_proto_reader_feed(r, junk, lim + 1), -CS_ERR_TOO_LARGE);
	cs_proto_reader_free(r);
	r = cs_proto_reader_new(16);
	assert_int_equal(cs_proto_reader_feed(r, junk, lim), 0);
	cs_proto_reader_free(r);
	free(junk);

	/* Not enough bytes: 0, not an error. */
	r = cs_proto_reader_new(16);
	assert_int_equal(cs_proto_reader_next(r, &f), 0);
	assert_int_equal(cs_proto_reader_feed(r, h, 11), 0);
	assert_int_equal(cs_proto_reader_next(r, &f), 0);
	cs_proto_reader_free(r);
}

/* ---- Limits ------------------------------------------------------------------------------ */

/* Packs a GET map {"q": q, "p": [nparams ints]}. */
static void pack_get_body(mp *m, const char *q, uint32_t nparams)
{
	assert_int_equal(msgpack_pack_map(&m->pk, 2), 0);
	mp_s(m, "q");
	mp_s(m, q);
	mp_s(m, "p");
	assert_int_equal(msgpack_pack_array(&m->pk, nparams), 0);
	for (uint32_t i = 0; i < nparams; i++)
		assert_int_equal(msgpack_pack_int64(&m->pk, i), 0);
}

static int decode_get_mp(mp *m)
{
	cs_get_req g;
	return cs_proto_decode_get(m->b.data, (uint32_t)m->b.len, &g, err, sizeof err);
}

static void limit_param_count(void **state)
{
	mp m;
	mp_open(&m);
	pack_get_body(&m, "q1", CS_PROTO_MAX_PARAMS);
	assert_int_equal(decode_get_mp(&m), 0);
	cs_buf_reset(&m.b);
	pack_get_body(&m, "q1", CS_PROTO_MAX_PARAMS + 1);
	assert_int_equal(decode_get_mp(&m), -CS_ERR_PROTOCOL);
	assert_non_null(strstr(err, "parameters"));
	cs_buf_free(&m.b);
	/* The encoder refuses too. */
	cs_get_req g = sample_get();
	cs_buf b;
	cs_buf_init(&b, 0);
	g.nparams = CS_PROTO_MAX_PARAMS + 1;
	assert_int_equal(cs_proto_write_get(&b, 1, CS_OP_GET, &g), -CS_ERR_BAD_PARAMS);
	assert_int_equal(b.len, 0);
	cs_buf_free(&b);
}

static void limit_name_length(void **state)
{
	char name[CS_PROTO_MAX_NAME + 2];
	memset(name, 'n', sizeof name);
	mp m;
	mp_open(&m);
	name[CS_PROTO_MAX_NAME] = '\0';
	pack_get_body(&m, name, 0);
	assert_int_equal(decode_get_mp(&m), 0);
	cs_buf_reset(&m.b);
	name[CS_PROTO_MAX_NAME] = 'n';
	name[CS_PROTO_MAX_NAME + 1] = '\0';
	pack_get_body(&m, name, 0);
	assert_int_equal(decode_get_mp(&m), -CS_ERR_PROTOCOL);
	cs_buf_reset(&m.b);
	pack_get_body(&m, "", 0);
	assert_int_equal(decode_get_mp(&m), -CS_ERR_PROTOCOL);
	/* HELLO client name and token. */
	char tok[CS_PROTO_MAX_TOKEN + 2];
	memset(tok, 't', sizeof tok);
	for (int k = 0; k < 4; k++) {
		cs_hello_req h;
		cs_buf_reset(&m.b);
		assert_int_equal(msgpack_pack_map(&m.pk, 3), 0);
		mp_s(&m, "v");
		assert_int_equal(msgpack_pack_uint8(&m.pk, 1), 0);
		mp_s(&m, "client");
		assert_int_equal(
		        msgpack_pack_str_with_body(&m.pk, name, CS_PROTO_MAX_NAME + (k == 1)), 0);
		mp_s(&m, "token");
		assert_int_equal(
		        msgpack_pack_str_with_body(&m.pk, tok, CS_PROTO_MAX_TOKEN + (k == 2)), 0);
		int rc = cs_proto_decode_hello(m.b.data, (uint32_t)m.b.len, &h, err, sizeof err);
		assert_int_equal(rc, k == 1 || k == 2 ? -CS_ERR_PROTOCOL : 0);
	}
	cs_buf_free(&m.b);
}

static void limit_mget_count(void **state)
{
	static cs_get_req items[CS_PROTO_MAX_MGET + 1];
	uint32_t n;
	mp m;
	mp_open(&m);
	for (int k = 0; k < 2; k++) {
		uint32_t count = CS_PROTO_MAX_MGET + (uint32_t)k;
		cs_buf_reset(&m.b);
		assert_int_equal(msgpack_pack_array(&m.pk, count), 0);
		for (uint32_t i = 0; i < count; i++)
			pack_get_body(&m, "q", 1);
		int rc = cs_proto_decode_mget(m.b.data, (uint32_t)m.b.len, items,
		        CS_PROTO_MAX_MGET + 1, &n, err, sizeof err);
		assert_int_equal(rc, k == 0 ? 0 : -CS_ERR_PROTOCOL);
		if (k == 0)
			assert_int_equal(n, CS_PROTO_MAX_MGET);
	}
	/* The caller's array bounds the count as well. */
	cs_buf_reset(&m.b);
	assert_int_equal(msgpack_pack_array(&m.pk, 3), 0);
	for (int i = 0; i < 3; i++)
		pack_get_body(&m, "q", 0);
	assert_int_equal(
	        cs_proto_decode_mget(m.b.data, (uint32_t)m.b.len, items, 2, &n, err, sizeof err),
	        -CS_ERR_PROTOCOL);
	/* An error in one item names it and fails the MGET. */
	cs_buf_reset(&m.b);
	assert_int_equal(msgpack_pack_array(&m.pk, 2), 0);
	pack_get_body(&m, "q", 0);
	assert_int_equal(msgpack_pack_map(&m.pk, 1), 0);
	mp_s(&m, "x");
	assert_int_equal(
	        cs_proto_decode_mget(m.b.data, (uint32_t)m.b.len, items, 2, &n, err, sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_non_null(strstr(err, "item 1"));
	cs_buf_free(&m.b);
}

static void limit_depth(void **state)
{
	cs_get_req g;
	/* {"q":"x","p":[[[...]]]}: the body is depth 1, "p" depth 2, its elements depth 3. */
	for (int extra = 0; extra <= 7; extra++) {
		uint8_t body[64];
		size_t n = 0;
		memcpy(body, "\x82\xa1q\xa1x\xa1p\x91", 8);
		n = 8;
		for (int i = 0; i < extra; i++)
			body[n++] = 0x91; /* array of 1 */
		body[n++] = 0xc0;
		int rc = cs_proto_decode_get(body, (uint32_t)n, &g, err, sizeof err);
		/* Innermost nil at depth 3 + extra. */
		if (extra == 0)
			assert_int_equal(rc, 0);
		else if (3 + extra <= CS_PROTO_MAX_DEPTH)
			assert_int_equal(rc, -CS_ERR_BAD_PARAMS); /* arrays are not values */
		else
			assert_int_equal(rc, -CS_ERR_PROTOCOL);
	}
	/* A result nested deeper than the limit. */
	assert_int_equal(cs_proto_check_result(
	                         (const uint8_t *)"\x92\x90\x91\x91\x91\xc0", 6, err, sizeof err),
	        -CS_ERR_PROTOCOL);
}

static void limit_counts_vs_remaining(void **state)
{
	cs_get_req g;
	static const struct {
		const char *bytes;
		uint32_t len;
	} cases[] = {
	        {"\xdd\xff\x00\x00\x00", 5},                     /* array32 of ~4e9 */
	        {"\xdf\x7f\xff\xff\xff\xc0", 6},                 /* map32 */
	        {"\x81\xa1q\xdb\xff\xff\xff\xff", 8},            /* str32 longer than the body */
	        {"\x82\xa1q\xa1x\xa1p\xdc\x00\x03\xc0\xc0", 12}, /* array16 of 3 with 2 left */
	        {"\x81\xa1q\xc4\x05\x01", 6},                    /* bin8 */
	        {"\x82\xa1q\xa1x\xa1p\x91\xc7\x10\xff\x00", 12}, /* ext8 */
	        {"\x83\xa1q\xa1x", 5}, /* map of 3 with 2 bytes left for 6 */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(cs_proto_decode_get((const uint8_t *)cases[i].bytes, cases[i].len,
		                         &g, err, sizeof err),
		        -CS_ERR_PROTOCOL);
		cs_result *r;
		assert_int_equal(cs_result_decode((const uint8_t *)cases[i].bytes, cases[i].len, &r,
		                         err, sizeof err),
		        -CS_ERR_PROTOCOL);
	}
	/* The exact message for counts. */
	assert_int_equal(cs_proto_decode_get(
	                         (const uint8_t *)"\xdd\xff\x00\x00\x00", 5, &g, err, sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_non_null(strstr(err, "remaining"));
}

/* ---- Malformed and soft errors ----------------------------------------------------------- */

static void malformed_truncated(void **state)
{
	cs_get_req g = sample_get(), back;
	cs_buf b;
	uint32_t len;
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_get(&b, 1, CS_OP_GET, &g), 0);
	const uint8_t *body = body_of(&b, CS_OP_GET, 1, &len);
	for (uint32_t cut = 0; cut < len; cut++) {
		uint8_t *exact = malloc(cut ? cut : 1); /* ASan catches over-reads */
		memcpy(exact, body, cut);
		assert_int_equal(
		        cs_proto_decode_get(exact, cut, &back, err, sizeof err), -CS_ERR_PROTOCOL);
		free(exact);
	}
	cs_buf_free(&b);
	/* Reply truncated at every byte. */
	cs_buf res;
	cs_meta m = {0, 1, 2, false, CS_STORED_UNSAID};
	build_result(&res);
	cs_buf_init(&b, 0);
	assert_int_equal(cs_proto_write_result(&b, 1, CS_OP_GET, &m, res.data, res.len), 0);
	body = body_of(&b, CS_OP_REPLY_FLAG | CS_OP_GET, 1, &len);
	for (uint32_t cut = 0; cut < len; cut++) {
		cs_result *r = NULL;
		assert_int_equal(
		        cs_result_decode(body, cut, &r, err, sizeof err), -CS_ERR_PROTOCOL);
		assert_null(r);
	}
	cs_buf_free(&b);
	cs_buf_free(&res);
}

static void malformed_shapes(void **state)
{
	static const struct {
		const char *bytes;
		uint32_t len;
		int want;
		const char *msg;
	} cases[] = {
	        {"\xc0", 1, -CS_ERR_PROTOCOL, "map"},
	        {"\x90", 1, -CS_ERR_PROTOCOL, "map"},
	        {"", 0, -CS_ERR_PROTOCOL, "truncated"},
	        {"\x80", 1, -CS_ERR_PROTOCOL, "missing"},
	        {"\x81\xa1q\x01", 4, -CS_ERR_PROTOCOL, "string"},
	        {"\x81\x01\xa1x", 4, -CS_ERR_PROTOCOL, "keys"},
	        {"\x82\xa1q\xa1x\xa3zzz\xc0", 10, -CS_ERR_PROTOCOL, "unknown key"},
	        {"\x82\xa1q\xa1x\xa1q\xa1y", 9, -CS_ERR_PROTOCOL, "duplicate"},
	        {"\x82\xa1q\xa1x\xa1p\xc0", 8, -CS_ERR_PROTOCOL, "array"},
	        {"\x82\xa1q\xa1x\xa4tier\xa1"
	         "a",
	                12, -CS_ERR_PROTOCOL, "tier"},
	        {"\x82\xa1q\xa1x\xa4tier\xff", 11, -CS_ERR_PROTOCOL, "tier"},
	        {"\x82\xa1q\xa1x\xa3lsn\xcb\x00\x00\x00\x00\x00\x00\x00\x00", 18, -CS_ERR_PROTOCOL,
	                "lsn"},
	        {"\x82\xa1q\xa1x\xa6"
	         "bypass\x01",
	                13, -CS_ERR_PROTOCOL, "bypass"},
	        {"\x81\xa1q\xa1x\xc0", 6, -CS_ERR_PROTOCOL, "trailing"},
	        {"\x81\xa1q\xc1", 4, -CS_ERR_PROTOCOL, "0xc1"},
	        /* Soft: well-formed but unusable values. */
	        {"\x82\xa1q\xa1x\xa4tier\x03", 11, -CS_ERR_BAD_PARAMS, "tier"},
	        {"\x82\xa1q\xa1x\xa1p\x91\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 17,
	                -CS_ERR_BAD_PARAMS, "INT64_MAX"},
	        {"\x82\xa1q\xa1x\xa1p\x91\xd4\x05\x00", 11, -CS_ERR_BAD_PARAMS, "ext"},
	        {"\x82\xa1q\xa1x\xa1p\x91\xd6\xff\x00\x00", 11, -CS_ERR_PROTOCOL, "truncated"},
	        {"\x82\xa1q\xa1x\xa1p\x91\xd7\xff\xff\xff\xff\xff\x00\x00\x00\x00", 18,
	                -CS_ERR_BAD_PARAMS, "timestamp"}, /* nsec > 999999999 */
	        {"\x82\xa1q\xa1x\xa1p\x91\x80", 9, -CS_ERR_BAD_PARAMS, "maps"},
	        /* A soft error followed by a hard one is hard. */
	        {"\x83\xa1q\xa1x\xa4tier\x03\xa3zzz\xc0", 15, -CS_ERR_PROTOCOL, "unknown"},
	        {"\x82\xa4tier\x03\xa1q\xa1x", 11, -CS_ERR_BAD_PARAMS, "tier"},
	        {"\x82\xa4tier\x03\xa1q\xa1x\xc0", 12, -CS_ERR_PROTOCOL, "trailing"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cs_get_req g;
		err[0] = '\0';
		int rc = cs_proto_decode_get(
		        (const uint8_t *)cases[i].bytes, cases[i].len, &g, err, sizeof err);
		if (rc != cases[i].want || strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: rc %d want %d, err \"%s\" want \"%s\"", i, rc,
			        cases[i].want, err, cases[i].msg);
	}
	/* Optional keys default. */
	cs_get_req g;
	assert_int_equal(
	        cs_proto_decode_get((const uint8_t *)"\x81\xa1q\xa1x", 5, &g, err, sizeof err), 0);
	assert_int_equal(g.tier, CS_TIER_DEFAULT);
	assert_int_equal(g.nparams, 0);
	assert_int_equal(g.min_lsn, 0);
	assert_false(g.bypass);
	assert_string_equal(err, "");

	/* HELLO and INVALIDATE. */
	cs_hello_req h;
	assert_int_equal(
	        cs_proto_decode_hello((const uint8_t *)"\x81\xa1v\x01", 4, &h, err, sizeof err),
	        -CS_ERR_PROTOCOL); /* no client */
	assert_int_equal(cs_proto_decode_hello((const uint8_t *)"\x82\xa1v\xff\xa6"
	                                                        "client\xa0",
	                         12, &h, err, sizeof err),
	        -CS_ERR_PROTOCOL); /* negative v */
	assert_int_equal(cs_proto_decode_hello((const uint8_t *)"\x82\xa1v\x01\xa6"
	                                                        "client\xa1z",
	                         13, &h, err, sizeof err),
	        0);
	cs_inval_req q;
	assert_int_equal(cs_proto_decode_inval((const uint8_t *)"\x82\xa1q\xa1x\xa4tier\x01", 11,
	                         &q, err, sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(
	        cs_proto_decode_inval((const uint8_t *)"\x81\xa1p\x90", 4, &q, err, sizeof err),
	        -CS_ERR_PROTOCOL); /* no q */
	assert_int_equal(
	        cs_proto_decode_inval((const uint8_t *)"\x82\xa1q\xa1x\xa1p\x91\xcf\xff\xff"
	                                               "\xff\xff\xff\xff\xff\xff",
	                17, &q, err, sizeof err),
	        -CS_ERR_BAD_PARAMS);
	/* NULL err buffers are fine. */
	assert_int_equal(
	        cs_proto_decode_get((const uint8_t *)"\xc0", 1, &g, NULL, 0), -CS_ERR_PROTOCOL);
}

static void malformed_results(void **state)
{
	static const struct {
		const char *bytes;
		uint32_t len;
	} bad[] = {
	        {"\x91\x90", 2}, /* array of 1 */
	        {"\x92\x91\x92\xa1"
	         "a\x00\x90",
	                7}, /* column type 0 */
	        {"\x92\x91\x92\xa1"
	         "a\x02\x91\x92\x01\x02",
	                10}, /* row of 2, 1 column */
	        {"\x92\x91\x92\xa1"
	         "a\x02\x91\x91\x90",
	                9}, /* array as a value */
	        {"\x92\x91\x92\xa1"
	         "a\x02\x91\x91\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
	                17},
	        {"\x92\x91\x92\xa1"
	         "a\x02\x91\x91\xd4\x01\x00",
	                11},                     /* non-timestamp ext */
	        {"\x92\x90\x90\xc0", 4},         /* trailing */
	        {"\x92\x91\x92\x01\x02\x90", 6}, /* name not a string */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (cs_proto_check_result((const uint8_t *)bad[i].bytes, bad[i].len, err,
		            sizeof err) != -CS_ERR_PROTOCOL)
			fail_msg("bad result %zu accepted", i);
	assert_int_equal(
	        cs_proto_check_result((const uint8_t *)"\x92\x90\x90", 3, err, sizeof err), 0);
	assert_int_equal(cs_proto_check_result((const uint8_t *)"\x92\x91\x92\xa1"
	                                                        "a\x02\x92\x91\x01"
	                                                        "\x91\xc0",
	                         11, err, sizeof err),
	        0);
	/* Replies: meta problems. */
	cs_result *r;
	static const struct {
		const char *bytes;
		uint32_t len;
	} badreply[] = {
	        {"\x92\x80\x92\x90\x90", 5}, /* empty meta */
	        {"\x92\x84\xa3src\x03\xa3lsn\x00\xa3"
	         "age\x00\xa5stale\xc2\x92\x90\x90",
	                27},
	        {"\x92\x84\xa3src\x00\xa3lsn\x00\xa3"
	         "age\x00\xa5stale\x00\x92\x90\x90",
	                27},
	        {"\x92\x84\xa3src\x00\xa3lsn\x00\xa3"
	         "age\x00\xa5stalf\xc2\x92\x90\x90",
	                27},
	};
	for (size_t i = 0; i < sizeof badreply / sizeof badreply[0]; i++)
		if (cs_result_decode((const uint8_t *)badreply[i].bytes, badreply[i].len, &r, err,
		            sizeof err) != -CS_ERR_PROTOCOL)
			fail_msg("bad reply %zu accepted", i);
	assert_int_equal(cs_result_decode((const uint8_t *)"\x92\x84\xa3src\x00\xa3lsn\x00\xa3"
	                                                   "age\x00\xa5stale\xc2\x92\x90\x90",
	                         27, &r, err, sizeof err),
	        0);
	assert_int_equal(cs_result_ncols(r), 0);
	cs_result_free(r);
	/* MGET replies: bad error items. */
	uint32_t n;
	cs_result *items[4];
	assert_int_equal(cs_result_decode_mget((const uint8_t *)"\x91\x81\xa3"
	                                                        "err\x01",
	                         6, items, 4, &n, err, sizeof err),
	        -CS_ERR_PROTOCOL);
	assert_int_equal(cs_result_decode_mget(
	                         (const uint8_t *)"\x91\xc0", 2, items, 4, &n, err, sizeof err),
	        -CS_ERR_PROTOCOL);
}

/* ---- Buffers ----------------------------------------------------------------------------- */

static void buffer_cap_and_rollback(void **state)
{
	cs_buf b, res;
	cs_meta m = {0, 0, 0, false, CS_STORED_UNSAID};
	build_result(&res);
	cs_buf_init(&b, CS_PROTO_HDR + 20);
	assert_int_equal(cs_proto_write_empty(&b, 1, CS_OP_PING), 0);
	size_t before = b.len;
	/* Too large: rolled back, and the buffer is usable for an error frame. */
	assert_int_equal(
	        cs_proto_write_result(&b, 2, CS_OP_GET, &m, res.data, res.len), -CS_ERR_TOO_LARGE);
	assert_int_equal(b.len, before);
	assert_false(b.failed);
	cs_buf_truncate(&b, 0);
	assert_int_equal(cs_proto_write_error(&b, 2, CS_ERR_TOO_LARGE, "big"), 0);
	/* Raw appends: sticky failure. */
	cs_buf_reset(&b);
	uint8_t junk[64] = {0};
	assert_int_equal(cs_buf_append(&b, junk, 40), -CS_ERR_TOO_LARGE);
	assert_true(b.failed);
	assert_int_equal(cs_buf_append(&b, junk, 1), -CS_ERR_TOO_LARGE);
	assert_int_equal(cs_proto_write_empty(&b, 1, CS_OP_PING), -CS_ERR_TOO_LARGE);
	cs_buf_reset(&b);
	assert_int_equal(cs_buf_append(&b, junk, 32), 0);
	assert_int_equal(b.len, 32);
	/* MGET items past the cap. */
	cs_buf_reset(&b);
	size_t off = cs_proto_mget_begin(&b, 1, 1);
	assert_int_equal(cs_proto_mget_item_ok(&b, &m, res.data, res.len), -CS_ERR_TOO_LARGE);
	cs_proto_mget_end(&b, off);
	assert_true(b.failed);
	cs_buf_truncate(&b, off);
	assert_int_equal(b.len, 0);
	cs_buf_free(&b);
	cs_buf_free(&b); /* idempotent */
	cs_buf_free(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(roundtrip_get_and_refresh),
	        cmocka_unit_test(roundtrip_get_shard),
	        cmocka_unit_test(decode_get_shard),
	        cmocka_unit_test(roundtrip_mget),
	        cmocka_unit_test(roundtrip_hello),
	        cmocka_unit_test(roundtrip_invalidate),
	        cmocka_unit_test(roundtrip_ping_stats),
	        cmocka_unit_test(roundtrip_show),
	        cmocka_unit_test(roundtrip_admin),
	        cmocka_unit_test(roundtrip_result),
	        cmocka_unit_test(roundtrip_mget_reply),
	        cmocka_unit_test(meta_stored),
	        cmocka_unit_test(meta_unknown_keys),
	        cmocka_unit_test(item_error_forms),
	        cmocka_unit_test(every_error_code),
	        cmocka_unit_test(header_checks),
	        cmocka_unit_test(reader_every_split),
	        cmocka_unit_test(reader_errors),
	        cmocka_unit_test(limit_param_count),
	        cmocka_unit_test(limit_name_length),
	        cmocka_unit_test(limit_mget_count),
	        cmocka_unit_test(limit_depth),
	        cmocka_unit_test(limit_counts_vs_remaining),
	        cmocka_unit_test(malformed_truncated),
	        cmocka_unit_test(malformed_shapes),
	        cmocka_unit_test(malformed_results),
	        cmocka_unit_test(buffer_cap_and_rollback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
