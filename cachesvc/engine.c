/* engine.c - the read-through engine: cache lookups, single-flight misses, routing,
 * LSN-fenced fills, generations, read-your-writes (see engine.h for the Redis layout). */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "encode.h"
#include "entry.h"
#include "fence.h"
#include "decanon.h"
#include "invalidator.h"
#include "keyspace.h"
#include "log.h"
#include "metrics.h"
#include "params.h"
#include "pgpool.h"
#include "redis.h"
#include "resolve.h"
#include "textutil.h"
#include "util.h"
#include "verify.h"

#define TICK_MS		 5	/* housekeeping: read-your-writes deadlines */
#define TOKEN_WAIT_MAX	 4096	/* requests whose token waits for a fresh primary position */
#define TOKEN_WAIT_MS	 1000	/* longest such wait: then the token is used unchecked */
#define GEN_POLL_MS	 1000	/* generations re-read even when pub/sub is quiet */
#define MAX_ATTEMPTS	 3	/* a miss tries at most this many servers */
#define MAX_REPLY	 (64u << 20) /* largest result served at all */
#define FLIGHT_BUCKETS	 4096
#define KEY_MAX		 CS_KEY_MAX

/* ---- Types ------------------------------------------------------------------------------ */

typedef struct qstate {
	const cs_query_def *def;
	int index;
	uint64_t gen;
	bool gen_known;
	bool pending_bump; /* a reload changed it and the bump is not in Redis yet */
	bool paused;	   /* ADMIN pause: served from PostgreSQL, nothing read from or stored in
			    * Redis, until resumed; this process only, kept across reloads */
	unsigned long long scan_cursor; /* the verifier sampler walks the query's entries */
	uint64_t hits, stale_hits, misses, fills, refresh_early, refresh_expired,
		refresh_revalidate;
} qstate;

/* Query definitions of one config generation; in-flight work keeps a reference so a
 * SIGHUP reload never frees a definition under a running query. */
typedef struct qtable {
	int refs;
	cs_config *cfg;
	qstate *qs;
	int nq;
	int *slots; /* open addressing by name: slot -> index + 1 */
	int nslots;
} qtable;

typedef struct flight flight;

/* A set of server ids: the servers a miss has tried. Every server gets the lowest id no
 * other live or retiring server holds (engine.c servers_reload), so ids stay put across
 * reloads; an id freed by a retired server and reused by a new one makes a flight's set
 * approximate, never out of bounds. Sized for every server a config can have
 * (CS_MAX_REPLICAS + the primary) plus as many retiring after a reload. */
#define MAX_SERVERS 512
_Static_assert(MAX_SERVERS >= 2 * (CS_MAX_REPLICAS + 1), "the tried set must hold every server");
typedef struct srvset {
	uint64_t w[MAX_SERVERS / 64];
} srvset;

static bool srvset_has(const srvset *s, int i)
{
	return i >= 0 && i < MAX_SERVERS && (s->w[i / 64] >> (i % 64) & 1u) != 0;
}

static void srvset_add(srvset *s, int i)
{
	if (i >= 0 && i < MAX_SERVERS)
		s->w[i / 64] |= (uint64_t)1 << (i % 64);
}

/* One client request (GET or REFRESH) until its callback has run. */
typedef struct greq {
	cs_engine *e;
	cs_engine_cb *cb;
	void *priv;
	uint8_t op, tier;
	bool bypass;
	uint64_t min_lsn;
	uint64_t start_us;
	uint8_t *stale;	   /* an expired entry to serve if the refresh fails (stale-if-error) */
	size_t stale_len;
	int64_t stale_until_ms; /* filled + max_stale: never served past it */
	struct greq *next; /* waiter chain of a flight */
} greq;

static void greq_free(greq *r)
{
	free(r->stale);
	free(r);
}

/* A miss in progress: one database query shared by every request for the same key. */
struct flight {
	flight *hnext;
	cs_engine *e;
	qtable *qt;
	qstate *qs;
	uint64_t hash;
	uint64_t min_lsn;
	uint64_t gen;
	uint8_t tier;
	bool store;	   /* fill Redis with the result */
	bool background;   /* refresh with nobody waiting */
	bool leased;	   /* holds the key's cross-process refresh lease: released when done */
	int refresh_cause; /* for stats: 0 miss, 1 early, 2 revalidate */
	int attempts;
	srvset tried;	   /* server indices already tried */
	bool overloaded;   /* an eligible replica refused for a full queue */
	uint64_t start_us, deadline_us, ryw_deadline_us;
	bool in_ryw;
	flight *rnext; /* read-your-writes wait list */
	greq *waiters;
	cs_pgjob job;
	cs_pg_params *pgp;
	size_t keylen, canon_off;
	/* After the database answered: the result, kept (with the flight findable) until the
	 * fill is acknowledged, so requests arriving meanwhile share it instead of missing. */
	bool answered, filling;
	cs_meta meta;
	uint8_t *result;
	size_t result_len;
	greq *held; /* waiters that asked for the fill's outcome (REFRESH, batch tier) */
	char key[]; /* "<ns>:e:<q>:<g>:<p>" */
};

/* The primary's LSN over time, sampled at each health round: a replica whose replay LSN
 * is R lags by (now - the time the primary first went past R). Accurate to one health
 * interval, and unlike pg_last_xact_replay_timestamp() it is not fooled by an idle primary
 * or by WAL without commits. */
#define LSN_HISTORY 1024
typedef struct lsn_sample {
	uint64_t us;
	cs_lsn_t lsn;
} lsn_sample;

/* The verifier sampler (fence.c's claim, checked live): one entry per verify_interval. */
typedef struct sampler {
	struct event *timer, *poll;
	bool busy;
	int qnext;
	qtable *qt;
	qstate *qs;
	char key[KEY_MAX];
	size_t keylen;
	uint8_t *entry;
	size_t entry_len;
	uint8_t *fresh; /* the primary's result */
	size_t fresh_len;
	cs_pg_params *pgp;
	cs_pgjob job, lsn_job;
	cs_query_def lsn_q;
	cs_pg_params no_params;
	cs_lsn_t lsn_after;
	uint64_t wait_until_us;
	uint64_t checked, ok, stale, skipped;
} sampler;

/* Negative entries' memory share ([cachesvc] negative_share): bytes this process stored,
 * bucketed by the slot their entry expires in (rounded up), so the bytes still possibly
 * alive in Redis are the buckets from the current slot on. No Redis round trip. */
#define NEG_SLOTS 256
typedef struct negbudget {
	int64_t slot_ms; /* 0 until the first negative fill */
	int64_t sid[NEG_SLOTS];
	uint64_t bytes[NEG_SLOTS];
} negbudget;

/* Bytes of negative entries possibly alive at now_ms. */
static uint64_t neg_live(const negbudget *nb, int64_t now_ms)
{
	if (nb->slot_ms == 0)
		return 0;
	int64_t cur = now_ms / nb->slot_ms;
	uint64_t sum = 0;
	for (int i = 0; i < NEG_SLOTS; i++)
		if (nb->sid[i] >= cur)
			sum += nb->bytes[i];
	return sum;
}

/* Records bytes of an entry expiring px from now. Slots are long enough for the longest
 * px seen (widened by merging: an entry only ever moves to a later slot, which counts it
 * longer: safe). */
static void neg_add(negbudget *nb, int64_t now_ms, int64_t px, uint64_t bytes)
{
	int64_t need = px / (NEG_SLOTS - 2) + 1;
	if (nb->slot_ms == 0)
		nb->slot_ms = CS_MAX(1000, need);
	if (need > nb->slot_ms) {
		int64_t ns = CS_MAX(need, 2 * nb->slot_ms);
		negbudget old = *nb;
		memset(nb, 0, sizeof *nb);
		nb->slot_ms = ns;
		for (int i = 0; i < NEG_SLOTS; i++) {
			if (old.bytes[i] == 0)
				continue;
			int64_t end = old.sid[i] * old.slot_ms + old.slot_ms;
			int64_t s = (end + ns - 1) / ns;
			int k = (int)(s % NEG_SLOTS);
			if (nb->sid[k] != s)
				nb->sid[k] = s, nb->bytes[k] = 0;
			nb->bytes[k] += old.bytes[i];
		}
	}
	int64_t s = (now_ms + px) / nb->slot_ms + 1;
	int k = (int)(s % NEG_SLOTS);
	if (nb->sid[k] != s) { /* the slot it held ended at least NEG_SLOTS - 1 slots ago */
		nb->sid[k] = s;
		nb->bytes[k] = 0;
	}
	nb->bytes[k] += bytes;
}

struct cs_engine {
	struct event_base *base;
	negbudget neg;
	sampler smp;
	lsn_sample hist[LSN_HISTORY];
	int hist_head, hist_len;
	qtable *qt;
	cs_redis *redis, *pubsub;
	cs_pgserver **servers; /* replicas first, then the primary (if any) */
	int *srv_id;	       /* servers[i]'s id in tried sets */
	int nservers;
	cs_pgserver *primary;
	/* Servers a reload removed or changed: no new work; freed once idle or past their
	 * deadline (on_tick). */
	cs_pgserver **retiring;
	int *retiring_id;
	uint64_t *retiring_until_us;
	int nretiring;
	cs_inv *inv; /* the invalidator, when this process runs one */
	cs_resolver *resolver; /* host names, for every connection of the engine (resolve.h) */
	struct event *tick, *gen_timer;
	flight *buckets[FLIGHT_BUCKETS];
	flight *ryw_head;
	struct ryw_cursor *ryw_cursors; /* walks of the ryw list in progress (see ryw_unlink) */
	bool fence_on;
	bool stopping; /* cs_engine_free runs: no retries, everything answers SHUTTING_DOWN */
	struct reload_check *rchk; /* a reload whose new SQL is being checked on a server */
	cs_engine_stats stats;
	cs_buf scratch;
	cs_keyspace ks;
	/* The namespace's epoch (keyspace.h) this process has synchronised its generations
	 * with; "" while unknown or Redis lost data (then, with fences on, the cache is
	 * bypassed: nothing is served from it or stored). */
	char epoch[96];
	size_t epoch_len;
	bool gens_busy; /* a generations poll is in flight: at most one */
	uint32_t max_tli; /* the highest primary timeline seen: never lowered */
	bool stale_primary_logged;
	/* Requests whose read-your-writes token is beyond the primary's last known position,
	 * waiting for a fresh one (token_park); bounded by TOKEN_WAIT_MAX. */
	struct lookup *token_head;
	int ntoken;
	uint64_t primary_rounds; /* monitor rounds of the primary that found it up */
};

/* ---- Query table ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n)
{
	return cs_fnv1a64(CS_FNV1A64_INIT, p, n);
}

static qtable *qtable_new(cs_config *cfg)
{
	qtable *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	t->refs = 1;
	t->cfg = cfg;
	t->nq = cfg->nqueries;
	t->qs = calloc((size_t)(t->nq ? t->nq : 1), sizeof *t->qs);
	t->nslots = 16;
	while (t->nslots < t->nq * 2)
		t->nslots *= 2;
	t->slots = calloc((size_t)t->nslots, sizeof *t->slots);
	if (t->qs == NULL || t->slots == NULL) {
		free(t->qs);
		free(t->slots);
		free(t);
		return NULL;
	}
	for (int i = 0; i < t->nq; i++) {
		qstate *q = &t->qs[i];
		q->def = &cfg->queries[i];
		q->index = i;
		const char *name = q->def->name;
		size_t s = hash_bytes(name, strlen(name)) & (size_t)(t->nslots - 1);
		while (t->slots[s])
			s = (s + 1) & (size_t)(t->nslots - 1);
		t->slots[s] = i + 1;
	}
	return t;
}

static void qtable_unref(qtable *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	cs_config_free(t->cfg);
	free(t->qs);
	free(t->slots);
	free(t);
}

static qstate *qtable_find(qtable *t, const char *name, size_t len)
{
	size_t s = hash_bytes(name, len) & (size_t)(t->nslots - 1);
	while (t->slots[s]) {
		qstate *q = &t->qs[t->slots[s] - 1];
		if (strlen(q->def->name) == len && memcmp(q->def->name, name, len) == 0)
			return q;
		s = (s + 1) & (size_t)(t->nslots - 1);
	}
	return NULL;
}

/* ---- Replies ---------------------------------------------------------------------------- */

