/* keyspace.h - every Redis key and channel cachesvc uses, in one place.
 *
 * All names live under a deployment namespace <ns> ([redis] namespace; default "cs" for
 * database 0 and "cs<db>" for database <db>, since pub/sub channels ignore the database
 * number). <q> is a query name, <p> the canonical parameters (params.h), <g> a generation.
 *
 *   <ns>:e:<q>:<g>:<p>   entry: a 32-byte header (entry.h) + the result object, as on the wire
 *   <ns>:f:<q>:<p>       per-key fence: end LSN of the key's last invalidation (16 hex, TTL)
 *   <ns>:g:<q>           generation: INCR'd to drop every entry of a query in O(1)
 *   <ns>:qf:<q>          query-level fence: the LSN of the query's last generation bump
 *                        (16 hex, no TTL); fills of data older than it are refused
 *   <ns>:qd:<q>          the definition the query's current generation answers: 16 hex of
 *                        the fingerprint of its SQL, parameter types, routing and
 *                        invalidate_on (engine.c query_fingerprint; no TTL). Written with
 *                        the generation bump a start or reload of a new or changed
 *                        definition makes; a process whose own fingerprint differs uses no
 *                        entry of the query (another process's definition owns it)
 *   <ns>:l:<q>:<p>       lease: one query of a missing or expired entry across all processes
 *                        (misses wait for the holder's fill; refreshes skip)
 *   <ns>:nhb:<id>        the near cache's tracking heartbeat of the process whose pub/sub
 *                        connection has CLIENT ID <id> (engine_near.c)
 *   <ns>:horizon         LSN below which a per-key fence may have expired or been evicted
 *                        (16 hex, TTL)
 *   <ns>:inv:pos         the invalidator's confirmed position (16 hex), read-your-writes
 *   <ns>:epoch           "<run_id>:<random>": written by the invalidator when it has made
 *                        the cache state consistent; a FLUSHALL removes it, a restart or
 *                        failover changes the run_id: both mean Redis lost data (fence.c)
 *   <ns>:inv:gap:<slot>  a gap flush is owed (set before the slot is created, cleared by
 *                        the flush): survives a crash between the two
 *   <ns>:inv:slot:<slot> the slot has streamed before: a missing slot is a loss, not a
 *                        first start
 *   <ns>:inv:deb         hash <q> -> LSN: debounced (min_lifetime) bumps owed
 *   <ns>:inv:open:<slot> a cluster only (bucket 0): hash <bucket> -> "<source id> <source
 *                        run_id> <target id> <target run_id>", the buckets whose hash slot
 *                        the invalidator saw being migrated (CLUSTER.md V9b; inv_open.c)
 *   <ns>:inv:timeline    "<system identifier>:<timeline>" of the newest primary the
 *                        invalidator identified (IDENTIFY_SYSTEM): raised only, per system
 *                        identifier; a server of that system on a lower timeline is an old
 *                        primary that came back: the invalidator never streams from it
 *   <ns>:fmax            the highest LSN any per-key or query-level fence was ever written
 *                        with (16 hex, no TTL; raised by INVAL, GEN_BUMP and SYNC)
 *   <ns>:evk             "<evicted_keys>:<total_commands_processed>" of Redis's INFO stats
 *                        when the fence state was last known whole (fence.c (i)): a fill
 *                        that sees another evicted_keys needs data at or past fmax
 *   channel <ns>:gen     "<q> <g>" on every generation bump ("<q> <g> <fingerprint>" when the
 *                        bump records a definition: DEF_BUMP); "* <epoch>" on a new epoch
 *
 * The scripts and the proof that no stale entry survives are in fence.c.
 *
 * On Redis Cluster (cs_ks_init_cluster; CLUSTER.md) the namespace is spread over
 * CS_KS_BUCKETS buckets. Every key of bucket b starts with the hash tag "{<ns>:<b>}" in place
 * of "<ns>", so a bucket is one slot: an entry, its fence and its lease are in the bucket of
 * their query and parameters (cs_ks_bucket); the generation, query-level fence, horizon,
 * position, epoch, fmax and evk have one copy per bucket (the *_in builders); bucket 0 holds
 * the canonical copies (what the plain builders and the fixed names give) and the
 * invalidator's marks; the channel stays "<ns>:gen".
 *
 * With [shard NAME] sections (cs_ks_init_shard; SHARDS.md section 2) each shard's keyspace is
 * the one above with "<ns>@<shard>" in place of "<ns>" everywhere (on a cluster the tag is
 * "{<ns>@<shard>:<b>}", the channel "<ns>@<shard>:gen"): a shard is a namespace of its own
 * for everything that carries an LSN. ks->ns then holds "<ns>@<shard>". '@' is neither in a
 * namespace nor in a shard name, so no two prefixes collide; without shards (shard NULL or
 * "") every name is byte for byte the unsharded one. */
