/* config.h - the cachesvc configuration: one table of keys drives parsing,
 * validation, reload and "show config" (config.c).
 *
 * Ownership: a cs_config is built by cs_config_load() and owns every string and
 * array in it; cs_config_free() releases all of it. Nothing here does I/O except
 * cs_config_load() reading the file, and cs_config_show() writing to a FILE.
 * Checks that need a database (SQL prepares, replica identity) live elsewhere.
 * The value grammars are in parse.h (durations, sizes; base/), the Redis URL in
 * redis_url.h, masking secrets for logs in log.h. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CS_MAX_PARAMS 16        /* parameters per named query */
#define CS_MAX_NAME 64          /* query/replica name length, excluding NUL */
#define CS_MAX_KEYCOLS 8        /* key columns in one invalidate_on clause */
#define CS_MAX_INVALIDATE 8     /* invalidate_on clauses per query */
#define CS_MAX_REPLICAS 255     /* [replica NAME] sections: with the primary, 256 servers */
#define CS_MAX_SHARDS 64         /* [shard NAME] sections (SHARDS.md) */
#define CS_MAX_SHARD_RANGES 1024 /* items of [cachesvc] shard_ranges */
#define CS_CONFIG_ERRLEN 512

/* Priority tiers of the read path; requests carry one, replicas serve a set.
 * (protocol/cs_proto.h declares the same enum for the wire; whichever header comes first
 * defines it.) */
#ifndef CS_TIER_ENUM
#define CS_TIER_ENUM
enum cs_tier {
	CS_TIER_CRITICAL = 0, /* user-facing, latency-critical reads */
	CS_TIER_DEFAULT = 1,  /* ordinary reads */
	CS_TIER_BATCH = 2,    /* warm-up and background work */
};
#endif
typedef enum cs_tier cs_tier;
#define CS_TIER_COUNT 3

/* What a named query returns; picks the policy defaults (config reference). */
typedef enum cs_query_kind {
	CS_KIND_ROW = 0,       /* one row by key (default) */
	CS_KIND_LIST = 1,      /* a bounded list of rows by key */
	CS_KIND_AGGREGATE = 2, /* counts/sums/top-N: TTL policies, table invalidation */
} cs_query_kind;

/* Parameter types a named query may declare ("params = id:int8,name:text"). */
typedef enum cs_param_type {
	CS_PT_BOOL = 0,
	CS_PT_INT2,
	CS_PT_INT4,
	CS_PT_INT8,
	CS_PT_FLOAT4,
	CS_PT_FLOAT8,
	CS_PT_TEXT,
	CS_PT_BYTEA,
	CS_PT_UUID,
	CS_PT_NUMERIC,
	CS_PT_DATE,
	CS_PT_TIMESTAMPTZ,
	CS_PT__COUNT
} cs_param_type;

typedef struct cs_param_def {
	char name[CS_MAX_NAME + 1];
	cs_param_type type;
} cs_param_def;

/* One clause of invalidate_on: "messages(conv_id = $1, user_id = $2)", or a
 * whole table "messages" (ncols == 0: any change invalidates the whole query,
 * debounced by min_lifetime). */
typedef struct cs_inval_rule {
	char *schema;                     /* "public" when not written */
	char *table;
	int ncols;
	char *cols[CS_MAX_KEYCOLS];       /* table column names */
	int param_index[CS_MAX_KEYCOLS];  /* 0-based index of the query parameter */
} cs_inval_rule;

typedef struct cs_query_def {
	char name[CS_MAX_NAME + 1];
	char *sql;
	int nparams;
	cs_param_def params[CS_MAX_PARAMS];
	cs_query_kind kind;
	int64_t ttl_ms;
	int ttl_jitter_pct;               /* 0..100 */
	int64_t stale_while_revalidate_ms;
	int64_t max_stale_ms;
	int64_t min_lifetime_ms;
	int64_t negative_ttl_ms;          /* 0 = do not cache empty results */
	double xfetch_beta;               /* 0 = early refresh off */
	bool near_cache;                  /* may use the near cache (near_cache_size > 0) */
	bool lease;                       /* misses take the cross-process miss lease */
	int ninval;
	cs_inval_rule inval[CS_MAX_INVALIDATE];
	bool reads_covered;               /* every table the SQL reads is in invalidate_on
	                                   * (cs_check_ryw, on the primary); false = unknown */
	/* Sharding (backend/SHARDS.md); all unset without [shard NAME] sections. */
	char *shard_key;                  /* name of the parameter that picks the shard, or NULL */
	char *shard;                      /* the one shard it reads ("pinned"), or NULL */
	int shard_key_index;              /* 0-based parameter index of shard_key, or -1 */
	int shard_index;                  /* index into cs_config.shards when pinned, or -1 */
} cs_query_def;

/* Whether the cache may answer a read-your-writes token with an entry older than the token
 * (engine_read.c ryw_cache_ok): per-key invalidation of every table the query reads. */
