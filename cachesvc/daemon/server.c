/* server.c - the binary-protocol listener and client connections of the daemon. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "log.h"
#include "util.h"

/* Output bounds per client (client_output_soft_limit / _hard_limit, like Redis's
 * client-output-buffer-limit). A client's queued output is what its output buffer holds
 * unwritten plus the results its MGETs hold: items answered, waiting for the last one
 * (c->held). Past the soft limit the connection is not read, so it sends no new requests;
 * but up to max_inflight requests already read keep completing into its output, which is
 * how one connection that never read grew to 800 MB (issue 14). Past the hard limit it is
 * closed and counted. An MGET is sized item by item as items arrive: one whose items alone
 * pass the hard limit (or the 64 MiB reply limit) can never be written within the limit,
 * so it fails with too_large at once, its items freed, and the connection stays. */
/* Slowloris (issue 14): a frame must be complete frame_timeout after its first byte came,
 * whatever trickles in meanwhile (every byte resets idle_timeout, so that bound cannot).
 * Clients holding a partial frame sit on a list (s->partial) with the time it began; a
 * timer armed only while the list is non-empty sweeps it every FRAME_SWEEP_MS at most and
 * closes the late ones. A hit never touches it: a client is linked only when a read ends
 * inside a frame, and that costs a clock read (vDSO, no system call) and two pointers. */
#define FRAME_SWEEP_MS 250
/* Failed authentication (issue 14: 25,000 guesses a second on one connection, unseen): each
 * bad HELLO is counted (cachesvc_auth_failures_total) and logged at most once per
 * AUTH_LOG_INTERVAL_US with the peer's address and a count of the lines not logged; the
 * AUTH_MAX_FAILURES-th on one connection closes it after its `auth` error frame, so each
 * further guess costs a new connection (and its share of max_clients). */
#define AUTH_MAX_FAILURES 3
#define AUTH_LOG_INTERVAL_US (5u * 1000000u)
#define MGET_REPLY_MAX (64u << 20) /* the reply scratch buffer and the clients' default limit */
#define MGET_RESERVE_MAX (64u << 10) /* an MGET reply's first reservation, at most */
#define MGET_ITEM_OVERHEAD 64	   /* meta and framing per item, roughly */
#define SERVER_NAME "cachesvc/0.1.0"
#define FINAL_FLUSH_MS 1000 /* cs_server_free: longest wait for clients to take their answers */
/* accept() failed for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM): the pending
 * connection stays in the backlog and the listening socket stays readable, so accepting
 * again at once spins the loop (the issue measured 92% CPU and two million log lines in
 * 6 s). Instead the listeners pause this long, as Redis and PgBouncer do; pending clients
 * wait in the kernel backlog (or time out), and the loop keeps serving the others. */
#define ACCEPT_PAUSE_MS 250
#define ACCEPT_LOG_INTERVAL_US (5u * 1000000u) /* at most one accept-error line per 5 s */
/* The hop (issue 16). A client is a raw socket with a persistent read event (its timeout is
 * idle_timeout: libevent re-arms it at each read, as it did for the bufferevent this replaced)
 * and a write event that is added only while output waits for the socket.
 * - Reading: evbuffer_read, which a socket bufferevent uses, asks ioctl(FIONREAD) before each
 *   read (and sizes a new buffer chain by its answer). client_fill reads READ_CHUNK bytes
 *   instead, again while a read filled its chunk, READ_CHUNKS at most per event (the others'
 *   turn): into a scratch buffer of the server when the client has no partial frame, where
 *   read_frames handles the frames in place (no allocation, no copy; only bytes left over
 *   are copied to c->in), else into c->in's free space.
 * - Writing: a bufferevent adds write interest for each reply, writes on the next loop pass
 *   and removes the interest (two epoll_ctl per reply). Here a reply goes to the socket at
 *   once when nothing is queued for its client and no other reply for it is due in this pass
 *   (its only request in flight; or, answered while its frame is handled, no frame follows);
 *   only the part the socket did not take is queued, with write interest until it drains.
 *   Other replies (pipelined requests) are appended and written together at the end of the
 *   pass, by serve_rest after the frames of a read or by the flush event after the engine's
 *   callbacks, so one writev still carries a batch.
 * The output limits count the same queue as before: what c->out holds plus c->held. */
#define READ_CHUNK 16384
#define READ_CHUNKS 4

/* One client connection. It outlives its socket while requests are in flight: callbacks
 * find fd < 0 and only drop their count; the last one frees the struct. */
typedef struct client {
	cs_server *srv;
	evutil_socket_t fd;	       /* -1 once closed */
	struct event *rev, *wev;       /* read (persistent, idle timeout); write (added: want_write) */
	struct evbuffer *in, *out;     /* bytes read, not yet framed; replies the socket has not taken */
	struct client *prev, *next;
	struct client *pprev, *pnext; /* on s->partial while a partial frame is buffered */
	struct client *fprev, *fnext; /* on s->flushq while replies wait for the end of the pass */
	uint64_t partial_since_us;    /* when the first byte of that frame was read */
	int inflight;
	size_t held; /* bytes of MGET item results held for this client (see above) */
	int auth_failures;
	uint64_t id;	      /* connection number (SHOW clients) */
	uint64_t since_us;    /* when accepted */
	bool authed;
	bool admin;	     /* may send INVALIDATE, SHOW and ADMIN (admin_token, or none set) */
	uint64_t hello_epoch; /* the token epoch of the HELLO that granted admin */
	bool paused;	     /* reading stopped: in-flight bound or output backlog */
	bool close_on_flush; /* protocol error: close once the error frame is out */
	bool in_read;	     /* handling its frames (on_client_read, client_serve): closing is
			      * fine, freeing waits for the end; replies are appended, written
			      * when the frames are done (serve_rest) */
	bool want_write;     /* wev is added: the socket took only part of the output */
	bool more_frames;    /* in_read: another frame follows the one being handled */
	bool serve_pending;  /* resumed while another client's frame was handled: its buffered
			      * frames are served by flush_ev (on flushq), not nested */
	/* idle_timeout and the output low watermark (a quarter of client_output_soft_limit)
	 * as they were when it was accepted: a reload applies them to new connections only
	 * (CONFIG.md), as with the bufferevent's timeout and watermark before */
	int64_t idle_ms;
	int64_t send_ms; /* send_timeout: the write event's timeout */
	size_t low_water;
} client;

/* One GET/REFRESH/INVALIDATE in flight. */
typedef struct creq {
	client *c;
	uint32_t reqid;
	uint8_t op;
} creq;

/* One MGET in flight: items are answered as they complete. The reply is encoded as they
 * come: an item whose turn it is (every item before it is in the reply) goes straight into
 * the MGET's reply buffer, no copy of its own; one that comes early is copied and held
 * until its turn. One block holds the MGET, its items and their slots. */
typedef struct mitem {
	int err;
	bool early; /* answered before its turn: held here */
	char *msg;
	cs_meta meta;
	uint8_t *result;
	size_t len;
} mitem;

typedef struct mget mget;
typedef struct mslot {
	mget *m;
	uint32_t index;
} mslot;

struct mget {
	client *c;
	uint32_t reqid;
	uint32_t n, pending;
	uint32_t next;	/* the first item not yet in out */
	size_t bytes;	/* reply size so far, counted per item */
	size_t held;	/* this MGET's share of c->held: out's bytes and the early items' */
	bool too_large; /* items past the limit: dropped, the MGET answers too_large */
	size_t out_off; /* the reply frame's header in out */
	cs_buf out;	/* the reply, items 0 .. next-1 encoded */
	mitem *items;
	mslot *slots;
};

struct cs_server {
	struct event_base *base;
	cs_engine *engine;
	struct evconnlistener *tcp, *unix_l;
	char *unix_path;
	client head;	/* sentinel of the connection list */
	client partial; /* sentinel of the list of clients with a partial frame (pnext/pprev) */
	client flushq;	/* sentinel of the clients whose output waits for flush_ev (fnext/fprev) */
	struct event *flush_ev; /* activated (no system call) to write flushq at the end of a pass */
	int handling;		/* frames being handled (nested: an engine callback inside one) */
	struct event *frame_sweep;
	cs_server_stats stats;
	cs_buf out; /* scratch for one reply frame */
	bool draining;
	void (*drain_done)(void *);
	void *drain_priv;
	struct event *drain_timer;
	struct event *flush_timer;
	struct event *accept_timer; /* ends an accept pause (ACCEPT_PAUSE_MS) */
	bool accept_on;		    /* cs_server_accept: main wants the listeners on */
	bool accept_paused;	    /* ... but a resource error paused them */
	int client_cap;		    /* from the open-file limit; 0 = none */
	cs_ratelimit accept_log;
	cs_ratelimit auth_log;
	cs_server_reload_fn *reload;
	void *reload_arg;
	uint64_t token_epoch;	      /* see token_epoch() */
	char *seen_auth, *seen_admin; /* the tokens of token_epoch */
	cs_get_req mget_scratch[CS_PROTO_MAX_MGET];
	uint8_t rbuf[READ_CHUNK]; /* read scratch of the client being read (client_fill) */
};

