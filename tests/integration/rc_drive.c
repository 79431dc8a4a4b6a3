/* rc_drive.c - drives cs_rc (cachesvc/base/rcluster.h) on a libevent loop against a real Redis
 * Cluster (or, with --url and no --seeds, one plain Redis), for tests/integration/
 * redis_cluster_route.sh. Prints one line of key=value counters at the end.
 *
 *   rc_drive [--seeds H:P,...] [--url URL] [--timeout MS] [--redirects N] [--refresh MS]
 *            [--keys N] [--prefix P] [--tag T] [--conc N] [--duration S] [--think MS] [--script]
 *            [--until-file F] MODE
 *
 * Keys are "{T}P<i>" with --tag (all in one slot), else "P<i>", for i < keys.
 * MODE fill:    SET every key to "v:<key>" (conc in flight); every reply must be OK.
 *      check:   GET every key, expect "v:<key>".
 *      load:    for S seconds, conc workers each loop over their own keys: SET key to a new
 *               value, then GET it back and compare (a failed command is counted and the
 *               worker pauses 5 ms); at the end every key is read once more and must hold
 *               its last acknowledged value (or the value of a SET that failed after it).
 *      getload: for S seconds, GET keys round robin, expect "v:<key>" (after fill); records
 *               the slowest failure and how long before the end the last failure was.
 * --metrics F writes the client's Prometheus samples (cs_rc_metrics) to F at the end, --slots F
 * its slot map as "first last node ready" lines (cs_rc_slot_ranges).
 * --until-file F ends load and getload once F exists (--duration S is then the upper bound).
 * --script sends every SET and GET as EVALSHA of a one-line Lua script (cs_rc_script).
 * --think MS paces load and getload (a worker waits MS between keys; getload refills its
 * conc commands every MS) so the drivers leave the CPU to the servers and the scripts.
 * Exit 0 when the run completed (the script judges the counters), 2 on usage or when the
 * client is not ready within 15 s. */
#include <event2/event.h>
#include <inttypes.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "rcluster.h"
#include "util.h"

enum mode { M_FILL, M_CHECK, M_LOAD, M_GETLOAD };

typedef struct key_state {
	long acked; /* seq of the last acknowledged SET (-1: the fill's value) */
	long maybe; /* seq of a SET that failed after it (may or may not have applied), -2 none */
} key_state;

typedef struct worker {
	int id;
	int next; /* next key index of this worker */
	int key;  /* key in flight */
	long seq; /* value in flight */
	bool get; /* the command in flight is the GET of load */
	uint64_t sent_us;
	struct event *pause;
} worker;

static struct {
	struct event_base *base;
	cs_rc *rc;
	enum mode mode;
	int nkeys;
	const char *prefix;
	const char *tag;
	int conc;
	int duration_s;
	int think_ms; /* load, getload: pause of a worker between its keys */
	bool script;  /* SET and GET through Lua scripts (EVALSHA) */
	const char *until_file; /* load, getload: stop once this file exists */
	int64_t timeout_ms;
	bool stop;
	bool verifying;
	int inflight;
	int cursor; /* fill/check/getload: next key */
	int done;   /* fill/check: keys answered */
	long seq;
	key_state *ks;
	worker *w;
	uint64_t start_us, end_us;
	/* counters */
	uint64_t ok, err, nil_err, wrong, refused, final_bad, final_checked;
	uint64_t resent; /* replies whose command cs_rc sent more than once (cs_rc_resent) */
	uint64_t max_ms, max_fail_ms, last_err_us;
} g;

static int key_name(int i, char *buf, size_t len)
{
	if (g.tag)
		return snprintf(buf, len, "{%s}%s%d", g.tag, g.prefix, i);
	return snprintf(buf, len, "%s%d", g.prefix, i);
}

static void value_of(int i, long seq, char *buf, size_t len)
{
	char k[128];
	key_name(i, k, sizeof k);
	if (seq < 0)
		snprintf(buf, len, "v:%s", k);
	else
		snprintf(buf, len, "v:%s:%ld", k, seq);
}

