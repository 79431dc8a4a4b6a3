/* cs_burst.c - test tool: fires N connections x M pipelined GETs (or REFRESHes) of one
 * query at a cachesvc at once, then collects every reply and prints a JSON tally.
 *
 *   cs_burst [-h host] [-p port] [-s socket] [-c conns] [-n per_conn] [-t timeout_ms]
 *            [-r] [--tier T] [--lsn X/Y] QUERY [PARAM ...]
 *
 * A PARAM written "%i" is replaced by the request's sequence number, so requests differ
 * and do not coalesce. The HELLO token comes from $CACHESVC_TOKEN, as for cachesvc-cli.
 * All requests are written before any reply is read, so they are in flight together:
 * what the coalescing and overload tests need. Exit 0 when every reply arrived (errors
 * from the server are counted, not fatal), 1 on a connection failure. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "cachesvc-client.h"

/* One connection's work, on its own thread: every thread connects, waits at the barrier,
 * then sends all its requests at once; so requests from all connections overlap. */
typedef struct worker {
	const cs_client_options *opt;
	cs_client_request req;
	bool refresh;
	int first, per;
	char **argv;
	uint32_t np;
	long ok, src[3], errs[16], stale;
	int failed;
} worker;

static pthread_barrier_t start_line;

static void *run_worker(void *arg)
{
	worker *w = arg;
	cs_client_value params[16];
	char seq[16][24];
	cs_client *c = cs_client_connect(w->opt);
	bool up = c != NULL && cs_client_err(c) == 0;
	if (!up)
		fprintf(stderr, "cs_burst: connect: %s\n", c ? cs_client_errstr(c) : "out of memory");
	pthread_barrier_wait(&start_line);
	if (!up) {
		w->failed = 1;
		cs_client_free(c);
		return NULL;
	}
	w->req.params = params;
	for (int j = 0; j < w->per; j++) {
		for (uint32_t k = 0; k < w->np; k++) {
			if (strcmp(w->argv[k], "%i") == 0) {
				snprintf(seq[k], sizeof seq[k], "%d", w->first + j);
				params[k] = cs_client_text(seq[k]);
			} else if (strcmp(w->argv[k], "null") == 0) {
				params[k] = cs_client_nil();
			} else {
				params[k] = cs_client_text(w->argv[k]);
			}
		}
		if (cs_client_send(c, &w->req, w->refresh, NULL) != 0) {
			fprintf(stderr, "cs_burst: send: %s\n", cs_client_errstr(c));
			w->failed = 1;
			cs_client_free(c);
			return NULL;
		}
	}
	while (cs_client_pending(c) > 0) {
		uint32_t id;
		cs_client_result *r;
		if (cs_client_recv(c, &id, &r) != 0) {
			fprintf(stderr, "cs_burst: recv: %s\n", cs_client_errstr(c));
			w->failed = 1;
			break;
		}
		const char *msg;
		int e = cs_client_result_err(r, &msg);
		if (e == 0) {
			w->ok++;
			int s = cs_client_result_source(r);
			if (s >= 0 && s < 3)
				w->src[s]++;
			w->stale += cs_client_result_stale(r);
		} else {
			int code = e < 0 ? -e : e;
			w->errs[code < 16 ? code : 15]++;
		}
		cs_client_result_free(r);
	}
	cs_client_free(c);
	return NULL;
}