static void client_serve(client *c);
static void serve_or_defer(client *c);

static const cs_config *cfg_of(const cs_server *s)
{
	return cs_engine_config(s->engine);
}

/* Bytes queued for a connected client: unwritten output plus held MGET items. */
static size_t client_queued(const client *c)
{
	return evbuffer_get_length(c->out) + c->held;
}

/* ---- Connection lifecycle --------------------------------------------------------------- */

static bool output_flushed(const cs_server *s)
{
	for (const client *c = s->head.next; c != &s->head; c = c->next)
		if (c->fd >= 0 && evbuffer_get_length(c->out) > 0)
			return false;
	return true;
}

static void on_flush_check(evutil_socket_t fd, short what, void *arg);

/* Drained = nothing in flight and every reply written out (not just queued). */
static void maybe_drained(cs_server *s)
{
	if (!s->draining || s->stats.inflight != 0 || s->drain_done == NULL)
		return;
	if (!output_flushed(s)) {
		if (s->flush_timer == NULL)
			s->flush_timer = evtimer_new(s->base, on_flush_check, s);
		struct timeval tv = cs_tv_ms(5);
		if (s->flush_timer)
			evtimer_add(s->flush_timer, &tv);
		return; /* the drain timeout still bounds this */
	}
	void (*done)(void *) = s->drain_done;
	s->drain_done = NULL;
	done(s->drain_priv);
}

static void on_flush_check(evutil_socket_t fd, short what, void *arg)
{
	maybe_drained(arg);
}

/* Frees a closed client once nothing refers to it: no request in flight and not inside
 * the handling of its frames (in_read: it would touch it after the call that closed it
 * returns). */
static void client_free_if_done(client *c)
{
	if (c->fd < 0 && !c->in_read && c->in) {
		evbuffer_free(c->in); /* kept by client_close while its frames were handled */
		c->in = NULL;
	}
	if (c->fd < 0 && c->inflight == 0 && !c->in_read)
		free(c);
}

static void partial_unlink(client *c)
{
	if (c->pnext == NULL)
		return;
	c->pprev->pnext = c->pnext;
	c->pnext->pprev = c->pprev;
	c->pnext = c->pprev = NULL;
}

/* A read ended inside a frame. `fresh`: frames were consumed by that read, so the partial
 * bytes begin a new frame (its clock starts now); otherwise the same frame goes on. */
static void partial_mark(client *c, bool fresh)
{
	cs_server *s = c->srv;
	int64_t timeout = cfg_of(s)->frame_timeout_ms;
	if (timeout <= 0)
		return;
	if (c->pnext != NULL) {
		if (fresh)
			c->partial_since_us = cs_now_us();
		return;
	}
	c->partial_since_us = cs_now_us();
	c->pnext = &s->partial;
	c->pprev = s->partial.pprev;
	s->partial.pprev->pnext = c;
	s->partial.pprev = c;
	if (s->frame_sweep && !evtimer_pending(s->frame_sweep, NULL)) {
		struct timeval tv = cs_tv_ms(CS_MIN(FRAME_SWEEP_MS, CS_MAX(timeout / 4, 10)));
		evtimer_add(s->frame_sweep, &tv);
	}
}

/* Puts c on flushq (once) and has flush_ev run at the end of this pass (no system call). */
static void flushq_add(client *c)
{
	cs_server *s = c->srv;
	if (c->fnext == NULL) {
		c->fnext = &s->flushq;
		c->fprev = s->flushq.fprev;
		s->flushq.fprev->fnext = c;
		s->flushq.fprev = c;
	}
	event_active(s->flush_ev, EV_WRITE, 0);
}

static void flushq_unlink(client *c)
{
	if (c->fnext == NULL)
		return;
	c->fprev->fnext = c->fnext;
	c->fnext->fprev = c->fprev;
	c->fnext = c->fprev = NULL;
}

/* Closes the socket; output not yet written is dropped. May run inside the client's own
 * event callbacks: libevent allows freeing an event from its callback in a loop without
 * threads, and the struct itself waits for client_free_if_done. */
static void client_close(client *c)
{
	if (c->fd < 0)
		return;
	partial_unlink(c);
	flushq_unlink(c);
	event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	/* the frame being handled (and the MGET items decoded from it) may live in c->in:
	 * freed with the client, after its frames (in_read) */
	if (!c->in_read) {
		evbuffer_free(c->in);
		c->in = NULL;
	}
	evbuffer_free(c->out);
	evutil_closesocket(c->fd);
	c->rev = c->wev = NULL;
	c->out = NULL;
	c->fd = -1;
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->srv->stats.clients--;
	client_free_if_done(c);
}

/* Adds the read event, its timeout (idle_timeout) starting now. */
static void read_interest(client *c)
{
	struct timeval tv = cs_tv_ms(c->idle_ms);
	event_add(c->rev, c->idle_ms > 0 ? &tv : NULL);
}

static void client_pause(client *c, bool pause)
{
	if (c->fd < 0 || c->paused == pause)
		return;
	if (!pause && c->close_on_flush)
		return; /* nothing more is read from it */
	c->paused = pause;
	if (pause)
		partial_unlink(c); /* not read: any wait now is ours (resuming re-adds it) */
	if (pause)
		event_del(c->rev);
	else
		read_interest(c);
}

/* Applies the output limits after the client's queued output grew: past the hard limit
 * the connection is closed (counted), past the soft one it is not read. */
static void output_check(client *c)
{
	const cs_config *cfg = cfg_of(c->srv);
	size_t q = client_queued(c);
	if (q > cfg->client_output_hard) {
		c->srv->stats.output_limit_closed++;
		cs_debug("closing client: %zu bytes of output queued, over client_output_hard_limit", q);
		client_close(c); /* freed later: never while its frames are handled (in_read) */
	} else if (q > cfg->client_output_soft) {
		client_pause(c, true);
	}
}

/* A read or write error other than "try again". */
static bool io_failed(void)
{
	return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Write interest on while output waits for the socket, off once it drained: an epoll_ctl
 * only when a write left a tail, and once more when it is gone. */
static void write_interest(client *c, bool on)
{
	if (c->want_write == on)
		return;
	c->want_write = on;
	if (on) {
		/* persistent: the timeout restarts each time the socket takes output */
		struct timeval tv = cs_tv_ms(c->send_ms);
		event_add(c->wev, c->send_ms > 0 ? &tv : NULL);
	} else
		event_del(c->wev);
}

/* Writes what c->out holds (one writev); a tail waits for write interest. Returns false when
 * the client was closed: a socket error, or the last frame of a close_on_flush client out. */
static bool client_write_out(client *c)
{
	if (evbuffer_get_length(c->out) > 0 && evbuffer_write(c->out, c->fd) < 0 && io_failed()) {
		client_close(c); /* freed later: never while its frames are handled (in_read) */
		return false;
	}
	bool left = evbuffer_get_length(c->out) > 0;
	write_interest(c, left);
	if (!left && c->close_on_flush) {
		client_close(c);
		return false;
	}
	return true;
}

/* Output went out: read again if the output backlog was the brake. The threshold is the
 * write low watermark of the bufferevent this replaced (c->low_water), so a paused client
 * resumes as before; request_done resumes one paused by max_inflight. */
static void output_drained(client *c)
{
	const cs_config *cfg = cfg_of(c->srv);
	if (c->paused && !c->in_read && c->inflight < cfg->max_inflight &&
		evbuffer_get_length(c->out) <= c->low_water &&
		client_queued(c) <= cfg->client_output_soft) {
		client_pause(c, false);
		serve_or_defer(c); /* frames may already be buffered */
	}
}

/* Writes a frame to the client and applies output backpressure (see "The hop" above).
 * Direct: nothing queued and no other reply for this client is due in this pass (while its
 * frames are handled: no frame follows this one; else: its only request in flight). Any
 * reply may go direct when nothing is queued (replies carry their request's id, in any
 * order); the conditions only keep pipelined replies together in one write. */
static void client_send(client *c, cs_buf *b)
{
	if (c->fd < 0)
		return;
	size_t done = 0;
	bool direct = evbuffer_get_length(c->out) == 0 &&
		(c->in_read ? !c->more_frames : c->inflight <= 1);
	if (direct) {
		ssize_t n = send(c->fd, b->data, b->len, MSG_NOSIGNAL);
		if (n == (ssize_t)b->len) {
			if (c->held > 0)
				output_check(c);
			return;
		}
		if (n < 0 && io_failed()) {
			client_close(c); /* freed later: never while its frames are handled (in_read) */
			return;
		}
		done = n > 0 ? (size_t)n : 0;
	}
	if (evbuffer_add(c->out, b->data + done, b->len - done) != 0) {
		client_close(c);
		return;
	}
	if (direct) {
		write_interest(c, true); /* the tail */
	} else if (!c->in_read && !c->want_write && c->fnext == NULL) {
		flushq_add(c); /* written at the end of this pass (serve_rest writes its own
				* after the frames) */
	}
	output_check(c);
}

/* flush_ev: writes the output of the clients whose replies came in this pass, and serves
 * the buffered frames of those resumed while another client's frame was handled. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	cs_server *s = arg;
	while (s->flushq.fnext != &s->flushq) {
		client *c = s->flushq.fnext;
		flushq_unlink(c);
		bool serve = c->serve_pending;
		c->serve_pending = false;
		if (serve && !c->paused && !c->in_read) {
			client_serve(c); /* writes its output too (serve_rest); may free c */
			continue;
		}
		if (!c->want_write && client_write_out(c))
			output_drained(c);
	}
}

