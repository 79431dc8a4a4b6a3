/* inv_cluster.c - the invalidator on a Redis Cluster (CLUSTER.md, build order step 4): a
 * commit's keys grouped per bucket (one INVAL per bucket and batch, its entry keys DELeted
 * again with plain routed DELs: C1), generation bumps on bucket 0 fanned out to every other
 * bucket (GEN_SET), the horizon raised in every bucket and the position in bucket 0 on every
 * advance and in the others once per status interval (review V5), and the
 * resynchronisation as probe, stamp and finish over every bucket. Every command of a commit
 * is held in the ledger until acknowledged, whichever node it went to: I4 across nodes.
 * The single-Redis path never comes here (inv->ks.cluster is false). */
#include "inv_int.h"

#define NB CS_KS_BUCKETS

/* ---- INVAL per bucket ------------------------------------------------------------------- */

/* An INVAL was acknowledged: DEL each entry key it built again, routed by the key's own slot
 * (C1: ASKed to an importing node, the script did not see an entry still on the migrating
 * node; a plain one-key DEL reaches the key wherever it is), each held for the commit; then
 * the INVAL's own hold is released. */
static void on_c_inval_reply(cs_rc *r, redisReply *reply, void *priv)
{
	cmdctx *c = priv;
	cs_inv *inv = c->inv;
	inv_cmd_unreserve(inv, c); /* the DELs below count for themselves */
	if (c->epoch == inv->epoch && inv->c1_del && reply && reply->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 1; i < reply->elements && c->epoch == inv->epoch; i++) {
			const redisReply *k = reply->element[i];
			if (k->type != REDIS_REPLY_STRING)
				continue;
			const char *argv[] = {"DEL", k->str};
			size_t lens[] = {3, (size_t)k->len};
			uint16_t slot = cs_rc_keyslot(k->str, (size_t)k->len);
			/* kept for a retry (review V2) */
			cmdctx *d = inv_cmd_make(
			        inv, c->seq, -1, slot, inv_on_cmd_reply, 0, 2, argv, lens);
			if (d == NULL) {
				inv_restart(inv, "out of memory", false);
				break;
			}
			if (inv_cmd_go(inv, d, 0, "redis refused an entry DEL") != 0)
				break;
			cs_ledger_hold(inv->ledger, c->seq);
		}
	}
	inv_on_cmd_reply(r, reply, priv);
}

/* inv_c_send_keys' argument arrays (~170 KB: large for a stack), one set per invalidator,
 * allocated at its first cluster commit: two invalidators in one process (library mode, two
 * engines in two threads) no longer share them (review V6: they were function statics). */
