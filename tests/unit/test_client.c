/* test_client.c - tests of the client library and cachesvc-cli against an in-test server.
 *
 * The server is a thread built on the same codec, listening on 127.0.0.1 (ephemeral port)
 * or on a unix socket in a temporary directory. Its behaviour is chosen by query name:
 *   users    -> a two-row result (row 2 echoes the first parameter), meta echoes the
 *               request (src 2 if bypass else 0, lsn = min_lsn or 16/B374D848, age = tier)
 *   missing  -> error unknown_query;  slow -> never answers;  close -> closes the socket
 *   proto    -> error protocol, then closes;  garbage -> a malformed reply body
 *   hold     -> reply held until a "release" request, then all sent newest first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cachesvc-client.h"
#include "cs_proto.h"

extern char **environ;

/* ---- The in-test server ------------------------------------------------------------------ */

typedef struct server {
	int lfd;
	uint16_t port;
	char dir[64];
	char path[128];
	const char *token;
	volatile int stop;
	pthread_t thread;
} server;

#define MAX_HELD 64

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void pack_text(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* The "users" result: two rows over every column type. */
static void users_result(cs_buf *res, const cs_get_req *g)
{
	msgpack_packer pk;
	cs_buf_init(res, 0);
	msgpack_packer_init(&pk, res, cs_buf_msgpack_write);
	cs_proto_pack_result_begin(&pk, 7);
	cs_proto_pack_col(&pk, "id", CS_COL_INT);
	cs_proto_pack_col(&pk, "name", CS_COL_TEXT);
	cs_proto_pack_col(&pk, "at", CS_COL_TIMESTAMPTZ);
	cs_proto_pack_col(&pk, "data", CS_COL_BYTEA);
	cs_proto_pack_col(&pk, "score", CS_COL_FLOAT);
	cs_proto_pack_col(&pk, "ok", CS_COL_BOOL);
	cs_proto_pack_col(&pk, "note", CS_COL_TEXT);
	msgpack_pack_array(&pk, 2);
	cs_value row1[7] = {
	        {.type = CS_V_INT, .u.i = 1},
	        {.type = CS_V_STR, .u.s = {"a\"b\n\x01", 5}},
	        {.type = CS_V_TS, .u.ts = {1700000000, 5000}},
	        {.type = CS_V_BIN, .u.s = {"\x00\xff", 2}},
	        {.type = CS_V_FLOAT, .u.f = 1.5},
	        {.type = CS_V_BOOL, .u.b = true},
	        {.type = CS_V_NIL},
	};
	msgpack_pack_array(&pk, 7);
	for (int i = 0; i < 7; i++)
		cs_proto_pack_value(&pk, &row1[i]);
	msgpack_pack_array(&pk, 7);
	bool big = g->nparams > 0 && g->params[0].type == CS_V_STR && g->params[0].u.s.len == 3 &&
	        memcmp(g->params[0].u.s.p, "big", 3) == 0;
	msgpack_pack_int64(&pk, big ? INT64_C(9007199254740993) : 2); /* 2^53 + 1 */
	if (g->nparams > 0 && g->params[0].type == CS_V_STR)
		msgpack_pack_str_with_body(&pk, g->params[0].u.s.p, g->params[0].u.s.len);
	else
		pack_text(&pk, g->nparams > 0 && g->params[0].type == CS_V_NIL ? "(null)" : "none");
	cs_value ts0 = {.type = CS_V_TS, .u.ts = {0, 0}};
	cs_proto_pack_value(&pk, &ts0);
	msgpack_pack_bin_with_body(&pk, "", 0);
	msgpack_pack_double(&pk, -0.25);
	msgpack_pack_false(&pk);
	msgpack_pack_nil(&pk);
}

static bool query_is(const cs_get_req *g, const char *name)
{
	return g->query_len == strlen(name) && memcmp(g->query, name, g->query_len) == 0;
}

/* Cache hits say nothing about "stored"; a bypass read from the primary was not stored;
 * the query "fill" is answered from a replica and stored. */
static cs_meta meta_for(const cs_get_req *g)
{
	cs_meta m = {g->bypass ? CS_SRC_PRIMARY : CS_SRC_CACHE,
	        g->min_lsn ? g->min_lsn : (((uint64_t)0x16 << 32) | 0xB374D848u), g->tier, false,
	        g->bypass ? CS_STORED_NO : CS_STORED_UNSAID};
	if (!g->bypass && query_is(g, "fill")) {
		m.src = CS_SRC_REPLICA;
		m.stored = CS_STORED_YES;
	}
	return m;
}

/* Answers one GET/REFRESH into out. Returns -1 to close, 1 to hold, 0 otherwise. */
static int answer_get(cs_buf *out, const cs_frame *f, const cs_get_req *g)
{
	if (query_is(g, "slow"))
		return 2;
	if (query_is(g, "close"))
		return -1;
	if (query_is(g, "missing")) {
		(void)!cs_proto_write_error(out, f->reqid, CS_ERR_UNKNOWN_QUERY,
		        "no query \"%.*s\"", (int)g->query_len, g->query);
		return 0;
	}
	if (query_is(g, "whoshard") && g->shard != NULL) { /* a token's shard reached us */
		(void)!cs_proto_write_error(out, f->reqid, CS_ERR_BAD_PARAMS, "shard=%.*s lsn=%llx",
		        (int)g->shard_len, g->shard, (unsigned long long)g->min_lsn);
		return 0;
	}
	if (query_is(g, "proto")) {
		(void)!cs_proto_write_error(out, f->reqid, CS_ERR_PROTOCOL, "you broke it");
		return -2;
	}
	if (query_is(g, "garbage")) {
		size_t off = cs_proto_begin(out, CS_OP_REPLY_FLAG | f->opcode, f->reqid);
		(void)!cs_buf_append(out, "\x92\xc1", 2);
		cs_proto_end(out, off);
		return 0;
	}
	cs_buf res;
	cs_meta m = meta_for(g);
	users_result(&res, g);
	(void)!cs_proto_write_result(out, f->reqid, f->opcode, &m, res.data, res.len);
	cs_buf_free(&res);
	return query_is(g, "hold") ? 1 : 0;
}

/* Serves one connection until it closes or the server stops. */
static void serve_conn(server *s, int fd)
{
	cs_proto_reader *rd = cs_proto_reader_new(CS_PROTO_MAX_FRAME);
	cs_buf out, held[MAX_HELD];
	int nheld = 0;
	static cs_get_req items[CS_PROTO_MAX_MGET];
	cs_buf_init(&out, 1u << 24);
	while (!s->stop) {
		struct pollfd pfd = {fd, POLLIN, 0};
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		uint8_t buf[4096];
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0 || cs_proto_reader_feed(rd, buf, (size_t)n) != 0)
			break;
		cs_frame f;
		int rc, action = 0;
		while (action >= 0 && (rc = cs_proto_reader_next(rd, &f)) == 1) {
			char err[128];
			cs_get_req g;
			cs_hello_req h;
			cs_inval_req q;
			uint32_t nitems;
			switch (f.opcode) {
			case CS_OP_HELLO:
				if (cs_proto_decode_hello(
				            f.body, f.body_len, &h, err, sizeof err) != 0)
					action = -1;
				else if (s->token &&
				         (h.token == NULL || h.token_len != strlen(s->token) ||
				                 memcmp(h.token, s->token, h.token_len)))
					(void)!cs_proto_write_error(
					        &out, f.reqid, CS_ERR_AUTH, "bad token");
				else
					(void)!cs_proto_write_hello_reply(
					        &out, f.reqid, 1, "testsrv/1", CS_PROTO_MAX_FRAME);
				break;
			case CS_OP_PING:
				(void)!cs_proto_write_nil_reply(&out, f.reqid, CS_OP_PING);
				break;
			case CS_OP_STATS: {
				cs_stat st[2] = {
				        {"hits", 4, false, 10, 0}, {"hit_ratio", 9, true, 0, 0.5}};
				(void)!cs_proto_write_stats(&out, f.reqid, st, 2);
				break;
			}
			case CS_OP_SHOW: {
				const char *w;
				uint32_t wl;
				if (cs_proto_decode_show(f.body, f.body_len, &w, &wl, err, sizeof err) != 0) {
					action = -1;
				} else if (wl != 7 || memcmp(w, "servers", 7) != 0) {
					(void)!cs_proto_write_error(
					        &out, f.reqid, CS_ERR_BAD_PARAMS, "unknown view");
				} else {
					cs_show_cell r0[] = {
					        {"name", {.type = CS_V_STR, .u.s = {"r1", 2}}},
					        {"up", {.type = CS_V_BOOL, .u.b = true}},
					        {"lag_ms", {.type = CS_V_INT, .u.i = 12}},
					};
					cs_show_cell r1[] = {{"name", {.type = CS_V_STR, .u.s = {"p", 1}}},
					        {"lsn", {.type = CS_V_NIL}}};
					size_t off = cs_proto_show_begin(&out, f.reqid);
					(void)!cs_proto_show_row(&out, r0, 3);
					(void)!cs_proto_show_row(&out, r1, 2);
					cs_proto_show_end(&out, off, 2);
				}
				break;
			}
			case CS_OP_INVALIDATE:
				if (cs_proto_decode_inval(
				            f.body, f.body_len, &q, err, sizeof err) != 0)
					action = -1;
				else
					(void)!cs_proto_write_inval_reply(&out, f.reqid,
					        !q.has_params, q.has_params ? q.nparams : 7);
				break;
			case CS_OP_GET:
			case CS_OP_REFRESH:
				if ((rc = cs_proto_decode_get(
				             f.body, f.body_len, &g, err, sizeof err)) != 0) {
					(void)!cs_proto_write_error(&out, f.reqid, -rc, "%s", err);
					action = rc == -CS_ERR_PROTOCOL ? -2 : 0;
					break;
				}
				if (query_is(&g, "release")) {
					(void)answer_get(&out, &f, &g);
					while (nheld > 0) { /* newest first */
						cs_buf *hb = &held[--nheld];
						(void)!cs_buf_append(&out, hb->data, hb->len);
						cs_buf_free(hb);
					}
					break;
				}
				if (query_is(&g, "hold") && nheld < MAX_HELD) {
					cs_buf_init(&held[nheld], 0);
					(void)answer_get(&held[nheld++], &f, &g);
					break;
				}
				action = answer_get(&out, &f, &g);
				if (action > 0)
					action = 0;
				break;
			case CS_OP_MGET:
				if (cs_proto_decode_mget(f.body, f.body_len, items,
				            CS_PROTO_MAX_MGET, &nitems, err, sizeof err) != 0) {
					action = -1;
					break;
				}
				size_t off = cs_proto_mget_begin(&out, f.reqid, nitems);
				for (uint32_t i = 0; i < nitems; i++) {
					if (query_is(&items[i], "missing")) {
						(void)!cs_proto_mget_item_err(&out,
						        CS_ERR_UNKNOWN_QUERY, "no such query");
						continue;
					}
					cs_buf res;
					cs_meta m = meta_for(&items[i]);
					users_result(&res, &items[i]);
					(void)!cs_proto_mget_item_ok(&out, &m, res.data, res.len);
					cs_buf_free(&res);
				}
				cs_proto_mget_end(&out, off);
				break;
			default:
				action = -1;
			}
		}
		write_all(fd, out.data, out.len);
		cs_buf_reset(&out);
		if (rc < 0 || action < 0)
			break;
	}
	while (nheld > 0)
		cs_buf_free(&held[--nheld]);
	cs_buf_free(&out);
	cs_proto_reader_free(rd);
	close(fd);
}

