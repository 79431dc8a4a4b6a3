/* near.c - the near cache's table: a chained hash of nodes, an LRU list of the nodes that
 * hold a value, and the byte bound (near.h says why it stays coherent). */
#include "near.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "textutil.h"

#define NBUCKETS_MIN 1024

typedef struct node {
	struct node *hnext;	   /* hash chain */
	struct node *prev, *next;  /* LRU, only while holding a value (most recent first) */
	uint64_t hash;
	uint64_t stamp;		   /* raised by every invalidation of the key (near.h rule 2) */
	uint32_t pending;	   /* GETs in flight that watch the key */
	uint32_t keylen;
	uint8_t *val;		   /* NULL: a placeholder for GETs in flight */
	size_t vlen;
	char key[];
} node;

/* A flushed table waiting to be freed (cs_near_reclaim): its bucket array and how far the
 * freeing got. Nothing points into it any more. */
typedef struct grave {
	struct grave *next;
	node **buckets;
	size_t nbuckets, i;
} grave;

struct cs_near {
	size_t max_bytes;
	uint64_t session;  /* 0: off */
	uint64_t sessions; /* sessions started: the next one's number */
	node **buckets;
	size_t nbuckets, nnodes;
	node lru; /* sentinel */
	grave *graves; /* flushed tables, freed a budget at a time */
	cs_near_stats st;
};

static size_t node_bytes(const node *d)
{
	return sizeof *d + d->keylen + d->vlen;
}

cs_near *cs_near_new(size_t max_bytes)
{
	cs_near *n = calloc(1, sizeof *n);
	if (n == NULL)
		return NULL;
	n->buckets = calloc(NBUCKETS_MIN, sizeof *n->buckets);
	if (n->buckets == NULL) {
		free(n);
		return NULL;
	}
	n->nbuckets = NBUCKETS_MIN;
	n->max_bytes = max_bytes;
	n->lru.next = n->lru.prev = &n->lru;
	return n;
}

static void lru_unlink(node *d)
{
	d->prev->next = d->next;
	d->next->prev = d->prev;
	d->prev = d->next = NULL;
}

static void lru_push(cs_near *n, node *d)
{
	d->next = n->lru.next;
	d->prev = &n->lru;
	n->lru.next->prev = d;
	n->lru.next = d;
}

static node **slot_of(cs_near *n, const char *key, size_t keylen, uint64_t hash)
{
	node **pp = &n->buckets[hash & (n->nbuckets - 1)];
	while (*pp && !((*pp)->hash == hash && (*pp)->keylen == keylen &&
			       memcmp((*pp)->key, key, keylen) == 0))
		pp = &(*pp)->hnext;
	return pp;
}

static void value_drop(cs_near *n, node *d)
{
	if (d->val == NULL)
		return;
	n->st.bytes -= node_bytes(d);
	n->st.entries--;
	lru_unlink(d);
	free(d->val);
	d->val = NULL;
	d->vlen = 0;
}

/* Unlinks *pp (its node) from the table and frees it; its value must be gone. */
static void node_remove(cs_near *n, node **pp)
{
	node *d = *pp;
	*pp = d->hnext;
	n->nnodes--;
	free(d);
}

static void remove_key(cs_near *n, const char *key, size_t keylen, uint64_t hash)
{
	node **pp = slot_of(n, key, keylen, hash);
	if (*pp)
		node_remove(n, pp);
}

/* Frees every node of a chain. */
static size_t free_chain(node *d)
{
	size_t k = 0;
	while (d) {
		node *next = d->hnext;
		free(d->val);
		free(d);
		d = next;
		k++;
	}
	return k;
}

void cs_near_flush(cs_near *n)
{
	/* The table is emptied at once and freed later, a budget at a time (cs_near_reclaim): a
	 * flush of a large near cache must not hold the loop for the millions of free() calls.
	 * Without memory for a fresh table, it is freed here. */
	node **fresh = n->nnodes ? calloc(NBUCKETS_MIN, sizeof *fresh) : NULL;
	grave *g = fresh ? malloc(sizeof *g) : NULL;
	if (g != NULL) {
		*g = (grave){ .next = n->graves, .buckets = n->buckets, .nbuckets = n->nbuckets };
		n->graves = g;
		n->st.garbage += n->nnodes;
		n->buckets = fresh;
		n->nbuckets = NBUCKETS_MIN;
	} else {
		free(fresh);
		for (size_t i = 0; i < n->nbuckets; i++) {
			free_chain(n->buckets[i]);
			n->buckets[i] = NULL;
		}
	}
	n->nnodes = 0;
	n->st.bytes = n->st.entries = 0;
	n->lru.next = n->lru.prev = &n->lru;
	n->st.flushes++;
	if (n->session)
		n->session = ++n->sessions; /* replies to GETs sent before are not stored */
}