static inline bool cs_query_token_safe(const cs_query_def *q)
{
	if (!q->reads_covered || q->ninval == 0 || q->min_lifetime_ms > 0)
		return false;
	for (int i = 0; i < q->ninval; i++)
		if (q->inval[i].ncols == 0)
			return false;
	return true;
}

typedef struct cs_replica_def {
	char name[CS_MAX_NAME + 1];
	char *conninfo;
	unsigned tiers;                   /* bit (1u << cs_tier) per tier served */
	int pool_size;
	char *shard;                      /* the shard whose primary it replicates, or NULL */
	int shard_index;                  /* index into cs_config.shards, or -1 (no shards) */
} cs_replica_def;

/* [shard NAME]: one PostgreSQL primary holding a part of the keys (backend/SHARDS.md). */
typedef struct cs_shard_def {
	char name[CS_MAX_NAME + 1];
	char *conninfo;                   /* the shard's primary */
	int pool_size;                    /* connections to that primary */
	char *slot;                       /* replication slot on it; NULL = [invalidator] slot */
} cs_shard_def;

/* How a shard key picks its shard ([cachesvc] shard_map). */
typedef enum cs_shard_map {
	CS_SHARD_MAP_NONE = 0,   /* no [shard NAME] sections: one implicit shard */
	CS_SHARD_MAP_HASH = 1,   /* jump(FNV-1a-64 of the key), SHARDS.md section 3 */
	CS_SHARD_MAP_RANGES = 2, /* integer key ranges, [cachesvc] shard_ranges */
} cs_shard_map;

/* One item of shard_ranges: keys lo..hi (inclusive) live on shards[shard]. */
typedef struct cs_shard_range {
	int64_t lo, hi;
	int shard;
} cs_shard_range;

typedef struct cs_config {
	char *path;                       /* file it was loaded from */

	/* [cachesvc] */
	char *listen;                     /* "host:port" or NULL */
	char *unix_socket;                /* path or NULL */
	char *admin_listen;               /* "host:port" or NULL */
	int max_clients;
	int max_inflight;                 /* per client connection */
	int64_t idle_timeout_ms;          /* 0 = none */
	int64_t send_timeout_ms;          /* 0 = none */
	int64_t frame_timeout_ms;         /* first byte of a frame to its last; 0 = none */
	uint64_t client_output_soft;      /* bytes queued for a client: stop reading it */
	uint64_t client_output_hard;      /* ... close it (> max_reply, >= soft) */
	int64_t request_timeout_ms;
	uint32_t max_frame;               /* bytes, request frames */
	uint32_t max_result;              /* bytes; larger results are served, not cached */
	uint32_t max_reply;               /* bytes; larger results are not served (TOO_LARGE) */
	int queue_max;                    /* waiting requests per pool */
	int64_t queue_timeout_ms;
	int64_t max_replica_lag_ms;       /* replay lag bound for routing */
	uint64_t max_replica_lag_bytes;   /* 0 = no byte bound */
	bool primary_fallback;
	int64_t health_interval_ms;
	int64_t dns_timeout_ms;           /* bound on one host name lookup (resolve.h) */
	char *resolv_conf;                /* name servers from this file; NULL = the system's */
	int64_t verify_interval_ms;       /* in-daemon verifier sampler period, 0 = off */
	int64_t ryw_wait_ms;              /* read-your-writes wait bound on replicas */
	char *auth_token;                 /* HELLO token, NULL = no auth; never shown */
	char *admin_token;                /* HELLO token for admin requests, NULL = auth_token's */
	bool allow_unauthenticated;       /* non-loopback listen without auth_token allowed */
	int64_t stats_period_ms;          /* the "stats:" log line; 0 = off */
	bool so_reuseport;                /* listen with SO_REUSEPORT: several daemons, one port */
	bool fence;                       /* LSN-fenced fills (needs a running invalidator);
	                                   * off = TTL-only caching (fence.c) */
	bool query_fence;                 /* query-level fences (fence.c); off: negative control */
	bool eviction_check;              /* fence.c (i); off: negative control */
	uint64_t near_cache_size;         /* bytes; 0 = no near cache */
	bool near_cache_tracking;         /* false: incoherent (a test's negative control) */
	uint64_t negative_share;          /* bytes of negative entries per negative_ttl, 0 = any */
	char *log_level;                  /* "debug" | "info" | "warning" | "error" */
	char *log_format;                 /* "auto" | "text" | "journal" (log.h) */
	char *shard_map_text;             /* "hash" | "ranges" | NULL (no shards) */
	char *shard_ranges_text;          /* "1-1000:s1, 1001-2000:s2" | NULL */

	/* [redis] */
	char *redis_url;                  /* redis://[:password@]host:port/db or unix:///path */
	int64_t redis_timeout_ms;
	int64_t redis_lease_ms;           /* cross-process miss lease bound; 0 = off */
	char *redis_namespace;            /* NULL = derived from the db (cs_config_namespace) */
	/* Redis Cluster (issue #17, CLUSTER.md): [redis] cluster and nodes. */
	bool redis_cluster;
	char *redis_nodes;                /* "host:port,host:port,...": seed nodes */
	bool redis_cluster_repair;        /* a negative control's switch (CONFIG.md) */
	bool redis_cluster_near_resend_check; /* E1's negative control's switch (CONFIG.md) */
	bool redis_cluster_epoch_check;   /* a negative control's switch (CONFIG.md) */
	int64_t redis_cluster_refresh_ms; /* the periodic slot map refresh */
	bool redis_cluster_near_refresh;  /* N3's negative control's switch (CONFIG.md) */
	char *redis_cluster_near_untracked_node; /* N6's negative control (CONFIG.md); NULL */

	/* [primary] */
	char *primary_conninfo;
	int primary_pool_size;

	/* [invalidator] */
	bool inval_enabled;
	char *inval_slot;
	char *inval_publication;
	bool inval_create_publication;
	bool inval_ddl_triggers; /* install the DDL event triggers (engine/check.c) */
	int64_t fence_ttl_ms;
	int64_t status_interval_ms;
	int64_t receive_timeout_ms; /* 0: off */
	bool inval_start_check;     /* the slot's position read again once streaming (R41-2) */

	int nreplicas;
	cs_replica_def *replicas;
	int nqueries;
	cs_query_def *queries;

	/* [shard NAME] sections, in file order, and the map derived from [cachesvc] shard_map
	 * and shard_ranges. nshards == 0: no sharding, [primary] is the one implicit shard. */
	int nshards;
	cs_shard_def *shards;
	cs_shard_map shard_map;
	int nshard_ranges;
	cs_shard_range *shard_ranges;     /* sorted by lo, contiguous, no overlap */
} cs_config;

