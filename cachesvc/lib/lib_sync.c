/* lib_sync.c - library mode, blocking side: the engine on a private thread with its own
 * event_base, and calls from any thread handed to it through a bounded queue.
 *
 * Why a thread of its own: the engine is single-threaded and must keep running between
 * calls (pub/sub generation bumps, health checks and lag sampling, pool maintenance, the
 * invalidator when enabled), so its loop runs for the whole life of the handle.
 *
 * How a call travels: the caller copies its request into a job, appends it to the queue
 * under the handle's mutex and, if the queue was empty, wakes the loop through an eventfd
 * (the loop drains the whole queue on every wake, so one write per empty->non-empty
 * transition is enough; libevent itself is never touched from a caller thread). The loop
 * thread hands each job to the engine; the engine's callback stores the answer in the job,
 * marks it done and signals the job's condition variable, on which the caller waits with
 * its deadline (CLOCK_MONOTONIC).
 *
 * Why a timed-out caller cannot cause a use-after-free: a job is reference-counted (the
 * caller's reference and, once queued, the engine side's), and every count change, the
 * done flag and the abandoned flag are under the handle's mutex. A caller that times out
 * marks the job abandoned and drops its reference; the engine side drops the other one
 * when the engine answers, and whichever is last frees the job with the late result in it.
 * The engine only ever sees the job's own copies of the request's strings.
 *
 * Why close is safe with calls in flight: close sets `closing` under the mutex and then
 * wakes the loop, so the loop's next drain sees the flag together with every job queued
 * before it (none can be queued after). It fails those, frees the engine (which answers
 * every request it holds SHUTTING_DOWN) and stops. Close then joins the thread and waits
 * for `callers` (threads inside a call) to reach zero before freeing the mutex they use. */
#include "lib_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine.h"
#include "log.h"
#include "util.h"

#define QUEUE_MAX_DEFAULT  4096u
#define READY_WAIT_MS	   5000 /* the daemon's wait before accepting clients */
#define READY_POLL_MS	   20
#define SMALL_TIMEOUT_MS   1000 /* healthy / stats / metrics */
#define MAX_STATS	   64

/* What a job asks of the engine thread. */
typedef enum job_kind {
	JOB_GET = 0, /* cs_engine_get (GET or REFRESH) */
	JOB_INVAL,   /* cs_engine_invalidate */
	JOB_HEALTHY, /* cs_engine_healthy */
	JOB_STATS,   /* cs_engine_stats_list */
	JOB_METRICS, /* cs_engine_metrics */
} job_kind;

typedef struct job {
	cachesvc_sync *h;
	struct job *next; /* queue link (under mu) */
	int refs;	  /* caller + engine side (under mu) */
	bool abandoned;	  /* the caller gave up waiting (under mu) */
	bool done;	  /* the answer is in (under mu) */
	pthread_cond_t cond;
	job_kind kind;
	/* Request: written by the caller before queueing, read by the engine thread. */
	uint8_t op;
	cs_get_req get;
	char tshard[CS_PROTO_MAX_SHARD]; /* get.shard's bytes (get.shard_len) */
	cs_inval_req inval;
	uint32_t max_stats;
	/* Answer: written by the engine thread before `done`, read by the caller after. */
	int rc;
	char *msg;     /* malloc'd error message or NULL */
	cs_result *res;
	uint64_t n;    /* invalidate count / generation; healthy 0/1 */
	char why[256];
	cs_stat *stats;
	uint32_t nstats;
	char *text;
	long text_len;
	char strs[]; /* the request's query name and string parameters */
} job;