static void *server_main(void *arg)
{
	server *s = arg;
	while (!s->stop) {
		struct pollfd pfd = {s->lfd, POLLIN, 0};
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd >= 0)
			serve_conn(s, fd);
	}
	return NULL;
}

static server *server_start(bool unix_socket, const char *token)
{
	server *s = calloc(1, sizeof *s);
	s->token = token;
	if (unix_socket) {
		strcpy(s->dir, "/tmp/cs-client-test-XXXXXX");
		assert_non_null(mkdtemp(s->dir));
		snprintf(s->path, sizeof s->path, "%s/cachesvc.sock", s->dir);
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		strcpy(un.sun_path, s->path);
		s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(bind(s->lfd, (struct sockaddr *)&un, sizeof un), 0);
	} else {
		struct sockaddr_in in = {.sin_family = AF_INET};
		socklen_t len = sizeof in;
		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s->lfd = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(bind(s->lfd, (struct sockaddr *)&in, sizeof in), 0);
		assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&in, &len), 0);
		s->port = ntohs(in.sin_port);
	}
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
	return s;
}

static void server_stop(server *s)
{
	s->stop = 1;
	pthread_join(s->thread, NULL);
	close(s->lfd);
	if (s->path[0]) {
		unlink(s->path);
		rmdir(s->dir);
	}
	free(s);
}

