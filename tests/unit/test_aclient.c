/* test_aclient.c - the asynchronous client API (cs_aclient_*) against an in-test server.
 *
 * The server is a thread on 127.0.0.1 (ephemeral port) built on the same codec; it serves
 * one connection per test and behaves as the test's scenario says:
 *   REORDER  answers HELLO, waits for 3 GETs, answers them newest first, each echoing its key
 *   CUT      answers HELLO, then half of a GET reply, then closes
 *   LATE     answers HELLO; holds the first GET's reply until a second GET arrives, then
 *            sends the late reply first and the second one after it
 *   QUIET    answers HELLO, reads and never answers
 *   GARBAGE  answers HELLO, replies to a GET with a frame whose body is not a result
 *   MUTE     never answers HELLO
 * The client side runs its own poll() loop around one cs_aclient, as a caller's event loop
 * would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cachesvc-client.h"
#include "cs_proto.h"

enum scenario { REORDER, CUT, LATE, QUIET, GARBAGE, MUTE };

typedef struct server {
	int lfd;
	uint16_t port;
	enum scenario sc;
	volatile int stop;
	pthread_t thread;
} server;

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

/* A one-row, one-column result holding the GET's first parameter (text). */
static void echo_reply(cs_buf *out, uint32_t reqid, const cs_get_req *g)
{
	cs_buf res;
	msgpack_packer pk;
	cs_buf_init(&res, 0);
	msgpack_packer_init(&pk, &res, cs_buf_msgpack_write);
	assert_int_equal(cs_proto_pack_result_begin(&pk, 1), 0);
	assert_int_equal(cs_proto_pack_col(&pk, "k", CS_COL_TEXT), 0);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 1);
	assert_int_equal(cs_proto_pack_value(&pk, &g->params[0]), 0);
	cs_meta meta = { .src = CS_SRC_CACHE };
	assert_int_equal(cs_proto_write_result(out, reqid, CS_OP_GET, &meta, res.data, res.len), 0);
	cs_buf_free(&res);
}

/* Reads until one frame is complete (or the peer/stop ends it): 1 frame, 0 none. */
static int read_frame(server *s, int fd, cs_proto_reader *rd, cs_frame *f)
{
	uint8_t buf[4096];
	for (;;) {
		int rc = cs_proto_reader_next(rd, f);
		if (rc != 0)
			return rc > 0;
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 50) == 0) {
			if (s->stop)
				return 0;
			continue;
		}
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			return 0;
		if (cs_proto_reader_feed(rd, buf, (size_t)n) != 0)
			return 0;
	}
}

static void *serve(void *arg)
{
	server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	cs_proto_reader *rd = cs_proto_reader_new(1u << 20);
	cs_buf out;
	cs_buf_init(&out, 0);
	cs_frame f;
	if (s->sc == MUTE) {
		while (read_frame(s, fd, rd, &f))
			;
		goto done;
	}
	if (!read_frame(s, fd, rd, &f) || f.opcode != CS_OP_HELLO)
		goto done;
	assert_int_equal(cs_proto_write_hello_reply(&out, f.reqid, 1, "fake", 1u << 20), 0);
	write_all(fd, out.data, out.len);
	cs_buf_reset(&out);

	cs_get_req g[3];
	uint32_t ids[3];
	char keys[3][32];
	char err[128];
	int n = 0;
	while (read_frame(s, fd, rd, &f)) {
		if (f.opcode != CS_OP_GET)
			continue;
		assert_int_equal(cs_proto_decode_get(f.body, f.body_len, &g[n], err, sizeof err), 0);
		/* Copy the key out of the reader's buffer (the next feed invalidates it). */
		snprintf(keys[n], sizeof keys[n], "%.*s", (int)g[n].params[0].u.s.len,
		        g[n].params[0].u.s.p);
		g[n].params[0].u.s.p = keys[n];
		ids[n] = f.reqid;
		n++;
		if (s->sc == REORDER && n == 3) {
			for (int i = 2; i >= 0; i--)
				echo_reply(&out, ids[i], &g[i]);
			write_all(fd, out.data, out.len);
			cs_buf_reset(&out);
			n = 0;
		} else if (s->sc == CUT) {
			echo_reply(&out, ids[0], &g[0]);
			write_all(fd, out.data, out.len / 2);
			goto done;
		} else if (s->sc == LATE && n == 2) {
			echo_reply(&out, ids[0], &g[0]); /* the reply the client gave up on */
			echo_reply(&out, ids[1], &g[1]);
			write_all(fd, out.data, out.len);
			cs_buf_reset(&out);
			n = 0;
		} else if (s->sc == GARBAGE) {
			size_t off = cs_proto_begin(&out, CS_OP_REPLY_FLAG | CS_OP_GET, ids[0]);
			static const uint8_t junk[] = { 0x92, 0xc0, 0x07 }; /* [nil, 7] */
			assert_int_equal(cs_buf_append(&out, junk, sizeof junk), 0);
			cs_proto_end(&out, off);
			write_all(fd, out.data, out.len);
			cs_buf_reset(&out);
			n = 0;
		} else if (s->sc == QUIET || n == 3) {
			n = 0;
		}
	}
done:
	cs_buf_free(&out);
	cs_proto_reader_free(rd);
	close(fd);
	return NULL;
}

