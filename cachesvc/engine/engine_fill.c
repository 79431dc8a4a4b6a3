/* engine_fill.c - the engine's misses: the fill on a server and the LSN-fenced write of its
 * result to Redis. */
#include "engine_int.h"

/* ---- Fill ------------------------------------------------------------------------------- */

static size_t lease_key(const flight *f, char *buf, size_t cap);

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

/* ---- Bucket repair (a cluster: CLUSTER.md (e')) ----------------------------------------- */

typedef struct repairctx {
	cs_engine *e;
	shard *sh;
	uint32_t bucket;
	char q[];
} repairctx;

static void repair_done(repairctx *c, bool ok, const char *why)
{
	cs_engine *e = c->e;
	if (ok) {
		e->cl.repairs++;
	} else {
		e->cl.repair_errors++;
		cs_debug("bucket %u of query %s not repaired: %s", (unsigned)c->bucket, c->q, why);
	}
	e->repairs_inflight--;
	free(c);
}

static void on_repair_set(cs_rc *rc, redisReply *reply, void *priv)
{
	repairctx *c = priv;
	bool ok = reply && reply->type == REDIS_REPLY_INTEGER;
	repair_done(c, ok, reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply");
}

/* Bucket 0's generation and query fence, read in one command (atomically: one slot). */
static void on_repair_read(cs_rc *rc, redisReply *reply, void *priv)
{
	repairctx *c = priv;
	cs_engine *e = c->e;
	const shard *sh = c->sh;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	        reply->element[0]->type != REDIS_REPLY_STRING) {
		repair_done(c, false, "bucket 0 not read");
		return;
	}
	const redisReply *g = reply->element[0], *qf = reply->element[1];
	char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME];
	char fmax[CS_NAME_MAX], epoch[CS_NAME_MAX];
	size_t gl = cs_ks_gen_in(&sh->ks, c->bucket, genkey, sizeof genkey, c->q);
	size_t ql = cs_ks_qfence_in(&sh->ks, c->bucket, qfkey, sizeof qfkey, c->q);
	size_t fl = cs_ks_fixed_in(&sh->ks, c->bucket, CS_KS_FMAX, fmax, sizeof fmax);
	size_t el = cs_ks_fixed_in(&sh->ks, c->bucket, CS_KS_EPOCH, epoch, sizeof epoch);
	/* GEN_SET(q, g_0, qf_0): qf_0 read with g_0 is at least the query fence of the bump
	 * that issued g_0 (fence proof (e')); no query fence yet: 0 */
	bool hasqf = qf->type == REDIS_REPLY_STRING && qf->len == 16;
	const char *argv[] = {
	        genkey, qfkey, fmax, epoch, g->str, hasqf ? qf->str : "0000000000000000", ""};
	size_t lens[] = {gl, ql, fl, el, (size_t)g->len, 16, 0};
	if (gl == 0 || ql == 0 || fl == 0 || el == 0 ||
	        cs_rc_script(e->redis, sh->bslot[c->bucket], CS_SCRIPT_C_GEN_SET, on_repair_set, c,
	                4, 7, argv, lens) != 0)
		repair_done(c, false, "not sent");
}

/* Repairs bucket b of query q in shard sh's keyspace: GEN_SET(q, g_0, qf_0) with the
 * shard's bucket 0's values. Bounded (REPAIRS_MAX in flight); a repair not made is made by
 * the next refused fill. */
void bucket_repair(cs_engine *e, shard *sh, const char *q, uint32_t b)
{
	if (b == 0 || e->repairs_inflight >= REPAIRS_MAX) {
		e->cl.repair_errors++;
		return;
	}
	size_t qn = strlen(q);
	repairctx *c = malloc(sizeof *c + qn + 1);
	if (c == NULL) {
		e->cl.repair_errors++;
		return;
	}
	c->e = e;
	c->sh = sh;
	c->bucket = b;
	memcpy(c->q, q, qn + 1);
	e->repairs_inflight++;
	char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME];
	size_t gl = cs_ks_gen(&sh->ks, genkey, sizeof genkey, q);
	size_t ql = cs_ks_qfence(&sh->ks, qfkey, sizeof qfkey, q);
	const char *argv[] = {"MGET", genkey, qfkey};
	size_t lens[] = {4, gl, ql};
	if (gl == 0 || ql == 0 ||
	        cs_rc_cmd(e->redis, sh->bslot[0], on_repair_read, c, 3, argv, lens) != 0)
		repair_done(c, false, "not sent");
}