static cs_client *connect_to(const server *s, int timeout_ms)
{
	cs_client_options o = {0};
	if (s->path[0])
		o.unix_path = s->path;
	else
		o.port = s->port;
	o.host = "127.0.0.1";
	o.timeout_ms = timeout_ms;
	o.token = s->token;
	cs_client *c = cs_client_connect(&o);
	assert_non_null(c);
	if (cs_client_err(c) != 0)
		fail_msg("connect: %s", cs_client_errstr(c));
	return c;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Tests ------------------------------------------------------------------------------- */

static void check_users(const cs_client_result *r, const char *row2_name)
{
	cs_client_value v;
	assert_int_equal(cs_client_result_err(r, NULL), 0);
	assert_int_equal(cs_client_result_ncols(r), 7);
	assert_int_equal(cs_client_result_nrows(r), 2);
	assert_string_equal(cs_client_result_col_name(r, 2), "at");
	assert_int_equal(cs_client_result_col_type(r, 3), CS_CLIENT_COL_BYTEA);
	assert_int_equal(cs_client_result_value(r, 0, 0, &v), 0);
	assert_int_equal(v.type, CS_CLIENT_V_INT);
	assert_int_equal(v.u.i, 1);
	assert_int_equal(cs_client_result_value(r, 0, 2, &v), 0);
	assert_int_equal(v.type, CS_CLIENT_V_TS);
	assert_int_equal(v.u.ts.sec, 1700000000);
	assert_int_equal(v.u.ts.nsec, 5000);
	assert_int_equal(cs_client_result_value(r, 0, 3, &v), 0);
	assert_int_equal(v.type, CS_CLIENT_V_BIN);
	assert_int_equal(v.u.s.len, 2);
	assert_int_equal(cs_client_result_value(r, 0, 4, &v), 0);
	assert_true(v.type == CS_CLIENT_V_FLOAT && v.u.f == 1.5);
	assert_int_equal(cs_client_result_value(r, 0, 5, &v), 0);
	assert_true(v.type == CS_CLIENT_V_BOOL && v.u.b);
	assert_int_equal(cs_client_result_value(r, 0, 6, &v), 0);
	assert_int_equal(v.type, CS_CLIENT_V_NIL);
	assert_int_equal(cs_client_result_value(r, 1, 1, &v), 0);
	assert_int_equal(v.type, CS_CLIENT_V_STR);
	assert_int_equal(v.u.s.len, strlen(row2_name));
	assert_memory_equal(v.u.s.p, row2_name, v.u.s.len);
	assert_int_equal(cs_client_result_value(r, 2, 0, &v), CS_CLIENT_E_ARG);
	assert_null(cs_client_result_col_name(r, 7));
}

static void sync_calls(server *s)
{
	cs_client *c = connect_to(s, 2000);
	assert_string_equal(cs_client_server_name(c), "testsrv/1");
	assert_int_equal(cs_client_ping(c), 0);

	cs_client_value p[2] = {cs_client_text("42"), cs_client_nil()};
	cs_client_request req = {"users", p, 2, CS_CLIENT_TIER_DEFAULT, 0, false, NULL};
	cs_client_result *r;
	assert_int_equal(cs_client_get(c, &req, &r), 0);
	check_users(r, "42");
	assert_int_equal(cs_client_result_source(r), CS_CLIENT_SRC_CACHE);
	assert_int_equal(cs_client_result_lsn(r), ((uint64_t)0x16 << 32) | 0xB374D848u);
	assert_int_equal(cs_client_result_age_ms(r), 1); /* the server echoes the tier */
	assert_false(cs_client_result_stale(r));
	assert_int_equal(cs_client_result_stored(r), -1); /* meta without "stored" */
	cs_client_result_free(r);

	/* An answer read from the database, stored in the cache: meta "stored": true. */
	req.query = "fill";
	assert_int_equal(cs_client_get(c, &req, &r), 0);
	check_users(r, "42");
	assert_int_equal(cs_client_result_source(r), CS_CLIENT_SRC_REPLICA);
	assert_int_equal(cs_client_result_stored(r), 1);
	cs_client_result_free(r);
	req.query = "users";

	/* Options reach the server: REFRESH, tier, LSN, bypass. */
	req.tier = CS_CLIENT_TIER_BATCH;
	assert_int_equal(cs_client_lsn_parse("1/2", &req.min_lsn), 0);
	req.bypass = true;
	assert_int_equal(cs_client_refresh(c, &req, &r), 0);
	assert_int_equal(cs_client_result_source(r), CS_CLIENT_SRC_PRIMARY);
	assert_int_equal(cs_client_result_lsn(r), ((uint64_t)1 << 32) | 2);
	assert_int_equal(cs_client_result_age_ms(r), 2);
	assert_int_equal(cs_client_result_stored(r), 0); /* "stored": false */
	cs_client_result_free(r);

	/* A token naming its shard: "shard" reaches the server beside "lsn"; a bare one has none.
	 */
	cs_client_token tok;
	char tbuf[CS_CLIENT_TOKEN_STRLEN];
	assert_int_equal(cs_client_token_parse("s1:0/16B3748", &tok), 0);
	assert_string_equal(tok.shard, "s1");
	assert_int_equal(tok.lsn, 0x16B3748);
	assert_string_equal(cs_client_token_format(&tok, tbuf), "s1:0/16B3748");
	req.query = "whoshard";
	req.tier = CS_CLIENT_TIER_DEFAULT;
	req.bypass = false;
	req.min_lsn = tok.lsn;
	req.shard = tok.shard;
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_BAD_PARAMS);
	assert_non_null(strstr(cs_client_errstr(c), "shard=s1 lsn=16b3748"));
	assert_int_equal(cs_client_token_parse("16/B374D848", &tok), 0);
	assert_string_equal(tok.shard, "");
	assert_string_equal(cs_client_token_format(&tok, tbuf), "16/B374D848");
	req.min_lsn = tok.lsn;
	req.shard = tok.shard; /* "" = none */
	assert_int_equal(cs_client_get(c, &req, &r), 0);
	cs_client_result_free(r);
	/* Bad tokens: refused by the parser (out untouched) and, as fields, before sending. */
	static const char *const bad_tokens[] = {"", ":0/1", "s1:", "s1:0/0", "a:b:0/1", "s 1:0/1",
	        "s1:x/1",
	        "s1:0/1:", "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn:0/1",
	        NULL};
	for (int i = 0; bad_tokens[i]; i++) {
		tok.lsn = 99;
		assert_int_equal(cs_client_token_parse(bad_tokens[i], &tok), CS_CLIENT_E_ARG);
		assert_int_equal(tok.lsn, 99);
	}
	assert_int_equal(cs_client_token_parse(NULL, &tok), CS_CLIENT_E_ARG);
	static const char *const bad_shards[] = {"s:1", "s 1", "\xc3\xa9",
	        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn", NULL};
	for (int i = 0; bad_shards[i]; i++) {
		req.min_lsn = 5;
		req.shard = bad_shards[i];
		assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_ARG);
		assert_null(r);
	}
	req.min_lsn = 0;
	req.shard = "s1"; /* a shard without a token */
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_ARG);
	assert_non_null(strstr(cs_client_errstr(c), "nonzero min_lsn"));
	req.shard = NULL;
	assert_int_equal(cs_client_get(c, &req, &r), 0); /* still usable */
	cs_client_result_free(r);
	req.tier = CS_CLIENT_TIER_BATCH; /* as before the token checks */
	req.min_lsn = ((uint64_t)1 << 32) | 2;
	req.bypass = true;

	/* Server errors leave the connection usable. */
	req.query = "missing";
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_UNKNOWN_QUERY);
	assert_null(r);
	assert_non_null(strstr(cs_client_errstr(c), "unknown_query"));
	assert_non_null(strstr(cs_client_errstr(c), "no query \"missing\""));
	assert_int_equal(cs_client_ping(c), 0);
	assert_int_equal(cs_client_err(c), 0);

	/* Client-side argument checks send nothing. */
	req.query = "";
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_ARG);
	req.query = "users";
	req.tier = 7;
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_ARG);
	req.tier = 1;
	req.nparams = 17;
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_ARG);
	req.nparams = 1;
	assert_int_equal(cs_client_ping(c), 0);

	/* MGET with a per-item error (sent as {"code", "msg"}) and a stored item. */
	cs_client_request reqs[3] = {req, req, req};
	cs_client_result *items[3];
	reqs[1].query = "missing";
	reqs[2].params = &p[1];
	reqs[2].query = "fill";
	reqs[2].bypass = false;
	assert_true(reqs[0].bypass);
	assert_int_equal(cs_client_mget(c, reqs, 3, items), 0);
	check_users(items[0], "42");
	assert_int_equal(cs_client_result_source(items[0]), CS_CLIENT_SRC_PRIMARY);
	assert_int_equal(cs_client_result_stored(items[0]), 0); /* bypass: not stored */
	const char *msg;
	assert_int_equal(cs_client_result_err(items[1], &msg), CS_CLIENT_E_UNKNOWN_QUERY);
	assert_string_equal(msg, "no such query");
	assert_int_equal(cs_client_result_stored(items[1]), -1);
	check_users(items[2], "(null)");
	assert_int_equal(cs_client_result_source(items[2]), CS_CLIENT_SRC_REPLICA);
	assert_int_equal(cs_client_result_stored(items[2]), 1);
	for (int i = 0; i < 3; i++)
		cs_client_result_free(items[i]);

	/* INVALIDATE, STATS. */
	uint64_t n = 0;
	assert_int_equal(cs_client_invalidate_key(c, "users", p, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cs_client_invalidate_query(c, "users", &n), 0);
	assert_int_equal(n, 7);
	cs_client_stat *st;
	uint32_t ns;
	assert_int_equal(cs_client_stats(c, &st, &ns), 0);
	assert_int_equal(ns, 2);
	assert_string_equal(st[0].name, "hits");
	assert_int_equal(st[0].i, 10);
	assert_true(st[1].is_float && st[1].f == 0.5);
	cs_client_stats_free(st);

	/* SHOW: rows of typed cells; an unknown view is the server's error. */
	cs_client_row *rows;
	uint32_t nr;
	assert_int_equal(cs_client_show(c, "servers", &rows, &nr), 0);
	assert_int_equal(nr, 2);
	assert_int_equal(rows[0].ncells, 3);
	assert_string_equal(rows[0].cells[0].name, "name");
	assert_int_equal(rows[0].cells[0].value.type, CS_CLIENT_V_STR);
	assert_int_equal(rows[0].cells[0].value.u.s.len, 2);
	assert_memory_equal(rows[0].cells[0].value.u.s.p, "r1", 2);
	assert_string_equal(rows[0].cells[1].name, "up");
	assert_true(rows[0].cells[1].value.type == CS_CLIENT_V_BOOL && rows[0].cells[1].value.u.b);
	assert_true(rows[0].cells[2].value.type == CS_CLIENT_V_INT && rows[0].cells[2].value.u.i == 12);
	assert_int_equal(rows[1].ncells, 2);
	assert_string_equal(rows[1].cells[1].name, "lsn");
	assert_int_equal(rows[1].cells[1].value.type, CS_CLIENT_V_NIL);
	cs_client_show_free(rows);
	assert_int_equal(cs_client_show(c, "nosuch", &rows, &nr), CS_CLIENT_E_BAD_PARAMS);
	assert_null(rows);
	assert_int_equal(cs_client_ping(c), 0); /* the connection is still usable */
	cs_client_free(c);
}

