/* lib.c - library mode, asynchronous side: the public cachesvc_* API over the engine on the
 * application's event loop, plus what both handles share (config and startup checks,
 * request views, results, error names, LSN tokens). The blocking handle is lib_sync.c.
 *
 * The engine may answer a request from inside cs_engine_get (errors found at once). The
 * public contract is stronger: a callback never runs inside the call that started its
 * request, so such answers are parked on a per-handle list and delivered from a libevent
 * event on the next turn of the loop. */
#include "lib_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "check.h"
#include "engine.h"
#include "log.h"
#include "lsn.h"
#include "util.h"

/* ---- Errors ------------------------------------------------------------------------------ */

int cs_lib_error(cachesvc_error *err, int code, const char *fmt, ...)
{
	if (err == NULL)
		return code;
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return code;
}

_Static_assert(CACHESVC_E_NO_SHARD == -CS_ERR_NO_SHARD && CS_ERR_MAX == 12,
	"the engine's codes are the wire's");

const char *cachesvc_strerror(int code)
{
	switch (code) {
	case CACHESVC_OK:
		return "ok";
	case CACHESVC_E_TIMEOUT:
		return "timeout";
	case CACHESVC_E_CLOSED:
		return "closed";
	case CACHESVC_E_NOMEM:
		return "out_of_memory";
	case CACHESVC_E_ARG:
		return "invalid_argument";
	case CACHESVC_E_CONFIG:
		return "config";
	case CACHESVC_E_CHECK:
		return "startup_check";
	case CACHESVC_E_START:
		return "start";
	default:
		return code < 0 && code >= -CS_ERR_MAX ? cs_err_name(code) : "unknown_error";
	}
}

const char *cachesvc_version(void)
{
	return CS_PROTO_STR(CACHESVC_VERSION_MAJOR) "." CS_PROTO_STR(
		CACHESVC_VERSION_MINOR) "." CS_PROTO_STR(CACHESVC_VERSION_PATCH);
}

/* ---- Config and startup checks ---------------------------------------------------------- */

