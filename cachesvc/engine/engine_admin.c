/* engine_admin.c - the engine's admin operations: pause/resume of a query, INVALIDATE. */
#include "engine_int.h"

#include "shardmap.h"

/* ---- Admin INVALIDATE and pause ---------------------------------------------------------- */

/* A paused query's requests bypass the cache (lookup_start), exactly as a request with
 * "bypass": their answers come from PostgreSQL and store nothing. Resume bumps the
 * generation, so entries from before the pause are never served again. */
int cs_engine_pause(cs_engine *e, const char *name, size_t len, bool pause, bool *changed)
{
	qstate *qs = qtable_find(e->qt, name, len);
	if (qs == NULL)
		return -1;
	*changed = qs->paused != pause;
	int foreign = 0;
	for (int k = 0; k < e->nsh; k++)
		foreign += qs->sg[k].def_foreign;
	if (*changed && (pause || foreign == 0))
		cs_info("query %s %s by an admin request%s", qs->def->name,
		        pause ? "paused" : "resumed",
		        pause ? ": served from PostgreSQL, nothing cached, until resumed"
		              : ": a new generation, then served from the cache");
	else if (*changed)
		cs_info("query %s resumed by an admin request: another process's definition of it owns "
		        "its cache in Redis%s, so it still bypasses the cache there (review 45 R45-3; "
		        "claim takes it back)%s", qs->def->name,
		        foreign < e->nsh ? " on some shards" : "",
		        foreign < e->nsh ? "; the other shards get a new generation" : "");
	qs->paused = pause;
	for (int k = 0; pause && k < e->nsh; k++)
		qs->sg[k].resume_owed = false;
	/* A query is paused because its cache is suspect: what was stored before the pause
	 * (or by a fill in flight across it) is not served again. Until Redis confirms the
	 * bump, its requests bypass the cache, as after a reload's change. */
	if (*changed && !pause) {
		for (int k = 0; k < e->nsh; k++) {
			qs->sg[k].gen_known = false;
			/* a query another process's definition owns stays theirs: a resume is no
			 * takeover (review 36 R36-5); it bypasses the cache here as before. That
			 * flag is as old as the last poll: should the next find the definition
			 * this one's, the bump is made then (R45-3), before any hit. */
			if (qs->sg[k].def_foreign) {
				qs->sg[k].resume_owed = true;
				continue;
			}
			bump_generation(e, qs, k);
		}
	}
	return 0;
}

/* Review 45 R45-2: a definition that owns a query in Redis keeps it until another process
 * starts or reloads with a changed one (R36-5: an unchanged reload or a resume takes nothing
 * over). When the processes of the owning definition are gone (a canary stopped, a blue/green
 * switch rolled back), the others bypass the cache for the query for good: claim is the lever.
 * The takeover is a start's (def_claim): the next poll bumps the generation under this
 * definition, so nothing another definition stored is served here, and processes running
 * another one bypass the cache for it from then on. */
int cs_engine_claim(cs_engine *e, const char *name, size_t len, bool *changed)
{
	qstate *qs = qtable_find(e->qt, name, len);
	if (qs == NULL)
		return -1;
	*changed = false;
	for (int k = 0; k < e->nsh; k++) {
		if (!qs->sg[k].def_foreign)
			continue;
		*changed = true;
		qs->sg[k].def_claim = true;
		qs->sg[k].gen_known = false;
	}
	if (*changed)
		cs_info("query %s claimed by an admin request: this process's definition of it takes "
		        "its cache over at the next poll (a new generation); processes running "
		        "another definition of it bypass the cache for it from then on", qs->def->name);
	return 0;
}

typedef struct invctx {
	cs_engine *e;
	qtable *qt;
	qstate *qs;
	int shard; /* e->sh[shard], qs->sg[shard] */
	bool whole;
	bool quiet; /* a part of a whole-query INVALIDATE: its error counted once, by invall */
	uint64_t n; /* a cluster INVAL: entries its script deleted */
	cs_engine_inval_cb *cb;
	void *priv;
} invctx;

