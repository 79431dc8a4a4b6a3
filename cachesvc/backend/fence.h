/* fence.h - the Lua scripts that make fills and invalidations atomic in Redis, and the
 * argument (fence.c) for why no stale entry survives a race (invariant I1).
 *
 * LSNs travel to and from the scripts as 16 upper-case hex digits, so Lua compares them
 * as strings (Lua numbers are doubles: 53 bits are not enough for an LSN). */
#ifndef CS_FENCE_H
#define CS_FENCE_H

#include <stddef.h>
#include <stdint.h>

enum cs_script {
	/* Fences on: KEYS entry, gen, epoch, horizon, qfence, fence, fmax, evk[, lease];
	 * ARGV value, px, gen, data_lsn, epoch, mode ("q" query-level fence checked, "e" the
	 * eviction check made, "qe" both, "" neither).
	 * Fences off: KEYS entry, gen[, lease]; ARGV value, px, gen (the generation is all it
	 * checks). The script tells them apart by KEYS[8] (evk): present only with fences on.
	 * Every key it touches is in KEYS (Redis Cluster), and nothing else: Redis 7.0 builds
	 * KEYS and ARGV as new Lua tables per call, a string and a slot per argument and a
	 * rehash at 1, 2, 3, 5, 9 of them (~14k of a fill's ~60k instructions at 8 + 8; 8 + 6
	 * saves ~0.5k, fences off 2 + 3 ~6k: bench/fill_ir).
	 * The lease (the miss lease the caller holds) is DELeted after the SET or the refusal.
	 * -> {status, current_gen}: 1 stored, 0 generation moved, -1 no live horizon,
	 *    -2 data older than the horizon, -3 a newer per-key fence, -4 the epoch is not the
	 *    caller's (Redis lost data, or the state was resynchronised), -5 data older than
	 *    the query-level fence, -6 Redis evicted keys since the state was last known whole
	 *    and the data is older than fmax (fence.c (i); INFO stats is read only for data
	 *    older than fmax). A plain script: at maxmemory under noeviction its SET fails
	 *    (OOM), nothing stored, lease not released (an error reply). */
	CS_SCRIPT_FILL = 0,
	/* KEYS fence_1, gen_1, ..., fence_n, gen_n, epoch, fmax; ARGV lsn, fence_px, ns, epoch,
	 * q_1, p_1, ..., q_n, p_n -> number of entries deleted. Deletes <ns>:e:<q>:<gen>:<p>
	 * and raises each fence to lsn (never lowers it), refreshing its TTL, and fmax to lsn.
	 * This and every script below but GENS run at maxmemory (allow-oom). An error
	 * "EPOCH ..." when the epoch is not ARGV epoch. */
	CS_SCRIPT_INVAL,
	/* KEYS gen, qfence, epoch, fmax[, debounce hash]; ARGV channel, query, lsn, epoch ('' =
	 * no check) -> the new generation. INCR, raises the query-level fence and fmax to lsn, clears
	 * the query's owed debounced bump when it is covered, PUBLISH "<q> <g>". */
	CS_SCRIPT_GEN_BUMP,
	/* KEYS key[, epoch[, fmax, evk]]; ARGV lsn, px[, epoch, check_run_id]: raises a
	 * monotonic LSN key (horizon, position) to lsn (never lowers it) and sets its TTL (px =
	 * 0: none). With an epoch key: an "EPOCH" error unless the epoch is ARGV epoch (and,
	 * with check_run_id = 1, was written by this Redis run). With fmax and evk (the
	 * horizon): when Redis evicted keys since evk was recorded, or the key did not exist,
	 * also raises it to fmax and records the eviction state (fence.c (i)).
	 * -> the value now stored */
	CS_SCRIPT_RAISE,
	/* KEYS debounce hash, epoch; ARGV query, lsn, epoch: records a debounced bump owed
	 * for query up to lsn (durable: a restarted invalidator performs it). */
	CS_SCRIPT_DEB_RECORD,
	/* KEYS gap mark, slot mark: owes a gap flush (before CREATE_REPLICATION_SLOT) -> 1
	 * when the slot had streamed before (a loss, not a first start). */
	CS_SCRIPT_PRE_CREATE,
	/* The invalidator's resynchronisation before it streams.
	 * KEYS epoch, horizon, gap mark, slot mark, debounce hash, position, fmax, gen_1, qf_1, ...,
	 * gen_n, qf_n; ARGV channel, slot_confirmed ('' unknown), random, lsn, horizon_px, gap,
	 * q_1, dep_1, ..., q_n, dep_n.
	 * An epoch of another Redis run (a restart or failover) whose position is still at or
	 * past the slot's confirmed LSN lost no confirmed invalidation: status 4, the epoch is
	 * rewritten. Otherwise (writes lost, and older entries kept): bumps every query with
	 * its query-level fence at lsn. A gap
	 * (ARGV gap = 1 or a gap mark owed): bumps the dependent queries (dep = 1). No epoch
	 * at all (a first start, a FLUSHALL, the epoch key deleted alone, entries written by a
	 * version without epochs): every query bumped too (cheap, and nothing is assumed about
	 * what survived). In each case the
	 * horizon rises to lsn (every fence that may be missing is at or below it) and a new
	 * epoch "<run_id>:<random>" is written when there was none valid. Clears the gap
	 * mark, sets the slot mark.
	 * -> {status (0 in sync, 1 gap flushed, 2 foreign epoch: resynchronised, 3 no epoch:
	 *     horizon raised, 4 restarted without loss), epoch, slot mark existed, HGETALL of
	 *     the debounce hash} */
	CS_SCRIPT_SYNC,
	/* KEYS epoch, k_2, ..., k_m[, qmap]; ARGV ["m", q_1, ..., q_n] ("m": the last key is
	 * qmap) -> {1 when the epoch is this Redis run's, epoch ('' when not), the value of each
	 * k_i ('0' none), then with "m": qmap's "@", and for each q_i qmap's <q_i> and <q_i>/c
	 * ('0' none, or qmap not a hash)} */
	CS_SCRIPT_GENS,
	/* KEYS timeline, position; ARGV system identifier, timeline: the primary the
	 * invalidator connected to. Raises the recorded "<sysid>:<tli>" (replaces it for another
	 * system identifier; either change deletes the position, whose LSN no longer compares) -> {0 when the recorded timeline of this system is higher (a stale
	 * primary: nothing written), 1 recorded (same or raised), 2 another system replaced,
	 * the value recorded before ('' none)} */
	CS_SCRIPT_TIMELINE,
	/* KEYS gen, qfence, epoch, fmax, qdef; ARGV channel, query, lsn, epoch ('' = no check),
	 * fingerprint: as CS_SCRIPT_GEN_BUMP (no debounce hash), and records the fingerprint as
	 * the definition the new generation answers, in the same step (keyspace.h <ns>:qd:<q>):
	 * a process of another definition never sees the new generation as its own. A start or
	 * reload's bump of a new or changed definition; publishes "<q> <g> <fingerprint>".
	 * With KEYS qmap and ARGV cover (the leader's record of the query's mapping, review 36
	 * R36-1): the bump covers that record (qmap <q>/c := cover, when <q> still holds it and
	 * lsn is at or past the record's); when the record is covered already and qdef holds
	 * the fingerprint, nothing is written (another process covered it) and the current
	 * generation is returned. A qmap of another type than a hash: no cover, a plain bump.
 * -> the new generation */
	CS_SCRIPT_DEF_BUMP,
	/* KEYS qmap; ARGV channel, lsn, q_1, map fingerprint_1, ..., q_n, map fingerprint_n:
	 * the leader's query mappings at a stream start (review 36 R36-1, R36-2). A query whose
	 * record holds another fingerprint (or none, or anything but "<fingerprint> <hex
	 * digits>": review 41 R41-3; a qmap of another type is deleted first) gets
	 * "<fingerprint> <lsn>" (a process covers it with a bump before using the query); one
	 * with the same keeps its record (its mapping went on unchanged); the records of
	 * queries not listed are deleted. Sets "@". Publishes "* qmap" when it wrote or deleted
	 * any (every process polls at once). -> how many */
	CS_SCRIPT_MAP_RECORD,
	CS_SCRIPT_COUNT
};

