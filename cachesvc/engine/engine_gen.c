/* engine_gen.c - the engine's query generations: loading, pub/sub, polling and bumps. */
#include "engine_int.h"

/* ---- Generations ------------------------------------------------------------------------ */

typedef struct gensctx {
	cs_engine *e;
	qtable *t;
	int shard;    /* the shard polled (e->sh[shard], qs->sg[shard]) */
	uint32_t seq; /* sh->gens_seq when sent */
	uint32_t msgs; /* sh->gen_msgs when sent */
} gensctx;

/* Does shard k's leader map query qs at all (its invalidator maps the queries pinned to k and
 * every query not pinned, each with invalidate_on rules: mapping.c)? A query without rules
 * depends on no stream: the record does not concern it. */
static bool map_concerns(const cs_engine *e, const qstate *qs, int k)
{
	return qs->def->ninval > 0 &&
	       !(e->sharded && qs->def->shard_index >= 0 && qs->def->shard_index != k);
}

/* The leader's record of its mapping of qs on shard k (rec: "<map fingerprint> <lsn>", '0'
 * none) and the record a bump covered (cov). Review 36 R36-1: the leader decodes the stream
 * with its own config; a query it maps otherwise (or not at all) is not invalidated by what
 * it decodes, so this process bypasses the cache for it (false). Once it maps this
 * definition, from its stream's start lsn on, entries filled before may miss changes it
 * never decoded for this definition (or decoded while it did not map the query: R36-2): one
 * bump with its query-level fence at lsn or later covers the record, once for every process
 * (fence.h CS_SCRIPT_DEF_BUMP); the query is usable after that bump. True: usable as far as
 * the mapping goes. */
bool map_applies(const cs_engine *e, const qstate *qs, int k)
{
	return !e->test_no_qmap && e->fence_on && e->sh[k].qmap_seen && map_concerns(e, qs, k);
}

/* rec is a record of this definition: "<its map fingerprint> <16 hex digits>", nothing else
 * (a malformed lsn must never become a fence: review 41 R41-3) */
static bool map_ours(const qstate *qs, const redisReply *rec)
{
	cs_lsn_t at;
	return rec->type == REDIS_REPLY_STRING && rec->len == 33 && rec->str[16] == ' ' &&
	       memcmp(rec->str, qs->mfp, 16) == 0 && cs_lsn_unhex(rec->str + 17, 16, &at);
}

/* The record rec is this definition's and no bump covered it yet: true, with the record in
 * cover (its lsn the bump's least fence: bump_generation_cover). */
static bool map_uncovered(cs_engine *e, const qstate *qs, int k, const redisReply *rec,
        const redisReply *cov, char cover[34])
{
	if (!map_applies(e, qs, k) || !map_ours(qs, rec))
		return false;
	if (cov->type == REDIS_REPLY_STRING && cov->len == rec->len &&
	        memcmp(cov->str, rec->str, (size_t)rec->len) == 0)
		return false;
	memcpy(cover, rec->str, 33);
	cover[33] = '\0';
	return true;
}

static bool gens_apply_map(cs_engine *e, qstate *qs, int k, const redisReply *rec,
        const redisReply *cov)
{
	qgen *qg = &qs->sg[k];
	if (!map_applies(e, qs, k))
		return true;
	bool ours = map_ours(qs, rec);
	if (!ours) {
		qg->unmapped = true;
		qg->gen_known = false;
		e->stats.unmapped++;
		uint64_t now = cs_now_us();
		if (now - e->map_warned_us > 60u * 1000u * 1000u) {
			e->map_warned_us = now;
			cs_warn("query %s%s%s: the invalidator's leader maps %s definition of it: its "
				"changes would not be invalidated, so this process bypasses the cache "
				"for it until the leader maps this one (restart or reload the leader "
				"with it)", qs->def->name, e->sharded ? " on shard " : "",
				e->sharded ? e->qt->cfg->shards[k].name : "",
				rec->type == REDIS_REPLY_STRING && rec->len == 33 ? "another" : "no");
		}
		return false;
	}
	char cover[34];
	if (!map_uncovered(e, qs, k, rec, cov, cover))
		return true;
	/* a new record: covered by a bump fenced at its lsn or later */
	qg->gen_known = false;
	if (qg->pending_bump || qg->bump_inflight)
		return false; /* the next poll looks again */
	e->stats.map_covers++;
	cs_info("query %s%s%s: the invalidator's leader maps it from %s on: a new generation "
		"fenced there", qs->def->name, e->sharded ? " on shard " : "",
		e->sharded ? e->qt->cfg->shards[k].name : "", cover + 17);
	bump_generation_cover(e, qs, k, cover);
	return false;
}