static int burst(int argc, char **argv)
{
	cs_client_options opt = { 0 };
	opt.token = getenv("CACHESVC_TOKEN"); /* as cachesvc-cli */
	int conns = 10, per = 10;
	bool refresh = false;
	cs_client_request req = { .tier = CS_CLIENT_TIER_DEFAULT };
	static const struct option lopts[] = { { "tier", required_argument, NULL, 'T' },
		{ "lsn", required_argument, NULL, 'L' }, { NULL, 0, NULL, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "h:p:s:c:n:t:r", lopts, NULL)) != -1) {
		switch (ch) {
		case 'h': opt.host = optarg; break;
		case 'p': opt.port = (uint16_t)atoi(optarg); break;
		case 's': opt.unix_path = optarg; break;
		case 'c': conns = atoi(optarg); break;
		case 'n': per = atoi(optarg); break;
		case 't': opt.timeout_ms = atoi(optarg); break;
		case 'r': refresh = true; break;
		case 'T': req.tier = strcmp(optarg, "critical") == 0 ? 0 : strcmp(optarg, "batch") == 0 ? 2 : 1; break;
		case 'L':
			if (cs_client_lsn_parse(optarg, &req.min_lsn) != 0) {
				fprintf(stderr, "cs_burst: bad LSN %s\n", optarg);
				return 2;
			}
			break;
		default:
			fprintf(stderr, "usage: cs_burst [-h host] [-p port] [-s sock] [-c conns] [-n per_conn] [-t ms] [-r] QUERY [PARAM...]\n");
			return 2;
		}
	}
	if (optind >= argc || conns < 1 || per < 1 || per > 4096) {
		fprintf(stderr, "cs_burst: need QUERY; 1 <= per_conn <= 4096\n");
		return 2;
	}
	req.query = argv[optind];
	uint32_t np = (uint32_t)(argc - optind - 1);
	if (np > 16)
		np = 16;
	req.nparams = np;

	worker *w = calloc((size_t)conns, sizeof *w);
	pthread_t *th = calloc((size_t)conns, sizeof *th);
	if (w == NULL || th == NULL)
		return 1;
	pthread_barrier_init(&start_line, NULL, (unsigned)conns);
	for (int i = 0; i < conns; i++) {
		w[i] = (worker){ .opt = &opt, .req = req, .refresh = refresh, .first = i * per,
			.per = per, .argv = argv + optind + 1, .np = np };
		if (pthread_create(&th[i], NULL, run_worker, &w[i]) != 0) {
			fprintf(stderr, "cs_burst: cannot start thread %d\n", i);
			return 1;
		}
	}
	long ok = 0, src[3] = { 0 }, errs[16] = { 0 }, stale = 0;
	int failed = 0;
	for (int i = 0; i < conns; i++) {
		pthread_join(th[i], NULL);
		failed |= w[i].failed;
		ok += w[i].ok;
		stale += w[i].stale;
		for (int k = 0; k < 3; k++)
			src[k] += w[i].src[k];
		for (int k = 0; k < 16; k++)
			errs[k] += w[i].errs[k];
	}
	free(w);
	free(th);
	if (failed)
		return 1;
	printf("{\"sent\":%ld,\"ok\":%ld,\"cache\":%ld,\"replica\":%ld,\"primary\":%ld,\"stale\":%ld,\"errors\":{",
		(long)conns * per, ok, src[0], src[1], src[2], stale);
	bool first = true;
	for (int k = 1; k < 16; k++) {
		if (errs[k] == 0)
			continue;
		static const char *const names[16] = { "", "unknown_query", "bad_params",
			"overloaded", "unavailable", "too_large", "auth", "protocol", "internal",
			"timeout", "shutting_down", "e11", "e12", "e13", "e14", "other" };
		printf("%s\"%s\":%ld", first ? "" : ",", names[k], errs[k]);
		first = false;
	}
	printf("}}\n");
	return 0;
}

/* Ends with _exit: the tests run this load generator thousands of times, and in a sanitizer
 * build LeakSanitizer's scan at exit cost more CPU than the whole burst (~70 of ~130 ms a
 * run on this machine), CPU the tests running beside it needed. The client library it uses
 * is leak-checked by the unit tests and cachesvc-cli. */
int main(int argc, char **argv)
{
	int rc = burst(argc, argv);
	fflush(stdout);
	fflush(stderr);
	_exit(rc);
}
