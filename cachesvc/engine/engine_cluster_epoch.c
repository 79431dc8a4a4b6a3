/* engine_cluster_epoch.c - a daemon's own loss check on every master of a cluster (CLUSTER.md
 * C5/R5).
 *
 * The generations poll reads bucket 0's epoch copy with its node's run_id check (GENS): a
 * restart or a failover of bucket 0's node makes the daemon bypass the cache until the
 * invalidator has resynchronised. Another master that restarts from an old RDB, or whose
 * replica is promoted without the last invalidations, went unnoticed by the daemon: it
 * filled and served that node's buckets until the invalidator's next run_id check (its
 * RAISE, once per status interval), and with no invalidator running until the entries' TTL.
 *
 * Here, on every poll, each master other than bucket 0's runs the same GENS script on the
 * epoch copy of one bucket it serves (the first, in bucket order): the copy must be there and
 * begin with that node's run_id. If any is not, the node is on another run than the one the
 * invalidator last stamped: the daemon forgets its epoch (every read bypasses the cache, no
 * fill stores, as after bucket 0's loss) and keeps it forgotten (the generations poll does not
 * take it back) until a round finds every node's copy stamped with its run_id again: the
 * invalidator's resynchronisation restamps it (flushing the namespace when the bucket lost
 * confirmed invalidations, restamping it when it kept them). A bucket moved by a reshard
 * names its old node too, so a migration bypasses the cache until the invalidator's next
 * RAISE of that bucket restamps it: safe, and short while an invalidator runs.
 *
 * With shards (SHARDS.md section 2) each shard's keyspace has its own epoch copies, in buckets
 * {<ns>@<shard>:<b>} that hash to other slots: the check runs per shard (a round each, on the
 * masters other than that shard's bucket 0's), and a copy found bad keeps that shard's epoch
 * unknown (a master that lost data lost every shard's copies it held: every shard's round
 * finds it). The shards' rounds are independent: one shard's lost check is cleared only by
 * its own round finding every copy restamped by its own invalidator.
 *
 * Cost: one script per master (minus one) per shard per poll. `[redis] cluster_epoch_check =
 * off` turns it off: a test's negative control only. */
#include "engine_int.h"

/* masters checked per round: every master the slot map may hold (review 32 R32-1: at 64, a
 * map of 66 or more masters left the same masters unchecked every round) */
#define CEPOCH_NODES_MAX CS_RC_MAX_NODES

typedef struct cepoch_round {
	cs_engine *e;
	int shard;   /* the shard whose copies are checked */
	int pending; /* replies owed, plus one while the round is being sent */
	bool bad;    /* a copy missing or naming another run */
	bool failed; /* a check not answered: proves nothing either way */
} cepoch_round;

static void cepoch_done(cepoch_round *r)
{
	if (--r->pending > 0)
		return;
	cs_engine *e = r->e;
	shard *sh = &e->sh[r->shard];
	sh->cepoch_busy = false;
	const char *of = e->sharded ? " of shard " : "";
	const char *name = e->sharded ? sh->ks.shard : "";
	if (r->bad) {
		if (!sh->cepoch_lost)
			cs_warn("redis cluster: a master's epoch copy%s%s is gone or names another "
			        "Redis run (restarted or failed over: data lost?): bypassing the "
			        "cache until the invalidator resynchronises",
			        of, name);
		sh->cepoch_lost = true;
		e->stats.epoch_invalid++;
		sh->epoch_len = 0;
		sh->epoch[0] = '\0';
	} else if (!r->failed && sh->cepoch_lost) {
		/* every copy names its node's run again: the invalidator resynchronised */
		sh->cepoch_lost = false;
		cs_info("redis cluster: every master's epoch copy%s%s names its node's run again",
		        of, name);
		load_shard_gens(e, r->shard);
	}
	free(r);
}

static void on_cepoch_reply(cs_rc *rc, redisReply *reply, void *priv)
{
	(void)rc;
	cepoch_round *r = priv;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
	        reply->element[0]->type != REDIS_REPLY_INTEGER)
		r->failed = true; /* an error, a timeout, a slot moving: not evidence */
	else if (reply->element[0]->integer != 1)
		r->bad = true;
	cepoch_done(r);
}

/* A round over shard k's copies: one bucket per master other than bucket 0's. */
static void cepoch_shard(cs_engine *e, int k)
{
	shard *sh = &e->sh[k];
	if (sh->cepoch_busy)
		return;
	int nn = cs_rc_nnodes(e->redis);
	int n0 = cs_rc_slot_node(e->redis, sh->bslot[0]);
	uint32_t pick[CEPOCH_NODES_MAX];
	int seen[CEPOCH_NODES_MAX];
	int np = 0;
	for (uint32_t b = 1; b < CS_KS_BUCKETS && np < CEPOCH_NODES_MAX; b++) {
		/* a slot without a ready master is not read from (while any master is not ready
		 * every read bypasses the cache): its node is checked once it is ready again, at
		 * most one poll later */
		if (!cs_rc_slot_ready(e->redis, sh->bslot[b]))
			continue;
		int n = cs_rc_slot_node(e->redis, sh->bslot[b]);
		bool dup = n < 0 || n >= nn || n == n0;
		for (int i = 0; i < np && !dup; i++)
			dup = seen[i] == n;
		if (dup)
			continue;
		seen[np] = n;
		pick[np++] = b;
	}
	if (np == 0)
		return;
	cepoch_round *r = calloc(1, sizeof *r);
	if (r == NULL)
		return;
	*r = (cepoch_round){.e = e, .shard = k, .pending = 1};
	sh->cepoch_busy = true;
	for (int i = 0; i < np; i++) {
		char key[CS_NAME_MAX];
		size_t kl = cs_ks_fixed_in(&sh->ks, pick[i], CS_KS_EPOCH, key, sizeof key);
		const char *argv[] = {key};
		size_t lens[] = {kl};
		if (kl > 0 && cs_rc_script(e->redis, sh->bslot[pick[i]], CS_SCRIPT_GENS,
		                      on_cepoch_reply, r, 1, 1, argv, lens) == 0)
			r->pending++;
		else
			r->failed = true;
	}
	cepoch_done(r);
}

void cluster_epoch_check(cs_engine *e)
{
	if (!e->sh[0].ks.cluster || !e->fence_on || !e->cepoch_on)
		return;
	/* every shard's copies (the test hook: the first shard's alone, as before) */
	int nsh = e->cl_shard0_only ? 1 : e->nsh;
	for (int k = 0; k < nsh; k++)
		cepoch_shard(e, k);
}
