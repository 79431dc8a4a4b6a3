/* redis.c - one Redis connection on the event loop, with timeouts, backoff and scripts. */
#include "redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "redis_ev.h"
#include "redis_url.h"
#include "log.h"
#include "resolve.h"
#include "util.h"

#define MAX_SUBS     72   /* every shard's generations channel (CS_MAX_SHARDS: 64), tracking */
#define BACKOFF_BASE 100  /* ms */
#define BACKOFF_MAX  5000 /* ms */

/* Connection states, in the order a connection walks through them. */
typedef enum conn_state {
	RS_IDLE,	/* no socket; a reconnect timer may be armed */
	RS_RESOLVING,	/* the host name is being resolved (dns), before every connect */
	RS_CONNECTING,	/* TCP/unix connect in progress */
	RS_HANDSHAKE,	/* AUTH / SELECT / SCRIPT LOAD in flight */
	RS_READY,	/* serving commands */
} conn_state;

/* One command in flight, linked in send order so the oldest deadline is at the head. */
typedef struct pcmd {
	struct pcmd *prev, *next;
	cs_redis *r;
	cs_redis_cb *cb;
	cs_redis_fwd_cb *fwd; /* instead of cb: cs_redis_cmd_fwd */
	cs_redis_fn fn;	      /* fwd's function argument */
	void *priv;
	uint64_t deadline_us; /* 0: no deadline (subscriptions) */
	bool persistent;      /* subscription: lives until the connection drops */
	bool internal;	      /* handshake step: cb is an internal function */
} pcmd;

typedef struct sub {
	char *channel;
	cs_redis_cb *cb;
	void *priv;
} sub;

struct cs_redis {
	struct event_base *base;
	char *name;
	char *host; /* host name or numeric address, NULL for unix sockets */
	int port;
	cs_resolver *resolver;
	cs_resolver *own_resolver; /* made here when the caller gave none */
	cs_dns_req *dns;
	char *unix_path;
	char *user, *password;
	int db;
	char *url_masked;
	int64_t timeout_ms;
	int max_pending;

	char **scripts;
	char (*shas)[41];
	int nscripts;
	int hs_step;	    /* next handshake step, see handshake_next */
	bool want_id;	    /* ask CLIENT ID in the handshake (before any SUBSCRIBE) */
	int64_t client_id;  /* this connection's id; 0 while unknown */
	bool hs_failed;	    /* a handshake step failed: the timer drops the connection */
	const char *drop_why; /* cs_redis_reconnect asked: the timer drops the connection */

	cs_redis_state_cb *on_state;
	void *state_priv;

	redisAsyncContext *ac;
	conn_state state;
	int attempt; /* consecutive failed connects, for backoff */
	uint64_t connect_deadline_us;
	struct event *timer;	 /* one-shot: the next command or connect deadline (timer_at) */
	uint64_t timer_at_us;	 /* when it is armed for, 0 not armed */
	struct event *reconnect; /* one-shot backoff */
	bool reload_scripts;	 /* NOSCRIPT seen: reload in the background */

	pcmd head; /* sentinel of the in-flight list */
	int npending;

	sub subs[MAX_SUBS];
	int nsubs;

	cs_redis_stats stats;
	void *owner; /* cs_redis_set_owner */
};

static void start_connect(cs_redis *r);
static void handshake_next(cs_redis *r);

/* Issue 16: the deadline timer is armed for the deadline there is to watch, not run on a
 * period (timeout / 10, 5-100 ms: 10-200 wake-ups a second per connection, idle or not).
 * Arms it for at (cs_now_us clock; at or before now: at once) unless it is armed earlier: a
 * timer that fires finds the deadline it was armed for gone (the command answered) and
 * arms itself for the next one there is (timer_rearm). */
static void timer_at(cs_redis *r, uint64_t at)
{
	if (r->timer == NULL || (r->timer_at_us != 0 && r->timer_at_us <= at))
		return;
	uint64_t now = cs_now_us(), d = at > now ? at - now : 0;
	struct timeval tv = { .tv_sec = (time_t)(d / 1000000u), .tv_usec = (suseconds_t)(d % 1000000u) };
	if (event_add(r->timer, &tv) == 0)
		r->timer_at_us = at ? at : 1;
}

/* Something for the timer to do at once (a failed handshake step, a drop asked for, a
 * script reload): it runs outside hiredis's callbacks. */
