/* pgpool.c - PostgreSQL servers and their pools of non-blocking libpq connections. */
#include "pgpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "cs_proto.h"
#include "log.h"
#include "pgconn.h"
#include "resolve.h"
#include "util.h"

#define FAST_MONITOR_MS	   5	 /* monitor period while read-your-writes requests wait */
#define BAN_BASE_MS	   250	 /* first ban after a failure; doubles up to BAN_MAX_MS */
#define BAN_MAX_MS	   30000
#define TIMEOUT_GRACE_US   200000 /* past the job deadline before the connection is dropped */
#define PREPARED_MAX	   256	  /* named statements kept per connection (least recently used
				   * one DEALLOCATEd past it) */

/* Connection states, in the order a connection walks through them. */
typedef enum pc_state {
	PC_EMPTY = 0,  /* no PGconn */
	PC_CONNECTING, /* host names being resolved (dns), then PQconnectPoll in progress */
	PC_IDLE,       /* connected, nothing in flight */
	PC_BUSY,       /* a pipeline (job) or the monitor query is in flight */
} pc_state;

/* What each result group of a job's pipeline answers, in order. */
typedef enum step_kind {
	ST_DEALLOC,	/* DEALLOCATE ALL (a reload), or DEALLOCATE of an evicted statement */
	ST_LSN_PREPARE, /* PREPARE of the LSN statement (see lsn_sql_replica) */
	ST_LSN,		/* EXECUTE of the LSN statement */
	ST_PREPARE,	/* PREPARE of the job's statement */
	ST_DATA,	/* EXECUTE of the statement */
	ST_SYNC,	/* the pipeline's sync point */
} step_kind;

/* The LSN a job's data is at least as new as, read by a statement of its own before the data
 * query (REFERENCE.md 6): on a replica the replay LSN, NULL (0) when it is out of recovery
 * (promoted since the monitor's last round: its data is then the primary's, with no LSN
 * bound); on the primary the current LSN. Prepared once per connection under a fixed name
 * per text (a replica's and the primary's differ; neither can be a data statement's name,
 * "cs_" + 32 hex digits), and again after anything that may have dropped it: a new
 * connection, a DEALLOCATE ALL. Sent unnamed instead, it was parsed, analysed and planned by
 * the server on every job. */
static const char lsn_sql_replica[] =
	"SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() END::text";
static const char lsn_sql_primary[] = "SELECT pg_current_wal_lsn()::text";
#define LSN_STMT_REPLICA "cs_lsn_replica"
#define LSN_STMT_PRIMARY "cs_lsn_primary"

/* A named statement prepared on a connection. Its name is derived from the definition
 * (a 128-bit hash of the SQL text and parameter types, see stmt_id), never from a query's
 * position in the config, so a job always runs the SQL of the definition it carries, across
 * reloads that reorder, add or change queries. The SQL and types are kept too: a job
 * whose hash matches an entry with another definition (a collision) uses the unnamed
 * statement instead, so correctness never rests on the hash. */
typedef struct stmt {
	bool valid;
	uint64_t id[2];
	uint64_t used; /* last use (the connection's clock), for LRU eviction */
	char *sql;
	int nparams;
	Oid types[CS_MAX_PARAMS];
} stmt;

typedef struct pgconn {
	cs_pgserver *srv;
	PGconn *conn;	     /* the connection once connected (PC_IDLE, PC_BUSY) */
	cs_pgconn pc;	     /* the lookup and connect (PC_CONNECTING; pgconn.h) */
	pc_state state;
	bool monitor;	     /* the server's health/lag connection, not in pipeline mode */
	struct event ev;     /* EV_READ | EV_PERSIST while connected (conn_watch): added once;
			      * | EV_WRITE only while libpq holds unsent output (conn_want_write) */
	bool ev_added, want_write;
	uint64_t deadline_us; /* the job/monitor query in flight (connects: pgconn.h) */

	cs_pgjob *job;
	step_kind steps[7];
	int nsteps, step;
	int preparing;	 /* stmts[] slot whose PREPARE is in this pipeline, or -1 */
	int dealloc;	 /* stmts[] slot whose DEALLOCATE is in this pipeline; -2: ALL; -1 none */
	uint32_t dealloc_epoch; /* the server epoch a DEALLOCATE ALL in flight catches up to */
	uint64_t prep_id[2];	 /* hash of the statement being prepared */
	PGresult *data;
	cs_lsn_t lsn;
	int err;
	bool retryable;
	bool rerun;	     /* the error is worth running the job again here (conflict) */
	char errmsg[256];

	uint32_t epoch;	    /* server epoch when the prepared set was last cleared */
	uint32_t options_gen; /* the server's options_gen when this connection was opened */
	bool stmts_unknown; /* the server's prepared set may differ from stmts[]: DEALLOCATE ALL */
	bool lsn_prepared;  /* the LSN statement (LSN_STMT_REPLICA or, on the primary,
			     * LSN_STMT_PRIMARY) is prepared on this connection */
	stmt *stmts;	    /* PREPARED_MAX slots, allocated on first PREPARE */
	uint64_t clock;	    /* LRU clock */
} pgconn;

struct cs_pgserver {
	struct event_base *base;
	char *name;
	char *conninfo;
	bool primary;
	unsigned tiers;
	int pool_size;
	cs_pgpool_opts opts;
	cs_pgconn_lookup lookup; /* over opts.resolver (resolve.h) */
	char *options; /* the conninfo's own options= first, then cachesvc's (see below) */

	pgconn *conns;
	pgconn mon;
	struct event *sweep;	/* on_sweep, at the earliest deadline (sweep_at) */
	uint64_t sweep_at_us;	/* the deadline it is armed for; 0: not armed */
	struct event *mon_timer;
	uint64_t fast_until_us;

	cs_pgjob *qhead, *qtail;
	int queued;

	cs_pgserver_state state;
	int fail_attempt;
	int breaks;	       /* connections broken since the last success (see conn_broken) */
	uint64_t mon_break_us; /* the monitor's session last broke (review 55 F1) */
	bool mon_round_ok;     /* a round succeeded on the monitor's current session */
	uint64_t banned_until_us;
	bool in_recovery;
	bool promoted;	       /* a replica whose monitor saw it out of recovery */
	bool retired;	       /* removed or changed by a reload: takes no new work */
	uint32_t tli;	       /* timeline: the primary's, or the replica's received one (0 unknown) */
	cs_lsn_t prev_received; /* the WAL receiver's position at the previous monitor round */
	uint32_t primary_tli;  /* the primary's timeline, for a replica (0 unknown) */
	bool old_timeline;     /* a replica receiving WAL of a timeline below the primary's */
	cs_lsn_t lsn;
	cs_lsn_t primary_lsn;
	int64_t lag_ms;
	uint32_t epoch;
	uint32_t options_gen;  /* bumped when `options` changes: older connections reconnect */

	cs_pgserver_notify_cb *notify;
	void *notify_priv;

	cs_pgserver_info stats;
};

static void conn_event(evutil_socket_t fd, short what, void *arg);
static void dispatch(cs_pgserver *s);
static void monitor_round(cs_pgserver *s);

/* ---- Small helpers --------------------------------------------------------------------- */

