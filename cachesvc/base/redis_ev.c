/* redis_ev.c - hiredis's event hooks on libevent, without an epoll_ctl per command.
 *
 * hiredis 0.14's own libevent adapter uses one-shot events: every readable socket costs an
 * event_del and an event_add (two epoll_ctl), and every command queued on an idle connection
 * arms write interest that is disarmed once written (two more). Here:
 *  - the read event is persistent: armed once when hiredis first asks, until it says stop;
 *  - a write on a connected socket is not waited for: addWrite activates a deferred event
 *    (no syscall) that runs later in the same loop pass, after the callbacks already due,
 *    and writes everything queued by then at once (a command queued after it starts another
 *    one, in the same pass). Only when the socket
 *    does not take it all (hiredis asks again from inside that write) is write interest
 *    armed, until hiredis says the buffer is empty;
 *  - while connecting, write interest is armed as usual: writability is how a non-blocking
 *    connect completes.
 * hiredis may free the context (and call cleanup) from inside a read or write; the deferred
 * write therefore marks the hooks busy and cleanup leaves the freeing to it. */
#include "redis_ev.h"

#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

typedef struct hooks {
	redisAsyncContext *ac;
	struct event *rev, *wev, *flush;
	bool rev_on, wev_on, flush_on;
	bool in_flush; /* the deferred write runs: a further addWrite waits for the socket */
	bool dead;     /* cleanup ran inside the deferred write: free when it returns */
} hooks;

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	hooks *h = arg;
	redisAsyncHandleRead(h->ac);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	hooks *h = arg;
	redisAsyncHandleWrite(h->ac);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	hooks *h = arg;
	h->flush_on = false;
	if (h->wev_on)
		return; /* waiting for the socket: the write event writes */
	h->in_flush = true;
	redisAsyncHandleWrite(h->ac);
	h->in_flush = false;
	if (h->dead)
		free(h);
}

static void add_read(void *p)
{
	hooks *h = p;
	if (!h->rev_on && event_add(h->rev, NULL) == 0)
		h->rev_on = true;
}

static void del_read(void *p)
{
	hooks *h = p;
	if (h->rev_on) {
		event_del(h->rev);
		h->rev_on = false;
	}
}

static void add_write(void *p)
{
	hooks *h = p;
	if (h->wev_on)
		return;
	if (h->in_flush || !(h->ac->c.flags & REDIS_CONNECTED)) {
		if (event_add(h->wev, NULL) == 0)
			h->wev_on = true;
		return;
	}
	if (!h->flush_on) {
		h->flush_on = true;
		event_active(h->flush, EV_WRITE, 1);
	}
}

static void del_write(void *p)
{
	hooks *h = p;
	if (h->wev_on) {
		event_del(h->wev);
		h->wev_on = false;
	}
}

static void cleanup(void *p)
{
	hooks *h = p;
	/* hiredis may still call onDisconnect after this: nothing may reach the hooks */
	h->ac->ev.addRead = h->ac->ev.delRead = NULL;
	h->ac->ev.addWrite = h->ac->ev.delWrite = NULL;
	event_free(h->rev);
	event_free(h->wev);
	event_free(h->flush); /* a pending deferred write is cancelled */
	if (h->in_flush)
		h->dead = true;
	else
		free(h);
}

int cs_redis_ev_attach(redisAsyncContext *ac, struct event_base *base)
{
	if (ac->ev.data != NULL)
		return REDIS_ERR;
	hooks *h = calloc(1, sizeof *h);
	if (h == NULL)
		return REDIS_ERR;
	h->ac = ac;
	h->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_read, h);
	h->wev = event_new(base, ac->c.fd, EV_WRITE | EV_PERSIST, on_write, h);
	h->flush = event_new(base, -1, 0, on_flush, h);
	if (h->rev == NULL || h->wev == NULL || h->flush == NULL) {
		if (h->rev)
			event_free(h->rev);
		if (h->wev)
			event_free(h->wev);
		if (h->flush)
			event_free(h->flush);
		free(h);
		return REDIS_ERR;
	}
	ac->ev.addRead = add_read;
	ac->ev.delRead = del_read;
	ac->ev.addWrite = add_write;
	ac->ev.delWrite = del_write;
	ac->ev.cleanup = cleanup;
	ac->ev.data = h;
	/* as hiredis's adapter: wait for the connect (writable) and for anything to read */
	add_read(h);
	add_write(h);
	return REDIS_OK;
}
