/* verify_route.h - the shard a cached entry's key routes to, for cachesvc-verify on a
 * sharded config (backend/SHARDS.md step 6). The verifier scans each shard's keyspace
 * ("<ns>@<shard>") and checks every entry against that shard's primary; an entry whose
 * parameters the map sends to another shard is "misrouted": no read ever looks for it there
 * (a read of its key looks under the other shard's prefix), so it cannot be served. It can
 * only come from a shard map changed across a restart (the old entries expire by TTL), or a
 * bug. Pure: no I/O, no allocation. */
#ifndef CS_VERIFY_ROUTE_H
#define CS_VERIFY_ROUTE_H

#include <stddef.h>

#include "config.h"

/* The shard (index into cfg->shards; 0 without shards or for a query without shard_key)
 * the map routes the key with canonical parameters canon[0..clen) of query q to (the part
 * after "<ns>@<shard>:e:<q>:<gen>:"). Returns it, or a negative CS_ERR_* code with the
 * reason in err: -CS_ERR_BAD_PARAMS (the text does not decode, or the key cannot be routed)
 * or -CS_ERR_NO_SHARD (an integer in no range of shard_ranges). */
int cs_verify_key_shard(const cs_config *cfg, const cs_query_def *q, const char *canon, size_t clen,
        char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