struct inv_cbuf {
	const char *argv[4 * BATCH_KEYS + 6];
	size_t lens[4 * BATCH_KEYS + 6];
	char keybuf[BATCH_KEYS][CS_KEY_MAX];
	char genbuf[BATCH_KEYS][CS_NAME_MAX + CS_MAX_NAME];
	const char *args_q[BATCH_KEYS], *args_p[BATCH_KEYS];
	size_t len_q[BATCH_KEYS], len_p[BATCH_KEYS];
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

bool inv_c_send_keys(cs_inv *inv, uint64_t seq, cs_lsn_t end_lsn, bool *sent)
{
	if (inv->kset_n > inv->kb_cap) {
		size_t cap = inv->kset_n * 2;
		uint64_t *kb = realloc(inv->kb, cap * sizeof *kb);
		if (kb == NULL) {
			inv_restart(inv, "out of memory", false);
			return false;
		}
		inv->kb = kb;
		inv->kb_cap = cap;
	}
	size_t m = 0;
	for (size_t off = 0; off < inv->arena_len && m < inv->kb_cap;) {
		keyrec *r = rec_at(inv, (uint32_t)off);
		if (!inv->qbump[r->query]) {
			const char *name = cs_inv_map_query_name(inv->map, r->query);
			uint64_t b = cs_ks_bucket(&inv->ks, name, r->canon, r->len);
			inv->kb[m++] = b << 32 | off;
		}
		off += rec_size(r);
	}
	if (m > 1)
		qsort(inv->kb, m, sizeof *inv->kb, cmp_u64);
	char lsnhex[17], px[24];
	cs_lsn_hex(end_lsn, lsnhex);
	int pl = snprintf(px, sizeof px, "%lld", (long long)inv->fence_ttl_ms);
	if (inv->cbuf == NULL && (inv->cbuf = malloc(sizeof *inv->cbuf)) == NULL) {
		inv_restart(inv, "out of memory", false);
		return false;
	}
	struct inv_cbuf *cb = inv->cbuf;
	const char **argv = cb->argv;
	size_t *lens = cb->lens;
	char(*keybuf)[CS_KEY_MAX] = cb->keybuf;
	char(*genbuf)[CS_NAME_MAX + CS_MAX_NAME] = cb->genbuf;
	const char **args_q = cb->args_q, **args_p = cb->args_p;
	size_t *len_q = cb->len_q, *len_p = cb->len_p;
	for (size_t i = 0; i < m;) {
		uint32_t b = (uint32_t)(inv->kb[i] >> 32);
		char epoch[CS_NAME_MAX], fmax[CS_NAME_MAX], pre[CS_KS_PREFIX_MAX + 1];
		size_t el = cs_ks_fixed_in(&inv->ks, b, CS_KS_EPOCH, epoch, sizeof epoch);
		size_t ml = cs_ks_fixed_in(&inv->ks, b, CS_KS_FMAX, fmax, sizeof fmax);
		size_t prl = cs_ks_prefix(&inv->ks, b, pre, sizeof pre);
		int n = 0;
		for (; i < m && (uint32_t)(inv->kb[i] >> 32) == b && n < BATCH_KEYS; i++) {
			keyrec *r = rec_at(inv, (uint32_t)(inv->kb[i] & 0xffffffffu));
			const char *name = cs_inv_map_query_name(inv->map, r->query);
			size_t fl = cs_ks_fence(
			        &inv->ks, keybuf[n], sizeof keybuf[n], name, r->canon, r->len);
			size_t gl = cs_ks_gen_in(&inv->ks, b, genbuf[n], sizeof genbuf[n], name);
			if (fl == 0 || gl == 0)
				continue; /* cannot happen: mapping bounds canon to CS_CANON_MAX */
			argv[2 * n] = keybuf[n];
			lens[2 * n] = fl;
			argv[2 * n + 1] = genbuf[n];
			lens[2 * n + 1] = gl;
			args_q[n] = name;
			len_q[n] = strlen(name);
			args_p[n] = r->canon;
			len_p[n] = r->len;
			if (inv->key_hook)
				inv->key_hook(inv->key_hook_priv, name, r->canon, r->len,
				        inv->txn_commit_unix_us);
			n++;
		}
		if (n == 0)
			continue;
		int k = 2 * n;
		argv[k] = epoch;
		lens[k++] = el;
		argv[k] = fmax;
		lens[k++] = ml;
		int nkeys = k;
		argv[k] = lsnhex;
		lens[k++] = 16;
		argv[k] = px;
		lens[k++] = (size_t)pl;
		argv[k] = pre;
		lens[k++] = prl;
		argv[k] = inv->epoch_sfx;
		lens[k++] = inv->epoch_sfx_len;
		for (int j = 0; j < n; j++) {
			argv[k] = args_q[j];
			lens[k++] = len_q[j];
			argv[k] = args_p[j];
			lens[k++] = len_p[j];
		}
		uint64_t hseq = inv->c_hold ? seq : UINT64_MAX; /* UINT64_MAX: not held */
		/* kept for a retry: a node that does not take it holds the commit, not the
		 * stream (review V2) */
		cmdctx *c = inv_cmd_make(inv, hseq, CS_SCRIPT_C_INVAL, inv_bucket_slot(inv, b),
		        on_c_inval_reply, nkeys, k, argv, lens);
		if (c == NULL) {
			inv_restart(inv, "out of memory", false);
			return false;
		}
		/* + its routed DELs */
		if (inv_cmd_go(inv, c, inv->c1_del ? n : 0, "redis refused an invalidation") != 0)
			return false;
		inv->stats.keys += (uint64_t)n;
		cs_ledger_hold(inv->ledger, hseq);
		*sent = true;
	}
	return true;
}

/* ---- Generation bumps: bucket 0, then GEN_SET everywhere else --------------------------- */

static void on_c_bump_reply(cs_rc *r, redisReply *reply, void *priv)
{
	cmdctx *c = priv;
	cs_inv *inv = c->inv;
	inv_cmd_unreserve(inv, c); /* the GEN_SETs below count for themselves */
	if (c->epoch == inv->epoch && reply && reply->type == REDIS_REPLY_ARRAY &&
	        reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_INTEGER &&
	        reply->element[1]->type == REDIS_REPLY_STRING && c->query >= 0 &&
	        c->query < inv->nq) {
		const char *name = cs_inv_map_query_name(inv->map, c->query);
		char g[24];
		int gl = snprintf(g, sizeof g, "%lld", reply->element[0]->integer);
		const char *qf = reply->element[1]->str;
		size_t qfl = (size_t)reply->element[1]->len;
		for (uint32_t b = 1; b < NB && c->epoch == inv->epoch; b++) {
			char gk[CS_NAME_MAX + CS_MAX_NAME], qk[CS_NAME_MAX + CS_MAX_NAME];
			char fm[CS_NAME_MAX], ep[CS_NAME_MAX];
			const char *argv[] = {gk, qk, fm, ep, g, qf, inv->epoch_sfx};
			size_t lens[] = {cs_ks_gen_in(&inv->ks, b, gk, sizeof gk, name),
			        cs_ks_qfence_in(&inv->ks, b, qk, sizeof qk, name),
			        cs_ks_fixed_in(&inv->ks, b, CS_KS_FMAX, fm, sizeof fm),
			        cs_ks_fixed_in(&inv->ks, b, CS_KS_EPOCH, ep, sizeof ep), (size_t)gl,
			        qfl, inv->epoch_sfx_len};
			cmdctx *d = inv_cmd_make(inv, c->seq, CS_SCRIPT_C_GEN_SET,
			        inv_bucket_slot(inv, b), inv_on_cmd_reply, 4, 7, argv, lens);
			if (d == NULL) {
				inv_restart(inv, "out of memory", false);
				break;
			}
			if (inv_cmd_go(inv, d, 0, "redis refused a generation fan-out") != 0)
				break;
			cs_ledger_hold(inv->ledger, c->seq);
		}
	} else if (c->epoch == inv->epoch && reply && reply->type != REDIS_REPLY_ERROR) {
		inv_restart(inv, "unexpected reply to a generation bump", false);
	}
	inv_on_cmd_reply(r, reply, priv);
}

int inv_c_send_bump(cs_inv *inv, int q, uint64_t seq, cs_lsn_t lsn, bool debounced)
{
	const char *name = cs_inv_map_query_name(inv->map, q);
	char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME], hex[17];
	size_t gl = cs_ks_gen(&inv->ks, genkey, sizeof genkey, name);
	size_t fl = cs_ks_qfence(&inv->ks, qfkey, sizeof qfkey, name);
	cs_lsn_hex(lsn, hex);
	uint16_t slot = inv_bucket_slot(inv, 0);
	cmdctx *c;
	if (debounced) {
		const char *argv[] = {genkey, qfkey, inv->ks.epoch, inv->ks.fmax, inv->ks.deb,
		        inv->ks.channel, name, hex, inv->epoch_str};
		size_t lens[] = {gl, fl, inv->ks.epoch_len, inv->ks.fmax_len, inv->ks.deb_len,
		        inv->ks.channel_len, strlen(name), 16, inv->epoch_len};
		c = inv_cmd_make(
		        inv, seq, CS_SCRIPT_C_GEN_BUMP, slot, on_c_bump_reply, 5, 9, argv, lens);
	} else {
		const char *argv[] = {genkey, qfkey, inv->ks.epoch, inv->ks.fmax, inv->ks.channel,
		        name, hex, inv->epoch_str};
		size_t lens[] = {gl, fl, inv->ks.epoch_len, inv->ks.fmax_len, inv->ks.channel_len,
		        strlen(name), 16, inv->epoch_len};
		c = inv_cmd_make(
		        inv, seq, CS_SCRIPT_C_GEN_BUMP, slot, on_c_bump_reply, 4, 8, argv, lens);
	}
	if (c == NULL) {
		inv_restart(inv, "out of memory", false);
		return -1;
	}
	c->query = q;
	return inv_cmd_go(inv, c, NB - 1, "redis refused a generation bump");
}