/* Serves c's buffered frames now, or - while another client's frame is being handled (an
 * engine callback inside it) - at the end of the pass: frames are never handled nested,
 * since one frame's decoded requests (s->mget_scratch) are in use until it returns. */
static void serve_or_defer(client *c)
{
	cs_server *s = c->srv;
	if (s->handling == 0) {
		client_serve(c);
		return;
	}
	c->serve_pending = true;
	flushq_add(c);
}

/* A request finished: the connection may read again, or be freed. */
static void request_done(client *c)
{
	cs_server *s = c->srv;
	c->inflight--;
	s->stats.inflight--;
	if (c->fd < 0) {
		client_free_if_done(c);
	} else if (c->paused && c->inflight < cfg_of(s)->max_inflight &&
		   client_queued(c) <= cfg_of(s)->client_output_soft) {
		client_pause(c, false);
		if (!c->in_read)
			serve_or_defer(c); /* frames may already be buffered */
	}
	maybe_drained(s);
}

/* Sends an error frame, then closes the connection once it is written; nothing more is
 * read from it. */
static void error_and_close(client *c, uint32_t reqid, int code, const char *fmt, const char *detail)
{
	cs_server *s = c->srv;
	cs_buf_reset(&s->out);
	(void)cs_proto_write_error(&s->out, reqid, code, fmt, detail);
	client_send(c, &s->out);
	if (c->fd < 0)
		return;
	cs_debug("closing client: %s: %s", code == CS_ERR_PROTOCOL ? "protocol error" : cs_err_name(code),
		detail);
	c->close_on_flush = true;
	event_del(c->rev);
	if (evbuffer_get_length(c->out) == 0)
		client_close(c);
}

static void protocol_error(client *c, uint32_t reqid, const char *fmt, const char *detail)
{
	c->srv->stats.protocol_errors++;
	error_and_close(c, reqid, CS_ERR_PROTOCOL, fmt, detail);
}

static void send_error(client *c, uint32_t reqid, int code, const char *msg)
{
	cs_server *s = c->srv;
	cs_buf_reset(&s->out);
	if (cs_proto_write_error(&s->out, reqid, code, "%s", msg) == 0)
		client_send(c, &s->out);
}

/* ---- Engine callbacks ------------------------------------------------------------------- */

static void on_get_done(void *priv, int err, const char *msg, const cs_meta *meta,
	const uint8_t *result, size_t len)
{
	creq *r = priv;
	client *c = r->c;
	cs_server *s = c->srv;
	if (c->fd >= 0) {
		cs_buf_reset(&s->out);
		int rc = err ? cs_proto_write_error(&s->out, r->reqid, err, "%s", msg)
			     : cs_proto_write_result(&s->out, r->reqid, r->op, meta, result, len);
		if (rc != 0) {
			cs_buf_reset(&s->out);
			(void)cs_proto_write_error(&s->out, r->reqid, CS_ERR_TOO_LARGE,
				"result of %zu bytes is over the reply limit", len);
		}
		client_send(c, &s->out);
	}
	free(r);
	request_done(c);
}

static void on_inval_done(void *priv, int err, const char *msg, uint64_t n)
{
	creq *r = priv;
	client *c = r->c;
	cs_server *s = c->srv;
	if (c->fd >= 0) {
		cs_buf_reset(&s->out);
		if (err)
			(void)cs_proto_write_error(&s->out, r->reqid, err, "%s", msg);
		else
			(void)cs_proto_write_inval_reply(&s->out, r->reqid, r->op == 1, n);
		client_send(c, &s->out);
	}
	free(r);
	request_done(c);
}

static void mget_drop_items(mget *m)
{
	for (uint32_t i = 0; i < m->n; i++) {
		free(m->items[i].msg);
		free(m->items[i].result);
		m->items[i].msg = NULL;
		m->items[i].result = NULL;
	}
	cs_buf_free(&m->out);
	m->c->held -= m->held;
	m->held = 0;
}

static void mget_free(mget *m)
{
	mget_drop_items(m);
	free(m);
}

/* Writes the whole MGET reply, items in request order. */
static void mget_finish(mget *m)
{
	client *c = m->c;
	cs_server *s = c->srv;
	if (c->fd >= 0) {
		if (m->too_large) {
			char msg[128];
			snprintf(msg, sizeof msg, "MGET reply is over %zu bytes (the reply or output limit)",
				(size_t)CS_MIN(cfg_of(s)->client_output_hard, MGET_REPLY_MAX));
			send_error(c, m->reqid, CS_ERR_TOO_LARGE, msg);
			mget_free(m);
			request_done(c);
			return;
		}
		cs_buf *out = &m->out;
		if (m->n == 0)
			m->out_off = cs_proto_mget_begin(out, m->reqid, 0);
		if (!out->failed)
			cs_proto_mget_end(out, m->out_off);
		if (out->failed) {
			out = &s->out;
			cs_buf_reset(out);
			(void)cs_proto_write_error(out, m->reqid, CS_ERR_TOO_LARGE,
				"MGET reply is over the reply limit");
		}
		/* The items move from held to the output: count them once, not twice. */
		c->held -= m->held;
		m->held = 0;
		client_send(c, out);
	}
	mget_free(m);
	request_done(c);
}

/* pending counts unanswered items plus one guard held while items are being issued, so
 * items answered at once cannot finish the MGET before the last one is issued. */
static void mget_release(mget *m)
{
	if (--m->pending == 0)
		mget_finish(m);
}

/* Encodes an item at the end of m->out (its turn: every item before it is there). */
static void mget_encode(mget *m, int err, const char *msg, const cs_meta *meta,
	const uint8_t *result, size_t len)
{
	cs_buf *out = &m->out;
	if (out->failed)
		return; /* finish answers too_large */
	size_t before = out->len;
	if (m->next == 0) {
		/* the first item: room for all of them, guessed from its size (one allocation
		 * for most replies; a buffer that must grow doubles). The guess is capped: the
		 * client's output count sees only bytes written, so a client with many MGETs in
		 * flight must not hold large reservations past its output limits (review M1). */
		size_t guess = 16 + (size_t)m->n * ((err ? 64 : len) + MGET_ITEM_OVERHEAD);
		(void)!cs_buf_reserve(out, guess < MGET_RESERVE_MAX ? guess : MGET_RESERVE_MAX);
		m->out_off = cs_proto_mget_begin(out, m->reqid, m->n);
	}
	(void)(err ? cs_proto_mget_item_err(out, err, msg ? msg : "")
		   : cs_proto_mget_item_ok(out, meta, result, len));
	m->next++;
	if (out->len > before) {
		m->held += out->len - before;
		m->c->held += out->len - before;
	}
}

