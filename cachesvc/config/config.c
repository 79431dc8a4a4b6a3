/* config.c - the cachesvc configuration: one key table drives parsing, defaults, validation,
 * "show config" and the reload check. This file holds the table, loading (the INI reader's
 * lines to sections and keys, values in table order, defaults, cross-key checks) and the
 * reload check; config_int.h lists the files that hold the rest. */
#include "config.h"
#include "textutil.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <libpq-fe.h>

#include "config_int.h"
#include "redis_url.h"
#include "sql_placeholders.h"

/* Largest config file read. */
#define MAX_FILE (16u << 20)

/* ------------------------------------------------------------------------------------------
 * The key table
 * ---------------------------------------------------------------------------------------- */

const struct section_def cs_cfg_sections[SEC__COUNT] = {
        [SEC_SERVICE] = {"cachesvc", false},
        [SEC_REDIS] = {"redis", false},
        [SEC_PRIMARY] = {"primary", false},
        [SEC_REPLICA] = {"replica", true},
        [SEC_QUERY] = {"query", true},
        [SEC_INVALIDATOR] = {"invalidator", false},
        [SEC_SHARD] = {"shard", true},
};

#define CFG(f) offsetof(cs_config, f)
#define REP(f) offsetof(cs_replica_def, f)
#define QRY(f) offsetof(cs_query_def, f)
#define SHD(f) offsetof(cs_shard_def, f)
/* clang-format off */
#define NO_KIND_DEF {NULL, NULL, NULL}
/* clang-format on */

/* Every key of every section. CONFIG.md documents this table; test_config checks that every
 * key shown by cs_config_show() (which walks this table) appears there. */
