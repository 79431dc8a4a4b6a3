/* inv_retry.c - review V2: on a Redis Cluster, a command of a commit that its node did not
 * take (refused at once: no ready master for its slot; or no reply: timeout, connection
 * lost; or CLUSTERDOWN, TRYAGAIN, LOADING, MOVED/ASK past the redirects...) no longer
 * restarts the stream. It waits in a bounded queue per node and is sent again with a
 * backoff, while the other nodes' commands and later commits keep flowing. Its commit stays
 * held in the ledger meanwhile (its hold is released only by the command's acknowledgement),
 * so nothing past it is confirmed: I4 holds (CLUSTER.md section 7, V2, for why a late or
 * repeated command is harmless).
 *
 * Per node: one probe at a time. After a node's backoff, the oldest queued command is sent
 * (routed by its slot again: a slot that moved reaches its new master); while it is out,
 * nothing else of the queue is. Acknowledged: the whole queue is sent at once. Failed again:
 * it goes back to the front and the backoff doubles (50 ms up to 2 s). A queue past its bound
 * (commands or bytes per node, bytes over every node) restarts the stream, as before V2:
 * logged and counted. Errors that no retry can fix (EPOCH: the epoch checks must still find a
 * lost node; a script error) restart as before. */
#include "inv_int.h"

struct inv_rq {
	char node[CS_RC_HOST_MAX + 8]; /* "host:port", or "none" */
	cmdctx *head, *tail;
	int64_t n, bytes;
	int fails;
	uint64_t next_us; /* no probe before */
	bool probing;
};

bool inv_rq_on(const cs_inv *inv)
{
	return inv->ks.cluster && inv->rq_max_cmds > 0;
}

uint16_t inv_bucket_slot(cs_inv *inv, uint32_t b)
{
	if (!inv->ks.cluster)
		return 0;
	char pre[CS_KS_PREFIX_MAX + 1];
	return cs_rc_keyslot(pre, cs_ks_prefix(&inv->ks, b, pre, sizeof pre));
}

cmdctx *inv_cmd_make(cs_inv *inv, uint64_t seq, int script, uint16_t slot, cs_rc_cb *cb, int nkeys,
        int argc, const char **argv, const size_t *lens)
{
	if (argc <= 0 || argc > 4 * BATCH_KEYS + 8)
		return NULL;
	size_t bytes = 0;
	for (int i = 0; i < argc; i++)
		bytes += lens[i];
	size_t size = sizeof(cmdctx) + (size_t)argc * sizeof(size_t) + bytes;
	cmdctx *c = calloc(1, size);
	if (c == NULL)
		return NULL;
	c->inv = inv;
	c->epoch = inv->epoch;
	c->seq = seq;
	c->query = -1;
	c->rq = -1;
	c->cb = cb;
	c->script = script;
	c->slot = slot;
	c->nkeys = nkeys;
	c->argc = argc;
	c->size = size;
	char *p = (char *)(c->data + argc);
	for (int i = 0; i < argc; i++) {
		c->data[i] = lens[i];
		memcpy(p, argv[i], lens[i]);
		p += lens[i];
	}
	return c;
}

/* Sends c's command again as it was built; as cs_rc_cmd. */
static int cmd_send(cs_inv *inv, cmdctx *c)
{
	const char *argv[4 * BATCH_KEYS + 8];
	const char *p = (const char *)(c->data + c->argc);
	for (int i = 0; i < c->argc; i++) {
		argv[i] = p;
		p += c->data[i];
	}
	if (c->script < 0)
		return cs_rc_cmd(inv->rc, c->slot, c->cb, c, c->argc, argv, c->data);
	return cs_rc_script(
	        inv->rc, c->slot, c->script, c->cb, c, c->nkeys, c->argc, argv, c->data);
}

/* The queue of the node that serves c's slot now ("none": nobody); -1 on OOM. */
static int rq_of(cs_inv *inv, uint16_t slot)
{
	if (inv->rq == NULL && (inv->rq = calloc(RQ_NODES, sizeof *inv->rq)) == NULL)
		return -1;
	int n = cs_rc_slot_node(inv->rc, slot);
	const char *addr = n >= 0 ? cs_rc_node_addr(inv->rc, n) : NULL;
	if (addr == NULL)
		addr = "none";
	int spare = -1;
	for (int i = 0; i < inv->nrq; i++) {
		if (strcmp(inv->rq[i].node, addr) == 0)
			return i;
		if (spare < 0 && inv->rq[i].n == 0 && !inv->rq[i].probing)
			spare = i;
	}
	if (inv->nrq < RQ_NODES)
		spare = inv->nrq++;
	else if (spare < 0)
		spare = RQ_NODES - 1; /* not reached: more addresses than masters, all busy */
	struct inv_rq *q = &inv->rq[spare];
	if (q->n == 0 && !q->probing) {
		*q = (struct inv_rq){.n = 0};
		snprintf(q->node, sizeof q->node, "%s", addr);
	}
	return spare;
}