#ifndef CS_KEYSPACE_H
#define CS_KEYSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cs_proto.h"
#include "params.h"

#define CS_NS_MAX 32
/* Longest shard name ([shard NAME]: CS_MAX_NAME) and longest effective namespace,
 * "<ns>@<shard>" */
#define CS_KS_SHARD_MAX 64
#define CS_KS_NS_MAX    (CS_NS_MAX + 1 + CS_KS_SHARD_MAX)
_Static_assert(CS_KS_SHARD_MAX >= CS_MAX_NAME, "every [shard NAME] fits a keyspace");
/* Buckets of a cluster namespace: a constant of the layout (processes that disagreed would
 * put a key's fence and its fills in different buckets). */
#define CS_KS_BUCKETS 256
/* Longest key prefix: "{<ns>@<shard>:255}" */
#define CS_KS_PREFIX_MAX (CS_KS_NS_MAX + 6)
/* Longest key: "<prefix>:e:<q>:<g>:<p>" */
#define CS_KEY_MAX (CS_KS_PREFIX_MAX + 3 + CS_PROTO_MAX_NAME + 1 + 20 + 1 + CS_CANON_MAX + 1)
/* Longest fixed name (no parameters): "<prefix>:inv:slot:<slot>" and the like */
#define CS_NAME_MAX (CS_KS_PREFIX_MAX + 16 + 64)

/* The names that have one copy per bucket on a cluster (one name on a single Redis). */
typedef enum cs_ks_fixed {
	CS_KS_HORIZON,
	CS_KS_POS,
	CS_KS_EPOCH,
	CS_KS_FMAX,
	CS_KS_EVK,
} cs_ks_fixed;

typedef struct cs_keyspace {
	char ns[CS_KS_NS_MAX + 1]; /* "<ns>", or "<ns>@<shard>" for a shard's keyspace */
	size_t nslen;
	char shard[CS_KS_SHARD_MAX + 1]; /* the shard's name; "" without shards */
	bool cluster;
	/* fixed names, built once (on a cluster: bucket 0's) */
	char horizon[CS_NAME_MAX], pos[CS_NAME_MAX], epoch[CS_NAME_MAX], deb[CS_NAME_MAX],
		channel[CS_NAME_MAX], timeline[CS_NAME_MAX], fmax[CS_NAME_MAX], evk[CS_NAME_MAX];
	/* <prefix>:inv:qmap, a hash: the query mappings the leader decodes with (review 36
	 * R36-1): field <q> -> "<map fingerprint> <lsn>" for each query it maps (lsn: where its
	 * stream started with that mapping), <q>/c -> the record a generation bump covered
	 * (fence.h CS_SCRIPT_DEF_BUMP), "@" -> "1" once any leader recorded its mapping */
	char qmap[CS_NAME_MAX];
	size_t horizon_len, pos_len, epoch_len, deb_len, channel_len, timeline_len, fmax_len, evk_len,
		qmap_len;
} cs_keyspace;