static void server_start(server *s, enum scenario sc)
{
	memset(s, 0, sizeof *s);
	s->sc = sc;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	socklen_t len = sizeof sa;
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &len), 0);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(server *s)
{
	s->stop = 1;
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

/* ---- The client's loop ------------------------------------------------------------------- */

typedef struct got {
	int calls;
	uint32_t reqid[8];
	int err[8];
	char key[8][32];
} got;

static void on_reply(cs_aclient *a, void *arg, cs_aclient_reply *rep)
{
	(void)a;
	got *g = arg;
	assert_true(g->calls < 8);
	int i = g->calls++;
	g->reqid[i] = rep->reqid;
	g->err[i] = rep->err;
	g->key[i][0] = '\0';
	if (rep->err == 0) {
		assert_int_equal(rep->nresults, 1);
		cs_client_value v;
		assert_int_equal(cs_client_result_value(rep->results[0], 0, 0, &v), 0);
		assert_int_equal(v.type, CS_CLIENT_V_STR);
		snprintf(g->key[i], sizeof g->key[i], "%.*s", (int)v.u.s.len, v.u.s.p);
	} else {
		assert_int_equal(rep->nresults, 0);
		assert_non_null(rep->errmsg);
		assert_true(rep->errmsg[0] != '\0');
	}
}

/* Runs the loop until g->calls reaches `calls` (or the connection is ready, when calls is
 * 0), for at most 3 s. */
static void run_until(cs_aclient *a, got *g, int calls)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (calls > 0 ? g->calls >= calls : cs_aclient_status(a) != 0)
			return;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_true(t1.tv_sec - t0.tv_sec < 3);
		if (cs_aclient_fd(a) < 0) {
			(void)cs_aclient_tick(a);
			continue;
		}
		int to = cs_aclient_timeout_ms(a);
		struct pollfd p = { cs_aclient_fd(a),
			(short)(POLLIN | (cs_aclient_want_write(a) ? POLLOUT : 0)), 0 };
		if (poll(&p, 1, to < 0 || to > 100 ? 100 : to) > 0) {
			if (p.revents & POLLOUT)
				(void)cs_aclient_on_writable(a);
			if (p.revents & (POLLIN | POLLHUP | POLLERR))
				(void)cs_aclient_on_readable(a);
		}
		(void)cs_aclient_tick(a);
	}
}

static cs_aclient *connect_to(server *s, uint32_t max_inflight, uint32_t max_queue)
{
	cs_aclient_options o = { .conn = { .port = s->port, .connect_timeout_ms = 200 },
		.max_inflight = max_inflight, .max_queue_bytes = max_queue };
	cs_aclient *a = cs_aclient_connect(&o);
	assert_non_null(a);
	assert_true(cs_aclient_status(a) >= 0);
	return a;
}

static int get_key(cs_aclient *a, const char *key, int timeout_ms, got *g, uint32_t *id)
{
	cs_client_value v = cs_client_text(key);
	cs_client_request req = { .query = "users", .params = &v, .nparams = 1,
		.tier = CS_CLIENT_TIER_DEFAULT };
	return cs_aclient_get(a, &req, timeout_ms, on_reply, g, id);
}