/* The poll's answer for query qs of shard k: its generation in Redis and the definition
 * Redis records for it (keyspace.h <ns>:qd:<q>). A generation is used only under this
 * process's definition: another one's entries answer other SQL. None recorded (a query new
 * to this Redis, or written by a version without definitions, or data lost), or another one
 * at a start or reload (def_claim): this process's definition takes over with a bump.
 * Another one afterwards: another process started or reloaded with it (a rolling deploy);
 * the query bypasses the cache here. */
static void gens_apply_def(cs_engine *e, qstate *qs, int k, const redisReply *d,
        const redisReply *rec, const redisReply *cov)
{
	qgen *qg = &qs->sg[k];
	bool mine = e->test_no_defs ||
	            (d->type == REDIS_REPLY_STRING && d->len == 16 && memcmp(d->str, qs->fp, 16) == 0);
	qg->unmapped = false;
	if (mine) {
		qg->def_claim = false;
		qg->def_foreign = false;
		if (qg->resume_owed && !qs->paused) {
			/* resumed while another definition seemed to own it (R45-3): the resume's
			 * bump, now that it is this one's (the map's cover waits for the next poll) */
			qg->resume_owed = false;
			qg->gen_known = false;
			bump_generation(e, qs, k);
			return;
		}
		if (!gens_apply_map(e, qs, k, rec, cov))
			return;
		if (!qg->pending_bump && !qg->bump_inflight)
			qg->gen_known = true;
		return;
	}
	qg->gen_known = false;
	if (qg->pending_bump || qg->bump_inflight)
		return; /* its answer decides */
	bool none = d->type != REDIS_REPLY_STRING || d->len != 16;
	if (none || qg->def_claim) {
		if (qg->def_foreign || !none)
			cs_info("query %s%s%s: redis holds %s definition; this one takes over (a new "
				"generation)", qs->def->name, e->sharded ? " on shard " : "",
				e->sharded ? e->qt->cfg->shards[k].name : "", none ? "no" : "another process's");
		/* this bump, later than any resume, is the one a resume owed (review 46: the
		 * owed one after it only dropped what was filled since) */
		qg->resume_owed = false;
		char cover[34];
		bump_generation_cover(e, qs, k,
		        map_uncovered(e, qs, k, rec, cov, cover) ? cover : NULL);
		return;
	}
	e->stats.def_foreign++;
	qg->def_foreign = true;
	uint64_t now = cs_now_us();
	if (now - e->def_warned_us > 60u * 1000u * 1000u) {
		e->def_warned_us = now;
		cs_warn("query %s%s%s: another process started or reloaded with another definition "
			"of it (a rolling deploy?): this process bypasses the cache for it until "
			"restarted (or reloaded with a changed definition)", qs->def->name, e->sharded ? " on shard " : "",
			e->sharded ? e->qt->cfg->shards[k].name : "");
	}
}

/* A shard's generations poll: its epoch (is it this Redis run's, and the one we know?) and
 * every query's generation in its keyspace, read in one script. */
