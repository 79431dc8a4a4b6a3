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
#include "invalidator.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "cs_proto.h"
#include "fence.h"
#include "keyspace.h"
#include "ledger.h"
#include "log.h"
#include "mapping.h"
#include "pgconn.h"
#include "pgoutput.h"
#include "pgpool.h"
#include "redis.h"
#include "resolve.h"
#include "textutil.h"
#include "util.h"

#define FIFO_MAX	   65536  /* commits waiting for Redis; beyond: stop reading */
#define BATCH_KEYS	   128	  /* keys per INVAL script call (4 arguments each, see redis.c) */
#define QUERY_KEYS_MAX	   10000  /* keys of one query in one transaction; beyond: drop the query */
#define TXN_ARENA_MAX	   (64u << 20)
#define SAMPLES		   16384  /* horizon ring */
#define TICK_MS		   10
#define RETRY_BASE_MS	   200
#define RETRY_MAX_MS	   5000
#define STANDBY_RETRY_MS   1000
#define STABLE_US	   30000000u /* streaming this long resets the reconnect backoff */
#define STEP_TIMEOUT_MS	   10000  /* the connect, and each setup step */

/* Replication connection steps, in order. */
typedef enum step {
	ST_NONE = 0,
	ST_CONNECTING,	/* libpq's connect (pgconn.h; conn still NULL) */
	ST_IDENTIFY,	/* IDENTIFY_SYSTEM */
	ST_TIMELINE,	/* Redis: record (sysid, timeline); refuse an old primary that came back */
	ST_SLOT_QUERY,	/* does the slot exist, is it lost? */
	ST_SLOT_DROP,	/* DROP_REPLICATION_SLOT of a lost slot */
	ST_PRE_CREATE,	/* Redis: a gap flush is owed (durably) before the slot is created */
	ST_SLOT_CREATE, /* CREATE_REPLICATION_SLOT */
	ST_SYNC,	/* Redis: epoch check, gap flush or data-loss resync, owed bumps */
	ST_START,	/* START_REPLICATION */
	ST_STREAMING,	/* CopyBoth */
} step;

struct cs_inv {
	struct event_base *base;
	char *conninfo;
	char *slot, *publication;
	int64_t fence_ttl_ms, status_interval_ms, horizon_ttl_ms;
	int64_t receive_timeout_ms; /* 0: off */
	bool eviction_check;	    /* fence.c (i); off only as a test's negative control */
	bool fence_on;
	bool policy_busy;	    /* an INFO memory in flight */
	char policy[32];	    /* Redis's maxmemory-policy last seen ("" unknown) */
	struct cs_pgserver *primary;

	cs_inv_map *map;
	cs_redis *redis;
	cs_keyspace ks;
	char epoch_str[96];	 /* the epoch this leader synchronised with (keyspace.h) */
	size_t epoch_len;
	cs_inv_state state;

	/* replication connection */
	PGconn *conn;	      /* once connected */
	cs_pgconn pc;	      /* the host name lookup and the connect (pgconn.h) */
	cs_pgconn_lookup lookup; /* over the engine's resolver */
	step st;
	struct event ev;
	bool ev_added;
	uint64_t step_deadline_us;
	int attempt;
	struct event *retry, *tick;
	uint64_t epoch; /* bumped on every restart: late Redis replies are ignored */
	cs_pgo_decoder *dec;
	bool slot_missing, slot_lost;
	bool slot_was_lost; /* this setup found the slot lost (not merely missing) */
	bool gap_owed;	    /* this setup created the slot: the sync flushes */
	cs_lsn_t slot_confirmed; /* the existing slot's confirmed_flush_lsn */
	cs_lsn_t xlogpos;	 /* IDENTIFY_SYSTEM's WAL position */
	char sysid[32];		 /* IDENTIFY_SYSTEM's system identifier */
	uint32_t tli;		 /* IDENTIFY_SYSTEM's timeline */
	uint32_t stream_tli;	 /* the timeline of the last stream (0: none yet) */
	bool stale_server;	 /* this connection's server is on an old timeline: refused */
	char stale_recorded[64]; /* the newer "<sysid>:<tli>" recorded in Redis */
	/* Servers (host:port) refused as stale primaries: left out of a multi-host conninfo
	 * for a while, so libpq reaches the next host (target_session_attrs alone would pick
	 * the first writable one: the stale server again). */
	struct {
		char hostport[300];
		uint64_t until_us;
	} skip[8];
	cs_lsn_t consistent;	 /* CREATE_REPLICATION_SLOT's consistent point */
	cs_lsn_t sync_lsn;	 /* the resynchronisation's fence LSN */
	uint64_t streaming_since_us;
	uint64_t redis_ok_us;	 /* Redis last acknowledged one of this stream's writes */
	uint64_t last_recv_us;	 /* the last CopyData from the walsender (receive_timeout) */
	bool ever_synced;	 /* this process has synchronised with an epoch before */
	uint64_t last_status_us, last_horizon_us;
	bool status_pending; /* could not queue a status message: retry */
	bool paused;	     /* FIFO full: not reading the stream */

	/* Commits waiting for Redis and the confirmed position (I4), horizon samples, the
	 * min_lifetime debounce (ledger.h). min_lifetime: at most one table-level bump per
	 * query per min_lifetime. A bump that has to wait is recorded in Redis (<ns>:inv:deb)
	 * before its commit is confirmed, so it survives a crash and never holds back the
	 * confirmed position. */
	cs_ledger *ledger;

	/* positions */
	cs_lsn_t received;   /* highest LSN seen in the stream */
	bool first_start;    /* this setup created the slot on a first start (not a loss) */
	cs_lsn_t h_start;    /* the horizon's floor from the last sync (cs_ledger_set_floor) */
	cs_lsn_t pos_sent;   /* cs:inv:pos last raised to */
	bool pos_in_flight;

	/* the transaction being decoded */
	int64_t txn_commit_unix_us;
	char *arena;
	size_t arena_len, arena_cap;
	uint32_t *kset; /* open addressing: arena offset + 1 */
	size_t kset_cap, kset_n;
	int *qkeys;	 /* keys per query in this transaction */
	uint8_t *qbump;	 /* bit per cs_inv_reason: whole query to drop */
	int nq;

	cs_inv_stats stats;
	uint64_t last_reconnect_log_us;

	/* slot health, checked through the engine's primary pool */
	cs_pgjob health_job;
	bool health_busy;
	uint64_t last_health_us;
	char wal_status[16];	 /* reserved / extended / unreserved / lost / "" unknown */
	int64_t safe_wal_size;	 /* bytes until the slot is lost; -1 unknown or unlimited */
	cs_query_def health_q;
	const char *health_vals[1];
	int health_lens[1], health_fmts[1];
	cs_pg_params health_params;
};

static void conn_event(evutil_socket_t fd, short what, void *arg);
static void restart(cs_inv *inv, const char *why, bool standby);
static void send_status(cs_inv *inv, bool reply);

/* ---- Small helpers ---------------------------------------------------------------------- */

static void conn_wait(cs_inv *inv, short what)
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

/* ---- Transaction key set ---------------------------------------------------------------- */

typedef struct keyrec {
	int query;
	uint32_t len;
	char canon[]; /* len bytes */
} keyrec;

static keyrec *rec_at(cs_inv *inv, uint32_t off)
{
	return (keyrec *)(void *)(inv->arena + off);
}

static uint64_t key_hash(int q, const char *p, size_t n)
{
	return cs_fnv1a64(CS_FNV1A64_INIT ^ (uint64_t)q, p, n);
}

static void txn_reset(cs_inv *inv)
{
	inv->arena_len = 0;
	if (inv->kset_n) {
		memset(inv->kset, 0, inv->kset_cap * sizeof *inv->kset);
		inv->kset_n = 0;
	}
	if (inv->nq) {
		memset(inv->qkeys, 0, (size_t)inv->nq * sizeof *inv->qkeys);
		memset(inv->qbump, 0, (size_t)inv->nq);
	}
}

static void sink_query(void *priv, int q, cs_inv_reason reason)
{
	cs_inv *inv = priv;
	if (q >= 0 && q < inv->nq)
		inv->qbump[q] |= (uint8_t)(1u << reason);
}