static void sync_tcp(void **state)
{
	server *s = server_start(false, NULL);
	sync_calls(s);
	server_stop(s);
}

static void sync_unix(void **state)
{
	server *s = server_start(true, NULL);
	sync_calls(s);
	server_stop(s);
}

static void pipelining_out_of_order(void **state)
{
	server *s = server_start(false, NULL);
	cs_client *c = connect_to(s, 2000);
	cs_client_value p[3] = {cs_client_text("x"), cs_client_text("y"), cs_client_text("z")};
	cs_client_request reqs[3] = {
	        {"hold", &p[0], 1, 1, 0, false, NULL},
	        {"hold", &p[1], 1, 1, 0, false, NULL},
	        {"release", &p[2], 1, 1, 0, false, NULL},
	};
	/* send/recv: replies arrive newest first. */
	uint32_t ids[3], got;
	for (int i = 0; i < 3; i++)
		assert_int_equal(cs_client_send(c, &reqs[i], false, &ids[i]), 0);
	assert_int_equal(cs_client_pending(c), 3);
	/* Sync calls are refused while requests are outstanding. */
	assert_int_equal(cs_client_ping(c), CS_CLIENT_E_ARG);
	for (int i = 2; i >= 0; i--) {
		cs_client_result *r;
		assert_int_equal(cs_client_recv(c, &got, &r), 0);
		assert_int_equal(got, ids[i]);
		check_users(r, i == 0 ? "x" : i == 1 ? "y" : "z");
		cs_client_result_free(r);
	}
	assert_int_equal(cs_client_pending(c), 0);

	/* The batch helper puts them back in request order. */
	cs_client_result *out[3];
	assert_int_equal(cs_client_pipeline(c, reqs, 3, false, out), 0);
	check_users(out[0], "x");
	check_users(out[1], "y");
	check_users(out[2], "z");
	for (int i = 0; i < 3; i++)
		cs_client_result_free(out[i]);

	/* A long pipeline (well past the 64 KiB output high-water mark) with errors mixed in. */
	enum { N = 2000 };
	static cs_client_request many[N];
	static cs_client_result *res[N];
	static char big[300];
	memset(big, 'b', sizeof big - 1);
	cs_client_value bigp = cs_client_text(big);
	for (int i = 0; i < N; i++) {
		many[i] = (cs_client_request){
		        i % 10 == 3 ? "missing" : "users", &bigp, 1, 1, 0, false, NULL};
	}
	assert_int_equal(cs_client_pipeline(c, many, N, true, res), 0);
	for (int i = 0; i < N; i++) {
		if (i % 10 == 3) {
			assert_int_equal(
			        cs_client_result_err(res[i], NULL), CS_CLIENT_E_UNKNOWN_QUERY);
		} else {
			assert_int_equal(cs_client_result_err(res[i], NULL), 0);
			assert_int_equal(cs_client_result_nrows(res[i]), 2);
		}
		cs_client_result_free(res[i]);
	}
	assert_int_equal(cs_client_ping(c), 0);
	cs_client_free(c);
	server_stop(s);
}