static void timer_now(cs_redis *r)
{
	timer_at(r, cs_now_us());
}

/* ---- In-flight list ------------------------------------------------------------------ */

static pcmd *rcmd_new(cs_redis *r, cs_redis_cb *cb, void *priv)
{
	pcmd *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->r = r;
	c->cb = cb;
	c->priv = priv;
	c->deadline_us = cs_now_us() + (uint64_t)r->timeout_ms * 1000u;
	timer_at(r, c->deadline_us + 1); /* checked as now > deadline */
	c->prev = r->head.prev;
	c->next = &r->head;
	r->head.prev->next = c;
	r->head.prev = c;
	r->npending++;
	r->stats.pending = (uint64_t)r->npending;
	return c;
}

static void rcmd_unlink(pcmd *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->r->npending--;
	c->r->stats.pending = (uint64_t)c->r->npending;
	free(c);
}

/* hiredis callback for every command: forwards, then forgets the record. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	pcmd *c = privdata;
	cs_redis *r = c->r;
	redisReply *rep = reply;
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		r->stats.noscript++;
		r->reload_scripts = true;
		timer_now(r);
	}
	if (c->persistent) {
		if (c->cb)
			c->cb(r, rep, c->priv);
		if (rep == NULL)
			rcmd_unlink(c);
		return;
	}
	cs_redis_cb *cb = c->cb;
	cs_redis_fwd_cb *fwd = c->fwd;
	cs_redis_fn fn = c->fn;
	void *priv = c->priv;
	rcmd_unlink(c);
	if (fwd)
		fwd(r, rep, fn, priv);
	else if (cb)
		cb(r, rep, priv);
}

/* ---- Connection lifecycle ------------------------------------------------------------ */

static void set_state(cs_redis *r, conn_state st)
{
	bool was_ready = r->state == RS_READY;
	r->state = st;
	if (st == RS_READY) {
		r->attempt = 0;
		if (r->reload_scripts)
			timer_now(r);
		r->stats.connects++;
		cs_info("redis %s: ready (%s)", r->name, r->url_masked);
		for (int i = 0; i < r->nsubs; i++) {
			pcmd *c = rcmd_new(r, r->subs[i].cb, r->subs[i].priv);
			if (c == NULL)
				continue;
			c->persistent = true;
			c->deadline_us = 0;
			const char *argv[] = { "SUBSCRIBE", r->subs[i].channel };
			if (redisAsyncCommandArgv(r->ac, on_reply, c, 2, argv, NULL) != REDIS_OK)
				rcmd_unlink(c);
		}
		if (r->on_state)
			r->on_state(r, true, r->state_priv);
	} else if (was_ready) {
		r->stats.disconnects++;
		if (r->on_state)
			r->on_state(r, false, r->state_priv);
	}
}

static void schedule_reconnect(cs_redis *r)
{
	int64_t delay = cs_backoff_ms(r->attempt++, BACKOFF_BASE, BACKOFF_MAX);
	struct timeval tv = cs_tv_ms(delay);
	evtimer_add(r->reconnect, &tv);
}

