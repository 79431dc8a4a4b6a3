/* aclient.c - the asynchronous client API (cachesvc-client.h, "Asynchronous API").
 *
 * One non-blocking socket, one capped output buffer, the codec's frame reader, and a
 * fixed table of max_inflight request slots. A request id is (generation << bits) | slot,
 * so a reply finds its slot in O(1) and a stale id (a reply to a timed-out request whose
 * slot was reused) never matches. Deadlines: each slot keeps its own; next_deadline is a
 * lower bound on the earliest one, so a tick before it costs one clock read and a tick
 * after it one scan of the table. Nothing here blocks or sleeps. */
#include "cachesvc-client.h"
#include "client_addr.h"
#include "cs_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define A_DEFAULT_INFLIGHT 1024u
#define A_MAX_INFLIGHT     65536u
#define A_DEFAULT_QUEUE    (1u << 20)
#define A_READ_CHUNK       (64u << 10)
#define A_READS_PER_EVENT  4      /* recv() calls per on_readable, for fairness */
#define A_HELLO_ID         1u     /* generation 0: no request id has it */

enum { ST_CONNECTING, ST_HELLO, ST_READY, ST_DEAD };
enum { SL_FREE, SL_LIVE, SL_ABANDONED };

typedef struct slot {
	uint32_t id;
	uint32_t gen;
	uint8_t state;
	uint8_t op;
	uint16_t nitems;  /* MGET: keys requested */
	uint32_t next_free;
	int64_t deadline; /* CLOCK_MONOTONIC ms */
	cs_aclient_cb *cb;
	void *arg;
} slot;

