/* fuzz_rcluster.c - fuzzes the Redis Cluster reply parsers (cachesvc/base/rcluster_map.c):
 * slot maps from CLUSTER SHARDS and CLUSTER SLOTS replies (RESP bytes read by hiredis, as
 * the client gets them from a node) and MOVED / ASK redirects. Checks that a parsed map only
 * names nodes it holds and that a parsed redirect is within bounds.
 *
 * Input: byte 0 even: the rest is RESP, every complete reply goes to both map parsers; odd:
 * the rest is an error reply's text for the redirect parser. Either way the rest is hashed
 * as a key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "rcluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_map(const cs_rc_map *m)
{
	if (m->nnodes < 0 || m->nnodes > CS_RC_MAX_NODES)
		abort();
	for (int s = 0; s < CS_RC_SLOTS; s++)
		if (m->owner[s] < -1 || m->owner[s] >= m->nnodes)
			abort();
	for (int i = 0; i < m->nnodes; i++)
		if (m->node[i].port < 1 || m->node[i].port > 65535 ||
		        memchr(m->node[i].host, '\0', sizeof m->node[i].host) == NULL)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *rest = (const char *)data + 1;
	size_t len = size - 1;
	if (cs_rc_keyslot(rest, len) >= CS_RC_SLOTS)
		abort();
	if (data[0] & 1) {
		cs_rc_redirect r;
		if (cs_rc_parse_redirect(rest, len, &r) == 0 &&
		        (r.slot >= CS_RC_SLOTS || r.port < 1 || r.port > 65535 ||
		                strlen(r.host) >= sizeof r.host))
			abort();
		cs_rc_endpoint e;
		if (cs_rc_parse_endpoint(rest, len, &e) == 0 && (e.host[0] == '\0' || e.port < 1))
			abort();
		return 0;
	}
	static cs_rc_map m;
	char err[256];
	redisReader *rd = redisReaderCreate();
	if (rd == NULL)
		return 0;
	if (redisReaderFeed(rd, rest, len) == REDIS_OK) {
		for (int n = 0; n < 8; n++) {
			void *rep = NULL;
			if (redisReaderGetReply(rd, &rep) != REDIS_OK || rep == NULL)
				break;
			if (cs_rc_map_from_shards(rep, "asked", &m, err, sizeof err) == 0)
				check_map(&m);
			if (cs_rc_map_from_slots(rep, "asked", &m, err, sizeof err) == 0)
				check_map(&m);
			freeReplyObject(rep);
		}
	}
	redisReaderFree(rd);
	return 0;
}
