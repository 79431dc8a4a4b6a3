/* resolve.c - host names resolved on the event loop with libevent's evdns (resolve.h). */
#include "resolve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <libpq-fe.h>

#include "log.h"
#include "pgconn.h"
#include "util.h"

#define MAX_HOSTS 64 /* entries of a conninfo's host list resolved (libpq has no limit) */

struct cs_resolver {
	struct event_base *base;
	struct evdns_base *dns;
	int64_t timeout_ms;
	int outstanding; /* evdns lookups whose callback has not run yet (owned or orphaned) */
	bool closing;	 /* freed by its owner while lookups were outstanding (resolver_reap) */
	cs_resolver_stats stats;
};

/* Resolvers freed by their owners while evdns still owed callbacks: each is freed (and its
 * evdns base with it) once the last callback ran, from a one-shot event, never under evdns's
 * feet. cs_resolver_drain runs the loop for them at shutdown. */
static int closing_count;

static void resolver_reap(evutil_socket_t fd, short what, void *arg)
{
	cs_resolver *r = arg;
	evdns_base_free(r->dns, 0);
	free(r);
	closing_count--;
}

/* One evdns lookup. Its callback always runs (answer, failure, cancel, shutdown) and frees
 * it; `q` is NULL once its request was canceled or finished without it (orphaned). */
typedef struct sub {
	cs_resolver *r;
	cs_dns_req *q;
	int idx;
	struct evdns_getaddrinfo_request *ev; /* NULL once its callback ran (or during the call) */
	bool in_call;			      /* evdns_getaddrinfo has not returned yet */
} sub;

typedef struct host_entry {
	char *name; /* NULL: nothing to look up for this entry */
	char addr[INET6_ADDRSTRLEN];
	sub *lookup;
} host_entry;

struct cs_dns_req {
	cs_resolver *r;
	cs_dns_cb *cb;
	void *priv;
	bool conninfo;	  /* the answer is a hostaddr list (else one address) */
	bool no_hostaddr; /* conninfo needing no hostaddr at all: answer NULL */
	struct event *timer; /* the lookup's timeout; also delivers the answer asynchronously */
	int nhosts, pending;
	host_entry hosts[MAX_HOSTS];
	int err;
	bool done; /* the answer is ready: the timer delivers it */
	char msg[256];
};

/* ---- Helpers ------------------------------------------------------------------------- */

bool cs_host_is_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (host == NULL || host[0] == '\0' || host[0] == '/' || host[0] == '@')
		return true;
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The numeric address of a literal host ("" for unix sockets and empty hosts). */
static void literal_addr(const char *host, char *out, size_t len)
{
	if (host == NULL || host[0] == '\0' || host[0] == '/' || host[0] == '@')
		out[0] = '\0';
	else
		snprintf(out, len, "%s", host);
}

static void req_free(cs_dns_req *q)
{
	for (int i = 0; i < q->nhosts; i++) {
		if (q->hosts[i].lookup) {
			/* still running in evdns: orphaned, its callback frees it */
			q->hosts[i].lookup->q = NULL;
			if (q->hosts[i].lookup->ev && !q->hosts[i].lookup->in_call)
				evdns_getaddrinfo_cancel(q->hosts[i].lookup->ev);
		}
		free(q->hosts[i].name);
	}
	if (q->timer)
		event_free(q->timer);
	free(q);
}

/* Makes the answer ready and has the timer deliver it at once (never from inside the call
 * that started the lookup, nor from inside an evdns callback). */
static void req_finish(cs_dns_req *q, int err, const char *msg)
{
	if (q->done)
		return;
	q->done = true;
	q->err = err;
	if (msg)
		snprintf(q->msg, sizeof q->msg, "%s", msg);
	struct timeval now = { 0, 0 };
	evtimer_del(q->timer);
	evtimer_add(q->timer, &now);
}

/* Delivers the answer, or fails the lookup at its timeout. */
static void on_req_timer(evutil_socket_t fd, short what, void *arg)
{
	cs_dns_req *q = arg;
	if (!q->done) {
		q->r->stats.timeouts++;
		q->r->stats.failures++;
		for (int i = 0; i < q->nhosts; i++)
			if (q->hosts[i].lookup) {
				snprintf(q->msg, sizeof q->msg, "resolving \"%s\" timed out after %lld ms",
					q->hosts[i].name, (long long)q->r->timeout_ms);
				break;
			}
		q->err = -1;
	}
	char list[MAX_HOSTS * (INET6_ADDRSTRLEN + 1) + 1];
	const char *answer = NULL;
	if (q->err == 0 && q->conninfo && !q->no_hostaddr) {
		size_t n = 0;
		list[0] = '\0';
		for (int i = 0; i < q->nhosts; i++)
			n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? "," : "",
				q->hosts[i].addr);
		answer = list;
	} else if (q->err == 0 && !q->conninfo) {
		snprintf(list, sizeof list, "%s", q->hosts[0].addr); /* q is freed below */
		answer = list;
	}
	cs_dns_cb *cb = q->cb;
	void *priv = q->priv;
	int err = q->err;
	char msg[256];
	snprintf(msg, sizeof msg, "%s", q->msg);
	req_free(q); /* orphans lookups still running (a timeout) */
	cb(priv, err, answer, err ? msg : NULL);
}

