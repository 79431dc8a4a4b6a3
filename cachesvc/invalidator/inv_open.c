/* inv_open.c - the slot migrations the invalidator must see on a Redis Cluster (CLUSTER.md
 * section 7, review V9b).
 *
 * A bucket found whole or kept rests on one node's write stream (the one holding its epoch
 * and position copies). While the bucket's hash slot is open (MIGRATING on its source,
 * IMPORTING on its target) its state is the union of two nodes' streams: a DEL that ran on the
 * source (C1's routed DEL of an INVAL ASKed to the target, or an INVAL's own) can be lost by
 * the source's failover to a replica that missed it, and a migration resumed from that replica
 * carries the stale entry to the target, where the bucket looks whole. So:
 *  (1) once per status interval, each master of the slot map is asked CLUSTER NODES (the open
 *      slots of its `myself` line, and how every node's line reads) and INFO server (its
 *      run_id), directly on its connection: each reply bounded by the node timeout, the round
 *      by OPEN_TIMEOUT_MS, one round at a time;
 *  (2) every bucket whose slot a round sees open is marked in bucket 0 (<ns>:inv:open:<slot>,
 *      hash <bucket> -> "<source id> <source run_id> <target id> <target run_id> <time>", "-"
 *      for a run not known, the time the marking round's start on the wall clock: R22-1),
 *      and the position reported to PostgreSQL as flushed never passes
 *      inv_open_safe: the confirmed position when the last complete round started, once that
 *      round's marks are acknowledged;
 *  (3) while a bucket is marked, an endpoint that changed is a loss: another node id on the
 *      slot's open line (the slot reopened from or towards another node), another run_id
 *      (a restart), an endpoint listed as a replica or as failed by any master, or gone from
 *      every master's list, or not answered for OPEN_UNKNOWN_MS. A loss is logged, counted,
 *      and restarts the stream; the next SYNC flushes the namespace as for a lost bucket
 *      ((h'), C3) and the marks are then dropped (the flush retires every entry). The marks
 *      are read back at every stream start, so a mark found with an endpoint changed (a
 *      failover while no invalidator ran) is a loss too. A mark is cleared once a complete
 *      round finds its slot closed and both endpoints on the runs recorded.
 *
 * Why the ordering is enough. Take a commit C whose DEL ran on a node while b's slot was open,
 * and C in the flushed position W: then some complete round R started after C was confirmed
 * (so after the DEL ran), and W <= safe needed R's marks acknowledged. If b's slot was still
 * open when R read its endpoints, R (or an earlier round) marked b, and the mark names the
 * endpoints as they were then: a later failover of either is a loss, found while the
 * invalidator runs or at its next start (the mark survives a crash: it is acknowledged before
 * W passes C). A failover before R read the slot shows in R itself only while the cluster
 * still lists the old end failed or as a replica (checked at first sight: review R18-3); a
 * failover and a resumption from the promoted replica completed before R are not seen (see
 * CLUSTER.md V9b). An end not answered when marked ("-") is adopted or cleared only if its
 * uptime covers the time since that round started (R18-2, R21-4; read back, by the time in the
 * mark: R22-1). If C was not flushed when the invalidator stopped, the
 * slot replays C and its INVAL deletes the entry wherever the bucket then is. Commits confirmed
 * before the slot opened are covered from the first round that sees it open (the endpoints then are
 * the ones whose streams hold those DELs). What it cannot see: a slot opened and closed between two
 * rounds (one status interval) with a failover of its source inside, and a migration made while no
 * invalidator runs (its DELs are then from before the slot opened): neither leaves a trace a later
 * round can read. */
#include "inv_int.h"
#include "inv_open_util.h"

#define NB              CS_KS_BUCKETS
#define OPEN_TIMEOUT_MS 5000 /* a round not answered by then is dropped (its replies ignored) */
#define OPEN_UNKNOWN_MS 3000 /* an endpoint listed as a live master but not answering: a loss */
#define RUN_LEN         40   /* run_id: 40 hex characters */
/* The hold bound (inv_open_hold_bound_ms): no complete round for max(60 s, 4 x the cluster's
 * cluster-node-timeout, 10 status intervals) is a loss. Well above the failure handling of
 * the cluster: a master down until its replica takes over leaves every round incomplete, and
 * is no loss of this watch's (review 21 R21-2: at 10 s every master crash flushed the
 * namespace). After each hold that ended in a loss the next bound doubles (up to 16x, or
 * 30 min), back to the base at the first complete round (review 22 R22-3: a persistent
 * cause flushed the namespace once per bound forever). Tests set the base (inv_drive). */
_Static_assert(CS_RC_ID_LEN == INV_ID_LEN && RUN_LEN == INV_ID_LEN, "a mark's ids and runs");
#define WARN_EVERY_US (10 * 1000000ull) /* an incomplete round's warning, at most this often */

/* EP_OF_DST / EP_OF_OTHER: a source listed as a replica of its mark's target / of another */
enum { EP_LISTED = 1, EP_FAILED = 2, EP_REPLICA = 4, EP_OF_DST = 8, EP_OF_OTHER = 16 };
enum { K_NODES, K_INFO, K_LOAD, K_RESET, K_SET, K_DEL, K_CONFIG };
#define NT_PASSING_MAX 10 /* CONFIG GET's passing errors in a row before it counts as refused */
/* cluster-node-timeout: to ask at the next round, asked, known, refused (ACL) */
enum { NT_ASK, NT_ASKED, NT_KNOWN, NT_REFUSED };

typedef struct omark {
	bool on;
	char src[CS_RC_ID_LEN + 1], srun[RUN_LEN + 1];
	char dst[CS_RC_ID_LEN + 1], drun[RUN_LEN + 1];
	uint64_t unknown_us; /* an endpoint not answering since (0: answered) */
	uint64_t seen_us; /* the round that wrote it with a "-" run started, in this process (kept
	                     across its stream restarts, R24-1; 0: written by another) */
	uint64_t wall_s;  /* the same, wall clock (s), in the mark (R22-1; 0: not recorded) */
} omark;

/* One bucket in the round in flight. */
typedef struct oview {
	bool open;  /* a master's myself line shows its slot open */
	bool mixed; /* two different sources or targets on those lines */
	char src[CS_RC_ID_LEN + 1], dst[CS_RC_ID_LEN + 1];
	uint8_t fl[2]; /* the mark's source, target: EP_* over every master's list */
	uint8_t act;   /* after evaluation: 1 write next, 2 clear */
	omark next;
} oview;