/* ---- The position and the horizon, in every bucket -------------------------------------- */

/* The position copies (review V5). Bucket 0's copy is raised on every advance: the
 * read-your-writes check reads it (I3), and one script per advance is what a single Redis
 * costs. The copies of buckets 1..255 are raised once per status interval (at most one
 * fan-out in flight), to the position confirmed when the fan-out starts: before V5 every
 * advance raised all 256 (553 scripts per commit).
 *
 * Invariant (CLUSTER.md section 3: a publication counts only when all 256 buckets
 * acknowledged it): the position reported to PostgreSQL as flushed never passes the lowest
 * position copy acknowledged in every bucket. inv_send_status reports min(confirmed,
 * pos_sent), and pos_sent = min(pos0_sent, posr_sent): pos0_sent is the highest value bucket
 * 0 acknowledged, posr_sent the highest value that every one of buckets 1..255 acknowledged
 * in one fan-out (a fan-out with any bucket failed counts for none). A copy is only ever
 * raised (C_RAISE never lowers it), so once acknowledged every copy stays at or above what
 * was acknowledged unless its node loses data, which the epoch and run_id checks report.
 * Both are reset to 0 by every resynchronisation (inv_sync_finish), so no acknowledgement
 * of an earlier stream counts. Hence the slot's confirmed_flush_lsn W is at or below every
 * bucket's copy on the node that acknowledged it.
 * Why it matters: the SYNC counts a bucket on another run "kept" only if its copy is >= W
 * (CLUSTER.md (h')). That test is sound whatever the copies hold (a copy L is written only
 * after every command of every commit up to L was acknowledged, so a replica holding it holds
 * them); the invariant makes it complete: a failover that lost nothing finds every bucket's
 * copy >= W, kept, and never flushes the namespace for a copy that was merely not yet
 * written. The price: flush trails the confirmed position by up to a status interval and a
 * fan-out (PostgreSQL keeps that much more WAL; a restart replays it, idempotently). */
