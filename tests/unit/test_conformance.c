/* test_conformance.c - runs protocol/conformance/frames.json through the C codec.
 *
 * Every case becomes one cmocka test. Request cases go through the server's request
 * decoders (cs_proto_decode_*), reply cases through the client's reply decoders
 * (cs_result_decode*, cs_proto_decode_*_reply, ...), both behind the stream reader
 * (cs_proto_reader) and the header check (cs_proto_parse_header). A valid case must decode
 * to exactly its "frame" (the decoded values are turned back into the file's JSON form and
 * compared with json_equal); an error case must be refused with its code. A valid reply in
 * the form the server writes is also re-encoded with the server's encoders (proto_enc.c)
 * from its decoded meaning and must give exactly the case's bytes. The file format is
 * documented in protocol/conformance/README.md.
 *
 * Usage: test_conformance FRAMES.json (or CS_CONFORMANCE=FRAMES.json). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cs_proto.h"
#include "mpread.h" /* item boundaries, for re-encoding replies */

#define POW53 (INT64_C(1) << 53)

/* Cases where the C codec disagrees with PROTOCOL.md plus the lead's decisions (see the
 * conformance README). Each must still disagree: when the codec is fixed, this test fails
 * until the name is removed from here. */
/* strndup reads up to n bytes, and the sources here are not NUL-terminated: ASan's
 * strict_string_checks (as scripts/test runs) flags that. */
