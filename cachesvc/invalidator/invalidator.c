/* invalidator.c - the logical replication consumer that invalidates cache entries.
 *
 * Per transaction: row changes are mapped to keys (mapping.c) and collected; at Commit
 * the keys go to Redis in pipelined CS_SCRIPT_INVAL calls (DEL + fence at the commit's
 * end LSN) and whole-query invalidations as generation bumps. Commits wait in a FIFO in
 * stream order; when Redis has acknowledged every command of the commit at the head, its
 * end LSN becomes the confirmed position. Only that position is ever sent to PostgreSQL
 * as flushed (I4). Any Redis failure drops the replication connection: the slot then
 * replays from the confirmed position, and invalidation is idempotent.
 *
 * The horizon (fence.c, argument (b)): every commit's fences are sent at a known time,
 * recorded in a ring of (time, LSN) samples. A fence with LSN > H is alive while
 * cs:horizon = H lives, if H covers every fence sent more than F - V ago (F = fence TTL,
 * V = the horizon's own TTL): H = max(H_start, max{lsn : sent <= now + V - F}). Samples
 * are merged per 10 ms by keeping the earliest time and the highest LSN, which only makes
 * H larger (safer). H_start is the primary's WAL position when this leader identified the
 * system: fences written by earlier leaders are all at or below it.
 *
 * The bookkeeping itself (the commit FIFO and the confirmed position, the keepalive rule, the
 * horizon samples, the min_lifetime debounce) is ledger.c, pure and unit-tested; this file
 * drives it with the stream, Redis's replies and the clocks. */
#include "inv_int.h"

_Static_assert(sizeof(((cs_inv_stats *)0)->query_bumps) / sizeof(uint64_t) == CS_INV_REASONS,
        "a counter per cs_inv_reason");

static void conn_event(evutil_socket_t fd, short what, void *arg);

/* ---- Small helpers ---------------------------------------------------------------------- */

/* One-shot on purpose, also while streaming. A persistent read event (no epoll_ctl pair per
 * wakeup: a fifth of the daemon's system calls at 500 commits/s) was tried for issue 16 and
 * made the lag worse on the loaded 2-core test machine: the reader, readier, took nearly
 * every pgoutput message on its own (2-5 reads per commit instead of under 0.4), preempting
 * the walsender, which fell up to seconds behind (bench/lag --no-readers, 2 runs of each,
 * interleaved: p99 0.7 s and 1.9 s against 0.13 s and 0.41 s). Deferring the read by 1 ms
 * inside a transaction cut the daemon's wakeups and CPU per commit (~15%) but raised the
 * lag's p50 by 3-6 ms and the near staleness with it, for a p99 still 10x the target: not
 * kept either. */
void inv_conn_wait(cs_inv *inv, short what)
{
	if (inv->ev_added)
		event_del(&inv->ev);
	event_assign(&inv->ev, inv->base, PQsocket(inv->conn), what, conn_event, inv);
	event_add(&inv->ev, NULL);
	inv->ev_added = true;
}

static bool valid_name(const char *s, bool slot)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (; *s; s++) {
		bool ok = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_';
		if (!slot)
			ok = ok || (*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '.';
		if (!ok)
			return false;
	}
	return true;
}