const struct key_def cs_cfg_keys[] = {
        /* [cachesvc] */
        {SEC_SERVICE, "listen", KT_STRING, CFG(listen), "127.0.0.1:6380", NO_KIND_DEF, KF_NULLABLE,
                0, 0, cs_cfg_check_host_port,
                "TCP address for clients, host:port or [v6]:port; empty disables TCP"},
        {SEC_SERVICE, "unix_socket", KT_STRING, CFG(unix_socket), NULL, NO_KIND_DEF, KF_NULLABLE, 0,
                0, cs_cfg_check_unix_path, "Unix socket path for clients; empty = none"},
        {SEC_SERVICE, "admin_listen", KT_STRING, CFG(admin_listen), "127.0.0.1:9180", NO_KIND_DEF,
                KF_NULLABLE, 0, 0, cs_cfg_check_host_port,
                "HTTP address of /metrics and /healthz; empty disables it"},
        {SEC_SERVICE, "max_clients", KT_INT, CFG(max_clients), "10000", NO_KIND_DEF, KF_RELOAD, 1,
                1000000, NULL, "client connections accepted at once"},
        {SEC_SERVICE, "max_inflight", KT_INT, CFG(max_inflight), "128", NO_KIND_DEF, 0, 1, 65536,
                NULL, "pipelined requests in flight per client connection"},
        {SEC_SERVICE, "idle_timeout", KT_DURATION, CFG(idle_timeout_ms), "0", NO_KIND_DEF,
                KF_RELOAD, 0, 30 * DAY_MS, NULL,
                "close idle client connections after this; 0 = never"},
        {SEC_SERVICE, "send_timeout", KT_DURATION, CFG(send_timeout_ms), "60s", NO_KIND_DEF,
                KF_RELOAD, 0, 30 * DAY_MS, NULL,
                "close a client whose queued output the socket has taken nothing of for this "
                "long (it does not read); 0 = never"},
        {SEC_SERVICE, "frame_timeout", KT_DURATION, CFG(frame_timeout_ms), "10s", NO_KIND_DEF,
                KF_RELOAD, 0, HOUR_MS, NULL,
                "close a client whose request frame is not complete this long after its first "
                "byte; "
                "0 = never"},
        {SEC_SERVICE, "client_output_soft_limit", KT_SIZE64, CFG(client_output_soft), "4MB",
                NO_KIND_DEF, KF_RELOAD, 64 * 1024, INT64_MAX, NULL,
                "output queued for one client (replies unwritten, MGET items held) past which it "
                "is "
                "not read"},
        {SEC_SERVICE, "client_output_hard_limit", KT_SIZE64, CFG(client_output_hard), "128MB",
                NO_KIND_DEF, KF_RELOAD, 64 * 1024, INT64_MAX, NULL,
                "... past which it is disconnected; above max_reply and client_output_soft_limit"},
        {SEC_SERVICE, "request_timeout", KT_DURATION, CFG(request_timeout_ms), "5s", NO_KIND_DEF,
                KF_RELOAD, 1, HOUR_MS, NULL, "bound on one request, queueing included"},
        {SEC_SERVICE, "max_frame", KT_SIZE32, CFG(max_frame), "1MB", NO_KIND_DEF, 0, 1024,
                256 << 20, NULL, "largest request frame accepted"},
        {SEC_SERVICE, "max_result", KT_SIZE32, CFG(max_result), "1MB", NO_KIND_DEF, KF_RELOAD, 1024,
                512 << 20, NULL,
                "largest result stored in Redis; larger ones are served, not cached"},
        {SEC_SERVICE, "max_reply", KT_SIZE32, CFG(max_reply), "64MB", NO_KIND_DEF, KF_RELOAD, 1024,
                64 << 20, NULL, "largest result served at all; larger ones get a TOO_LARGE error"},
        {SEC_SERVICE, "queue_max", KT_INT, CFG(queue_max), "1024", NO_KIND_DEF, 0, 0, 1000000, NULL,
                "requests waiting per pool; past it, an overload error"},
        {SEC_SERVICE, "queue_timeout", KT_DURATION, CFG(queue_timeout_ms), "1s", NO_KIND_DEF,
                KF_RELOAD, 1, 10 * MIN_MS, NULL, "longest wait for a pooled connection"},
        {SEC_SERVICE, "max_replica_lag", KT_DURATION, CFG(max_replica_lag_ms), "5s", NO_KIND_DEF,
                KF_RELOAD, 1, DAY_MS, NULL, "replicas replaying further behind are not used"},
        {SEC_SERVICE, "max_replica_lag_bytes", KT_SIZE64, CFG(max_replica_lag_bytes), "0",
                NO_KIND_DEF, KF_RELOAD, 0, INT64_MAX, NULL,
                "replicas further behind in WAL bytes are not used; 0 = no byte bound"},
        {SEC_SERVICE, "primary_fallback", KT_BOOL, CFG(primary_fallback), "true", NO_KIND_DEF,
                KF_RELOAD, 0, 0, NULL, "read from the primary when no replica is fit"},
        {SEC_SERVICE, "health_interval", KT_DURATION, CFG(health_interval_ms), "1s", NO_KIND_DEF, 0,
                10, HOUR_MS, NULL, "replica health and lag check period"},
        {SEC_SERVICE, "dns_timeout", KT_DURATION, CFG(dns_timeout_ms), "2s", NO_KIND_DEF, 0, 10,
                MIN_MS, NULL,
                "bound on resolving a PostgreSQL or Redis host name on the event loop; a failed "
                "lookup is a failed connect"},
        {SEC_SERVICE, "resolv_conf", KT_STRING, CFG(resolv_conf), NULL, NO_KIND_DEF, KF_NULLABLE, 0,
                0, NULL,
                "name servers and options from this resolv.conf-format file; empty = "
                "/etc/resolv.conf"},
        {SEC_SERVICE, "verify_interval", KT_DURATION, CFG(verify_interval_ms), "10s", NO_KIND_DEF,
                0, 0, HOUR_MS, NULL,
                "period of the in-daemon verifier sampler (one cached entry checked against the "
                "primary); 0 = off"},
        {SEC_SERVICE, "ryw_wait", KT_DURATION, CFG(ryw_wait_ms), "200ms", NO_KIND_DEF, KF_RELOAD, 0,
                MIN_MS, NULL,
                "read-your-writes: longest wait for a replica to replay a token; then the primary"},
        {SEC_SERVICE, "auth_token", KT_STRING, CFG(auth_token), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_NULLABLE | KF_SECRET, 0, 0, NULL,
                "token clients must send in HELLO; empty = no authentication"},
        {SEC_SERVICE, "admin_token", KT_STRING, CFG(admin_token), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_NULLABLE | KF_SECRET, 0, 0, NULL,
                "token for INVALIDATE, SHOW and ADMIN (sent in HELLO instead of auth_token); "
                "empty = the auth token suffices"},
        {SEC_SERVICE, "allow_unauthenticated", KT_BOOL, CFG(allow_unauthenticated), "false",
                NO_KIND_DEF, KF_RELOAD, 0, 0, NULL,
                "allow listen on a non-loopback address without auth_token"},
        {SEC_SERVICE, "stats_period", KT_DURATION, CFG(stats_period_ms), "60s", NO_KIND_DEF,
                KF_RELOAD, 0, 24 * 3600 * 1000LL, NULL,
                "period of the INFO \"stats:\" log line (rates, hit ratio, latencies); 0 = off"},
        {SEC_SERVICE, "so_reuseport", KT_BOOL, CFG(so_reuseport), "false", NO_KIND_DEF, 0, 0, 0,
                NULL, "share the listen port with other cachesvc processes (SO_REUSEPORT)"},
        {SEC_SERVICE, "fence", KT_BOOL, CFG(fence), "true", NO_KIND_DEF, 0, 0, 0, NULL,
                "LSN-fenced fills (invariant I1); off = TTL-only caching"},
        {SEC_SERVICE, "query_fence", KT_BOOL, CFG(query_fence), "true", NO_KIND_DEF, 0, 0, 0, NULL,
                "refuse fills older than the query's last generation bump; off only as a test's "
                "negative control"},
        {SEC_SERVICE, "eviction_check", KT_BOOL, CFG(eviction_check), "true", NO_KIND_DEF, 0, 0, 0,
                NULL,
                "refuse fills older than the newest fence after Redis evicted keys; off only as a "
                "test's negative control"},
        {SEC_SERVICE, "negative_share", KT_SIZE64, CFG(negative_share), "16MB", NO_KIND_DEF,
                KF_RELOAD, 0, INT64_MAX, NULL,
                "bytes of negative (no rows) entries this process may have stored within the "
                "longest negative_ttl; beyond, empty results are not cached; 0 = no bound"},
        {SEC_SERVICE, "near_cache_size", KT_SIZE64, CFG(near_cache_size), "0", NO_KIND_DEF,
                KF_RELOAD, 0, INT64_MAX, NULL,
                "bytes of hot entries kept in process memory, coherent through Redis's client "
                "tracking; 0 = no near cache (turning it on or off needs a restart)"},
        {SEC_SERVICE, "near_cache_tracking", KT_BOOL, CFG(near_cache_tracking), "true", NO_KIND_DEF,
                0, 0, 0, NULL,
                "keep the near cache coherent through Redis's client tracking; off only as a "
                "test's negative control (entries then live until their TTL)"},
        {SEC_SERVICE, "log_level", KT_STRING, CFG(log_level), "info", NO_KIND_DEF, KF_RELOAD, 0, 0,
                cs_cfg_check_log_level, "debug, info, warning or error"},
        {SEC_SERVICE, "log_format", KT_STRING, CFG(log_format), "auto", NO_KIND_DEF, 0, 0, 0,
                cs_cfg_check_log_format, "auto, text or journal"},
        {SEC_SERVICE, "shard_map", KT_STRING, CFG(shard_map_text), NULL, NO_KIND_DEF,
                KF_NULLABLE | KF_SHARDING, 0, 0, cs_cfg_check_shard_map,
                "with [shard NAME] sections: how a query's shard key picks its shard, hash or "
                "ranges"},
        {SEC_SERVICE, "shard_ranges", KT_STRING, CFG(shard_ranges_text), NULL, NO_KIND_DEF,
                KF_NULLABLE | KF_SHARDING, 0, 0, NULL,
                "with shard_map = ranges: LO-HI:SHARD, ... inclusive integer key ranges, "
                "contiguous, no overlap"},

        /* [redis] */
        {SEC_REDIS, "url", KT_STRING, CFG(redis_url), "redis://127.0.0.1:6379/0", NO_KIND_DEF,
                KF_URL, 0, 0, cs_cfg_check_redis_url,
                "redis://[[user]:password@]host[:port][/db] or "
                "unix://[[user]:password@]/path[?db=N]"},
        {SEC_REDIS, "timeout", KT_DURATION, CFG(redis_timeout_ms), "1s", NO_KIND_DEF, 0, 1, MIN_MS,
                NULL, "connect and command timeout"},
        {SEC_REDIS, "lease", KT_DURATION, CFG(redis_lease_ms), "1s", NO_KIND_DEF, KF_RELOAD, 0,
                MIN_MS, NULL,
                "cross-process miss lease: one process queries a missed key while the others "
                "wait up to this long for its fill; for the queries with lease = true (by "
                "kind: aggregates); 0 = off"},
        {SEC_REDIS, "namespace", KT_STRING, CFG(redis_namespace), NULL, NO_KIND_DEF, KF_NULLABLE, 0,
                0, cs_cfg_check_namespace,
                "prefix of every key, channel and script's key; empty = \"cs\" for db 0, "
                "\"cs<db>\" otherwise"},
        {SEC_REDIS, "cluster", KT_BOOL, CFG(redis_cluster), "false", NO_KIND_DEF, 0, 0, 0, NULL,
                "the cache is a Redis Cluster: keys spread over 256 hash-tagged buckets, commands "
                "routed by slot to their master (CLUSTER.md); needs nodes"},
        {SEC_REDIS, "nodes", KT_STRING, CFG(redis_nodes), NULL, NO_KIND_DEF, KF_NULLABLE, 0, 0,
                cs_cfg_check_redis_nodes,
                "cluster: host:port, host:port, ... seed nodes (the slot map is asked of them); "
                "user and password from url"},
        {SEC_REDIS, "cluster_repair", KT_BOOL, CFG(redis_cluster_repair), "true", NO_KIND_DEF, 0, 0,
                0, NULL,
                "cluster: a fill refused because its bucket missed a generation repairs the "
                "bucket from bucket 0; off only as a test's negative control"},
        {SEC_REDIS, "cluster_near_resend_check", KT_BOOL, CFG(redis_cluster_near_resend_check),
                "true", NO_KIND_DEF, 0, 0, 0, NULL,
                "cluster: a near-cache read that had to be sent again (MOVED, ASK, TRYAGAIN, "
                "LOADING) is not stored, as Redis did not track it; off only as a test's "
                "negative control"},
        {SEC_REDIS, "cluster_refresh_interval", KT_DURATION, CFG(redis_cluster_refresh_ms), "10s",
                NO_KIND_DEF, 0, 100, HOUR_MS, NULL,
                "cluster: the slot map is asked again this often (besides on MOVED and on a "
                "node's connection going down or up)"},
        {SEC_REDIS, "cluster_near_refresh", KT_BOOL, CFG(redis_cluster_near_refresh), "true",
                NO_KIND_DEF, 0, 0, 0, NULL,
                "cluster: while the near cache is on, the slot map is asked again on every "
                "heartbeat (1 s); off only as a test's negative control"},
        {SEC_REDIS, "cluster_near_untracked_node", KT_STRING,
                CFG(redis_cluster_near_untracked_node), NULL, NO_KIND_DEF, KF_NULLABLE, 0, 0, NULL,
                "cluster: host:port of a master whose reads the near cache stores untracked; "
                "only as a test's negative control"},
        {SEC_REDIS, "cluster_epoch_check", KT_BOOL, CFG(redis_cluster_epoch_check), "true",
                NO_KIND_DEF, 0, 0, 0, NULL,
                "cluster: every poll checks each master's epoch copy names its run (a restart or "
                "failover that lost data bypasses the cache); off only as a test's negative "
                "control"},

        /* [primary] */
        {SEC_PRIMARY, "conninfo", KT_STRING, CFG(primary_conninfo), NULL, NO_KIND_DEF,
                KF_REQUIRED | KF_CONNINFO, 0, 0, cs_cfg_check_conninfo,
                "libpq connection string or postgresql:// URI of the primary"},
        {SEC_PRIMARY, "pool_size", KT_INT, CFG(primary_pool_size), "4", NO_KIND_DEF, 0, 1, 256,
                NULL, "connections to the primary"},

        /* [replica NAME] */
        {SEC_REPLICA, "conninfo", KT_STRING, REP(conninfo), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_REQUIRED | KF_CONNINFO, 0, 0, cs_cfg_check_conninfo,
                "libpq connection string or postgresql:// URI of the replica"},
        {SEC_REPLICA, "tier", KT_TIERS, REP(tiers), "critical, default, batch", NO_KIND_DEF,
                KF_RELOAD, 0, 0, NULL,
                "comma list of the tiers this replica serves: critical, default, batch"},
        {SEC_REPLICA, "pool_size", KT_INT, REP(pool_size), "4", NO_KIND_DEF, KF_RELOAD, 1, 256,
                NULL, "connections to this replica"},
        {SEC_REPLICA, "shard", KT_STRING, REP(shard), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_NULLABLE | KF_SHARDING, 0, 0, NULL,
                "with [shard NAME] sections: the shard whose primary this replica follows"},

        /* [query NAME]; the whole section is reloadable. Order matters: kind before the
         * policies whose defaults it picks, ttl before the keys derived from it, params
         * before invalidate_on. */
        {SEC_QUERY, "sql", KT_STRING, QRY(sql), NULL, NO_KIND_DEF, KF_RELOAD | KF_REQUIRED, 0, 0,
                cs_cfg_check_sql, "the statement; parameters are $1..$N; may span lines"},
        {SEC_QUERY, "params", KT_PARAMS, QRY(nparams), "", NO_KIND_DEF, KF_RELOAD, 0, 0, NULL,
                "name:type, ... in $N order; types bool int2 int4 int8 float4 float8 text bytea "
                "uuid "
                "numeric date timestamptz"},
        {SEC_QUERY, "kind", KT_KIND, QRY(kind), "row", NO_KIND_DEF, KF_RELOAD, 0, 0, NULL,
                "row, list or aggregate; picks the policy defaults"},
        {SEC_QUERY, "ttl", KT_DURATION, QRY(ttl_ms), NULL, {"1h", "10m", "30s"}, KF_RELOAD, 1,
                365 * DAY_MS, NULL, "time an entry is fresh"},
        {SEC_QUERY, "ttl_jitter", KT_PERCENT, QRY(ttl_jitter_pct), NULL, {"0%", "5%", "10%"},
                KF_RELOAD, 0, 100, NULL, "random extra TTL, up to this share of ttl"},
        {SEC_QUERY, "stale_while_revalidate", KT_DURATION, QRY(stale_while_revalidate_ms), NULL,
                {"0", "0", "$ttl"}, KF_RELOAD, 0, 365 * DAY_MS, NULL,
                "after ttl, serve the old value this long while one refresh runs"},
        {SEC_QUERY, "max_stale", KT_DURATION, QRY(max_stale_ms), NULL,
                {"$ttl+swr", "$ttl+swr", "$ttl+swr"}, KF_RELOAD, 1, 730 * DAY_MS, NULL,
                "hard bound on an entry's age (Redis expiry); >= ttl + stale_while_revalidate"},
        {SEC_QUERY, "min_lifetime", KT_DURATION, QRY(min_lifetime_ms), NULL, {"0", "0", "5s"},
                KF_RELOAD, 0, DAY_MS, NULL,
                "at most one table-level invalidation per this period (debounce)"},
        {SEC_QUERY, "negative_ttl", KT_DURATION, QRY(negative_ttl_ms), NULL, {"60s", "60s", "0"},
                KF_RELOAD, 0, 365 * DAY_MS, NULL, "TTL of empty results; 0 = do not cache them"},
        {SEC_QUERY, "xfetch_beta", KT_DOUBLE, QRY(xfetch_beta), NULL, {"0", "0", "1"}, KF_RELOAD, 0,
                10, NULL, "early probabilistic refresh (XFetch) beta; 0 = off"},
        {SEC_QUERY, "near_cache", KT_BOOL, QRY(near_cache), "true", NO_KIND_DEF, KF_RELOAD, 0, 0,
                NULL, "keep this query's hot entries in the near cache (when near_cache_size > 0)"},
        {SEC_QUERY, "lease", KT_BOOL, QRY(lease), NULL, {"false", "false", "true"}, KF_RELOAD, 0, 0,
                NULL,
                "a miss takes the cross-process miss lease ([redis] lease) before it queries: "
                "one more Redis round trip, one query for a key missed by many processes"},
        {SEC_QUERY, "invalidate_on", KT_INVALIDATE, QRY(ninval), "", NO_KIND_DEF, KF_RELOAD, 0, 0,
                NULL, "table(col = $N, ...) or table, comma separated; empty = TTL only"},
        {SEC_QUERY, "shard_key", KT_STRING, QRY(shard_key), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_NULLABLE | KF_SHARDING, 0, 0, NULL,
                "with [shard NAME] sections: the parameter whose value picks the shard"},
        {SEC_QUERY, "shard", KT_STRING, QRY(shard), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_NULLABLE | KF_SHARDING, 0, 0, NULL,
                "with [shard NAME] sections: the one shard this query reads (its tables live "
                "there alone), instead of shard_key"},

        /* [invalidator] */
        {SEC_INVALIDATOR, "enabled", KT_BOOL, CFG(inval_enabled), "false", NO_KIND_DEF, 0, 0, 0,
                NULL, "run the invalidator in this process (needs [primary])"},
        {SEC_INVALIDATOR, "slot", KT_STRING, CFG(inval_slot), "cachesvc", NO_KIND_DEF, 0, 0, 0,
                cs_cfg_check_slot_name, "logical replication slot name"},
        {SEC_INVALIDATOR, "publication", KT_STRING, CFG(inval_publication), "cachesvc", NO_KIND_DEF,
                0, 0, 0, cs_cfg_check_publication, "publication the slot streams"},
        {SEC_INVALIDATOR, "create_publication", KT_BOOL, CFG(inval_create_publication), "true",
                NO_KIND_DEF, 0, 0, 0, NULL,
                "create the publication for the invalidate_on tables when missing"},
        {SEC_INVALIDATOR, "ddl_triggers", KT_BOOL, CFG(inval_ddl_triggers), "true",
                NO_KIND_DEF, 0, 0, 0, NULL,
                "install event triggers that send every DDL command into the stream"},
        {SEC_INVALIDATOR, "fence_ttl", KT_DURATION, CFG(fence_ttl_ms), "60s", NO_KIND_DEF, 0,
                SEC_MS, DAY_MS, NULL, "lifetime of a per-key invalidation fence"},
        {SEC_INVALIDATOR, "status_interval", KT_DURATION, CFG(status_interval_ms), "1s",
                NO_KIND_DEF, KF_RELOAD, 10, HOUR_MS, NULL,
                "period of standby status (confirmed LSN) messages"},
        {SEC_INVALIDATOR, "receive_timeout", KT_DURATION, CFG(receive_timeout_ms), "30s",
                NO_KIND_DEF, KF_RELOAD, 0, HOUR_MS, NULL,
                "restart the replication stream when nothing arrives for this long (0 = never)"},
        {SEC_INVALIDATOR, "start_position_check", KT_BOOL, CFG(inval_start_check), "true",
                NO_KIND_DEF, 0, 0, 0, NULL,
                "synchronise with Redis once the stream holds the slot, from its position read "
                "again then (an earlier leader may have confirmed more while handing over); off "
                "(synchronise before START_REPLICATION) only as a test's negative control"},

        /* [shard NAME] (SHARDS.md); not reloadable */
        {SEC_SHARD, "conninfo", KT_STRING, SHD(conninfo), NULL, NO_KIND_DEF,
                KF_REQUIRED | KF_CONNINFO, 0, 0, cs_cfg_check_conninfo,
                "libpq connection string or postgresql:// URI of the shard's primary"},
        {SEC_SHARD, "pool_size", KT_INT, SHD(pool_size), "4", NO_KIND_DEF, 0, 1, 256, NULL,
                "connections to the shard's primary"},
        {SEC_SHARD, "slot", KT_STRING, SHD(slot), NULL, NO_KIND_DEF, KF_NULLABLE, 0, 0,
                cs_cfg_check_slot_name,
                "logical replication slot on the shard's primary; empty = <[invalidator] "
                "slot>_<shard>"},
};

