/* inv_retry.c - review V2: on a Redis Cluster, a command of a commit that its node did not
 * take (refused at once: no ready master for its slot; or no reply: timeout, connection
 * lost; or CLUSTERDOWN, TRYAGAIN, LOADING, MOVED/ASK past the redirects...) no longer
 * restarts the stream. It waits in a bounded queue per node and is sent again with a
 * backoff, while the other nodes' commands and later commits keep flowing. Its commit stays
 * held in the ledger meanwhile (its hold is released only by the command's acknowledgement),
 * so nothing past it is confirmed: I4 holds (CLUSTER.md section 7, V2, for why a late or
 * repeated command is harmless).
 *
 * Two kinds of failure (review G2). A failure of the node (no reply, CLUSTERDOWN, LOADING,
 * a send refused at once...) puts the node down: one probe at a time, after its backoff
 * (50 ms doubling up to 2 s), the oldest queued command, routed by its slot again (a slot
 * that moved reaches its new master); while it is out nothing else of the queue is sent.
 * A failure of one slot (TRYAGAIN, ASK, MOVED past the redirects, or a script's "non local
 * key": the slot is migrating, V9c) is an answer: the node is up, and only that slot's
 * commands wait apart, probed alone (its oldest) with a backoff of their own, while the rest
 * of the queue drains. A node that is up drains its queue paced: at most RQ_DRAIN_TICK
 * commands per tick and RQ_DRAIN_WINDOW in flight (a queue of thousands sent in one go timed
 * out, requeued and was sent again, in a loop: CLUSTER.md V9c). A queue past its bound
 * (commands or bytes per node, bytes over every node) restarts the stream, as before V2:
 * logged and counted. Errors that no retry can fix (EPOCH: the epoch checks must still find a
 * lost node; a script error other than "non local key") restart as before.
 *
 * Review G5: a retried command checks its bucket's epoch suffix, not its node's run_id, so a
 * node back from an old snapshot (a restart from RDB or AOF everysec: the epoch copies it
 * loaded carry the resync's suffix but its former run_id) would take its queue and release
 * the holds before the next RAISE (a status interval) found the loss. So a node that was down
 * is first sent a RAISE with the run_id check (C_RAISE of the position copy of a bucket on
 * that node to 0: it never lowers a copy), and only once that passed its oldest command; every
 * later failure of the node asks for the check again; an EPOCH answer restarts the stream (the
 * SYNC finds the node's buckets foreign). */
#include "inv_int.h"

#include <limits.h>

/* A slot whose commands wait apart from their node's queue (review G2). */
struct rq_slot {
	uint16_t slot;
	bool probing; /* its oldest command is out */
	int fails;
	uint64_t next_us; /* no probe before */
	uint64_t
	        since_us; /* set apart since (review 27 R27-1: warned about past RQ_SLOT_WARN_MS) */
	uint64_t warned_us;  /* last warned (0: not yet) */
	cmdctx *head, *tail; /* its commands, oldest first */
};

#define RQ_SLOT_WARN_MS 30000 /* a slot apart this long is warned about, then once a minute */

struct inv_rq {
	char node[CS_RC_HOST_MAX + 8]; /* "host:port", or "none" */
	cmdctx *head, *tail;           /* commands to drain (oldest first), slots waiting apart
	                                * not included */
	int64_t n, bytes;              /* every command queued here, the waiting slots' too */
	int fails;
	uint64_t next_us; /* no probe before */
	bool down;        /* the node itself failed a command: one probe at a time */
	bool probing;     /* the node's probe (or its run_id check) is out */
	bool rid_check;   /* went down: a RAISE with the run_id check before its next probe (G5) */
	uint32_t rid_from; /* the bucket the check's search starts at (moves past one whose slot
	                    * answered TRYAGAIN, ASK or MOVED: migrating) */
	int out;          /* commands of this queue in flight (probes and drained ones) */
	int nslots;
	struct rq_slot slots[RQ_SLOTS];
};