struct inv_open {
	omark m[NB]; /* the marks, as acknowledged by Redis */
	oview v[NB];
	uint8_t bslot[CS_RC_SLOTS / 8]; /* the slots that hold a bucket */
	struct {
		char id[CS_RC_ID_LEN + 1], run[RUN_LEN + 1];
		uint64_t up_s; /* uptime_in_seconds of the same INFO reply */
	} node[CS_RC_MAX_NODES];
	/* review R18-3: every node's flags over every master's list, this round; replicas too
	 * (review 21 R21-1), hashed and an overflow no failed round (review 22 R22-4) */
	inv_seen seen;
	int nnodes;
	int views;                              /* CLUSTER NODES replies read this round */
	int skipped; /* masters of no slot not connected, not asked this round (R45-1) */
	char num[NB][8], val[NB][INV_MARK_MAX]; /* the writes' arguments */
	uint64_t round;                         /* replies of another round are ignored */
	bool busy;                              /* a round or its writes in flight */
	bool loaded; /* the marks were read back since the stream started */
	bool reset;  /* a flush retired every mark: DEL them before anything else */
	bool loss;   /* the next SYNC flushes */
	bool incomplete, failed;
	int left;
	uint64_t deadline_us, last_us;
	uint64_t last_wall_s; /* last_us on the wall clock (s): marks carry it (R22-1) */
	cs_lsn_t lsn;         /* confirmed when the round started */
	cs_lsn_t safe;        /* the flushed position's bound */
	/* review R18-5: rounds that never complete must not hold the flushed position forever */
	uint64_t since_us; /* the last complete round, or the stream's start (0: not yet) */
	uint64_t carry_us; /* R26-2: streaming time without a complete round, earlier streams */
	cs_lsn_t hold_lsn; /* confirmed when a hold was declared a loss (flushed by the SYNC) */
	cs_lsn_t floor;    /* confirmed before a flush that retired every entry: safe >= it */
	/* review 22 R22-3: holds that ended in a loss since the last complete round (the bound
	 * doubles with each), and the cluster's cluster-node-timeout (CONFIG GET, once a stream) */
	unsigned backoff;
	int nt_state;
	bool nt_said;   /* a refusal logged (once) */
	int nt_passing; /* passing errors in a row (review 25 R25-4: bounded, then refused) */
	uint64_t nt_ms; /* the last one read (0: never): kept across streams (review 24 R24-3) */
	char why[256];  /* the first reason the round in flight is incomplete */
	char last_why[256]; /* the same of the last round that ended incomplete */
	/* review R18-6: reading back or deleting the marks failed: retried with a backoff */
	int lfails;
	uint64_t retry_us;
	/* review R18-1: bucket seen open between two pairs of ends in the last round (the replies
	 * of one round are read at different times: a loss only when seen in two in a row) */
	uint8_t mixed[NB];
	/* review R18-4: the marks hash's field "lsn": every complete round writes its L there with
	 * its marks (one HSET) before safe may pass L; a stream start that finds it below the
	 * slot's confirmed_flush_lsn W found bucket 0 without the writes that vouched for W */
	cs_lsn_t mlsn; /* the field's value, as acknowledged */
	cs_lsn_t wlsn; /* the value in the HSET in flight */
	char lhex[17]; /* its argument */
	bool rbad;     /* the reset's DEL or HSET failed */
	bool behind;   /* the marks read back vouch for less than W: a loss */
	cs_lsn_t behind_lsn;
	cs_ratelimit warn;
	/* review 51 R51-1: a loss is recorded in bucket 0 (loss_restart) before the stream lets
	 * the slot go: REC_SENT its DEL in flight, REC_WAIT sent again at rec_retry_us */
	int rec;
	uint64_t rec_gen; /* replies to an earlier DEL are ignored */
	uint64_t rec_retry_us;
	int rec_fails;
	bool rec_hold;        /* the stream is kept for it (review 53: at most rec_hold_ms) */
	uint64_t rec_since_us; /* the loss was found */
	char rec_why[640];    /* the restart's reason, once recorded */
};

enum { REC_NONE, REC_SENT, REC_WAIT };

typedef struct octx {
	cs_inv *inv;
	uint64_t epoch, round;
	int idx, kind;
} octx;

static void on_open_reply(cs_redis *r, redisReply *reply, void *priv);
static void on_open_rc_reply(cs_rc *r, redisReply *reply, void *priv);

int inv_open_new(cs_inv *inv)
{
	struct inv_open *o = calloc(1, sizeof *o);
	if (o == NULL)
		return -1;
	for (uint32_t b = 0; b < NB; b++) {
		uint16_t s = inv_bucket_slot(inv, b);
		o->bslot[s / 8] |= (uint8_t)(1u << (s % 8));
	}
	inv->open = o;
	return 0;
}

void inv_open_free(cs_inv *inv)
{
	free(inv->open);
	inv->open = NULL;
}

static bool watching(const cs_inv *inv)
{
	return inv->ks.cluster && inv->open_watch && inv->open;
}

cs_lsn_t inv_open_safe(const cs_inv *inv)
{
	return watching(inv) ? inv->open->safe : UINT64_MAX;
}

bool inv_open_loss(const cs_inv *inv)
{
	return watching(inv) && inv->open->loss;
}

static int inv_open_marks(const cs_inv *inv)
{
	int n = 0;
	for (uint32_t b = 0; inv->open && b < NB; b++)
		n += inv->open->m[b].on;
	return n;
}

void inv_open_restart(cs_inv *inv)
{
	struct inv_open *o = inv->open;
	if (o == NULL)
		return;
	o->round++;
	o->busy = o->loaded = false;
	o->rec_hold = false; /* review 53 F1: a restart for another reason ends the wait */
	o->safe = o->floor; /* a new stream: nothing flushed past its start until a round vouches */
	/* review 26 R26-2: the streaming time without a complete round carries over (not the
	 * gap between streams): restarts more often than the hold bound no longer hold the
	 * flushed position (and the WAL) for ever */
	if (o->since_us != 0 && !inv->open_hold_nocarry)
		o->carry_us = cs_now_us() - o->since_us;
	/* (kept on a standby restart too: the first "slot active" is usually this process's own
	 * old walsender, not another leader; review 30 R30-1. An early hold after a takeover
	 * costs a needless flush, never a stale entry: review 29 R29-4, left) */
	o->since_us = 0; /* the hold is counted from the first tick that streams */
	o->retry_us = 0;
	o->behind = false;
	o->nt_state = NT_ASK; /* once a stream: CONFIG SET or an ACL may have changed since */
	o->nt_passing = 0;    /* review 29 R29-7 */
	memset(o->mixed, 0, sizeof o->mixed);
}

void inv_open_flushed(cs_inv *inv)
{
	struct inv_open *o = inv->open;
	if (o == NULL)
		return;
	memset(o->m, 0, sizeof o->m);
	o->last_why[0] = '\0'; /* the hold is counted anew (review 57 R5) */
	o->loss = false;
	o->rec = REC_NONE; /* the flush the record owed is done (a DEL in flight is ignored) */
	o->rec_gen++;
	o->rec_hold = false;
	o->reset = true;
	/* every entry older than this flush is retired: what was confirmed before it is safe */
	o->floor = CS_MAX(o->floor, o->hold_lsn);
	o->safe = CS_MAX(o->safe, o->floor);
	o->hold_lsn = 0;
	o->carry_us = o->since_us = 0; /* R26-2: a flush retired everything: counted anew */
}

/* Records the first reason the round is incomplete (for the warning). */
static void note(struct inv_open *o, const cs_redis *r, const char *what, const redisReply *reply)
{
	if (o->why[0] != '\0')
		return;
	const char *said = reply == NULL                      ? "no reply"
	                   : reply->type == REDIS_REPLY_ERROR ? reply->str
	                                                      : "an unexpected reply";
	snprintf(o->why, sizeof o->why, "%s: %s: %s",
	        r ? cs_redis_url_masked(r) : "bucket 0's master", what, said);
}

static bool sendc(cs_inv *inv, cs_redis *r, int idx, int kind, int argc, const char **argv,
        const size_t *lens)
{
	octx *c = malloc(sizeof *c);
	if (c == NULL)
		return false;
	*c = (octx){.inv = inv,
	        .epoch = inv->epoch,
	        .round = inv->open->round,
	        .idx = idx,
	        .kind = kind};
	inv->open->left++; /* before the send: a reply can never find it uncounted */
	int rc = r ? cs_redis_cmd(r, on_open_reply, c, argc, argv, lens)
	           : cs_rc_cmd(inv->rc, inv_bucket_slot(inv, 0), on_open_rc_reply, c, argc, argv,
	                     lens);
	if (rc != 0) {
		inv->open->left--;
		free(c);
		return false;
	}
	return true;
}

/* ---- Reading a round's replies ------------------------------------------------------------ */

