/* cs_load.c - load generator for cachesvc: N connections, Zipfian or uniform keys, optional
 * pipelining or MGET batches, a read/write mix with writes sent to the primary through libpq,
 * a merged latency histogram, and one JSON result on stdout.
 *
 * Engines: by default one thread drives every connection on an epoll loop through the
 * client library's asynchronous API (cs_aclient_*), each connection keeping -P requests
 * in flight (loop mode; what bench/run uses for every throughput row). --threads (and any
 * run with writes, since libpq's writes block) uses one thread per connection on the
 * blocking API instead. The JSON says which ("engine") and what the generator itself cost
 * ("cpu_us_per_request": its own user + system CPU over the run, per key).
 *
 * Every query driven here takes one integer parameter, the key, drawn from [lo, hi]:
 *   Zipfian (default, s = 1.1): key lo is the hottest, as pgbench's random_zipfian(lo, hi, s);
 *     sampled by binary search in a precomputed CDF table (one double per key, shared).
 *   uniform: every key equally likely.
 *   unique: lo, lo+1, ... each once across all threads (the run ends when they run out):
 *     misses on a cold cache, or a warm-up pass over the whole range.
 *
 * Exit status: 0 when the run completed (server errors are counted in the JSON, not
 * fatal), 1 when no connection could be made, 2 on a usage error. */
#include "cachesvc-client.h"
#include "hist.h"
#include "json.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define MAX_CONNS  4096
#define MAX_DEPTH  1024 /* pipelined requests in flight per connection */
#define MAX_BATCH  256  /* keys per MGET (the protocol's limit) */
#define MAX_KEYS   (100 * 1000 * 1000L) /* Zipf CDF table: 800 MB at most */
#define RECONNECTS 5    /* consecutive failed reconnects before a thread gives up */

/* Error tally slots: server errors -1..-11 map to 1..11, client errors -100..-107 to
 * 12..19, anything else to 20; 0 is unused. Writes that fail count in their own field. */
#define ERR_SLOTS   21
#define ERR_OTHER   20

/* How keys are drawn. */
enum key_dist {
	DIST_ZIPF,    /* Zipfian over [lo, hi], exponent s */
	DIST_UNIFORM, /* uniform over [lo, hi] */
	DIST_UNIQUE,  /* each key of [lo, hi] once, shared by all threads */
};

/* The run's settings; read-only once the threads start. */
typedef struct settings {
	cs_client_options opt;
	const char *query;
	int conns;
	double duration;  /* seconds; 0 = until `total` requests */
	long total;       /* requests (keys) to send in all; 0 = until `duration` */
	int depth;        /* pipelined requests in flight per connection */
	int batch;        /* keys per MGET; 1 = plain GET */
	enum key_dist dist;
	double zipf_s;
	int64_t lo, hi;
	bool loop;        /* one thread, every connection on an event loop (the async API) */
	bool ping;        /* PING instead of GET (loop mode): the cheapest round trip */
	bool refresh;     /* REFRESH instead of GET */
	bool bypass;      /* skip the cache */
	int tier;
	double write_pct; /* share of operations that are writes, 0..100 */
	const char *pg_conninfo;
	const char *update_sql; /* $1 = the key */
	uint64_t seed;
	const double *cdf; /* DIST_ZIPF: cdf[i] = P(key <= lo + i) */
} settings;

/* One connection's thread and its private tallies (merged by main after the join). */
typedef struct worker {
	const settings *set;
	int index;
	uint64_t rng;
	cs_hist lat;  /* per read operation (a GET, or one whole MGET), microseconds */
	cs_hist wlat; /* per write, microseconds */
	long ops, keys, src[3], stale, errs[ERR_SLOTS];
	long writes, write_errors;
	bool connected; /* the first connect succeeded */
	char first_error[160];
} worker;

static pthread_barrier_t start_line;
static atomic_long issued;        /* keys handed out (for --requests and unique keys) */
static volatile sig_atomic_t stop_requested;

