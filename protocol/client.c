/* client.c - the cachesvc client library: blocking, poll()-bounded calls over one socket.
 *
 * One output buffer (frames waiting to be written) and one frame reader. Every wait goes
 * through io_round(), which polls for at most the time left before the call's deadline and
 * both writes pending output and reads input, so a long pipeline can never deadlock with a
 * server that is itself blocked writing replies. */
#include "cachesvc-client.h"
#include "client_addr.h"
#include "cs_proto.h"
#include "lsn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

_Static_assert((int)CS_CLIENT_V_TS == (int)CS_V_TS && (int)CS_CLIENT_V_NIL == (int)CS_V_NIL,
        "value types");
_Static_assert(CS_CLIENT_E_SHUTTING_DOWN == -CS_ERR_SHUTTING_DOWN, "server codes");
_Static_assert(CS_CLIENT_E_FUTURE_LSN == -CS_ERR_FUTURE_LSN, "server codes");
_Static_assert(CS_CLIENT_E_NO_SHARD == -CS_ERR_NO_SHARD && CS_ERR_MAX == 12, "server codes");
_Static_assert(
        CS_CLIENT_SHARD_MAX == CS_TOKEN_MAX_SHARD && CS_CLIENT_TOKEN_STRLEN == CS_TOKEN_STRLEN,
        "token sizes");
_Static_assert(CS_CLIENT_E_SERVER_PROTOCOL == -CS_ERR_PROTOCOL, "server codes");
_Static_assert((int)CS_CLIENT_COL_OTHER == (int)CS_COL_OTHER, "column types");

#define MAX_PENDING 4096
#define OUT_HIGHWAT (64u << 10) /* flush queued pipelined frames beyond this */
#define READ_CHUNK  (64u << 10)

struct cs_client {
	int fd;
	int err;
	bool dead; /* a fatal error happened: the socket is closed */
	char errstr[256];
	int timeout_ms;
	uint32_t next_id;
	cs_buf out;
	size_t out_off; /* bytes of out already written */
	cs_proto_reader *rd;
	uint8_t *rbuf;     /* READ_CHUNK bytes for recv(), off the caller's stack */
	uint32_t *pending; /* ids of requests sent with cs_client_send */
	uint32_t npending;
	char server[CS_PROTO_MAX_NAME + 1];
	uint32_t server_max_frame;
};

/* ---- Errors ------------------------------------------------------------------------------ */

static bool is_fatal(int code)
{
	return code == CS_CLIENT_E_IO || code == CS_CLIENT_E_TIMEOUT ||
	       code == CS_CLIENT_E_CLOSED || code == CS_CLIENT_E_PROTOCOL ||
	       code == CS_CLIENT_E_SERVER_PROTOCOL;
}

/* Closes the socket after a fatal error; later calls return CS_CLIENT_E_CLOSED. */
static void kill_conn(cs_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->dead = true;
}

static int fail(cs_client *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(cs_client *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
	va_end(ap);
	c->err = code;
	if (is_fatal(code))
		kill_conn(c);
	return code;
}

static void ok(cs_client *c)
{
	c->err = 0;
	c->errstr[0] = '\0';
}

const char *cs_client_strerror(int code)
{
	switch (code) {
	case CS_CLIENT_OK:
		return "ok";
	case CS_CLIENT_E_IO:
		return "io";
	case CS_CLIENT_E_TIMEOUT:
		return "timeout";
	case CS_CLIENT_E_CLOSED:
		return "closed";
	case CS_CLIENT_E_PROTOCOL:
		return "bad_reply";
	case CS_CLIENT_E_NOMEM:
		return "nomem";
	case CS_CLIENT_E_ARG:
		return "bad_argument";
	case CS_CLIENT_E_CONNECT:
		return "connect";
	case CS_CLIENT_E_QUEUE_FULL:
		return "queue_full";
	default:
		return cs_err_name(code); /* server codes; "unknown_error" otherwise */
	}
}

int cs_client_err(const cs_client *c)
{
	return c->err;
}

const char *cs_client_errstr(const cs_client *c)
{
	return c->errstr;
}

const char *cs_client_server_name(const cs_client *c)
{
	return c->server;
}

uint32_t cs_client_server_max_frame(const cs_client *c)
{
	return c->server_max_frame;
}

/* Entry check of every call that talks to the server. */
static int usable(cs_client *c)
{
	if (c->dead)
		return fail(c, CS_CLIENT_E_CLOSED, "connection is closed (after: %s)",
		        c->errstr[0] ? c->errstr : "an earlier error");
	ok(c);
	return 0;
}

/* ---- I/O --------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t out_pending(const cs_client *c)
{
	return c->out.len - c->out_off;
}

/* One poll round: writes what it can, reads what is there. Returns 0 or a fatal error. */
static int io_round(cs_client *c, int64_t deadline)
{
	int64_t left = deadline - now_ms();
	if (left <= 0)
		return fail(c, CS_CLIENT_E_TIMEOUT, "timed out after %d ms waiting for the server",
		        c->timeout_ms);
	struct pollfd pfd = {c->fd, (short)(POLLIN | (out_pending(c) ? POLLOUT : 0)), 0};
	int rc = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
	if (rc < 0)
		return errno == EINTR ? 0 : fail(c, CS_CLIENT_E_IO, "poll: %s", strerror(errno));
	if (rc == 0)
		return fail(c, CS_CLIENT_E_TIMEOUT, "timed out after %d ms waiting for the server",
		        c->timeout_ms);
	if ((pfd.revents & POLLOUT) && out_pending(c)) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, out_pending(c), MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			if (errno == EPIPE || errno == ECONNRESET)
				return fail(c, CS_CLIENT_E_CLOSED, "server closed the connection");
			return fail(c, CS_CLIENT_E_IO, "send: %s", strerror(errno));
		}
		if (n > 0) {
			c->out_off += (size_t)n;
			if (c->out_off == c->out.len) {
				cs_buf_reset(&c->out);
				c->out_off = 0;
			}
		}
	}
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		ssize_t n = recv(c->fd, c->rbuf, READ_CHUNK, 0);
		if (n == 0)
			return fail(c, CS_CLIENT_E_CLOSED, "server closed the connection");
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			if (errno == ECONNRESET)
				return fail(
				        c, CS_CLIENT_E_CLOSED, "connection reset by the server");
			return fail(c, CS_CLIENT_E_IO, "recv: %s", strerror(errno));
		}
		rc = cs_proto_reader_feed(c->rd, c->rbuf, (size_t)n);
		if (rc != 0)
			return fail(c, CS_CLIENT_E_PROTOCOL, "reading replies: %s",
			        cs_proto_reader_errstr(c->rd));
	}
	return 0;
}