static void on_mget_item(void *priv, int err, const char *msg, const cs_meta *meta,
	const uint8_t *result, size_t len)
{
	mslot *slot = priv;
	mget *m = slot->m;
	client *c = m->c;
	mitem *it = &m->items[slot->index];
	if (c->fd < 0 || m->too_large) {
		mget_release(m); /* nobody will read it: keep nothing */
		return;
	}
	m->bytes += (err ? strlen(msg ? msg : "") : len) + MGET_ITEM_OVERHEAD;
	if (m->bytes > CS_MIN(cfg_of(c->srv)->client_output_hard, MGET_REPLY_MAX)) {
		m->too_large = true; /* free what the items hold now, not when the last one comes */
		mget_drop_items(m);
		mget_release(m);
		return;
	}
	if (slot->index == m->next) {
		mget_encode(m, err, msg, meta, result, len);
		/* the early items whose turn came */
		while (m->next < m->n && m->items[m->next].early) {
			mitem *x = &m->items[m->next];
			mget_encode(m, x->err, x->msg, &x->meta, x->result, x->len);
			m->held -= x->err ? 0 : x->len;
			c->held -= x->err ? 0 : x->len;
			free(x->msg);
			free(x->result);
			x->msg = NULL;
			x->result = NULL;
			x->early = false;
		}
		output_check(c); /* may close c: the MGET then finishes into the void */
		mget_release(m);
		return;
	}
	it->early = true;
	it->err = err;
	if (err) {
		it->msg = strdup(msg ? msg : "");
	} else {
		it->meta = *meta;
		it->result = malloc(len ? len : 1);
		if (it->result == NULL) {
			it->err = -CS_ERR_INTERNAL;
			it->msg = strdup("out of memory");
		} else {
			memcpy(it->result, result, len);
			it->len = len;
			m->held += len;
			c->held += len;
		}
	}
	output_check(c); /* may close c: the MGET then finishes into the void */
	mget_release(m);
}

/* ---- Requests --------------------------------------------------------------------------- */

static bool token_eq(const char *want, const cs_hello_req *h)
{
	size_t n = strlen(want);
	if (h->token == NULL || h->token_len != n)
		return false;
	unsigned char diff = 0; /* constant time: no early exit on the first mismatch */
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(want[i] ^ h->token[i]);
	return diff == 0;
}

/* The HELLO's token: 2 admin (the admin token, or any accepted HELLO when no admin token is
 * set), 1 data requests only, 0 refused. Without an auth_token any other token (or none) is
 * a data client, as it was before admin_token existed: a wrong admin token then learns so
 * at its first admin request. */
static int hello_role(const cs_config *cfg, const cs_hello_req *h)
{
	if (cfg->admin_token != NULL && token_eq(cfg->admin_token, h))
		return 2;
	if (cfg->auth_token != NULL && !token_eq(cfg->auth_token, h))
		return 0;
	return cfg->admin_token ? 1 : 2;
}

static bool str_same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The token epoch: it moves when a reload changes auth_token or admin_token. Admin rights
 * granted at a HELLO of an older epoch are void (a rotated or newly set admin token must
 * not leave old connections admin); the client says HELLO again. */
static uint64_t token_epoch(cs_server *s)
{
	const cs_config *cfg = cfg_of(s);
	if (!str_same(cfg->auth_token, s->seen_auth) || !str_same(cfg->admin_token, s->seen_admin)) {
		char *a = cfg->auth_token ? strdup(cfg->auth_token) : NULL;
		char *d = cfg->admin_token ? strdup(cfg->admin_token) : NULL;
		if ((cfg->auth_token && !a) || (cfg->admin_token && !d)) {
			free(a);
			free(d);
			return s->token_epoch + 1; /* out of memory: a new epoch every call, no grant */
		}
		free(s->seen_auth);
		free(s->seen_admin);
		s->seen_auth = a;
		s->seen_admin = d;
		s->token_epoch++;
	}
	return s->token_epoch;
}

/* Admin requests: INVALIDATE, SHOW and ADMIN need the admin token when one is set. */
static bool op_is_admin(uint8_t op)
{
	return op == CS_OP_INVALIDATE || op == CS_OP_SHOW || op == CS_OP_ADMIN;
}

/* "host:port" of the client's peer, for log lines (error paths only: a system call). */
static void peer_name(const client *c, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	snprintf(buf, len, "?");
	evutil_socket_t fd = c->fd;
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_UNIX) {
		snprintf(buf, len, "unix socket");
		return;
	}
	char host[64];
	const void *addr = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
						    : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
	unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	if (evutil_inet_ntop(ss.ss_family, addr, host, sizeof host) != NULL)
		snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

static void auth_failed(client *c, uint32_t reqid)
{
	cs_server *s = c->srv;
	s->stats.auth_failures++;
	c->auth_failures++;
	uint64_t suppressed;
	if (cs_ratelimit_pass(&s->auth_log, AUTH_LOG_INTERVAL_US, &suppressed)) {
		char peer[96];
		peer_name(c, peer, sizeof peer);
		cs_warn("authentication failed: bad or missing token in HELLO from %s (%d on this "
			"connection; %llu more failures not logged since the last line)",
			peer, c->auth_failures, (unsigned long long)suppressed);
	}
	if (c->auth_failures >= AUTH_MAX_FAILURES)
		error_and_close(c, reqid, CS_ERR_AUTH, "%s", "bad or missing auth token; closing the connection");
	else
		send_error(c, reqid, CS_ERR_AUTH, "bad or missing auth token");
}

/* A request body the decoder refused: a protocol error closes the connection, any other
 * code is answered and the connection stays. Returns true when rc was an error. */
static bool decode_failed(client *c, uint32_t reqid, int rc, const char *err)
{
	if (rc == 0)
		return false;
	if (rc == -CS_ERR_PROTOCOL)
		protocol_error(c, reqid, "%s", err);
	else
		send_error(c, reqid, rc, err);
	return true;
}

/* Read-your-writes tokens that name a shard ("s1:0/16B3748", the request's "shard";
 * backend/SHARDS.md section 5) are for sharded configurations, whose LSNs are per shard: there
 * the engine judges them (a token of the key's shard). Unsharded, the implicit shard has no
 * name: such a token is refused with bad_params, an MGET as a whole, naming the item, as for
 * any unusable item (PROTOCOL.md 3.4). A bare LSN is unaffected there.
 * Returns true when it answered the request. */
_Static_assert(CS_PROTO_MAX_SHARD == CS_MAX_NAME, "a token's shard name limit is the config's");
static bool shard_token_refused(client *c, uint32_t reqid, const cs_get_req *g, uint32_t n,
	bool is_mget)
{
	/* with [shard NAME] sections the engine judges them (a token of the key's shard) */
	if (cs_engine_config(c->srv->engine)->nshards > 0)
		return false;
	for (uint32_t i = 0; i < n; i++) {
		if (g[i].shard == NULL)
			continue;
		char item[32] = "", msg[256];
		if (is_mget)
			snprintf(item, sizeof item, "item %u: ", i);
		snprintf(msg, sizeof msg,
			"%sread-your-writes token names shard \"%.*s\", but shard tokens need "
			"[shard NAME] sections and this deployment has none: pass the bare LSN",
			item, (int)g[i].shard_len, g[i].shard);
		send_error(c, reqid, CS_ERR_BAD_PARAMS, msg);
		return true;
	}
	return false;
}

static creq *creq_new(client *c, uint32_t reqid, uint8_t op)
{
	creq *r = malloc(sizeof *r);
	if (r == NULL)
		return NULL;
	r->c = c;
	r->reqid = reqid;
	r->op = op;
	c->inflight++;
	c->srv->stats.inflight++;
	return r;
}

/* ---- SHOW (PROTOCOL.md 3.8) -------------------------------------------------------------- */

#define SHOW_VIEWS "queries, servers, clients, invalidator, config, slots"

struct show_ctx {
	cs_buf *b;
	uint32_t nrows;
};

static int show_row(void *priv, const cs_show_cell *cells, uint32_t n)
{
	struct show_ctx *sc = priv;
	int rc = cs_proto_show_row(sc->b, cells, n);
	if (rc == 0)
		sc->nrows++;
	return rc;
}