/* A connected socket's event. It is persistent and stays added from the connect to the
 * close, through every query: readiness on an idle connection is a notice or the server
 * going away, on a busy one results. Write interest is added only while libpq holds output
 * the kernel did not take (PQflush returned 1: a large pipeline, a full socket buffer) and
 * dropped as soon as it is flushed. So a query costs no epoll_ctl at all in the common case
 * (the pipeline fits the socket buffer); before, every query removed and added its read
 * event twice (4 epoll_ctl). The socket cannot change once connected (it only does between
 * PQconnectPoll steps, pgconn.c's business).
 * One event for both interests, not a read and a write event: libpq closes the socket
 * itself when a read fails, before conn_close removes the event; epoll forgot the socket
 * with the close, and libevent takes the failing DEL of a whole registration as done, but
 * would log a warning for the MOD that removing one of two events makes. Switching write
 * interest therefore costs a DEL and an ADD, on the rare large-pipeline path only. */
static void conn_unwait(pgconn *c)
{
	if (c->ev_added) {
		event_del(&c->ev);
		c->ev_added = false;
	}
	c->want_write = false;
}

static void conn_register(pgconn *c, bool write)
{
	event_assign(&c->ev, c->srv->base, PQsocket(c->conn),
		EV_READ | EV_PERSIST | (write ? EV_WRITE : 0), conn_event, c);
	event_add(&c->ev, NULL);
	c->ev_added = true;
	c->want_write = write;
}

/* Starts watching a connection that just connected (once per connection). */
static void conn_watch(pgconn *c)
{
	conn_unwait(c);
	conn_register(c, false);
}

/* Write interest on or off; epoll_ctl only when it changes. Safe inside conn_event (the
 * event is not pending between event_del and event_assign; libevent has read the callback
 * of a persistent event before calling it). */
static void conn_want_write(pgconn *c, bool on)
{
	if (on == c->want_write || !c->ev_added)
		return;
	conn_unwait(c);
	conn_register(c, on);
}

static void server_notify(cs_pgserver *s)
{
	if (s->notify)
		s->notify(s, s->notify_priv);
}

static void server_up(cs_pgserver *s)
{
	if (s->state != CS_SRV_UP)
		cs_info("postgres %s: up", s->name);
	s->state = CS_SRV_UP;
	s->fail_attempt = 0;
	s->breaks = 0;
}

static void fail_queue(cs_pgserver *s, int err, const char *msg);

/* ---- Deadlines ------------------------------------------------------------------------- */

/* The sweep (on_sweep) runs at the earliest deadline of the server's work, not on a period:
 * the head of the queue's (its deadline, or the queue timeout: the sweep checks the head), a
 * running query's (its deadline plus TIMEOUT_GRACE_US), the monitor query's. A server with
 * nothing in flight arms no timer. Before, a 5 ms period woke the loop 200 times a second per
 * server, busy or idle (with the engine's tick, ~340 wake-ups a second of an idle daemon
 * with two servers). Each new deadline arms it when earlier than the armed one; a deadline
 * that went away (its job finished) costs at most one early sweep, which re-arms for what is
 * left (sweep_rearm). */
static uint64_t queue_deadline(const cs_pgserver *s, const cs_pgjob *j)
{
	return CS_MIN(j->deadline_us, j->enqueued_us + (uint64_t)s->opts.queue_timeout_ms * 1000u);
}

static void sweep_at(cs_pgserver *s, uint64_t at_us)
{
	if (s->sweep_at_us != 0 && s->sweep_at_us <= at_us)
		return;
	uint64_t now = cs_now_us();
	/* just past it: the checks are "now > deadline" */
	uint64_t us = (at_us > now ? at_us - now : 0) + 1000u;
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000u),
		.tv_usec = (suseconds_t)(us % 1000000u) };
	if (evtimer_add(s->sweep, &tv) == 0)
		s->sweep_at_us = at_us;
	else /* out of memory in libevent's timer heap; the next sweep_at tries again */
		cs_error("postgres %s: cannot arm the deadline sweep: queue and query timeouts wait "
			 "for the next request", s->name);
}

/* Arms the sweep for the earliest deadline there is now, or disarms it. */
static void sweep_rearm(cs_pgserver *s)
{
	uint64_t next = 0;
	if (s->qhead)
		next = queue_deadline(s, s->qhead);
	for (int i = 0; i < s->pool_size; i++) {
		const pgconn *c = &s->conns[i];
		if (c->state == PC_BUSY && (next == 0 || c->deadline_us + TIMEOUT_GRACE_US < next))
			next = c->deadline_us + TIMEOUT_GRACE_US;
	}
	if (s->mon.state == PC_BUSY && (next == 0 || s->mon.deadline_us < next))
		next = s->mon.deadline_us;
	evtimer_del(s->sweep);
	s->sweep_at_us = 0;
	if (next != 0)
		sweep_at(s, next);
}

/* A server failure (a connect refused or timed out, a failed health check, every
 * connection breaking) bans the server for a backoff period. Failures while a ban runs (the
 * other connections of a restarting server failing one after the other) do not lengthen it:
 * the backoff grows per failed retry after a ban, not per connection. */
static void server_down(cs_pgserver *s, const char *why)
{
	uint64_t now = cs_now_us();
	if (s->state == CS_SRV_DOWN && now < s->banned_until_us) {
		fail_queue(s, -CS_ERR_UNAVAILABLE, why);
		return;
	}
	int64_t ban = cs_backoff_ms(s->fail_attempt++, BAN_BASE_MS, BAN_MAX_MS);
	s->banned_until_us = now + (uint64_t)ban * 1000u;
	s->breaks = 0;
	if (s->state != CS_SRV_DOWN) {
		cs_warn("postgres %s: down, banned for %lld ms: %s", s->name, (long long)ban, why);
		s->stats.bans++;
	}
	s->state = CS_SRV_DOWN;
	fail_queue(s, -CS_ERR_UNAVAILABLE, why);
	server_notify(s);
}

/* ---- Prepared statements --------------------------------------------------------------- */

/* SipHash-2-4 (Aumasson and Bernstein) of a byte string under a 128-bit key. */
#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL64(v1, 13);                                                               \
		v1 ^= v0;                                                                          \
		v0 = ROTL64(v0, 32);                                                               \
		v2 += v3;                                                                          \
		v3 = ROTL64(v3, 16);                                                               \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL64(v3, 21);                                                               \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL64(v1, 17);                                                               \
		v1 ^= v2;                                                                          \
		v2 = ROTL64(v2, 32);                                                               \
	} while (0)

static uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t b = (uint64_t)len << 56;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t m = 0;
		for (int j = 0; j < 8; j++)
			m |= (uint64_t)in[i + (size_t)j] << (8 * j);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (int j = 0; i + (size_t)j < len; j++)
		b |= (uint64_t)in[i + (size_t)j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The identity of a statement: 128 bits (SipHash-2-4 under two keys) over the parameter
 * count, the parameter type OIDs and the SQL text. False when out of memory. */
static bool stmt_id(const cs_query_def *q, const Oid *types, uint64_t id[2])
{
	size_t sl = strlen(q->sql);
	size_t n = 4 + 4 * (size_t)q->nparams + sl;
	uint8_t stackbuf[2048];
	uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
	if (buf == NULL)
		return false;
	uint32_t np = (uint32_t)q->nparams;
	memcpy(buf, &np, 4);
	for (int i = 0; i < q->nparams; i++) {
		uint32_t t = (uint32_t)types[i];
		memcpy(buf + 4 + 4 * (size_t)i, &t, 4);
	}
	memcpy(buf + 4 + 4 * (size_t)q->nparams, q->sql, sl);
	id[0] = siphash24(0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull, buf, n);
	id[1] = siphash24(0x1716151413121110ull, 0x1f1e1d1c1b1a1918ull, buf, n);
	if (buf != stackbuf)
		free(buf);
	return true;
}

static void stmt_name(char *buf, size_t len, const uint64_t id[2])
{
	snprintf(buf, len, "cs_%016llx%016llx", (unsigned long long)id[0], (unsigned long long)id[1]);
}

static void stmt_forget(stmt *st)
{
	free(st->sql);
	st->sql = NULL;
	st->valid = false;
}

static void stmts_clear(pgconn *c)
{
	if (c->stmts == NULL)
		return;
	for (int i = 0; i < PREPARED_MAX; i++)
		stmt_forget(&c->stmts[i]);
}

static bool stmt_is(const stmt *st, const cs_query_def *q, const Oid *types)
{
	return st->nparams == q->nparams && strcmp(st->sql, q->sql) == 0 &&
	       memcmp(st->types, types, sizeof *types * (size_t)q->nparams) == 0;
}

/* ---- Connections ----------------------------------------------------------------------- */

static void conn_close(pgconn *c)
{
	conn_unwait(c);
	cs_pgconn_cancel(&c->pc);
	if (c->conn) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	if (c->data) {
		PQclear(c->data);
		c->data = NULL;
	}
	c->state = PC_EMPTY;
	stmts_clear(c);
	free(c->stmts);
	c->stmts = NULL;
	c->stmts_unknown = false;
	c->lsn_prepared = false;
}

static void job_finish(pgconn *c);

static void schedule_monitor(cs_pgserver *s);

/* A server failure on this connection (its connect failed or timed out, or the monitor's
 * health check failed): fail its job, close it, ban the server. A timeout only fails the job
 * and closes the connection: the query was slow, the server is not known to be sick. */
static void server_fault(pgconn *c, int err, const char *why)
{
	cs_pgserver *s = c->srv;
	char msg[256];
	cs_pgconn_msg(msg, sizeof msg, why);
	if (c->job) {
		c->err = err;
		c->retryable = true;
		snprintf(c->errmsg, sizeof c->errmsg, "%s: %s", s->name, msg);
		if (c->data) {
			PQclear(c->data);
			c->data = NULL;
		}
		conn_close(c);
		job_finish(c);
	} else {
		conn_close(c);
	}
	if (err != -CS_ERR_TIMEOUT)
		server_down(s, msg);
}

/* True when a job whose connection broke (or whose statement a recovery conflict canceled)
 * may run once more on this server, on another connection. */
static bool job_may_rerun(const cs_pgserver *s, const cs_pgjob *job)
{
	return job->conn_retries == 0 && !s->retired && s->state != CS_SRV_DOWN &&
	       cs_now_us() < job->deadline_us;
}

/* Puts a job back at the head of its server's queue (it ran on a connection that broke). */
static void job_requeue(cs_pgserver *s, cs_pgjob *job)
{
	job->conn_retries++;
	job->enqueued_us = cs_now_us();
	job->next = s->qhead;
	s->qhead = job;
	if (s->qtail == NULL)
		s->qtail = job;
	s->queued++;
	sweep_at(s, queue_deadline(s, job));
}

/* An established connection broke: closed by the server (idle_session_timeout, a recovery
 * conflict, pg_terminate_backend, a restart) or reset. That is the connection's failure, not
 * the server's: it is closed and counted; its job runs again once on another connection of
 * this server (a new one is opened; a server that refuses it is then banned by the connect
 * failure), else fails retryable so the engine tries another server; the monitor reconnects
 * at once (or with its next round, when that session had answered one and broke soon after
 * the last break: below). Only when more connections break in a row than the server has (pool + monitor),
 * with no query succeeding in between, is the server itself failing: banned. */
static void conn_broken(pgconn *c, int err, const char *why)
{
	cs_pgserver *s = c->srv;
	char msg[256];
	cs_pgconn_msg(msg, sizeof msg, why);
	s->stats.conn_errors++;
	s->breaks++;
	cs_pgjob *job = c->job;
	bool rerun = job && job_may_rerun(s, job) && s->breaks <= s->pool_size + 1;
	cs_debug("postgres %s: connection lost%s: %s", s->name, rerun ? ", its query runs again" : "",
		msg);
	if (job && rerun) {
		c->job = NULL;
		conn_close(c);
		job_requeue(s, job);
	} else if (job) {
		c->err = err;
		c->retryable = true;
		snprintf(c->errmsg, sizeof c->errmsg, "%s: %s", s->name, msg);
		conn_close(c);
		job_finish(c);
	} else {
		conn_close(c);
	}
	if (s->breaks > s->pool_size + 1) {
		server_down(s, msg);
		if (c->monitor) {
			s->mon_round_ok = false;
			schedule_monitor(s);
		}
		return;
	}
	if (c->monitor) {
		/* At once, unless the session answered a round and then broke again within three
		 * health intervals of the last break while the next round is already armed: then
		 * that round reconnects, at its time. A server that ends every session soon after
		 * it goes idle is never banned (each round between succeeds) and was reconnected to
		 * some 16 times a second (review 55 F1); leaving the armed round alone keeps the
		 * rounds (and the primary's LSN samples that replica lag is measured against) at
		 * their pace, where a backoff thinned them (review 56 F2) and re-arming one
		 * interval from the break stretched them (review 57 R1); a session that never
		 * answered a round still reconnects at once, so a server failing every session is
		 * banned after pool_size + 2 breaks as before (review 56 F1). */
		uint64_t now_us = cs_now_us();
		bool again = s->mon_round_ok && s->mon_break_us != 0 &&
			     now_us - s->mon_break_us <
				     3u * (uint64_t)s->opts.health_interval_ms * 1000u;
		s->mon_break_us = now_us;
		s->mon_round_ok = false;
		if (again && evtimer_pending(s->mon_timer, NULL))
			return;
		evtimer_del(s->mon_timer);
		struct timeval now = { 0, 0 };
		evtimer_add(s->mon_timer, &now);
	} else if (s->qhead) {
		dispatch(s);
	}
}

/* A connection failed: while connecting, the server's failure; once established, the
 * connection's (conn_broken); a timeout fails the job only. */
static void conn_fail(pgconn *c, int err, const char *why)
{
	if (c->state == PC_CONNECTING || err == -CS_ERR_TIMEOUT) {
		server_fault(c, err, why);
		if (c->monitor)
			schedule_monitor(c->srv);
	} else {
		conn_broken(c, err, why); /* reschedules the monitor itself */
	}
}

/* Starts libpq's connect. hostaddr: the resolved addresses of the conninfo's host list
 * (resolve.h), NULL when it needs none. libpq connects to hostaddr and keeps host for TLS
 * verification, .pgpass and messages, so it never resolves a name itself. timeout_ms: the
 * connect's deadline, 0 when the lookup's runs on (pgconn.h). Returns -1 when the server is
 * down now (banned, its queue failed). */
static int conn_connect(pgconn *c, const char *hostaddr, int64_t timeout_ms)
{
	cs_pgserver *s = c->srv;
	const char *kw[] = { "dbname", "options", "application_name", hostaddr ? "hostaddr" : NULL,
		NULL };
	const char *val[] = { s->conninfo, s->options, c->monitor ? "cachesvc-monitor" : "cachesvc",
		hostaddr, NULL };
	char msg[256];
	if (cs_pgconn_connect(&c->pc, kw, val, s->name, timeout_ms, msg, sizeof msg) != 0) {
		conn_close(c);
		server_down(s, msg);
		return -1;
	}
	return 0;
}

static void on_conn_resolved(cs_pgconn *pc, const char *addrs, void *priv)
{
	pgconn *c = priv;
	if (conn_connect(c, addrs, 0) != 0 && c->monitor)
		schedule_monitor(c->srv);
}

static void conn_connected(pgconn *c);

/* The connect ended (pgconn.h). A failure or a timeout - of the lookup too: a name that
 * does not resolve (in time) is a connect failure - bans the server (conn_fail while
 * PC_CONNECTING). */
static void on_conn_done(cs_pgconn *pc, cs_pgconn_status st, PGconn *conn, const char *msg,
	void *priv)
{
	pgconn *c = priv;
	if (st == CS_PGCONN_READY) {
		c->conn = conn;
		conn_connected(c);
	} else {
		conn_fail(c, -CS_ERR_UNAVAILABLE,
			st == CS_PGCONN_TIMEOUT && c->monitor ? "monitor connect timed out" : msg);
	}
}

/* Opens the connection: host names are resolved on the loop first (resolve.h), then libpq
 * connects (conn_connect). The connection is PC_CONNECTING (without a PGconn) until
 * connected; connect_timeout bounds both. Returns -1 when the server is down now (banned,
 * its queue failed). */
static int conn_start(pgconn *c)
{
	cs_pgserver *s = c->srv;
	c->state = PC_CONNECTING;
	c->epoch = s->epoch;
	c->options_gen = s->options_gen;
	if (s->opts.resolver == NULL)
		return conn_connect(c, NULL, s->opts.connect_timeout_ms); /* no resolver (tools): libpq resolves */
	if (cs_pgconn_resolve(&c->pc, &s->lookup, s->conninfo, s->opts.connect_timeout_ms) != 0) {
		conn_close(c);
		server_down(s, "out of memory");
		return -1;
	}
	return 0;
}

static void conn_connected(pgconn *c)
{
	cs_pgserver *s = c->srv;
	if (!c->monitor && PQenterPipelineMode(c->conn) != 1) {
		conn_fail(c, -CS_ERR_UNAVAILABLE, PQerrorMessage(c->conn));
		return;
	}
	c->state = PC_IDLE;
	/* Watch for results, and for the server closing an idle connection. */
	conn_watch(c);
	if (c->monitor) {
		monitor_round(s);
	} else {
		dispatch(s);
	}
}

/* Pushes pending output; waits for write-readiness while libpq still has bytes to send.
 * Every PQflush of a connected socket goes through here, so write interest always follows
 * the last flush (never an older one: a job callback may send the next job on the same
 * connection before its caller's flush would be looked at again). No syscall when libpq
 * holds no output and write interest is already off. */
static int conn_flush(pgconn *c)
{
	int rc = PQflush(c->conn);
	if (rc < 0)
		return -1;
	conn_want_write(c, rc == 1);
	return 0;
}

/* ---- Jobs ------------------------------------------------------------------------------ */

/* Records the statement c->prep_id as prepared in slot c->preparing (its PREPARE
 * succeeded). */
static void mark_prepared(pgconn *c)
{
	const cs_query_def *q = c->job->q;
	if (c->preparing < 0 || c->stmts == NULL)
		return;
	stmt *st = &c->stmts[c->preparing];
	stmt_forget(st);
	st->sql = strdup(q->sql);
	if (st->sql == NULL) {
		/* cannot remember it: the server has it, so DEALLOCATE ALL before the next job */
		c->stmts_unknown = true;
		return;
	}
	st->valid = true;
	st->id[0] = c->prep_id[0];
	st->id[1] = c->prep_id[1];
	st->used = ++c->clock;
	st->nparams = q->nparams;
	for (int i = 0; i < q->nparams; i++)
		st->types[i] = cs_param_type_oid(q->params[i].type);
}

/* Sends a job's pipeline on an idle connection. */
static void job_run(pgconn *c, cs_pgjob *job)
{
	cs_pgserver *s = c->srv;
	char name[40], dname[64];
	name[0] = '\0';
	c->job = job;
	c->state = PC_BUSY;
	c->nsteps = c->step = 0;
	c->preparing = -1;
	c->dealloc = -1;
	c->lsn = 0;
	c->err = 0;
	c->retryable = false;
	c->rerun = false;
	c->errmsg[0] = '\0';
	c->deadline_us = job->deadline_us;
	sweep_at(s, c->deadline_us + TIMEOUT_GRACE_US);
	s->stats.queries++;
	uint64_t waited = cs_now_us() - job->enqueued_us;
	s->stats.queue_wait_us_sum += waited;
	s->stats.queue_waits++;

	/* Query definitions were reloaded (statements of old definitions are garbage now), or
	 * the set is out of step with the server: start from nothing. First, since it drops the
	 * LSN statement too; the set is cleared when the server confirms. */
	bool ok = true;
	bool reset = c->epoch != s->epoch || c->stmts_unknown;
	if (reset) {
		ok = PQsendQueryParams(c->conn, "DEALLOCATE ALL", 0, NULL, NULL, NULL, NULL, 0);
		c->steps[c->nsteps++] = ST_DEALLOC;
		c->dealloc = -2;
		c->dealloc_epoch = s->epoch;
	}
	/* The LSN before the data query, as a statement of its own: the data query's snapshot
	 * is taken after it was read (REFERENCE.md 6). Prepared on the connection's first job
	 * and again after a reset (lsn_sql_replica). */
	const char *lsn_name = s->primary ? LSN_STMT_PRIMARY : LSN_STMT_REPLICA;
	if (reset || !c->lsn_prepared) {
		ok = ok && PQsendPrepare(c->conn, lsn_name,
				   s->primary ? lsn_sql_primary : lsn_sql_replica, 0, NULL);
		c->steps[c->nsteps++] = ST_LSN_PREPARE;
	}
	ok = ok && PQsendQueryPrepared(c->conn, lsn_name, 0, NULL, NULL, NULL, 0);
	c->steps[c->nsteps++] = ST_LSN;

	Oid types[CS_MAX_PARAMS];
	for (int i = 0; i < job->q->nparams; i++)
		types[i] = cs_param_type_oid(job->q->params[i].type);
	bool prepare = true; /* named statements: unless this connection has it already */
	if (job->qindex >= 0) {
		if (c->stmts == NULL)
			c->stmts = calloc(PREPARED_MAX, sizeof *c->stmts);
		uint64_t id[2];
		bool have_id = stmt_id(job->q, types, id);
		int found = -1, free_slot = -1, lru = -1;
		for (int i = 0; have_id && c->stmts && i < PREPARED_MAX; i++) {
			stmt *st = &c->stmts[i];
			if (!st->valid) {
				if (free_slot < 0)
					free_slot = i;
			} else if (st->id[0] == id[0] && st->id[1] == id[1]) {
				found = i;
			} else if (lru < 0 || st->used < c->stmts[lru].used) {
				lru = i;
			}
		}
		if (c->stmts == NULL || !have_id) {
			/* out of memory: the unnamed statement, prepared now */
		} else if (found >= 0 && !stmt_is(&c->stmts[found], job->q, types)) {
			/* another definition with the same 128-bit hash: never run it; this job
			 * uses the unnamed statement */
		} else {
			stmt_name(name, sizeof name, id);
			c->prep_id[0] = id[0];
			c->prep_id[1] = id[1];
			if (found >= 0 && !reset) {
				c->stmts[found].used = ++c->clock;
				prepare = false;
			} else if (reset) {
				c->preparing = found >= 0 ? found : free_slot >= 0 ? free_slot : 0;
			} else if (free_slot >= 0) {
				c->preparing = free_slot;
			} else {
				/* full: DEALLOCATE the least recently used statement first */
				c->preparing = lru;
				char lname[40];
				stmt_name(lname, sizeof lname, c->stmts[lru].id);
				snprintf(dname, sizeof dname, "DEALLOCATE %s", lname);
				ok = ok && PQsendQueryParams(c->conn, dname, 0, NULL, NULL, NULL, NULL, 0);
				c->steps[c->nsteps++] = ST_DEALLOC;
				c->dealloc = lru;
			}
		}
		if (prepare)
			s->stats.prepares++;
	}
	if (prepare) {
		ok = ok && PQsendPrepare(c->conn, name, job->q->sql, job->q->nparams, types);
		c->steps[c->nsteps++] = ST_PREPARE;
	}
	ok = ok && PQsendQueryPrepared(c->conn, name, job->params->n, job->params->values,
			   job->params->lengths, job->params->formats, 0);
	c->steps[c->nsteps++] = ST_DATA;
	ok = ok && PQpipelineSync(c->conn);
	c->steps[c->nsteps++] = ST_SYNC;
	if (!ok || conn_flush(c) != 0)
		conn_fail(c, -CS_ERR_UNAVAILABLE, PQerrorMessage(c->conn));
}

/* Maps a failed statement to an error code, and says whether another server might do
 * better. SQLSTATE: 57014 statement timeout; a few class-22 codes mean a parameter value
 * the column refused; 40 (conflict with recovery on a standby), 57, 08 and 53 are the
 * server's trouble, worth another server; anything else is the query's: INTERNAL. */
static void record_error(pgconn *c, const PGresult *res)
{
	if (c->err != 0)
		return; /* keep the first error; later ones are PIPELINE_ABORTED echoes */
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorMessage(res);
	snprintf(c->errmsg, sizeof c->errmsg, "%s: ", c->srv->name);
	cs_pgconn_msg(c->errmsg + strlen(c->errmsg), sizeof c->errmsg - strlen(c->errmsg), msg);
	c->err = -CS_ERR_INTERNAL;
	if (state == NULL)
		return;
	if (strcmp(state, "57014") == 0) {
		c->err = -CS_ERR_TIMEOUT;
	} else if (strcmp(state, "22P02") == 0 || strcmp(state, "22003") == 0 ||
		   strcmp(state, "22007") == 0 || strcmp(state, "22008") == 0 ||
		   strcmp(state, "22023") == 0) {
		/* a parameter value the column type refused (out of range, bad syntax) */
		c->err = -CS_ERR_BAD_PARAMS;
	} else if (strncmp(state, "40", 2) == 0 || strncmp(state, "57", 2) == 0 ||
		   strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0) {
		c->err = -CS_ERR_UNAVAILABLE;
		c->retryable = true;
		/* a recovery conflict canceled the statement (40001), the session was
		 * terminated (57P01-57P05) or lost (08): one more run on this server, as
		 * for a broken connection (conn_broken); the server itself is fine */
		c->rerun = strncmp(state, "53", 2) != 0;
	} else if (strcmp(state, "26000") == 0 || strcmp(state, "42P05") == 0) {
		/* a prepared statement vanished (DISCARD ALL by a pooler?) or one we did not
		 * know of exists: our set is out of step; start again from DEALLOCATE ALL */
		c->stmts_unknown = true;
		c->retryable = true;
		c->err = -CS_ERR_UNAVAILABLE;
	}
}

static void job_finish(pgconn *c)
{
	cs_pgserver *s = c->srv;
	cs_pgjob *job = c->job;
	PGresult *data = c->data;
	c->job = NULL;
	c->data = NULL;
	if (c->state == PC_BUSY)
		c->state = PC_IDLE;
	if (c->err != 0) {
		s->stats.errors++;
		if (c->err == -CS_ERR_TIMEOUT)
			s->stats.timeouts++;
		if (data) {
			PQclear(data);
			data = NULL;
		}
	} else if (data == NULL) {
		c->err = -CS_ERR_INTERNAL;
		snprintf(c->errmsg, sizeof c->errmsg, "%s: the query returned no rows result", s->name);
	} else {
		s->breaks = 0; /* a query succeeded: the server is fine */
	}
	job->cb(job, data, c->lsn, c->err, c->errmsg, c->retryable);
	if (data)
		PQclear(data);
}

/* Consumes every result available without blocking. */
static void job_results(pgconn *c)
{
	while (c->job && !PQisBusy(c->conn)) {
		PGresult *res = PQgetResult(c->conn);
		if (res == NULL) {
			/* end of one statement's results */
			if (c->step < c->nsteps - 1)
				c->step++;
			continue;
		}
		ExecStatusType st = PQresultStatus(res);
		step_kind kind = c->steps[c->step];
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			if (c->err != 0 && c->rerun && job_may_rerun(c->srv, c->job)) {
				cs_pgjob *job = c->job;
				cs_debug("postgres %s: %s; the query runs again", c->srv->name, c->errmsg);
				c->srv->stats.conn_errors++;
				c->job = NULL;
				if (c->data) {
					PQclear(c->data);
					c->data = NULL;
				}
				c->state = PC_IDLE;
				job_requeue(c->srv, job); /* conn_event dispatches it */
				return;
			}
			job_finish(c);
			return;
		}
		switch (kind) {
		case ST_DEALLOC:
		case ST_LSN_PREPARE:
		case ST_PREPARE:
			if (st == PGRES_COMMAND_OK && kind == ST_PREPARE) {
				mark_prepared(c);
			} else if (st == PGRES_COMMAND_OK && kind == ST_LSN_PREPARE) {
				c->lsn_prepared = true;
				c->srv->stats.lsn_prepares++; /* confirmed (review P1) */
			} else if (st == PGRES_COMMAND_OK && c->dealloc == -2) {
				stmts_clear(c);
				c->stmts_unknown = false;
				/* dropped with the rest: prepared again in this pipeline */
				c->lsn_prepared = false;
				c->epoch = c->dealloc_epoch;
			} else if (st == PGRES_COMMAND_OK && c->dealloc >= 0 && c->stmts) {
				stmt_forget(&c->stmts[c->dealloc]);
			} else if (st != PGRES_COMMAND_OK && st != PGRES_PIPELINE_ABORTED) {
				record_error(c, res);
			}
			PQclear(res);
			break;
		case ST_LSN:
			if (st == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
				(void)cs_lsn_parse(PQgetvalue(res, 0, 0), &c->lsn);
			else if (st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_ABORTED)
				record_error(c, res);
			PQclear(res);
			break;
		case ST_DATA:
			if (st == PGRES_TUPLES_OK && c->data == NULL) {
				c->data = res;
			} else {
				if (st != PGRES_PIPELINE_ABORTED && st != PGRES_TUPLES_OK)
					record_error(c, res);
				PQclear(res);
			}
			break;
		case ST_SYNC:
			/* Only PIPELINE_SYNC belongs here (handled above). */
			PQclear(res);
			break;
		}
	}
}

/* ---- Monitor --------------------------------------------------------------------------- */

/* In recovery, the replay LSN, the age of the last replayed transaction, the timeline
 * (the one the WAL receiver receives; NULL while it does not run), the last WAL position
 * received (NULL without streaming replication), and the WAL receiver's pid and status
 * (NULL when none runs; the status also for roles without pg_read_all_stats); out of recovery, the current LSN and the
 * timeline WAL is written on (the first 8 hex digits of the current WAL file's name). */
static const char monitor_sql[] =
	"SELECT pg_is_in_recovery(),"
	" (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
	"  ELSE pg_current_wal_lsn() END)::text,"
	" COALESCE(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
	"  * 1000, 0)::int8,"
	" CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver)::int8"
	"  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END,"
	" pg_last_wal_receive_lsn()::text,"
	" (SELECT pid FROM pg_stat_wal_receiver)::int8,"
	" (SELECT status FROM pg_stat_wal_receiver)";

/* A replica on an older timeline than the primary's cannot follow it (an old primary that
 * rejoined, a standby left on the old timeline): never routed to. */
static void check_timeline(cs_pgserver *s)
{
	/* Unknown (no WAL receiver running, or a role without pg_read_all_stats) counts as
	 * old once the cluster has changed timelines: such a replica may have replayed the old
	 * primary's WAL past the switch point, data the new primary never had. */
	bool old = !s->primary && !s->promoted && s->primary_tli != 0 &&
		   ((s->tli != 0 && s->tli < s->primary_tli) || (s->tli == 0 && s->primary_tli > 1));
	if (old && !s->old_timeline && s->tli == 0)
		cs_error("postgres %s: its timeline is unknown (its WAL receiver is not running, or "
			 "the role lacks pg_read_all_stats) while the primary is on timeline %u: it may "
			 "hold WAL of an old timeline; not used until it reports the primary's",
			s->name, s->primary_tli);
	else if (old && !s->old_timeline)
		cs_error("postgres %s: receives timeline %u, behind the primary's timeline %u: it "
			 "cannot follow the primary; not used until it does", s->name, s->tli,
			s->primary_tli);
	else if (!old && s->old_timeline)
		cs_info("postgres %s: on the primary's timeline %u again", s->name, s->primary_tli);
	s->old_timeline = old;
}

static void schedule_monitor(cs_pgserver *s)
{
	int64_t ms = s->opts.health_interval_ms;
	uint64_t now = cs_now_us();
	if (s->fast_until_us > now)
		ms = FAST_MONITOR_MS;
	if (s->state == CS_SRV_DOWN && s->banned_until_us > now)
		ms = (int64_t)((s->banned_until_us - now) / 1000u) + 1;
	struct timeval tv = cs_tv_ms(ms);
	evtimer_add(s->mon_timer, &tv);
}

static void monitor_round(cs_pgserver *s)
{
	pgconn *m = &s->mon;
	if (m->state == PC_EMPTY) {
		s->mon_round_ok = false; /* a new session: none answered yet (review 57 R3) */
		(void)conn_start(m); /* on failure: server banned, timer rescheduled below */
		if (m->state == PC_EMPTY)
			schedule_monitor(s);
		return;
	}
	if (m->state != PC_IDLE)
		return; /* connecting or a round in flight */
	if (!PQsendQuery(m->conn, monitor_sql) || conn_flush(m) != 0) {
		conn_fail(m, -CS_ERR_UNAVAILABLE, PQerrorMessage(m->conn));
		return;
	}
	m->state = PC_BUSY;
	m->deadline_us = cs_now_us() + (uint64_t)s->opts.connect_timeout_ms * 1000u;
	sweep_at(s, m->deadline_us);
}

/* True when a failed result means the session itself ended, not that the statement failed:
 * terminated by the server (SQLSTATE 57P01-57P05: pg_terminate_backend, a shutdown, a
 * crash restart, the database dropped, idle_session_timeout), a connection exception
 * (class 08), or libpq lost the connection (its own error, no SQLSTATE). 57014 (the
 * statement timed out or was canceled) is not one: the session lives on. */
static bool session_lost(PGconn *conn, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state != NULL)
		return strncmp(state, "57P", 3) == 0 || strncmp(state, "08", 2) == 0;
	return PQstatus(conn) == CONNECTION_BAD;
}

