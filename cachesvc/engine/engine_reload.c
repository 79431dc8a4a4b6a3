/* engine_reload.c - the engine's checked reload: new SQL proves itself on a server before it
 * replaces the old. */
#include "engine_int.h"

/* ---- Checked reload: new SQL proves itself on a server before it replaces the old ------ */

/* One changed or new query: EXPLAIN of its SQL with its declared parameter types (all NULL),
 * a one-off statement: it parses, resolves every name and types every parameter the way a
 * GET would, and executes nothing. */
typedef struct rchk_item {
	struct reload_check *rc;
	cs_query_def def; /* name, "EXPLAIN " + sql, the parameter types */
	cs_pg_params params; /* def.nparams NULLs */
	cs_pgjob job;
	cs_pgserver *srv; /* a server of the shard it is checked for; NULL: none up */
} rchk_item;

static void rchk_finish(struct reload_check *rc);

/* One shard's publication, asked for when the new config invalidates a table on that shard
 * that the running one does not (review 31 R31-2): the shard's invalidator streams only what
 * its publication carries, so a query routed to a shard whose publication lacks its table
 * (an empty publication made for a shard no invalidate_on query read, or a table added to
 * invalidate_on) would have its entries invalidated never. Such a reload is refused until
 * the table is in the publication; a publication that cannot be read refuses it too. */
typedef struct rchk_pub {
	struct reload_check *rc;
	int shard;
	cs_query_def def; /* the statement */
	const char *vals[1];
	int lens[1], fmts[1];
	cs_pg_params params;
	cs_pgjob job;
} rchk_pub;

typedef struct reload_check {
	cs_engine *e;
	cs_config *cfg;
	cs_engine_reload_cb *done;
	void *priv;
	const char *server;
	int n, pending, unchecked;
	rchk_item *items;
	int npubs;
	rchk_pub *pubs; /* one per shard that gains an invalidate_on table */
	const char *nulls[CS_MAX_PARAMS]; /* every parameter NULL: planned, never run */
	char err[2048];
} reload_check;

static void rchk_free(reload_check *rc)
{
	for (int i = 0; rc->items && i < rc->n; i++)
		free(rc->items[i].def.sql);
	free(rc->items);
	free(rc->pubs);
	free(rc);
}

static bool reads_k(const cs_config *cfg, const cs_query_def *q, int k)
{
	return cfg->nshards == 0 || q->shard_index < 0 || q->shard_index == k;
}

static bool same_table(const cs_inval_rule *a, const cs_inval_rule *b)
{
	return strcmp(a->schema, b->schema) == 0 && strcmp(a->table, b->table) == 0;
}

/* True when cfg has a query reading shard k that invalidates on ru's table (among its first
 * nq queries, and the first nr rules of query nq when nq < cfg->nqueries). */
static bool invalidates_on(const cs_config *cfg, int k, const cs_inval_rule *ru, int nq, int nr)
{
	for (int i = 0; i <= nq && i < cfg->nqueries; i++) {
		const cs_query_def *q = &cfg->queries[i];
		if (!reads_k(cfg, q, k))
			continue;
		for (int j = 0; j < (i < nq ? q->ninval : nr); j++)
			if (same_table(&q->inval[j], ru))
				return true;
	}
	return false;
}

/* Calls fn for each invalidate_on table of the new config on shard k that the running config
 * does not invalidate there (each table once, with the first query naming it); stops when fn
 * returns false. Returns how many it visited. */
static int new_tables(const cs_config *old, const cs_config *cfg, int k,
	bool (*fn)(void *, const cs_query_def *, const cs_inval_rule *), void *arg)
{
	int n = 0;
	for (int i = 0; i < cfg->nqueries; i++) {
		const cs_query_def *q = &cfg->queries[i];
		if (!reads_k(cfg, q, k))
			continue;
		for (int j = 0; j < q->ninval; j++) {
			const cs_inval_rule *ru = &q->inval[j];
			if (invalidates_on(old, k, ru, old->nqueries, 0) || invalidates_on(cfg, k, ru, i, j))
				continue; /* the running config's, or named by an earlier rule */
			n++;
			if (fn && !fn(arg, q, ru))
				return n;
		}
	}
	return n;
}

typedef struct pub_check {
	rchk_pub *pub;
	const PGresult *res;
} pub_check;

/* One new table: in the publication's rows (schemaname, tablename), else an error. */
static bool pub_has(void *arg, const cs_query_def *q, const cs_inval_rule *ru)
{
	pub_check *pc = arg;
	reload_check *rc = pc->pub->rc;
	for (int row = 0; row < PQntuples(pc->res); row++)
		if (strcmp(PQgetvalue(pc->res, row, 0), ru->schema) == 0 &&
		        strcmp(PQgetvalue(pc->res, row, 1), ru->table) == 0)
			return true;
	const cs_config *cfg = rc->cfg;
	size_t n = strlen(rc->err);
	snprintf(rc->err + n, sizeof rc->err - n,
		"%s[query %s] invalidate_on: table %s.%s is not in publication \"%s\"%s%s with every "
		"change published (no row filter; insert, update, delete, truncate), so its changes "
		"would never invalidate (ALTER PUBLICATION %s ADD TABLE %s.%s; then reload)",
		n ? "; " : "", q->name, ru->schema, ru->table, cfg->inval_publication,
		cfg->nshards > 0 ? " on shard " : "", cfg->nshards > 0 ? cfg->shards[pc->pub->shard].name : "",
		cfg->inval_publication, ru->schema, ru->table);
	return true;
}