extern const char *const cs_scripts[CS_SCRIPT_COUNT];

/* The invalidator's scripts on a Redis Cluster (CLUSTER.md), numbered after the single-Redis
 * ones: a cluster invalidator loads cs_scripts_cluster() (cs_scripts, then these), a single
 * Redis loads cs_scripts alone, unchanged. Every key of one call is in one bucket. Each
 * bucket's epoch copy is "<run_id of its node>:<random>"; `sfx` below is ":<random>", the
 * part one resynchronisation writes into every bucket (an "EPOCH" error when the copy does
 * not end with it). */
enum cs_script_cluster {
	/* KEYS fence_1, gen_1, ..., fence_n, gen_n, epoch, fmax (bucket b); ARGV lsn, fence_px,
	 * prefix "{<ns>:<b>}", sfx, q_1, p_1, ..., q_n, p_n -> {entries deleted, entry key_1,
	 * ..., entry key_n}: as CS_SCRIPT_INVAL, and returns the entry keys it built from the
	 * bucket's generation copies, which the invalidator DELs again, routed normally
	 * (CLUSTER.md C1: a script ASKed to an importing node does not see an entry still on
	 * the migrating one). */
	CS_SCRIPT_C_INVAL = CS_SCRIPT_COUNT,
	/* KEYS gen, qfence, epoch, fmax[, debounce hash] (bucket 0); ARGV channel, query, lsn,
	 * epoch (bucket 0's whole epoch) -> {new generation, query fence after the bump}: as
	 * CS_SCRIPT_GEN_BUMP, for the GEN_SET fan-out. */
	CS_SCRIPT_C_GEN_BUMP,
	/* KEYS gen, qfence, fmax, epoch (bucket b); ARGV generation G, query fence x, sfx:
	 * g := max(g, G), qf := max(qf, x), fmax := max(fmax, x) -> the generation before.
	 * An "EPOCH" error when the bucket already holds G with a query fence above x: G was
	 * issued again by a bucket 0 that lost the bump which first issued it (CLUSTER.md C3). */
	CS_SCRIPT_C_GEN_SET,
	/* As CS_SCRIPT_RAISE with ARGV epoch = sfx (the copy must end with it and, with
	 * check_run_id, start with this node's run_id) and evk = "<run_id>:<evicted_keys>:
	 * <total_commands_processed>": a bucket that moved to another node is not whole there
	 * (CLUSTER.md C4). */
	CS_SCRIPT_C_RAISE,
	/* KEYS epoch, position, fmax[, gap mark (bucket 0)], gen_1, ..., gen_n; ARGV W (the
	 * slot's confirmed LSN, '' unknown), is_bucket_0 -> {state, epoch copy ('' none), gen_1,
	 * ..., gen_n[, gap owed]}: state 0 whole (epoch of this node's run), 1 kept (another
	 * run, position >= W), 2 lost (no epoch, another run behind W, fmax missing, or bucket
	 * 0 on another run: CLUSTER.md C2, C3). Writes nothing. */
	CS_SCRIPT_C_SYNC_PROBE,
	/* KEYS epoch, horizon, fmax, position, gen_1, qf_1, ..., gen_n, qf_n (bucket b); ARGV
	 * channel, sfx, S, horizon_px, raise ('1': horizon and fmax to S), publish ('1' on bucket
	 * 0), the probed state ('0' whole, '1' kept, '' no check: a flush), the probed epoch
	 * copy, W, G_1, ..., G_n ('' = no bump; "~<g>": a repair, only when gen < g). First the
	 * re-check (review V1): unless the state is '', the epoch copy must equal the probed one
	 * and fmax exist, a whole bucket's copy name this node's run_id, a kept one's position be
	 * >= W; else an EPOCH error. Then sets each bumped gen to max(gen, G_q) with qf raised
	 * to S (then horizon and fmax rise to S too), writes the epoch "<run_id>:<sfx>" -> the
	 * epoch. */
	CS_SCRIPT_C_SYNC_STAMP,
	/* KEYS gap mark, slot mark, debounce hash (bucket 0) -> {slot mark existed, HGETALL of
	 * the debounce hash}: clears the gap mark and sets the slot mark, last. */
	CS_SCRIPT_C_SYNC_FINISH,
	/* The daemons' fill on a cluster (CLUSTER.md section 3): as CS_SCRIPT_FILL, every key in
	 * the entry's bucket b (KEYS entry, gen_b, epoch_b, horizon_b, qf_b, fence, fmax_b,
	 * evk_b[, lease]; with fences off entry, gen_b[, lease]), with ARGV epoch = sfx (the bucket's copy must end with it: (h')) and
	 * the eviction record of EV_STATE_C (C4). -> {status, gen_b}: status 0 with gen_b below
	 * the caller's generation means the bucket missed a GEN_SET (the caller repairs it:
	 * CLUSTER.md (e')). */
	CS_SCRIPT_C_FILL,
	/* KEYS gen, qfence, epoch, fmax, qdef (bucket 0); ARGV channel, query, lsn, epoch,
	 * fingerprint -> {new generation, query fence after the bump}: CS_SCRIPT_DEF_BUMP for
	 * the GEN_SET fan-out (the fingerprint has bucket 0's copy alone: a process adopts a
	 * generation only from bucket 0's poll or its own bump). With KEYS qmap and ARGV cover:
	 * as CS_SCRIPT_DEF_BUMP's (a record covered already: {current generation, its query
	 * fence, 1}, and no GEN_SET fan-out follows). */
	CS_SCRIPT_C_DEF_BUMP,
	CS_SCRIPT_ALL_COUNT
};

/* cs_scripts followed by the cluster scripts (CS_SCRIPT_ALL_COUNT of them). */
const char *const *cs_scripts_cluster(void);

/* "0000001600B374D8": 16 upper-case hex digits and a NUL. */
void cs_lsn_hex(uint64_t lsn, char out[17]);
/* Parses 16 hex digits (as stored in Redis); false on anything else. */
int cs_lsn_unhex(const char *s, size_t len, uint64_t *out);

#endif