static void reply_error(cs_engine *e, cs_engine_cb *cb, void *priv, int err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void reply_error(cs_engine *e, cs_engine_cb *cb, void *priv, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	int code = err < 0 ? -err : err;
	if (code > 0 && code <= CS_ERR_MAX)
		e->stats.errors[code]++;
	cb(priv, -code, msg, NULL, NULL, 0);
}

static void serve_stale_copy(greq *r, int err, const char *msg);

static void greq_error(greq *r, int err, const char *msg)
{
	if (r->stale) {
		/* stale-if-error: the database failed, but an entry younger than max_stale is
		 * there: better stale (flagged) than nothing */
		serve_stale_copy(r, err, msg);
		return;
	}
	reply_error(r->e, r->cb, r->priv, err, "%s", msg);
	greq_free(r);
}

/* ---- Routing ---------------------------------------------------------------------------- */

/* Picks the least-loaded healthy replica serving `tier`, within the lag bounds, that has
 * replayed min_lsn, not yet tried. NULL when none fits. */
static cs_pgserver *route_replica(cs_engine *e, int tier, uint64_t min_lsn, const srvset *tried)
{
	const cs_config *cfg = e->qt->cfg;
	cs_pgserver *best = NULL;
	double best_load = 0;
	int ties = 0;
	for (int i = 0; i < e->nservers; i++) {
		cs_pgserver *s = e->servers[i];
		if (s == e->primary || srvset_has(tried, e->srv_id[i]))
			continue;
		cs_pgserver_info in;
		cs_pgserver_info_get(s, &in);
		if (!(in.tiers & (1u << tier)) || in.state != CS_SRV_UP)
			continue;
		if (in.promoted || in.old_timeline)
			continue; /* out of recovery, or cannot follow the primary */
		if (in.lag_ms > cfg->max_replica_lag_ms)
			continue;
		if (cfg->max_replica_lag_bytes && in.lag_bytes > cfg->max_replica_lag_bytes)
			continue;
		if (min_lsn && in.lsn < min_lsn)
			continue;
		double load = cs_pgserver_load(s);
		if (best == NULL || load < best_load) {
			best = s;
			best_load = load;
			ties = 1;
		} else if (load == best_load && cs_rand64() % (uint64_t)++ties == 0) {
			best = s; /* reservoir choice among equals spreads an idle fleet */
		}
	}
	return best;
}

static int server_index(cs_engine *e, cs_pgserver *s)
{
	for (int i = 0; i < e->nservers; i++)
		if (e->servers[i] == s)
			return e->srv_id[i];
	return -1; /* not one of ours: marks nothing */
}

/* ---- Flights ---------------------------------------------------------------------------- */

static bool query_same(const cs_query_def *a, const cs_query_def *b);

/* The flight of key for min_lsn running definition def: across a reload, a request never
 * joins a flight of another definition of its query (other SQL, other columns). */
static flight *flight_find(cs_engine *e, const char *key, size_t keylen, uint64_t hash,
	uint64_t min_lsn, const cs_query_def *def)
{
	for (flight *f = e->buckets[hash % FLIGHT_BUCKETS]; f; f = f->hnext)
		if (f->hash == hash && f->min_lsn == min_lsn && f->keylen == keylen &&
			memcmp(f->key, key, keylen) == 0 &&
			(f->qs->def == def || query_same(f->qs->def, def)))
			return f;
	return NULL;
}

/* A walk over the read-your-writes list that survives re-entry. Dispatching a waiter
 * can run any engine callback synchronously (a submit whose connect fails at once bans
 * the server, fails its queue and notifies - which walks this list again), so the walk's
 * next flight may be dispatched, re-queued or freed under it. Every walk in progress
 * registers its cursor; ryw_unlink moves a cursor off a flight it removes. A flight
 * (re-)added during a walk goes to the head: not visited by that walk. */
typedef struct ryw_cursor {
	flight *next;
	struct ryw_cursor *up;
} ryw_cursor;

static void ryw_unlink(cs_engine *e, flight *f)
{
	flight **pp = &e->ryw_head;
	while (*pp && *pp != f)
		pp = &(*pp)->rnext;
	if (*pp)
		*pp = f->rnext;
	for (ryw_cursor *c = e->ryw_cursors; c; c = c->up)
		if (c->next == f)
			c->next = f->rnext;
	f->in_ryw = false;
	f->rnext = NULL;
}

/* Calls fn on every flight of the read-your-writes list once (the list as it is when each
 * is reached). fn may dispatch, free or re-queue any flight. */
static void ryw_walk(cs_engine *e, void (*fn)(cs_engine *e, flight *f, uint64_t now), uint64_t now)
{
	ryw_cursor cur = { .next = e->ryw_head, .up = e->ryw_cursors };
	e->ryw_cursors = &cur;
	while (cur.next) {
		flight *f = cur.next;
		cur.next = f->rnext;
		fn(e, f, now);
	}
	e->ryw_cursors = cur.up;
}

static void flight_unlink(flight *f)
{
	flight **pp = &f->e->buckets[f->hash % FLIGHT_BUCKETS];
	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	f->e->stats.flights--;
}

static void flight_free(flight *f)
{
	flight_unlink(f);
	if (f->leased && cs_redis_ready(f->e->redis)) {
		/* Done refreshing: let the next expiry's refresh (here or elsewhere) take it. */
		char lease[KEY_MAX];
		size_t n = cs_ks_lease(&f->e->ks, lease, sizeof lease, f->qs->def->name,
			f->key + f->canon_off, f->keylen - f->canon_off);
		const char *argv[] = { "DEL", lease };
		size_t lens[] = { 3, n };
		(void)!cs_redis_cmd(f->e->redis, NULL, NULL, 2, argv, lens);
	}
	if (f->in_ryw)
		ryw_unlink(f->e, f);
	free(f->pgp);
	free(f->result);
	qtable_unref(f->qt);
	free(f);
}

static void flight_fail(flight *f, int err, const char *msg)
{
	greq *w = f->waiters;
	f->waiters = NULL;
	flight_free(f);
	while (w) {
		greq *next = w->next;
		greq_error(w, err, msg);
		w = next;
	}
}

static void flight_job_done(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err,
	const char *msg, bool retryable);

/* Submits the flight's job: to the least-loaded eligible replica; if its queue is full, to
 * the next one; if every eligible replica is full, OVERLOADED (saturated replicas never
 * spill onto the primary). Only when no replica is eligible at all (down, lagging, wrong
 * tier) does it wait for one (read-your-writes, bounded) or go to the primary (when
 * primary_fallback allows, or for read-your-writes). */
static void flight_dispatch(flight *f)
{
	cs_engine *e = f->e;
	const cs_config *cfg = f->qt->cfg;
	if (e->stopping) {
		flight_fail(f, -CS_ERR_SHUTTING_DOWN, "shutting down");
		return;
	}
	for (;;) {
		cs_pgserver *s = route_replica(e, f->tier, f->min_lsn, &f->tried);
		bool to_primary = false;
		if (s == NULL && f->overloaded) {
			flight_fail(f, -CS_ERR_OVERLOADED, "every fitting replica's queue is full");
			return;
		}
		if (s == NULL && f->min_lsn && cs_now_us() < f->ryw_deadline_us) {
			/* Read-your-writes: wait (bounded) for a replica to replay the token. */
			if (!f->in_ryw) {
				f->in_ryw = true;
				f->rnext = e->ryw_head;
				e->ryw_head = f;
				e->stats.ryw_waits++;
				for (int i = 0; i < e->nservers; i++)
					if (e->servers[i] != e->primary)
						cs_pgserver_fast_monitor(e->servers[i], f->ryw_deadline_us);
			}
			return;
		}
		if (s == NULL && e->primary && !srvset_has(&f->tried, server_index(e, e->primary)) &&
			(cfg->primary_fallback || f->min_lsn) &&
			cs_pgserver_state_get(e->primary) != CS_SRV_DOWN) {
			s = e->primary;
			to_primary = true;
		}
		if (s == NULL) {
			const char *why = f->attempts ? "no server left to retry on"
				: e->primary == NULL ? "no replica fits (health, tier, lag) and no primary is configured"
				: !(cfg->primary_fallback || f->min_lsn)
					? "no replica fits (health, tier, lag) and primary_fallback is off"
					: "no replica fits (health, tier, lag) and the primary is down";
			flight_fail(f, -CS_ERR_UNAVAILABLE, why);
			return;
		}
		if (f->in_ryw)
			ryw_unlink(e, f);
		srvset_add(&f->tried, server_index(e, s));
		f->attempts++;
		f->job.cb = flight_job_done;
		f->job.priv = f;
		f->job.q = f->qs->def;
		f->job.qindex = f->qs->index;
		f->job.params = f->pgp;
		f->job.deadline_us = f->deadline_us;
		/* The job's callback may run inside the submit (a connect that fails at once
		 * bans the server and fails its queue): f may be retried elsewhere or freed
		 * by the time it returns 0. Nothing of f is touched after a successful one. */
		bool ryw = f->min_lsn != 0;
		int rc = cs_pgserver_submit(s, &f->job);
		if (rc == 0) {
			if (to_primary) {
				e->stats.primary_fallbacks++;
				if (ryw)
					e->stats.ryw_primary++;
			} else if (ryw) {
				e->stats.ryw_replica++;
			}
			return;
		}
		if (rc == -CS_ERR_OVERLOADED) {
			f->overloaded = true;
			if (to_primary) {
				flight_fail(f, rc, "the primary's queue is full");
				return;
			}
		}
		/* that server refused (full or down): the loop tries the next one */
	}
}

/* ---- Fill ------------------------------------------------------------------------------- */

typedef struct fillctx {
	cs_engine *e;
	qtable *qt;
	qstate *qs;
} fillctx;

static void load_gens(cs_engine *e);

static bool wants_stored(const greq *r)
{
	return r->op == CS_OP_REFRESH || r->tier == CS_TIER_BATCH;
}

/* Answers one waiter of an answered flight. */
static void flight_answer(flight *f, greq *w, uint8_t stored)
{
	cs_meta meta = f->meta;
	meta.stored = stored;
	cs_hist_record(&f->e->stats.miss_us, cs_now_us() - w->start_us);
	w->cb(w->priv, 0, NULL, &meta, f->result, f->result_len);
	greq_free(w);
}

/* Answers every waiter, including any that joins from inside a callback (a daemon client
 * whose reply frees room and reads its next request, library callbacks): callbacks run
 * exactly once, always. While the fill is in flight, waiters that asked for its outcome
 * are held. */
static void flight_answer_all(flight *f, uint8_t stored)
{
	while (f->waiters) {
		greq *w = f->waiters;
		f->waiters = w->next;
		if (f->filling && wants_stored(w)) {
			w->next = f->held;
			f->held = w;
			continue;
		}
		flight_answer(f, w, f->filling ? CS_STORED_UNSAID : stored);
	}
}

static void on_fill_reply(cs_redis *r, redisReply *reply, void *priv)
{
	flight *f = priv;
	cs_engine *e = f->e;
	qstate *qs = f->qs;
	bool stored = false;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		reply->element[0]->type != REDIS_REPLY_INTEGER) {
		e->stats.fill_errors++;
		if (reply && reply->type == REDIS_REPLY_ERROR)
			cs_debug("fill failed: %s", reply->str);
	} else {
		long long st = reply->element[0]->integer;
		redisReply *g = reply->element[1];
		uint64_t gen = g->type == REDIS_REPLY_STRING ? strtoull(g->str, NULL, 10) : 0;
		if (st == 1) {
			stored = true;
			e->stats.fills++;
			qs->fills++;
		} else if (st == 0) {
			e->stats.fill_refused_gen++;
			/* Generations only rise, unless Redis lost them: with fences on the epoch
			 * check handles that; without, follow Redis down too. */
			if (f->qt == e->qt && (gen > qs->gen || !e->fence_on))
				qs->gen = gen;
		} else if (st == -3) {
			e->stats.fill_refused_fence++;
		} else if (st == -4) {
			e->stats.fill_refused_epoch++;
			load_gens(e); /* Redis lost data, or was resynchronised: catch up */
		} else if (st == -5) {
			e->stats.fill_refused_qfence++;
		} else if (st == -6) {
			e->stats.fill_refused_eviction++;
		} else {
			e->stats.fill_refused_horizon++;
		}
	}
	f->filling = false;
	greq *held = f->held;
	f->held = NULL;
	uint8_t outcome = stored ? CS_STORED_YES : CS_STORED_NO;
	while (held) {
		greq *next = held->next;
		flight_answer(f, held, outcome);
		held = next;
	}
	flight_answer_all(f, outcome);
	flight_free(f);
}

/* Sends the fill script; the flight stays findable until it is acknowledged. Returns
 * false when it could not be sent. */
static bool fill(flight *f, const uint8_t *value, size_t len, int64_t px, uint64_t lsn)
{
	cs_engine *e = f->e;
	const cs_query_def *q = f->qs->def;
	char fence[KEY_MAX], genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME];
	char lsnhex[17], pxs[24], gens[24];
	const char *canon = f->key + f->canon_off;
	size_t canon_len = f->keylen - f->canon_off;
	size_t fl = cs_ks_fence(&e->ks, fence, sizeof fence, q->name, canon, canon_len);
	size_t gl = cs_ks_gen(&e->ks, genkey, sizeof genkey, q->name);
	size_t ql = cs_ks_qfence(&e->ks, qfkey, sizeof qfkey, q->name);
	cs_lsn_hex(lsn, lsnhex);
	int pl = snprintf(pxs, sizeof pxs, "%lld", (long long)px);
	int nl = snprintf(gens, sizeof gens, "%llu", (unsigned long long)f->gen);
	const char *qfence_on = f->qt->cfg->query_fence ? "1" : "0";
	const char *evict_on = f->qt->cfg->eviction_check ? "1" : "0";
	const char *argv[] = { f->key, fence, genkey, e->ks.horizon, qfkey, e->ks.epoch, e->ks.fmax,
		e->ks.evk, (const char *)value, pxs, lsnhex, gens, e->fence_on ? "1" : "0", qfence_on,
		e->epoch, evict_on };
	size_t lens[] = { f->keylen, fl, gl, e->ks.horizon_len, ql, e->ks.epoch_len, e->ks.fmax_len,
		e->ks.evk_len, len, (size_t)pl, 16, (size_t)nl, 1, 1, e->epoch_len, 1 };
	if (fl == 0 || gl == 0 || ql == 0 ||
		cs_redis_script(e->redis, CS_SCRIPT_FILL, on_fill_reply, f, 8, 16, argv, lens) != 0) {
		e->stats.fill_errors++;
		return false;
	}
	return true;
}

/* The database answered a flight: encode, answer every waiter, then fill. */
static void flight_job_done(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err,
	const char *msg, bool retryable)
{
	flight *f = job->priv;
	cs_engine *e = f->e;
	if (err != 0) {
		if (e->stopping)
			err = -CS_ERR_SHUTTING_DOWN;
		if (err == -CS_ERR_OVERLOADED)
			f->overloaded = true;
		if (retryable && f->attempts < MAX_ATTEMPTS && cs_now_us() < f->deadline_us) {
			e->stats.retries++;
			cs_debug("retrying %s on another server: %s", f->qs->def->name, msg);
			flight_dispatch(f);
			return;
		}
		flight_fail(f, err, msg);
		return;
	}
	const cs_query_def *q = f->qs->def;
	/* LSN 0 from a replica: it was out of recovery when read (promoted, the monitor has
	 * not seen it yet): the data is the primary's, with no LSN bound (fence.c (j)). */
	bool primary = cs_pgserver_is_primary(job->srv) || lsn == 0;
	if (primary && !cs_pgserver_is_primary(job->srv))
		e->stats.promoted_reads++;
	uint64_t now_us = cs_now_us();
	int64_t now_ms = cs_wall_ms();
	cs_buf *b = &e->scratch;
	cs_buf_reset(b);
	uint32_t cap = f->qt->cfg->max_reply ? f->qt->cfg->max_reply : MAX_REPLY;
	b->max = CS_ENTRY_HDR + (size_t)CS_MIN(cap, MAX_REPLY);
	char emsg[256] = "";
	int rc = cs_buf_reserve(b, CS_ENTRY_HDR);
	if (rc == 0) {
		b->len = CS_ENTRY_HDR;
		rc = cs_encode_result(res, b, emsg, sizeof emsg);
	}
	if (rc != 0) {
		flight_fail(f, rc, rc == -CS_ERR_TOO_LARGE ? "result too large to serve" : emsg);
		return;
	}
	bool negative = PQntuples(res) == 0;
	int64_t ttl = negative ? q->negative_ttl_ms : q->ttl_ms;
	if (q->ttl_jitter_pct > 0 && ttl > 0) {
		/* ttl_jitter extends the TTL by a random share up to the percentage (CONFIG.md):
		 * never shorter than ttl */
		double j = (double)q->ttl_jitter_pct / 100.0;
		ttl = (int64_t)((double)ttl * (1.0 + j * cs_rand_unit()));
	}
	cs_entry ent = {
		.flags = negative ? CS_ENTRY_NEGATIVE : 0,
		.lsn = primary ? 0 : lsn,
		.filled_ms = now_ms,
		.expires_ms = now_ms + ttl,
		.delta_ms = (uint32_t)CS_MIN((now_us - f->start_us) / 1000u, UINT32_MAX),
	};
	cs_entry_write_header(&ent, b->data);

	/* The result outlives this call (the flight stays findable until the fill is
	 * acknowledged; callbacks may re-enter the engine and reuse the scratch buffer). */
	size_t rlen = b->len - CS_ENTRY_HDR;
	f->result = malloc(rlen ? rlen : 1);
	if (f->result == NULL) {
		flight_fail(f, -CS_ERR_INTERNAL, "out of memory");
		return;
	}
	memcpy(f->result, b->data + CS_ENTRY_HDR, rlen);
	f->result_len = rlen;
	f->meta = (cs_meta){ .src = primary ? CS_SRC_PRIMARY : CS_SRC_REPLICA, .lsn = lsn };
	f->answered = true;

	bool store = false;
	if (f->store) {
		if (rlen > e->qt->cfg->max_result) {
			e->stats.not_cached_large++;
		} else if (ttl <= 0) {
			/* negative result with negative caching off */
		} else if (primary && e->fence_on) {
			e->stats.not_cached_primary++;
		} else {
			store = true;
		}
	}
	if (store && negative && f->qt->cfg->negative_share > 0) {
		/* the negative entries' share: this entry would pass it */
		int64_t npx = ttl;
		uint64_t nbytes = (uint64_t)f->keylen + b->len + 64;
		if (neg_live(&e->neg, now_ms) + nbytes > f->qt->cfg->negative_share) {
			e->stats.negative_skipped++;
			store = false;
		} else {
			neg_add(&e->neg, now_ms, npx, nbytes);
		}
	}
	if (store) {
		if (negative)
			e->stats.negative_fills++;
		/* Redis keeps the entry until max_stale (the hard bound on its age): past the
		 * soft expiry it serves stale while revalidating, and stale-if-error up to
		 * max_stale. */
		/* The jitter moves both expiries: Redis keeps the entry max_stale - ttl past
		 * its (jittered) soft expiry (CONFIG.md max_stale). */
		int64_t px = negative ? ttl : ttl + CS_MAX(0, q->max_stale_ms - q->ttl_ms);
		f->filling = fill(f, b->data, b->len, px, ent.lsn);
	}
	/* Answer everyone now (the fill is off the latency path), except those who asked
	 * for its outcome; on_fill_reply answers them and frees the flight. */
	flight_answer_all(f, CS_STORED_NO);
	if (!f->filling)
		flight_free(f);
}