static int kset_grow(cs_inv *inv)
{
	size_t cap = inv->kset_cap ? inv->kset_cap * 2 : 1024;
	uint32_t *t = calloc(cap, sizeof *t);
	if (t == NULL)
		return -1;
	for (size_t i = 0; i < inv->kset_cap; i++) {
		if (!inv->kset[i])
			continue;
		keyrec *r = rec_at(inv, inv->kset[i] - 1);
		size_t s = key_hash(r->query, r->canon, r->len) & (cap - 1);
		while (t[s])
			s = (s + 1) & (cap - 1);
		t[s] = inv->kset[i];
	}
	free(inv->kset);
	inv->kset = t;
	inv->kset_cap = cap;
	return 0;
}

static void sink_key(void *priv, int q, const char *canon, size_t len)
{
	cs_inv *inv = priv;
	if (q < 0 || q >= inv->nq || inv->qbump[q])
		return; /* the whole query goes anyway */
	if (inv->qkeys[q] >= QUERY_KEYS_MAX) {
		/* A bulk change: dropping the query's generation is O(1) and, at this size,
		 * loses little that was not going anyway. */
		inv->qbump[q] |= 1u << CS_INV_UNKNOWN_KEY;
		return;
	}
	if ((inv->kset_n + 1) * 2 > inv->kset_cap && kset_grow(inv) != 0) {
		inv->qbump[q] |= 1u << CS_INV_UNKNOWN_KEY;
		return;
	}
	uint64_t h = key_hash(q, canon, len);
	size_t s = h & (inv->kset_cap - 1);
	while (inv->kset[s]) {
		keyrec *r = rec_at(inv, inv->kset[s] - 1);
		if (r->query == q && r->len == len && memcmp(r->canon, canon, len) == 0)
			return; /* already collected */
		s = (s + 1) & (inv->kset_cap - 1);
	}
	size_t need = (sizeof(keyrec) + len + 7) & ~(size_t)7;
	if (inv->arena_len + need > inv->arena_cap) {
		size_t cap = inv->arena_cap ? inv->arena_cap * 2 : 65536;
		while (cap < inv->arena_len + need)
			cap *= 2;
		char *a = cap <= TXN_ARENA_MAX ? realloc(inv->arena, cap) : NULL;
		if (a == NULL) {
			inv->qbump[q] |= 1u << CS_INV_UNKNOWN_KEY;
			return;
		}
		inv->arena = a;
		inv->arena_cap = cap;
	}
	keyrec *r = rec_at(inv, (uint32_t)inv->arena_len);
	r->query = q;
	r->len = (uint32_t)len;
	memcpy(r->canon, canon, len);
	inv->kset[s] = (uint32_t)inv->arena_len + 1;
	inv->arena_len += need;
	inv->kset_n++;
	inv->qkeys[q]++;
}

/* ---- Confirmation ----------------------------------------------------------------------- */

typedef struct posctx {
	cs_inv *inv;
	uint64_t epoch;
	cs_lsn_t lsn;
} posctx;

static bool epoch_error(const redisReply *reply)
{
	return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "EPOCH", 5) == 0;
}

static void on_pos_reply(cs_redis *r, redisReply *reply, void *priv);

/* Publishes the confirmed position (read-your-writes) if it moved; one write in flight. */
static void publish_pos(cs_inv *inv)
{
	cs_lsn_t confirmed = cs_ledger_confirmed(inv->ledger);
	if (inv->pos_in_flight || confirmed <= inv->pos_sent || !cs_redis_ready(inv->redis) ||
		inv->st != ST_STREAMING)
		return;
	char hex[17];
	cs_lsn_hex(confirmed, hex);
	/* with the run_id check: a position written to another Redis run (a failover the
	 * connection survived) would let SYNC take a loss for a clean restart */
	const char *argv[] = { inv->ks.pos, inv->ks.epoch, hex, "0", inv->epoch_str, "1" };
	size_t lens[] = { inv->ks.pos_len, inv->ks.epoch_len, 16, 1, inv->epoch_len, 1 };
	posctx *c = malloc(sizeof *c);
	if (c == NULL)
		return;
	*c = (posctx){ .inv = inv, .epoch = inv->epoch, .lsn = confirmed };
	if (cs_redis_script(inv->redis, CS_SCRIPT_RAISE, on_pos_reply, c, 2, 6, argv, lens) == 0)
		inv->pos_in_flight = true;
	else
		free(c);
}

static void on_pos_reply(cs_redis *r, redisReply *reply, void *priv)
{
	posctx *c = priv;
	cs_inv *inv = c->inv;
	bool current = c->epoch == inv->epoch;
	if (current)
		inv->pos_in_flight = false;
	if (current && reply && reply->type == REDIS_REPLY_STRING && c->lsn > inv->pos_sent)
		inv->pos_sent = c->lsn;
	free(c);
	if (current && epoch_error(reply)) {
		restart(inv, reply->str, false);
		return;
	}
	if (current)
		publish_pos(inv);
}

static void advance(cs_inv *inv)
{
	bool moved = false;
	int64_t now_unix = cs_wall_us(), commit_unix;
	while (cs_ledger_advance(inv->ledger, &commit_unix)) {
		/* one sample per commit; a clock step backwards counts as 0 */
		cs_hist_record(&inv->stats.lag_us,
			now_unix > commit_unix ? (uint64_t)(now_unix - commit_unix) : 0);
		moved = true;
	}
	if (!moved)
		return;
	inv->stats.confirmed = cs_ledger_confirmed(inv->ledger);
	publish_pos(inv);
	if (inv->paused && cs_ledger_may_resume(inv->ledger)) {
		inv->paused = false;
		inv->last_recv_us = cs_now_us(); /* silence while paused was ours */
		conn_wait(inv, EV_READ); /* read the stream again */
	}
}

typedef struct cmdctx {
	cs_inv *inv;
	uint64_t epoch;
	uint64_t seq;	  /* FIFO entry, or UINT64_MAX for none */
	int query;	  /* generation bumps: which query */
} cmdctx;

static void on_cmd_reply(cs_redis *r, redisReply *reply, void *priv)
{
	cmdctx *c = priv;
	cs_inv *inv = c->inv;
	bool ok = reply != NULL && reply->type != REDIS_REPLY_ERROR;
	if (c->epoch == inv->epoch) {
		if (!ok) {
			inv->stats.redis_failures++;
			restart(inv, reply ? reply->str : "redis did not acknowledge an invalidation", false);
		} else if (c->seq != UINT64_MAX) {
			inv->redis_ok_us = cs_now_us();
			cs_ledger_release(inv->ledger, c->seq);
			advance(inv);
		}
	}
	free(c);
}

static cmdctx *cmd_new(cs_inv *inv, uint64_t seq)
{
	cmdctx *c = calloc(1, sizeof *c);
	if (c) {
		c->inv = inv;
		c->epoch = inv->epoch;
		c->seq = seq;
		c->query = -1;
	}
	return c;
}

/* Sends a generation bump for query q with its query-level fence at lsn (fence.c (e));
 * debounced: it also clears the owed bump it performs. Returns 0 when sent (c owned by the
 * callback). */
static int send_bump(cs_inv *inv, int q, cmdctx *c, cs_lsn_t lsn, bool debounced)
{
	const char *name = cs_inv_map_query_name(inv->map, q);
	char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME], hex[17];
	size_t gl = cs_ks_gen(&inv->ks, genkey, sizeof genkey, name);
	size_t fl = cs_ks_qfence(&inv->ks, qfkey, sizeof qfkey, name);
	cs_lsn_hex(lsn, hex);
	const char *argv[] = { genkey, qfkey, inv->ks.epoch, inv->ks.fmax, inv->ks.deb,
		inv->ks.channel, name, hex, inv->epoch_str };
	size_t lens[] = { gl, fl, inv->ks.epoch_len, inv->ks.fmax_len, inv->ks.deb_len,
		inv->ks.channel_len, strlen(name), 16, inv->epoch_len };
	c->query = q;
	if (debounced)
		return cs_redis_script(inv->redis, CS_SCRIPT_GEN_BUMP, on_cmd_reply, c, 5, 9, argv, lens);
	/* without the debounce hash: shift the arguments over its slot */
	const char *av[] = { argv[0], argv[1], argv[2], argv[3], argv[5], argv[6], argv[7], argv[8] };
	size_t al[] = { lens[0], lens[1], lens[2], lens[3], lens[5], lens[6], lens[7], lens[8] };
	return cs_redis_script(inv->redis, CS_SCRIPT_GEN_BUMP, on_cmd_reply, c, 4, 8, av, al);
}