static int show_clients(cs_server *s, struct show_ctx *sc)
{
	uint64_t now = cs_now_us();
	for (client *k = s->head.next; k != &s->head; k = k->next) {
		if (k->fd < 0)
			continue;
		char peer[96];
		peer_name(k, peer, sizeof peer);
		evutil_socket_t fd = k->fd;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		bool is_unix = fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
			ss.ss_family == AF_UNIX;
		cs_show_cell c[] = {
			{ "id", { .type = CS_V_INT, .u.i = (int64_t)k->id } },
			{ "peer", { .type = CS_V_STR, .u.s = { peer, (uint32_t)strlen(peer) } } },
			{ "transport", { .type = CS_V_STR, .u.s = { is_unix ? "unix" : "tcp",
				is_unix ? 4u : 3u } } },
			{ "authed", { .type = CS_V_BOOL, .u.b = k->authed } },
			{ "inflight", { .type = CS_V_INT, .u.i = k->inflight } },
			{ "queued_bytes", { .type = CS_V_INT, .u.i = (int64_t)client_queued(k) } },
			{ "paused", { .type = CS_V_BOOL, .u.b = k->paused } },
			{ "age_s", { .type = CS_V_INT, .u.i = (int64_t)((now - k->since_us) / 1000000u) } },
		};
		int rc = show_row(sc, c, (uint32_t)CS_ARRAY_LEN(c));
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void handle_show(client *c, const cs_frame *f)
{
	cs_server *s = c->srv;
	char err[256], what[CS_PROTO_MAX_NAME + 1];
	const char *w;
	uint32_t wl;
	int rc = cs_proto_decode_show(f->body, f->body_len, &w, &wl, err, sizeof err);
	if (decode_failed(c, f->reqid, rc, err))
		return;
	if (memchr(w, '\0', wl) != NULL) { /* "queries\0junk" is no view */
		send_error(c, f->reqid, CS_ERR_BAD_PARAMS, "a view name has no NUL byte");
		return;
	}
	memcpy(what, w, wl);
	what[wl] = '\0';
	bool clients = strcmp(what, "clients") == 0;
	if (!clients && strcmp(what, "queries") != 0 && strcmp(what, "servers") != 0 &&
		strcmp(what, "invalidator") != 0 && strcmp(what, "config") != 0 &&
		strcmp(what, "slots") != 0) {
		snprintf(err, sizeof err, "unknown view \"%.64s\" (views: " SHOW_VIEWS ")", what);
		send_error(c, f->reqid, CS_ERR_BAD_PARAMS, err);
		return;
	}
	cs_buf_reset(&s->out);
	struct show_ctx sc = { &s->out, 0 };
	size_t off = cs_proto_show_begin(&s->out, f->reqid);
	rc = clients ? show_clients(s, &sc) : cs_engine_show(s->engine, what, show_row, &sc);
	/* the reply's cap is an MGET's: past client_output_hard_limit, output_check would
	 * close the connection with no error frame */
	if (rc == 0 && client_queued(c) + s->out.len > CS_MIN(cfg_of(s)->client_output_hard,
				MGET_REPLY_MAX))
		rc = -CS_ERR_TOO_LARGE;
	if (rc == 0 && !s->out.failed)
		cs_proto_show_end(&s->out, off, sc.nrows);
	if (rc != 0 || s->out.failed) {
		cs_buf_reset(&s->out);
		send_error(c, f->reqid, rc == -CS_ERR_BAD_PARAMS ? CS_ERR_BAD_PARAMS : CS_ERR_TOO_LARGE,
			"SHOW reply too large");
		return;
	}
	client_send(c, &s->out);
}

/* ---- ADMIN (PROTOCOL.md 3.9) ------------------------------------------------------------- */

/* Replies one row of cells to an ADMIN request. */
static void admin_reply(client *c, uint32_t reqid, const cs_show_cell *cells, uint32_t n)
{
	cs_server *s = c->srv;
	cs_buf_reset(&s->out);
	size_t off = cs_proto_rows_begin(&s->out, CS_OP_ADMIN, reqid);
	if (cs_proto_show_row(&s->out, cells, n) == 0 && !s->out.failed) {
		cs_proto_show_end(&s->out, off, 1);
		client_send(c, &s->out);
	} else {
		cs_buf_reset(&s->out);
		send_error(c, reqid, CS_ERR_TOO_LARGE, "ADMIN reply too large");
	}
}

static void on_admin_reloaded(void *priv, int result, const char *msg)
{
	creq *r = priv;
	client *c = r->c;
	if (c->fd >= 0) {
		const cs_config *cfg = cfg_of(c->srv);
		cs_show_cell cells[] = {
			{ "reload", { .type = CS_V_STR, .u.s = { result == 0 ? "applied" : "refused", 7 } } },
			result == 0 ? (cs_show_cell){ "queries", { .type = CS_V_INT, .u.i = cfg->nqueries } }
				    : (cs_show_cell){ "error", { .type = CS_V_STR,
					.u.s = { msg, (uint32_t)strnlen(msg, 1024) } } },
		};
		admin_reply(c, r->reqid, cells, 2);
	}
	free(r);
	request_done(c);
}

static void handle_admin(client *c, const cs_frame *f)
{
	cs_server *s = c->srv;
	char err[CS_CONFIG_ERRLEN];
	cs_admin_req a;
	int rc = cs_proto_decode_admin(f->body, f->body_len, &a, err, sizeof err);
	if (decode_failed(c, f->reqid, rc, err))
		return;
	bool pause = a.op_len == 5 && memcmp(a.op, "pause", 5) == 0;
	bool resume = a.op_len == 6 && memcmp(a.op, "resume", 6) == 0;
	bool reload = a.op_len == 6 && memcmp(a.op, "reload", 6) == 0;
	bool claim = a.op_len == 5 && memcmp(a.op, "claim", 5) == 0;
	if (!pause && !resume && !reload && !claim) {
		snprintf(err, sizeof err, "unknown admin operation \"%.*s\" (operations: pause, "
			"resume, claim, reload)", (int)CS_MIN(a.op_len, 32u), a.op);
		send_error(c, f->reqid, CS_ERR_BAD_PARAMS, err);
		return;
	}
	if (reload) {
		if (a.query != NULL) {
			send_error(c, f->reqid, CS_ERR_BAD_PARAMS, "reload takes no \"q\"");
			return;
		}
		if (s->reload == NULL) {
			send_error(c, f->reqid, CS_ERR_BAD_PARAMS, "reload is not available here");
			return;
		}
		creq *r = creq_new(c, f->reqid, CS_OP_ADMIN);
		if (r == NULL) {
			send_error(c, f->reqid, CS_ERR_INTERNAL, "out of memory");
			return;
		}
		if (s->reload(s->reload_arg, on_admin_reloaded, r, err, sizeof err) != 0) {
			free(r);
			send_error(c, f->reqid, CS_ERR_OVERLOADED, err);
			request_done(c);
		}
		return;
	}
	if (a.query == NULL) {
		send_error(c, f->reqid, CS_ERR_BAD_PARAMS, pause ? "pause needs \"q\", the query's name"
			: claim ? "claim needs \"q\", the query's name"
			: "resume needs \"q\", the query's name");
		return;
	}
	bool changed = false;
	if (claim) {
		if (cs_engine_claim(s->engine, a.query, a.query_len, &changed) != 0) {
			snprintf(err, sizeof err, "unknown query \"%.*s\"", (int)a.query_len, a.query);
			send_error(c, f->reqid, CS_ERR_UNKNOWN_QUERY, err);
			return;
		}
		cs_show_cell cells[] = {
			{ "query", { .type = CS_V_STR, .u.s = { a.query, a.query_len } } },
			{ "claimed", { .type = CS_V_BOOL, .u.b = changed } },
		};
		admin_reply(c, f->reqid, cells, 2);
		return;
	}
	if (cs_engine_pause(s->engine, a.query, a.query_len, pause, &changed) != 0) {
		snprintf(err, sizeof err, "unknown query \"%.*s\"", (int)a.query_len, a.query);
		send_error(c, f->reqid, CS_ERR_UNKNOWN_QUERY, err);
		return;
	}
	cs_show_cell cells[] = {
		{ "query", { .type = CS_V_STR, .u.s = { a.query, a.query_len } } },
		{ "paused", { .type = CS_V_BOOL, .u.b = pause } },
		{ "changed", { .type = CS_V_BOOL, .u.b = changed } },
	};
	admin_reply(c, f->reqid, cells, 3);
}

static void handle_frame(client *c, const cs_frame *f)
{
	cs_server *s = c->srv;
	const cs_config *cfg = cfg_of(s);
	char err[256];
	int rc, role;
	if (f->opcode < CS_ARRAY_LEN(s->stats.frames))
		s->stats.frames[f->opcode]++;
	if (!cs_op_is_request(f->opcode)) {
		char d[32];
		snprintf(d, sizeof d, "opcode 0x%02x", f->opcode);
		protocol_error(c, f->reqid, "unknown opcode: %s", d);
		return;
	}
	if (f->opcode == CS_OP_HELLO) {
		cs_hello_req h;
		rc = cs_proto_decode_hello(f->body, f->body_len, &h, err, sizeof err);
		if (decode_failed(c, f->reqid, rc, err)) {
			/* answered */
		} else if (h.version != CS_PROTO_VERSION) {
			snprintf(err, sizeof err, "protocol version %u not supported (server speaks %d)",
				h.version, CS_PROTO_VERSION);
			protocol_error(c, f->reqid, "%s", err);
		} else if ((role = hello_role(cfg, &h)) == 0) {
			auth_failed(c, f->reqid);
		} else {
			c->authed = true;
			c->admin = role == 2;
			c->hello_epoch = token_epoch(s);
			cs_buf_reset(&s->out);
			(void)cs_proto_write_hello_reply(&s->out, f->reqid, CS_PROTO_VERSION, SERVER_NAME,
				cfg->max_frame);
			client_send(c, &s->out);
		}
		return;
	}
	/* PING needs no HELLO (PROTOCOL.md section 2): it tells nothing but that a server is
	 * there, which the TCP handshake already did; a load balancer's probe needs no token. */
	if (!c->authed && cfg->auth_token != NULL && f->opcode != CS_OP_PING) {
		send_error(c, f->reqid, CS_ERR_AUTH, "HELLO with the auth token first");
		return;
	}
	/* Admin rights are from a HELLO under the tokens in force now: a reload that set or
	 * rotated a token voids them (token_epoch). */
	if (op_is_admin(f->opcode) && cfg->admin_token != NULL &&
		!(c->authed && c->admin && c->hello_epoch == token_epoch(s))) {
		snprintf(err, sizeof err, "%s is an admin request: HELLO with the admin token first",
			cs_op_name(f->opcode));
		send_error(c, f->reqid, CS_ERR_AUTH, err);
		return;
	}
	if (s->draining) {
		send_error(c, f->reqid, CS_ERR_SHUTTING_DOWN, "shutting down");
		return;
	}
	switch (f->opcode) {
	case CS_OP_PING:
	case CS_OP_STATS:
		if (cs_proto_decode_empty(f->body, f->body_len) != 0) {
			protocol_error(c, f->reqid, "%s", "PING/STATS body must be nil or an empty map");
			return;
		}
		cs_buf_reset(&s->out);
		if (f->opcode == CS_OP_PING) {
			(void)cs_proto_write_nil_reply(&s->out, f->reqid, CS_OP_PING);
		} else {
			cs_stat st[64];
			uint32_t n = cs_engine_stats_list(s->engine, st, 60);
			st[n++] = (cs_stat){ .name = "clients", .name_len = 7, .i = (int64_t)s->stats.clients };
			st[n++] = (cs_stat){ .name = "connections", .name_len = 11,
				.i = (int64_t)s->stats.connections };
			(void)cs_proto_write_stats(&s->out, f->reqid, st, n);
		}
		client_send(c, &s->out);
		return;
	case CS_OP_GET:
	case CS_OP_REFRESH: {
		cs_get_req *g = &s->mget_scratch[0];
		rc = cs_proto_decode_get(f->body, f->body_len, g, err, sizeof err);
		if (decode_failed(c, f->reqid, rc, err) ||
			shard_token_refused(c, f->reqid, g, 1, false))
			return;
		creq *r = creq_new(c, f->reqid, f->opcode);
		if (r == NULL) {
			send_error(c, f->reqid, CS_ERR_INTERNAL, "out of memory");
			return;
		}
		cs_engine_get(s->engine, f->opcode, g, on_get_done, r);
		return;
	}
	case CS_OP_MGET: {
		uint32_t n = 0;
		rc = cs_proto_decode_mget(f->body, f->body_len, s->mget_scratch, CS_PROTO_MAX_MGET, &n,
			err, sizeof err);
		if (decode_failed(c, f->reqid, rc, err) ||
			shard_token_refused(c, f->reqid, s->mget_scratch, n, true))
			return;
		/* one block: the MGET, its items, their slots */
		mget *m = calloc(1, sizeof *m + n * (sizeof *m->items + sizeof *m->slots));
		if (m == NULL) {
			send_error(c, f->reqid, CS_ERR_INTERNAL, "out of memory");
			return;
		}
		m->items = (mitem *)(void *)(m + 1);
		m->slots = (mslot *)(void *)(m->items + n);
		cs_buf_init(&m->out, MGET_REPLY_MAX + 4096);
		m->c = c;
		m->reqid = f->reqid;
		m->n = n;
		m->pending = n + 1;
		c->inflight++;
		s->stats.inflight++;
		void *privs[CS_PROTO_MAX_MGET];
		for (uint32_t i = 0; i < n; i++) {
			m->slots[i] = (mslot){ .m = m, .index = i };
			privs[i] = &m->slots[i];
		}
		cs_engine_mget(s->engine, s->mget_scratch, n, on_mget_item, privs);
		mget_release(m); /* the guard */
		return;
	}
	case CS_OP_SHOW:
		handle_show(c, f);
		return;
	case CS_OP_ADMIN:
		handle_admin(c, f);
		return;
	case CS_OP_INVALIDATE: {
		cs_inval_req iv;
		rc = cs_proto_decode_inval(f->body, f->body_len, &iv, err, sizeof err);
		if (decode_failed(c, f->reqid, rc, err))
			return;
		creq *r = creq_new(c, f->reqid, iv.has_params ? 0 : 1);
		if (r == NULL) {
			send_error(c, f->reqid, CS_ERR_INTERNAL, "out of memory");
			return;
		}
		cs_engine_invalidate(s->engine, &iv, on_inval_done, r);
		return;
	}
	default:
		protocol_error(c, f->reqid, "%s", "unexpected opcode");
	}
}

/* ---- Socket events ---------------------------------------------------------------------- */

/* Handles the frames of c's input until they run out, the client pauses or is closed: the
 * n bytes at p when p is set (the server's read scratch; c->in is empty then, and whatever
 * is left of them moves to c->in at the end, since the next read reuses the scratch), else
 * what c->in holds. */
static void read_frames(client *c, const uint8_t *p, size_t n)
{
	cs_server *s = c->srv;
	struct evbuffer *in = c->in;
	size_t off = 0;		/* scratch bytes handled */
	bool consumed = false; /* a frame was handled: what is left begins a new one */
	while (c->fd >= 0 && !c->close_on_flush) {
		const cs_config *cfg = cfg_of(s); /* per frame: a frame may end in a reload */
		if (c->inflight >= cfg->max_inflight || client_queued(c) > cfg->client_output_soft) {
			client_pause(c, true); /* resumed by request_done / output_drained */
			partial_unlink(c);     /* not read: any wait now is ours, not the client's */
			break;
		}
		size_t avail = p ? n - off : evbuffer_get_length(in);
		if (avail < CS_PROTO_HDR) {
			if (avail == 0)
				partial_unlink(c);
			else
				partial_mark(c, consumed);
			break;
		}
		uint8_t hdr[CS_PROTO_HDR];
		if (p)
			memcpy(hdr, p + off, CS_PROTO_HDR);
		else
			evbuffer_copyout(in, hdr, CS_PROTO_HDR);
		cs_frame f;
		if (cs_proto_parse_header(hdr, cfg->max_frame, &f) != 0) {
			char d[96];
			snprintf(d, sizeof d, "bad frame header (version %u, flags %u, length %u; max %u)",
				hdr[4], (unsigned)(hdr[6] << 8 | hdr[7]),
				(unsigned)((uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
					(uint32_t)hdr[2] << 8 | hdr[3]),
				cfg->max_frame);
			protocol_error(c, f.reqid, "%s", d);
			return; /* nothing more is read from it */
		}
		size_t need = CS_PROTO_HDR + (size_t)f.body_len;
		if (avail < need) {
			partial_mark(c, consumed); /* length checked against max_frame: bounded */
			break;
		}
		const uint8_t *fp = p ? p + off : evbuffer_pullup(in, (ssize_t)need);
		if (fp == NULL) {
			client_close(c);
			return;
		}
		f.body = fp + CS_PROTO_HDR;
		c->more_frames = avail - need >= CS_PROTO_HDR;
		s->handling++;
		handle_frame(c, &f);
		s->handling--;
		c->more_frames = false;
		/* handle_frame may have closed the connection; the engine copied what it kept. */
		if (c->fd < 0)
			return;
		if (p)
			off += need;
		else
			evbuffer_drain(in, need);
		consumed = true;
	}
	/* at most READ_CHUNK bytes: a partial frame, or frames not read while paused */
	if (p && off < n && c->fd >= 0 && evbuffer_add(in, p + off, n - off) != 0)
		client_close(c);
}

static void on_frame_sweep(evutil_socket_t fd, short what, void *arg)
{
	cs_server *s = arg;
	int64_t timeout = cfg_of(s)->frame_timeout_ms;
	uint64_t now = cs_now_us();
	client *next;
	for (client *c = s->partial.pnext; c != &s->partial; c = next) {
		next = c->pnext;
		if (timeout <= 0) {
			partial_unlink(c); /* frame_timeout turned off by a reload */
		} else if (now - c->partial_since_us >= (uint64_t)timeout * 1000u) {
			s->stats.frame_timeout_closed++;
			cs_debug("closing client: a frame begun %llu ms ago is still incomplete",
				(unsigned long long)((now - c->partial_since_us) / 1000u));
			client_close(c);
		}
	}
	if (s->partial.pnext != &s->partial) {
		struct timeval tv = cs_tv_ms(CS_MIN(FRAME_SWEEP_MS, CS_MAX(timeout / 4, 10)));
		evtimer_add(s->frame_sweep, &tv);
	}
}

/* After frames were handled: writes the replies they produced together (one writev; the
 * in_read replies of client_send), and goes on with the frames c->in holds while that
 * write lifts an output pause (the condition of output_drained). Each turn handles a frame
 * or ends, so it ends. Called with in_read set. */
static void serve_rest(client *c)
{
	while (c->fd >= 0) {
		if (c->want_write || !client_write_out(c))
			break;
		const cs_config *cfg = cfg_of(c->srv);
		if (!c->paused || c->inflight >= cfg->max_inflight ||
			evbuffer_get_length(c->out) > c->low_water ||
			client_queued(c) > cfg->client_output_soft)
			break;
		client_pause(c, false);
		read_frames(c, NULL, 0);
	}
}

/* Handles the frames buffered in c->in (reading resumed) and writes their replies. Closing
 * is fine meanwhile; freeing waits for the end (in_read). */
static void client_serve(client *c)
{
	c->in_read = true;
	read_frames(c, NULL, 0);
	serve_rest(c);
	c->in_read = false;
	client_free_if_done(c); /* closed while reading: freed only now */
}

/* One read of at most READ_CHUNK bytes, no FIONREAD (see "The hop"): into the server's
 * scratch when c->in is empty (*scratch set: read_frames handles the frames in place, and
 * nothing is allocated), else into c->in's free space (a partial frame goes on). Returns the
 * bytes read, 0 when there were none (EAGAIN), -1 when the client was closed (EOF or error;
 * in-flight requests finish into the void). */
static ssize_t client_fill(client *c, const uint8_t **scratch)
{
	struct evbuffer_iovec v;
	bool to_scratch = evbuffer_get_length(c->in) == 0;
	*scratch = NULL;
	if (to_scratch)
		v.iov_base = c->srv->rbuf;
	else if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) != 1) {
		client_close(c);
		return -1;
	}
	ssize_t n = read(c->fd, v.iov_base, READ_CHUNK);
	if (n < 0 && !io_failed())
		return 0;
	if (n <= 0) {
		client_close(c);
		return -1;
	}
	if (to_scratch) {
		*scratch = c->srv->rbuf;
		return n;
	}
	v.iov_len = (size_t)n;
	if (evbuffer_commit_space(c->in, &v, 1) != 0) {
		client_close(c);
		return -1;
	}
	return n;
}

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
	client *c = arg;
	if (what & EV_TIMEOUT) {
		/* idle_timeout without a byte: an idle client is closed; one waiting for answers is
		 * busy, not idle, and libevent has re-armed the timeout (a persistent event) */
		if (c->inflight == 0) {
			c->srv->stats.idle_closed++;
			client_close(c);
		}
		return;
	}
	c->in_read = true;
	/* again while a read filled its chunk (READ_CHUNKS at most: the others' turn) and the
	 * client is still read */
	for (int i = 0; i < READ_CHUNKS; i++) {
		const uint8_t *scratch;
		ssize_t n = client_fill(c, &scratch);
		if (n <= 0)
			break;
		read_frames(c, scratch, scratch ? (size_t)n : 0);
		if (n < READ_CHUNK || c->fd < 0 || c->paused || c->close_on_flush)
			break;
	}
	serve_rest(c);
	c->in_read = false;
	client_free_if_done(c); /* closed while reading: freed only now */
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	client *c = arg;
	if (!(what & EV_WRITE)) {
		/* send_timeout: the socket took nothing of its output for that long - a client
		 * that does not read holds its output and a max_clients slot for nothing */
		c->srv->stats.send_timeout_closed++;
		cs_debug("closing client: %zu bytes of output not taken for send_timeout",
			client_queued(c));
		client_close(c);
		return;
	}
	if (client_write_out(c))
		output_drained(c);
}