static void monitor_results(pgconn *m)
{
	cs_pgserver *s = m->srv;
	while (m->state == PC_BUSY && !PQisBusy(m->conn)) {
		PGresult *res = PQgetResult(m->conn);
		if (res == NULL) {
			m->state = PC_IDLE;
			schedule_monitor(s);
			server_notify(s);
			return;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			bool rec = PQgetvalue(res, 0, 0)[0] == 't';
			cs_lsn_t lsn = 0;
			if (!PQgetisnull(res, 0, 1))
				(void)cs_lsn_parse(PQgetvalue(res, 0, 1), &lsn);
			int64_t replay_age = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
			s->tli = PQnfields(res) > 3 && !PQgetisnull(res, 0, 3)
					 ? (uint32_t)strtoul(PQgetvalue(res, 0, 3), NULL, 10)
					 : 0;
			if (!s->primary && !rec && !s->promoted) {
				s->stats.promotions++;
				cs_warn("postgres %s: not in recovery: promoted (or a primary listed as a "
					"replica); no longer used as a replica, its reads count as the "
					"primary's and are not cached with fences on", s->name);
			} else if (!s->primary && rec && s->promoted) {
				cs_info("postgres %s: in recovery again: used as a replica", s->name);
			}
			s->promoted = !s->primary && !rec;
			s->in_recovery = rec;
			check_timeline(s);
			cs_lsn_t received = 0;
			if (PQnfields(res) > 4 && !PQgetisnull(res, 0, 4))
				(void)cs_lsn_parse(PQgetvalue(res, 0, 4), &received);
			s->lsn = lsn;
			/* The replica's own estimate; while the primary is up the engine replaces it
			 * with the lag measured against the primary's LSN history
			 * (cs_pgserver_set_lag). No lag, however old the last replayed transaction
			 * is (a quiet primary writes nothing), when the replica has replayed the
			 * primary's last known position, or - when that is unknown or old (no
			 * [primary], or it is down) - everything its WAL receiver got: no WAL
			 * pending. The age of the last replayed transaction is only a lag while WAL
			 * waits to be replayed (a replica catching up, or a delayed one). */
			/* "Everything received is replayed" means caught up only while the WAL
			 * receiver is connected: cut off from its upstream (a partition, a failover
			 * it does not follow), pg_last_wal_receive_lsn stays put and the replica
			 * would look current forever. The receiver's pid is visible to every role,
			 * its status only with pg_read_all_stats (hidden: taken as streaming; a
			 * half-open link is bounded by the replica's wal_receiver_timeout). */
			bool receiving = PQnfields(res) > 6 && !PQgetisnull(res, 0, 5) &&
					 (PQgetisnull(res, 0, 6) ||
						 strcmp(PQgetvalue(res, 0, 6), "streaming") == 0);
			/* Replayed all it had received one health round ago: WAL in flight right
			 * now (a checkpoint record on a quiet primary) is not lag. */
			bool replayed = received != 0 && receiving &&
					(lsn >= received || (s->prev_received != 0 && lsn >= s->prev_received));
			s->prev_received = receiving ? received : 0;
			if (s->primary || !rec || (s->primary_lsn != 0 && lsn >= s->primary_lsn) || replayed)
				s->lag_ms = 0;
			else
				s->lag_ms = replay_age < 0 ? 0 : replay_age;
			s->mon_round_ok = true;
			server_up(s);
		} else if (session_lost(m->conn, res)) {
			/* The health check's session was terminated under it (pg_terminate_backend,
			 * a restart's shutdown) or lost: the connection broke, as when it breaks
			 * idle; the check says nothing of the server. Counted as a break and
			 * reconnected at once (conn_broken); a server that refuses the reconnect is
			 * banned by the connect failure. A server_down here spent a whole ban on a
			 * termination of every session: the monitor's query was in flight when it
			 * came, and the 4 pooled queries it also terminated were failed, not run
			 * again (pg_conn_errors, a CI run under load: 7 of 8 unavailable). */
			conn_broken(m, -CS_ERR_UNAVAILABLE, PQresultErrorMessage(res));
			PQclear(res); /* a PGresult outlives its PGconn */
			return;
		} else {
			char msg[256];
			cs_pgconn_msg(msg, sizeof msg, PQresultErrorMessage(res));
			server_down(s, msg);
		}
		PQclear(res);
	}
}