static void add_id(oview *v, char *to, const char *id)
{
	if (to[0] == '\0')
		memcpy(to, id, CS_RC_ID_LEN + 1);
	else if (strcmp(to, id) != 0)
		v->mixed = true;
}

static void read_nodes(cs_inv *inv, const cs_redis *r, int idx, const redisReply *reply)
{
	struct inv_open *o = inv->open;
	cs_rc_node_line l;
	size_t pos = 0;
	o->views++;
	while (cs_rc_nodes_next(reply->str, (size_t)reply->len, &pos, &l)) {
		uint8_t f = EP_LISTED | (l.failed ? EP_FAILED : 0) | (l.replica ? EP_REPLICA : 0);
		inv_seen_add(&o->seen, l.id, f);
		for (uint32_t b = 0; b < NB; b++) {
			if (!o->m[b].on)
				continue;
			if (strcmp(l.id, o->m[b].src) == 0)
				o->v[b].fl[0] |=
				        f | (l.replica ? (strcmp(l.master, o->m[b].dst) == 0
				                                         ? EP_OF_DST
				                                         : EP_OF_OTHER)
				                       : 0);
			if (strcmp(l.id, o->m[b].dst) == 0)
				o->v[b].fl[1] |= f;
		}
		if (!l.myself)
			continue;
		memcpy(o->node[idx].id, l.id, sizeof l.id);
		cs_rc_open_slot os[NB];
		int n = cs_rc_nodes_open_slots(&l, os, NB);
		if (n > NB) {
			o->failed = true; /* more than we read: no verdict this round */
			if (o->why[0] == '\0')
				snprintf(o->why, sizeof o->why, "%s: more than %d open slots",
				        r ? cs_redis_url_masked(r) : "?", NB);
		}
		for (int i = 0; i < n && i < NB; i++) {
			uint16_t s = os[i].slot;
			if (!(o->bslot[s / 8] & (1u << (s % 8))))
				continue; /* no bucket's keys there */
			for (uint32_t b = 0; b < NB; b++) {
				if (inv_bucket_slot(inv, b) != s)
					continue;
				oview *v = &o->v[b];
				v->open = true;
				add_id(v, os[i].importing ? v->dst : v->src, l.id);
				add_id(v, os[i].importing ? v->src : v->dst, os[i].peer);
			}
		}
	}
}

/* review 22 R22-3: CONFIG GET cluster-node-timeout's reply (no part of the round's verdict). */
static void read_node_timeout(const cs_inv *inv, const cs_redis *r, const redisReply *reply)
{
	struct inv_open *o = inv->open;
	char *end = NULL;
	const redisReply *v = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
	                              ? reply->element[1]
	                              : NULL;
	unsigned long long ms = v && v->type == REDIS_REPLY_STRING ? strtoull(v->str, &end, 10) : 0;
	if (v && v->type == REDIS_REPLY_STRING && end != v->str && *end == '\0') {
		if (o->nt_ms != ms)
			cs_info("invalidator%s%s: %s: cluster-node-timeout %llu ms: the hold bound "
			        "of open slots is at least %llu s (review V9b, R22-3)",
			        INV_LOG_SHARD(inv), cs_redis_url_masked(r), ms,
			        (unsigned long long)(inv_open_hold_bound_ms(0, ms, 0, 0) / 1000));
		o->nt_state = NT_KNOWN, o->nt_ms = ms, o->nt_passing = 0;
		return;
	}
	if (reply == NULL) {
		o->nt_state = NT_ASK; /* no reply (a connection lost): asked at the next round */
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOPERM", 6) != 0 &&
	        strstr(reply->str, "unknown command") == NULL && ++o->nt_passing < NT_PASSING_MAX) {
		/* a passing error (LOADING, BUSY, NOAUTH while credentials rotate): asked again
		 * at the next round, once a status interval (review 24 R24-3); the same error
		 * NT_PASSING_MAX rounds in a row is a refusal worded otherwise (a proxy's "command
		 * not allowed"): logged, asked again at the next stream (review 25 R25-4) */
		o->nt_state = NT_ASK;
		return;
	}
	/* refused (an ACL, a proxy) or not the reply expected: not asked again this stream */
	o->nt_state = NT_REFUSED;
	o->nt_passing = 0;
	if (!o->nt_said) {
		char was[64] = "max(60 s, 10 status intervals)";
		if (o->nt_ms)
			snprintf(was, sizeof was, "that of the last value read, %llu ms",
			        (unsigned long long)o->nt_ms);
		cs_warn("invalidator%s%s: %s: CONFIG GET cluster-node-timeout refused (%s): the "
		        "hold bound of open slots stays %s (review V9b, R22-3)",
		        INV_LOG_SHARD(inv), cs_redis_url_masked(r),
		        reply->type == REDIS_REPLY_ERROR ? reply->str : "an unexpected reply", was);
	}
	o->nt_said = true;
}

static void read_info(struct inv_open *o, const cs_redis *r, int idx, const redisReply *reply)
{
	const char *p = strstr(reply->str, "run_id:");
	if (p == NULL || strspn(p + 7, "0123456789abcdef") != RUN_LEN) {
		o->failed = true;
		note(o, r, "INFO server: no run_id", reply);
		return;
	}
	memcpy(o->node[idx].run, p + 7, RUN_LEN);
	o->node[idx].run[RUN_LEN] = '\0';
	const char *u = strstr(reply->str, "uptime_in_seconds:");
	o->node[idx].up_s = u ? strtoull(u + 18, NULL, 10) : 0;
}

/* A mark's value (inv_open_mark_parse) into m; false when malformed. */
static bool parse_mark(const char *s, size_t n, omark *m)
{
	inv_mark t;
	if (!inv_open_mark_parse(s, n, &t))
		return false;
	*m = (omark){.on = true, .wall_s = t.wall_s};
	memcpy(m->src, t.src, sizeof m->src);
	memcpy(m->srun, t.srun, sizeof m->srun);
	memcpy(m->dst, t.dst, sizeof m->dst);
	memcpy(m->drun, t.drun, sizeof m->drun);
	return true;
}

static inv_mark mark_of(const omark *m)
{
	inv_mark t = {.wall_s = m->wall_s};
	memcpy(t.src, m->src, sizeof t.src);
	memcpy(t.srun, m->srun, sizeof t.srun);
	memcpy(t.dst, m->dst, sizeof t.dst);
	memcpy(t.drun, m->drun, sizeof t.drun);
	return t;
}

static bool keeps_seen(const omark *held, const omark *rd)
{
	inv_mark h = mark_of(held), r = mark_of(rd);
	return inv_open_keeps_seen(held->on, held->seen_us, &h, &r);
}

/* The marks into o->m; *lsn the field "lsn" (UINT64_MAX: absent, a hash of an older
 * version). */
static bool read_marks(struct inv_open *o, const redisReply *reply, cs_lsn_t *lsn)
{
	*lsn = UINT64_MAX;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2)
		return false;
	uint8_t got[NB / 8] = {0};
	for (size_t i = 0; i + 1 < reply->elements; i += 2) {
		const redisReply *f = reply->element[i], *v = reply->element[i + 1];
		char *end;
		if (f->type == REDIS_REPLY_STRING && strcmp(f->str, "lsn") == 0) {
			*lsn = v->type == REDIS_REPLY_STRING ? strtoull(v->str, &end, 16) : 0;
			continue;
		}
		unsigned long b = f->type == REDIS_REPLY_STRING ? strtoul(f->str, &end, 10) : NB;
		if (b >= NB || end == f->str || *end != '\0')
			continue; /* not a field this code writes */
		omark nm = {0};
		if (v->type != REDIS_REPLY_STRING || !parse_mark(v->str, (size_t)v->len, &nm)) {
			nm = (omark){.on = true}; /* unreadable: no endpoint matches it, a loss */
		} else if (keeps_seen(&o->m[b], &nm)) {
			/* review 24 R24-1: the mark this process wrote (a stream restart): its
			 * monotonic time still holds (judged with its own wall clock too: R25-1) */
			nm.seen_us = o->m[b].seen_us;
		}
		o->m[b] = nm;
		got[b / 8] |= (uint8_t)(1u << (b % 8));
	}
	for (int b = 0; b < NB; b++)
		if (!(got[b / 8] & (1u << (b % 8))))
			o->m[b] = (omark){0};
	return true;
}