static void rq_backoff(struct inv_rq *q)
{
	q->next_us = cs_now_us() +
	             (uint64_t)cs_backoff_ms(q->fails, RQ_RETRY_BASE_MS, RQ_RETRY_MAX_MS) * 1000u;
	if (q->fails < 30)
		q->fails++;
}

/* Queues c (front: a probe that failed, back where it was taken). 0, or -1: past the bound,
 * c freed and the stream restarted. */
static int rq_put(cs_inv *inv, cmdctx *c, bool front)
{
	int i = rq_of(inv, c->slot);
	struct inv_rq *q = i >= 0 ? &inv->rq[i] : NULL;
	if (q == NULL || q->n + 1 > inv->rq_max_cmds ||
	        q->bytes + (int64_t)c->size > inv->rq_max_bytes ||
	        inv->rq_bytes + (int64_t)c->size > RQ_MAX_TOTAL_BYTES) {
		char why[400];
		snprintf(why, sizeof why,
		        "the retry queue of redis node %s is full (%lld commands, %lld bytes; "
		        "%lld bytes over every node): giving up on it (review V2)",
		        q ? q->node : "?", q ? (long long)q->n : 0LL, q ? (long long)q->bytes : 0LL,
		        (long long)inv->rq_bytes);
		free(c);
		inv->stats.rq_overflows++;
		inv->stats.redis_failures++;
		inv_restart(inv, why, false);
		return -1;
	}
	if (q->n == 0 && !q->probing && !front) { /* a probe that failed backed off already */
		if (q->fails == 0)
			cs_warn("invalidator: redis node %s did not take an invalidation: retrying "
			        "it "
			        "with a backoff; nothing is confirmed past its commit meanwhile",
			        q->node);
		rq_backoff(q);
	}
	c->rq = i;
	c->probe = false;
	if (front) {
		c->next = q->head;
		q->head = c;
		if (q->tail == NULL)
			q->tail = c;
	} else {
		c->next = NULL;
		if (q->tail)
			q->tail->next = c;
		else
			q->head = c;
		q->tail = c;
	}
	q->n++;
	q->bytes += (int64_t)c->size;
	inv->rq_bytes += (int64_t)c->size;
	inv->stats.rq_depth++;
	return 0;
}

static cmdctx *rq_pop(cs_inv *inv, struct inv_rq *q)
{
	cmdctx *c = q->head;
	if (c == NULL)
		return NULL;
	q->head = c->next;
	if (q->head == NULL)
		q->tail = NULL;
	c->next = NULL;
	q->n--;
	q->bytes -= (int64_t)c->size;
	inv->rq_bytes -= (int64_t)c->size;
	inv->stats.rq_depth--;
	return c;
}

int inv_cmd_go(cs_inv *inv, cmdctx *c, int owes, const char *why)
{
	c->owes = owes;
	if (cmd_send(inv, c) == 0) {
		inv_cmd_sent(inv, c, owes);
		return 0;
	}
	if (!inv_rq_on(inv)) {
		free(c);
		inv->stats.redis_failures++;
		inv_restart(inv, why, false);
		return -1;
	}
	inv->stats.rq_queued++;
	return rq_put(inv, c, false);
}

/* Failures a later try can fix: no reply (timeout, connection lost, shutdown) or a cluster
 * state error. Not EPOCH (a node that lost data must be found lost: the stream restarts and
 * resynchronises), nor a script or type error (a retry would fail alike). */
static bool retryable(const redisReply *reply)
{
	if (reply == NULL)
		return true;
	if (reply->type != REDIS_REPLY_ERROR || reply->str == NULL)
		return false;
	static const char *const words[] = {"CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN",
	        "MOVED", "ASK", "BUSY", "READONLY", "NOREPLICAS"};
	size_t n = strcspn(reply->str, " ");
	for (size_t i = 0; i < CS_ARRAY_LEN(words); i++)
		if (n == strlen(words[i]) && strncmp(reply->str, words[i], n) == 0)
			return true;
	return false;
}

