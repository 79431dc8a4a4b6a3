/* inv_drive.c - runs the invalidator alone (cachesvc/invalidator) against a Redis Cluster, for
 * tests/integration/inval_cluster.sh: cluster mode has no INI key yet (CLUSTER.md build order:
 * the read path comes first), so this driver is the only way to turn it on.
 *
 *   inv_drive run CONFIG SEEDS STATSFILE [--no-c1] [--no-hold] [--no-c2] [--no-v1]
 *                 [--pos-every] [--no-pos-min] [--no-pos-backoff] [--single]
 *                 [--cmd-limit N] [--no-v9b] [--open-hold-ms N] [--open-hold-fixed]
 *                 [--oldest-only] [--no-v9c] [--unpaced] [--tick-polled] [--stats-ms N]
 *       Loads CONFIG (its [redis] url's database gives the namespace), runs the invalidator
 *       on the cluster whose seed nodes are SEEDS ("host:port,..."), and rewrites STATSFILE
 *       every 100 ms with one line of key=value counters (state, confirmed, horizon,
 *       data_loss, gap_flushes, redis_failures, keys, reconnects, cmds_max, pauses). --no-c1
 *       turns off the routed DEL after each INVAL (CLUSTER.md C1): a negative control. Ends on
 *       SIGTERM or SIGINT (exit 0). --no-hold: commits are not held for their per-bucket INVALs (I4
 *       across nodes off: a negative control). --no-c2: a bucket found kept keeps its
 *       horizon and fmax (CLUSTER.md C2 off: a negative control). --no-v1: the SYNC's
 *       stamp does not re-check what its probe saw (review V1 off: a negative control).
 *       --pos-every: the position goes to all 256 buckets on every advance (before review
 *       V5); --no-pos-min: the position reported to PostgreSQL as flushed follows bucket 0's
 *       copy alone, not the lowest copy acknowledged in every bucket (negative controls).
 *       --no-pos-backoff: a failed position write is retried on every 10 ms tick (review
 *       W3 off: a negative control). --single: SEEDS is one Redis ("host:port"), run in
 *       single-Redis mode (the daemon's mode, for the tests of what both modes share).
 *       --cmd-limit N: reading the stream stops at N Redis commands in flight or owed
 *       (review V3; default 65536); 0: no such bound (a negative control).
 *       --no-v9b: slot migrations are not watched (review V9b off: a negative control).
 *       --open-hold-ms N: the base of the watch's hold bound (R18-5; default max(60 s,
 *       4 x cluster-node-timeout, 10 intervals)); doubled after each hold until a round
 *       completes (R22-3). --open-hold-fixed: not doubled (R22-3 off: a negative control).
 *       --open-hold-nocarry: a stream restart restarts the hold's clock (review 26 R26-2
 *       off: a negative control). --loss-record-nowait: a loss restarts the stream without
 *       waiting for its record in bucket 0 (review 51 R51-1 off: a negative control).
 *       --record-hold-ms N: the longest the stream is kept for that record (default 5 s).
 *       --oldest-only: a command failing for its own slot (TRYAGAIN, non local key...)
 *       stops its node's whole retry queue, probed by its oldest command (review G2 off: a
 *       negative control). --no-v9c: a script refused "non local key" restarts the stream
 *       instead of waiting in its node's retry queue (review V9c off: a negative control).
 *       --unpaced: a node that takes commands again is sent its whole retry queue at once
 *       (the paced drain off: a negative control). --tick-polled: the invalidator's tick
 *       runs every 10 ms whatever there is to watch (issue 16's deadline-armed tick off: a
 *       negative control of idle_wakeups.sh). --no-cluster-deadlines: the tick is not armed
 *       for the cluster's own deadlines (position copies' backoffs, retry queues, watch of
 *       open slots): only the status interval drives that work (a negative control of
 *       cluster_deadlines.sh, review 43 R43-1). --stats-ms N: STATSFILE every N ms (default
 *       100).
 *   inv_drive bucket QUERY CANON
 *       Prints the bucket of a key (CLUSTER.md section 2).
 *   inv_drive slots NS
 *       Prints "<bucket> <hash slot>" for the 256 buckets of namespace NS.
 * Exit 2 on usage or setup errors. */
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "invalidator.h"
#include "keyspace.h"
#include "log.h"
#include "rcluster.h"

static struct {
	struct event_base *base;
	cs_inv *inv;
	const char *stats;
} g;

