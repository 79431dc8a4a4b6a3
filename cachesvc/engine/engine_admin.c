/* engine_admin.c - the engine's admin operations: pause/resume of a query, INVALIDATE. */
#include "engine_int.h"

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

static void on_inval_reply(cs_rc *rc, redisReply *reply, void *priv)
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
		rc = cs_rc_script(e->redis, cs_rc_keyslot(genkey, gl), CS_SCRIPT_GEN_BUMP,
		        on_inval_reply, c, 4, 8, argv, lens);
	} else {
		char fence[KEY_MAX], px[24];
		size_t fl = cs_ks_fence(&e->ks, fence, sizeof fence, q->name, canon, clen);
		int pl = snprintf(px, sizeof px, "%lld", (long long)e->qt->cfg->fence_ttl_ms);
		/* the epoch guard needs the current epoch: use it as read by this process */
		const char *argv[] = { fence, genkey, e->ks.epoch, e->ks.fmax, lsnhex, px, e->ks.ns,
			e->epoch, q->name, canon };
		size_t lens[] = { fl, gl, e->ks.epoch_len, e->ks.fmax_len, 16, (size_t)pl, e->ks.nslen,
			e->epoch_len, strlen(q->name), clen };
		rc = e->epoch_len == 0 && e->fence_on
		             ? -1
		             : cs_rc_script(e->redis, cs_rc_keyslot(fence, fl), CS_SCRIPT_INVAL,
		                       on_inval_reply, c, 4, 10, argv, lens);
	}
	if (rc != 0) {
		qtable_unref(c->qt);
		free(c);
		e->stats.errors[CS_ERR_UNAVAILABLE]++;
		cb(priv, -CS_ERR_UNAVAILABLE, "redis unavailable", 0);
	}
}