/* ---- The verdict -------------------------------------------------------------------------- */

/* The run of node id among the masters that answered; NULL when none is that node. */
/* id's flags over every master's list this round (0: listed by none; -1: not known, more
 * than INV_SEEN_MAX nodes listed). */
static int flags_of(const struct inv_open *o, const char *id)
{
	return inv_seen_get(&o->seen, id);
}

/* The uptime of node id among the masters that answered (0: unknown). */
static uint64_t uptime_of(const struct inv_open *o, const char *id)
{
	for (int i = 0; i < o->nnodes; i++)
		if (o->node[i].run[0] && strcmp(o->node[i].id, id) == 0)
			return o->node[i].up_s;
	return 0;
}

static const char *run_of(const struct inv_open *o, const char *id)
{
	for (int i = 0; i < o->nnodes; i++)
		if (o->node[i].run[0] && strcmp(o->node[i].id, id) == 0)
			return o->node[i].run;
	return NULL;
}

/* Why endpoint e (0 source, 1 target) of b's mark changed, or NULL; *unknown when it did not
 * answer but is listed as a live master. Gone from every list counts only when every master
 * answered (complete). */
static const char *endpoint_changed(
        struct inv_open *o, uint32_t b, int e, bool complete, bool *unknown)
{
	const omark *m = &o->m[b];
	const char *id = e ? m->dst : m->src, *rec = e ? m->drun : m->srun;
	uint8_t fl = o->v[b].fl[e];
	const char *run = run_of(o, id);
	/* review R18-1b: a master that gives its last slot away becomes a replica of the node
	 * that took it (Redis 7.0, cluster-allow-replica-migration): a drained source, not a
	 * failover, when the slot is closed and every view lists it as a replica of the mark's
	 * target, not failed. Its keys had all left it by MIGRATE before that close, as the
	 * recorded run (checked in every round while it was a master) had them. A replica is
	 * not asked INFO: its run is vouched for by those rounds, not this one. */
	if (e == 0 && !o->v[b].open && (fl & EP_OF_DST) && !(fl & (EP_OF_OTHER | EP_FAILED)))
		return NULL;
	if (fl & EP_REPLICA)
		return "is now a replica (failed over)";
	if (fl & EP_FAILED)
		return "is marked failed by the cluster";
	if (!(fl & EP_LISTED) && complete)
		return "is no longer a node of the cluster";
	if (run && strcmp(rec, "-") != 0 && strcmp(run, rec) != 0)
		return "runs another run_id (restarted)";
	*unknown = *unknown || run == NULL;
	return NULL;
}

/* Review 50 R50-1: the flush a loss owes is the next SYNC's, which runs once
 * START_REPLICATION holds the slot: a process that then loses the slot to another would owe it
 * in memory only (o->loss), and the other would stream without it. So the loss is recorded in
 * Redis first: bucket 0's epoch copy deleted, which any SYNC, whoever leads, finds lost and
 * flushes the namespace for (CLUSTER.md (h')); daemons bypass the cache until then.
 *
 * Review 51 R51-1: and the slot is let go once Redis acknowledged that DEL, so that a standby
 * taking it cannot stream without the flush. Until then the stream goes on (its invalidations
 * still land) with its flushed position held where the last complete round left it (no round
 * runs meanwhile), and the DEL is sent again with a backoff (100 ms doubling to 5 s). That
 * wait is bounded (review 53 F2, F3): past rec_hold_ms (5 s by default) the stream restarts
 * anyway, as before R51-1, the loss still owed in memory (o->loss: this process's next SYNC
 * flushes, and only a standby taking the slot in between streams without the flush, as
 * before), so that a DEL refused for good (an ACL, a proxy, a fault of this connection only)
 * neither holds the flush back nor keeps the loss in this process's memory only for long. The
 * retries go on in every state but the SYNC (review 53 F4: a DEL landing after its stamp
 * costs a second flush) until the DEL is acknowledged or a SYNC of this process flushed
 * (inv_open_flushed); a restart for another reason meanwhile (a reload, the connection to
 * PostgreSQL lost) is that same fallback (review 53 F1). A shutdown with the record owed
 * is logged as an error: the loss is then forgotten unless the next holder finds it itself
 * (a mark read back), as when a process stopped between a loss and its SYNC before.
 * `loss_record_nowait` (tests only) restores the DEL sent without waiting: the negative
 * control. */
typedef struct rctx {
	cs_inv *inv;
	uint64_t gen, epoch;
} rctx;

static void on_loss_recorded(cs_rc *r, redisReply *reply, void *priv);

#define REC_HOLD_MS 5000 /* the stream kept for a loss's record at most this long */
static uint64_t rec_hold_ms(const cs_inv *inv)
{
	return inv->rec_hold_ms > 0 ? (uint64_t)inv->rec_hold_ms : REC_HOLD_MS;
}

static void rec_failed(cs_inv *inv, const redisReply *reply)
{
	struct inv_open *o = inv->open;
	o->rec = REC_WAIT;
	inv->stats.open_record_retries++;
	uint64_t ms = (uint64_t)cs_backoff_ms(o->rec_fails++, 100, 5000);
	uint64_t now = cs_now_us();
	o->rec_retry_us = now + ms * 1000u;
	if (o->rec_fails == 1)
		cs_warn("invalidator%s%s: the loss could not be recorded in bucket 0 (DEL of its "
		        "epoch copy: %s): the slot is kept, its flushed position held, for up to %d "
		        "ms while it is retried with a backoff (review 51 R51-1)",
		        INV_LOG_SHARD(inv),
		        reply == NULL                      ? "no reply"
		        : reply->type == REDIS_REPLY_ERROR ? reply->str
		                                           : "an unexpected reply",
		        (int)rec_hold_ms(inv));
	if (o->rec_hold && now - o->rec_since_us >= (uint64_t)rec_hold_ms(inv) * 1000u) {
		o->rec_hold = false;
		inv->stats.open_record_fallbacks++;
		cs_error("invalidator%s%s: the loss is still not recorded in bucket 0, %d ms or more "
		         "after it was found (checked at each failed try): restarting anyway, this process flushing at its next synchronisation (the "
		         "record is still retried; a standby taking the slot meanwhile would stream "
		         "without the flush, review 53)",
		         INV_LOG_SHARD(inv), (int)rec_hold_ms(inv));
		if (inv->st == ST_STREAMING) {
			char why[sizeof o->rec_why];
			memcpy(why, o->rec_why, sizeof why);
			inv_restart(inv, why, false);
		}
	}
}

static void loss_send(cs_inv *inv)
{
	struct inv_open *o = inv->open;
	char key[CS_NAME_MAX];
	const char *argv[2] = {"DEL", key};
	size_t lens[2] = {3, cs_ks_fixed_in(&inv->ks, 0, CS_KS_EPOCH, key, sizeof key)};
	o->rec = REC_SENT;
	o->rec_gen++;
	rctx *c = malloc(sizeof *c);
	if (c != NULL)
		*c = (rctx){.inv = inv, .gen = o->rec_gen, .epoch = inv->epoch};
	if (c == NULL || cs_rc_cmd(inv->rc, inv_bucket_slot(inv, 0), on_loss_recorded, c, 2, argv,
	                         lens) != 0) {
		free(c);
		rec_failed(inv, NULL);
	}
}