struct cs_aclient {
	int fd;
	int state;
	int err;
	char errstr[256];
	int timeout_ms;
	int64_t connect_deadline;
	uint32_t cap, bits;
	slot *slots;
	uint32_t free_head; /* UINT32_MAX: table full */
	uint32_t live;      /* SL_LIVE slots */
	int64_t next_deadline;
	cs_buf out;
	size_t out_off;
	size_t max_queue;
	uint32_t server_max_frame;
	cs_proto_reader *rd;
	uint8_t *rbuf;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_err(cs_aclient *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(cs_aclient *a, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->errstr, sizeof a->errstr, fmt, ap);
	va_end(ap);
	a->err = code;
	return code;
}

/* ---- Slots ------------------------------------------------------------------------------- */

static void slot_release(cs_aclient *a, uint32_t idx)
{
	slot *s = &a->slots[idx];
	if (s->state == SL_LIVE)
		a->live--;
	s->state = SL_FREE;
	s->cb = NULL;
	s->arg = NULL;
	s->next_free = a->free_head;
	a->free_head = idx;
}

/* Completes the live request in slot idx: the slot is freed (or kept as abandoned, so a
 * late reply is recognised and dropped), then the callback runs; results it leaves are
 * freed. */
static void complete(cs_aclient *a, uint32_t idx, bool abandon, int err, const char *msg,
        cs_client_result **res, uint32_t nres)
{
	slot *s = &a->slots[idx];
	cs_aclient_cb *cb = s->cb;
	void *arg = s->arg;
	cs_aclient_reply rep = { s->id, err, msg ? msg : "", res, nres };
	if (abandon) {
		s->state = SL_ABANDONED;
		s->cb = NULL;
		s->arg = NULL;
		a->live--;
	} else {
		slot_release(a, idx);
	}
	cb(a, arg, &rep);
	for (uint32_t i = 0; i < nres; i++)
		cs_client_result_free(res[i]);
}

/* A fatal error: closes the socket, then completes every outstanding request with it. */
static int fatal(cs_aclient *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fatal(cs_aclient *a, int code, const char *fmt, ...)
{
	if (a->state == ST_DEAD)
		return a->err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->errstr, sizeof a->errstr, fmt, ap);
	va_end(ap);
	a->err = code;
	a->state = ST_DEAD;
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	char msg[sizeof a->errstr];
	memcpy(msg, a->errstr, sizeof msg);
	for (uint32_t i = 0; i < a->cap; i++) {
		if (a->slots[i].state == SL_LIVE)
			complete(a, i, false, code, msg, NULL, 0);
		else if (a->slots[i].state == SL_ABANDONED)
			slot_release(a, i);
	}
	a->err = code; /* callbacks may have submitted (and been refused) meanwhile */
	memcpy(a->errstr, msg, sizeof msg);
	return code;
}

/* ---- Requests ---------------------------------------------------------------------------- */

static int params_in(cs_aclient *a, const cs_client_value *params, uint32_t n, cs_value *out)
{
	if (n > CS_PROTO_MAX_PARAMS)
		return set_err(a, CS_CLIENT_E_ARG, "%u parameters, the limit is %d", n,
		        CS_PROTO_MAX_PARAMS);
	if (n > 0 && params == NULL)
		return set_err(a, CS_CLIENT_E_ARG, "params is NULL");
	for (uint32_t i = 0; i < n; i++) {
		const cs_client_value *v = &params[i];
		cs_value *o = &out[i];
		memset(o, 0, sizeof *o);
		o->type = (uint8_t)v->type;
		switch (v->type) {
		case CS_CLIENT_V_NIL:
			break;
		case CS_CLIENT_V_BOOL:
			o->u.b = v->u.b;
			break;
		case CS_CLIENT_V_INT:
			o->u.i = v->u.i;
			break;
		case CS_CLIENT_V_FLOAT:
			o->u.f = v->u.f;
			break;
		case CS_CLIENT_V_STR:
		case CS_CLIENT_V_BIN:
			if (v->u.s.p == NULL && v->u.s.len > 0)
				return set_err(a, CS_CLIENT_E_ARG, "parameter %u: NULL string",
				        i + 1);
			o->u.s.p = v->u.s.p;
			o->u.s.len = v->u.s.len;
			break;
		case CS_CLIENT_V_TS:
			o->u.ts.sec = v->u.ts.sec;
			o->u.ts.nsec = v->u.ts.nsec;
			break;
		default:
			return set_err(a, CS_CLIENT_E_ARG, "parameter %u: unknown type %d", i + 1,
			        v->type);
		}
	}
	return 0;
}

static int request_in(cs_aclient *a, const cs_client_request *req, cs_get_req *g)
{
	if (req == NULL)
		return set_err(a, CS_CLIENT_E_ARG, "request is NULL");
	size_t n = req->query ? strlen(req->query) : 0;
	if (n == 0 || n > CS_PROTO_MAX_NAME)
		return set_err(
		        a, CS_CLIENT_E_ARG, "query name must be 1..%d bytes", CS_PROTO_MAX_NAME);
	if (req->tier < CS_CLIENT_TIER_CRITICAL || req->tier > CS_CLIENT_TIER_BATCH)
		return set_err(a, CS_CLIENT_E_ARG, "tier %d out of range 0..2", req->tier);
	g->query = req->query;
	g->query_len = (uint32_t)n;
	g->tier = (uint8_t)req->tier;
	g->min_lsn = req->min_lsn;
	g->bypass = req->bypass;
	g->nparams = req->nparams;
	if (!cs_client_shard_in(req, g))
		return set_err(a, CS_CLIENT_E_ARG, "%s", CS_CLIENT_SHARD_RULE);
	return params_in(a, req->params, req->nparams, g->params);
}

/* Queues one frame (op, with a GET/MGET body or none) into a free slot. */
static int submit(cs_aclient *a, uint8_t op, const cs_get_req *g, uint32_t n, int timeout_ms,
        cs_aclient_cb *cb, void *arg, uint32_t *reqid)
{
	if (a->state == ST_DEAD)
		return set_err(a, CS_CLIENT_E_CLOSED, "connection is closed");
	if (cb == NULL)
		return set_err(a, CS_CLIENT_E_ARG, "callback is NULL");
	if (a->free_head == UINT32_MAX)
		return set_err(a, CS_CLIENT_E_QUEUE_FULL,
		        "%u requests outstanding (max_inflight)", a->cap);
	uint32_t idx = a->free_head;
	slot *s = &a->slots[idx];
	uint32_t gen = s->gen + 1;
	if (gen >= (uint32_t)((UINT64_C(1) << (32 - a->bits)) - 1) || gen == 0)
		gen = 1;
	uint32_t id = (uint32_t)(((uint64_t)gen << a->bits) | idx);
	size_t off = a->out.len;
	int rc;
	if (op == CS_OP_MGET)
		rc = cs_proto_write_mget(&a->out, id, g, n);
	else if (op == CS_OP_PING)
		rc = cs_proto_write_empty(&a->out, id, CS_OP_PING);
	else
		rc = cs_proto_write_get(&a->out, id, op, g);
	if (rc != 0) {
		cs_buf_truncate(&a->out, off);
		if (rc == -CS_ERR_TOO_LARGE)
			return set_err(a, CS_CLIENT_E_TOO_LARGE, "request exceeds the frame limit");
		return set_err(a, CS_CLIENT_E_ARG, "invalid request");
	}
	size_t flen = a->out.len - off - CS_PROTO_HDR;
	if (flen > a->server_max_frame) {
		cs_buf_truncate(&a->out, off);
		return set_err(a, CS_CLIENT_E_TOO_LARGE,
		        "request of %zu bytes exceeds the server's limit of %u", flen,
		        a->server_max_frame);
	}
	if (a->out.len - a->out_off > a->max_queue) {
		cs_buf_truncate(&a->out, off);
		return set_err(a, CS_CLIENT_E_QUEUE_FULL,
		        "send queue full: %zu bytes not yet written (max_queue_bytes %zu)",
		        off - a->out_off, a->max_queue);
	}
	a->free_head = s->next_free;
	s->gen = gen;
	s->id = id;
	s->state = SL_LIVE;
	s->op = op;
	s->nitems = (uint16_t)n;
	s->cb = cb;
	s->arg = arg;
	s->deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : a->timeout_ms);
	if (s->deadline < a->next_deadline)
		a->next_deadline = s->deadline;
	a->live++;
	a->err = 0;
	a->errstr[0] = '\0';
	if (reqid != NULL)
		*reqid = id;
	return 0;
}