/* ---- Tests ------------------------------------------------------------------------------- */

/* Three GETs in flight on one connection, answered newest first: each callback gets its
 * own request's reply (matched by request id, not by order). */
static void pipelined_out_of_order(void **state)
{
	(void)state;
	server s;
	server_start(&s, REORDER);
	cs_aclient *a = connect_to(&s, 0, 0);
	got g = { 0 };
	uint32_t id[3];
	/* Submitted before the connection is up: written after HELLO. */
	assert_int_equal(get_key(a, "k1", 0, &g, &id[0]), 0);
	assert_int_equal(get_key(a, "k2", 0, &g, &id[1]), 0);
	assert_int_equal(get_key(a, "k3", 0, &g, &id[2]), 0);
	assert_int_equal(cs_aclient_inflight(a), 3);
	/* A token's shard that breaks the rule is refused before anything is queued. */
	cs_client_value v = cs_client_text("k4");
	cs_client_request bad = { .query = "users", .params = &v, .nparams = 1,
		.tier = CS_CLIENT_TIER_DEFAULT, .shard = "s1" }; /* no min_lsn */
	assert_int_equal(cs_aclient_get(a, &bad, 0, on_reply, &g, NULL), CS_CLIENT_E_ARG);
	bad.min_lsn = 5;
	bad.shard = "s:1";
	assert_int_equal(cs_aclient_get(a, &bad, 0, on_reply, &g, NULL), CS_CLIENT_E_ARG);
	assert_int_equal(cs_aclient_mget(a, &bad, 1, 0, on_reply, &g, NULL), CS_CLIENT_E_ARG);
	assert_int_equal(cs_aclient_inflight(a), 3);
	run_until(a, &g, 3);
	assert_int_equal(cs_aclient_status(a), 1);
	assert_int_equal(g.calls, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(g.err[i], 0);
		assert_int_equal(g.reqid[i], id[2 - i]); /* newest first */
		char want[8];
		snprintf(want, sizeof want, "k%d", 3 - i);
		assert_string_equal(g.key[i], want);
	}
	assert_int_equal(cs_aclient_inflight(a), 0);
	cs_aclient_free(a);
	server_stop(&s);
}

/* The server sends half a reply and closes: the request fails with "closed", so does the
 * connection, and later submits are refused. */
static void server_closes_mid_reply(void **state)
{
	(void)state;
	server s;
	server_start(&s, CUT);
	cs_aclient *a = connect_to(&s, 0, 0);
	got g = { 0 };
	uint32_t id;
	assert_int_equal(get_key(a, "k1", 0, &g, &id), 0);
	run_until(a, &g, 1);
	assert_int_equal(g.err[0], CS_CLIENT_E_CLOSED);
	assert_int_equal(g.reqid[0], id);
	assert_int_equal(cs_aclient_status(a), CS_CLIENT_E_CLOSED);
	assert_int_equal(cs_aclient_fd(a), -1);
	assert_int_equal(get_key(a, "k2", 0, &g, NULL), CS_CLIENT_E_CLOSED);
	assert_int_equal(g.calls, 1);
	cs_aclient_free(a);
	assert_int_equal(g.calls, 1); /* nothing was outstanding at free */
	server_stop(&s);
}

/* A request past its deadline completes with "timeout"; the connection stays usable; the
 * late reply is dropped, and the next request gets its own reply. */
static void request_timeout(void **state)
{
	(void)state;
	server s;
	server_start(&s, LATE);
	cs_aclient *a = connect_to(&s, 0, 0);
	got g = { 0 };
	uint32_t id1, id2;
	assert_int_equal(get_key(a, "slow", 100, &g, &id1), 0);
	run_until(a, &g, 1);
	assert_int_equal(g.err[0], CS_CLIENT_E_TIMEOUT);
	assert_int_equal(g.reqid[0], id1);
	assert_int_equal(cs_aclient_status(a), 1);
	assert_int_equal(cs_aclient_inflight(a), 0);
	assert_int_equal(get_key(a, "next", 0, &g, &id2), 0);
	assert_int_not_equal(id1, id2);
	run_until(a, &g, 2);
	assert_int_equal(g.err[1], 0);
	assert_int_equal(g.reqid[1], id2);
	assert_string_equal(g.key[1], "next");
	assert_int_equal(cs_aclient_status(a), 1);
	cs_aclient_free(a);
	assert_int_equal(g.calls, 2);
	server_stop(&s);
}