/* Queues the finished transaction's invalidations and its FIFO entry. */
static void commit_txn(cs_inv *inv, cs_lsn_t end_lsn)
{
	uint64_t seq;
	if (cs_ledger_commit(inv->ledger, end_lsn, inv->txn_commit_unix_us, &seq) != 0) {
		/* not reached: reading pauses while cs_ledger_should_pause */
		restart(inv, "commit FIFO full", false);
		return;
	}
	inv->stats.transactions++;
	bool sent_fences = false;
	uint64_t now = cs_now_us();

	/* Whole-query invalidations. */
	for (int q = 0; q < inv->nq; q++) {
		uint8_t b = inv->qbump[q];
		if (!b)
			continue;
		for (int reason = 0; reason < 3; reason++)
			if (b & (1u << reason))
				inv->stats.query_bumps[reason]++;
		bool table_only = b == (1u << CS_INV_TABLE);
		int64_t min_life = cs_inv_map_min_lifetime(inv->map, q);
		uint64_t window = table_only && min_life > 0 ? (uint64_t)min_life * 1000u : 0, due;
		if (cs_ledger_debounce(inv->ledger, q, now, window, end_lsn, &due)) {
			/* Debounced: one bump at the end of the window covers this commit too.
			 * The owed bump is recorded in Redis before the commit is confirmed, so
			 * the last change is never lost (a restarted leader performs it), and
			 * the confirmed position never waits for the window. */
			inv->stats.debounced++;
			char hex[17];
			cs_lsn_hex(end_lsn, hex);
			const char *name = cs_inv_map_query_name(inv->map, q);
			const char *argv[] = { inv->ks.deb, inv->ks.epoch, name, hex, inv->epoch_str };
			size_t lens[] = { inv->ks.deb_len, inv->ks.epoch_len, strlen(name), 16,
				inv->epoch_len };
			cmdctx *c = cmd_new(inv, seq);
			if (c == NULL || cs_redis_script(inv->redis, CS_SCRIPT_DEB_RECORD, on_cmd_reply, c,
						 2, 5, argv, lens) != 0) {
				free(c);
				restart(inv, "redis refused a debounce record", false);
				return;
			}
			cs_ledger_hold(inv->ledger, seq);
			continue;
		}
		cmdctx *c = cmd_new(inv, seq);
		if (c == NULL || send_bump(inv, q, c, end_lsn, false) != 0) {
			free(c);
			restart(inv, "redis refused a generation bump", false);
			return;
		}
		cs_ledger_bump_sent(inv->ledger, q, now);
		cs_ledger_hold(inv->ledger, seq);
	}

	/* Keys, in batches: DEL the entry, raise its fence to end_lsn. */
	char lsnhex[17], px[24];
	cs_lsn_hex(end_lsn, lsnhex);
	int pl = snprintf(px, sizeof px, "%lld", (long long)inv->fence_ttl_ms);
	size_t off = 0;
	while (off < inv->arena_len) {
		const char *argv[4 * BATCH_KEYS + 6];
		size_t lens[4 * BATCH_KEYS + 6];
		char keybuf[BATCH_KEYS][CS_KEY_MAX];
		char genbuf[BATCH_KEYS][CS_NAME_MAX + CS_MAX_NAME];
		int n = 0;
		const char *args_q[BATCH_KEYS], *args_p[BATCH_KEYS];
		size_t len_q[BATCH_KEYS], len_p[BATCH_KEYS];
		while (off < inv->arena_len && n < BATCH_KEYS) {
			keyrec *r = rec_at(inv, (uint32_t)off);
			off += (sizeof(keyrec) + r->len + 7) & ~(size_t)7;
			if (inv->qbump[r->query])
				continue;
			const char *name = cs_inv_map_query_name(inv->map, r->query);
			size_t fl = cs_ks_fence(&inv->ks, keybuf[n], sizeof keybuf[n], name, r->canon, r->len);
			size_t gl = cs_ks_gen(&inv->ks, genbuf[n], sizeof genbuf[n], name);
			if (fl == 0 || gl == 0)
				continue; /* cannot happen: mapping bounds canon to CS_CANON_MAX */
			argv[2 * n] = keybuf[n];
			lens[2 * n] = (size_t)fl;
			argv[2 * n + 1] = genbuf[n];
			lens[2 * n + 1] = (size_t)gl;
			args_q[n] = name;
			len_q[n] = strlen(name);
			args_p[n] = r->canon;
			len_p[n] = r->len;
			n++;
		}
		if (n == 0)
			break;
		int k = 2 * n;
		argv[k] = inv->ks.epoch;
		lens[k++] = inv->ks.epoch_len;
		argv[k] = inv->ks.fmax;
		lens[k++] = inv->ks.fmax_len;
		int nkeys = k;
		argv[k] = lsnhex;
		lens[k++] = 16;
		argv[k] = px;
		lens[k++] = (size_t)pl;
		argv[k] = inv->ks.ns;
		lens[k++] = inv->ks.nslen;
		argv[k] = inv->epoch_str;
		lens[k++] = inv->epoch_len;
		for (int i = 0; i < n; i++) {
			argv[k] = args_q[i];
			lens[k++] = len_q[i];
			argv[k] = args_p[i];
			lens[k++] = len_p[i];
		}
		cmdctx *c = cmd_new(inv, seq);
		if (c == NULL ||
			cs_redis_script(inv->redis, CS_SCRIPT_INVAL, on_cmd_reply, c, nkeys, k, argv, lens) != 0) {
			free(c);
			restart(inv, "redis refused an invalidation", false);
			return;
		}
		inv->stats.keys += (uint64_t)n;
		cs_ledger_hold(inv->ledger, seq);
		sent_fences = true;
	}
	if (sent_fences)
		cs_ledger_sample(inv->ledger, cs_now_us(), end_lsn); /* for the horizon */
	txn_reset(inv);
	advance(inv);
	if (cs_ledger_should_pause(inv->ledger) && !inv->paused) {
		/* Redis is far behind: stop reading the stream (the walsender waits). */
		inv->paused = true;
		if (inv->ev_added) {
			event_del(&inv->ev);
			inv->ev_added = false;
		}
	}
}

/* Due debounced bumps: one generation bump releases every commit that waited for it. */
static void run_debounced(cs_inv *inv)
{
	uint64_t now = cs_now_us();
	cs_lsn_t lsn;
	for (int q = cs_ledger_next_due(inv->ledger, 0, now, &lsn); q >= 0;
		q = cs_ledger_next_due(inv->ledger, q + 1, now, &lsn)) {
		if (!cs_redis_ready(inv->redis))
			continue;
		cmdctx *c = cmd_new(inv, UINT64_MAX);
		if (c == NULL)
			continue;
		if (send_bump(inv, q, c, lsn, true) != 0) {
			free(c);
			continue; /* retried next tick; the owed bump is in Redis meanwhile */
		}
		cs_ledger_due_sent(inv->ledger, q, now);
	}
}

/* ---- Stream messages -------------------------------------------------------------------- */

static void handle_xlogdata(cs_inv *inv, const cs_pgo_xlogdata *w)
{
	cs_pgo_msg m;
	if (w->wal_end > inv->received)
		inv->received = w->wal_end;
	if (cs_pgo_decode(inv->dec, w->payload, w->len, &m) != 0) {
		char why[300];
		snprintf(why, sizeof why, "undecodable pgoutput message: %s", cs_pgo_errstr(inv->dec));
		restart(inv, why, false);
		return;
	}
	static const cs_inv_sink sink_tmpl = { sink_key, sink_query, NULL };
	cs_inv_sink sink = sink_tmpl;
	sink.priv = inv;
	switch (m.type) {
	case 'B':
		txn_reset(inv);
		cs_ledger_begin(inv->ledger);
		inv->txn_commit_unix_us = cs_pgo_time_to_unix_us(m.begin.commit_ts);
		break;
	case 'I':
	case 'U':
	case 'D':
	case 'T':
		inv->stats.rows++;
		cs_inv_map_change(inv->map, inv->dec, &m, &sink);
		break;
	case 'C':
		inv->txn_commit_unix_us = cs_pgo_time_to_unix_us(m.commit.commit_ts);
		commit_txn(inv, m.commit.end_lsn);
		break;
	case 'S':
	case 'E':
	case 'c':
	case 'A':
		restart(inv, "streamed transaction message without streaming requested", false);
		break;
	default:
		break; /* R (cached by the decoder), Y, O, M: nothing to invalidate */
	}
}