static void on_monitor_timer(evutil_socket_t fd, short what, void *arg)
{
	monitor_round(arg);
}

/* ---- Event handling -------------------------------------------------------------------- */

/* Readiness of a connected socket (both events, persistent: they stay added). Results are
 * handed to the job's callback here, in this call: no deferral to a later loop iteration.
 * The callback may run anything (send the next job on this very connection, retire the
 * server and close its idle connections), so after it nothing is assumed but what is
 * checked again: the PGconn (closed?) and the state. */
static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	pgconn *c = arg;
	if (what & EV_READ) {
		if (!PQconsumeInput(c->conn)) {
			conn_fail(c, -CS_ERR_UNAVAILABLE, PQerrorMessage(c->conn));
			return;
		}
	}
	if (c->state == PC_IDLE) {
		/* Input on an idle connection: a notice, or the server going away. */
		if (PQstatus(c->conn) == CONNECTION_BAD) {
			conn_fail(c, -CS_ERR_UNAVAILABLE, PQerrorMessage(c->conn));
			return;
		}
		if (conn_flush(c) != 0) /* nothing is pending when idle: drops write interest */
			conn_fail(c, -CS_ERR_UNAVAILABLE, PQerrorMessage(c->conn));
		return;
	}
	/* PQflush again: the server may have stopped reading until we read. */
	if (conn_flush(c) != 0) {
		conn_fail(c, -CS_ERR_UNAVAILABLE, PQerrorMessage(c->conn));
		return;
	}
	if (c->monitor)
		monitor_results(c);
	else
		job_results(c);
	if (c->conn == NULL)
		return; /* failed while reading, or closed by a callback */
	if (c->state == PC_IDLE && !c->monitor)
		dispatch(c->srv); /* queued jobs (or one put back to run again) */
}