static void on_lookup(int result, struct evutil_addrinfo *res, void *arg)
{
	sub *s = arg;
	cs_resolver *r = s->r;
	cs_dns_req *q = s->q;
	r->outstanding--;
	s->ev = NULL;
	if (r->closing && r->outstanding == 0) {
		struct timeval now = { 0, 0 };
		if (event_base_once(r->base, -1, EV_TIMEOUT, resolver_reap, r, &now) != 0)
			cs_warn("resolver: cannot schedule its release (out of memory): leaked");
	}
	if (q == NULL || result == EVUTIL_EAI_CANCEL) {
		if (q)
			q->hosts[s->idx].lookup = NULL;
		if (!s->in_call)
			free(s);
		else
			s->q = NULL; /* freed by the starter once evdns_getaddrinfo returns */
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	host_entry *h = &q->hosts[s->idx];
	h->lookup = NULL;
	if (!s->in_call)
		free(s);
	else
		s->q = NULL;
	q->pending--;
	if ((result != 0 || res == NULL) && strcmp(h->name, "localhost") == 0) {
		/* not in the hosts file, and no name server knows it: RFC 6761's loopback */
		snprintf(h->addr, sizeof h->addr, "127.0.0.1");
		if (q->pending == 0)
			req_finish(q, 0, NULL);
	} else if (result != 0 || res == NULL) {
		r->stats.failures++;
		char msg[256];
		snprintf(msg, sizeof msg, "cannot resolve \"%s\": %s", h->name,
			result ? evutil_gai_strerror(result) : "no address");
		req_finish(q, -1, msg);
	} else {
		/* the first IPv4 address, else the first one (libpq and hiredis get one) */
		struct evutil_addrinfo *ai = res;
		while (ai && ai->ai_family != AF_INET)
			ai = ai->ai_next;
		if (ai == NULL)
			ai = res;
		const void *a = ai->ai_family == AF_INET6
			? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
			: (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		if (evutil_inet_ntop(ai->ai_family, a, h->addr, sizeof h->addr) == NULL) {
			r->stats.failures++;
			req_finish(q, -1, "bad address in a DNS answer");
		} else if (q->pending == 0) {
			req_finish(q, 0, NULL);
		}
	}
	if (res)
		evutil_freeaddrinfo(res);
}

/* Starts the lookup of host i. Returns -1 when out of memory. */
static int lookup_start(cs_dns_req *q, int i)
{
	cs_resolver *r = q->r;
	sub *s = calloc(1, sizeof *s);
	if (s == NULL)
		return -1;
	s->r = r;
	s->q = q;
	s->idx = i;
	s->in_call = true;
	q->hosts[i].lookup = s;
	q->pending++;
	r->outstanding++;
	r->stats.lookups++;
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct evdns_getaddrinfo_request *ev =
		evdns_getaddrinfo(r->dns, q->hosts[i].name, NULL, &hints, on_lookup, s);
	s->in_call = false;
	if (s->q == NULL) {
		/* answered inside the call (hosts file, or an immediate failure): on_lookup
		 * recorded it and left s to us */
		free(s);
		return 0;
	}
	s->ev = ev;
	return 0;
}

static cs_dns_req *req_new(cs_resolver *r, cs_dns_cb *cb, void *priv, bool conninfo)
{
	cs_dns_req *q = calloc(1, sizeof *q);
	if (q == NULL)
		return NULL;
	q->r = r;
	q->cb = cb;
	q->priv = priv;
	q->conninfo = conninfo;
	q->timer = evtimer_new(r->base, on_req_timer, q);
	if (q->timer == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

/* Starts the lookups of every named host, arms the timeout. NULL when out of memory. */
static cs_dns_req *req_start(cs_dns_req *q)
{
	struct timeval tv = cs_tv_ms(q->r->timeout_ms);
	evtimer_add(q->timer, &tv);
	/* A guard: a lookup answered inside evdns_getaddrinfo (the hosts file) must not finish
	 * the request while later hosts are not even started (their hostaddr entries would be
	 * empty, and libpq would resolve them itself, blocking). */
	q->pending++;
	for (int i = 0; i < q->nhosts && !q->done; i++) {
		if (q->hosts[i].name == NULL)
			continue;
		if (lookup_start(q, i) != 0) {
			req_free(q);
			return NULL;
		}
	}
	if (--q->pending == 0 && !q->done)
		req_finish(q, 0, NULL);
	return q;
}

/* ---- API ----------------------------------------------------------------------------- */

/* libevent's evdns messages (a name server failing, ...) go to our log, not to stderr. */
static void dns_log(int is_warn, const char *msg)
{
	cs_debug("dns: %s", msg); /* a failed lookup is reported by its user, with its host */
}

cs_resolver *cs_resolver_new(struct event_base *base, const char *resolv_conf, int64_t timeout_ms,
	char *err, size_t errlen)
{
	cs_resolver *r = calloc(1, sizeof *r);
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base = base;
	r->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	evdns_set_log_fn(dns_log);
	/* Not initialized from the system yet: a resolv_conf of the operator's may replace it.
	 * EVDNS_BASE_DISABLE_WHEN_INACTIVE: an idle resolver holds no event on the loop. */
	r->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (r->dns == NULL) {
		snprintf(err, errlen, "out of memory");
		free(r);
		return NULL;
	}
	const char *file = resolv_conf && resolv_conf[0] ? resolv_conf : NULL;
	int rc = evdns_base_resolv_conf_parse(r->dns, DNS_OPTIONS_ALL, file ? file : "/etc/resolv.conf");
	if (rc != 0 && file) {
		snprintf(err, errlen, "resolv_conf %s: cannot be read or has no name server (%d)", file, rc);
		evdns_base_free(r->dns, 0);
		free(r);
		return NULL;
	}
	/* (no /etc/resolv.conf: libevent falls back to 127.0.0.1, as the C library does) */
	/* Each try of a name server waits timeout/2 (at least 100 ms), twice; the lookup as a
	 * whole is bounded by timeout_ms (on_req_timer). */
	char t[32];
	snprintf(t, sizeof t, "%.3f", (double)CS_MAX(r->timeout_ms / 2, 100) / 1000.0);
	(void)evdns_base_set_option(r->dns, "timeout:", t);
	(void)evdns_base_set_option(r->dns, "attempts:", "2");
	return r;
}

void cs_resolver_free(cs_resolver *r)
{
	if (r == NULL)
		return;
	if (r->outstanding == 0) {
		evdns_base_free(r->dns, 0);
		free(r);
		return;
	}
	/* Lookups canceled by their owners still owe evdns callbacks, run (deferred) from the
	 * loop, and those touch the evdns base: it must outlive them. on_lookup frees both
	 * after the last one (resolver_reap). */
	r->closing = true;
	closing_count++;
}

int cs_resolver_drain(struct event_base *base)
{
	/* Nothing else may be left on base (the daemon calls it after freeing the engine and
	 * the server): this only lets evdns deliver what it owes. Bounded. */
	for (int i = 0; closing_count > 0 && i < 64; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return closing_count;
}

cs_dns_req *cs_resolve_host(cs_resolver *r, const char *host, cs_dns_cb *cb, void *priv)
{
	cs_dns_req *q = req_new(r, cb, priv, false);
	if (q == NULL)
		return NULL;
	q->nhosts = 1;
	if (cs_host_is_literal(host)) {
		literal_addr(host, q->hosts[0].addr, sizeof q->hosts[0].addr);
	} else if ((q->hosts[0].name = strdup(host)) == NULL) {
		req_free(q);
		return NULL;
	}
	return req_start(q);
}

cs_dns_req *cs_resolve_conninfo(cs_resolver *r, const char *conninfo, cs_dns_cb *cb, void *priv)
{
	cs_dns_req *q = req_new(r, cb, priv, true);
	if (q == NULL)
		return NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	char *hostlist = NULL;
	bool have_addr = false;
	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "host") == 0)
			hostlist = strdup(o->val);
		else if (strcmp(o->keyword, "hostaddr") == 0)
			have_addr = true;
	}
	PQconninfoFree(opts);
	char *items[MAX_HOSTS + 1];
	int n = cs_split_list(hostlist, items, MAX_HOSTS + 1);
	bool any_name = false;
	for (int i = 0; i < n && i < MAX_HOSTS; i++)
		any_name = any_name || !cs_host_is_literal(items[i]);
	if (have_addr || !any_name || n > MAX_HOSTS) {
		/* hostaddr given by the operator, or nothing to resolve: libpq as configured
		 * (more than MAX_HOSTS hosts: left to libpq too, CONFIG.md says so) */
		q->no_hostaddr = true;
		n = 0;
	}
	q->nhosts = n;
	for (int i = 0; i < n; i++) {
		if (cs_host_is_literal(items[i])) {
			/* "" for unix sockets keeps libpq's own handling of that entry */
			literal_addr(items[i], q->hosts[i].addr, sizeof q->hosts[i].addr);
		} else if ((q->hosts[i].name = strdup(items[i])) == NULL) {
			free(hostlist);
			req_free(q);
			return NULL;
		}
	}
	free(hostlist);
	return req_start(q);
}

void cs_dns_cancel(cs_dns_req *q)
{
	if (q)
		req_free(q);
}

static void *pg_lookup_start(void *ctx, const char *conninfo, cs_pgconn_lookup_cb *cb, void *priv)
{
	return cs_resolve_conninfo(ctx, conninfo, cb, priv);
}

static void pg_lookup_cancel(void *req)
{
	cs_dns_cancel(req);
}

void cs_resolver_pg_lookup(cs_resolver *r, struct cs_pgconn_lookup *out)
{
	*out = (cs_pgconn_lookup){ .start = pg_lookup_start, .cancel = pg_lookup_cancel, .ctx = r };
}

void cs_resolver_stats_get(const cs_resolver *r, cs_resolver_stats *out)
{
	*out = r->stats;
}