struct cachesvc_sync {
	pthread_mutex_t mu;
	pthread_condattr_t cattr; /* CLOCK_MONOTONIC, for the jobs' conditions */
	pthread_cond_t idle;	  /* close waits here for callers == 0 */
	job *qhead, *qtail;	  /* jobs not yet taken by the loop (under mu) */
	uint32_t pending;	  /* jobs queued or in the engine (under mu) */
	uint32_t queue_max;
	uint32_t callers;	  /* threads inside a call (under mu) */
	bool closing;		  /* (under mu) */
	int efd;		  /* eventfd: wakes the loop */
	bool thread_started;
	pthread_t thread;
	/* Loop thread only, after open. */
	struct event_base *base;
	struct event *wake_ev;
	cs_engine *engine;
	cs_buf scratch;
	bool freeing; /* inside cs_engine_free: every error it reports is SHUTTING_DOWN */
	/* Constant after open. */
	int64_t default_timeout_ms;
	uint32_t max_frame;
	bool sharded; /* the config has [shard NAME] sections: the engine judges shard tokens */
};

/* ---- Jobs -------------------------------------------------------------------------------- */

static job *job_new(cachesvc_sync *h, job_kind kind, size_t strs)
{
	job *j = calloc(1, sizeof *j + strs);
	if (j == NULL)
		return NULL;
	if (pthread_cond_init(&j->cond, &h->cattr) != 0) {
		free(j);
		return NULL;
	}
	j->h = h;
	j->kind = kind;
	j->refs = 1;
	return j;
}

static void job_free(job *j)
{
	pthread_cond_destroy(&j->cond);
	cs_result_free(j->res);
	free(j->msg);
	free(j->stats);
	free(j->text);
	free(j);
}

/* Bytes of the strings in a request view. */
static size_t strs_size(const char *query, uint32_t qlen, const cs_value *params, uint32_t n)
{
	size_t total = (size_t)qlen + 1;
	for (uint32_t i = 0; i < n; i++)
		if (params[i].type == CS_V_STR || params[i].type == CS_V_BIN)
			total += params[i].u.s.len;
	return total;
}

/* Copies the query name and string parameters into j->strs and points the view at them. */
static void strs_copy(job *j, const char **query, uint32_t qlen, cs_value *params, uint32_t n)
{
	char *p = j->strs;
	memcpy(p, *query, qlen);
	p[qlen] = '\0';
	*query = p;
	p += qlen + 1;
	for (uint32_t i = 0; i < n; i++) {
		if (params[i].type != CS_V_STR && params[i].type != CS_V_BIN)
			continue;
		memcpy(p, params[i].u.s.p, params[i].u.s.len);
		params[i].u.s.p = p;
		p += params[i].u.s.len;
	}
}

/* Drops the caller's reference and leaves the handle: after this the caller must not touch
 * h (close may free it). */
static void caller_leave(cachesvc_sync *h, job *j)
{
	pthread_mutex_lock(&h->mu);
	bool last = j != NULL && --j->refs == 0;
	if (--h->callers == 0 && h->closing)
		pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->mu);
	if (last)
		job_free(j);
}

/* Queues j and waits for its answer until timeout_ms pass. Returns 0 when answered (the
 * answer is in j), or CACHESVC_E_CLOSED / _OVERLOADED (not queued) / _TIMEOUT (abandoned:
 * the engine side frees it). Always followed by caller_leave. */
static int submit_wait(cachesvc_sync *h, job *j, int64_t timeout_ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)(timeout_ms / 1000);
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&h->mu);
	h->callers++;
	if (h->closing) {
		pthread_mutex_unlock(&h->mu);
		return CACHESVC_E_CLOSED;
	}
	if (h->pending >= h->queue_max) {
		pthread_mutex_unlock(&h->mu);
		return CACHESVC_E_OVERLOADED;
	}
	h->pending++;
	j->refs++; /* the engine side's */
	bool wake = h->qhead == NULL;
	if (h->qtail)
		h->qtail->next = j;
	else
		h->qhead = j;
	h->qtail = j;
	pthread_mutex_unlock(&h->mu);
	if (wake)
		(void)eventfd_write(h->efd, 1);

	int rc = 0;
	pthread_mutex_lock(&h->mu);
	while (!j->done) {
		int e = pthread_cond_timedwait(&j->cond, &h->mu, &deadline);
		if (e == ETIMEDOUT && !j->done) {
			j->abandoned = true;
			rc = CACHESVC_E_TIMEOUT;
			break;
		}
	}
	pthread_mutex_unlock(&h->mu);
	return rc;
}

