/* rcluster.c - Redis Cluster routing over cs_redis: hash slots, the slot map, MOVED / ASK,
 * TRYAGAIN / CLUSTERDOWN retries, one connection per master. */
#include "rcluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "redis_url.h"
#include "util.h"

#define TICK_MS            50   /* the graveyard's poll while it holds a node */
#define REFRESH_GAP_MS     100  /* at most one slot map refresh per gap */
#define SEEDS_AFTER_MS     1000 /* no node ready that long: connect to the seeds again */
#define RETRY_BASE_MS      10   /* TRYAGAIN / CLUSTERDOWN backoff */
#define RETRY_MAX_MS       500
#define DEFAULT_REFRESH_MS 10000

/* ==== The client ======================================================================= */

/* One master (or, before the first map, one seed): its connection and counters. A node
 * dropped from the map goes to the graveyard and is freed from the tick once nothing is in
 * flight on it (or its grace time passed): never from inside one of its callbacks. */
typedef struct rc_node {
	cs_rc *rc;
	cs_redis *r;
	char host[CS_RC_HOST_MAX];
	int port;
	char addr[CS_RC_HOST_MAX + 8]; /* "host:port" */
	cs_rc_node_stats st;
	int nslots;             /* slots it owns in owner[] (0: a master of no slot) */
	uint64_t free_after_us; /* graveyard: free at the latest then */
	struct rc_node *next_dead;
} rc_node;

/* A cluster command: its own copy of argv, to send it again after a redirect or a retry. One
 * allocation: the record, then argv pointers, lens, and the bytes. */
typedef struct rc_cmd {
	struct rc_cmd *prev, *next; /* rc->live */
	cs_rc *rc;
	cs_rc_cb *cb;
	void *priv;
	rc_node *node;        /* where it was sent last */
	struct event *retry;  /* armed while waiting to retry (TRYAGAIN / CLUSTERDOWN) */
	uint64_t deadline_us; /* retries stop here (the node timeout after the first send) */
	uint16_t slot;
	int script; /* -1: a plain command */
	int nkeys;
	int redirects;
	int tries;
	int argc;
	const char **argv;
	size_t *lens;
} rc_cmd;

struct cs_rc {
	struct event_base *base;
	bool cluster;
	bool freeing;
	cs_redis *single; /* single mode */

	/* cluster mode */
	cs_redis_opts tmpl; /* node template; name, url, scripts point to copies below */
	char *name;
	char *userinfo; /* "user:password@" percent-encoded, or ""; secret */
	char **scripts;
	int nscripts;
	cs_redis_state_cb *user_on_state;
	void *user_state_priv;
	cs_rc_nodes_cb *on_nodes;
	void *nodes_priv;
	cs_rc_endpoint *seeds;
	int nseeds;
	int64_t refresh_ms;
	int max_redirects;

	rc_node *nodes[CS_RC_MAX_NODES];
	int nnodes;
	int16_t owner[CS_RC_SLOTS]; /* index into nodes, -1: none */
	uint64_t map_version;       /* changes whenever owner[] or the node order may have */
	int covered;
	rc_node *dead; /* graveyard */

	/* issue 16: one-shot, armed for the next deadline there is (tick_rearm): the periodic
	 * refresh, a refresh asked for (at most one per REFRESH_GAP_MS), the graveyard polled
	 * every TICK_MS while it holds a node; not run every TICK_MS (20 wake-ups a second per
	 * cluster client, idle or not) */
	struct event *tick;
	uint64_t tick_at_us; /* when it is armed for, 0 not armed */
	bool want_refresh;
	int kept_slots; /* slots the last map left unowned and kept_owners kept */
	bool refresh_inflight;
	uint64_t refresh_warned_us; /* the last refresh error logged */
	bool use_slots; /* CLUSTER SHARDS unknown: CLUSTER SLOTS */
	uint64_t next_refresh_us;
	uint64_t next_periodic_us;
	uint64_t none_ready_since_us;
	int rr;

	rc_cmd live; /* sentinel: accepted cluster commands */
	cs_rc_stats stats;
	bool delivering_resent; /* during a callback: its command was sent more than once */
};

/* ---- Single mode: forward without a record of our own ---- */

static void single_reply(cs_redis *r, redisReply *reply, cs_redis_fn fn, void *priv)
{
	cs_rc_cb *cb = (cs_rc_cb *)fn;
	if (cb)
		cb(cs_redis_owner(r), reply, priv);
}

/* ---- The tick ---- */

/* Arms the tick for at (cs_now_us clock; at or before now: at once) unless it is armed
 * earlier: a tick that fires computes the next deadline there is (tick_rearm). */