/* ---------------------------------------------------------------- small helpers */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* splitmix64: small, fast, and good enough to pick keys; one state per thread. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A double uniform in [0, 1). */
static double rng_unit(uint64_t *state)
{
	return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* User + system CPU seconds between two getrusage samples. */
static double ru_seconds(const struct rusage *a, const struct rusage *b)
{
	return (double)(b->ru_utime.tv_sec - a->ru_utime.tv_sec) +
	       (double)(b->ru_stime.tv_sec - a->ru_stime.tv_sec) +
	       1e-6 * (double)(b->ru_utime.tv_usec - a->ru_utime.tv_usec +
	                       b->ru_stime.tv_usec - a->ru_stime.tv_usec);
}

static int err_slot(int code)
{
	if (code <= -1 && code >= -11)
		return -code;
	if (code <= -100 && code >= -107)
		return 12 + (-code - 100);
	return ERR_OTHER;
}

static int slot_code(int slot)
{
	if (slot >= 1 && slot <= 11)
		return -slot;
	if (slot >= 12 && slot <= 19)
		return -(100 + slot - 12);
	return 0;
}

static void note_error(worker *w, int code, const char *what)
{
	w->errs[err_slot(code)]++;
	if (w->first_error[0] == '\0')
		snprintf(w->first_error, sizeof w->first_error, "%s", what);
}

/* ---------------------------------------------------------------- keys */

/* Builds the Zipfian CDF over n keys: cdf[i] = sum_{k<=i+1} k^-s / sum_{k<=n} k^-s.
 * Returns a malloc'd table the caller frees, or NULL when out of memory. */
static double *zipf_cdf(long n, double s)
{
	double *cdf = malloc((size_t)n * sizeof *cdf);
	if (cdf == NULL)
		return NULL;
	double sum = 0;
	for (long i = 0; i < n; i++) {
		sum += pow((double)(i + 1), -s);
		cdf[i] = sum;
	}
	for (long i = 0; i < n; i++)
		cdf[i] /= sum;
	cdf[n - 1] = 1.0; /* rounding must not leave a u above the last entry */
	return cdf;
}

/* The first index whose CDF value is >= u (binary search; the table is non-decreasing). */
static long zipf_index(const double *cdf, long n, double u)
{
	long a = 0, b = n - 1;
	while (a < b) {
		long m = a + (b - a) / 2;
		if (cdf[m] >= u)
			b = m;
		else
			a = m + 1;
	}
	return a;
}

/* Takes the next key, or returns false when the run has no more to give: the request
 * budget is spent (--requests), or the unique keys ran out. */
static bool next_key(worker *w, int64_t *key)
{
	const settings *s = w->set;
	if (s->total > 0 || s->dist == DIST_UNIQUE) {
		long n = atomic_fetch_add(&issued, 1);
		if (s->total > 0 && n >= s->total)
			return false;
		if (s->dist == DIST_UNIQUE) {
			if (n > s->hi - s->lo)
				return false;
			*key = s->lo + n;
			return true;
		}
	}
	long range = (long)(s->hi - s->lo + 1);
	if (s->dist == DIST_UNIFORM)
		*key = s->lo + (int64_t)(rng_next(&w->rng) % (uint64_t)range);
	else
		*key = s->lo + zipf_index(s->cdf, range, rng_unit(&w->rng));
	return true;
}

/* ---------------------------------------------------------------- the write side */

/* Connects to the primary and prepares the UPDATE. Returns the connection or NULL (the
 * reason is in w->first_error). Blocks (libpq's synchronous API: this is a client). */
static PGconn *writer_connect(worker *w)
{
	PGconn *pg = PQconnectdb(w->set->pg_conninfo);
	if (PQstatus(pg) != CONNECTION_OK) {
		snprintf(w->first_error, sizeof w->first_error, "primary: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	PGresult *r = PQprepare(pg, "w", w->set->update_sql, 1, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(w->first_error, sizeof w->first_error, "prepare: %s", PQerrorMessage(pg));
		PQclear(r);
		PQfinish(pg);
		return NULL;
	}
	PQclear(r);
	return pg;
}

/* One write: the prepared UPDATE with the key as $1 (autocommit). */
static void write_one(worker *w, PGconn *pg, int64_t key)
{
	char kb[24];
	const char *vals[1] = { kb };
	snprintf(kb, sizeof kb, "%" PRId64, key);
	uint64_t t0 = now_us();
	PGresult *r = PQexecPrepared(pg, "w", 1, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	PQclear(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		w->write_errors++;
		if (w->first_error[0] == '\0')
			snprintf(w->first_error, sizeof w->first_error, "write: %s",
			        PQerrorMessage(pg));
		return;
	}
	cs_hist_record(&w->wlat, now_us() - t0);
	w->writes++;
}

/* ---------------------------------------------------------------- the read side */

/* A request sent and not yet answered. */
typedef struct inflight {
	uint32_t reqid;
	uint64_t t0;
	int64_t key;
} inflight;

/* Tallies one answer (a GET reply or one MGET item). */
static void tally(worker *w, const cs_client_result *r)
{
	const char *msg = NULL;
	int e = cs_client_result_err(r, &msg);
	if (e != 0) {
		char what[128];
		snprintf(what, sizeof what, "%s: %s", cs_client_strerror(e), msg ? msg : "");
		note_error(w, e, what);
		return;
	}
	int src = cs_client_result_source(r);
	if (src >= 0 && src < 3)
		w->src[src]++;
	w->stale += cs_client_result_stale(r);
}

static cs_client *connect_one(worker *w)
{
	cs_client *c = cs_client_connect(&w->set->opt);
	if (c == NULL || cs_client_err(c) != 0) {
		if (w->first_error[0] == '\0')
			snprintf(w->first_error, sizeof w->first_error, "connect: %s",
			        c ? cs_client_errstr(c) : "out of memory");
		cs_client_free(c);
		return NULL;
	}
	return c;
}

/* Decides whether this operation is a write (only when a write share is set). */
static bool pick_write(worker *w)
{
	return w->set->write_pct > 0 && rng_unit(&w->rng) * 100.0 < w->set->write_pct;
}

/* MGET mode: one batch of `batch` keys per round trip, synchronously. Returns false when
 * the run is over for this thread. */
static bool run_batch(worker *w, cs_client *c, PGconn *pg, cs_client_request *reqs,
        cs_client_value *vals, char (*kb)[24], cs_client_result **out, int *fatal)
{
	const settings *s = w->set;
	uint32_t n = 0;
	for (int i = 0; i < s->batch; i++) {
		int64_t key;
		if (!next_key(w, &key))
			break;
		if (pg != NULL && pick_write(w)) {
			write_one(w, pg, key);
			continue;
		}
		snprintf(kb[n], sizeof kb[n], "%" PRId64, key);
		vals[n] = cs_client_text(kb[n]);
		reqs[n].params = &vals[n];
		n++;
	}
	if (n == 0)
		return false;
	uint64_t t0 = now_us();
	int rc = cs_client_mget(c, reqs, n, out);
	if (rc != 0) {
		for (uint32_t i = 0; i < n; i++)
			note_error(w, rc, cs_client_errstr(c));
		*fatal = rc <= -100;
		return true;
	}
	cs_hist_record(&w->lat, now_us() - t0);
	w->ops++;
	w->keys += n;
	for (uint32_t i = 0; i < n; i++) {
		tally(w, out[i]);
		cs_client_result_free(out[i]);
	}
	return true;
}

/* Pipelined mode (depth 1 is plain request/response): keeps up to `depth` requests in
 * flight. Returns when the run is over or the connection failed (*fatal set). */
static void run_pipeline(worker *w, cs_client *c, PGconn *pg, double deadline, int *fatal)
{
	const settings *s = w->set;
	inflight fl[MAX_DEPTH];
	int nfl = 0;
	bool more = true;
	cs_client_value val;
	char kb[24];
	cs_client_request req = { .query = s->query, .params = &val, .nparams = 1,
		.tier = s->tier, .bypass = s->bypass };
	while (more || nfl > 0) {
		while (more && nfl < s->depth) {
			if (stop_requested || (s->duration > 0 && now_s() >= deadline)) {
				more = false;
				break;
			}
			int64_t key;
			if (!next_key(w, &key)) {
				more = false;
				break;
			}
			if (pg != NULL && pick_write(w)) {
				write_one(w, pg, key);
				continue;
			}
			snprintf(kb, sizeof kb, "%" PRId64, key);
			val = cs_client_text(kb);
			uint32_t id;
			int rc = cs_client_send(c, &req, s->refresh, &id);
			if (rc != 0) {
				note_error(w, rc, cs_client_errstr(c));
				if (rc <= -100) {
					*fatal = 1;
					return;
				}
				continue;
			}
			fl[nfl++] = (inflight){ .reqid = id, .t0 = now_us(), .key = key };
		}
		if (nfl == 0)
			break;
		uint32_t id;
		cs_client_result *r;
		int rc = cs_client_recv(c, &id, &r);
		if (rc != 0) {
			/* Fatal: every request still in flight is lost with the connection. */
			for (int i = 0; i < nfl; i++)
				note_error(w, rc, cs_client_errstr(c));
			*fatal = 1;
			return;
		}
		uint64_t t1 = now_us();
		int i;
		for (i = 0; i < nfl && fl[i].reqid != id; i++)
			;
		if (i < nfl) {
			cs_hist_record(&w->lat, t1 - fl[i].t0);
			fl[i] = fl[--nfl];
		}
		w->ops++;
		w->keys++;
		tally(w, r);
		cs_client_result_free(r);
	}
}

static void *run_worker(void *arg)
{
	worker *w = arg;
	const settings *s = w->set;
	cs_client *c = connect_one(w);
	PGconn *pg = NULL;
	if (c != NULL && s->write_pct > 0 && (pg = writer_connect(w)) == NULL) {
		cs_client_free(c);
		c = NULL;
	}
	w->connected = c != NULL;
	pthread_barrier_wait(&start_line);
	if (c == NULL) {
		PQfinish(pg);
		return NULL;
	}
	double deadline = now_s() + s->duration;
	cs_client_request *reqs = NULL;
	cs_client_value *vals = NULL;
	cs_client_result **out = NULL;
	char(*kb)[24] = NULL;
	if (s->batch > 1) {
		reqs = calloc((size_t)s->batch, sizeof *reqs);
		vals = calloc((size_t)s->batch, sizeof *vals);
		out = calloc((size_t)s->batch, sizeof *out);
		kb = calloc((size_t)s->batch, sizeof *kb);
		if (reqs == NULL || vals == NULL || out == NULL || kb == NULL) {
			note_error(w, CS_CLIENT_E_NOMEM, "out of memory");
			goto done;
		}
		for (int i = 0; i < s->batch; i++)
			reqs[i] = (cs_client_request){ .query = s->query, .nparams = 1,
				.tier = s->tier, .bypass = s->bypass };
	}
	int failed_reconnects = 0;
	for (;;) {
		int fatal = 0;
		if (s->batch > 1) {
			while (!stop_requested && (s->duration <= 0 || now_s() < deadline) &&
			        run_batch(w, c, pg, reqs, vals, kb, out, &fatal) && !fatal)
				;
		} else {
			run_pipeline(w, c, pg, deadline, &fatal);
		}
		if (!fatal)
			break;
		/* The connection died: reconnect with a backoff, bounded. */
		cs_client_free(c);
		c = NULL;
		while (c == NULL && failed_reconnects < RECONNECTS && !stop_requested &&
		        (s->duration <= 0 || now_s() < deadline)) {
			usleep(10000u << failed_reconnects);
			if ((c = connect_one(w)) == NULL)
				failed_reconnects++;
		}
		if (c == NULL)
			break;
		failed_reconnects = 0;
	}
done:
	free(reqs);
	free(vals);
	free(out);
	free(kb);
	cs_client_free(c);
	PQfinish(pg);
	return NULL;
}

/* ---------------------------------------------------------------- event-loop mode */

/* One thread, every connection on one epoll set, through the asynchronous client API
 * (cs_aclient_*): each connection keeps `depth` requests (GETs, MGETs of `batch` keys, or
 * PINGs) in flight; a reply's callback records it and sends the next request, and one
 * send() per readable event carries everything its callbacks queued. */

typedef struct lconn lconn;

/* A request in flight: its start time and key count, in its connection's table. */
typedef struct lreq {
	lconn *c;
	uint64_t t0;
	uint32_t nkeys;
	int next_free;
} lreq;

struct lconn {
	cs_aclient *a;
	bool registered; /* its fd is in the epoll set */
	bool want_out;   /* ... with EPOLLOUT */
	bool ready_seen; /* HELLO answered since the last (re)connect */
	int nfl;
	lreq *reqs; /* depth entries */
	int free_head;
	int failed_reconnects;
	double retry_at; /* > 0: reconnect at this time */
	bool gave_up;
};

typedef struct lstate {
	const settings *s;
	worker *w; /* the tallies (one worker: one thread) */
	int ep;
	lconn *conns;
	bool more; /* keys left and time left */
	double deadline;
	long inflight;
	cs_aclient_options aopt;
	cs_client_request *reqs; /* batch entries */
	cs_client_value *vals;
	char (*kb)[24];
} lstate;

static lstate L;

static void loop_issue(lconn *c);

static void on_loop_reply(cs_aclient *a, void *arg, cs_aclient_reply *rep)
{
	(void)a;
	lreq *r = arg;
	lconn *c = r->c;
	worker *w = L.w;
	if (rep->err != 0) {
		char what[200];
		snprintf(what, sizeof what, "%s: %s", cs_client_strerror(rep->err), rep->errmsg);
		for (uint32_t i = 0; i < r->nkeys; i++)
			note_error(w, rep->err, what);
	} else {
		cs_hist_record(&w->lat, now_us() - r->t0);
		w->ops++;
		w->keys += r->nkeys;
		for (uint32_t i = 0; i < rep->nresults; i++)
			tally(w, rep->results[i]);
	}
	r->next_free = c->free_head;
	c->free_head = (int)(r - c->reqs);
	c->nfl--;
	L.inflight--;
	if (rep->err == 0 || rep->err > -100 || rep->err == CS_CLIENT_E_TIMEOUT)
		loop_issue(c);
}

/* Fills the connection up to `depth` requests in flight. */
static void loop_issue(lconn *c)
{
	const settings *s = L.s;
	worker *w = L.w;
	while (L.more && c->nfl < s->depth && c->a != NULL && cs_aclient_status(c->a) >= 0) {
		if (stop_requested || (s->duration > 0 && now_s() >= L.deadline)) {
			L.more = false;
			break;
		}
		uint32_t n = 0;
		for (int i = 0; i < (s->ping ? 1 : s->batch); i++) {
			int64_t key = 0;
			if (s->ping ? s->total > 0 && atomic_fetch_add(&issued, 1) >= s->total
			            : !next_key(w, &key)) {
				L.more = false;
				break;
			}
			snprintf(L.kb[n], sizeof L.kb[n], "%" PRId64, key);
			L.vals[n] = cs_client_text(L.kb[n]);
			L.reqs[n].params = &L.vals[n];
			n++;
		}
		if (n == 0)
			break;
		lreq *r = &c->reqs[c->free_head];
		r->c = c;
		r->nkeys = n;
		r->t0 = now_us();
		int rc;
		if (s->ping)
			rc = cs_aclient_ping(c->a, 0, on_loop_reply, r, NULL);
		else if (s->batch > 1)
			rc = cs_aclient_mget(c->a, L.reqs, n, 0, on_loop_reply, r, NULL);
		else if (s->refresh)
			rc = cs_aclient_refresh(c->a, L.reqs, 0, on_loop_reply, r, NULL);
		else
			rc = cs_aclient_get(c->a, L.reqs, 0, on_loop_reply, r, NULL);
		if (rc != 0) {
			for (uint32_t i = 0; i < n; i++)
				note_error(w, rc, cs_aclient_errstr(c->a));
			break;
		}
		c->free_head = r->next_free;
		c->nfl++;
		L.inflight++;
	}
}

/* Writes what the connection queued and keeps its epoll interest in step. */
static void loop_sync(lconn *c)
{
	if (c->a == NULL)
		return;
	if (cs_aclient_status(c->a) >= 0 && cs_aclient_want_write(c->a))
		(void)cs_aclient_on_writable(c->a);
	int fd = cs_aclient_fd(c->a);
	if (fd < 0) {
		c->registered = false; /* closed: the kernel dropped it from the set */
		return;
	}
	bool want = cs_aclient_want_write(c->a);
	if (c->registered && want == c->want_out)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(L.ep, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0) {
		c->registered = true;
		c->want_out = want;
	}
}

static void loop_connect(lconn *c)
{
	c->a = cs_aclient_connect(&L.aopt);
	c->registered = false;
	c->want_out = false;
	c->ready_seen = false;
	if (c->a == NULL)
		return;
	if (cs_aclient_status(c->a) < 0 && L.w->first_error[0] == '\0')
		snprintf(L.w->first_error, sizeof L.w->first_error, "connect: %s",
		        cs_aclient_errstr(c->a));
	loop_sync(c);
}

/* Every ~10 ms: deadlines, dead connections (reconnect with a bounded backoff), fresh
 * connections (start sending once HELLO is answered). */
static void loop_housekeeping(int nconns, bool connecting)
{
	double t = now_s();
	for (int i = 0; i < nconns; i++) {
		lconn *c = &L.conns[i];
		if (c->gave_up)
			continue;
		if (c->a != NULL) {
			(void)cs_aclient_tick(c->a);
			int st = cs_aclient_status(c->a);
			if (st == 1 && !c->ready_seen) {
				c->ready_seen = true;
				c->failed_reconnects = 0;
				if (!connecting)
					loop_issue(c);
			}
			if (st < 0 && c->nfl == 0) {
				if (!c->ready_seen && L.w->first_error[0] == '\0')
					snprintf(L.w->first_error, sizeof L.w->first_error,
					        "connect: %s", cs_aclient_errstr(c->a));
				if (!c->ready_seen)
					c->failed_reconnects++;
				cs_aclient_free(c->a);
				c->a = NULL;
				c->registered = false;
				if (connecting || c->failed_reconnects >= RECONNECTS || !L.more) {
					c->gave_up = true;
					continue;
				}
				c->retry_at = t + 0.01 * (1 << c->failed_reconnects);
			}
			loop_sync(c);
		} else if (c->retry_at > 0 && t >= c->retry_at && L.more) {
			c->retry_at = 0;
			loop_connect(c);
		} else if (!L.more) {
			c->gave_up = true;
		}
	}
}

static void loop_events(int nconns, bool connecting, int timeout_ms)
{
	struct epoll_event ev[256];
	int n = epoll_wait(L.ep, ev, 256, timeout_ms);
	for (int i = 0; i < n; i++) {
		lconn *c = ev[i].data.ptr;
		if (c->a == NULL)
			continue;
		if (ev[i].events & EPOLLOUT)
			(void)cs_aclient_on_writable(c->a);
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			(void)cs_aclient_on_readable(c->a);
		if (!connecting && !c->ready_seen && cs_aclient_status(c->a) == 1) {
			c->ready_seen = true;
			c->failed_reconnects = 0;
			loop_issue(c);
		}
		loop_sync(c);
	}
	(void)nconns;
}

/* Runs the whole load in event-loop mode; fills *w, returns the connections that came up
 * and sets *elapsed and *cpu_s for the measured part. */
static int run_loop(const settings *s, worker *w, double *elapsed, double *cpu_s)
{
	memset(&L, 0, sizeof L);
	L.s = s;
	L.w = w;
	L.aopt.conn = s->opt;
	L.aopt.max_inflight = (uint32_t)s->depth;
	int nb = s->batch;
	L.reqs = calloc((size_t)nb, sizeof *L.reqs);
	L.vals = calloc((size_t)nb, sizeof *L.vals);
	L.kb = calloc((size_t)nb, sizeof *L.kb);
	L.conns = calloc((size_t)s->conns, sizeof *L.conns);
	L.ep = epoll_create1(EPOLL_CLOEXEC);
	if (L.reqs == NULL || L.vals == NULL || L.kb == NULL || L.conns == NULL || L.ep < 0) {
		fprintf(stderr, "cs_load: out of memory or epoll: %s\n", strerror(errno));
		return 0;
	}
	for (int i = 0; i < nb; i++)
		L.reqs[i] = (cs_client_request){ .query = s->query, .nparams = 1, .tier = s->tier,
			.bypass = s->bypass };
	for (int i = 0; i < s->conns; i++) {
		lconn *c = &L.conns[i];
		c->reqs = calloc((size_t)s->depth, sizeof *c->reqs);
		if (c->reqs == NULL) {
			fprintf(stderr, "cs_load: out of memory\n");
			return 0;
		}
		for (int k = 0; k < s->depth; k++)
			c->reqs[k].next_free = k + 1 < s->depth ? k + 1 : -1;
		c->free_head = 0;
		loop_connect(c);
	}
	/* Connect phase (not measured): until every connection is ready or failed. */
	L.more = true;
	for (;;) {
		int pending = 0;
		for (int i = 0; i < s->conns; i++)
			pending += L.conns[i].a != NULL && cs_aclient_status(L.conns[i].a) == 0;
		if (pending == 0 || stop_requested)
			break;
		loop_events(s->conns, true, 10);
		loop_housekeeping(s->conns, true);
	}
	int connected = 0;
	for (int i = 0; i < s->conns; i++) {
		lconn *c = &L.conns[i];
		if (c->a != NULL && cs_aclient_status(c->a) == 1) {
			c->ready_seen = true;
			connected++;
		} else {
			c->gave_up = true;
		}
	}
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	double t0 = now_s();
	L.deadline = t0 + s->duration;
	for (int i = 0; i < s->conns; i++) {
		loop_issue(&L.conns[i]);
		loop_sync(&L.conns[i]);
	}
	double next_hk = now_s() + 0.01;
	while (L.more || L.inflight > 0) {
		bool alive = false;
		for (int i = 0; i < s->conns && !alive; i++)
			alive = !L.conns[i].gave_up;
		if (!alive)
			break;
		loop_events(s->conns, false, 10);
		double t = now_s();
		if (L.more && (stop_requested || (s->duration > 0 && t >= L.deadline)))
			L.more = false;
		if (t >= next_hk) {
			loop_housekeeping(s->conns, false);
			next_hk = t + 0.01;
		}
	}
	*elapsed = now_s() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	*cpu_s = ru_seconds(&ru0, &ru1);
	for (int i = 0; i < s->conns; i++) {
		cs_aclient_free(L.conns[i].a);
		free(L.conns[i].reqs);
	}
	close(L.ep);
	free(L.conns);
	free(L.reqs);
	free(L.vals);
	free(L.kb);
	return connected;
}

/* ---------------------------------------------------------------- idle connections */

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Opens n connections from this thread (HELLO done on each), reports how many on stdout,
 * then holds them for `hold` seconds (0 = until SIGTERM/SIGINT) and closes them. */
static int run_idle(const settings *s, int n, double hold)
{
	cs_client **cl = calloc((size_t)n, sizeof *cl);
	if (cl == NULL)
		return 1;
	int up = 0, failed = 0;
	char first[160] = "";
	double t0 = now_s();
	for (int i = 0; i < n && !stop_requested; i++) {
		cs_client *c = cs_client_connect(&s->opt);
		if (c == NULL || cs_client_err(c) != 0) {
			if (first[0] == '\0')
				snprintf(first, sizeof first, "%s", c ? cs_client_errstr(c) : "no memory");
			cs_client_free(c);
			failed++;
			continue;
		}
		cl[up++] = c;
	}
	printf("{\"idle_connections\":%d,\"failed\":%d,\"connect_seconds\":%.3f,"
	       "\"first_error\":\"%s\"}\n",
	        up, failed, now_s() - t0, first);
	fflush(stdout);
	double end = now_s() + hold;
	while (!stop_requested && (hold <= 0 || now_s() < end))
		usleep(50000);
	for (int i = 0; i < up; i++)
		cs_client_free(cl[i]);
	free(cl);
	return up > 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- output */

static void json_hist(cs_json *j, const char *name, const cs_hist *h)
{
	cs_json_key(j, name);
	cs_json_object(j);
	cs_json_kv_uint(j, "count", cs_hist_count(h));
	cs_json_kv_fixed(j, "mean", cs_hist_mean(h), 1);
	static const struct {
		const char *name;
		double q;
	} qs[] = { { "p50", 0.5 }, { "p90", 0.9 }, { "p99", 0.99 }, { "p999", 0.999 } };
	for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
		cs_json_kv_uint(j, qs[i].name, cs_hist_quantile(h, qs[i].q));
	}
	cs_json_kv_uint(j, "max", cs_hist_max(h));
	cs_json_object_end(j);
}

static void print_result(const settings *s, worker *w, int nw, int connected, double elapsed,
        double cpu_s)
{
	static cs_hist lat, wlat; /* ~34 KB each: not on the stack */
	cs_hist_init(&lat);
	cs_hist_init(&wlat);
	long ops = 0, keys = 0, src[3] = { 0 }, stale = 0, errs[ERR_SLOTS] = { 0 };
	long writes = 0, werr = 0, errors = 0;
	const char *first = "";
	for (int i = 0; i < nw; i++) {
		cs_hist_merge(&lat, &w[i].lat);
		cs_hist_merge(&wlat, &w[i].wlat);
		ops += w[i].ops;
		keys += w[i].keys;
		stale += w[i].stale;
		writes += w[i].writes;
		werr += w[i].write_errors;
		for (int k = 0; k < 3; k++)
			src[k] += w[i].src[k];
		for (int k = 0; k < ERR_SLOTS; k++)
			errs[k] += w[i].errs[k];
		if (first[0] == '\0')
			first = w[i].first_error;
	}
	for (int k = 0; k < ERR_SLOTS; k++)
		errors += errs[k];
	errors += (long)(s->conns - connected);
	long answered = src[0] + src[1] + src[2];
	static const char *const dist[] = { "zipf", "uniform", "unique" };
	cs_sb out = CS_SB_INIT;
	cs_json j;
	cs_json_init(&j, &out, false);
	cs_json_object(&j);
	cs_json_kv_str(&j, "query", s->query);
	cs_json_kv_str(&j, "mode",
	        s->ping      ? "ping"
	        : s->refresh ? "refresh"
	        : s->bypass  ? "bypass"
	                     : "get");
	cs_json_kv_int(&j, "conns", s->conns);
	cs_json_kv_int(&j, "connected", connected);
	cs_json_kv_int(&j, "depth", s->depth);
	cs_json_kv_int(&j, "batch", s->batch);
	cs_json_kv_str(&j, "dist", dist[s->dist]);
	cs_json_kv_fixed(&j, "zipf_s", s->zipf_s, 3);
	cs_json_kv_int(&j, "key_lo", s->lo);
	cs_json_kv_int(&j, "key_hi", s->hi);
	cs_json_kv_fixed(&j, "write_pct", s->write_pct, 2);
	cs_json_kv_fixed(&j, "elapsed_s", elapsed, 3);
	cs_json_kv_int(&j, "requests", keys);
	cs_json_kv_int(&j, "ops", ops);
	cs_json_kv_fixed(&j, "throughput", elapsed > 0 ? (double)keys / elapsed : 0.0, 1);
	cs_json_kv_fixed(&j, "ops_per_s", elapsed > 0 ? (double)ops / elapsed : 0.0, 1);
	cs_json_kv_str(&j, "engine", s->loop ? "loop" : "threads");
	cs_json_kv_fixed(&j, "cpu_s", cpu_s, 3);
	cs_json_kv_fixed(&j, "cpu_us_per_request", keys > 0 ? cpu_s * 1e6 / (double)keys : 0.0, 2);
	cs_json_key(&j, "sources");
	cs_json_object(&j);
	cs_json_kv_int(&j, "cache", src[0]);
	cs_json_kv_int(&j, "replica", src[1]);
	cs_json_kv_int(&j, "primary", src[2]);
	cs_json_object_end(&j);
	cs_json_kv_int(&j, "stale", stale);
	cs_json_kv_fixed(&j, "hit_ratio", answered > 0 ? (double)src[0] / answered : 0.0, 4);
	json_hist(&j, "latency_us", &lat);
	cs_json_kv_int(&j, "writes", writes);
	cs_json_kv_int(&j, "write_errors", werr);
	cs_json_kv_fixed(&j, "writes_per_s", elapsed > 0 ? (double)writes / elapsed : 0.0, 1);
	json_hist(&j, "write_latency_us", &wlat);
	cs_json_kv_int(&j, "errors", errors);
	cs_json_key(&j, "errors_by_code");
	cs_json_object(&j);
	for (int k = 1; k < ERR_SLOTS; k++)
		if (errs[k] != 0)
			cs_json_kv_int(&j, k == ERR_OTHER ? "other" : cs_client_strerror(slot_code(k)), errs[k]);
	if (connected < s->conns)
		cs_json_kv_int(&j, "connect", s->conns - connected);
	cs_json_object_end(&j);
	cs_json_kv_str(&j, "first_error", first);
	cs_json_object_end(&j);
	if (cs_sb_puts(&out, stdout) != 0)
		fputs("cs_load: out of memory writing the result\n", stderr);
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: cs_load [OPTIONS] QUERY\n"
	        "       cs_load [OPTIONS] --ping\n"
	        "Drives QUERY (one integer parameter: the key) at a cachesvc; prints JSON.\n"
	        "\n"
	        "      --loop             one thread drives every connection on an event loop\n"
	        "                         (the default, except with -w)\n"
	        "      --threads          one thread per connection (blocking client API)\n"
	        "      --ping             PING instead of a query (loop mode): the load\n"
	        "                         generator's and the hop's cost without cache or DB\n"
	        "  -h, --host ADDR        numeric address (127.0.0.1)\n"
	        "  -p, --port PORT        port (6380)\n"
	        "  -s, --socket PATH      unix socket instead of TCP\n"
	        "  -c, --conns N          connections (10)\n"
	        "  -d, --duration SECS    run this long (default 10 unless -n is given)\n"
	        "  -n, --requests N       send N keys in all, then stop\n"
	        "  -P, --pipeline D       requests in flight per connection (1)\n"
	        "  -b, --batch B          B keys per MGET instead of single GETs (1); with\n"
	        "                         -P (loop mode only): P MGETs in flight\n"
	        "  -k, --keys LO:HI       key range (1:100000)\n"
	        "      --zipf S           Zipfian keys with exponent S (default, 1.1)\n"
	        "      --uniform          uniform keys\n"
	        "      --unique           each key of the range once (cold misses, warm-up)\n"
	        "      --refresh          send REFRESH instead of GET\n"
	        "      --bypass           GET with the cache bypassed\n"
	        "      --tier T           critical, default (default), batch\n"
	        "  -w, --write-pct P      P%% of operations are writes on the primary (0)\n"
	        "      --pg CONNINFO      libpq conninfo of the primary (for writes)\n"
	        "      --update SQL       the write; $1 is the key\n"
	        "  -t, --timeout MS       per-call timeout (10000)\n"
	        "      --seed N           random seed (fixed by default: runs repeat)\n"
	        "      --idle N           open N idle connections, print a line, hold them for\n"
	        "                         --duration seconds (0 = until SIGTERM), close\n"
	        "      --help\n");
}

static bool parse_range(const char *arg, int64_t *lo, int64_t *hi)
{
	char *end;
	errno = 0;
	long long a = strtoll(arg, &end, 10);
	if (errno != 0 || *end != ':')
		return false;
	long long b = strtoll(end + 1, &end, 10);
	if (errno != 0 || *end != '\0' || b < a)
		return false;
	*lo = a;
	*hi = b;
	return true;
}

int main(int argc, char **argv)
{
	settings s = { .conns = 10, .depth = 1, .batch = 1, .dist = DIST_ZIPF, .zipf_s = 1.1,
		.lo = 1, .hi = 100000, .tier = CS_CLIENT_TIER_DEFAULT,
		.seed = UINT64_C(0x5eed5eed), .duration = -1 };
	s.opt.client_name = "cs_load";
	s.opt.timeout_ms = 10000;
	s.opt.connect_timeout_ms = 5000;
	s.opt.token = getenv("CACHESVC_TOKEN");
	int idle = 0;
	int engine = 0; /* 0 = loop unless writes, 1 = --loop, 2 = --threads */
	enum { O_ZIPF = 256, O_UNIFORM, O_UNIQUE, O_REFRESH, O_BYPASS, O_TIER, O_PG, O_UPDATE,
		O_SEED, O_IDLE, O_HELP, O_LOOP, O_THREADS, O_PING };
	static const struct option lopts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "socket", required_argument, NULL, 's' },
		{ "conns", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "requests", required_argument, NULL, 'n' },
		{ "pipeline", required_argument, NULL, 'P' },
		{ "batch", required_argument, NULL, 'b' },
		{ "keys", required_argument, NULL, 'k' },
		{ "write-pct", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "zipf", required_argument, NULL, O_ZIPF },
		{ "uniform", no_argument, NULL, O_UNIFORM },
		{ "unique", no_argument, NULL, O_UNIQUE },
		{ "refresh", no_argument, NULL, O_REFRESH },
		{ "bypass", no_argument, NULL, O_BYPASS },
		{ "tier", required_argument, NULL, O_TIER },
		{ "pg", required_argument, NULL, O_PG },
		{ "update", required_argument, NULL, O_UPDATE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "idle", required_argument, NULL, O_IDLE },
		{ "help", no_argument, NULL, O_HELP },
		{ "loop", no_argument, NULL, O_LOOP },
		{ "threads", no_argument, NULL, O_THREADS },
		{ "ping", no_argument, NULL, O_PING },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "h:p:s:c:d:n:P:b:k:w:t:", lopts, NULL)) != -1) {
		switch (ch) {
		case 'h': s.opt.host = optarg; break;
		case 'p': s.opt.port = (uint16_t)atoi(optarg); break;
		case 's': s.opt.unix_path = optarg; break;
		case 'c': s.conns = atoi(optarg); break;
		case 'd': s.duration = strtod(optarg, NULL); break;
		case 'n': s.total = atol(optarg); break;
		case 'P': s.depth = atoi(optarg); break;
		case 'b': s.batch = atoi(optarg); break;
		case 'k':
			if (!parse_range(optarg, &s.lo, &s.hi)) {
				fprintf(stderr, "cs_load: --keys takes LO:HI with LO <= HI\n");
				return 2;
			}
			break;
		case 'w': s.write_pct = strtod(optarg, NULL); break;
		case 't': s.opt.timeout_ms = atoi(optarg); break;
		case O_ZIPF:
			s.dist = DIST_ZIPF;
			s.zipf_s = strtod(optarg, NULL);
			break;
		case O_UNIFORM: s.dist = DIST_UNIFORM; break;
		case O_UNIQUE: s.dist = DIST_UNIQUE; break;
		case O_REFRESH: s.refresh = true; break;
		case O_BYPASS: s.bypass = true; break;
		case O_TIER:
			s.tier = strcmp(optarg, "critical") == 0 ? CS_CLIENT_TIER_CRITICAL
			        : strcmp(optarg, "batch") == 0   ? CS_CLIENT_TIER_BATCH
			                                         : CS_CLIENT_TIER_DEFAULT;
			break;
		case O_PG: s.pg_conninfo = optarg; break;
		case O_UPDATE: s.update_sql = optarg; break;
		case O_SEED: s.seed = strtoull(optarg, NULL, 0); break;
		case O_IDLE: idle = atoi(optarg); break;
		case O_HELP: usage(stdout); return 0;
		case O_LOOP: engine = 1; break;
		case O_THREADS: engine = 2; break;
		case O_PING: s.ping = true; break;
		default: usage(stderr); return 2;
		}
	}
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (idle > 0)
		return run_idle(&s, idle, s.duration < 0 ? 0 : s.duration);

	if (s.ping ? optind != argc : optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	s.query = s.ping ? "(ping)" : argv[optind];
	s.loop = engine == 1 || (engine == 0 && s.write_pct <= 0);
	if (s.duration < 0)
		s.duration = s.total > 0 || s.dist == DIST_UNIQUE ? 0 : 10;
	const char *bad = NULL;
	if (s.conns < 1 || s.conns > MAX_CONNS)
		bad = "--conns must be 1..4096";
	else if (s.depth < 1 || s.depth > MAX_DEPTH)
		bad = "--pipeline must be 1..1024";
	else if (s.batch < 1 || s.batch > MAX_BATCH)
		bad = "--batch must be 1..256";
	else if (s.batch > 1 && s.depth > 1 && !s.loop)
		bad = "--batch and --pipeline combine only in loop mode";
	else if (s.loop && s.write_pct > 0)
		bad = "--loop does not do writes (libpq blocks): use --threads with -w";
	else if (s.ping && (!s.loop || s.batch > 1))
		bad = "--ping runs in loop mode, without --batch";
	else if (s.write_pct < 0 || s.write_pct > 100)
		bad = "--write-pct must be 0..100";
	else if (s.write_pct > 0 && (s.pg_conninfo == NULL || s.update_sql == NULL))
		bad = "--write-pct needs --pg and --update";
	else if (s.dist == DIST_ZIPF && !(s.zipf_s > 0))
		bad = "--zipf must be > 0";
	else if (s.dist == DIST_ZIPF && s.hi - s.lo + 1 > MAX_KEYS)
		bad = "Zipfian key range too large (at most 100M keys)";
	if (bad != NULL) {
		fprintf(stderr, "cs_load: %s\n", bad);
		return 2;
	}
	double *cdf = NULL;
	if (s.dist == DIST_ZIPF && !s.ping) {
		if ((cdf = zipf_cdf((long)(s.hi - s.lo + 1), s.zipf_s)) == NULL) {
			fprintf(stderr, "cs_load: out of memory for the Zipf table\n");
			return 1;
		}
		s.cdf = cdf;
	}

	if (s.loop) {
		static worker lw; /* one thread, one set of tallies */
		lw.set = &s;
		lw.rng = s.seed ^ UINT64_C(0x9e3779b97f4a7c15);
		cs_hist_init(&lw.lat);
		cs_hist_init(&lw.wlat);
		double elapsed = 0, cpu = 0;
		int up = run_loop(&s, &lw, &elapsed, &cpu);
		print_result(&s, &lw, 1, up, elapsed, cpu);
		if (up == 0)
			fprintf(stderr, "cs_load: no connection: %s\n", lw.first_error);
		free(cdf);
		return up > 0 ? 0 : 1;
	}

	worker *w = calloc((size_t)s.conns, sizeof *w);
	pthread_t *th = calloc((size_t)s.conns, sizeof *th);
	if (w == NULL || th == NULL) {
		fprintf(stderr, "cs_load: out of memory\n");
		return 1;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024); /* thousands of threads fit */
	pthread_barrier_init(&start_line, NULL, (unsigned)s.conns + 1);
	for (int i = 0; i < s.conns; i++) {
		w[i].set = &s;
		w[i].index = i;
		w[i].rng = s.seed ^ (UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(i + 1));
		cs_hist_init(&w[i].lat);
		cs_hist_init(&w[i].wlat);
		if (pthread_create(&th[i], &attr, run_worker, &w[i]) != 0) {
			/* The barrier counts on every thread: nothing sensible to do but stop. */
			fprintf(stderr, "cs_load: cannot start thread %d\n", i);
			return 1;
		}
	}
	pthread_barrier_wait(&start_line); /* every connection is up (or failed) */
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	double t0 = now_s();
	int connected = 0;
	for (int i = 0; i < s.conns; i++)
		pthread_join(th[i], NULL);
	double elapsed = now_s() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	for (int i = 0; i < s.conns; i++)
		connected += w[i].connected;
	print_result(&s, w, s.conns, connected, elapsed, ru_seconds(&ru0, &ru1));
	if (connected == 0)
		fprintf(stderr, "cs_load: no connection: %s\n", w[0].first_error);
	pthread_attr_destroy(&attr);
	pthread_barrier_destroy(&start_line);
	free(w);
	free(th);
	free(cdf);
	return connected > 0 ? 0 : 1;
}
