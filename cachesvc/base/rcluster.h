/* rcluster.h - Redis Cluster routing over cs_redis (redis.h): hash slots, the slot map from
 * CLUSTER SHARDS (Redis 7) or CLUSTER SLOTS, MOVED / ASK redirects, TRYAGAIN / CLUSTERDOWN
 * retries, one cs_redis per master. Debian 12's hiredis 0.14 has no cluster support.
 *
 * Two parts:
 *  - pure functions (keyslot, map and redirect parsing), no I/O, unit-tested;
 *  - cs_rc, the asynchronous client on the event loop. In single mode (opts.cluster = false)
 *    it wraps exactly one cs_redis and adds nothing per command: no allocation, no copy, the
 *    slot is ignored. In cluster mode it routes by slot to the master that owns it.
 *
 * Errors: a command refused at once returns -1 and its callback never runs (no slot owner,
 * owner not ready, too many pending, out of memory); a command accepted (0) gets its callback
 * exactly once: a reply, an error reply (a Redis error, a redirect that could not be followed,
 * TRYAGAIN / CLUSTERDOWN / LOADING past the command's timeout) or NULL (no reply: timeout,
 * disconnect, shutdown - as cs_redis_cb). Nothing here blocks; every wait is bounded by the
 * node timeout: retries and redirects are sent only before the command's deadline (the
 * timeout after the first send), so a callback comes at most twice the timeout late.
 *
 * Slot map: asked of a ready node with CLUSTER SHARDS (CLUSTER SLOTS when the server does not
 * know it) at start, every refresh_ms, after a MOVED, after a node connection goes down or up
 * while slots are unserved, and when a command finds its slot without a ready master; at most
 * one in flight and one per 100 ms. When no node has been ready for a second the seeds are
 * connected again. A MOVED also reroutes its slot at once.
 * Not thread-safe. */
#ifndef CS_RCLUSTER_H
#define CS_RCLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis.h"

struct event_base;
struct redisReply;

/* ---- Pure part ----------------------------------------------------------------------- */

#define CS_RC_SLOTS     16384
#define CS_RC_MAX_NODES 128 /* masters (nodes) at most; a map with more is refused */
#define CS_RC_HOST_MAX  256

/* The hash slot of a key: CRC16-XMODEM (poly 0x1021, init 0) mod 16384, of the part between
 * the first '{' and the next '}' when that part is not empty (Redis's hash tags), else of the
 * whole key. */
uint16_t cs_rc_keyslot(const char *key, size_t len);

/* CRC16-XMODEM of buf (exported for the unit test: crc16("123456789") = 0x31C3). */
uint16_t cs_rc_crc16(const char *buf, size_t len);

typedef struct cs_rc_endpoint {
	char host[CS_RC_HOST_MAX]; /* IP, host name or IPv6 literal without brackets */
	int port;
} cs_rc_endpoint;

/* A slot map: the online masters and, per slot, the index of its master (-1: none); and the
 * masters the cluster has marked failed (CLUSTER SHARDS health "fail" or "failed"): their slots are
 * unowned in this map, and cs_rc_map_keep_owners does not give them back. */
typedef struct cs_rc_map {
	int nnodes;
	cs_rc_endpoint node[CS_RC_MAX_NODES];
	int16_t owner[CS_RC_SLOTS];
	int nfailed;
	cs_rc_endpoint failed[CS_RC_MAX_NODES];
} cs_rc_map;

/* Fills m from a CLUSTER SHARDS reply (RESP2: an array of shards, each a flat key/value
 * array with "slots" (start/end pairs) and "nodes" (key/value arrays)). Only nodes with
 * role "master" and health "online" own slots. A node's address is its "endpoint", else its
 * "ip" when the endpoint is empty or "?", else `asked_host` (the node that answered, per the
 * Redis docs). Returns 0, or -1 with a reason in err (malformed reply; m is then undefined).
 * Slots nobody serves stay -1 (a partial map is a valid map). */