/* How a command failed (review G2). */
enum rq_fail {
	RQ_FAIL_NODE, /* no reply, a node state error, or a send refused at once */
	RQ_FAIL_SLOT, /* an answer about the command's slot: TRYAGAIN, ASK, MOVED, non local key */
};

bool inv_rq_on(const cs_inv *inv)
{
	return inv->ks.cluster && inv->rq_max_cmds > 0;
}

void cs_inv_set_retry_per_slot(cs_inv *inv, bool on)
{
	inv->rq_oldest_only = !on;
}

void cs_inv_set_cluster_v9c(cs_inv *inv, bool on)
{
	inv->v9c_off = !on;
}

void cs_inv_set_retry_paced(cs_inv *inv, bool on)
{
	inv->rq_unpaced = !on;
}

void cs_inv_set_retry_rid_check(cs_inv *inv, bool on)
{
	inv->rq_no_rid = !on;
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

/* ---- lists ----------------------------------------------------------------------------- */

static void lst_push(cmdctx **head, cmdctx **tail, cmdctx *c, bool front)
{
	if (front) {
		c->next = *head;
		*head = c;
		if (*tail == NULL)
			*tail = c;
	} else {
		c->next = NULL;
		if (*tail)
			(*tail)->next = c;
		else
			*head = c;
		*tail = c;
	}
}

static cmdctx *lst_pop(cmdctx **head, cmdctx **tail)
{
	cmdctx *c = *head;
	if (c == NULL)
		return NULL;
	*head = c->next;
	if (*head == NULL)
		*tail = NULL;
	c->next = NULL;
	return c;
}

static void acct(cs_inv *inv, struct inv_rq *q, const cmdctx *c, int sign)
{
	q->n += sign;
	q->bytes += sign * (int64_t)c->size;
	inv->rq_bytes += sign * (int64_t)c->size;
	if (sign > 0)
		inv->stats.rq_depth++;
	else
		inv->stats.rq_depth--;
}

/* ---- queues and waiting slots ---------------------------------------------------------- */

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
		if (spare < 0 && inv->rq[i].n == 0 && inv->rq[i].out == 0)
			spare = i;
	}
	if (inv->nrq < RQ_NODES)
		spare = inv->nrq++;
	else if (spare < 0)
		spare = RQ_NODES - 1; /* not reached: more addresses than masters, all busy */
	struct inv_rq *q = &inv->rq[spare];
	if (q->n == 0 && q->out == 0) {
		memset(q, 0, sizeof *q);
		snprintf(q->node, sizeof q->node, "%s", addr);
	}
	return spare;
}

static struct rq_slot *slot_find(struct inv_rq *q, uint16_t slot)
{
	for (int k = 0; k < q->nslots; k++)
		if (q->slots[k].slot == slot)
			return &q->slots[k];
	return NULL;
}

/* Sets slot apart: its queued commands move from the queue to the slot's own list, keeping
 * their order. NULL when RQ_SLOTS are apart already (the node then waits as a whole). */
static struct rq_slot *slot_hold(cs_inv *inv, struct inv_rq *q, uint16_t slot)
{
	if (q->nslots >= RQ_SLOTS)
		return NULL;
	struct rq_slot *s = &q->slots[q->nslots++];
	*s = (struct rq_slot){.slot = slot, .since_us = cs_now_us()};
	cmdctx *keep_h = NULL, *keep_t = NULL, *c;
	while ((c = lst_pop(&q->head, &q->tail)) != NULL) {
		if (c->slot == slot)
			lst_push(&s->head, &s->tail, c, false);
		else
			lst_push(&keep_h, &keep_t, c, false);
	}
	q->head = keep_h;
	q->tail = keep_t;
	inv->stats.rq_slot_holds++;
	cs_info("invalidator%s%s: redis node %s answers for slot %u that it cannot take its "
	        "commands yet (migrating): they wait apart, the node's other commands go on "
	        "(review G2)",
	        INV_LOG_SHARD(inv), q->node, (unsigned)slot);
	return s;
}