typedef enum { FAN_HORIZON, FAN_POS0, FAN_POSR } fankind;

/* One publication to buckets [from, to): done when every bucket answered; it counts only
 * when every bucket acknowledged it. */
typedef struct fanctx {
	cs_inv *inv;
	uint64_t epoch;
	cs_lsn_t lsn;
	int left;
	bool failed;
	fankind kind;
} fanctx;

static void pos_update(cs_inv *inv)
{
	/* pos_min off (a test's negative control): bucket 0's copy alone */
	inv->pos_sent =
	        !inv->pos_min || inv->pos0_sent < inv->posr_sent ? inv->pos0_sent : inv->posr_sent;
}

static void fan_done(fanctx *f)
{
	cs_inv *inv = f->inv;
	bool current = f->epoch == inv->epoch, failed = f->failed;
	fankind kind = f->kind;
	if (current && kind == FAN_HORIZON && !failed) {
		inv->stats.horizon = f->lsn;
		inv_redis_ok(inv);
	}
	if (current && kind == FAN_POS0) {
		inv->pos_in_flight = false;
		if (!failed && f->lsn > inv->pos0_sent)
			inv->pos0_sent = f->lsn;
		inv_pos_backoff(inv, !failed, &inv->pos_fails, &inv->pos_retry_us);
	}
	if (current && kind == FAN_POSR) {
		inv->posr_in_flight = false;
		if (!failed && f->lsn > inv->posr_sent)
			inv->posr_sent = f->lsn;
		inv_pos_backoff(inv, !failed, &inv->posr_fails, &inv->posr_retry_us);
	}
	if (current && kind != FAN_HORIZON)
		pos_update(inv);
	free(f);
	/* bucket 0: a newer position at once; after a failure, the tick's call after a backoff
	 * (a write whose send failed at once would otherwise recurse here: review V7; every
	 * 10 ms tick without the backoff: review W3) */
	if (current && kind == FAN_POS0 && !failed && inv->st == ST_STREAMING)
		inv_publish_pos(inv);
	/* issue 16: the tick is armed for the next write's deadline (a backoff, the next
	 * fan-out), not polled */
	if (current && kind != FAN_HORIZON)
		inv_tick_rearm(inv);
}

static void on_fan_reply(cs_rc *r, redisReply *reply, void *priv)
{
	fanctx *f = priv;
	cs_inv *inv = f->inv;
	if (reply == NULL || reply->type != REDIS_REPLY_STRING)
		f->failed = true;
	bool restart = f->epoch == inv->epoch && inv_epoch_error(reply);
	if (restart)
		inv_restart(inv, reply->str, false); /* f->epoch is stale from here on */
	if (--f->left == 0)
		fan_done(f);
}