/* Starts (or joins) the flight for key; r may be NULL for a background refresh. */
static void miss(cs_engine *e, qstate *qs, const char *key, size_t keylen, size_t canon_off,
	uint64_t gen, bool store, greq *r, uint8_t tier, uint64_t min_lsn, const cs_value *params,
	uint32_t nparams, int cause)
{
	uint64_t h = hash_bytes(key, keylen);
	flight *f = flight_find(e, key, keylen, h, min_lsn, qs->def);
	if (f && f->answered && r && (r->op == CS_OP_REFRESH || r->bypass))
		f = NULL; /* REFRESH and bypass want a read made after they were sent: a flight of
			   * their own (flight_find returns the newest of equal keys) */
	if (f) {
		if (r == NULL)
			return;
		e->stats.coalesced++;
		if (f->answered && !(f->filling && wants_stored(r))) {
			/* answered, fill in flight: share the result (src and LSN say what it is) */
			flight_answer(f, r, CS_STORED_UNSAID);
			return;
		}
		r->next = f->answered ? f->held : f->waiters;
		if (f->answered)
			f->held = r;
		else
			f->waiters = r;
		return;
	}
	f = calloc(1, sizeof *f + keylen + 1);
	if (f == NULL) {
		if (r)
			greq_error(r, -CS_ERR_INTERNAL, "out of memory");
		return;
	}
	char err[256];
	f->pgp = cs_params_pg(qs->def, params, nparams, err, sizeof err);
	if (f->pgp == NULL) {
		free(f);
		if (r)
			greq_error(r, -CS_ERR_BAD_PARAMS, err);
		return;
	}
	const cs_config *cfg = e->qt->cfg;
	f->e = e;
	f->qt = e->qt;
	e->qt->refs++;
	f->qs = qs;
	f->hash = h;
	f->min_lsn = min_lsn;
	f->gen = gen;
	f->tier = tier;
	f->store = store;
	f->background = r == NULL;
	f->leased = r == NULL && cause != 0; /* started by refresh_in_background's lease */
	f->refresh_cause = cause;
	f->start_us = cs_now_us();
	f->deadline_us = f->start_us + (uint64_t)cfg->request_timeout_ms * 1000u;
	f->ryw_deadline_us = f->start_us + (uint64_t)cfg->ryw_wait_ms * 1000u;
	f->keylen = keylen;
	f->canon_off = canon_off;
	memcpy(f->key, key, keylen);
	f->waiters = r;
	if (r)
		r->next = NULL;
	f->hnext = e->buckets[h % FLIGHT_BUCKETS];
	e->buckets[h % FLIGHT_BUCKETS] = f;
	e->stats.flights++;
	flight_dispatch(f);
}

/* ---- Cache lookups ---------------------------------------------------------------------- */

/* A request's parameters, copied out of the frame so they outlive it. */
typedef struct lookup {
	cs_engine *e;
	greq *r; /* NULL for a background refresh */
	int cause;
	qtable *qt;
	qstate *qs;
	uint64_t gen;
	size_t keylen, canon_off;
	uint32_t nparams;
	cs_value params[CS_PROTO_MAX_PARAMS];
	char *strs;
	/* parked while its read-your-writes token is checked (token_park) */
	struct lookup *tnext;
	uint8_t op;
	bool cacheable;
	uint64_t trounds; /* e->primary_rounds when parked */
	uint64_t tuntil_us;
	char key[KEY_MAX];
} lookup;

static void lookup_free(lookup *l)
{
	qtable_unref(l->qt);
	free(l->strs);
	free(l);
}

/* Copies params into l, strings into one private block. Returns 0 or -1 (OOM). */
static int lookup_set_params(lookup *l, const cs_value *in, uint32_t n)
{
	size_t total = 0;
	for (uint32_t i = 0; i < n; i++)
		if (in[i].type == CS_V_STR || in[i].type == CS_V_BIN)
			total += in[i].u.s.len;
	l->nparams = n;
	memcpy(l->params, in, n * sizeof *in);
	if (total == 0)
		return 0;
	l->strs = malloc(total);
	if (l->strs == NULL)
		return -1;
	size_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (in[i].type != CS_V_STR && in[i].type != CS_V_BIN)
			continue;
		memcpy(l->strs + off, in[i].u.s.p, in[i].u.s.len);
		l->params[i].u.s.p = l->strs + off;
		off += in[i].u.s.len;
	}
	return 0;
}

static lookup *lookup_clone(const lookup *l, int cause)
{
	lookup *c = malloc(sizeof *c);
	if (c == NULL)
		return NULL;
	*c = *l;
	c->r = NULL;
	c->cause = cause;
	c->strs = NULL;
	if (lookup_set_params(c, l->params, l->nparams) != 0) {
		free(c);
		return NULL;
	}
	c->qt->refs++;
	return c;
}

static void lookup_miss(lookup *l, bool store)
{
	miss(l->e, l->qs, l->key, l->keylen, l->canon_off, l->gen, store, l->r,
		l->r ? l->r->tier : CS_TIER_BATCH, l->r ? l->r->min_lsn : 0, l->params, l->nparams,
		l->cause);
	lookup_free(l);
}

static void on_lease_reply(cs_redis *rd, redisReply *reply, void *priv)
{
	lookup *l = priv;
	if (reply && reply->type == REDIS_REPLY_STATUS) {
		/* we hold the lease: refresh */
		cs_engine *e = l->e;
		if (l->cause == 1) {
			e->stats.refresh_early++;
			l->qs->refresh_early++;
		} else {
			e->stats.refresh_revalidate++;
			l->qs->refresh_revalidate++;
		}
		lookup_miss(l, true);
		return;
	}
	lookup_free(l); /* nil: another process refreshes; NULL: Redis trouble, skip */
}

/* Refreshes an entry off the request path, once across processes (a Redis lease). */
static void refresh_in_background(const lookup *l, int cause)
{
	cs_engine *e = l->e;
	if (flight_find(e, l->key, l->keylen, hash_bytes(l->key, l->keylen), 0, l->qs->def))
		return; /* already refreshing in this process */
	char lease[KEY_MAX], px[24];
	size_t n = cs_ks_lease(&e->ks, lease, sizeof lease, l->qs->def->name, l->key + l->canon_off,
		l->keylen - l->canon_off);
	int pl = snprintf(px, sizeof px, "%lld", (long long)e->qt->cfg->request_timeout_ms);
	const char *argv[] = { "SET", lease, "1", "NX", "PX", px };
	size_t lens[] = { 3, n, 1, 2, 2, (size_t)pl };
	lookup *c = lookup_clone(l, cause);
	if (c == NULL)
		return;
	if (cs_redis_cmd(e->redis, on_lease_reply, c, 6, argv, lens) != 0)
		lookup_free(c);
}

static void serve_hit(lookup *l, const cs_entry *ent, int64_t now_ms, bool stale)
{
	greq *r = l->r;
	cs_engine *e = l->e;
	cs_meta meta = {
		.src = CS_SRC_CACHE,
		.lsn = ent->lsn,
		.age_ms = now_ms > ent->filled_ms ? (uint64_t)(now_ms - ent->filled_ms) : 0,
		.stale = stale,
	};
	if (stale) {
		e->stats.stale_hits++;
		l->qs->stale_hits++;
	} else {
		e->stats.hits++;
		l->qs->hits++;
	}
	cs_hist_record(&e->stats.hit_us, cs_now_us() - r->start_us);
	r->cb(r->priv, 0, NULL, &meta, ent->result, ent->result_len);
	greq_free(r);
	l->r = NULL;
}

static void serve_stale_copy(greq *r, int err, const char *msg)
{
	cs_entry ent;
	cs_engine *e = r->e;
	int64_t now = cs_wall_ms();
	if (!cs_entry_parse(r->stale, r->stale_len, &ent) || now > r->stale_until_ms) {
		/* past max_stale while the refresh failed: the error, not older data */
		reply_error(e, r->cb, r->priv, err, "%s", msg);
		greq_free(r);
		return;
	}
	cs_meta meta = { .src = CS_SRC_CACHE, .lsn = ent.lsn, .stale = true,
		.age_ms = now > ent.filled_ms ? (uint64_t)(now - ent.filled_ms) : 0 };
	e->stats.stale_if_error++;
	r->cb(r->priv, 0, NULL, &meta, ent.result, ent.result_len);
	greq_free(r);
}

/* Read-your-writes (I3): may an entry with data older than the token answer it? Only if
 * every change between the entry's data and the token that could affect it would have
 * deleted it, and the deletion is known to have happened:
 *  - the query is token-safe: its invalidation is per key (no whole-table rule, no
 *    min_lifetime debounce, not TTL-only), and every table its SQL reads is named in
 *    invalidate_on (checked on the primary at startup, cs_check_ryw);
 *  - the invalidator's confirmed position (<ns>:inv:pos) has passed the token;
 *  - the entry belongs to the query's current generation in Redis (a bump this process
 *    has not yet heard of is not ignored) and the epoch is the one this process knows
 *    (Redis did not lose the invalidations).
 * Otherwise the token is served from a replica that replayed it, or the primary. */
static bool ryw_cache_ok(cs_engine *e, const lookup *l, const redisReply *reply)
{
	const cs_query_def *q = l->qs->def;
	if (!e->fence_on || !cs_query_token_safe(q) || reply->type != REDIS_REPLY_ARRAY ||
		reply->elements != 4)
		return false; /* without fences an entry may be a stale set's */
	const redisReply *p = reply->element[1], *g = reply->element[2], *ep = reply->element[3];
	uint64_t pos = 0;
	if (p->type != REDIS_REPLY_STRING || !cs_lsn_unhex(p->str, (size_t)p->len, &pos) ||
		pos < l->r->min_lsn)
		return false;
	uint64_t gen = g->type == REDIS_REPLY_STRING ? strtoull(g->str, NULL, 10) : 0;
	if (gen != l->gen)
		return false;
	if (e->fence_on && (ep->type != REDIS_REPLY_STRING || (size_t)ep->len != e->epoch_len ||
				   memcmp(ep->str, e->epoch, e->epoch_len) != 0))
		return false;
	return true;
}

/* The Redis lookup answered: serve a fresh (or stale-while-revalidate) hit, or miss. */
static void on_cache_reply(cs_redis *rd, redisReply *reply, void *priv)
{
	lookup *l = priv;
	cs_engine *e = l->e;
	greq *r = l->r;
	const cs_query_def *q = l->qs->def;
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		/* Redis trouble: answer from the database, do not fill. */
		e->stats.bypass_redis++;
		lookup_miss(l, false);
		return;
	}
	redisReply *val = reply;
	if (reply->type == REDIS_REPLY_ARRAY) {
		/* MGET entry, position, generation, epoch (read-your-writes) */
		if (reply->elements != 4) {
			e->stats.bypass_redis++;
			lookup_miss(l, false);
			return;
		}
		val = reply->element[0];
	}
	cs_entry ent;
	if (val->type != REDIS_REPLY_STRING ||
		!cs_entry_parse((const uint8_t *)val->str, (size_t)val->len, &ent)) {
		e->stats.misses++;
		l->qs->misses++;
		lookup_miss(l, true);
		return;
	}
	if (r->min_lsn && ent.lsn < r->min_lsn && !ryw_cache_ok(e, l, reply)) {
		e->stats.misses++;
		l->qs->misses++;
		lookup_miss(l, true);
		return;
	}
	if (r->min_lsn)
		e->stats.ryw_cache++;
	int64_t now = cs_wall_ms();
	if (now < ent.expires_ms) {
		/* XFetch (Vattani et al.): refresh early with a probability that rises as expiry
		 * nears, scaled by how long a recompute takes. */
		if (q->xfetch_beta > 0 && ent.delta_ms > 0 &&
			(double)now - (double)ent.delta_ms * q->xfetch_beta * log(cs_rand_unit()) >=
				(double)ent.expires_ms)
			refresh_in_background(l, 1);
		serve_hit(l, &ent, now, false);
		lookup_free(l);
		return;
	}
	/* Past the soft expiry: serve stale while one refresh runs, within the bounds. */
	int64_t age = now - ent.filled_ms;
	if (q->stale_while_revalidate_ms > 0 && now < ent.expires_ms + q->stale_while_revalidate_ms &&
		(q->max_stale_ms <= 0 || age <= q->max_stale_ms)) {
		refresh_in_background(l, 2);
		serve_hit(l, &ent, now, true);
		lookup_free(l);
		return;
	}
	e->stats.misses++;
	l->qs->misses++;
	e->stats.refresh_expired++;
	l->qs->refresh_expired++;
	if (q->max_stale_ms > 0 && age <= q->max_stale_ms) {
		/* keep the expired value in case the refresh fails (stale-if-error) */
		r->stale = malloc((size_t)val->len);
		if (r->stale) {
			memcpy(r->stale, val->str, (size_t)val->len);
			r->stale_len = (size_t)val->len;
			r->stale_until_ms = ent.filled_ms + q->max_stale_ms;
		}
	}
	lookup_miss(l, true);
}

static bool token_ahead(const cs_engine *e, uint64_t lsn);
static void token_park(lookup *l);
static void lookup_start(lookup *l);

void cs_engine_get(cs_engine *e, uint8_t op, const cs_get_req *req, cs_engine_cb *cb, void *priv)
{
	e->stats.requests++;
	qstate *qs = qtable_find(e->qt, req->query, req->query_len);
	if (qs == NULL) {
		reply_error(e, cb, priv, -CS_ERR_UNKNOWN_QUERY, "unknown query \"%.*s\"",
			(int)CS_MIN(req->query_len, 64u), req->query);
		return;
	}
	const cs_query_def *q = qs->def;
	char canon[CS_CANON_MAX + 1], err[256];
	size_t clen = 0;
	int rc = cs_params_canon(q, req->params, req->nparams, canon, sizeof canon, &clen, err,
		sizeof err);
	if (rc < 0) {
		reply_error(e, cb, priv, rc, "%s", err);
		return;
	}
	greq *r = malloc(sizeof *r);
	lookup *l = calloc(1, sizeof *l);
	if (r == NULL || l == NULL || lookup_set_params(l, req->params, req->nparams) != 0) {
		free(r);
		if (l)
			free(l->strs);
		free(l);
		reply_error(e, cb, priv, -CS_ERR_INTERNAL, "out of memory");
		return;
	}
	*r = (greq){ .e = e, .cb = cb, .priv = priv, .op = op, .stale = NULL,
		.tier = req->tier < CS_TIER_COUNT ? req->tier : CS_TIER_DEFAULT,
		.bypass = req->bypass, .min_lsn = req->min_lsn, .start_us = cs_now_us() };
	l->e = e;
	l->r = r;
	l->qt = e->qt;
	e->qt->refs++;
	l->qs = qs;
	l->gen = qs->gen;
	size_t kl = cs_ks_entry_prefix(&e->ks, l->key, sizeof l->key, q->name, qs->gen);
	l->canon_off = kl;
	bool cacheable = rc == 0 && kl > 0 && kl + clen < sizeof l->key;
	if (cacheable) {
		memcpy(l->key + kl, canon, clen);
		l->keylen = (size_t)kl + clen;
	} else {
		e->stats.not_cached_key++;
		l->keylen = (size_t)kl; /* never stored: still a distinct flight key per request */
	}

	l->op = op;
	l->cacheable = cacheable;
	if (r->min_lsn && token_ahead(e, r->min_lsn)) {
		token_park(l);
		return;
	}
	lookup_start(l);
}

