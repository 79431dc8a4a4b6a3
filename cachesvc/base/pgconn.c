/* pgconn.c - one non-blocking libpq connect on an event loop (lookup, PQconnectPoll, deadline). */
#include "pgconn.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"

static void on_socket(evutil_socket_t fd, short what, void *arg);

void cs_pgconn_msg(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "unknown error");
	size_t n = strlen(dst);
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
		dst[--n] = '\0';
}

static void unwait(cs_pgconn *pc)
{
	if (pc->ev_added) {
		event_del(&pc->ev);
		pc->ev_added = false;
	}
}

/* Waits for `what` on the connection's current socket (which may change between
 * PQconnectPoll calls: re-registered at every step). */
static void wait_socket(cs_pgconn *pc, short what)
{
	unwait(pc);
	event_assign(&pc->ev, pc->base, PQsocket(pc->conn), what, on_socket, pc);
	event_add(&pc->ev, NULL);
	pc->ev_added = true;
}

void cs_pgconn_cancel(cs_pgconn *pc)
{
	unwait(pc);
	if (pc->timer_added) {
		evtimer_del(&pc->timer);
		pc->timer_added = false;
	}
	if (pc->dns) {
		pc->lookup->cancel(pc->dns);
		pc->dns = NULL;
	}
	if (pc->conn) {
		PQfinish(pc->conn);
		pc->conn = NULL;
	}
}

/* Ends the connect: pc is idle before the callback runs (it may start the next one). The
 * message is copied first: it may live in the PGconn being finished. */
static void finish(cs_pgconn *pc, cs_pgconn_status st, const char *why)
{
	char msg[512];
	cs_pgconn_msg(msg, sizeof msg, why);
	PGconn *conn = NULL;
	if (st == CS_PGCONN_READY) {
		conn = pc->conn; /* handed over */
		pc->conn = NULL;
	}
	cs_pgconn_cancel(pc);
	pc->done(pc, st, conn, msg, pc->priv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	cs_pgconn *pc = arg;
	pc->timer_added = false;
	finish(pc, CS_PGCONN_TIMEOUT,
		pc->dns ? "resolving the host name timed out" : "connect timed out");
}

static void arm(cs_pgconn *pc, int64_t timeout_ms)
{
	if (timeout_ms <= 0)
		return;
	struct timeval tv = cs_tv_ms(timeout_ms);
	evtimer_add(&pc->timer, &tv);
	pc->timer_added = true;
}

void cs_pgconn_init(cs_pgconn *pc, struct event_base *base, cs_pgconn_done_cb *done,
	cs_pgconn_addrs_cb *addrs, void *priv)
{
	memset(pc, 0, sizeof *pc);
	pc->base = base;
	pc->done = done;
	pc->addrs = addrs;
	pc->priv = priv;
	evtimer_assign(&pc->timer, base, on_deadline, pc);
}

static void on_lookup(void *priv, int err, const char *addrs, const char *msg)
{
	cs_pgconn *pc = priv;
	pc->dns = NULL;
	if (err != 0) {
		/* a name that does not resolve (in time) is a connect failure */
		finish(pc, CS_PGCONN_FAILED, msg);
		return;
	}
	pc->addrs(pc, addrs, pc->priv);
}

int cs_pgconn_resolve(cs_pgconn *pc, const cs_pgconn_lookup *lookup, const char *conninfo,
	int64_t timeout_ms)
{
	cs_pgconn_cancel(pc);
	pc->lookup = lookup;
	pc->dns = lookup->start(lookup->ctx, conninfo, on_lookup, pc);
	if (pc->dns == NULL)
		return -1;
	arm(pc, timeout_ms);
	return 0;
}

int cs_pgconn_connect(cs_pgconn *pc, const char *const *kw, const char *const *val,
	const char *notice_name, int64_t timeout_ms, char *err, size_t errlen)
{
	unwait(pc);
	if (pc->conn) {
		PQfinish(pc->conn);
		pc->conn = NULL;
	}
	pc->conn = PQconnectStartParams(kw, val, 1);
	if (pc->conn)
		PQsetNoticeProcessor(pc->conn, cs_log_pg_notice, (void *)notice_name); /* not libpq's raw stderr */
	if (pc->conn == NULL || PQstatus(pc->conn) == CONNECTION_BAD) {
		cs_pgconn_msg(err, errlen, pc->conn ? PQerrorMessage(pc->conn) : "out of memory");
		cs_pgconn_cancel(pc);
		return -1;
	}
	if (timeout_ms > 0) {
		if (pc->timer_added)
			evtimer_del(&pc->timer);
		arm(pc, timeout_ms);
	}
	wait_socket(pc, EV_WRITE);
	return 0;
}

bool cs_pgconn_busy(const cs_pgconn *pc)
{
	return pc->dns != NULL || pc->conn != NULL;
}

bool cs_pgconn_resolving(const cs_pgconn *pc)
{
	return pc->dns != NULL;
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	cs_pgconn *pc = arg;
	pc->ev_added = false; /* non-persistent: fired means removed */
	switch (PQconnectPoll(pc->conn)) {
	case PGRES_POLLING_READING:
		wait_socket(pc, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		wait_socket(pc, EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(pc->conn, 1) != 0) {
			finish(pc, CS_PGCONN_FAILED, PQerrorMessage(pc->conn));
			return;
		}
		finish(pc, CS_PGCONN_READY, "");
		return;
	default:
		finish(pc, CS_PGCONN_FAILED, PQerrorMessage(pc->conn));
		return;
	}
}