static void on_fill_reply(cs_rc *rc, redisReply *reply, void *priv)
{
	flight *f = priv;
	cs_engine *e = f->e;
	shard *sh = &e->sh[f->shard];
	qstate *qs = f->qs;
	bool stored = false;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	        reply->element[0]->type != REDIS_REPLY_INTEGER) {
		e->stats.fill_errors++;
		if (reply && reply->type == REDIS_REPLY_ERROR)
			cs_debug("fill failed: %s", reply->str);
	} else {
		f->leased = false; /* the script ran: it released the lease (fence.h) */
		long long st = reply->element[0]->integer;
		redisReply *g = reply->element[1];
		uint64_t gen = g->type == REDIS_REPLY_STRING ? strtoull(g->str, NULL, 10) : 0;
		if (st == 1) {
			stored = true;
			e->stats.fills++;
			qs->fills++;
		} else if (st == 0 && sh->ks.cluster && gen < f->gen) {
			/* bucket b missed a GEN_SET (a bumper's fan-out cut short): repair it from
			 * bucket 0 (CLUSTER.md (e')); the daemon keeps its generation */
			e->stats.fill_refused_gen++;
			if (e->repair_on)
				bucket_repair(
				        e, sh, qs->def->name, key_bucket(sh, f->key, f->keylen));
		} else if (st == 0) {
			e->stats.fill_refused_gen++;
			/* Another generation in Redis: a bump this process has not heard of yet,
			 * perhaps another process's definition. The number is not adopted (review
			 * 36 R36-13: that filled the other definition's generation with this one's
			 * rows) and no poll is asked for (review 38 R38-3: a poll per refused fill
			 * under bumps): the bump's message, ordered, or the 1 s poll brings it with
			 * its definition. */
		} else if (st == -3) {
			e->stats.fill_refused_fence++;
		} else if (st == -4) {
			e->stats.fill_refused_epoch++;
			/* Redis lost data, or the shard was resynchronised: catch up */
			load_shard_gens(e, f->shard);
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
	const shard *sh = &e->sh[f->shard];
	const cs_query_def *q = f->qs->def;
	char fence[KEY_MAX], genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME];
	char lsnhex[17], pxs[24], gens[24];
	const char *canon = f->key + f->canon_off;
	size_t canon_len = f->keylen - f->canon_off;
	size_t fl = cs_ks_fence(&sh->ks, fence, sizeof fence, q->name, canon, canon_len);
	size_t gl = cs_ks_gen(&sh->ks, genkey, sizeof genkey, q->name);
	size_t ql = cs_ks_qfence(&sh->ks, qfkey, sizeof qfkey, q->name);
	cs_lsn_hex(lsn, lsnhex);
	int pl = snprintf(pxs, sizeof pxs, "%lld", (long long)px);
	int nl = snprintf(gens, sizeof gens, "%llu", (unsigned long long)f->gen);
	/* the checks the script makes beyond the generation and the fences (fence.h) */
	static const char *const modes[4] = {"", "q", "e", "qe"};
	const char *mode =
	        modes[(f->qt->cfg->query_fence ? 1 : 0) | (f->qt->cfg->eviction_check ? 2 : 0)];
	/* the lease this flight holds (a miss's or a refresh's) goes as the last key: the script
	 * releases it, no DEL of its own (flight_free sends one if the script did not run) */
	char lease[KEY_MAX];
	size_t ll = f->leased ? lease_key(f, lease, sizeof lease) : 0;
	/* KEYS entry, gen[, epoch, horizon, qf, fence, fmax, evk][, lease]; ARGV value, px,
	 * gen[, lsn, epoch, mode]: with fences off only what the generation check needs (the
	 * key count tells the script which; fence.h CS_SCRIPT_FILL) */
	const char *argv[15];
	size_t lens[15];
	int nkeys = 0;
	argv[nkeys] = f->key;
	lens[nkeys++] = f->keylen;
	argv[nkeys] = genkey;
	lens[nkeys++] = gl;
	char bk[4][CS_NAME_MAX];
	int script = CS_SCRIPT_FILL;
	uint16_t slot = 0;
	const char *ep = sh->epoch;
	size_t epl = sh->epoch_len;
	uint32_t b = 0;
	if (sh->ks.cluster) {
		/* a cluster: bucket b's copies of the shared keys (CLUSTER.md section 3), the
		 * epoch by its ":<random>" part */
		b = key_bucket(sh, f->key, f->keylen);
		gl = cs_ks_gen_in(&sh->ks, b, genkey, sizeof genkey, q->name);
		ql = cs_ks_qfence_in(&sh->ks, b, qfkey, sizeof qfkey, q->name);
		lens[1] = gl;
		const char *sfx = memchr(sh->epoch, ':', sh->epoch_len);
		ep = sfx ? sfx : "";
		epl = sfx ? sh->epoch_len - (size_t)(sfx - sh->epoch) : 0;
		script = CS_SCRIPT_C_FILL;
		slot = sh->bslot[b];
	} else {
		slot = cs_rc_keyslot(f->key, f->keylen);
	}
	if (e->fence_on) {
		static const cs_ks_fixed which[4] = {
		        CS_KS_EPOCH, CS_KS_HORIZON, CS_KS_FMAX, CS_KS_EVK};
		const char *fixed[4] = {sh->ks.epoch, sh->ks.horizon, sh->ks.fmax, sh->ks.evk};
		size_t fixed_len[4] = {
		        sh->ks.epoch_len, sh->ks.horizon_len, sh->ks.fmax_len, sh->ks.evk_len};
		if (sh->ks.cluster) {
			for (int i = 0; i < 4; i++) {
				fixed_len[i] =
				        cs_ks_fixed_in(&sh->ks, b, which[i], bk[i], sizeof bk[i]);
				fixed[i] = bk[i];
				if (fixed_len[i] == 0)
					fl = 0;
			}
		}
		for (int i = 0; i < 2; i++) {
			argv[nkeys] = fixed[i];
			lens[nkeys++] = fixed_len[i];
		}
		argv[nkeys] = qfkey;
		lens[nkeys++] = ql;
		argv[nkeys] = fence;
		lens[nkeys++] = fl;
		for (int i = 2; i < 4; i++) {
			argv[nkeys] = fixed[i];
			lens[nkeys++] = fixed_len[i];
		}
	}
	if (ll) {
		argv[nkeys] = lease;
		lens[nkeys++] = ll;
	}
	int nargs = nkeys;
	argv[nargs] = (const char *)value;
	lens[nargs++] = len;
	argv[nargs] = pxs;
	lens[nargs++] = (size_t)pl;
	argv[nargs] = gens;
	lens[nargs++] = (size_t)nl;
	if (e->fence_on) {
		argv[nargs] = lsnhex;
		lens[nargs++] = 16;
		argv[nargs] = ep;
		lens[nargs++] = epl;
		argv[nargs] = mode;
		lens[nargs++] = strlen(mode);
	}
	if (fl == 0 || gl == 0 || ql == 0 ||
	        cs_rc_script(e->redis, slot, script, on_fill_reply, f, nkeys, nargs, argv, lens) !=
	                0) {
		e->stats.fill_errors++;
		return false;
	}
	return true;
}