static void on_loss_recorded(cs_rc *r, redisReply *reply, void *priv)
{
	(void)r;
	rctx *c = priv;
	cs_inv *inv = c->inv;
	uint64_t gen = c->gen, epoch = c->epoch;
	free(c);
	struct inv_open *o = inv->open;
	if (o == NULL || o->rec != REC_SENT || o->rec_gen != gen)
		return; /* flushed meanwhile, or shutting down (inv_open_abandon) */
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		rec_failed(inv, reply);
		inv_tick_rearm(inv); /* the retry's deadline */
		return;
	}
	o->rec = REC_NONE;
	/* review 51 R51-2: the flush is owed by Redis now (bucket 0 found lost by whichever SYNC
	 * runs next), no longer by this process: one that performed it meanwhile (the slot's next
	 * holder) re-stamped bucket 0, and this process's own SYNC, when it leads later, need not
	 * flush a second time */
	o->loss = false;
	if (o->rec_fails > 0)
		cs_info("invalidator%s%s: the loss is recorded in bucket 0 after %d failed tries",
		        INV_LOG_SHARD(inv), o->rec_fails);
	o->rec_fails = 0;
	bool hold = o->rec_hold;
	o->rec_hold = false;
	if (hold && epoch == inv->epoch && inv->st == ST_STREAMING) {
		char why[sizeof o->rec_why];
		memcpy(why, o->rec_why, sizeof why);
		inv_restart(inv, why, false);
	}
}

/* A loss found while streaming (o->loss set, logged): recorded in Redis, then the restart. */
static void loss_restart(cs_inv *inv, const char *why)
{
	struct inv_open *o = inv->open;
	if (inv->loss_record_nowait) {
		char key[CS_NAME_MAX];
		const char *argv[2] = {"DEL", key};
		size_t lens[2] = {3, cs_ks_fixed_in(&inv->ks, 0, CS_KS_EPOCH, key, sizeof key)};
		(void)!cs_rc_cmd(inv->rc, inv_bucket_slot(inv, 0), NULL, NULL, 2, argv, lens);
		inv_restart(inv, why, false);
		return;
	}
	snprintf(o->rec_why, sizeof o->rec_why, "%s", why);
	o->round++; /* the round in flight: its late replies are ignored */
	o->busy = false;
	o->rec_fails = 0;
	o->rec_hold = true;
	o->rec_since_us = cs_now_us();
	loss_send(inv);
}

uint64_t inv_open_rec_next_us(const cs_inv *inv)
{
	return inv->open && inv->open->rec == REC_WAIT ? inv->open->rec_retry_us : 0;
}

void inv_open_rec_tick(cs_inv *inv, uint64_t now)
{
	struct inv_open *o = inv->open;
	/* review 53 F4: not inside this process's SYNC, which flushes (o->loss) and ends it */
	if (o != NULL && o->rec == REC_WAIT && now >= o->rec_retry_us && inv->st != ST_SYNC)
		loss_send(inv);
}

void inv_open_abandon(cs_inv *inv)
{
	struct inv_open *o = inv->open;
	if (o == NULL || o->rec == REC_NONE)
		return;
	o->rec = REC_NONE;
	o->rec_hold = false;
	cs_error("invalidator%s%s: stopping with a loss not recorded in bucket 0 (review 51 "
	         "R51-1): whoever streams next flushes only if it finds the loss itself",
	         INV_LOG_SHARD(inv));
}

static void loss(cs_inv *inv, uint32_t b, const char *what)
{
	struct inv_open *o = inv->open;
	const omark *m = &o->m[b];
	o->loss = true;
	inv->stats.open_losses++;
	char why[400];
	snprintf(why, sizeof why,
	        "bucket %u's hash slot %u was being migrated (from %.12s to %.12s) and %s: a "
	        "deletion that ran on one of them may be lost (review V9b): the namespace is "
	        "flushed",
	        (unsigned)b, (unsigned)inv_bucket_slot(inv, b), m->on ? m->src : o->v[b].src,
	        m->on ? m->dst : o->v[b].dst, what);
	cs_error("invalidator%s%s: %s", INV_LOG_SHARD(inv), why);
	loss_restart(inv, why);
}

/* A round that is not complete: counted, and a warning at most every WARN_EVERY_US. */
static void incomplete(cs_inv *inv)
{
	struct inv_open *o = inv->open;
	uint64_t supp;
	inv->stats.open_incomplete++;
	if (o->why[0] != '\0')
		memcpy(o->last_why, o->why, sizeof o->last_why);
	if (!cs_ratelimit_pass(&o->warn, WARN_EVERY_US, &supp))
		return;
	cs_warn("invalidator%s%s: a round of open slots was incomplete (%s; %llu more since the "
	        "last "
	        "warning): the flushed position is held until one completes (review V9b, R18-5)",
	        INV_LOG_SHARD(inv), o->why[0] ? o->why : "a master not connected",
	        (unsigned long long)supp);
}

static void writes_done(cs_inv *inv)
{
	struct inv_open *o = inv->open;
	o->busy = false;
	if (!o->incomplete && !o->failed) {
		o->safe = CS_MAX(o->safe, o->lsn);
		o->last_why[0] = '\0';
		o->since_us = cs_now_us();
		o->carry_us = 0;
		inv->stats.open_rounds++;
		if (o->backoff)
			cs_info("invalidator%s%s: a round of open slots completed: the hold bound "
			        "is back to its base (review V9b, R22-3)",
			        INV_LOG_SHARD(inv));
		o->backoff = 0;
	} else {
		incomplete(inv);
	}
}

/* review R18-4: the marks read back vouch for less than the slot's confirmed position W:
 * bucket 0 lost writes that let W pass (its failover to a replica that had the position copy
 * but not the marks): a loss. */
static void marks_behind(cs_inv *inv, cs_lsn_t ml)
{
	struct inv_open *o = inv->open;
	char why[240], mh[17], wh[17];
	cs_lsn_hex(ml, mh);
	cs_lsn_hex(inv->slot_confirmed, wh);
	o->behind = false;
	o->loss = true;
	inv->stats.open_losses++;
	snprintf(why, sizeof why,
	        "the marks of open slots vouch up to %s but the slot's confirmed position is %s: "
	        "bucket 0 lost their last writes (review V9b, R18-4): the namespace is flushed",
	        mh, wh);
	cs_error("invalidator%s%s: %s", INV_LOG_SHARD(inv), why);
	loss_restart(inv, why);
}

/* v's ends (as the round read them) with their runs into v->next, to be written. */
static void fresh_mark(struct inv_open *o, oview *v)
{
	const char *sr = run_of(o, v->src), *dr = run_of(o, v->dst);
	v->next = (omark){.on = true};
	memcpy(v->next.src, v->src, sizeof v->src);
	memcpy(v->next.dst, v->dst, sizeof v->dst);
	snprintf(v->next.srun, sizeof v->next.srun, "%s", sr ? sr : "-");
	snprintf(v->next.drun, sizeof v->next.drun, "%s", dr ? dr : "-");
	v->next.seen_us = o->last_us;
	v->next.wall_s = o->last_wall_s;
	v->act = 1;
}

/* review R18-1: b's slot seen with two pairs of ends this round: true (a loss) when it was in
 * the last round too; else the round is not complete (safe does not pass it) and it is read
 * again. */