static void on_inval_reply(cs_rc *rc, redisReply *reply, void *priv)
{
	invctx *c = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		if (!c->quiet)
			c->e->stats.errors[CS_ERR_UNAVAILABLE]++;
		c->cb(c->priv, -CS_ERR_UNAVAILABLE,
		        reply && reply->type == REDIS_REPLY_ERROR ? reply->str
		                                                  : "redis unavailable",
		        0);
	} else {
		uint64_t n = (uint64_t)reply->integer;
		if (c->whole) {
			c->e->stats.gen_bumps++;
			if (c->qt == c->e->qt) /* the poll pairs it with its definition (R36-3) */
				gen_heard(c->e, c->qs, c->shard, n);
		} else {
			c->e->stats.invalidations += n;
		}
		c->cb(c->priv, 0, NULL, n);
	}
	qtable_unref(c->qt);
	free(c);
}

/* A cluster bump of the whole query answered (bucket 0's bump and its fan-out). */
static void on_inval_cbump(cs_engine *e, void *priv, int err, const char *msg, uint64_t gen)
{
	invctx *c = priv;
	if (err != 0) {
		if (!c->quiet)
			e->stats.errors[CS_ERR_UNAVAILABLE]++;
		c->cb(c->priv, -CS_ERR_UNAVAILABLE, msg, 0);
	} else {
		e->stats.gen_bumps++;
		if (c->qt == e->qt)
			gen_heard(e, c->qs, c->shard, gen);
		c->cb(c->priv, 0, NULL, gen);
	}
	qtable_unref(c->qt);
	free(c);
}

/* The routed DEL after a cluster INVAL answered (CLUSTER.md C1): the key's invalidation is
 * done; c->n entries were deleted by the script. */
static void on_inval_del(cs_rc *rc, redisReply *reply, void *priv)
{
	invctx *c = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		if (!c->quiet)
			c->e->stats.errors[CS_ERR_UNAVAILABLE]++;
		c->cb(c->priv, -CS_ERR_UNAVAILABLE,
		        reply && reply->type == REDIS_REPLY_ERROR ? reply->str
		                                                  : "redis unavailable",
		        0);
	} else {
		uint64_t n = c->n + (uint64_t)reply->integer;
		c->e->stats.invalidations += n;
		c->cb(c->priv, 0, NULL, n);
	}
	qtable_unref(c->qt);
	free(c);
}

/* C_INVAL answered {deleted, entry key}: DEL the entry key again, routed by its slot (an
 * INVAL ASKed to a slot's importing node does not see an entry still on the other one). */
static void on_inval_c(cs_rc *rc, redisReply *reply, void *priv)
{
	invctx *c = priv;
	cs_engine *e = c->e;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	        reply->element[0]->type != REDIS_REPLY_INTEGER ||
	        reply->element[1]->type != REDIS_REPLY_STRING) {
		on_inval_reply(rc, reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL, c);
		return;
	}
	c->n = (uint64_t)reply->element[0]->integer;
	const redisReply *k = reply->element[1];
	const char *argv[] = {"DEL", k->str};
	size_t lens[] = {3, (size_t)k->len};
	if (cs_rc_cmd(e->redis, key_slot(&e->sh[c->shard], k->str, (size_t)k->len), on_inval_del, c,
	            2, argv, lens) != 0)
		on_inval_del(rc, NULL, c);
}

/* A whole query's INVALIDATE on a sharded engine: one bump per shard (each shard's
 * generations are its own, SHARDS.md section 2), answered once all are: the highest new
 * generation, or the first error, naming its shard (review 23 R23-8). */
struct invall;
typedef struct invpart {
	struct invall *a;
	const char *shard; /* NULL: the guard */
} invpart;
typedef struct invall {
	cs_engine *e;
	cs_engine_inval_cb *cb;
	void *priv;
	int pending;
	int err;
	char msg[300];
	uint64_t gen;
	invpart part[CS_MAX_SHARDS + 1];
} invall;

static void on_invall_part(void *priv, int err, const char *msg, uint64_t n)
{
	const invpart *p = priv;
	invall *a = p->a;
	if (err != 0 && a->err == 0) {
		a->err = err;
		snprintf(a->msg, sizeof a->msg,
		        "shard %s: %s (the generation of the others may have been bumped)",
		        p->shard ? p->shard : "?", msg ? msg : "error");
	}
	if (err == 0 && n > a->gen)
		a->gen = n;
	if (--a->pending > 0)
		return;
	if (a->err == -CS_ERR_UNAVAILABLE) /* once per request, not per shard (review 25 R25-6) */
		a->e->stats.errors[CS_ERR_UNAVAILABLE]++;
	a->cb(a->priv, a->err, a->err ? a->msg : NULL, a->err ? 0 : a->gen);
	free(a);
}

