/* engine_housekeeping.c - the engine's housekeeping: the tick (read-your-writes deadlines),
 * server health notifications and replica lag from the primary's LSN history. */
#include "engine_int.h"

/* ---- Housekeeping ----------------------------------------------------------------------- */

static void history_add(shard *sh, cs_lsn_t lsn)
{
	if (sh->hist_len > 0 &&
	        sh->hist[(sh->hist_head + LSN_HISTORY - 1) % LSN_HISTORY].lsn >= lsn)
		return; /* only the first time the primary is seen past a position matters */
	sh->hist[sh->hist_head] = (lsn_sample){.us = cs_now_us(), .lsn = lsn};
	sh->hist_head = (sh->hist_head + 1) % LSN_HISTORY;
	if (sh->hist_len < LSN_HISTORY)
		sh->hist_len++;
}

/* Milliseconds since shard sh's primary first had WAL beyond `replay`; 0 when caught up. */
static int64_t lag_behind(const shard *sh, cs_lsn_t replay)
{
	uint64_t first = 0;
	for (int i = 1; i <= sh->hist_len; i++) {
		const lsn_sample *smp = &sh->hist[(sh->hist_head + LSN_HISTORY - i) % LSN_HISTORY];
		if (smp->lsn <= replay)
			break;
		first = smp->us;
	}
	return first ? (int64_t)((cs_now_us() - first) / 1000u) : 0;
}

static void ryw_try_replica(cs_engine *e, flight *f, uint64_t now)
{
	if (route_replica(e, &e->sh[f->shard], f->tier, f->min_lsn, &f->tried))
		flight_dispatch(f);
}

static void ryw_expire(cs_engine *e, flight *f, uint64_t now)
{
	if (now >= f->ryw_deadline_us)
		flight_dispatch(f); /* past the wait: the primary */
}

/* The shard whose primary s is, or NULL (a replica). */
static shard *primary_shard(cs_engine *e, const cs_pgserver *s)
{
	for (int k = 0; k < e->nsh; k++)
		if (e->sh[k].primary == s)
			return &e->sh[k];
	return NULL;
}

/* A server's monitor round (or state change). A primary's: its shard's LSN history,
 * timeline, and its replicas' lag and the primary position they are compared with; the
 * shard's parked tokens. A replica's: its lag from its shard's history. Then the
 * read-your-writes waiters, who may be satisfied now. */
void on_server_notify(cs_pgserver *s, void *priv)
{
	cs_engine *e = priv;
	shard *sh = primary_shard(e, s);
	if (sh) {
		if (cs_pgserver_state_get(s) == CS_SRV_UP)
			sh->primary_rounds++;
		if (cs_pgserver_state_get(s) == CS_SRV_UP)
			history_add(sh, cs_pgserver_lsn(s));
		cs_lsn_t lsn = cs_pgserver_lsn(s);
		uint32_t tli = cs_pgserver_timeline(s);
		if (tli > sh->max_tli) {
			if (sh->max_tli) {
				/* a failover: positions of the old timeline past the switch point
				 * never happened on the new one; lag is measured afresh */
				cs_warn("postgres primary: timeline %u (was %u): a failover", tli,
				        sh->max_tli);
				sh->hist_len = 0;
				history_add(sh, lsn);
			}
			sh->max_tli = tli;
		} else if (tli && tli < sh->max_tli && !sh->stale_primary_logged) {
			cs_error("postgres primary: timeline %u, below the %u seen before: a stale "
			         "old "
			         "primary; replicas are still compared with timeline %u, and its "
			         "answers "
			         "are never cached",
			        tli, sh->max_tli, sh->max_tli);
			sh->stale_primary_logged = true;
		}
		/* Lag from the primary's LSN history only while the primary answers: when it is
		 * down, a replica's own estimate (pgpool.c: caught up once it replayed all it
		 * received) is the best there is; the history would age forever. */
		bool primary_up = cs_pgserver_state_get(s) == CS_SRV_UP;
		for (int i = 0; i < e->nservers; i++)
			if (e->servers[i] != s && &e->sh[e->srv_shard[i]] == sh) {
				cs_pgserver_set_primary_lsn(e->servers[i], lsn);
				if (sh->max_tli) /* never lowered by a stale old primary */
					cs_pgserver_set_primary_tli(e->servers[i], sh->max_tli);
				if (primary_up)
					cs_pgserver_set_lag(e->servers[i],
					        lag_behind(sh, cs_pgserver_lsn(e->servers[i])));
			}
	} else {
		const shard *rs = &e->sh[server_shard(e, s)];
		if (rs->primary && rs->hist_len > 0 &&
		        cs_pgserver_state_get(rs->primary) == CS_SRV_UP)
			cs_pgserver_set_lag(s, lag_behind(rs, cs_pgserver_lsn(s)));
	}
	/* Bumps that waited for the primary's position (a start's or reload's definition
	 * bump: bump_generation) go at once, not at the next generations timer: until then
	 * their queries bypass the cache. */
	if (sh && cs_pgserver_lsn(s) > 0 && cs_rc_slot_ready(e->redis, sh->bslot[0])) {
		int k = (int)(sh - e->sh);
		for (int i = 0; i < e->qt->nq; i++)
			if (e->qt->qs[i].sg[k].pending_bump && !e->qt->qs[i].sg[k].bump_inflight)
				bump_generation(e, &e->qt->qs[i], k);
	}
	/* Read-your-writes waiters: a replica may have replayed their token now. */
	ryw_walk(e, ryw_try_replica, 0);
	if (sh && sh->token_head)
		token_recheck(e, sh, cs_now_us(), false);
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
		e->retiring_shard[i] = e->retiring_shard[e->nretiring];
		e->retiring_until_us[i] = e->retiring_until_us[e->nretiring];
		cs_info("postgres %s: %s, freed", cs_pgserver_name(s),
			cs_pgserver_idle(s) ? "drained" : "still busy at the reload's deadline");
		cs_pgserver_free(s);
	}
}

/* The tick runs every TICK_MS while it has work (read-your-writes flights and tokens
 * waiting, retiring servers), and not at all otherwise: a period of its own woke an idle
 * daemon 200 times a second, and a daemon answering misses between their steps. */
void tick_arm(cs_engine *e)
{
	if (e->tick == NULL || evtimer_pending(e->tick, NULL))
		return;
	struct timeval tv = cs_tv_ms(TICK_MS);
	if (evtimer_add(e->tick, &tv) != 0) /* out of memory in libevent's timer heap */
		cs_error("engine: cannot arm the tick: read-your-writes waits and retiring "
			 "servers wait for the next request that arms it");
}

void on_tick(evutil_socket_t fd, short what, void *arg)
{
	cs_engine *e = arg;
	uint64_t now = cs_now_us();
	ryw_walk(e, ryw_expire, now);
	bool tokens = false;
	for (int k = 0; k < e->nsh; k++) {
		if (e->sh[k].token_head)
			token_recheck(e, &e->sh[k], now, true);
		tokens = tokens || e->sh[k].token_head;
	}
	if (e->nretiring)
		reap_retiring(e, now);
	if (e->ryw_head || tokens || e->nretiring)
		tick_arm(e);
}
