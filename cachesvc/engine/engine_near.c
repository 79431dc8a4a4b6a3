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
 *    GEN_POLL_MS + NEAR_ECHO_MS when the tracking connection dies silently. And the
 *    proof ages: with no echo for GEN_POLL_MS + NEAR_ECHO_MS (heartbeats refused: -OOM,
 *    -LOADING, -READONLY; or not sent) the near cache is off and flushed, tracking is
 *    asked again and the next echo turns it on (review 13 L4, as review12 N2 on a cluster);
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
	e->near_echo_us = 0;
}

static size_t hb_key(const cs_engine *e, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s:nhb:%lld:%llu", e->sh[0].ks.ns, (long long)e->near_redirect,
	        (unsigned long long)e->near_track_seq);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void on_hb_set(cs_redis *rd, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_ERROR)
		return; /* no reply: the connection dropped, near_conn_state turned it off */
	/* the write failed (-OOM under noeviction, -READONLY, an ACL): no echo will come this
	 * round, and the proof ages out in near_heartbeat unless one comes (review 13 L4) */
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
static bool cl_caching_yes(cs_engine *e, uint16_t slot);

bool near_caching_yes(cs_engine *e, uint16_t slot)
{
	if (e->sh[0].ks.cluster)
		return cl_caching_yes(e, slot);
	const char *argv[] = { "CLIENT", "CACHING", "yes" };
	size_t lens[] = { 6, 7, 3 };
	return cs_rc_cmd(e->redis, slot, NULL, NULL, 3, argv, lens) == 0;
}

/* On the generations timer: turn tracking on, or prove it is still on. An echo overdue
 * means invalidations may not be arriving: off, and a new pub/sub connection (a half-open
 * one would never say so itself). */
static void cl_heartbeat(cs_engine *e);