static int get_like(cs_aclient *a, uint8_t op, const cs_client_request *req, int timeout_ms,
        cs_aclient_cb *cb, void *arg, uint32_t *reqid)
{
	cs_get_req g;
	int rc = request_in(a, req, &g);
	return rc != 0 ? rc : submit(a, op, &g, 1, timeout_ms, cb, arg, reqid);
}

int cs_aclient_get(cs_aclient *a, const cs_client_request *req, int timeout_ms, cs_aclient_cb *cb,
        void *arg, uint32_t *reqid)
{
	return get_like(a, CS_OP_GET, req, timeout_ms, cb, arg, reqid);
}

int cs_aclient_refresh(cs_aclient *a, const cs_client_request *req, int timeout_ms,
        cs_aclient_cb *cb, void *arg, uint32_t *reqid)
{
	return get_like(a, CS_OP_REFRESH, req, timeout_ms, cb, arg, reqid);
}

int cs_aclient_mget(cs_aclient *a, const cs_client_request *reqs, uint32_t n, int timeout_ms,
        cs_aclient_cb *cb, void *arg, uint32_t *reqid)
{
	if (n == 0 || n > CS_PROTO_MAX_MGET || reqs == NULL)
		return set_err(a, CS_CLIENT_E_ARG, "MGET takes 1..%d requests", CS_PROTO_MAX_MGET);
	cs_get_req g[CS_PROTO_MAX_MGET];
	for (uint32_t i = 0; i < n; i++) {
		int rc = request_in(a, &reqs[i], &g[i]);
		if (rc != 0)
			return rc;
	}
	return submit(a, CS_OP_MGET, g, n, timeout_ms, cb, arg, reqid);
}

int cs_aclient_ping(cs_aclient *a, int timeout_ms, cs_aclient_cb *cb, void *arg, uint32_t *reqid)
{
	return submit(a, CS_OP_PING, NULL, 0, timeout_ms, cb, arg, reqid);
}

/* ---- Replies ----------------------------------------------------------------------------- */

static int hello_reply(cs_aclient *a, const cs_frame *f)
{
	/* An error with request id 0 is the server refusing the connection before it read
	 * our HELLO (connection limit, shutting down). */
	if (f->reqid != A_HELLO_ID && !(f->reqid == 0 && f->opcode == CS_OP_ERROR))
		return fatal(a, CS_CLIENT_E_PROTOCOL, "HELLO reply with the wrong request id %u",
		        f->reqid);
	if (f->opcode == CS_OP_ERROR) {
		int code;
		const char *msg;
		uint32_t len;
		if (cs_proto_decode_error(f->body, f->body_len, &code, &msg, &len) != 0)
			return fatal(a, CS_CLIENT_E_PROTOCOL, "malformed error reply to HELLO");
		return fatal(a, -code, "server: %s: %.*s", cs_err_name(code), (int)len, msg);
	}
	uint32_t v, slen, maxf;
	const char *server;
	if (f->opcode != (CS_OP_REPLY_FLAG | CS_OP_HELLO) ||
	        cs_proto_decode_hello_reply(f->body, f->body_len, &v, &server, &slen, &maxf) != 0)
		return fatal(a, CS_CLIENT_E_PROTOCOL, "malformed HELLO reply");
	if (v != CS_PROTO_VERSION)
		return fatal(a, CS_CLIENT_E_PROTOCOL, "server speaks protocol version %u", v);
	a->server_max_frame = maxf < CS_PROTO_MAX_FRAME ? maxf : CS_PROTO_MAX_FRAME;
	a->state = ST_READY;
	return 0;
}