static void fan_out(cs_inv *inv, cs_lsn_t lsn, fankind kind, uint32_t from, uint32_t to)
{
	fanctx *f = calloc(1, sizeof *f);
	if (f == NULL)
		return;
	*f = (fanctx){.inv = inv, .epoch = inv->epoch, .lsn = lsn, .left = 1, .kind = kind};
	bool horizon = kind == FAN_HORIZON;
	if (kind == FAN_POS0)
		inv->pos_in_flight = true;
	if (kind == FAN_POSR)
		inv->posr_in_flight = true;
	char hex[17], px[24];
	cs_lsn_hex(lsn, hex);
	int pl = horizon ? snprintf(px, sizeof px, "%lld", (long long)inv->horizon_ttl_ms)
	                 : snprintf(px, sizeof px, "0");
	for (uint32_t b = from; b < to && f->epoch == inv->epoch; b++) {
		char key[CS_NAME_MAX], ep[CS_NAME_MAX], fm[CS_NAME_MAX], evk[CS_NAME_MAX];
		size_t kl = cs_ks_fixed_in(
		        &inv->ks, b, horizon ? CS_KS_HORIZON : CS_KS_POS, key, sizeof key);
		size_t epl = cs_ks_fixed_in(&inv->ks, b, CS_KS_EPOCH, ep, sizeof ep);
		size_t fml = cs_ks_fixed_in(&inv->ks, b, CS_KS_FMAX, fm, sizeof fm);
		size_t evl = cs_ks_fixed_in(&inv->ks, b, CS_KS_EVK, evk, sizeof evk);
		bool ev = horizon && inv->eviction_check;
		const char *argv[8];
		size_t lens[8];
		int k = 0;
		argv[k] = key, lens[k++] = kl;
		argv[k] = ep, lens[k++] = epl;
		if (ev) {
			argv[k] = fm, lens[k++] = fml;
			argv[k] = evk, lens[k++] = evl;
		}
		int nkeys = k;
		argv[k] = hex, lens[k++] = 16;
		argv[k] = px, lens[k++] = (size_t)pl;
		argv[k] = inv->epoch_sfx, lens[k++] = inv->epoch_sfx_len;
		argv[k] = "1", lens[k++] = 1; /* the run_id check: C4, fence.c (h) */
		f->left++;
		if (inv_script(inv, b, CS_SCRIPT_C_RAISE, on_fan_reply, f, nkeys, k, argv, lens) !=
		        0) {
			f->left--;
			f->failed = true;
		}
	}
	if (--f->left == 0)
		fan_done(f);
}

void inv_c_publish_pos(cs_inv *inv, cs_lsn_t confirmed)
{
	uint64_t now = cs_now_us(), interval = (uint64_t)inv->status_interval_ms * 1000u;
	/* buckets 1..255 first: a bucket-0 write that fails at once must not hide them */
	if (!inv->posr_in_flight && confirmed > inv->posr_sent && now >= inv->posr_retry_us &&
	        (inv->pos_every || inv->posr_last_us == 0 || now - inv->posr_last_us >= interval)) {
		inv->posr_last_us = now;
		fan_out(inv, confirmed, FAN_POSR, 1, NB);
	}
	if (inv->st == ST_STREAMING && !inv->pos_in_flight && confirmed > inv->pos0_sent &&
	        now >= inv->pos_retry_us)
		fan_out(inv, confirmed, FAN_POS0, 0, 1);
}

uint64_t inv_c_pos_next_us(const cs_inv *inv, uint64_t now)
{
	cs_lsn_t confirmed = cs_ledger_confirmed(inv->ledger);
	uint64_t at = 0, interval = (uint64_t)inv->status_interval_ms * 1000u;
	if (!inv->posr_in_flight && confirmed > inv->posr_sent) {
		at = CS_MAX(inv->posr_retry_us, now);
		if (!inv->pos_every && inv->posr_last_us != 0)
			at = CS_MAX(at, inv->posr_last_us + interval);
	}
	if (!inv->pos_in_flight && confirmed > inv->pos0_sent) {
		uint64_t t = CS_MAX(inv->pos_retry_us, now);
		at = at == 0 || t < at ? t : at;
	}
	return at;
}

void inv_c_publish_horizon(cs_inv *inv, cs_lsn_t horizon)
{
	fan_out(inv, horizon, FAN_HORIZON, 0, NB);
}

/* ---- The resynchronisation --------------------------------------------------------------- */

typedef enum { CS_PROBE = 1, CS_STAMP, CS_STAMP0, CS_FINISH } csphase;

struct inv_csync {
	csphase phase;
	int left;
	bool failed;
	uint8_t st[NB]; /* 0 whole, 1 kept, 2 lost */
	bool has_epoch[NB];
	char sfx[NB][24]; /* ":<random>" of each bucket's epoch copy */
	char pe[NB][72];  /* each bucket's epoch copy as probed ("<run_id>:<random>") */
	uint64_t *gmax;   /* per query: the highest generation copy of any bucket */
	uint64_t *g0;     /* per query: bucket 0's generation copy */
	int nq;
	bool gap;
	bool flush;       /* bump every query (a loss) */
	long long status; /* as CS_SCRIPT_SYNC's */
	char nsfx[24];    /* the suffix stamped */
	char hex[17], px[24];
	char **g; /* per query: the generation to stamp ("" none) */
};