static void tick_at(cs_rc *rc, uint64_t at)
{
	if (rc->tick == NULL || rc->freeing || (rc->tick_at_us != 0 && rc->tick_at_us <= at))
		return;
	uint64_t now = cs_now_us(), d = at > now ? at - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(d / 1000000u),
	        .tv_usec = (suseconds_t)(d % 1000000u)};
	if (event_add(rc->tick, &tv) == 0)
		rc->tick_at_us = at ? at : 1;
	else
		cs_error("redis cluster %s: cannot arm the slot map timer", rc->name);
}

/* The next deadline: the periodic refresh; a refresh asked for and none in flight (its
 * reply re-arms), not before the gap since the last one; the graveyard, polled while it
 * holds a node (a node is freed once nothing is in flight on it: no event says when). */
static void tick_rearm(cs_rc *rc)
{
	tick_at(rc, rc->next_periodic_us);
	if (rc->want_refresh && !rc->refresh_inflight)
		tick_at(rc, rc->next_refresh_us);
	if (rc->dead)
		tick_at(rc, cs_now_us() + TICK_MS * 1000u);
}

/* ---- Nodes ---- */

static void request_refresh(cs_rc *rc)
{
	if (rc->freeing)
		return;
	rc->want_refresh = true;
	if (!rc->refresh_inflight)
		tick_at(rc, rc->next_refresh_us);
}

static void node_state(cs_redis *r, bool up, void *priv)
{
	rc_node *n = priv;
	cs_rc *rc = n->rc;
	if (!up || rc->covered < CS_RC_SLOTS)
		request_refresh(rc);
	if (rc->user_on_state)
		rc->user_on_state(r, up, rc->user_state_priv);
}

/* Percent-encodes s (RFC 3986 unreserved kept) into out; false when it does not fit. */
static bool pct_encode(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
		if (n + (keep ? 1 : 3) >= cap)
			return false;
		if (keep) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
	return true;
}