void near_heartbeat(cs_engine *e)
{
	if (e->sh[0].ks.cluster) {
		cl_heartbeat(e);
		return;
	}
	if (e->near == NULL || e->near_untracked)
		return;
	if (!e->near_tracked) {
		near_track_start(e);
		return;
	}
	uint64_t now = cs_now_us();
	if (e->near_hb_sent_us && now - e->near_hb_sent_us > (uint64_t)NEAR_ECHO_MS * 1000u) {
		e->stats.near_echo_lost++;
		near_off(e, "no tracking echo from Redis in time");
		cs_redis_reconnect(e->pubsub, "near cache: no tracking echo");
		return;
	}
	/* the proof must be renewed: no echo for a poll and an echo bound, whatever the reason
	 * (heartbeats refused: -OOM, -LOADING, -READONLY), turns the near cache off, as on a
	 * cluster (review12 N2, review 13 L4). The pub/sub connection is kept (it did not
	 * fail): tracking is asked again next tick, under a new heartbeat key, and the first
	 * echo turns the near cache on again */
	if (cs_near_on(e->near) &&
		(e->near_echo_us == 0 ||
			now - e->near_echo_us > (uint64_t)(GEN_POLL_MS + NEAR_ECHO_MS) * 1000u)) {
		e->stats.near_echo_lost++;
		near_off(e, "no heartbeat echo lately (heartbeats refused or unanswered)");
		return;
	}
	if (e->near_hb_sent_us == 0)
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

/* A tracking message dropped the held entry `key` ("<ns>:e:<q>:<g>:<p>", <ns> its shard's,
 * SHARDS.md section 2): its staleness is the time since the commit that invalidated it, when
 * this process's invalidator sent it. */
static void record_staleness(cs_engine *e, const char *key, size_t len)
{
	size_t pre = 0;
	for (int k = 0; k < e->nsh && pre == 0; k++) {
		const cs_keyspace *ks = &e->sh[k].ks;
		if (len > ks->nslen + 3 && memcmp(key, ks->ns, ks->nslen) == 0 &&
		        memcmp(key + ks->nslen, ":e:", 3) == 0)
			pre = ks->nslen + 3; /* "<ns>:e:" */
	}
	if (pre == 0)
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
			e->near_echo_us = cs_now_us();
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
static void cl_conn_state(cs_engine *e, cs_redis *rd, bool up);

void near_conn_state(cs_engine *e, cs_redis *rd, bool pubsub, bool up)
{
	if (e->sh[0].ks.cluster && !pubsub) {
		cl_conn_state(e, rd, up);
		return;
	}
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
static int hbk_table(cs_engine *e);

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
	e->near_map_refresh = cfg->redis_cluster_near_refresh;
	if (e->sh[0].ks.cluster && cfg->redis_cluster_near_untracked_node &&
	        cfg->redis_cluster_near_untracked_node[0]) {
		snprintf(e->near_untracked_node, sizeof e->near_untracked_node, "%s",
		        cfg->redis_cluster_near_untracked_node);
		cs_warn("near cache: cluster_near_untracked_node = %s: its reads are stored "
		        "untracked, NOT kept coherent (a test's negative control)",
		        e->near_untracked_node);
	}
	/* on a cluster: the heartbeat keys' table, made now rather than on the loop (review 13
	 * L3: psn_setup runs before this, with no near cache yet) */
	if (e->sh[0].ks.cluster && hbk_table(e) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* on a cluster every master's pub/sub connection subscribed already (psn_new) */
	if (!e->sh[0].ks.cluster &&
	        cs_redis_subscribe(e->pubsub, TRACK_CHANNEL, on_tracking_message, e) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int k = 0; k < e->nsh; k++)
		near_inv_hook(e, e->sh[k].inv);
	return 0;
}

void near_inv_hook(cs_engine *e, cs_inv *inv)
{
	if (inv && e->near && !e->near_untracked)
		cs_inv_set_key_hook(inv, on_inv_key, e);
}

/* ---- On a cluster (CLUSTER.md section 7, E1 and E2) ------------------------------------
 *
 * Redis tracks per node: a master remembers the keys read on its own connections and can
 * redirect their invalidations only to a client connected to it. So every master of the
 * slot map gets a pub/sub connection of its own (psnode), subscribed to the generations
 * channel (a PUBLISH reaches every node's subscribers: each process hears every bump through
 * every master, so no single node's pub/sub is needed - review R6; duplicates are harmless,
 * a generation only rises) and, with a tracked near cache, to __redis__:invalidate; that
 * master's data connection (cs_rc's) is tracked with CLIENT TRACKING on REDIRECT <its id>
 * OPTIN. The proof is the single Redis's, per node, and the near cache is on only while it
 * holds for every master at once:
 *  - each master's tracking is proven by a heartbeat of its own: a key tagged {<ns>:n<k>}
 *    with k chosen so its slot is served by that master, read tracked and written on the
 *    master's data connection, whose invalidation must come back on that master's pub/sub
 *    connection within NEAR_ECHO_MS;
 *  - any master's data or pub/sub connection dropping, a missing echo, a refused CLIENT
 *    CACHING, or the set of masters changing turns the near cache off and flushes it; it
 *    turns on again once every master (of the new set) echoed a heartbeat sent after that;
 *  - any change of the slot map's owners flushes it (kept on): the entries read from a slot's
 *    old owner are dropped even where no invalidation came (a slot handed over without
 *    MIGRATE). A MIGRATE deletes the key on the source, which sends the invalidation itself;
 *  - E1: CLIENT CACHING yes is sent just before each watched GET or MGET part, to the same
 *    slot, hence pipelined on the same connection. When cs_rc had to send the read again
 *    (MOVED, ASK, TRYAGAIN, LOADING: cs_rc_resent), the send that answered was not preceded
 *    by it, or went to another node: the reply is served but not stored (near_resent). */

static void psn_hold(psnode *n)
{
	n->refs++;
}

/* A data connection's callback with n as priv returned: false when n is dead (ignore). */
static bool psn_drop(psnode *n)
{
	n->refs--;
	return !n->dead;
}

/* The near cache is off and flushed; every master must prove its tracking again. */
static void cl_off(cs_engine *e, const char *why)
{
	if (e->near == NULL || e->near_untracked)
		return;
	near_off(e, why);
	for (int i = 0; i < e->npsn; i++) {
		psnode *n = e->psn[i];
		n->proven = false;
		n->hb_sent_us = 0;
		n->echo_us = 0;
		n->seq++; /* an echo of an older heartbeat proves nothing now */
	}
}

/* The slot map's owners, hashed (cs_rc's node indices; a change of the node set is seen by
 * psn_on_nodes). */
static uint64_t map_sum(const cs_engine *e)
{
	uint64_t h = CS_FNV1A64_INIT;
	for (int s = 0; s < CS_RC_SLOTS; s++) {
		int16_t o = (int16_t)cs_rc_slot_node(e->redis, (uint16_t)s);
		h = cs_fnv1a64(h, &o, sizeof o);
	}
	return h;
}

static bool psn_slot(cs_engine *e, const psnode *n, uint16_t *slot);

/* A master's tracking proof, as good as its age: tracked, proven, and echoed within a poll
 * and an echo bound. The one rule for turning on, keeping on, and tracking a read (review 17
 * R17-1/2: a proof checked without its age let a master whose heartbeats stopped, refused or
 * unsent while it served no slot, have reads stored for up to a tick). */
static bool psn_fresh(const psnode *n, uint64_t now)
{
	return n->tracked && n->proven && n->echo_us != 0 &&
		now - n->echo_us <= (uint64_t)(GEN_POLL_MS + NEAR_ECHO_MS) * 1000u;
}

/* On once every master serving slots has a fresh proof. */
static void cl_maybe_on(cs_engine *e)
{
	if (e->near == NULL || e->near_untracked || cs_near_on(e->near) || e->npsn == 0 ||
		e->npsn != cs_rc_nnodes(e->redis) || !cs_rc_ready(e->redis))
		return;
	uint16_t slot;
	uint64_t now = cs_now_us();
	for (int i = 0; i < e->npsn; i++)
		if (!psn_fresh(e->psn[i], now) && psn_slot(e, e->psn[i], &slot))
			return; /* a master serving no slot holds no entry: its proof is not needed */
	e->near_map_sum = map_sum(e);
	cs_near_enable(e->near);
	cs_info("near cache: on (tracking of all %d masters proven by their heartbeats)", e->npsn);
}

static int psn_index(const cs_engine *e, const psnode *n)
{
	for (int i = 0; i < cs_rc_nnodes(e->redis); i++)
		if (cs_rc_node(e->redis, i) == n->data)
			return i;
	return -1;
}

/* For every slot a k whose heartbeat tag {<ns>:n<k>} hashes to it, found once (review12
 * N1: a search per heartbeat ran 2^18 CRC16s on every tick for a master serving no slot).
 * About 170,000 CRC16s of short strings at start (a few ms); -1 on out of memory. */
static int hbk_table(cs_engine *e)
{
	if (e->hbk_of_slot)
		return 0;
	uint32_t *t = malloc(CS_RC_SLOTS * sizeof *t);
	if (t == NULL)
		return -1;
	memset(t, 0xff, CS_RC_SLOTS * sizeof *t);
	int left = CS_RC_SLOTS;
	for (uint32_t k = 0; left > 0 && k < (1u << 24); k++) {
		char tag[CS_KS_NS_MAX + 16];
		int tl = snprintf(tag, sizeof tag, "%s:n%u", e->sh[0].ks.ns, k);
		if (tl <= 0 || (size_t)tl >= sizeof tag)
			break;
		uint16_t s = cs_rc_keyslot(tag, (size_t)tl);
		if (t[s] == UINT32_MAX) {
			t[s] = k;
			left--;
		}
	}
	e->hbk_of_slot = t;
	return 0;
}

/* Whether master n serves a slot now, and one of them: its highest (review 13 L2: the
 * lowest, used before, is the first a reshard moves (redis-cli takes a source's slots in
 * ascending order), so a draining master's heartbeat was refused (ASK, then MOVED) slot after
 * slot and the near cache stayed off for the whole drain; its highest moves last). Each
 * node's highest slot comes from one pass over the slot table per map version (review 13
 * L6: a scan per master, several times per tick). */
static bool psn_slot(cs_engine *e, const psnode *n, uint16_t *slot)
{
	int idx = psn_index(e, n);
	if (idx < 0 || idx >= CS_RC_MAX_NODES)
		return false;
	uint64_t ver = cs_rc_map_version(e->redis) + 1;
	int nn = cs_rc_nnodes(e->redis);
	if (e->psn_top_ver != ver || e->psn_top_nodes != nn) {
		for (int i = 0; i < CS_RC_MAX_NODES; i++)
			e->psn_top[i] = -1;
		for (int s = 0; s < CS_RC_SLOTS; s++) {
			int o = cs_rc_slot_node(e->redis, (uint16_t)s);
			if (o >= 0 && o < CS_RC_MAX_NODES)
				e->psn_top[o] = s;
		}
		e->psn_top_ver = ver;
		e->psn_top_nodes = nn;
	}
	if (e->psn_top[idx] < 0)
		return false;
	*slot = (uint16_t)e->psn_top[idx];
	return true;
}

/* This session's heartbeat key of master n: "{<ns>:n<k>}:nhb:<id>:<seq>", k the table's for
 * the highest slot n serves. 0 when n serves no slot (it holds no entry: nothing to prove). */
static size_t cl_hb_key(cs_engine *e, psnode *n, char *buf, size_t cap)
{
	uint16_t slot;
	if (hbk_table(e) != 0 || !psn_slot(e, n, &slot) || e->hbk_of_slot[slot] == UINT32_MAX)
		return 0;
	n->hbk = e->hbk_of_slot[slot];
	int kl = snprintf(buf, cap, "{%s:n%u}:nhb:%lld:%llu", e->sh[0].ks.ns, n->hbk,
	        (long long)n->redirect, (unsigned long long)n->seq);
	return kl > 0 && (size_t)kl < cap ? (size_t)kl : 0;
}

static void on_cl_hb_set(cs_redis *rd, redisReply *reply, void *priv)
{
	psnode *n = priv;
	if (!psn_drop(n) || reply == NULL || reply->type != REDIS_REPLY_ERROR)
		return;
	cs_engine *e = n->e;
	n->hb_sent_us = 0;
	e->stats.near_hb_failed++;
	/* MOVED, ASK, CLUSTERDOWN...: this node may no longer own the slot (review12 N2); its
	 * proof ages out in cl_heartbeat unless an echo comes */
	cs_rc_refresh(e->redis);
	uint64_t now = cs_now_us();
	if (now - e->near_warned_us > NEAR_WARN_US) {
		e->near_warned_us = now;
		cs_warn("near cache: heartbeat write on %s refused (%s): coherence cannot be "
			"proven while it fails", n->addr, reply->str);
	}
}

static void cl_hb_send(cs_engine *e, psnode *n)
{
	char key[CS_NAME_MAX];
	size_t kl = cl_hb_key(e, n, key, sizeof key);
	const char *cy[] = { "CLIENT", "CACHING", "yes" };
	size_t cyl[] = { 6, 7, 3 };
	const char *get[] = { "GET", key };
	size_t getl[] = { 3, kl };
	const char *set[] = { "SET", key, "1", "PX", "60000" };
	size_t setl[] = { 3, kl, 1, 2, 5 };
	if (kl == 0 || n->data == NULL)
		return;
	if (cs_redis_cmd(n->data, NULL, NULL, 3, cy, cyl) == 0 &&
		cs_redis_cmd(n->data, NULL, NULL, 2, get, getl) == 0 &&
		cs_redis_cmd(n->data, on_cl_hb_set, n, 5, set, setl) == 0) {
		psn_hold(n);
		n->hb_sent_us = cs_now_us();
		memcpy(n->hb, key, kl); /* the echo names it, whatever the map does meanwhile */
		n->hbl = kl;
	}
}

static void on_cl_tracking_on(cs_redis *rd, redisReply *reply, void *priv)
{
	psnode *n = priv;
	if (!psn_drop(n))
		return;
	cs_engine *e = n->e;
	n->busy = false;
	if (reply == NULL)
		return; /* the data connection dropped: cl_conn_state turns tracking on again */
	if (reply->type != REDIS_REPLY_STATUS) {
		const char *msg =
			reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
		e->stats.near_track_refused++;
		uint64_t now = cs_now_us();
		if (now - e->near_warned_us > NEAR_WARN_US) {
			e->near_warned_us = now;
			cs_warn("near cache: CLIENT TRACKING refused by %s: %s", n->addr, msg);
		}
		if (strstr(msg, "does not exist") && n->ps &&
			cs_redis_client_id(n->ps) == n->redirect)
			cs_redis_reconnect(n->ps, "near cache: its id is unknown to Redis");
		return; /* retried by the heartbeat timer */
	}
	if (!n->subscribed || n->ps == NULL || cs_redis_client_id(n->ps) != n->redirect)
		return; /* the pub/sub connection changed meanwhile: ask again */
	n->tracked = true;
	n->seq++;
	cl_hb_send(e, n);
}

static void cl_track_start(cs_engine *e, psnode *n)
{
	if (e->near == NULL || e->near_untracked || n->dead || n->tracked || n->busy ||
		!n->subscribed || n->data == NULL || !cs_redis_ready(n->data))
		return;
	int64_t id = cs_redis_client_id(n->ps);
	if (id <= 0)
		return;
	char ids[24];
	int il = snprintf(ids, sizeof ids, "%lld", (long long)id);
	const char *argv[] = { "CLIENT", "TRACKING", "on", "REDIRECT", ids, "OPTIN" };
	size_t lens[] = { 6, 8, 2, 8, (size_t)il, 5 };
	if (cs_redis_cmd(n->data, on_cl_tracking_on, n, 6, argv, lens) == 0) {
		psn_hold(n);
		n->busy = true;
		n->redirect = id;
	}
}

/* Every message of a master's tracking subscription. */
static void on_cl_tracking_message(cs_redis *rd, redisReply *reply, void *priv)
{
	psnode *n = priv;
	if (n->dead)
		return;
	cs_engine *e = n->e;
	if (reply == NULL) {
		n->subscribed = false;
		n->tracked = false; /* the redirect named it: ask again with the next one */
		cl_off(e, "a master's tracking connection was lost");
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
		reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		n->subscribed = true;
		cl_track_start(e, n);
		return;
	}
	if (strcmp(reply->element[0]->str, "message") != 0 || e->near == NULL)
		return;
	redisReply *m = reply->element[2];
	if (m->type != REDIS_REPLY_ARRAY) {
		/* nil: FLUSHALL or FLUSHDB on this master */
		if (cs_near_get_stats(e->near)->entries)
			cs_info("near cache: flushed (%s ran FLUSHALL or FLUSHDB)", n->addr);
		near_flush(e);
		return;
	}
	size_t hbl = n->tracked && n->hb_sent_us ? n->hbl : 0;
	for (size_t i = 0; i < m->elements; i++) {
		const redisReply *k = m->element[i];
		if (k->type != REDIS_REPLY_STRING)
			continue;
		if (hbl && (size_t)k->len == hbl && memcmp(k->str, n->hb, hbl) == 0) {
			n->hb_sent_us = 0; /* this session's echo: this master's path is proven */
			n->proven = true;
			n->echo_us = cs_now_us();
			n->echoes++;
			cl_maybe_on(e);
			continue;
		}
		if (cs_near_invalidate(e->near, k->str, (size_t)k->len))
			record_staleness(e, k->str, (size_t)k->len);
	}
}

/* A master's pub/sub connection changed state. */
static void on_cl_ps_state(cs_redis *rd, bool up, void *priv)
{
	psnode *n = priv;
	if (n->dead)
		return;
	cs_engine *e = n->e;
	if (up)
		return; /* the subscriptions' confirmations follow */
	n->subscribed = false;
	n->gens_sub = 0;
	n->tracked = false; /* the redirect named that connection: ask again with the next */
	cl_off(e, "a master's tracking connection was lost");
	/* as on a single Redis (on_pubsub_state): a bump published meanwhile may be missed
	 * here; the generations are read again before they are trusted - unless another
	 * master's subscription stayed up all along: a PUBLISH reaches every node's
	 * subscribers, so it heard every bump (review12 N5). Per shard: each shard's channel
	 * is a subscription of its own (SHARDS.md 3b (2)) */
	uint64_t others = 0;
	for (int i = 0; i < e->npsn; i++)
		if (e->psn[i] != n)
			others |= e->psn[i]->gens_sub;
	for (int k = 0; k < e->nsh; k++)
		if (!(others & (1ull << k)))
			gens_unknown_shard(e, k);
}

/* A generations channel (each shard's) on a master's pub/sub connection: on_gen_message,
 * and whether its subscription is confirmed (on_cl_ps_state). */
static void on_cl_gen_message(cs_redis *rd, redisReply *reply, void *priv)
{
	psnode *n = priv;
	if (n->dead)
		return;
	if (reply == NULL) {
		n->gens_sub = 0;
	} else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
	           reply->element[0]->type == REDIS_REPLY_STRING &&
	           strcmp(reply->element[0]->str, "subscribe") == 0) {
		int k = gen_channel_shard(n->e, reply->element[1]);
		if (k >= 0)
			n->gens_sub |= 1ull << k;
	}
	on_gen_message(rd, reply, n->e);
}

/* A master's data connection changed state (engine_gen.c on_cache_state). */
static void cl_conn_state(cs_engine *e, cs_redis *rd, bool up)
{
	psnode *n = NULL;
	for (int i = 0; i < e->npsn && n == NULL; i++)
		if (e->psn[i]->data == rd)
			n = e->psn[i];
	if (up) {
		if (n)
			cl_track_start(e, n);
		return;
	}
	if (n)
		n->tracked = false; /* a new connection is not tracked */
	cl_off(e, "a master's data connection was lost");
}

/* Before a watched read (E1): CLIENT CACHING yes to the read's slot, so that cs_rc pipelines
 * both on that master's connection. A refusal (tracking not on there) turns the near cache
 * off: the read after it was not tracked, and the settle finds the session changed. */
static void on_cl_caching(cs_rc *rc, redisReply *reply, void *priv)
{
	cs_engine *e = priv;
	if (e->stopping)
		return;
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR || cs_rc_resent(rc))
		cl_off(e, reply && reply->type == REDIS_REPLY_ERROR ? "CLIENT CACHING refused"
								 : "CLIENT CACHING not answered");
}

static bool cl_caching_yes(cs_engine *e, uint16_t slot)
{
	/* only on a master whose tracking is proven (review 13 L1: a master that served no slot
	 * when the near cache came on, given slots since, is unproven until the next tick sees
	 * the map change): false serves the read without storing it */
	if (e->near_untracked)
		return true; /* the negative control (near_cache_tracking = false): stored untracked */
	int idx = cs_rc_slot_node(e->redis, slot);
	cs_redis *data = idx >= 0 ? cs_rc_node(e->redis, idx) : NULL;
	const psnode *n = NULL;
	for (int i = 0; i < e->npsn && n == NULL && data; i++)
		if (e->psn[i]->data == data)
			n = e->psn[i];
	if (n == NULL || !psn_fresh(n, cs_now_us()))
		return false;
	/* review12 N6's negative control: this master's tracking is proven (its heartbeats are
	 * tracked) but its reads are stored untracked: no invalidation will drop them */
	if (e->near_untracked_node[0] && strcmp(n->addr, e->near_untracked_node) == 0)
		return true;
	const char *argv[] = { "CLIENT", "CACHING", "yes" };
	size_t lens[] = { 6, 7, 3 };
	return cs_rc_cmd(e->redis, slot, on_cl_caching, e, 3, argv, lens) == 0;
}

/* A watched read's reply came from a send that CLIENT CACHING yes did not precede (E1). */
bool near_resent(const cs_engine *e, const cs_rc *rc)
{
	if (!cs_rc_resent(rc))
		return false;
	((cs_engine *)e)->near_resent++;
	return e->near_resend_check; /* off: the negative control stores it */
}

static void cl_heartbeat(cs_engine *e)
{
	for (psnode **pp = &e->psn_dead; *pp;) {
		psnode *n = *pp;
		if (n->refs == 0) {
			*pp = n->next_dead;
			free(n);
		} else {
			pp = &n->next_dead;
		}
	}
	/* a master whose pub/sub connection could not be made is tried again, every 5 s
	 * (review12 N4: it was only at the next change of the masters) */
	uint64_t t = cs_now_us();
	if (e->npsn != cs_rc_nnodes(e->redis) && t - e->psn_retry_us >= 5000000u) {
		e->psn_retry_us = t;
		psn_on_nodes(e->redis, e);
	}
	if (e->near == NULL || e->near_untracked)
		return;
	uint64_t now = cs_now_us();
	if (cs_near_on(e->near)) {
		uint64_t sum = map_sum(e);
		if (sum != e->near_map_sum) {
			e->near_map_sum = sum;
			if (cs_near_get_stats(e->near)->entries)
				cs_info("near cache: flushed (the slot map changed)");
			near_flush(e);
		}
		/* every master serving a slot must keep proving its tracking: no echo for a
		 * poll and an echo bound, whatever the reason (heartbeats refused by a node cut
		 * off from its cluster: review12 N2), or one that now serves slots without a
		 * proof (it served none when the near cache turned on), turns it off */
		uint16_t slot;
		for (int i = 0; i < e->npsn && cs_near_on(e->near); i++) {
			psnode *n = e->psn[i];
			if (!psn_slot(e, n, &slot))
				continue;
			if (!psn_fresh(n, now)) {
				e->stats.near_echo_lost++;
				n->echo_lost++;
				cl_off(e, "a master serving slots has not proven its tracking lately");
			}
		}
	}
	for (int i = 0; i < e->npsn; i++) {
		psnode *n = e->psn[i];
		if (!n->tracked) {
			cl_track_start(e, n);
		} else if (n->hb_sent_us) {
			if (now - n->hb_sent_us > (uint64_t)NEAR_ECHO_MS * 1000u) {
				e->stats.near_echo_lost++;
				n->echo_lost++;
				cl_off(e, "no tracking echo from a master in time");
				if (n->ps)
					cs_redis_reconnect(n->ps, "near cache: no tracking echo");
			}
		} else {
			cl_hb_send(e, n);
		}
	}
	cl_maybe_on(e);
	/* review12 N3: the flush of a changed slot map (above) comes with the map; while the
	 * near cache is on, the map is asked again on every heartbeat (one CLUSTER SHARDS to one
	 * node, rate-limited by cs_rc) rather than only on a MOVED or the periodic refresh
	 * (cluster_refresh_interval, 10 s): entries read from a slot's old owner are flushed
	 * within two heartbeats of a move that sent no invalidation */
	if (e->near_map_refresh && cs_near_on(e->near))
		cs_rc_refresh(e->redis);
}

/* Test hook (engine.h cs_engine_test_psn_fail): pub/sub connections still to fail. */
static int psn_fail_left;

void cs_engine_test_psn_fail(int n)
{
	psn_fail_left = n;
}

/* psn_new's error: at most one line a minute (a master that cannot have one is tried again
 * every 5 s: cl_heartbeat). */
static void psn_error(cs_engine *e, const char *addr, const char *why)
{
	uint64_t now = cs_now_us();
	if (e->psn_warned_us && now - e->psn_warned_us < NEAR_WARN_US)
		return;
	e->psn_warned_us = now;
	cs_error("pub/sub on %s: %s (tried again every 5 s; meanwhile bumps come through the "
	         "other masters' subscriptions or the 1 s generations poll, and the near cache "
	         "stays off)",
	        addr, why);
}

/* A pub/sub connection to master `addr` whose data connection is `data`. */
static psnode *psn_new(cs_engine *e, const char *addr, cs_redis *data)
{
	if (psn_fail_left > 0) {
		psn_fail_left--;
		psn_error(e, addr, "failed by the test hook");
		return NULL;
	}
	psnode *n = calloc(1, sizeof *n);
	if (n == NULL) {
		psn_error(e, addr, "out of memory");
		return NULL;
	}
	n->e = e;
	n->data = data;
	snprintf(n->addr, sizeof n->addr, "%s", addr);
	cs_rc_endpoint ep;
	char url[2048], name[CS_RC_HOST_MAX + 32], err[256];
	if (cs_rc_parse_endpoint(addr, strlen(addr), &ep) != 0 ||
		cs_rc_node_url(e->redis, ep.host, ep.port, url, sizeof url) != 0) {
		explicit_bzero(url, sizeof url);
		psn_error(e, addr, "no usable URL");
		free(n);
		return NULL;
	}
	snprintf(name, sizeof name, "pubsub %s", addr);
	cs_redis_opts po = { .name = name, .url = url, .timeout_ms = e->ps_timeout_ms,
		.max_pending = 16, .on_state = on_cl_ps_state, .state_priv = n,
		.resolver = e->resolver, .client_id = e->ps_client_id };
	n->ps = cs_redis_new(e->base, &po, err, sizeof err);
	explicit_bzero(url, sizeof url); /* held the password */
	/* every shard's generations channel (the test hook: the first shard's alone) */
	bool subscribed = n->ps != NULL;
	for (int k = 0; subscribed && k < (e->cl_shard0_only ? 1 : e->nsh); k++)
		subscribed =
		        cs_redis_subscribe(n->ps, e->sh[k].ks.channel, on_cl_gen_message, n) == 0;
	if (!subscribed || (e->ps_track && cs_redis_subscribe(n->ps, TRACK_CHANNEL,
	                                           on_cl_tracking_message, n) != 0)) {
		psn_error(e, addr, n->ps ? "out of memory" : err);
		cs_redis_free(n->ps);
		free(n);
		return NULL;
	}
	return n;
}

/* n leaves: its pub/sub connection closes now, its memory once no callback holds it. */
static void psn_kill(cs_engine *e, psnode *n)
{
	n->dead = true;
	cs_redis *ps = n->ps;
	n->ps = NULL;
	cs_redis_free(ps); /* its callbacks see n dead */
	n->next_dead = e->psn_dead;
	e->psn_dead = n;
}

/* cs_rc's node set changed (rcluster.h cs_rc_nodes_cb): one pub/sub connection per master,
 * in cs_rc's order; masters gone are closed, new ones connected. Any change turns the near
 * cache off until every master of the new set proved its tracking. */
void psn_on_nodes(cs_rc *rc, void *priv)
{
	cs_engine *e = priv;
	psnode *next[CS_RC_MAX_NODES];
	int nn = 0;
	bool changed = false;
	for (int i = 0; i < cs_rc_nnodes(rc) && nn < CS_RC_MAX_NODES; i++) {
		cs_redis *data = cs_rc_node(rc, i);
		const char *addr = cs_rc_node_addr(rc, i);
		psnode *n = NULL;
		for (int k = 0; k < e->npsn && n == NULL; k++)
			if (e->psn[k] && e->psn[k]->data == data &&
				strcmp(e->psn[k]->addr, addr) == 0) {
				n = e->psn[k];
				e->psn[k] = NULL;
			}
		if (n == NULL) {
			n = psn_new(e, addr, data);
			changed = true;
			if (n == NULL)
				continue; /* near stays off (npsn != nnodes): tried again in 5 s */
		}
		next[nn++] = n;
	}
	for (int k = 0; k < e->npsn; k++)
		if (e->psn[k]) {
			changed = true;
			psn_kill(e, e->psn[k]);
		}
	memcpy(e->psn, next, (size_t)nn * sizeof next[0]);
	e->npsn = nn;
	if (changed)
		cl_off(e, "the cluster's masters changed");
}

/* Cluster mode, at creation: a pub/sub connection per seed (cs_rc's first node set). One that
 * could not be made is not fatal (review 13 L7): it is tried again every 5 s (cl_heartbeat,
 * N4), as after any later change of the masters; meanwhile a bump reaches this process through
 * any other master's subscription (a PUBLISH reaches every node's subscribers) or the 1 s
 * generations poll, and the near cache stays off (npsn != the masters). Always 0. */
int psn_setup(cs_engine *e)
{
	psn_on_nodes(e->redis, e);
	if (e->npsn != cs_rc_nnodes(e->redis))
		cs_warn("pub/sub: %d of %d masters connected at start; the others are tried again "
		        "every 5 s",
		        e->npsn, cs_rc_nnodes(e->redis));
	return 0;
}

/* Test hook (engine.h): the first shard's generations channel alone on every master, made
 * again now; cluster_epoch_check then checks the first shard's copies alone. */
int cs_engine_test_cluster_shard0(cs_engine *e)
{
	if (!e->sh[0].ks.cluster)
		return -1;
	e->cl_shard0_only = true;
	psn_free_all(e, false);
	return psn_setup(e);
}

/* Engine shutdown: mem = false closes every pub/sub connection (before cs_rc_free, whose
 * callbacks may still hold nodes); mem = true frees the nodes (after it). */
void psn_free_all(cs_engine *e, bool mem)
{
	if (!mem) {
		for (int k = 0; k < e->npsn; k++)
			psn_kill(e, e->psn[k]);
		e->npsn = 0;
		return;
	}
	while (e->psn_dead) {
		psnode *n = e->psn_dead;
		e->psn_dead = n->next_dead;
		free(n);
	}
	free(e->hbk_of_slot);
	e->hbk_of_slot = NULL;
}