static void finish_if_idle(void);
static void worker_next(worker *w);

static void note(uint64_t sent_us, bool failed)
{
	uint64_t ms = (cs_now_us() - sent_us) / 1000;
	if (ms > g.max_ms)
		g.max_ms = ms;
	if (failed) {
		if (ms > g.max_fail_ms)
			g.max_fail_ms = ms;
		g.last_err_us = cs_now_us();
	}
}

static bool reply_is(const redisReply *r, const char *want)
{
	return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
	       r->len == strlen(want) && memcmp(r->str, want, r->len) == 0;
}

static void count_fail(const redisReply *r)
{
	if (r == NULL) {
		g.nil_err++;
		g.err++;
	} else if (r->type == REDIS_REPLY_ERROR) {
		g.err++;
		static int shown;
		if (shown++ < 5)
			fprintf(stderr, "rc_drive: error reply: %s\n", r->str);
	} else {
		g.wrong++;
	}
}

static int send_cmd(int i, const char *cmd, const char *val, cs_rc_cb *cb, void *priv)
{
	char k[128];
	int kl = key_name(i, k, sizeof k);
	const char *argv[3] = {cmd, k, val};
	size_t lens[3] = {strlen(cmd), (size_t)kl, val ? strlen(val) : 0};
	uint16_t slot = cs_rc_keyslot(k, (size_t)kl);
	if (g.script) /* EVALSHA of SCRIPTS[0] (SET) or [1] (GET): 1 key, the value as ARGV[1] */
		return cs_rc_script(g.rc, slot, val ? 0 : 1, cb, priv, 1, val ? 2 : 1, argv + 1,
		        lens + 1);
	return cs_rc_cmd(g.rc, slot, cb, priv, val ? 3 : 2, argv, lens);
}

/* ---- fill / check / getload: conc commands in flight over the key list ---- */

typedef struct op {
	int key;
	uint64_t sent_us;
} op;

static void issue_more(void);
static struct event *issue_timer;

static void on_simple(cs_rc *rc, redisReply *r, void *priv)
{
	g.resent += cs_rc_resent(rc);
	op *o = priv;
	g.inflight--;
	char want[160];
	value_of(o->key, -1, want, sizeof want);
	bool good = g.mode == M_FILL ? reply_is(r, "OK") : reply_is(r, want);
	note(o->sent_us, r == NULL || r->type == REDIS_REPLY_ERROR);
	if (good)
		g.ok++;
	else
		count_fail(r);
	free(o);
	g.done++;
	if (g.think_ms > 0 && g.mode == M_GETLOAD) {
		/* paced: the next command when the timer fires */
		if (!evtimer_pending(issue_timer, NULL)) {
			struct timeval tv = cs_tv_ms(g.think_ms);
			evtimer_add(issue_timer, &tv);
		}
		finish_if_idle();
		return;
	}
	issue_more();
}

static void on_retry_issue(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	issue_more();
}

static void issue_more(void)
{
	while (!g.stop && g.inflight < g.conc) {
		if (g.mode != M_GETLOAD && g.cursor >= g.nkeys)
			break;
		int i = g.cursor++ % g.nkeys;
		op *o = malloc(sizeof *o);
		o->key = i;
		o->sent_us = cs_now_us();
		char val[160];
		value_of(i, -1, val, sizeof val);
		int rv = g.mode == M_FILL ? send_cmd(i, "SET", val, on_simple, o)
		                          : send_cmd(i, "GET", NULL, on_simple, o);
		if (rv != 0) {
			free(o);
			g.refused++;
			g.last_err_us = cs_now_us();
			if (g.mode != M_GETLOAD)
				g.done++;
			/* refused at once: pause a little, never spin */
			struct timeval tv = cs_tv_ms(5);
			evtimer_add(issue_timer, &tv);
			break;
		}
		g.inflight++;
	}
	if (g.mode != M_GETLOAD && g.done >= g.nkeys)
		g.stop = true;
	finish_if_idle();
}