#define NKEYS (sizeof(cs_cfg_keys) / sizeof(cs_cfg_keys[0]))
/* The keys a section sets, one bit per key of the table. */
#define KEYSET_WORDS ((NKEYS + 63) / 64)
typedef struct keyset {
	uint64_t w[KEYSET_WORDS];
} keyset;
static bool keyset_has(const keyset *k, size_t i)
{
	return (k->w[i / 64] >> (i % 64)) & 1u;
}
static void keyset_add(keyset *k, size_t i)
{
	k->w[i / 64] |= 1ull << (i % 64);
}
const size_t cs_cfg_nkeys = NKEYS;

/* ------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------- */

static bool streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Grows *arr (of elements `size`) so that index `need - 1` exists; new space is zeroed. */
static bool grow_array(void **arr, int *cap, int need, size_t size)
{
	if (need <= *cap)
		return true;
	int ncap = *cap ? *cap : 4;
	while (ncap < need) {
		if (ncap > INT_MAX / 2)
			return false;
		ncap *= 2;
	}
	void *p = realloc(*arr, (size_t)ncap * size);
	if (!p)
		return false;
	memset((char *)p + (size_t)*cap * size, 0, (size_t)(ncap - *cap) * size);
	*arr = p;
	*cap = ncap;
	return true;
}