bool cs_near_reclaim(cs_near *n, size_t budget)
{
	while (n->graves && budget > 0) {
		grave *g = n->graves;
		while (g->i < g->nbuckets && budget > 0) {
			node *d = g->buckets[g->i];
			if (d == NULL) {
				g->i++;
				budget--; /* empty buckets cost a little too */
				continue;
			}
			g->buckets[g->i] = d->hnext;
			d->hnext = NULL;
			free_chain(d);
			n->st.garbage--;
			budget--;
		}
		if (g->i < g->nbuckets)
			break;
		n->graves = g->next;
		free(g->buckets);
		free(g);
	}
	return n->graves != NULL;
}

void cs_near_free(cs_near *n)
{
	if (n == NULL)
		return;
	cs_near_flush(n);
	while (cs_near_reclaim(n, SIZE_MAX))
		;
	free(n->buckets);
	free(n);
}

void cs_near_enable(cs_near *n)
{
	if (n->session == 0)
		n->session = ++n->sessions;
}

void cs_near_disable(cs_near *n)
{
	if (n->session == 0 && n->nnodes == 0)
		return;
	n->session = 0;
	cs_near_flush(n);
}

bool cs_near_on(const cs_near *n)
{
	return n->session != 0;
}

static void evict(cs_near *n)
{
	while (n->st.bytes > n->max_bytes && n->lru.prev != &n->lru) {
		node *d = n->lru.prev;
		value_drop(n, d);
		n->st.evictions++;
		if (d->pending == 0)
			remove_key(n, d->key, d->keylen, d->hash);
	}
}

void cs_near_set_max(cs_near *n, size_t max_bytes)
{
	n->max_bytes = max_bytes;
	evict(n);
}

const uint8_t *cs_near_get(cs_near *n, const char *key, size_t keylen, uint64_t hash,
	size_t *vlen)
{
	node *d = *slot_of(n, key, keylen, hash);
	if (d == NULL || d->val == NULL)
		return NULL;
	if (n->lru.next != d) {
		lru_unlink(d);
		lru_push(n, d);
	}
	*vlen = d->vlen;
	return d->val;
}

static void grow(cs_near *n)
{
	size_t nb = n->nbuckets * 2;
	node **b = calloc(nb, sizeof *b);
	if (b == NULL)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < n->nbuckets; i++) {
		node *d = n->buckets[i];
		while (d) {
			node *next = d->hnext;
			d->hnext = b[d->hash & (nb - 1)];
			b[d->hash & (nb - 1)] = d;
			d = next;
		}
	}
	free(n->buckets);
	n->buckets = b;
	n->nbuckets = nb;
}

bool cs_near_watch(cs_near *n, const char *key, size_t keylen, uint64_t hash, cs_near_ticket *t)
{
	if (n->session == 0 || keylen > UINT32_MAX)
		return false;
	node **pp = slot_of(n, key, keylen, hash);
	node *d = *pp;
	if (d == NULL) {
		d = calloc(1, sizeof *d + keylen);
		if (d == NULL)
			return false;
		d->hash = hash;
		d->keylen = (uint32_t)keylen;
		memcpy(d->key, key, keylen);
		d->hnext = n->buckets[hash & (n->nbuckets - 1)];
		n->buckets[hash & (n->nbuckets - 1)] = d;
		if (++n->nnodes > n->nbuckets)
			grow(n);
	}
	d->pending++;
	t->session = n->session;
	t->stamp = d->stamp;
	return true;
}

void cs_near_settle(cs_near *n, const char *key, size_t keylen, uint64_t hash,
	const cs_near_ticket *t, const uint8_t *val, size_t vlen, bool gone)
{
	if (t->session != n->session)
		return; /* flushed since: the node (if any) is another session's */
	node **pp = slot_of(n, key, keylen, hash);
	node *d = *pp;
	if (d == NULL)
		return;
	d->pending--;
	if (val != NULL && d->stamp != t->stamp)
		n->st.discarded++;
	uint8_t *copy = NULL;
	if (val != NULL && d->stamp == t->stamp &&
		sizeof *d + keylen + vlen <= n->max_bytes && (copy = malloc(vlen ? vlen : 1)) != NULL) {
		memcpy(copy, val, vlen);
		value_drop(n, d);
		d->val = copy;
		d->vlen = vlen;
		n->st.bytes += node_bytes(d);
		n->st.entries++;
		n->st.stores++;
		lru_push(n, d);
		evict(n);
		return;
	}
	if (val == NULL && gone)
		value_drop(n, d); /* Redis has none any more (expired, evicted) */
	if (d->val == NULL && d->pending == 0)
		node_remove(n, pp);
}

bool cs_near_invalidate(cs_near *n, const char *key, size_t keylen)
{
	n->st.invalidations++;
	uint64_t hash = cs_fnv1a64(CS_FNV1A64_INIT, key, keylen);
	node **pp = slot_of(n, key, keylen, hash);
	node *d = *pp;
	if (d == NULL)
		return false;
	d->stamp++;
	bool held = d->val != NULL;
	if (held) {
		n->st.dropped++;
		value_drop(n, d);
	}
	if (d->pending == 0)
		node_remove(n, pp);
	return held;
}

const cs_near_stats *cs_near_get_stats(const cs_near *n)
{
	return &n->st;
}

cs_near_stats *cs_near_stats_mut(cs_near *n)
{
	return &n->st;
}
