/* example_async.c - library mode, asynchronous API: the engine on the program's own
 * libevent loop. Reads one named query twice (a miss, then a hit) and exits.
 *     cc example_async.c $(pkg-config --cflags --libs cachesvc libevent_core)
 *     ./a.out cachesvc.ini user_profile 42 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

#include <event2/event.h>

#include <cachesvc.h>

typedef struct app {
	struct event_base *base;
	cachesvc *cs;
	cachesvc_request req;
	int rounds, rc;
} app;

static void on_result(void *priv, int err, const char *msg, const cachesvc_result *r);

static void start(app *a)
{
	if (cachesvc_get(a->cs, &a->req, on_result, a) != 0) {
		a->rc = 1;
		event_base_loopbreak(a->base);
	}
}

static void on_result(void *priv, int err, const char *msg, const cachesvc_result *r)
{
	app *a = priv;
	if (err != 0) {
		fprintf(stderr, "get: %s: %s\n", cachesvc_strerror(err), msg);
		a->rc = 1;
		event_base_loopbreak(a->base);
		return;
	}
	/* r is borrowed: valid until this callback returns. */
	printf("round %d: source=%d rows=%" PRIu32 "\n", a->rounds, cachesvc_result_source(r),
		cachesvc_result_nrows(r));
	if (++a->rounds < 2)
		start(a);
	else
		event_base_loopbreak(a->base);
}

/* Waits for the engine to connect before the first read (polled on the loop). */
static void on_ready_check(evutil_socket_t fd, short what, void *arg)
{
	app *a = arg;
	static int tries;
	if (cachesvc_healthy(a->cs, NULL, 0) || ++tries > 250) {
		start(a);
		return;
	}
	struct timeval tv = { 0, 20000 };
	event_base_once(a->base, -1, EV_TIMEOUT, on_ready_check, a, &tv);
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc - 3 > 16) {
		fprintf(stderr, "usage: %s CONFIG QUERY [PARAM...]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* the engine writes to Redis sockets (see cachesvc.h) */
	app a = { .base = event_base_new() };
	cachesvc_error err;
	a.cs = cachesvc_open(a.base, argv[1], NULL, &err);
	if (a.cs == NULL) {
		fprintf(stderr, "open: %s: %s\n", cachesvc_strerror(err.code), err.msg);
		event_base_free(a.base);
		return 1;
	}
	cachesvc_value params[16];
	for (int i = 3; i < argc; i++)
		params[i - 3] = cachesvc_text(argv[i]);
	a.req = (cachesvc_request){ .query = argv[2], .params = params,
		.nparams = (uint32_t)(argc - 3), .tier = CACHESVC_TIER_DEFAULT };
	struct timeval now = { 0, 0 };
	event_base_once(a.base, -1, EV_TIMEOUT, on_ready_check, &a, &now);
	event_base_dispatch(a.base);
	cachesvc_close(a.cs);
	event_base_free(a.base);
	return a.rc;
}