static bool mixed_twice(struct inv_open *o, uint32_t b)
{
	if (o->mixed[b])
		return true;
	o->mixed[b] = 1;
	o->failed = true;
	if (o->why[0] == '\0')
		snprintf(o->why, sizeof o->why,
		        "bucket %u's slot seen open between two pairs of nodes: read again",
		        (unsigned)b);
	return false;
}

/* Review 46 R46-1: a slot seen open, or marked, with an end that did not answer, while a master
 * of no slot was not asked (R45-1): that end is likely the master not asked (a new node this
 * process cannot log in to, a reshard towards it stuck). The round is not complete then, so
 * the flushed position is held under the hold bound and its backoff, as before R45-1; as
 * complete, its end "not answered for 3 s" was a loss, the namespace flushed every few
 * seconds until the slot was closed. */
/* An end that did not answer and may be a master skipped this round: one the masters list as
 * a master, not failed (the skipped one is in the map: CLUSTER SHARDS lists it online), or
 * whose flags are not known. A replica (a source drained to its last slot, review R18-1b), a
 * failed node or one no master lists any more cannot be: their verdicts (a mark cleared, a
 * loss) must not wait for the hold bound (review 47 R47-1, R47-2). */
static bool maybe_skipped(const struct inv_open *o, const char *id)
{
	if (id[0] == '\0' || run_of(o, id) != NULL)
		return false;
	int fl = flags_of(o, id);
	return fl < 0 || ((fl & EP_LISTED) && !(fl & (EP_FAILED | EP_REPLICA)));
}

static bool open_towards_skipped(struct inv_open *o)
{
	if (o->skipped == 0)
		return false;
	for (uint32_t b = 0; b < NB; b++) {
		const omark *m = &o->m[b];
		const oview *v = &o->v[b];
		if (m->on && (maybe_skipped(o, m->src) || maybe_skipped(o, m->dst)))
			return true;
		if (v->open && (maybe_skipped(o, v->src) || maybe_skipped(o, v->dst)))
			return true;
	}
	return false;
}

static void evaluate(cs_inv *inv)
{
	struct inv_open *o = inv->open;
	if (!o->incomplete && !o->failed && open_towards_skipped(o)) {
		o->incomplete = true;
		snprintf(o->why, sizeof o->why,
		        "a slot is open (or marked) towards a node that did not answer, while a "
		        "master of no slot could not be reached");
	}
	bool complete = !o->incomplete && !o->failed;
	uint64_t now = cs_now_us();
	int64_t wall = cs_wall_us();
	uint64_t wall_now = wall > 0 ? (uint64_t)wall / 1000000u : 0;
	const char *argv[4 + 2 * NB];
	size_t lens[4 + 2 * NB];
	char key[CS_NAME_MAX], (*num)[8] = o->num, (*val)[INV_MARK_MAX] = o->val;
	int ns = 2, nd = 2;
	const char *dargv[2 + NB];
	size_t dlens[2 + NB];
	for (uint32_t b = 0; b < NB; b++) {
		omark *m = &o->m[b];
		oview *v = &o->v[b];
		v->act = 0;
		if (!v->mixed)
			o->mixed[b] = 0;
		if (!m->on && !v->open)
			continue;
		if (v->mixed) {
			if (mixed_twice(o, b)) {
				loss(inv, b,
				        "two nodes claim one of its ends in two rounds in a row");
				return;
			}
			continue;
		}
		if (!m->on) {
			if (v->src[0] == '\0' || v->dst[0] == '\0')
				continue;
			/* review R18-3: an end already failed over or failed at first sight */
			int fs = flags_of(o, v->src), fd = flags_of(o, v->dst);
			if (fs < 0 || fd < 0) {
				/* review 22 R22-4: more nodes listed than kept, and this end not
				 * among them: it cannot be vouched for at first sight */
				loss(inv, b,
				        fs < 0 ? "its source's flags are not known when the "
				                 "slot is first seen open (more than 1024 "
				                 "nodes listed)"
				               : "its target's flags are not known when the "
				                 "slot is first seen open (more than 1024 "
				                 "nodes listed)");
				return;
			}
			if ((fs | fd) & (EP_FAILED | EP_REPLICA)) {
				char w[160];
				snprintf(w, sizeof w,
				        "its %s is listed %s when the slot is first seen open",
				        (fs & (EP_FAILED | EP_REPLICA)) ? "source" : "target",
				        ((fs & (EP_FAILED | EP_REPLICA)) ? fs : fd) & EP_REPLICA
				                ? "as a replica"
				                : "as failed");
				loss(inv, b, w);
				return;
			}
			fresh_mark(o, v);
		} else {
			if (v->open &&
			        (strcmp(v->src, m->src) != 0 || strcmp(v->dst, m->dst) != 0)) {
				/* review R18-1: reopened between other ends. The old migration
				 * ended cleanly (nothing of it can be lost any more) when both its
				 * ends are listed, neither failed nor a replica, on their recorded
				 * runs, in a complete round: the new ends replace the mark. */
				if (!complete)
					continue; /* no verdict: read again */
				bool unknown = false;
				const char *w0 = endpoint_changed(o, b, 0, true, &unknown);
				const char *w1 = endpoint_changed(o, b, 1, true, &unknown);
				if (w0 || w1 || unknown || strcmp(m->srun, "-") == 0 ||
				        strcmp(m->drun, "-") == 0) {
					char w[200];
					snprintf(w, sizeof w,
					        "it is now open between other nodes and its %s %s",
					        w0 ? "source" : "target",
					        w0   ? w0
					        : w1 ? w1
					             : "cannot be vouched for");
					loss(inv, b, w);
					return;
				}
				fresh_mark(o, v);
				goto write;
			}
			if (o->views == 0)
				continue; /* nothing read: no evidence either way */
			bool unknown = false;
			const char *why = endpoint_changed(o, b, 0, complete, &unknown);
			const char *why_dst =
			        why ? NULL : endpoint_changed(o, b, 1, complete, &unknown);
			if (why || why_dst) {
				char w[160];
				snprintf(w, sizeof w, "its %s %s", why ? "source" : "target",
				        why ? why : why_dst);
				loss(inv, b, w);
				return;
			}
			if (!complete)
				continue;
			if (!unknown)
				m->unknown_us = 0;
			else if (m->unknown_us == 0)
				m->unknown_us = now;
			else if (now - m->unknown_us >= OPEN_UNKNOWN_MS * 1000u) {
				loss(inv, b, "an end of it has not answered for 3 s");
				return;
			}
			if (unknown) {
				cs_rc_refresh(inv->rc); /* a master the map does not have yet? */
				continue;
			}
			const char *sr = run_of(o, m->src), *dr = run_of(o, m->dst);
			bool dash = strcmp(m->srun, "-") == 0 || strcmp(m->drun, "-") == 0;
			/* review R18-2: an end not answered when marked is vouched for only when it
			 * has run since before the round that wrote the mark (a restart in between
			 * is the very event); whether the slot is still open or closed since
			 * (review 21 R21-4: a short migration is usually closed by the next round)
			 */
			for (int e = 0; dash && e < 2; e++) {
				const char *id = e ? m->dst : m->src, *rec = e ? m->drun : m->srun;
				uint64_t up = uptime_of(o, id);
				if (strcmp(rec, "-") != 0)
					continue;
				/* review 22 R22-1: a mark read back (seen_us 0) by the wall-clock
				 * time it carries, as Redis's uptime is wall clock too */
				if (!inv_open_vouched(up, m->seen_us, now, m->wall_s, wall_now)) {
					char w[160];
					snprintf(w, sizeof w,
					        "its %s, not answered when it was marked, "
					        "restarted since (or cannot be vouched for)",
					        e ? "target" : "source");
					loss(inv, b, w);
					return;
				}
			}
			if (!v->open) {
				v->act = 2; /* closed, both ends on their recorded runs */
			} else if (dash) {
				/* an end not reachable when the slot was first seen: its run now */
				v->next = *m;
				snprintf(v->next.srun, sizeof v->next.srun, "%s", sr);
				snprintf(v->next.drun, sizeof v->next.drun, "%s", dr);
				v->act = 1;
			}
		}
	write:
		if (v->act == 1) {
			snprintf(num[b], sizeof num[b], "%u", (unsigned)b);
			inv_mark t = {.wall_s = v->next.wall_s};
			memcpy(t.src, v->next.src, sizeof t.src);
			memcpy(t.srun, v->next.srun, sizeof t.srun);
			memcpy(t.dst, v->next.dst, sizeof t.dst);
			memcpy(t.drun, v->next.drun, sizeof t.drun);
			int vl = inv_open_mark_format(val[b], sizeof val[b], &t);
			if (vl < 0)
				vl = 0; /* cannot happen (INV_MARK_MAX): an empty value reads as a
				           loss */
			argv[ns] = num[b], lens[ns++] = strlen(num[b]);
			argv[ns] = val[b], lens[ns++] = (size_t)vl;
		} else if (v->act == 2) {
			snprintf(num[b], sizeof num[b], "%u", (unsigned)b);
			dargv[nd] = num[b], dlens[nd++] = strlen(num[b]);
		}
	}
	size_t kl = cs_ks_openmark(&inv->ks, key, sizeof key, inv->slot);
	o->left = 0;
	o->wlsn = 0;
	if (o->behind) {
		marks_behind(inv, o->behind_lsn);
		return;
	}
	if (complete && o->lsn > o->mlsn) {
		/* review R18-4: the round's L with its marks, acknowledged before safe passes L */
		o->wlsn = o->lsn;
		cs_lsn_hex(o->lsn, o->lhex);
		argv[ns] = "lsn", lens[ns++] = 3;
		argv[ns] = o->lhex, lens[ns++] = 16;
	}
	if (ns > 2) {
		argv[0] = "HSET", lens[0] = 4, argv[1] = key, lens[1] = kl;
		if (!sendc(inv, NULL, -1, K_SET, ns, argv, lens))
			o->failed = true;
	}
	if (nd > 2) {
		dargv[0] = "HDEL", dlens[0] = 4, dargv[1] = key, dlens[1] = kl;
		if (!sendc(inv, NULL, -1, K_DEL, nd, dargv, dlens))
			o->failed = true;
	}
	if (o->left == 0)
		writes_done(inv);
}