/* Both bounds refuse a request with queue_full and queue nothing; outstanding requests are
 * completed with "closed" when the context is freed. */
static void full_send_queue(void **state)
{
	(void)state;
	server s;
	server_start(&s, QUIET);
	/* In-flight table: 4 slots. */
	cs_aclient *a = connect_to(&s, 4, 0);
	run_until(a, &(got){ 0 }, 0);
	assert_int_equal(cs_aclient_status(a), 1);
	got g = { 0 };
	for (int i = 0; i < 4; i++)
		assert_int_equal(get_key(a, "k", 0, &g, NULL), 0);
	assert_int_equal(get_key(a, "k", 0, &g, NULL), CS_CLIENT_E_QUEUE_FULL);
	assert_int_equal(cs_aclient_err(a), CS_CLIENT_E_QUEUE_FULL);
	assert_int_equal(cs_aclient_inflight(a), 4);
	assert_int_equal(cs_aclient_status(a), 1); /* not fatal */
	cs_aclient_free(a);
	assert_int_equal(g.calls, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(g.err[i], CS_CLIENT_E_CLOSED);
	server_stop(&s);

	/* Bytes: 200 bytes of unwritten requests (nothing is written until on_writable). */
	server_start(&s, QUIET);
	a = connect_to(&s, 0, 200);
	got g2 = { 0 };
	int queued = 0, rc;
	while ((rc = get_key(a, "0123456789", 0, &g2, NULL)) == 0)
		queued++;
	assert_int_equal(rc, CS_CLIENT_E_QUEUE_FULL);
	assert_true(queued >= 2 && queued < 20);
	assert_int_equal(cs_aclient_inflight(a), (uint32_t)queued);
	assert_true(cs_aclient_want_write(a));
	cs_aclient_free(a);
	assert_int_equal(g2.calls, queued);
	server_stop(&s);
}

/* A reply whose body is not a result: the request and the connection fail with
 * bad_reply; another request in flight is completed with the same error. */
static void malformed_reply(void **state)
{
	(void)state;
	server s;
	server_start(&s, GARBAGE);
	cs_aclient *a = connect_to(&s, 0, 0);
	got g = { 0 };
	uint32_t id1, id2;
	assert_int_equal(get_key(a, "k1", 0, &g, &id1), 0);
	assert_int_equal(get_key(a, "k2", 0, &g, &id2), 0);
	run_until(a, &g, 2);
	assert_int_equal(g.err[0], CS_CLIENT_E_PROTOCOL);
	assert_int_equal(g.err[1], CS_CLIENT_E_PROTOCOL);
	assert_true((g.reqid[0] == id1 && g.reqid[1] == id2) ||
	            (g.reqid[0] == id2 && g.reqid[1] == id1));
	assert_int_equal(cs_aclient_status(a), CS_CLIENT_E_PROTOCOL);
	assert_non_null(strstr(cs_aclient_errstr(a), "malformed"));
	cs_aclient_free(a);
	server_stop(&s);
}

/* A server that never answers HELLO: the connect deadline fails the connection and the
 * request queued behind HELLO. */
static void connect_deadline(void **state)
{
	(void)state;
	server s;
	server_start(&s, MUTE);
	cs_aclient *a = connect_to(&s, 0, 0);
	got g = { 0 };
	assert_int_equal(get_key(a, "k1", 0, &g, NULL), 0);
	run_until(a, &g, 1);
	assert_int_equal(g.err[0], CS_CLIENT_E_CONNECT);
	assert_int_equal(cs_aclient_status(a), CS_CLIENT_E_CONNECT);
	cs_aclient_free(a);
	server_stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pipelined_out_of_order),
		cmocka_unit_test(server_closes_mid_reply),
		cmocka_unit_test(request_timeout),
		cmocka_unit_test(full_send_queue),
		cmocka_unit_test(malformed_reply),
		cmocka_unit_test(connect_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