const char *cs_cfg_quote(const char *v, char *out, size_t outlen)
{
	size_t o = 0;
	const size_t shown = 60;
	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (size_t i = 0; v[i] && o + 6 < outlen; i++) {
		unsigned char c = (unsigned char)v[i];
		if (i == shown) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static bool is_name_char(int c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '-';
}

/* Query and replica names go into Redis keys and metrics labels. */
static bool check_object_name(const char *s, size_t len, char *why, size_t whylen)
{
	if (len == 0) {
		snprintf(why, whylen, "name missing");
		return false;
	}
	if (len > CS_MAX_NAME) {
		snprintf(why, whylen, "name longer than %d characters", CS_MAX_NAME);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_name_char((unsigned char)s[i])) {
			snprintf(why, whylen, "name may only contain A-Z a-z 0-9 _ . -");
			return false;
		}
	}
	return true;
}

/* ------------------------------------------------------------------------------------------
 * Reading the file: config_ini.c's calls into raw sections of raw entries (text values with
 * their line numbers), checked for unknown and duplicate sections and keys set twice.
 * ---------------------------------------------------------------------------------------- */

struct raw_entry {
	char *key;
	char *value;     /* continuation lines joined with '\n' */
	size_t len, cap; /* of value: continuation lines append in amortised O(1) */
	int lineno;
};

struct raw_section {
	enum section_kind kind;
	char name[CS_MAX_NAME + 1];
	int lineno;
	struct raw_entry *entries;
	int nentries, cap;
};

struct loader {
	const char *path;
	char *text;
	size_t len, pos; /* text[pos..len) is parsed (pos skips a UTF-8 BOM) */
	struct raw_section *secs;
	int nsecs, cap;
	int replicas_cap, queries_cap, shards_cap; /* of cfg->replicas, queries, shards */
	bool failed;
	char *err; /* CS_CONFIG_ERRLEN */
};

static void fail_at(struct loader *ld, int lineno, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void fail_at(struct loader *ld, int lineno, const char *fmt, ...)
{
	if (ld->failed)
		return;
	ld->failed = true;
	int n = lineno > 0 ? snprintf(ld->err, CS_CONFIG_ERRLEN, "%s:%d: ", ld->path, lineno)
	                   : snprintf(ld->err, CS_CONFIG_ERRLEN, "%s: ", ld->path);
	if (n < 0 || n >= CS_CONFIG_ERRLEN)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ld->err + n, CS_CONFIG_ERRLEN - (size_t)n, fmt, ap);
	va_end(ap);
}

static void section_label(const struct raw_section *sec, char *buf, size_t len)
{
	if (cs_cfg_sections[sec->kind].named)
		snprintf(buf, len, "[%s %s]", cs_cfg_sections[sec->kind].name, sec->name);
	else
		snprintf(buf, len, "[%s]", cs_cfg_sections[sec->kind].name);
}

/* A "[kind name]" header: validates it and opens a new raw section. */
static bool on_section(void *priv, int lineno, const char *text, size_t len)
{
	struct loader *ld = priv;
	char qv[80];
	const char *s = text, *end = text + len;
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	const char *kw = s;
	while (s < end && !isspace((unsigned char)*s))
		s++;
	size_t kwlen = (size_t)(s - kw);
	while (s < end && isspace((unsigned char)*s))
		s++;
	const char *name = s;
	size_t namelen = (size_t)(end - s);
	int k = -1;
	for (int i = 0; i < SEC__COUNT; i++) {
		if (strlen(cs_cfg_sections[i].name) == kwlen &&
		        strncasecmp(cs_cfg_sections[i].name, kw, kwlen) == 0)
			k = i;
	}
	if (k < 0) {
		char tmp[80];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)len, text);
		fail_at(ld, lineno,
		        "unknown section [%s] (expected cachesvc, redis, primary, replica NAME, "
		        "query NAME, invalidator or shard NAME)",
		        cs_cfg_quote(tmp, qv, sizeof(qv)));
		return false;
	}
	const struct section_def *sd = &cs_cfg_sections[k];
	char why[128];
	if (sd->named && !check_object_name(name, namelen, why, sizeof(why))) {
		char tmp[80];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)namelen, name);
		fail_at(ld, lineno, "[%s %s]: %s", sd->name, cs_cfg_quote(tmp, qv, sizeof(qv)),
		        why);
		return false;
	}
	if (!sd->named && namelen > 0) {
		fail_at(ld, lineno, "[%s] takes no name", sd->name);
		return false;
	}
	for (int i = 0; i < ld->nsecs; i++) {
		const struct raw_section *o = &ld->secs[i];
		if (o->kind != (enum section_kind)k)
			continue;
		if (!sd->named) {
			fail_at(ld, lineno, "duplicate section [%s] (first at line %d)", sd->name,
			        o->lineno);
			return false;
		}
		if (strlen(o->name) == namelen && memcmp(o->name, name, namelen) == 0) {
			fail_at(ld, lineno, "duplicate [%s %s] (first at line %d)", sd->name,
			        o->name, o->lineno);
			return false;
		}
	}
	if (!grow_array((void **)&ld->secs, &ld->cap, ld->nsecs + 1, sizeof(*ld->secs))) {
		fail_at(ld, lineno, "out of memory");
		return false;
	}
	struct raw_section *sec = &ld->secs[ld->nsecs++];
	sec->kind = (enum section_kind)k;
	memcpy(sec->name, name, namelen);
	sec->name[namelen] = '\0';
	sec->lineno = lineno;
	return true;
}

static struct raw_section *current_section(struct loader *ld, int lineno, const char *name)
{
	if (ld->nsecs == 0) {
		fail_at(ld, lineno, "%s: key outside any section", name);
		return NULL;
	}
	return &ld->secs[ld->nsecs - 1];
}

/* An indented line after a key line: appended to that key's value after a '\n'. */
static bool on_continuation(void *priv, int lineno, const char *value)
{
	struct loader *ld = priv;
	struct raw_section *sec = &ld->secs[ld->nsecs - 1]; /* a key line came before */
	struct raw_entry *e = &sec->entries[sec->nentries - 1];
	size_t a = e->len, b = strlen(value);
	if (a + b + 2 > e->cap) {
		size_t cap = e->cap * 2 > a + b + 2 ? e->cap * 2 : a + b + 2;
		char *p = realloc(e->value, cap);
		if (!p) {
			fail_at(ld, lineno, "out of memory");
			return false;
		}
		e->value = p;
		e->cap = cap;
	}
	e->value[a] = '\n';
	memcpy(e->value + a + 1, value, b + 1);
	e->len = a + 1 + b;
	return true;
}

static bool on_key(void *priv, int lineno, const char *name, const char *value)
{
	struct loader *ld = priv;
	struct raw_section *sec = current_section(ld, lineno, name);
	if (!sec)
		return false;
	for (int i = 0; i < sec->nentries; i++) {
		if (strcasecmp(sec->entries[i].key, name) == 0) {
			char label[100];
			section_label(sec, label, sizeof(label));
			fail_at(ld, lineno, "%s %s: set twice (first at line %d)", label, name,
			        sec->entries[i].lineno);
			return false;
		}
	}
	if (!grow_array(
	            (void **)&sec->entries, &sec->cap, sec->nentries + 1, sizeof(*sec->entries))) {
		fail_at(ld, lineno, "out of memory");
		return false;
	}
	struct raw_entry *e = &sec->entries[sec->nentries];
	e->key = strdup(name);
	e->value = strdup(value);
	e->len = strlen(value);
	e->cap = e->len + 1;
	e->lineno = lineno;
	if (!e->key || !e->value) {
		free(e->key);
		free(e->value);
		fail_at(ld, lineno, "out of memory");
		return false;
	}
	sec->nentries++;
	return true;
}

/* Parses the file text into ld->secs. False with the error in ld->err. */
static bool read_sections(struct loader *ld)
{
	static const cs_ini_handler handler = {on_section, on_key, on_continuation};
	int line;
	switch (cs_ini_parse(ld->text + ld->pos, ld->len - ld->pos, &handler, ld, &line)) {
	case CS_INI_OK:
	case CS_INI_STOPPED: /* a handler failed: ld->err says why */
		break;
	case CS_INI_SYNTAX:
		fail_at(ld, line,
		        "syntax error (expected [section], key = value, or an indented "
		        "continuation line)");
		break;
	case CS_INI_LONG_LINE:
		fail_at(ld, line, "line longer than %d bytes", CS_INI_MAX_LINE);
		break;
	case CS_INI_NOMEM:
		fail_at(ld, 0, "out of memory");
		break;
	}
	return !ld->failed;
}

static bool load_file(struct loader *ld)
{
	FILE *f = fopen(ld->path, "rb");
	if (!f) {
		fail_at(ld, 0, "cannot open: %s", strerror(errno));
		return false;
	}
	size_t cap = 0, len = 0;
	char *text = NULL;
	for (;;) {
		if (len == cap) {
			if (cap >= MAX_FILE) {
				fail_at(ld, 0, "larger than %u bytes", MAX_FILE);
				break;
			}
			cap = cap ? cap * 2 : 8192;
			char *p = realloc(text, cap + 1);
			if (!p) {
				fail_at(ld, 0, "out of memory");
				break;
			}
			text = p;
		}
		size_t n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				fail_at(ld, 0, "read error: %s", strerror(errno));
			break;
		}
	}
	fclose(f);
	if (ld->failed) {
		free(text);
		return false;
	}
	if (!text) {
		text = malloc(1);
		if (!text) {
			fail_at(ld, 0, "out of memory");
			return false;
		}
	}
	text[len] = '\0';
	ld->text = text;
	ld->len = len;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		ld->pos = 3;
	const char *nul = memchr(text, '\0', len);
	if (nul) {
		int line = 1;
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		fail_at(ld, line, "NUL byte (not a text file?)");
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------------------------------
 * Applying values
 * ---------------------------------------------------------------------------------------- */

/* Applies the text defaults of every key of `kind` to base (the built-in table cannot fail
 * except for lack of memory). */
static bool apply_defaults(enum section_kind kind, void *base, char *why, size_t whylen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &cs_cfg_keys[i];
		if (kd->section != kind || kd->def == NULL)
			continue;
		if (!cs_cfg_parse_value(kd, kd->def, base, why, whylen))
			return false;
	}
	return true;
}

static const struct key_def *find_key(enum section_kind kind, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (cs_cfg_keys[i].section == kind && strcasecmp(cs_cfg_keys[i].name, name) == 0)
			return &cs_cfg_keys[i];
	}
	return NULL;
}

static const struct raw_entry *find_entry(const struct raw_section *sec, const char *key)
{
	for (int i = 0; i < sec->nentries; i++) {
		if (strcasecmp(sec->entries[i].key, key) == 0)
			return &sec->entries[i];
	}
	return NULL;
}

void cs_cfg_format_duration(int64_t ms, char *buf, size_t len);

/* Fills the kind-dependent defaults of a query for the keys not set in the file. */
static bool apply_kind_defaults(cs_query_def *q, const keyset *set, char *why, size_t whylen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &cs_cfg_keys[i];
		if (kd->section != SEC_QUERY || !kd->kind_def[q->kind] || keyset_has(set, i))
			continue;
		const char *def = kd->kind_def[q->kind];
		if (strcmp(def, "$ttl") == 0)
			*(int64_t *)cs_cfg_field(q, kd) = q->ttl_ms;
		else if (strcmp(def, "$ttl+swr") == 0)
			*(int64_t *)cs_cfg_field(q, kd) = q->ttl_ms + q->stale_while_revalidate_ms;
		else if (!cs_cfg_parse_value(kd, def, q, why, whylen))
			return false;
	}
	return true;
}

static void query_free(cs_query_def *q)
{
	free(q->sql);
	free(q->shard_key);
	free(q->shard);
	cs_cfg_inval_free(q);
}

static void replica_free(cs_replica_def *r)
{
	free(r->conninfo);
	free(r->shard);
}

static void shard_free(cs_shard_def *sh)
{
	free(sh->conninfo);
	free(sh->slot);
}