/* ---- Replies ------------------------------------------------------------------------------ */

static void open_reply(octx *c, const cs_redis *r, const redisReply *reply)
{
	cs_inv *inv = c->inv;
	struct inv_open *o = inv->open;
	bool current = c->epoch == inv->epoch && o && c->round == o->round && o->busy;
	int kind = c->kind, idx = c->idx;
	uint64_t c_epoch = c->epoch;
	free(c);
	if (!current)
		return;
	bool ok = reply && reply->type != REDIS_REPLY_ERROR;
	bool text = ok && reply->type == REDIS_REPLY_STRING;
	switch (kind) {
	case K_NODES:
		if (text)
			read_nodes(inv, r, idx, reply);
		else
			o->incomplete = true, note(o, r, "CLUSTER NODES", reply);
		break;
	case K_INFO:
		if (text)
			read_info(o, r, idx, reply);
		else
			o->incomplete = true, note(o, r, "INFO server", reply);
		break;
	case K_LOAD:
	case K_RESET:
		if (kind == K_LOAD) {
			cs_lsn_t ml = 0;
			o->loaded = ok && read_marks(o, reply, &ml);
			if (o->loaded && ml != UINT64_MAX)
				o->mlsn = ml;
			/* a loss at the first round (after the marks' own verdicts) */
			o->behind = o->loaded && ml != UINT64_MAX && ml < inv->slot_confirmed;
			o->behind_lsn = ml;
		} else {
			o->rbad = o->rbad || !ok;
		}
		if (kind == K_RESET && o->left > 1)
			break; /* the reset's other command */
		if (kind == K_RESET)
			o->reset = o->rbad, o->loaded = ok = !o->rbad;
		if (ok && (kind == K_RESET || o->loaded)) {
			o->lfails = 0;
			break;
		}
		/* review R18-6: retried after a backoff; said once (the hold bound ends it) */
		o->retry_us = cs_now_us() + (uint64_t)cs_backoff_ms(o->lfails, 100, 5000) * 1000u;
		if (o->lfails++ == 0)
			cs_error("invalidator%s%s: the marks of open slots could not be %s (%s): "
			         "retried "
			         "with a backoff; the flushed position is held meanwhile (review "
			         "V9b)",
			        INV_LOG_SHARD(inv), kind == K_LOAD ? "read back" : "deleted",
			        reply == NULL                      ? "no reply"
			        : reply->type == REDIS_REPLY_ERROR ? reply->str
			                                           : "not a hash");
		inv->stats.open_incomplete++;
		break;
	case K_CONFIG:
		read_node_timeout(inv, r, reply);
		break;
	case K_SET:
	case K_DEL:
		if (!ok)
			o->failed = true, note(o, NULL, kind == K_SET ? "HSET" : "HDEL", reply);
		if (ok && kind == K_SET && o->wlsn)
			o->mlsn = o->wlsn;
		for (uint32_t b = 0; ok && b < NB; b++) {
			if (kind == K_SET && o->v[b].act == 1) {
				inv->stats.open_marked += !o->m[b].on;
				o->m[b] = o->v[b].next;
			}
			if (kind == K_DEL && o->v[b].act == 2)
				o->m[b].on = false;
		}
		break;
	}
	if (--o->left > 0)
		return;
	if (kind == K_LOAD || kind == K_RESET)
		o->busy = false; /* the first poll at the next tick */
	else if (kind == K_NODES || kind == K_INFO || kind == K_CONFIG)
		evaluate(inv);
	else
		writes_done(inv);
	/* issue 16: the tick is armed for the watch's next deadline (the first round after the
	 * marks, the next round, a backoff), not polled */
	if (c_epoch == inv->epoch)
		inv_tick_rearm(inv);
}

static void on_open_reply(cs_redis *r, redisReply *reply, void *priv)
{
	open_reply(priv, r, reply);
}

static void on_open_rc_reply(cs_rc *r, redisReply *reply, void *priv)
{
	open_reply(priv, NULL, reply);
}

/* ---- Rounds ------------------------------------------------------------------------------- */

