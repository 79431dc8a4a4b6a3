/* resolve.h - host names resolved on the event loop (libevent's evdns), never with a blocking
 * getaddrinfo: libpq resolves a conninfo's host names inside PQconnectStart/PQconnectPoll and
 * hiredis inside redisAsyncConnect, both blocking the loop for as long as DNS takes. Callers
 * resolve first and hand libpq `hostaddr=` (keeping `host=` for TLS verification, .pgpass
 * and messages) or hiredis the numeric address.
 *
 * Numeric addresses and unix-socket paths (a host starting with '/' or '@') need no lookup;
 * names are looked up in the hosts file, then the name servers (a name resolving to several
 * addresses gives its first IPv4 one, else its first; "localhost" unknown to both is
 * 127.0.0.1, RFC 6761). Every lookup has a timeout; a failed or
 * timed-out lookup is the caller's connect failure (it retries with its backoff). One
 * resolver per engine, shared by its pools, monitors, Redis connections and the invalidator.
 * Not thread-safe: used from the loop's thread only. */
#ifndef CS_RESOLVE_H
#define CS_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct cs_resolver cs_resolver;
typedef struct cs_dns_req cs_dns_req;

/* Creates a resolver on `base`. resolv_conf: a resolv.conf-format file to take name servers
 * and options from, NULL for the system's (/etc/resolv.conf; /etc/hosts is read too). The
 * files are read here, once (small local files: at startup or a reload, never per lookup).
 * timeout_ms bounds each lookup. Returns NULL with a message in err. */
cs_resolver *cs_resolver_new(struct event_base *base, const char *resolv_conf, int64_t timeout_ms,
	char *err, size_t errlen) __attribute__((warn_unused_result));

/* Frees the resolver. Its lookups must have been canceled by their owners first
 * (cs_dns_cancel). evdns still owes the canceled ones a callback from the loop; while it
 * does, the resolver lives on and is freed after the last one (the loop must run: see
 * cs_resolver_drain). */
void cs_resolver_free(cs_resolver *r);

/* At shutdown, once everything else on base is freed: runs base without blocking until
 * every resolver freed with lookups outstanding is released (bounded). Returns how many are
 * left (leaked). */
int cs_resolver_drain(struct event_base *base);

/* Result of a lookup, run exactly once unless canceled, never from inside the call that
 * started it. err == 0: `addrs` is the answer (valid only during the call): for
 * cs_resolve_host a numeric address; for cs_resolve_conninfo a hostaddr list for libpq (one
 * entry per host, "" for entries that need no lookup), or NULL when the conninfo needs no
 * hostaddr at all (unix sockets, numeric hosts, hostaddr given). err != 0 (-1): `msg` says
 * which host failed and why. */
typedef void cs_dns_cb(void *priv, int err, const char *addrs, const char *msg);

/* Resolves one host name to a numeric address (the first the name server returns). Returns
 * the pending lookup (for cs_dns_cancel), or NULL when out of memory (cb will not run). */
cs_dns_req *cs_resolve_host(cs_resolver *r, const char *host, cs_dns_cb *cb, void *priv)
	__attribute__((warn_unused_result));

/* Resolves every host name of a libpq conninfo (keyword=value or URI; a comma-separated
 * host list is resolved entry by entry, each to its first address) into the matching
 * `hostaddr` list. Returns as cs_resolve_host. */
cs_dns_req *cs_resolve_conninfo(cs_resolver *r, const char *conninfo, cs_dns_cb *cb, void *priv)
	__attribute__((warn_unused_result));

/* Cancels a pending lookup: its callback will not run. Not from inside that callback. */
void cs_dns_cancel(cs_dns_req *q);

/* Fills *out with the host name lookup hook of pgconn.h over r: cs_resolve_conninfo and
 * cs_dns_cancel. r must outlive the lookups started through it. */
struct cs_pgconn_lookup;
void cs_resolver_pg_lookup(cs_resolver *r, struct cs_pgconn_lookup *out);

/* True when `host` needs no lookup (numeric, a unix-socket path, empty). */
bool cs_host_is_literal(const char *host);

/* Lookups started and failed (including timeouts), for metrics. */
typedef struct cs_resolver_stats {
	uint64_t lookups, failures, timeouts;
} cs_resolver_stats;
void cs_resolver_stats_get(const cs_resolver *r, cs_resolver_stats *out);

#endif