/* The default namespace for Redis database db: "cs" for 0, "cs<db>" otherwise. */
void cs_ks_default_ns(int db, char out[CS_NS_MAX + 1]);
/* True when ns is usable: 1..32 bytes of [A-Za-z0-9_.{}-] (braces allow a cluster hash
 * tag). Else false and a reason. */
int cs_ks_valid_ns(const char *ns, char *why, size_t whylen);
/* Fills ks for ns (which must be valid) on a single Redis. */
void cs_ks_init(cs_keyspace *ks, const char *ns);
/* Fills ks for ns on a Redis Cluster. Returns 0, or -1 when ns holds a brace (it would
 * replace the bucket's hash tag). */
int cs_ks_init_cluster(cs_keyspace *ks, const char *ns);
/* Fills ks for shard `shard` of namespace ns, on a cluster or not: shard NULL or "" is
 * cs_ks_init / cs_ks_init_cluster exactly. Returns 0, or -1 (ks untouched) when ns is not a
 * valid namespace (cs_ks_valid_ns: 1..CS_NS_MAX bytes of [A-Za-z0-9_.-{}]; refused, never
 * truncated), the shard name is not 1..CS_KS_SHARD_MAX bytes of [A-Za-z0-9_.-] or
 * (cluster) ns holds a brace. */
int cs_ks_init_shard(cs_keyspace *ks, const char *ns, const char *shard, bool cluster);

/* The bucket of a key: FNV-1a-32 of q, a 0 byte and p, modulo CS_KS_BUCKETS; always 0 on a
 * single Redis. */
uint32_t cs_ks_bucket(const cs_keyspace *ks, const char *q, const char *p, size_t plen);
/* The prefix of every key of bucket b: "<ns>" on a single Redis, "{<ns>:<b>}" on a cluster.
 * Returns its length (0: does not fit). */
size_t cs_ks_prefix(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap);

/* Each writes the key into buf (NUL-terminated) and returns its length, or 0 when it does
 * not fit in cap (then nothing can be cached for it: callers treat it as an unknown key). */
size_t cs_ks_entry(const cs_keyspace *ks, char *buf, size_t cap, const char *q, uint64_t gen,
	const char *p, size_t plen);
/* "<prefix of bucket b>:e:<q>:<g>:" (b = cs_ks_bucket of the parameters to follow) */
size_t cs_ks_entry_prefix(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap,
	const char *q, uint64_t gen);
size_t cs_ks_fence(const cs_keyspace *ks, char *buf, size_t cap, const char *q, const char *p,
	size_t plen);
size_t cs_ks_lease(const cs_keyspace *ks, char *buf, size_t cap, const char *q, const char *p,
	size_t plen);
/* The canonical (bucket 0) generation and query-level fence; the _in forms: bucket b's copy. */
size_t cs_ks_gen(const cs_keyspace *ks, char *buf, size_t cap, const char *q);
size_t cs_ks_qfence(const cs_keyspace *ks, char *buf, size_t cap, const char *q);
size_t cs_ks_gen_in(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap, const char *q);
/* <ns>:qd:<q> (bucket 0's on a cluster: beside the canonical generation) */
size_t cs_ks_qdef(const cs_keyspace *ks, char *buf, size_t cap, const char *q);
size_t cs_ks_qfence_in(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap, const char *q);
/* Bucket b's copy of a per-bucket name (bucket 0: the fixed name in ks). */
size_t cs_ks_fixed_in(const cs_keyspace *ks, uint32_t b, cs_ks_fixed which, char *buf, size_t cap);
size_t cs_ks_gap(const cs_keyspace *ks, char *buf, size_t cap, const char *slot);
size_t cs_ks_slotmark(const cs_keyspace *ks, char *buf, size_t cap, const char *slot);
size_t cs_ks_openmark(const cs_keyspace *ks, char *buf, size_t cap, const char *slot);

#endif
