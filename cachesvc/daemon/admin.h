/* admin.h - the admin HTTP endpoint (libevent evhttp): /metrics (Prometheus) and /healthz. */
#ifndef CS_ADMIN_H
#define CS_ADMIN_H

#include "engine.h"
#include "server.h"

struct event_base;
typedef struct cs_admin cs_admin;

/* Connections the admin endpoint serves at once. Its users are one or two Prometheus
 * servers and an operator's curl; past this the listener stops accepting (new ones wait in
 * the kernel backlog) until one closes, so a flood of admin connections cannot take the
 * file descriptors the clients and pools need. main.c reserves this many. */
#define CS_ADMIN_MAX_CONNS 16

/* Listens on addr ("host:port"). server may be NULL (library mode). NULL with err. */
cs_admin *cs_admin_new(struct event_base *base, const char *addr, cs_engine *engine,
	cs_server *server, char *err, size_t errlen) __attribute__((warn_unused_result));
void cs_admin_free(cs_admin *a);

#endif