static void timeout_is_bounded(void **state)
{
	server *s = server_start(false, NULL);
	cs_client *c = connect_to(s, 300);
	cs_client_request req = {"slow", NULL, 0, 1, 0, false, NULL};
	cs_client_result *r;
	int64_t t0 = now_ms();
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_TIMEOUT);
	int64_t took = now_ms() - t0;
	assert_true(took >= 250 && took < 3000);
	assert_non_null(strstr(cs_client_errstr(c), "timed out"));
	/* Fatal: the connection is gone. */
	assert_int_equal(cs_client_ping(c), CS_CLIENT_E_CLOSED);
	cs_client_free(c);

	/* Pipelined receive times out too. */
	c = connect_to(s, 200);
	assert_int_equal(cs_client_send(c, &req, false, NULL), 0);
	uint32_t id;
	assert_int_equal(cs_client_recv(c, &id, &r), CS_CLIENT_E_TIMEOUT);
	cs_client_free(c);

	/* A server that accepts (backlog) but never answers HELLO: connect times out. */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in in = {.sin_family = AF_INET};
	socklen_t len = sizeof in;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&in, sizeof in), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&in, &len), 0);
	assert_int_equal(listen(lfd, 4), 0);
	cs_client_options o = {
	        .host = "127.0.0.1", .port = ntohs(in.sin_port), .connect_timeout_ms = 200};
	t0 = now_ms();
	c = cs_client_connect(&o);
	assert_int_equal(cs_client_err(c), CS_CLIENT_E_CONNECT);
	assert_true(now_ms() - t0 < 3000);
	cs_client_free(c);
	close(lfd);
	server_stop(s);
}