/* Checks what spans several keys of one query. */
static bool validate_query(struct loader *ld, const struct raw_section *sec, cs_query_def *q)
{
	char label[100], why[CS_CONFIG_ERRLEN];
	section_label(sec, label, sizeof(label));
	const struct raw_entry *e = find_entry(sec, "sql");
	uint64_t highest, used;
	if (!cs_sql_scan_placeholders(q->sql, &highest, &used, why, sizeof(why))) {
		fail_at(ld, e->lineno, "%s sql: %s", label, why);
		return false;
	}
	if (highest != (uint64_t)q->nparams) {
		const struct raw_entry *pe = find_entry(sec, "params");
		if (highest > (uint64_t)q->nparams)
			fail_at(ld, pe ? pe->lineno : e->lineno,
			        "%s params: sql uses $%" PRIu64
			        " but params declares %d parameter%s",
			        label, highest, q->nparams, q->nparams == 1 ? "" : "s");
		else
			fail_at(ld, pe ? pe->lineno : e->lineno,
			        "%s params: %d parameter%s declared but sql uses only up to "
			        "$%" PRIu64,
			        label, q->nparams, q->nparams == 1 ? "" : "s", highest);
		return false;
	}
	for (int i = 0; i < q->nparams; i++) {
		if (!(used & (1ull << i))) {
			fail_at(ld, e->lineno, "%s sql: $%d (%s) is never used", label, i + 1,
			        q->params[i].name);
			return false;
		}
	}
	if (q->max_stale_ms < q->ttl_ms + q->stale_while_revalidate_ms) {
		const struct raw_entry *me = find_entry(sec, "max_stale");
		char a[32], b[32];
		cs_cfg_format_duration(q->max_stale_ms, a, sizeof(a));
		cs_cfg_format_duration(q->ttl_ms + q->stale_while_revalidate_ms, b, sizeof(b));
		fail_at(ld, me ? me->lineno : sec->lineno,
		        "%s max_stale: %s is less than ttl + stale_while_revalidate (%s)", label, a,
		        b);
		return false;
	}
	return true;
}

/* Applies one raw section to cfg: creates the replica/query, sets every key in table order
 * (kind before policies, params before invalidate_on), fills defaults. */
static bool apply_section(struct loader *ld, cs_config *cfg, const struct raw_section *sec)
{
	char label[100], why[CS_CONFIG_ERRLEN];
	section_label(sec, label, sizeof(label));
	for (int i = 0; i < sec->nentries; i++) {
		const struct raw_entry *e = &sec->entries[i];
		if (find_key(sec->kind, e->key))
			continue;
		for (int k = 0; k < SEC__COUNT; k++) {
			if (find_key((enum section_kind)k, e->key)) {
				fail_at(ld, e->lineno,
				        "%s %s: unknown key here (it belongs in [%s%s])", label,
				        e->key, cs_cfg_sections[k].name,
				        cs_cfg_sections[k].named ? " NAME" : "");
				return false;
			}
		}
		fail_at(ld, e->lineno, "%s %s: unknown key", label, e->key);
		return false;
	}

	void *base = cfg;
	if (sec->kind == SEC_REPLICA) {
		if (cfg->nreplicas >= CS_MAX_REPLICAS) {
			fail_at(ld, sec->lineno, "[replica %s]: too many replicas (at most %d)",
			        sec->name, CS_MAX_REPLICAS);
			return false;
		}
		if (!grow_array((void **)&cfg->replicas, &ld->replicas_cap, cfg->nreplicas + 1,
		            sizeof(*cfg->replicas))) {
			fail_at(ld, sec->lineno, "out of memory");
			return false;
		}
		cs_replica_def *r = &cfg->replicas[cfg->nreplicas++];
		memcpy(r->name, sec->name, sizeof(r->name));
		r->shard_index = -1;
		base = r;
	} else if (sec->kind == SEC_QUERY) {
		if (!grow_array((void **)&cfg->queries, &ld->queries_cap, cfg->nqueries + 1,
		            sizeof(*cfg->queries))) {
			fail_at(ld, sec->lineno, "out of memory");
			return false;
		}
		cs_query_def *q = &cfg->queries[cfg->nqueries++];
		memcpy(q->name, sec->name, sizeof(q->name));
		q->shard_key_index = -1;
		q->shard_index = -1;
		base = q;
	} else if (sec->kind == SEC_SHARD) {
		if (cfg->nshards >= CS_MAX_SHARDS) {
			fail_at(ld, sec->lineno, "[shard %s]: too many shards (at most %d)",
			        sec->name, CS_MAX_SHARDS);
			return false;
		}
		if (!grow_array((void **)&cfg->shards, &ld->shards_cap, cfg->nshards + 1,
		            sizeof(*cfg->shards))) {
			fail_at(ld, sec->lineno, "out of memory");
			return false;
		}
		cs_shard_def *sh = &cfg->shards[cfg->nshards++];
		memcpy(sh->name, sec->name, sizeof(sh->name));
		base = sh;
	}
	if (base != cfg && !apply_defaults(sec->kind, base, why, sizeof(why))) {
		fail_at(ld, sec->lineno, "%s: %s", label, why);
		return false;
	}

	keyset set = {{0}};
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &cs_cfg_keys[i];
		if (kd->section != sec->kind)
			continue;
		const struct raw_entry *e = find_entry(sec, kd->name);
		if (!e) {
			if (kd->flags & KF_REQUIRED) {
				fail_at(ld, sec->lineno, "%s %s: required key missing", label,
				        kd->name);
				return false;
			}
			continue;
		}
		keyset_add(&set, i);
		if (!cs_cfg_parse_value(kd, e->value, base, why, sizeof(why))) {
			fail_at(ld, e->lineno, "%s %s: %s", label, kd->name, why);
			return false;
		}
	}
	if (sec->kind == SEC_QUERY) {
		cs_query_def *q = base;
		if (!apply_kind_defaults(q, &set, why, sizeof(why))) {
			fail_at(ld, sec->lineno, "%s: %s", label, why);
			return false;
		}
		return validate_query(ld, sec, q);
	}
	return true;
}

/* Whether the host of a listen address ("host:port", "[v6]:port") is a loopback address
 * (127.0.0.0/8, ::1, ::ffff:127.x.y.z) or "localhost". Anything else, including names
 * (which the listener refuses anyway), may be reachable from other machines. */
static bool listen_is_loopback(const char *addr)
{
	char host[128];
	const char *start = addr, *end;
	if (addr[0] == '[') {
		start = addr + 1;
		end = strchr(start, ']');
	} else {
		end = strrchr(addr, ':');
	}
	if (end == NULL || (size_t)(end - start) >= sizeof(host))
		return false;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return strcmp(host, "localhost") == 0;
}

/* Checks that span sections. */
/* [redis] cluster: what a cluster needs, refused at load with the reason. */
static bool validate_cluster(struct loader *ld, cs_config *cfg)
{
	const struct raw_section *rs = NULL;
	for (int i = 0; i < ld->nsecs; i++) {
		if (ld->secs[i].kind == SEC_REDIS)
			rs = &ld->secs[i];
	}
	const struct raw_entry *ce = rs ? find_entry(rs, "cluster") : NULL;
	int line = ce ? ce->lineno : 0;
	if (!cfg->redis_cluster) {
		const struct raw_entry *ne = rs ? find_entry(rs, "nodes") : NULL;
		if (cfg->redis_nodes && cfg->redis_nodes[0]) {
			fail_at(ld, ne ? ne->lineno : 0,
			        "[redis] nodes: set but cluster is off; set cluster = on to use a "
			        "Redis "
			        "Cluster, or remove nodes (a single Redis is [redis] url)");
			return false;
		}
		return true;
	}
	if (cfg->redis_nodes == NULL || cfg->redis_nodes[0] == '\0') {
		fail_at(ld, line,
		        "[redis] cluster: on needs nodes = host:port, host:port, ... (seed "
		        "nodes of the cluster)");
		return false;
	}
	char ns[33];
	cs_config_namespace(cfg, ns);
	if (strpbrk(ns, "{}") != NULL) {
		const struct raw_entry *e = rs ? find_entry(rs, "namespace") : NULL;
		fail_at(ld, e ? e->lineno : line,
		        "[redis] namespace: \"%s\" may not hold { or } on a cluster (every key's "
		        "hash "
		        "tag is {<namespace>:<bucket>})",
		        ns);
		return false;
	}
	cs_redis_url u;
	char why[256];
	bool ok = cs_redis_url_parse(cfg->redis_url, &u, why, sizeof why);
	bool bad = ok && (u.unix_path[0] != '\0' || u.db != 0);
	memset(&u, 0, sizeof u); /* holds a password */
	if (bad) {
		const struct raw_entry *e = rs ? find_entry(rs, "url") : NULL;
		fail_at(ld, e ? e->lineno : line,
		        "[redis] url: on a cluster it gives only the user and password: a Redis "
		        "Cluster has database 0 alone and no unix socket (use "
		        "redis://[user:password@]"
		        "host or leave url unset)");
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------------------------------
 * Shards (backend/SHARDS.md): [shard NAME] sections, [cachesvc] shard_map and shard_ranges,
 * [replica NAME] shard, [query NAME] shard_key and shard. Checked once every section is
 * applied, since they name each other.
 * ---------------------------------------------------------------------------------------- */

/* The line of `key` in the raw section of kind/name (name NULL for unnamed sections), else
 * the section's line, else 0. */
static int key_line(
        const struct loader *ld, enum section_kind kind, const char *name, const char *key)
{
	for (int i = 0; i < ld->nsecs; i++) {
		const struct raw_section *sec = &ld->secs[i];
		if (sec->kind != kind || (name && strcmp(sec->name, name) != 0))
			continue;
		const struct raw_entry *e = key ? find_entry(sec, key) : NULL;
		return e ? e->lineno : sec->lineno;
	}
	return 0;
}

static int shard_find(const cs_config *cfg, const char *name, size_t len)
{
	for (int i = 0; i < cfg->nshards; i++) {
		if (strlen(cfg->shards[i].name) == len &&
		        memcmp(cfg->shards[i].name, name, len) == 0)
			return i;
	}
	return -1;
}

/* "s1, s2, s3" into out, for messages. */
static const char *shard_names(const cs_config *cfg, char *out, size_t outlen)
{
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < cfg->nshards && o < outlen; i++) {
		int n = snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", cfg->shards[i].name);
		if (n < 0)
			break;
		o += (size_t)n;
	}
	return out;
}

/* host (or hostaddr), port and dbname of a conninfo, to spot two shards naming one
 * database. Values empty when not written (libpq's defaults then apply to both alike). */
static bool conninfo_target(const char *conninfo, char *out, size_t outlen)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	if (!opts)
		return false;
	const char *host = "", *hostaddr = "", *port = "", *db = "";
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
	}
	snprintf(out, outlen, "%s|%s|%s|%s", host, hostaddr, port, db);
	PQconninfoFree(opts);
	return true;
}

