/* test_pgconn.c - unit tests for cachesvc/base/pgconn.c, the non-blocking libpq connect shared by
 * the pools and the invalidator, without a server: a refused connect, a server that never
 * answers (the deadline), the lookup hook (its failure, its answer, its timeout: the lookup
 * canceled), a connect that cannot start, and a cancel from inside the callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "pgconn.h"

/* What the callbacks saw. */
typedef struct seen {
	int done;		/* done callbacks */
	cs_pgconn_status st;
	char msg[512];
	int addrs;		/* addrs callbacks */
	char addrs_text[64];
	bool addrs_null;
	bool cancel_in_done;	/* the done callback cancels pc (must be harmless) */
	int lookups, cancels;	/* fake lookup service */
	int lookup_mode;	/* 0 answer "127.0.0.1", 1 fail, 2 never answer */
	struct event_base *base;
} seen;

static seen S;

static void on_done(cs_pgconn *pc, cs_pgconn_status st, PGconn *conn, const char *msg, void *priv)
{
	seen *s = priv;
	s->done++;
	s->st = st;
	snprintf(s->msg, sizeof s->msg, "%s", msg);
	if (conn)
		PQfinish(conn);
	if (s->cancel_in_done)
		cs_pgconn_cancel(pc);
	event_base_loopbreak(s->base);
}

static void on_addrs(cs_pgconn *pc, const char *addrs, void *priv)
{
	seen *s = priv;
	s->addrs++;
	s->addrs_null = addrs == NULL;
	snprintf(s->addrs_text, sizeof s->addrs_text, "%s", addrs ? addrs : "");
	event_base_loopbreak(s->base);
}

/* A port nothing listens on (bound, then closed), or a listener that never answers. */
static int tcp_port(bool keep_listening, int *fd_out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	if (keep_listening) {
		assert_int_equal(listen(fd, 4), 0);
		*fd_out = fd;
	} else {
		close(fd);
	}
	return ntohs(a.sin_port);
}

static int run_connect(cs_pgconn *pc, int port, int64_t timeout_ms)
{
	char dbname[128], err[256] = "";
	snprintf(dbname, sizeof dbname, "host=127.0.0.1 port=%d user=u dbname=d", port);
	const char *kw[] = {"dbname", NULL};
	const char *val[] = {dbname, NULL};
	return cs_pgconn_connect(pc, kw, val, "test", timeout_ms, err, sizeof err);
}

static int setup(void **state)
{
	(void)state;
	memset(&S, 0, sizeof S);
	S.base = event_base_new();
	return S.base ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	event_base_free(S.base);
	return 0;
}

static void refused(void **state)
{
	(void)state;
	cs_pgconn pc;
	cs_pgconn_init(&pc, S.base, on_done, on_addrs, &S);
	assert_false(cs_pgconn_busy(&pc));
	assert_int_equal(run_connect(&pc, tcp_port(false, NULL), 5000), 0);
	assert_true(cs_pgconn_busy(&pc));
	assert_int_equal(S.done, 0); /* never from inside the call */
	event_base_dispatch(S.base);
	assert_int_equal(S.done, 1);
	assert_int_equal(S.st, CS_PGCONN_FAILED);
	assert_non_null(strstr(S.msg, "refused"));
	assert_true(S.msg[strlen(S.msg) - 1] != '\n'); /* libpq's newline trimmed */
	assert_false(cs_pgconn_busy(&pc));
}

static void deadline(void **state)
{
	(void)state;
	int lfd = -1;
	int port = tcp_port(true, &lfd); /* accepts (backlog), never answers the startup */
	cs_pgconn pc;
	cs_pgconn_init(&pc, S.base, on_done, on_addrs, &S);
	S.cancel_in_done = true;
	assert_int_equal(run_connect(&pc, port, 100), 0);
	event_base_dispatch(S.base);
	assert_int_equal(S.done, 1);
	assert_int_equal(S.st, CS_PGCONN_TIMEOUT);
	assert_string_equal(S.msg, "connect timed out");
	assert_false(cs_pgconn_busy(&pc));
	close(lfd);
}

static void cannot_start(void **state)
{
	(void)state;
	cs_pgconn pc;
	cs_pgconn_init(&pc, S.base, on_done, on_addrs, &S);
	const char *kw[] = {"dbname", NULL};
	const char *val[] = {"host=127.0.0.1 nonsense_keyword=1", NULL};
	char err[256] = "";
	assert_int_equal(cs_pgconn_connect(&pc, kw, val, "test", 100, err, sizeof err), -1);
	assert_non_null(strstr(err, "nonsense_keyword"));
	assert_false(cs_pgconn_busy(&pc));
	assert_int_equal(event_base_loop(S.base, EVLOOP_NONBLOCK), 1); /* nothing left armed */
	assert_int_equal(S.done, 0);
}