/* The slot answered: its commands go back to the front of the queue and drain with it (any
 * order of a bucket's commands is harmless, V2). */
static void slot_release(struct inv_rq *q, struct rq_slot *s)
{
	if (s->tail) {
		s->tail->next = q->head;
		q->head = s->head;
		if (q->tail == NULL)
			q->tail = s->tail;
	}
	*s = q->slots[--q->nslots];
}

static void rq_backoff(int *fails, uint64_t *next_us)
{
	*next_us = cs_now_us() +
	           (uint64_t)cs_backoff_ms(*fails, RQ_RETRY_BASE_MS, RQ_RETRY_MAX_MS) * 1000u;
	if (*fails < 30)
		(*fails)++;
}

/* Queues c, which failed as `how`; `was` is how it had been sent from a queue (RQ_SENT_NONE:
 * a first send). A probe goes back to the front of its list, any other command to the back.
 * 0, or -1: past the bound, c freed and the stream restarted. */
static int rq_put(cs_inv *inv, cmdctx *c, enum rq_fail how, int was)
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
	bool probe = was == RQ_SENT_NODE || was == RQ_SENT_SLOT;
	c->rq = i;
	c->probe = false;
	c->sent_as = RQ_SENT_NONE;
	struct rq_slot *s = slot_find(q, c->slot);
	bool held_now = false;
	if (s == NULL && how == RQ_FAIL_SLOT && !inv->rq_oldest_only) {
		s = slot_hold(inv, q, c->slot);
		held_now = s != NULL;
	}
	if (s)
		lst_push(&s->head, &s->tail, c, probe);
	else
		lst_push(&q->head, &q->tail, c, probe);
	acct(inv, q, c, 1);
	if (how == RQ_FAIL_SLOT && s != NULL) {
		/* an answer about its slot: the node is up; the slot waits alone (while the node's
		 * own probe is out, its reply decides: review 27 R27-3; nor while its run_id check
		 * is owed: an answer says the node is up, not that it is the run that took the
		 * queue, review 39 R39-1) */
		if (!q->probing && !(q->rid_check && !inv->rq_no_rid)) {
			if (q->down && q->fails > 0)
				cs_info("invalidator%s%s: redis node %s answers again",
				        INV_LOG_SHARD(inv), q->node);
			q->down = false;
			q->fails = 0;
			q->next_us = 0;
		}
		if (held_now || probe)
			rq_backoff(&s->fails, &s->next_us);
		inv_tick_rearm(inv); /* its retry's deadline (issue 16) */
		return 0;
	}
	/* the node failed (or, oldest-only probing / every slot apart taken, the slot's failure
	 * stops the node as before G2); whatever passed the run_id check before may have
	 * restarted since: checked again before its next probe (G5) */
	q->rid_check = true;
	if (!q->down) {
		q->down = true;
		q->probing = false;
		if (q->fails == 0)
			cs_warn("invalidator%s%s: redis node %s did not take an invalidation: "
			        "retrying "
			        "it with a backoff; nothing is confirmed past its commit meanwhile",
			        INV_LOG_SHARD(inv), q->node);
		rq_backoff(&q->fails, &q->next_us);
	} else if (was == RQ_SENT_NODE) {
		rq_backoff(&q->fails, &q->next_us);
	}
	inv_tick_rearm(inv); /* its retry's deadline (issue 16) */
	return 0;
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
	return rq_put(inv, c, RQ_FAIL_NODE, RQ_SENT_NONE);
}

/* Failures a later try can fix: no reply (timeout, connection lost, shutdown), a cluster
 * state error, or (review V9c) a script that touched a key its node no longer holds ("non
 * local key": C_INVAL DELs, in its body, an entry that its migrating slot moved ahead of the
 * bucket's declared keys, or that does not exist). Not EPOCH (a node that lost data must be
 * found lost: the stream restarts and resynchronises), nor any other script or type error
 * (a retry would fail alike). *how: the node's failure or the slot's. */
