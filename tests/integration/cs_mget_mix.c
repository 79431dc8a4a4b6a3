/* cs_mget_mix.c - test tool: one MGET whose items each carry their own query, parameter,
 * read-your-writes token and bypass flag (cachesvc-cli gives every item the same), and
 * what came back for each item, in request order.
 *
 *   cs_mget_mix [-p port] [-t timeout_ms] ITEM ...
 *   ITEM: QUERY[,PARAM][,lsn=X/Y][,bypass]   (PARAM sent as text)
 *
 * Prints one line per item: "INDEX ok SOURCE ID" (SOURCE cache, replica or primary; ID the
 * first row's first column when it is an integer, else -) or "INDEX err CODE". The HELLO
 * token comes from $CACHESVC_TOKEN. Exit 0 when the MGET was answered (item errors
 * included), 1 when it was not, 2 on a usage error. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cachesvc-client.h"

#define MAX_ITEMS 64

int main(int argc, char **argv)
{
	cs_client_options opt = {.timeout_ms = 10000, .token = getenv("CACHESVC_TOKEN")};
	int ch;
	while ((ch = getopt(argc, argv, "p:t:")) != -1) {
		if (ch == 'p')
			opt.port = (uint16_t)atoi(optarg);
		else if (ch == 't')
			opt.timeout_ms = atoi(optarg);
		else
			return 2;
	}
	int n = argc - optind;
	if (n < 1 || n > MAX_ITEMS) {
		fprintf(stderr, "usage: cs_mget_mix [-p port] [-t ms] "
		                "QUERY[,PARAM][,lsn=X/Y][,bypass] ...\n");
		return 2;
	}
	cs_client_request reqs[MAX_ITEMS];
	cs_client_value vals[MAX_ITEMS];
	for (int i = 0; i < n; i++) {
		char *spec = argv[optind + i], *save = NULL;
		reqs[i] = (cs_client_request){.query = strtok_r(spec, ",", &save),
		        .params = &vals[i],
		        .tier = CS_CLIENT_TIER_DEFAULT};
		for (char *w = strtok_r(NULL, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
			if (strncmp(w, "lsn=", 4) == 0) {
				if (cs_client_lsn_parse(w + 4, &reqs[i].min_lsn) != 0)
					return 2;
			} else if (strcmp(w, "bypass") == 0) {
				reqs[i].bypass = true;
			} else {
				vals[i] = (cs_client_value){.type = CS_CLIENT_V_STR,
				        .u.s = {.p = w, .len = (uint32_t)strlen(w)}};
				reqs[i].nparams = 1;
			}
		}
		if (reqs[i].query == NULL)
			return 2;
	}
	cs_client *c = cs_client_connect(&opt);
	if (c == NULL || cs_client_err(c) != 0) {
		fprintf(stderr, "cs_mget_mix: connect: %s\n",
		        c ? cs_client_errstr(c) : "out of memory");
		cs_client_free(c);
		return 1;
	}
	cs_client_result *out[MAX_ITEMS];
	int rc = cs_client_mget(c, reqs, (uint32_t)n, out);
	if (rc != 0) {
		fprintf(stderr, "cs_mget_mix: mget: %s\n", cs_client_errstr(c));
		cs_client_free(c);
		return 1;
	}
	static const char *const src[] = {"cache", "replica", "primary"};
	for (int i = 0; i < n; i++) {
		int err = cs_client_result_err(out[i], NULL);
		if (err != 0) {
			printf("%d err %d\n", i, -err);
		} else {
			int s = cs_client_result_source(out[i]);
			cs_client_value v;
			bool id = cs_client_result_nrows(out[i]) > 0 &&
			          cs_client_result_value(out[i], 0, 0, &v) == 0 &&
			          v.type == CS_CLIENT_V_INT;
			printf("%d ok %s ", i, s >= 0 && s <= 2 ? src[s] : "?");
			if (id)
				printf("%" PRId64 "\n", v.u.i);
			else
				printf("-\n");
		}
		cs_client_result_free(out[i]);
	}
	cs_client_free(c);
	return 0;
}
