/* check.h - startup validation that needs the servers: every query's SQL prepares on a
 * replica with the declared parameter types, and Redis is configured the way the fence
 * needs. Blocking libpq/hiredis calls with timeouts: run only before the event loop
 * starts (daemon startup, cachesvc --check), never on it. */
#ifndef CS_CHECK_H
#define CS_CHECK_H

#include <stddef.h>

#include "config.h"

enum {
	CS_CHECK_OK = 0,
	CS_CHECK_INVALID = 1,	  /* the config is wrong: message in err */
	CS_CHECK_UNREACHABLE = 2, /* could not reach a server to check against */
};

/* Checks SQL and parameter types on the first reachable replica (else the primary).
 * Appends one line per problem to err ("[query x] params: ..."). */
int cs_check_queries(const cs_config *cfg, char *err, size_t errlen);

/* With fence on, Redis must not evict keys (fence.c (f)): maxmemory-policy noeviction. */
int cs_check_redis(const cs_config *cfg, char *err, size_t errlen);

#endif