static void handle_copydata(cs_inv *inv, const uint8_t *buf, size_t len)
{
	char kind;
	cs_pgo_xlogdata w;
	cs_pgo_keepalive k;
	if (cs_pgo_parse_copydata(buf, len, &kind, &w, &k) != 0) {
		restart(inv, "malformed CopyData from the walsender", false);
		return;
	}
	if (kind == 'w') {
		handle_xlogdata(inv, &w);
		return;
	}
	if (k.wal_end > inv->received)
		inv->received = k.wal_end;
	/* Idle (nothing decoded and not yet acknowledged, not inside a transaction): the
	 * position may follow wal_end (ledger.h). */
	if (cs_ledger_keepalive(inv->ledger, k.wal_end)) {
		inv->stats.confirmed = cs_ledger_confirmed(inv->ledger);
		publish_pos(inv);
	}
	if (k.reply_requested)
		send_status(inv, false);
}

static void send_status(cs_inv *inv, bool reply)
{
	if (inv->st != ST_STREAMING || inv->conn == NULL)
		return;
	uint8_t msg[CS_PGO_STATUS_LEN];
	int64_t now = cs_pgo_time_from_unix_us(cs_wall_us());
	/* write = what we received; flush = what Redis acknowledged (the slot's
	 * confirmed_flush_lsn); apply unused for logical slots. */
	/* flush never passes the position Redis acknowledged (<ns>:inv:pos): the sync tells a
	 * restart that kept everything (inv:pos >= the slot's confirmed) from a loss by it */
	cs_lsn_t confirmed = cs_ledger_confirmed(inv->ledger);
	cs_lsn_t flush = confirmed < inv->pos_sent ? confirmed : inv->pos_sent;
	cs_pgo_build_status(msg, inv->received, flush, 0, now, reply);
	int rc = PQputCopyData(inv->conn, (const char *)msg, (int)sizeof msg);
	if (rc < 0) {
		restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	inv->status_pending = rc == 0;
	inv->last_status_us = cs_now_us();
	if (PQflush(inv->conn) < 0)
		restart(inv, PQerrorMessage(inv->conn), false);
}

static void stream_read(cs_inv *inv)
{
	while (inv->conn && inv->st == ST_STREAMING && !inv->paused) {
		char *buf = NULL;
		int n = PQgetCopyData(inv->conn, &buf, 1);
		if (n > 0) {
			inv->last_recv_us = cs_now_us();
			handle_copydata(inv, (const uint8_t *)buf, (size_t)n);
			PQfreemem(buf);
			continue;
		}
		if (n == 0)
			return;
		char why[300];
		if (n == -1) {
			PGresult *r = PQgetResult(inv->conn);
			snprintf(why, sizeof why, "replication stream ended: %s",
				r ? PQresultErrorMessage(r) : "");
			PQclear(r);
		} else {
			snprintf(why, sizeof why, "%s", PQerrorMessage(inv->conn));
		}
		cs_chomp(why);
		restart(inv, why, false);
		return;
	}
}

/* ---- Setup steps ------------------------------------------------------------------------ */

static void send_cmd(cs_inv *inv, step next, const char *sql)
{
	inv->st = next;
	inv->step_deadline_us = cs_now_us() + (uint64_t)STEP_TIMEOUT_MS * 1000u;
	if (!PQsendQuery(inv->conn, sql)) {
		restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	int rc = PQflush(inv->conn);
	if (rc < 0) {
		restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	conn_wait(inv, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* ---- Redis steps of the setup ---------------------------------------------------------- */

typedef struct setupctx {
	cs_inv *inv;
	uint64_t epoch;
} setupctx;

static void on_setup_reply(cs_redis *r, redisReply *reply, void *priv);
static void start_replication(cs_inv *inv);
static void setup_next(cs_inv *inv, step done);
static void restart(cs_inv *inv, const char *why, bool standby);

static void redis_step(cs_inv *inv, step st, int script, int nkeys, int argc, const char **argv,
	const size_t *lens)
{
	inv->st = st;
	inv->step_deadline_us = cs_now_us() + (uint64_t)STEP_TIMEOUT_MS * 1000u;
	setupctx *c = malloc(sizeof *c);
	if (c == NULL) {
		restart(inv, "out of memory", false);
		return;
	}
	*c = (setupctx){ .inv = inv, .epoch = inv->epoch };
	if (cs_redis_script(inv->redis, script, on_setup_reply, c, nkeys, argc, argv, lens) != 0) {
		free(c);
		restart(inv, "redis is not ready for the invalidator's setup", false);
	}
}

/* After IDENTIFY_SYSTEM: record this primary's (system identifier, timeline) in Redis, raised
 * only; a server of the same system on a lower timeline than the newest recorded is an old
 * primary that came back (listed first in a multi-host conninfo, or restarted after a
 * failover): never streamed from. */
static void timeline_check(cs_inv *inv)
{
	char tli[16];
	snprintf(tli, sizeof tli, "%u", inv->tli);
	const char *argv[] = { inv->ks.timeline, inv->ks.pos, inv->sysid, tli };
	size_t lens[] = { inv->ks.timeline_len, inv->ks.pos_len, strlen(inv->sysid), strlen(tli) };
	redis_step(inv, ST_TIMELINE, CS_SCRIPT_TIMELINE, 2, 4, argv, lens);
}

static void timeline_done(cs_inv *inv, const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		reply->element[0]->type != REDIS_REPLY_INTEGER ||
		reply->element[1]->type != REDIS_REPLY_STRING) {
		restart(inv, "unexpected reply to the timeline script", false);
		return;
	}
	long long status = reply->element[0]->integer;
	const redisReply *prev = reply->element[1];
	snprintf(inv->stale_recorded, sizeof inv->stale_recorded, "%.*s", (int)prev->len, prev->str);
	if (status == 0) {
		/* look at its slot first: an old primary still holding it should drop it */
		inv->stale_server = true;
	} else if (status == 2) {
		cs_warn("invalidator: %s:%s has system identifier %s, not the one recorded (%s): "
			"another database cluster; recorded timeline %u", PQhost(inv->conn),
			PQport(inv->conn), inv->sysid, inv->stale_recorded, inv->tli);
	}
	setup_next(inv, ST_TIMELINE);
}

/* The server is an old primary (a timeline below the newest recorded for its system): loud
 * error, counted; its host is left out of the conninfo for a while and the connection is
 * retried with backoff. */
static void stale_refuse(cs_inv *inv)
{
	char host[300], why[700];
	snprintf(host, sizeof host, "%s:%s", PQhost(inv->conn), PQport(inv->conn));
	inv->stats.stale_primary++;
	const char *rec_tli = strchr(inv->stale_recorded, ':');
	cs_error("invalidator: %s is a STALE PRIMARY: system %s on timeline %u, but timeline %s of "
		 "that system was seen (a failover promoted another server; this one came back "
		 "without following it): never streaming from it%s", host, inv->sysid, inv->tli,
		rec_tli ? rec_tli + 1 : "?",
		inv->slot_missing ? "" : "; it still holds the slot");
	if (!inv->slot_missing)
		cs_error("invalidator: drop slot \"%s\" on %s after rejoining it as a replica "
			 "(SELECT pg_drop_replication_slot('%s')): it holds WAL there", inv->slot, host,
			inv->slot);
	uint64_t now = cs_now_us();
	int k = 0;
	for (int i = 0; i < (int)CS_ARRAY_LEN(inv->skip); i++) {
		if (strcmp(inv->skip[i].hostport, host) == 0 || inv->skip[i].until_us < now) {
			k = i;
			break;
		}
		if (inv->skip[i].until_us < inv->skip[k].until_us)
			k = i;
	}
	snprintf(inv->skip[k].hostport, sizeof inv->skip[k].hostport, "%s", host);
	inv->skip[k].until_us = now + 60u * 1000000u;
	snprintf(why, sizeof why, "%s is a stale primary (timeline %u < %s); skipping it for 60 s",
		host, inv->tli, rec_tli ? rec_tli + 1 : "?");
	restart(inv, why, false);
}

/* host, hostaddr and port lists of the conninfo without the servers being skipped, in
 * out_host/out_addr/out_port ("" when not given). False when nothing is skipped (or
 * everything would be: then libpq's own order is kept). */
static bool conninfo_without_skipped(cs_inv *inv, char *out_host, char *out_addr, char *out_port,
	size_t cap)
{
	uint64_t now = cs_now_us();
	bool any = false;
	for (int i = 0; i < (int)CS_ARRAY_LEN(inv->skip); i++)
		any = any || (inv->skip[i].hostport[0] && inv->skip[i].until_us > now);
	if (!any)
		return false;
	PQconninfoOption *opts = PQconninfoParse(inv->conninfo, NULL);
	if (opts == NULL)
		return false;
	char *host = NULL, *addr = NULL, *port = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = strdup(o->val);
		else if (strcmp(o->keyword, "hostaddr") == 0)
			addr = strdup(o->val);
		else if (strcmp(o->keyword, "port") == 0)
			port = strdup(o->val);
	}
	PQconninfoFree(opts);
	char *hs[64], *as[64], *ps[64];
	int nh = cs_split_list(host, hs, 64), na = cs_split_list(addr, as, 64), np = cs_split_list(port, ps, 64);
	int n = nh > na ? nh : na;
	bool changed = false;
	size_t lh = 0, la = 0, lp = 0;
	out_host[0] = out_addr[0] = out_port[0] = '\0';
	int kept = 0;
	for (int i = 0; n > 1 && i < n; i++) {
		const char *h = i < nh && hs[i][0] ? hs[i] : i < na ? as[i] : "";
		const char *p = np == 1 ? ps[0] : i < np && ps[i][0] ? ps[i] : "5432";
		char hp[300];
		snprintf(hp, sizeof hp, "%s:%s", h, p);
		bool skip = false;
		for (int k = 0; k < (int)CS_ARRAY_LEN(inv->skip); k++)
			skip = skip || (inv->skip[k].until_us > now && strcmp(inv->skip[k].hostport, hp) == 0);
		if (skip) {
			changed = true;
			continue;
		}
		const char *sep = kept ? "," : "";
		if (nh)
			lh += (size_t)snprintf(out_host + lh, cap - CS_MIN(lh, cap), "%s%s", sep, i < nh ? hs[i] : "");
		if (na)
			la += (size_t)snprintf(out_addr + la, cap - CS_MIN(la, cap), "%s%s", sep, i < na ? as[i] : "");
		if (np)
			lp += (size_t)snprintf(out_port + lp, cap - CS_MIN(lp, cap), "%s%s", sep, np == 1 ? ps[0] : i < np ? ps[i] : "");
		kept++;
	}
	free(host);
	free(addr);
	free(port);
	return changed && kept > 0 && lh < cap && la < cap && lp < cap;
}

/* The slot is missing: owe a gap flush durably first, so a crash between CREATE and the
 * flush still flushes at the next start. */
static void pre_create(cs_inv *inv)
{
	char gap[CS_NAME_MAX], mark[CS_NAME_MAX];
	size_t gl = cs_ks_gap(&inv->ks, gap, sizeof gap, inv->slot);
	size_t ml = cs_ks_slotmark(&inv->ks, mark, sizeof mark, inv->slot);
	const char *argv[] = { gap, mark };
	size_t lens[] = { gl, ml };
	redis_step(inv, ST_PRE_CREATE, CS_SCRIPT_PRE_CREATE, 2, 2, argv, lens);
}

/* Before streaming: check the epoch (Redis lost data?), perform an owed gap flush, learn the
 * owed debounced bumps (CS_SCRIPT_SYNC). */
static void sync_state(cs_inv *inv)
{
	cs_lsn_t lsn = inv->xlogpos;
	if (inv->consistent > lsn)
		lsn = inv->consistent;
	/* positions of an earlier stream count only on the same timeline: after a failover the
	 * old primary's WAL past the switch point never happened on the new one */
	bool same_tli = inv->stream_tli == 0 || inv->stream_tli == inv->tli;
	if (!same_tli)
		inv->received = 0;
	if (same_tli && inv->received > lsn)
		lsn = inv->received;
	if (same_tli && cs_ledger_confirmed(inv->ledger) > lsn)
		lsn = cs_ledger_confirmed(inv->ledger);
	if (inv->slot_confirmed > lsn)
		lsn = inv->slot_confirmed; /* a standby may see a new slot past its IDENTIFY */
	inv->sync_lsn = lsn;
	int n = inv->nq;
	size_t argc = 7 + 2 * (size_t)n + 6 + 2 * (size_t)n;
	const char **argv = calloc(argc, sizeof *argv);
	size_t *lens = calloc(argc, sizeof *lens);
	char (*keys)[CS_NAME_MAX + CS_MAX_NAME] = calloc(2 * (size_t)n + 1, sizeof *keys);
	char gap[CS_NAME_MAX], mark[CS_NAME_MAX], hex[17], px[24], rnd[17], whex[17] = "";
	if (argv == NULL || lens == NULL || keys == NULL) {
		free(argv);
		free(lens);
		free(keys);
		restart(inv, "out of memory", false);
		return;
	}
	size_t k = 0;
	argv[k] = inv->ks.epoch;
	lens[k++] = inv->ks.epoch_len;
	argv[k] = inv->ks.horizon;
	lens[k++] = inv->ks.horizon_len;
	argv[k] = gap;
	lens[k++] = cs_ks_gap(&inv->ks, gap, sizeof gap, inv->slot);
	argv[k] = mark;
	lens[k++] = cs_ks_slotmark(&inv->ks, mark, sizeof mark, inv->slot);
	argv[k] = inv->ks.deb;
	lens[k++] = inv->ks.deb_len;
	argv[k] = inv->ks.pos;
	lens[k++] = inv->ks.pos_len;
	argv[k] = inv->ks.fmax;
	lens[k++] = inv->ks.fmax_len;
	for (int q = 0; q < n; q++) {
		const char *name = cs_inv_map_query_name(inv->map, q);
		argv[k] = keys[2 * q];
		lens[k++] = cs_ks_gen(&inv->ks, keys[2 * q], sizeof keys[0], name);
		argv[k] = keys[2 * q + 1];
		lens[k++] = cs_ks_qfence(&inv->ks, keys[2 * q + 1], sizeof keys[0], name);
	}
	int nkeys = (int)k;
	cs_lsn_hex(lsn, hex);
	snprintf(px, sizeof px, "%lld", (long long)inv->horizon_ttl_ms);
	snprintf(rnd, sizeof rnd, "%016llx", (unsigned long long)cs_rand64());
	if (inv->slot_confirmed)
		cs_lsn_hex(inv->slot_confirmed, whex);
	const char *fixed[] = { inv->ks.channel, whex, rnd, hex, px, inv->gap_owed ? "1" : "0" };
	for (int i = 0; i < 6; i++) {
		argv[k] = fixed[i];
		lens[k++] = strlen(fixed[i]);
	}
	for (int q = 0; q < n; q++) {
		argv[k] = cs_inv_map_query_name(inv->map, q);
		lens[k] = strlen(argv[k]);
		k++;
		argv[k] = cs_inv_map_depends(inv->map, q) ? "1" : "0";
		lens[k++] = 1;
	}
	redis_step(inv, ST_SYNC, CS_SCRIPT_SYNC, nkeys, (int)k, argv, lens);
	free(argv);
	free(lens);
	free(keys);
}

static void sync_done(cs_inv *inv, const redisReply *reply)
{
	char a[CS_LSN_STRLEN];
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
		reply->element[0]->type != REDIS_REPLY_INTEGER ||
		reply->element[1]->type != REDIS_REPLY_STRING ||
		reply->element[1]->len >= (long)sizeof inv->epoch_str ||
		reply->element[3]->type != REDIS_REPLY_ARRAY) {
		restart(inv, "unexpected reply to the resynchronisation script", false);
		return;
	}
	long long status = reply->element[0]->integer;
	memcpy(inv->epoch_str, reply->element[1]->str, (size_t)reply->element[1]->len);
	inv->epoch_str[reply->element[1]->len] = '\0';
	inv->epoch_len = (size_t)reply->element[1]->len;
	cs_lsn_format(inv->sync_lsn, a);
	bool had_mark = reply->element[2]->type == REDIS_REPLY_INTEGER && reply->element[2]->integer == 1;
	if (status == 2) {
		inv->stats.redis_data_loss++;
		cs_error("invalidator: Redis LOST DATA (the namespace's epoch was written by another "
			 "Redis run: a restart without the last writes, or a failover): bumped every "
			 "query's generation with a query-level fence at %s and raised the horizon to "
			 "it; caching resumes with data at least that new", a);
	} else if (status == 3 && (inv->ever_synced || had_mark)) {
		inv->stats.redis_data_loss++;
		cs_error("invalidator: Redis LOST DATA (the namespace's epoch is gone: FLUSHALL/FLUSHDB "
			 "or a restart without persistence): raised the horizon to %s; caching resumes "
			 "with data at least that new", a);
	} else if (status == 4) {
		cs_warn("invalidator: Redis restarted or failed over, and kept every invalidation up to "
			"the slot's confirmed position: nothing lost; new epoch");
	} else if (status == 3) {
		cs_info("invalidator: no cache state in Redis for namespace \"%s\" (first start): "
			"horizon %s", inv->ks.ns, a);
	}
	if (status == 1) {
		inv->stats.gap_flushes++;
		/* On a first start there is nothing cached to drop: worth a line, not a warning. */
		cs_log(inv->first_start ? CS_LOG_INFO : CS_LOG_WARNING,
			"invalidator: gap flushed%s: every dependent query's generation bumped with a "
			"query-level fence at %s", inv->first_start ? " (first start)" : "", a);
	}
	inv->first_start = false;
	/* The horizon: fences of earlier leaders above the slot's confirmed position are
	 * rewritten by the replay; after a flush or a loss, nothing below sync_lsn may fill. */
	inv->h_start = (status > 0 && status != 4) || inv->slot_confirmed == 0 ? inv->sync_lsn : inv->slot_confirmed;
	inv->gap_owed = false;
	inv->ever_synced = true;
	inv->pos_sent = 0; /* Redis may have lost inv:pos: publish it again (it never lowers) */
	const redisReply *deb = reply->element[3];
	uint64_t now = cs_now_us();
	for (size_t i = 0; i + 1 < deb->elements; i += 2) {
		const redisReply *nm = deb->element[i], *lv = deb->element[i + 1];
		uint64_t lsn;
		if (nm->type != REDIS_REPLY_STRING || lv->type != REDIS_REPLY_STRING ||
			!cs_lsn_unhex(lv->str, (size_t)lv->len, &lsn))
			continue;
		for (int q = 0; q < inv->nq; q++) {
			const char *name = cs_inv_map_query_name(inv->map, q);
			/* owed by an earlier leader: perform it at once */
			if (strlen(name) == (size_t)nm->len && memcmp(name, nm->str, (size_t)nm->len) == 0)
				cs_ledger_owe(inv->ledger, q, lsn, now);
		}
	}
	/* The stream restarts at the slot's confirmed position: confirm nothing past it that
	 * this stream has not had acknowledged itself. */
	cs_ledger_start_at(inv->ledger, inv->slot_confirmed ? inv->slot_confirmed : inv->consistent);
	inv->stats.confirmed = cs_ledger_confirmed(inv->ledger);
	start_replication(inv);
}

static void on_setup_reply(cs_redis *r, redisReply *reply, void *priv)
{
	setupctx *c = priv;
	cs_inv *inv = c->inv;
	bool current = c->epoch == inv->epoch;
	free(c);
	if (!current)
		return;
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		inv->stats.redis_failures++;
		restart(inv, reply ? reply->str : "redis did not answer the invalidator's setup", false);
		return;
	}
	if (inv->st == ST_PRE_CREATE) {
		bool had = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
		if (inv->slot_was_lost || had) {
			inv->stats.slot_lost++;
			cs_error("invalidator: slot \"%s\" was LOST (%s): changes may have been missed; "
				 "recreating it and dropping every dependent query's cache entries (generation "
				 "bump with a query-level fence)", inv->slot,
				inv->slot_was_lost ? "invalidated, e.g. past max_slot_wal_keep_size"
						   : "it streamed before and is gone: dropped, or a failover to a "
						     "server without it");
		} else {
			inv->stats.slot_created++;
			inv->first_start = true;
			cs_info("invalidator: slot \"%s\" does not exist and never streamed for this "
				"namespace (first start): creating it", inv->slot);
		}
		char sql[512];
		snprintf(sql, sizeof sql,
			"CREATE_REPLICATION_SLOT \"%s\" LOGICAL pgoutput (SNAPSHOT 'nothing')", inv->slot);
		send_cmd(inv, ST_SLOT_CREATE, sql);
		return;
	}
	if (inv->st == ST_SYNC)
		sync_done(inv, reply);
	if (inv->st == ST_TIMELINE)
		timeline_done(inv, reply);
}

static void start_replication(cs_inv *inv)
{
	char sql[512];
	snprintf(sql, sizeof sql,
		"START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (\"proto_version\" '1', "
		"\"publication_names\" '\"%s\"', \"messages\" 'true')",
		inv->slot, inv->publication);
	send_cmd(inv, ST_START, sql);
}

/* One setup command's result has arrived: record what it says. Returns false when the
 * connection was restarted (stop handling it). */
static bool setup_result(cs_inv *inv, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char msg[400];
	snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
	cs_chomp(msg);
	switch (inv->st) {
	case ST_IDENTIFY:
		if (st != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4 ||
			PQgetisnull(res, 0, 3)) {
			restart(inv, st == PGRES_TUPLES_OK ? "IDENTIFY_SYSTEM: not a database connection" : msg,
				false);
			return false;
		}
		(void)cs_lsn_parse(PQgetvalue(res, 0, 2), &inv->xlogpos);
		/* systemid, timeline: an old primary that came back has the system's id and a
		 * lower timeline than the newest recorded (timeline_check) */
		snprintf(inv->sysid, sizeof inv->sysid, "%s", PQgetvalue(res, 0, 0));
		inv->tli = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
		if (inv->sysid[0] == '\0' || strspn(inv->sysid, "0123456789") != strlen(inv->sysid) ||
			inv->tli == 0) {
			restart(inv, "IDENTIFY_SYSTEM: no system identifier or timeline", false);
			return false;
		}
		return true;
	case ST_SLOT_QUERY:
		if (st != PGRES_TUPLES_OK) {
			restart(inv, msg, false);
			return false;
		}
		inv->slot_missing = PQntuples(res) == 0;
		inv->slot_lost = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
			strcmp(PQgetvalue(res, 0, 0), "lost") == 0;
		inv->slot_confirmed = 0;
		if (PQntuples(res) == 1 && PQnfields(res) > 1 && !PQgetisnull(res, 0, 1))
			(void)cs_lsn_parse(PQgetvalue(res, 0, 1), &inv->slot_confirmed);
		return true;
	case ST_SLOT_DROP:
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			restart(inv, msg, false);
			return false;
		}
		return true;
	case ST_SLOT_CREATE:
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			restart(inv, msg, false);
			return false;
		}
		/* slot_name, consistent_point, snapshot_name, output_plugin: changes committed
		 * before the consistent point are never decoded (fence.c, the gap) */
		inv->consistent = 0;
		if (st == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) > 1 &&
			!PQgetisnull(res, 0, 1))
			(void)cs_lsn_parse(PQgetvalue(res, 0, 1), &inv->consistent);
		if (inv->consistent == 0) {
			restart(inv, "CREATE_REPLICATION_SLOT returned no consistent point", false);
			return false;
		}
		return true;
	case ST_START:
		if (sqlstate && strcmp(sqlstate, "55006") == 0) {
			/* the slot is active elsewhere: another invalidator leads */
			restart(inv, msg, true);
			return false;
		}
		if (sqlstate && strcmp(sqlstate, "55000") == 0 && strstr(msg, "can no longer get changes")) {
			inv->slot_lost = true; /* invalidated: drop, recreate, flush */
			return true;
		}
		restart(inv, msg, false);
		return false;
	default:
		return true;
	}
}

