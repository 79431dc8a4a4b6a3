/* shard_drive.c - drives the engine (cachesvc/engine/engine.h) on a sharded config for
 * tests/integration/engine_shards.sh and engine_shards_inval.sh (issue #18, SHARDS.md section
 * 7 steps 3b and 4): the engine alone, with its test hooks (library mode on a sharded config:
 * lib_shards.sh; the daemon: sandbox_shards.sh).
 *
 *   shard_drive [--force-shard0] [--mget] [--lsn SHARD[:X/Y]] [--rounds N] CONFIG QUERY KEY...
 *   shard_drive --health TEXT CONFIG QUERY KEY...
 *   shard_drive --invalidate-after R [...] CONFIG QUERY KEY...
 *
 * Waits (at most 30 s) until the engine is healthy (every shard's servers checked, Redis
 * up, generations loaded), then GETs every KEY (an int parameter) one after the other,
 * `rounds` times (default 2: the miss, then the hit); with --mget the last round is one
 * MGET of every key. Prints one line per answer:
 *   round=R key=K err=E src=cache|replica|primary|- result=BYTES
 * E is the error code (0: none, else enum cs_err), BYTES the result with every byte outside
 * printable ASCII as '.' (the test greps the planted values), or the error message.
 * --lsn SHARD gives every GET a read-your-writes token of LSN 0/1 and shard SHARD ("" for a
 * bare LSN); --lsn SHARD:X/Y a token of that LSN (review 23 R23-3: one shard's WAL position
 * compared with its own shard's only). --force-shard0 is the negative control: every query is
 * pinned to the first shard before the engine sees the config (cs_shard_pick then routes every key
 * there).
 * --invalidate-after R: once round R is answered, an admin INVALIDATE of the whole query
 * (cs_engine_invalidate without parameters), printed as "invalidate err=E n=N", then the
 * next round; --invalidate-key-after R: the same for the first KEY alone (its own shard's
 * entry, review 23 R23-4).
 * --health TEXT sends nothing: it waits (at most 30 s) until the engine's health message
 * (cs_engine_healthy, what /healthz says) holds TEXT ("ok": healthy), prints
 * "health=MESSAGE" and exits 0 (2 when it never did, with the last message).
 * --stdin (step 4, tests/integration/engine_shards_inval.sh): once healthy, prints "ready" and
 * reads commands from standard input, one a line, each answered before the next is read:
 *   get K       one GET of key K, printed as above (round=0)
 *   metrics P   every line of the engine's /metrics text starting with P, then "end"
 *   invalidate [K]  an admin INVALIDATE of key K's entry (its shard's), or of the whole query
 *               (every shard's), printed as "invalidate err=E n=N"
 *   quit        exits 0 (so does the end of the input)
 * --other-plain is section 5's negative control (cs_engine_test_other_shard_plain): a token of
 * another shard than the key's is dropped (a plain read: cache or replica) instead of going
 * to the key's shard's primary. --metrics P: at the end, every line of the engine's /metrics
 * text starting with P.
 * --no-definitions is the negative control of the query definitions recorded in Redis
 * (cs_engine_test_no_definitions; tests/integration/query_definition.sh): a generation is
 * used whatever definition filled it; it works on an unsharded config too.
 * --no-query-map is the negative control of the leader's mapping record (review 36 R36-1,
 * cs_engine_test_no_query_map; tests/integration/query_mapping.sh): a query is used whatever
 * the invalidator's leader maps.
 * --inv-shard0 is step 4's negative control: every shard's invalidator is made again on the
 * first shard's primary (cs_engine_test_inv_on_shard0; each in its own keyspace and slot).
 * --cluster-shard0 is step 3b (2)'s negative control (tests/integration/engine_shards_cluster.sh):
 * on a Redis Cluster, every master's pub/sub connection subscribes the first shard's generations
 * channel alone and the per-master epoch check reads the first shard's copies alone
 * (cs_engine_test_cluster_shard0).
 * --psn-fail N (review 13 L7, tests/integration/cluster_near.sh l7): the first N pub/sub
 * connections to the cluster's masters fail to be made (cs_engine_test_psn_fail).
 * Exit 0 when every request was answered (the script judges the lines), 2 on usage, a config
 * or engine error, or no health in time. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "util.h"

#define MAX_KEYS 64

static struct {
	struct event_base *base;
	cs_engine *e;
	int nkeys;
	int64_t keys[MAX_KEYS];
	int rounds, round, next, pending;
	bool mget;
	const char *query;
	const char *lsn_shard; /* NULL: no token */
	char lsn_name[80];     /* --lsn's shard name */
	uint64_t lsn;          /* --lsn's LSN (1 when not given) */
	bool inval_key;        /* --invalidate-key-after: the first key alone */
	const char *health;    /* --health TEXT */
	int inval_after;       /* --invalidate-after R (0: none) */
	bool cmds;             /* --stdin */
	const char *metrics;   /* --metrics P */
	struct event *in;      /* standard input, while waiting for a command */
	char line[4096];
	size_t line_len;
	struct event *timer;
	int waited_ms;
	int privs[MAX_KEYS];
} d;

