/* engine_near.c - keeping the near cache (near.h) coherent with Redis.
 *
 * Redis's server-assisted client-side caching, default (tracking) mode, redirected:
 * `CLIENT TRACKING on REDIRECT <id>` on the data connection, where <id> is the pub/sub
 * connection's CLIENT ID, subscribed to __redis__:invalidate (RESP2, as hiredis 0.14
 * speaks). Redis then remembers every key the data connection reads and, when one changes
 * (DEL by the invalidator, a fill, expiry, eviction, FLUSHALL), sends its name once on the
 * pub/sub connection. Default mode rather than BCAST on the entry prefix: BCAST would send
 * every process every change of every entry (each fill included), while default mode
 * sends a process only the keys it read, which is the near cache's working set; the cost
 * is Redis's tracking table (bounded by tracking-table-max-keys, whose evictions are sent
 * as invalidations, so a bound is safe).
 *
 * OPTIN mode: Redis tracks only the reads that follow CLIENT CACHING yes, i.e. the near
 * cache's GETs and MGETs, not the fence, generation, position and lease keys every fill
 * and poll reads (they would cost a message per fence write and fill the tracking table).
 *
 * The near cache is on only while this is proven (near.h rule 3):
 *  - CLIENT TRACKING names the pub/sub connection's current id, sent after that connection
 *    confirmed its subscription; its OK is not proof (after a restart of Redis a half-open
 *    pub/sub connection's old id may name another client): the near cache turns on when a
 *    heartbeat of this tracking session (below) comes back through the subscription. GETs
 *    sent after that are tracked (one connection, in order);
 *  - disabled (everything dropped) when either connection drops: a new data connection is
 *    not tracked, and invalidations sent to a closed pub/sub connection are lost;
 *  - flushed when Redis says FLUSHALL/FLUSHDB (a nil message) and when the epoch check
 *    finds Redis lost data or changed run (engine_gen.c);
 *  - a heartbeat proves the whole path every GEN_POLL_MS: the data connection reads a key of
 *    this session's (<ns>:nhb:<id>:<session>) and writes it; the write's invalidation must
 *    come back on the pub/sub connection within NEAR_ECHO_MS, else (a redirect broken any
 *    other way: a half-open socket, CLIENT KILL seen late, CLIENT PAUSE) the near cache is
 *    dropped and the pub/sub connection made again. A near hit may thus be stale for up to
 *    GEN_POLL_MS + NEAR_ECHO_MS when the tracking connection dies silently;
 *  - SWAPDB sends no tracking message: the epoch check (GEN_POLL_MS) catches it.
 *
 * Staleness: the invalidator (when this process runs it) tells the engine the commit time of
 * every key it sends (cs_inv_set_key_hook); when a tracking message drops a held entry, the
 * time since that commit is the entry's staleness (cachesvc_near_staleness_seconds). */
#include "engine_int.h"

#define TRACK_CHANNEL "__redis__:invalidate"
#define NEAR_ECHO_MS  3000 /* heartbeat echo bound (at least 3 x the Redis timeout) */
#define NEAR_WARN_US  (60u * 1000u * 1000u) /* repeated warnings: at most one a minute */

#define NEAR_RECLAIM_BUDGET 4096 /* flushed nodes freed per loop pass (~0.1-0.3 ms) */

/* Frees a flushed near cache a budget per loop pass (near.h cs_near_reclaim). */
static void on_near_reclaim(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	cs_engine *e = arg;
	/* a zero timeout, not event_active: libevent 2.1 runs an event activated from its own
	 * callback again in the same pass, so the whole flush would be freed before any I/O */
	static const struct timeval zero = { 0, 0 };
	if (cs_near_reclaim(e->near, NEAR_RECLAIM_BUDGET))
		evtimer_add(e->near_reclaim, &zero);
}

static void near_reclaim_kick(cs_engine *e)
{
	static const struct timeval zero = { 0, 0 };
	if (cs_near_get_stats(e->near)->garbage && !evtimer_pending(e->near_reclaim, NULL))
		evtimer_add(e->near_reclaim, &zero);
}

void near_flush(cs_engine *e)
{
	cs_near_flush(e->near);
	near_reclaim_kick(e);
}

static void near_off(cs_engine *e, const char *why)
{
	if (cs_near_on(e->near))
		cs_warn("near cache: off, flushed (%s)", why);
	cs_near_disable(e->near);
	near_reclaim_kick(e);
	e->near_tracked = false;
	e->near_hb_sent_us = 0;
}

static size_t hb_key(const cs_engine *e, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s:nhb:%lld:%llu", e->ks.ns, (long long)e->near_redirect,
		(unsigned long long)e->near_track_seq);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void on_hb_set(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_ERROR)
		return; /* no reply: the connection dropped, near_conn_state turned it off */
	/* the write failed (-OOM under noeviction, an ACL): no echo will come this round */
	e->near_hb_sent_us = 0;
	e->stats.near_hb_failed++;
	uint64_t now = cs_now_us();
	if (now - e->near_warned_us > NEAR_WARN_US) {
		e->near_warned_us = now;
		cs_warn("near cache: heartbeat write refused (%s): coherence cannot be proven while "
			"it fails", reply->str);
	}
}