/* The command of step `done` completed: send the next one. */
static void setup_next(cs_inv *inv, step done)
{
	char sql[512];
	switch (done) {
	case ST_IDENTIFY:
		timeline_check(inv);
		return;
	case ST_TIMELINE: /* also for a stale server: the slot it holds is reported */
		snprintf(sql, sizeof sql,
			"SELECT wal_status, confirmed_flush_lsn FROM pg_replication_slots "
			"WHERE slot_name = '%s'", inv->slot);
		send_cmd(inv, ST_SLOT_QUERY, sql);
		return;
	case ST_SLOT_QUERY:
	case ST_START: /* START_REPLICATION failed on a lost slot */
		if (inv->stale_server) {
			stale_refuse(inv);
		} else if (inv->slot_lost) {
			snprintf(sql, sizeof sql, "DROP_REPLICATION_SLOT \"%s\"", inv->slot);
			send_cmd(inv, ST_SLOT_DROP, sql);
		} else if (inv->slot_missing) {
			pre_create(inv);
		} else if (done == ST_SLOT_QUERY) {
			sync_state(inv);
		} else {
			restart(inv, "START_REPLICATION failed", false);
		}
		return;
	case ST_SLOT_DROP:
		inv->slot_lost = false;
		inv->slot_missing = true;
		inv->slot_was_lost = true;
		setup_next(inv, ST_SLOT_QUERY);
		return;
	case ST_SLOT_CREATE:
		inv->slot_missing = false;
		inv->slot_was_lost = false;
		inv->slot_confirmed = 0;
		inv->gap_owed = true;
		sync_state(inv);
		return;
	default:
		return;
	}
}