static int handle_frame(cs_aclient *a, const cs_frame *f)
{
	if (a->state != ST_READY)
		return hello_reply(a, f);
	uint32_t idx = f->reqid & (a->cap - 1);
	slot *s = &a->slots[idx];
	if (s->state == SL_FREE || s->id != f->reqid)
		return fatal(a, CS_CLIENT_E_PROTOCOL, "reply for unknown request id %u", f->reqid);
	if (s->state == SL_ABANDONED) { /* timed out earlier: drop the late reply */
		slot_release(a, idx);
		return 0;
	}
	if (f->opcode == CS_OP_ERROR) {
		int code;
		const char *msg;
		uint32_t len;
		if (cs_proto_decode_error(f->body, f->body_len, &code, &msg, &len) != 0)
			return fatal(a, CS_CLIENT_E_PROTOCOL, "malformed error reply");
		if (code == CS_ERR_PROTOCOL)
			return fatal(a, CS_CLIENT_E_SERVER_PROTOCOL, "server: protocol: %.*s",
			        (int)len, msg);
		char m[CS_PROTO_MAX_MSG + 64];
		snprintf(m, sizeof m, "server: %s: %.*s", cs_err_name(code), (int)len, msg);
		complete(a, idx, false, -code, m, NULL, 0);
		return 0;
	}
	if (f->opcode != (CS_OP_REPLY_FLAG | s->op))
		return fatal(a, CS_CLIENT_E_PROTOCOL, "unexpected reply opcode 0x%02x to request %u",
		        f->opcode, f->reqid);
	char err[160];
	int rc;
	if (s->op == CS_OP_PING) {
		if (cs_proto_decode_nil(f->body, f->body_len) != 0)
			return fatal(a, CS_CLIENT_E_PROTOCOL, "malformed PING reply");
		complete(a, idx, false, 0, NULL, NULL, 0);
		return 0;
	}
	if (s->op == CS_OP_MGET) {
		cs_client_result *items[CS_PROTO_MAX_MGET];
		uint32_t got = 0, want = s->nitems;
		rc = cs_result_decode_mget(
		        f->body, f->body_len, items, want, &got, err, sizeof err);
		if (rc == -CS_ERR_INTERNAL) {
			complete(a, idx, false, CS_CLIENT_E_NOMEM, "out of memory decoding the reply",
			        NULL, 0);
			return 0;
		}
		if (rc != 0)
			return fatal(a, CS_CLIENT_E_PROTOCOL, "malformed MGET reply: %s", err);
		if (got != want) {
			for (uint32_t i = 0; i < got; i++)
				cs_client_result_free(items[i]);
			return fatal(a, CS_CLIENT_E_PROTOCOL,
			        "MGET reply has %u items for %u requests", got, want);
		}
		complete(a, idx, false, 0, NULL, items, got);
		return 0;
	}
	cs_client_result *r = NULL;
	rc = cs_result_decode(f->body, f->body_len, &r, err, sizeof err);
	if (rc == -CS_ERR_INTERNAL) {
		complete(a, idx, false, CS_CLIENT_E_NOMEM, "out of memory decoding the reply", NULL,
		        0);
		return 0;
	}
	if (rc != 0)
		return fatal(a, CS_CLIENT_E_PROTOCOL, "malformed result: %s", err);
	complete(a, idx, false, 0, NULL, &r, 1);
	return 0;
}

/* ---- I/O --------------------------------------------------------------------------------- */

/* A non-blocking connect finished (or failed)? 1 connected, 0 still in progress, or the
 * fatal error. */
static int finish_connect(cs_aclient *a)
{
	int soerr = 0;
	socklen_t len = sizeof soerr;
	if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		soerr = errno;
	if (soerr != 0)
		return fatal(a, CS_CLIENT_E_CONNECT, "connect: %s", strerror(soerr));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(a->fd, (struct sockaddr *)&ss, &sl) != 0)
		return errno == ENOTCONN ? 0
		                         : fatal(a, CS_CLIENT_E_CONNECT, "connect: %s",
		                                   strerror(errno));
	a->state = ST_HELLO;
	return 1;
}