/* A tracked read of this session's heartbeat key, then a write of it: its invalidation must
 * come back on the pub/sub connection (on_tracking_message). */
static void hb_send(cs_engine *e)
{
	char key[CS_NAME_MAX];
	size_t kl = hb_key(e, key, sizeof key);
	const char *cy[] = { "CLIENT", "CACHING", "yes" };
	size_t cyl[] = { 6, 7, 3 };
	const char *get[] = { "GET", key };
	size_t getl[] = { 3, kl };
	const char *set[] = { "SET", key, "1", "PX", "60000" };
	size_t setl[] = { 3, kl, 1, 2, 5 };
	cs_redis *rd = cache_conn(e); /* the tracked connection itself */
	if (kl && cs_redis_cmd(rd, NULL, NULL, 3, cy, cyl) == 0 &&
	        cs_redis_cmd(rd, NULL, NULL, 2, get, getl) == 0 &&
	        cs_redis_cmd(rd, on_hb_set, e, 5, set, setl) == 0)
		e->near_hb_sent_us = cs_now_us();
}

static void on_tracking_on(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	e->near_track_busy = false;
	if (reply == NULL)
		return; /* the data connection dropped: on_cache_state turns tracking on again */
	if (reply->type != REDIS_REPLY_STATUS) {
		const char *msg = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
		e->stats.near_track_refused++;
		uint64_t now = cs_now_us();
		if (now - e->near_warned_us > NEAR_WARN_US) {
			e->near_warned_us = now;
			cs_warn("near cache: CLIENT TRACKING refused: %s", msg);
		}
		/* the redirect target is not there (another Redis run, a half-open connection):
		 * a new pub/sub connection gets a new id */
		if (strstr(msg, "does not exist") && cs_redis_client_id(e->pubsub) == e->near_redirect)
			cs_redis_reconnect(e->pubsub, "near cache: its id is unknown to Redis");
		return; /* retried by the heartbeat timer */
	}
	if (!e->near_subscribed || cs_redis_client_id(e->pubsub) != e->near_redirect)
		return; /* the pub/sub connection changed meanwhile: ask again */
	/* Tracking is on, not yet proven: the redirect may name a client that is not our
	 * subscriber (an id of another Redis run). On only when this session's heartbeat
	 * comes back through the subscription. */
	e->near_tracked = true;
	e->near_track_seq++;
	hb_send(e);
}

/* Turns tracking on when both connections are ready and the subscription is confirmed.
 * OPTIN: Redis tracks only the reads that follow CLIENT CACHING yes (the near cache's), not
 * the fences, generations and positions every fill and poll reads. */
void near_track_start(cs_engine *e)
{
	if (e->near == NULL || e->near_untracked || e->near_tracked || e->near_track_busy ||
		!e->near_subscribed)
		return;
	int64_t id = cs_redis_client_id(e->pubsub);
	if (id <= 0 || !cs_redis_ready(cache_conn(e)))
		return;
	char ids[24];
	int il = snprintf(ids, sizeof ids, "%lld", (long long)id);
	const char *argv[] = { "CLIENT", "TRACKING", "on", "REDIRECT", ids, "OPTIN" };
	size_t lens[] = { 6, 8, 2, 8, (size_t)il, 5 };
	if (cs_redis_cmd(cache_conn(e), on_tracking_on, e, 6, argv, lens) == 0) {
		e->near_track_busy = true;
		e->near_redirect = id;
	}
}

/* Before a watched read: Redis is to track the next command's keys (OPTIN). false when it
 * could not be sent: the read will not be tracked, so its reply must not be stored. `slot`:
 * the read's, so that both go to the same connection. */
bool near_caching_yes(cs_engine *e, uint16_t slot)
{
	const char *argv[] = { "CLIENT", "CACHING", "yes" };
	size_t lens[] = { 6, 7, 3 };
	return cs_rc_cmd(e->redis, slot, NULL, NULL, 3, argv, lens) == 0;
}

/* On the generations timer: turn tracking on, or prove it is still on. An echo overdue
 * means invalidations may not be arriving: off, and a new pub/sub connection (a half-open
 * one would never say so itself). */
void near_heartbeat(cs_engine *e)
{
	if (e->near == NULL || e->near_untracked)
		return;
	if (!e->near_tracked) {
		near_track_start(e);
		return;
	}
	if (e->near_hb_sent_us) {
		if (cs_now_us() - e->near_hb_sent_us > (uint64_t)NEAR_ECHO_MS * 1000u) {
			e->stats.near_echo_lost++;
			near_off(e, "no tracking echo from Redis in time");
			cs_redis_reconnect(e->pubsub, "near cache: no tracking echo");
		}
		return;
	}
	hb_send(e);
}

/* ---- Staleness: commit times of the keys this process's invalidator sent ------------- */

