/* verify_route.c - the shard a cached entry's key routes to (verify_route.h). */
#include <stdio.h>

#include "cs_proto.h"
#include "decanon.h"
#include "params.h"
#include "shardmap.h"
#include "verify_route.h"

int cs_verify_key_shard(const cs_config *cfg, const cs_query_def *q, const char *canon, size_t clen,
        char *err, size_t errlen)
{
	if (cfg->nshards == 0)
		return 0;
	if (q->shard_key_index < 0) /* pinned: no parameter to decode */
		return cs_shard_pick(cfg, q, NULL, 0, err, errlen);
	if (clen > CS_CANON_MAX) {
		snprintf(err, errlen, "canonical parameters longer than %d bytes", CS_CANON_MAX);
		return -CS_ERR_BAD_PARAMS;
	}
	cs_value vals[CS_MAX_PARAMS];
	char buf[2 * (CS_CANON_MAX + 1) + CS_MAX_PARAMS];
	int rc = cs_params_decanon(q, canon, clen, vals, buf, sizeof buf, err, errlen);
	if (rc != 0)
		return rc < 0 ? rc : -CS_ERR_BAD_PARAMS;
	return cs_shard_pick(cfg, q, vals, (uint32_t)q->nparams, err, errlen);
}