static void reject(evutil_socket_t fd, uint32_t code, const char *msg)
{
	cs_buf b;
	cs_buf_init(&b, 4096);
	if (cs_proto_write_error(&b, 0, (int)code, "%s", msg) == 0)
		(void)!send(fd, b.data, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	cs_buf_free(&b);
	evutil_closesocket(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
	void *arg)
{
	cs_server *s = arg;
	const cs_config *cfg = cfg_of(s);
	if (s->draining) {
		reject(fd, CS_ERR_SHUTTING_DOWN, "shutting down");
		return;
	}
	int max = cfg->max_clients;
	if (s->client_cap > 0 && s->client_cap < max)
		max = s->client_cap;
	if ((int)s->stats.clients >= max) {
		s->stats.rejected++;
		reject(fd, CS_ERR_OVERLOADED, "too many clients");
		return;
	}
	client *c = calloc(1, sizeof *c);
	if (c != NULL) {
		c->in = evbuffer_new();
		c->out = evbuffer_new();
		c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_client_read, c);
		c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, on_client_write, c);
	}
	if (c == NULL || c->in == NULL || c->out == NULL || c->rev == NULL || c->wev == NULL) {
		if (c != NULL) {
			if (c->in)
				evbuffer_free(c->in);
			if (c->out)
				evbuffer_free(c->out);
			if (c->rev)
				event_free(c->rev);
			if (c->wev)
				event_free(c->wev);
			free(c);
		}
		evutil_closesocket(fd);
		return;
	}
	if (sa->sa_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	c->srv = s;
	c->fd = fd;
	c->idle_ms = cfg->idle_timeout_ms;
	c->send_ms = cfg->send_timeout_ms;
	c->low_water = (size_t)(cfg->client_output_soft / 4);
	c->authed = cfg->auth_token == NULL;
	c->id = s->stats.connections + 1;
	c->since_us = cs_now_us();
	c->next = s->head.next;
	c->prev = &s->head;
	s->head.next->prev = c;
	s->head.next = c;
	s->stats.clients++;
	s->stats.connections++;
	read_interest(c);
}

/* Applies accept_on and accept_paused to the listeners. */
static void listeners_apply(cs_server *s)
{
	bool on = s->accept_on && !s->accept_paused && !s->draining;
	if (s->tcp)
		on ? evconnlistener_enable(s->tcp) : evconnlistener_disable(s->tcp);
	if (s->unix_l)
		on ? evconnlistener_enable(s->unix_l) : evconnlistener_disable(s->unix_l);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	cs_server *s = arg;
	s->accept_paused = false;
	listeners_apply(s);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	cs_server *s = arg;
	int err = EVUTIL_SOCKET_ERROR();
	s->stats.accept_errors++;
	bool resource = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
	if (resource && s->accept_timer && !s->accept_paused) {
		struct timeval tv = cs_tv_ms(ACCEPT_PAUSE_MS);
		s->accept_paused = true;
		s->stats.accept_pauses++;
		listeners_apply(s);
		evtimer_add(s->accept_timer, &tv);
	}
	uint64_t suppressed;
	if (cs_ratelimit_pass(&s->accept_log, ACCEPT_LOG_INTERVAL_US, &suppressed))
		cs_warn("accept: %s%s (%llu more accept errors not logged since the last line)",
			evutil_socket_error_to_string(err),
			resource ? ": pausing the listeners" : "", (unsigned long long)suppressed);
}

/* ---- Server ----------------------------------------------------------------------------- */

static struct evconnlistener *listen_tcp(cs_server *s, const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(err, errlen, "[cachesvc] listen: bad address \"%s\" (want host:port)", addr);
		return NULL;
	}
	/* SO_REUSEPORT only when asked (as PgBouncer's so_reuseport): on by default, a second
	 * daemon started by mistake on the same port would silently take half the clients. */
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
	if (cfg_of(s)->so_reuseport)
		flags |= LEV_OPT_REUSEABLE_PORT;
	struct evconnlistener *l = evconnlistener_new_bind(s->base, on_accept, s, flags, 1024,
		(struct sockaddr *)&ss, sl);
	if (l == NULL) {
		int e = errno;
		snprintf(err, errlen, "[cachesvc] listen: cannot listen on %s: %s%s", addr, strerror(e),
			e == EADDRINUSE ? (cfg_of(s)->so_reuseport
						  ? " (by a process without SO_REUSEPORT, or of another user)"
						  : " (another process holds the port; so_reuseport = on lets "
						    "several cachesvc processes share it)")
					: "");
		return NULL;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	return l;
}

static struct evconnlistener *listen_unix(cs_server *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "[cachesvc] unix_socket: path too long");
		return NULL;
	}
	strcpy(sun.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a stale socket from an earlier run */
	struct evconnlistener *l = evconnlistener_new_bind(s->base, on_accept, s,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, (struct sockaddr *)&sun, sizeof sun);
	if (l == NULL) {
		snprintf(err, errlen, "[cachesvc] unix_socket: cannot listen on %s: %s", path, strerror(errno));
		return NULL;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	return l;
}

cs_server *cs_server_new(struct event_base *base, cs_engine *engine, char *err, size_t errlen)
{
	cs_server *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	const cs_config *cfg = cs_engine_config(engine);
	s->base = base;
	s->engine = engine;
	s->head.next = s->head.prev = &s->head;
	s->accept_on = true;
	s->partial.pnext = s->partial.pprev = &s->partial;
	s->flushq.fnext = s->flushq.fprev = &s->flushq;
	s->accept_timer = evtimer_new(base, on_accept_resume, s);
	s->frame_sweep = evtimer_new(base, on_frame_sweep, s);
	s->flush_ev = event_new(base, -1, 0, on_flush, s);
	if (s->accept_timer == NULL || s->frame_sweep == NULL || s->flush_ev == NULL) {
		snprintf(err, errlen, "out of memory");
		if (s->accept_timer)
			event_free(s->accept_timer);
		if (s->frame_sweep)
			event_free(s->frame_sweep);
		if (s->flush_ev)
			event_free(s->flush_ev);
		free(s);
		return NULL;
	}
	cs_buf_init(&s->out, (64u << 20) + 4096);
	if (cfg->listen && (s->tcp = listen_tcp(s, cfg->listen, err, errlen)) == NULL) {
		cs_server_free(s);
		return NULL;
	}
	if (cfg->unix_socket) {
		if ((s->unix_l = listen_unix(s, cfg->unix_socket, err, errlen)) == NULL) {
			cs_server_free(s);
			return NULL;
		}
		s->unix_path = strdup(cfg->unix_socket);
	}
	return s;
}

void cs_server_accept(cs_server *s, bool on)
{
	s->accept_on = on;
	listeners_apply(s);
}

void cs_server_set_client_cap(cs_server *s, int limit)
{
	s->client_cap = limit;
}

void cs_server_set_reload(cs_server *s, cs_server_reload_fn *fn, void *arg)
{
	s->reload = fn;
	s->reload_arg = arg;
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	cs_server *s = arg;
	if (s->drain_done) {
		cs_warn("shutdown: %llu requests still in flight after the drain timeout",
			(unsigned long long)s->stats.inflight);
		void (*done)(void *) = s->drain_done;
		s->drain_done = NULL;
		done(s->drain_priv);
	}
}

void cs_server_drain(cs_server *s, int64_t timeout_ms, void (*done)(void *), void *priv)
{
	s->draining = true;
	s->drain_done = done;
	s->drain_priv = priv;
	if (s->tcp) {
		evconnlistener_free(s->tcp);
		s->tcp = NULL;
	}
	if (s->unix_l) {
		evconnlistener_free(s->unix_l);
		s->unix_l = NULL;
	}
	s->drain_timer = evtimer_new(s->base, on_drain_timeout, s);
	struct timeval tv = cs_tv_ms(timeout_ms);
	if (s->drain_timer)
		evtimer_add(s->drain_timer, &tv);
	maybe_drained(s);
}

/* The event loop has stopped: writes what each client's output holds (the answers of
 * requests the engine failed at shutdown) straight to its socket, waiting for a slow
 * reader at most FINAL_FLUSH_MS in all. */
static void flush_all(cs_server *s)
{
	uint64_t deadline = cs_now_us() + FINAL_FLUSH_MS * 1000u;
	for (client *c = s->head.next; c != &s->head; c = c->next) {
		struct evbuffer *out = c->out;
		evutil_socket_t fd = c->fd;
		while (fd >= 0 && evbuffer_get_length(out) > 0) {
			int n = evbuffer_write(out, fd);
			if (n > 0)
				continue;
			uint64_t now = cs_now_us();
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
				now >= deadline)
				break;
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			(void)poll(&p, 1, (int)((deadline - now) / 1000u) + 1);
		}
	}
}

