/* engine_read.c - the engine's read path: the query table, replies, routing, flights
 * (single-flight misses) and cache lookups (engine.c says where the rest lives). */
#include "engine_int.h"

#include "shardmap.h"

/* ---- Query table ------------------------------------------------------------------------ */

uint64_t hash_bytes(const void *p, size_t n)
{
	return cs_fnv1a64(CS_FNV1A64_INIT, p, n);
}

qtable *qtable_new(cs_config *cfg)
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
		cs_query_fingerprint(q->def, cfg, q->fp);
		cs_query_map_fingerprint(q->def, cfg, q->mfp);
		for (int k = 0; k < CS_MAX_SHARDS; k++)
			q->sg[k].def_claim = true; /* a start or reload: its definition takes over */
		const char *name = q->def->name;
		size_t s = hash_bytes(name, strlen(name)) & (size_t)(t->nslots - 1);
		while (t->slots[s])
			s = (s + 1) & (size_t)(t->nslots - 1);
		t->slots[s] = i + 1;
	}
	return t;
}

void qtable_unref(qtable *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	cs_config_free(t->cfg);
	free(t->qs);
	free(t->slots);
	free(t);
}

qstate *qtable_find(qtable *t, const char *name, size_t len)
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

void greq_error(greq *r, int err, const char *msg)
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

static bool srvset_has(const srvset *s, int i)
{
	return i >= 0 && i < MAX_SERVERS && (s->w[i / 64] >> (i % 64) & 1u) != 0;
}

/* Picks the least-loaded healthy replica of shard sh serving `tier`, within the lag bounds,
 * that has replayed min_lsn (an LSN of sh's WAL), not yet tried. NULL when none fits. */
