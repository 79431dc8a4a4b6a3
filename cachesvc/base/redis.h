/* redis.h - one Redis connection on the event loop: hiredis async + libevent, with the
 * per-command timeouts, reconnect backoff, bounded pipeline and Lua script loading that
 * hiredis 0.14 does not have.
 *
 * A cs_redis is "ready" once connected, authenticated, on the right database and with every
 * script loaded. Commands issued while not ready are refused at once (the caller falls back:
 * the read path bypasses the cache, the invalidator retries). A command that gets no reply
 * within the timeout takes the whole connection down: hiredis cannot drop one reply, and a
 * Redis that stalls one command stalls them all. Every pending callback then runs with
 * reply == NULL, and the connection comes back with exponential backoff.
 *
 * Nothing here blocks: a host name is resolved on the loop (resolve.h) before every connect,
 * so a reconnect follows a DNS failover. Not thread-safe. */
#ifndef CS_REDIS_H
#define CS_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisReply;

typedef struct cs_redis cs_redis;

/* Reply callback. `reply` is NULL when the command failed without a reply (timeout,
 * disconnect, shutdown); it is owned by hiredis and valid only during the call. A
 * REDIS_REPLY_ERROR reply is a Redis error, not a transport failure. */
typedef void cs_redis_cb(cs_redis *r, struct redisReply *reply, void *priv);

/* Called when the connection becomes ready (up = true) or stops being ready. */
typedef void cs_redis_state_cb(cs_redis *r, bool up, void *priv);

typedef struct cs_redis_opts {
	const char *name;	      /* for logs: "cache", "pubsub", "invalidator" */
	const char *url;	      /* redis://[[user]:pass@]host[:port][/db] | unix:///path[?db=N] */
	int64_t timeout_ms;	      /* per command and for connecting */
	int max_pending;	      /* commands in flight; beyond: refused */
	const char *const *scripts;   /* Lua bodies loaded on every connect (SCRIPT LOAD) */
	int nscripts;
	cs_redis_state_cb *on_state;
	void *state_priv;
	bool client_id;		      /* learn the connection's CLIENT ID in the handshake
				       * (cs_redis_client_id), before any SUBSCRIBE */
	struct cs_resolver *resolver; /* resolves the host name before every connect; NULL:
				       * a resolver of its own (system resolv.conf, timeout_ms) */
} cs_redis_opts;

typedef struct cs_redis_stats {
	uint64_t connects;     /* successful handshakes */
	uint64_t disconnects;  /* ready connections lost */
	uint64_t timeouts;     /* commands that timed out */
	uint64_t refused;      /* commands refused: not ready or too many pending */
	uint64_t noscript;     /* NOSCRIPT replies (scripts reloaded) */
	uint64_t pending;      /* gauge: commands in flight now */
} cs_redis_stats;

/* Creates the connection object and starts connecting. Returns NULL with a message in err
 * (bad URL). The URL (with its password) is copied. */
cs_redis *cs_redis_new(struct event_base *base, const cs_redis_opts *opts, char *err,
	size_t errlen) __attribute__((warn_unused_result));

/* Closes the connection: every pending callback runs with reply == NULL first. Must not be
 * called from inside one of this connection's callbacks. */
void cs_redis_free(cs_redis *r);

bool cs_redis_ready(const cs_redis *r);

/* Sends one command. Returns 0 when queued (cb will run exactly once), -1 when refused (cb
 * will not run). argv/lens are copied by hiredis before returning. cb may be NULL. */
int cs_redis_cmd(cs_redis *r, cs_redis_cb *cb, void *priv, int argc, const char **argv,
	const size_t *lens) __attribute__((warn_unused_result));

/* EVALSHA of script number `script` (index into opts.scripts) with argv = nkeys keys
 * followed by the arguments. Returns as cs_redis_cmd. A NOSCRIPT reply (Redis restarted or
 * SCRIPT FLUSH) reaches cb as an error reply and reloads the scripts in the background. */
int cs_redis_script(cs_redis *r, int script, cs_redis_cb *cb, void *priv, int nkeys,
	int argc, const char **argv, const size_t *lens) __attribute__((warn_unused_result));

/* Subscribes to a channel on this connection (which should then be used for nothing
 * else), now if ready and again after every reconnect. cb gets every pub/sub reply array
 * (["subscribe", ch, n] first, then ["message", ch, payload]); NULL when the connection
 * drops. Returns 0, or -1 when more than 8 channels are asked for. */
int cs_redis_subscribe(cs_redis *r, const char *channel, cs_redis_cb *cb, void *priv);

const cs_redis_stats *cs_redis_get_stats(const cs_redis *r);

/* For a layer above (rcluster.h) that forwards replies to callbacks of its own type without a
 * record per command: `fn` (the caller's callback, cast to cs_redis_fn and back - allowed
 * between function pointer types) and priv come back to fwd. Otherwise as cs_redis_cmd /
 * cs_redis_script. */
typedef void (*cs_redis_fn)(void);
typedef void cs_redis_fwd_cb(cs_redis *r, struct redisReply *reply, cs_redis_fn fn, void *priv);
int cs_redis_cmd_fwd(cs_redis *r, cs_redis_fwd_cb *fwd, cs_redis_fn fn, void *priv, int argc,
	const char **argv, const size_t *lens) __attribute__((warn_unused_result));
int cs_redis_script_fwd(cs_redis *r, int script, cs_redis_fwd_cb *fwd, cs_redis_fn fn,
	void *priv, int nkeys, int argc, const char **argv, const size_t *lens)
	__attribute__((warn_unused_result));

/* One pointer for the layer that owns r (rcluster.c: its cs_rc), read back in callbacks. */
void cs_redis_set_owner(cs_redis *r, void *owner);
void *cs_redis_owner(const cs_redis *r);

/* Drops the connection at the next deadline check (within the timer's period) and connects
 * again with the usual backoff; pending callbacks get NULL then. Safe from any callback.
 * `why` (for the log) must be a static string. */
void cs_redis_reconnect(cs_redis *r, const char *why);

/* The ready connection's CLIENT ID (opts.client_id); 0 when not ready or not asked. A new
 * connection has a new id. */
int64_t cs_redis_client_id(const cs_redis *r);

/* The URL with any password replaced by "***" (for logs and "show config"). Static buffer
 * owned by r. */
const char *cs_redis_url_masked(const cs_redis *r);

#endif