/* The read-your-writes token is beyond the primary's last known position. Without a
 * primary, or while it is not up, nothing is known: the token is used as it is. */
static bool token_ahead(const cs_engine *e, uint64_t lsn)
{
	if (e->primary == NULL || cs_pgserver_state_get(e->primary) != CS_SRV_UP)
		return false;
	cs_lsn_t pos = cs_pgserver_lsn(e->primary);
	return pos != 0 && lsn > pos;
}

/* A token ahead of the primary's known position is either a write the monitor has not seen
 * yet (the position is up to health_interval old) or not a position the primary ever had
 * (forged, or from another cluster): such a token would make every read wait for a replica
 * and then go to the primary. The request waits (bounded) for a fresh position: polled at
 * once (cs_pgserver_fast_monitor); token_recheck then runs it, or refuses it with
 * FUTURE_LSN once a monitor round that started after it was parked still has the primary
 * behind the token. */
static void token_park(lookup *l)
{
	cs_engine *e = l->e;
	if (e->ntoken >= TOKEN_WAIT_MAX) {
		greq_error(l->r, -CS_ERR_OVERLOADED, "too many read-your-writes tokens waiting for the "
						     "primary's position");
		lookup_free(l);
		return;
	}
	uint64_t now = cs_now_us();
	l->trounds = e->primary_rounds;
	l->tuntil_us = now + (uint64_t)TOKEN_WAIT_MS * 1000u;
	l->tnext = e->token_head;
	e->token_head = l;
	e->ntoken++;
	e->stats.token_checks++;
	cs_pgserver_fast_monitor(e->primary, now + 50u * 1000u);
}

/* After a monitor round of the primary (or a change of its state), and on every tick:
 * runs, refuses or keeps each parked request. `expire_only`: only those past their wait
 * run (unchecked). */
static void token_recheck(cs_engine *e, uint64_t now, bool expire_only)
{
	lookup *l = e->token_head, *keep = NULL;
	e->token_head = NULL; /* detached: requests run below may park new ones */
	while (l) {
		lookup *next = l->tnext;
		uint64_t lsn = l->r->min_lsn;
		bool ahead = token_ahead(e, lsn);
		if (expire_only && now < l->tuntil_us) {
			l->tnext = keep;
			keep = l;
		} else if (!ahead || now >= l->tuntil_us) {
			e->ntoken--;
			lookup_start(l); /* caught up, unknown, or no answer in time: as before */
		} else if (e->primary_rounds >= l->trounds + 2) {
			/* a round that began after the request was parked finished: the primary's
			 * position is fresh, and still behind the token */
			char msg[200], a[24], b[24];
			cs_lsn_format(lsn, a);
			cs_lsn_format(cs_pgserver_lsn(e->primary), b);
			snprintf(msg, sizeof msg, "read-your-writes LSN %s is beyond the primary's current "
						  "position %s: not an LSN the primary wrote", a, b);
			e->ntoken--;
			e->stats.token_refused++;
			greq_error(l->r, -CS_ERR_FUTURE_LSN, msg);
			lookup_free(l);
		} else {
			l->tnext = keep;
			keep = l;
		}
		l = next;
	}
	/* parked meanwhile (by callbacks of requests run above) go first; order is free */
	lookup **pp = &e->token_head;
	while (*pp)
		pp = &(*pp)->tnext;
	*pp = keep;
}

/* Looks the request up in the cache (or goes to the database). Takes l. */
static void lookup_start(lookup *l)
{
	cs_engine *e = l->e;
	greq *r = l->r;
	qstate *qs = l->qs;
	uint8_t op = l->op;
	bool cacheable = l->cacheable;
	if (!cacheable || r->bypass || qs->paused) {
		if (qs->paused)
			e->stats.bypass_paused++;
		else if (r->bypass)
			e->stats.bypass_requested++;
		/* Uncacheable requests do not coalesce: give each its own flight key. */
		if (!cacheable) {
			int n = snprintf(l->key + l->keylen, sizeof l->key - l->keylen, "#%p", (void *)r);
			l->keylen += (size_t)n;
		}
		lookup_miss(l, false);
		return;
	}
	if (!cs_redis_ready(e->redis) || !qs->gen_known || (e->fence_on && e->epoch_len == 0)) {
		e->stats.bypass_redis++;
		lookup_miss(l, false);
		return;
	}
	const cs_query_def *q = qs->def;
	if (op == CS_OP_REFRESH) {
		e->stats.refresh_forced++;
		lookup_miss(l, true);
		return;
	}
	int sent;
	if (r->min_lsn) {
		/* the entry, the invalidator's position, the query's generation and the epoch
		 * in one round trip: when the cache may answer a token (see on_cache_reply) */
		char genkey[CS_NAME_MAX + CS_MAX_NAME];
		size_t gl = cs_ks_gen(&e->ks, genkey, sizeof genkey, q->name);
		const char *argv[] = { "MGET", l->key, e->ks.pos, genkey, e->ks.epoch };
		size_t lens[] = { 4, l->keylen, e->ks.pos_len, gl, e->ks.epoch_len };
		sent = cs_redis_cmd(e->redis, on_cache_reply, l, 5, argv, lens);
	} else {
		const char *argv[] = { "GET", l->key };
		size_t lens[] = { 3, l->keylen };
		sent = cs_redis_cmd(e->redis, on_cache_reply, l, 2, argv, lens);
	}
	if (sent != 0) {
		e->stats.bypass_redis++;
		lookup_miss(l, false);
	}
}

/* ---- Admin INVALIDATE and pause ---------------------------------------------------------- */

static void bump_generation(cs_engine *e, qstate *qs);

/* A paused query's requests bypass the cache (lookup_start), exactly as a request with
 * "bypass": their answers come from PostgreSQL and store nothing. Resume bumps the
 * generation, so entries from before the pause are never served again. */
int cs_engine_pause(cs_engine *e, const char *name, size_t len, bool pause, bool *changed)
{
	qstate *qs = qtable_find(e->qt, name, len);
	if (qs == NULL)
		return -1;
	*changed = qs->paused != pause;
	if (*changed)
		cs_info("query %s %s by an admin request%s", qs->def->name,
			pause ? "paused" : "resumed",
			pause ? ": served from PostgreSQL, nothing cached, until resumed"
			      : ": a new generation, then served from the cache");
	qs->paused = pause;
	/* A query is paused because its cache is suspect: what was stored before the pause
	 * (or by a fill in flight across it) is not served again. Until Redis confirms the
	 * bump, its requests bypass the cache, as after a reload's change. */
	if (*changed && !pause) {
		qs->gen_known = false;
		bump_generation(e, qs);
	}
	return 0;
}

typedef struct invctx {
	cs_engine *e;
	qtable *qt;
	qstate *qs;
	bool whole;
	cs_engine_inval_cb *cb;
	void *priv;
} invctx;

static void on_inval_reply(cs_redis *rd, redisReply *reply, void *priv)
{
	invctx *c = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		c->e->stats.errors[CS_ERR_UNAVAILABLE]++;
		c->cb(c->priv, -CS_ERR_UNAVAILABLE,
			reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "redis unavailable", 0);
	} else {
		uint64_t n = (uint64_t)reply->integer;
		if (c->whole) {
			c->e->stats.gen_bumps++;
			if (n > c->qs->gen)
				c->qs->gen = n;
		} else {
			c->e->stats.invalidations += n;
		}
		c->cb(c->priv, 0, NULL, n);
	}
	qtable_unref(c->qt);
	free(c);
}

void cs_engine_invalidate(cs_engine *e, const cs_inval_req *req, cs_engine_inval_cb *cb, void *priv)
{
	qstate *qs = qtable_find(e->qt, req->query, req->query_len);
	if (qs == NULL) {
		e->stats.errors[CS_ERR_UNKNOWN_QUERY]++;
		cb(priv, -CS_ERR_UNKNOWN_QUERY, "unknown query", 0);
		return;
	}
	const cs_query_def *q = qs->def;
	char canon[CS_CANON_MAX + 1], err[256];
	size_t clen = 0;
	if (req->has_params) {
		int rc = cs_params_canon(q, req->params, req->nparams, canon, sizeof canon, &clen, err,
			sizeof err);
		if (rc != 0) {
			e->stats.errors[CS_ERR_BAD_PARAMS]++;
			cb(priv, -CS_ERR_BAD_PARAMS, rc < 0 ? err : "parameters too long to be cached", 0);
			return;
		}
	}
	invctx *c = malloc(sizeof *c);
	if (c == NULL) {
		cb(priv, -CS_ERR_INTERNAL, "out of memory", 0);
		return;
	}
	*c = (invctx){ .e = e, .qt = e->qt, .qs = qs, .whole = !req->has_params, .cb = cb, .priv = priv };
	e->qt->refs++;
	char genkey[CS_NAME_MAX + CS_MAX_NAME], lsnhex[17];
	size_t gl = cs_ks_gen(&e->ks, genkey, sizeof genkey, q->name);
	/* Fence at the primary's last known LSN: fills of data read before it are refused. */
	cs_lsn_hex(e->primary ? cs_pgserver_lsn(e->primary) : 0, lsnhex);
	int rc;
	if (c->whole) {
		char qfkey[CS_NAME_MAX + CS_MAX_NAME];
		size_t ql = cs_ks_qfence(&e->ks, qfkey, sizeof qfkey, q->name);
		const char *argv[] = { genkey, qfkey, e->ks.epoch, e->ks.fmax, e->ks.channel, q->name,
			lsnhex, "" };
		size_t lens[] = { gl, ql, e->ks.epoch_len, e->ks.fmax_len, e->ks.channel_len,
			strlen(q->name), 16, 0 };
		rc = cs_redis_script(e->redis, CS_SCRIPT_GEN_BUMP, on_inval_reply, c, 4, 8, argv, lens);
	} else {
		char fence[KEY_MAX], px[24];
		size_t fl = cs_ks_fence(&e->ks, fence, sizeof fence, q->name, canon, clen);
		int pl = snprintf(px, sizeof px, "%lld", (long long)e->qt->cfg->fence_ttl_ms);
		/* the epoch guard needs the current epoch: use it as read by this process */
		const char *argv[] = { fence, genkey, e->ks.epoch, e->ks.fmax, lsnhex, px, e->ks.ns,
			e->epoch, q->name, canon };
		size_t lens[] = { fl, gl, e->ks.epoch_len, e->ks.fmax_len, 16, (size_t)pl, e->ks.nslen,
			e->epoch_len, strlen(q->name), clen };
		rc = e->epoch_len == 0 && e->fence_on ? -1
			: cs_redis_script(e->redis, CS_SCRIPT_INVAL, on_inval_reply, c, 4, 10, argv, lens);
	}
	if (rc != 0) {
		qtable_unref(c->qt);
		free(c);
		e->stats.errors[CS_ERR_UNAVAILABLE]++;
		cb(priv, -CS_ERR_UNAVAILABLE, "redis unavailable", 0);
	}
}

/* ---- Generations ------------------------------------------------------------------------ */

typedef struct gensctx {
	cs_engine *e;
	qtable *t;
} gensctx;

/* The generations poll: the epoch (is it this Redis run's, and the one we know?) and every
 * query's generation, read in one script. */
static void on_gens_reply(cs_redis *rd, redisReply *reply, void *priv)
{
	gensctx *c = priv;
	cs_engine *e = c->e;
	qtable *t = c->t;
	free(c);
	e->gens_busy = false;
	if (reply && reply->type == REDIS_REPLY_ARRAY && (int)reply->elements == t->nq + 2 &&
		reply->element[0]->type == REDIS_REPLY_INTEGER &&
		reply->element[1]->type == REDIS_REPLY_STRING &&
		(size_t)reply->element[1]->len < sizeof e->epoch) {
		bool valid = reply->element[0]->integer == 1;
		const redisReply *ep = reply->element[1];
		bool changed = (size_t)ep->len != e->epoch_len || memcmp(ep->str, e->epoch, e->epoch_len) != 0;
		if (e->fence_on && !valid) {
			/* Redis lost data (or no invalidator has synchronised it yet): neither
			 * serve nor store until the invalidator has resynchronised. */
			if (e->epoch_len)
				cs_warn("redis: the namespace's epoch is gone or from another Redis run (data "
					"lost?): bypassing the cache until the invalidator resynchronises");
			e->epoch_len = 0;
			e->epoch[0] = '\0';
			e->stats.epoch_invalid++;
		} else if (t == e->qt) {
			if (changed) {
				memcpy(e->epoch, ep->str, (size_t)ep->len);
				e->epoch[ep->len] = '\0';
				e->epoch_len = (size_t)ep->len;
				e->stats.epoch_changes++;
			}
			for (int i = 0; i < t->nq; i++) {
				redisReply *g = reply->element[i + 2];
				uint64_t gen = g->type == REDIS_REPLY_STRING ? strtoull(g->str, NULL, 10) : 0;
				/* a new epoch: Redis's generations are the truth, even lower ones */
				if (!t->qs[i].gen_known || gen > t->qs[i].gen || changed || !e->fence_on)
					t->qs[i].gen = gen;
				if (!t->qs[i].pending_bump)
					t->qs[i].gen_known = true;
			}
		}
	}
	qtable_unref(t);
}

static void load_gens(cs_engine *e)
{
	qtable *t = e->qt;
	if (!cs_redis_ready(e->redis) || e->gens_busy)
		return;
	size_t n = (size_t)t->nq + 1;
	const char **argv = calloc(n, sizeof *argv);
	size_t *lens = calloc(n, sizeof *lens);
	char (*keys)[CS_NAME_MAX + CS_MAX_NAME] = calloc(n, sizeof *keys);
	gensctx *c = malloc(sizeof *c);
	if (argv && lens && keys && c) {
		argv[0] = e->ks.epoch;
		lens[0] = e->ks.epoch_len;
		for (int i = 0; i < t->nq; i++) {
			argv[i + 1] = keys[i];
			lens[i + 1] = cs_ks_gen(&e->ks, keys[i], sizeof keys[i], t->qs[i].def->name);
		}
		*c = (gensctx){ .e = e, .t = t };
		t->refs++;
		if (cs_redis_script(e->redis, CS_SCRIPT_GENS, on_gens_reply, c, (int)n, (int)n, argv, lens) == 0) {
			c = NULL;
			e->gens_busy = true;
		} else
			t->refs--;
	}
	free(c);
	free(keys);
	free(lens);
	free(argv);
}