/* ---- load: per-key SET then GET ---- */

static void on_load(cs_rc *rc, redisReply *r, void *priv);

static void worker_pause(worker *w)
{
	struct timeval tv = cs_tv_ms(5);
	evtimer_add(w->pause, &tv);
}

static void on_pause(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_next(arg);
}

static void worker_next(worker *w)
{
	if (g.stop) {
		finish_if_idle();
		return;
	}
	w->key = w->next;
	w->next += g.conc;
	if (w->next >= g.nkeys)
		w->next = w->id;
	w->seq = ++g.seq;
	w->get = false;
	char val[160];
	value_of(w->key, w->seq, val, sizeof val);
	w->sent_us = cs_now_us();
	if (send_cmd(w->key, "SET", val, on_load, w) != 0) {
		g.refused++;
		g.last_err_us = cs_now_us();
		worker_pause(w);
		return;
	}
	g.inflight++;
}

static void on_load(cs_rc *rc, redisReply *r, void *priv)
{
	g.resent += cs_rc_resent(rc);
	worker *w = priv;
	g.inflight--;
	key_state *k = &g.ks[w->key];
	bool failed = r == NULL || r->type == REDIS_REPLY_ERROR;
	note(w->sent_us, failed);
	if (!w->get) {
		if (reply_is(r, "OK")) {
			g.ok++;
			k->acked = w->seq;
			k->maybe = -2;
			w->get = true;
			w->sent_us = cs_now_us();
			if (send_cmd(w->key, "GET", NULL, on_load, w) == 0) {
				g.inflight++;
				return;
			}
			g.refused++;
			g.last_err_us = cs_now_us();
			worker_pause(w);
			return;
		}
		k->maybe = w->seq;
		count_fail(r);
		worker_pause(w);
		return;
	}
	char want[160];
	value_of(w->key, k->acked, want, sizeof want);
	if (reply_is(r, want)) {
		g.ok++;
		if (g.think_ms > 0) {
			struct timeval tv = cs_tv_ms(g.think_ms);
			evtimer_add(w->pause, &tv);
		} else {
			worker_next(w);
		}
		return;
	}
	count_fail(r);
	if (!failed) {
		static int shown;
		if (shown++ < 5)
			fprintf(stderr, "rc_drive: key %d: want %s got %.*s\n", w->key, want,
			        r->str ? (int)r->len : 4, r->str ? r->str : "nil");
	}
	worker_pause(w);
}

/* ---- the final pass of load: every key holds its last acknowledged value ---- */

static void verify_more(void);

static void on_verify(cs_rc *rc, redisReply *r, void *priv)
{
	g.resent += cs_rc_resent(rc);
	op *o = priv;
	g.inflight--;
	key_state *k = &g.ks[o->key];
	char a[160], b[160];
	value_of(o->key, k->acked, a, sizeof a);
	value_of(o->key, k->maybe, b, sizeof b);
	if (reply_is(r, a) || (k->maybe != -2 && reply_is(r, b))) {
		g.final_checked++;
	} else if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		/* a transient failure: read it again */
		o->sent_us = cs_now_us();
		if (send_cmd(o->key, "GET", NULL, on_verify, o) == 0) {
			g.inflight++;
			return;
		}
		g.final_bad++;
	} else {
		g.final_bad++;
		fprintf(stderr, "rc_drive: final: key %d: want %s got %.*s\n", o->key, a,
		        r->str ? (int)r->len : 4, r->str ? r->str : "nil");
	}
	free(o);
	verify_more();
}