static void invalidate_shard(cs_engine *e, qstate *qs, int shard_ix, bool whole, bool quiet,
        const char *canon, size_t clen, cs_engine_inval_cb *cb, void *priv);

void cs_engine_invalidate(cs_engine *e, const cs_inval_req *req, cs_engine_inval_cb *cb, void *priv)
{
	qstate *qs = qtable_find(e->qt, req->query, req->query_len);
	if (qs == NULL) {
		e->stats.errors[CS_ERR_UNKNOWN_QUERY]++;
		cb(priv, -CS_ERR_UNKNOWN_QUERY, "unknown query", 0);
		return;
	}
	const cs_query_def *q = qs->def;
	char canon[CS_CANON_MAX + 1], err[CS_CONFIG_ERRLEN];
	size_t clen = 0;
	if (req->has_params) {
		int rc = cs_params_canon(
		        q, req->params, req->nparams, canon, sizeof canon, &clen, err, sizeof err);
		if (rc != 0) {
			e->stats.errors[CS_ERR_BAD_PARAMS]++;
			cb(priv, -CS_ERR_BAD_PARAMS,
			        rc < 0 ? err : "parameters too long to be cached", 0);
			return;
		}
	}
	if (e->sharded && !req->has_params) { /* every shard's generation */
		invall *a = calloc(1, sizeof *a);
		if (a == NULL) {
			cb(priv, -CS_ERR_INTERNAL, "out of memory", 0);
			return;
		}
		a->e = e, a->cb = cb, a->priv = priv, a->pending = e->nsh + 1; /* + a guard */
		for (int k = 0; k <= e->nsh; k++)
			a->part[k] =
			        (invpart){.a = a, .shard = k < e->nsh ? e->sh[k].ks.shard : NULL};
		for (int k = 0; k < e->nsh; k++)
			invalidate_shard(
			        e, qs, k, true, true, NULL, 0, on_invall_part, &a->part[k]);
		on_invall_part(&a->part[e->nsh], 0, NULL, 0);
		return;
	}
	/* a key: its own shard's (SHARDS.md section 2) */
	int shard_ix = 0;
	if (e->sharded) {
		shard_ix = cs_shard_pick(e->qt->cfg, q, req->params, req->nparams, err, sizeof err);
		if (shard_ix < 0 || shard_ix >= e->nsh) {
			int code =
			        shard_ix == -CS_ERR_NO_SHARD ? CS_ERR_NO_SHARD : CS_ERR_BAD_PARAMS;
			e->stats.errors[code]++;
			cb(priv, -code, shard_ix < 0 ? err : "no such shard", 0);
			return;
		}
	}
	invalidate_shard(e, qs, shard_ix, !req->has_params, false, canon, clen, cb, priv);
}

/* INVALIDATE of query qs on shard shard_ix: the key canon[0..clen), or (whole) every key by a
 * generation bump. cb runs once. quiet: its error is not counted (the caller counts it). */