static int range_cmp(const void *a, const void *b)
{
	const cs_shard_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Parses "LO-HI:NAME, ..." into cfg->shard_ranges, sorted, and checks that the ranges
 * neither overlap nor leave a gap. False with the reason in why. */
static bool parse_shard_ranges(cs_config *cfg, const char *v, char *why, size_t whylen)
{
	char names[300], qv[80];
	const char *p = v;
	for (;;) {
		p = cs_cfg_skip_space(p);
		if (*p == '\0')
			break;
		if (cfg->nshard_ranges >= CS_MAX_SHARD_RANGES) {
			snprintf(why, whylen, "more than %d ranges", CS_MAX_SHARD_RANGES);
			return false;
		}
		const char *item = p;
		size_t itemlen = strcspn(item, ",");
		char text[160];
		snprintf(text, sizeof text, "%.*s", (int)itemlen, item);
		char *end;
		errno = 0;
		long long lo = strtoll(p, &end, 10);
		bool ok = errno == 0 && end != p && *end == '-';
		long long hi = 0;
		if (ok) {
			p = end + 1;
			errno = 0;
			hi = strtoll(p, &end, 10);
			ok = errno == 0 && end != p && *end == ':';
		}
		if (!ok) {
			snprintf(why, whylen, "%s: expected LO-HI:SHARD (integers, inclusive)",
			        cs_cfg_quote(text, qv, sizeof qv));
			return false;
		}
		if (lo > hi) {
			snprintf(why, whylen, "%s: %lld is above %lld",
			        cs_cfg_quote(text, qv, sizeof qv), lo, hi);
			return false;
		}
		const char *name = cs_cfg_skip_space(end + 1);
		size_t nlen = strcspn(name, ",");
		while (nlen > 0 && isspace((unsigned char)name[nlen - 1]))
			nlen--;
		int sh = shard_find(cfg, name, nlen);
		if (sh < 0) {
			char tmp[80];
			snprintf(tmp, sizeof tmp, "%.*s", (int)nlen, name);
			snprintf(why, whylen, "unknown shard %s (shards: %s)",
			        cs_cfg_quote(tmp, qv, sizeof qv),
			        shard_names(cfg, names, sizeof names));
			return false;
		}
		cs_shard_range *r = realloc(cfg->shard_ranges,
		        (size_t)(cfg->nshard_ranges + 1) * sizeof(*cfg->shard_ranges));
		if (!r) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
		cfg->shard_ranges = r;
		r[cfg->nshard_ranges++] = (cs_shard_range){lo, hi, sh};
		p = item + itemlen;
		if (*p == ',')
			p++;
	}
	if (cfg->nshard_ranges == 0) {
		snprintf(why, whylen, "no range");
		return false;
	}
	qsort(cfg->shard_ranges, (size_t)cfg->nshard_ranges, sizeof(*cfg->shard_ranges), range_cmp);
	for (int i = 1; i < cfg->nshard_ranges; i++) {
		const cs_shard_range *a = &cfg->shard_ranges[i - 1], *b = &cfg->shard_ranges[i];
		if (b->lo <= a->hi) {
			snprintf(why, whylen,
			        "%" PRId64 "-%" PRId64 ":%s and %" PRId64 "-%" PRId64
			        ":%s overlap (a key must live on one shard)",
			        a->lo, a->hi, cfg->shards[a->shard].name, b->lo, b->hi,
			        cfg->shards[b->shard].name);
			return false;
		}
		if (b->lo != a->hi + 1) {
			snprintf(why, whylen,
			        "gap: keys %" PRId64 "-%" PRId64
			        " are in no range (between %" PRId64 "-%" PRId64 ":%s and %" PRId64
			        "-%" PRId64 ":%s)",
			        a->hi + 1, b->lo - 1, a->lo, a->hi, cfg->shards[a->shard].name,
			        b->lo, b->hi, cfg->shards[b->shard].name);
			return false;
		}
	}
	return true;
}

/* Without [shard NAME] sections, no shard key may be set: the config is what it was before
 * shards existed (one implicit shard, [primary]). */
static bool validate_no_shards(struct loader *ld, const cs_config *cfg)
{
	static const char none[] = "there are no [shard NAME] sections";
	if (cfg->shard_map_text) {
		fail_at(ld, key_line(ld, SEC_SERVICE, NULL, "shard_map"),
		        "[cachesvc] shard_map: set but %s", none);
		return false;
	}
	if (cfg->shard_ranges_text) {
		fail_at(ld, key_line(ld, SEC_SERVICE, NULL, "shard_ranges"),
		        "[cachesvc] shard_ranges: set but %s", none);
		return false;
	}
	for (int i = 0; i < cfg->nreplicas; i++) {
		const cs_replica_def *r = &cfg->replicas[i];
		if (r->shard) {
			fail_at(ld, key_line(ld, SEC_REPLICA, r->name, "shard"),
			        "[replica %s] shard: unknown shard \"%s\" (%s)", r->name, r->shard,
			        none);
			return false;
		}
	}
	for (int i = 0; i < cfg->nqueries; i++) {
		const cs_query_def *q = &cfg->queries[i];
		if (q->shard) {
			fail_at(ld, key_line(ld, SEC_QUERY, q->name, "shard"),
			        "[query %s] shard: unknown shard \"%s\" (%s)", q->name, q->shard,
			        none);
			return false;
		}
		if (q->shard_key) {
			fail_at(ld, key_line(ld, SEC_QUERY, q->name, "shard_key"),
			        "[query %s] shard_key: set but %s", q->name, none);
			return false;
		}
	}
	return true;
}

static bool validate_shard_query(struct loader *ld, cs_config *cfg, cs_query_def *q)
{
	char names[300];
	if (q->shard && q->shard_key) {
		fail_at(ld, key_line(ld, SEC_QUERY, q->name, "shard"),
		        "[query %s] shard: set together with shard_key; a query either routes by "
		        "its key or is pinned to one shard",
		        q->name);
		return false;
	}
	if (q->shard) {
		q->shard_index = shard_find(cfg, q->shard, strlen(q->shard));
		if (q->shard_index < 0) {
			fail_at(ld, key_line(ld, SEC_QUERY, q->name, "shard"),
			        "[query %s] shard: unknown shard \"%s\" (shards: %s)", q->name,
			        q->shard, shard_names(cfg, names, sizeof names));
			return false;
		}
		return true;
	}
	if (!q->shard_key) {
		fail_at(ld, key_line(ld, SEC_QUERY, q->name, NULL),
		        "[query %s] shard_key: missing; with [shard NAME] sections every table is "
		        "sharded, so a query names the parameter that picks its shard (shard_key = "
		        "PARAM) or, when its tables live on one shard only, that shard (shard = "
		        "NAME)",
		        q->name);
		return false;
	}
	for (int i = 0; i < q->nparams; i++) {
		if (strcmp(q->params[i].name, q->shard_key) == 0)
			q->shard_key_index = i;
	}
	if (q->shard_key_index < 0) {
		char plist[CS_MAX_PARAMS * (CS_MAX_NAME + 2) + 1];
		size_t o = 0;
		plist[0] = '\0';
		for (int i = 0; i < q->nparams; i++)
			o += (size_t)snprintf(plist + o, sizeof plist - o, "%s%s", i ? ", " : "",
			        q->params[i].name);
		fail_at(ld, key_line(ld, SEC_QUERY, q->name, "shard_key"),
		        "[query %s] shard_key: \"%s\" is not one of the query's parameters (%s)",
		        q->name, q->shard_key, q->nparams ? plist : "it has none");
		return false;
	}
	cs_param_type t = q->params[q->shard_key_index].type;
	if (cs_shard_family_of(t) == CS_SF_NONE) {
		fail_at(ld, key_line(ld, SEC_QUERY, q->name, "shard_key"),
		        "[query %s] shard_key: \"%s\" is %s; a shard key must be int2, int4, int8, "
		        "text, bytea or uuid (the text forms of other types are not reproducible "
		        "byte for byte by an application's router: SHARDS.md section 3)",
		        q->name, q->shard_key, cs_param_type_name(t));
		return false;
	}
	if (cfg->shard_map == CS_SHARD_MAP_RANGES && t != CS_PT_INT2 && t != CS_PT_INT4 &&
	        t != CS_PT_INT8) {
		fail_at(ld, key_line(ld, SEC_QUERY, q->name, "shard_key"),
		        "[query %s] shard_key: \"%s\" is %s; shard_map = ranges needs an integer "
		        "parameter (int2, int4 or int8)",
		        q->name, q->shard_key, cs_param_type_name(t));
		return false;
	}
	return true;
}

static bool validate_shards(struct loader *ld, cs_config *cfg)
{
	char why[CS_CONFIG_ERRLEN], names[300];
	if (cfg->nshards == 0)
		return validate_no_shards(ld, cfg);
	if (cfg->primary_conninfo) {
		fail_at(ld, key_line(ld, SEC_PRIMARY, NULL, NULL),
		        "[primary]: not allowed with [shard NAME] sections (each shard names its "
		        "primary: [shard NAME] conninfo)");
		return false;
	}
	for (int i = 0; i < cfg->nshards; i++) {
		char a[600], b[600];
		if (!conninfo_target(cfg->shards[i].conninfo, a, sizeof a))
			continue; /* cannot happen: checked when parsed */
		for (int j = 0; j < i; j++) {
			if (conninfo_target(cfg->shards[j].conninfo, b, sizeof b) &&
			        strcmp(a, b) == 0) {
				fail_at(ld,
				        key_line(ld, SEC_SHARD, cfg->shards[i].name, "conninfo"),
				        "[shard %s] conninfo: the same server and database as "
				        "[shard %s] "
				        "(each shard is its own primary)",
				        cfg->shards[i].name, cfg->shards[j].name);
				return false;
			}
		}
	}
	/* review 28 R28-1: a replication slot's name is unique per PostgreSQL server, not per
	 * database: two shards on one server (two databases) sharing a slot name would leave one
	 * invalidator standing by for ever behind the other, its shard never invalidated. A
	 * shard without its own slot takes "<[invalidator] slot>_<shard>" (lower case, '.' and
	 * '-' as '_'), and no two shards' slots may have the same name (even on two servers: a
	 * conninfo does not always tell whether two are one). Only with the invalidator on
	 * (review 29 R29-2). */
	for (int i = 0; cfg->inval_enabled && i < cfg->nshards; i++) {
		cs_shard_def *sh = &cfg->shards[i];
		int line = key_line(ld, SEC_SHARD, sh->name, "slot"); /* else the section's */
		if (sh->slot == NULL) {
			char d[80];
			int n = snprintf(d, sizeof d, "%s_%s",
			        cfg->inval_slot ? cfg->inval_slot : "cachesvc", sh->name);
			if (n < 0 || n > 63) {
				fail_at(ld, line,
				        "[shard %s] slot: needed (\"%s_%s\", the default, is "
				        "longer than PostgreSQL's 63 bytes)",
				        sh->name, cfg->inval_slot ? cfg->inval_slot : "cachesvc",
				        sh->name);
				return false;
			}
			for (char *c = d; *c; c++)
				*c = *c == '.' || *c == '-' ? '_'
				                            : (char)tolower((unsigned char)*c);
			if ((sh->slot = strdup(d)) == NULL) {
				fail_at(ld, line, "out of memory");
				return false;
			}
		}
		for (int j = 0; j < i; j++) {
			if (strcmp(sh->slot, cfg->shards[j].slot) == 0) {
				fail_at(ld, line,
				        "[shard %s] slot: \"%s\" is also [shard %s]'s (a slot name "
				        "is "
				        "unique per PostgreSQL server, not per database: give "
				        "each shard its own)",
				        sh->name, sh->slot, cfg->shards[j].name);
				return false;
			}
		}
	}
	int map_line = key_line(ld, SEC_SERVICE, NULL, "shard_map");
	int ranges_line = key_line(ld, SEC_SERVICE, NULL, "shard_ranges");
	if (cfg->shard_map_text == NULL) {
		fail_at(ld, map_line,
		        "[cachesvc] shard_map: required with [shard NAME] sections: hash, or "
		        "ranges "
		        "with shard_ranges");
		return false;
	}
	cfg->shard_map = strcmp(cfg->shard_map_text, "ranges") == 0 ? CS_SHARD_MAP_RANGES
	                                                            : CS_SHARD_MAP_HASH;
	if (cfg->shard_map == CS_SHARD_MAP_HASH && cfg->shard_ranges_text) {
		fail_at(ld, ranges_line,
		        "[cachesvc] shard_ranges: set but shard_map = hash (ranges need shard_map "
		        "= "
		        "ranges)");
		return false;
	}
	if (cfg->shard_map == CS_SHARD_MAP_RANGES) {
		if (cfg->shard_ranges_text == NULL) {
			fail_at(ld, map_line,
			        "[cachesvc] shard_ranges: required by shard_map = ranges "
			        "(LO-HI:SHARD, "
			        "...)");
			return false;
		}
		if (!parse_shard_ranges(cfg, cfg->shard_ranges_text, why, sizeof why)) {
			fail_at(ld, ranges_line, "[cachesvc] shard_ranges: %s", why);
			return false;
		}
	}
	for (int i = 0; i < cfg->nreplicas; i++) {
		cs_replica_def *r = &cfg->replicas[i];
		if (r->shard == NULL) {
			fail_at(ld, key_line(ld, SEC_REPLICA, r->name, NULL),
			        "[replica %s] shard: missing; with [shard NAME] sections every "
			        "replica "
			        "names the shard whose primary it follows (shards: %s)",
			        r->name, shard_names(cfg, names, sizeof names));
			return false;
		}
		r->shard_index = shard_find(cfg, r->shard, strlen(r->shard));
		if (r->shard_index < 0) {
			fail_at(ld, key_line(ld, SEC_REPLICA, r->name, "shard"),
			        "[replica %s] shard: unknown shard \"%s\" (shards: %s)", r->name,
			        r->shard, shard_names(cfg, names, sizeof names));
			return false;
		}
	}
	for (int i = 0; i < cfg->nqueries; i++) {
		if (!validate_shard_query(ld, cfg, &cfg->queries[i]))
			return false;
	}
	/* One type family for every shard key: int8 42 and text "42" hash apart, so a user id
	 * keyed as int8 in one query and as text or numeric in another would route to two
	 * shards (SHARDS.md section 3). */
	const cs_query_def *first = NULL;
	for (int i = 0; i < cfg->nqueries; i++) {
		const cs_query_def *q = &cfg->queries[i];
		if (q->shard_key_index < 0)
			continue;
		if (first == NULL) {
			first = q;
			continue;
		}
		const cs_param_def *a = &first->params[first->shard_key_index];
		const cs_param_def *b = &q->params[q->shard_key_index];
		if (cs_shard_family_of(a->type) != cs_shard_family_of(b->type)) {
			fail_at(ld, key_line(ld, SEC_QUERY, q->name, "shard_key"),
			        "[query %s] shard_key: \"%s\" is %s, but [query %s] shard_key "
			        "\"%s\" is %s: every shard key must be of one type family "
			        "(here %s), or the same key would route to different shards from "
			        "different queries",
			        q->name, b->name, cs_param_type_name(b->type), first->name, a->name,
			        cs_param_type_name(a->type),
			        cs_shard_family_name(cs_shard_family_of(a->type)));
			return false;
		}
	}
	/* With ranges, a shard in no range that no query pins would receive nothing: a typo in
	 * shard_ranges, most likely. (With hash every shard receives keys.) */
	for (int s = 0; s < cfg->nshards && cfg->shard_map == CS_SHARD_MAP_RANGES; s++) {
		bool used = false;
		for (int i = 0; i < cfg->nshard_ranges && !used; i++)
			used = cfg->shard_ranges[i].shard == s;
		for (int i = 0; i < cfg->nqueries && !used; i++)
			used = cfg->queries[i].shard_index == s;
		if (!used) {
			fail_at(ld, ranges_line,
			        "[cachesvc] shard_ranges: [shard %s] is in no range and no query "
			        "is "
			        "pinned to it (shard = %s): it would receive nothing",
			        cfg->shards[s].name, cfg->shards[s].name);
			return false;
		}
	}
	return true;
}

static bool validate_config(struct loader *ld, cs_config *cfg)
{
	const struct raw_section *svc = NULL;
	for (int i = 0; i < ld->nsecs; i++) {
		if (ld->secs[i].kind == SEC_SERVICE)
			svc = &ld->secs[i];
	}
	/* Issue 14: a client port reachable from other machines without a token lets anyone
	 * there read every cached query and INVALIDATE. That takes an explicit opt-in (a
	 * trusted network, or a firewall in front). The unix socket is guarded by its file
	 * mode, the admin endpoint (aggregate counters and health, no data, no writes, and no
	 * token to check) is exempt: Prometheus usually scrapes it from another host. */
	if (cfg->listen && cfg->auth_token == NULL && !cfg->allow_unauthenticated &&
	        !listen_is_loopback(cfg->listen)) {
		const struct raw_entry *e = svc ? find_entry(svc, "listen") : NULL;
		fail_at(ld, e ? e->lineno : 0,
		        "[cachesvc] listen: %s is not a loopback address and auth_token is unset: "
		        "anyone "
		        "who can reach it could read every cached query and invalidate; set "
		        "auth_token, "
		        "or allow_unauthenticated = on if the network is trusted",
		        cfg->listen);
		return false;
	}
	if (cfg->admin_token && cfg->auth_token && strcmp(cfg->admin_token, cfg->auth_token) == 0) {
		const struct raw_entry *e = svc ? find_entry(svc, "admin_token") : NULL;
		fail_at(ld, e ? e->lineno : 0,
		        "[cachesvc] admin_token: equals auth_token, so every client could run "
		        "admin "
		        "operations; give it a value of its own, or leave it unset");
		return false;
	}
	const struct raw_section *inv = NULL;
	for (int i = 0; i < ld->nsecs; i++) {
		if (ld->secs[i].kind == SEC_INVALIDATOR)
			inv = &ld->secs[i];
	}
	if (!validate_shards(ld, cfg))
		return false;
	if (cfg->primary_conninfo == NULL && cfg->nreplicas == 0 && cfg->nshards == 0) {
		fail_at(ld, 0, "no [primary] and no [replica NAME] section: nothing to read from");
		return false;
	}
	if (cfg->client_output_hard < cfg->client_output_soft ||
	        cfg->client_output_hard <= cfg->max_reply) {
		fail_at(ld, 0,
		        "[cachesvc] client_output_hard_limit: must be at least "
		        "client_output_soft_limit "
		        "and above max_reply (a client waiting for one largest reply is within "
		        "it)");
		return false;
	}
	if (!validate_cluster(ld, cfg))
		return false;
	if (cfg->inval_enabled && cfg->primary_conninfo == NULL && cfg->nshards == 0) {
		const struct raw_entry *e = inv ? find_entry(inv, "enabled") : NULL;
		fail_at(ld, e ? e->lineno : 0,
		        "[invalidator] enabled: needs a [primary] section (the slot lives there)");
		return false;
	}
	return true;
}

static void loader_free(struct loader *ld)
{
	for (int i = 0; i < ld->nsecs; i++) {
		for (int j = 0; j < ld->secs[i].nentries; j++) {
			free(ld->secs[i].entries[j].key);
			free(ld->secs[i].entries[j].value);
		}
		free(ld->secs[i].entries);
	}
	free(ld->secs);
	free(ld->text);
}

cs_config *cs_config_load(const char *path, char errbuf[CS_CONFIG_ERRLEN])
{
	struct loader ld = {.path = path ? path : "(null)", .err = errbuf};
	char why[CS_CONFIG_ERRLEN];
	errbuf[0] = '\0';
	if (path == NULL) {
		fail_at(&ld, 0, "no config file");
		return NULL;
	}
	if (!load_file(&ld)) {
		loader_free(&ld);
		return NULL;
	}

	if (!read_sections(&ld)) {
		loader_free(&ld);
		return NULL;
	}

	cs_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(path))) {
		free(cfg);
		fail_at(&ld, 0, "out of memory");
		loader_free(&ld);
		return NULL;
	}
	for (int k = 0; k < SEC__COUNT; k++) {
		if (!cs_cfg_sections[k].named &&
		        !apply_defaults((enum section_kind)k, cfg, why, sizeof(why))) {
			fail_at(&ld, 0, "%s", why);
			goto fail;
		}
	}
	for (int i = 0; i < ld.nsecs; i++) {
		if (!apply_section(&ld, cfg, &ld.secs[i]))
			goto fail;
	}
	if (!validate_config(&ld, cfg))
		goto fail;
	loader_free(&ld);
	return cfg;
