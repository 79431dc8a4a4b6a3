/* engine_sampler.c - the engine's verifier sampler: cachesvc-verify's check (verify.h), one
 * entry at a time, on the event loop; with shards, each shard's entries against that shard's
 * primary (SHARDS.md step 6). */
#include <limits.h>

#include "engine_int.h"

/* ---- Verifier sampler ------------------------------------------------------------------- *
 * The protocol of cachesvc-verify (its steps: verify.h), one entry at a time, off the request
 * path, non-blocking on the loop:
 *   1. SCAN a query's current-generation entries (a cursor kept per query walks them all
 *      over time) and GET one: E.
 *   2. Run its query on the primary, then read the primary's LSN L (after: every commit the
 *      query saw ends at or before L).
 *   3. Wait (bounded) until cs:inv:pos >= L: the invalidator has applied every change the
 *      primary's answer includes.
 *   4. GET the entry again: gone or changed means it was invalidated or refilled meanwhile
 *      (skipped). Unchanged and different from the primary's answer: stale, counted in
 *      cachesvc_verify_stale_total and logged.
 * With [shard NAME] sections each sample is one shard's (sm->shard): its entries (the
 * pattern of its keyspace "<ns>@<shard>"), its primary (steps 2) and its invalidator's
 * position (step 3): an LSN of one shard says nothing of another's WAL (SHARDS.md section
 * 1). The ticks go round the queries of shard 0, then of shard 1, ...; each (query, shard)
 * walks its entries with a SCAN cursor of its own (qs->scan_cursor[k]): with one cursor per
 * query taking turns, each shard sampled only the stretches of the walk that fell on its
 * turns, the same ones every walk when its length was a multiple of the shard count (review
 * 31 R31-1), and walking one shard to its end before the next took weeks on a large Redis
 * (review 34 R34-3). A shard whose generation is unknown skips its turn only. The counters
 * (cachesvc_verify_*) stay one series summed over the shards (their names and labels are
 * unchanged unsharded, and a stale entry's log line names its key, whose prefix names the
 * shard); cachesvc-verify reports per shard. */