int cs_rc_map_from_shards(const struct redisReply *rep, const char *asked_host, cs_rc_map *m,
        char *err, size_t errlen) __attribute__((warn_unused_result));

/* The same from a CLUSTER SLOTS reply (array of [start, end, [host, port, id...], replicas...]);
 * the first node of each range is its master; an empty or NULL host means asked_host. */
int cs_rc_map_from_slots(const struct redisReply *rep, const char *asked_host, cs_rc_map *m,
        char *err, size_t errlen) __attribute__((warn_unused_result));

/* The slots of m that have an owner. */
int cs_rc_map_covered(const cs_rc_map *m);

/* Gives every slot that m leaves unowned but prev assigns its owner in prev (the node is
 * added to m when m does not list it and has room), unless m lists that owner as failed. A
 * node's view can be partial (restarted and not yet told of every master): a map never drops
 * the owner of a slot it does not assign elsewhere. But a master the cluster marked failed
 * loses its slots at once, so their commands are refused at once instead of waiting out
 * their timeout on a node that may still accept connections (stopped, overloaded: review
 * V4). Returns the number of slots taken from prev. */
int cs_rc_map_keep_owners(cs_rc_map *m, const cs_rc_map *prev);

typedef struct cs_rc_redirect {
	bool ask; /* ASK (one command, after ASKING) rather than MOVED */
	uint16_t slot;
	char host[CS_RC_HOST_MAX]; /* "" = the node that sent the redirect */
	int port;
} cs_rc_redirect;

/* Parses an error reply's text "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>"
 * (host may be an IPv6 literal, bare as Redis writes it or in brackets, or empty). Returns 0
 * and fills out, or -1 when str is not a well-formed redirect. */
int cs_rc_parse_redirect(const char *str, size_t len, cs_rc_redirect *out);

/* Parses "host:port" (IPv6: "[::1]:6379" or "::1:6379", the last ':' ends the host). Returns
 * 0, or -1 (empty host, bad port). */
int cs_rc_parse_endpoint(const char *s, size_t len, cs_rc_endpoint *out);

/* CLUSTER NODES, as text: one line per node, "<id> <ip:port@cport[,host]> <flags> <master>
 * <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> ...", where a slot field of the
 * `myself` line may name a migration in progress: "[<slot>->-<id>]" (migrating to id) or
 * "[<slot>-<-<id>]" (importing from id). The invalidator reads the open slots of every master
 * (CLUSTER.md section 7, V9b). */
#define CS_RC_ID_LEN 40 /* a node id: 40 hex characters */

typedef struct cs_rc_node_line {
	char id[CS_RC_ID_LEN + 1];
	bool myself;       /* flags hold "myself" */
	bool replica;      /* flags hold "slave" (or "replica") */
	bool failed;       /* flags hold "fail" (agreed by the cluster; not "fail?") */
	char master[CS_RC_ID_LEN + 1]; /* a replica's master (4th field); "" when "-" */
	const char *slots; /* the slot fields (into the text parsed) */
	size_t slots_len;
} cs_rc_node_line;

/* The next line of a CLUSTER NODES text from *pos (0 at first): 1 with *out filled, 0 at the
 * end. A line without the 8 leading fields or whose id is not 40 characters is skipped. */
int cs_rc_nodes_next(const char *text, size_t len, size_t *pos, cs_rc_node_line *out);

typedef struct cs_rc_open_slot {
	uint16_t slot;
	bool importing;              /* "[<slot>-<-<id>]"; else migrating, "[<slot>->-<id>]" */
	char peer[CS_RC_ID_LEN + 1]; /* the node it migrates to or imports from */
} cs_rc_open_slot;

/* The open slots among a line's slot fields, at most max written to out; returns how many
 * there are (may exceed max). Malformed brackets are skipped. */
int cs_rc_nodes_open_slots(const cs_rc_node_line *l, cs_rc_open_slot *out, int max);

/* ---- The client ---------------------------------------------------------------------- */

typedef struct cs_rc cs_rc;

/* Reply callback: as cs_redis_cb (reply NULL: failed without a reply; owned by hiredis, valid
 * only during the call). */