static void on_gens_reply(cs_rc *rc, redisReply *reply, void *priv)
{
	gensctx *c = priv;
	cs_engine *e = c->e;
	qtable *t = c->t;
	int k = c->shard;
	shard *sh = &e->sh[k];
	bool outdated = c->seq != sh->gens_seq;
	bool heard = c->msgs != sh->gen_msgs;
	free(c);
	sh->gens_busy = false;
	if (outdated || sh->gens_again) {
		/* Sent before the shard's generations stopped being trusted (its channel was
		 * not heard for a while: a bump may have come after this read), or another poll
		 * was wanted meanwhile (a resubscription, the invalidator's "*" message): the
		 * answer may predate what that poll must see. Poll again; an outdated answer
		 * must not make the generations trusted (review 32 R32-3). */
		sh->gens_again = false;
		if (outdated) {
			qtable_unref(t);
			load_shard_gens(e, k);
			return;
		}
		load_shard_gens(e, k); /* and this answer is applied below: it is not outdated */
	}
	if (reply && reply->type == REDIS_REPLY_ARRAY && (int)reply->elements == 4 * t->nq + 3 &&
	        reply->element[0]->type == REDIS_REPLY_INTEGER &&
	        reply->element[1]->type == REDIS_REPLY_STRING &&
	        (size_t)reply->element[1]->len < sizeof sh->epoch) {
		/* a master found on another run keeps the shard's epoch unknown
		 * (engine_cluster_epoch.c) */
		bool valid = reply->element[0]->integer == 1 && !sh->cepoch_lost;
		const redisReply *ep = reply->element[1];
		bool changed = (size_t)ep->len != sh->epoch_len ||
		               memcmp(ep->str, sh->epoch, sh->epoch_len) != 0;
		if (e->near && !e->near_untracked && (changed || (e->fence_on && !valid))) {
			/* another Redis run, or data lost, or the invalidator resynchronised */
			if (cs_near_get_stats(e->near)->entries)
				cs_info("near cache: flushed (the namespace's epoch changed)");
			near_flush(e);
		}
		if (e->fence_on && !valid) {
			/* Redis lost data (or no invalidator has synchronised it yet): neither
			 * serve nor store until the invalidator has resynchronised. */
			if (sh->epoch_len)
				cs_warn("redis: the namespace's epoch is gone or from another "
					"Redis run (data lost?): bypassing the cache until the "
					"invalidator resynchronises");
			sh->epoch_len = 0;
			sh->epoch[0] = '\0';
			e->stats.epoch_invalid++;
		} else if (t == e->qt) {
			if (changed) {
				memcpy(sh->epoch, ep->str, (size_t)ep->len);
				sh->epoch[ep->len] = '\0';
				sh->epoch_len = (size_t)ep->len;
				e->stats.epoch_changes++;
			}
			bool again = false;
			/* "@": a leader recorded the query mappings it decodes with (R36-1). Once
			 * seen, its absence (Redis lost data, the key deleted) is no leader's word:
			 * every concerned query waits for the record (review 41 R41-6) */
			const redisReply *at = reply->element[2 * t->nq + 2];
			if (at->type == REDIS_REPLY_STRING && at->len == 1 && at->str[0] == '1')
				sh->qmap_seen = true;
			for (int i = 0; i < t->nq; i++) {
				redisReply *g = reply->element[i + 2];
				uint64_t gen = g->type == REDIS_REPLY_STRING ? strtoull(g->str, NULL, 10) : 0;
				qgen *qg = &t->qs[i].sg[k];
				if (heard && !changed && gen < qg->gen) {
					/* read before a bump this process heard of since: its definition
					 * may not be the one read here (with fences off too: applied, it
					 * set the generation back under the process's own bump, and every
					 * fill was refused until the next poll: review 38 R38-5) */
					qg->gen_known = false;
					again = true;
					continue;
				}
				/* a new epoch: Redis's generations are the truth, even lower ones */
				if (!qg->gen_known || gen > qg->gen || changed || !e->fence_on)
					qg->gen = gen;
				redisReply **m = reply->element + 2 * t->nq + 3;
				gens_apply_def(e, &t->qs[i], k, reply->element[i + 2 + t->nq],
				        m[2 * i], m[2 * i + 1]);
			}
			if (again)
				load_shard_gens(e, k);
		}
	} else if (reply != NULL) {
		/* refused (CROSSSLOT: a cluster used as one Redis, NOSCRIPT, an ACL, OOM...) or
		 * malformed: the cache stays bypassed until a poll succeeds, so say why, at most
		 * once a minute (the poll runs every GEN_POLL_MS) */
		e->stats.gens_errors++;
		uint64_t now = cs_now_us();
		if (now - e->gens_warned_us > 60u * 1000u * 1000u) {
			e->gens_warned_us = now;
			cs_warn("redis: the generations poll failed (%s): bypassing the cache until it "
				"succeeds", reply->type == REDIS_REPLY_ERROR ? reply->str : "malformed reply");
		}
	}
	qtable_unref(t);
}