typedef struct syncctx {
	cs_inv *inv;
	uint64_t epoch;
	uint32_t b;
} syncctx;

void inv_c_sync_free(cs_inv *inv)
{
	struct inv_csync *s = inv->csync;
	if (s == NULL)
		return;
	for (int q = 0; s->g && q < s->nq; q++)
		free(s->g[q]);
	free(s->g);
	free(s->gmax);
	free(s->g0);
	free(s);
	inv->csync = NULL;
}

static void on_sync_reply(cs_rc *r, redisReply *reply, void *priv);

/* Sends the phase's script to bucket b. */
static int sync_send(cs_inv *inv, uint32_t b)
{
	struct inv_csync *s = inv->csync;
	int n = inv->nq;
	size_t cap = 9 + 2 * (size_t)n + 11 + (size_t)n;
	const char **argv = calloc(cap, sizeof *argv);
	size_t *lens = calloc(cap, sizeof *lens);
	char(*kb)[CS_NAME_MAX + CS_MAX_NAME] = calloc(2 * (size_t)n + 6, sizeof *kb);
	syncctx *c = malloc(sizeof *c);
	int rc = -1;
	if (!argv || !lens || !kb || !c)
		goto out;
	*c = (syncctx){.inv = inv, .epoch = inv->epoch, .b = b};
	int k = 0, nk = 0, script;
	char whex[17] = "";
#define KEY(len_expr) (argv[k] = kb[nk], lens[k] = (len_expr), k++, nk++)
#define ARG(str)      (argv[k] = (str), lens[k] = strlen(argv[k]), k++)
	switch (s->phase) {
	case CS_PROBE:
		script = CS_SCRIPT_C_SYNC_PROBE;
		KEY(cs_ks_fixed_in(&inv->ks, b, CS_KS_EPOCH, kb[nk], sizeof kb[0]));
		KEY(cs_ks_fixed_in(&inv->ks, b, CS_KS_POS, kb[nk], sizeof kb[0]));
		KEY(cs_ks_fixed_in(&inv->ks, b, CS_KS_FMAX, kb[nk], sizeof kb[0]));
		if (b == 0)
			KEY(cs_ks_gap(&inv->ks, kb[nk], sizeof kb[0], inv->slot));
		for (int q = 0; q < n; q++)
			KEY(cs_ks_gen_in(&inv->ks, b, kb[nk], sizeof kb[0],
			        cs_inv_map_query_name(inv->map, q)));
		{
			int nkeys = k;
			if (inv->slot_confirmed)
				cs_lsn_hex(inv->slot_confirmed, whex);
			ARG(whex);
			ARG(b == 0 ? "1" : "0");
			rc = inv_script(inv, b, script, on_sync_reply, c, nkeys, k, argv, lens);
		}
		break;
	case CS_STAMP:
	case CS_STAMP0:
		script = CS_SCRIPT_C_SYNC_STAMP;
		KEY(cs_ks_fixed_in(&inv->ks, b, CS_KS_EPOCH, kb[nk], sizeof kb[0]));
		KEY(cs_ks_fixed_in(&inv->ks, b, CS_KS_HORIZON, kb[nk], sizeof kb[0]));
		KEY(cs_ks_fixed_in(&inv->ks, b, CS_KS_FMAX, kb[nk], sizeof kb[0]));
		KEY(cs_ks_fixed_in(&inv->ks, b, CS_KS_POS, kb[nk], sizeof kb[0]));
		for (int q = 0; q < n; q++) {
			const char *name = cs_inv_map_query_name(inv->map, q);
			KEY(cs_ks_gen_in(&inv->ks, b, kb[nk], sizeof kb[0], name));
			KEY(cs_ks_qfence_in(&inv->ks, b, kb[nk], sizeof kb[0], name));
		}
		{
			int nkeys = k;
			argv[k] = inv->ks.channel, lens[k++] = inv->ks.channel_len;
			ARG(s->nsfx);
			ARG(s->hex);
			ARG(s->px);
			/* C2: a kept bucket's horizon and fmax rise to S too */
			ARG(s->flush || (inv->c2_raise && s->st[b] == 1) ? "1" : "0");
			ARG(b == 0 ? "1" : "0");
			/* V1: the stamp re-checks the probe's verdict (no flush: every bucket
			 * whole or kept) */
			ARG(s->flush || !inv->v1_check ? "" : s->st[b] == 1 ? "1" : "0");
			ARG(s->pe[b]);
			if (inv->slot_confirmed)
				cs_lsn_hex(inv->slot_confirmed, whex);
			ARG(whex);
			for (int q = 0; q < n; q++)
				ARG(s->g[q]);
			rc = inv_script(inv, b, script, on_sync_reply, c, nkeys, k, argv, lens);
		}
		break;
	case CS_FINISH:
		script = CS_SCRIPT_C_SYNC_FINISH;
		KEY(cs_ks_gap(&inv->ks, kb[nk], sizeof kb[0], inv->slot));
		KEY(cs_ks_slotmark(&inv->ks, kb[nk], sizeof kb[0], inv->slot));
		argv[k] = inv->ks.deb, lens[k++] = inv->ks.deb_len;
		rc = inv_script(inv, b, script, on_sync_reply, c, k, k, argv, lens);
		break;
	}
#undef KEY
#undef ARG
out:
	if (rc == 0) {
		s->left++;
		c = NULL;
	}
	free(c);
	free(argv);
	free(lens);
	free(kb);
	return rc;
}