static void start_round(cs_inv *inv, uint64_t now)
{
	struct inv_open *o = inv->open;
	o->round++;
	o->busy = true;
	o->incomplete = o->failed = false;
	o->left = o->views = o->skipped = 0;
	o->why[0] = '\0';
	o->deadline_us = now + OPEN_TIMEOUT_MS * 1000u;
	char key[CS_NAME_MAX];
	size_t kl = cs_ks_openmark(&inv->ks, key, sizeof key, inv->slot);
	if (o->reset || !o->loaded) {
		/* first the marks: DEL them after a flush, else read them back */
		const char *argv[] = {o->reset ? "DEL" : "HGETALL", key};
		size_t lens[] = {strlen(argv[0]), kl};
		/* review R18-4: after a flush, the marks vouch for what it retired: the slot's
		 * confirmed position (and the hold's floor), every entry older than the flush */
		cs_lsn_t v = CS_MAX(inv->slot_confirmed, o->floor);
		cs_lsn_hex(v, o->lhex);
		const char *hargv[] = {"HSET", key, "lsn", o->lhex};
		size_t hlens[] = {4, kl, 3, 16};
		o->rbad = false;
		if (o->reset) {
			o->mlsn = 0;
			if (!sendc(inv, NULL, -1, K_RESET, 2, argv, lens) ||
			        !sendc(inv, NULL, -1, K_RESET, 4, hargv, hlens))
				o->rbad = true;
			if (o->left > 0)
				return;
			o->busy = false;
			o->retry_us = now + (uint64_t)cs_backoff_ms(o->lfails++, 100, 5000) * 1000u;
		} else if (!sendc(inv, NULL, -1, K_LOAD, 2, argv, lens)) {
			o->busy = false;
			o->retry_us = now + (uint64_t)cs_backoff_ms(o->lfails++, 100, 5000) * 1000u;
		}
		return;
	}
	o->last_us = now;
	int64_t wall = cs_wall_us();
	o->last_wall_s = wall > 0 ? (uint64_t)wall / 1000000u : 0; /* 0: a "-" is a loss later */
	o->lsn = cs_ledger_confirmed(inv->ledger);
	memset(o->v, 0, sizeof o->v);
	memset(o->node, 0, sizeof o->node);
	inv_seen_reset(&o->seen);
	o->nnodes = CS_MIN(cs_rc_nnodes(inv->rc), CS_RC_MAX_NODES);
	static const char *const nodes[] = {"CLUSTER", "NODES"}, *const info[] = {"INFO", "server"};
	static const size_t nodes_l[] = {7, 5}, info_l[] = {4, 6};
	for (int i = 0; i < o->nnodes; i++) {
		cs_redis *r = cs_rc_node(inv->rc, i);
		/* review 45 R45-1: a master of no slot that cannot be reached (a failed master the
		 * cluster still lists, only suspected; a new empty one this process may not log
		 * in to) holds no key, and no slot can be open from it; one open towards it shows
		 * on its source's line, where its end is not answered: marked with a "-" run and
		 * a loss after OPEN_UNKNOWN_MS, as any end not answering. Waiting for it made
		 * every round incomplete, the flushed position held and, at the hold bound, the
		 * namespace flushed, again at every bound, while the cache was otherwise in use
		 * (cs_rc_ready already does without it). */
		if (r != NULL && !cs_redis_ready(r) && cs_rc_node_slots(inv->rc, i) == 0) {
			o->skipped++;
			continue;
		}
		if (r == NULL || !cs_redis_ready(r) ||
		        !sendc(inv, r, i, K_NODES, 2, (const char **)nodes, nodes_l) ||
		        !sendc(inv, r, i, K_INFO, 2, (const char **)info, info_l)) {
			o->incomplete = true;
			if (o->why[0] == '\0')
				snprintf(o->why, sizeof o->why, "%s: not connected",
				        r ? cs_redis_url_masked(r) : "a master");
			continue;
		}
		/* review 22 R22-3: the cluster's node timeout, from the first master that takes it
		 */
		if (o->nt_state == NT_ASK) {
			static const char *const cg[] = {"CONFIG", "GET", "cluster-node-timeout"};
			static const size_t cg_l[] = {6, 3, 20};
			if (sendc(inv, r, i, K_CONFIG, 3, (const char **)cg, cg_l))
				o->nt_state = NT_ASKED;
		}
	}
	if (o->nnodes == 0) {
		o->incomplete = true;
		snprintf(o->why, sizeof o->why, "no master in the slot map");
	}
	if (o->left == 0)
		evaluate(inv);
}

void cs_inv_set_open_hold_nocarry(cs_inv *inv, bool nocarry)
{
	inv->open_hold_nocarry = nocarry;
}

/* The hold bound now (ms). */
static uint64_t hold_bound_ms(const cs_inv *inv)
{
	const struct inv_open *o = inv->open;
	return inv_open_hold_bound_ms((uint64_t)inv->open_hold_ms, o->nt_ms,
	        (uint64_t)inv->status_interval_ms, inv->open_hold_fixed ? 0 : o->backoff);
}

uint64_t inv_open_next_us(const cs_inv *inv, uint64_t now)
{
	if (!watching(inv) || inv->st != ST_STREAMING || inv->open->rec_hold)
		return 0; /* R51-1: the record's retry is inv_open_rec_next_us */
	const struct inv_open *o = inv->open;
	if (o->since_us == 0)
		return now; /* the hold's clock starts at the first tick that streams */
	uint64_t at = 0;
	/* the hold bound; a position confirmed later re-arms the tick (work in flight) */
	if (!o->loss && o->safe < cs_ledger_confirmed(inv->ledger))
		at = o->since_us + hold_bound_ms(inv) * 1000u;
	uint64_t next;
	if (o->busy)
		next = o->deadline_us + 1; /* dropped past its timeout (its last reply re-arms) */
	else if (o->loaded && !o->reset)
		next = o->last_us + (uint64_t)inv->status_interval_ms * 1000u; /* the next round */
	else
		next = CS_MAX(o->retry_us, now); /* the marks read back or deleted, backed off */
	return at == 0 || next < at ? next : at;
}

void inv_open_tick(cs_inv *inv)
{
	if (!watching(inv) || inv->st != ST_STREAMING || inv->open->rec_hold)
		return; /* R51-1: a loss being recorded: no round until the restart */
	struct inv_open *o = inv->open;
	uint64_t now = cs_now_us();
	inv->stats.open_marks = (uint64_t)inv_open_marks(inv);
	if (o->since_us == 0)
		o->since_us = now > o->carry_us ? now - o->carry_us : 1;
	/* review R18-5: no complete round for that long holds the flushed position (WAL retained):
	 * treated as a loss (the namespace flushed: conservative, never stale), after which what
	 * was confirmed before the flush is safe */
	uint64_t hold_ms = hold_bound_ms(inv);
	inv->stats.open_hold_ms = hold_ms;
	if (!o->loss && now - o->since_us >= hold_ms * 1000u &&
	        o->safe < cs_ledger_confirmed(inv->ledger)) {
		char why[640];
		o->hold_lsn = cs_ledger_confirmed(inv->ledger);
		o->loss = true;
		inv->stats.open_losses++;
		inv->stats.open_holds++;
		if (!inv->open_hold_fixed && o->backoff < INV_HOLD_BACKOFF_MAX)
			o->backoff++; /* review 22 R22-3: the next hold is longer (a persistent
			                 cause) */
		uint64_t next_ms = hold_bound_ms(inv);
		snprintf(why, sizeof why,
		        "no complete round of open slots for %llu s (%s): the flushed position was "
		        "held; treated as a loss (review V9b, R18-5): the namespace is "
		        "flushed; the next hold bound is %llu s until a round completes (R22-3)",
		        (unsigned long long)(hold_ms / 1000),
		        /* the last round ended, not the one in flight (its reason may not be in
		         * yet: a CI run named no master) */
		        o->last_why[0] ? o->last_why
		        : o->why[0]    ? o->why
		                       : "a master not connected",
		        (unsigned long long)(next_ms / 1000));
		cs_error("invalidator%s%s: %s", INV_LOG_SHARD(inv), why);
		loss_restart(inv, why);
		return;
	}
	if (o->busy) {
		if (now > o->deadline_us) {
			o->round++; /* its late replies are ignored */
			if (o->nt_state == NT_ASKED)
				o->nt_state = NT_ASK;
			o->busy = false;
			if (o->why[0] == '\0')
				snprintf(o->why, sizeof o->why, "not answered within %d ms",
				        OPEN_TIMEOUT_MS);
			incomplete(inv);
		}
		return;
	}
	if (o->loaded && !o->reset && now - o->last_us < (uint64_t)inv->status_interval_ms * 1000u)
		return;
	if ((!o->loaded || o->reset) && now < o->retry_us)
		return;
	start_round(inv, now);
}