/* ---- The loop thread --------------------------------------------------------------------- */

/* Stores an answer (taking ownership of res), wakes the caller and drops the engine side's
 * reference. msg is copied. */
static void complete(job *j, int rc, const char *msg, cs_result *res, uint64_t n)
{
	cachesvc_sync *h = j->h;
	char *m = rc != 0 && msg != NULL ? strdup(msg) : NULL;
	pthread_mutex_lock(&h->mu);
	j->rc = rc;
	j->msg = m;
	j->res = res;
	j->n = n;
	j->done = true;
	pthread_cond_signal(&j->cond);
	h->pending--;
	bool last = --j->refs == 0;
	pthread_mutex_unlock(&h->mu);
	if (last)
		job_free(j); /* the caller timed out: the late answer goes with it */
}

static bool job_abandoned(job *j)
{
	pthread_mutex_lock(&j->h->mu);
	bool gone = j->abandoned;
	pthread_mutex_unlock(&j->h->mu);
	return gone;
}

static void on_engine_get(void *priv, int err, const char *msg, const cs_meta *meta,
	const uint8_t *result, size_t len)
{
	job *j = priv;
	cs_result *res = NULL;
	if (err != 0 && j->h->freeing)
		err = CACHESVC_E_SHUTTING_DOWN; /* (the engine may say "no server left" here) */
	if (err == 0 && !job_abandoned(j)) {
		err = cs_lib_result_new(&j->h->scratch, meta, result, len, &res);
		if (err != 0)
			msg = "cannot build the result";
	}
	complete(j, err, msg, res, 0);
}

static void on_engine_inval(void *priv, int err, const char *msg, uint64_t n)
{
	job *j = priv;
	if (err != 0 && j->h->freeing)
		err = CACHESVC_E_SHUTTING_DOWN;
	complete(j, err, msg, NULL, n);
}