static void server_closes(void **state)
{
	server *s = server_start(false, NULL);
	cs_client *c = connect_to(s, 2000);
	cs_client_request req = {"close", NULL, 0, 1, 0, false, NULL};
	cs_client_result *r;
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_CLOSED);
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_CLOSED);
	cs_client_free(c);

	/* A protocol error from the server is fatal. */
	c = connect_to(s, 2000);
	req.query = "proto";
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_SERVER_PROTOCOL);
	assert_int_equal(cs_client_ping(c), CS_CLIENT_E_CLOSED);
	cs_client_free(c);

	/* A malformed reply is fatal. */
	c = connect_to(s, 2000);
	req.query = "garbage";
	assert_int_equal(cs_client_get(c, &req, &r), CS_CLIENT_E_PROTOCOL);
	assert_non_null(strstr(cs_client_errstr(c), "malformed"));
	cs_client_free(c);

	/* Pipeline interrupted by a close. */
	c = connect_to(s, 2000);
	cs_client_request reqs[2] = {{"users", NULL, 0, 1, 0, false, NULL}, req};
	reqs[1].query = "close";
	cs_client_result *out[2];
	assert_int_equal(cs_client_pipeline(c, reqs, 2, false, out), CS_CLIENT_E_CLOSED);
	assert_null(out[0]);
	cs_client_free(c);
	server_stop(s);
}

static void connect_errors(void **state)
{
	cs_client_options o = {.host = "localhost"};
	cs_client *c = cs_client_connect(&o);
	assert_int_equal(cs_client_err(c), CS_CLIENT_E_ARG);
	assert_non_null(strstr(cs_client_errstr(c), "numeric"));
	assert_int_equal(cs_client_ping(c), CS_CLIENT_E_CLOSED);
	cs_client_free(c);

	/* Refused: bind a port, close it, connect. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in in = {.sin_family = AF_INET};
	socklen_t len = sizeof in;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
	close(fd);
	o.host = "127.0.0.1";
	o.port = ntohs(in.sin_port);
	c = cs_client_connect(&o);
	assert_int_equal(cs_client_err(c), CS_CLIENT_E_CONNECT);
	cs_client_free(c);
	o.host = NULL;
	o.unix_path = "/nonexistent/cachesvc.sock";
	c = cs_client_connect(&o);
	assert_int_equal(cs_client_err(c), CS_CLIENT_E_CONNECT);
	cs_client_free(c);

	/* Auth. */
	server *s = server_start(false, "s3cret");
	cs_client_options a = {.host = "::ffff:127.0.0.1", .port = s->port, .token = "wrong"};
	c = cs_client_connect(&a);
	if (cs_client_err(c) == CS_CLIENT_E_CONNECT) { /* no IPv6 here: use IPv4 */
		cs_client_free(c);
		a.host = "127.0.0.1";
		c = cs_client_connect(&a);
	}
	assert_int_equal(cs_client_err(c), CS_CLIENT_E_AUTH);
	cs_client_free(c);
	c = connect_to(s, 1000);
	assert_int_equal(cs_client_ping(c), 0);
	cs_client_free(c);
	server_stop(s);

	assert_string_equal(cs_client_strerror(CS_CLIENT_E_TIMEOUT), "timeout");
	assert_string_equal(cs_client_strerror(CS_CLIENT_E_UNKNOWN_QUERY), "unknown_query");
	assert_string_equal(cs_client_strerror(CS_CLIENT_E_NO_SHARD), "no_shard");
	char buf[CS_CLIENT_LSN_STRLEN];
	assert_string_equal(
	        cs_client_lsn_format(((uint64_t)0x16 << 32) | 0xB374D848u, buf), "16/B374D848");
	uint64_t lsn = 5;
	assert_int_equal(cs_client_lsn_parse("zz", &lsn), CS_CLIENT_E_ARG);
	assert_int_equal(lsn, 5);
}

/* ---- cachesvc-cli ------------------------------------------------------------------------ */

/* Runs the cli with args and input on its stdin (NULL: /dev/null); returns its exit status
 * and its stdout in out. */
