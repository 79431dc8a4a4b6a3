/* admin.h - the admin HTTP endpoint (libevent evhttp): /metrics (Prometheus) and /healthz. */
#ifndef CS_ADMIN_H
#define CS_ADMIN_H

#include "engine.h"
#include "server.h"

struct event_base;
typedef struct cs_admin cs_admin;

/* Listens on addr ("host:port"). server may be NULL (library mode). NULL with err. */
cs_admin *cs_admin_new(struct event_base *base, const char *addr, cs_engine *engine,
	cs_server *server, char *err, size_t errlen) __attribute__((warn_unused_result));
void cs_admin_free(cs_admin *a);

#endif