static bool retryable(
        const cs_inv *inv, const cmdctx *c, const redisReply *reply, enum rq_fail *how)
{
	*how = RQ_FAIL_NODE;
	if (reply == NULL)
		return true;
	if (reply->type != REDIS_REPLY_ERROR || reply->str == NULL)
		return false;
	size_t n = strcspn(reply->str, " ");
	static const char *const slot_words[] = {"TRYAGAIN", "ASK", "MOVED"};
	for (size_t i = 0; i < CS_ARRAY_LEN(slot_words); i++)
		if (n == strlen(slot_words[i]) && strncmp(reply->str, slot_words[i], n) == 0) {
			*how = RQ_FAIL_SLOT;
			return true;
		}
	/* C_INVAL stopped at the first entry its node no longer holds (Redis 7.0: "Script
	 * attempted to access a non local key in a cluster node"); what it did before (earlier
	 * entries' DELs, fences raised to a max) is harmless done again (V2). It lands once the
	 * slot's keys have moved (ASKed) or the slot is finished (review V9c). Only C_INVAL:
	 * every other command declares every key it touches, so there it is a bug, which must
	 * restart the stream loudly, not wait (review 27 R27-1). */
	if (!inv->v9c_off && c->script == CS_SCRIPT_C_INVAL &&
	        strstr(reply->str, "non local key") != NULL) {
		*how = RQ_FAIL_SLOT;
		return true;
	}
	static const char *const words[] = {
	        "CLUSTERDOWN", "LOADING", "MASTERDOWN", "BUSY", "READONLY", "NOREPLICAS"};
	for (size_t i = 0; i < CS_ARRAY_LEN(words); i++)
		if (n == strlen(words[i]) && strncmp(reply->str, words[i], n) == 0)
			return true;
	return false;
}

/* c, sent from queue c->rq, got its reply: it is no longer out. */
static void rq_back(cs_inv *inv, cmdctx *c)
{
	struct inv_rq *q = &inv->rq[c->rq];
	if (q->out > 0)
		q->out--;
	if (c->sent_as == RQ_SENT_NODE) {
		q->probing = false;
	} else if (c->sent_as == RQ_SENT_SLOT) {
		struct rq_slot *s = slot_find(q, c->slot);
		if (s)
			s->probing = false;
	}
}

bool inv_rq_failed(cs_inv *inv, cmdctx *c, const redisReply *reply)
{
	enum rq_fail how;
	if (c->argc == 0 || !inv_rq_on(inv) || !retryable(inv, c, reply, &how))
		return false;
	int was = RQ_SENT_NONE, from = -1;
	uint16_t slot = c->slot;
	if (c->probe && c->rq >= 0 && inv->rq) {
		was = c->sent_as;
		from = c->rq;
		rq_back(inv, c);
	}
	c->counted = false; /* no longer in flight (inv_on_cmd_reply uncounted it) */
	c->reserve = 0;
	inv->stats.rq_queued++;
	if (rq_put(inv, c, how, was) != 0)
		return true; /* c freed, the stream restarted */
	/* review 27 R27-2: the slot moved to another node's queue meanwhile: rq_put backed off
	 * that queue; the one that sent the probe backs off too, or it would probe again at
	 * once, every tick, until its commands have moved */
	if (from >= 0 && from != c->rq) {
		struct inv_rq *qf = &inv->rq[from];
		struct rq_slot *sf = slot_find(qf, slot);
		if (was == RQ_SENT_NODE && qf->down)
			rq_backoff(&qf->fails, &qf->next_us);
		else if (was == RQ_SENT_SLOT && sf)
			rq_backoff(&sf->fails, &sf->next_us);
	}
	return true;
}