static void sample_end(cs_engine *e, cs_verify_outcome outcome)
{
	sampler *sm = &e->smp;
	if (outcome == CS_VERIFY_OK)
		sm->ok++;
	else if (outcome == CS_VERIFY_STALE)
		sm->stale++;
	else
		sm->skipped++;
	if (cs_verify_skipped(outcome) && outcome - CS_VERIFY_GONE < CS_VERIFY_SKIPS)
		sm->skipped_by[outcome - CS_VERIFY_GONE]++;
	if (!cs_verify_skipped(outcome))
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

static void on_sample_recheck(cs_rc *rc, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	sampler *sm = &e->smp;
	cs_entry ent;
	char diff[256] = "";
	/* a lost reply is taken as a change (skipped) */
	cs_verify_outcome o = cs_verify_judge(sm->entry, sm->entry_len,
	        reply != NULL && reply->type != REDIS_REPLY_NIL,
	        reply != NULL && reply->type == REDIS_REPLY_STRING, reply ? reply->str : NULL,
	        reply ? (size_t)reply->len : 0, sm->fresh, sm->fresh_len,
	        cs_verify_sql_ordered(sm->qs->def->sql), &ent, diff, sizeof diff);
	if (o == CS_VERIFY_STALE) {
		char a[CS_LSN_STRLEN];
		cs_warn("verifier: STALE entry %.*s (data LSN %s, %lld ms old): %s",
		        (int)sm->keylen, sm->key, cs_lsn_format(ent.lsn, a),
		        (long long)(cs_wall_ms() - ent.filled_ms), diff);
	}
	sample_end(e, o);
}

static void on_sample_pos(cs_rc *rc, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	sampler *sm = &e->smp;
	uint64_t pos = 0;
	if (reply && reply->type == REDIS_REPLY_STRING)
		(void)cs_lsn_unhex(reply->str, (size_t)reply->len, &pos);
	cs_verify_wait w = reply == NULL ? CS_VERIFY_BEHIND
	                                 : cs_verify_wait_step(pos, sm->lsn_after, cs_now_us(),
	                                           sm->wait_until_us, NULL);
	if (w == CS_VERIFY_PASSED) {
		const char *argv[] = {"GET", sm->key};
		size_t lens[] = {3, sm->keylen};
		if (cs_rc_cmd(e->redis, cs_rc_keyslot(sm->key, sm->keylen), on_sample_recheck, e, 2,
		            argv, lens) != 0)
			sample_end(e, CS_VERIFY_CHANGED);
		return;
	}
	if (w == CS_VERIFY_BEHIND) {
		sample_end(e, CS_VERIFY_INV_BEHIND); /* the invalidator is behind (or absent) */
		return;
	}
	struct timeval tv = cs_tv_ms(50);
	evtimer_add(sm->poll, &tv);
}

static void on_sample_poll(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	const shard *sh = &e->sh[e->smp.shard];
	const char *argv[] = {"GET", sh->ks.pos};
	if (cs_rc_cmd(e->redis, cs_rc_keyslot(sh->ks.pos, sh->ks.pos_len), on_sample_pos, e, 2,
	            argv, NULL) != 0)
		sample_end(e, CS_VERIFY_INV_BEHIND);
}

/* Runs one of the sampler's statements on the primary (5 s deadline). */
static void sample_submit(cs_engine *e, cs_pgjob *job, int qindex, const cs_query_def *q,
        const cs_pg_params *params, cs_pgjob_cb *cb)
{
	*job = (cs_pgjob){.qindex = qindex,
	        .q = q,
	        .params = params,
	        .deadline_us = cs_now_us() + 5000000u,
	        .cb = cb,
	        .priv = e};
	const shard *sh = &e->sh[e->smp.shard];
	if (sh->primary == NULL || cs_pgserver_submit(sh->primary, job) != 0)
		sample_end(e, CS_VERIFY_QUERY);
}

static void on_sample_lsn(
        cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg, bool retryable)
{
	cs_engine *e = job->priv;
	sampler *sm = &e->smp;
	if (err != 0 || res == NULL || PQntuples(res) != 1 ||
	        !cs_lsn_parse(PQgetvalue(res, 0, 0), &sm->lsn_after)) {
		sample_end(e, CS_VERIFY_QUERY);
		return;
	}
	sm->wait_until_us = cs_now_us() + 5000000u;
	on_sample_poll(-1, 0, e);
}

static void on_sample_query(
        cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg, bool retryable)
{
	cs_engine *e = job->priv;
	sampler *sm = &e->smp;
	cs_buf b;
	cs_buf_init(&b, MAX_REPLY);
	char emsg[128];
	if (err != 0 || res == NULL || cs_encode_result(res, &b, emsg, sizeof emsg) != 0) {
		cs_buf_free(&b);
		sample_end(e, CS_VERIFY_QUERY);
		return;
	}
	sm->fresh = b.data; /* ownership moves to the sampler */
	sm->fresh_len = b.len;
	sample_submit(e, &sm->lsn_job, -1, &sm->lsn_q, &sm->no_params, on_sample_lsn);
}

static void on_sample_get(cs_rc *rc, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	sampler *sm = &e->smp;
	cs_entry ent;
	cs_verify_outcome o = reply == NULL ? CS_VERIFY_GONE
	                                    : cs_verify_first(reply->type != REDIS_REPLY_NIL,
	                                              reply->type == REDIS_REPLY_STRING, reply->str,
	                                              (size_t)reply->len, &ent);
	if (o != CS_VERIFY_OK) {
		sample_end(e, o);
		return;
	}
	sm->entry = malloc((size_t)reply->len);
	if (sm->entry == NULL) {
		sample_end(e, CS_VERIFY_QUERY);
		return;
	}
	memcpy(sm->entry, reply->str, (size_t)reply->len);
	sm->entry_len = (size_t)reply->len;
	/* the key's canonical parameters, back to values, to PostgreSQL parameters */
	char err[256];
	const cs_query_def *q = sm->qs->def;
	if (sm->keylen < sm->prefix_len ||
	        (sm->pgp = cs_verify_key_params(q, sm->key + sm->prefix_len,
	                 sm->keylen - sm->prefix_len, err, sizeof err)) == NULL) {
		sample_end(e, CS_VERIFY_BAD_KEY);
		return;
	}
	sample_submit(e, &sm->job, sm->qs->index, q, sm->pgp, on_sample_query);
}

static void on_sample_scan(cs_rc *rc, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	sampler *sm = &e->smp;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	        reply->element[0]->type != REDIS_REPLY_STRING ||
	        reply->element[1]->type != REDIS_REPLY_ARRAY) {
		sample_end(e, CS_VERIFY_GONE);
		return;
	}
	const shard *sh = &e->sh[sm->shard];
	unsigned long long *cursor = &sm->qs->scan_cursor[sm->shard];
	*cursor = strtoull(reply->element[0]->str, NULL, 10);
	redisReply *keys = reply->element[1];
	if (*cursor == 0 && sh->ks.cluster) /* that node done: another one next */
		sm->qs->scan_slot[sm->shard] = sh->bslot[cs_rand64() % CS_KS_BUCKETS];
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
		sample_end(e, CS_VERIFY_BAD_KEY);
		return;
	}
	memcpy(sm->key, k->str, (size_t)k->len);
	sm->keylen = (size_t)k->len;
	if (sh->ks.cluster) { /* the prefix's length depends on the key's bucket */
		char pre[CS_NAME_MAX + CS_MAX_NAME + 24];
		sm->prefix_len = cs_ks_entry_prefix(&sh->ks, key_bucket(sh, sm->key, sm->keylen),
		        pre, sizeof pre, sm->qs->def->name, sm->qs->sg[sm->shard].gen);
	}
	const char *argv[] = {"GET", sm->key};
	size_t lens[] = {3, sm->keylen};
	if (cs_rc_cmd(e->redis, cs_rc_keyslot(sm->key, sm->keylen), on_sample_get, e, 2, argv,
	            lens) != 0)
		sample_end(e, CS_VERIFY_GONE);
}