static void invalidate_shard(cs_engine *e, qstate *qs, int shard_ix, bool whole, bool quiet,
        const char *canon, size_t clen, cs_engine_inval_cb *cb, void *priv)
{
	const cs_query_def *q = qs->def;
	invctx *c = malloc(sizeof *c);
	if (c == NULL) {
		cb(priv, -CS_ERR_INTERNAL, "out of memory", 0);
		return;
	}
	*c = (invctx){.e = e,
	        .qt = e->qt,
	        .qs = qs,
	        .whole = whole,
	        .quiet = quiet,
	        .cb = cb,
	        .priv = priv};
	c->shard = shard_ix;
	e->qt->refs++;
	const shard *sh = &e->sh[c->shard];
	char genkey[CS_NAME_MAX + CS_MAX_NAME], lsnhex[17];
	size_t gl = cs_ks_gen(&sh->ks, genkey, sizeof genkey, q->name);
	/* Fence at the primary's last known LSN: fills of data read before it are refused. */
	cs_lsn_hex(sh->primary ? cs_pgserver_lsn(sh->primary) : 0, lsnhex);
	int rc;
	if (sh->ks.cluster && c->whole) {
		rc = cluster_bump(e, sh, q->name, lsnhex, NULL, NULL, on_inval_cbump, c);
	} else if (sh->ks.cluster) {
		char fence[KEY_MAX], px[24], pre[CS_KS_PREFIX_MAX + 1], fmax[CS_NAME_MAX],
		        epoch[CS_NAME_MAX];
		uint32_t b = cs_ks_bucket(&sh->ks, q->name, canon, clen);
		size_t fl = cs_ks_fence(&sh->ks, fence, sizeof fence, q->name, canon, clen);
		size_t bl = cs_ks_gen_in(&sh->ks, b, genkey, sizeof genkey, q->name);
		size_t prl = cs_ks_prefix(&sh->ks, b, pre, sizeof pre);
		size_t ml = cs_ks_fixed_in(&sh->ks, b, CS_KS_FMAX, fmax, sizeof fmax);
		size_t el = cs_ks_fixed_in(&sh->ks, b, CS_KS_EPOCH, epoch, sizeof epoch);
		int pl = snprintf(px, sizeof px, "%lld", (long long)e->qt->cfg->fence_ttl_ms);
		const char *sfx = memchr(sh->epoch, ':', sh->epoch_len);
		size_t sl = sfx ? sh->epoch_len - (size_t)(sfx - sh->epoch) : 0;
		/* bucket b's copies; the epoch copy checked by its ":<random>" part */
		const char *argv[] = {fence, genkey, epoch, fmax, lsnhex, px, pre, sfx ? sfx : "",
		        q->name, canon};
		size_t lens[] = {fl, bl, el, ml, 16, (size_t)pl, prl, sl, strlen(q->name), clen};
		rc = (sh->epoch_len == 0 && e->fence_on) || fl == 0 || bl == 0 || prl == 0 ||
		                     ml == 0 || el == 0
		             ? -1
		             : cs_rc_script(e->redis, sh->bslot[b], CS_SCRIPT_C_INVAL, on_inval_c,
		                       c, 4, 10, argv, lens);
	} else if (c->whole) {
		char qfkey[CS_NAME_MAX + CS_MAX_NAME];
		size_t ql = cs_ks_qfence(&sh->ks, qfkey, sizeof qfkey, q->name);
		const char *argv[] = {genkey, qfkey, sh->ks.epoch, sh->ks.fmax, sh->ks.channel,
		        q->name, lsnhex, ""};
		size_t lens[] = {gl, ql, sh->ks.epoch_len, sh->ks.fmax_len, sh->ks.channel_len,
		        strlen(q->name), 16, 0};
		rc = cs_rc_script(e->redis, cs_rc_keyslot(genkey, gl), CS_SCRIPT_GEN_BUMP,
		        on_inval_reply, c, 4, 8, argv, lens);
	} else {
		char fence[KEY_MAX], px[24];
		size_t fl = cs_ks_fence(&sh->ks, fence, sizeof fence, q->name, canon, clen);
		int pl = snprintf(px, sizeof px, "%lld", (long long)e->qt->cfg->fence_ttl_ms);
		/* the epoch guard needs the current epoch: use it as read by this process */
		const char *argv[] = {fence, genkey, sh->ks.epoch, sh->ks.fmax, lsnhex, px,
		        sh->ks.ns, sh->epoch, q->name, canon};
		size_t lens[] = {fl, gl, sh->ks.epoch_len, sh->ks.fmax_len, 16, (size_t)pl,
		        sh->ks.nslen, sh->epoch_len, strlen(q->name), clen};
		rc = sh->epoch_len == 0 && e->fence_on
		             ? -1
		             : cs_rc_script(e->redis, cs_rc_keyslot(fence, fl), CS_SCRIPT_INVAL,
		                       on_inval_reply, c, 4, 10, argv, lens);
	}
	if (rc != 0) {
		qtable_unref(c->qt);
		free(c);
		if (!quiet)
			e->stats.errors[CS_ERR_UNAVAILABLE]++;
		cb(priv, -CS_ERR_UNAVAILABLE, "redis unavailable", 0);
	}
}