static int run_cli_in(char *out, size_t outlen, const char *const *args, const char *input)
{
	const char *cli = getenv("CS_CLI");
	char *argv[32];
	int n = 0, pfd[2], ifd[2];
	argv[n++] = (char *)cli;
	for (; args[n - 1]; n++)
		argv[n] = (char *)args[n - 1];
	argv[n] = NULL;
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(pipe(ifd), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ifd[0], 0);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	posix_spawn_file_actions_addclose(&fa, ifd[1]);
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, cli, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	close(ifd[0]);
	if (input) /* small: fits in the pipe */
		assert_int_equal(write(ifd[1], input, strlen(input)), (ssize_t)strlen(input));
	close(ifd[1]);
	size_t len = 0;
	ssize_t r;
	while ((r = read(pfd[0], out + len, outlen - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(pfd[0]);
	if (getenv("CS_CLI_ECHO")) /* debugging aid: show what the cli printed */
		fprintf(stderr, "%s", out);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int run_cli(char *out, size_t outlen, const char *const *args)
{
	return run_cli_in(out, outlen, args, NULL);
}

static void cli_binary(void **state)
{
	if (getenv("CS_CLI") == NULL)
		skip();
	server *s = server_start(false, NULL);
	char port[16], out[8192];
	snprintf(port, sizeof port, "%u", s->port);

	const char *get_json[] = {"-p", port, "--json", "get", "users", "\\null", NULL};
	assert_int_equal(run_cli(out, sizeof out, get_json), 0);
	assert_string_equal(out,
	        "{\"source\":\"cache\",\"lsn\":\"16/B374D848\",\"age_ms\":1,\"stale\":false,"
	        "\"columns\":[{\"name\":\"id\",\"type\":\"int\"},{\"name\":\"name\",\"type\":"
	        "\"text\"},"
	        "{\"name\":\"at\",\"type\":\"timestamptz\"},{\"name\":\"data\",\"type\":\"bytea\"},"
	        "{\"name\":\"score\",\"type\":\"float\"},{\"name\":\"ok\",\"type\":\"bool\"},"
	        "{\"name\":\"note\",\"type\":\"text\"}],"
	        "\"rows\":[[1,\"a\\\"b\\n\\u0001\",\"2023-11-14T22:13:20.000005Z\",\"00ff\",1.5,"
	        "true,"
	        "null],[2,\"null\",\"1970-01-01T00:00:00Z\",\"\",-0.25,false,null]]}\n");

	const char *get_opts[] = {"-h", "127.0.0.1", "-p", port, "--json", "--tier", "batch",
	        "--lsn", "A/B", "--bypass", "get", "users", "null", NULL};
	assert_int_equal(run_cli(out, sizeof out, get_opts), 0);
	assert_non_null(strstr(out, "\"source\":\"primary\",\"lsn\":\"A/B\",\"age_ms\":2,"
	                            "\"stale\":false,\"stored\":false,\"columns\":["));
	assert_non_null(strstr(out, "[2,\"(null)\""));
	/* --lsn takes a token naming its shard too: "shard" is sent (the fake server refuses
	 * whoshard only when it gets one); a bad token is a usage error. */
	const char *shard_tok[] = {"-p", port, "--lsn", "s1:0/16B3748", "get", "whoshard", NULL};
	assert_int_equal(run_cli(out, sizeof out, shard_tok), 1);
	const char *bare_tok[] = {"-p", port, "--lsn", "0/16B3748", "get", "whoshard", NULL};
	assert_int_equal(run_cli(out, sizeof out, bare_tok), 0);
	const char *bad_tok[] = {"-p", port, "--lsn", "s1:0/0", "get", "whoshard", NULL};
	assert_int_equal(run_cli(out, sizeof out, bad_tok), 2);
	const char *bad_tok2[] = {"-p", port, "--lsn", "a:b:0/1", "get", "whoshard", NULL};
	assert_int_equal(run_cli(out, sizeof out, bad_tok2), 2);
	const char *get_stored[] = {"-p", port, "--json", "get", "fill", "1", NULL};
	assert_int_equal(run_cli(out, sizeof out, get_stored), 0);
	assert_non_null(strstr(out, "{\"source\":\"replica\",\"lsn\":\"16/B374D848\",\"age_ms\":1,"
	                            "\"stale\":false,\"stored\":true,\"columns\":["));

	const char *table[] = {"-p", port, "get", "users", "ann", NULL};
	assert_int_equal(run_cli(out, sizeof out, table), 0);
	assert_non_null(strstr(out, " id |   name    |"));
	assert_non_null(strstr(out, "(2 rows)\nsource: cache  lsn: 16/B374D848  age: 1 ms\n"));
	assert_non_null(strstr(out, "  2 | ann "));
	const char *table_stored[] = {"-p", port, "get", "fill", "ann", NULL};
	assert_int_equal(run_cli(out, sizeof out, table_stored), 0);
	assert_non_null(strstr(
	        out, "(2 rows)\nsource: replica  lsn: 16/B374D848  age: 1 ms  stored: yes\n"));
	const char *table_unstored[] = {"-p", port, "--bypass", "get", "users", "ann", NULL};
	assert_int_equal(run_cli(out, sizeof out, table_unstored), 0);
	assert_non_null(strstr(
	        out, "(2 rows)\nsource: primary  lsn: 16/B374D848  age: 1 ms  stored: no\n"));
	assert_non_null(
	        strstr(out, "  1 | a\"b\\n\\x01 | 2023-11-14 22:13:20.000005+00 | \\x00ff |"));

	const char *mget[] = {
	        "-p", port, "--json", "mget", "users", "1", "--", "missing", "--", "users", NULL};
	assert_int_equal(run_cli(out, sizeof out, mget), 1);
	assert_non_null(strstr(out, "{\"error\":\"unknown_query\",\"code\":1,\"message\":\"no such "
	                            "query\"}\n"));

	const char *missing[] = {"-p", port, "get", "missing", NULL};
	assert_int_equal(run_cli(out, sizeof out, missing), 1);
	const char *slow[] = {"-p", port, "-t", "200", "get", "slow", NULL};
	assert_int_equal(run_cli(out, sizeof out, slow), 4);
	const char *inval[] = {"-p", port, "invalidate", "users", NULL};
	assert_int_equal(run_cli(out, sizeof out, inval), 0);
	assert_string_equal(out, "generation: 7\n");
	const char *stats[] = {"-p", port, "--json", "stats", NULL};
	assert_int_equal(run_cli(out, sizeof out, stats), 0);
	assert_string_equal(out, "{\"hits\":10,\"hit_ratio\":0.5}\n");
	const char *ping[] = {"-p", port, "ping", NULL};
	assert_int_equal(run_cli(out, sizeof out, ping), 0);
	assert_string_equal(out, "PONG\n");
	const char *usage1[] = {"--bogus", NULL};
	assert_int_equal(run_cli(out, sizeof out, usage1), 2);
	const char *usage2[] = {"-p", port, "frobnicate", NULL};
	assert_int_equal(run_cli(out, sizeof out, usage2), 2);
	const char *usage3[] = {"--lsn", "nope", "ping", NULL};
	assert_int_equal(run_cli(out, sizeof out, usage3), 2);
	server_stop(s);
	const char *refused[] = {"-p", port, "ping", NULL};
	assert_int_equal(run_cli(out, sizeof out, refused), 3);
	const char *help[] = {"--help", NULL};
	assert_int_equal(run_cli(out, sizeof out, help), 0);
	assert_non_null(strstr(out, "Exit status"));
}

/* The redis-cli-like conveniences: names, URLs, repeats, latency, mget without "--", big
 * integers in JSON, commands from stdin. */
static void cli_conveniences(void **state)
{
	if (getenv("CS_CLI") == NULL)
		skip();
	server *s = server_start(false, NULL);
	char port[16], url[64], out[16384];
	snprintf(port, sizeof port, "%u", s->port);

	const char *version[] = {"--version", NULL};
	assert_int_equal(run_cli(out, sizeof out, version), 0);
	assert_int_equal(strncmp(out, "cachesvc-cli 0.", 15), 0);

	const char *byname[] = {"-h", "localhost", "-p", port, "ping", NULL};
	assert_int_equal(run_cli(out, sizeof out, byname), 0);
	assert_string_equal(out, "PONG\n");

	snprintf(url, sizeof url, "cachesvc://tok@localhost:%s", port);
	const char *byurl[] = {"-u", url, "ping", NULL};
	assert_int_equal(run_cli(out, sizeof out, byurl), 0);
	assert_string_equal(out, "PONG\n");
	snprintf(url, sizeof url, "cachesvc://[::1]:%s", port); /* v6 syntax; may not listen */
	const char *v6url[] = {"-u", url, "-t", "500", "ping", NULL};
	int rc = run_cli(out, sizeof out, v6url);
	assert_true(rc == 0 || rc == 3);
	const char *badurl[] = {"-u", "http://x", "ping", NULL};
	assert_int_equal(run_cli(out, sizeof out, badurl), 2);

	const char *repeat[] = {"-p", port, "--repeat", "3", "--interval", "0.01", "ping", NULL};
	assert_int_equal(run_cli(out, sizeof out, repeat), 0);
	assert_string_equal(out, "PONG\nPONG\nPONG\n");
	const char *badrepeat[] = {"-p", port, "--repeat", "0", "ping", NULL};
	assert_int_equal(run_cli(out, sizeof out, badrepeat), 2);

	const char *latency[] = {"-p", port, "--latency", "--repeat", "5", "--interval", "0",
	        "--json", NULL};
	assert_int_equal(run_cli(out, sizeof out, latency), 0);
	assert_non_null(strstr(out, "{\"samples\":5,\"min_ms\":"));

	/* A word naming the query again starts a new item; --each is one item per PARAM. */
	const char *mget[] = {"-p", port, "--json", "mget", "users", "a", "users", "b", NULL};
	assert_int_equal(run_cli(out, sizeof out, mget), 0);
	assert_non_null(strstr(out, "[2,\"a\""));
	assert_non_null(strstr(out, "[2,\"b\""));
	const char *esc[] = {"-p", port, "--json", "mget", "users", "\\users", NULL};
	assert_int_equal(run_cli(out, sizeof out, esc), 0);
	assert_non_null(strstr(out, "[2,\"users\""));
	const char *each[] = {"-p", port, "--json", "mget", "--each", "users", "x", "y", "z", NULL};
	assert_int_equal(run_cli(out, sizeof out, each), 0);
	assert_non_null(strstr(out, "[2,\"x\""));
	assert_non_null(strstr(out, "[2,\"y\""));
	assert_non_null(strstr(out, "[2,\"z\""));

	/* 2^53 + 1 survives a JSON parser as a string; --json-int number keeps the number. */
	const char *big[] = {"-p", port, "--json", "get", "users", "big", NULL};
	assert_int_equal(run_cli(out, sizeof out, big), 0);
	assert_non_null(strstr(out, "[\"9007199254740993\",\"big\""));
	assert_non_null(strstr(out, "[1,"));
	const char *bignum[] = {"-p", port, "--json", "--json-int", "number", "get", "users", "big",
	        NULL};
	assert_int_equal(run_cli(out, sizeof out, bignum), 0);
	assert_non_null(strstr(out, "[9007199254740993,\"big\""));

	/* No command: one command per line from stdin, quoting as a shell does. */
	const char *prompt[] = {"-p", port, "--json", NULL};
	assert_int_equal(run_cli_in(out, sizeof out, prompt,
	                         "ping\n\nget users 'two words'\nget users \"q\\\"x\"\nquit\nping\n"),
	        0);
	assert_int_equal(strncmp(out, "{\"ok\":true}\n", 12), 0);
	assert_non_null(strstr(out, "[2,\"two words\""));
	assert_non_null(strstr(out, "[2,\"q\\\"x\""));
	assert_null(strstr(out + 12, "{\"ok\":true}")); /* nothing after quit */
	assert_int_equal(run_cli_in(out, sizeof out, prompt, "get missing\n"), 1);
	server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(sync_tcp),
	        cmocka_unit_test(sync_unix),
	        cmocka_unit_test(pipelining_out_of_order),
	        cmocka_unit_test(timeout_is_bounded),
	        cmocka_unit_test(server_closes),
	        cmocka_unit_test(connect_errors),
	        cmocka_unit_test(cli_binary),
	        cmocka_unit_test(cli_conveniences),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