static void request_next(void);
static void cmd_next(void);

static void on_answer(void *priv, int err, const char *msg, const cs_meta *meta,
        const uint8_t *result, size_t len)
{
	int i = *(int *)priv;
	static const char *const src[] = {"cache", "replica", "primary"};
	printf("round=%d key=%lld err=%d src=%s result=", d.round, (long long)d.keys[i],
	        err < 0 ? -err : err, err == 0 && meta && meta->src <= 2 ? src[meta->src] : "-");
	if (err != 0) {
		printf("%s\n", msg ? msg : "");
	} else {
		for (size_t j = 0; j < len; j++)
			putchar(result[j] >= 0x20 && result[j] < 0x7f ? result[j] : '.');
		putchar('\n');
	}
	fflush(stdout);
	if (--d.pending == 0)
		d.cmds ? cmd_next() : request_next();
}

static void make_req(cs_get_req *r, int i)
{
	memset(r, 0, sizeof *r);
	r->query = d.query;
	r->query_len = (uint32_t)strlen(d.query);
	r->nparams = 1;
	r->params[0].type = CS_V_INT;
	r->params[0].u.i = d.keys[i];
	r->tier = CS_TIER_DEFAULT;
	if (d.lsn_shard) {
		r->min_lsn = d.lsn;
		r->shard = d.lsn_name[0] ? d.lsn_name : NULL;
		r->shard_len = (uint32_t)strlen(d.lsn_name);
	}
}

/* The next request: the next key of this round, or the next round, or the end. */
static void on_invalidated(void *priv, int err, const char *msg, uint64_t n)
{
	(void)priv;
	printf("invalidate err=%d n=%llu %s\n", err < 0 ? -err : err, (unsigned long long)n,
	        msg ? msg : "");
	fflush(stdout);
	d.inval_after = 0;
	d.cmds ? cmd_next() : request_next();
}

static void request_next(void)
{
	if (d.next == d.nkeys && d.inval_after == d.round) {
		cs_inval_req q = {.query = d.query, .query_len = (uint32_t)strlen(d.query)};
		if (d.inval_key) {
			q.has_params = true;
			q.nparams = 1;
			q.params[0].type = CS_V_INT;
			q.params[0].u.i = d.keys[0];
		}
		cs_engine_invalidate(d.e, &q, on_invalidated, NULL);
		return;
	}
	if (d.next == d.nkeys) {
		d.next = 0;
		if (++d.round > d.rounds) {
			event_base_loopexit(d.base, NULL);
			return;
		}
	}
	if (d.mget && d.round == d.rounds) {
		static cs_get_req reqs[MAX_KEYS];
		void *privs[MAX_KEYS];
		for (int i = 0; i < d.nkeys; i++) {
			make_req(&reqs[i], i);
			privs[i] = &d.privs[i];
		}
		d.next = d.nkeys;
		d.pending = d.nkeys;
		cs_engine_mget(d.e, reqs, (uint32_t)d.nkeys, on_answer, privs);
		return;
	}
	cs_get_req r;
	int i = d.next++;
	make_req(&r, i);
	d.pending = 1;
	cs_engine_get(d.e, CS_OP_GET, &r, on_answer, &d.privs[i]);
}

/* Every line of the engine's /metrics text starting with prefix. */
static void print_metrics(const char *prefix)
{
	char *text = NULL;
	long n = cs_engine_metrics(d.e, &text);
	for (char *p = text, *e; n > 0 && p && *p; p = e + 1) {
		e = strchr(p, '\n');
		if (e == NULL)
			break;
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			printf("%.*s\n", (int)(e - p), p);
	}
	free(text);
	fflush(stdout);
}