/* Drops the connection from outside hiredis callbacks: pending callbacks get NULL. */
static void drop_connection(cs_redis *r, const char *why)
{
	if (r->ac == NULL)
		return;
	cs_warn("redis %s: dropping connection: %s", r->name, why);
	redisAsyncContext *ac = r->ac;
	r->ac = NULL;
	r->hs_failed = false; /* the next connection's handshake has not failed */
	r->drop_why = NULL;   /* review 37 R37-10: nor is the next one to be dropped */
	ac->data = NULL; /* our disconnect callback must not touch r */
	set_state(r, RS_IDLE);
	redisAsyncFree(ac); /* runs every pending on_reply with NULL */
	schedule_reconnect(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	cs_redis *r = ac->data;
	if (r == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		cs_warn("redis %s: connect failed: %s", r->name, ac->errstr);
		r->ac = NULL;
		set_state(r, RS_IDLE);
		schedule_reconnect(r);
		return;
	}
	r->state = RS_HANDSHAKE;
	r->hs_step = 0;
	r->client_id = 0;
	r->hs_failed = false;
	r->connect_deadline_us = cs_now_us() + (uint64_t)r->timeout_ms * 1000u * 2;
	timer_at(r, r->connect_deadline_us + 1);
	handshake_next(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	cs_redis *r = ac->data;
	if (r == NULL)
		return;
	/* hiredis frees the context after this callback. */
	cs_warn("redis %s: disconnected%s%s", r->name, status == REDIS_OK ? "" : ": ",
		status == REDIS_OK ? "" : ac->errstr);
	r->ac = NULL;
	set_state(r, RS_IDLE);
	schedule_reconnect(r);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
	start_connect(arg);
}

static void connect_addr(cs_redis *r, const char *addr);

/* The host name resolved: connect to the address; a name that does not resolve (in time)
 * is a failed connect (backoff). */
static void on_resolved(void *priv, int err, const char *addr, const char *msg)
{
	cs_redis *r = priv;
	r->dns = NULL;
	if (err != 0) {
		cs_warn("redis %s: connect failed: %s", r->name, msg);
		r->state = RS_IDLE;
		schedule_reconnect(r);
		return;
	}
	connect_addr(r, addr);
}

/* Every connect resolves the host name again (on the loop: resolve.h; hiredis takes an
 * address and would resolve a name with a blocking getaddrinfo), so a DNS failover - the name
 * moved to another server - is followed on the next reconnect. */
static void start_connect(cs_redis *r)
{
	if (r->unix_path || cs_host_is_literal(r->host)) {
		connect_addr(r, r->host);
		return;
	}
	r->state = RS_RESOLVING;
	r->dns = cs_resolve_host(r->resolver, r->host, on_resolved, r);
	if (r->dns == NULL) {
		cs_warn("redis %s: connect failed: out of memory", r->name);
		r->state = RS_IDLE;
		schedule_reconnect(r);
	}
}

static void connect_addr(cs_redis *r, const char *addr)
{
	redisAsyncContext *ac = r->unix_path ? redisAsyncConnectUnix(r->unix_path)
					     : redisAsyncConnect(addr, r->port);
	if (ac == NULL || ac->err) {
		cs_warn("redis %s: connect failed: %s", r->name, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		r->state = RS_IDLE;
		schedule_reconnect(r);
		return;
	}
	ac->data = r;
	r->hs_failed = false;
	if (cs_redis_ev_attach(ac, r->base) != REDIS_OK) {
		redisAsyncFree(ac);
		r->state = RS_IDLE;
		schedule_reconnect(r);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	r->state = RS_CONNECTING;
	r->connect_deadline_us = cs_now_us() + (uint64_t)r->timeout_ms * 1000u;
	timer_at(r, r->connect_deadline_us + 1);
}

/* Handshake: AUTH, SELECT, SCRIPT LOAD of every script, then CLIENT ID when asked, one
 * reply at a time. hs_step is the next step to send: 0 AUTH, 1 SELECT, 2+i SCRIPT LOAD of
 * script i, 2+nscripts CLIENT ID. */
static void on_handshake_reply(cs_redis *r, redisReply *reply, void *priv)
{
	int step = (int)(intptr_t)priv;
	if (reply == NULL)
		return; /* the connection is already going down */
	if (reply->type == REDIS_REPLY_ERROR) {
		cs_error("redis %s: handshake step %d failed: %s", r->name, step, reply->str);
		/* We are inside a hiredis callback: let the timer drop the connection. */
		r->hs_failed = true;
		timer_now(r);
		return;
	}
	if (step == 2 + r->nscripts) {
		if (reply->type != REDIS_REPLY_INTEGER || reply->integer <= 0) {
			cs_error("redis %s: CLIENT ID gave no id", r->name);
			r->hs_failed = true;
			timer_now(r);
			return;
		}
		r->client_id = reply->integer;
	} else if (step >= 2) {
		int i = step - 2;
		if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
			cs_error("redis %s: SCRIPT LOAD gave no SHA1", r->name);
			r->hs_failed = true;
			timer_now(r);
			return;
		}
		memcpy(r->shas[i], reply->str, 40);
		r->shas[i][40] = '\0';
	}
	handshake_next(r);
}

static int send_internal(cs_redis *r, int step, int argc, const char **argv)
{
	pcmd *c = rcmd_new(r, on_handshake_reply, (void *)(intptr_t)step);
	if (c == NULL)
		return -1;
	c->internal = true;
	if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, NULL) != REDIS_OK) {
		rcmd_unlink(c);
		return -1;
	}
	return 0;
}

static void handshake_next(cs_redis *r)
{
	char dbbuf[16];
	for (;;) {
		int step = r->hs_step++;
		int rc;
		if (step == 0) {
			if (r->password == NULL)
				continue;
			const char *argv[] = { "AUTH", r->user ? r->user : r->password, r->password };
			rc = send_internal(r, step, r->user ? 3 : 2, argv);
		} else if (step == 1) {
			if (r->db == 0)
				continue;
			snprintf(dbbuf, sizeof dbbuf, "%d", r->db);
			const char *argv[] = { "SELECT", dbbuf };
			rc = send_internal(r, step, 2, argv);
		} else if (step - 2 < r->nscripts) {
			const char *argv[] = { "SCRIPT", "LOAD", r->scripts[step - 2] };
			rc = send_internal(r, step, 3, argv);
		} else if (step - 2 == r->nscripts) {
			if (!r->want_id || r->state != RS_HANDSHAKE)
				continue; /* not asked, or a script reload on a ready connection */
			const char *argv[] = { "CLIENT", "ID" };
			rc = send_internal(r, step, 2, argv);
		} else {
			if (r->state == RS_HANDSHAKE)
				set_state(r, RS_READY);
			return;
		}
		if (rc != 0) {
			r->hs_failed = true;
			timer_now(r);
		}
		return;
	}
}

/* ---- Periodic deadlines -------------------------------------------------------------- */

/* The next deadline to watch, armed (nothing: not armed; whatever sets one arms it). */
static void timer_rearm(cs_redis *r)
{
	uint64_t now = cs_now_us();
	if ((r->ac != NULL && (r->hs_failed || r->drop_why != NULL)) ||
	        (r->state == RS_READY && r->reload_scripts))
		timer_at(r, now);
	if (r->state == RS_CONNECTING || r->state == RS_HANDSHAKE)
		timer_at(r, r->connect_deadline_us + 1);
	pcmd *oldest = r->head.next;
	while (oldest != &r->head && oldest->deadline_us == 0)
		oldest = oldest->next;
	if (oldest != &r->head)
		timer_at(r, oldest->deadline_us + 1);
}

static void timer_check(cs_redis *r);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	cs_redis *r = arg;
	r->timer_at_us = 0;
	timer_check(r);
	timer_rearm(r);
}