static uint64_t commit_hash(const char *q, size_t ql, const char *canon, size_t cl)
{
	uint64_t h = cs_fnv1a64(CS_FNV1A64_INIT, q, ql);
	h = cs_fnv1a64(h, "", 1);
	return cs_fnv1a64(h, canon, cl) | 1; /* 0 marks an empty slot */
}

static void on_inv_key(void *priv, const char *query, const char *canon, size_t canon_len,
	int64_t commit_unix_us)
{
	cs_engine *e = priv;
	uint64_t h = commit_hash(query, strlen(query), canon, canon_len);
	near_commit *c = &e->near_commits[h % NEAR_COMMITS];
	c->hash = h;
	c->commit_unix_us = commit_unix_us;
}

/* A tracking message dropped the held entry `key` ("<ns>:e:<q>:<g>:<p>"): its staleness is
 * the time since the commit that invalidated it, when this process's invalidator sent it. */
static void record_staleness(cs_engine *e, const char *key, size_t len)
{
	size_t pre = e->ks.nslen + 3; /* "<ns>:e:" */
	if (len <= pre || memcmp(key + e->ks.nslen, ":e:", 3) != 0)
		return;
	const char *q = key + pre, *end = key + len;
	const char *qe = memchr(q, ':', (size_t)(end - q));
	const char *ge = qe ? memchr(qe + 1, ':', (size_t)(end - qe - 1)) : NULL;
	if (ge == NULL)
		return;
	uint64_t h = commit_hash(q, (size_t)(qe - q), ge + 1, (size_t)(end - ge - 1));
	near_commit *c = &e->near_commits[h % NEAR_COMMITS];
	if (c->hash != h)
		return;
	int64_t now = cs_wall_us();
	cs_hist_record(&e->near_stale_us,
		now > c->commit_unix_us ? (uint64_t)(now - c->commit_unix_us) : 0);
	c->hash = 0; /* one sample per commit and key */
}

/* Every message of the tracking subscription. */
void on_tracking_message(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	if (reply == NULL) {
		e->near_subscribed = false;
		near_off(e, "tracking connection lost");
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
		reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		e->near_subscribed = true;
		near_track_start(e);
		return;
	}
	if (strcmp(reply->element[0]->str, "message") != 0)
		return;
	redisReply *m = reply->element[2];
	if (m->type != REDIS_REPLY_ARRAY) {
		/* nil: FLUSHALL or FLUSHDB (of any database) - every tracked key may be gone */
		if (cs_near_get_stats(e->near)->entries)
			cs_info("near cache: flushed (Redis ran FLUSHALL or FLUSHDB)");
		near_flush(e);
		return;
	}
	char hb[CS_NAME_MAX];
	size_t hbl = e->near_tracked ? hb_key(e, hb, sizeof hb) : 0;
	for (size_t i = 0; i < m->elements; i++) {
		const redisReply *k = m->element[i];
		if (k->type != REDIS_REPLY_STRING)
			continue;
		if ((size_t)k->len == hbl && memcmp(k->str, hb, hbl) == 0) {
			/* this session's echo: the path is proven */
			e->near_hb_sent_us = 0;
			if (e->near_tracked && !cs_near_on(e->near)) {
				cs_near_enable(e->near);
				cs_info("near cache: on (invalidations redirected to client %lld, "
					"heartbeat echoed)", (long long)e->near_redirect);
			}
			continue;
		}
		if (cs_near_invalidate(e->near, k->str, (size_t)k->len))
			record_staleness(e, k->str, (size_t)k->len);
	}
}

/* Called by engine_gen.c when a connection changes state. */
void near_conn_state(cs_engine *e, bool pubsub, bool up)
{
	if (e->near == NULL || e->near_untracked)
		return;
	if (up) {
		near_track_start(e);
		return;
	}
	if (pubsub)
		e->near_subscribed = false;
	near_off(e, pubsub ? "tracking connection lost" : "data connection lost");
}

/* Creates the near cache when configured: the pub/sub connection must have been made with
 * client_id = true. 0, or -1 with a message. */
int near_setup(cs_engine *e, const cs_config *cfg, char *err, size_t errlen)
{
	if (cfg->near_cache_size == 0)
		return 0;
	cs_hist_init(&e->near_stale_us);
	e->near = cs_near_new((size_t)cfg->near_cache_size);
	e->near_reclaim = evtimer_new(e->base, on_near_reclaim, e);
	if (e->near == NULL || e->near_reclaim == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!cfg->near_cache_tracking) {
		/* the negative control: on, and nothing ever invalidates it */
		cs_warn("near cache: near_cache_tracking = false: entries are NOT kept coherent");
		e->near_untracked = true;
		cs_near_enable(e->near);
		return 0;
	}
	if (cs_redis_subscribe(e->pubsub, TRACK_CHANNEL, on_tracking_message, e) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (e->inv)
		cs_inv_set_key_hook(e->inv, on_inv_key, e);
	return 0;
}