cs_pgserver *route_replica(
        cs_engine *e, const shard *sh, int tier, uint64_t min_lsn, const srvset *tried)
{
	const cs_config *cfg = e->qt->cfg;
	cs_pgserver *best = NULL;
	double best_load = 0;
	int ties = 0;
	for (int i = 0; i < e->nservers; i++) {
		cs_pgserver *s = e->servers[i];
		if (s == sh->primary || &e->sh[e->srv_shard[i]] != sh ||
		        srvset_has(tried, e->srv_id[i]))
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

static void srvset_add(srvset *s, int i)
{
	if (i >= 0 && i < MAX_SERVERS)
		s->w[i / 64] |= (uint64_t)1 << (i % 64);
}

/* The flight of key for min_lsn running definition def: across a reload, a request never
 * joins a flight of another definition of its query (other SQL, other columns). */
flight *flight_find(cs_engine *e, const char *key, size_t keylen, uint64_t hash,
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
void ryw_walk(cs_engine *e, void (*fn)(cs_engine *e, flight *f, uint64_t now), uint64_t now)
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

void flight_free(flight *f)
{
	flight_unlink(f);
	if (f->leased) {
		/* Done refreshing: let the next expiry's refresh (here or elsewhere) take it. */
		char lease[KEY_MAX];
		size_t n = cs_ks_lease(&f->e->sh[f->shard].ks, lease, sizeof lease,
		        f->qs->def->name, f->key + f->canon_off, f->keylen - f->canon_off);
		const char *argv[] = {"DEL", lease};
		size_t lens[] = {3, n};
		uint16_t slot = cs_rc_keyslot(lease, n);
		if (cs_rc_slot_ready(f->e->redis, slot))
			(void)!cs_rc_cmd(f->e->redis, slot, NULL, NULL, 2, argv, lens);
	}
	if (f->in_ryw)
		ryw_unlink(f->e, f);
	free(f->pgp);
	free(f->result);
	qtable_unref(f->qt);
	free(f);
}

void flight_fail(flight *f, int err, const char *msg)
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

/* Submits the flight's job: to the least-loaded eligible replica; if its queue is full, to
 * the next one; if every eligible replica is full, OVERLOADED (saturated replicas never
 * spill onto the primary). Only when no replica is eligible at all (down, lagging, wrong
 * tier) does it wait for one (read-your-writes, bounded) or go to the primary (when
 * primary_fallback allows, or for read-your-writes). */
void flight_dispatch(flight *f)
{
	cs_engine *e = f->e;
	const shard *sh = &e->sh[f->shard];
	const cs_config *cfg = f->qt->cfg;
	if (e->stopping) {
		flight_fail(f, -CS_ERR_SHUTTING_DOWN, "shutting down");
		return;
	}
	for (;;) {
		cs_pgserver *s = f->primary_only
		                         ? NULL
		                         : route_replica(e, sh, f->tier, f->min_lsn, &f->tried);
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
				tick_arm(e); /* on_tick ends the wait at its deadline */
				e->stats.ryw_waits++;
				for (int i = 0; i < e->nservers; i++)
					if (e->servers[i] != sh->primary &&
					        &e->sh[e->srv_shard[i]] == sh)
						cs_pgserver_fast_monitor(
						        e->servers[i], f->ryw_deadline_us);
			}
			return;
		}
		/* another shard's token: the primary alone vouches for it, so never one on a
		 * timeline below one seen before (an old primary back after a failover, a stale
		 * conninfo: review 33 R33-1) */
		bool old_primary = f->primary_only && sh->primary &&
		                   cs_pgserver_timeline(sh->primary) != 0 &&
		                   cs_pgserver_timeline(sh->primary) < sh->max_tli;
		if (s == NULL && sh->primary && !old_primary &&
		        !srvset_has(&f->tried, server_index(e, sh->primary)) &&
		        (cfg->primary_fallback || f->min_lsn || f->primary_only) &&
		        cs_pgserver_state_get(sh->primary) != CS_SRV_DOWN) {
			s = sh->primary;
			to_primary = true;
		}
		if (s == NULL) {
			const char *why =
			        f->attempts ? "no server left to retry on"
			        : old_primary
			                ? "the read-your-writes token is another shard's: "
			                  "only the key's shard's primary may answer, and "
			                  "it is on a timeline below one seen before (an old "
			                  "primary)"
			        : f->primary_only
			                ? "the read-your-writes token is another shard's: "
			                  "only the key's shard's primary may answer, and "
			                  "it is down"
			        : sh->primary == NULL
			                ? "no replica fits (health, tier, lag) and no "
			                  "primary is configured"
			        : !(cfg->primary_fallback || f->min_lsn)
			                ? "no replica fits (health, tier, lag) and "
			                  "primary_fallback is off"
			                : "no replica fits (health, tier, lag) and the "
			                  "primary is down";
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
/* ---- Cache lookups ---------------------------------------------------------------------- */

static void near_settle(lookup *l, const redisReply *val);

void lookup_free(lookup *l)
{
	if (l->watched)
		near_settle(l, NULL);
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
	miss(l->e, l->shard, l->qs, l->key, l->keylen, l->canon_off, l->gen, store, l->r,
	        l->r ? l->r->tier : CS_TIER_BATCH, l->r ? l->r->min_lsn : 0, l->params, l->nparams,
	        l->cause);
	lookup_free(l);
}

static void on_lease_reply(cs_rc *rc, redisReply *reply, void *priv)
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
	size_t n = cs_ks_lease(&e->sh[l->shard].ks, lease, sizeof lease, l->qs->def->name,
	        l->key + l->canon_off, l->keylen - l->canon_off);
	int pl = snprintf(px, sizeof px, "%lld", (long long)e->qt->cfg->request_timeout_ms);
	const char *argv[] = { "SET", lease, "1", "NX", "PX", px };
	size_t lens[] = { 3, n, 1, 2, 2, (size_t)pl };
	lookup *c = lookup_clone(l, cause);
	if (c == NULL)
		return;
	if (cs_rc_cmd(e->redis, cs_rc_keyslot(lease, n), on_lease_reply, c, 6, argv, lens) != 0)
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
		SHARD_COUNT(e, l->shard, stale_hits);
	} else {
		e->stats.hits++;
		l->qs->hits++;
		SHARD_COUNT(e, l->shard, hits);
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
	const shard *sh = &e->sh[l->shard];
	if (e->fence_on && (ep->type != REDIS_REPLY_STRING || (size_t)ep->len != sh->epoch_len ||
	                           memcmp(ep->str, sh->epoch, sh->epoch_len) != 0))
		return false;
	return true;
}

/* Serves an entry from Redis or the near cache if it is fresh, or stale while one refresh
 * runs (within max_stale); false when past both (the caller misses). */
static bool serve_entry(lookup *l, const cs_entry *ent)
{
	const cs_query_def *q = l->qs->def;
	int64_t now = cs_wall_ms();
	if (now < ent->expires_ms) {
		/* XFetch (Vattani et al.): refresh early with a probability that rises as expiry
		 * nears, scaled by how long a recompute takes. */
		if (q->xfetch_beta > 0 && ent->delta_ms > 0 &&
			(double)now - (double)ent->delta_ms * q->xfetch_beta * log(cs_rand_unit()) >=
				(double)ent->expires_ms)
			refresh_in_background(l, 1);
		serve_hit(l, ent, now, false);
		return true;
	}
	int64_t age = now - ent->filled_ms;
	if (q->stale_while_revalidate_ms > 0 && now < ent->expires_ms + q->stale_while_revalidate_ms &&
		(q->max_stale_ms <= 0 || age <= q->max_stale_ms)) {
		refresh_in_background(l, 2);
		serve_hit(l, ent, now, true);
		return true;
	}
	return false;
}

/* ---- Near cache (near.h, engine_near.c) ---------------------------------------------- */

/* The GET this lookup watched answered (val: the reply, NULL for none or an error). */
static void near_settle(lookup *l, const redisReply *val)
{
	cs_entry ent;
	bool ok = val && val->type == REDIS_REPLY_STRING &&
		cs_entry_parse((const uint8_t *)val->str, (size_t)val->len, &ent);
	l->watched = false;
	cs_near_settle(l->e->near, l->key, l->keylen, hash_bytes(l->key, l->keylen), &l->nt,
		ok ? (const uint8_t *)val->str : NULL, ok ? (size_t)val->len : 0,
		val && val->type == REDIS_REPLY_NIL);
}

/* Serves l from the near cache when it holds a usable entry (for a read-your-writes token:
 * one whose data is at or past the token). Otherwise watches the GET about to be sent
 * (plain GETs only) and returns false. */
static bool near_lookup(lookup *l)
{
	cs_engine *e = l->e;
	cs_near_stats *ns = cs_near_stats_mut(e->near);
	uint64_t h = hash_bytes(l->key, l->keylen);
	size_t vlen = 0;
	const uint8_t *v = cs_near_get(e->near, l->key, l->keylen, h, &vlen);
	cs_entry ent;
	if (v && cs_entry_parse(v, vlen, &ent) && ent.lsn >= l->r->min_lsn) {
		bool ryw = l->r->min_lsn != 0;
		if (serve_entry(l, &ent)) {
			ns->hits++;
			if (ryw)
				e->stats.ryw_cache++;
			lookup_free(l);
			return true;
		}
	}
	ns->misses++;
	if (l->r->min_lsn == 0)
		l->watched = cs_near_watch(e->near, l->key, l->keylen, h, &l->nt);
	return false;
}

/* The Redis lookup answered: serve a fresh (or stale-while-revalidate) hit, or miss. */
static void on_cache_reply(cs_rc *rc, redisReply *reply, void *priv)
{
	lookup *l = priv;
	cs_engine *e = l->e;
	greq *r = l->r;
	const cs_query_def *q = l->qs->def;
	if (l->watched) /* a resent read was not tracked: served, not stored (E1) */
		near_settle(l, near_resent(e, rc) ? NULL : reply);
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
		SHARD_COUNT(e, l->shard, misses);
		lookup_miss(l, true);
		return;
	}
	if (r->min_lsn && ent.lsn < r->min_lsn && !ryw_cache_ok(e, l, reply)) {
		e->stats.misses++;
		l->qs->misses++;
		SHARD_COUNT(e, l->shard, misses);
		lookup_miss(l, true);
		return;
	}
	if (r->min_lsn)
		e->stats.ryw_cache++;
	if (serve_entry(l, &ent)) {
		lookup_free(l);
		return;
	}
	/* Past the soft expiry and the stale bounds: refresh. */
	int64_t age = cs_wall_ms() - ent.filled_ms;
	e->stats.misses++;
	l->qs->misses++;
	SHARD_COUNT(e, l->shard, misses);
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

static bool token_ahead(const shard *sh, uint64_t lsn);
static void token_park(lookup *l);
static void lookup_start(lookup *l);

/* A request's entry key, computed once per request (near_fast, then lookup_new on a near
 * miss; the items of an MGET). */
typedef struct keyed {
	qstate *qs;
	uint16_t shard; /* e->sh[shard]: the key's shard (key_route) */
	int rc;         /* <0: an error code and err (bad parameters, no shard); 1 not cacheable */
	size_t kl;      /* the prefix (<ns>:e:<query>:<gen>:), 0 when it does not fit */
	size_t keylen;  /* kl + the canonical parameters when cacheable, else kl */
	bool cacheable;
	bool reused;  /* the prefix was the kprefix's (key_make) */
	bool other_shard; /* the token is another shard's: the shard's primary only (key_route) */
	uint64_t gen; /* the query's generation in the shard, the one in the key */
	char err[CS_CONFIG_ERRLEN]; /* a routing message names a query and a parameter */
	char key[KEY_MAX];
} keyed;

/* An MGET's last formatted prefix, reused by the next item of the same query, shard and
 * generation (single Redis). */
typedef struct kprefix {
	const qstate *qs; /* NULL: none yet */
	uint16_t shard;
	uint64_t gen;
	const char *p;
	size_t len;
} kprefix;

/* key_make on a cluster: the prefix "{<ns>:<b>}:e:<q>:<g>:" depends on the bucket b of the
 * canonical parameters, so they are made first (after room for the longest prefix), then
 * moved behind the prefix. */
static void key_make_cluster(const shard *sh, qstate *qs, const cs_get_req *req, keyed *k)
{
	const cs_query_def *q = qs->def;
	size_t room = CS_KS_PREFIX_MAX + 3 + strlen(q->name) + 1 + 20 + 1;
	size_t clen = 0;
	k->kl = 0;
	k->rc = cs_params_canon(q, req->params, req->nparams, k->key + room, sizeof k->key - room,
		&clen, k->err, sizeof k->err);
	if (k->rc == 0) {
		uint32_t b = cs_ks_bucket(&sh->ks, q->name, k->key + room, clen);
		char pre[CS_KS_PREFIX_MAX + 3 + CS_PROTO_MAX_NAME + 1 + 20 + 2];
		size_t pl = cs_ks_entry_prefix(&sh->ks, b, pre, sizeof pre, q->name, k->gen);
		if (pl > 0 && pl <= room) {
			memmove(k->key + pl, k->key + room, clen + 1);
			memcpy(k->key, pre, pl);
			k->kl = pl;
		}
	}
	k->cacheable = k->rc == 0 && k->kl > 0;
	if (k->rc >= 0 && k->kl == 0) { /* not cacheable: the flight key only needs to be unique */
		k->kl = cs_ks_entry_prefix(&sh->ks, 0, k->key, sizeof k->key, q->name, k->gen);
		k->cacheable = false;
	}
	k->keylen = k->cacheable ? k->kl + clen : k->kl;
}

/* A sharded engine's request: its shard (cs_shard_pick: the pinned shard, or the shard key
 * through the map) into k->shard, and its read-your-writes token checked against it (an
 * LSN of one shard says nothing of another's WAL: SHARDS.md section 1). 0, or the error
 * (k->rc, k->err; nothing else of k set). */
static __attribute__((noinline, cold)) int key_route(
        cs_engine *e, const cs_query_def *q, const cs_get_req *req, keyed *k)
{
	const cs_config *cfg = e->qt->cfg;
	int s = cs_shard_pick(cfg, q, req->params, req->nparams, k->err, sizeof k->err);
	if (s < 0 || s >= e->nsh) {
		if (s >= 0) /* the map names a shard the engine lacks: never from a loaded config */
			snprintf(k->err, sizeof k->err, "query %s: shard %d of %d", q->name, s,
			        e->nsh);
		k->rc = s < 0 ? s : -CS_ERR_INTERNAL;
		return -1;
	}
	k->shard = (uint16_t)s;
	e->sh[s].requests++; /* (only sharded engines route) */
	if (req->min_lsn == 0)
		return 0;
	const char *name = cfg->shards[s].name;
	if (req->shard_len == 0) {
		snprintf(k->err, sizeof k->err,
		        "query %s: a read-your-writes token on a sharded deployment names "
		        "its shard (SHARD:LSN, here %s:...): a bare LSN could be any shard's",
		        q->name, name);
		k->rc = -CS_ERR_BAD_PARAMS;
		return -1;
	}
	if (req->shard_len == strlen(name) && memcmp(req->shard, name, req->shard_len) == 0)
		return 0;
	/* A token of another shard: its LSN says nothing of this shard's WAL (SHARDS.md section
	 * 1), so no replica's replay LSN and no entry can be judged by it. The key's shard's
	 * primary is always new enough: the read goes there (section 5). A name no [shard]
	 * section has is a mistake, not another shard. */
	for (int i = 0; i < cfg->nshards; i++) {
		const char *o = cfg->shards[i].name;
		if (req->shard_len == strlen(o) && memcmp(req->shard, o, req->shard_len) == 0) {
			k->other_shard = true;
			return 0;
		}
	}
	snprintf(k->err, sizeof k->err,
	        "query %s: the read-your-writes token names shard %.*s, which no [shard] "
	        "section configures (the key is on shard %s)",
	        q->name, (int)CS_MIN(req->shard_len, 64u), req->shard, name);
	k->rc = -CS_ERR_BAD_PARAMS;
	return -1;
}

void cs_engine_test_other_shard_plain(cs_engine *e)
{
	e->test_other_plain = true;
}

/* Fills k for req of query qs: its shard, the query's generation there, the key. The
 * prefix is formatted unless pfx (an MGET's previous prefix, may be NULL) is of the same
 * query, shard and generation (k->reused). k->rc < 0: an error (k->err), nothing else. */
static inline __attribute__((always_inline)) void key_make(
        cs_engine *e, qstate *qs, const cs_get_req *req, keyed *k, const kprefix *pfx)
{
	const cs_query_def *q = qs->def;
	k->qs = qs;
	k->shard = 0; /* the implicit shard, unless sharded */
	k->other_shard = false;
	if (__builtin_expect(e->sharded, 0) && key_route(e, q, req, k) != 0) {
		k->kl = k->keylen = 0;
		k->cacheable = k->reused = false;
		return;
	}
	k->gen = qs->sg[k->shard].gen;
	k->reused = false;
	const shard *sh = &e->sh[k->shard];
	if (sh->ks.cluster) {
		key_make_cluster(sh, qs, req, k);
		return;
	}
	if (pfx && pfx->qs == qs && pfx->shard == k->shard && pfx->gen == k->gen) {
		memcpy(k->key, pfx->p, pfx->len);
		k->kl = pfx->len;
		k->reused = true;
	} else {
		k->kl = cs_ks_entry_prefix(&sh->ks, 0, k->key, sizeof k->key, q->name, k->gen);
	}
	/* the prefix never takes more than KEY_MAX - (CS_CANON_MAX + 1) bytes: canonical
	 * parameters have the same room as in a buffer of their own */
	size_t clen = 0;
	k->rc = cs_params_canon(q, req->params, req->nparams, k->key + k->kl, sizeof k->key - k->kl,
		&clen, k->err, sizeof k->err);
	k->cacheable = k->rc == 0 && k->kl > 0 && k->kl + clen < sizeof k->key;
	k->keylen = k->cacheable ? k->kl + clen : k->kl;
}

/* A lookup of req for the key k (valid: k->rc >= 0), or NULL on OOM (nothing answered). */
static lookup *lookup_make(cs_engine *e, uint8_t op, const cs_get_req *req, cs_engine_cb *cb,
	void *priv, const keyed *k)
{
	greq *r = malloc(sizeof *r);
	lookup *l = calloc(1, sizeof *l);
	if (r == NULL || l == NULL || lookup_set_params(l, req->params, req->nparams) != 0) {
		free(r);
		if (l)
			free(l->strs);
		free(l);
		return NULL;
	}
	*r = (greq){ .e = e, .cb = cb, .priv = priv, .op = op, .stale = NULL,
		.tier = req->tier < CS_TIER_COUNT ? req->tier : CS_TIER_DEFAULT,
		.bypass = req->bypass, .min_lsn = req->min_lsn, .start_us = cs_now_us() };
	l->e = e;
	l->r = r;
	l->qt = e->qt;
	e->qt->refs++;
	l->qs = k->qs;
	l->gen = k->gen;
	l->shard = k->shard;
	l->canon_off = k->kl;
	memcpy(l->key, k->key, k->keylen);
	l->keylen = k->keylen;
	if (!k->cacheable)
		e->stats.not_cached_key++; /* never stored: still a distinct flight key per request */
	l->op = op;
	l->cacheable = k->cacheable;
	if (__builtin_expect(k->other_shard, 0)) {
		/* another shard's LSN: compared with nothing here (key_route); the read is the
		 * primary's, never the cache's nor stored (lookup_local: as uncacheable) */
		r->min_lsn = 0;
		e->stats.ryw_other_shard++;
		if (!e->test_other_plain) { /* (the control: a plain read of the cache) */
			r->primary_only = true;
			l->cacheable = false;
			l->keylen = l->canon_off; /* as an uncacheable key's: room for "#%p" */
		}
	}
	return l;
}

/* A lookup for one GET or REFRESH, or NULL when answered at once (unknown query, bad
 * parameters, OOM: cb has run). k: the request's key when near_fast computed it, or NULL. */
static lookup *lookup_new(cs_engine *e, uint8_t op, const cs_get_req *req, cs_engine_cb *cb,
	void *priv, keyed *k)
{
	e->stats.requests++;
	keyed mine;
	if (k == NULL) {
		qstate *qs = qtable_find(e->qt, req->query, req->query_len);
		if (qs == NULL) {
			reply_error(e, cb, priv, -CS_ERR_UNKNOWN_QUERY, "unknown query \"%.*s\"",
				(int)CS_MIN(req->query_len, 64u), req->query);
			return NULL;
		}
		k = &mine;
		key_make(e, qs, req, k, NULL);
	}
	if (k->rc < 0) {
		reply_error(e, cb, priv, k->rc, "%s", k->err);
		return NULL;
	}
	lookup *l = lookup_make(e, op, req, cb, priv, k);
	if (l == NULL)
		reply_error(e, cb, priv, -CS_ERR_INTERNAL, "out of memory");
	return l;
}

/* The near-hit fast path: a plain GET whose fresh entry the near cache holds is answered
 * here, with nothing allocated. Anything else (a token, bypass, a pause, Redis or the
 * generations not usable, an entry due for an early or stale refresh, no entry) returns
 * false and takes the general path, which decides again from scratch - with the entry key
 * computed here when k->qs is set. */
static bool near_fast(cs_engine *e, uint8_t op, const cs_get_req *req, cs_engine_cb *cb,
	void *priv, keyed *k)
{
	if (op != CS_OP_GET || req->bypass || req->min_lsn || !cs_near_on(e->near))
		return false;
	/* XFetch queries take the general path: one draw per request decides the early
	 * refresh (drawing here and again there would square its probability) */
	uint64_t t0 = cs_now_us();
	qstate *qs = qtable_find(e->qt, req->query, req->query_len);
	if (qs == NULL || !qs->def->near_cache || qs->def->xfetch_beta > 0 || qs->paused ||
	        !cs_rc_ready(e->redis))
		return false;
	key_make(e, qs, req, k, NULL);
	if (!k->cacheable || !qs->sg[k->shard].gen_known ||
	        (e->fence_on && e->sh[k->shard].epoch_len == 0))
		return false;
	size_t vlen = 0;
	const uint8_t *v = cs_near_get(e->near, k->key, k->keylen, hash_bytes(k->key, k->keylen),
		&vlen);
	cs_entry ent;
	if (v == NULL || !cs_entry_parse(v, vlen, &ent))
		return false;
	int64_t now = cs_wall_ms();
	if (now >= ent.expires_ms)
		return false;
	e->stats.requests++;
	e->stats.hits++;
	qs->hits++;
	SHARD_COUNT(e, k->shard, hits);
	cs_near_stats_mut(e->near)->hits++;
	cs_meta meta = { .src = CS_SRC_CACHE, .lsn = ent.lsn,
		.age_ms = now > ent.filled_ms ? (uint64_t)(now - ent.filled_ms) : 0 };
	cs_hist_record(&e->stats.hit_us, cs_now_us() - t0);
	cb(priv, 0, NULL, &meta, ent.result, ent.result_len);
	return true;
}

void cs_engine_get(cs_engine *e, uint8_t op, const cs_get_req *req, cs_engine_cb *cb, void *priv)
{
	keyed k;
	k.qs = NULL;
	if (e->near && near_fast(e, op, req, cb, priv, &k))
		return;
	lookup *l = lookup_new(e, op, req, cb, priv, k.qs ? &k : NULL);
	if (l == NULL)
		return;
	if (l->r->min_lsn && token_ahead(&e->sh[l->shard], l->r->min_lsn)) {
		token_park(l);
		return;
	}
	lookup_start(l);
}

static bool lookup_local(lookup *l);
static void lookup_send(lookup *l);
static void lookup_send_failed(lookup *l);

/* ---- MGET ------------------------------------------------------------------------------- */

/* A client MGET's plain GETs (no token, no bypass, cacheable, Redis usable, not answered by
 * the near cache) go to Redis as one MGET. Their state lives in one block per client MGET:
 * the header, the items, the items' parameters (cs_value) and one text area (the entry keys
 * the Redis MGET is built from, then the parameters' strings). A fresh hit is answered
 * straight from the reply; anything else (a miss, an entry to refresh, an error) becomes a
 * lookup then, and takes the path a single GET takes from its reply (on_cache_reply). */
typedef struct mitem {
	void *priv;
	qstate *qs;
	uint64_t gen;
	uint16_t shard;
	const char *key;
	cs_value *params;
	uint32_t keylen, canon_off, nparams, req; /* req: the index in the client's MGET */
	uint8_t tier;
	bool watched; /* the near cache watches this item's GET (nt) */
	cs_near_ticket nt;
} mitem;

typedef struct mbatch {
	cs_engine *e;
	qtable *qt; /* one reference for every item's qs */
	cs_engine_cb *cb;
	uint64_t start_us;
	uint32_t n;
	uint32_t parts; /* cluster: MGETs (one per slot) not yet answered, +1 while sending */
	mitem it[];
} mbatch;

/* On a cluster, one MGET per slot of the batch (CLUSTER.md C7: a multi-key command needs
 * one slot): the items it[idx[0..n-1]] of b. */
typedef struct mpart {
	mbatch *b;
	uint32_t n;
	uint32_t idx[];
} mpart;

#define MGET_KEYS 8192 /* the stack area of one MGET's batched keys; items past it go alone */

static void mitem_settle(cs_engine *e, mitem *x, const redisReply *val)
{
	cs_entry ent;
	bool ok = val && val->type == REDIS_REPLY_STRING &&
		cs_entry_parse((const uint8_t *)val->str, (size_t)val->len, &ent);
	x->watched = false;
	cs_near_settle(e->near, x->key, x->keylen, hash_bytes(x->key, x->keylen), &x->nt,
		ok ? (const uint8_t *)val->str : NULL, ok ? (size_t)val->len : 0,
		val && val->type == REDIS_REPLY_NIL);
}

/* The lookup of an item the reply did not answer at once, or NULL (OOM). */
static lookup *mitem_lookup(mbatch *b, const mitem *x)
{
	cs_engine *e = b->e;
	greq *r = malloc(sizeof *r);
	lookup *l = calloc(1, sizeof *l);
	if (r == NULL || l == NULL || lookup_set_params(l, x->params, x->nparams) != 0) {
		free(r);
		if (l)
			free(l->strs);
		free(l);
		return NULL;
	}
	*r = (greq){ .e = e, .cb = b->cb, .priv = x->priv, .op = CS_OP_GET, .stale = NULL,
		.tier = x->tier, .start_us = b->start_us };
	l->e = e;
	l->r = r;
	l->qt = b->qt;
	b->qt->refs++;
	l->qs = x->qs;
	l->gen = x->gen;
	l->shard = x->shard;
	l->canon_off = x->canon_off;
	memcpy(l->key, x->key, x->keylen);
	l->keylen = x->keylen;
	l->op = CS_OP_GET;
	l->cacheable = true;
	return l;
}

static void mbatch_free(mbatch *b)
{
	qtable_unref(b->qt);
	free(b);
}

static void mbatch_item(cs_rc *rc, mbatch *b, mitem *x, redisReply *val, int64_t now,
	uint64_t now_us);

/* Redis answered the batch's MGET (reply NULL: no answer). */
static void on_mbatch_reply(cs_rc *rc, redisReply *reply, void *priv)
{
	mbatch *b = priv;
	bool whole = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == b->n;
	redisReply *other = reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL;
	int64_t now = cs_wall_ms();
	uint64_t now_us = cs_now_us();
	for (uint32_t i = 0; i < b->n; i++)
		mbatch_item(rc, b, &b->it[i], whole ? reply->element[i] : other, now, now_us);
	mbatch_free(b);
}

/* A cluster part of a batch answered: its items, back in their places in the batch. */
static void on_mpart_reply(cs_rc *rc, redisReply *reply, void *priv)
{
	mpart *p = priv;
	mbatch *b = p->b;
	bool whole = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == p->n;
	redisReply *other = reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL;
	int64_t now = cs_wall_ms();
	uint64_t now_us = cs_now_us();
	for (uint32_t j = 0; j < p->n; j++)
		mbatch_item(rc, b, &b->it[p->idx[j]], whole ? reply->element[j] : other, now, now_us);
	free(p);
	if (--b->parts == 0)
		mbatch_free(b);
}

/* One item of an answered batch (val: its value, an error, or NULL for no answer). */
static void mbatch_item(cs_rc *rc, mbatch *b, mitem *x, redisReply *val, int64_t now,
	uint64_t now_us)
{
	cs_engine *e = b->e;
	{
		if (x->watched) /* a resent read was not tracked: served, not stored (E1) */
			mitem_settle(e, x, near_resent(e, rc) ? NULL : val);
		cs_entry ent;
		const cs_query_def *q = x->qs->def;
		if (val && val->type == REDIS_REPLY_STRING &&
			cs_entry_parse((const uint8_t *)val->str, (size_t)val->len, &ent) &&
			now < ent.expires_ms && !(q->xfetch_beta > 0 && ent.delta_ms > 0)) {
			/* a fresh hit, no early refresh to draw: serve_hit without a lookup */
			e->stats.hits++;
			x->qs->hits++;
			SHARD_COUNT(e, x->shard, hits);
			cs_meta meta = { .src = CS_SRC_CACHE, .lsn = ent.lsn,
				.age_ms = now > ent.filled_ms ? (uint64_t)(now - ent.filled_ms) : 0 };
			cs_hist_record(&e->stats.hit_us, now_us - b->start_us);
			b->cb(x->priv, 0, NULL, &meta, ent.result, ent.result_len);
			return;
		}
		lookup *l = mitem_lookup(b, x);
		if (l == NULL) {
			reply_error(e, b->cb, x->priv, -CS_ERR_INTERNAL, "out of memory");
			return;
		}
		on_cache_reply(rc, val, l);
	}
}

/* Serves an MGET item from the near cache when it holds a fresh entry the fast path may
 * serve (near_fast's rules). 1: served; 0: no entry (watched: whether its GET is watched,
 * in nt); -1: an entry the general path must decide (stale, XFetch). *now: the wall clock,
 * read once per MGET (0 until read); start_us: the MGET's start. */
static int mget_near(cs_engine *e, const keyed *k, cs_engine_cb *cb, void *priv,
	int64_t *now, uint64_t start_us, cs_near_ticket *nt, bool *watched)
{
	qstate *qs = k->qs;
	cs_near_stats *ns = cs_near_stats_mut(e->near);
	uint64_t h = hash_bytes(k->key, k->keylen);
	size_t vlen = 0;
	const uint8_t *v = cs_near_get(e->near, k->key, k->keylen, h, &vlen);
	cs_entry ent;
	if (v && cs_entry_parse(v, vlen, &ent)) {
		if (*now == 0)
			*now = cs_wall_ms();
		if (*now >= ent.expires_ms || (qs->def->xfetch_beta > 0 && ent.delta_ms > 0))
			return -1;
		e->stats.hits++;
		qs->hits++;
		ns->hits++;
		SHARD_COUNT(e, k->shard, hits);
		cs_meta meta = { .src = CS_SRC_CACHE, .lsn = ent.lsn,
			.age_ms = *now > ent.filled_ms ? (uint64_t)(*now - ent.filled_ms) : 0 };
		cs_hist_record(&e->stats.hit_us, cs_now_us() - start_us);
		cb(priv, 0, NULL, &meta, ent.result, ent.result_len);
		return 1;
	}
	ns->misses++;
	*watched = cs_near_watch(e->near, k->key, k->keylen, h, nt);
	return 0;
}

/* The cache could not be asked for an item: answer from the database, do not fill
 * (lookup_send_failed). */
static void mitem_unsent(mbatch *b, mitem *x)
{
	cs_engine *e = b->e;
	if (x->watched)
		mitem_settle(e, x, NULL);
	e->stats.bypass_redis++;
	lookup *l = mitem_lookup(b, x);
	if (l == NULL)
		reply_error(e, b->cb, x->priv, -CS_ERR_INTERNAL, "out of memory");
	else
		lookup_miss(l, false);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sends a batch on a cluster: its items grouped by slot (the bucket's, from the table), one
 * MGET per slot; each part's reply puts its items back in their places. argv/lens: "MGET"
 * and the items' keys, in item order. */
static void mget_cluster(cs_engine *e, mbatch *b, const char **argv, size_t *lens)
{
	uint64_t ord[CS_PROTO_MAX_MGET];
	uint32_t n = b->n;
	for (uint32_t i = 0; i < n; i++)
		ord[i] = (uint64_t)key_slot(&e->sh[b->it[i].shard], b->it[i].key, b->it[i].keylen)
		                 << 32 |
		         i;
	qsort(ord, n, sizeof ord[0], cmp_u64);
	b->parts = 1; /* held while sending */
	const char *pargv[CS_PROTO_MAX_MGET + 1];
	size_t plens[CS_PROTO_MAX_MGET + 1];
	pargv[0] = "MGET";
	plens[0] = 4;
	for (uint32_t i = 0; i < n;) {
		uint16_t slot = (uint16_t)(ord[i] >> 32);
		uint32_t j = i;
		while (j < n && (uint16_t)(ord[j] >> 32) == slot)
			j++;
		mpart *p = malloc(sizeof *p + (j - i) * sizeof p->idx[0]);
		if (p != NULL) {
			p->b = b;
			p->n = j - i;
			for (uint32_t k = i; k < j; k++) {
				uint32_t idx = (uint32_t)ord[k];
				p->idx[k - i] = idx;
				pargv[k - i + 1] = argv[idx + 1];
				plens[k - i + 1] = lens[idx + 1];
			}
			b->parts++;
			/* a part with watched items: CLIENT CACHING yes just before it, to its slot
			 * (the same connection), else those items are not stored */
			bool watched = false;
			for (uint32_t k = 0; k < p->n; k++)
				watched |= b->it[p->idx[k]].watched;
			if (watched && !near_caching_yes(e, slot))
				for (uint32_t k = 0; k < p->n; k++)
					if (b->it[p->idx[k]].watched)
						mitem_settle(e, &b->it[p->idx[k]], NULL);
			if (cs_rc_cmd(e->redis, slot, on_mpart_reply, p, (int)p->n + 1, pargv, plens) == 0) {
				e->cl.mget_parts++;
			} else {
				b->parts--;
				free(p);
				p = NULL;
			}
		}
		if (p == NULL)
			for (uint32_t k = i; k < j; k++)
				mitem_unsent(b, &b->it[(uint32_t)ord[k]]);
		i = j;
	}
	if (--b->parts == 0)
		mbatch_free(b);
}

void cs_engine_mget(cs_engine *e, const cs_get_req *reqs, uint32_t n, cs_engine_cb *cb,
	void *const *privs)
{
	mitem send[CS_PROTO_MAX_MGET];
	char keys[MGET_KEYS];
	size_t keys_len = 0, pbytes = 0;
	uint32_t ns = 0;
	keyed k;
	kprefix pfx = {.qs = NULL};          /* the last prefix formatted into keys */
	bool usable = cs_rc_ready(e->redis); /* and the item's shard's epoch known (below) */
	bool near = e->near && cs_near_on(e->near);
	uint64_t start_us = cs_now_us();
	int64_t now = 0; /* the wall clock for near hits, read at the first */
	const cs_get_req *prev = NULL; /* the last item whose query was found, and that query */
	qstate *prev_qs = NULL;
	/* the decoder never passes more (PROTOCOL.md); a caller that does still gets one
	 * answer per item (review M2) */
	for (uint32_t i = CS_PROTO_MAX_MGET; i < n; i++)
		reply_error(e, cb, privs[i], CS_ERR_TOO_LARGE, "an MGET takes at most %d items",
			CS_PROTO_MAX_MGET);
	if (n > CS_PROTO_MAX_MGET)
		n = CS_PROTO_MAX_MGET;
	for (uint32_t i = 0; i < n; i++) {
		const cs_get_req *req = &reqs[i];
		e->stats.requests++;
		qstate *qs = prev && prev->query_len == req->query_len &&
				memcmp(prev->query, req->query, req->query_len) == 0
			? prev_qs
			: qtable_find(e->qt, req->query, req->query_len);
		if (qs != NULL) {
			prev = req;
			prev_qs = qs;
		} else {
			reply_error(e, cb, privs[i], -CS_ERR_UNKNOWN_QUERY, "unknown query \"%.*s\"",
				(int)CS_MIN(req->query_len, 64u), req->query);
			continue;
		}
		key_make(e, qs, req, &k, &pfx);
		if (k.rc < 0) {
			reply_error(e, cb, privs[i], k.rc, "%s", k.err);
			continue;
		}
		bool plain = k.cacheable && !req->bypass && !req->min_lsn && !qs->paused &&
		             qs->sg[k.shard].gen_known && usable &&
		             !(e->fence_on && e->sh[k.shard].epoch_len == 0);
		bool watched = false;
		cs_near_ticket nt = { 0, 0 };
		if (plain && near && qs->def->near_cache) {
			int got = mget_near(e, &k, cb, privs[i], &now, start_us, &nt, &watched);
			if (got == 1)
				continue;
			plain = got == 0;
		}
		size_t pb = 0;
		if (plain) {
			pb = req->nparams * sizeof(cs_value);
			for (uint32_t j = 0; j < req->nparams; j++)
				if (req->params[j].type == CS_V_STR || req->params[j].type == CS_V_BIN)
					pb += req->params[j].u.s.len;
		}
		if (!plain || k.keylen > sizeof keys - keys_len) {
			/* the general path: its own lookup (a token reads more than the entry,
			 * and waits when it is ahead of the primary) */
			lookup *l = lookup_make(e, CS_OP_GET, req, cb, privs[i], &k);
			if (l == NULL) {
				if (watched)
					cs_near_settle(e->near, k.key, k.keylen,
						hash_bytes(k.key, k.keylen), &nt, NULL, 0, false);
				reply_error(e, cb, privs[i], -CS_ERR_INTERNAL, "out of memory");
			} else if (l->r->min_lsn && token_ahead(&e->sh[l->shard], l->r->min_lsn)) {
				token_park(l);
			} else if (plain) {
				l->watched = watched;
				l->nt = nt;
				lookup_send(l);
			} else {
				lookup_start(l);
			}
			continue;
		}
		if (!k.reused && !e->sh[k.shard].ks.cluster) {
			pfx.qs = qs;
			pfx.shard = k.shard;
			pfx.gen = k.gen;
			pfx.p = keys + keys_len;
			pfx.len = k.kl;
		}
		memcpy(keys + keys_len, k.key, k.keylen);
		send[ns] = (mitem){.priv = privs[i],
		        .qs = qs,
		        .gen = k.gen,
		        .shard = k.shard,
		        .key = keys + keys_len,
		        .keylen = (uint32_t)k.keylen,
		        .canon_off = (uint32_t)k.kl,
		        .req = i,
		        .tier = req->tier < CS_TIER_COUNT ? req->tier : CS_TIER_DEFAULT,
		        .watched = watched,
		        .nt = nt};
		keys_len += k.keylen;
		pbytes += pb;
		ns++;
	}
	if (ns == 0)
		return;
	mbatch *b = malloc(sizeof *b + ns * sizeof(mitem) + pbytes + keys_len);
	if (b == NULL) {
		for (uint32_t i = 0; i < ns; i++) {
			if (send[i].watched)
				mitem_settle(e, &send[i], NULL);
			reply_error(e, cb, send[i].priv, -CS_ERR_INTERNAL, "out of memory");
		}
		return;
	}
	*b = (mbatch){ .e = e, .qt = e->qt, .cb = cb, .start_us = start_us, .n = ns };
	e->qt->refs++;
	/* the block: items, then every item's parameters (cs_value), then the text: keys, then
	 * the parameters' strings */
	cs_value *pv = (cs_value *)(void *)&b->it[ns];
	size_t nv = 0;
	for (uint32_t i = 0; i < ns; i++)
		nv += reqs[send[i].req].nparams;
	char *text = (char *)(pv + nv);
	memcpy(text, keys, keys_len);
	char *str = text + keys_len;
	const char *argv[CS_PROTO_MAX_MGET + 1];
	size_t lens[CS_PROTO_MAX_MGET + 1];
	argv[0] = "MGET";
	lens[0] = 4;
	bool watched = false;
	for (uint32_t i = 0; i < ns; i++) {
		mitem *x = &b->it[i];
		const cs_get_req *req = &reqs[send[i].req];
		*x = send[i];
		x->key = text + (send[i].key - keys);
		x->params = pv;
		x->nparams = req->nparams;
		memcpy(pv, req->params, req->nparams * sizeof *pv);
		for (uint32_t j = 0; j < req->nparams; j++) {
			if ((pv[j].type != CS_V_STR && pv[j].type != CS_V_BIN) || pv[j].u.s.len == 0)
				continue;
			memcpy(str, pv[j].u.s.p, pv[j].u.s.len);
			pv[j].u.s.p = str;
			str += pv[j].u.s.len;
		}
		pv += req->nparams;
		argv[i + 1] = x->key;
		lens[i + 1] = x->keylen;
		watched |= x->watched;
	}
	if (e->sh[0].ks.cluster) { /* every shard's keyspace is on the cluster, or none */
		mget_cluster(e, b, argv, lens);
		return;
	}
	if (watched && !near_caching_yes(e, 0))
		for (uint32_t i = 0; i < ns; i++)
			if (b->it[i].watched)
				mitem_settle(e, &b->it[i], NULL); /* untracked: not stored */
	if (cs_rc_cmd(e->redis, 0, on_mbatch_reply, b, (int)ns + 1, argv, lens) == 0)
		return;
	for (uint32_t i = 0; i < ns; i++)
		mitem_unsent(b, &b->it[i]);
	mbatch_free(b);
}

/* The read-your-writes token (an LSN of shard sh's WAL) is beyond sh's primary's last known
 * position. Without a primary, or while it is not up, nothing is known: the token is used
 * as it is. */
static bool token_ahead(const shard *sh, uint64_t lsn)
{
	if (sh->primary == NULL || cs_pgserver_state_get(sh->primary) != CS_SRV_UP)
		return false;
	cs_lsn_t pos = cs_pgserver_lsn(sh->primary);
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
	shard *sh = &e->sh[l->shard];
	if (e->ntoken >= TOKEN_WAIT_MAX) { /* every shard's together (review 19 R19-2) */
		greq_error(l->r, -CS_ERR_OVERLOADED,
		        "too many read-your-writes tokens waiting for the "
		        "primary's position");
		lookup_free(l);
		return;
	}
	uint64_t now = cs_now_us();
	l->trounds = sh->primary_rounds;
	l->tuntil_us = now + (uint64_t)TOKEN_WAIT_MS * 1000u;
	l->tnext = sh->token_head;
	sh->token_head = l;
	tick_arm(e);
	e->ntoken++;
	e->stats.token_checks++;
	cs_pgserver_fast_monitor(sh->primary, now + 50u * 1000u);
}

/* After a monitor round of shard sh's primary (or a change of its state), and on every
 * tick: runs, refuses or keeps each request parked on sh. `expire_only`: only those past
 * their wait run (unchecked). */
void token_recheck(cs_engine *e, shard *sh, uint64_t now, bool expire_only)
{
	lookup *l = sh->token_head, *keep = NULL;
	sh->token_head = NULL; /* detached: requests run below may park new ones */
	while (l) {
		lookup *next = l->tnext;
		uint64_t lsn = l->r->min_lsn;
		bool ahead = token_ahead(sh, lsn);
		if (expire_only && now < l->tuntil_us) {
			l->tnext = keep;
			keep = l;
		} else if (!ahead || now >= l->tuntil_us) {
			e->ntoken--;
			lookup_start(l); /* caught up, unknown, or no answer in time: as before */
		} else if (sh->primary_rounds >= l->trounds + 2) {
			/* a round that began after the request was parked finished: the primary's
			 * position is fresh, and still behind the token */
			char msg[200], a[24], b[24];
			cs_lsn_format(lsn, a);
			cs_lsn_format(cs_pgserver_lsn(sh->primary), b);
			snprintf(msg, sizeof msg,
			        "read-your-writes LSN %s is beyond the primary's current "
			        "position %s: not an LSN the primary wrote",
			        a, b);
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
	lookup **pp = &sh->token_head;
	while (*pp)
		pp = &(*pp)->tnext;
	*pp = keep;
}

/* Answers l without a Redis round trip when it can: uncacheable, bypass, paused, Redis or
 * the generations not usable, REFRESH, or a near cache hit. true: l is taken. false: l needs
 * its cache lookup sent (lookup_send, or a batch of cs_engine_mget). */
static bool lookup_local(lookup *l)
{
	cs_engine *e = l->e;
	greq *r = l->r;
	qstate *qs = l->qs;
	bool cacheable = l->cacheable;
	if (!cacheable || r->bypass || qs->paused) {
		if (r->primary_only)
			; /* counted as ryw_other_shard (lookup_make) */
		else if (qs->paused)
			e->stats.bypass_paused++;
		else if (r->bypass)
			e->stats.bypass_requested++;
		/* Uncacheable requests do not coalesce: give each its own flight key. Nor does a
		 * primary-only read: a flight sent before the request's write was committed
		 * (or to a replica) must not answer it. */
		if (!cacheable) {
			int n = snprintf(l->key + l->keylen, sizeof l->key - l->keylen, "#%p", (void *)r);
			l->keylen += (size_t)n;
		}
		lookup_miss(l, false);
		return true;
	}
	if (!cs_rc_ready(e->redis) || !qs->sg[l->shard].gen_known ||
	        (e->fence_on && e->sh[l->shard].epoch_len == 0)) {
		e->stats.bypass_redis++;
		lookup_miss(l, false);
		return true;
	}
	if (l->op == CS_OP_REFRESH) {
		e->stats.refresh_forced++;
		lookup_miss(l, true);
		return true;
	}
	return e->near && qs->def->near_cache && cs_near_on(e->near) && near_lookup(l);
}

/* The cache could not be asked: answer from the database, do not fill. */
static void lookup_send_failed(lookup *l)
{
	if (l->watched)
		near_settle(l, NULL);
	l->e->stats.bypass_redis++;
	lookup_miss(l, false);
}

/* Sends l's cache lookup: GET of the entry, or for a read-your-writes token the entry, the
 * invalidator's position, the query's generation and the epoch in one round trip (when the
 * cache may answer a token: see on_cache_reply). */
static void lookup_send(lookup *l)
{
	cs_engine *e = l->e;
	const shard *sh = &e->sh[l->shard];
	int sent;
	if (l->r->min_lsn && sh->ks.cluster) {
		/* the entry alone: the position, generation and epoch live in bucket 0, on
		 * another node, and one MGET cannot read them with the entry atomically. An entry
		 * older than the token is then a miss (ryw_cache_ok needs the four together). */
		const char *argv[] = {"GET", l->key};
		size_t lens[] = {3, l->keylen};
		sent = cs_rc_cmd(e->redis, key_slot(sh, l->key, l->keylen), on_cache_reply, l, 2,
		        argv, lens);
	} else if (l->r->min_lsn) {
		char genkey[CS_NAME_MAX + CS_MAX_NAME];
		size_t gl = cs_ks_gen(&sh->ks, genkey, sizeof genkey, l->qs->def->name);
		const char *argv[] = {"MGET", l->key, sh->ks.pos, genkey, sh->ks.epoch};
		size_t lens[] = {4, l->keylen, sh->ks.pos_len, gl, sh->ks.epoch_len};
		sent = cs_rc_cmd(e->redis, 0, on_cache_reply, l, 5, argv, lens); /* single Redis */
	} else {
		/* the hit path: the bucket's slot from the table, no CRC16 of the key here */
		uint16_t slot = key_slot(sh, l->key, l->keylen);
		if (l->watched && !near_caching_yes(e, slot))
			near_settle(l, NULL); /* untracked: its reply must not be stored */
		const char *argv[] = { "GET", l->key };
		size_t lens[] = { 3, l->keylen };
		sent = cs_rc_cmd(e->redis, slot, on_cache_reply, l, 2, argv, lens);
	}
	if (sent != 0)
		lookup_send_failed(l);
}

/* Looks the request up in the cache (or goes to the database). Takes l. */
static void lookup_start(lookup *l)
{
	if (!lookup_local(l))
		lookup_send(l);
}