fail:
	loader_free(&ld);
	cs_config_free(cfg);
	return NULL;
}

void cs_config_free(cs_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &cs_cfg_keys[i];
		if (kd->type == KT_STRING && !cs_cfg_sections[kd->section].named)
			free(*(char **)cs_cfg_field(cfg, kd));
	}
	for (int i = 0; i < cfg->nreplicas; i++)
		replica_free(&cfg->replicas[i]);
	for (int i = 0; i < cfg->nqueries; i++)
		query_free(&cfg->queries[i]);
	for (int i = 0; i < cfg->nshards; i++)
		shard_free(&cfg->shards[i]);
	free(cfg->replicas);
	free(cfg->queries);
	free(cfg->shards);
	free(cfg->shard_ranges);
	free(cfg->path);
	free(cfg);
}

const cs_query_def *cs_config_query(const cs_config *cfg, const char *name, size_t len)
{
	if (!cfg || !name || len > CS_MAX_NAME)
		return NULL;
	for (int i = 0; i < cfg->nqueries; i++) {
		const cs_query_def *q = &cfg->queries[i];
		if (strncmp(q->name, name, len) == 0 && q->name[len] == '\0')
			return q;
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------------
 * Reload
 * ---------------------------------------------------------------------------------------- */

/* Equality of one scalar key (params and invalidate_on only exist in reloadable [query]). */
static bool key_equal(const struct key_def *kd, const void *a, const void *b)
{
	const void *fa = cs_cfg_field_const(a, kd), *fb = cs_cfg_field_const(b, kd);
	switch (kd->type) {
	case KT_STRING:
		return streq_null(*(char *const *)fa, *(char *const *)fb);
	case KT_INT:
	case KT_PERCENT:
		return *(const int *)fa == *(const int *)fb;
	case KT_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case KT_DURATION:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	case KT_SIZE32:
		return *(const uint32_t *)fa == *(const uint32_t *)fb;
	case KT_SIZE64:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case KT_DOUBLE:
		return *(const double *)fa == *(const double *)fb;
	case KT_KIND:
		return *(const cs_query_kind *)fa == *(const cs_query_kind *)fb;
	case KT_TIERS:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case KT_PARAMS:
	case KT_INVALIDATE:
		return true;
	}
	return false;
}

bool cs_config_reloadable(
        const cs_config *cur, const cs_config *next, char errbuf[CS_CONFIG_ERRLEN])
{
	errbuf[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &cs_cfg_keys[i];
		if (cs_cfg_sections[kd->section].named || (kd->flags & KF_RELOAD))
			continue;
		if (!key_equal(kd, cur, next)) {
			snprintf(errbuf, CS_CONFIG_ERRLEN,
			        "[%s] %s changed; it cannot be reloaded (restart to apply)",
			        cs_cfg_sections[kd->section].name, kd->name);
			return false;
		}
	}
	/* [shard NAME] sections are restart-only: a shard's pool, slot and the map that sends
	 * keys to it are built once (SHARDS.md). */
	bool same = cur->nshards == next->nshards;
	for (int i = 0; same && i < cur->nshards; i++) {
		const cs_shard_def *a = &cur->shards[i], *b = &next->shards[i];
		same = strcmp(a->name, b->name) == 0 && strcmp(a->conninfo, b->conninfo) == 0 &&
		       a->pool_size == b->pool_size && streq_null(a->slot, b->slot);
	}
	if (!same) {
		snprintf(errbuf, CS_CONFIG_ERRLEN,
		        "[shard NAME] sections changed; they cannot be reloaded (restart to "
		        "apply)");
		return false;
	}
	/* [replica NAME] sections may be added, removed or changed (conninfo, tier,
	 * pool_size): the engine keeps the pools of unchanged ones and drains the others
	 * (engine.c servers_reload). [primary] stays restart-only (checked above). */
	return true;
}

/* FNV-1a-64 of a length, then the bytes: no two field sequences hash the same input */
static uint64_t fp_field(uint64_t h, const void *p, size_t n)
{
	uint64_t len = n;
	h = cs_fnv1a64(h, &len, sizeof len);
	return cs_fnv1a64(h, p, n);
}

static uint64_t fp_str(uint64_t h, const char *s)
{
	return fp_field(h, s ? s : "", s ? strlen(s) : 0);
}

/* Everything but the SQL, from h on (both fingerprints below). */
static uint64_t fp_routing_and_rules(uint64_t h, const cs_query_def *d, const cs_config *cfg)
{
	int32_t v[2] = {d->nparams, d->shard_key_index};
	h = fp_field(h, v, sizeof v);
	for (int i = 0; i < d->nparams; i++) {
		int32_t t = (int32_t)d->params[i].type;
		h = fp_field(h, &t, sizeof t);
	}
	h = fp_str(h, d->shard_index >= 0 && d->shard_index < cfg->nshards
	                      ? cfg->shards[d->shard_index].name
	                      : "");
	int32_t ni = d->ninval;
	h = fp_field(h, &ni, sizeof ni);
	for (int i = 0; i < d->ninval; i++) {
		const cs_inval_rule *r = &d->inval[i];
		h = fp_str(h, r->schema);
		h = fp_str(h, r->table);
		int32_t nc = r->ncols;
		h = fp_field(h, &nc, sizeof nc);
		for (int k = 0; k < r->ncols; k++) {
			int32_t pi = r->param_index[k];
			h = fp_str(h, r->cols[k]);
			h = fp_field(h, &pi, sizeof pi);
		}
	}
	return h;
}

void cs_query_fingerprint(const cs_query_def *d, const cs_config *cfg, char out[17])
{
	/* what query_same and inval_same compare, with the pinned shard by name (an index
	 * into the [shard] sections is not stable across restarts) */
	uint64_t h = fp_str(CS_FNV1A64_INIT, "cachesvc query definition 1");
	h = fp_str(h, d->sql);
	h = fp_routing_and_rules(h, d, cfg);
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

void cs_query_map_fingerprint(const cs_query_def *d, const cs_config *cfg, char out[17])
{
	uint64_t h = fp_str(CS_FNV1A64_INIT, "cachesvc query mapping 1");
	h = fp_routing_and_rules(h, d, cfg);
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}