static void dispatch(cachesvc_sync *h, job *j)
{
	if (j->kind == JOB_GET && job_abandoned(j)) {
		complete(j, CACHESVC_E_TIMEOUT, NULL, NULL, 0); /* nobody waits: do not run it */
		return;
	}
	switch (j->kind) {
	case JOB_GET:
		cs_engine_get(h->engine, j->op, &j->get, on_engine_get, j);
		break;
	case JOB_INVAL:
		cs_engine_invalidate(h->engine, &j->inval, on_engine_inval, j);
		break;
	case JOB_HEALTHY:
		complete(j, 0, NULL, NULL, cs_engine_healthy(h->engine, j->why, sizeof j->why));
		break;
	case JOB_STATS:
		j->nstats = cs_engine_stats_list(h->engine, j->stats, j->max_stats);
		complete(j, 0, NULL, NULL, 0);
		break;
	case JOB_METRICS:
		j->text_len = cs_engine_metrics(h->engine, &j->text);
		complete(j, j->text_len < 0 ? CACHESVC_E_NOMEM : 0, "out of memory", NULL, 0);
		break;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	cachesvc_sync *h = arg;
	eventfd_t v;
	(void)eventfd_read(h->efd, &v);
	pthread_mutex_lock(&h->mu);
	job *list = h->qhead;
	h->qhead = h->qtail = NULL;
	bool closing = h->closing;
	pthread_mutex_unlock(&h->mu);
	while (list) {
		job *j = list;
		list = j->next;
		j->next = NULL;
		if (closing)
			complete(j, CACHESVC_E_SHUTTING_DOWN, "shutting down", NULL, 0);
		else
			dispatch(h, j);
	}
	if (closing && h->engine) {
		/* Answers every request the engine holds, on this thread. */
		h->freeing = true;
		cs_engine_free(h->engine);
		h->engine = NULL;
		event_base_loopbreak(h->base);
	}
}

static void *engine_main(void *arg)
{
	cachesvc_sync *h = arg;
	event_base_dispatch(h->base);
	return NULL;
}

/* ---- Open and close ---------------------------------------------------------------------- */

/* Frees what open built; the loop thread must not be running. */
static void destroy(cachesvc_sync *h)
{
	if (h->engine)
		cs_engine_free(h->engine);
	if (h->wake_ev)
		event_free(h->wake_ev);
	if (h->base)
		event_base_free(h->base);
	if (h->efd >= 0)
		close(h->efd);
	cs_buf_free(&h->scratch);
	pthread_cond_destroy(&h->idle);
	pthread_condattr_destroy(&h->cattr);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

cachesvc_sync *cachesvc_sync_open(const char *config_path, const cachesvc_options *opt,
	cachesvc_error *err)
{
	cs_config *cfg = cs_lib_config_load(config_path, opt, err);
	if (cfg == NULL)
		return NULL;
	cachesvc_sync *h = calloc(1, sizeof *h);
	if (h == NULL) {
		cs_config_free(cfg);
		cs_lib_error(err, CACHESVC_E_NOMEM, "out of memory");
		return NULL;
	}
	h->efd = -1;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&h->cattr);
	pthread_condattr_setclock(&h->cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&h->idle, NULL);
	cs_buf_init(&h->scratch, CS_LIB_MAX_BODY);
	h->queue_max = opt && opt->queue_max ? opt->queue_max : QUEUE_MAX_DEFAULT;
	h->default_timeout_ms = cfg->request_timeout_ms + 1000;
	h->max_frame = cfg->max_frame;
	h->sharded = cfg->nshards > 0;

	h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	h->base = h->efd >= 0 ? event_base_new() : NULL;
	if (h->base)
		h->wake_ev = event_new(h->base, h->efd, EV_READ | EV_PERSIST, on_wake, h);
	if (h->wake_ev == NULL || event_add(h->wake_ev, NULL) != 0) {
		cs_config_free(cfg);
		cs_lib_error(err, CACHESVC_E_START, "cannot create the engine's event loop");
		destroy(h);
		return NULL;
	}
	char eerr[CACHESVC_ERRLEN - 64];
	h->engine = cs_engine_new(h->base, cfg, eerr, sizeof eerr); /* owns cfg from here */
	if (h->engine == NULL) {
		cs_lib_error(err, CACHESVC_E_START, "%s", eerr);
		destroy(h);
		return NULL;
	}

	/* The loop thread takes no signals: the application's handlers run on its own
	 * threads, and a write to a closed Redis socket fails with EPIPE instead of killing
	 * the process (the SIGPIPE stays pending on that thread, harmlessly). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&h->thread, NULL, engine_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		cs_lib_error(err, CACHESVC_E_START, "cannot start the engine thread: %s",
			strerror(rc));
		destroy(h);
		return NULL;
	}
	h->thread_started = true;

	int wait_ms = opt && opt->ready_timeout_ms ? opt->ready_timeout_ms : READY_WAIT_MS;
	uint64_t until = cs_now_us() + (uint64_t)(wait_ms > 0 ? wait_ms : 0) * 1000u;
	char why[256] = "";
	while (wait_ms > 0) {
		int ok = cachesvc_sync_healthy(h, SMALL_TIMEOUT_MS, why, sizeof why);
		if (ok == 1)
			break;
		if (cs_now_us() >= until) {
			cs_warn("library: not healthy after %d ms, serving anyway: %s", wait_ms,
				why);
			break;
		}
		usleep(READY_POLL_MS * 1000);
	}
	return h;
}

void cachesvc_sync_close(cachesvc_sync *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	bool again = h->closing;
	h->closing = true;
	pthread_mutex_unlock(&h->mu);
	if (again)
		return; /* a second close of the same handle: the first one frees it */
	(void)eventfd_write(h->efd, 1);
	pthread_join(h->thread, NULL);
	pthread_mutex_lock(&h->mu);
	while (h->callers > 0)
		pthread_cond_wait(&h->idle, &h->mu);
	pthread_mutex_unlock(&h->mu);
	destroy(h);
}

/* ---- Calls ------------------------------------------------------------------------------- */

static const char *lib_msg(int rc, int64_t timeout_ms, char *buf, size_t len)
{
	switch (rc) {
	case CACHESVC_E_TIMEOUT:
		snprintf(buf, len, "no answer within %lld ms", (long long)timeout_ms);
		return buf;
	case CACHESVC_E_OVERLOADED:
		return "too many requests pending on this handle (queue_max)";
	case CACHESVC_E_CLOSED:
		return "the handle is closing";
	case CACHESVC_E_ARG:
		return "invalid argument";
	case CACHESVC_E_TOO_LARGE:
		return "parameters exceed max_frame";
	case CACHESVC_E_NOMEM:
		return "out of memory";
	default:
		return cachesvc_strerror(rc);
	}
}

static int64_t pick_timeout(int timeout_ms, int64_t dflt)
{
	return timeout_ms > 0 ? timeout_ms : dflt;
}

/* An error result for *out (NULL if even that cannot be allocated). Returns rc. */
static int fail_result(cachesvc_result **out, int rc, const char *msg)
{
	*out = cs_lib_pub(cs_result_new_error(rc, msg, strlen(msg)));
	return rc;
}

int cachesvc_sync_get(cachesvc_sync *h, const cachesvc_request *req, int timeout_ms,
	cachesvc_result **out)
{
	return cachesvc_sync_get_token(h, req, NULL, timeout_ms, out);
}

int cachesvc_sync_get_token(cachesvc_sync *h, const cachesvc_request *req, const char *token_shard,
        int timeout_ms, cachesvc_result **out)
{
	if (out == NULL)
		return CACHESVC_E_ARG;
	*out = NULL;
	char buf[96];
	if (h == NULL || timeout_ms < 0)
		return fail_result(out, CACHESVC_E_ARG, "invalid argument");
	cs_get_req g;
	uint8_t op;
	int rc = cs_lib_req_view(req, token_shard, h->max_frame, &g, &op);
	if (rc != 0)
		return fail_result(out, rc, lib_msg(rc, 0, buf, sizeof buf));
	char msg[256];
	if (cs_lib_shard_refused(&g, h->sharded, msg, sizeof msg))
		return fail_result(out, CACHESVC_E_BAD_PARAMS, msg);
	job *j = job_new(h, JOB_GET, strs_size(g.query, g.query_len, g.params, g.nparams));
	if (j == NULL)
		return fail_result(out, CACHESVC_E_NOMEM, "out of memory");
	j->op = op;
	j->get = g;
	strs_copy(j, &j->get.query, g.query_len, j->get.params, g.nparams);
	if (g.shard_len > 0) { /* (at most CS_PROTO_MAX_SHARD bytes: cs_lib_req_view) */
		memcpy(j->tshard, g.shard, g.shard_len);
		j->get.shard = j->tshard;
	}

	int64_t tmo = pick_timeout(timeout_ms, h->default_timeout_ms);
	rc = submit_wait(h, j, tmo);
	if (rc == 0) {
		rc = j->rc;
		if (rc == 0) {
			*out = cs_lib_pub(j->res);
			j->res = NULL;
		} else {
			fail_result(out, rc, j->msg ? j->msg : cachesvc_strerror(rc));
		}
	} else {
		fail_result(out, rc, lib_msg(rc, tmo, buf, sizeof buf));
	}
	caller_leave(h, j);
	return rc;
}

static int sync_invalidate(cachesvc_sync *h, const char *query, const cachesvc_value *params,
	uint32_t nparams, bool has_params, int timeout_ms, uint64_t *n)
{
	if (h == NULL || timeout_ms < 0)
		return CACHESVC_E_ARG;
	cs_inval_req iv;
	int rc = cs_lib_inval_view(query, params, nparams, has_params, h->max_frame, &iv);
	if (rc != 0)
		return rc;
	job *j = job_new(h, JOB_INVAL, strs_size(iv.query, iv.query_len, iv.params, iv.nparams));
	if (j == NULL)
		return CACHESVC_E_NOMEM;
	j->inval = iv;
	strs_copy(j, &j->inval.query, iv.query_len, j->inval.params, iv.nparams);
	rc = submit_wait(h, j, pick_timeout(timeout_ms, h->default_timeout_ms));
	if (rc == 0) {
		rc = j->rc;
		if (rc != 0)
			cs_debug("library: invalidate %s: %s", query, j->msg ? j->msg : "");
		if (rc == 0 && n != NULL)
			*n = j->n;
	}
	caller_leave(h, j);
	return rc;
}

int cachesvc_sync_invalidate_key(cachesvc_sync *h, const char *query,
	const cachesvc_value *params, uint32_t nparams, int timeout_ms, uint64_t *deleted)
{
	return sync_invalidate(h, query, params, nparams, true, timeout_ms, deleted);
}

int cachesvc_sync_invalidate_query(cachesvc_sync *h, const char *query, int timeout_ms,
	uint64_t *generation)
{
	return sync_invalidate(h, query, NULL, 0, false, timeout_ms, generation);
}

int cachesvc_sync_healthy(cachesvc_sync *h, int timeout_ms, char *why, size_t whylen)
{
	if (h == NULL || timeout_ms < 0)
		return CACHESVC_E_ARG;
	job *j = job_new(h, JOB_HEALTHY, 0);
	if (j == NULL)
		return CACHESVC_E_NOMEM;
	int rc = submit_wait(h, j, pick_timeout(timeout_ms, SMALL_TIMEOUT_MS));
	if (rc == 0) {
		rc = j->n ? 1 : 0;
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "%s", j->why);
	} else if (why != NULL && whylen > 0) {
		snprintf(why, whylen, "%s", cachesvc_strerror(rc));
	}
	caller_leave(h, j);
	return rc;
}