/* Sends the phase to buckets [from, to). */
static void sync_phase(cs_inv *inv, csphase ph, uint32_t from, uint32_t to)
{
	struct inv_csync *s = inv->csync;
	s->phase = ph;
	s->left = 0;
	uint64_t ep = inv->epoch;
	for (uint32_t b = from; b < to && ep == inv->epoch; b++)
		if (sync_send(inv, b) != 0) {
			inv->stats.redis_failures++;
			inv_restart(inv, "redis is not ready for the invalidator's setup", false);
			return;
		}
}

/* Every bucket probed: decide (CLUSTER.md (h'), C2, C3). */
static void sync_decide(cs_inv *inv)
{
	struct inv_csync *s = inv->csync;
	bool none = true, lost = false, kept = false;
	for (uint32_t b = 0; b < NB; b++) {
		none = none && !s->has_epoch[b];
		/* a bucket whose random part is not bucket 0's missed a resynchronisation (one
		 * cut short): treated as lost */
		if (s->st[b] == 2 || s->st[0] != 0 || strcmp(s->sfx[b], s->sfx[0]) != 0)
			lost = true;
		kept = kept || s->st[b] == 1;
	}
	/* review V9b: a migrating bucket's endpoint changed (inv_open.c): lost */
	if (inv_open_loss(inv))
		lost = true;
	s->flush = none || lost;
	s->status = none ? 3 : lost ? 2 : s->gap ? 1 : kept ? 4 : 0;
	if (s->flush)
		snprintf(s->nsfx, sizeof s->nsfx, ":%016llx", (unsigned long long)cs_rand64());
	else
		snprintf(s->nsfx, sizeof s->nsfx, "%s", s->sfx[0]);
	for (int q = 0; q < s->nq; q++) {
		bool bump = s->flush || (s->gap && cs_inv_map_depends(inv->map, q));
		/* above every copy: a lost bucket 0 may have forgotten generations others hold */
		if (bump)
			snprintf(s->g[q], 24, "%llu", (unsigned long long)s->gmax[q] + 1);
		else /* a fan-out cut short (a crash) left buckets behind bucket 0: repair them */
			snprintf(s->g[q], 24, "~%llu", (unsigned long long)s->g0[q]);
	}
	sync_phase(inv, CS_STAMP, 1, NB);
}

static bool probe_reply(cs_inv *inv, uint32_t b, const redisReply *reply)
{
	struct inv_csync *s = inv->csync;
	size_t want = 2 + (size_t)s->nq + (b == 0);
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != want ||
	        reply->element[0]->type != REDIS_REPLY_INTEGER ||
	        reply->element[1]->type != REDIS_REPLY_STRING)
		return false;
	s->st[b] = (uint8_t)reply->element[0]->integer;
	const redisReply *e = reply->element[1];
	s->has_epoch[b] = e->len > 0;
	if ((size_t)e->len >= sizeof s->pe[b]) {
		/* not an epoch copy this invalidator writes: the bucket is lost (flushed and
		 * stamped anew), as before the re-check (review 7d W4) */
		s->st[b] = 2;
		s->pe[b][0] = '\0';
	} else {
		memcpy(s->pe[b], e->str, (size_t)e->len);
		s->pe[b][e->len] = '\0';
	}
	const char *colon = e->len ? memchr(e->str, ':', (size_t)e->len) : NULL;
	snprintf(s->sfx[b], sizeof s->sfx[b], "%.*s", colon ? (int)(e->str + e->len - colon) : 0,
	        colon ? colon : "");
	for (int q = 0; q < s->nq; q++) {
		const redisReply *g = reply->element[2 + q];
		uint64_t v = g->type == REDIS_REPLY_STRING ? strtoull(g->str, NULL, 10) : 0;
		if (v > s->gmax[q])
			s->gmax[q] = v;
		if (b == 0)
			s->g0[q] = v;
	}
	if (b == 0)
		s->gap = inv->gap_owed || (reply->element[want - 1]->type == REDIS_REPLY_INTEGER &&
		                                  reply->element[want - 1]->integer == 1);
	return true;
}