static void usage(void)
{
	fprintf(stderr,
	        "usage: inv_drive run CONFIG SEEDS STATSFILE [--no-c1] [--no-hold] [--no-c2]\n"
	        "                 [--no-v1] [--pos-every] [--no-pos-min] [--no-pos-backoff]\n"
	        "                 [--single] [--cmd-limit N] [--retry-max N] [--no-v9b]\n"
	        "                 [--open-hold-ms MS] [--open-hold-fixed] [--open-hold-nocarry]\n"
	        "                 [--loss-record-nowait] [--record-hold-ms MS]\n"
	        "                 [--oldest-only] [--no-v9c] [--unpaced] [--tick-polled]\n"
	        "                 [--stats-ms N] [--no-g5] [--no-cluster-deadlines]\n"
	        "       inv_drive bucket QUERY CANON\n"
	        "       inv_drive slots NS\n");
	exit(2);
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
	const cs_inv_stats *s = cs_inv_get_stats(g.inv);
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s.tmp", g.stats);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	fprintf(f,
	        "state=%d confirmed=%" PRIu64 " horizon=%" PRIu64 " data_loss=%" PRIu64
	        " gap_flushes=%" PRIu64 " redis_failures=%" PRIu64 " keys=%" PRIu64
	        " reconnects=%" PRIu64 " cmds_max=%" PRIu64 " pauses=%" PRIu64 " rq_queued=%" PRIu64
	        " rq_retries=%" PRIu64 " rq_overflows=%" PRIu64 " rq_depth=%" PRIu64
	        " open_losses=%" PRIu64 " open_marks=%" PRIu64 " open_marked=%" PRIu64
	        " open_incomplete=%" PRIu64 " open_holds=%" PRIu64 " open_rounds=%" PRIu64
	        " open_hold_ms=%" PRIu64 " rq_slot_holds=%" PRIu64 " rq_out_max=%" PRIu64
	        " rq_rid_checks=%" PRIu64 " open_record_retries=%" PRIu64
	        " open_record_fallbacks=%" PRIu64 "\n",
	        (int)s->state, (uint64_t)s->confirmed, (uint64_t)s->horizon, s->redis_data_loss,
	        s->gap_flushes, s->redis_failures, s->keys, s->reconnects, s->cmds_max, s->pauses,
	        s->rq_queued, s->rq_retries, s->rq_overflows, s->rq_depth, s->open_losses,
	        s->open_marks, s->open_marked, s->open_incomplete, s->open_holds, s->open_rounds,
	        s->open_hold_ms, s->rq_slot_holds, s->rq_out_max, s->rq_rid_checks,
	        s->open_record_retries, s->open_record_fallbacks);
	fclose(f);
	rename(tmp, g.stats);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(g.base);
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "bucket") == 0) { /* bucket QUERY ID...: one line each */
		cs_keyspace ks;
		if (cs_ks_init_cluster(&ks, "x") != 0)
			return 2;
		for (int i = 3; i < argc; i++)
			printf("%" PRIu32 "\n",
			        cs_ks_bucket(&ks, argv[2], argv[i], strlen(argv[i])));
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "slots") == 0) {
		cs_keyspace ks;
		if (cs_ks_init_cluster(&ks, argv[2]) != 0)
			return 2;
		for (uint32_t b = 0; b < CS_KS_BUCKETS; b++) {
			char pre[CS_KS_PREFIX_MAX + 1];
			size_t n = cs_ks_prefix(&ks, b, pre, sizeof pre);
			printf("%" PRIu32 " %u\n", b, (unsigned)cs_rc_keyslot(pre, n));
		}
		return 0;
	}
	if (argc < 5 || strcmp(argv[1], "run") != 0)
		usage();
	bool c1 = true, hold = true, c2 = true, v1 = true, pos_every = false, pos_min = true;
	bool pos_backoff = true, single = false, v9b = true, hold_fixed = false,
	     hold_nocarry = false, rec_nowait = false;
	bool per_slot = true, v9c = true, paced = true, tick_polled = false, rid_check = true;
	bool c_deadlines = true;
	long long cmd_limit = -1, retry_max = -1, open_hold_ms = 0, stats_ms = 100,
	          rec_hold_ms = 0;
	for (int i = 5; i < argc; i++) {
		if (strcmp(argv[i], "--no-c1") == 0)
			c1 = false;
		else if (strcmp(argv[i], "--no-hold") == 0)
			hold = false;
		else if (strcmp(argv[i], "--no-c2") == 0)
			c2 = false;
		else if (strcmp(argv[i], "--no-v1") == 0)
			v1 = false;
		else if (strcmp(argv[i], "--pos-every") == 0)
			pos_every = true;
		else if (strcmp(argv[i], "--no-pos-min") == 0)
			pos_min = false;
		else if (strcmp(argv[i], "--no-pos-backoff") == 0)
			pos_backoff = false;
		else if (strcmp(argv[i], "--open-hold-fixed") == 0)
			hold_fixed = true;
		else if (strcmp(argv[i], "--open-hold-nocarry") == 0)
			hold_nocarry = true;
		else if (strcmp(argv[i], "--loss-record-nowait") == 0)
			rec_nowait = true;
		else if (strcmp(argv[i], "--no-v9b") == 0)
			v9b = false;
		else if (strcmp(argv[i], "--oldest-only") == 0)
			per_slot = false;
		else if (strcmp(argv[i], "--no-v9c") == 0)
			v9c = false;
		else if (strcmp(argv[i], "--unpaced") == 0)
			paced = false;
		else if (strcmp(argv[i], "--no-g5") == 0)
			rid_check = false;
		else if (strcmp(argv[i], "--single") == 0)
			single = true;
		else if (strcmp(argv[i], "--tick-polled") == 0)
			tick_polled = true;
		else if (strcmp(argv[i], "--no-cluster-deadlines") == 0)
			c_deadlines = false;
		else if (strcmp(argv[i], "--stats-ms") == 0 && i + 1 < argc)
			stats_ms = strtoll(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--cmd-limit") == 0 && i + 1 < argc)
			cmd_limit = strtoll(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--open-hold-ms") == 0 && i + 1 < argc)
			open_hold_ms = strtoll(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--record-hold-ms") == 0 && i + 1 < argc)
			rec_hold_ms = strtoll(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--retry-max") == 0 && i + 1 < argc)
			retry_max = strtoll(argv[++i], NULL, 10); /* 0: no retry queue (V2) */
		else
			usage();
	}
	char err[CS_CONFIG_ERRLEN];
	cs_config *cfg = cs_config_load(argv[2], err);
	if (cfg == NULL) {
		fprintf(stderr, "inv_drive: %s\n", err);
		return 2;
	}
	/* the namespace of the configured database; the cluster has database 0 only */
	char ns[CS_NS_MAX + 1], url[512];
	cs_config_namespace(cfg, ns);
	free(cfg->redis_namespace);
	cfg->redis_namespace = strdup(ns);
	snprintf(url, sizeof url, "redis://%.*s/0", (int)strcspn(argv[3], ","), argv[3]);
	free(cfg->redis_url);
	cfg->redis_url = strdup(url);
	cfg->redis_cluster = !single;
	cfg->redis_nodes = single ? NULL : strdup(argv[3]);
	g.stats = argv[4];
	signal(SIGPIPE, SIG_IGN);
	g.base = event_base_new();
	g.inv = cs_inv_new(g.base, cfg, NULL, NULL, err, sizeof err);
	if (g.inv == NULL) {
		fprintf(stderr, "inv_drive: %s\n", err);
		return 2;
	}
	cs_inv_set_cluster_c1(g.inv, c1);
	cs_inv_set_cluster_hold(g.inv, hold);
	cs_inv_set_cluster_c2(g.inv, c2);
	cs_inv_set_cluster_v1(g.inv, v1);
	cs_inv_set_cluster_pos(g.inv, pos_every, pos_min);
	cs_inv_set_pos_backoff(g.inv, pos_backoff);
	cs_inv_set_cluster_v9b(g.inv, v9b);
	cs_inv_set_open_hold_ms(g.inv, (int)(open_hold_ms < 3600000 ? open_hold_ms : 3600000));
	cs_inv_set_open_hold_fixed(g.inv, hold_fixed);
	cs_inv_set_open_hold_nocarry(g.inv, hold_nocarry);
	cs_inv_set_loss_record_nowait(g.inv, rec_nowait);
	cs_inv_set_record_hold_ms(g.inv, (int)(rec_hold_ms > 0 && rec_hold_ms < 3600000 ? rec_hold_ms : 0));
	cs_inv_set_retry_per_slot(g.inv, per_slot);
	cs_inv_set_cluster_v9c(g.inv, v9c);
	cs_inv_set_retry_paced(g.inv, paced);
	cs_inv_set_tick_polled(g.inv, tick_polled);
	cs_inv_set_cluster_deadlines(g.inv, c_deadlines);
	cs_inv_set_retry_rid_check(g.inv, rid_check);
	if (cmd_limit >= 0)
		cs_inv_set_cmd_limit(g.inv, cmd_limit);
	if (retry_max >= 0)
		cs_inv_set_retry_queue(g.inv, retry_max, 0);
	struct event *tick = event_new(g.base, -1, EV_PERSIST, on_stats, NULL);
	if (stats_ms < 1 || stats_ms > 3600000)
		usage();
	struct timeval tv = { (time_t)(stats_ms / 1000), (suseconds_t)(stats_ms % 1000 * 1000) };
	event_add(tick, &tv);
	struct event *sterm = evsignal_new(g.base, SIGTERM, on_signal, NULL);
	struct event *sint = evsignal_new(g.base, SIGINT, on_signal, NULL);
	event_add(sterm, NULL);
	event_add(sint, NULL);
	event_base_dispatch(g.base);
	cs_inv_free(g.inv);
	event_free(tick);
	event_free(sterm);
	event_free(sint);
	event_base_free(g.base);
	cs_config_free(cfg);
	return 0;
}