static void timer_check(cs_redis *r)
{
	uint64_t now = cs_now_us();
	if (r->ac != NULL && r->hs_failed) {
		drop_connection(r, "handshake failed");
		return;
	}
	if (r->drop_why != NULL) {
		const char *why = r->drop_why;
		r->drop_why = NULL;
		if (r->ac != NULL) {
			drop_connection(r, why);
			return;
		}
	}
	if ((r->state == RS_CONNECTING || r->state == RS_HANDSHAKE) && now > r->connect_deadline_us) {
		drop_connection(r, r->state == RS_CONNECTING ? "connect timed out" : "handshake timed out");
		return;
	}
	pcmd *oldest = r->head.next;
	while (oldest != &r->head && oldest->deadline_us == 0)
		oldest = oldest->next;
	if (oldest != &r->head && now > oldest->deadline_us) {
		r->stats.timeouts++;
		drop_connection(r, "command timed out");
		return;
	}
	if (r->state == RS_READY && r->reload_scripts) {
		/* NOSCRIPT: Redis lost its script cache. Reload; commands meanwhile get the
		 * NOSCRIPT error and their callers retry or skip the fill. */
		r->reload_scripts = false;
		r->hs_step = 2;
		handshake_next(r);
	}
}

/* ---- URL ----------------------------------------------------------------------------- */

/* The URL's parts, through the config module's parser (the one that validated it). */
static int parse_url(cs_redis *r, const char *url, char *err, size_t errlen)
{
	cs_redis_url u;
	char why[256];
	if (!cs_redis_url_parse(url, &u, why, sizeof why)) {
		snprintf(err, errlen, "redis url: %s", why);
		return -1;
	}
	r->db = u.db;
	r->port = u.port;
	if (u.username[0])
		r->user = strdup(u.username);
	if (u.password[0])
		r->password = strdup(u.password);
	char masked[512];
	if (u.unix_path[0]) {
		r->unix_path = strdup(u.unix_path);
		snprintf(masked, sizeof masked, "unix://%s%s%s%s?db=%d", u.username,
			u.password[0] ? ":***" : "", u.password[0] || u.username[0] ? "@" : "", u.unix_path,
			u.db);
	} else {
		r->host = strdup(u.host);
		if (r->host == NULL)
			return snprintf(err, errlen, "out of memory"), -1;
		snprintf(masked, sizeof masked, "redis://%s%s%s%s:%d/%d", u.username,
			u.password[0] ? ":***" : "", u.password[0] || u.username[0] ? "@" : "", u.host, u.port,
			u.db);
	}
	/* wipe the copy of the secret on the stack */
	memset(u.password, 0, sizeof u.password);
	r->url_masked = strdup(masked);
	return r->url_masked ? 0 : (snprintf(err, errlen, "out of memory"), -1);
}

