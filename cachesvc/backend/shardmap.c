/* shardmap.c - the shard a request reads (shardmap.h). */
#include "shardmap.h"

#include <inttypes.h>
#include <stdio.h>

/* Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm" (2014), the
 * published form: a 64-bit LCG step, then the next bucket the key jumps to, in IEEE-754
 * double arithmetic (SHARDS.md section 3 spells out each step for other languages). */
int32_t cs_jump_hash(uint64_t key, int32_t buckets)
{
	int64_t b = -1, j = 0;
	while (j < buckets) {
		b = j;
		key = key * UINT64_C(2862933555777941757) + 1;
		j = (int64_t)((double)(b + 1) *
		              ((double)(INT64_C(1) << 31) / (double)((key >> 33) + 1)));
	}
	return (int32_t)b;
}

int cs_shard_of_hash(uint64_t h, int nshards)
{
	return nshards > 0 ? (int)cs_jump_hash(h, nshards) : -1;
}

int cs_shard_of_int(const cs_config *cfg, int64_t v)
{
	int lo = 0, hi = cfg->nshard_ranges - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const cs_shard_range *r = &cfg->shard_ranges[mid];
		if (v < r->lo)
			hi = mid - 1;
		else if (v > r->hi)
			lo = mid + 1;
		else
			return r->shard;
	}
	return -1;
}

int cs_shard_pick(const cs_config *cfg, const cs_query_def *q, const cs_value *in, uint32_t n,
        char *err, size_t errlen)
{
	if (cfg->nshards == 0)
		return 0;
	if (q->shard_index >= 0)
		return q->shard_index;
	if (q->shard_key_index < 0) {
		/* config.c refuses such a query with shards: not reachable from a loaded config */
		if (errlen > 0)
			snprintf(err, errlen,
			        "query %s: neither pinned to a shard ([query] shard) nor keyed "
			        "([query] shard_key): it routes to no shard",
			        q->name);
		return -CS_ERR_BAD_PARAMS;
	}
	cs_shard_key k;
	int rc = cs_params_shard_key(q, in, n, &k, err, errlen);
	if (rc != 0)
		return rc;
	if (cfg->shard_map == CS_SHARD_MAP_HASH)
		return cs_shard_of_hash(k.hash, cfg->nshards);
	int s = k.integer ? cs_shard_of_int(cfg, k.i) : -1;
	if (s >= 0)
		return s;
	if (errlen > 0) {
		int ki = q->shard_key_index;
		if (k.integer && cfg->nshard_ranges > 0)
			snprintf(err, errlen,
			        "query %s: parameter %d (%s) = %" PRId64 " is the shard key and "
			        "lies in no range of [cachesvc] shard_ranges (%" PRId64 "..%" PRId64
			        "): no shard holds it",
			        q->name, ki + 1, q->params[ki].name, k.i, cfg->shard_ranges[0].lo,
			        cfg->shard_ranges[cfg->nshard_ranges - 1].hi);
		else
			snprintf(err, errlen,
			        "query %s: parameter %d (%s) is the shard key and cannot be "
			        "routed by shard_map = ranges",
			        q->name, ki + 1, q->params[ki].name);
	}
	/* a valid key the map sends nowhere: no_shard (SHARDS.md section 5) */
	return k.integer && cfg->nshard_ranges > 0 ? -CS_ERR_NO_SHARD : -CS_ERR_BAD_PARAMS;
}