/* The database answered a flight: encode, answer every waiter, then fill. */
void flight_job_done(
        cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg, bool retryable)
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
	f->meta = (cs_meta){.src = primary ? CS_SRC_PRIMARY : CS_SRC_REPLICA, .lsn = lsn};
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

/* ---- Miss lease ------------------------------------------------------------------------- */

/* The cross-process miss lease (DESIGN 4.3, [redis] lease): single-flight across processes.
 * Within a process, misses of one key already share one flight; across processes, a new
 * flight that will fill first takes the key's lease, <ns>:l:<q>:<p> (the key the background
 * refresh takes: a refresh and a miss of one key keep each other off the database too).
 * Only for the queries with lease = true (by kind: aggregates; CONFIG.md): the SET NX is
 * a Redis round trip before the query, which a point query on a replica does not repay.
 *  - SET NX PX lease answered OK: the holder. It queries, fills under the fence rule, and
 *    the fill script DELs the lease in the step that stores the entry or refuses it (so a
 *    waiter that sees the lease gone also sees the entry, if it was stored; no DEL round
 *    trip). Not filled (not cacheable, the script not run): flight_free DELs it.
 *  - nil: a waiter. It queries nothing; it re-reads the entry and the lease together (MGET)
 *    after 2, 4, 8 ... ms (LEASE_POLL_MAX_MS apart at most). A fresh entry: every request
 *    of the flight is served from it, as a hit would be. The lease gone with no fresh entry
 *    (the holder failed, its result was not cacheable, or it was refused by a fence), or
 *    the cache no longer fit to answer (generation bumped, epoch lost, query paused): the
 *    waiter queries itself. The bound passed (min(lease, request_timeout / 2) from the start
 *    of the wait, leaving the request time for its own query): it queries itself.
 *  - no reply (Redis down, timeout, too many pending): no lease, it queries.
 * A waiter that queries goes through flight_dispatch and flight_job_done like any miss:
 * the same fenced fill, so the lease changes how many queries run, never what may be
 * stored (I1 rests on the fill script alone). Waiting flights stay findable: misses of the
 * key in this process join them.
 * Every wait has a timer and a bound; waiters are flights, so bounded like flights.
 * The lease value is not a token: a holder slower than the bound DELs a lease another
 * process took after it expired, which lets that one's waiters query early (more queries,
 * never a wrong answer). */