static void streaming_begins(cs_inv *inv)
{
	char a[CS_LSN_STRLEN];
	inv->st = ST_STREAMING;
	inv->state = CS_INV_STREAMING;
	inv->stats.state = inv->state;
	inv->streaming_since_us = cs_now_us(); /* the backoff resets once this lasts */
	inv->last_recv_us = inv->streaming_since_us;
	inv->stream_tli = inv->tli;
	cs_ledger_set_floor(inv->ledger, inv->h_start);
	cs_info("invalidator: streaming from slot \"%s\" (publication \"%s\"), horizon %s", inv->slot,
		inv->publication, cs_lsn_format(inv->h_start, a));
	inv->last_horizon_us = 0; /* publish at the next tick */
	conn_wait(inv, EV_READ);
	stream_read(inv);
}

/* ---- Connection events ------------------------------------------------------------------ */

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	cs_inv *inv = arg;
	if (fd >= 0)
		inv->ev_added = false;
	if (inv->conn == NULL)
		return;
	if (inv->st == ST_PRE_CREATE || inv->st == ST_SYNC || inv->st == ST_TIMELINE)
		return; /* waiting for Redis (the step deadline bounds it) */
	if ((what & EV_READ) && !PQconsumeInput(inv->conn)) {
		restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	int frc = PQflush(inv->conn);
	if (frc < 0) {
		restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	if (inv->st == ST_STREAMING) {
		stream_read(inv);
		if (inv->conn && inv->st == ST_STREAMING && !inv->paused)
			conn_wait(inv, frc == 1 || inv->status_pending ? EV_READ | EV_WRITE : EV_READ);
		if (inv->status_pending && inv->conn)
			send_status(inv, false);
		return;
	}
	/* setup: collect the command's results */
	while (!PQisBusy(inv->conn)) {
		PGresult *res = PQgetResult(inv->conn);
		if (res == NULL) {
			setup_next(inv, inv->st);
			return;
		}
		if (inv->st == ST_START && PQresultStatus(res) == PGRES_COPY_BOTH) {
			PQclear(res);
			streaming_begins(inv);
			return;
		}
		bool go_on = setup_result(inv, res);
		PQclear(res);
		if (!go_on)
			return;
	}
	conn_wait(inv, frc == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* The connect ended (pgconn.h): a failed lookup or connect restarts with backoff. */
static void on_conn_done(cs_pgconn *pc, cs_pgconn_status st, PGconn *conn, const char *msg,
	void *priv)
{
	cs_inv *inv = priv;
	if (st == CS_PGCONN_TIMEOUT) {
		restart(inv, "replication setup timed out", false);
		return;
	}
	if (st != CS_PGCONN_READY) {
		restart(inv, msg, false);
		return;
	}
	inv->conn = conn;
	/* a standby retrying the slot stays "standby" (metric and log) until it leads or fails
	 * otherwise: state changes are logged, not states */
	if (inv->state != CS_INV_STANDBY)
		inv->state = CS_INV_SETUP;
	inv->stats.state = inv->state;
	send_cmd(inv, ST_IDENTIFY, "IDENTIFY_SYSTEM");
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
	if (conninfo_without_skipped(inv, hosts, addrs, ports, sizeof hosts)) {
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
		restart(inv, err, false);
		return;
	}
	inv->dec = cs_pgo_decoder_new();
	if (inv->dec == NULL) {
		restart(inv, "out of memory", false);
		return;
	}
	inv->st = ST_CONNECTING;
}

/* Host names resolved on the loop (resolve.h), not by libpq (it would block the loop): the
 * connect then runs on the conninfo plus the hostaddr list (host kept for TLS and messages;
 * the stale-server filter filters both lists alike). A failed lookup is a failed connect
 * (on_conn_done): restart with backoff. */
static void on_conn_addrs(cs_pgconn *pc, const char *addrs, void *priv)
{
	cs_inv *inv = priv;
	size_t n = strlen(inv->conninfo) + (addrs ? strlen(addrs) : 0) + 16;
	char *resolved = malloc(n);
	if (resolved == NULL) {
		restart(inv, "out of memory", false);
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
			restart(inv, "out of memory", false);
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
static void restart(cs_inv *inv, const char *why, bool standby)
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
	inv->paused = false;
	inv->pos_in_flight = false;
	inv->status_pending = false;
	txn_reset(inv);
	inv->epoch_str[0] = '\0';
	inv->epoch_len = 0;
	int64_t delay;
	if (standby) {
		if (inv->state != CS_INV_STANDBY)
			cs_info("invalidator: standing by: %s", reason);
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

static void on_horizon_reply(cs_redis *r, redisReply *reply, void *priv)
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
		inv->redis_ok_us = cs_now_us();
	}
	else if (epoch_error(reply))
		restart(inv, reply->str, false);
}

static void publish_horizon(cs_inv *inv)
{
	uint64_t now = cs_now_us();
	/* every fence sent at or before now + V - F may be gone within V */
	cs_lsn_t horizon = cs_ledger_horizon(inv->ledger, now, (uint64_t)inv->fence_ttl_ms * 1000u,
		(uint64_t)inv->horizon_ttl_ms * 1000u);
	char hex[17], px[24];
	cs_lsn_hex(horizon, hex);
	int pl = snprintf(px, sizeof px, "%lld", (long long)inv->horizon_ttl_ms);
	/* with the epoch and run_id check: a FLUSHALL or a Redis restart is noticed here
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
	if (cs_redis_script(inv->redis, CS_SCRIPT_RAISE, on_horizon_reply, c, nkeys, nkeys + 4, argv,
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
	if (err != 0 || res == NULL || PQntuples(res) != 1) {
		cs_debug("invalidator: slot health check: %s", err ? msg : "no such slot");
		return; /* primary busy or down; the stream itself says more */
	}
	const char *st = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
	if (strcmp(st, inv->wal_status) != 0) {
		if (strcmp(st, "unreserved") == 0)
			cs_warn("invalidator: slot \"%s\" wal_status is unreserved: it is about to pass "
				"max_slot_wal_keep_size and be lost (%s bytes left); the invalidator is "
				"too far behind", inv->slot, PQgetisnull(res, 0, 1) ? "?" : PQgetvalue(res, 0, 1));
		else if (strcmp(st, "lost") == 0)
			cs_error("invalidator: slot \"%s\" wal_status is lost", inv->slot);
		else if (inv->wal_status[0])
			cs_info("invalidator: slot \"%s\" wal_status is %s", inv->slot, st);
		snprintf(inv->wal_status, sizeof inv->wal_status, "%s", st);
	}
	inv->safe_wal_size = PQgetisnull(res, 0, 1) ? -1 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
}

/* Redis's maxmemory-policy, re-read every 10 s (startup refused unsafe ones, check.c):
 * with fences, allkeys-* (or one not known) may evict generations, query-level fences and
 * the eviction state (fence.c (i)). Logged when it changes. */
static void on_policy(cs_redis *r, redisReply *reply, void *priv)
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
		cs_error("invalidator: Redis maxmemory-policy is now %s: with fence = on it may evict "
			 "generations and query-level fences, and stale entries may then be served: set "
			 "volatile-lru or volatile-lfu (fence.c (i))", pol);
	else if (inv->policy[0])
		cs_info("invalidator: Redis maxmemory-policy is now %s", pol);
	snprintf(inv->policy, sizeof inv->policy, "%s", pol);
}

static void check_policy(cs_inv *inv)
{
	if (!inv->fence_on || inv->policy_busy || !cs_redis_ready(inv->redis))
		return;
	const char *argv[] = { "INFO", "memory" };
	size_t lens[] = { 4, 6 };
	if (cs_redis_cmd(inv->redis, on_policy, inv, 2, argv, lens) == 0)
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

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	cs_inv *inv = arg;
	uint64_t now = cs_now_us();
	if (inv->conn && inv->st != ST_STREAMING && now > inv->step_deadline_us) {
		restart(inv, "replication setup timed out", false);
		return;
	}
	check_slot_health(inv);
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
		restart(inv, why, false);
		return;
	}
	run_debounced(inv);
	uint64_t interval = (uint64_t)inv->status_interval_ms * 1000u;
	if (now - inv->last_status_us >= interval || inv->status_pending)
		send_status(inv, true); /* reply requested: an idle stream answers with its position */
	if (inv->st == ST_STREAMING && now - inv->last_horizon_us >= interval && cs_redis_ready(inv->redis))
		publish_horizon(inv);
	publish_pos(inv);
}

/* ---- Public API ------------------------------------------------------------------------- */

/* status_interval, and the horizon TTL that follows it: the horizon must outlive several
 * publications (one per status interval), and stay well inside the fence TTL. */
static void set_status_interval(cs_inv *inv, const cs_config *cfg)
{
	inv->status_interval_ms = cfg->status_interval_ms > 0 ? cfg->status_interval_ms : 1000;
	inv->horizon_ttl_ms = CS_MIN(inv->fence_ttl_ms / 2, CS_MAX(10 * inv->status_interval_ms, 5000));
}

static int alloc_query_state(cs_inv *inv, int nq)
{
	int *qkeys = calloc((size_t)(nq ? nq : 1), sizeof *qkeys);
	uint8_t *qbump = calloc((size_t)(nq ? nq : 1), 1);
	if (!qkeys || !qbump || cs_ledger_set_queries(inv->ledger, nq) != 0) {
		free(qkeys);
		free(qbump);
		return -1;
	}
	free(inv->qkeys);
	free(inv->qbump);
	inv->qkeys = qkeys;
	inv->qbump = qbump;
	inv->nq = nq;
	return 0;
}

cs_inv *cs_inv_new(struct event_base *base, const cs_config *cfg, struct cs_pgserver *primary,
	char *err, size_t errlen)
{
	if (cfg->primary_conninfo == NULL) {
		snprintf(err, errlen, "[invalidator] enabled needs [primary] conninfo");
		return NULL;
	}
	if (!valid_name(cfg->inval_slot, true)) {
		snprintf(err, errlen, "[invalidator] slot: \"%s\" is not a valid slot name ([a-z0-9_], 1-63)",
			cfg->inval_slot);
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
	cs_pgconn_init(&inv->pc, base, on_conn_done, on_conn_addrs, inv);
	char ns[CS_NS_MAX + 1];
	cs_config_namespace(cfg, ns);
	cs_ks_init(&inv->ks, ns);
	inv->conninfo = strdup(cfg->primary_conninfo);
	inv->slot = strdup(cfg->inval_slot);
	inv->publication = strdup(cfg->inval_publication);
	inv->fence_ttl_ms = cfg->fence_ttl_ms;
	set_status_interval(inv, cfg);
	inv->receive_timeout_ms = cfg->receive_timeout_ms;
	inv->eviction_check = cfg->eviction_check;
	inv->fence_on = cfg->fence;
	cs_hist_init(&inv->stats.lag_us);
	inv->map = cs_inv_map_new(cfg);
	inv->retry = evtimer_new(base, on_retry, inv);
	inv->tick = event_new(base, -1, EV_PERSIST, on_tick, inv);
	inv->ledger = cs_ledger_new(FIFO_MAX, SAMPLES, 0);
	if (!inv->conninfo || !inv->slot || !inv->publication || !inv->map || !inv->retry ||
		!inv->tick || !inv->ledger || alloc_query_state(inv, cfg->nqueries) != 0) {
		snprintf(err, errlen, "out of memory");
		cs_inv_free(inv);
		return NULL;
	}
	/* The engine's resolver (resolv_conf, dns_timeout), as the primary's pool uses. */
	cs_redis_opts ro = { .name = "invalidator", .url = cfg->redis_url,
		.timeout_ms = cfg->redis_timeout_ms, .max_pending = 1 << 20, .scripts = cs_scripts,
		.nscripts = CS_SCRIPT_COUNT,
		.resolver = primary ? cs_pgserver_resolver(primary) : NULL };
	inv->redis = cs_redis_new(base, &ro, err, errlen);
	if (inv->redis == NULL) {
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
	struct timeval tv = cs_tv_ms(TICK_MS);
	event_add(inv->tick, &tv);
	connect_start(inv);
	return inv;
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
	cs_redis_free(inv->redis); /* pending callbacks see a stale epoch */
	cs_pgo_decoder_free(inv->dec);
	if (inv->retry)
		event_free(inv->retry);
	if (inv->tick)
		event_free(inv->tick);
	cs_ledger_free(inv->ledger);
	free(inv->qkeys);
	free(inv->qbump);
	free(inv->kset);
	free(inv->arena);
	cs_inv_map_free(inv->map);
	free(inv->conninfo);
	free(inv->slot);
	free(inv->publication);
	free(inv);
}

int cs_inv_reload(cs_inv *inv, const cs_config *cfg)
{
	cs_inv_map *m = cs_inv_map_new(cfg);
	if (m == NULL)
		return -1;
	/* Query indexes change: restart the stream so no transaction straddles two maps;
	 * the slot replays anything unconfirmed with the new definitions. */
	restart(inv, "query definitions reloaded", false);
	inv->receive_timeout_ms = cfg->receive_timeout_ms;
	/* The horizon in Redis has the old TTL, which may not outlive a longer new interval:
	 * the restart above publishes it again with the new TTL once the stream is back
	 * (streaming_begins), not one new interval after the last publication. */
	set_status_interval(inv, cfg);
	inv->attempt = 0;
	if (alloc_query_state(inv, cfg->nqueries) != 0) {
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

const cs_inv_stats *cs_inv_get_stats(const cs_inv *inv)
{
	return &inv->stats;
}

void cs_inv_metrics(const cs_inv *inv, cs_metrics *m)
{
	const cs_inv_stats *s = &inv->stats;
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
	static const char *const reasons[] = { "truncate", "table", "unknown_key" };
	for (int i = 0; i < 3; i++)
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
		"Redis lost data (flush, restart, failover) and was resynchronised",
		s->redis_data_loss,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_gap_flushes_total",
		"Gap flushes (new or lost slot, or owed by a crash)", s->gap_flushes, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_stale_primary_total",
		"Connections refused: an old primary (lower timeline) came back", s->stale_primary,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_redis_failures_total",
		"Invalidations Redis did not acknowledge (stream replayed)", s->redis_failures,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_receive_timeouts_total",
		"Replication streams restarted: nothing received for receive_timeout",
		s->receive_timeouts, NULL);
	cs_m_hist(m, "cachesvc_invalidator_lag_seconds",
		"Commit on the primary to invalidation acknowledged by Redis", &s->lag_us, NULL);
	/* The same lag at quantiles of the fine histogram (within 0.8%), since the start: the
	 * Prometheus buckets above only bound a quantile between two bucket edges. */
	static const char *const qn[] = { "0.5", "0.9", "0.99", "0.999" };
	static const double qv[] = { 0.5, 0.9, 0.99, 0.999 };
	for (size_t i = 0; i < sizeof qv / sizeof qv[0]; i++)
		cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_lag_quantile_seconds",
			"Invalidation lag at quantile q of every commit since the start, from the fine "
			"histogram",
			(double)cs_hist_quantile(&s->lag_us, qv[i]) / 1e6, "q", qn[i], NULL);
}