/* ---- Queue and dispatch ---------------------------------------------------------------- */

static cs_pgjob *queue_pop(cs_pgserver *s)
{
	cs_pgjob *j = s->qhead;
	if (j) {
		s->qhead = j->next;
		if (s->qhead == NULL)
			s->qtail = NULL;
		else
			sweep_at(s, queue_deadline(s, s->qhead)); /* the sweep checks the head */
		s->queued--;
		j->next = NULL;
	}
	return j;
}

static void fail_queue(cs_pgserver *s, int err, const char *msg)
{
	cs_pgjob *j;
	while ((j = queue_pop(s)) != NULL) {
		char m[300];
		snprintf(m, sizeof m, "%s: %s", s->name, msg);
		j->cb(j, NULL, 0, err, m, true);
	}
}

static void dispatch(cs_pgserver *s)
{
	int connecting = 0, live = 0;
	if (s->retired) {
		/* draining: idle connections are closed as they become idle */
		for (int i = 0; i < s->pool_size; i++)
			if (s->conns[i].state == PC_IDLE || (s->conns[i].state == PC_CONNECTING &&
								 s->conns[i].job == NULL))
				conn_close(&s->conns[i]);
		return;
	}
	for (int i = 0; i < s->pool_size && s->qhead; i++) {
		pgconn *c = &s->conns[i];
		if (c->state == PC_IDLE && c->options_gen == s->options_gen)
			job_run(c, queue_pop(s));
	}
	if (s->qhead == NULL)
		return;
	for (int i = 0; i < s->pool_size; i++)
		connecting += s->conns[i].state == PC_CONNECTING;
	/* Jobs left and idle connections opened with old session settings (a reload changed
	 * them): close one per job no connect covers; each is opened again below. The others
	 * stay until a job needs them, so a reload costs one reconnect per job, not a pool. */
	for (int i = 0, need = s->queued - connecting; i < s->pool_size && need > 0; i++) {
		pgconn *c = &s->conns[i];
		if (c->state == PC_IDLE && c->options_gen != s->options_gen) {
			conn_close(c);
			need--;
		}
	}
	for (int i = 0; i < s->pool_size; i++)
		live += s->conns[i].state != PC_EMPTY;
	/* Open one more connection per waiting job not already covered by a connect. */
	for (int i = 0; i < s->pool_size && connecting < s->queued && live < s->pool_size; i++) {
		pgconn *c = &s->conns[i];
		if (c->state != PC_EMPTY)
			continue;
		if (conn_start(c) != 0)
			return; /* the server is down now; its queue was failed */
		connecting++;
		live++;
	}
}