/* ---- Connection events ------------------------------------------------------------------ */

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	cs_inv *inv = arg;
	if (fd >= 0)
		inv->ev_added = false;
	if (inv->conn == NULL)
		return;
	if (inv->st == ST_PRE_CREATE || inv->st == ST_SYNC || inv->st == ST_TIMELINE ||
	        inv->st == ST_HELD)
		return; /* waiting for Redis or the pool (the step deadline bounds it) */
	if ((what & EV_READ) && !PQconsumeInput(inv->conn)) {
		inv_restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	int frc = PQflush(inv->conn);
	if (frc < 0) {
		inv_restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	if (inv->st == ST_STREAMING) {
		inv_stream_read(inv);
		if (inv->conn && inv->st == ST_STREAMING && !inv->paused)
			inv_conn_wait(inv, frc == 1 || inv->status_pending ? EV_READ | EV_WRITE : EV_READ);
		if (inv->status_pending && inv->conn)
			inv_send_status(inv, false);
		inv_tick_rearm(inv); /* what was read may have started work */
		return;
	}
	/* setup: collect the command's results */
	while (!PQisBusy(inv->conn)) {
		PGresult *res = PQgetResult(inv->conn);
		if (res == NULL) {
			inv_setup_next(inv, inv->st);
			return;
		}
		if (inv->st == ST_START && PQresultStatus(res) == PGRES_COPY_BOTH) {
			PQclear(res);
			inv_stream_held(inv);
			return;
		}
		bool go_on = inv_setup_result(inv, res);
		PQclear(res);
		if (!go_on)
			return;
	}
	inv_conn_wait(inv, frc == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* The connect ended (pgconn.h): a failed lookup or connect restarts with backoff. */
static void on_conn_done(cs_pgconn *pc, cs_pgconn_status st, PGconn *conn, const char *msg,
	void *priv)
{
	cs_inv *inv = priv;
	if (st == CS_PGCONN_TIMEOUT) {
		inv_restart(inv, "replication setup timed out", false);
		return;
	}
	if (st != CS_PGCONN_READY) {
		inv_restart(inv, msg, false);
		return;
	}
	inv->conn = conn;
	/* a standby retrying the slot stays "standby" (metric and log) until it leads or fails
	 * otherwise: state changes are logged, not states */
	if (inv->state != CS_INV_STANDBY)
		inv->state = CS_INV_SETUP;
	inv->stats.state = inv->state;
	inv_send_cmd(inv, ST_IDENTIFY, "IDENTIFY_SYSTEM");
}

/* Starts libpq's connect on the conninfo, or on `resolved` (owned; NULL: none), the conninfo
 * with the hostaddr list of its host names. */
static void connect_with(cs_inv *inv, char *resolved)
{
	char *conninfo = inv->conninfo; /* (the resolved one for this connect) */
	if (resolved)
		inv->conninfo = resolved;
	/* the conninfo's own options= kept, ours after them (pgpool.h cs_pg_merge_options) */
	char *options = cs_pg_merge_options(inv->conninfo,
		"-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex");
	const char *kw[] = { "dbname", "replication", "options", "application_name", NULL, NULL,
		NULL, NULL };
	const char *val[] = { inv->conninfo, "database",
		options ? options : "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex",
		"cachesvc-invalidator", NULL, NULL, NULL, NULL };
	/* servers refused as stale primaries are left out (later keywords override the
	 * conninfo's) */
	char hosts[1024], addrs[1024], ports[1024];
	if (inv_conninfo_without_skipped(inv, hosts, addrs, ports, sizeof hosts)) {
		int k = 4;
		if (hosts[0]) {
			kw[k] = "host";
			val[k++] = hosts;
		}
		if (addrs[0]) {
			kw[k] = "hostaddr";
			val[k++] = addrs;
		}
		if (ports[0]) {
			kw[k] = "port";
			val[k++] = ports;
		}
	}
	inv->stale_server = false;
	inv->epoch++;
	inv->stats.reconnects++;
	char err[400];
	int rc = cs_pgconn_connect(&inv->pc, kw, val, "invalidator", STEP_TIMEOUT_MS, err, sizeof err);
	free(options);
	inv->conninfo = conninfo;
	free(resolved);
	if (rc != 0) {
		inv_restart(inv, err, false);
		return;
	}
	inv->dec = cs_pgo_decoder_new();
	if (inv->dec == NULL) {
		inv_restart(inv, "out of memory", false);
		return;
	}
	inv->st = ST_CONNECTING;
}

/* Host names resolved on the loop (resolve.h), not by libpq (it would block the loop): the
 * connect then runs on the conninfo plus the hostaddr list (host kept for TLS and messages;
 * the stale-server filter filters both lists alike). A failed lookup is a failed connect
 * (on_conn_done): inv_restart with backoff. */
static void on_conn_addrs(cs_pgconn *pc, const char *addrs, void *priv)
{
	cs_inv *inv = priv;
	size_t n = strlen(inv->conninfo) + (addrs ? strlen(addrs) : 0) + 16;
	char *resolved = malloc(n);
	if (resolved == NULL) {
		inv_restart(inv, "out of memory", false);
		return;
	}
	bool uri = strncmp(inv->conninfo, "postgres", 8) == 0 && strstr(inv->conninfo, "://");
	snprintf(resolved, n, "%s%s%s%s", inv->conninfo,
		!addrs ? "" : !uri ? " hostaddr='" : strchr(inv->conninfo, '?') ? "&hostaddr=" : "?hostaddr=",
		addrs ? addrs : "", addrs && !uri ? "'" : "");
	connect_with(inv, resolved);
}

static void connect_start(cs_inv *inv)
{
	cs_pgconn_cancel(&inv->pc);
	if (inv->primary && cs_pgserver_resolver(inv->primary)) {
		cs_resolver_pg_lookup(cs_pgserver_resolver(inv->primary), &inv->lookup);
		if (cs_pgconn_resolve(&inv->pc, &inv->lookup, inv->conninfo, 0) != 0)
			inv_restart(inv, "out of memory", false);
		return;
	}
	connect_with(inv, NULL);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	connect_start(arg);
}

/* Drops the replication connection and everything in flight; reconnects later. Commits
 * not yet confirmed are replayed by the slot, so nothing is lost. */
void inv_restart(cs_inv *inv, const char *why, bool standby)
{
	char reason[400];
	snprintf(reason, sizeof reason, "%s", why ? why : "unknown");
	cs_chomp(reason);
	if (inv->ev_added) {
		event_del(&inv->ev);
		inv->ev_added = false;
	}
	if (inv->conn) {
		PQfinish(inv->conn);
		inv->conn = NULL;
	}
	cs_pgconn_cancel(&inv->pc); /* a lookup or connect in flight: the retry starts another */
	cs_pgo_decoder_free(inv->dec);
	inv->dec = NULL;
	inv->st = ST_NONE;
	inv->epoch++; /* late Redis replies for this connection are ignored */
	cs_ledger_reset(inv->ledger); /* owed bumps are in Redis: the next sync reloads them */
	inv_rq_clear(inv);            /* review V2: the slot replays their commits */
	inv_open_restart(inv);        /* review V9b: the marks are read back */
	inv->paused = false;
	inv->pos_in_flight = false;
	inv->posr_in_flight = false;
	inv->status_pending = false;
	/* review 50 R50-2: a gap flush owed by a slot this process created is recorded in Redis
	 * (the gap key, before CREATE): whoever synchronises next performs it, not this process
	 * again when it leads later (a needless flush of every dependent query) */
	inv->gap_owed = false;
	inv->first_start = false;
	inv_txn_reset(inv);
	inv->epoch_str[0] = '\0';
	inv->epoch_len = 0;
	int64_t delay;
	if (standby) {
		if (inv->state != CS_INV_STANDBY)
			cs_info("invalidator%s%s: standing by: %s", INV_LOG_SHARD(inv), reason);
		inv->state = CS_INV_STANDBY;
		delay = cs_backoff_ms(0, STANDBY_RETRY_MS, STANDBY_RETRY_MS);
	} else {
		uint64_t now = cs_now_us();
		if (inv->state == CS_INV_STREAMING || now - inv->last_reconnect_log_us > 10000000u) {
			/* The first retry of a start (Redis still connecting) is no news; a
			 * repeated one, or one after the invalidator worked, is. */
			cs_log(inv->ever_synced || inv->attempt > 0 ? CS_LOG_WARNING : CS_LOG_INFO,
				"invalidator: restarting the replication connection: %s", reason);
			inv->last_reconnect_log_us = now;
		}
		inv->state = CS_INV_IDLE;
		delay = cs_backoff_ms(inv->attempt++, RETRY_BASE_MS, RETRY_MAX_MS);
	}
	inv->stats.state = inv->state;
	struct timeval tv = cs_tv_ms(delay);
	evtimer_add(inv->retry, &tv);
}

/* ---- Periodic work ---------------------------------------------------------------------- */

void inv_redis_ok(cs_inv *inv)
{
	uint64_t now = cs_now_us();
	inv->redis_ok_us = now;
	/* review 37 R37-9: here, not only in the tick: an idle stream's tick runs once per status
	 * interval, when the last acknowledgement (the horizon's) is an interval old */
	if (inv->attempt && inv->st == ST_STREAMING && now - inv->streaming_since_us >= STABLE_US)
		inv->attempt = 0;
}

static void on_horizon_reply(cs_rc *r, redisReply *reply, void *priv)
{
	posctx *c = priv;
	cs_inv *inv = c->inv;
	bool current = c->epoch == inv->epoch;
	free(c);
	uint64_t h;
	if (!current)
		return;
	if (reply && reply->type == REDIS_REPLY_STRING && cs_lsn_unhex(reply->str, (size_t)reply->len, &h)) {
		inv->stats.horizon = h;
		inv_redis_ok(inv);
	}
	else if (inv_epoch_error(reply))
		inv_restart(inv, reply->str, false);
}

static void publish_horizon(cs_inv *inv)
{
	inv_map_reassert(inv); /* review 41 R41-4 */
	uint64_t now = cs_now_us();
	/* every fence sent at or before now + V - F may be gone within V */
	cs_lsn_t horizon = cs_ledger_horizon(inv->ledger, now, (uint64_t)inv->fence_ttl_ms * 1000u,
		(uint64_t)inv->horizon_ttl_ms * 1000u);
	if (inv->ks.cluster) {
		inv_c_publish_horizon(inv, horizon);
		inv->last_horizon_us = now;
		return;
	}
	char hex[17], px[24];
	cs_lsn_hex(horizon, hex);
	int pl = snprintf(px, sizeof px, "%lld", (long long)inv->horizon_ttl_ms);
	/* with the epoch and run_id check: a FLUSHALL or a Redis inv_restart is noticed here
	 * within a status interval even when nothing is written */
	/* with the eviction state: after an eviction the horizon rises over every fence ever
	 * written and the state is whole again (fence.c (i)) */
	const char *argv[] = { inv->ks.horizon, inv->ks.epoch, inv->ks.fmax, inv->ks.evk, hex, px,
		inv->epoch_str, "1" };
	size_t lens[] = { inv->ks.horizon_len, inv->ks.epoch_len, inv->ks.fmax_len, inv->ks.evk_len,
		16, (size_t)pl, inv->epoch_len, 1 };
	int nkeys = inv->eviction_check ? 4 : 2;
	if (!inv->eviction_check) {
		argv[2] = hex, argv[3] = px, argv[4] = inv->epoch_str, argv[5] = "1";
		lens[2] = 16, lens[3] = (size_t)pl, lens[4] = inv->epoch_len, lens[5] = 1;
	}
	posctx *c = malloc(sizeof *c);
	if (c == NULL)
		return;
	*c = (posctx){ .inv = inv, .epoch = inv->epoch, .lsn = horizon };
	if (inv_script(inv, 0, CS_SCRIPT_RAISE, on_horizon_reply, c, nkeys, nkeys + 4, argv,
		    lens) == 0)
		inv->last_horizon_us = now;
	else
		free(c);
}

/* ---- Slot health ------------------------------------------------------------------------ */

#define HEALTH_EVERY_US 10000000u

static void on_health(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err, const char *msg,
	bool retryable)
{
	cs_inv *inv = job->priv;
	inv->health_busy = false;
	inv_tick_rearm(inv); /* the next check, HEALTH_EVERY_US after this one started */
	if (err != 0 || res == NULL || PQntuples(res) != 1) {
		cs_debug("invalidator: slot health check: %s", err ? msg : "no such slot");
		return; /* primary busy or down; the stream itself says more */
	}
	const char *st = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
	if (strcmp(st, inv->wal_status) != 0) {
		if (strcmp(st, "unreserved") == 0)
			cs_warn("invalidator%s%s: slot \"%s\" wal_status is unreserved: it is "
			        "about to pass max_slot_wal_keep_size and be lost (%s bytes left); "
			        "the invalidator is too far behind",
			        INV_LOG_SHARD(inv), inv->slot,
			        PQgetisnull(res, 0, 1) ? "?" : PQgetvalue(res, 0, 1));
		else if (strcmp(st, "lost") == 0)
			cs_error("invalidator%s%s: slot \"%s\" wal_status is lost",
			        INV_LOG_SHARD(inv), inv->slot);
		else if (inv->wal_status[0])
			cs_info("invalidator%s%s: slot \"%s\" wal_status is %s", INV_LOG_SHARD(inv),
			        inv->slot, st);
		snprintf(inv->wal_status, sizeof inv->wal_status, "%s", st);
	}
	inv->safe_wal_size = PQgetisnull(res, 0, 1) ? -1 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
}

/* Redis's maxmemory-policy, re-read every 10 s (startup refused unsafe ones, check.c):
 * with fences, allkeys-* (or one not known) may evict generations, query-level fences and
 * the eviction state (fence.c (i)). Logged when it changes. */
static void on_policy(cs_rc *r, redisReply *reply, void *priv)
{
	cs_inv *inv = priv;
	inv->policy_busy = false;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING)
		return;
	const char *p = strstr(reply->str, "maxmemory_policy:");
	if (p == NULL)
		return;
	p += strlen("maxmemory_policy:");
	char pol[32];
	size_t n = strcspn(p, "\r\n");
	snprintf(pol, sizeof pol, "%.*s", (int)CS_MIN(n, sizeof pol - 1), p);
	if (strcmp(pol, inv->policy) == 0)
		return;
	static const char *const safe[] = { "noeviction", "volatile-lru", "volatile-lfu",
		"volatile-random", "volatile-ttl" };
	bool ok = false;
	for (size_t i = 0; i < CS_ARRAY_LEN(safe); i++)
		ok = ok || strcmp(pol, safe[i]) == 0;
	if (!ok)
		cs_error("invalidator%s%s: Redis maxmemory-policy is now %s: with fence = on it "
		         "may evict generations and query-level fences, and stale entries may then "
		         "be served: set volatile-lru or volatile-lfu (fence.c (i))",
		        INV_LOG_SHARD(inv), pol);
	else if (inv->policy[0])
		cs_info("invalidator%s%s: Redis maxmemory-policy is now %s", INV_LOG_SHARD(inv),
		        pol);
	snprintf(inv->policy, sizeof inv->policy, "%s", pol);
}

static void check_policy(cs_inv *inv)
{
	if (!inv->fence_on || inv->policy_busy || !cs_rc_ready(inv->rc))
		return;
	const char *argv[] = { "INFO", "memory" };
	size_t lens[] = { 4, 6 };
	if (cs_rc_cmd(inv->rc, 0, on_policy, inv, 2, argv, lens) == 0)
		inv->policy_busy = true;
}

static void check_slot_health(cs_inv *inv)
{
	uint64_t now = cs_now_us();
	if (inv->primary == NULL || inv->health_busy || now - inv->last_health_us < HEALTH_EVERY_US)
		return;
	inv->last_health_us = now;
	check_policy(inv);
	inv->health_job = (cs_pgjob){ .qindex = -1, .q = &inv->health_q, .params = &inv->health_params,
		.deadline_us = now + 5000000u, .cb = on_health, .priv = inv };
	if (cs_pgserver_submit(inv->primary, &inv->health_job) == 0)
		inv->health_busy = true;
}

/* The effective receive timeout: never shorter than three status intervals (each asks the
 * walsender for a reply); 0 when off. */
static uint64_t receive_timeout_us(const cs_inv *inv)
{
	if (inv->receive_timeout_ms <= 0)
		return 0;
	return (uint64_t)CS_MAX(inv->receive_timeout_ms, 3 * inv->status_interval_ms) * 1000u;
}

static void tick_work(cs_inv *inv, uint64_t now)
{
	if (inv->conn && inv->st != ST_STREAMING && now > inv->step_deadline_us) {
		static const char *const names[] = {"none", "connect", "IDENTIFY_SYSTEM",
		        "timeline record", "slot query", "slot drop", "gap record", "slot create",
		        "START_REPLICATION", "position read again", "Redis synchronisation",
		        "streaming"};
		_Static_assert(sizeof names / sizeof names[0] == ST_STREAMING + 1, "a name a step");
		char why[96];
		snprintf(why, sizeof why, "replication setup timed out (step: %s)", names[inv->st]);
		inv_restart(inv, why, false);
		return;
	}
	check_slot_health(inv);
	inv_open_rec_tick(inv, now); /* review 51 R51-1: in any state */
	if (inv->st != ST_STREAMING)
		return;
	/* The backoff resets after a healthy stretch only: streaming for STABLE_US with Redis
	 * acknowledging (the horizon is published every status interval). A stream that fails
	 * right after START, or one that streams while Redis hangs, keeps backing off. */
	if (inv->attempt && now - inv->streaming_since_us >= STABLE_US &&
		inv->redis_ok_us > inv->streaming_since_us && now - inv->redis_ok_us < STABLE_US / 4)
		inv->attempt = 0;
	/* receive_timeout (like wal_receiver_timeout): every status message asks for a reply,
	 * so a live walsender sends something at least every status interval; silence this
	 * long is a half-open connection (TCP alone would take many minutes to say so). */
	uint64_t rto = receive_timeout_us(inv);
	if (rto && !inv->paused && now - inv->last_recv_us >= rto) {
		char why[160];
		inv->stats.receive_timeouts++;
		snprintf(why, sizeof why, "nothing received on the replication stream for %lld ms "
			"(receive_timeout): half-open connection?", (long long)((now - inv->last_recv_us) / 1000u));
		inv_restart(inv, why, false);
		return;
	}
	inv_run_debounced(inv);
	inv_pause_update(inv);
	if (inv->st != ST_STREAMING)
		return;
	uint64_t interval = (uint64_t)inv->status_interval_ms * 1000u;
	if (now - inv->last_status_us >= interval || inv->status_pending)
		inv_send_status(inv, true); /* reply requested: an idle stream answers with its position */
	/* a cluster with the retry queue (review V2): the healthy masters' horizons stay alive
	 * while one is down (each bucket's RAISE vouches for its own bucket) */
	if (inv->st == ST_STREAMING && now - inv->last_horizon_us >= interval &&
	        (cs_rc_ready(inv->rc) || inv_rq_on(inv)))
		publish_horizon(inv);
	inv_rq_tick(inv);
	inv_open_tick(inv);
	inv_publish_pos(inv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	cs_inv *inv = arg;
	inv->tick_at_us = 0;
	tick_work(inv, cs_now_us());
	inv_tick_rearm(inv);
}

/* at: the earliest of at and d (0: none) */
static uint64_t earliest(uint64_t at, uint64_t d)
{
	return d != 0 && (at == 0 || d < at) ? d : at;
}

/* When the tick must run next (0: no deadline to watch). A deadline already passed whose work
 * could not be done (Redis busy or down) is retried TICK_MS later, as before. */
static uint64_t next_tick_us(cs_inv *inv, uint64_t now)
{
	uint64_t soon = now + (uint64_t)TICK_MS * 1000u;
	if (inv->tick_polled)
		return soon;
	uint64_t at = 0;
	if (inv->primary != NULL && !inv->health_busy)
		at = inv->last_health_us + HEALTH_EVERY_US;
	if (inv->conn && inv->st != ST_STREAMING)
		at = earliest(at, inv->step_deadline_us + 1);
	/* review 51 R51-1: in any state but the SYNC, where it is not sent (review 54 F2: a
	 * deadline past while it runs polled the tick every TICK_MS) */
	if (inv->st != ST_SYNC)
		at = earliest(at, inv_open_rec_next_us(inv));
	if (inv->st != ST_STREAMING)
		return at;
	/* work outstanding: the tick's calls are retried every TICK_MS (inv_publish_pos, the
	 * pause, a status message PostgreSQL's socket did not take, Redis not ready: they
	 * poll) */
	if (inv->paused || inv->status_pending || inv->cmds != 0 || inv->pos_in_flight ||
	        cs_ledger_in_flight(inv->ledger) != 0 || !cs_rc_ready(inv->rc) ||
	        (!inv->ks.cluster && cs_ledger_confirmed(inv->ledger) > inv->pos_sent))
		return soon;
	/* a cluster: the position copies (bucket 0's at once, the others' once per status
	 * interval, each after its backoff), the retry queues (a backoff, a drain), the watch
	 * of open slots (a round per status interval, its timeout, the hold bound). While a
	 * command is in flight or queued for a retry (it holds its commit: ledger in flight)
	 * or a master is not ready, the poll above runs instead, as on one Redis: a master
	 * down or hung costs about 150 wake-ups a second (review 43 R43-2), its retries still
	 * backed off */
	if (inv->ks.cluster && inv->c_deadlines) {
		at = earliest(at, inv_c_pos_next_us(inv, now));
		at = earliest(at, inv_rq_next_us(inv, now));
		at = earliest(at, inv_open_next_us(inv, now));
	}
	uint64_t interval = (uint64_t)inv->status_interval_ms * 1000u;
	at = earliest(at, inv->last_status_us + interval);
	at = earliest(at, inv->last_horizon_us + interval);
	uint64_t rto = receive_timeout_us(inv);
	if (rto)
		at = earliest(at, inv->last_recv_us + rto);
	at = earliest(at, cs_ledger_next_due_at(inv->ledger));
	if (inv->attempt && inv->streaming_since_us + STABLE_US > now)
		at = earliest(at, inv->streaming_since_us + STABLE_US);
	return at;
}

void inv_tick_rearm(cs_inv *inv)
{
	uint64_t now = cs_now_us();
	uint64_t at = next_tick_us(inv, now);
	if (at == 0)
		return; /* nothing to watch: whatever starts work re-arms it */
	if (at <= now)
		at = now + (uint64_t)TICK_MS * 1000u;
	if (inv->tick_at_us != 0 && inv->tick_at_us <= at)
		return; /* armed earlier: it computes the next deadline then */
	uint64_t d = at - now;
	struct timeval tv = { .tv_sec = (time_t)(d / 1000000u), .tv_usec = (suseconds_t)(d % 1000000u) };
	if (event_add(inv->tick, &tv) == 0)
		inv->tick_at_us = at;
}

void inv_step_deadline(cs_inv *inv)
{
	inv->step_deadline_us = cs_now_us() + (uint64_t)STEP_TIMEOUT_MS * 1000u;
	inv_tick_rearm(inv);
}

/* ---- Public API ------------------------------------------------------------------------- */

/* status_interval, and the horizon TTL that follows it: the horizon must outlive several
 * publications (one per status interval), and stay well inside the fence TTL. */
static void set_status_interval(cs_inv *inv, const cs_config *cfg)
{
	inv->status_interval_ms = cfg->status_interval_ms > 0 ? cfg->status_interval_ms : 1000;
	inv->horizon_ttl_ms = CS_MIN(inv->fence_ttl_ms / 2, CS_MAX(10 * inv->status_interval_ms, 5000));
}

static int alloc_query_state(cs_inv *inv, const cs_config *cfg)
{
	int nq = cfg->nqueries;
	int *qkeys = calloc((size_t)(nq ? nq : 1), sizeof *qkeys);
	uint8_t *qbump = calloc((size_t)(nq ? nq : 1), 1);
	char (*mfp)[17] = calloc((size_t)(nq ? nq : 1), sizeof *mfp);
	if (!qkeys || !qbump || !mfp || cs_ledger_set_queries(inv->ledger, nq) != 0) {
		free(qkeys);
		free(qbump);
		free(mfp);
		return -1;
	}
	for (int q = 0; q < nq; q++)
		cs_query_map_fingerprint(&cfg->queries[q], cfg, mfp[q]);
	free(inv->qkeys);
	free(inv->qbump);
	free(inv->mfp);
	inv->qkeys = qkeys;
	inv->qbump = qbump;
	inv->mfp = mfp;
	inv->nq = nq;
	return 0;
}

cs_inv *cs_inv_new(struct event_base *base, const cs_config *cfg, const cs_inv_where *where,
        struct cs_pgserver *primary, char *err, size_t errlen)
{
	int shard = where ? where->shard : -1;
	if (shard >= cfg->nshards || (shard < 0 && cfg->nshards > 0)) {
		snprintf(err, errlen, "[invalidator] shard %d of %d [shard NAME] sections", shard,
		        cfg->nshards);
		return NULL;
	}
	/* shard k: its primary and slot (SHARDS.md section 4); else [primary] */
	const cs_shard_def *sd = shard >= 0 ? &cfg->shards[shard] : NULL;
	const char *conninfo = sd ? sd->conninfo : cfg->primary_conninfo;
	if (where && where->conninfo)
		conninfo = where->conninfo;
	const char *slot = sd && sd->slot ? sd->slot : cfg->inval_slot;
	if (conninfo == NULL) {
		snprintf(err, errlen, "[invalidator] enabled needs [primary] conninfo");
		return NULL;
	}
	if (!valid_name(slot, true)) {
		snprintf(err, errlen,
		        "[%s%s] slot: \"%s\" is not a valid slot name ([a-z0-9_], 1-63)",
		        sd && sd->slot ? "shard " : "invalidator", sd && sd->slot ? sd->name : "",
		        slot);
		return NULL;
	}
	if (!valid_name(cfg->inval_publication, false)) {
		snprintf(err, errlen, "[invalidator] publication: \"%s\" is not a plain identifier",
			cfg->inval_publication);
		return NULL;
	}
	cs_inv *inv = calloc(1, sizeof *inv);
	if (inv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	inv->base = base;
	inv->primary = primary;
	inv->shard = shard;
	if (sd)
		snprintf(inv->shard_name, sizeof inv->shard_name, "%s", sd->name);
	cs_pgconn_init(&inv->pc, base, on_conn_done, on_conn_addrs, inv);
	char ns[CS_NS_MAX + 1];
	cs_config_namespace(cfg, ns);
	if (sd) { /* every key under "<ns>@<shard>" (SHARDS.md section 2) */
		if (cs_ks_init_shard(&inv->ks, ns, sd->name, cfg->redis_cluster) != 0) {
			snprintf(err, errlen,
			        "[shard %s]: namespace \"%s\" and the shard name make no keyspace",
			        sd->name, ns);
			free(inv);
			return NULL;
		}
	} else if (!cfg->redis_cluster) {
		cs_ks_init(&inv->ks, ns);
	} else if (cs_ks_init_cluster(&inv->ks, ns) != 0) {
		snprintf(err, errlen, "[redis] namespace \"%s\" may not hold { or } on a cluster",
			ns);
		free(inv);
		return NULL;
	}
	inv->c1_del = true;
	inv->c_hold = true;
	inv->c2_raise = true;
	inv->v1_check = true;
	inv->pos_min = true;
	inv->pos_backoff = true;
	inv->open_watch = true;
	inv->c_deadlines = true;
	inv->cmds_limit = CMDS_MAX;
	inv->rq_max_cmds = RQ_MAX_CMDS;
	inv->rq_max_bytes = RQ_MAX_BYTES;
	inv->conninfo = strdup(conninfo);
	inv->slot = strdup(slot);
	inv->publication = strdup(cfg->inval_publication);
	inv->fence_ttl_ms = cfg->fence_ttl_ms;
	set_status_interval(inv, cfg);
	inv->receive_timeout_ms = cfg->receive_timeout_ms;
	inv->start_check = cfg->inval_start_check;
	inv->eviction_check = cfg->eviction_check;
	inv->fence_on = cfg->fence;
	cs_hist_init(&inv->stats.lag_us);
	cs_hist_init(&inv->stats.recv_us);
	cs_hist_init(&inv->stats.send_us);
	inv->map = cs_inv_map_new_shard(cfg, shard);
	inv->retry = evtimer_new(base, on_retry, inv);
	inv->tick = evtimer_new(base, on_tick, inv);
	inv->ledger = cs_ledger_new(FIFO_MAX, SAMPLES, 0);
	if (cfg->redis_cluster && inv_open_new(inv) != 0) {
		snprintf(err, errlen, "out of memory");
		cs_inv_free(inv);
		return NULL;
	}
	if (!inv->conninfo || !inv->slot || !inv->publication || !inv->map || !inv->retry ||
		!inv->tick || !inv->ledger || alloc_query_state(inv, cfg) != 0) {
		snprintf(err, errlen, "out of memory");
		cs_inv_free(inv);
		return NULL;
	}
	/* The engine's resolver (resolv_conf, dns_timeout), as the primary's pool uses. */
	cs_redis_opts ro = { .name = "invalidator", .url = cfg->redis_url,
		.timeout_ms = cfg->redis_timeout_ms, .max_pending = 1 << 20, .scripts = cs_scripts,
		.nscripts = CS_SCRIPT_COUNT,
		.resolver = primary ? cs_pgserver_resolver(primary) : NULL };
	cs_rc_opts rco = { .node = ro };
	char *seedbuf = NULL;
	char *seeds[CS_RC_MAX_NODES];
	if (cfg->redis_cluster) {
		/* the cluster's scripts after the single-Redis ones (fence.h); MOVED and ASK
		 * followed (a migration takes one of each), TRYAGAIN retried by cs_rc */
		ro.scripts = cs_scripts_cluster();
		ro.nscripts = CS_SCRIPT_ALL_COUNT;
		rco.node = ro;
		rco.cluster = true;
		rco.max_redirects = 5;
		seedbuf = strdup(cfg->redis_nodes ? cfg->redis_nodes : "");
		rco.nseeds = seedbuf ? cs_split_list(seedbuf, seeds, CS_RC_MAX_NODES) : 0;
		rco.seeds = (const char *const *)seeds;
	}
	inv->rc = cs_rc_new(base, &rco, err, errlen);
	free(seedbuf);
	if (inv->rc == NULL) {
		cs_inv_free(inv);
		return NULL;
	}
	/* The slot health query, a one-off statement on the primary's pool. */
	inv->health_q.sql = (char *)"SELECT wal_status, safe_wal_size FROM pg_replication_slots "
				    "WHERE slot_name = $1";
	inv->health_q.nparams = 1;
	inv->health_q.params[0].type = CS_PT_TEXT;
	inv->health_vals[0] = inv->slot;
	inv->health_lens[0] = (int)strlen(inv->slot);
	inv->health_fmts[0] = 1; /* text parameters travel in binary: no escaping */
	inv->health_params = (cs_pg_params){ .n = 1, .values = inv->health_vals,
		.lengths = inv->health_lens, .formats = inv->health_fmts };
	inv->safe_wal_size = -1;
	/* The slot's position once the stream holds it (inv_setup.c start_read): $2 is the
	 * walsender's PID, so a slot held by another connection (or a pool on another server)
	 * is told apart. */
	inv->start_q.sql = (char *)"SELECT confirmed_flush_lsn, active_pid::text = $2 "
				   "FROM pg_replication_slots WHERE slot_name = $1";
	inv->start_q.nparams = 2;
	inv->start_q.params[0].type = CS_PT_TEXT;
	inv->start_q.params[1].type = CS_PT_TEXT;
	connect_start(inv);
	inv_tick_rearm(inv); /* the first slot health check */
	return inv;
}

void cs_inv_stopping(cs_inv *inv)
{
	if (inv)
		inv->stopping = true;
}

void cs_inv_free(cs_inv *inv)
{
	if (inv == NULL)
		return;
	if (inv->ev_added)
		event_del(&inv->ev);
	if (inv->conn)
		PQfinish(inv->conn);
	inv->conn = NULL;
	cs_pgconn_cancel(&inv->pc);
	inv->epoch++;
	/* The engine frees its servers (answering our slot-health job) before us. */
	inv->primary = NULL;
	inv_open_abandon(inv); /* before the callbacks below: a record's failure is not retried */
	cs_rc_free(inv->rc); /* pending callbacks see a stale epoch */
	inv_rq_clear(inv);
	free(inv->rq);
	cs_pgo_decoder_free(inv->dec);
	if (inv->retry)
		event_free(inv->retry);
	if (inv->tick)
		event_free(inv->tick);
	cs_ledger_free(inv->ledger);
	inv_c_sync_free(inv);
	inv_open_free(inv);
	free(inv->cbuf);
	free(inv->kb);
	free(inv->qkeys);
	free(inv->qbump);
	free(inv->mfp);
	free(inv->kset);
	free(inv->arena);
	cs_inv_map_free(inv->map);
	free(inv->conninfo);
	free(inv->slot);
	free(inv->publication);
	free(inv);
}

int cs_inv_shard(const cs_inv *inv)
{
	return inv->shard;
}

const char *cs_inv_shard_name(const cs_inv *inv)
{
	return inv->shard_name;
}

const char *cs_inv_slot(const cs_inv *inv)
{
	return inv->slot;
}

cs_lsn_t cs_inv_mapped_upto(const cs_inv *inv)
{
	return inv->received > inv->stats.confirmed ? inv->received : inv->stats.confirmed;
}

int cs_inv_reload(cs_inv *inv, const cs_config *cfg)
{
	cs_inv_map *m = cs_inv_map_new_shard(cfg, inv->shard);
	if (m == NULL)
		return -1;
	/* Query indexes change: inv_restart the stream so no transaction straddles two maps;
	 * the slot replays anything unconfirmed with the new definitions. */
	inv_restart(inv, "query definitions reloaded", false);
	inv->receive_timeout_ms = cfg->receive_timeout_ms;
	/* The horizon in Redis has the old TTL, which may not outlive a longer new interval:
	 * the inv_restart above publishes it again with the new TTL once the stream is back
	 * (inv_streaming_begins), not one new interval after the last publication. */
	set_status_interval(inv, cfg);
	inv->attempt = 0;
	if (alloc_query_state(inv, cfg) != 0) {
		cs_inv_map_free(m);
		return -1;
	}
	if (inv->kset_n || inv->kset_cap) {
		free(inv->kset);
		inv->kset = NULL;
		inv->kset_cap = inv->kset_n = 0;
	}
	cs_inv_map_free(inv->map);
	inv->map = m;
	return 0;
}

void cs_inv_set_cluster_c1(cs_inv *inv, bool on)
{
	inv->c1_del = on;
}

void cs_inv_set_cluster_hold(cs_inv *inv, bool on)
{
	inv->c_hold = on;
}

void cs_inv_set_cluster_c2(cs_inv *inv, bool on)
{
	inv->c2_raise = on;
}

void cs_inv_set_cluster_v1(cs_inv *inv, bool on)
{
	inv->v1_check = on;
}

void cs_inv_set_cluster_pos(cs_inv *inv, bool pos_every, bool pos_min)
{
	inv->pos_every = pos_every;
	inv->pos_min = pos_min;
}

void cs_inv_set_cluster_v9b(cs_inv *inv, bool on)
{
	inv->open_watch = on;
}

void cs_inv_set_open_hold_ms(cs_inv *inv, int ms)
{
	inv->open_hold_ms = ms > 0 ? ms : 0;
}

void cs_inv_set_record_hold_ms(cs_inv *inv, int ms)
{
	inv->rec_hold_ms = ms > 0 ? ms : 0;
}

void cs_inv_set_loss_record_nowait(cs_inv *inv, bool nowait)
{
	inv->loss_record_nowait = nowait;
}

void cs_inv_set_open_hold_fixed(cs_inv *inv, bool fixed)
{
	inv->open_hold_fixed = fixed;
}

void cs_inv_set_tick_polled(cs_inv *inv, bool on)
{
	inv->tick_polled = on;
	inv_tick_rearm(inv);
}

void cs_inv_set_cluster_deadlines(cs_inv *inv, bool on)
{
	inv->c_deadlines = on;
	inv_tick_rearm(inv);
}

void cs_inv_set_pos_backoff(cs_inv *inv, bool on)
{
	inv->pos_backoff = on;
}

void cs_inv_set_cmd_limit(cs_inv *inv, int64_t limit)
{
	inv->cmds_limit = limit;
}

void cs_inv_set_retry_queue(cs_inv *inv, int64_t max_cmds, int64_t max_bytes)
{
	inv->rq_max_cmds = max_cmds;
	inv->rq_max_bytes = max_bytes > 0 ? max_bytes : RQ_MAX_BYTES;
}

void cs_inv_set_key_hook(cs_inv *inv, cs_inv_key_hook *fn, void *priv)
{
	inv->key_hook = fn;
	inv->key_hook_priv = priv;
}

const cs_inv_stats *cs_inv_get_stats(const cs_inv *inv)
{
	return &inv->stats;
}

void cs_inv_metrics(const cs_inv *inv, cs_metrics *m)
{
	const cs_inv_stats *s = &inv->stats;
	if (inv->rc)
		cs_rc_metrics(inv->rc, m, "invalidator"); /* cluster mode: per master */
	cs_lsn_t primary_lsn = inv->primary ? cs_pgserver_lsn(inv->primary) : 0;
	cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_state",
		"0 idle, 1 standby, 2 setup, 3 streaming (leader); cachesvc_invalidator_status has "
		"it labelled",
		(int)s->state, NULL);
	static const char *const states[] = { "idle", "standby", "setup", "streaming", NULL };
	cs_m_state(m, "cachesvc_invalidator_status",
		"Invalidator state (1 = current): idle, standby (another process leads), setup, "
		"streaming (leader)",
		"state", states, (unsigned)s->state < 4 ? states[s->state] : NULL, NULL);
	static const char *const statuses[] = { "reserved", "extended", "unreserved", "lost",
		NULL };
	cs_m_state(m, "cachesvc_invalidator_slot_wal_status", "The slot's wal_status (1 = current)",
		"status", statuses, inv->wal_status, NULL);
	cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_slot_safe_wal_bytes",
		"Bytes of WAL until the slot is lost (safe_wal_size); -1 unknown or unlimited",
		(double)inv->safe_wal_size, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_invalidator_confirmed_lsn",
		"Last WAL position confirmed to PostgreSQL, as a number",
		s->confirmed, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_invalidator_horizon_lsn",
		"Last horizon published (WAL position, as a number)",
		s->horizon, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_invalidator_bytes_behind",
		"Primary WAL position minus the confirmed position",
		primary_lsn > s->confirmed ? primary_lsn - s->confirmed : 0, NULL);
	/* Seconds behind: age of the oldest commit decoded but not yet acknowledged. */
	double behind = 0;
	int64_t ts;
	if (cs_ledger_oldest(inv->ledger, &ts)) {
		int64_t now_unix = cs_wall_us();
		if (now_unix > ts)
			behind = (double)(now_unix - ts) / 1e6;
	}
	cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_seconds_behind",
		"Age of the oldest commit not yet invalidated", behind, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_transactions_total",
		"Committed transactions decoded", s->transactions, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_rows_total", "Changed rows decoded",
		s->rows, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_keys_total", "Cache keys invalidated",
		s->keys, NULL);
	static const char *const reasons[CS_INV_REASONS] = { "truncate", "table", "unknown_key",
		"ddl" };
	for (int i = 0; i < CS_INV_REASONS; i++)
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_query_drops_total",
			"Whole-query invalidations (generation bumps), by reason",
			s->query_bumps[i],
			"reason", reasons[i], NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_debounced_total",
		"Table-level invalidations absorbed by min_lifetime", s->debounced, NULL);
	for (int q = 0; q < inv->nq; q++)
		if (cs_inv_map_depends(inv->map, q))
			cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_debounced_total",
				"Table-level invalidations absorbed by min_lifetime, per query",
				cs_ledger_absorbed(inv->ledger, q), "query",
				cs_inv_map_query_name(inv->map, q), NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_reconnects_total",
		"Replication connections started (first and again)", s->reconnects, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_slot_lost_total",
		"Replication slots found lost (invalidated) and recreated", s->slot_lost, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_slot_created_total",
		"Replication slots created because missing (first start, or dropped)",
		s->slot_created, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_redis_data_loss_total",
		"Redis lost data (flush, inv_restart, failover) and was resynchronised",
		s->redis_data_loss,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_gap_flushes_total",
		"Gap flushes (new or lost slot, or owed by a crash)", s->gap_flushes, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_start_moved_total",
		"Stream starts whose slot had moved between its read and START_REPLICATION (a "
		"leader handing over): synchronised from the position read again", s->start_moved, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_stale_primary_total",
		"Connections refused: an old primary (lower timeline) came back", s->stale_primary,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_redis_failures_total",
		"Invalidations Redis did not acknowledge (stream replayed)", s->redis_failures,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_receive_timeouts_total",
		"Replication streams restarted: nothing received for receive_timeout",
		s->receive_timeouts, NULL);
	/* review 10 F4: a V3 pause shows */
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_pauses_total",
	        "Times reading the stream stopped: commits waiting for Redis, or (a cluster) Redis "
	        "commands in flight or owed, at their bound",
	        s->pauses, NULL);
	cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_paused",
	        "1 while reading the stream is stopped, by reason: fifo (commits waiting for "
	        "Redis), commands (a cluster's Redis commands in flight or owed)",
	        inv->paused && inv->pause_fifo ? 1 : 0, "reason", "fifo", NULL);
	cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_paused",
	        "1 while reading the stream is stopped, by reason: fifo (commits waiting for "
	        "Redis), commands (a cluster's Redis commands in flight or owed)",
	        inv->paused && !inv->pause_fifo ? 1 : 0, "reason", "commands", NULL);
	cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_redis_commands_in_flight",
	        "Redis commands in flight or owed (a cluster's bound: review V3)",
	        (double)inv->cmds, NULL);
	inv_rq_metrics(inv, m);
	if (inv->ks.cluster) {
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_open_slot_losses_total",
		        "A bucket's hash slot was being migrated and one of its ends failed over, "
		        "restarted or changed: the namespace was flushed (review V9b)",
		        s->open_losses, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_open_slot_marked_total",
		        "Buckets marked in Redis as being migrated (their slot seen open)",
		        s->open_marked, NULL);
		cs_m_u64(m, CS_M_GAUGE, "cachesvc_invalidator_open_slot_marks",
		        "Buckets marked as being migrated (their slot seen open)", s->open_marks,
		        NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_open_slot_rounds_incomplete_total",
		        "Rounds of open slots not complete (a master unanswered or refusing CLUSTER "
		        "NODES / INFO server, a mark not written): the flushed position is held",
		        s->open_incomplete, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_open_slot_holds_total",
		        "No complete round of open slots for the hold bound: treated as a loss, the "
		        "namespace flushed (counted in open_slot_losses_total too)",
		        s->open_holds, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_open_slot_record_retries_total",
		        "A loss's record in bucket 0 (the DEL of its epoch copy, acknowledged before "
		        "the slot is let go) failed and was sent again",
		        s->open_record_retries, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_open_slot_record_fallbacks_total",
		        "A loss's record in bucket 0 not acknowledged 5 s after the loss (checked at "
		        "each failed try, so 5-10 s): the stream restarted anyway, this process "
		        "flushing at its next synchronisation",
		        s->open_record_fallbacks, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_open_slot_rounds_total",
		        "Rounds of open slots complete (every master answered, the marks written)",
		        s->open_rounds, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_open_slot_hold_bound_seconds",
		        "The hold bound now: max(60 s, 4 x cluster-node-timeout, 10 status "
		        "intervals), doubled after each hold up to 16x or 30 min, back at the base "
		        "once a round completes",
		        (double)s->open_hold_ms / 1000.0, NULL);
		cs_lsn_t conf = cs_ledger_confirmed(inv->ledger);
		cs_lsn_t safe = CS_MAX(inv_open_safe(inv), inv->slot_confirmed);
		cs_m_u64(m, CS_M_GAUGE, "cachesvc_invalidator_open_slot_safe_lag_bytes",
		        "WAL bytes confirmed but not yet vouched for by a complete round of open "
		        "slots (the flushed position is held that far behind)",
		        safe < conf ? conf - safe : 0, NULL);
	}
	cs_m_hist(m, "cachesvc_invalidator_lag_seconds",
		"Commit on the primary to invalidation acknowledged by Redis", &s->lag_us, NULL);
	/* the same lag at quantiles of the fine histogram, since the start */
	cs_m_quantiles(m, "cachesvc_invalidator_lag_quantile_seconds",
		"Invalidation lag at quantile q of every commit since the start, from the fine "
		"histogram", &s->lag_us);
	/* where the lag is spent: up to here the primary (commit, WAL, walsender, decoding) and
	 * the network; the rest of lag_seconds is this process and Redis */
	cs_m_quantiles(m, "cachesvc_invalidator_receive_lag_quantile_seconds",
		"Commit on the primary to its Commit message decoded by the invalidator, at "
		"quantile q of every commit since the start, from the fine histogram", &s->recv_us);
	/* and of that, commit -> the walsender sent the Commit message (both times on the
	 * primary's clock: no skew between hosts): the primary's part, plus any time its
	 * socket stayed full because this process did not read */
	cs_m_quantiles(m, "cachesvc_invalidator_send_lag_quantile_seconds",
		"Commit on the primary to the walsender sending its Commit message (both on the "
		"primary's clock; includes waits for this process to read a full socket), at "
		"quantile q of every commit since the start, each commit once, from the fine "
		"histogram", &s->send_us);
}