/* --stdin: runs the first complete line of d.line, if any, else waits for more input. */
static void cmd_next(void)
{
	char *nl = memchr(d.line, '\n', d.line_len);
	if (nl == NULL) {
		event_add(d.in, NULL);
		return;
	}
	*nl = '\0';
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "%s", d.line);
	size_t used = (size_t)(nl - d.line) + 1;
	memmove(d.line, nl + 1, d.line_len - used);
	d.line_len -= used;
	if (strncmp(cmd, "get ", 4) == 0) {
		d.keys[0] = strtoll(cmd + 4, NULL, 10);
		d.round = 0;
		cs_get_req r;
		make_req(&r, 0);
		d.pending = 1;
		cs_engine_get(d.e, CS_OP_GET, &r, on_answer, &d.privs[0]);
		return;
	}
	if (strcmp(cmd, "invalidate") == 0 || strncmp(cmd, "invalidate ", 11) == 0) {
		cs_inval_req q = {.query = d.query, .query_len = (uint32_t)strlen(d.query)};
		if (cmd[10] == ' ') {
			q.has_params = true;
			q.nparams = 1;
			q.params[0].type = CS_V_INT;
			q.params[0].u.i = strtoll(cmd + 11, NULL, 10);
		}
		cs_engine_invalidate(d.e, &q, on_invalidated, NULL);
		return;
	}
	if (strncmp(cmd, "metrics ", 8) == 0) {
		print_metrics(cmd + 8);
		printf("end\n");
		fflush(stdout);
		cmd_next();
		return;
	}
	if (strcmp(cmd, "quit") != 0) {
		printf("unknown command: %s\n", cmd);
		fflush(stdout);
		cmd_next();
		return;
	}
	d.round = d.rounds + 1; /* done */
	event_base_loopexit(d.base, NULL);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	ssize_t n = read(fd, d.line + d.line_len, sizeof d.line - 1 - d.line_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		event_add(d.in, NULL);
		return;
	}
	if (n <= 0 || d.line_len + (size_t)n >= sizeof d.line - 1) {
		d.round = d.rounds + 1; /* the end of the input (or a line too long): done */
		event_base_loopexit(d.base, NULL);
		return;
	}
	d.line_len += (size_t)n;
	cmd_next();
}

static void on_wait(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	char why[1024];
	bool healthy = cs_engine_healthy(d.e, why, sizeof why);
	if (d.health && (strcmp(d.health, "ok") == 0 ? healthy : strstr(why, d.health) != NULL)) {
		printf("health=%s\n", why);
		d.round = d.rounds + 1; /* done */
		event_base_loopexit(d.base, NULL);
		return;
	}
	if (healthy && !d.health && d.cmds) {
		printf("ready\n");
		fflush(stdout);
		cmd_next();
		return;
	}
	if (healthy && !d.health) {
		d.round = 1;
		request_next();
		return;
	}
	if ((d.waited_ms += 100) >= 30000) {
		fprintf(stderr, "shard_drive: %s in 30 s: %s\n",
		        d.health ? "no such health" : "not healthy", why);
		event_base_loopexit(d.base, NULL);
		d.round = -1;
		return;
	}
	struct timeval tv = {0, 100 * 1000};
	evtimer_add(d.timer, &tv);
}