/* Sends c, taken from queue i, as `as`. False: refused at once (c not sent). */
static bool rq_send_one(cs_inv *inv, int i, cmdctx *c, int as)
{
	inv->stats.rq_retries++;
	c->probe = true;
	c->rq = i;
	c->sent_as = as;
	if (cmd_send(inv, c) != 0) {
		c->probe = false;
		c->sent_as = RQ_SENT_NONE;
		return false;
	}
	inv_cmd_sent(inv, c, c->owes);
	if ((uint64_t)++inv->rq[i].out > inv->stats.rq_out_max)
		inv->stats.rq_out_max = (uint64_t)inv->rq[i].out;
	return true;
}

/* ---- the run_id check of a node back (review G5) ------------------------------------------ */

struct rid_ctx {
	cs_inv *inv;
	uint64_t epoch;
	int rq;
	uint32_t b;
};

static bool slot_error(const redisReply *reply)
{
	return reply && reply->type == REDIS_REPLY_ERROR && reply->str &&
	       (strncmp(reply->str, "TRYAGAIN", 8) == 0 || strncmp(reply->str, "ASK ", 4) == 0 ||
	               strncmp(reply->str, "MOVED ", 6) == 0);
}

static void on_rid_reply(cs_rc *r, redisReply *reply, void *priv)
{
	(void)r;
	struct rid_ctx *x = priv;
	cs_inv *inv = x->inv;
	int i = x->rq;
	uint32_t b = x->b;
	bool current = x->epoch == inv->epoch && inv->rq != NULL;
	free(x);
	if (!current)
		return; /* the queues were cleared by a restart */
	struct inv_rq *q = &inv->rq[i];
	if (q->out > 0)
		q->out--;
	q->probing = false;
	if (inv_epoch_error(reply)) {
		char why[300];
		snprintf(why, sizeof why,
		        "redis node %s, back, failed the run_id check before its retry queue "
		        "(review G5): %s",
		        q->node, reply->str);
		inv->stats.redis_failures++;
		inv_restart(inv, why, false);
		return;
	}
	if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
		q->rid_check = false;
		q->next_us = 0; /* its probe at the next tick */
	} else {
		if (slot_error(reply)) {
			/* an answer about that bucket's slot (migrating, its keys split): the check
			 * goes to the node's next bucket (as G2 does not let one slot hold a node),
			 * after the node's backoff all the same */
			q->rid_from = (b + 1) % CS_KS_BUCKETS;
		}
		rq_backoff(&q->fails, &q->next_us);
	}
	inv_tick_rearm(inv); /* the probe's deadline (issue 16: the tick is not polled) */
}

/* A bucket on the node that serves slot (the queued command's), from bucket `from` on, none
 * of whose slot is set apart in q (migrating, G2): -1 when there is none (the slot has no
 * node, or the node serves no other bucket), then slot's own bucket. */
static int64_t rid_bucket(cs_inv *inv, struct inv_rq *q, uint16_t slot, uint32_t from)
{
	int node = cs_rc_slot_node(inv->rc, slot);
	int64_t own = -1;
	for (uint32_t k = 0; k < CS_KS_BUCKETS; k++) {
		uint32_t b = (from + k) % CS_KS_BUCKETS;
		uint16_t s = inv_bucket_slot(inv, b);
		if (s == slot && own < 0)
			own = b;
		if (node < 0 || cs_rc_slot_node(inv->rc, s) != node || slot_find(q, s) != NULL)
			continue;
		return b;
	}
	return own;
}

/* Queue i's node was down and its backoff passed: a C_RAISE with the run_id check (fence.c
 * (h)) to a bucket on the node of its oldest command's slot (any bucket of that node: its
 * epoch copies all name its run_id; one whose slot is not set apart, and past one that
 * answered for its slot alone), raising that bucket's position copy to 0
 * (a RAISE never lowers a copy: nothing changes but a missing copy written as 0, which no
 * SYNC counts as kept). It counts as the node's probe: nothing else of the queue is sent
 * until it answered. */