static char *dup_n(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static const char *const known_disagreements[] = {
        NULL, /* none */
};

typedef struct tcase {
	json_t *c; /* the case object (borrowed from the document) */
	const char *name;
	bool known_disagreement;
} tcase;

/* ---- JSON forms of decoded values (README.md "Values") ---------------------------------- */

static json_t *j_i64(int64_t v)
{
	if (v >= -POW53 && v <= POW53)
		return json_integer(v);
	char s[32];
	snprintf(s, sizeof s, "%" PRId64, v);
	return json_pack("{s:s}", "int", s);
}

static json_t *j_u64(uint64_t v)
{
	if (v <= (uint64_t)POW53)
		return json_integer((json_int_t)v);
	char s[32];
	snprintf(s, sizeof s, "%" PRIu64, v);
	return json_pack("{s:s}", "int", s);
}

static json_t *j_hex(const void *p, size_t n)
{
	const uint8_t *b = p;
	char *s = malloc(2 * n + 1);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02x", b[i]);
	s[2 * n] = '\0';
	json_t *j = json_string(s);
	free(s);
	return j;
}

static json_t *j_strn(const char *p, size_t n)
{
	json_t *j = json_stringn(p, n);
	if (j == NULL) /* not UTF-8: cannot equal any JSON string, so mark it */
		j = json_pack("{s:o}", "invalid-utf8", j_hex(p, n));
	return j;
}

static json_t *j_value(const cs_value *v)
{
	switch (v->type) {
	case CS_V_NIL:
		return json_null();
	case CS_V_BOOL:
		return json_boolean(v->u.b);
	case CS_V_INT:
		return j_i64(v->u.i);
	case CS_V_FLOAT:
		return json_pack("{s:f}", "float", v->u.f);
	case CS_V_STR:
		return j_strn(v->u.s.p, v->u.s.len);
	case CS_V_BIN:
		return json_pack("{s:o}", "bin", j_hex(v->u.s.p, v->u.s.len));
	case CS_V_TS:
		return json_pack("{s:{s:o,s:I}}", "ts", "sec", j_i64(v->u.ts.sec), "nsec",
		        (json_int_t)v->u.ts.nsec);
	default:
		fail_msg("unknown cs_value type %d", v->type);
		return NULL;
	}
}

static json_t *j_params(const cs_value *p, uint32_t n)
{
	json_t *a = json_array();
	for (uint32_t i = 0; i < n; i++)
		json_array_append_new(a, j_value(&p[i]));
	return a;
}

/* ---- Requests ---------------------------------------------------------------------------- */

/* "shard" only when the request has one: it has no default (absent = a token without one). */
static json_t *j_get(const cs_get_req *g)
{
	json_t *o = json_pack("{s:o,s:o,s:I,s:o,s:b}", "q", j_strn(g->query, g->query_len), "p",
	        j_params(g->params, g->nparams), "tier", (json_int_t)g->tier, "lsn",
	        j_u64(g->min_lsn), "bypass", g->bypass);
	if (o != NULL && g->shard != NULL)
		json_object_set_new(o, "shard", j_strn(g->shard, g->shard_len));
	return o;
}

/* The expected GET map with every optional key set to its default when absent (a decoder
 * cannot tell an absent key from its default). Returns a new reference. */
static json_t *get_defaults(json_t *m)
{
	json_t *o = json_deep_copy(m);
	if (!json_is_object(o))
		return o;
	if (json_object_get(o, "p") == NULL)
		json_object_set_new(o, "p", json_array());
	if (json_object_get(o, "tier") == NULL)
		json_object_set_new(o, "tier", json_integer(CS_TIER_DEFAULT));
	if (json_object_get(o, "lsn") == NULL)
		json_object_set_new(o, "lsn", json_integer(0));
	if (json_object_get(o, "bypass") == NULL)
		json_object_set_new(o, "bypass", json_false());
	return o;
}

/* Decodes a request body. Returns 0 and the decoded meaning in *out (and the expected
 * meaning, normalised, in *want), or the negated error code. */
static int decode_request(
        uint8_t op, const uint8_t *body, uint32_t len, json_t *expect, json_t **out, json_t **want)
{
	char err[256] = "";
	int rc;
	*out = NULL;
	*want = expect ? json_incref(expect) : NULL;
	switch (op) {
	case CS_OP_HELLO: {
		cs_hello_req h;
		if ((rc = cs_proto_decode_hello(body, len, &h, err, sizeof err)) != 0)
			break;
		*out = json_pack("{s:I,s:o}", "v", (json_int_t)h.version, "client",
		        j_strn(h.client, h.client_len));
		if (h.token != NULL)
			json_object_set_new(*out, "token", j_strn(h.token, h.token_len));
		break;
	}
	case CS_OP_PING:
	case CS_OP_STATS:
		if ((rc = cs_proto_decode_empty(body, len)) != 0)
			break;
		/* nil and {} both decode to "no arguments": the body is one or the other. */
		*out = len == 1 && body[0] == 0xc0 ? json_null() : json_object();
		break;
	case CS_OP_GET:
	case CS_OP_REFRESH: {
		cs_get_req g;
		if ((rc = cs_proto_decode_get(body, len, &g, err, sizeof err)) != 0)
			break;
		*out = j_get(&g);
		if (expect) {
			json_decref(*want);
			*want = get_defaults(expect);
		}
		break;
	}
	case CS_OP_MGET: {
		cs_get_req *items = calloc(CS_PROTO_MAX_MGET, sizeof *items);
		uint32_t n = 0;
		assert_non_null(items);
		rc = cs_proto_decode_mget(body, len, items, CS_PROTO_MAX_MGET, &n, err, sizeof err);
		if (rc == 0) {
			*out = json_array();
			for (uint32_t i = 0; i < n; i++)
				json_array_append_new(*out, j_get(&items[i]));
		}
		free(items);
		if (rc == 0 && expect && json_is_array(expect)) {
			json_decref(*want);
			*want = json_array();
			size_t i;
			json_t *it;
			json_array_foreach(expect, i, it)
			{
				json_array_append_new(*want, get_defaults(it));
			}
		}
		break;
	}
	case CS_OP_INVALIDATE: {
		cs_inval_req v;
		if ((rc = cs_proto_decode_inval(body, len, &v, err, sizeof err)) != 0)
			break;
		*out = json_pack("{s:o}", "q", j_strn(v.query, v.query_len));
		if (v.has_params)
			json_object_set_new(*out, "p", j_params(v.params, v.nparams));
		break;
	}
	default:
		/* The server's dispatch: anything but a request opcode is a protocol error. */
		assert_false(cs_op_is_request(op));
		rc = -CS_ERR_PROTOCOL;
		snprintf(err, sizeof err, "unknown opcode 0x%02x", op);
		break;
	}
	if (rc != 0)
		print_message("    decoder: %s (%s)\n", cs_err_name(rc), err);
	return rc;
}

/* ---- Replies ----------------------------------------------------------------------------- */

static json_t *j_meta(const cs_meta *m)
{
	json_t *j = json_pack("{s:I,s:o,s:o,s:b}", "src", (json_int_t)m->src, "lsn", j_u64(m->lsn),
	        "age", j_u64(m->age_ms), "stale", m->stale);
	if (m->stored != CS_STORED_UNSAID) /* present on the wire */
		json_object_set_new(j, "stored", json_boolean(m->stored == CS_STORED_YES));
	return j;
}

/* [meta, [cols, rows]] of a decoded result, or {"code", "msg"} of an MGET error item. */
static json_t *j_result(const cs_result *r)
{
	const char *msg;
	int e = cs_result_error(r, &msg);
	if (e != 0)
		return json_pack("{s:i,s:o}", "code", -e, "msg", j_strn(msg, strlen(msg)));
	json_t *cols = json_array(), *rows = json_array();
	uint32_t nc = cs_result_ncols(r), nr = cs_result_nrows(r);
	for (uint32_t c = 0; c < nc; c++) {
		const char *name = cs_result_col_name(r, c);
		json_array_append_new(cols,
		        json_pack("[o,i]", j_strn(name, strlen(name)), cs_result_col_type(r, c)));
	}
	for (uint32_t i = 0; i < nr; i++) {
		json_t *row = json_array();
		for (uint32_t c = 0; c < nc; c++) {
			cs_value v;
			assert_int_equal(cs_result_value(r, i, c, &v), 0);
			json_array_append_new(row, j_value(&v));
		}
		json_array_append_new(rows, row);
	}
	return json_pack("[o,[o,o]]", j_meta(cs_result_meta(r)), cols, rows);
}

/* The expected [meta, result] with the meta keys the codec does not know dropped (a client
 * ignores them; it knows "stored"), or an expected MGET item error in the old form with
 * "err" spelt "code". New reference. */
static json_t *reply_item_want(json_t *it)
{
	json_t *o = json_deep_copy(it);
	if (json_is_object(o)) {
		json_t *e = json_object_get(o, "err");
		if (e != NULL) {
			json_object_set(o, "code", e);
			json_object_del(o, "err");
		}
		return o;
	}
	json_t *meta = json_array_get(o, 0);
	if (json_is_object(meta)) {
		json_t *m = json_object();
		static const char *const keys[] = {"src", "lsn", "age", "stale", "stored"};
		for (int i = 0; i < 5; i++)
			if (json_object_get(meta, keys[i]) != NULL)
				json_object_set(m, keys[i], json_object_get(meta, keys[i]));
		json_array_set_new(o, 0, m);
	}
	return o;
}

static int decode_reply(
        uint8_t op, const uint8_t *body, uint32_t len, json_t *expect, json_t **out, json_t **want)
{
	char err[256] = "";
	int rc;
	*out = NULL;
	*want = expect ? json_incref(expect) : NULL;
	switch (op) {
	case CS_OP_REPLY_FLAG | CS_OP_HELLO: {
		uint32_t v = 0, maxf = 0, slen = 0;
		const char *server = NULL;
		if ((rc = cs_proto_decode_hello_reply(body, len, &v, &server, &slen, &maxf)) != 0)
			break;
		*out = json_pack("{s:I,s:o,s:I}", "v", (json_int_t)v, "server",
		        j_strn(server, slen), "max_frame", (json_int_t)maxf);
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_PING:
		if ((rc = cs_proto_decode_nil(body, len)) == 0)
			*out = json_null();
		break;
	case CS_OP_REPLY_FLAG | CS_OP_GET:
	case CS_OP_REPLY_FLAG | CS_OP_REFRESH: {
		cs_result *r = NULL;
		if ((rc = cs_result_decode(body, len, &r, err, sizeof err)) != 0)
			break;
		*out = j_result(r);
		cs_result_free(r);
		if (expect) {
			json_decref(*want);
			*want = reply_item_want(expect);
		}
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_MGET: {
		cs_result **items = calloc(CS_PROTO_MAX_MGET, sizeof *items);
		uint32_t n = 0;
		assert_non_null(items);
		rc = cs_result_decode_mget(
		        body, len, items, CS_PROTO_MAX_MGET, &n, err, sizeof err);
		if (rc == 0) {
			*out = json_array();
			for (uint32_t i = 0; i < n; i++) {
				json_array_append_new(*out, j_result(items[i]));
				cs_result_free(items[i]);
			}
		}
		free(items);
		if (rc == 0 && expect && json_is_array(expect)) {
			json_decref(*want);
			*want = json_array();
			size_t i;
			json_t *it;
			json_array_foreach(expect, i, it)
			{
				json_array_append_new(*want, reply_item_want(it));
			}
		}
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_INVALIDATE: {
		bool whole = false;
		uint64_t n = 0;
		if ((rc = cs_proto_decode_inval_reply(body, len, &whole, &n)) == 0)
			*out = json_pack("{s:o}", whole ? "generation" : "deleted", j_u64(n));
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_STATS: {
		enum { MAX_STATS = 4096 };
		cs_stat *st = calloc(MAX_STATS, sizeof *st);
		uint32_t n = 0;
		assert_non_null(st);
		if ((rc = cs_proto_decode_stats(body, len, st, MAX_STATS, &n)) == 0) {
			*out = json_object();
			for (uint32_t i = 0; i < n; i++) {
				char *name = dup_n(st[i].name, st[i].name_len);
				assert_non_null(name);
				json_object_set_new(*out, name,
				        st[i].is_float ? json_pack("{s:f}", "float", st[i].f)
				                       : j_i64(st[i].i));
				free(name);
			}
		}
		free(st);
		break;
	}
	case CS_OP_ERROR: {
		int code = 0;
		const char *msg = NULL;
		uint32_t mlen = 0;
		if ((rc = cs_proto_decode_error(body, len, &code, &msg, &mlen)) == 0)
			*out = json_pack("{s:i,s:o}", "code", code, "msg", j_strn(msg, mlen));
		break;
	}
	default:
		/* The client matches replies to requests: any other opcode is a protocol error. */
		rc = -CS_ERR_PROTOCOL;
		snprintf(err, sizeof err, "unexpected reply opcode 0x%02x", op);
		break;
	}
	if (rc != 0)
		print_message("    decoder: %s (%s)\n", cs_err_name(rc), err);
	return rc;
}

/* ---- One case ---------------------------------------------------------------------------- */

static uint8_t *unhex(const char *s, size_t *n)
{
	size_t len = strlen(s);
	assert_int_equal(len % 2, 0);
	uint8_t *b = malloc(len / 2 + 1);
	assert_non_null(b);
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;
		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		b[i] = (uint8_t)v;
	}
	*n = len / 2;
	return b;
}

/* ---- The server's reply encoders against the canonical bytes ----------------------------- */

/* Valid reply cases whose bytes the server's encoders were checked against. */
static size_t encoder_checked;

/* Whether o is an object with exactly keys[0..n) in that order, n in min..max. */
static bool keys_are(json_t *o, const char *const *keys, size_t min, size_t max)
{
	if (!json_is_object(o) || json_object_size(o) < min || json_object_size(o) > max)
		return false;
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		if (strcmp(k, keys[i++]) != 0)
			return false;
	}
	return true;
}

static const char *const META_KEYS[] = {"src", "lsn", "age", "stale", "stored"};
static const char *const ERROR_KEYS[] = {"code", "msg"};

/* Whether an expected GET/MGET reply item is in the form the server writes: [meta, result]
 * with the meta keys in its order, or an item error {"code", "msg"}. */
static bool server_item(json_t *it)
{
	if (json_is_object(it))
		return keys_are(it, ERROR_KEYS, 2, 2);
	return json_is_array(it) && keys_are(json_array_get(it, 0), META_KEYS, 4, 5);
}

/* The bytes of the result part of the [meta, result] object at rd (depth `depth`);
 * advances rd past the object. */
static const uint8_t *result_part(mp_reader *rd, int depth, size_t *len)
{
	mp_obj o;
	assert_int_equal(mp_next(rd, &o), 0);
	assert_int_equal(o.kind, MP_ARRAY);
	assert_int_equal(mp_skip(rd, depth + 1), 0); /* meta */
	const uint8_t *p = rd->p;
	assert_int_equal(mp_skip(rd, depth + 1), 0);
	*len = (size_t)(rd->p - p);
	return p;
}

/* Re-encodes a valid reply case that is in the server's form with the server's encoders
 * (proto_enc.c) from its decoded meaning, and compares the frame with the case's bytes.
 * Returns NULL when they are equal or the case is not in the server's form (an old "err"
 * item, meta keys in another order or unknown to this server), else why not. */
static char *check_reply_encoding(const uint8_t *bytes, size_t n, const cs_frame *f, json_t *body)
{
	char err[256];
	cs_buf b;
	int rc;
	cs_buf_init(&b, 0);
	switch (f->opcode) {
	case CS_OP_ERROR: {
		if (!keys_are(body, ERROR_KEYS, 2, 2))
			goto skip;
		int code = 0;
		const char *msg = NULL;
		uint32_t ml = 0;
		assert_int_equal(cs_proto_decode_error(f->body, f->body_len, &code, &msg, &ml), 0);
		char *m = malloc((size_t)ml + 1); /* msg is not NUL-terminated: no strndup */
		assert_non_null(m);
		memcpy(m, msg, ml);
		m[ml] = '\0';
		rc = cs_proto_write_error(&b, f->reqid, code, "%s", m);
		free(m);
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_PING:
		rc = cs_proto_write_nil_reply(&b, f->reqid, CS_OP_PING);
		break;
	case CS_OP_REPLY_FLAG | CS_OP_HELLO: {
		static const char *const keys[] = {"v", "server", "max_frame"};
		if (!keys_are(body, keys, 3, 3))
			goto skip;
		uint32_t v = 0, maxf = 0, slen = 0;
		const char *server = NULL;
		assert_int_equal(cs_proto_decode_hello_reply(
		                         f->body, f->body_len, &v, &server, &slen, &maxf),
		        0);
		char *sv = dup_n(server, slen);
		assert_non_null(sv);
		rc = cs_proto_write_hello_reply(&b, f->reqid, v, sv, maxf);
		free(sv);
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_INVALIDATE: {
		bool whole = false;
		uint64_t cnt = 0;
		assert_int_equal(
		        cs_proto_decode_inval_reply(f->body, f->body_len, &whole, &cnt), 0);
		rc = cs_proto_write_inval_reply(&b, f->reqid, whole, cnt);
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_STATS: {
		enum { MAX_STATS = 64 };
		cs_stat st[MAX_STATS];
		uint32_t cnt = 0;
		if (cs_proto_decode_stats(f->body, f->body_len, st, MAX_STATS, &cnt) != 0)
			goto skip;
		rc = cs_proto_write_stats(&b, f->reqid, st, cnt);
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_GET:
	case CS_OP_REPLY_FLAG | CS_OP_REFRESH: {
		if (!json_is_array(body) || !server_item(body))
			goto skip;
		cs_result *r = NULL;
		assert_int_equal(cs_result_decode(f->body, f->body_len, &r, err, sizeof err), 0);
		mp_reader rd;
		size_t rlen;
		mp_init(&rd, f->body, f->body_len);
		const uint8_t *res = result_part(&rd, 1, &rlen);
		rc = cs_proto_write_result(&b, f->reqid, f->opcode & (uint8_t)~CS_OP_REPLY_FLAG,
		        cs_result_meta(r), res, rlen);
		cs_result_free(r);
		break;
	}
	case CS_OP_REPLY_FLAG | CS_OP_MGET: {
		size_t i;
		json_t *it;
		if (!json_is_array(body))
			goto skip;
		json_array_foreach(body, i, it)
		{
			if (!server_item(it))
				goto skip;
		}
		cs_result **items = calloc(CS_PROTO_MAX_MGET, sizeof *items);
		uint32_t cnt = 0;
		assert_non_null(items);
		assert_int_equal(cs_result_decode_mget(f->body, f->body_len, items,
		                         CS_PROTO_MAX_MGET, &cnt, err, sizeof err),
		        0);
		mp_reader rd;
		mp_obj a;
		mp_init(&rd, f->body, f->body_len);
		assert_int_equal(mp_next(&rd, &a), 0);
		assert_int_equal(a.len, cnt);
		size_t off = cs_proto_mget_begin(&b, f->reqid, cnt);
		rc = 0;
		for (uint32_t k = 0; k < cnt; k++) {
			const char *msg;
			int code = cs_result_error(items[k], &msg);
			if (code != 0) {
				assert_int_equal(mp_skip(&rd, 2), 0);
				rc |= cs_proto_mget_item_err(&b, code, msg);
			} else {
				size_t rlen;
				const uint8_t *res = result_part(&rd, 2, &rlen);
				rc |= cs_proto_mget_item_ok(
				        &b, cs_result_meta(items[k]), res, rlen);
			}
			cs_result_free(items[k]);
		}
		cs_proto_mget_end(&b, off);
		free(items);
		break;
	}
	default:
		goto skip;
	}
	encoder_checked++;
	char *why = NULL;
	if (rc != 0 || b.failed) {
		if (asprintf(&why, "the server's encoder failed (%d)", rc) < 0)
			why = NULL;
	} else if (b.len != n || memcmp(b.data, bytes, n) != 0) {
		json_t *h = j_hex(b.data, b.len);
		if (asprintf(&why, "the server's encoder writes %s", json_string_value(h)) < 0)
			why = NULL;
		json_decref(h);
	}
	cs_buf_free(&b);
	return why;
skip:
	cs_buf_free(&b);
	return NULL;
}

/* Runs a case: returns NULL when the codec agrees with it, else a malloc'ed description of
 * the disagreement. Malformed cases (the file itself is wrong) fail at once. */
static char *run_case(json_t *c)
{
	const char *dir = json_string_value(json_object_get(c, "dir"));
	const char *hex = json_string_value(json_object_get(c, "hex"));
	json_t *frame = json_object_get(c, "frame"), *error = json_object_get(c, "error");
	bool truncated = json_is_true(json_object_get(c, "truncated"));
	assert_non_null(dir);
	assert_non_null(hex);
	bool request = strcmp(dir, "request") == 0;
	assert_true(request || strcmp(dir, "reply") == 0);
	assert_true((frame != NULL) != (error != NULL)); /* exactly one */
	assert_true(!truncated || error != NULL);
	int want_code = 0;
	if (error != NULL) {
		want_code = (int)json_integer_value(json_object_get(error, "code"));
		assert_true(want_code >= 1 && want_code <= 255);
		const char *name = json_string_value(json_object_get(error, "name"));
		assert_non_null(name);
		assert_string_equal(name, cs_err_name(want_code));
		assert_true(json_is_string(json_object_get(error, "why")));
	}

	size_t n;
	uint8_t *bytes = unhex(hex, &n);
	uint32_t max_body = request ? CS_PROTO_MAX_FRAME : CS_PROTO_MAX_REPLY_FRAME;
	char *why = NULL;
	json_t *out = NULL, *want = NULL;
	int rc = 0;

	/* The stream reader: header checks, then exactly one frame (or need-more-bytes). */
	cs_proto_reader *rd = cs_proto_reader_new(max_body);
	assert_non_null(rd);
	assert_int_equal(cs_proto_reader_feed(rd, bytes, n), 0);
	cs_frame f;
	int got = cs_proto_reader_next(rd, &f);
	if (got < 0) {
		rc = got;
		goto done;
	}
	if (got == 0) {
		/* Need more bytes: only a truncated case may stop here. The bytes after the
		 * header, taken as a whole body, must then be refused. */
		if (!truncated) {
			if (asprintf(&why,
			            "the reader wants more bytes, case not marked truncated") < 0)
				why = NULL;
			goto done;
		}
		if (n < CS_PROTO_HDR) {
			rc = -CS_ERR_PROTOCOL; /* a cut header can only be a broken frame */
			goto done;
		}
		cs_frame h;
		assert_int_equal(cs_proto_parse_header(bytes, max_body, &h), 0);
		assert_true(n - CS_PROTO_HDR < h.body_len);
		rc = request ? decode_request(h.opcode, bytes + CS_PROTO_HDR,
		                       (uint32_t)(n - CS_PROTO_HDR), NULL, &out, &want)
		             : decode_reply(h.opcode, bytes + CS_PROTO_HDR,
		                       (uint32_t)(n - CS_PROTO_HDR), NULL, &out, &want);
		goto done;
	}
	if (truncated) {
		if (asprintf(&why, "a case marked truncated gave a whole frame") < 0)
			why = NULL;
		goto done;
	}
	assert_int_equal(cs_proto_reader_pending(rd), 0); /* one frame, nothing after it */
	json_t *expect = frame ? json_object_get(frame, "body") : NULL;
	rc = request ? decode_request(f.opcode, f.body, f.body_len, expect, &out, &want)
	             : decode_reply(f.opcode, f.body, f.body_len, expect, &out, &want);
	if (rc == 0 && frame != NULL) {
		if ((json_int_t)f.opcode != json_integer_value(json_object_get(frame, "opcode")) ||
		        (json_int_t)f.reqid != json_integer_value(json_object_get(frame, "id"))) {
			char *e = json_dumps(frame, JSON_COMPACT);
			if (asprintf(&why, "header: opcode 0x%02x id %" PRIu32 ", expected %s",
			            f.opcode, f.reqid, e) < 0)
				why = NULL;
			free(e);
		} else if (!json_equal(out, want)) {
			char *a = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
			char *b = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
			if (asprintf(&why, "decoded %s\n    expected %s", a, b) < 0)
				why = NULL;
			free(a);
			free(b);
		} else if (!request) {
			why = check_reply_encoding(bytes, n, &f, expect);
		}
	}
done:
	if (why == NULL && error != NULL && -rc != want_code) {
		if (asprintf(&why, "refused with %d (%s), expected %d (%s)", -rc, cs_err_name(rc),
		            want_code, cs_err_name(want_code)) < 0)
			why = NULL;
	}
	if (why == NULL && frame != NULL && rc != 0) {
		if (asprintf(&why, "refused a valid frame with %d (%s)", -rc, cs_err_name(rc)) < 0)
			why = NULL;
	}
	json_decref(out);
	json_decref(want);
	cs_proto_reader_free(rd);
	free(bytes);
	return why;
}

static void test_case(void **state)
{
	tcase *t = *state;
	char *why = run_case(t->c);
	if (t->known_disagreement) {
		if (why == NULL)
			fail_msg("\"%s\" is listed as a known disagreement but the codec now "
			         "agrees: "
			         "remove it from known_disagreements",
			        t->name);
		print_message("    known disagreement: %s\n", why);
		free(why);
		skip();
	}
	if (why != NULL) {
		print_error("case \"%s\": %s\n", t->name, why);
		free(why);
		fail();
	}
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : getenv("CS_CONFORMANCE");
	if (path == NULL) {
		fprintf(stderr, "usage: %s FRAMES.json (or set CS_CONFORMANCE)\n", argv[0]);
		return 2;
	}
	json_error_t jerr;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		fprintf(stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
		return 1;
	}
	if (json_integer_value(json_object_get(doc, "format")) != 1) {
		fprintf(stderr, "%s: format must be 1\n", path);
		return 1;
	}
	json_t *cases = json_object_get(doc, "cases");
	size_t ncases = json_array_size(cases);
	if (ncases == 0) {
		fprintf(stderr, "%s: no cases\n", path);
		return 1;
	}
	tcase *tc = calloc(ncases, sizeof *tc);
	struct CMUnitTest *tests = calloc(ncases, sizeof *tests);
	if (tc == NULL || tests == NULL)
		return 1;
	size_t known_found = 0;
	for (size_t i = 0; i < ncases; i++) {
		tc[i].c = json_array_get(cases, i);
		tc[i].name = json_string_value(json_object_get(tc[i].c, "name"));
		if (tc[i].name == NULL) {
			fprintf(stderr, "%s: case %zu has no name\n", path, i);
			return 1;
		}
		for (int k = 0; known_disagreements[k] != NULL; k++)
			if (strcmp(known_disagreements[k], tc[i].name) == 0) {
				tc[i].known_disagreement = true;
				known_found++;
			}
		tests[i].name = tc[i].name;
		tests[i].test_func = test_case;
		tests[i].initial_state = &tc[i];
	}
	size_t known_listed = 0;
	while (known_disagreements[known_listed] != NULL)
		known_listed++;
	if (known_found != known_listed) {
		fprintf(stderr, "known_disagreements names a case that is not in %s\n", path);
		return 1;
	}
	int failed = _cmocka_run_group_tests("conformance", tests, ncases, NULL, NULL);
	/* The encoder checks must have run (replies in the server's form exist). */
	printf("reply cases checked against the server's encoders: %zu\n", encoder_checked);
	if (encoder_checked == 0) {
		fprintf(stderr, "no reply case was checked against the server's encoders\n");
		failed++;
	}
	free(tests);
	free(tc);
	json_decref(doc);
	return failed;
}
