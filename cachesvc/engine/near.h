/* near.h - the near cache: hot entries in process memory, bounded in bytes, LRU.
 *
 * Coherence is not this module's: the engine (engine_near.c) turns on Redis's
 * server-assisted client-side caching for its data connection and feeds every invalidation
 * Redis sends here. This module holds the three rules that make that enough:
 *
 *  1. Only a value Redis *returned on the tracked connection* is stored (cs_near_watch
 *     before the GET, cs_near_settle with its reply). Redis then tracks the key for this
 *     process and reports its next change.
 *  2. The race between a GET's reply (data connection) and an invalidation of the same key
 *     (tracking connection): the two sockets are read in either order, so an invalidation
 *     can be processed before the reply to a GET that Redis ran before the change. Every key
 *     with a GET in flight has a node (a placeholder until it holds a value) whose stamp
 *     every invalidation of the key raises; a reply is stored only if the stamp is the one
 *     its GET saw when it was sent. (A GET that ran after the change needs nothing: Redis
 *     tracks the key again and reports the next change.)
 *  3. Whatever the engine cannot prove (tracking off or not yet confirmed, a tracking or
 *     data connection lost, Redis lost data): cs_near_flush / cs_near_disable drop every
 *     entry and start a new session; replies to GETs sent in an older session are never
 *     stored.
 *
 * Not thread-safe: the engine's loop only. */
#ifndef CS_NEAR_H
#define CS_NEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cs_near cs_near;

typedef struct cs_near_stats {
	uint64_t hits, misses;	     /* counted by the engine: usable entry or not */
	uint64_t stores, evictions;  /* values stored; dropped for the memory bound */
	uint64_t invalidations;	     /* keys named by Redis invalidation messages */
	uint64_t dropped;	     /* ... of which held a value here */
	uint64_t discarded;	     /* replies not stored: invalidated in flight (rule 2) */
	uint64_t flushes;	     /* whole-cache drops (rule 3) */
	uint64_t bytes, entries;     /* gauges: values held (node, key and value bytes) */
	uint64_t garbage;	     /* gauge: flushed nodes not yet freed (cs_near_reclaim) */
} cs_near_stats;

/* What a GET in flight saw when it was sent (cs_near_watch). */
typedef struct cs_near_ticket {
	uint64_t session;
	uint64_t stamp;
} cs_near_ticket;

/* A near cache holding at most max_bytes (node + key + value per entry). Off (session 0)
 * until cs_near_enable. NULL on OOM. */
cs_near *cs_near_new(size_t max_bytes);
void cs_near_free(cs_near *n);

/* Tracking is proven on from now: a new session. */
void cs_near_enable(cs_near *n);
/* Tracking can no longer be proven: drop everything, store nothing until enabled. */
void cs_near_disable(cs_near *n);
/* Drop everything; GETs sent before this are not stored. Stays on when on. The table is
 * empty at once; its memory is freed by cs_near_reclaim, so a flush costs O(1) on the loop. */
void cs_near_flush(cs_near *n);
/* Frees up to `budget` flushed nodes (and empty buckets). Returns true while some remain:
 * call it again from a later loop pass. */
bool cs_near_reclaim(cs_near *n, size_t budget);
bool cs_near_on(const cs_near *n);
/* A new byte bound (a reload); evicts down to it now. */
void cs_near_set_max(cs_near *n, size_t max_bytes);

/* The value held for key (hash: cs_fnv1a64 of the key), most recently used now; NULL when
 * none. Valid until the next call into this module. */
const uint8_t *cs_near_get(cs_near *n, const char *key, size_t keylen, uint64_t hash,
	size_t *vlen);
/* Before a GET of key on the tracked connection: fills t. false (nothing to settle) when
 * off or out of memory. */
bool cs_near_watch(cs_near *n, const char *key, size_t keylen, uint64_t hash, cs_near_ticket *t);
/* The GET of a watch answered: stores val unless the session changed or the key was
 * invalidated meanwhile. val NULL: nothing to store; `gone` (Redis answered nil: expired,
 * evicted) also drops what is held, while no answer (an error, a send that failed) leaves
 * it. Exactly once per successful watch. Values are freed only by a settle that answers
 * (a store or `gone`: from Redis replies, never inside a request), invalidations, evictions
 * and flushes - never by cs_near_get, cs_near_watch or a settle without an answer - so a
 * value being served stays valid while the engine's callbacks run. */
void cs_near_settle(cs_near *n, const char *key, size_t keylen, uint64_t hash,
	const cs_near_ticket *t, const uint8_t *val, size_t vlen, bool gone);

/* Redis said key changed (an invalidation message). Returns true when a value was held. */
bool cs_near_invalidate(cs_near *n, const char *key, size_t keylen);

const cs_near_stats *cs_near_get_stats(const cs_near *n);
cs_near_stats *cs_near_stats_mut(cs_near *n);

#endif