/* ---- Public API ---------------------------------------------------------------------- */

cs_redis *cs_redis_new(struct event_base *base, const cs_redis_opts *o, char *err, size_t errlen)
{
	cs_redis *r = calloc(1, sizeof *r);
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base = base;
	r->name = strdup(o->name ? o->name : "redis");
	r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 1000;
	r->max_pending = o->max_pending > 0 ? o->max_pending : 65536;
	r->want_id = o->client_id;
	r->on_state = o->on_state;
	r->state_priv = o->state_priv;
	r->head.next = r->head.prev = &r->head;
	if (parse_url(r, o->url, err, errlen) != 0) {
		cs_redis_free(r);
		return NULL;
	}
	r->resolver = o->resolver;
	if (r->resolver == NULL && r->host && !cs_host_is_literal(r->host)) {
		r->resolver = r->own_resolver =
			cs_resolver_new(base, NULL, r->timeout_ms, err, errlen);
		if (r->resolver == NULL) {
			cs_redis_free(r);
			return NULL;
		}
	}
	if (o->nscripts > 0) {
		r->scripts = calloc((size_t)o->nscripts, sizeof *r->scripts);
		r->shas = calloc((size_t)o->nscripts, sizeof *r->shas);
		if (r->scripts == NULL || r->shas == NULL) {
			snprintf(err, errlen, "out of memory");
			cs_redis_free(r);
			return NULL;
		}
		r->nscripts = o->nscripts;
		for (int i = 0; i < o->nscripts; i++)
			r->scripts[i] = strdup(o->scripts[i]);
	}
	r->timer = evtimer_new(base, on_timer, r);
	r->reconnect = evtimer_new(base, on_reconnect_timer, r);
	if (r->timer == NULL || r->reconnect == NULL) {
		snprintf(err, errlen, "out of memory");
		cs_redis_free(r);
		return NULL;
	}
	start_connect(r);
	return r;
}

void cs_redis_free(cs_redis *r)
{
	if (r == NULL)
		return;
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		ac->data = NULL;
		r->on_state = NULL; /* no state callbacks while tearing down */
		/* Pending callbacks run (reply NULL) inside redisAsyncFree: anything they send
		 * now must be refused, not written to the context being freed. */
		r->state = RS_IDLE;
		redisAsyncFree(ac);
	}
	cs_dns_cancel(r->dns);
	r->dns = NULL;
	cs_resolver_free(r->own_resolver);
	if (r->timer)
		event_free(r->timer);
	if (r->reconnect)
		event_free(r->reconnect);
	for (int i = 0; i < r->nscripts; i++)
		free(r->scripts[i]);
	for (int i = 0; i < r->nsubs; i++)
		free(r->subs[i].channel);
	free(r->scripts);
	free(r->shas);
	free(r->name);
	free(r->host);
	free(r->unix_path);
	free(r->user);
	free(r->password);
	free(r->url_masked);
	free(r);
}

bool cs_redis_ready(const cs_redis *r)
{
	return r->state == RS_READY;
}

static int send_cmd(cs_redis *r, cs_redis_cb *cb, cs_redis_fwd_cb *fwd, cs_redis_fn fn,
	void *priv, int argc, const char **argv, const size_t *lens)
{
	if (r->state != RS_READY || r->npending >= r->max_pending) {
		r->stats.refused++;
		return -1;
	}
	pcmd *c = rcmd_new(r, cb, priv);
	if (c == NULL) {
		r->stats.refused++;
		return -1;
	}
	c->fwd = fwd;
	c->fn = fn;
	if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, lens) != REDIS_OK) {
		rcmd_unlink(c);
		r->stats.refused++;
		return -1;
	}
	return 0;
}