static bool lease_wanted(const flight *f, const greq *r, int cause)
{
	const cs_config *cfg = f->qt->cfg;
	return cfg->redis_lease_ms > 0 && f->qs->def->lease && f->store && r != NULL &&
	       cause == 0 && r->op == CS_OP_GET && !r->bypass && r->min_lsn == 0 && !f->qs->paused;
}

static size_t lease_key(const flight *f, char *buf, size_t cap)
{
	return cs_ks_lease(&f->e->sh[f->shard].ks, buf, cap, f->qs->def->name,
	        f->key + f->canon_off, f->keylen - f->canon_off);
}

/* Stops waiting and queries (flight_dispatch: fails at once if the engine stops). */
static void lease_query(flight *f)
{
	f->lease_state = LEASE_NONE;
	flight_dispatch(f);
}

static void lease_unlink(flight *f)
{
	cs_engine *e = f->e;
	if (f->lprev)
		f->lprev->lnext = f->lnext;
	else
		e->lease_head = f->lnext;
	if (f->lnext)
		f->lnext->lprev = f->lprev;
	f->lprev = f->lnext = NULL;
}

/* Serves every request of a waiting flight from the holder's fill (ent, in the Redis
 * reply: valid during this call). Requests that join from inside a callback are served too
 * (the flight is still LEASE_POLLING: no REFRESH or bypass joins it); then the flight ends
 * (it holds no lease: nothing to release). */
