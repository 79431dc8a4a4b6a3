/* mapping.h - from decoded row changes to the cache keys they affect (pure).
 *
 * Built from the invalidate_on declarations of the query definitions. For a change to a
 * table some query depends on, the mapping reports through a sink:
 *   - key(q, canon): the entry of query q with canonical parameters canon must go
 *     (INSERT: the new row's keys; DELETE: the old row's; UPDATE: the new row's, and
 *     the old row's when a key column changed);
 *   - query(q, reason): every entry of q must go (TRUNCATE; a whole-table rule, which the
 *     caller debounces with min_lifetime; or a key that cannot be built from what the
 *     stream carries - an unchanged-TOAST key column, a value that is not text, does not
 *     parse as the parameter's type or makes a key longer than CS_CANON_MAX: dropping the
 *     whole query is the only safe answer, never nothing).
 * A change to a table no query depends on costs one hash lookup. The canonical text is
 * exactly the one the read path builds (params.h), so the keys match. Nothing here does
 * I/O; the mapping copies what it needs from the config (it outlives reloads). */
#ifndef CS_INV_MAPPING_H
#define CS_INV_MAPPING_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "pgoutput.h"

typedef struct cs_inv_map cs_inv_map;

/* Why a whole query is invalidated. */
typedef enum cs_inv_reason {
	CS_INV_TRUNCATE = 0, /* TRUNCATE of a table it depends on */
	CS_INV_TABLE,	     /* whole-table rule: any change (debounced by min_lifetime) */
	CS_INV_UNKNOWN_KEY,  /* a key cannot be built from the row (see above) */
	CS_INV_DDL,	     /* a DDL command on a table it depends on, or on anything but a
			      * table (CS_DDL_PREFIX messages) */
} cs_inv_reason;
#define CS_INV_REASONS 4

/* The prefix of the transactional logical messages (pg_logical_emit_message) the event
 * triggers cachesvc installs on a primary send for every DDL command (engine/check.c
 * check_ddl_triggers). Content "*": anything but a table changed (a type, a function, a
 * view...: every query that depends on the stream is dropped); "<n>:<schema><table>": that
 * table, whose schema name is n bytes long. Data a DDL command rewrites (ALTER COLUMN ...
 * TYPE ... USING) is never decoded as row changes: this is the only signal of it. */
#define CS_DDL_PREFIX "cachesvc.ddl"

typedef struct cs_inv_sink {
	void (*key)(void *priv, int query, const char *canon, size_t len);
	void (*query)(void *priv, int query, cs_inv_reason reason);
	void *priv;
} cs_inv_sink;

/* Builds the mapping. NULL on OOM. */
cs_inv_map *cs_inv_map_new(const cs_config *cfg);
/* The mapping of shard `shard`'s invalidator (backend/SHARDS.md section 4): a query pinned to
 * another shard (shard = NAME) has no rules in it (its tables' changes on this shard are not
 * its data); keyed queries read every shard. shard -1: cs_inv_map_new. Query indexes are the
 * config's either way. */
cs_inv_map *cs_inv_map_new_shard(const cs_config *cfg, int shard);
void cs_inv_map_free(cs_inv_map *m);

int cs_inv_map_nqueries(const cs_inv_map *m);
const char *cs_inv_map_query_name(const cs_inv_map *m, int query);
/* min_lifetime of the query (ms), for debouncing whole-table invalidations. */
int64_t cs_inv_map_min_lifetime(const cs_inv_map *m, int query);
/* True when the query has any invalidate_on rule (it depends on the stream). */
bool cs_inv_map_depends(const cs_inv_map *m, int query);
/* True when some query depends on schema.table. */
bool cs_inv_map_has_table(const cs_inv_map *m, const char *schema, const char *name);

/* Reports the keys/queries affected by an 'I', 'U', 'D' or 'T' message decoded by d, or a
 * transactional 'M' message of prefix CS_DDL_PREFIX (every query on its table, or every
 * query that depends on the stream; other types and prefixes: nothing). Returns the number
 * of sink calls made. */
int cs_inv_map_change(const cs_inv_map *m, const cs_pgo_decoder *d, const cs_pgo_msg *msg,
	const cs_inv_sink *sink);

#endif