static int write_out(cs_aclient *a)
{
	while (a->out.len > a->out_off) {
		ssize_t n = send(a->fd, a->out.data + a->out_off, a->out.len - a->out_off,
		        MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EPIPE || errno == ECONNRESET)
				return fatal(a, CS_CLIENT_E_CLOSED, "server closed the connection");
			return fatal(a, CS_CLIENT_E_IO, "send: %s", strerror(errno));
		}
		a->out_off += (size_t)n;
	}
	if (a->out_off == a->out.len) {
		cs_buf_reset(&a->out);
		a->out_off = 0;
	} else if (a->out_off >= a->out.len / 2) {
		size_t rest = a->out.len - a->out_off;
		memmove(a->out.data, a->out.data + a->out_off, rest);
		cs_buf_truncate(&a->out, rest);
		a->out_off = 0;
	}
	return 0;
}

/* The start of both socket events: 1 to go on, else what the event returns (the error of a
 * dead connection, or a connect that failed or has not finished). */
static int event_start(cs_aclient *a)
{
	if (a->state == ST_DEAD)
		return a->err;
	if (a->state == ST_CONNECTING)
		return finish_connect(a);
	return 1;
}

int cs_aclient_on_writable(cs_aclient *a)
{
	int rc = event_start(a);
	return rc <= 0 ? rc : write_out(a);
}

int cs_aclient_on_readable(cs_aclient *a)
{
	int rc = event_start(a);
	if (rc <= 0)
		return rc;
	for (int i = 0; i < A_READS_PER_EVENT; i++) {
		ssize_t n = recv(a->fd, a->rbuf, A_READ_CHUNK, 0);
		if (n == 0)
			return fatal(a, CS_CLIENT_E_CLOSED, "server closed the connection");
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == ECONNRESET)
				return fatal(a, CS_CLIENT_E_CLOSED, "connection reset by the server");
			return fatal(a, CS_CLIENT_E_IO, "recv: %s", strerror(errno));
		}
		if (cs_proto_reader_feed(a->rd, a->rbuf, (size_t)n) != 0)
			return fatal(a, CS_CLIENT_E_PROTOCOL, "reading replies: %s",
			        cs_proto_reader_errstr(a->rd));
		cs_frame f;
		while ((rc = cs_proto_reader_next(a->rd, &f)) == 1) {
			handle_frame(a, &f);
			if (a->state == ST_DEAD)
				return a->err;
		}
		if (rc < 0)
			return fatal(a, CS_CLIENT_E_PROTOCOL, "bad reply frame: %s",
			        cs_proto_reader_errstr(a->rd));
		if ((size_t)n < A_READ_CHUNK)
			break;
	}
	return 0;
}

int cs_aclient_tick(cs_aclient *a)
{
	if (a->state == ST_DEAD)
		return a->err;
	int64_t now = now_ms();
	if (a->state != ST_READY && now >= a->connect_deadline)
		return fatal(a, CS_CLIENT_E_CONNECT, "connect: timed out (connect and HELLO)");
	if (now < a->next_deadline)
		return 0;
	int64_t next = INT64_MAX;
	for (uint32_t i = 0; i < a->cap && a->state != ST_DEAD; i++) {
		slot *s = &a->slots[i];
		if (s->state != SL_LIVE)
			continue;
		if (s->deadline <= now)
			complete(a, i, true, CS_CLIENT_E_TIMEOUT, "timed out waiting for the reply",
			        NULL, 0);
		else if (s->deadline < next)
			next = s->deadline;
	}
	/* Callbacks may have submitted requests with earlier deadlines meanwhile. */
	if (next < a->next_deadline || a->next_deadline <= now)
		a->next_deadline = next;
	return a->state == ST_DEAD ? a->err : 0;
}