/* Takes a complete frame if one is buffered: 1 (frame), 0 (none yet) or a fatal error. */
static int take_frame(cs_client *c, cs_frame *f)
{
	int rc = cs_proto_reader_next(c->rd, f);
	if (rc < 0)
		return fail(c, CS_CLIENT_E_PROTOCOL, "bad reply frame: %s",
		        cs_proto_reader_errstr(c->rd));
	return rc;
}

/* Waits for the next frame (writing pending output meanwhile). 0 or a fatal error. */
static int wait_frame(cs_client *c, int64_t deadline, cs_frame *f)
{
	for (;;) {
		int rc = take_frame(c, f);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		if ((rc = io_round(c, deadline)) != 0)
			return rc;
	}
}

/* Writes all pending output (reading input meanwhile). 0 or a fatal error. */
static int flush_out(cs_client *c, int64_t deadline)
{
	while (out_pending(c)) {
		int rc = io_round(c, deadline);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Turns an error frame into the error return (fatal if the server says protocol). */
static int server_error(cs_client *c, const cs_frame *f)
{
	int code;
	const char *msg;
	uint32_t len;
	if (cs_proto_decode_error(f->body, f->body_len, &code, &msg, &len) != 0)
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed error reply");
	return fail(c, -code, "server: %s: %.*s", cs_err_name(code), (int)len, msg);
}

/* Encoder failures: too large or invalid arguments; nothing is sent. */
static int encode_failed(cs_client *c, int rc)
{
	if (rc == -CS_ERR_TOO_LARGE)
		return fail(c, CS_CLIENT_E_TOO_LARGE, "request exceeds the frame limit");
	return fail(c, CS_CLIENT_E_ARG, "invalid request");
}

/* Checks the last frame in out against the server's limit (it was appended at `off`). */
static int check_frame_size(cs_client *c, size_t off)
{
	if (c->out.len - off - CS_PROTO_HDR > c->server_max_frame) {
		cs_buf_truncate(&c->out, off);
		return fail(c, CS_CLIENT_E_TOO_LARGE,
		        "request of %zu bytes exceeds the server's limit of %u",
		        c->out.len - off - CS_PROTO_HDR, c->server_max_frame);
	}
	return 0;
}

/* Sends the frame queued in out and waits for the reply with id `id`. The reply is
 * returned in *f (body valid until the next I/O). Server errors are returned decoded. */
static int roundtrip(cs_client *c, uint32_t id, uint8_t op, cs_frame *f)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	int rc = wait_frame(c, deadline, f);
	if (rc != 0)
		return rc;
	if (f->reqid != id)
		return fail(c, CS_CLIENT_E_PROTOCOL, "reply for unknown request id %u", f->reqid);
	if (f->opcode == CS_OP_ERROR)
		return server_error(c, f);
	if (f->opcode != (CS_OP_REPLY_FLAG | op))
		return fail(c, CS_CLIENT_E_PROTOCOL, "unexpected reply opcode 0x%02x", f->opcode);
	return 0;
}

/* ---- Requests ---------------------------------------------------------------------------- */

static uint32_t take_id(cs_client *c)
{
	uint32_t id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	return id;
}

static void to_value(const cs_client_value *in, cs_value *out)
{
	memset(out, 0, sizeof *out);
	out->type = (uint8_t)in->type;
	switch (in->type) {
	case CS_CLIENT_V_BOOL:
		out->u.b = in->u.b;
		break;
	case CS_CLIENT_V_INT:
		out->u.i = in->u.i;
		break;
	case CS_CLIENT_V_FLOAT:
		out->u.f = in->u.f;
		break;
	case CS_CLIENT_V_STR:
	case CS_CLIENT_V_BIN:
		out->u.s.p = in->u.s.p;
		out->u.s.len = in->u.s.len;
		break;
	case CS_CLIENT_V_TS:
		out->u.ts.sec = in->u.ts.sec;
		out->u.ts.nsec = in->u.ts.nsec;
		break;
	default:
		break;
	}
}

static int params_in(cs_client *c, const cs_client_value *params, uint32_t n, cs_value *out)
{
	if (n > CS_PROTO_MAX_PARAMS)
		return fail(c, CS_CLIENT_E_ARG, "%u parameters, the limit is %d", n,
		        CS_PROTO_MAX_PARAMS);
	if (n > 0 && params == NULL)
		return fail(c, CS_CLIENT_E_ARG, "params is NULL");
	for (uint32_t i = 0; i < n; i++) {
		if (params[i].type < CS_CLIENT_V_NIL || params[i].type > CS_CLIENT_V_TS)
			return fail(c, CS_CLIENT_E_ARG, "parameter %u: unknown type %d", i + 1,
			        params[i].type);
		if ((params[i].type == CS_CLIENT_V_STR || params[i].type == CS_CLIENT_V_BIN) &&
		        params[i].u.s.p == NULL && params[i].u.s.len > 0)
			return fail(c, CS_CLIENT_E_ARG, "parameter %u: NULL string", i + 1);
		to_value(&params[i], &out[i]);
	}
	return 0;
}

static int query_in(cs_client *c, const char *query, const char **q, uint32_t *qlen)
{
	size_t n = query ? strlen(query) : 0;
	if (n == 0 || n > CS_PROTO_MAX_NAME)
		return fail(
		        c, CS_CLIENT_E_ARG, "query name must be 1..%d bytes", CS_PROTO_MAX_NAME);
	*q = query;
	*qlen = (uint32_t)n;
	return 0;
}

static int request_in(cs_client *c, const cs_client_request *req, cs_get_req *g)
{
	if (req == NULL)
		return fail(c, CS_CLIENT_E_ARG, "request is NULL");
	int rc = query_in(c, req->query, &g->query, &g->query_len);
	if (rc != 0)
		return rc;
	if (req->tier < CS_CLIENT_TIER_CRITICAL || req->tier > CS_CLIENT_TIER_BATCH)
		return fail(c, CS_CLIENT_E_ARG, "tier %d out of range 0..2", req->tier);
	g->tier = (uint8_t)req->tier;
	g->min_lsn = req->min_lsn;
	g->bypass = req->bypass;
	g->nparams = req->nparams;
	if (!cs_client_shard_in(req, g))
		return fail(c, CS_CLIENT_E_ARG, "%s", CS_CLIENT_SHARD_RULE);
	return params_in(c, req->params, req->nparams, g->params);
}

static int sync_ready(cs_client *c)
{
	int rc = usable(c);
	if (rc != 0)
		return rc;
	if (c->npending > 0)
		return fail(c, CS_CLIENT_E_ARG, "%u pipelined requests are still outstanding",
		        c->npending);
	return 0;
}

/* Decodes a GET/REFRESH reply body into a new result. */
static int decode_result(cs_client *c, const cs_frame *f, cs_client_result **out)
{
	char err[160];
	int rc = cs_result_decode(f->body, f->body_len, out, err, sizeof err);
	if (rc == -CS_ERR_INTERNAL)
		return fail(c, CS_CLIENT_E_NOMEM, "out of memory decoding the reply");
	if (rc != 0)
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed result: %s", err);
	return 0;
}

static int get_like(cs_client *c, const cs_client_request *req, uint8_t op, cs_client_result **out)
{
	cs_get_req g;
	cs_frame f;
	if (out == NULL)
		return fail(c, CS_CLIENT_E_ARG, "out is NULL");
	*out = NULL;
	int rc = sync_ready(c);
	if (rc == 0)
		rc = request_in(c, req, &g);
	if (rc != 0)
		return rc;
	uint32_t id = take_id(c);
	size_t off = c->out.len;
	if ((rc = cs_proto_write_get(&c->out, id, op, &g)) != 0)
		return encode_failed(c, rc);
	if ((rc = check_frame_size(c, off)) != 0)
		return rc;
	if ((rc = roundtrip(c, id, op, &f)) != 0)
		return rc;
	return decode_result(c, &f, out);
}

int cs_client_get(cs_client *c, const cs_client_request *req, cs_client_result **out)
{
	return get_like(c, req, CS_OP_GET, out);
}

int cs_client_refresh(cs_client *c, const cs_client_request *req, cs_client_result **out)
{
	return get_like(c, req, CS_OP_REFRESH, out);
}

int cs_client_mget(cs_client *c, const cs_client_request *reqs, uint32_t n, cs_client_result **out)
{
	int rc = sync_ready(c);
	if (rc != 0)
		return rc;
	if (n == 0 || n > CS_PROTO_MAX_MGET || reqs == NULL || out == NULL)
		return fail(c, CS_CLIENT_E_ARG, "MGET takes 1..%d requests", CS_PROTO_MAX_MGET);
	cs_get_req *g = malloc(n * sizeof *g);
	if (g == NULL)
		return fail(c, CS_CLIENT_E_NOMEM, "out of memory");
	for (uint32_t i = 0; i < n && rc == 0; i++)
		rc = request_in(c, &reqs[i], &g[i]);
	uint32_t id = take_id(c);
	size_t off = c->out.len;
	if (rc == 0 && (rc = cs_proto_write_mget(&c->out, id, g, n)) != 0)
		rc = encode_failed(c, rc);
	free(g);
	if (rc == 0)
		rc = check_frame_size(c, off);
	cs_frame f;
	if (rc == 0)
		rc = roundtrip(c, id, CS_OP_MGET, &f);
	if (rc != 0)
		return rc;
	char err[160];
	uint32_t got = 0;
	rc = cs_result_decode_mget(f.body, f.body_len, out, n, &got, err, sizeof err);
	if (rc == -CS_ERR_INTERNAL)
		return fail(c, CS_CLIENT_E_NOMEM, "out of memory decoding the reply");
	if (rc != 0)
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed MGET reply: %s", err);
	if (got != n) {
		for (uint32_t i = 0; i < got; i++)
			cs_client_result_free(out[i]);
		return fail(
		        c, CS_CLIENT_E_PROTOCOL, "MGET reply has %u items for %u requests", got, n);
	}
	return 0;
}

static int invalidate(cs_client *c, const char *query, bool has_params,
        const cs_client_value *params, uint32_t nparams, uint64_t *count)
{
	cs_inval_req q;
	cs_frame f;
	int rc = sync_ready(c);
	if (rc == 0)
		rc = query_in(c, query, &q.query, &q.query_len);
	q.has_params = has_params;
	q.nparams = has_params ? nparams : 0;
	if (rc == 0 && has_params)
		rc = params_in(c, params, nparams, q.params);
	if (rc != 0)
		return rc;
	uint32_t id = take_id(c);
	size_t off = c->out.len;
	if ((rc = cs_proto_write_inval(&c->out, id, &q)) != 0)
		return encode_failed(c, rc);
	if ((rc = check_frame_size(c, off)) != 0)
		return rc;
	if ((rc = roundtrip(c, id, CS_OP_INVALIDATE, &f)) != 0)
		return rc;
	bool whole;
	uint64_t n;
	if (cs_proto_decode_inval_reply(f.body, f.body_len, &whole, &n) != 0 || whole == has_params)
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed INVALIDATE reply");
	if (count != NULL)
		*count = n;
	return 0;
}

int cs_client_invalidate_key(cs_client *c, const char *query, const cs_client_value *params,
        uint32_t nparams, uint64_t *deleted)
{
	return invalidate(c, query, true, params, nparams, deleted);
}

int cs_client_invalidate_query(cs_client *c, const char *query, uint64_t *generation)
{
	return invalidate(c, query, false, NULL, 0, generation);
}

int cs_client_ping(cs_client *c)
{
	cs_frame f;
	int rc = sync_ready(c);
	if (rc != 0)
		return rc;
	uint32_t id = take_id(c);
	if ((rc = cs_proto_write_empty(&c->out, id, CS_OP_PING)) != 0)
		return encode_failed(c, rc);
	if ((rc = roundtrip(c, id, CS_OP_PING, &f)) != 0)
		return rc;
	if (cs_proto_decode_nil(f.body, f.body_len) != 0)
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed PING reply");
	return 0;
}

int cs_client_stats(cs_client *c, cs_client_stat **out, uint32_t *n)
{
	cs_frame f;
	if (out == NULL || n == NULL)
		return fail(c, CS_CLIENT_E_ARG, "out is NULL");
	*out = NULL;
	*n = 0;
	int rc = sync_ready(c);
	if (rc != 0)
		return rc;
	uint32_t id = take_id(c);
	if ((rc = cs_proto_write_empty(&c->out, id, CS_OP_STATS)) != 0)
		return encode_failed(c, rc);
	if ((rc = roundtrip(c, id, CS_OP_STATS, &f)) != 0)
		return rc;
	/* Every entry takes at least two bytes, so len/2 + 1 bounds the count. */
	uint32_t max = f.body_len / 2 + 1, count;
	cs_stat *tmp = malloc(max * sizeof *tmp);
	if (tmp == NULL)
		return fail(c, CS_CLIENT_E_NOMEM, "out of memory");
	if (cs_proto_decode_stats(f.body, f.body_len, tmp, max, &count) != 0) {
		free(tmp);
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed STATS reply");
	}
	/* One block: the entries, then their NUL-terminated names. */
	size_t names = 0;
	for (uint32_t i = 0; i < count; i++)
		names += tmp[i].name_len + 1;
	cs_client_stat *st = malloc(count * sizeof *st + names + 1);
	if (st == NULL) {
		free(tmp);
		return fail(c, CS_CLIENT_E_NOMEM, "out of memory");
	}
	char *p = (char *)(st + count);
	for (uint32_t i = 0; i < count; i++) {
		memcpy(p, tmp[i].name, tmp[i].name_len);
		p[tmp[i].name_len] = '\0';
		st[i].name = p;
		p += tmp[i].name_len + 1;
		st[i].is_float = tmp[i].is_float;
		st[i].i = tmp[i].i;
		st[i].f = tmp[i].f;
	}
	free(tmp);
	*out = st;
	*n = count;
	return 0;
}

void cs_client_stats_free(cs_client_stat *stats)
{
	free(stats);
}

/* ---- Pipelining -------------------------------------------------------------------------- */

int cs_client_send(cs_client *c, const cs_client_request *req, bool refresh, uint32_t *reqid)
{
	cs_get_req g;
	int rc = usable(c);
	if (rc == 0)
		rc = request_in(c, req, &g);
	if (rc != 0)
		return rc;
	if (c->npending >= MAX_PENDING)
		return fail(c, CS_CLIENT_E_ARG, "%d requests outstanding: receive some first",
		        MAX_PENDING);
	if (c->pending == NULL && (c->pending = malloc(MAX_PENDING * sizeof *c->pending)) == NULL)
		return fail(c, CS_CLIENT_E_NOMEM, "out of memory");
	if (out_pending(c) >= OUT_HIGHWAT && (rc = flush_out(c, now_ms() + c->timeout_ms)) != 0)
		return rc;
	uint32_t id = take_id(c);
	size_t off = c->out.len;
	if ((rc = cs_proto_write_get(&c->out, id, refresh ? CS_OP_REFRESH : CS_OP_GET, &g)) != 0)
		return encode_failed(c, rc);
	if ((rc = check_frame_size(c, off)) != 0)
		return rc;
	c->pending[c->npending++] = id;
	if (reqid != NULL)
		*reqid = id;
	return 0;
}

uint32_t cs_client_pending(const cs_client *c)
{
	return c->npending;
}

/* Turns a reply to a pipelined GET/REFRESH into a result (server errors become error
 * results). Returns 0 or a fatal error. */
static int pipelined_reply(cs_client *c, const cs_frame *f, cs_client_result **out)
{
	if (f->opcode == CS_OP_ERROR) {
		int code;
		const char *msg;
		uint32_t len;
		if (cs_proto_decode_error(f->body, f->body_len, &code, &msg, &len) != 0)
			return fail(c, CS_CLIENT_E_PROTOCOL, "malformed error reply");
		if (code == CS_ERR_PROTOCOL)
			return fail(c, CS_CLIENT_E_SERVER_PROTOCOL, "server: protocol: %.*s",
			        (int)len, msg);
		*out = cs_result_new_error(code, msg, len);
		return *out ? 0 : fail(c, CS_CLIENT_E_NOMEM, "out of memory");
	}
	if (f->opcode != (CS_OP_REPLY_FLAG | CS_OP_GET) &&
	        f->opcode != (CS_OP_REPLY_FLAG | CS_OP_REFRESH))
		return fail(c, CS_CLIENT_E_PROTOCOL, "unexpected reply opcode 0x%02x", f->opcode);
	return decode_result(c, f, out);
}

int cs_client_recv(cs_client *c, uint32_t *reqid, cs_client_result **out)
{
	cs_frame f;
	if (out == NULL)
		return fail(c, CS_CLIENT_E_ARG, "out is NULL");
	*out = NULL;
	int rc = usable(c);
	if (rc != 0)
		return rc;
	if (c->npending == 0)
		return fail(c, CS_CLIENT_E_ARG, "no request outstanding");
	if ((rc = wait_frame(c, now_ms() + c->timeout_ms, &f)) != 0)
		return rc;
	uint32_t i;
	for (i = 0; i < c->npending && c->pending[i] != f.reqid; i++)
		;
	if (i == c->npending)
		return fail(c, CS_CLIENT_E_PROTOCOL, "reply for unknown request id %u", f.reqid);
	c->pending[i] = c->pending[--c->npending];
	if ((rc = pipelined_reply(c, &f, out)) != 0)
		return rc;
	if (reqid != NULL)
		*reqid = f.reqid;
	return 0;
}

int cs_client_pipeline(cs_client *c, const cs_client_request *reqs, uint32_t n, bool refresh,
        cs_client_result **out)
{
	int rc = sync_ready(c);
	if (rc != 0)
		return rc;
	if (reqs == NULL || out == NULL || n == 0)
		return fail(c, CS_CLIENT_E_ARG, "pipeline needs at least one request");
	for (uint32_t i = 0; i < n; i++)
		out[i] = NULL;
	for (uint32_t i = 0; i < n; i++) {
		cs_get_req g;
		if ((rc = request_in(c, &reqs[i], &g)) != 0)
			return rc;
	}
	/* Ids first..first+n-1 without wrapping, so a reply's index is reqid - first. */
	if (c->next_id > UINT32_MAX - n)
		c->next_id = 1;
	int64_t deadline = now_ms() + c->timeout_ms;
	uint32_t first = c->next_id, sent = 0, got = 0;
	while (got < n) {
		/* Queue requests while the output is short. */
		while (sent < n && out_pending(c) < OUT_HIGHWAT) {
			cs_get_req g;
			if ((rc = request_in(c, &reqs[sent], &g)) != 0)
				goto fail;
			uint32_t id = take_id(c);
			size_t off = c->out.len;
			rc = cs_proto_write_get(
			        &c->out, id, refresh ? CS_OP_REFRESH : CS_OP_GET, &g);
			if (rc != 0) {
				rc = encode_failed(c, rc);
				goto fail;
			}
			if ((rc = check_frame_size(c, off)) != 0)
				goto fail;
			sent++;
		}
		cs_frame f;
		while (got < n && (rc = take_frame(c, &f)) == 1) {
			uint32_t idx = f.reqid - first;
			if (idx >= sent || out[idx] != NULL) {
				rc = fail(c, CS_CLIENT_E_PROTOCOL,
				        "reply for unknown request id %u", f.reqid);
				goto fail;
			}
			if ((rc = pipelined_reply(c, &f, &out[idx])) != 0)
				goto fail;
			got++;
		}
		if (rc < 0)
			goto fail;
		if (got < n && (rc = io_round(c, deadline)) != 0)
			goto fail;
	}
	return 0;
fail:
	/* Replies still in flight could be paired with later requests: drop the connection. */
	if (!c->dead && sent > got)
		kill_conn(c);
	for (uint32_t i = 0; i < n; i++) {
		cs_client_result_free(out[i]);
		out[i] = NULL;
	}
	return rc;
}

/* ---- Connecting -------------------------------------------------------------------------- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Opens the socket and connects within the deadline. */
static int open_socket(cs_client *c, const cs_client_options *o, int64_t deadline)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char where[160], why[200];
	if (cs_client_addr(o, &ss, &sslen, where, sizeof where, why, sizeof why) != 0)
		return fail(c, CS_CLIENT_E_ARG, "%s", why);
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(c, CS_CLIENT_E_CONNECT, "socket: %s", strerror(errno));
	if (set_nonblock(c->fd) != 0)
		return fail(c, CS_CLIENT_E_CONNECT, "fcntl: %s", strerror(errno));
	if (ss.ss_family != AF_UNIX) {
		int one = 1;
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (connect(c->fd, (struct sockaddr *)&ss, sslen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN)
		return fail(c, CS_CLIENT_E_CONNECT, "connect to %s: %s", where, strerror(errno));
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return fail(c, CS_CLIENT_E_CONNECT, "connect to %s: timed out", where);
		struct pollfd pfd = {c->fd, POLLOUT, 0};
		int rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return fail(c, CS_CLIENT_E_CONNECT, "poll: %s", strerror(errno));
		if (rc == 0)
			return fail(c, CS_CLIENT_E_CONNECT, "connect to %s: timed out", where);
		int soerr = 0;
		socklen_t len = sizeof soerr;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
			soerr = errno;
		if (soerr != 0)
			return fail(c, CS_CLIENT_E_CONNECT, "connect to %s: %s", where,
			        strerror(soerr));
		return 0;
	}
}

static int hello(cs_client *c, const cs_client_options *o, int64_t deadline)
{
	const char *name = o->client_name ? o->client_name : "cachesvc-client";
	cs_hello_req h = {CS_PROTO_VERSION, name, (uint32_t)strlen(name), o->token,
	        o->token ? (uint32_t)strlen(o->token) : 0};
	uint32_t id = take_id(c);
	int rc = cs_proto_write_hello(&c->out, id, &h);
	if (rc != 0)
		return fail(c, CS_CLIENT_E_ARG, "client name or token too long");
	cs_frame f;
	if ((rc = wait_frame(c, deadline, &f)) != 0)
		return rc;
	/* An error with request id 0 is the server refusing the connection (at its
	 * connection limit, or shutting down) before it read our HELLO: report it as such. */
	if (f.reqid != id && !(f.reqid == 0 && f.opcode == CS_OP_ERROR))
		return fail(c, CS_CLIENT_E_PROTOCOL, "HELLO reply with the wrong request id");
	if (f.opcode == CS_OP_ERROR)
		return server_error(c, &f);
	uint32_t v, slen, maxf;
	const char *server;
	if (f.opcode != (CS_OP_REPLY_FLAG | CS_OP_HELLO) ||
	        cs_proto_decode_hello_reply(f.body, f.body_len, &v, &server, &slen, &maxf) != 0)
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed HELLO reply");
	if (v != CS_PROTO_VERSION)
		return fail(c, CS_CLIENT_E_PROTOCOL, "server speaks protocol version %u", v);
	memcpy(c->server, server, slen);
	c->server[slen] = '\0';
	c->server_max_frame = maxf < CS_PROTO_MAX_FRAME ? maxf : CS_PROTO_MAX_FRAME;
	return 0;
}

cs_client *cs_client_connect(const cs_client_options *opt)
{
	static const cs_client_options defaults;
	const cs_client_options *o = opt ? opt : &defaults;
	cs_client *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->fd = -1;
	c->next_id = 1;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
	c->server_max_frame = CS_PROTO_MAX_FRAME;
	cs_buf_init(&c->out, 2 * ((size_t)CS_PROTO_HDR + CS_PROTO_MAX_FRAME) + OUT_HIGHWAT);
	c->rd = cs_proto_reader_new(o->max_reply ? o->max_reply : CS_PROTO_MAX_REPLY_FRAME);
	c->rbuf = malloc(READ_CHUNK);
	if (c->rd == NULL || c->rbuf == NULL) {
		fail(c, CS_CLIENT_E_NOMEM, "out of memory");
		c->dead = true;
		return c;
	}
	int64_t deadline = now_ms() + (o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000);
	int rc = open_socket(c, o, deadline);
	if (rc == 0)
		rc = hello(c, o, deadline);
	if (rc != 0) {
		/* Keep the first message; make sure the context is dead. */
		kill_conn(c);
		if (c->err == CS_CLIENT_E_TIMEOUT)
			c->err = CS_CLIENT_E_CONNECT;
	}
	return c;
}

void cs_client_free(cs_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	cs_buf_free(&c->out);
	cs_proto_reader_free(c->rd);
	free(c->rbuf);
	free(c->pending);
	free(c);
}

/* ---- Results ----------------------------------------------------------------------------- */

int cs_client_result_err(const cs_client_result *r, const char **msg)
{
	return cs_result_error(r, msg);
}

uint32_t cs_client_result_ncols(const cs_client_result *r)
{
	return cs_result_ncols(r);
}

uint32_t cs_client_result_nrows(const cs_client_result *r)
{
	return cs_result_nrows(r);
}

const char *cs_client_result_col_name(const cs_client_result *r, uint32_t col)
{
	return cs_result_col_name(r, col);
}

int cs_client_result_col_type(const cs_client_result *r, uint32_t col)
{
	return cs_result_col_type(r, col);
}

int cs_client_result_value(
        const cs_client_result *r, uint32_t row, uint32_t col, cs_client_value *out)
{
	cs_value v;
	if (cs_result_value(r, row, col, &v) != 0)
		return CS_CLIENT_E_ARG;
	memset(out, 0, sizeof *out);
	out->type = v.type;
	switch (v.type) {
	case CS_V_BOOL:
		out->u.b = v.u.b;
		break;
	case CS_V_INT:
		out->u.i = v.u.i;
		break;
	case CS_V_FLOAT:
		out->u.f = v.u.f;
		break;
	case CS_V_STR:
	case CS_V_BIN:
		out->u.s.p = v.u.s.p;
		out->u.s.len = v.u.s.len;
		break;
	case CS_V_TS:
		out->u.ts.sec = v.u.ts.sec;
		out->u.ts.nsec = v.u.ts.nsec;
		break;
	default:
		break;
	}
	return 0;
}

int cs_client_result_source(const cs_client_result *r)
{
	return cs_result_meta(r)->src;
}

uint64_t cs_client_result_lsn(const cs_client_result *r)
{
	return cs_result_meta(r)->lsn;
}

uint64_t cs_client_result_age_ms(const cs_client_result *r)
{
	return cs_result_meta(r)->age_ms;
}

bool cs_client_result_stale(const cs_client_result *r)
{
	return cs_result_meta(r)->stale;
}

int cs_client_result_stored(const cs_client_result *r)
{
	switch (cs_result_meta(r)->stored) {
	case CS_STORED_YES:
		return 1;
	case CS_STORED_NO:
		return 0;
	default:
		return -1;
	}
}

void cs_client_result_free(cs_client_result *r)
{
	cs_result_free(r);
}

/* ---- LSN --------------------------------------------------------------------------------- */

int cs_client_lsn_parse(const char *s, uint64_t *out)
{
	return cs_lsn_parse(s, out) ? 0 : CS_CLIENT_E_ARG;
}

char *cs_client_lsn_format(uint64_t lsn, char buf[CS_CLIENT_LSN_STRLEN])
{
	return cs_lsn_format(lsn, buf);
}

int cs_client_token_parse(const char *s, cs_client_token *out)
{
	cs_token t;
	if (out == NULL || !cs_token_parse(s, &t))
		return CS_CLIENT_E_ARG;
	memcpy(out->shard, t.shard, sizeof out->shard);
	out->lsn = t.lsn;
	return 0;
}

char *cs_client_token_format(const cs_client_token *t, char buf[CS_CLIENT_TOKEN_STRLEN])
{
	cs_token v;
	memcpy(v.shard, t->shard, sizeof v.shard);
	v.shard[CS_TOKEN_MAX_SHARD] = '\0';
	v.lsn = t->lsn;
	return cs_token_format(&v, buf);
}

bool cs_client_shard_in(const cs_client_request *req, cs_get_req *g)
{
	size_t n = req->shard ? strnlen(req->shard, CS_PROTO_MAX_SHARD + 1) : 0;
	g->shard = n ? req->shard : NULL;
	g->shard_len = (uint32_t)n;
	return n == 0 || (req->min_lsn != 0 && cs_proto_shard_name_ok(req->shard, n));
}

/* SHOW: pass 1 counts rows and cells, pass 2 copies them into one block. */
struct show_fill {
	cs_client_row *rows;
	cs_client_cell *cells;
	char *arena;
	uint32_t ncells, maxrow;
	bool fill;
};

static char *arena_put(struct show_fill *sf, const char *p, uint32_t len)
{
	char *d = sf->arena;
	memcpy(d, p, len);
	d[len] = '\0';
	sf->arena += len + 1;
	return d;
}

static int show_cell(void *priv, uint32_t row, const char *key, uint32_t key_len, const cs_value *v)
{
	struct show_fill *sf = priv;
	if (!sf->fill) {
		sf->ncells++;
		return 0;
	}
	cs_client_cell *cell = &sf->cells[sf->ncells++];
	cell->name = arena_put(sf, key, key_len);
	memset(&cell->value, 0, sizeof cell->value);
	cell->value.type = v->type;
	if (v->type == CS_V_STR) {
		cell->value.u.s.p = arena_put(sf, v->u.s.p, v->u.s.len);
		cell->value.u.s.len = v->u.s.len;
	} else if (v->type == CS_V_BOOL) {
		cell->value.u.b = v->u.b;
	} else if (v->type == CS_V_INT) {
		cell->value.u.i = v->u.i;
	} else if (v->type == CS_V_FLOAT) {
		cell->value.u.f = v->u.f;
	}
	cs_client_row *r = &sf->rows[row];
	if (r->cells == NULL)
		r->cells = cell;
	r->ncells++;
	return 0;
}

/* Sends the SHOW or ADMIN request already in c->out (request id id) and decodes its rows. */
static int rows_roundtrip(cs_client *c, uint32_t id, uint8_t op, cs_client_row **rows,
	uint32_t *nrows)
{
	cs_frame f;
	int rc = roundtrip(c, id, op, &f);
	if (rc != 0)
		return rc;
	struct show_fill sf = { 0 };
	uint32_t n;
	if (cs_proto_decode_show_reply(f.body, f.body_len, &n, show_cell, &sf) != 0)
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed SHOW/ADMIN reply");
	/* Strings: each has at least a one-byte header in the body, so body_len bytes hold them
	 * with their NULs. */
	uint32_t ncells = sf.ncells;
	size_t size = (size_t)n * sizeof(cs_client_row) + (size_t)ncells * sizeof(cs_client_cell) +
	              f.body_len + 1;
	cs_client_row *block = calloc(1, size);
	if (block == NULL)
		return fail(c, CS_CLIENT_E_NOMEM, "out of memory");
	sf = (struct show_fill){ .rows = block, .cells = (cs_client_cell *)(block + n), .fill = true };
	sf.arena = (char *)(sf.cells + ncells);
	if (cs_proto_decode_show_reply(f.body, f.body_len, &n, show_cell, &sf) != 0) {
		free(block);
		return fail(c, CS_CLIENT_E_PROTOCOL, "malformed SHOW/ADMIN reply");
	}
	*rows = block;
	*nrows = n;
	return 0;
}

int cs_client_show(cs_client *c, const char *what, cs_client_row **rows, uint32_t *nrows)
{
	if (what == NULL || rows == NULL || nrows == NULL)
		return fail(c, CS_CLIENT_E_ARG, "what/rows is NULL");
	*rows = NULL;
	*nrows = 0;
	int rc = sync_ready(c);
	if (rc != 0)
		return rc;
	uint32_t id = take_id(c);
	if ((rc = cs_proto_write_show(&c->out, id, what)) != 0)
		return encode_failed(c, rc);
	return rows_roundtrip(c, id, CS_OP_SHOW, rows, nrows);
}

int cs_client_admin(cs_client *c, const char *op, const char *query, cs_client_row **rows,
	uint32_t *nrows)
{
	if (op == NULL || rows == NULL || nrows == NULL)
		return fail(c, CS_CLIENT_E_ARG, "op/rows is NULL");
	*rows = NULL;
	*nrows = 0;
	int rc = sync_ready(c);
	if (rc != 0)
		return rc;
	uint32_t id = take_id(c);
	if ((rc = cs_proto_write_admin(&c->out, id, op, query)) != 0)
		return encode_failed(c, rc);
	return rows_roundtrip(c, id, CS_OP_ADMIN, rows, nrows);
}

void cs_client_show_free(cs_client_row *rows)
{
	free(rows);
}
