/* admin.c - the admin HTTP endpoint: /metrics (Prometheus text) and /healthz. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "log.h"

struct cs_admin {
	struct evhttp *http;
	cs_engine *engine;
	cs_server *server;
};

static void on_metrics(struct evhttp_request *req, void *arg)
{
	cs_admin *a = arg;
	char *text = NULL;
	long n = cs_engine_metrics(a->engine, &text);
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
	if (a->server) {
		char *more = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&more, &len);
		if (f) {
			cs_server_metrics(a->server, f);
			struct rusage ru;
			getrusage(RUSAGE_SELF, &ru);
			fprintf(f, "# TYPE cachesvc_process_max_rss_bytes gauge\ncachesvc_process_max_rss_bytes %ld\n",
				ru.ru_maxrss * 1024L);
			fprintf(f, "# TYPE cachesvc_process_cpu_seconds_total counter\ncachesvc_process_cpu_seconds_total %.3f\n",
				(double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
					((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6);
			if (fclose(f) == 0)
				evbuffer_add(out, more, len);
			free(more);
		}
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		"text/plain; version=0.0.4");
	evhttp_send_reply(req, HTTP_OK, "OK", out);
	evbuffer_free(out);
}

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
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(a->http, 8192);
	evhttp_set_max_body_size(a->http, 0);
	evhttp_set_timeout(a->http, 10);
	evhttp_set_cb(a->http, "/metrics", on_metrics, a);
	evhttp_set_cb(a->http, "/healthz", on_healthz, a);
	evhttp_set_gencb(a->http, on_other, a);
	if (evhttp_bind_socket(a->http, host, (ev_uint16_t)port) != 0) {
		snprintf(err, errlen, "[cachesvc] admin_listen: cannot listen on %s", addr);
		cs_admin_free(a);
		return NULL;
	}
	return a;
}

void cs_admin_free(cs_admin *a)
{
	if (a == NULL)
		return;
	if (a->http)
		evhttp_free(a->http);
	free(a);
}
