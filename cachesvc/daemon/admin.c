/* admin.c - the admin HTTP endpoint: /metrics (Prometheus text) and /healthz. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <errno.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define ACCEPT_PAUSE_MS 250 /* after EMFILE and friends: see server.c */

/* Counting connections. libevent 2.1's evhttp has no connection cap (2.2 adds
 * evhttp_set_max_connections) and tells nobody when it accepts one. Its bufferevent
 * callback (evhttp_set_bevcb) runs at every accept, so that is where a connection is
 * counted, and its close callback (evhttp_connection_set_closecb, called once when an
 * incoming connection goes down) is where it is uncounted. The close callback needs the
 * evhttp_connection, which exists only after the bufferevent callback returns; so the new
 * bufferevent waits in `adopting` (holding a reference, so it stays valid whatever evhttp
 * does meanwhile) until adopt_ev runs in the same loop pass: a bufferevent whose read
 * callback evhttp still set belongs to a live connection and gets the close callback; one
 * evhttp already freed (callbacks cleared) is uncounted there and then. */
struct cs_admin {
	struct evhttp *http;
	struct evconnlistener *listener; /* evhttp's, paused at the cap */
	cs_engine *engine;
	cs_server *server;
	int conns;			 /* connections open */
	bool paused;			 /* listener off: at the cap or after an accept error */
	bool freeing;			 /* cs_admin_free: close callbacks must not re-enable */
	struct bufferevent *adopting[CS_ADMIN_MAX_CONNS];
	int nadopting;
	struct event *adopt_ev;
	struct event *resume_timer;	 /* ends a pause after an accept error */
	uint64_t accept_errors;
	cs_ratelimit accept_log;
};

static void admin_listen_update(cs_admin *a)
{
	if (a->listener == NULL || a->freeing)
		return;
	bool on = a->conns < CS_ADMIN_MAX_CONNS && !evtimer_pending(a->resume_timer, NULL);
	if (on == !a->paused)
		return;
	a->paused = !on;
	on ? evconnlistener_enable(a->listener) : evconnlistener_disable(a->listener);
}

static void on_admin_close(struct evhttp_connection *evcon, void *arg)
{
	cs_admin *a = arg;
	a->conns--;
	admin_listen_update(a);
}

static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
	cs_admin *a = arg;
	for (int i = 0; i < a->nadopting; i++) {
		struct bufferevent *bev = a->adopting[i];
		bufferevent_data_cb readcb = NULL;
		void *evcon = NULL;
		bufferevent_getcb(bev, &readcb, NULL, NULL, &evcon);
		if (readcb != NULL && evcon != NULL)
			evhttp_connection_set_closecb(evcon, on_admin_close, a);
		else
			a->conns--; /* evhttp already closed it */
		bufferevent_decref(bev);
	}
	a->nadopting = 0;
	admin_listen_update(a);
}

static struct bufferevent *admin_new_bev(struct event_base *base, void *arg)
{
	cs_admin *a = arg;
	struct bufferevent *bev = NULL;
	if (a->nadopting < CS_ADMIN_MAX_CONNS)
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL; /* evhttp makes its own: served, but not counted */
	bufferevent_incref(bev);
	a->adopting[a->nadopting++] = bev;
	a->conns++;
	event_active(a->adopt_ev, EV_TIMEOUT, 0);
	admin_listen_update(a); /* the listener stops its accept loop once disabled */
	return bev;
}

static void on_admin_resume(evutil_socket_t fd, short what, void *arg)
{
	admin_listen_update(arg);
}

static void on_admin_accept_error(struct evconnlistener *l, void *arg)
{
	cs_admin *a = arg;
	int err = EVUTIL_SOCKET_ERROR();
	a->accept_errors++;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		struct timeval tv = cs_tv_ms(ACCEPT_PAUSE_MS);
		evtimer_add(a->resume_timer, &tv);
		admin_listen_update(a);
	}
	uint64_t suppressed;
	if (cs_ratelimit_pass(&a->accept_log, 5u * 1000000u, &suppressed))
		cs_warn("admin accept: %s (%llu more admin accept errors not logged since the last line)",
			evutil_socket_error_to_string(err), (unsigned long long)suppressed);
}

