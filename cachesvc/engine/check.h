/* check.h - startup validation that needs the servers: every query's SQL prepares on a
 * replica with the declared parameter types, and Redis is configured the way the fence
 * needs. Blocking libpq/hiredis calls with timeouts: run only before the event loop
 * starts (daemon startup, cachesvc --check), never on it. */
#ifndef CS_CHECK_H
#define CS_CHECK_H

#include <stdbool.h>
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

/* With [invalidator] enabled, on the primary: the publication exists (created when missing
 * and create_publication is on) and holds every invalidate_on table, and every key column
 * of a keyed rule is covered by the table's replica identity (a column outside the
 * identity needs REPLICA IDENTITY FULL, or its old value is never sent). Each problem is
 * one line naming the table, the column and the statement that fixes it. With create false
 * (cachesvc --check) a missing publication is reported on stdout, never created. */
int cs_check_invalidation(const cs_config *cfg, bool create, char *err, size_t errlen);

/* Every configured server answers: the primary and each replica (connect + SELECT 1) and
 * Redis (PING, with its password). One line per server that does not, naming it.
 * CS_CHECK_UNREACHABLE when any does not (cachesvc --check fails then). */
int cs_check_servers(const cs_config *cfg, char *err, size_t errlen);

/* True for the maxmemory-policy values fences are safe under (fence.c (i)): noeviction and
 * volatile-* (the consistency keys have no TTL); false for allkeys-* and anything unknown. */
bool cs_check_policy_ok(const char *policy);

/* With fence on, Redis must evict no consistency key (fence.c (i)): maxmemory-policy
 * noeviction or volatile-*. */
int cs_check_redis(const cs_config *cfg, char *err, size_t errlen);

/* Sets each query's reads_covered (config.h): the tables its SQL reads, found through a
 * temporary view's dependencies in a rolled-back transaction on the primary, are all named
 * in invalidate_on. Blocking (startup only). CS_CHECK_UNREACHABLE leaves them false. */
int cs_check_ryw(cs_config *cfg);

#endif