static void verify_more(void)
{
	while (g.inflight < g.conc && g.cursor < g.nkeys) {
		int i = g.cursor++;
		op *o = malloc(sizeof *o);
		o->key = i;
		o->sent_us = cs_now_us();
		if (send_cmd(i, "GET", NULL, on_verify, o) != 0) {
			free(o);
			g.cursor--;
			struct timeval tv = cs_tv_ms(20);
			evtimer_add(issue_timer, &tv);
			return;
		}
		g.inflight++;
	}
	if (g.cursor >= g.nkeys && g.inflight == 0)
		event_base_loopbreak(g.base);
}

static void on_verify_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (g.end_us + 15000000u < cs_now_us()) {
		g.final_bad += (uint64_t)(g.nkeys - g.cursor);
		event_base_loopbreak(g.base);
		return;
	}
	verify_more();
}

static void finish_if_idle(void)
{
	if (!g.stop || g.inflight != 0 || g.verifying)
		return;
	if (g.end_us == 0)
		g.end_us = cs_now_us();
	if (g.mode == M_LOAD) {
		g.verifying = true;
		g.cursor = 0;
		event_free(issue_timer);
		issue_timer = evtimer_new(g.base, on_verify_timer, NULL);
		verify_more();
		return;
	}
	event_base_loopbreak(g.base);
}

static void on_duration(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	g.stop = true;
	g.end_us = cs_now_us();
	if (g.mode == M_LOAD)
		for (int i = 0; i < g.conc; i++)
			if (evtimer_pending(g.w[i].pause, NULL))
				evtimer_del(g.w[i].pause);
	/* workers paused or idle: nothing in flight may be left */
	finish_if_idle();
}

static void on_until_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	if (!g.stop && access(g.until_file, F_OK) == 0) {
		event_del(arg);
		on_duration(-1, 0, NULL);
	}
}

static void on_ready_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(g.base);
}

static int print_range(void *priv, int first, int last, const char *node, bool ready)
{
	fprintf(priv, "%d %d %s %d\n", first, last, node ? node : "-", ready);
	return 0;
}

