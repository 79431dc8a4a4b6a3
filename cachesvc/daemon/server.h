/* server.h - the binary-protocol listener and client connections of the daemon.
 *
 * Accepts on TCP (SO_REUSEPORT, so several processes share a port) and on a unix socket,
 * reads frames (protocol/PROTOCOL.md), hands requests to the engine and writes replies as
 * they complete, in any order, tagged with the request id. Per connection: at most
 * max_inflight requests in flight (beyond that the connection is simply not read until
 * some complete); output bounded in bytes, MGET items held included (past
 * client_output_soft_limit it is not read, past client_output_hard_limit it is closed); a
 * deadline for completing a frame once its first byte came (frame_timeout); an idle
 * timeout; at most three failed HELLOs. Protocol errors get an error frame and close that
 * connection only. Connections past max_clients (capped by the open-file limit, see
 * main.c) get an OVERLOADED error frame; accept() failing for want of descriptors pauses
 * the listeners instead of spinning. Nothing blocks. */
#ifndef CS_SERVER_H
#define CS_SERVER_H

#include <stdint.h>

#include "engine.h"

struct event_base;

typedef struct cs_server cs_server;

typedef struct cs_server_stats {
	uint64_t clients;	   /* gauge: connected now */
	uint64_t connections;	   /* accepted since start */
	uint64_t rejected;	   /* refused at max_clients (or its cap by the open-file limit) */
	uint64_t accept_errors;	   /* accept() failures: EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
	uint64_t accept_pauses;	   /* times the listeners paused after a resource error */
	uint64_t protocol_errors;  /* connections closed for a protocol error */
	uint64_t auth_failures;	   /* HELLOs with a missing or wrong token */
	uint64_t idle_closed;	   /* connections closed by the idle timeout */
	uint64_t send_timeout_closed; /* closed: output not taken by the socket for send_timeout */
	uint64_t output_limit_closed; /* closed past client_output_hard_limit */
	uint64_t frame_timeout_closed; /* closed with a frame incomplete after frame_timeout */
	uint64_t frames[10];	   /* requests by opcode (index = opcode) */
	uint64_t inflight;	   /* gauge: requests being answered */
} cs_server_stats;

/* Creates the server for `engine` (not owned). Listens on cfg->listen and cfg->unix_socket.
 * NULL with a message in err (bad address, bind failure). */
cs_server *cs_server_new(struct event_base *base, cs_engine *engine, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Starts or stops accepting new connections (existing ones are unaffected). */
void cs_server_accept(cs_server *s, bool on);

/* Caps max_clients at `limit` client connections (0 = no cap): what the open-file limit
 * leaves once the servers, pools and admin endpoint have their share (main.c). The
 * effective bound is min(max_clients, limit); both apply to new connections only. */
void cs_server_set_client_cap(cs_server *s, int limit);

/* ADMIN "reload" (PROTOCOL.md 3.9): main.c starts a checked reload and calls done once it
 * was applied (result 0) or refused (-1, err says why); done is called exactly once, maybe
 * before start returns. start returns -1 (err set, done not called) when no reload can
 * start now (one is being checked, or the daemon is stopping). */
typedef void cs_server_reload_done(void *priv, int result, const char *err);
typedef int cs_server_reload_fn(void *arg, cs_server_reload_done *done, void *priv, char *err,
	size_t errlen);
void cs_server_set_reload(cs_server *s, cs_server_reload_fn *fn, void *arg);

/* Graceful shutdown: stops accepting, answers new requests SHUTTING_DOWN, and calls done()
 * once every in-flight request has been answered (or after the timeout). */
void cs_server_drain(cs_server *s, int64_t timeout_ms, void (*done)(void *), void *priv);

/* Closes every connection (in-flight callbacks still complete safely) and frees. */
void cs_server_free(cs_server *s);

const cs_server_stats *cs_server_get_stats(const cs_server *s);

/* Adds the server's samples to m (metrics.h). */
void cs_server_metrics(const cs_server *s, cs_metrics *m);

#endif