/* Polls shard k's generations (at most one poll per shard in flight). */
void load_shard_gens(cs_engine *e, int k)
{
	qtable *t = e->qt;
	shard *sh = &e->sh[k];
	if (sh->gens_busy) {
		sh->gens_again = true; /* once the one in flight answers */
		return;
	}
	if (!cs_rc_slot_ready(e->redis, sh->bslot[0]))
		return; /* GENS runs on bucket 0 alone */
	/* the epoch, each generation, each definition, the leader's mapping record; then each
	 * query's name (its fields in the record) */
	size_t n = 2 * (size_t)t->nq + 2, argc = n + 1 + (size_t)t->nq;
	const char **argv = calloc(argc, sizeof *argv);
	size_t *lens = calloc(argc, sizeof *lens);
	char (*keys)[CS_NAME_MAX + CS_MAX_NAME] = calloc(n, sizeof *keys);
	gensctx *c = malloc(sizeof *c);
	if (argv && lens && keys && c) {
		argv[0] = sh->ks.epoch;
		lens[0] = sh->ks.epoch_len;
		for (int i = 0; i < t->nq; i++) {
			const char *q = t->qs[i].def->name;
			argv[i + 1] = keys[i];
			lens[i + 1] = cs_ks_gen(&sh->ks, keys[i], sizeof keys[i], q);
			argv[i + 1 + t->nq] = keys[i + t->nq];
			lens[i + 1 + t->nq] =
			        cs_ks_qdef(&sh->ks, keys[i + t->nq], sizeof keys[i], q);
			argv[n + 1 + i] = q;
			lens[n + 1 + i] = strlen(q);
		}
		argv[n - 1] = sh->ks.qmap;
		lens[n - 1] = sh->ks.qmap_len;
		argv[n] = "m";
		lens[n] = 1;
		*c = (gensctx){
		        .e = e, .t = t, .shard = k, .seq = sh->gens_seq, .msgs = sh->gen_msgs};
		t->refs++;
		if (cs_rc_script(e->redis, cs_rc_keyslot(argv[0], lens[0]), CS_SCRIPT_GENS,
		            on_gens_reply, c, (int)n, (int)argc, argv, lens) == 0) {
			c = NULL;
			sh->gens_busy = true;
		} else
			t->refs--;
	}
	free(c);
	free(keys);
	free(lens);
	free(argv);
}

/* Polls every shard's generations. */
void load_gens(cs_engine *e)
{
	for (int k = 0; k < e->nsh; k++)
		load_shard_gens(e, k);
}

/* The shard whose generations channel a pub/sub message came on (ch: the channel name), or
 * -1 for none. The implicit shard alone: 0 whatever the name (its one channel). */
int gen_channel_shard(const cs_engine *e, const redisReply *ch)
{
	if (e->nsh == 1)
		return 0;
	if (ch->type != REDIS_REPLY_STRING)
		return -1;
	for (int k = 0; k < e->nsh; k++)
		if ((size_t)ch->len == e->sh[k].ks.channel_len &&
		        memcmp(ch->str, e->sh[k].ks.channel, (size_t)ch->len) == 0)
			return k;
	return -1;
}

/* Stops trusting every generation of every query (requests bypass the cache) until the
 * next successful poll. */
void gens_unknown(cs_engine *e)
{
	for (int k = 0; k < e->nsh; k++)
		gens_unknown_shard(e, k);
}

/* The same for shard k alone (its generations channel was not heard meanwhile). */
void gens_unknown_shard(cs_engine *e, int k)
{
	e->sh[k].gens_seq++;
	for (int i = 0; i < e->qt->nq; i++)
		e->qt->qs[i].sg[k].gen_known = false;
}

void on_gen_message(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	if (reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
		reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	/* the shard of the channel (0 unsharded, whatever the name): what follows concerns its
	 * keyspace alone (SHARDS.md section 2) */
	int k = gen_channel_shard(e, reply->element[1]);
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		/* (re)subscribed: catch up on what pub/sub may have missed */
		if (k >= 0)
			load_shard_gens(e, k);
		return;
	}
	redisReply *m = reply->element[2];
	if (strcmp(reply->element[0]->str, "message") != 0 || m->type != REDIS_REPLY_STRING)
		return;
	const char *sp = memchr(m->str, ' ', (size_t)m->len);
	if (sp == NULL)
		return;
	if (sp == m->str + 1 && m->str[0] == '*') {
		/* "* <epoch>": the shard's invalidator (re)synchronised its keyspace; "* qmap":
		 * its leader recorded new query mappings (review 36 R36-1) */
		if (k >= 0)
			load_shard_gens(e, k);
		return;
	}
	qstate *qs = k < 0 ? NULL : qtable_find(e->qt, m->str, (size_t)(sp - m->str));
	if (qs) {
		/* "<q> <g>" (the invalidator's and admin bumps: the definition unchanged) or
		 * "<q> <g> <fingerprint>" (DEF_BUMP: a start or reload recorded its definition) */
		char *end;
		uint64_t g = strtoull(sp + 1, &end, 10);
		qgen *qg = &qs->sg[k];
		size_t rest = (size_t)(m->str + m->len - end);
		if (rest > 0 && !e->test_no_defs &&
		        (rest != 17 || *end != ' ' || memcmp(end + 1, qs->fp, 16) != 0)) {
			/* another definition (or a form not understood), whatever its number: the
			 * poll decides */
			gen_heard(e, qs, k, g);
		} else if (g > qg->gen) {
			qg->gen = g;
			e->sh[k].gen_msgs++;
		}
	}
}