int cs_pgserver_submit(cs_pgserver *s, cs_pgjob *job)
{
	if (s->state == CS_SRV_DOWN || s->retired)
		return -CS_ERR_UNAVAILABLE;
	if (s->queued >= s->opts.queue_max) {
		s->stats.overloaded++;
		return -CS_ERR_OVERLOADED;
	}
	job->srv = s;
	job->next = NULL;
	job->conn_retries = 0;
	job->enqueued_us = cs_now_us();
	if (s->qtail)
		s->qtail->next = job;
	else
		s->qhead = job;
	s->qtail = job;
	s->queued++;
	dispatch(s);
	if (s->qhead)
		sweep_at(s, queue_deadline(s, s->qhead));
	return 0;
}

/* Deadlines: jobs waiting too long in the queue, queries running too long, a monitor query
 * that hangs (connects that hang: pgconn.h's deadline, on_conn_done). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	cs_pgserver *s = arg;
	s->sweep_at_us = 0; /* fired: not armed */
	uint64_t now = cs_now_us();
	uint64_t qt = (uint64_t)s->opts.queue_timeout_ms * 1000u;
	while (s->qhead && (now > s->qhead->deadline_us || now - s->qhead->enqueued_us > qt)) {
		cs_pgjob *j = queue_pop(s);
		s->stats.overloaded++;
		char m[160];
		snprintf(m, sizeof m, "%s: waited %llu ms for a connection", s->name,
			(unsigned long long)((now - j->enqueued_us) / 1000u));
		/* not retryable: it already waited its share; other replicas are as busy */
		j->cb(j, NULL, 0, -CS_ERR_OVERLOADED, m, false);
	}
	for (int i = 0; i < s->pool_size; i++) {
		pgconn *c = &s->conns[i];
		if (c->state == PC_BUSY && now > c->deadline_us + TIMEOUT_GRACE_US)
			conn_fail(c, -CS_ERR_TIMEOUT, "query timed out");
	}
	pgconn *m = &s->mon;
	if (m->state == PC_BUSY && now > m->deadline_us) {
		server_fault(m, -CS_ERR_UNAVAILABLE, "monitor query timed out");
		schedule_monitor(s);
	}
	sweep_rearm(s);
}

/* ---- Public API ------------------------------------------------------------------------ */

char *cs_pg_merge_options(const char *conninfo, const char *ours)
{
	const char *user = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val && o->val[0])
			user = o->val;
	size_t n = (user ? strlen(user) + 1 : 0) + strlen(ours) + 1;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s%s%s", user ? user : "", user ? " " : "", ours);
	PQconninfoFree(opts);
	return out;
}

/* The options= a connection opens with. Session settings the result encoder and the fence
 * rely on: ISO dates in UTC, exact floats, hex bytea; a server-side statement timeout so a
 * runaway query is stopped by PostgreSQL itself (libpq 15 has no non-blocking cancel). The
 * conninfo's own options= (search_path, work_mem, ...) are kept: they come first and
 * cachesvc's after them, so where both set one GUC cachesvc's wins (the encoder and the
 * fence depend on these; CONFIG.md). NULL when out of memory. */
static char *session_options(const char *conninfo, int64_t statement_timeout_ms)
{
	char ours[256];
	snprintf(ours, sizeof ours,
		"-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex "
		"-c statement_timeout=%lld -c default_transaction_isolation=read\\ committed",
		(long long)statement_timeout_ms);
	return cs_pg_merge_options(conninfo, ours);
}