#ifndef CS_VERSION
#define CS_VERSION "unknown"
#endif

/* One cs_metrics for everything (engine and invalidator, server, admin, process): every
 * family is written once, its samples together. */
static void on_metrics(struct evhttp_request *req, void *arg)
{
	cs_admin *a = arg;
	char *text = NULL;
	long n = -1;
	cs_metrics *m = cs_metrics_new();
	if (m) {
		cs_engine_metrics_add(a->engine, m);
		if (a->server)
			cs_server_metrics(a->server, m);
		cs_m(m, CS_M_GAUGE, "cachesvc_admin_connections",
			"Open connections to the admin endpoint",
			a->conns, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_admin_accept_errors_total",
			"accept() failures on the admin listener", a->accept_errors, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_log_dropped_total",
			"Log lines dropped because stderr was full or gone", cs_log_dropped(),
			NULL);
		cs_m_process(m);
		cs_m_build_info(m, CS_VERSION);
		/* a programming error (two types for one family) drops samples: show it */
		cs_m(m, CS_M_GAUGE, "cachesvc_metrics_type_mismatches",
			"Samples dropped from this exposition because their type disagreed with their "
			"family's (a bug; always 0)", (double)cs_metrics_mismatches(m), NULL);
		n = cs_metrics_finish(m, &text);
	}
	struct evbuffer *out = evbuffer_new();
	if (n < 0 || out == NULL) {
		free(text);
		if (out)
			evbuffer_free(out);
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	evbuffer_add(out, text, (size_t)n);
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		"text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", out);
	evbuffer_free(out);
}

/* "ok", or why not (503), as plain text. */
static void on_healthz(struct evhttp_request *req, void *arg)
{
	cs_admin *a = arg;
	char why[256];
	bool ok = cs_engine_healthy(a->engine, why, sizeof why);
	struct evbuffer *out = evbuffer_new();
	if (out == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	evbuffer_add_printf(out, "%s\n", why);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		"text/plain; charset=utf-8");
	evhttp_send_reply(req, ok ? HTTP_OK : 503, ok ? "OK" : "Service Unavailable", out);
	evbuffer_free(out);
}

static void on_other(struct evhttp_request *req, void *arg)
{
	evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics or /healthz");
}

cs_admin *cs_admin_new(struct event_base *base, const char *addr, cs_engine *engine,
	cs_server *server, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
		snprintf(err, errlen, "[cachesvc] admin_listen: bad address \"%s\" (want host:port)", addr);
		return NULL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	int port = atoi(colon + 1);
	cs_admin *a = calloc(1, sizeof *a);
	if (a == NULL || (a->http = evhttp_new(base)) == NULL) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->engine = engine;
	a->server = server;
	a->adopt_ev = event_new(base, -1, 0, on_adopt, a);
	a->resume_timer = evtimer_new(base, on_admin_resume, a);
	if (a->adopt_ev == NULL || a->resume_timer == NULL) {
		snprintf(err, errlen, "out of memory");
		cs_admin_free(a);
		return NULL;
	}
	evhttp_set_bevcb(a->http, admin_new_bev, a);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(a->http, 8192);
	evhttp_set_max_body_size(a->http, 0);
	evhttp_set_timeout(a->http, 10);
	evhttp_set_cb(a->http, "/metrics", on_metrics, a);
	evhttp_set_cb(a->http, "/healthz", on_healthz, a);
	evhttp_set_gencb(a->http, on_other, a);
	struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(a->http, host, (ev_uint16_t)port);
	if (bound == NULL) {
		snprintf(err, errlen, "[cachesvc] admin_listen: cannot listen on %s", addr);
		cs_admin_free(a);
		return NULL;
	}
	a->listener = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(a->listener, on_admin_accept_error);
	return a;
}

void cs_admin_free(cs_admin *a)
{
	if (a == NULL)
		return;
	a->freeing = true;
	for (int i = 0; i < a->nadopting; i++)
		bufferevent_decref(a->adopting[i]);
	if (a->http)
		evhttp_free(a->http);
	if (a->adopt_ev)
		event_free(a->adopt_ev);
	if (a->resume_timer)
		event_free(a->resume_timer);
	free(a);
}
