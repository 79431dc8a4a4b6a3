/* shardmap.h - the shard a request reads (backend/SHARDS.md sections 3 and 5).
 *
 * A query is pinned ([query] shard = NAME: always that shard) or routes by its shard key
 * ([query] shard_key = PARAM) through the deployment's map ([cachesvc] shard_map):
 *   hash    shards[jump(h, nshards)], h the FNV-1a-64 of the key's type-family bytes
 *           (params.h, cs_params_shard_key), jump Lamping & Veach's jump consistent hash
 *           (adding a shard moves only 1/(S+1) of the keys, all to the new shard), shards
 *           in the file's section order
 *   ranges  the shard of the one range lo <= key <= hi ([cachesvc] shard_ranges; checked at
 *           load to be sorted, contiguous and without overlap); a key below the first or
 *           above the last range lives on no shard: an error naming the key
 * Without [shard NAME] sections every request reads the one implicit shard, index 0, and
 * nothing is parsed. Computed once per request (each MGET item alone). Pure: no I/O, no
 * allocation. */
#ifndef CS_SHARDMAP_H
#define CS_SHARDMAP_H

#include <stdint.h>

#include "config.h"
#include "params.h"

/* Jump consistent hash (Lamping & Veach 2014): the bucket 0..buckets-1 of key (buckets > 0;
 * -1 when buckets <= 0). Going from n to n+1 buckets moves a key only to bucket n. */
int32_t cs_jump_hash(uint64_t key, int32_t buckets);

/* shards[cs_jump_hash(h, nshards)]: the hash map's pick (nshards > 0; -1 otherwise). */
int cs_shard_of_hash(uint64_t h, int nshards);

/* The range holding v: its shard index, or -1 when v is in no range. */
int cs_shard_of_int(const cs_config *cfg, int64_t v);

/* The shard (index into cfg->shards; 0 without shards) request `in[0..n)` of q reads.
 * Returns it, or with a message in err naming the query and the parameter
 * -CS_ERR_BAD_PARAMS (a bad or NULL key, cs_params_shard_key) or -CS_ERR_NO_SHARD (a key
 * in no range). */
int cs_shard_pick(const cs_config *cfg, const cs_query_def *q, const cs_value *in, uint32_t n,
        char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
