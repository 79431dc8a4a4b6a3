/* main.c - the cachesvc daemon: a thin shell over the engine (config, signals, listeners). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "admin.h"
#include "check.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "notify.h"
#include "resolve.h"
#include "server.h"
#include "util.h"

#define READY_WAIT_MS 5000 /* accept clients once healthy, or after this long anyway */

/* File descriptors kept free for everything but client connections beyond what fd_reserve
 * counts from the config: stdio and the event loop's own (epoll, signal pipe), the
 * listeners, the OVERLOADED answer to a client past the cap (accepted, answered, closed),
 * pool connections being replaced (the new socket opens before the old one closes),
 * replica pools built by a reload while the old ones drain, resolver sockets. */
#define FD_MARGIN 48

typedef struct daemon_state {
	struct event_base *base;
	char *config_path;
	cs_engine *engine;
	cs_server *server;
	cs_admin *admin;
	struct event *ready_timer;
	uint64_t started_us;
	bool stopping;
	long nofile; /* the open-file soft limit after raise_nofile */
	int client_cap;
	struct event *stats_timer; /* the periodic stats line (stats_period) */
	bool reloading, reload_again; /* a reload's SQL is being checked; a SIGHUP came meanwhile */
	bool notify_ready;	      /* READY=1 owed to systemd when that reload ends */
	cs_server_reload_done *reload_done; /* an ADMIN reload waiting for this reload's end */
	void *reload_done_priv;
	struct stats_snap {
		uint64_t at_us, requests, hits, stale_hits, misses, fills, refused, errors;
		uint64_t hit_n, hit_sum, miss_n, miss_sum;
	} last;
} daemon_state;

/* Raises the open-file soft limit to the hard limit (the soft one is often 1024 while the
 * hard one is far higher; only the soft one binds us, and raising it needs no privilege).
 * Returns the soft limit in force afterwards. */
static long raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	rlim_t old = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		/* An unlimited hard limit cannot be the soft one (Linux refuses above nr_open). */
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			cs_warn("cannot raise the open-file limit from %llu to %llu: %s",
				(unsigned long long)old, (unsigned long long)rl.rlim_cur, strerror(errno));
			rl.rlim_cur = old;
		} else {
			cs_info("open-file limit raised from %llu to %llu", (unsigned long long)old,
				(unsigned long long)rl.rlim_cur);
		}
	}
	return rl.rlim_cur > (rlim_t)INT32_MAX ? INT32_MAX : (long)rl.rlim_cur;
}

/* File descriptors the daemon needs besides client connections, from the config: each
 * PostgreSQL server's pool plus its monitor connection, the two Redis connections (commands
 * and pub/sub), each invalidator's (one per shard: replication stream, its Redis, one SQL
 * connection, and one spare for a reconnect), the admin endpoint at its cap, and FD_MARGIN. */
static int fd_reserve(const cs_config *cfg)
{
	int n = FD_MARGIN + 2;
	if (cfg->primary_conninfo)
		n += cfg->primary_pool_size + 1;
	for (int i = 0; i < cfg->nshards; i++) /* each shard's primary (review 28 R28-2) */
		n += cfg->shards[i].pool_size + 1;
	for (int i = 0; i < cfg->nreplicas; i++)
		n += cfg->replicas[i].pool_size + 1;
	if (cfg->inval_enabled)
		n += 4 * (cfg->nshards > 0 ? cfg->nshards : 1); /* one invalidator per shard */
	if (cfg->admin_listen)
		n += CS_ADMIN_MAX_CONNS + 1;
	return n;
}

/* The client connections the open-file limit allows (< 1: none). */
static int client_cap_of(const cs_config *cfg, long nofile)
{
	long cap = nofile - fd_reserve(cfg);
	return cap > 1000000 ? 1000000 : (int)cap;
}