static void lease_serve(flight *f, const cs_entry *ent, int64_t now_ms)
{
	cs_engine *e = f->e;
	e->lease.served++;
	cs_meta meta = {
	        .src = CS_SRC_CACHE,
	        .lsn = ent->lsn,
	        .age_ms = now_ms > ent->filled_ms ? (uint64_t)(now_ms - ent->filled_ms) : 0,
	};
	while (f->waiters) {
		greq *w = f->waiters;
		f->waiters = w->next;
		/* the entry is in Redis: what a REFRESH or a batch request asks to know */
		meta.stored = wants_stored(w) ? CS_STORED_YES : CS_STORED_UNSAID;
		cs_hist_record(&e->stats.miss_us, cs_now_us() - w->start_us);
		w->cb(w->priv, 0, NULL, &meta, ent->result, ent->result_len);
		greq_free(w);
	}
	flight_free(f);
}

static void lease_sleep(flight *f);

/* A waiter's re-read: [entry, lease]. */
static void on_lease_poll(cs_rc *rc, redisReply *reply, void *priv)
{
	(void)rc;
	flight *f = priv;
	cs_engine *e = f->e;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
		e->lease.unavailable++;
		lease_query(f);
		return;
	}
	/* What lookup_start checks before reading the cache, again: the key's generation is
	 * still the query's (a bump while waiting retires the entry this flight waits for),
	 * Redis still holds the state this process synchronised with, the query is not paused,
	 * the generations are trusted (pub/sub up: a bump would have been heard).
	 * Otherwise the cache may not answer: the waiter queries (its fill is refused or
	 * skipped as any would be). */
	const qgen *qg = &f->qs->sg[f->shard];
	if (f->qt != e->qt || qg->gen != f->gen || f->qs->paused || !qg->gen_known ||
	        (e->fence_on && e->sh[f->shard].epoch_len == 0)) {
		e->lease.gone++;
		lease_query(f);
		return;
	}
	const redisReply *val = reply->element[0], *held = reply->element[1];
	cs_entry ent;
	int64_t now_ms = cs_wall_ms();
	if (val->type == REDIS_REPLY_STRING &&
	        cs_entry_parse((const uint8_t *)val->str, (size_t)val->len, &ent) &&
	        now_ms < ent.expires_ms) {
		lease_serve(f, &ent, now_ms);
		return;
	}
	/* no entry, or the expired one this miss found (stale-while-revalidate past its
	 * window): keep waiting for the holder's */
	if (held->type == REDIS_REPLY_NIL) {
		e->lease.gone++;
		lease_query(f);
		return;
	}
	if (cs_now_us() >= f->lease_until_us) {
		e->lease.timeouts++;
		lease_query(f);
		return;
	}
	f->lease_delay_ms = CS_MIN(f->lease_delay_ms * 2, LEASE_POLL_MAX_MS);
	lease_sleep(f);
}

static void on_lease_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flight *f = arg;
	cs_engine *e = f->e;
	lease_unlink(f);
	char lease[KEY_MAX];
	size_t n = lease_key(f, lease, sizeof lease);
	const char *argv[] = {"MGET", f->key, lease};
	size_t lens[] = {4, f->keylen, n};
	f->lease_state = LEASE_POLLING;
	if (n == 0 || cs_rc_cmd(e->redis, cs_rc_keyslot(lease, n), on_lease_poll, f, 3, argv,
	                      lens) != 0) {
		e->lease.unavailable++;
		lease_query(f);
	}
}

/* Arms the next re-read, never past the bound (the last re-read is at the bound). */
static void lease_sleep(flight *f)
{
	cs_engine *e = f->e;
	uint64_t now = cs_now_us();
	uint64_t left = f->lease_until_us > now ? f->lease_until_us - now : 0;
	uint64_t us = CS_MIN((uint64_t)f->lease_delay_ms * 1000u, left);
	struct timeval tv = {
	        .tv_sec = (time_t)(us / 1000000u), .tv_usec = (suseconds_t)(us % 1000000u)};
	if (evtimer_assign(&f->lease_ev, e->base, on_lease_timer, f) != 0 ||
	        evtimer_add(&f->lease_ev, &tv) != 0) {
		lease_query(f);
		return;
	}
	f->lease_state = LEASE_SLEEPING;
	f->lprev = NULL;
	f->lnext = e->lease_head;
	if (e->lease_head)
		e->lease_head->lprev = f;
	e->lease_head = f;
}