typedef void cs_rc_cb(cs_rc *rc, struct redisReply *reply, void *priv);

/* Called after the node set changed (cluster mode: the first map differs from the seeds, a
 * master added - a new one in a map, or the target of a redirect - or gone). Right after
 * cs_rc_new the set is the seeds (single mode: the one connection, never changed),
 * from the loop (possibly inside another node's reply callback). cs_rc_nnodes/cs_rc_node
 * give the new set; a cs_redis not in it is freed later, from a timer: drop every pointer to
 * it now. May subscribe on the new nodes; must not free rc. */
typedef void cs_rc_nodes_cb(cs_rc *rc, void *priv);

typedef struct cs_rc_opts {
	cs_redis_opts node;       /* template for every node: url gives user/password (cluster: the
	                           * host:port of a seed when nseeds is 0; db must be 0), timeouts,
	                           * max_pending, scripts, on_state (chained), resolver */
	const char *const *seeds; /* "host:port" of some nodes (cluster mode); copied */
	int nseeds;
	bool cluster;       /* false: single mode, one cs_redis on node.url */
	int64_t refresh_ms; /* periodic slot map refresh (cluster); <= 0: 10000 */
	int max_redirects;  /* MOVED/ASK followed per command; 0: none (the error reaches cb) */
	cs_rc_nodes_cb *on_nodes;
	void *nodes_priv;
} cs_rc_opts;

/* Per node, for metrics. */
typedef struct cs_rc_node_stats {
	uint64_t connects;    /* successful handshakes (cs_redis_stats) */
	uint64_t disconnects; /* ready connections lost */
	uint64_t timeouts;    /* commands that timed out (each took the connection down) */
	uint64_t errors;      /* commands from this node that failed: no reply, or an error
	                       * reply past redirects and retries */
	uint64_t moved;       /* MOVED replies from this node */
	uint64_t ask;         /* ASK replies from this node */
	uint64_t tryagain;    /* TRYAGAIN / CLUSTERDOWN / LOADING replies from this node
	                       * (retried with backoff until the command's deadline) */
	uint64_t refreshes;   /* slot map refreshes this node answered */
} cs_rc_node_stats;

typedef struct cs_rc_stats {
	uint64_t refreshes;           /* slot maps applied */
	uint64_t refresh_errors;      /* refreshes that failed (no reply, error, malformed) */
	uint64_t partial_maps;        /* maps that left served slots unowned (owners kept) */
	uint64_t node_changes;        /* times the node set changed */
	uint64_t refused;             /* commands refused: slot without a ready master (cluster) */
	uint64_t redirects_exhausted; /* MOVED/ASK past max_redirects or the deadline,
	                               * delivered as errors */
	uint64_t retry_timeouts; /* TRYAGAIN/CLUSTERDOWN/LOADING still failing at the deadline */
	uint64_t pending;        /* gauge: cluster commands accepted and not yet answered */
	uint64_t slots_covered;  /* gauge: slots with an owner in the current map */
} cs_rc_stats;

/* Creates the client and starts connecting (single: node.url; cluster: the seeds, then the
 * masters of the first map). Returns NULL with a message in err (bad URL or seed, out of
 * memory). Strings are copied. */
cs_rc *cs_rc_new(struct event_base *base, const cs_rc_opts *opts, char *err, size_t errlen)
        __attribute__((warn_unused_result));

/* Frees everything: every accepted command's callback runs first (reply NULL). Must not be
 * called from inside one of rc's callbacks. NULL is a no-op. */
void cs_rc_free(cs_rc *rc);

/* Single: the connection is ready. Cluster: every slot has an owner and every master is
 * ready. */
bool cs_rc_ready(const cs_rc *rc);

/* Single: the connection is ready. Cluster: the master of `slot` is known and ready (its
 * commands are sent rather than refused at once). */
bool cs_rc_slot_ready(const cs_rc *rc, uint16_t slot);