static void on_sample_timer(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	sampler *sm = &e->smp;
	qtable *t = e->qt;
	if (sm->busy || t->nq == 0 || !cs_rc_ready(e->redis))
		return;
	/* ticks 0..nq-1 sample shard 0's queries, the next nq shard 1's, ... (unsharded:
	 * always shard 0, as before) */
	unsigned tick = (unsigned)sm->qnext;
	sm->qnext = sm->qnext == INT_MAX ? 0 : sm->qnext + 1; /* never negative, never overflows */
	int k = e->nsh > 1 ? (int)((tick / (unsigned)t->nq) % (unsigned)e->nsh) : 0;
	qstate *qs = &t->qs[tick % (unsigned)t->nq];
	const shard *sh = &e->sh[k];
	if (sh->primary == NULL || !qs->sg[k].gen_known)
		return;
	if (e->nsh > 1 && qs->def->shard_index >= 0 && qs->def->shard_index != k)
		return; /* pinned to another shard: nothing of it under this prefix */
	char pattern[CS_NAME_MAX + CS_MAX_NAME + 24], cursor[24];
	int pl;
	if (sh->ks.cluster) /* every bucket's entries of the query: "{<ns>:*}:e:<q>:<g>:*" */
		pl = snprintf(pattern, sizeof pattern - 1, "{%s:*}:e:%s:%llu:", sh->ks.ns,
		        qs->def->name, (unsigned long long)qs->sg[k].gen);
	else
		pl = (int)cs_ks_entry_prefix(
		        &sh->ks, 0, pattern, sizeof pattern - 1, qs->def->name, qs->sg[k].gen);
	if (pl <= 0 || (size_t)pl >= sizeof pattern - 1)
		return;
	sm->prefix_len = (size_t)pl;
	pattern[pl++] = '*';
	pattern[pl] = '\0';
	int cl = snprintf(cursor, sizeof cursor, "%llu", qs->scan_cursor[k]);
	const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "50"};
	size_t lens[] = {4, (size_t)cl, 5, (size_t)pl, 5, 2};
	sm->busy = true;
	sm->qt = t;
	t->refs++;
	sm->qs = qs;
	sm->shard = (uint16_t)k;
	/* a SCAN walks one node: on a cluster the node of the query's scan_slot, which moves
	 * to a random bucket's node each time a walk ends (cursor 0) */
	if (cs_rc_cmd(e->redis, qs->scan_slot[k], on_sample_scan, e, 6, argv, lens) != 0) {
		qtable_unref(sm->qt);
		sm->qt = NULL;
		sm->busy = false;
	}
}

int sampler_start(cs_engine *e, int64_t interval_ms)
{
	sampler *sm = &e->smp;
	sm->lsn_q.sql = (char *)CS_VERIFY_LSN_SQL;
	sm->no_params = (cs_pg_params){.n = 0};
	sm->timer = event_new(e->base, -1, EV_PERSIST, on_sample_timer, e);
	sm->poll = evtimer_new(e->base, on_sample_poll, e);
	if (sm->timer == NULL || sm->poll == NULL)
		return -1;
	struct timeval tv = cs_tv_ms(interval_ms);
	return event_add(sm->timer, &tv);
}

void sampler_stop(cs_engine *e)
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