/* --metrics F, --slots F: what an operator would see of this client at the end */
static int write_views(const char *metrics_path, const char *slots_path)
{
	if (metrics_path) {
		cs_metrics *m = cs_metrics_new();
		char *text = NULL;
		if (m == NULL)
			return -1;
		cs_rc_metrics(g.rc, m, "drive");
		long n = cs_metrics_finish(m, &text);
		FILE *f = n >= 0 ? fopen(metrics_path, "w") : NULL;
		if (f == NULL || fwrite(text, 1, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
			free(text);
			return -1;
		}
		free(text);
	}
	if (slots_path) {
		FILE *f = fopen(slots_path, "w");
		if (f == NULL)
			return -1;
		cs_rc_slot_ranges(g.rc, print_range, f);
		if (fclose(f) != 0)
			return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: rc_drive [--seeds H:P,...] [--url URL] [--timeout MS] [--redirects N]"
	        " [--refresh MS] [--keys N] [--prefix P] [--tag T] [--conc N] [--duration S] "
	        "[--think MS] [--script] [--until-file F] [--metrics F] [--slots F]"
	        " fill|check|load|getload\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *seeds_arg = NULL, *url = NULL, *mode = NULL, *metrics_path = NULL,
		   *slots_path = NULL;
	int redirects = 5;
	int64_t refresh = 1000;
	g.timeout_ms = 1000;
	g.nkeys = 2000;
	g.prefix = "k";
	g.conc = 32;
	g.duration_s = 10;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--seeds") == 0 && v)
			seeds_arg = v, i++;
		else if (strcmp(a, "--url") == 0 && v)
			url = v, i++;
		else if (strcmp(a, "--timeout") == 0 && v)
			g.timeout_ms = atoll(v), i++;
		else if (strcmp(a, "--redirects") == 0 && v)
			redirects = atoi(v), i++;
		else if (strcmp(a, "--refresh") == 0 && v)
			refresh = atoll(v), i++;
		else if (strcmp(a, "--keys") == 0 && v)
			g.nkeys = atoi(v), i++;
		else if (strcmp(a, "--prefix") == 0 && v)
			g.prefix = v, i++;
		else if (strcmp(a, "--tag") == 0 && v)
			g.tag = v, i++;
		else if (strcmp(a, "--conc") == 0 && v)
			g.conc = atoi(v), i++;
		else if (strcmp(a, "--duration") == 0 && v)
			g.duration_s = atoi(v), i++;
		else if (strcmp(a, "--think") == 0 && v)
			g.think_ms = atoi(v), i++;
		else if (strcmp(a, "--script") == 0)
			g.script = true;
		else if (strcmp(a, "--metrics") == 0 && v)
			metrics_path = v, i++;
		else if (strcmp(a, "--slots") == 0 && v)
			slots_path = v, i++;
		else if (strcmp(a, "--until-file") == 0 && v)
			g.until_file = v, i++;
		else if (a[0] != '-' && mode == NULL)
			mode = a;
		else
			usage();
	}
	if (mode == NULL || g.nkeys <= 0 || g.conc <= 0 || (url == NULL && seeds_arg == NULL))
		usage();
	if (strcmp(mode, "fill") == 0)
		g.mode = M_FILL;
	else if (strcmp(mode, "check") == 0)
		g.mode = M_CHECK;
	else if (strcmp(mode, "load") == 0)
		g.mode = M_LOAD;
	else if (strcmp(mode, "getload") == 0)
		g.mode = M_GETLOAD;
	else
		usage();
	if (g.conc > g.nkeys)
		g.conc = g.nkeys;

	g.base = event_base_new();
	char *seedbuf = seeds_arg ? strdup(seeds_arg) : NULL;
	char *seeds[64];
	int nseeds = seedbuf ? cs_split_list(seedbuf, seeds, 64) : 0;
	char err[256];
	static const char *const scripts[] = {"return redis.call('SET', KEYS[1], ARGV[1])",
	        "return redis.call('GET', KEYS[1])"};
	cs_rc_opts o = {
	        .node = {.name = "drive",
	                .url = url ? url : "redis://127.0.0.1:6379/0",
	                .timeout_ms = g.timeout_ms,
	                .max_pending = 4096,
	                .scripts = scripts,
	                .nscripts = 2},
	        .seeds = (const char *const *)seeds,
	        .nseeds = nseeds,
	        .cluster = seeds_arg != NULL,
	        .refresh_ms = refresh,
	        .max_redirects = redirects,
	};
	g.rc = cs_rc_new(g.base, &o, err, sizeof err);
	if (g.rc == NULL) {
		fprintf(stderr, "rc_drive: %s\n", err);
		return 2;
	}
	/* wait (15 s at most) for a full map and every master */
	uint64_t until = cs_now_us() + 15000000u;
	struct event *poll = evtimer_new(g.base, on_ready_poll, NULL);
	while (!cs_rc_ready(g.rc)) {
		if (cs_now_us() > until) {
			fprintf(stderr,
			        "rc_drive: not ready after 15 s (%" PRIu64 " slots covered)\n",
			        cs_rc_get_stats(g.rc)->slots_covered);
			return 2;
		}
		struct timeval tv = cs_tv_ms(10);
		evtimer_add(poll, &tv);
		event_base_dispatch(g.base);
	}
	event_free(poll);

	g.ks = calloc((size_t)g.nkeys, sizeof *g.ks);
	for (int i = 0; i < g.nkeys; i++) {
		g.ks[i].acked = -1;
		g.ks[i].maybe = -2;
	}
	issue_timer = evtimer_new(g.base, on_retry_issue, NULL);
	struct event *dur = evtimer_new(g.base, on_duration, NULL);
	g.start_us = cs_now_us();
	struct event *until_ev = NULL;
	if (g.mode == M_LOAD || g.mode == M_GETLOAD) {
		struct timeval tv = cs_tv_ms((int64_t)g.duration_s * 1000);
		evtimer_add(dur, &tv);
		if (g.until_file) {
			until_ev = event_new(g.base, -1, EV_PERSIST, on_until_poll, event_self_cbarg());
			struct timeval p = cs_tv_ms(50);
			event_add(until_ev, &p);
		}
	}
	if (g.mode == M_LOAD) {
		g.w = calloc((size_t)g.conc, sizeof *g.w);
		for (int i = 0; i < g.conc; i++) {
			g.w[i].id = i;
			g.w[i].next = i;
			g.w[i].pause = evtimer_new(g.base, on_pause, &g.w[i]);
		}
		for (int i = 0; i < g.conc; i++)
			worker_next(&g.w[i]);
	} else {
		issue_more();
	}
	event_base_dispatch(g.base);
	if (g.end_us == 0)
		g.end_us = cs_now_us();

	uint64_t moved = 0, ask = 0, tryagain = 0, nerr = 0;
	for (int i = 0; i < cs_rc_nnodes(g.rc); i++) {
		cs_rc_node_stats st;
		cs_rc_get_node_stats(g.rc, i, &st);
		moved += st.moved;
		ask += st.ask;
		tryagain += st.tryagain;
		nerr += st.errors;
	}
	for (int i = 0; i < cs_rc_nnodes(g.rc); i++) {
		cs_rc_node_stats st;
		cs_rc_get_node_stats(g.rc, i, &st);
		fprintf(stderr,
		        "rc_drive: node %s: connects=%" PRIu64 " errors=%" PRIu64 " moved=%" PRIu64
		        " ask=%" PRIu64 " tryagain=%" PRIu64 " refreshes=%" PRIu64 "\n",
		        cs_rc_node_addr(g.rc, i), st.connects, st.errors, st.moved, st.ask,
		        st.tryagain, st.refreshes);
	}
	if (g.tag) {
		int n = cs_rc_slot_node(g.rc, cs_rc_keyslot(g.tag, strlen(g.tag)));
		fprintf(stderr, "rc_drive: slot of {%s} served by %s\n", g.tag,
		        n >= 0 ? cs_rc_node_addr(g.rc, n) : "none");
	}
	if (write_views(metrics_path, slots_path) != 0) {
		fprintf(stderr, "rc_drive: cannot write --metrics or --slots\n");
		return 2;
	}
	const cs_rc_stats *rs = cs_rc_get_stats(g.rc);
	printf("ok=%" PRIu64 " err=%" PRIu64 " nil=%" PRIu64 " wrong=%" PRIu64 " refused=%" PRIu64
	       " final_bad=%" PRIu64 " final_checked=%" PRIu64 " moved=%" PRIu64 " ask=%" PRIu64
	       " tryagain=%" PRIu64 " node_errors=%" PRIu64 " refreshes=%" PRIu64
	       " redirects_exhausted=%" PRIu64 " nodes=%d max_ms=%" PRIu64 " max_fail_ms=%" PRIu64
	       " last_err_ago_ms=%" PRIu64 " secs=%.1f resent=%" PRIu64 "\n",
	        g.ok, g.err, g.nil_err, g.wrong, g.refused, g.final_bad, g.final_checked, moved,
	        ask, tryagain, nerr, rs->refreshes, rs->redirects_exhausted, cs_rc_nnodes(g.rc),
	        g.max_ms, g.max_fail_ms,
	        g.last_err_us ? (g.end_us > g.last_err_us ? (g.end_us - g.last_err_us) / 1000 : 0)
	                      : 999999,
	        (double)(g.end_us - g.start_us) / 1e6, g.resent);
	cs_rc_free(g.rc);
	if (issue_timer)
		event_free(issue_timer);
	event_free(dur);
	if (until_ev)
		event_free(until_ev);
	if (g.w)
		for (int i = 0; i < g.conc; i++)
			event_free(g.w[i].pause);
	free(g.w);
	free(g.ks);
	free(seedbuf);
	event_base_free(g.base);
	return 0;
}