static void on_rchk_pub(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg,
	bool retryable)
{
	rchk_pub *pub = job->priv;
	reload_check *rc = pub->rc;
	const cs_config *cfg = rc->cfg;
	if (err != 0) {
		size_t n = strlen(rc->err);
		snprintf(rc->err + n, sizeof rc->err - n,
			"%s[invalidator] publication \"%s\"%s%s not checked (%s): the reload adds "
			"invalidate_on tables there; reload again once its primary answers",
			n ? "; " : "", cfg->inval_publication, cfg->nshards > 0 ? " on shard " : "",
			cfg->nshards > 0 ? cfg->shards[pub->shard].name : "", msg ? msg : "error");
	} else {
		pub_check pc = { pub, res };
		new_tables(rc->e->qt->cfg, cfg, pub->shard, pub_has, &pc);
		/* the primary's insert position as the statement ran (review 35 R35-2: the
		 * position read before it, a write pointer, may precede an ALTER PUBLICATION
		 * committed meanwhile or not yet flushed): past the ALTER that put a table
		 * there, as the statement saw it; the bumps of this reload fence at least there
		 * (R34-1) */
		shard *sh = &rc->e->sh[pub->shard];
		cs_lsn_t at = lsn;
		if (PQntuples(res) > 0 && PQnfields(res) > 2) {
			cs_lsn_t ins = 0;
			if (cs_lsn_parse(PQgetvalue(res, 0, 2), &ins) && ins > at)
				at = ins;
		}
		if (at > sh->bump_floor)
			sh->bump_floor = at;
	}
	if (--rc->pending == 0)
		rchk_finish(rc);
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

/* The server of shard k to check on: an up replica, else the primary if up; NULL when none
 * is. */
static cs_pgserver *rchk_server(cs_engine *e, int k)
{
	cs_pgserver *primary = NULL;
	for (int i = 0; i < e->nservers; i++) {
		if (e->srv_shard[i] != k || cs_pgserver_state_get(e->servers[i]) != CS_SRV_UP)
			continue;
		if (is_primary(e, e->servers[i]))
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
	if (rc == NULL || (rc->items = calloc((size_t)cfg->nqueries * (size_t)e->nsh + 1,
	                           sizeof *rc->items)) == NULL) {
		free(rc);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc->e = e;
	rc->cfg = cfg;
	rc->done = done;
	rc->priv = priv;
	/* the shards whose publication must carry a table the running config does not
	 * invalidate there */
	if (cfg->inval_enabled && (rc->pubs = calloc((size_t)e->nsh, sizeof *rc->pubs)) == NULL) {
		rchk_free(rc);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int k = 0; cfg->inval_enabled && k < e->nsh; k++) {
		if (new_tables(e->qt->cfg, cfg, k, NULL, NULL) == 0)
			continue;
		rchk_pub *pub = &rc->pubs[rc->npubs++];
		pub->rc = rc;
		pub->shard = k;
		/* the tables whose every change is published: no row filter, and the
		 * publication publishes inserts, updates, deletes and truncates (review 34
		 * R34-2: either lists a table whose changes it does not all carry) */
		pub->def.sql = (char *)"SELECT t.schemaname::text, t.tablename::text, "
				       "pg_current_wal_insert_lsn()::text FROM "
				       "pg_publication_tables t JOIN pg_publication p ON p.pubname = "
				       "t.pubname WHERE t.pubname = $1 AND t.rowfilter IS NULL AND "
				       "p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate";
		snprintf(pub->def.name, sizeof pub->def.name, "publication check");
		pub->def.nparams = 1;
		pub->def.params[0].type = CS_PT_TEXT;
		pub->vals[0] = cfg->inval_publication;
		pub->lens[0] = (int)strlen(cfg->inval_publication);
		pub->fmts[0] = 1; /* text parameters travel in binary: no escaping */
		pub->params = (cs_pg_params){ .n = 1, .values = pub->vals, .lengths = pub->lens,
			.formats = pub->fmts };
	}
	/* each shard's tables are its own: a query is checked on every shard it reads (a
	 * pinned query on its one shard) */
	cs_pgserver *srv[CS_MAX_SHARDS];
	rc->server = "";
	for (int k = 0; k < e->nsh; k++) {
		srv[k] = rchk_server(e, k);
		if (srv[k] == NULL)
			rc->server = "no server";
		else if (rc->server[0] == '\0')
			rc->server = cs_pgserver_name(srv[k]);
	}
	/* The queries whose SQL or parameters are new; unchanged ones prepared before. */
	for (int i = 0; i < cfg->nqueries * e->nsh; i++) {
		const cs_query_def *nd = &cfg->queries[i / e->nsh];
		int k = i % e->nsh;
		if (nd->shard_index >= 0 && nd->shard_index != k)
			continue;
		qstate *old = qtable_find(e->qt, nd->name, strlen(nd->name));
		if (old && query_same(old->def, nd))
			continue;
		rchk_item *it = &rc->items[rc->n];
		it->srv = srv[k];
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
	if (rc->n == 0 && rc->npubs == 0) { /* nothing new to check */
		rchk_finish(rc);
		return 0;
	}
	rc->pending = rc->n + rc->npubs + 1; /* + a guard while submitting */
	uint64_t deadline = cs_now_us() + (uint64_t)e->qt->cfg->request_timeout_ms * 1000u;
	for (int i = 0; i < rc->npubs; i++) {
		rchk_pub *pub = &rc->pubs[i];
		pub->job = (cs_pgjob){ .qindex = -1, .q = &pub->def, .params = &pub->params,
			.deadline_us = deadline, .cb = on_rchk_pub, .priv = pub };
		cs_pgserver *primary = e->sh[pub->shard].primary;
		if (primary == NULL || cs_pgserver_submit(primary, &pub->job) != 0) {
			size_t n = strlen(rc->err);
			snprintf(rc->err + n, sizeof rc->err - n,
				"%s[invalidator] publication \"%s\"%s%s not checked (its primary is not "
				"up): the reload adds invalidate_on tables there; reload again once it is",
				n ? "; " : "", cfg->inval_publication, cfg->nshards > 0 ? " on shard " : "",
				cfg->nshards > 0 ? cfg->shards[pub->shard].name : "");
			rc->pending--;
		}
	}
	for (int i = 0; i < rc->n; i++) {
		rchk_item *it = &rc->items[i];
		it->job = (cs_pgjob){ .qindex = -1, .q = &it->def, .params = &it->params,
			.deadline_us = deadline, .cb = on_rchk, .priv = it };
		if (it->srv == NULL || cs_pgserver_submit(it->srv, &it->job) != 0) {
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

/* Whether shard k has a usable server: a replica (up, in recovery, on the primary's timeline,
 * within the lag bounds: what routing asks of it) when it has replicas, else its primary up.
 * 0 yes, 1 no (why written: the reasons), -1 a server not checked yet (why names it). */
static int shard_usable(const cs_engine *e, int k, char *why, size_t whylen)
{
	bool replica_up = false, primary_up = false, has_replicas = false;
	char reasons[512] = "";
	size_t rl = 0;
	for (int i = 0; i < e->nservers; i++) {
		if (e->srv_shard[i] != k)
			continue;
		cs_pgserver_state st = cs_pgserver_state_get(e->servers[i]);
		if (st == CS_SRV_UNKNOWN) {
			snprintf(why, whylen, "postgres %s not checked yet", cs_pgserver_name(e->servers[i]));
			return -1;
		}
		if (is_primary(e, e->servers[i])) {
			primary_up = st == CS_SRV_UP;
			continue;
		}
		has_replicas = true;
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
	if (has_replicas ? replica_up : primary_up)
		return 0;
	if (has_replicas)
		snprintf(why, whylen, "no replica is usable: %s", reasons);
	else
		snprintf(why, whylen, "the primary is not up");
	return 1;
}

bool cs_engine_healthy(const cs_engine *e, char *why, size_t whylen)
{
	/* Every server checked once, and in every shard a replica up (the primary when the shard
	 * has none): otherwise startup traffic would land on the primary before the replicas
	 * answer. Without [shard] sections the one implicit shard, its messages unchanged;
	 * with them, every shard without a usable server named (SHARDS.md section 5). */
	if (e->nsh == 1) {
		if (shard_usable(e, 0, why, whylen) != 0)
			return false;
	} else {
		char one[600];
		size_t wl = 0;
		for (int k = 0; k < e->nsh; k++) {
			int u = shard_usable(e, k, one, sizeof one);
			if (u < 0) {
				snprintf(why, whylen, "%s", one);
				return false;
			}
			if (u > 0 && wl < whylen) {
				int w = snprintf(why + wl, whylen - wl, "%sshard %s: %s",
				        wl ? "; " : "", e->qt->cfg->shards[k].name, one);
				wl += w > 0 ? (size_t)w : 0;
			}
		}
		if (wl > 0)
			return false;
	}
	if (!cs_rc_ready(e->redis)) {
		snprintf(why, whylen, "redis is not connected (serving from PostgreSQL)");
		return false;
	}
	for (int i = 0; i < e->qt->nq; i++)
		for (int k = 0; k < e->nsh; k++)
			if (!e->qt->qs[i].sg[k].gen_known && !e->qt->qs[i].sg[k].def_foreign &&
			        !e->qt->qs[i].sg[k].unmapped) {
				/* (a query another process's definition owns is served from
				 * PostgreSQL for good here: not a start still loading, R36-11) */
				snprintf(why, whylen,
				        "loading query generations from redis (bypassing the "
				        "cache)");
				return false;
			}
	snprintf(why, whylen, "ok");
	return true;
}