static void on_gen_message(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	if (reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
		reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		load_gens(e); /* (re)subscribed: catch up on what pub/sub may have missed */
		return;
	}
	redisReply *m = reply->element[2];
	if (strcmp(reply->element[0]->str, "message") != 0 || m->type != REDIS_REPLY_STRING)
		return;
	const char *sp = memchr(m->str, ' ', (size_t)m->len);
	if (sp == NULL)
		return;
	if (sp == m->str + 1 && m->str[0] == '*') {
		load_gens(e); /* "* <epoch>": the invalidator (re)synchronised the namespace */
		return;
	}
	qstate *qs = qtable_find(e->qt, m->str, (size_t)(sp - m->str));
	if (qs) {
		uint64_t g = strtoull(sp + 1, NULL, 10);
		if (g > qs->gen)
			qs->gen = g;
	}
}

static void on_pubsub_state(cs_redis *rd, bool up, void *priv)
{
	cs_engine *e = priv;
	if (!up) {
		/* A bump published while we were away would be missed: stop trusting our
		 * generations (requests bypass the cache) until re-subscribed and re-read. */
		for (int i = 0; i < e->qt->nq; i++)
			e->qt->qs[i].gen_known = false;
	}
}

static void on_cache_state(cs_redis *rd, bool up, void *priv)
{
	cs_engine *e = priv;
	if (up) {
		load_gens(e);
		return;
	}
	/* The connection dropped: Redis may have restarted from an older state. Use nothing
	 * of it until the epoch is checked again. */
	e->epoch_len = 0;
	e->epoch[0] = '\0';
	for (int i = 0; i < e->qt->nq; i++)
		e->qt->qs[i].gen_known = false;
}

static void bump_generation(cs_engine *e, qstate *qs);

static void on_gen_timer(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	for (int i = 0; i < e->qt->nq; i++)
		if (e->qt->qs[i].pending_bump && cs_redis_ready(e->redis))
			bump_generation(e, &e->qt->qs[i]);
	load_gens(e);
}

/* ---- Housekeeping ----------------------------------------------------------------------- */

static void history_add(cs_engine *e, cs_lsn_t lsn)
{
	if (e->hist_len > 0 && e->hist[(e->hist_head + LSN_HISTORY - 1) % LSN_HISTORY].lsn >= lsn)
		return; /* only the first time the primary is seen past a position matters */
	e->hist[e->hist_head] = (lsn_sample){ .us = cs_now_us(), .lsn = lsn };
	e->hist_head = (e->hist_head + 1) % LSN_HISTORY;
	if (e->hist_len < LSN_HISTORY)
		e->hist_len++;
}

/* Milliseconds since the primary first had WAL beyond `replay`; 0 when caught up. */
static int64_t lag_behind(const cs_engine *e, cs_lsn_t replay)
{
	uint64_t first = 0;
	for (int i = 1; i <= e->hist_len; i++) {
		const lsn_sample *smp = &e->hist[(e->hist_head + LSN_HISTORY - i) % LSN_HISTORY];
		if (smp->lsn <= replay)
			break;
		first = smp->us;
	}
	return first ? (int64_t)((cs_now_us() - first) / 1000u) : 0;
}

static void ryw_try_replica(cs_engine *e, flight *f, uint64_t now)
{
	if (route_replica(e, f->tier, f->min_lsn, &f->tried))
		flight_dispatch(f);
}

static void ryw_expire(cs_engine *e, flight *f, uint64_t now)
{
	if (now >= f->ryw_deadline_us)
		flight_dispatch(f); /* past the wait: the primary */
}

static void token_recheck(cs_engine *e, uint64_t now, bool expire_only);

static void on_server_notify(cs_pgserver *s, void *priv)
{
	cs_engine *e = priv;
	if (s == e->primary) {
		if (cs_pgserver_state_get(s) == CS_SRV_UP)
			e->primary_rounds++;
		if (cs_pgserver_state_get(s) == CS_SRV_UP)
			history_add(e, cs_pgserver_lsn(s));
		cs_lsn_t lsn = cs_pgserver_lsn(s);
		uint32_t tli = cs_pgserver_timeline(s);
		if (tli > e->max_tli) {
			if (e->max_tli) {
				/* a failover: positions of the old timeline past the switch point
				 * never happened on the new one; lag is measured afresh */
				cs_warn("postgres primary: timeline %u (was %u): a failover", tli, e->max_tli);
				e->hist_len = 0;
				history_add(e, lsn);
			}
			e->max_tli = tli;
		} else if (tli && tli < e->max_tli && !e->stale_primary_logged) {
			cs_error("postgres primary: timeline %u, below the %u seen before: a stale old "
				 "primary; replicas are still compared with timeline %u, and its answers "
				 "are never cached", tli, e->max_tli, e->max_tli);
			e->stale_primary_logged = true;
		}
		/* Lag from the primary's LSN history only while the primary answers: when it is
		 * down, a replica's own estimate (pgpool.c: caught up once it replayed all it
		 * received) is the best there is; the history would age forever. */
		bool primary_up = cs_pgserver_state_get(s) == CS_SRV_UP;
		for (int i = 0; i < e->nservers; i++)
			if (e->servers[i] != s) {
				cs_pgserver_set_primary_lsn(e->servers[i], lsn);
				if (e->max_tli) /* never lowered by a stale old primary */
					cs_pgserver_set_primary_tli(e->servers[i], e->max_tli);
				if (primary_up)
					cs_pgserver_set_lag(e->servers[i],
						lag_behind(e, cs_pgserver_lsn(e->servers[i])));
			}
	} else if (e->primary && e->hist_len > 0 && cs_pgserver_state_get(e->primary) == CS_SRV_UP) {
		cs_pgserver_set_lag(s, lag_behind(e, cs_pgserver_lsn(s)));
	}
	/* Read-your-writes waiters: a replica may have replayed their token now. */
	ryw_walk(e, ryw_try_replica, 0);
	if (s == e->primary && e->token_head)
		token_recheck(e, cs_now_us(), false);
}

/* Frees retired servers that are idle or past their deadline (their running jobs then
 * fail, retryable: the flights move to a current server). */
static void reap_retiring(cs_engine *e, uint64_t now)
{
	for (int i = 0; i < e->nretiring;) {
		cs_pgserver *s = e->retiring[i];
		if (!cs_pgserver_idle(s) && now < e->retiring_until_us[i]) {
			i++;
			continue;
		}
		/* off the list first: freeing runs job callbacks, which may dispatch */
		e->nretiring--;
		e->retiring[i] = e->retiring[e->nretiring];
		e->retiring_id[i] = e->retiring_id[e->nretiring];
		e->retiring_until_us[i] = e->retiring_until_us[e->nretiring];
		cs_info("postgres %s: %s, freed", cs_pgserver_name(s),
			cs_pgserver_idle(s) ? "drained" : "still busy at the reload's deadline");
		cs_pgserver_free(s);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	uint64_t now = cs_now_us();
	ryw_walk(e, ryw_expire, now);
	if (e->token_head)
		token_recheck(e, now, true);
	if (e->nretiring)
		reap_retiring(e, now);
}

/* ---- Verifier sampler ------------------------------------------------------------------- *
 * The protocol of cachesvc-verify, one entry at a time, off the request path:
 *   1. SCAN a query's current-generation entries (a cursor kept per query walks them all
 *      over time) and GET one: E.
 *   2. Run its query on the primary, then read the primary's LSN L (after: every commit the
 *      query saw ends at or before L).
 *   3. Wait (bounded) until cs:inv:pos >= L: the invalidator has applied every change the
 *      primary's answer includes.
 *   4. GET the entry again: gone or changed means it was invalidated or refilled meanwhile
 *      (skipped). Unchanged and different from the primary's answer: stale, counted in
 *      cachesvc_verify_stale_total and logged. */

static void sample_end(cs_engine *e, int outcome) /* 0 ok, 1 stale, 2 skipped */
{
	sampler *sm = &e->smp;
	if (outcome == 0)
		sm->ok++;
	else if (outcome == 1)
		sm->stale++;
	else
		sm->skipped++;
	if (outcome != 2)
		sm->checked++;
	free(sm->entry);
	free(sm->fresh);
	free(sm->pgp);
	sm->entry = sm->fresh = NULL;
	sm->pgp = NULL;
	qtable_unref(sm->qt);
	sm->qt = NULL;
	sm->busy = false;
}

static void on_sample_recheck(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	sampler *sm = &e->smp;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING || (size_t)reply->len != sm->entry_len ||
		memcmp(reply->str, sm->entry, sm->entry_len) != 0) {
		sample_end(e, 2); /* invalidated or refilled while we checked */
		return;
	}
	cs_entry ent;
	char diff[256] = "";
	if (!cs_entry_parse(sm->entry, sm->entry_len, &ent)) {
		sample_end(e, 2);
		return;
	}
	int rc = cs_verify_compare(ent.result, ent.result_len, sm->fresh, sm->fresh_len,
		cs_verify_sql_ordered(sm->qs->def->sql), diff, sizeof diff);
	if (rc == 1) {
		char a[CS_LSN_STRLEN];
		cs_warn("verifier: STALE entry %.*s (data LSN %s, %lld ms old): %s", (int)sm->keylen,
			sm->key, cs_lsn_format(ent.lsn, a), (long long)(cs_wall_ms() - ent.filled_ms), diff);
	}
	sample_end(e, rc == 0 ? 0 : rc == 1 ? 1 : 2);
}

static void on_sample_pos(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	sampler *sm = &e->smp;
	uint64_t pos = 0;
	if (reply && reply->type == REDIS_REPLY_STRING)
		(void)cs_lsn_unhex(reply->str, (size_t)reply->len, &pos);
	if (reply != NULL && pos >= sm->lsn_after) {
		const char *argv[] = { "GET", sm->key };
		size_t lens[] = { 3, sm->keylen };
		if (cs_redis_cmd(e->redis, on_sample_recheck, e, 2, argv, lens) != 0)
			sample_end(e, 2);
		return;
	}
	if (reply == NULL || cs_now_us() > sm->wait_until_us) {
		sample_end(e, 2); /* the invalidator is behind (or absent) */
		return;
	}
	struct timeval tv = cs_tv_ms(50);
	evtimer_add(sm->poll, &tv);
}

static void on_sample_poll(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	const char *argv[] = { "GET", e->ks.pos };
	if (cs_redis_cmd(e->redis, on_sample_pos, e, 2, argv, NULL) != 0)
		sample_end(e, 2);
}

static void on_sample_lsn(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg,
	bool retryable)
{
	cs_engine *e = job->priv;
	sampler *sm = &e->smp;
	if (err != 0 || res == NULL || PQntuples(res) != 1 ||
		!cs_lsn_parse(PQgetvalue(res, 0, 0), &sm->lsn_after)) {
		sample_end(e, 2);
		return;
	}
	sm->wait_until_us = cs_now_us() + 5000000u;
	on_sample_poll(-1, 0, e);
}

static void on_sample_query(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg,
	bool retryable)
{
	cs_engine *e = job->priv;
	sampler *sm = &e->smp;
	cs_buf b;
	cs_buf_init(&b, MAX_REPLY);
	char emsg[128];
	if (err != 0 || res == NULL || cs_encode_result(res, &b, emsg, sizeof emsg) != 0) {
		cs_buf_free(&b);
		sample_end(e, 2);
		return;
	}
	sm->fresh = b.data; /* ownership moves to the sampler */
	sm->fresh_len = b.len;
	sm->lsn_job = (cs_pgjob){ .qindex = -1, .q = &sm->lsn_q, .params = &sm->no_params,
		.deadline_us = cs_now_us() + 5000000u, .cb = on_sample_lsn, .priv = e };
	if (e->primary == NULL || cs_pgserver_submit(e->primary, &sm->lsn_job) != 0)
		sample_end(e, 2);
}

static void on_sample_get(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	sampler *sm = &e->smp;
	cs_entry ent;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING ||
		!cs_entry_parse((const uint8_t *)reply->str, (size_t)reply->len, &ent)) {
		sample_end(e, 2);
		return;
	}
	sm->entry = malloc((size_t)reply->len);
	if (sm->entry == NULL) {
		sample_end(e, 2);
		return;
	}
	memcpy(sm->entry, reply->str, (size_t)reply->len);
	sm->entry_len = (size_t)reply->len;
	/* the key's canonical parameters, back to values, to PostgreSQL parameters */
	const char *canon = sm->key;
	for (int colons = 0; colons < 4 && canon < sm->key + sm->keylen; canon++)
		colons += *canon == ':';
	cs_value vals[CS_PROTO_MAX_PARAMS];
	char buf[CS_CANON_MAX + CS_PROTO_MAX_PARAMS + 1], err[256];
	const cs_query_def *q = sm->qs->def;
	if (cs_params_decanon(q, canon, (size_t)(sm->key + sm->keylen - canon), vals, buf, sizeof buf,
		    err, sizeof err) != 0 ||
		(sm->pgp = cs_params_pg(q, vals, (uint32_t)q->nparams, err, sizeof err)) == NULL) {
		sample_end(e, 2);
		return;
	}
	sm->job = (cs_pgjob){ .qindex = sm->qs->index, .q = q, .params = sm->pgp,
		.deadline_us = cs_now_us() + 5000000u, .cb = on_sample_query, .priv = e };
	if (e->primary == NULL || cs_pgserver_submit(e->primary, &sm->job) != 0)
		sample_end(e, 2);
}

static void on_sample_scan(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	sampler *sm = &e->smp;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_ARRAY) {
		sample_end(e, 2);
		return;
	}
	sm->qs->scan_cursor = strtoull(reply->element[0]->str, NULL, 10);
	redisReply *keys = reply->element[1];
	if (keys->elements == 0) {
		/* nothing in this stretch of the keyspace: not a check */
		free(sm->entry);
		qtable_unref(sm->qt);
		sm->qt = NULL;
		sm->busy = false;
		return;
	}
	redisReply *k = keys->element[cs_rand64() % keys->elements];
	if (k->type != REDIS_REPLY_STRING || (size_t)k->len >= sizeof sm->key) {
		sample_end(e, 2);
		return;
	}
	memcpy(sm->key, k->str, (size_t)k->len);
	sm->keylen = (size_t)k->len;
	const char *argv[] = { "GET", sm->key };
	size_t lens[] = { 3, sm->keylen };
	if (cs_redis_cmd(e->redis, on_sample_get, e, 2, argv, lens) != 0)
		sample_end(e, 2);
}

static void on_sample_timer(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	sampler *sm = &e->smp;
	qtable *t = e->qt;
	if (sm->busy || t->nq == 0 || e->primary == NULL || !cs_redis_ready(e->redis))
		return;
	qstate *qs = &t->qs[sm->qnext++ % t->nq];
	if (!qs->gen_known)
		return;
	char pattern[CS_NAME_MAX + CS_MAX_NAME + 24], cursor[24];
	int pl = (int)cs_ks_entry_prefix(&e->ks, pattern, sizeof pattern - 1, qs->def->name, qs->gen);
	pattern[pl++] = '*';
	pattern[pl] = '\0';
	int cl = snprintf(cursor, sizeof cursor, "%llu", qs->scan_cursor);
	const char *argv[] = { "SCAN", cursor, "MATCH", pattern, "COUNT", "50" };
	size_t lens[] = { 4, (size_t)cl, 5, (size_t)pl, 5, 2 };
	sm->busy = true;
	sm->qt = t;
	t->refs++;
	sm->qs = qs;
	if (cs_redis_cmd(e->redis, on_sample_scan, e, 6, argv, lens) != 0) {
		qtable_unref(sm->qt);
		sm->qt = NULL;
		sm->busy = false;
	}
}