static void rq_rid_send(cs_inv *inv, int i)
{
	struct inv_rq *q = &inv->rq[i];
	const cmdctx *c = q->head;
	for (int k = 0; c == NULL && k < q->nslots; k++)
		c = q->slots[k].head;
	int64_t b = c ? rid_bucket(inv, q, c->slot, q->rid_from) : -1;
	if (b < 0) {
		q->rid_check = false; /* not a bucket's command: nothing to check it against */
		return;
	}
	struct rid_ctx *x = malloc(sizeof *x);
	if (x == NULL) {
		rq_backoff(&q->fails, &q->next_us);
		return;
	}
	*x = (struct rid_ctx){.inv = inv, .epoch = inv->epoch, .rq = i, .b = (uint32_t)b};
	char key[CS_NAME_MAX], ep[CS_NAME_MAX];
	const char *argv[6];
	size_t lens[6];
	argv[0] = key, lens[0] = cs_ks_fixed_in(&inv->ks, (uint32_t)b, CS_KS_POS, key, sizeof key);
	argv[1] = ep, lens[1] = cs_ks_fixed_in(&inv->ks, (uint32_t)b, CS_KS_EPOCH, ep, sizeof ep);
	argv[2] = "0000000000000000", lens[2] = 16;
	argv[3] = "0", lens[3] = 1; /* no PX */
	argv[4] = inv->epoch_sfx, lens[4] = inv->epoch_sfx_len;
	argv[5] = "1", lens[5] = 1; /* the run_id check */
	inv->stats.rq_rid_checks++;
	if (inv_script(inv, (uint32_t)b, CS_SCRIPT_C_RAISE, on_rid_reply, x, 2, 6, argv, lens) !=
	        0) {
		free(x);
		rq_backoff(&q->fails, &q->next_us);
		return;
	}
	q->probing = true;
	q->out++;
}

/* Queue i's sends of this tick: the node's probe when it is down; else the probes of its
 * waiting slots whose backoff passed, then its other commands, paced (review G2, V9c). A send
 * refused at once goes straight back (its slot's owner may have changed: kept here) and puts
 * the node down. */
static void rq_pump(cs_inv *inv, int i, uint64_t now)
{
	struct inv_rq *q = &inv->rq[i];
	uint64_t ep = inv->epoch;
	if (q->n == 0) {
		/* emptied (its commands landed, or moved to another node's queue) with nothing in
		 * flight: a fresh start, so its next failure is warned about and backed off from
		 * the base (review 27 R27-4) */
		if (q->out == 0 && (q->down || q->fails || q->nslots)) {
			q->down = q->probing = q->rid_check = false;
			q->fails = 0;
			q->next_us = 0;
			q->nslots = 0;
		}
		return;
	}
	if (q->down) {
		if (q->probing || now < q->next_us)
			return;
		if (q->rid_check && !inv->rq_no_rid) {
			rq_rid_send(inv, i);
			return;
		}
		struct rq_slot *s = NULL;
		cmdctx *c = lst_pop(&q->head, &q->tail);
		for (int k = 0; c == NULL && k < q->nslots; k++) {
			if (!q->slots[k].probing && q->slots[k].head) {
				s = &q->slots[k];
				c = lst_pop(&s->head, &s->tail);
			}
		}
		if (c == NULL)
			return;
		acct(inv, q, c, -1);
		if (rq_send_one(inv, i, c, RQ_SENT_NODE)) {
			q->probing = true;
		} else {
			if (s)
				lst_push(&s->head, &s->tail, c, true);
			else
				lst_push(&q->head, &q->tail, c, true);
			acct(inv, q, c, 1);
			rq_backoff(&q->fails, &q->next_us);
		}
		return;
	}
	for (int k = q->nslots - 1; k >= 0; k--) /* a slot emptied by a probe that moved away */
		if (q->slots[k].head == NULL && !q->slots[k].probing)
			q->slots[k] = q->slots[--q->nslots];
	int budget = inv->rq_unpaced ? INT_MAX : RQ_DRAIN_TICK;
	int window = inv->rq_unpaced ? INT_MAX : RQ_DRAIN_WINDOW;
	for (int k = 0; k < q->nslots && budget > 0 && ep == inv->epoch; k++) {
		struct rq_slot *s = &q->slots[k];
		if (s->probing || s->head == NULL || now < s->next_us || q->out >= window)
			continue;
		cmdctx *c = lst_pop(&s->head, &s->tail);
		acct(inv, q, c, -1);
		budget--;
		if (rq_send_one(inv, i, c, RQ_SENT_SLOT)) {
			s->probing = true;
			continue;
		}
		lst_push(&s->head, &s->tail, c, true);
		acct(inv, q, c, 1);
		q->down = q->rid_check = true;
		rq_backoff(&q->fails, &q->next_us);
		return;
	}
	while (q->head && budget > 0 && q->out < window && ep == inv->epoch) {
		cmdctx *c = lst_pop(&q->head, &q->tail);
		acct(inv, q, c, -1);
		budget--;
		if (!rq_send_one(inv, i, c, RQ_SENT_DRAIN)) {
			lst_push(&q->head, &q->tail, c, true);
			acct(inv, q, c, 1);
			q->down = q->rid_check = true;
			rq_backoff(&q->fails, &q->next_us);
			return;
		}
	}
}