/* ---- The lookup hook ------------------------------------------------------------------------ */

typedef struct fake_req {
	struct event *ev;
	cs_pgconn_lookup_cb *cb;
	void *priv;
} fake_req;

static void fake_fire(evutil_socket_t fd, short what, void *arg)
{
	fake_req *q = arg;
	cs_pgconn_lookup_cb *cb = q->cb;
	void *priv = q->priv;
	event_free(q->ev);
	free(q);
	if (S.lookup_mode == 0)
		cb(priv, 0, "127.0.0.1", NULL);
	else
		cb(priv, -1, NULL, "no such host: db.example");
}

static void *fake_start(void *ctx, const char *conninfo, cs_pgconn_lookup_cb *cb, void *priv)
{
	S.lookups++;
	fake_req *q = calloc(1, sizeof *q);
	q->cb = cb;
	q->priv = priv;
	q->ev = evtimer_new(S.base, fake_fire, q);
	if (S.lookup_mode != 2) {
		struct timeval tv = {0, 1000};
		evtimer_add(q->ev, &tv);
	}
	return q;
}

static void fake_cancel(void *req)
{
	fake_req *q = req;
	S.cancels++;
	event_free(q->ev);
	free(q);
}

static const cs_pgconn_lookup fake = {.start = fake_start, .cancel = fake_cancel};

static void lookup_answer(void **state)
{
	(void)state;
	cs_pgconn pc;
	cs_pgconn_init(&pc, S.base, on_done, on_addrs, &S);
	assert_int_equal(cs_pgconn_resolve(&pc, &fake, "host=db.example", 5000), 0);
	assert_true(cs_pgconn_resolving(&pc));
	event_base_dispatch(S.base);
	assert_int_equal(S.addrs, 1);
	assert_string_equal(S.addrs_text, "127.0.0.1");
	assert_false(cs_pgconn_resolving(&pc));
	/* the owner connects with its keywords; the lookup's deadline runs on */
	assert_int_equal(run_connect(&pc, tcp_port(false, NULL), 0), 0);
	event_base_dispatch(S.base);
	assert_int_equal(S.done, 1);
	assert_int_equal(S.st, CS_PGCONN_FAILED);
	assert_int_equal(S.cancels, 0);
}

static void lookup_fails(void **state)
{
	(void)state;
	cs_pgconn pc;
	cs_pgconn_init(&pc, S.base, on_done, on_addrs, &S);
	S.lookup_mode = 1;
	assert_int_equal(cs_pgconn_resolve(&pc, &fake, "host=db.example", 5000), 0);
	event_base_dispatch(S.base);
	assert_int_equal(S.addrs, 0);
	assert_int_equal(S.done, 1);
	assert_int_equal(S.st, CS_PGCONN_FAILED);
	assert_string_equal(S.msg, "no such host: db.example");
	assert_false(cs_pgconn_busy(&pc));
}

static void lookup_times_out(void **state)
{
	(void)state;
	cs_pgconn pc;
	cs_pgconn_init(&pc, S.base, on_done, on_addrs, &S);
	S.lookup_mode = 2;
	assert_int_equal(cs_pgconn_resolve(&pc, &fake, "host=db.example", 50), 0);
	event_base_dispatch(S.base);
	assert_int_equal(S.done, 1);
	assert_int_equal(S.st, CS_PGCONN_TIMEOUT);
	assert_string_equal(S.msg, "resolving the host name timed out");
	assert_int_equal(S.cancels, 1); /* the lookup is canceled, not left to answer later */
	assert_false(cs_pgconn_busy(&pc));
}

static void cancel_idle_and_busy(void **state)
{
	(void)state;
	cs_pgconn pc;
	cs_pgconn_init(&pc, S.base, on_done, on_addrs, &S);
	cs_pgconn_cancel(&pc); /* idle: nothing */
	S.lookup_mode = 2;
	assert_int_equal(cs_pgconn_resolve(&pc, &fake, "host=db.example", 50), 0);
	cs_pgconn_cancel(&pc);
	assert_int_equal(S.cancels, 1);
	assert_int_equal(run_connect(&pc, tcp_port(false, NULL), 50), 0);
	cs_pgconn_cancel(&pc);
	assert_false(cs_pgconn_busy(&pc));
	assert_int_equal(event_base_loop(S.base, EVLOOP_NONBLOCK), 1); /* nothing left armed */
	assert_int_equal(S.done, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(deadline, setup, teardown),
	        cmocka_unit_test_setup_teardown(cannot_start, setup, teardown),
	        cmocka_unit_test_setup_teardown(lookup_answer, setup, teardown),
	        cmocka_unit_test_setup_teardown(lookup_fails, setup, teardown),
	        cmocka_unit_test_setup_teardown(lookup_times_out, setup, teardown),
	        cmocka_unit_test_setup_teardown(cancel_idle_and_busy, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