static int sampler_start(cs_engine *e, int64_t interval_ms)
{
	sampler *sm = &e->smp;
	sm->lsn_q.sql = (char *)"SELECT pg_current_wal_lsn()::text";
	sm->no_params = (cs_pg_params){ .n = 0 };
	sm->timer = event_new(e->base, -1, EV_PERSIST, on_sample_timer, e);
	sm->poll = evtimer_new(e->base, on_sample_poll, e);
	if (sm->timer == NULL || sm->poll == NULL)
		return -1;
	struct timeval tv = cs_tv_ms(interval_ms);
	return event_add(sm->timer, &tv);
}

static void sampler_stop(cs_engine *e)
{
	sampler *sm = &e->smp;
	if (sm->timer)
		event_free(sm->timer);
	if (sm->poll)
		event_free(sm->poll);
	sm->timer = sm->poll = NULL;
	free(sm->entry);
	free(sm->fresh);
	free(sm->pgp);
	qtable_unref(sm->qt);
	sm->qt = NULL;
}

/* ---- Lifecycle -------------------------------------------------------------------------- */

cs_engine *cs_engine_new(struct event_base *base, cs_config *cfg, char *err, size_t errlen)
{
	cs_engine *e = calloc(1, sizeof *e);
	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->base = base;
	e->fence_on = cfg->fence;
	char ns[CS_NS_MAX + 1];
	cs_config_namespace(cfg, ns);
	cs_ks_init(&e->ks, ns);
	cs_hist_init(&e->stats.hit_us);
	cs_hist_init(&e->stats.miss_us);
	cs_buf_init(&e->scratch, MAX_REPLY + CS_ENTRY_HDR);
	e->qt = qtable_new(cfg);
	if (e->qt == NULL) {
		snprintf(err, errlen, "out of memory");
		cs_config_free(cfg);
		free(e);
		return NULL;
	}
	/* Host names of the servers and of Redis are resolved on the loop (resolve.h). */
	e->resolver = cs_resolver_new(base, cfg->resolv_conf, cfg->dns_timeout_ms, err, errlen);
	if (e->resolver == NULL) {
		cs_engine_free(e);
		return NULL;
	}
	cs_redis_opts ro = { .name = "cache", .url = cfg->redis_url, .timeout_ms = cfg->redis_timeout_ms,
		.max_pending = 65536, .scripts = cs_scripts, .nscripts = CS_SCRIPT_COUNT,
		.on_state = on_cache_state, .state_priv = e, .resolver = e->resolver };
	e->redis = cs_redis_new(base, &ro, err, errlen);
	cs_redis_opts po = { .name = "pubsub", .url = cfg->redis_url, .timeout_ms = cfg->redis_timeout_ms,
		.max_pending = 16, .on_state = on_pubsub_state, .state_priv = e, .resolver = e->resolver };
	if (e->redis)
		e->pubsub = cs_redis_new(base, &po, err, errlen);
	if (e->redis == NULL || e->pubsub == NULL ||
		cs_redis_subscribe(e->pubsub, e->ks.channel, on_gen_message, e) != 0) {
		cs_engine_free(e);
		return NULL;
	}

	cs_pgpool_opts po2 = {
		.connect_timeout_ms = CS_MAX(cfg->request_timeout_ms, 1000),
		.queue_timeout_ms = cfg->queue_timeout_ms,
		.health_interval_ms = cfg->health_interval_ms,
		.statement_timeout_ms = cfg->request_timeout_ms,
		.queue_max = cfg->queue_max,
		.resolver = e->resolver,
	};
	e->servers = calloc((size_t)cfg->nreplicas + 1, sizeof *e->servers);
	e->srv_id = calloc((size_t)cfg->nreplicas + 1, sizeof *e->srv_id);
	e->retiring = calloc(MAX_SERVERS, sizeof *e->retiring);
	e->retiring_id = calloc(MAX_SERVERS, sizeof *e->retiring_id);
	e->retiring_until_us = calloc(MAX_SERVERS, sizeof *e->retiring_until_us);
	if (e->servers == NULL || e->srv_id == NULL || e->retiring == NULL ||
		e->retiring_id == NULL || e->retiring_until_us == NULL) {
		snprintf(err, errlen, "out of memory");
		cs_engine_free(e);
		return NULL;
	}
	for (int i = 0; i < cfg->nreplicas; i++) {
		const cs_replica_def *r = &cfg->replicas[i];
		e->servers[e->nservers++] = cs_pgserver_new(base, r->name, r->conninfo, false, r->tiers,
			r->pool_size, &po2);
	}
	if (cfg->primary_conninfo) {
		e->primary = cs_pgserver_new(base, "primary", cfg->primary_conninfo, true,
			(1u << CS_TIER_COUNT) - 1, cfg->primary_pool_size, &po2);
		e->servers[e->nservers++] = e->primary;
	}
	for (int i = 0; i < e->nservers; i++) {
		e->srv_id[i] = i;
		if (e->servers[i] == NULL) {
			snprintf(err, errlen, "out of memory");
			cs_engine_free(e);
			return NULL;
		}
		cs_pgserver_set_notify(e->servers[i], on_server_notify, e);
		cs_pgserver_start(e->servers[i]);
	}
	if (cfg->inval_enabled) {
		e->inv = cs_inv_new(base, cfg, e->primary, err, errlen);
		if (e->inv == NULL) {
			cs_engine_free(e);
			return NULL;
		}
	}
	if (cfg->verify_interval_ms > 0 && e->primary && sampler_start(e, cfg->verify_interval_ms) != 0) {
		snprintf(err, errlen, "out of memory");
		cs_engine_free(e);
		return NULL;
	}
	e->tick = event_new(base, -1, EV_PERSIST, on_tick, e);
	e->gen_timer = event_new(base, -1, EV_PERSIST, on_gen_timer, e);
	struct timeval t1 = cs_tv_ms(TICK_MS), t2 = cs_tv_ms(GEN_POLL_MS);
	if (e->tick == NULL || e->gen_timer == NULL || event_add(e->tick, &t1) != 0 ||
		event_add(e->gen_timer, &t2) != 0) {
		snprintf(err, errlen, "out of memory");
		cs_engine_free(e);
		return NULL;
	}
	return e;
}

void cs_engine_free(cs_engine *e)
{
	if (e == NULL)
		return;
	e->stopping = true;
	/* Servers first: their jobs fail, which answers every waiting request (and the
	 * invalidator's slot-health job, so the invalidator goes after them). */
	for (int i = 0; i < e->nservers; i++)
		cs_pgserver_free(e->servers[i]);
	e->nservers = 0;
	e->primary = NULL;
	while (e->nretiring > 0)
		cs_pgserver_free(e->retiring[--e->nretiring]);
	cs_inv_free(e->inv);
	e->inv = NULL;
	/* Flights waiting for read-your-writes never reached a server; requests whose token
	 * waits for the primary's position, nothing yet. */
	while (e->ryw_head)
		flight_fail(e->ryw_head, -CS_ERR_SHUTTING_DOWN, "shutting down");
	while (e->token_head) {
		lookup *l = e->token_head;
		e->token_head = l->tnext;
		e->ntoken--;
		greq_error(l->r, -CS_ERR_SHUTTING_DOWN, "shutting down");
		lookup_free(l);
	}
	/* Redis next: its pending callbacks run now (reply NULL) - lookups answer (their
	 * flights fail: stopping), the sampler ends its sample - so the sampler is stopped
	 * only after them (it frees what a pending callback would free again). */
	cs_redis_free(e->pubsub);
	e->pubsub = NULL;
	cs_redis_free(e->redis);
	e->redis = NULL;
	sampler_stop(e);
	cs_resolver_free(e->resolver); /* after every user of it */
	e->resolver = NULL;
	if (e->tick)
		event_free(e->tick);
	if (e->gen_timer)
		event_free(e->gen_timer);
	free(e->servers);
	free(e->srv_id);
	free(e->retiring);
	free(e->retiring_id);
	free(e->retiring_until_us);
	cs_buf_free(&e->scratch);
	qtable_unref(e->qt);
	free(e);
}

static bool query_same(const cs_query_def *a, const cs_query_def *b)
{
	if (strcmp(a->sql, b->sql) != 0 || a->nparams != b->nparams)
		return false;
	for (int i = 0; i < a->nparams; i++)
		if (a->params[i].type != b->params[i].type)
			return false;
	return true;
}

static bool inval_same(const cs_query_def *a, const cs_query_def *b)
{
	if (a->ninval != b->ninval)
		return false;
	for (int i = 0; i < a->ninval; i++) {
		const cs_inval_rule *x = &a->inval[i], *y = &b->inval[i];
		if (strcmp(x->schema, y->schema) != 0 || strcmp(x->table, y->table) != 0 ||
			x->ncols != y->ncols)
			return false;
		for (int k = 0; k < x->ncols; k++)
			if (strcmp(x->cols[k], y->cols[k]) != 0 || x->param_index[k] != y->param_index[k])
				return false;
	}
	return true;
}

static void on_reload_bump(cs_redis *rd, redisReply *reply, void *priv)
{
	fillctx *c = priv;
	if (reply && reply->type == REDIS_REPLY_INTEGER) {
		c->e->stats.gen_bumps++;
		if ((uint64_t)reply->integer > c->qs->gen)
			c->qs->gen = (uint64_t)reply->integer;
		c->qs->gen_known = true;
	} else {
		cs_warn("query %s changed but its generation could not be bumped; it bypasses the "
			"cache until it is", c->qs->def->name);
		c->qs->pending_bump = true;
	}
	qtable_unref(c->qt);
	free(c);
}

/* INCR the query's generation and announce it: every process stops using old entries. */
static void bump_generation(cs_engine *e, qstate *qs)
{
	/* The query-level fence: the primary's last known position. Data older than it was
	 * read under the old definition's generation at best; refuse it in the new one. */
	char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME], lsnhex[17];
	size_t gl = cs_ks_gen(&e->ks, genkey, sizeof genkey, qs->def->name);
	size_t ql = cs_ks_qfence(&e->ks, qfkey, sizeof qfkey, qs->def->name);
	cs_lsn_hex(e->primary ? cs_pgserver_lsn(e->primary) : 0, lsnhex);
	const char *argv[] = { genkey, qfkey, e->ks.epoch, e->ks.fmax, e->ks.channel, qs->def->name,
		lsnhex, "" };
	size_t lens[] = { gl, ql, e->ks.epoch_len, e->ks.fmax_len, e->ks.channel_len,
		strlen(qs->def->name), 16, 0 };
	fillctx *c = malloc(sizeof *c);
	if (c == NULL) {
		qs->pending_bump = true;
		return;
	}
	*c = (fillctx){ .e = e, .qt = e->qt, .qs = qs };
	e->qt->refs++;
	qs->pending_bump = false;
	if (cs_redis_script(e->redis, CS_SCRIPT_GEN_BUMP, on_reload_bump, c, 4, 8, argv, lens) != 0) {
		qtable_unref(c->qt);
		free(c);
		qs->pending_bump = true; /* retried by the generation timer */
	}
}

/* The lowest id no live (except `skip`) or retiring server holds; -1 when none is left. */
static int free_srv_id(const cs_engine *e, cs_pgserver *const *next, const int *next_id, int nnext)
{
	for (int id = 0; id < MAX_SERVERS; id++) {
		bool used = false;
		for (int i = 0; i < nnext && !used; i++)
			used = next[i] != NULL && next_id[i] == id;
		for (int i = 0; i < e->nretiring && !used; i++)
			used = e->retiring_id[i] == id;
		if (!used)
			return id;
	}
	return -1;
}

/* The replica set of a reloaded config: servers whose definition (name, conninfo, tier,
 * pool_size) is unchanged keep their pools and ids; the others retire (no new work, freed
 * once idle, at the latest request_timeout + 1 s later); new ones start. The primary stays
 * (its conninfo is restart-only). Nothing is changed when memory runs out. */