int cs_aclient_timeout_ms(const cs_aclient *a)
{
	if (a->state == ST_DEAD)
		return -1;
	int64_t d = a->live > 0 ? a->next_deadline : INT64_MAX;
	if (a->state != ST_READY && a->connect_deadline < d)
		d = a->connect_deadline;
	if (d == INT64_MAX)
		return -1;
	int64_t left = d - now_ms();
	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

int cs_aclient_fd(const cs_aclient *a)
{
	return a->fd;
}

bool cs_aclient_want_write(const cs_aclient *a)
{
	return a->state == ST_CONNECTING || (a->state != ST_DEAD && a->out.len > a->out_off);
}

int cs_aclient_status(const cs_aclient *a)
{
	if (a->state == ST_DEAD)
		return a->err < 0 ? a->err : CS_CLIENT_E_CLOSED;
	return a->state == ST_READY ? 1 : 0;
}

int cs_aclient_err(const cs_aclient *a)
{
	return a->err;
}

const char *cs_aclient_errstr(const cs_aclient *a)
{
	return a->errstr;
}

uint32_t cs_aclient_inflight(const cs_aclient *a)
{
	return a->live;
}

/* ---- Connecting -------------------------------------------------------------------------- */

static int start_connect(cs_aclient *a, const cs_client_options *o)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char why[200];
	if (cs_client_addr(o, &ss, &sslen, NULL, 0, why, sizeof why) != 0)
		return fatal(a, CS_CLIENT_E_ARG, "%s", why);
	a->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (a->fd < 0)
		return fatal(a, CS_CLIENT_E_CONNECT, "socket: %s", strerror(errno));
	if (ss.ss_family != AF_UNIX) {
		int one = 1;
		(void)setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (connect(a->fd, (struct sockaddr *)&ss, sslen) == 0) {
		a->state = ST_HELLO;
		return 0;
	}
	if (errno != EINPROGRESS && errno != EAGAIN)
		return fatal(a, CS_CLIENT_E_CONNECT, "connect: %s", strerror(errno));
	a->state = ST_CONNECTING;
	return 0;
}

cs_aclient *cs_aclient_connect(const cs_aclient_options *opt)
{
	static const cs_aclient_options defaults;
	const cs_aclient_options *o = opt ? opt : &defaults;
	cs_aclient *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	a->fd = -1;
	a->state = ST_CONNECTING;
	a->next_deadline = INT64_MAX;
	a->timeout_ms = o->conn.timeout_ms > 0 ? o->conn.timeout_ms : 5000;
	a->server_max_frame = CS_PROTO_MAX_FRAME;
	uint32_t want = o->max_inflight ? o->max_inflight : A_DEFAULT_INFLIGHT;
	if (want > A_MAX_INFLIGHT)
		want = A_MAX_INFLIGHT;
	a->cap = 2; /* at least 2: slot 1 of generation 0 is HELLO's id */
	a->bits = 1;
	while (a->cap < want) {
		a->cap <<= 1;
		a->bits++;
	}
	a->max_queue = o->max_queue_bytes ? o->max_queue_bytes : A_DEFAULT_QUEUE;
	cs_buf_init(&a->out, a->max_queue + 2 * ((size_t)CS_PROTO_HDR + CS_PROTO_MAX_FRAME));
	a->slots = calloc(a->cap, sizeof *a->slots);
	a->rd = cs_proto_reader_new(o->conn.max_reply ? o->conn.max_reply : CS_PROTO_MAX_REPLY_FRAME);
	a->rbuf = malloc(A_READ_CHUNK);
	if (a->slots == NULL || a->rd == NULL || a->rbuf == NULL) {
		a->cap = 0;
		fatal(a, CS_CLIENT_E_NOMEM, "out of memory");
		return a;
	}
	/* Only `want` slots are handed out (the table is a power of two for the id scheme). */
	a->free_head = UINT32_MAX;
	for (uint32_t i = want; i-- > 0;) {
		a->slots[i].next_free = a->free_head;
		a->free_head = i;
	}
	const char *name = o->conn.client_name ? o->conn.client_name : "cachesvc-client";
	const char *tok = o->conn.token;
	cs_hello_req h = { CS_PROTO_VERSION, name, (uint32_t)strlen(name), tok,
		tok ? (uint32_t)strlen(tok) : 0 };
	if (cs_proto_write_hello(&a->out, A_HELLO_ID, &h) != 0) {
		fatal(a, CS_CLIENT_E_ARG, "client name or token too long");
		return a;
	}
	a->connect_deadline =
	        now_ms() + (o->conn.connect_timeout_ms > 0 ? o->conn.connect_timeout_ms : 2000);
	(void)start_connect(a, &o->conn);
	return a;
}

void cs_aclient_free(cs_aclient *a)
{
	if (a == NULL)
		return;
	if (a->state != ST_DEAD)
		fatal(a, CS_CLIENT_E_CLOSED, "the connection was freed");
	cs_buf_free(&a->out);
	cs_proto_reader_free(a->rd);
	free(a->rbuf);
	free(a->slots);
	free(a);
}