cs_config *cs_lib_config_load(const char *config_path, const cachesvc_options *opt,
	cachesvc_error *err)
{
	if (config_path == NULL) {
		cs_lib_error(err, CACHESVC_E_ARG, "no configuration file given");
		return NULL;
	}
	char cerr[CS_CONFIG_ERRLEN];
	cs_config *cfg = cs_config_load(config_path, cerr);
	if (cfg == NULL) {
		cs_lib_error(err, CACHESVC_E_CONFIG, "%s", cerr);
		return NULL;
	}
	cs_log_level lvl;
	if (cs_log_parse_level(cfg->log_level, &lvl))
		cs_log_set_level(lvl);
	if (opt != NULL && (opt->flags & CACHESVC_F_NO_STARTUP_CHECKS))
		return cfg;

	/* The daemon's checks (main.c), in the same order with the same outcomes: a wrong
	 * config fails, an unreachable server is only logged. */
	char msg[CACHESVC_ERRLEN - 256];
	int rc = cs_check_queries(cfg, msg, sizeof msg);
	if (rc == CS_CHECK_UNREACHABLE)
		cs_warn("queries not checked against a server: %s", msg);
	if (rc != CS_CHECK_INVALID) {
		rc = cs_check_invalidation(cfg, true, msg, sizeof msg);
		if (rc == CS_CHECK_UNREACHABLE)
			cs_warn("invalidation not checked: %s", msg);
	}
	if (rc != CS_CHECK_INVALID && cs_check_ryw(cfg) == CS_CHECK_UNREACHABLE)
		cs_warn("read-your-writes coverage not checked (primary unreachable): tokens go to the database");
	if (rc != CS_CHECK_INVALID) {
		rc = cs_check_redis(cfg, msg, sizeof msg);
		if (rc == CS_CHECK_UNREACHABLE)
			cs_warn("redis not checked: %s", msg);
	}
	if (rc == CS_CHECK_INVALID) {
		cs_lib_error(err, CACHESVC_E_CHECK, "%s: %s", config_path, msg);
		cs_config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* ---- Requests ---------------------------------------------------------------------------- */

/* Copies public values into wire values (borrowing strings); counts their string bytes. */
static int values_view(const cachesvc_value *in, uint32_t n, cs_value *out, uint64_t *bytes)
{
	if (n > CS_PROTO_MAX_PARAMS || (n > 0 && in == NULL))
		return CACHESVC_E_ARG;
	for (uint32_t i = 0; i < n; i++) {
		const cachesvc_value *v = &in[i];
		cs_value *o = &out[i];
		memset(o, 0, sizeof *o);
		switch (v->type) {
		case CACHESVC_V_NIL:
			o->type = CS_V_NIL;
			break;
		case CACHESVC_V_BOOL:
			o->type = CS_V_BOOL;
			o->u.b = v->u.b;
			break;
		case CACHESVC_V_INT:
			o->type = CS_V_INT;
			o->u.i = v->u.i;
			break;
		case CACHESVC_V_FLOAT:
			o->type = CS_V_FLOAT;
			o->u.f = v->u.f;
			break;
		case CACHESVC_V_STR:
		case CACHESVC_V_BIN:
			if (v->u.s.p == NULL && v->u.s.len > 0)
				return CACHESVC_E_ARG;
			o->type = v->type == CACHESVC_V_STR ? CS_V_STR : CS_V_BIN;
			o->u.s.p = v->u.s.p ? v->u.s.p : "";
			o->u.s.len = v->u.s.len;
			*bytes += v->u.s.len;
			break;
		case CACHESVC_V_TS:
			if (v->u.ts.nsec >= 1000000000u)
				return CACHESVC_E_ARG;
			o->type = CS_V_TS;
			o->u.ts.sec = v->u.ts.sec;
			o->u.ts.nsec = v->u.ts.nsec;
			break;
		default:
			return CACHESVC_E_ARG;
		}
	}
	return 0;
}

int cs_lib_req_view(const cachesvc_request *in, const char *token_shard, uint32_t max_frame,
        cs_get_req *out, uint8_t *op)
{
	if (in == NULL || in->query == NULL || in->tier < CACHESVC_TIER_CRITICAL ||
		in->tier > CACHESVC_TIER_BATCH)
		return CACHESVC_E_ARG;
	/* a token's shard: the wire's rule (PROTOCOL.md 3.3), and only beside an LSN */
	size_t slen = token_shard ? strnlen(token_shard, CS_PROTO_MAX_SHARD + 1) : 0;
	if (slen > 0 && (in->min_lsn == 0 || !cs_proto_shard_name_ok(token_shard, slen)))
		return CACHESVC_E_ARG;
	memset(out, 0, sizeof *out);
	size_t qlen = strlen(in->query);
	uint64_t bytes = qlen;
	int rc = values_view(in->params, in->nparams, out->params, &bytes);
	if (rc != 0)
		return rc;
	if (bytes > max_frame)
		return CACHESVC_E_TOO_LARGE;
	out->query = in->query;
	out->query_len = (uint32_t)qlen;
	out->nparams = in->nparams;
	out->tier = (uint8_t)in->tier;
	out->min_lsn = in->min_lsn;
	out->shard = slen > 0 ? token_shard : NULL;
	out->shard_len = (uint32_t)slen;
	out->bypass = in->bypass;
	*op = in->refresh ? CS_OP_REFRESH : CS_OP_GET;
	return 0;
}

bool cs_lib_shard_refused(const cs_get_req *g, bool sharded, char *msg, size_t msglen)
{
	/* with [shard NAME] sections the engine judges the token (key_route) */
	if (sharded || g->shard_len == 0)
		return false;
	snprintf(msg, msglen,
	        "read-your-writes token names shard \"%.*s\", but shard tokens need "
	        "[shard NAME] sections and this deployment has none: pass the bare LSN",
	        (int)g->shard_len, g->shard);
	return true;
}

int cs_lib_inval_view(const char *query, const cachesvc_value *params, uint32_t nparams,
	bool has_params, uint32_t max_frame, cs_inval_req *out)
{
	if (query == NULL)
		return CACHESVC_E_ARG;
	memset(out, 0, sizeof *out);
	size_t qlen = strlen(query);
	uint64_t bytes = qlen;
	if (has_params) {
		int rc = values_view(params, nparams, out->params, &bytes);
		if (rc != 0)
			return rc;
		out->nparams = nparams;
	}
	if (bytes > max_frame)
		return CACHESVC_E_TOO_LARGE;
	out->query = query;
	out->query_len = (uint32_t)qlen;
	out->has_params = has_params;
	return 0;
}

/* ---- Results ----------------------------------------------------------------------------- */

int cs_lib_result_new(cs_buf *scratch, const cs_meta *meta, const uint8_t *result, size_t len,
	cs_result **out)
{
	*out = NULL;
	cs_buf_reset(scratch);
	msgpack_packer pk;
	msgpack_packer_init(&pk, scratch, cs_buf_msgpack_write);
	if (msgpack_pack_array(&pk, 2) != 0 || cs_proto_pack_meta(&pk, meta) != 0 ||
		cs_buf_append(scratch, result, len) != 0)
		return CACHESVC_E_NOMEM; /* the cap is above anything the engine serves */
	char err[128];
	int rc = cs_result_decode(scratch->data, (uint32_t)scratch->len, out, err, sizeof err);
	if (rc == -CS_ERR_PROTOCOL)
		cs_error("library: cannot decode a result from the engine: %s", err);
	if (scratch->cap > (1u << 20))
		cs_buf_free(scratch); /* do not keep one huge result's memory around */
	return rc == 0 ? 0 : rc == -CS_ERR_PROTOCOL ? CACHESVC_E_INTERNAL : CACHESVC_E_NOMEM;
}

int cachesvc_result_err(const cachesvc_result *r, const char **msg)
{
	if (r == NULL) {
		if (msg != NULL)
			*msg = "no result";
		return CACHESVC_E_ARG;
	}
	return cs_result_error(cs_lib_res(r), msg);
}

uint32_t cachesvc_result_ncols(const cachesvc_result *r)
{
	return r ? cs_result_ncols(cs_lib_res(r)) : 0;
}

uint32_t cachesvc_result_nrows(const cachesvc_result *r)
{
	return r ? cs_result_nrows(cs_lib_res(r)) : 0;
}

const char *cachesvc_result_col_name(const cachesvc_result *r, uint32_t col)
{
	return r ? cs_result_col_name(cs_lib_res(r), col) : NULL;
}

int cachesvc_result_col_type(const cachesvc_result *r, uint32_t col)
{
	return r ? cs_result_col_type(cs_lib_res(r), col) : 0;
}

int cachesvc_result_value(const cachesvc_result *r, uint32_t row, uint32_t col,
	cachesvc_value *out)
{
	cs_value v;
	if (r == NULL || out == NULL || cs_result_value(cs_lib_res(r), row, col, &v) != 0)
		return CACHESVC_E_ARG;
	memset(out, 0, sizeof *out);
	switch (v.type) {
	case CS_V_BOOL:
		out->type = CACHESVC_V_BOOL;
		out->u.b = v.u.b;
		break;
	case CS_V_INT:
		out->type = CACHESVC_V_INT;
		out->u.i = v.u.i;
		break;
	case CS_V_FLOAT:
		out->type = CACHESVC_V_FLOAT;
		out->u.f = v.u.f;
		break;
	case CS_V_STR:
	case CS_V_BIN:
		out->type = v.type == CS_V_STR ? CACHESVC_V_STR : CACHESVC_V_BIN;
		out->u.s.p = v.u.s.p;
		out->u.s.len = v.u.s.len;
		break;
	case CS_V_TS:
		out->type = CACHESVC_V_TS;
		out->u.ts.sec = v.u.ts.sec;
		out->u.ts.nsec = v.u.ts.nsec;
		break;
	default:
		out->type = CACHESVC_V_NIL;
		break;
	}
	return 0;
}

int cachesvc_result_source(const cachesvc_result *r)
{
	return r ? cs_result_meta(cs_lib_res(r))->src : CACHESVC_SRC_CACHE;
}

uint64_t cachesvc_result_lsn(const cachesvc_result *r)
{
	return r ? cs_result_meta(cs_lib_res(r))->lsn : 0;
}

uint64_t cachesvc_result_age_ms(const cachesvc_result *r)
{
	return r ? cs_result_meta(cs_lib_res(r))->age_ms : 0;
}

bool cachesvc_result_stale(const cachesvc_result *r)
{
	return r ? cs_result_meta(cs_lib_res(r))->stale : false;
}

int cachesvc_result_stored(const cachesvc_result *r)
{
	if (r == NULL)
		return -1;
	uint8_t st = cs_result_meta(cs_lib_res(r))->stored;
	return st == CS_STORED_YES ? 1 : st == CS_STORED_NO ? 0 : -1;
}

void cachesvc_result_free(cachesvc_result *r)
{
	cs_result_free((cs_result *)(void *)r);
}

/* ---- LSN tokens -------------------------------------------------------------------------- */

int cachesvc_lsn_parse(const char *s, uint64_t *out)
{
	if (s == NULL || out == NULL)
		return CACHESVC_E_ARG;
	return cs_lsn_parse(s, out) ? 0 : CACHESVC_E_ARG;
}

char *cachesvc_lsn_format(uint64_t lsn, char buf[CACHESVC_LSN_STRLEN])
{
	return cs_lsn_format(lsn, buf);
}

_Static_assert(CACHESVC_SHARD_MAXLEN == CS_TOKEN_MAX_SHARD &&
                       CACHESVC_SHARD_MAXLEN == CS_PROTO_MAX_SHARD &&
                       CACHESVC_TOKEN_STRLEN == CS_TOKEN_STRLEN,
        "the library's token is the protocol's");

int cachesvc_token_parse(const char *s, cachesvc_token *out)
{
	cs_token t;
	if (s == NULL || out == NULL || !cs_token_parse(s, &t))
		return CACHESVC_E_ARG;
	memcpy(out->shard, t.shard, sizeof out->shard);
	out->lsn = t.lsn;
	return 0;
}

char *cachesvc_token_format(const cachesvc_token *t, char buf[CACHESVC_TOKEN_STRLEN])
{
	cs_token ct;
	if (buf == NULL)
		return NULL;
	if (t == NULL) { /* as _parse refuses NULL (review 33 R33-6) */
		buf[0] = '\0';
		return buf;
	}
	size_t n = strnlen(t->shard, sizeof t->shard);
	if (n == sizeof t->shard || (n > 0 && !cs_proto_shard_name_ok(t->shard, n))) {
		buf[0] = '\0'; /* not a shard name: nothing a parse would give back */
		return buf;
	}
	memcpy(ct.shard, t->shard, n + 1);
	ct.lsn = t->lsn;
	return cs_token_format(&ct, buf);
}

/* ---- Asynchronous handle ----------------------------------------------------------------- */

/* Where a request stands relative to the call that started it. */
typedef enum areq_state {
	AREQ_IN_CALL = 0, /* cs_engine_get/invalidate has not returned yet */
	AREQ_PENDING,	  /* the engine will answer later, from the loop */
	AREQ_DEFERRED,	  /* answered inside the call: parked until the loop's next turn */
} areq_state;

/* One request from cachesvc_get / cachesvc_invalidate_* until its callback has run. */
typedef struct areq {
	cachesvc *h;
	struct areq *next; /* deferred list */
	areq_state state;
	bool is_inval;
	cachesvc_get_cb *get_cb;
	cachesvc_invalidate_cb *inval_cb;
	void *priv;
	/* a parked answer */
	int err;
	char *msg;
	cs_result *res;
	uint64_t n;
} areq;

struct cachesvc {
	struct event_base *base;
	cs_engine *engine;
	struct event *defer_ev; /* delivers the parked answers */
	areq *deferred, *deferred_tail;
	uint32_t max_frame;
	bool sharded; /* the config has [shard NAME] sections: the engine judges shard tokens */
	int depth;   /* user callbacks of this handle running right now */
	bool freeing; /* inside cs_engine_free: every error it reports is SHUTTING_DOWN */
	bool closed; /* cachesvc_close was called: no new requests */
	cs_buf scratch;
};

static void deliver(areq *a, int err, const char *msg, const cs_result *res, uint64_t n)
{
	cachesvc *h = a->h;
	if (err != 0 && h->freeing)
		err = CACHESVC_E_SHUTTING_DOWN; /* (the engine may say "no server left" here) */
	if (err != 0 && msg == NULL)
		msg = cachesvc_strerror(err);
	h->depth++;
	if (a->is_inval)
		a->inval_cb(a->priv, err, err ? msg : NULL, n);
	else
		a->get_cb(a->priv, err, err ? msg : NULL,
			err ? NULL : cs_lib_pub((cs_result *)res));
	h->depth--;
}

static void park(areq *a, int err, const char *msg, cs_result *res, uint64_t n)
{
	cachesvc *h = a->h;
	a->err = err;
	a->msg = msg ? strdup(msg) : NULL; /* on OOM deliver() falls back to the code's name */
	a->res = res;
	a->n = n;
	a->state = AREQ_DEFERRED;
	a->next = NULL;
	if (h->deferred_tail)
		h->deferred_tail->next = a;
	else
		h->deferred = a;
	h->deferred_tail = a;
	/* A zero timeout, not event_active: answers parked by callbacks of this very delivery
	 * (an application re-issuing from its callback, answered from the near cache) wait
	 * for the next loop pass, so timers and I/O - the engine's and the application's - are
	 * never starved by a chain of immediate answers. */
	if (!event_pending(h->defer_ev, EV_TIMEOUT, NULL)) {
		struct timeval now = { 0, 0 };
		event_add(h->defer_ev, &now);
	}
}

static void flush_deferred(cachesvc *h)
{
	areq *list = h->deferred;
	h->deferred = h->deferred_tail = NULL;
	while (list) {
		areq *a = list;
		list = a->next;
		deliver(a, a->err, a->msg, a->res, a->n);
		cs_result_free(a->res);
		free(a->msg);
		free(a);
	}
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
	flush_deferred(arg);
}

static void on_engine_get(void *priv, int err, const char *msg, const cs_meta *meta,
	const uint8_t *result, size_t len)
{
	areq *a = priv;
	cs_result *res = NULL;
	if (err == 0) {
		err = cs_lib_result_new(&a->h->scratch, meta, result, len, &res);
		if (err != 0)
			msg = "cannot build the result";
	}
	if (a->state == AREQ_IN_CALL) {
		park(a, err, msg, res, 0);
		return;
	}
	deliver(a, err, msg, res, 0);
	cs_result_free(res);
	free(a);
}

static void on_engine_inval(void *priv, int err, const char *msg, uint64_t n)
{
	areq *a = priv;
	if (a->state == AREQ_IN_CALL) {
		park(a, err, msg, NULL, n);
		return;
	}
	deliver(a, err, msg, NULL, n);
	free(a);
}

cachesvc *cachesvc_open(struct event_base *base, const char *config_path,
	const cachesvc_options *opt, cachesvc_error *err)
{
	if (base == NULL) {
		cs_lib_error(err, CACHESVC_E_ARG, "no event_base given");
		return NULL;
	}
	cs_config *cfg = cs_lib_config_load(config_path, opt, err);
	if (cfg == NULL)
		return NULL;
	cachesvc *h = calloc(1, sizeof *h);
	if (h == NULL || (h->defer_ev = event_new(base, -1, 0, on_deferred, h)) == NULL) {
		free(h);
		cs_config_free(cfg);
		cs_lib_error(err, CACHESVC_E_NOMEM, "out of memory");
		return NULL;
	}
	h->base = base;
	h->max_frame = cfg->max_frame;
	h->sharded = cfg->nshards > 0;
	cs_buf_init(&h->scratch, CS_LIB_MAX_BODY);
	char eerr[CACHESVC_ERRLEN - 64];
	h->engine = cs_engine_new(base, cfg, eerr, sizeof eerr); /* owns cfg from here */
	if (h->engine == NULL) {
		cs_lib_error(err, CACHESVC_E_START, "%s", eerr);
		event_free(h->defer_ev);
		free(h);
		return NULL;
	}
	return h;
}

/* The checks every asynchronous call starts with: 0, or the error the call returns. */
static int call_check(const cachesvc *h, bool has_cb)
{
	if (h == NULL || !has_cb)
		return CACHESVC_E_ARG;
	if (h->closed)
		return CACHESVC_E_CLOSED;
	return 0;
}

/* A zeroed request record for h (callbacks set by the caller); NULL when out of memory. */
static areq *areq_new(cachesvc *h, void *priv)
{
	areq *a = calloc(1, sizeof *a);
	if (a != NULL) {
		a->h = h;
		a->priv = priv;
	}
	return a;
}

/* After the engine call returned: a request it did not answer is pending now. */
static void areq_started(areq *a)
{
	if (a->state == AREQ_IN_CALL)
		a->state = AREQ_PENDING; /* (a DEFERRED request is alive on the list) */
}

int cachesvc_get_token(cachesvc *h, const cachesvc_request *req, const char *token_shard,
        cachesvc_get_cb *cb, void *priv)
{
	int rc = call_check(h, cb != NULL);
	if (rc != 0)
		return rc;
	cs_get_req g;
	uint8_t op;
	rc = cs_lib_req_view(req, token_shard, h->max_frame, &g, &op);
	if (rc != 0)
		return rc;
	areq *a = areq_new(h, priv);
	if (a == NULL)
		return CACHESVC_E_NOMEM;
	a->get_cb = cb;
	char msg[256];
	if (cs_lib_shard_refused(&g, h->sharded, msg, sizeof msg)) {
		park(a, CACHESVC_E_BAD_PARAMS, msg, NULL, 0); /* as the engine's errors: later */
		return 0;
	}
	cs_engine_get(h->engine, op, &g, on_engine_get, a);
	areq_started(a);
	return 0;
}

int cachesvc_get(cachesvc *h, const cachesvc_request *req, cachesvc_get_cb *cb, void *priv)
{
	return cachesvc_get_token(h, req, NULL, cb, priv);
}

static int invalidate(cachesvc *h, const char *query, const cachesvc_value *params,
	uint32_t nparams, bool has_params, cachesvc_invalidate_cb *cb, void *priv)
{
	int rc = call_check(h, cb != NULL);
	if (rc != 0)
		return rc;
	cs_inval_req iv;
	rc = cs_lib_inval_view(query, params, nparams, has_params, h->max_frame, &iv);
	if (rc != 0)
		return rc;
	areq *a = areq_new(h, priv);
	if (a == NULL)
		return CACHESVC_E_NOMEM;
	a->is_inval = true;
	a->inval_cb = cb;
	cs_engine_invalidate(h->engine, &iv, on_engine_inval, a);
	areq_started(a);
	return 0;
}

int cachesvc_invalidate_key(cachesvc *h, const char *query, const cachesvc_value *params,
	uint32_t nparams, cachesvc_invalidate_cb *cb, void *priv)
{
	return invalidate(h, query, params, nparams, true, cb, priv);
}

int cachesvc_invalidate_query(cachesvc *h, const char *query, cachesvc_invalidate_cb *cb,
	void *priv)
{
	return invalidate(h, query, NULL, 0, false, cb, priv);
}

bool cachesvc_healthy(const cachesvc *h, char *why, size_t whylen)
{
	char buf[256];
	if (h == NULL || h->closed) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "%s", h ? "closed" : "no handle");
		return false;
	}
	bool ok = cs_engine_healthy(h->engine, buf, sizeof buf);
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", buf);
	return ok;
}