/* Applies the cap to the server and says so (once per change) when it binds. */
static void apply_client_cap(daemon_state *d, const cs_config *cfg, int cap)
{
	if (cap < 1)
		cap = 1; /* reload only: start refuses this (see main) */
	if (cap < cfg->max_clients && cap != d->client_cap)
		cs_warn("max_clients %d capped to %d: the open-file limit is %ld and %d descriptors "
			"are kept for servers, pools, Redis, the admin endpoint and a margin",
			cfg->max_clients, cap, d->nofile, fd_reserve(cfg));
	d->client_cap = cap;
	if (d->server)
		cs_server_set_client_cap(d->server, cap);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cachesvc -c FILE [--check [--offline]] [--show-config]\n"
		"  -c, --config FILE   configuration (INI; see cachesvc/config/CONFIG.md)\n"
		"      --check         validate the config against the servers and exit: 0 when\n"
		"                      valid and every server (primary, replicas, Redis) answers;\n"
		"                      1 otherwise, naming each problem and unreachable server\n"
		"      --offline       with --check: the file alone, no server contacted\n"
		"      --show-config   print every setting, defaults included, secrets masked\n"
		"  -V, --version       print the version\n"
		"Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads query definitions.\n");
}

static void on_drained(void *arg)
{
	daemon_state *d = arg;
	cs_info("drained: exiting");
	event_base_loopexit(d->base, NULL);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	daemon_state *d = arg;
	if (d->stopping) {
		cs_warn("second signal: exiting now");
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = true;
	d->notify_ready = false; /* no READY=1 after STOPPING=1, even if a reload check ends */
	cs_notify_stopping();
	cs_info("%s: draining in-flight requests",
		sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal");
	int64_t timeout = cs_engine_config(d->engine)->request_timeout_ms + 1000;
	cs_server_drain(d->server, timeout, on_drained, d);
}

static struct stats_snap stats_now(const daemon_state *d);
static void stats_arm(daemon_state *d);

static void on_reload(evutil_socket_t sig, short what, void *arg);

/* Tells an ADMIN reload waiting on this reload how it ended. */
static void reload_answer(daemon_state *d, int result, const char *err)
{
	cs_server_reload_done *done = d->reload_done;
	d->reload_done = NULL;
	if (done)
		done(d->reload_done_priv, result, err);
}

static void on_reloaded(void *arg, int result, const char *err)
{
	daemon_state *d = arg;
	d->reloading = false;
	reload_answer(d, result, result == 0 ? "" : err);
	if (result != 0) {
		cs_error("reload refused, keeping the running config: %s", err);
	} else {
		const cs_config *cfg = cs_engine_config(d->engine);
		cs_log_level lvl;
		if (cs_log_parse_level(cfg->log_level, &lvl))
			cs_log_set_level(lvl); /* log_level is reloadable */
		apply_client_cap(d, cfg, client_cap_of(cfg, d->nofile));
		if (d->stats_timer) { /* stats_period may have changed */
			evtimer_del(d->stats_timer);
			d->last = stats_now(d);
			stats_arm(d);
		}
		cs_info("reloaded %s: %d queries", d->config_path, cfg->nqueries);
	}
	if (d->notify_ready && !d->stopping) { /* systemd: the reload is over, applied or refused */
		d->notify_ready = false;
		cs_notify_ready();
	}
	if (d->reload_again && !d->stopping) { /* a SIGHUP arrived meanwhile */
		d->reload_again = false;
		on_reload(SIGHUP, 0, d);
	}
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	daemon_state *d = arg;
	if (d->stopping) { /* an ADMIN reload deferred to a loop turn that came after SIGTERM */
		reload_answer(d, -1, "shutting down: no reload");
		return;
	}
	if (d->reloading) {
		d->reload_again = true; /* after the one being checked */
		return;
	}
	/* systemd: the reload runs between RELOADING=1 and READY=1 (applied or refused); before
	 * the first READY (still waiting to accept) or while draining, no state is sent. */
	bool ready = !d->stopping && !evtimer_pending(d->ready_timer, NULL);
	if (ready)
		cs_notify_reloading();
	char err[CS_CONFIG_ERRLEN];
	cs_config *cfg = cs_config_load(d->config_path, err);
	if (cfg == NULL) {
		cs_error("reload failed, keeping the running config: %s", err);
		reload_answer(d, -1, err);
		if (ready)
			cs_notify_ready();
		return;
	}
	d->reloading = true;
	d->notify_ready = ready;
	if (cs_engine_reload_checked(d->engine, cfg, on_reloaded, d, err, sizeof err) != 0) {
		d->reloading = false;
		d->notify_ready = false;
		cs_error("reload refused, keeping the running config: %s", err);
		reload_answer(d, -1, err);
		cs_config_free(cfg);
		if (ready)
			cs_notify_ready();
	}
}

/* ADMIN "reload" (server.h): the same checked reload as SIGHUP, answered when it ends. */
static int admin_reload(void *arg, cs_server_reload_done *done, void *priv, char *err,
	size_t errlen)
{
	daemon_state *d = arg;
	if (d->stopping) {
		snprintf(err, errlen, "shutting down: no reload");
		return -1;
	}
	if (d->reloading) {
		snprintf(err, errlen, "a reload is being checked; retry when it has ended");
		return -1;
	}
	if (d->reload_done != NULL) {
		snprintf(err, errlen, "a reload was requested and has not ended; retry");
		return -1;
	}
	/* From the next loop turn, as a SIGHUP runs: a reload applied at once frees the config
	 * the caller (the server, inside a read) still holds. */
	static const struct timeval now = { 0, 0 };
	if (event_base_once(d->base, -1, EV_TIMEOUT, on_reload, d, &now) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cs_info("reload requested by an admin request");
	d->reload_done = done; /* answered through reload_answer */
	d->reload_done_priv = priv;
	return 0;
}

/* ---- The periodic stats line (PgBouncer's "stats:" line) ---------------------------------- */

static struct stats_snap stats_now(const daemon_state *d)
{
	const cs_engine_stats *s = cs_engine_get_stats(d->engine);
	struct stats_snap n = { .at_us = cs_now_us(), .requests = s->requests, .hits = s->hits,
		.stale_hits = s->stale_hits, .misses = s->misses, .fills = s->fills,
		.refused = s->fill_refused_fence + s->fill_refused_horizon + s->fill_refused_qfence +
			s->fill_refused_eviction + s->fill_refused_epoch + s->fill_refused_gen,
		.hit_n = s->hit_us.count, .hit_sum = s->hit_us.sum, .miss_n = s->miss_us.count,
		.miss_sum = s->miss_us.sum };
	for (int i = 1; i <= CS_ERR_MAX; i++)
		n.errors += s->errors[i];
	return n;
}

static void stats_arm(daemon_state *d)
{
	int64_t ms = cs_engine_config(d->engine)->stats_period_ms;
	if (ms <= 0 || d->stats_timer == NULL)
		return;
	struct timeval tv = cs_tv_ms(ms);
	evtimer_add(d->stats_timer, &tv);
}

/* One INFO line per stats_period: rates over the period, mean latencies, gauges. */
static void on_stats(evutil_socket_t fd, short what, void *arg)
{
	daemon_state *d = arg;
	struct stats_snap n = stats_now(d), *o = &d->last;
	double sec = (double)(n.at_us - o->at_us) / 1e6;
	if (sec > 0) {
		uint64_t req = n.requests - o->requests;
		double pct = req ? 100.0 / (double)req : 0;
		uint64_t hn = n.hit_n - o->hit_n, mn = n.miss_n - o->miss_n;
		const cs_server_stats *ss = cs_server_get_stats(d->server);
		cs_info("stats: %.0f req/s (hits %.1f%%, stale %.1f%%, misses %.1f%%), fills %.0f/s, "
			"refused %.0f/s, errors %.0f/s, hit %.3f ms, miss %.3f ms, clients %llu, in flight %llu",
			(double)req / sec, (double)(n.hits - o->hits) * pct,
			(double)(n.stale_hits - o->stale_hits) * pct, (double)(n.misses - o->misses) * pct,
			(double)(n.fills - o->fills) / sec, (double)(n.refused - o->refused) / sec,
			(double)(n.errors - o->errors) / sec,
			hn ? (double)(n.hit_sum - o->hit_sum) / (double)hn / 1000.0 : 0.0,
			mn ? (double)(n.miss_sum - o->miss_sum) / (double)mn / 1000.0 : 0.0,
			(unsigned long long)ss->clients, (unsigned long long)ss->inflight);
	}
	d->last = n;
	stats_arm(d);
}

static void on_ready_check(evutil_socket_t fd, short what, void *arg)
{
	daemon_state *d = arg;
	char why[256];
	bool healthy = cs_engine_healthy(d->engine, why, sizeof why);
	if (healthy || cs_now_us() - d->started_us > READY_WAIT_MS * 1000u) {
		if (!healthy)
			cs_warn("accepting clients although not healthy: %s", why);
		cs_server_accept(d->server, true);
		const cs_config *cfg = cs_engine_config(d->engine);
		cs_info("accepting clients on %s%s%s", cfg->listen ? cfg->listen : "",
			cfg->unix_socket ? " and " : "", cfg->unix_socket ? cfg->unix_socket : "");
		cs_notify_status("accepting clients on %s%s%s", cfg->listen ? cfg->listen : "",
			cfg->unix_socket ? " and " : "", cfg->unix_socket ? cfg->unix_socket : "");
		cs_notify_ready();
		return;
	}
	struct timeval tv = cs_tv_ms(20);
	evtimer_add(d->ready_timer, &tv);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "offline", no_argument, NULL, 'o' },
		{ "show-config", no_argument, NULL, 's' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	daemon_state d = { 0 };
	bool check = false, show = false, offline = false;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'o':
			offline = true;
			break;
		case 's':
			show = true;
			break;
		case 'V':
			printf("cachesvc 0.1.0\n");
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (d.config_path == NULL || optind != argc || (offline && !check)) {
		usage(stderr);
		return 2;
	}
	char err[4096];
	cs_config *cfg = cs_config_load(d.config_path, err);
	if (cfg == NULL) {
		fprintf(stderr, "cachesvc: %s\n", err);
		return 1;
	}
	cs_log_level lvl;
	if (cs_log_parse_level(cfg->log_level, &lvl))
		cs_log_set_level(lvl);
	cs_log_set_format(strcmp(cfg->log_format, "journal") == 0 ? CS_LOG_FORMAT_JOURNAL
			  : strcmp(cfg->log_format, "text") == 0  ? CS_LOG_FORMAT_TEXT
								  : CS_LOG_FORMAT_AUTO);
	if (show) {
		cs_config_show(cfg, stdout);
		cs_config_free(cfg);
		return 0;
	}
	if (check && offline) {
		printf("%s: ok (offline: the servers were not contacted)\n", d.config_path);
		cs_config_free(cfg);
		return 0;
	}
	/* Checks against the servers, before the loop runs (they block, with timeouts). */
	int qrc = cs_check_queries(cfg, err, sizeof err);
	if (qrc == CS_CHECK_INVALID) {
		fprintf(stderr, "cachesvc: %s: %s\n", d.config_path, err);
		cs_config_free(cfg);
		return 1;
	}
	if (qrc == CS_CHECK_UNREACHABLE)
		cs_warn("queries not checked against a server: %s", err);
	int irc = cs_check_invalidation(cfg, !check, err, sizeof err);
	if (irc == CS_CHECK_INVALID) {
		fprintf(stderr, "cachesvc: %s: %s\n", d.config_path, err);
		cs_config_free(cfg);
		return 1;
	}
	if (irc == CS_CHECK_UNREACHABLE)
		cs_warn("invalidation not checked: %s", err);
	if (cs_check_ryw(cfg) == CS_CHECK_UNREACHABLE)
		cs_warn("read-your-writes coverage not checked (primary unreachable): tokens go to the database");
	int rrc = cs_check_redis(cfg, err, sizeof err);
	if (rrc == CS_CHECK_INVALID) {
		fprintf(stderr, "cachesvc: %s: %s\n", d.config_path, err);
		cs_config_free(cfg);
		return 1;
	}
	if (rrc == CS_CHECK_UNREACHABLE)
		cs_warn("redis not checked: %s", err);
	if (check) {
		/* A deploy gate: a server it cannot reach is a failure, named (--offline skips). */
		int src = cs_check_servers(cfg, err, sizeof err);
		cs_config_free(cfg);
		if (src != CS_CHECK_OK) {
			fprintf(stderr, "cachesvc: %s: %s\n", d.config_path, err);
			return 1;
		}
		printf("%s: ok\n", d.config_path);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	d.nofile = raise_nofile();
	int cap = client_cap_of(cfg, d.nofile);
	if (cap < 1) {
		fprintf(stderr,
			"cachesvc: the open-file limit (%ld) leaves no descriptor for clients: servers, "
			"pools, Redis and the admin endpoint need %d; raise it (ulimit -n)\n",
			d.nofile, fd_reserve(cfg));
		cs_config_free(cfg);
		return 1;
	}
	int rc = 1;
	struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
	char *admin_listen = cfg->admin_listen ? strdup(cfg->admin_listen) : NULL;
	d.base = event_base_new();
	if (d.base == NULL) {
		fprintf(stderr, "cachesvc: cannot create the event loop\n");
		cs_config_free(cfg);
		goto out;
	}
	if (cs_log_attach(d.base) != 0) /* a log backlog drains from the loop, not at the next line */
		cs_warn("log: out of memory: a backlog drains only at the next line");
	d.engine = cs_engine_new(d.base, cfg, err, sizeof err); /* owns cfg from here */
	if (d.engine == NULL) {
		fprintf(stderr, "cachesvc: %s\n", err);
		goto out;
	}
	d.server = cs_server_new(d.base, d.engine, err, sizeof err);
	if (d.server == NULL) {
		fprintf(stderr, "cachesvc: %s\n", err);
		goto out;
	}
	cs_server_set_reload(d.server, admin_reload, &d);
	cs_server_accept(d.server, false); /* until healthy: see on_ready_check */
	apply_client_cap(&d, cs_engine_config(d.engine), cap);
	if (admin_listen) {
		d.admin = cs_admin_new(d.base, admin_listen, d.engine, d.server, err, sizeof err);
		if (d.admin == NULL) {
			fprintf(stderr, "cachesvc: %s\n", err);
			goto out;
		}
	}
	sigterm = evsignal_new(d.base, SIGTERM, on_stop, &d);
	sigint = evsignal_new(d.base, SIGINT, on_stop, &d);
	sighup = evsignal_new(d.base, SIGHUP, on_reload, &d);
	d.ready_timer = evtimer_new(d.base, on_ready_check, &d);
	d.stats_timer = evtimer_new(d.base, on_stats, &d);
	if (!sigterm || !sigint || !sighup || !d.ready_timer || !d.stats_timer) {
		fprintf(stderr, "cachesvc: out of memory\n");
		goto out;
	}
	d.started_us = cs_now_us();
	struct timeval now = { 0, 0 };
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);
	evtimer_add(d.ready_timer, &now);
	d.last = stats_now(&d);
	stats_arm(&d);
	cs_info("cachesvc 0.1.0 starting (config %s)", d.config_path);

	event_base_dispatch(d.base);
	rc = 0;
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (sighup)
		event_free(sighup);
	if (d.ready_timer)
		event_free(d.ready_timer);
	if (d.stats_timer)
		event_free(d.stats_timer);
	cs_admin_free(d.admin);
	/* The engine first: freeing it answers every request still in flight (SHUTTING_DOWN)
	 * through the server's callbacks, which need the server and its clients alive; the
	 * server is draining (SIGTERM), so nothing they read reaches the engine again. Then
	 * the server writes those answers out and closes the clients. */
	cs_engine_free(d.engine); /* ends a reload check in progress: on_reloaded answers */
	reload_answer(&d, -1, "shutting down: no reload"); /* one deferred past the loop's end */
	cs_server_free(d.server);
	if (d.base && cs_resolver_drain(d.base) > 0)
		cs_warn("shutdown: a DNS resolver still had lookups in flight");
	cs_log_detach();
	if (d.base)
		event_base_free(d.base);
	free(admin_listen);
	if (rc == 0)
		cs_info("stopped");
	return rc;
}