static void on_lease_take(cs_rc *rc, redisReply *reply, void *priv)
{
	(void)rc;
	flight *f = priv;
	cs_engine *e = f->e;
	f->lease_state = LEASE_NONE;
	if (reply && reply->type == REDIS_REPLY_STATUS) {
		f->leased = true; /* flight_free releases it */
		e->lease.acquired++;
		lease_query(f);
		return;
	}
	if (reply && reply->type == REDIS_REPLY_NIL) {
		e->lease.waited++;
		const cs_config *cfg = f->qt->cfg;
		int64_t bound = CS_MIN(cfg->redis_lease_ms, cfg->request_timeout_ms / 2);
		f->lease_until_us = cs_now_us() + (uint64_t)CS_MAX(bound, 0) * 1000u;
		f->lease_delay_ms = LEASE_POLL_MIN_MS;
		lease_sleep(f);
		return;
	}
	e->lease.unavailable++; /* Redis trouble: no lease, query */
	lease_query(f);
}

/* Takes the miss lease, or waits on it, or queries (see above). */
static void lease_take(flight *f)
{
	cs_engine *e = f->e;
	char lease[KEY_MAX], px[24];
	size_t n = lease_key(f, lease, sizeof lease);
	int pl = snprintf(px, sizeof px, "%lld", (long long)f->qt->cfg->redis_lease_ms);
	const char *argv[] = {"SET", lease, "1", "NX", "PX", px};
	size_t lens[] = {3, n, 1, 2, 2, (size_t)pl};
	f->lease_state = LEASE_ASKING;
	uint16_t slot = n ? cs_rc_keyslot(lease, n) : 0;
	if (n == 0 || !cs_rc_slot_ready(e->redis, slot) ||
	        cs_rc_cmd(e->redis, slot, on_lease_take, f, 6, argv, lens) != 0) {
		e->lease.unavailable++;
		lease_query(f);
	}
}

/* cs_engine_free: waiters between two re-reads answer SHUTTING_DOWN (the others have a
 * Redis command pending: its callback runs as Redis closes, and their query fails). */
void lease_fail_all(cs_engine *e)
{
	while (e->lease_head) {
		flight *f = e->lease_head;
		lease_unlink(f);
		evtimer_del(&f->lease_ev);
		f->lease_state = LEASE_NONE;
		flight_fail(f, -CS_ERR_SHUTTING_DOWN, "shutting down");
	}
}

/* Starts (or joins) the flight for key; r may be NULL for a background refresh. */
void miss(cs_engine *e, int shard_ix, qstate *qs, const char *key, size_t keylen, size_t canon_off,
        uint64_t gen, bool store, greq *r, uint8_t tier, uint64_t min_lsn, const cs_value *params,
        uint32_t nparams, int cause)
{
	uint64_t h = hash_bytes(key, keylen);
	flight *f = flight_find(e, key, keylen, h, min_lsn, qs->def);
	if (f && (f->answered || f->lease_state != LEASE_NONE) && r &&
	        (r->op == CS_OP_REFRESH || r->bypass))
		f = NULL; /* REFRESH and bypass want a read made after they were sent, never the
		           * cache's: a flight of their own (flight_find returns the newest of equal
		           * keys), not one answered or about to be served from the cache */
	if (f) {
		if (r == NULL)
			return;
		e->stats.coalesced++;
		if (f->answered && !(f->filling && wants_stored(r))) {
			/* answered, fill in flight: share the result (src and LSN say what it is)
			 */
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
	f->primary_only = r && r->primary_only; /* its own flight key: nobody else joins */
	f->gen = gen;
	f->shard = (uint16_t)shard_ix;
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
	if (lease_wanted(f, r, cause))
		lease_take(f);
	else
		flight_dispatch(f);
}