int cs_rc_node_url(const cs_rc *rc, const char *host, int port, char *out, size_t cap)
{
	bool v6 = strchr(host, ':') != NULL;
	int n = snprintf(out, cap, "redis://%s%s%s%s:%d/0", rc->userinfo ? rc->userinfo : "",
	        v6 ? "[" : "", host, v6 ? "]" : "", port);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

static rc_node *node_new(cs_rc *rc, const char *host, int port)
{
	rc_node *n = calloc(1, sizeof *n);
	if (n == NULL)
		return NULL;
	n->rc = rc;
	snprintf(n->host, sizeof n->host, "%s", host);
	n->port = port;
	snprintf(n->addr, sizeof n->addr, "%s:%d", host, port);
	char url[2048], name[512], err[256];
	if (cs_rc_node_url(rc, host, port, url, sizeof url) != 0) {
		explicit_bzero(url, sizeof url);
		cs_error("redis cluster %s: node %s: its URL does not fit", rc->name, n->addr);
		free(n);
		return NULL;
	}
	snprintf(name, sizeof name, "%s %s", rc->name, n->addr);
	cs_redis_opts o = rc->tmpl;
	o.url = url;
	o.name = name;
	o.on_state = node_state;
	o.state_priv = n;
	n->r = cs_redis_new(rc->base, &o, err, sizeof err);
	explicit_bzero(url, sizeof url); /* held the password */
	if (n->r == NULL) {
		cs_error("redis cluster %s: node %s: %s", rc->name, n->addr, err);
		free(n);
		return NULL;
	}
	cs_redis_set_owner(n->r, n);
	return n;
}

static void node_bury(cs_rc *rc, rc_node *n)
{
	n->free_after_us = cs_now_us() +
	                   (uint64_t)(rc->tmpl.timeout_ms > 0 ? rc->tmpl.timeout_ms : 1000) * 2000u;
	n->next_dead = rc->dead;
	rc->dead = n;
	tick_at(rc, cs_now_us() + TICK_MS * 1000u);
}

static void node_free(rc_node *n)
{
	cs_redis_free(n->r); /* commands in flight get NULL (node_reply) */
	free(n);
}

static void nodes_changed(cs_rc *rc)
{
	rc->stats.node_changes++;
	if (rc->on_nodes && !rc->freeing)
		rc->on_nodes(rc, rc->nodes_priv);
}

static int node_index(const cs_rc *rc, const char *host, int port)
{
	for (int i = 0; i < rc->nnodes; i++)
		if (rc->nodes[i]->port == port && strcmp(rc->nodes[i]->host, host) == 0)
			return i;
	return -1;
}

/* The node at host:port, connected now when new (told to the owner); -1 when full. */
static int node_find_or_add(cs_rc *rc, const char *host, int port)
{
	int i = node_index(rc, host, port);
	if (i >= 0 || rc->nnodes == CS_RC_MAX_NODES)
		return i;
	rc_node *n = node_new(rc, host, port);
	if (n == NULL)
		return -1;
	rc->nodes[rc->nnodes] = n;
	i = rc->nnodes++;
	nodes_changed(rc);
	return i;
}

/* ---- Commands ---- */

static void cmd_unlink_free(rc_cmd *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->rc->stats.pending--;
	if (c->retry)
		event_free(c->retry);
	free(c);
}

/* Runs the caller's callback once and forgets the command. */
static void cmd_deliver(rc_cmd *c, redisReply *reply)
{
	cs_rc *rc = c->rc;
	cs_rc_cb *cb = c->cb;
	void *priv = c->priv;
	bool resent = c->redirects > 0 || c->tries > 0;
	cmd_unlink_free(c);
	if (cb) {
		bool outer = rc->delivering_resent;
		rc->delivering_resent = resent;
		cb(rc, reply, priv);
		rc->delivering_resent = outer;
	}
}

static rc_cmd *cmd_new(cs_rc *rc, uint16_t slot, int script, cs_rc_cb *cb, void *priv, int nkeys,
        int argc, const char **argv, const size_t *lens)
{
	if (argc <= 0 || argc > (1 << 20))
		return NULL;
	size_t bytes = 0;
	for (int i = 0; i < argc; i++)
		bytes += lens ? lens[i] : strlen(argv[i]);
	size_t head = sizeof(rc_cmd) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
	rc_cmd *c = malloc(head + bytes + 1);
	if (c == NULL)
		return NULL;
	memset(c, 0, sizeof *c);
	c->rc = rc;
	c->cb = cb;
	c->priv = priv;
	c->slot = slot & (CS_RC_SLOTS - 1);
	c->script = script;
	c->nkeys = nkeys;
	c->argc = argc;
	c->argv = (const char **)(c + 1);
	c->lens = (size_t *)(c->argv + argc);
	char *p = (char *)(c->lens + argc);
	for (int i = 0; i < argc; i++) {
		size_t l = lens ? lens[i] : strlen(argv[i]);
		memcpy(p, argv[i], l);
		c->argv[i] = p;
		c->lens[i] = l;
		p += l;
	}
	int64_t to = rc->tmpl.timeout_ms > 0 ? rc->tmpl.timeout_ms : 1000;
	c->deadline_us = cs_now_us() + (uint64_t)to * 1000u;
	c->prev = rc->live.prev;
	c->next = &rc->live;
	rc->live.prev->next = c;
	rc->live.prev = c;
	rc->stats.pending++;
	return c;
}

static void node_reply(cs_redis *r, redisReply *reply, void *priv);

/* Sends c to n (after ASKING, pipelined on the same connection, when asking). */
static int cmd_send(rc_cmd *c, rc_node *n, bool asking)
{
	if (!cs_redis_ready(n->r))
		return -1;
	if (asking) {
		/* ASKING and the command must both go out, or ASKING would apply to whatever
		 * command follows on this connection. */
		int maxp = c->rc->tmpl.max_pending > 0 ? c->rc->tmpl.max_pending : 65536;
		if (cs_redis_get_stats(n->r)->pending + 2 > (uint64_t)maxp)
			return -1;
		static const char *asking_argv[] = {"ASKING"};
		if (cs_redis_cmd(n->r, NULL, NULL, 1, asking_argv, NULL) != 0)
			return -1;
	}
	c->node = n;
	if (c->script >= 0)
		return cs_redis_script(
		        n->r, c->script, node_reply, c, c->nkeys, c->argc, c->argv, c->lens);
	return cs_redis_cmd(n->r, node_reply, c, c->argc, c->argv, c->lens);
}

static void on_retry(evutil_socket_t fd, short what, void *arg);

/* Sends c again after a backoff, if that is before its deadline. Returns false when not
 * scheduled (past the deadline, out of memory): the caller delivers. */
static bool retry_later(rc_cmd *c)
{
	cs_rc *rc = c->rc;
	int64_t ms = cs_backoff_ms(c->tries++, RETRY_BASE_MS, RETRY_MAX_MS);
	if (cs_now_us() + (uint64_t)ms * 1000u >= c->deadline_us)
		return false;
	if (c->retry == NULL)
		c->retry = evtimer_new(rc->base, on_retry, c);
	struct timeval tv = cs_tv_ms(ms);
	if (c->retry == NULL || evtimer_add(c->retry, &tv) != 0)
		return false;
	c->node = NULL;
	return true;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	rc_cmd *c = arg;
	cs_rc *rc = c->rc;
	/* c->node is NULL here: the node it was sent to may have been freed meanwhile. */
	int idx = rc->owner[c->slot];
	if (idx >= 0 && cmd_send(c, rc->nodes[idx], false) == 0)
		return;
	/* a master still connecting (one a MOVED named after a failover): wait for it */
	if (idx >= 0 && !cs_redis_ready(rc->nodes[idx]->r) && retry_later(c))
		return;
	rc->stats.refused++;
	request_refresh(rc);
	cmd_deliver(c, NULL);
}

static bool starts_with(const redisReply *r, const char *p)
{
	size_t l = strlen(p);
	return r->len >= l && memcmp(r->str, p, l) == 0;
}

/* Every reply of a cluster command: follows MOVED / ASK (at most max_redirects times),
 * retries TRYAGAIN / CLUSTERDOWN / LOADING with backoff until the command's deadline, else
 * delivers. A NULL reply is delivered as is: the command may have run, and only the caller
 * knows whether running it twice is harmless. */
static void node_reply(cs_redis *r, redisReply *reply, void *priv)
{
	(void)r;
	rc_cmd *c = priv;
	cs_rc *rc = c->rc;
	rc_node *n = c->node;
	if (reply == NULL) {
		n->st.errors++;
		request_refresh(rc);
		cmd_deliver(c, NULL);
		return;
	}
	if (reply->type != REDIS_REPLY_ERROR || rc->freeing) {
		cmd_deliver(c, reply);
		return;
	}
	cs_rc_redirect rd;
	if (cs_rc_parse_redirect(reply->str, reply->len, &rd) == 0) {
		if (rd.host[0] == '\0')
			memcpy(rd.host, n->host, sizeof rd.host);
		int t;
		if (rd.ask) {
			n->st.ask++;
			t = node_find_or_add(rc, rd.host, rd.port);
		} else {
			/* The slot moved for good: route it there from now on, and learn the
			 * rest of the new map soon (a reshard moves many slots). */
			n->st.moved++;
			request_refresh(rc);
			t = node_find_or_add(rc, rd.host, rd.port);
			if (t >= 0) {
				int o = rc->owner[rd.slot];
				if (o < 0)
					rc->stats.slots_covered = (uint64_t)++rc->covered;
				else
					rc->nodes[o]->nslots--;
				rc->owner[rd.slot] = (int16_t)t;
				rc->nodes[t]->nslots++;
				rc->map_version++;
			}
		}
		if (c->redirects >= rc->max_redirects || cs_now_us() >= c->deadline_us) {
			/* past the deadline: no new send (each would wait a timeout of its own) */
			rc->stats.redirects_exhausted++;
		} else if (t >= 0) {
			c->redirects++;
			if (cmd_send(c, rc->nodes[t], rd.ask) == 0)
				return;
			/* MOVED to a master not connected yet (a replica that took over): sent
			 * once it is, by on_retry (an ASK needs its ASKING on the target now) */
			if (!rd.ask && !cs_redis_ready(rc->nodes[t]->r) && retry_later(c))
				return;
		}
		n->st.errors++;
		cmd_deliver(c, reply);
		return;
	}
	/* TRYAGAIN: a multi-key command in a slot being migrated; CLUSTERDOWN: no quorum or a
	 * slot without a master (a failover in progress); LOADING: a restarted master reading
	 * its data. Each passes in time, or the deadline delivers the error. */
	if (starts_with(reply, "TRYAGAIN") || starts_with(reply, "CLUSTERDOWN") ||
	        starts_with(reply, "LOADING")) {
		n->st.tryagain++;
		if (starts_with(reply, "CLUSTERDOWN"))
			request_refresh(rc);
		if (retry_later(c))
			return;
		rc->stats.retry_timeouts++;
		n->st.errors++;
	}
	cmd_deliver(c, reply);
}

/* ---- Slot map refresh ---- */

/* Makes the map's masters the node set: kept nodes keep their order, new ones are appended,
 * the others go to the graveyard. */
static void apply_map(cs_rc *rc, const cs_rc_map *m)
{
	rc_node *keep[CS_RC_MAX_NODES];
	int16_t to_new[CS_RC_MAX_NODES];
	bool matched[CS_RC_MAX_NODES] = {false};
	int k = 0;
	bool changed = false;
	for (int i = 0; i < m->nnodes; i++)
		to_new[i] = -1;
	for (int j = 0; j < rc->nnodes; j++) {
		rc_node *n = rc->nodes[j];
		int i;
		for (i = 0; i < m->nnodes; i++)
			if (!matched[i] && m->node[i].port == n->port &&
			        strcmp(m->node[i].host, n->host) == 0)
				break;
		if (i == m->nnodes) {
			cs_info("redis cluster %s: node %s left the map", rc->name, n->addr);
			node_bury(rc, n);
			changed = true;
			continue;
		}
		matched[i] = true;
		to_new[i] = (int16_t)k;
		keep[k++] = n;
	}
	for (int i = 0; i < m->nnodes; i++) {
		if (matched[i])
			continue;
		rc_node *n = node_new(rc, m->node[i].host, m->node[i].port);
		if (n == NULL)
			continue; /* its slots stay unserved; the next refresh tries again */
		cs_info("redis cluster %s: node %s joined the map", rc->name, n->addr);
		to_new[i] = (int16_t)k;
		keep[k++] = n;
		changed = true;
	}
	memcpy(rc->nodes, keep, (size_t)k * sizeof keep[0]);
	rc->nnodes = k;
	rc->map_version++;
	int covered = 0;
	for (int i = 0; i < k; i++)
		rc->nodes[i]->nslots = 0;
	for (int s = 0; s < CS_RC_SLOTS; s++) {
		int16_t o = m->owner[s];
		rc->owner[s] = o < 0 ? -1 : to_new[o];
		if (rc->owner[s] >= 0) {
			covered++;
			rc->nodes[rc->owner[s]]->nslots++;
		}
	}
	if (covered != rc->covered)
		cs_info("redis cluster %s: %d of %d slots served", rc->name, covered, CS_RC_SLOTS);
	rc->covered = covered;
	rc->stats.slots_covered = (uint64_t)covered;
	rc->stats.refreshes++;
	if (changed)
		nodes_changed(rc);
}

/* A partial view (a node restarted and not yet told of every master) must not drop a slot's
 * owner that it does not replace: such slots keep their owner, and another node is asked. */
static void keep_owners(cs_rc *rc, const rc_node *from, cs_rc_map *m)
{
	if (rc->covered == 0)
		return;
	cs_rc_map *prev = malloc(sizeof *prev);
	if (prev == NULL)
		return; /* the map applies as it is: its unowned slots wait for the next refresh */
	prev->nnodes = rc->nnodes;
	for (int i = 0; i < rc->nnodes; i++) {
		memcpy(prev->node[i].host, rc->nodes[i]->host, sizeof prev->node[i].host);
		prev->node[i].port = rc->nodes[i]->port;
	}
	memcpy(prev->owner, rc->owner, sizeof prev->owner);
	int kept = cs_rc_map_keep_owners(m, prev);
	free(prev);
	if (kept > 0)
		rc->stats.partial_maps++;
	/* once per change, not per refresh: a master that failed with no replica to take
	 * over stays in every map's gap (review V4) */
	if (kept > 0 && kept != rc->kept_slots) {
		cs_info("redis cluster %s: %s's map leaves %d served slots unowned: their owners "
		        "are kept, another node is asked",
		        rc->name, from->addr, kept);
		request_refresh(rc);
	}
	rc->kept_slots = kept;
}

static void refresh_reply(cs_redis *r, redisReply *reply, void *priv)
{
	(void)r;
	rc_node *n = priv;
	cs_rc *rc = n->rc;
	rc->refresh_inflight = false;
	if (rc->freeing)
		return;
	/* a refresh asked for while this one was in flight: due now (request_refresh did not
	 * arm the tick for it); one asked for below arms it itself */
	if (rc->want_refresh)
		tick_at(rc, rc->next_refresh_us);
	if (reply == NULL) {
		rc->stats.refresh_errors++;
		request_refresh(rc);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		if (!rc->use_slots && starts_with(reply, "ERR unknown subcommand")) {
			cs_info("redis cluster %s: no CLUSTER SHARDS (Redis < 7): CLUSTER SLOTS",
			        rc->name);
			rc->use_slots = true;
			rc->next_refresh_us = 0;
		} else {
			/* at most one line every 10 s: a refresh is retried every 100 ms */
			uint64_t now = cs_now_us();
			if (now - rc->refresh_warned_us >= 10000000u) {
				rc->refresh_warned_us = now;
				cs_warn("redis cluster %s: slot map from %s: %s%s", rc->name, n->addr,
				        reply->str,
				        strstr(reply->str, "cluster support disabled")
				                ? " (a plain Redis: set [redis] cluster = off and url)"
				                : "");
			}
			rc->stats.refresh_errors++;
		}
		request_refresh(rc);
		return;
	}
	cs_rc_map *m = malloc(sizeof *m);
	char err[256];
	if (m == NULL) {
		rc->stats.refresh_errors++;
		request_refresh(rc);
		return;
	}
	int rv = rc->use_slots ? cs_rc_map_from_slots(reply, n->host, m, err, sizeof err)
	                       : cs_rc_map_from_shards(reply, n->host, m, err, sizeof err);
	if (rv == 0 && rc->covered > 0 && cs_rc_map_covered(m) == 0) {
		/* A node that knows no slot at all (restarted without its nodes.conf, not yet
		 * joined, cut off): its view must not drop every master. Ask another one. */
		snprintf(err, sizeof err, "the node serves no slot and knows no master that does");
		rv = -1;
	}
	if (rv != 0) {
		uint64_t now = cs_now_us(); /* at most one line every 10 s, as above */
		if (now - rc->refresh_warned_us >= 10000000u) {
			rc->refresh_warned_us = now;
			cs_warn("redis cluster %s: slot map from %s: %s", rc->name, n->addr, err);
		}
		rc->stats.refresh_errors++;
		request_refresh(rc);
	} else {
		n->st.refreshes++;
		keep_owners(rc, n, m);
		apply_map(rc, m);
	}
	free(m);
}

/* No node answers: connect to the seeds again (a whole new set of masters, or every old one
 * gone), each once. */
static void add_seeds(cs_rc *rc)
{
	for (int i = 0; i < rc->nseeds; i++) {
		if (node_index(rc, rc->seeds[i].host, rc->seeds[i].port) >= 0)
			continue;
		cs_info("redis cluster %s: no node ready: trying seed %s:%d", rc->name,
		        rc->seeds[i].host, rc->seeds[i].port);
		(void)node_find_or_add(rc, rc->seeds[i].host, rc->seeds[i].port);
	}
}

static void start_refresh(cs_rc *rc, uint64_t now)
{
	for (int k = 0; k < rc->nnodes; k++) {
		rc_node *n = rc->nodes[(rc->rr + k) % rc->nnodes];
		if (!cs_redis_ready(n->r))
			continue;
		static const char *shards[] = {"CLUSTER", "SHARDS"};
		static const char *slots[] = {"CLUSTER", "SLOTS"};
		if (cs_redis_cmd(n->r, refresh_reply, n, 2, rc->use_slots ? slots : shards, NULL) !=
		        0)
			continue;
		rc->rr = (rc->rr + k + 1) % rc->nnodes;
		rc->refresh_inflight = true;
		rc->want_refresh = false;
		rc->none_ready_since_us = 0;
		rc->next_refresh_us = now + REFRESH_GAP_MS * 1000u;
		return;
	}
	if (rc->none_ready_since_us == 0)
		rc->none_ready_since_us = now;
	else if (now - rc->none_ready_since_us > SEEDS_AFTER_MS * 1000u) {
		rc->none_ready_since_us = now;
		add_seeds(rc);
	}
	rc->next_refresh_us = now + REFRESH_GAP_MS * 1000u;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cs_rc *rc = arg;
	rc->tick_at_us = 0;
	uint64_t now = cs_now_us();
	for (rc_node **pp = &rc->dead; *pp != NULL;) {
		rc_node *n = *pp;
		if (cs_redis_get_stats(n->r)->pending == 0 || now > n->free_after_us) {
			*pp = n->next_dead;
			node_free(n);
		} else {
			pp = &n->next_dead;
		}
	}
	if (now >= rc->next_periodic_us) {
		rc->want_refresh = true;
		rc->next_periodic_us = now + (uint64_t)rc->refresh_ms * 1000u;
	}
	if (rc->want_refresh && !rc->refresh_inflight && now >= rc->next_refresh_us)
		start_refresh(rc, now);
	tick_rearm(rc);
}

/* ---- Public API ---- */

static int cluster_setup(cs_rc *rc, const cs_rc_opts *o, char *err, size_t errlen)
{
	cs_redis_url u;
	char why[256];
	if (!cs_redis_url_parse(o->node.url, &u, why, sizeof why)) {
		snprintf(err, errlen, "redis url: %s", why);
		return -1;
	}
	int rv = -1;
	if (u.unix_path[0]) {
		snprintf(err, errlen, "redis cluster: nodes are host:port, not a unix socket");
		goto out;
	}
	if (u.db != 0) {
		snprintf(err, errlen, "redis cluster: only database 0 exists (url has /%d)", u.db);
		goto out;
	}
	char user[400], pass[800];
	if (!pct_encode(u.username, user, sizeof user) || !pct_encode(u.password, pass, sizeof pass)) {
		explicit_bzero(pass, sizeof pass);
		snprintf(err, errlen, "redis url: user or password too long");
		goto out;
	}
	char info[1300]; /* "user:password@" (no password: no user, as AUTH) */
	if (u.password[0])
		snprintf(info, sizeof info, "%s:%s@", user, pass);
	else
		info[0] = '\0';
	rc->userinfo = strdup(info);
	explicit_bzero(pass, sizeof pass);
	explicit_bzero(info, sizeof info);
	int nseeds = o->nseeds > 0 ? o->nseeds : 1;
	rc->seeds = calloc((size_t)nseeds, sizeof *rc->seeds);
	if (rc->userinfo == NULL || rc->seeds == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (o->nseeds > 0) {
		for (int i = 0; i < o->nseeds; i++) {
			if (cs_rc_parse_endpoint(o->seeds[i], strlen(o->seeds[i]), &rc->seeds[i]) !=
			        0) {
				snprintf(err, errlen, "redis cluster: bad node '%s' (host:port)",
				        o->seeds[i]);
				goto out;
			}
		}
	} else {
		snprintf(rc->seeds[0].host, sizeof rc->seeds[0].host, "%s", u.host);
		rc->seeds[0].port = u.port;
	}
	rc->nseeds = nseeds;
	rv = 0;
out:
	explicit_bzero(&u, sizeof u);
	return rv;
}

cs_rc *cs_rc_new(struct event_base *base, const cs_rc_opts *o, char *err, size_t errlen)
{
	cs_rc *rc = calloc(1, sizeof *rc);
	if (rc == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rc->base = base;
	rc->cluster = o->cluster;
	rc->live.next = rc->live.prev = &rc->live;
	if (!o->cluster) {
		rc->single = cs_redis_new(base, &o->node, err, errlen);
		if (rc->single == NULL) {
			free(rc);
			return NULL;
		}
		cs_redis_set_owner(rc->single, rc);
		return rc;
	}
	rc->tmpl = o->node;
	rc->name = strdup(o->node.name ? o->node.name : "redis");
	rc->user_on_state = o->node.on_state;
	rc->user_state_priv = o->node.state_priv;
	rc->on_nodes = o->on_nodes;
	rc->nodes_priv = o->nodes_priv;
	rc->refresh_ms = o->refresh_ms > 0 ? o->refresh_ms : DEFAULT_REFRESH_MS;
	rc->max_redirects = o->max_redirects > 0 ? o->max_redirects : 0;
	for (int s = 0; s < CS_RC_SLOTS; s++)
		rc->owner[s] = -1;
	if (rc->name == NULL || cluster_setup(rc, o, err, errlen) != 0)
		goto fail;
	if (o->node.nscripts > 0) {
		rc->scripts = calloc((size_t)o->node.nscripts, sizeof *rc->scripts);
		if (rc->scripts == NULL)
			goto oom;
		rc->nscripts = o->node.nscripts;
		for (int i = 0; i < rc->nscripts; i++)
			if ((rc->scripts[i] = strdup(o->node.scripts[i])) == NULL)
				goto oom;
	}
	rc->tmpl.scripts = (const char *const *)rc->scripts;
	rc->tmpl.name = rc->name;
	rc->tmpl.url = NULL;
	rc->tick = evtimer_new(base, on_tick, rc);
	if (rc->tick == NULL)
		goto oom;
	rc->want_refresh = true;
	rc->next_periodic_us = cs_now_us() + (uint64_t)rc->refresh_ms * 1000u;
	for (int i = 0; i < rc->nseeds && rc->nnodes < CS_RC_MAX_NODES; i++) {
		if (node_index(rc, rc->seeds[i].host, rc->seeds[i].port) >= 0)
			continue;
		rc_node *n = node_new(rc, rc->seeds[i].host, rc->seeds[i].port);
		if (n == NULL) {
			snprintf(err, errlen, "redis cluster: cannot connect to %s:%d",
			        rc->seeds[i].host, rc->seeds[i].port);
			goto fail;
		}
		rc->nodes[rc->nnodes++] = n;
	}
	tick_rearm(rc); /* the first refresh (retried every REFRESH_GAP_MS until a node is ready) */
	return rc;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	cs_rc_free(rc);
	return NULL;
}

void cs_rc_free(cs_rc *rc)
{
	if (rc == NULL)
		return;
	rc->freeing = true;
	if (rc->single) {
		cs_redis_free(rc->single);
		free(rc);
		return;
	}
	if (rc->tick)
		event_free(rc->tick);
	for (int i = 0; i < rc->nnodes; i++)
		node_free(rc->nodes[i]);
	rc->nnodes = 0;
	while (rc->dead) {
		rc_node *n = rc->dead;
		rc->dead = n->next_dead;
		node_free(n);
	}
	while (rc->live.next != &rc->live) /* waiting for a retry */
		cmd_deliver(rc->live.next, NULL);
	for (int i = 0; i < rc->nscripts; i++)
		free(rc->scripts[i]);
	free(rc->scripts);
	if (rc->userinfo) {
		explicit_bzero(rc->userinfo, strlen(rc->userinfo));
		free(rc->userinfo);
	}
	free(rc->seeds);
	free(rc->name);
	free(rc);
}

bool cs_rc_ready(const cs_rc *rc)
{
	if (!rc->cluster)
		return cs_redis_ready(rc->single);
	if (rc->covered < CS_RC_SLOTS || rc->nnodes == 0)
		return false;
	/* A master of no slot holds no key read or written here: a failed master left in the
	 * map after its replica took over (health "online" while only suspected: PFAIL) must
	 * not make every read bypass the cache until the cluster forgets it. */
	for (int i = 0; i < rc->nnodes; i++)
		if (rc->nodes[i]->nslots > 0 && !cs_redis_ready(rc->nodes[i]->r))
			return false;
	return true;
}

bool cs_rc_slot_ready(const cs_rc *rc, uint16_t slot)
{
	if (!rc->cluster)
		return cs_redis_ready(rc->single);
	int idx = rc->owner[slot & (CS_RC_SLOTS - 1)];
	return idx >= 0 && cs_redis_ready(rc->nodes[idx]->r);
}

/* The ready master of slot, or NULL (then a refresh is asked for). */
static rc_node *route(cs_rc *rc, uint16_t slot)
{
	int idx = rc->owner[slot & (CS_RC_SLOTS - 1)];
	if (idx >= 0 && cs_redis_ready(rc->nodes[idx]->r))
		return rc->nodes[idx];
	rc->stats.refused++;
	request_refresh(rc);
	return NULL;
}

/* Cluster mode: routes a command (script = -1) or a script to the slot's master and sends it.
 * Returns 0 (cb will run) or -1 (no ready master for the slot, out of memory, freeing). */
static int submit(cs_rc *rc, uint16_t slot, int script, cs_rc_cb *cb, void *priv, int nkeys,
        int argc, const char **argv, const size_t *lens)
{
	if (rc->freeing)
		return -1;
	rc_node *n = route(rc, slot);
	if (n == NULL)
		return -1;
	rc_cmd *c = cmd_new(rc, slot, script, cb, priv, nkeys, argc, argv, lens);
	if (c == NULL)
		return -1;
	if (cmd_send(c, n, false) != 0) {
		cmd_unlink_free(c);
		return -1;
	}
	return 0;
}

int cs_rc_cmd(cs_rc *rc, uint16_t slot, cs_rc_cb *cb, void *priv, int argc, const char **argv,
        const size_t *lens)
{
	if (!rc->cluster)
		return cs_redis_cmd_fwd(
		        rc->single, single_reply, (cs_redis_fn)cb, priv, argc, argv, lens);
	return submit(rc, slot, -1, cb, priv, 0, argc, argv, lens);
}

int cs_rc_script(cs_rc *rc, uint16_t slot, int script, cs_rc_cb *cb, void *priv, int nkeys,
        int argc, const char **argv, const size_t *lens)
{
	if (!rc->cluster)
		return cs_redis_script_fwd(rc->single, script, single_reply, (cs_redis_fn)cb, priv,
		        nkeys, argc, argv, lens);
	if (script < 0 || script >= rc->nscripts || nkeys > argc)
		return -1;
	return submit(rc, slot, script, cb, priv, nkeys, argc, argv, lens);
}

int cs_rc_nnodes(const cs_rc *rc)
{
	return rc->cluster ? rc->nnodes : 1;
}

cs_redis *cs_rc_node(cs_rc *rc, int i)
{
	if (!rc->cluster)
		return i == 0 ? rc->single : NULL;
	return i >= 0 && i < rc->nnodes ? rc->nodes[i]->r : NULL;
}

const char *cs_rc_node_addr(const cs_rc *rc, int i)
{
	if (!rc->cluster)
		return i == 0 ? cs_redis_url_masked(rc->single) : NULL;
	return i >= 0 && i < rc->nnodes ? rc->nodes[i]->addr : NULL;
}

int cs_rc_node_slots(const cs_rc *rc, int i)
{
	if (!rc->cluster)
		return i == 0 ? CS_RC_SLOTS : 0;
	return i >= 0 && i < rc->nnodes ? rc->nodes[i]->nslots : 0;
}

int cs_rc_slot_node(const cs_rc *rc, uint16_t slot)
{
	return rc->cluster ? rc->owner[slot & (CS_RC_SLOTS - 1)] : 0;
}

uint64_t cs_rc_map_version(const cs_rc *rc)
{
	return rc->map_version;
}

void cs_rc_get_node_stats(const cs_rc *rc, int i, cs_rc_node_stats *out)
{
	memset(out, 0, sizeof *out);
	const cs_redis *r = rc->cluster ? (i >= 0 && i < rc->nnodes ? rc->nodes[i]->r : NULL)
	                                : (i == 0 ? rc->single : NULL);
	if (r == NULL)
		return;
	if (rc->cluster)
		*out = rc->nodes[i]->st;
	const cs_redis_stats *rs = cs_redis_get_stats(r);
	out->connects = rs->connects;
	out->disconnects = rs->disconnects;
	out->timeouts = rs->timeouts;
}

const cs_rc_stats *cs_rc_get_stats(const cs_rc *rc)
{
	return &rc->stats;
}

bool cs_rc_resent(const cs_rc *rc)
{
	return rc->delivering_resent;
}

bool cs_rc_cluster(const cs_rc *rc)
{
	return rc->cluster;
}

void cs_rc_refresh(cs_rc *rc)
{
	if (rc->cluster)
		request_refresh(rc);
}