void inv_rq_ok(cs_inv *inv, cmdctx *c)
{
	if (!c->probe || c->rq < 0 || inv->rq == NULL)
		return;
	struct inv_rq *q = &inv->rq[c->rq];
	int as = c->sent_as;
	rq_back(inv, c);
	c->probe = false;
	c->sent_as = RQ_SENT_NONE;
	struct rq_slot *s = slot_find(q, c->slot);
	if (as == RQ_SENT_NODE) {
		if (q->head || q->nslots)
			cs_info("invalidator%s%s: redis node %s takes invalidations again: "
			        "draining "
			        "its "
			        "%lld queued commands",
			        INV_LOG_SHARD(inv), q->node, (long long)q->n);
		q->down = false;
		q->fails = 0;
		q->next_us = 0;
	}
	/* its slot answered: the slot's commands drain with the rest (the probe of another
	 * node's queue, or a drained command of a slot set apart meanwhile, says so too) */
	if (s && !s->probing && (as == RQ_SENT_NODE || as == RQ_SENT_SLOT))
		slot_release(q, s);
}

/* review 27 R27-1: a slot that keeps refusing (a reshard abandoned half way leaves it
 * MIGRATING until `redis-cli --cluster fix`) holds every later commit: warned about once it
 * has waited RQ_SLOT_WARN_MS, then once a minute; the gauge
 * cachesvc_invalidator_retry_slot_wait_seconds shows the longest wait. */
static void rq_warn_slots(cs_inv *inv, uint64_t now)
{
	for (int i = 0; i < inv->nrq; i++) {
		struct inv_rq *q = &inv->rq[i];
		for (int k = 0; k < q->nslots; k++) {
			struct rq_slot *s = &q->slots[k];
			if (now - s->since_us < RQ_SLOT_WARN_MS * 1000u ||
			        (s->warned_us && now - s->warned_us < 60000000u))
				continue;
			s->warned_us = now;
			cs_warn("invalidator%s%s: redis node %s has refused the commands of slot "
			        "%u "
			        "for "
			        "%llu s (TRYAGAIN, ASK or a key not local: a slot migration that "
			        "does "
			        "not finish? `redis-cli --cluster check`); nothing is confirmed "
			        "past "
			        "their commits meanwhile (review G2, R27-1)",
			        INV_LOG_SHARD(inv), q->node, (unsigned)s->slot,
			        (unsigned long long)((now - s->since_us) / 1000000u));
		}
	}
}