bool inv_rq_failed(cs_inv *inv, cmdctx *c, const redisReply *reply)
{
	if (c->argc == 0 || !inv_rq_on(inv) || !retryable(reply))
		return false;
	int was = c->probe ? c->rq : -1;
	c->counted = false; /* no longer in flight (inv_on_cmd_reply uncounted it) */
	c->reserve = 0;
	inv->stats.rq_queued++;
	if (was >= 0) {
		inv->rq[was].probing = false;
		rq_backoff(&inv->rq[was]);
	}
	rq_put(inv, c, was >= 0);
	return true;
}

/* Sends q's commands: all of them (drain), or the oldest alone (a probe). A send refused at
 * once puts it back and backs off. */
static void rq_send(cs_inv *inv, int i, bool drain)
{
	struct inv_rq *q = &inv->rq[i];
	uint64_t ep = inv->epoch;
	while (q->head && !q->probing && ep == inv->epoch) {
		cmdctx *c = rq_pop(inv, q);
		inv->stats.rq_retries++;
		c->probe = !drain;
		c->rq = i;
		if (cmd_send(inv, c) != 0) {
			c->probe = false;
			/* straight back: its slot's owner may have changed, keep it here */
			c->next = q->head;
			q->head = c;
			if (q->tail == NULL)
				q->tail = c;
			q->n++;
			q->bytes += (int64_t)c->size;
			inv->rq_bytes += (int64_t)c->size;
			inv->stats.rq_depth++;
			rq_backoff(q);
			return;
		}
		inv_cmd_sent(inv, c, c->owes);
		if (!drain) {
			q->probing = true;
			return;
		}
		c->rq = -1;
	}
}

void inv_rq_ok(cs_inv *inv, cmdctx *c)
{
	if (!c->probe || c->rq < 0 || inv->rq == NULL)
		return;
	struct inv_rq *q = &inv->rq[c->rq];
	c->probe = false;
	q->probing = false;
	q->fails = 0;
	q->next_us = 0;
	if (q->head)
		cs_info("invalidator: redis node %s takes invalidations again: sending its %lld "
		        "queued commands",
		        q->node, (long long)q->n);
	rq_send(inv, c->rq, true);
}

void inv_rq_tick(cs_inv *inv)
{
	if (inv->rq == NULL || inv->st != ST_STREAMING)
		return;
	uint64_t now = cs_now_us(), ep = inv->epoch;
	for (int i = 0; i < inv->nrq && ep == inv->epoch; i++)
		if (inv->rq[i].head && !inv->rq[i].probing && now >= inv->rq[i].next_us)
			rq_send(inv, i, false);
}

void inv_rq_clear(cs_inv *inv)
{
	for (int i = 0; inv->rq && i < inv->nrq; i++) {
		struct inv_rq *q = &inv->rq[i];
		cmdctx *c;
		while ((c = rq_pop(inv, q)) != NULL)
			free(c);
		q->probing = false; /* a probe in flight belongs to the old stream */
		q->fails = 0;
		q->next_us = 0;
	}
	inv->rq_bytes = 0;
	inv->stats.rq_depth = 0;
}

void inv_rq_metrics(const cs_inv *inv, cs_metrics *m)
{
	const cs_inv_stats *s = &inv->stats;
	if (!inv->ks.cluster)
		return;
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_retry_queued_total",
	        "Cluster commands a node did not take, queued for a retry instead of restarting "
	        "the stream (review V2)",
	        s->rq_queued, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_retries_total",
	        "Cluster commands sent again from a node's retry queue", s->rq_retries, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_retry_overflows_total",
	        "A node's retry queue past its bound: the stream restarted instead",
	        s->rq_overflows, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_invalidator_retry_queue_commands",
	        "Commands waiting in the retry queues, every node", s->rq_depth, NULL);
	for (int i = 0; inv->rq && i < inv->nrq; i++) {
		cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_retry_queue_depth",
		        "Commands waiting in a node's retry queue (node: host:port when the node "
		        "failed them, \"none\" for slots without a master)",
		        (double)inv->rq[i].n, "node", inv->rq[i].node, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_retry_queue_bytes",
		        "Bytes waiting in a node's retry queue", (double)inv->rq[i].bytes, "node",
		        inv->rq[i].node, NULL);
	}
}