/* Loads and validates `path`. Returns a new config (caller frees with
 * cs_config_free) or NULL with a message naming file, section and key in errbuf,
 * e.g. "cachesvc.ini: [query user_profile] ttl: bad duration "1x"". */
cs_config *cs_config_load(const char *path, char errbuf[CS_CONFIG_ERRLEN])
	__attribute__((warn_unused_result));

void cs_config_free(cs_config *cfg);

/* Writes every key with its value (defaults included, secrets masked: auth_token,
 * passwords inside conninfo and redis_url) as an INI document to `out`. */
void cs_config_show(const cs_config *cfg, FILE *out);
/* The same keys and values as cs_config_show (secrets masked), one call each: section is
 * "service", "replica NAME", "query NAME"...; value is NULL on OOM. */
void cs_config_each(const cs_config *cfg,
        void (*cb)(void *priv, const char *section, const char *key, const char *value),
        void *priv);

/* For SIGHUP: true when `next` differs from `cur` only in reloadable keys (query
 * definitions and the keys marked reloadable). Otherwise false and a message in
 * errbuf naming the first non-reloadable key that changed. */
bool cs_config_reloadable(const cs_config *cur, const cs_config *next,
	char errbuf[CS_CONFIG_ERRLEN]);

const cs_query_def *cs_config_query(const cs_config *cfg, const char *name, size_t len);

const char *cs_param_type_name(cs_param_type t);
/* The shard key's type family (backend/SHARDS.md section 3): the types whose values hash
 * alike. A shard key must be of one of these (config load refuses any other type), and with
 * shard_map = hash every keyed query's shard key of the same family. */
typedef enum cs_shard_family {
	CS_SF_NONE = 0, /* bool, float4/8, numeric, date, timestamptz: no shard key */
	CS_SF_INTEGER,  /* int2, int4, int8 */
	CS_SF_TEXT,
	CS_SF_BYTEA,
	CS_SF_UUID,
} cs_shard_family;
cs_shard_family cs_shard_family_of(cs_param_type t);
/* "integer (int2, int4, int8)", "text", "bytea", "uuid"; "none" for CS_SF_NONE. */
const char *cs_shard_family_name(cs_shard_family f);
/* The PostgreSQL type OID bound to the prepared statement for `t`. */
unsigned cs_param_type_oid(cs_param_type t);
const char *cs_tier_name(cs_tier t);
bool cs_tier_parse(const char *s, cs_tier *out);

/* The Redis namespace in force (keyspace.h): [redis] namespace, or "cs" for db 0 and
 * "cs<db>" otherwise. */
void cs_config_namespace(const cs_config *cfg, char out[33]);

/* The fingerprint of what a query's cached values depend on: its SQL, parameter types,
 * routing (the pinned shard's name, the shard key) and invalidate_on, as 16 hex digits
 * (FNV-1a-64). Two processes agree on it exactly when their definitions would answer
 * alike. */
void cs_query_fingerprint(const cs_query_def *d, const cs_config *cfg, char out[17]);
/* The fingerprint of what the invalidator's key mapping of a query depends on: the same
 * without the SQL (parameter types, routing, invalidate_on). The leader records it for
 * every query it maps (keyspace.h <ns>:inv:qmap); a process uses a query's entries only
 * while the leader maps its definition (review 36 R36-1). */
void cs_query_map_fingerprint(const cs_query_def *d, const cs_config *cfg, char out[17]);

#endif