void cs_server_free(cs_server *s)
{
	if (s == NULL)
		return;
	flush_all(s);
	while (s->head.next != &s->head)
		client_close(s->head.next);
	if (s->tcp)
		evconnlistener_free(s->tcp);
	if (s->unix_l)
		evconnlistener_free(s->unix_l);
	if (s->unix_path) {
		unlink(s->unix_path);
		free(s->unix_path);
	}
	if (s->drain_timer)
		event_free(s->drain_timer);
	if (s->flush_timer)
		event_free(s->flush_timer);
	if (s->accept_timer)
		event_free(s->accept_timer);
	if (s->frame_sweep)
		event_free(s->frame_sweep);
	if (s->flush_ev)
		event_free(s->flush_ev);
	cs_buf_free(&s->out);
	free(s->seen_auth);
	free(s->seen_admin);
	free(s);
}

const cs_server_stats *cs_server_get_stats(const cs_server *s)
{
	return &s->stats;
}

void cs_server_metrics(const cs_server *s, cs_metrics *m)
{
	const cs_server_stats *st = &s->stats;
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_clients", "Connected clients", st->clients, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_connections_total", "Accepted connections",
		st->connections, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_connections_rejected_total",
		"Connections refused at max_clients (or its cap by the open-file limit)",
		st->rejected, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_accept_errors_total",
		"accept() failures on the client listeners", st->accept_errors, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_accept_pauses_total",
		"Listener pauses after EMFILE/ENFILE/ENOBUFS/ENOMEM", st->accept_pauses, NULL);
	cs_m(m, CS_M_GAUGE, "cachesvc_max_clients_effective",
		"Client cap in force: max_clients, or lower when the descriptor limit is lower",
		s->client_cap > 0 && s->client_cap < cfg_of(s)->max_clients ? s->client_cap
									   : cfg_of(s)->max_clients,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_protocol_errors_total",
		"Clients closed for a protocol error", st->protocol_errors, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_auth_failures_total",
		"HELLOs with a missing or wrong token", st->auth_failures, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_idle_closed_total",
		"Connections closed by the idle timeout",
		st->idle_closed, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_send_timeout_closed_total",
		"Connections closed: their output not taken by the socket for send_timeout",
		st->send_timeout_closed, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_frame_timeout_closed_total",
		"Clients closed for a frame not completed within frame_timeout",
		st->frame_timeout_closed, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_output_limit_closed_total",
		"Clients closed past client_output_hard_limit", st->output_limit_closed, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_inflight", "Requests in flight", st->inflight, NULL);
	for (uint8_t op = CS_OP_HELLO; op <= CS_OP_ADMIN; op++)
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_frames_total", "Requests by opcode",
			st->frames[op],
			"op", cs_op_name(op), NULL);
}