/* Sends a command for `slot` (cs_rc_keyslot of its key; ignored in single mode). Returns 0
 * (cb runs exactly once) or -1 (refused at once; cb never runs). argv/lens (lens NULL:
 * strlen) are copied before returning. cb may be NULL. */
int cs_rc_cmd(cs_rc *rc, uint16_t slot, cs_rc_cb *cb, void *priv, int argc, const char **argv,
        const size_t *lens) __attribute__((warn_unused_result));

/* EVALSHA of script number `script` (opts.node.scripts), argv = nkeys keys then the
 * arguments, all keys in `slot`. Returns as cs_rc_cmd. */
int cs_rc_script(cs_rc *rc, uint16_t slot, int script, cs_rc_cb *cb, void *priv, int nkeys,
        int argc, const char **argv, const size_t *lens) __attribute__((warn_unused_result));

/* The current nodes (single: 1), to subscribe or track per node. The pointer stays valid
 * until the on_nodes callback that drops it returns. */
int cs_rc_nnodes(const cs_rc *rc);
cs_redis *cs_rc_node(cs_rc *rc, int i);
/* "host:port" of node i (owned by rc; valid as the node). */
const char *cs_rc_node_addr(const cs_rc *rc, int i);
/* How many slots node i serves in the map now (single: all of them; 0: a master of no slot,
 * such as a failed master the cluster still lists after its replica took over). */
int cs_rc_node_slots(const cs_rc *rc, int i);
/* The node that serves `slot` now, or -1 (single: 0). */
int cs_rc_slot_node(const cs_rc *rc, uint16_t slot);
/* A number that changes whenever the slot map (cs_rc_slot_node's answers, or the nodes'
 * indices) may have: a caller's table made from the map is current while it is unchanged. */
uint64_t cs_rc_map_version(const cs_rc *rc);
void cs_rc_get_node_stats(const cs_rc *rc, int i, cs_rc_node_stats *out);
const cs_rc_stats *cs_rc_get_stats(const cs_rc *rc);

/* The URL of a node (cluster mode): "redis://<user:password@ of opts.node.url>host:port/0"
 * (an IPv6 host in brackets); 0, or -1 when it does not fit in cap. It holds the password:
 * clear it after use. */
int cs_rc_node_url(const cs_rc *rc, const char *host, int port, char *out, size_t cap);

/* Inside a reply callback: true when that command was sent more than once (it followed a
 * MOVED or ASK, or was retried after TRYAGAIN / CLUSTERDOWN / LOADING). A connection-scoped
 * prefix such as CLIENT CACHING yes (sent by the caller just before it) then did not
 * precede the send that answered: the near cache treats such a read as untracked (CLUSTER.md
 * section 7, E1). Always false in single mode and outside a callback. */
bool cs_rc_resent(const cs_rc *rc);

/* True in cluster mode. */
bool cs_rc_cluster(const cs_rc *rc);

/* The slot map as ranges of consecutive slots with one owner, in slot order: cb(priv, first,
 * last, "host:port" of the master or NULL when nobody serves them, whether its connection is
 * ready). Single mode: one range 0-16383 on the one connection. Stops at the first non-zero
 * return of cb and returns it (rcluster_metrics.c). */
typedef int cs_rc_range_cb(void *priv, int first, int last, const char *node, bool ready);
int cs_rc_slot_ranges(cs_rc *rc, cs_rc_range_cb *cb, void *priv);

struct cs_metrics;
/* Cluster mode: per-master samples (cachesvc_redis_cluster_node_*{client,node}: up,
 * connects, disconnects, timeouts, errors, MOVED, ASK, TRYAGAIN, maps answered) and the
 * client's (maps applied and failed, partial maps, master set changes, commands refused,
 * redirects exhausted, retry timeouts, pending, slots covered, masters), each labelled
 * client="<client>". Single mode: nothing (the cachesvc_redis_* families cover it). */
void cs_rc_metrics(cs_rc *rc, struct cs_metrics *m, const char *client);

/* Asks for a slot map refresh now (rate-limited; cluster mode; no-op in single mode). */
void cs_rc_refresh(cs_rc *rc);

#endif
