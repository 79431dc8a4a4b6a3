/* engine.c - the engine's lifecycle: creation, start, shutdown and reload (engine.h, the
 * API; engine_int.h, what the engine's files share).
 *
 * The read-through engine: cache lookups, single-flight misses, routing, LSN-fenced fills,
 * generations, read-your-writes (see engine.h for the Redis layout). Its files, one concern
 * each: engine_read.c (query table, replies, routing, flights, cache lookups), engine_fill.c
 * (misses: the fill on a server and the fenced write), engine_gen.c (generations),
 * engine_housekeeping.c (the tick, server health, lag history), engine_admin.c (admin
 * pause and INVALIDATE), engine_sampler.c (the verifier sampler), engine_reload.c (checked reload),
 * engine_metrics.c (metrics), engine_show.c (SHOW views), and this file. */
#include "engine_int.h"

#include "redis_url.h"

/* ---- Lifecycle -------------------------------------------------------------------------- */

/* The pools' settings from the configuration: at startup and for every server a reload
 * keeps or adds (request_timeout and queue_timeout are reloadable). */
static cs_pgpool_opts pool_opts(const cs_engine *e, const cs_config *cfg)
{
	return (cs_pgpool_opts){
		.connect_timeout_ms = CS_MAX(cfg->request_timeout_ms, 1000),
		.queue_timeout_ms = cfg->queue_timeout_ms,
		.health_interval_ms = cfg->health_interval_ms,
		.statement_timeout_ms = cfg->request_timeout_ms,
		.queue_max = cfg->queue_max,
		.resolver = e->resolver,
	};
}