static int usage(void)
{
	fprintf(stderr, "usage: shard_drive [--force-shard0] [--mget] [--lsn SHARD[:X/Y]] "
	                "[--rounds N] [--health TEXT] [--invalidate-after R] "
	                "[--invalidate-key-after R] [--stdin] [--inv-shard0] [--cluster-shard0] "
	                "[--other-plain] [--no-definitions] [--no-query-map] [--metrics P] [--psn-fail N] "
	                "CONFIG QUERY "
	                "[KEY...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	bool force0 = false, inv0 = false, cl0 = false, other_plain = false, no_defs = false,
	     no_qmap = false;
	d.rounds = 2;
	int a = 1;
	for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
		if (strcmp(argv[a], "--force-shard0") == 0)
			force0 = true;
		else if (strcmp(argv[a], "--stdin") == 0)
			d.cmds = true;
		else if (strcmp(argv[a], "--inv-shard0") == 0)
			inv0 = true;
		else if (strcmp(argv[a], "--cluster-shard0") == 0)
			cl0 = true;
		else if (strcmp(argv[a], "--psn-fail") == 0 && a + 1 < argc)
			cs_engine_test_psn_fail(atoi(argv[++a]));
		else if (strcmp(argv[a], "--other-plain") == 0)
			other_plain = true;
		else if (strcmp(argv[a], "--no-definitions") == 0)
			no_defs = true;
		else if (strcmp(argv[a], "--no-query-map") == 0)
			no_qmap = true;
		else if (strcmp(argv[a], "--metrics") == 0 && a + 1 < argc)
			d.metrics = argv[++a];
		else if (strcmp(argv[a], "--mget") == 0)
			d.mget = true;
		else if (strcmp(argv[a], "--lsn") == 0 && a + 1 < argc)
			d.lsn_shard = argv[++a];
		else if (strcmp(argv[a], "--invalidate-after") == 0 && a + 1 < argc)
			d.inval_after = atoi(argv[++a]);
		else if (strcmp(argv[a], "--invalidate-key-after") == 0 && a + 1 < argc)
			d.inval_after = atoi(argv[++a]), d.inval_key = true;
		else if (strcmp(argv[a], "--health") == 0 && a + 1 < argc)
			d.health = argv[++a];
		else if (strcmp(argv[a], "--rounds") == 0 && a + 1 < argc)
			d.rounds = atoi(argv[++a]);
		else
			return usage();
	}
	if (argc - a < (d.cmds ? 2 : 3) || argc - a - 2 > MAX_KEYS || d.rounds < 1)
		return usage();
	if (d.lsn_shard) { /* SHARD or SHARD:X/Y */
		const char *c = strchr(d.lsn_shard, ':');
		size_t nl = c ? (size_t)(c - d.lsn_shard) : strlen(d.lsn_shard);
		unsigned hi, lo;
		if (nl >= sizeof d.lsn_name ||
		        (c && (sscanf(c + 1, "%X/%X", &hi, &lo) != 2 || (hi == 0 && lo == 0))))
			return usage();
		memcpy(d.lsn_name, d.lsn_shard, nl);
		d.lsn = c ? (uint64_t)hi << 32 | lo : 1;
	}
	char err[CS_CONFIG_ERRLEN];
	cs_config *cfg = cs_config_load(argv[a], err);
	if (cfg == NULL) {
		fprintf(stderr, "shard_drive: %s\n", err);
		return 2;
	}
	d.query = argv[a + 1];
	for (int i = a + 2; i < argc; i++) {
		d.privs[d.nkeys] = d.nkeys;
		d.keys[d.nkeys++] = strtoll(argv[i], NULL, 10);
	}
	if (force0) /* the negative control: every key to the first shard */
		for (int i = 0; i < cfg->nqueries; i++)
			cfg->queries[i].shard_index = 0;
	cs_log_set_level(CS_LOG_WARNING);
	d.base = event_base_new();
	d.e = cs_engine_new(d.base, cfg, err, sizeof err);
	if (d.e == NULL) {
		fprintf(stderr, "shard_drive: %s\n", err);
		return 2;
	}
	if (inv0 && cs_engine_test_inv_on_shard0(d.e, err, sizeof err) != 0) {
		fprintf(stderr, "shard_drive: %s\n", err);
		return 2;
	}
	if (cl0 && cs_engine_test_cluster_shard0(d.e) != 0) {
		fprintf(stderr, "shard_drive: --cluster-shard0: not on a cluster, or no pub/sub\n");
		return 2;
	}
	if (no_qmap)
		cs_engine_test_no_query_map(d.e);
	if (no_defs)
		cs_engine_test_no_definitions(d.e);
	if (other_plain)
		cs_engine_test_other_shard_plain(d.e);
	if (d.cmds) {
		(void)fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
		d.in = event_new(d.base, 0, EV_READ, on_stdin, NULL);
	}
	d.timer = evtimer_new(d.base, on_wait, NULL);
	struct timeval tv = {0, 100 * 1000};
	evtimer_add(d.timer, &tv);
	event_base_dispatch(d.base);
	bool done = d.round > d.rounds;
	if (done && d.metrics)
		print_metrics(d.metrics);
	event_free(d.timer);
	if (d.in)
		event_free(d.in);
	cs_engine_free(d.e);
	event_base_free(d.base);
	return done ? 0 : 2;
}