static int servers_reload(cs_engine *e, const cs_config *cfg, char *err, size_t errlen)
{
	int cap = cfg->nreplicas + 1;
	cs_pgserver **next = calloc((size_t)cap, sizeof *next);
	int *next_id = calloc((size_t)cap, sizeof *next_id);
	bool *kept = calloc((size_t)e->nservers + 1, sizeof *kept);
	if (next == NULL || next_id == NULL || kept == NULL) {
		free(next);
		free(next_id);
		free(kept);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cs_pgpool_opts po = {
		.connect_timeout_ms = CS_MAX(cfg->request_timeout_ms, 1000),
		.queue_timeout_ms = cfg->queue_timeout_ms,
		.health_interval_ms = cfg->health_interval_ms,
		.statement_timeout_ms = cfg->request_timeout_ms,
		.queue_max = cfg->queue_max,
		.resolver = e->resolver,
	};
	int n = 0;
	bool oom = false;
	/* first the servers kept, so new ones can take ids nobody holds */
	for (int i = 0; i < cfg->nreplicas; i++) {
		const cs_replica_def *r = &cfg->replicas[i];
		for (int k = 0; k < e->nservers; k++) {
			cs_pgserver *s = e->servers[k];
			if (s != e->primary && !kept[k] && strcmp(cs_pgserver_name(s), r->name) == 0 &&
				cs_pgserver_same(s, r->conninfo, r->tiers, r->pool_size)) {
				kept[k] = true;
				next[i] = s;
				next_id[i] = e->srv_id[k];
				break;
			}
		}
	}
	if (e->primary) {
		for (int k = 0; k < e->nservers; k++)
			if (e->servers[k] == e->primary) {
				kept[k] = true;
				next[cfg->nreplicas] = e->primary;
				next_id[cfg->nreplicas] = e->srv_id[k];
			}
	}
	int nretire = 0;
	for (int k = 0; k < e->nservers; k++)
		nretire += !kept[k];
	if (e->nretiring + nretire > MAX_SERVERS) {
		/* retired servers of earlier reloads still drain: wait for them */
		oom = true;
	}
	for (int i = 0; i < cfg->nreplicas && !oom; i++) {
		if (next[i])
			continue;
		const cs_replica_def *r = &cfg->replicas[i];
		next[i] = cs_pgserver_new(e->base, r->name, r->conninfo, false, r->tiers, r->pool_size, &po);
		if (next[i] == NULL) {
			oom = true;
			break;
		}
		next_id[i] = -1;
		next_id[i] = free_srv_id(e, next, next_id, cap);
	}
	if (oom) {
		for (int i = 0; i < cfg->nreplicas; i++) {
			bool old = false;
			for (int k = 0; k < e->nservers; k++)
				old = old || next[i] == e->servers[k];
			if (next[i] && !old)
				cs_pgserver_free(next[i]);
		}
		free(next);
		free(next_id);
		free(kept);
		snprintf(err, errlen, e->nretiring + nretire > MAX_SERVERS
					      ? "servers removed by earlier reloads are still draining; try again"
					      : "out of memory");
		return -1;
	}
	/* compact (the primary last), then swap */
	for (int i = 0; i < cap; i++)
		if (next[i]) {
			next[n] = next[i];
			next_id[n++] = next_id[i];
		}
	uint64_t until = cs_now_us() + ((uint64_t)CS_MAX(cfg->request_timeout_ms, 0) + 1000u) * 1000u;
	cs_pgserver **old = e->servers;
	int *old_id = e->srv_id;
	int nold = e->nservers;
	e->servers = next;
	e->srv_id = next_id;
	e->nservers = n;
	for (int k = 0; k < nold; k++) {
		if (kept[k])
			continue;
		cs_info("reload: postgres %s removed or changed: no new work; closed once idle",
			cs_pgserver_name(old[k]));
		e->retiring[e->nretiring] = old[k];
		e->retiring_id[e->nretiring] = old_id[k];
		e->retiring_until_us[e->nretiring++] = until;
		e->stats.server_reloads++;
		/* fails its queue: those flights retry on the new set */
		cs_pgserver_retire(old[k]);
	}
	for (int i = 0; i < n; i++) {
		bool fresh = true;
		for (int k = 0; k < nold && fresh; k++)
			fresh = old[k] != e->servers[i];
		if (!fresh) { /* kept: request_timeout and queue_timeout are reloadable */
			if (cs_pgserver_set_timeouts(e->servers[i], &po) != 0)
				cs_warn("reload: postgres %s keeps its old statement timeout (out of memory)",
					cs_pgserver_name(e->servers[i]));
			continue;
		}
		cs_info("reload: postgres %s added", cs_pgserver_name(e->servers[i]));
		e->stats.server_reloads++;
		cs_pgserver_set_notify(e->servers[i], on_server_notify, e);
		cs_pgserver_start(e->servers[i]);
	}
	free(old);
	free(old_id);
	free(kept);
	return 0;
}

int cs_engine_reload(cs_engine *e, cs_config *cfg, char *err, size_t errlen)
{
	if (!cs_config_reloadable(e->qt->cfg, cfg, err))
		return -1;
	qtable *t = qtable_new(cfg);
	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (servers_reload(e, cfg, err, errlen) != 0) {
		t->cfg = NULL; /* the caller frees the refused config */
		qtable_unref(t);
		return -1;
	}
	/* Generations and per-query counters carry over by name. A query whose SQL,
	 * parameters or invalidate_on changed gets a new generation: its entries answer the old definition.
	 * Until Redis confirms the bump, its requests bypass the cache. */
	for (int i = 0; i < t->nq; i++) {
		const cs_query_def *nd = t->qs[i].def;
		qstate *old = qtable_find(e->qt, nd->name, strlen(nd->name));
		if (old == NULL)
			continue;
		/* read-your-writes coverage was checked at startup for the old definition */
		cfg->queries[i].reads_covered = old->def->reads_covered && query_same(old->def, nd) &&
			inval_same(old->def, nd);
		qstate keep = *old;
		keep.def = nd;
		keep.index = i;
		t->qs[i] = keep;
		t->qs[i].pending_bump = !query_same(old->def, nd) || !inval_same(old->def, nd);
		if (t->qs[i].pending_bump)
			t->qs[i].gen_known = false;
	}
	qtable *old = e->qt;
	e->qt = t;
	qtable_unref(old);
	for (int i = 0; i < e->nservers; i++)
		cs_pgserver_reset_statements(e->servers[i]);
	if (e->inv && cs_inv_reload(e->inv, cfg) != 0)
		cs_warn("reload: the invalidator keeps its old key mapping (out of memory)");
	for (int i = 0; i < t->nq; i++)
		if (t->qs[i].pending_bump)
			bump_generation(e, &t->qs[i]);
	load_gens(e);
	return 0;
}

/* ---- Checked reload: new SQL proves itself on a server before it replaces the old ------ */

/* One changed or new query: EXPLAIN of its SQL with its declared parameter types (all NULL),
 * a one-off statement: it parses, resolves every name and types every parameter the way a
 * GET would, and executes nothing. */
typedef struct rchk_item {
	struct reload_check *rc;
	cs_query_def def; /* name, "EXPLAIN " + sql, the parameter types */
	cs_pg_params params; /* def.nparams NULLs */
	cs_pgjob job;
} rchk_item;

typedef struct reload_check {
	cs_engine *e;
	cs_config *cfg;
	cs_engine_reload_cb *done;
	void *priv;
	const char *server;
	int n, pending, unchecked;
	rchk_item *items;
	const char *nulls[CS_MAX_PARAMS]; /* every parameter NULL: planned, never run */
	char err[2048];
} reload_check;

static void rchk_free(reload_check *rc)
{
	for (int i = 0; rc->items && i < rc->n; i++)
		free(rc->items[i].def.sql);
	free(rc->items);
	free(rc);
}

/* Every check answered: swap (cs_engine_reload) or refuse, then tell the caller. */
static void rchk_finish(reload_check *rc)
{
	cs_engine *e = rc->e;
	e->rchk = NULL;
	int result = -1;
	if (e->stopping) {
		snprintf(rc->err, sizeof rc->err, "shutting down");
	} else if (rc->err[0] == '\0') {
		if (rc->unchecked > 0)
			cs_warn("reload: %d changed queries not checked (%s): applied unchecked",
				rc->unchecked, strcmp(rc->server, "no server") == 0
					? "no server up" : "their server was unreachable or busy");
		result = cs_engine_reload(e, rc->cfg, rc->err, sizeof rc->err);
	}
	if (result != 0)
		cs_config_free(rc->cfg); /* refused: the caller's config goes with it */
	rc->done(rc->priv, result, rc->err);
	rchk_free(rc);
}

static void on_rchk(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg,
	bool retryable)
{
	rchk_item *it = job->priv;
	reload_check *rc = it->rc;
	if (err != 0 && (retryable || err == -CS_ERR_OVERLOADED || err == -CS_ERR_TIMEOUT)) {
		rc->unchecked++; /* the server's failure or load, not the SQL's */
	} else if (err != 0) {
		size_t n = strlen(rc->err);
		snprintf(rc->err + n, sizeof rc->err - n, "%s[query %s] sql: does not prepare: %s",
			n ? "; " : "", it->def.name, msg ? msg : "error"); /* msg names the server */
	}
	if (--rc->pending == 0)
		rchk_finish(rc);
}

/* The server to check on: an up replica, else the primary if up; NULL when none is. */
static cs_pgserver *rchk_server(cs_engine *e)
{
	cs_pgserver *primary = NULL;
	for (int i = 0; i < e->nservers; i++) {
		if (cs_pgserver_state_get(e->servers[i]) != CS_SRV_UP)
			continue;
		if (e->servers[i] == e->primary)
			primary = e->servers[i];
		else
			return e->servers[i];
	}
	return primary;
}

int cs_engine_reload_checked(cs_engine *e, cs_config *cfg, cs_engine_reload_cb *done, void *priv,
	char *err, size_t errlen)
{
	if (e->rchk != NULL) {
		snprintf(err, errlen, "another reload is being checked");
		return -1;
	}
	if (!cs_config_reloadable(e->qt->cfg, cfg, err))
		return -1;
	reload_check *rc = calloc(1, sizeof *rc);
	if (rc == NULL || (rc->items = calloc((size_t)cfg->nqueries + 1, sizeof *rc->items)) == NULL) {
		free(rc);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc->e = e;
	rc->cfg = cfg;
	rc->done = done;
	rc->priv = priv;
	cs_pgserver *srv = rchk_server(e);
	rc->server = srv ? cs_pgserver_name(srv) : "no server";
	/* The queries whose SQL or parameters are new; unchanged ones prepared before. */
	for (int i = 0; i < cfg->nqueries; i++) {
		const cs_query_def *nd = &cfg->queries[i];
		qstate *old = qtable_find(e->qt, nd->name, strlen(nd->name));
		if (old && query_same(old->def, nd))
			continue;
		rchk_item *it = &rc->items[rc->n];
		/* An option list first: SQL that starts with ANALYZE cannot make it EXPLAIN
		 * ANALYZE (which executes); it is a syntax error instead. */
		size_t len = strlen(nd->sql) + 24;
		if ((it->def.sql = malloc(len)) == NULL) {
			rchk_free(rc);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		snprintf(it->def.sql, len, "EXPLAIN (COSTS OFF) %s", nd->sql);
		snprintf(it->def.name, sizeof it->def.name, "%s", nd->name);
		it->def.nparams = nd->nparams;
		memcpy(it->def.params, nd->params, sizeof nd->params);
		it->params = (cs_pg_params){ .n = nd->nparams, .values = rc->nulls };
		it->rc = rc;
		rc->n++;
	}
	e->rchk = rc;
	if (rc->n == 0 || srv == NULL) { /* nothing new to check, or nowhere to check it */
		rc->unchecked = srv == NULL ? rc->n : 0;
		rchk_finish(rc);
		return 0;
	}
	rc->pending = rc->n + 1; /* + a guard while submitting */
	uint64_t deadline = cs_now_us() + (uint64_t)e->qt->cfg->request_timeout_ms * 1000u;
	for (int i = 0; i < rc->n; i++) {
		rchk_item *it = &rc->items[i];
		it->job = (cs_pgjob){ .qindex = -1, .q = &it->def, .params = &it->params,
			.deadline_us = deadline, .cb = on_rchk, .priv = it };
		if (cs_pgserver_submit(srv, &it->job) != 0) {
			rc->unchecked++;
			rc->pending--;
		}
	}
	if (--rc->pending == 0)
		rchk_finish(rc);
	return 0;
}

const cs_config *cs_engine_config(const cs_engine *e)
{
	return e->qt->cfg;
}

const cs_engine_stats *cs_engine_get_stats(const cs_engine *e)
{
	return &e->stats;
}

void cs_engine_set_fence(cs_engine *e, bool on)
{
	e->fence_on = on;
}

bool cs_engine_healthy(const cs_engine *e, char *why, size_t whylen)
{
	/* Every server checked once, and a replica up (the primary when none is configured):
	 * otherwise startup traffic would land on the primary before the replicas answer. */
	bool replica_up = false, primary_up = false;
	char reasons[512] = "";
	size_t rl = 0;
	for (int i = 0; i < e->nservers; i++) {
		cs_pgserver_state st = cs_pgserver_state_get(e->servers[i]);
		if (st == CS_SRV_UNKNOWN) {
			snprintf(why, whylen, "postgres %s not checked yet", cs_pgserver_name(e->servers[i]));
			return false;
		}
		if (e->servers[i] == e->primary) {
			primary_up = st == CS_SRV_UP;
			continue;
		}
		/* usable: up, in recovery, on the primary's timeline, within the lag bounds (what
		 * routing asks of it: a replica that routing skips serves no miss) */
		cs_pgserver_info in;
		cs_pgserver_info_get(e->servers[i], &in);
		const cs_config *cfg = e->qt->cfg;
		bool lagging = in.lag_ms > cfg->max_replica_lag_ms ||
			       (cfg->max_replica_lag_bytes && in.lag_bytes > cfg->max_replica_lag_bytes);
		bool usable = st == CS_SRV_UP && !in.promoted && !in.old_timeline && !lagging;
		replica_up = replica_up || usable;
		if (!usable && rl < sizeof reasons) {
			char lag[64];
			snprintf(lag, sizeof lag, "lagging (%.1f s, %llu bytes)", (double)in.lag_ms / 1000.0,
				(unsigned long long)in.lag_bytes);
			int w = snprintf(reasons + rl, sizeof reasons - rl, "%s%s %s", rl ? ", " : "",
				in.name, st != CS_SRV_UP ? "down" : in.promoted ? "promoted (not in recovery)"
							: in.old_timeline ? "on an old timeline" : lag);
			rl += w > 0 ? (size_t)w : 0;
		}
	}
	bool has_replicas = e->nservers > (e->primary ? 1 : 0);
	if (has_replicas ? !replica_up : !primary_up) {
		if (has_replicas)
			snprintf(why, whylen, "no replica is usable: %s", reasons);
		else
			snprintf(why, whylen, "the primary is not up");
		return false;
	}
	if (!cs_redis_ready(e->redis)) {
		snprintf(why, whylen, "redis is not connected (serving from PostgreSQL)");
		return false;
	}
	for (int i = 0; i < e->qt->nq; i++) {
		if (!e->qt->qs[i].gen_known) {
			snprintf(why, whylen, "loading query generations from redis (bypassing the cache)");
			return false;
		}
	}
	snprintf(why, whylen, "ok");
	return true;
}

/* ---- Metrics ---------------------------------------------------------------------------- */

uint32_t cs_engine_stats_list(const cs_engine *e, cs_stat *out, uint32_t max)
{
	const cs_engine_stats *s = &e->stats;
	struct {
		const char *name;
		uint64_t v;
	} items[] = {
		{ "requests", s->requests }, { "hits", s->hits }, { "stale_hits", s->stale_hits },
		{ "misses", s->misses }, { "coalesced", s->coalesced }, { "fills", s->fills },
		{ "fill_refused_fence", s->fill_refused_fence },
		{ "fill_refused_horizon", s->fill_refused_horizon },
		{ "fill_refused_query_fence", s->fill_refused_qfence },
		{ "fill_refused_eviction", s->fill_refused_eviction },
		{ "fill_refused_epoch", s->fill_refused_epoch },
		{ "fill_refused_generation", s->fill_refused_gen }, { "fill_errors", s->fill_errors },
		{ "not_cached_large", s->not_cached_large }, { "not_cached_primary", s->not_cached_primary },
		{ "bypass_redis", s->bypass_redis }, { "bypass_requested", s->bypass_requested },
		{ "bypass_paused", s->bypass_paused },
		{ "retries", s->retries }, { "primary_fallbacks", s->primary_fallbacks },
		{ "promoted_reads", s->promoted_reads },
		{ "ryw_cache", s->ryw_cache }, { "ryw_replica", s->ryw_replica },
		{ "ryw_primary", s->ryw_primary }, { "flights", s->flights },
		{ "ryw_token_checks", s->token_checks }, { "ryw_token_refused", s->token_refused },
		{ "hit_p50_us", cs_hist_quantile(&s->hit_us, 0.5) },
		{ "hit_p99_us", cs_hist_quantile(&s->hit_us, 0.99) },
		{ "miss_p50_us", cs_hist_quantile(&s->miss_us, 0.5) },
		{ "miss_p99_us", cs_hist_quantile(&s->miss_us, 0.99) },
	};
	uint32_t n = 0;
	for (size_t i = 0; i < CS_ARRAY_LEN(items) && n < max; i++, n++) {
		out[n] = (cs_stat){ .name = items[i].name, .name_len = (uint32_t)strlen(items[i].name),
			.i = (int64_t)items[i].v };
	}
	return n;
}

void cs_engine_metrics_add(const cs_engine *e, cs_metrics *m)
{
	const cs_engine_stats *s = &e->stats;
#define C(name, help, v) cs_m_u64(m, CS_M_COUNTER, "cachesvc_" name, help, (uint64_t)(v), NULL)
	C("requests_total", "GET/REFRESH requests", s->requests);
	C("cache_hits_total", "Fresh cache hits", s->hits);
	C("cache_stale_hits_total", "Stale hits served while revalidating", s->stale_hits);
	C("cache_misses_total", "Cache misses", s->misses);
	C("coalesced_total", "Misses that joined a query already in flight", s->coalesced);
	C("fills_total", "Entries stored in Redis", s->fills);
	C("fill_refused_fence_total", "Fills refused by a newer invalidation fence", s->fill_refused_fence);
	C("fill_refused_horizon_total", "Fills refused: data older than the fence horizon", s->fill_refused_horizon);
	C("fill_refused_generation_total", "Fills refused: the query generation moved", s->fill_refused_gen);
	C("fill_refused_query_fence_total", "Fills refused: data older than the query's last generation bump", s->fill_refused_qfence);
	C("fill_refused_eviction_total", "Fills refused: Redis evicted keys (a fence may be gone) and the data is older than the newest fence", s->fill_refused_eviction);
	C("fill_refused_epoch_total", "Fills refused: Redis lost data or was resynchronised since the generations were read", s->fill_refused_epoch);
	C("redis_epoch_invalid_total", "Generation polls that found the namespace's epoch missing or from another Redis run", s->epoch_invalid);
	C("redis_epoch_changes_total", "New epochs adopted (after a resynchronisation)", s->epoch_changes);
	C("fill_errors_total", "Fills that failed in Redis", s->fill_errors);
	C("not_cached_large_total", "Results served but too large to cache", s->not_cached_large);
	C("not_cached_primary_total", "Results read on the primary (no LSN bound), not cached", s->not_cached_primary);
	C("not_cached_key_total", "Requests whose parameters are too long for a key", s->not_cached_key);
	C("negative_fills_total", "Empty results cached (negative caching)", s->negative_fills);
	C("negative_skipped_total", "Empty results not cached: the negative entries' share (negative_share) was full", s->negative_skipped);
	C("bypass_redis_total", "Requests served from PostgreSQL because Redis was unavailable", s->bypass_redis);
	C("bypass_requested_total", "Requests that asked to bypass the cache", s->bypass_requested);
	C("bypass_paused_total", "Requests for a query paused by an admin, served from PostgreSQL",
		s->bypass_paused);
	C("retries_total", "Queries retried on another server", s->retries);
	C("primary_fallbacks_total", "Queries sent to the primary", s->primary_fallbacks);
	C("promoted_reads_total", "Answers from a [replica] found out of recovery (promoted): primary data, not cached with fences on", s->promoted_reads);
	C("server_reloads_total", "Servers added, removed or changed by reloads", s->server_reloads);
	C("ryw_cache_total", "Read-your-writes requests answered from cache", s->ryw_cache);
	C("ryw_replica_total", "Read-your-writes requests answered by a replica", s->ryw_replica);
	C("ryw_primary_total", "Read-your-writes requests answered by the primary", s->ryw_primary);
	C("ryw_waits_total", "Read-your-writes requests that waited for a replica", s->ryw_waits);
	C("ryw_token_checks_total", "Read-your-writes tokens beyond the primary's known position, checked against a fresh one", s->token_checks);
	C("ryw_token_refused_total", "Read-your-writes tokens refused: beyond the primary's current position (future_lsn)", s->token_refused);
	C("invalidations_total", "Keys deleted by admin INVALIDATE", s->invalidations);
	C("generation_bumps_total", "Whole-query invalidations", s->gen_bumps);
	C("refresh_early_total", "Early (XFetch) refreshes", s->refresh_early);
	C("refresh_expired_total", "Refreshes of expired entries", s->refresh_expired);
	C("refresh_revalidate_total", "Stale-while-revalidate refreshes", s->refresh_revalidate);
	C("refresh_forced_total", "REFRESH requests", s->refresh_forced);
	C("verify_checked_total", "Cached entries the sampler compared with the primary", e->smp.checked);
	C("verify_stale_total", "Cached entries the sampler found stale (mismatch with the primary)", e->smp.stale);
	C("verify_skipped_total", "Samples skipped (changed meanwhile, invalidator behind)", e->smp.skipped);
	C("stale_if_error_total", "Stale values served because the refresh failed (within max_stale)", s->stale_if_error);
#undef C
	for (int i = 1; i <= CS_ERR_MAX; i++)
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_errors_total", "Errors answered, by code",
			s->errors[i], "code", cs_err_name(i), NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_flights", "Misses in flight", s->flights, NULL);
	cs_m_hist(m, "cachesvc_hit_seconds", "Latency of cache hits", &s->hit_us, NULL);
	cs_m_hist(m, "cachesvc_miss_seconds", "Latency of misses", &s->miss_us, NULL);

	for (int i = 0; i < e->qt->nq; i++) {
		const qstate *q = &e->qt->qs[i];
		const char *n = q->def->name;
		static const char rq[] = "Per query outcomes";
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_requests_total", rq, q->hits, "query", n,
			"outcome", "hit", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_requests_total", rq, q->stale_hits,
			"query",
			n, "outcome", "stale_hit", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_requests_total", rq, q->misses, "query",
			n,
			"outcome", "miss", NULL);
	}
	for (int i = 0; i < e->qt->nq; i++) {
		const qstate *q = &e->qt->qs[i];
		const char *n = q->def->name;
		static const char rf[] = "Per query refreshes by cause";
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_refreshes_total", rf, q->refresh_early,
			"query", n, "cause", "early", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_refreshes_total", rf, q->refresh_expired,
			"query", n, "cause", "expired", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_refreshes_total", rf,
			q->refresh_revalidate,
			"query", n, "cause", "revalidate", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_fills_total",
			"Per query entries stored in Redis",
			q->fills, "query", n, NULL);
	}

	static const char *const srv_states[] = { "unknown", "up", "down", NULL };
	for (int i = 0; i < e->nservers; i++) {
		cs_pgserver_info in;
		cs_pgserver_info_get(e->servers[i], &in);
		const char *role = in.primary ? "primary" : "replica";
		const char *sv = in.name;
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_up", "Server health (1 up)", in.state == CS_SRV_UP,
			"server", sv, "role", role, NULL);
		cs_m_state(m, "cachesvc_pg_state",
			"Server health as routing sees it: unknown (not checked yet), up, down "
			"(banned until its backoff expires)",
			"state", srv_states,
			in.state == CS_SRV_UP ? "up" : in.state == CS_SRV_DOWN ? "down" : "unknown",
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_lag_seconds",
			"Replay delay behind the primary (0 when caught up)",
			(double)in.lag_ms / 1000.0, "server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_promoted",
			"A replica found out of recovery (1): not routed to",
			in.promoted, "server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_old_timeline",
			"A replica on a timeline below the primary's (1): not routed to",
			in.old_timeline,
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_timeline",
			"Timeline (primary: current; replica: received); 0 unknown", in.tli,
			"server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_promotions_total", "Promotions seen",
			in.promotions,
			"server", sv, NULL);
		cs_m_u64(m, CS_M_GAUGE, "cachesvc_pg_lag_bytes",
			"Primary WAL position minus the replay position",
			in.lag_bytes, "server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_pool_connections", "Open pool connections",
			in.conns,
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_pool_busy", "Pool connections running a query",
			in.busy,
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_pool_size", "Configured pool size", in.pool_size,
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_queue_waiting",
			"Queries waiting for a pool connection",
			in.queued, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_queries_total", "Queries run", in.queries,
			"server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_errors_total", "Queries that failed",
			in.errors,
			"server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_timeouts_total", "Queries that timed out",
			in.timeouts, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_overloaded_total",
			"Queries refused: the queue was full or the wait too long", in.overloaded,
			"server",
			sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_bans_total",
			"Times the server was banned (marked down)",
			in.bans, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_conn_errors_total",
			"Connections lost and statements canceled by a recovery conflict (not bans)",
			in.conn_errors, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_prepares_total", "Statements prepared",
			in.prepares, "server", sv, NULL);
		cs_m_summary(m, "cachesvc_pg_queue_wait_seconds",
			"Time queries waited for a pool connection",
			(double)in.queue_wait_us_sum / 1e6, in.queue_waits, "server", sv, NULL);
	}
	if (e->inv)
		cs_inv_metrics(e->inv, m);
	cs_resolver_stats ds;
	cs_resolver_stats_get(e->resolver, &ds);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_dns_lookups_total",
		"Host name lookups on the event loop (PostgreSQL and Redis connects)", ds.lookups,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_dns_failures_total",
		"Host name lookups that failed (timeouts included)",
		ds.failures, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_dns_timeouts_total", "Host name lookups that timed out",
		ds.timeouts, NULL);
	const cs_redis_stats *rs = cs_redis_get_stats(e->redis);
	cs_m(m, CS_M_GAUGE, "cachesvc_redis_up", "Redis connection ready", cs_redis_ready(e->redis),
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_connects_total",
		"Redis handshakes that succeeded",
		rs->connects, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_disconnects_total",
		"Ready Redis connections lost",
		rs->disconnects, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_timeouts_total", "Redis commands that timed out",
		rs->timeouts, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_refused_total",
		"Redis commands refused: not ready or too many pending", rs->refused, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_redis_pending", "Redis commands in flight", rs->pending,
		NULL);
}