int cachesvc_sync_stats(cachesvc_sync *h, cachesvc_stat *out, uint32_t max, int timeout_ms)
{
	if (h == NULL || (out == NULL && max > 0) || timeout_ms < 0)
		return CACHESVC_E_ARG;
	job *j = job_new(h, JOB_STATS, 0);
	if (j == NULL)
		return CACHESVC_E_NOMEM;
	j->max_stats = CS_MIN(max, (uint32_t)MAX_STATS);
	j->stats = calloc(MAX_STATS, sizeof *j->stats);
	if (j->stats == NULL) {
		job_free(j);
		return CACHESVC_E_NOMEM;
	}
	int rc = submit_wait(h, j, pick_timeout(timeout_ms, SMALL_TIMEOUT_MS));
	if (rc == 0) {
		for (uint32_t i = 0; i < j->nstats; i++)
			out[i] = (cachesvc_stat){ .name = j->stats[i].name,
				.value = j->stats[i].i };
		rc = (int)j->nstats;
	}
	caller_leave(h, j);
	return rc;
}

long cachesvc_sync_metrics(cachesvc_sync *h, char **out, int timeout_ms)
{
	if (h == NULL || out == NULL || timeout_ms < 0)
		return CACHESVC_E_ARG;
	*out = NULL;
	job *j = job_new(h, JOB_METRICS, 0);
	if (j == NULL)
		return CACHESVC_E_NOMEM;
	long rc = submit_wait(h, j, pick_timeout(timeout_ms, SMALL_TIMEOUT_MS));
	if (rc == 0) {
		rc = j->rc != 0 ? j->rc : j->text_len;
		*out = j->text;
		j->text = NULL;
	}
	caller_leave(h, j);
	return rc;
}