cs_pgserver *cs_pgserver_new(struct event_base *base, const char *name, const char *conninfo,
	bool primary, unsigned tiers, int pool_size, const cs_pgpool_opts *opts)
{
	cs_pgserver *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->base = base;
	s->name = strdup(name);
	s->conninfo = strdup(conninfo);
	s->primary = primary;
	s->tiers = tiers;
	s->pool_size = pool_size > 0 ? pool_size : 1;
	s->opts = *opts;
	s->conns = calloc((size_t)s->pool_size, sizeof *s->conns);
	s->sweep = evtimer_new(base, on_sweep, s);
	s->mon_timer = evtimer_new(base, on_monitor_timer, s);
	if (!s->name || !s->conninfo || !s->conns || !s->sweep || !s->mon_timer) {
		cs_pgserver_free(s);
		return NULL;
	}
	s->options = session_options(conninfo, opts->statement_timeout_ms);
	if (s->options == NULL) {
		cs_pgserver_free(s);
		return NULL;
	}
	if (opts->resolver)
		cs_resolver_pg_lookup(opts->resolver, &s->lookup);
	for (int i = 0; i < s->pool_size; i++) {
		s->conns[i].srv = s;
		cs_pgconn_init(&s->conns[i].pc, base, on_conn_done, on_conn_resolved, &s->conns[i]);
	}
	s->mon.srv = s;
	s->mon.monitor = true;
	cs_pgconn_init(&s->mon.pc, base, on_conn_done, on_conn_resolved, &s->mon);
	s->stats.name = s->name;
	s->stats.primary = primary;
	s->stats.tiers = tiers;
	s->stats.pool_size = s->pool_size;
	return s;
}

void cs_pgserver_start(cs_pgserver *s)
{
	monitor_round(s);
}

void cs_pgserver_free(cs_pgserver *s)
{
	if (s == NULL)
		return;
	/* A retired server's jobs may run elsewhere; a shutdown's may not. */
	int err = s->retired ? -CS_ERR_UNAVAILABLE : -CS_ERR_SHUTTING_DOWN;
	const char *why = s->retired ? "removed from the configuration" : "shutting down";
	fail_queue(s, err, why);
	if (s->conns) {
		for (int i = 0; i < s->pool_size; i++) {
			pgconn *c = &s->conns[i];
			if (c->job) {
				c->err = err;
				c->retryable = s->retired;
				snprintf(c->errmsg, sizeof c->errmsg, "%s: %s", s->name, why);
				conn_close(c);
				job_finish(c);
			}
			conn_close(c);
		}
	}
	conn_close(&s->mon);
	if (s->sweep)
		event_free(s->sweep);
	if (s->mon_timer)
		event_free(s->mon_timer);
	free(s->conns);
	free(s->name);
	free(s->conninfo);
	free(s->options);
	free(s);
}

void cs_pgserver_retire(cs_pgserver *s)
{
	if (s->retired)
		return;
	s->retired = true;
	evtimer_del(s->mon_timer);
	conn_close(&s->mon);
	fail_queue(s, -CS_ERR_UNAVAILABLE, "removed from the configuration");
	dispatch(s);
}

bool cs_pgserver_idle(const cs_pgserver *s)
{
	for (int i = 0; i < s->pool_size; i++)
		if (s->conns[i].job != NULL)
			return false;
	return s->qhead == NULL;
}

bool cs_pgserver_same(const cs_pgserver *s, const char *conninfo, unsigned tiers, int pool_size)
{
	return strcmp(s->conninfo, conninfo) == 0 && s->tiers == tiers &&
	       s->pool_size == (pool_size > 0 ? pool_size : 1);
}

int cs_pgserver_set_timeouts(cs_pgserver *s, const cs_pgpool_opts *opts)
{
	s->opts.connect_timeout_ms = opts->connect_timeout_ms;
	s->opts.queue_timeout_ms = opts->queue_timeout_ms;
	sweep_rearm(s); /* the queue's deadlines moved */
	if (opts->statement_timeout_ms == s->opts.statement_timeout_ms)
		return 0;
	char *o = session_options(s->conninfo, opts->statement_timeout_ms);
	if (o == NULL)
		return -1;
	free(s->options);
	s->options = o;
	s->opts.statement_timeout_ms = opts->statement_timeout_ms;
	s->options_gen++;
	return 0;
}

void cs_pgserver_set_primary_tli(cs_pgserver *s, uint32_t tli)
{
	s->primary_tli = tli;
	check_timeline(s);
}

uint32_t cs_pgserver_timeline(const cs_pgserver *s)
{
	return s->tli;
}

void cs_pgserver_reset_statements(cs_pgserver *s)
{
	s->epoch++;
}

void cs_pgserver_fast_monitor(cs_pgserver *s, uint64_t until_us)
{
	if (until_us <= s->fast_until_us)
		return;
	s->fast_until_us = until_us;
	/* idle, or with no session while its next round waits (a session broken after a round:
	 * conn_broken; review 57 R2): the round now. Not a server not started yet (no round
	 * armed: review 58 N1) */
	if ((s->mon.state == PC_IDLE ||
		    (s->mon.state == PC_EMPTY && evtimer_pending(s->mon_timer, NULL))) &&
		s->state != CS_SRV_DOWN && !s->retired) {
		evtimer_del(s->mon_timer);
		monitor_round(s);
	}
}

void cs_pgserver_set_primary_lsn(cs_pgserver *s, cs_lsn_t lsn)
{
	s->primary_lsn = lsn;
}

void cs_pgserver_set_lag(cs_pgserver *s, int64_t lag_ms)
{
	s->lag_ms = lag_ms;
}

void cs_pgserver_set_notify(cs_pgserver *s, cs_pgserver_notify_cb *cb, void *priv)
{
	s->notify = cb;
	s->notify_priv = priv;
}

void cs_pgserver_info_get(const cs_pgserver *s, cs_pgserver_info *out)
{
	*out = s->stats;
	out->state = s->state;
	out->in_recovery = s->in_recovery;
	out->promoted = s->promoted;
	out->old_timeline = s->old_timeline;
	out->tli = s->tli;
	out->lsn = s->lsn;
	out->lag_ms = s->lag_ms;
	out->lag_bytes = (!s->primary && s->primary_lsn > s->lsn) ? s->primary_lsn - s->lsn : 0;
	out->queued = s->queued;
	out->conns = out->busy = 0;
	for (int i = 0; i < s->pool_size; i++) {
		out->conns += s->conns[i].state == PC_IDLE || s->conns[i].state == PC_BUSY;
		out->busy += s->conns[i].state == PC_BUSY;
	}
}

cs_resolver *cs_pgserver_resolver(const cs_pgserver *s)
{
	return s->opts.resolver;
}

const char *cs_pgserver_name(const cs_pgserver *s)
{
	return s->name;
}

bool cs_pgserver_is_primary(const cs_pgserver *s)
{
	return s->primary;
}

cs_pgserver_state cs_pgserver_state_get(const cs_pgserver *s)
{
	if (s->state == CS_SRV_DOWN && cs_now_us() >= s->banned_until_us)
		return CS_SRV_DOWN; /* still down until the monitor says otherwise */
	return s->state;
}

cs_lsn_t cs_pgserver_lsn(const cs_pgserver *s)
{
	return s->lsn;
}

double cs_pgserver_load(const cs_pgserver *s)
{
	int busy = 0;
	for (int i = 0; i < s->pool_size; i++)
		busy += s->conns[i].state == PC_BUSY;
	return (double)(busy + s->queued) / (double)s->pool_size;
}