long cs_engine_metrics(const cs_engine *e, char **out)
{
	cs_metrics *m = cs_metrics_new();
	if (m == NULL)
		return -1;
	cs_engine_metrics_add(e, m);
	return cs_metrics_finish(m, out);
}

/* ---- SHOW views (PROTOCOL.md 3.8) -------------------------------------------------------- */

#define SV_STR(k, str) (cs_show_cell){ .key = (k), .v = { .type = CS_V_STR, .u.s = { (str), (uint32_t)strlen(str) } } }
#define SV_INT(k, num) (cs_show_cell){ .key = (k), .v = { .type = CS_V_INT, .u.i = (int64_t)(num) } }
#define SV_BOOL(k, x)  (cs_show_cell){ .key = (k), .v = { .type = CS_V_BOOL, .u.b = (x) } }
#define SV_NIL(k)      (cs_show_cell){ .key = (k), .v = { .type = CS_V_NIL } }

static void tiers_text(unsigned tiers, char *buf, size_t len)
{
	static const char *const names[] = { "critical", "default", "batch" };
	size_t off = 0;
	buf[0] = '\0';
	for (int t = 0; t < 3; t++)
		if (tiers & (1u << t))
			off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s",
				off ? "," : "", names[t]);
}

struct show_cfg {
	cs_engine_show_cb *cb;
	void *priv;
	int rc;
};

static void show_cfg_line(void *priv, const char *section, const char *key, const char *value)
{
	struct show_cfg *sc = priv;
	if (sc->rc != 0)
		return;
	cs_show_cell c[3] = { SV_STR("section", section), SV_STR("key", key),
		value ? SV_STR("value", value) : SV_NIL("value") };
	sc->rc = sc->cb(sc->priv, c, 3);
}

int cs_engine_show(const cs_engine *e, const char *what, cs_engine_show_cb *cb, void *priv)
{
	int rc = 0;
	if (strcmp(what, "queries") == 0) {
		static const char *const kinds[] = { "row", "list", "aggregate" };
		for (int i = 0; i < e->qt->nq && rc == 0; i++) {
			const qstate *q = &e->qt->qs[i];
			const cs_query_def *d = q->def;
			char params[CS_MAX_PARAMS * (CS_MAX_NAME + 16)];
			size_t off = 0;
			params[0] = '\0';
			for (int p = 0; p < d->nparams && off < sizeof params; p++)
				off += (size_t)snprintf(params + off, sizeof params - off, "%s%s:%s",
					p ? "," : "", d->params[p].name, cs_param_type_name(d->params[p].type));
			cs_show_cell c[] = { SV_STR("name", d->name), SV_STR("params", params),
				SV_INT("ttl_ms", d->ttl_ms),
				SV_STR("kind", d->kind <= CS_KIND_AGGREGATE ? kinds[d->kind] : "?"),
				q->gen_known ? SV_INT("generation", q->gen) : SV_NIL("generation"),
				SV_INT("hits", q->hits), SV_INT("stale_hits", q->stale_hits),
				SV_INT("misses", q->misses), SV_INT("fills", q->fills),
				SV_BOOL("pending_bump", q->pending_bump), SV_BOOL("paused", q->paused) };
			rc = cb(priv, c, (uint32_t)CS_ARRAY_LEN(c));
		}
		return rc;
	}
	if (strcmp(what, "servers") == 0) {
		static const char *const states[] = { "unknown", "up", "down" };
		for (int i = 0; i < e->nservers && rc == 0; i++) {
			cs_pgserver_info in;
			cs_pgserver_info_get(e->servers[i], &in);
			char tiers[64], lsn[CS_LSN_STRLEN];
			tiers_text(in.tiers, tiers, sizeof tiers);
			cs_lsn_format(in.lsn, lsn);
			bool up = in.state == CS_SRV_UP;
			cs_show_cell c[] = { SV_STR("name", in.name),
				SV_STR("role", in.primary ? "primary" : "replica"), SV_STR("tiers", tiers),
				SV_STR("state", (unsigned)in.state < 3 ? states[in.state] : "unknown"),
				SV_BOOL("in_recovery", in.in_recovery), SV_BOOL("promoted", in.promoted),
				/* measured only while up: a down server's old numbers would read as
				 * "caught up" (PROTOCOL.md 3.8: nil = not known) */
				up ? SV_INT("lag_ms", in.lag_ms) : SV_NIL("lag_ms"),
				up ? SV_INT("lag_bytes", in.lag_bytes) : SV_NIL("lag_bytes"),
				up && in.lsn ? SV_STR("lsn", lsn) : SV_NIL("lsn"),
				in.tli ? SV_INT("timeline", in.tli) : SV_NIL("timeline"),
				SV_INT("pool_size", in.pool_size), SV_INT("conns", in.conns),
				SV_INT("busy", in.busy), SV_INT("queued", in.queued),
				SV_INT("queries", in.queries), SV_INT("errors", in.errors),
				SV_INT("conn_errors", in.conn_errors), SV_INT("bans", in.bans) };
			rc = cb(priv, c, (uint32_t)CS_ARRAY_LEN(c));
		}
		return rc;
	}
	if (strcmp(what, "invalidator") == 0) {
		const cs_config *cfg = e->qt->cfg;
		if (e->inv == NULL) {
			cs_show_cell c[] = { SV_BOOL("enabled", false) };
			return cb(priv, c, 1);
		}
		static const char *const states[] = { "idle", "standby", "setup", "streaming" };
		const cs_inv_stats *st = cs_inv_get_stats(e->inv);
		char conf[CS_LSN_STRLEN], hor[CS_LSN_STRLEN];
		cs_lsn_format(st->confirmed, conf);
		cs_lsn_format(st->horizon, hor);
		cs_show_cell behind = SV_NIL("bytes_behind");
		if (e->primary) {
			cs_pgserver_info in;
			cs_pgserver_info_get(e->primary, &in);
			if (in.state == CS_SRV_UP && in.lsn != 0 && st->confirmed != 0)
				behind = SV_INT("bytes_behind",
					in.lsn > st->confirmed ? in.lsn - st->confirmed : 0);
		}
		cs_show_cell c[] = { SV_BOOL("enabled", true),
			SV_STR("state", (unsigned)st->state < 4 ? states[st->state] : "idle"),
			SV_STR("slot", cfg->inval_slot ? cfg->inval_slot : ""),
			SV_STR("publication", cfg->inval_publication ? cfg->inval_publication : ""),
			SV_STR("confirmed_lsn", conf), SV_STR("horizon_lsn", hor), behind,
			SV_BOOL("leader", st->state == CS_INV_STREAMING),
			SV_INT("reconnects", st->reconnects) };
		return cb(priv, c, (uint32_t)CS_ARRAY_LEN(c));
	}
	if (strcmp(what, "config") == 0) {
		struct show_cfg sc = { cb, priv, 0 };
		cs_config_each(e->qt->cfg, show_cfg_line, &sc);
		return sc.rc;
	}
	return -CS_ERR_BAD_PARAMS;
}