uint32_t cachesvc_stats(const cachesvc *h, cachesvc_stat *out, uint32_t max)
{
	if (h == NULL || out == NULL)
		return 0;
	cs_stat st[64];
	uint32_t n = cs_engine_stats_list(h->engine, st, CS_MIN(max, 64u));
	for (uint32_t i = 0; i < n; i++)
		out[i] = (cachesvc_stat){ .name = st[i].name, .value = st[i].i };
	return n;
}

long cachesvc_metrics(const cachesvc *h, char **out)
{
	if (h == NULL || out == NULL)
		return CACHESVC_E_ARG;
	long n = cs_engine_metrics(h->engine, out);
	return n < 0 ? CACHESVC_E_NOMEM : n;
}

static void close_now(cachesvc *h)
{
	h->closed = true;
	flush_deferred(h);
	/* Answers every request still in the engine (SHUTTING_DOWN): on_engine_get sees
	 * them PENDING and runs their callbacks right here. */
	h->freeing = true;
	cs_engine_free(h->engine);
	h->engine = NULL;
	flush_deferred(h);
	event_free(h->defer_ev);
	cs_buf_free(&h->scratch);
	free(h);
}

static void on_close_later(evutil_socket_t fd, short what, void *arg)
{
	close_now(arg);
}

void cachesvc_close(cachesvc *h)
{
	if (h == NULL || h->closed)
		return;
	if (h->depth == 0) {
		close_now(h);
		return;
	}
	/* Inside one of our callbacks, the engine is still on the stack: never free it
	 * under itself (STYLE.md). Tear down on the next turn of the loop instead. */
	h->closed = true;
	struct timeval now = { 0, 0 };
	if (event_base_once(h->base, -1, EV_TIMEOUT, on_close_later, h, &now) != 0)
		cs_error("library: cannot schedule the close of a handle; it leaks");
}
