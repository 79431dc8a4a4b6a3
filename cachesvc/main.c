/* main.c - the cachesvc daemon: a thin shell over the engine (config, signals, listeners). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "admin.h"
#include "check.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "util.h"

#define READY_WAIT_MS 5000 /* accept clients once healthy, or after this long anyway */

typedef struct daemon_state {
	struct event_base *base;
	char *config_path;
	cs_engine *engine;
	cs_server *server;
	cs_admin *admin;
	struct event *ready_timer;
	uint64_t started_us;
	bool stopping;
} daemon_state;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: cachesvc -c FILE [--check] [--show-config]\n"
		"  -c, --config FILE   configuration (INI; see cachesvc/CONFIG.md)\n"
		"      --check         validate the config (also against the servers) and exit\n"
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
	cs_notify_stopping();
	cs_info("signal %d: draining in-flight requests", (int)sig);
	int64_t timeout = cs_engine_config(d->engine)->request_timeout_ms + 1000;
	cs_server_drain(d->server, timeout, on_drained, d);
}

static void reload_config(evutil_socket_t sig, short what, void *arg)
{
	daemon_state *d = arg;
	char err[CS_CONFIG_ERRLEN];
	cs_config *cfg = cs_config_load(d->config_path, err);
	if (cfg == NULL) {
		cs_error("reload failed, keeping the running config: %s", err);
		return;
	}
	if (cs_engine_reload(d->engine, cfg, err, sizeof err) != 0) {
		cs_error("reload refused, keeping the running config: %s", err);
		cs_config_free(cfg);
		return;
	}
	cs_info("reloaded %s: %d queries", d->config_path, cfg->nqueries);
}

/* SIGHUP: for systemd the reload runs between RELOADING=1 and READY=1 (applied or refused);
 * before the first READY (still waiting to accept) or while draining, no state is sent. */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	daemon_state *d = arg;
	bool ready = !d->stopping && !evtimer_pending(d->ready_timer, NULL);
	if (ready)
		cs_notify_reloading();
	reload_config(sig, what, arg);
	if (ready)
		cs_notify_ready();
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
		{ "show-config", no_argument, NULL, 's' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	daemon_state d = { 0 };
	bool check = false, show = false;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'k':
			check = true;
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
	if (d.config_path == NULL || optind != argc) {
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
	if (show) {
		cs_config_show(cfg, stdout);
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
	int irc = cs_check_invalidation(cfg, err, sizeof err);
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
		printf("%s: ok%s\n", d.config_path,
			qrc == CS_CHECK_OK && rrc == CS_CHECK_OK ? "" : " (some checks could not reach a server)");
		cs_config_free(cfg);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	int rc = 1;
	struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
	char *admin_listen = cfg->admin_listen ? strdup(cfg->admin_listen) : NULL;
	d.base = event_base_new();
	if (d.base == NULL) {
		fprintf(stderr, "cachesvc: cannot create the event loop\n");
		cs_config_free(cfg);
		goto out;
	}
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
	cs_server_accept(d.server, false); /* until healthy: see on_ready_check */
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
	if (!sigterm || !sigint || !sighup || !d.ready_timer) {
		fprintf(stderr, "cachesvc: out of memory\n");
		goto out;
	}
	d.started_us = cs_now_us();
	struct timeval now = { 0, 0 };
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);
	evtimer_add(d.ready_timer, &now);
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
	cs_admin_free(d.admin);
	/* The engine first: freeing it answers every request still in flight (SHUTTING_DOWN)
	 * through the server's callbacks, which need the server and its clients alive; the
	 * server is draining (SIGTERM), so nothing they read reaches the engine again. Then
	 * the server writes those answers out and closes the clients. */
	cs_engine_free(d.engine);
	cs_server_free(d.server);
	if (d.base)
		event_base_free(d.base);
	free(admin_listen);
	if (rc == 0)
		cs_info("stopped");
	return rc;
}
