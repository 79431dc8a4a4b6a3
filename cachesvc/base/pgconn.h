/* pgconn.h - one non-blocking libpq connect on an event loop: an optional host name lookup
 * first, then PQconnectStartParams and PQconnectPoll with the socket re-registered at every
 * step (it can change), bounded by a deadline; one callback when the connection is ready or
 * has failed. The connection pools (pgpool.c) and the invalidator's replication connection
 * (invalidator.c) both connect through it.
 *
 * A leaf: it depends on libpq, libevent and log.h/util.h only. The host name lookup is a
 * hook (cs_pgconn_lookup), filled by resolve.h's cs_resolver_pg_lookup in the engine.
 *
 * Use: cs_pgconn_init once; then per connect either cs_pgconn_resolve (the lookup's answer
 * comes to the addrs callback, which builds the keywords and calls cs_pgconn_connect) or
 * cs_pgconn_connect directly. The done callback runs exactly once per connect unless
 * cs_pgconn_cancel ran first, never from inside the call that started the step, and after
 * the cs_pgconn is idle again: it may start the next connect or cancel. Not thread-safe: the
 * loop's thread only. */
#ifndef CS_PGCONN_H
#define CS_PGCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>
#include <libpq-fe.h>

/* The answer of a host name lookup (resolve.h cs_dns_cb): err == 0, addrs is the hostaddr
 * list for libpq (NULL: none needed), valid during the call; err != 0, msg says why. */
typedef void cs_pgconn_lookup_cb(void *priv, int err, const char *addrs, const char *msg);

/* A host name lookup service: start returns the pending lookup (NULL when out of memory:
 * cb will not run); cancel stops one (its cb will not run). */
typedef struct cs_pgconn_lookup {
	void *(*start)(void *ctx, const char *conninfo, cs_pgconn_lookup_cb *cb, void *priv);
	void (*cancel)(void *req);
	void *ctx;
} cs_pgconn_lookup;

/* How a connect ended. */
typedef enum cs_pgconn_status {
	CS_PGCONN_READY = 0, /* connected and non-blocking: conn is the owner's now */
	CS_PGCONN_FAILED,    /* the lookup or the connect failed: msg says why */
	CS_PGCONN_TIMEOUT,   /* the deadline passed: msg is "resolving the host name timed out"
			      * or "connect timed out" */
} cs_pgconn_status;

typedef struct cs_pgconn cs_pgconn;

/* The connect ended. conn: the connection on READY (the owner's to PQfinish), else NULL.
 * msg: why, without libpq's trailing newline (valid during the call). */
typedef void cs_pgconn_done_cb(cs_pgconn *pc, cs_pgconn_status st, PGconn *conn, const char *msg,
	void *priv);

/* The lookup answered: the owner builds its keywords with the hostaddr list `addrs` (NULL:
 * none needed) and calls cs_pgconn_connect, or cs_pgconn_cancel. */
typedef void cs_pgconn_addrs_cb(cs_pgconn *pc, const char *addrs, void *priv);

/* Embedded in its owner; the fields are this module's. */
struct cs_pgconn {
	struct event_base *base;
	cs_pgconn_done_cb *done;
	cs_pgconn_addrs_cb *addrs;
	void *priv;
	const cs_pgconn_lookup *lookup; /* of the lookup in flight */
	void *dns;			/* the lookup in flight, or NULL */
	PGconn *conn;			/* the connect in flight, or NULL */
	struct event ev;		/* the connect's socket */
	struct event timer;		/* the deadline */
	bool ev_added, timer_added;
};

/* Prepares pc on base (no I/O). addrs may be NULL when cs_pgconn_resolve is never used. */
void cs_pgconn_init(cs_pgconn *pc, struct event_base *base, cs_pgconn_done_cb *done,
	cs_pgconn_addrs_cb *addrs, void *priv);

/* Looks up the host names of conninfo with lookup (borrowed until its answer). timeout_ms > 0
 * arms the deadline (it then covers the lookup and the connect); 0 leaves it unarmed (the
 * lookup has its own). Returns 0, or -1 when out of memory (no callback will run). */
int cs_pgconn_resolve(cs_pgconn *pc, const cs_pgconn_lookup *lookup, const char *conninfo,
	int64_t timeout_ms) __attribute__((warn_unused_result));

/* Starts libpq's connect: PQconnectStartParams(kw, val, expand_dbname = 1) (both borrowed for
 * the call), with server notices going to the log under notice_name (borrowed while the
 * connection lives: cs_log_pg_notice). timeout_ms > 0 (re)arms the deadline from now; 0 keeps
 * the one armed by cs_pgconn_resolve. Returns 0 (done runs later), or -1 with the reason in
 * err when the connect could not start (done will not run). */
int cs_pgconn_connect(cs_pgconn *pc, const char *const *kw, const char *const *val,
	const char *notice_name, int64_t timeout_ms, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* True while a lookup or a connect is in flight. */
bool cs_pgconn_busy(const cs_pgconn *pc);

/* True while the lookup (not yet the connect) is in flight. */
bool cs_pgconn_resolving(const cs_pgconn *pc);

/* Stops whatever is in flight (the done callback will not run); pc is idle again. Safe on an
 * idle pc, and from inside pc's own callbacks. */
void cs_pgconn_cancel(cs_pgconn *pc);

/* Copies a libpq message (NULL: "unknown error") without its trailing newlines and spaces. */
void cs_pgconn_msg(char *dst, size_t len, const char *src);

#endif