static void on_sync_reply(cs_rc *r, redisReply *reply, void *priv)
{
	syncctx *c = priv;
	cs_inv *inv = c->inv;
	uint32_t b = c->b;
	bool current = c->epoch == inv->epoch && inv->st == ST_SYNC && inv->csync;
	free(c);
	if (!current)
		return;
	struct inv_csync *s = inv->csync;
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		inv->stats.redis_failures++;
		inv_restart(inv,
		        reply ? reply->str : "redis did not answer the invalidator's setup", false);
		return;
	}
	bool ok = true;
	const redisReply *deb = NULL;
	long long had = 0;
	switch (s->phase) {
	case CS_PROBE:
		ok = probe_reply(inv, b, reply);
		break;
	case CS_STAMP:
	case CS_STAMP0:
		ok = reply->type == REDIS_REPLY_STRING && reply->len < (long)sizeof inv->epoch_str;
		if (ok && b == 0) {
			memcpy(inv->epoch_str, reply->str, (size_t)reply->len);
			inv->epoch_str[reply->len] = '\0';
			inv->epoch_len = (size_t)reply->len;
		}
		break;
	case CS_FINISH:
		ok = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
		     reply->element[0]->type == REDIS_REPLY_INTEGER &&
		     reply->element[1]->type == REDIS_REPLY_ARRAY;
		if (ok) {
			had = reply->element[0]->integer;
			deb = reply->element[1];
		}
		break;
	}
	if (!ok) {
		inv_restart(inv, "unexpected reply to the cluster resynchronisation", false);
		return;
	}
	if (--s->left > 0)
		return;
	switch (s->phase) {
	case CS_PROBE:
		sync_decide(inv);
		return;
	case CS_STAMP:
		/* bucket 0 last: its epoch (what daemons read) and its generations change once
		 * every other bucket holds the new state */
		sync_phase(inv, CS_STAMP0, 0, 1);
		return;
	case CS_STAMP0:
		sync_phase(inv, CS_FINISH, 0, 1);
		return;
	case CS_FINISH:
		if (s->flush)
			inv_open_flushed(inv); /* the flush retires every mark */
		snprintf(inv->epoch_sfx, sizeof inv->epoch_sfx, "%s", s->nsfx);
		inv->epoch_sfx_len = strlen(inv->epoch_sfx);
		inv_sync_finish(inv, s->status, had == 1, deb);
		return;
	}
}

void inv_c_sync(cs_inv *inv, cs_lsn_t lsn)
{
	struct inv_csync *s = inv->csync;
	if (s && s->nq != inv->nq) {
		inv_c_sync_free(inv);
		s = NULL;
	}
	if (s == NULL) {
		s = calloc(1, sizeof *s);
		if (s) {
			s->nq = inv->nq;
			s->gmax = calloc((size_t)(inv->nq ? inv->nq : 1), sizeof *s->gmax);
			s->g0 = calloc((size_t)(inv->nq ? inv->nq : 1), sizeof *s->g0);
			s->g = calloc((size_t)(inv->nq ? inv->nq : 1), sizeof *s->g);
		}
		inv->csync = s;
		for (int q = 0; s && s->g && q < s->nq; q++)
			if ((s->g[q] = malloc(24)) == NULL)
				break;
		bool okalloc = s && s->gmax && s->g0 && s->g && (s->nq == 0 || s->g[s->nq - 1]);
		if (!okalloc) {
			inv_c_sync_free(inv);
			inv_restart(inv, "out of memory", false);
			return;
		}
	}
	memset(s->st, 0, sizeof s->st);
	memset(s->has_epoch, 0, sizeof s->has_epoch);
	memset(s->sfx, 0, sizeof s->sfx);
	memset(s->gmax, 0, (size_t)s->nq * sizeof *s->gmax);
	memset(s->g0, 0, (size_t)s->nq * sizeof *s->g0);
	s->gap = s->flush = false;
	s->status = 0;
	cs_lsn_hex(lsn, s->hex);
	snprintf(s->px, sizeof s->px, "%lld", (long long)inv->horizon_ttl_ms);
	sync_phase(inv, CS_PROBE, 0, NB);
}