/* A generation of qs on shard k learnt otherwise than from a poll (a refused fill, an
 * admin bump's reply, a message of another definition): it may answer another process's
 * definition, so none is used until a poll reads it with the definition Redis records. */
void gen_heard(cs_engine *e, qstate *qs, int k, uint64_t gen)
{
	qgen *qg = &qs->sg[k];
	if (gen > qg->gen)
		qg->gen = gen;
	qg->gen_known = false;
	e->sh[k].gen_msgs++;
	load_shard_gens(e, k);
}

void on_pubsub_state(cs_redis *rd, bool up, void *priv)
{
	cs_engine *e = priv;
	near_conn_state(e, rd, true, up);
	if (!up) {
		/* A bump published while we were away would be missed: stop trusting our
		 * generations (requests bypass the cache) until re-subscribed and re-read. */
		gens_unknown(e);
	}
}

void on_cache_state(cs_redis *rd, bool up, void *priv)
{
	cs_engine *e = priv;
	near_conn_state(e, rd, false, up);
	if (up) {
		load_gens(e);
		return;
	}
	/* The connection dropped: Redis may have restarted from an older state. Use nothing
	 * of it until the epoch is checked again. */
	for (int k = 0; k < e->nsh; k++) {
		e->sh[k].epoch_len = 0;
		e->sh[k].epoch[0] = '\0';
	}
	gens_unknown(e);
}

void on_gen_timer(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	for (int i = 0; i < e->qt->nq; i++)
		for (int k = 0; k < e->nsh; k++)
			if (e->qt->qs[i].sg[k].pending_bump &&
			        cs_rc_slot_ready(e->redis, e->sh[k].bslot[0]))
				bump_generation(e, &e->qt->qs[i], k);
	load_gens(e);
	cluster_epoch_check(e);
	near_heartbeat(e);
}

void cs_engine_test_no_definitions(cs_engine *e)
{
	e->test_no_defs = true;
}

void cs_engine_test_no_query_map(cs_engine *e)
{
	e->test_no_qmap = true;
}

/* ---- Bumps on a cluster (CLUSTER.md section 3, (e')) ------------------------------------- */

typedef struct cbump {
	cs_engine *e;
	const shard *sh; /* the keyspace bumped */
	cluster_bump_cb *cb;
	void *priv;
	uint64_t gen;
	int pending; /* GEN_SETs not yet answered, +1 while sending */
	int failed;
	char qf[17];
	char q[];
} cbump;

static void cbump_release(cbump *c)
{
	if (--c->pending > 0)
		return;
	cs_engine *e = c->e;
	e->cl.fanouts++;
	if (c->failed) {
		e->cl.fanout_errors += (uint64_t)c->failed;
		cs_warn("query %s: generation %llu reached %d of %d buckets; fills in the others "
		        "are "
		        "refused until a fill repairs them",
		        c->q, (unsigned long long)c->gen, CS_KS_BUCKETS - c->failed, CS_KS_BUCKETS);
	}
	c->cb(e, c->priv, 0, NULL, c->gen);
	free(c);
}

static void on_cbump_set(cs_rc *rc, redisReply *reply, void *priv)
{
	cbump *c = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER)
		c->failed++;
	cbump_release(c);
}

/* C_GEN_BUMP answered {G, qf_0}: GEN_SET(q, G, qf_0) on every other bucket. {G, qf_0, 1}: a
 * cover another process made already (fence.h CS_SCRIPT_C_DEF_BUMP): nothing was bumped,
 * so nothing to copy (255 scripts per process and query at each new record: review 41
 * R41-5). */