int cs_redis_cmd(cs_redis *r, cs_redis_cb *cb, void *priv, int argc, const char **argv,
	const size_t *lens)
{
	return send_cmd(r, cb, NULL, NULL, priv, argc, argv, lens);
}

int cs_redis_cmd_fwd(cs_redis *r, cs_redis_fwd_cb *fwd, cs_redis_fn fn, void *priv, int argc,
	const char **argv, const size_t *lens)
{
	return send_cmd(r, NULL, fwd, fn, priv, argc, argv, lens);
}

static int send_script(cs_redis *r, int script, cs_redis_cb *cb, cs_redis_fwd_cb *fwd,
	cs_redis_fn fn, void *priv, int nkeys, int argc, const char **argv, const size_t *lens)
{
	/* The invalidator batches 128 keys per call (4 arguments each, plus 4); the
	 * resynchronisation and the generation poll take 2-4 per query: on the heap. */
	enum { STACK_ARGS = 1024, MAX_ARGS = 1 << 20 };
	const char *avs[STACK_ARGS + 3];
	size_t als[STACK_ARGS + 3];
	char nk[16];
	if (script < 0 || script >= r->nscripts || argc > MAX_ARGS || nkeys > argc) {
		r->stats.refused++;
		return -1;
	}
	const char **av = avs;
	size_t *al = als;
	if (argc > STACK_ARGS) {
		av = malloc((size_t)(argc + 3) * sizeof *av);
		al = malloc((size_t)(argc + 3) * sizeof *al);
		if (av == NULL || al == NULL) {
			free(av);
			free(al);
			r->stats.refused++;
			return -1;
		}
	}
	int n = snprintf(nk, sizeof nk, "%d", nkeys);
	av[0] = "EVALSHA";
	al[0] = 7;
	av[1] = r->shas[script];
	al[1] = 40;
	av[2] = nk;
	al[2] = (size_t)n;
	for (int i = 0; i < argc; i++) {
		av[3 + i] = argv[i];
		al[3 + i] = lens ? lens[i] : strlen(argv[i]);
	}
	int rc = send_cmd(r, cb, fwd, fn, priv, argc + 3, av, al);
	if (av != avs) {
		free(av);
		free(al);
	}
	return rc;
}

int cs_redis_script(cs_redis *r, int script, cs_redis_cb *cb, void *priv, int nkeys, int argc,
	const char **argv, const size_t *lens)
{
	return send_script(r, script, cb, NULL, NULL, priv, nkeys, argc, argv, lens);
}

int cs_redis_script_fwd(cs_redis *r, int script, cs_redis_fwd_cb *fwd, cs_redis_fn fn,
	void *priv, int nkeys, int argc, const char **argv, const size_t *lens)
{
	return send_script(r, script, NULL, fwd, fn, priv, nkeys, argc, argv, lens);
}

void cs_redis_set_owner(cs_redis *r, void *owner)
{
	r->owner = owner;
}

void *cs_redis_owner(const cs_redis *r)
{
	return r->owner;
}

int cs_redis_subscribe(cs_redis *r, const char *channel, cs_redis_cb *cb, void *priv)
{
	if (r->nsubs == MAX_SUBS)
		return -1;
	sub *s = &r->subs[r->nsubs];
	s->channel = strdup(channel);
	if (s->channel == NULL)
		return -1;
	s->cb = cb;
	s->priv = priv;
	r->nsubs++;
	if (r->state == RS_READY) {
		pcmd *c = rcmd_new(r, cb, priv);
		if (c == NULL)
			return -1;
		c->persistent = true;
		c->deadline_us = 0;
		const char *argv[] = { "SUBSCRIBE", s->channel };
		if (redisAsyncCommandArgv(r->ac, on_reply, c, 2, argv, NULL) != REDIS_OK)
			rcmd_unlink(c);
	}
	return 0;
}

const cs_redis_stats *cs_redis_get_stats(const cs_redis *r)
{
	return &r->stats;
}

void cs_redis_reconnect(cs_redis *r, const char *why)
{
	r->drop_why = why;
	timer_now(r);
}

int64_t cs_redis_client_id(const cs_redis *r)
{
	return r->state == RS_READY ? r->client_id : 0;
}

const char *cs_redis_url_masked(const cs_redis *r)
{
	return r->url_masked;
}
