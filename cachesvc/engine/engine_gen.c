/* engine_gen.c - the engine's query generations: loading, pub/sub, polling and bumps. */
#include "engine_int.h"

/* ---- Generations ------------------------------------------------------------------------ */

typedef struct gensctx {
	cs_engine *e;
	qtable *t;
} gensctx;

/* The generations poll: the epoch (is it this Redis run's, and the one we know?) and every
 * query's generation, read in one script. */
static void on_gens_reply(cs_rc *rc, redisReply *reply, void *priv)
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
		if (e->near && !e->near_untracked && (changed || (e->fence_on && !valid)))
			near_flush(e); /* another Redis run, or data lost */
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

void load_gens(cs_engine *e)
{
	qtable *t = e->qt;
	if (!cs_rc_ready(e->redis) || e->gens_busy)
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
		if (cs_rc_script(e->redis, cs_rc_keyslot(argv[0], lens[0]), CS_SCRIPT_GENS,
		            on_gens_reply, c, (int)n, (int)n, argv, lens) == 0) {
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

void on_gen_message(cs_redis *rd, redisReply *reply, void *priv)
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

void on_pubsub_state(cs_redis *rd, bool up, void *priv)
{
	cs_engine *e = priv;
	near_conn_state(e, true, up);
	if (!up) {
		/* A bump published while we were away would be missed: stop trusting our
		 * generations (requests bypass the cache) until re-subscribed and re-read. */
		for (int i = 0; i < e->qt->nq; i++)
			e->qt->qs[i].gen_known = false;
	}
}

void on_cache_state(cs_redis *rd, bool up, void *priv)
{
	cs_engine *e = priv;
	near_conn_state(e, false, up);
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

void on_gen_timer(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	for (int i = 0; i < e->qt->nq; i++)
		if (e->qt->qs[i].pending_bump && cs_rc_ready(e->redis))
			bump_generation(e, &e->qt->qs[i]);
	load_gens(e);
	near_heartbeat(e);
}