static void on_cbump(cs_rc *rc, redisReply *reply, void *priv)
{
	cbump *c = priv;
	cs_engine *e = c->e;
	const shard *sh = c->sh;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	        (reply->elements != 2 && reply->elements != 3) ||
	        reply->element[0]->type != REDIS_REPLY_INTEGER ||
	        reply->element[1]->type != REDIS_REPLY_STRING || reply->element[1]->len != 16) {
		c->cb(e, c->priv, -1,
		        reply && reply->type == REDIS_REPLY_ERROR ? reply->str
		                                                  : "redis unavailable",
		        0);
		free(c);
		return;
	}
	c->gen = (uint64_t)reply->element[0]->integer;
	memcpy(c->qf, reply->element[1]->str, 16);
	c->qf[16] = '\0';
	c->pending = 1;
	if (reply->elements == 3) {
		cbump_release(c);
		return;
	}
	char gs[24];
	int gn = snprintf(gs, sizeof gs, "%llu", (unsigned long long)c->gen);
	for (uint32_t b = 1; b < CS_KS_BUCKETS; b++) {
		char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME];
		char fmax[CS_NAME_MAX], epoch[CS_NAME_MAX];
		size_t gl = cs_ks_gen_in(&sh->ks, b, genkey, sizeof genkey, c->q);
		size_t ql = cs_ks_qfence_in(&sh->ks, b, qfkey, sizeof qfkey, c->q);
		size_t fl = cs_ks_fixed_in(&sh->ks, b, CS_KS_FMAX, fmax, sizeof fmax);
		size_t el = cs_ks_fixed_in(&sh->ks, b, CS_KS_EPOCH, epoch, sizeof epoch);
		const char *argv[] = {genkey, qfkey, fmax, epoch, gs, c->qf, ""};
		size_t lens[] = {gl, ql, fl, el, (size_t)gn, 16, 0};
		c->pending++;
		if (gl == 0 || ql == 0 || fl == 0 || el == 0 ||
		        cs_rc_script(e->redis, sh->bslot[b], CS_SCRIPT_C_GEN_SET, on_cbump_set, c,
		                4, 7, argv, lens) != 0) {
			c->failed++;
			c->pending--;
		}
	}
	cbump_release(c);
}

int cluster_bump(cs_engine *e, const shard *sh, const char *q, const char *lsnhex,
        const char *fp, const char *cover, cluster_bump_cb *cb, void *priv)
{
	size_t qn = strlen(q);
	cbump *c = calloc(1, sizeof *c + qn + 1);
	if (c == NULL)
		return -1;
	*c = (cbump){.e = e, .sh = sh, .cb = cb, .priv = priv};
	memcpy(c->q, q, qn + 1);
	char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME];
	size_t gl = cs_ks_gen(&sh->ks, genkey, sizeof genkey, q);
	size_t ql = cs_ks_qfence(&sh->ks, qfkey, sizeof qfkey, q);
	/* no epoch check (ARGV epoch ''), as a single Redis's admin and reload bumps; with a
	 * fingerprint, the definition is recorded with the bump (C_DEF_BUMP) */
	char qdkey[CS_NAME_MAX + CS_MAX_NAME];
	size_t dl = fp ? cs_ks_qdef(&sh->ks, qdkey, sizeof qdkey, q) : 1;
	const char *argv[] = {genkey, qfkey, sh->ks.epoch, sh->ks.fmax, qdkey, sh->ks.qmap,
	        sh->ks.channel, q, lsnhex, "", fp ? fp : "", cover ? cover : ""};
	size_t lens[] = {gl, ql, sh->ks.epoch_len, sh->ks.fmax_len, dl, sh->ks.qmap_len,
	        sh->ks.channel_len, qn, 16, 0, 16, cover ? strlen(cover) : 0};
	if (!fp) { /* GEN_BUMP's layout: without the definition key, qmap, fingerprint, cover */
		memmove(&argv[4], &argv[6], 4 * sizeof argv[0]);
		memmove(&lens[4], &lens[6], 4 * sizeof lens[0]);
	}
	if (gl == 0 || ql == 0 || dl == 0 ||
	        cs_rc_script(e->redis, sh->bslot[0], fp ? CS_SCRIPT_C_DEF_BUMP : CS_SCRIPT_C_GEN_BUMP,
	                on_cbump, c, fp ? 6 : 4, fp ? 12 : 8, argv, lens) != 0) {
		free(c);
		return -1;
	}
	return 0;
}
