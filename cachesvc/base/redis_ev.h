/* redis_ev.h - hiredis's event hooks on libevent with a persistent read event and writes
 * batched once per loop pass (redis_ev.c says why). */
#ifndef CS_REDIS_EV_H
#define CS_REDIS_EV_H

struct event_base;
struct redisAsyncContext;

/* Attaches ac to base (instead of hiredis's redisLibeventAttach). REDIS_OK or REDIS_ERR. */
int cs_redis_ev_attach(struct redisAsyncContext *ac, struct event_base *base);

#endif