void inv_rq_tick(cs_inv *inv)
{
	if (inv->rq == NULL || inv->st != ST_STREAMING)
		return;
	uint64_t now = cs_now_us(), ep = inv->epoch;
	for (int i = 0; i < inv->nrq && ep == inv->epoch; i++)
		rq_pump(inv, i, now);
	if (ep == inv->epoch)
		rq_warn_slots(inv, now);
}

static uint64_t earliest(uint64_t at, uint64_t d)
{
	return d != 0 && (at == 0 || d < at) ? d : at;
}

uint64_t inv_rq_next_us(const cs_inv *inv, uint64_t now)
{
	if (inv->rq == NULL || inv->st != ST_STREAMING)
		return 0;
	uint64_t at = 0;
	int window = inv->rq_unpaced ? INT_MAX : RQ_DRAIN_WINDOW;
	for (int i = 0; i < inv->nrq; i++) {
		const struct inv_rq *q = &inv->rq[i];
		if (q->n == 0) {
			/* rq_pump's fresh start of a queue emptied, nothing in flight */
			if (q->out == 0 && (q->down || q->fails || q->nslots))
				at = earliest(at, now);
			continue;
		}
		if (q->down) {
			/* its probe (or run_id check) after the backoff; while one is out, its
			 * reply re-arms the tick */
			if (!q->probing)
				at = earliest(at, CS_MAX(q->next_us, now));
			continue;
		}
		/* up: drained every tick while the window has room (a reply makes room and
		 * re-arms); each waiting slot's probe after its own backoff */
		if (q->head && q->out < window)
			at = earliest(at, now);
		for (int k = 0; k < q->nslots; k++) {
			const struct rq_slot *s = &q->slots[k];
			if (s->head == NULL && !s->probing)
				at = earliest(at, now); /* emptied: dropped at the next tick */
			else if (s->head && !s->probing && q->out < window)
				at = earliest(at, CS_MAX(s->next_us, now));
			/* rq_warn_slots */
			at = earliest(at, s->warned_us ? s->warned_us + 60000000u
			                               : s->since_us + RQ_SLOT_WARN_MS * 1000u);
		}
	}
	return at;
}

void inv_rq_clear(cs_inv *inv)
{
	for (int i = 0; inv->rq && i < inv->nrq; i++) {
		struct inv_rq *q = &inv->rq[i];
		cmdctx *c;
		while ((c = lst_pop(&q->head, &q->tail)) != NULL)
			free(c);
		for (int k = 0; k < q->nslots; k++)
			while ((c = lst_pop(&q->slots[k].head, &q->slots[k].tail)) != NULL)
				free(c);
		q->nslots = 0;
		q->n = 0;
		q->bytes = 0;
		q->probing = false; /* what is in flight belongs to the old stream */
		q->down = false;
		q->rid_check = false;
		q->out = 0;
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
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_retry_rid_checks_total",
	        "RAISEs with the run_id check sent to a node that was down before its queued "
	        "commands (review G5)",
	        s->rq_rid_checks, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_invalidator_retry_slot_holds_total",
	        "A slot's queued commands set apart, its node's other commands draining "
	        "(TRYAGAIN, ASK, MOVED, non local key: review G2)",
	        s->rq_slot_holds, NULL);
	uint64_t now = cs_now_us(), oldest = 0;
	for (int i = 0; inv->rq && i < inv->nrq; i++)
		for (int k = 0; k < inv->rq[i].nslots; k++)
			if (now - inv->rq[i].slots[k].since_us > oldest)
				oldest = now - inv->rq[i].slots[k].since_us;
	cs_m(m, CS_M_GAUGE, "cachesvc_invalidator_retry_slot_wait_seconds",
	        "How long the slot set apart the longest has refused its commands (0: none); "
	        "nothing is confirmed past them meanwhile (review G2, R27-1)",
	        (double)oldest / 1e6, NULL);
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
