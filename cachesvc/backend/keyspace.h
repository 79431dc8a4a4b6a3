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
 *   <ns>:inv:timeline    "<system identifier>:<timeline>" of the newest primary the
 *                        invalidator identified (IDENTIFY_SYSTEM): raised only, per system
 *                        identifier; a server of that system on a lower timeline is an old
 *                        primary that came back: the invalidator never streams from it
 *   <ns>:fmax            the highest LSN any per-key or query-level fence was ever written
 *                        with (16 hex, no TTL; raised by INVAL, GEN_BUMP and SYNC)
 *   <ns>:evk             "<evicted_keys>:<total_commands_processed>" of Redis's INFO stats
 *                        when the fence state was last known whole (fence.c (i)): a fill
 *                        that sees another evicted_keys needs data at or past fmax
 *   channel <ns>:gen     "<q> <g>" on every generation bump; "* <epoch>" on a new epoch
 *
 * The scripts and the proof that no stale entry survives are in fence.c. */
#ifndef CS_KEYSPACE_H
#define CS_KEYSPACE_H

#include <stddef.h>
#include <stdint.h>

#include "cs_proto.h"
#include "params.h"

#define CS_NS_MAX 32
/* Longest key: "<ns>:e:<q>:<g>:<p>" */
#define CS_KEY_MAX (CS_NS_MAX + 3 + CS_PROTO_MAX_NAME + 1 + 20 + 1 + CS_CANON_MAX + 1)
/* Longest fixed name (no parameters): "<ns>:inv:slot:<slot>" and the like */
#define CS_NAME_MAX (CS_NS_MAX + 16 + 64)

typedef struct cs_keyspace {
	char ns[CS_NS_MAX + 1];
	size_t nslen;
	/* fixed names, built once */
	char horizon[CS_NS_MAX + 16], pos[CS_NS_MAX + 16], epoch[CS_NS_MAX + 16],
		deb[CS_NS_MAX + 16], channel[CS_NS_MAX + 16], timeline[CS_NS_MAX + 16],
		fmax[CS_NS_MAX + 16], evk[CS_NS_MAX + 16];
	size_t horizon_len, pos_len, epoch_len, deb_len, channel_len, timeline_len, fmax_len, evk_len;
} cs_keyspace;

/* The default namespace for Redis database db: "cs" for 0, "cs<db>" otherwise. */
void cs_ks_default_ns(int db, char out[CS_NS_MAX + 1]);
/* True when ns is usable: 1..32 bytes of [A-Za-z0-9_.{}-] (braces allow a cluster hash
 * tag). Else false and a reason. */
int cs_ks_valid_ns(const char *ns, char *why, size_t whylen);
/* Fills ks for ns (which must be valid). */
void cs_ks_init(cs_keyspace *ks, const char *ns);

/* Each writes the key into buf (NUL-terminated) and returns its length, or 0 when it does
 * not fit in cap (then nothing can be cached for it: callers treat it as an unknown key). */
size_t cs_ks_entry(const cs_keyspace *ks, char *buf, size_t cap, const char *q, uint64_t gen,
	const char *p, size_t plen);
size_t cs_ks_entry_prefix(const cs_keyspace *ks, char *buf, size_t cap, const char *q,
	uint64_t gen); /* "<ns>:e:<q>:<g>:" */
size_t cs_ks_fence(const cs_keyspace *ks, char *buf, size_t cap, const char *q, const char *p,
	size_t plen);
size_t cs_ks_lease(const cs_keyspace *ks, char *buf, size_t cap, const char *q, const char *p,
	size_t plen);
size_t cs_ks_gen(const cs_keyspace *ks, char *buf, size_t cap, const char *q);
size_t cs_ks_qfence(const cs_keyspace *ks, char *buf, size_t cap, const char *q);
size_t cs_ks_gap(const cs_keyspace *ks, char *buf, size_t cap, const char *slot);
size_t cs_ks_slotmark(const cs_keyspace *ks, char *buf, size_t cap, const char *slot);

#endif