cs_engine *cs_engine_new(struct event_base *base, cs_config *cfg, char *err, size_t errlen)
{
	/* Sharded (SHARDS.md section 7 steps 3b and 4): servers, keys and an invalidator per
	 * shard, on one Redis or a Redis Cluster (3b (2): every master's pub/sub subscribes every
	 * shard's channel, the per-master epoch check reads every shard's copies). */
	if (cfg->nshards > CS_MAX_SHARDS) { /* review 19 R19-3 */
		snprintf(err, errlen, "%d [shard NAME] sections: at most %d", cfg->nshards,
		        CS_MAX_SHARDS);
		cs_config_free(cfg);
		return NULL;
	}
	cs_engine *e = calloc(1, sizeof *e);
	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		cs_config_free(cfg);
		return NULL;
	}
	e->base = base;
	e->fence_on = cfg->fence;
	/* the implicit shard without [shard] sections: its keyspace is the unsharded one */
	e->nsh = CS_MAX(cfg->nshards, 1);
	/* routed (cs_shard_pick, tokens naming a shard) whenever [shard] sections exist, also
	 * one: a key outside its ranges is no shard's (review 23 R23-1) */
	e->sharded = cfg->nshards > 0;
	e->sh = calloc((size_t)e->nsh, sizeof *e->sh);
	if (e->sh == NULL) {
		snprintf(err, errlen, "out of memory");
		cs_config_free(cfg);
		free(e);
		return NULL;
	}
	char ns[CS_NS_MAX + 1];
	cs_config_namespace(cfg, ns);
	shard *sh0 = &e->sh[0];
	if (cfg->nshards > 0) {
		for (int k = 0; k < e->nsh; k++)
			if (cs_ks_init_shard(&e->sh[k].ks, ns, cfg->shards[k].name,
			            cfg->redis_cluster) != 0) {
				snprintf(err, errlen,
				        "[shard %s]: namespace \"%s\" and the shard name make no "
				        "keyspace",
				        cfg->shards[k].name, ns);
				cs_config_free(cfg);
				free(e->sh);
				free(e);
				return NULL;
			}
	} else if (!cfg->redis_cluster) {
		cs_ks_init(&sh0->ks, ns);
	} else if (cs_ks_init_cluster(&sh0->ks, ns) != 0) {
		snprintf(err, errlen, "[redis] namespace \"%s\" may not hold { or } on a cluster",
		        ns);
		cs_config_free(cfg);
		free(e->sh);
		free(e);
		return NULL;
	}
	/* every shard's bucket slots, once: the hit path takes them from here (no CRC16 per hit) */
	for (int k = 0; k < e->nsh; k++)
		for (uint32_t b = 0; b < CS_KS_BUCKETS; b++) {
			char pre[CS_KS_PREFIX_MAX + 1];
			size_t pl = cs_ks_prefix(&e->sh[k].ks, b, pre, sizeof pre);
			e->sh[k].bslot[b] = e->sh[k].ks.cluster ? cs_rc_keyslot(pre, pl) : 0;
		}
	e->repair_on = cfg->redis_cluster_repair;
	e->cepoch_on = cfg->redis_cluster_epoch_check;
	cs_hist_init(&e->stats.hit_us);
	cs_hist_init(&e->stats.miss_us);
	cs_buf_init(&e->scratch, MAX_REPLY + CS_ENTRY_HDR);
	e->qt = qtable_new(cfg);
	if (e->qt == NULL) {
		snprintf(err, errlen, "out of memory");
		cs_config_free(cfg);
		free(e->sh);
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
	cs_rc_opts rco = { .node = ro };
	char *seedbuf = NULL, *seeds[CS_RC_MAX_NODES];
	if (cfg->redis_cluster) {
		/* the cluster scripts after the single-Redis ones (fence.h); MOVED and ASK
		 * followed (a migration takes one of each), TRYAGAIN retried by cs_rc within the
		 * command's timeout; a slot without a ready master fails its command at once */
		rco.node.scripts = cs_scripts_cluster();
		rco.node.nscripts = CS_SCRIPT_ALL_COUNT;
		rco.cluster = true;
		rco.max_redirects = 5;
		rco.refresh_ms = cfg->redis_cluster_refresh_ms;
		seedbuf = strdup(cfg->redis_nodes ? cfg->redis_nodes : "");
		rco.nseeds = seedbuf ? cs_split_list(seedbuf, seeds, CS_RC_MAX_NODES) : 0;
		rco.seeds = (const char *const *)seeds;
		/* one pub/sub connection per master, following the node set (engine_near.c) */
		rco.on_nodes = psn_on_nodes;
		rco.nodes_priv = e;
		e->ps_timeout_ms = cfg->redis_timeout_ms;
		e->ps_client_id = cfg->near_cache_size > 0;
		e->ps_track = cfg->near_cache_size > 0 && cfg->near_cache_tracking;
		e->near_resend_check = cfg->redis_cluster_near_resend_check;
	}
	e->redis = cs_rc_new(base, &rco, err, errlen);
	free(seedbuf);
	if (e->redis && cfg->redis_cluster) {
		/* pub/sub on every master (a PUBLISH reaches every node's subscribers; tracking
		 * redirects only to a client of the same node): review R6, E2 */
		if (psn_setup(e) != 0) {
			snprintf(err, errlen, "[redis] nodes: no pub/sub connections made");
			cs_engine_free(e);
			return NULL;
		}
	} else if (e->redis) {
		cs_redis_opts po = { .name = "pubsub", .url = cfg->redis_url,
			.timeout_ms = cfg->redis_timeout_ms, .max_pending = 16,
			.on_state = on_pubsub_state, .state_priv = e, .resolver = e->resolver,
			.client_id = cfg->near_cache_size > 0 };
		e->pubsub = cs_redis_new(base, &po, err, errlen);
		bool subscribed = e->pubsub != NULL;
		for (int k = 0; k < e->nsh && subscribed; k++) /* every shard's generations */
			subscribed = cs_redis_subscribe(e->pubsub, e->sh[k].ks.channel,
			                     on_gen_message, e) == 0;
		if (!subscribed) {
			cs_engine_free(e);
			return NULL;
		}
	}
	if (e->redis == NULL) {
		cs_engine_free(e);
		return NULL;
	}

	cs_pgpool_opts po2 = pool_opts(e, cfg);
	e->servers = calloc((size_t)cfg->nreplicas + (size_t)e->nsh, sizeof *e->servers);
	e->srv_id = calloc((size_t)cfg->nreplicas + (size_t)e->nsh, sizeof *e->srv_id);
	e->srv_shard = calloc((size_t)cfg->nreplicas + (size_t)e->nsh, sizeof *e->srv_shard);
	e->retiring = calloc(MAX_SERVERS, sizeof *e->retiring);
	e->retiring_id = calloc(MAX_SERVERS, sizeof *e->retiring_id);
	e->retiring_shard = calloc(MAX_SERVERS, sizeof *e->retiring_shard);
	e->retiring_until_us = calloc(MAX_SERVERS, sizeof *e->retiring_until_us);
	if (e->servers == NULL || e->srv_id == NULL || e->srv_shard == NULL ||
	        e->retiring == NULL || e->retiring_id == NULL || e->retiring_shard == NULL ||
	        e->retiring_until_us == NULL) {
		snprintf(err, errlen, "out of memory");
		cs_engine_free(e);
		return NULL;
	}
	for (int i = 0; i < cfg->nreplicas; i++) {
		const cs_replica_def *r = &cfg->replicas[i];
		e->srv_shard[e->nservers] = CS_MAX(r->shard_index, 0);
		e->servers[e->nservers++] = cs_pgserver_new(base, r->name, r->conninfo, false, r->tiers,
			r->pool_size, &po2);
	}
	if (cfg->nshards > 0) {
		/* each shard's primary, "primary@<shard>" (no replica's name holds an @) */
		for (int k = 0; k < cfg->nshards; k++) {
			char name[CS_MAX_NAME + 16];
			snprintf(name, sizeof name, "primary@%s", cfg->shards[k].name);
			e->sh[k].primary = cs_pgserver_new(base, name, cfg->shards[k].conninfo,
			        true, (1u << CS_TIER_COUNT) - 1, cfg->shards[k].pool_size, &po2);
			e->srv_shard[e->nservers] = k;
			e->servers[e->nservers++] = e->sh[k].primary;
		}
	} else if (cfg->primary_conninfo) {
		sh0->primary = cs_pgserver_new(base, "primary", cfg->primary_conninfo, true,
		        (1u << CS_TIER_COUNT) - 1, cfg->primary_pool_size, &po2);
		e->servers[e->nservers++] = sh0->primary;
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
	/* one invalidator per shard (SHARDS.md section 4); unsharded, the one of before */
	for (int k = 0; cfg->inval_enabled && k < e->nsh; k++) {
		cs_inv_where w = {.shard = cfg->nshards > 0 ? k : -1};
		e->sh[k].inv = cs_inv_new(base, cfg, &w, e->sh[k].primary, err, errlen);
		if (e->sh[k].inv == NULL) {
			cs_engine_free(e);
			return NULL;
		}
	}
	if (near_setup(e, cfg, err, errlen) != 0) {
		cs_engine_free(e);
		return NULL;
	}
	if (cfg->verify_interval_ms > 0 && sh0->primary &&
	        sampler_start(e, cfg->verify_interval_ms) != 0) {
		snprintf(err, errlen, "out of memory");
		cs_engine_free(e);
		return NULL;
	}
	e->tick = evtimer_new(base, on_tick, e); /* armed while it has work: tick_arm */
	e->gen_timer = event_new(base, -1, EV_PERSIST, on_gen_timer, e);
	struct timeval t2 = cs_tv_ms(GEN_POLL_MS);
	if (e->tick == NULL || e->gen_timer == NULL || event_add(e->gen_timer, &t2) != 0) {
		snprintf(err, errlen, "out of memory");
		cs_engine_free(e);
		return NULL;
	}
	return e;
}

int cs_engine_test_inv_on_shard0(cs_engine *e, char *err, size_t errlen)
{
	const cs_config *cfg = e->qt->cfg;
	for (int k = 1; k < e->nsh && cfg->nshards > 0; k++) {
		if (e->sh[k].inv == NULL)
			continue;
		cs_inv_free(e->sh[k].inv);
		cs_inv_where w = {.shard = k, .conninfo = cfg->shards[0].conninfo};
		e->sh[k].inv = cs_inv_new(e->base, cfg, &w, e->sh[0].primary, err, errlen);
		if (e->sh[k].inv == NULL)
			return -1;
		near_inv_hook(e, e->sh[k].inv);
	}
	return 0;
}

void cs_engine_free(cs_engine *e)
{
	if (e == NULL)
		return;
	e->stopping = true;
	/* Servers first: their jobs fail, which answers every waiting request (and the
	 * invalidator's slot-health job and start read, so the invalidator goes after them). */
	for (int k = 0; k < e->nsh; k++)
		cs_inv_stopping(e->sh[k].inv);
	for (int i = 0; i < e->nservers; i++)
		cs_pgserver_free(e->servers[i]);
	e->nservers = 0;
	for (int k = 0; k < e->nsh; k++)
		e->sh[k].primary = NULL;
	while (e->nretiring > 0)
		cs_pgserver_free(e->retiring[--e->nretiring]);
	for (int k = 0; k < e->nsh; k++) {
		cs_inv_free(e->sh[k].inv);
		e->sh[k].inv = NULL;
	}
	/* Flights waiting for read-your-writes never reached a server; requests whose token
	 * waits for the primary's position, nothing yet. */
	while (e->ryw_head)
		flight_fail(e->ryw_head, -CS_ERR_SHUTTING_DOWN, "shutting down");
	lease_fail_all(e); /* miss-lease waiters between two re-reads */
	for (int k = 0; k < e->nsh; k++)
		while (e->sh[k].token_head) {
			lookup *l = e->sh[k].token_head;
			e->sh[k].token_head = l->tnext;
			e->ntoken--;
			greq_error(l->r, -CS_ERR_SHUTTING_DOWN, "shutting down");
			lookup_free(l);
		}
	/* Redis next: its pending callbacks run now (reply NULL) - lookups answer (their
	 * flights fail: stopping), the sampler ends its sample - so the sampler is stopped
	 * only after them (it frees what a pending callback would free again). */
	cs_redis_free(e->pubsub);
	e->pubsub = NULL;
	psn_free_all(e, false);
	cs_rc_free(e->redis);
	e->redis = NULL;
	psn_free_all(e, true); /* after cs_rc_free: its callbacks may hold them */
	if (e->near_reclaim)
		event_free(e->near_reclaim);
	e->near_reclaim = NULL;
	cs_near_free(e->near); /* after the callbacks above, which settle their watches */
	e->near = NULL;
	sampler_stop(e);
	cs_resolver_free(e->resolver); /* after every user of it */
	e->resolver = NULL;
	if (e->tick)
		event_free(e->tick);
	if (e->gen_timer)
		event_free(e->gen_timer);
	free(e->servers);
	free(e->srv_id);
	free(e->srv_shard);
	free(e->retiring);
	free(e->retiring_id);
	free(e->retiring_shard);
	free(e->retiring_until_us);
	cs_buf_free(&e->scratch);
	qtable_unref(e->qt);
	free(e->sh);
	free(e);
}

bool query_same(const cs_query_def *a, const cs_query_def *b)
{
	/* its routing too: a query re-pinned or re-keyed by a reload reads other databases, so
	 * it is checked there and its generations bumped like new SQL (review 23 R23-2; the
	 * [shard] sections and the map are restart-only) */
	if (strcmp(a->sql, b->sql) != 0 || a->nparams != b->nparams ||
	        a->shard_index != b->shard_index || a->shard_key_index != b->shard_key_index)
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

/* A definition bump answered with generation gen: this process's definition is the one
 * Redis records for it. A later bump heard meanwhile (its message came first) may be
 * another process's definition: the poll decides then. */
static void def_bumped(cs_engine *e, qstate *qs, int shard_ix, uint64_t gen)
{
	qgen *g = &qs->sg[shard_ix];
	e->stats.gen_bumps++;
	e->stats.def_bumps++;
	g->def_claim = false;
	g->def_foreign = false;
	if (gen >= g->gen && map_applies(e, qs, shard_ix)) {
		/* whether the leader maps this definition (and the bump covered its record):
		 * the poll reads it (review 36 R36-1) */
		g->gen = gen;
		g->gen_known = false;
		load_shard_gens(e, shard_ix);
	} else if (gen >= g->gen) {
		g->gen = gen;
		g->gen_known = true;
	} else {
		g->gen_known = false;
		load_shard_gens(e, shard_ix);
	}
}

static void on_reload_bump(cs_rc *rc, redisReply *reply, void *priv)
{
	fillctx *c = priv;
	c->qs->sg[c->shard].bump_inflight = false;
	if (reply && reply->type == REDIS_REPLY_INTEGER) {
		if (c->qt == c->e->qt)
			def_bumped(c->e, c->qs, c->shard, (uint64_t)reply->integer);
		else
			c->e->stats.gen_bumps++;
	} else {
		cs_warn("query %s changed but its generation could not be bumped; it bypasses the "
			"cache until it is", c->qs->def->name);
		c->qs->sg[c->shard].pending_bump = true;
	}
	qtable_unref(c->qt);
	free(c);
}

/* A cluster reload bump answered (bucket 0's bump and its fan-out). */
static void on_reload_cbump(cs_engine *e, void *priv, int err, const char *msg, uint64_t gen)
{
	fillctx *c = priv;
	qgen *g = &c->qs->sg[c->shard];
	g->bump_inflight = false;
	if (err == 0) {
		if (c->qt == e->qt)
			def_bumped(e, c->qs, c->shard, gen);
		else
			e->stats.gen_bumps++;
	} else {
		cs_warn("query %s changed but its generation could not be bumped (%s); it bypasses "
			"the cache until it is", c->qs->def->name, msg);
		g->pending_bump = true;
	}
	qtable_unref(c->qt);
	free(c);
}

/* INCR the query's generation in shard shard_ix's keyspace, record this process's
 * definition as the one it answers (DEF_BUMP) and announce it: every process stops using
 * the shard's old entries, and a process of another definition uses none of the new ones.
 * A query new, changed, resumed, or found under another definition (or none) in Redis at
 * a start or reload is bumped on every shard (the callers' loops). */
void bump_generation(cs_engine *e, qstate *qs, int shard_ix)
{
	bump_generation_cover(e, qs, shard_ix, NULL);
}

void bump_generation_cover(cs_engine *e, qstate *qs, int shard_ix, const char *cover)
{
	shard *sh = &e->sh[shard_ix];
	qgen *g = &qs->sg[shard_ix];
	/* The query-level fence: the primary's last known position (and the reload's floor).
	 * Data older than it was read under an older definition at best, or its changes were
	 * decoded before this definition was mapped, or were never streamed (a table just
	 * added to the publication: reviews 34 R34-1, 35 R35-1, R35-3): refuse it in the new
	 * generation. Until the position is known the bump waits (the generation timer
	 * retries it); the query bypasses the cache meanwhile. */
	cs_lsn_t fence = sh->primary ? cs_pgserver_lsn(sh->primary) : 0;
	if (fence < sh->bump_floor)
		fence = sh->bump_floor;
	if (fence == 0 && sh->primary && e->fence_on) {
		g->pending_bump = true;
		g->gen_known = false;
		uint64_t now = cs_now_us();
		if (now - e->bump_wait_warned_us > 60u * 1000u * 1000u) { /* review 36 R36-7 */
			e->bump_wait_warned_us = now;
			cs_warn("query %s%s%s: its generation bump waits for the primary's position "
				"(not known yet: is the primary reachable?); the query bypasses the "
				"cache meanwhile", qs->def->name, e->sharded ? " on shard " : "",
				e->sharded ? e->qt->cfg->shards[shard_ix].name : "");
		}
		return;
	}
	/* a cover's record: its stream's start is this bump's least fence (its own only: a
	 * shared floor would let later bumps skip the wait for the primary: review 41 R41-2) */
	cs_lsn_t at;
	if (cover && cs_lsn_unhex(cover + 17, 16, &at) && at > fence)
		fence = at;
	char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME],
	        qdkey[CS_NAME_MAX + CS_MAX_NAME], lsnhex[17];
	size_t gl = cs_ks_gen(&sh->ks, genkey, sizeof genkey, qs->def->name);
	size_t ql = cs_ks_qfence(&sh->ks, qfkey, sizeof qfkey, qs->def->name);
	size_t dl = cs_ks_qdef(&sh->ks, qdkey, sizeof qdkey, qs->def->name);
	cs_lsn_hex(fence, lsnhex);
	const char *argv[] = {genkey, qfkey, sh->ks.epoch, sh->ks.fmax, qdkey, sh->ks.qmap,
	        sh->ks.channel, qs->def->name, lsnhex, "", qs->fp, cover ? cover : ""};
	size_t lens[] = {gl, ql, sh->ks.epoch_len, sh->ks.fmax_len, dl, sh->ks.qmap_len,
	        sh->ks.channel_len, strlen(qs->def->name), 16, 0, 16, cover ? strlen(cover) : 0};
	fillctx *c = malloc(sizeof *c);
	if (c == NULL) {
		g->pending_bump = true;
		return;
	}
	*c = (fillctx){.e = e, .qt = e->qt, .qs = qs, .shard = shard_ix};
	e->qt->refs++;
	g->pending_bump = false;
	g->bump_inflight = true;
	if (gl == 0 || ql == 0 || dl == 0 ||
	        (sh->ks.cluster
	                        ? cluster_bump(e, sh, qs->def->name, lsnhex, qs->fp, cover,
	                                  on_reload_cbump, c) != 0
	                        : cs_rc_script(e->redis, cs_rc_keyslot(genkey, gl), CS_SCRIPT_DEF_BUMP,
	                                  on_reload_bump, c, 6, 12, argv, lens) != 0)) {
		qtable_unref(c->qt);
		free(c);
		g->bump_inflight = false;
		g->pending_bump = true; /* retried by the generation timer */
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
	int cap = cfg->nreplicas + e->nsh; /* the replicas, then each shard's primary */
	cs_pgserver **next = calloc((size_t)cap, sizeof *next);
	int *next_id = calloc((size_t)cap, sizeof *next_id);
	int *next_shard = calloc((size_t)cap, sizeof *next_shard);
	bool *kept = calloc((size_t)e->nservers + 1, sizeof *kept);
	if (next == NULL || next_id == NULL || next_shard == NULL || kept == NULL) {
		free(next);
		free(next_id);
		free(next_shard);
		free(kept);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cs_pgpool_opts po = pool_opts(e, cfg);
	int n = 0;
	bool oom = false;
	/* first the servers kept, so new ones can take ids nobody holds; a replica whose shard
	 * changed is a new server (its LSNs are another WAL's) */
	for (int i = 0; i < cfg->nreplicas; i++) {
		const cs_replica_def *r = &cfg->replicas[i];
		next_shard[i] = CS_MAX(r->shard_index, 0);
		for (int k = 0; k < e->nservers; k++) {
			cs_pgserver *s = e->servers[k];
			if (!is_primary(e, s) && !kept[k] && e->srv_shard[k] == next_shard[i] &&
			        strcmp(cs_pgserver_name(s), r->name) == 0 &&
			        cs_pgserver_same(s, r->conninfo, r->tiers, r->pool_size)) {
				kept[k] = true;
				next[i] = s;
				next_id[i] = e->srv_id[k];
				break;
			}
		}
	}
	for (int j = 0; j < e->nsh; j++) {
		if (e->sh[j].primary == NULL)
			continue;
		for (int k = 0; k < e->nservers; k++)
			if (e->servers[k] == e->sh[j].primary) {
				kept[k] = true;
				next[cfg->nreplicas + j] = e->sh[j].primary;
				next_id[cfg->nreplicas + j] = e->srv_id[k];
				next_shard[cfg->nreplicas + j] = j;
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
		free(next_shard);
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
			next_shard[n] = next_shard[i];
			next_id[n++] = next_id[i];
		}
	uint64_t until = cs_now_us() + ((uint64_t)CS_MAX(cfg->request_timeout_ms, 0) + 1000u) * 1000u;
	cs_pgserver **old = e->servers;
	int *old_id = e->srv_id, *old_shard = e->srv_shard;
	int nold = e->nservers;
	e->servers = next;
	e->srv_id = next_id;
	e->srv_shard = next_shard;
	e->nservers = n;
	for (int k = 0; k < nold; k++) {
		if (kept[k])
			continue;
		cs_info("reload: postgres %s removed or changed: no new work; closed once idle",
			cs_pgserver_name(old[k]));
		e->retiring[e->nretiring] = old[k];
		e->retiring_id[e->nretiring] = old_id[k];
		e->retiring_shard[e->nretiring] = old_shard[k];
		e->retiring_until_us[e->nretiring++] = until;
		tick_arm(e);
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
	free(old_shard);
	free(kept);
	return 0;
}

int cs_engine_reload(cs_engine *e, cs_config *cfg, char *err, size_t errlen)
{
	if (!cs_config_reloadable(e->qt->cfg, cfg, err))
		return -1;
	/* the near cache's size reloads; turning it on or off does not (its pub/sub connection
	 * learns its CLIENT ID at connect time only when the near cache is on) */
	if ((e->qt->cfg->near_cache_size == 0) != (cfg->near_cache_size == 0)) {
		snprintf(err, errlen, "[cachesvc] near_cache_size: turning the near cache %s needs a "
				      "restart", cfg->near_cache_size ? "on" : "off");
		return -1;
	}
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
		if (old == NULL) {
			/* A new query with invalidate_on: the invalidator did not map it before
			 * this reload, so no change committed before it fenced its keys (and a
			 * table just added to the publication had its earlier changes never
			 * streamed): a bump with a query-level fence at the primary's position
			 * refuses fills of data older than that (review 34 R34-1). */
			for (int k = 0; nd->ninval > 0 && k < e->nsh; k++) {
				t->qs[i].sg[k].pending_bump = true;
				t->qs[i].sg[k].gen_known = false;
			}
			continue;
		}
		/* read-your-writes coverage was checked at startup for the old definition, on the
		 * shards it read: a query whose SQL, parameters, invalidate_on or routing changed
		 * has its tokens answered by the database until a restart checks it again (a
		 * re-pinned query reads another shard's schema; review 25 R25-5) */
		cfg->queries[i].reads_covered = old->def->reads_covered && query_same(old->def, nd) &&
			inval_same(old->def, nd);
		if (old->def->reads_covered && !cfg->queries[i].reads_covered)
			cs_info("reload: [query %s] changed: its read-your-writes tokens are answered "
				"from the database until a restart checks it again", nd->name);
		qstate keep = *old;
		keep.def = nd;
		keep.index = i;
		memcpy(keep.fp, t->qs[i].fp, sizeof keep.fp);
		/* and what the leader must map: a reload that changed invalidate_on compared the
		 * leader's record with the old one (review 41 R41-1) */
		memcpy(keep.mfp, t->qs[i].mfp, sizeof keep.mfp);
		t->qs[i] = keep;
		bool changed = !query_same(old->def, nd) || !inval_same(old->def, nd);
		/* a reload that changed the definition takes over a query Redis records under
		 * another one (a rolling deploy's other version): checked by the next poll. An
		 * unchanged one claims nothing: a HUP of every process in turn (logrotate,
		 * config management) made the ownership of a query alternate between the two
		 * versions, each flip dropping its whole cache (review 36 R36-5) */
		for (int k = 0; changed && k < e->nsh; k++)
			t->qs[i].sg[k].def_claim = true;
		for (int k = 0; k < e->nsh; k++) {
			/* A bump still owed by an earlier reload or resume (pending, or sent and not
			 * answered: its callback updates the old table's copy) stays owed: entries of
			 * the definition before that change must not answer (review 19 R19-1). */
			qgen *g = &t->qs[i].sg[k];
			bool owed = changed || g->pending_bump || g->bump_inflight;
			g->pending_bump = owed;
			g->bump_inflight = false;
			if (owed)
				g->gen_known = false;
		}
	}
	qtable *old = e->qt;
	e->qt = t;
	qtable_unref(old);
	if (e->near)
		cs_near_set_max(e->near, (size_t)cfg->near_cache_size);
	for (int i = 0; i < e->nservers; i++)
		cs_pgserver_reset_statements(e->servers[i]);
	/* The bumps below fence at least where this process's invalidator got with the old
	 * mapping: a change it decoded or confirmed before the swap fenced no key of a new or
	 * changed definition and is not decoded again (review 35 R35-1: the monitor's last
	 * primary position alone let a fill of data older than such a change through). */
	for (int k = 0; k < e->nsh; k++) {
		cs_lsn_t upto = e->sh[k].inv ? cs_inv_mapped_upto(e->sh[k].inv) : 0;
		if (upto > e->sh[k].bump_floor)
			e->sh[k].bump_floor = upto;
	}
	for (int k = 0; k < e->nsh; k++)
		if (e->sh[k].inv && cs_inv_reload(e->sh[k].inv, cfg) != 0)
			cs_warn("reload: the invalidator%s%s keeps its old key mapping (out of "
			        "memory)",
			        e->sharded ? " of shard " : "", cs_inv_shard_name(e->sh[k].inv));
	for (int i = 0; i < t->nq; i++)
		for (int k = 0; k < e->nsh; k++)
			if (t->qs[i].sg[k].pending_bump)
				bump_generation(e, &t->qs[i], k);
	load_gens(e);
	return 0;
}
