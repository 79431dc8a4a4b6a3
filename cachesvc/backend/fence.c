/* fence.c - the Lua scripts for fenced fills and invalidations, and why they keep I1.
 *
 * ---- Why no stale entry survives (DESIGN.md I1) ------------------------------------------
 *
 * Notation. Every committed change C has an end LSN X(C) (pgoutput Commit.end_lsn). A fill
 * reads R = pg_last_wal_replay_lsn() on a replica, then, as a separate READ COMMITTED
 * statement, the query; the snapshot is taken after R was read, so it sees every commit
 * whose record ends at or before R (REFERENCE.md 6): the data reflects at least state R.
 * The invalidator, for each commit C it decodes, runs CS_SCRIPT_INVAL for every key C
 * affects: DEL the entry and raise the key's fence to X(C) with TTL F (fence_ttl). Only
 * after Redis acknowledged it does it confirm X(C) to PostgreSQL (I4).
 *
 * Claim. If an entry for key K holding data at state R is stored, and some commit C that
 * affects K has X(C) > R, then the entry is deleted no later than C's invalidation is
 * applied; i.e. an entry older than an applied invalidation never survives it.
 *
 * The fill is CS_SCRIPT_FILL: atomic in Redis (scripts run alone), so relative to C's
 * invalidation script it runs either before or after. (It also releases the cross-process
 * miss lease its flight holds, engine_fill.c; the lease is no premise here: it decides how
 * many processes query a key, never what may be stored.)
 *  (a) Fill runs after C's invalidation ("stale set": the fill read the replica before
 *      the write and stores after its invalidation; or "lagging replica": the replica had
 *      not replayed C when read). Then the fence of K holds some f >= X(C) > R, unless it
 *      expired. The script refuses when f > R. Expiry is covered by the horizon:
 *  (b) Fence expiry. The invalidator publishes cs:horizon = H with a TTL V, where H is an
 *      LSN such that every fence with LSN > H was written less than F - V ago (it tracks
 *      when it sent each commit's fences; see invalidation/). While the key lives (at most
 *      V after it was written), any fence with LSN > H is therefore still alive. The fill
 *      refuses when R < H. So if it stores, R >= H, and C's fence (X(C) > R >= H) is
 *      alive and refuses it: contradiction. If the horizon key is missing (no invalidator
 *      has run for V), the fill refuses: with nobody publishing a horizon nobody can vouch
 *      for expired fences. H never decreases (CS_SCRIPT_RAISE); a restarted or second
 *      invalidator starts from the slot's confirmed position (f).
 *  (c) Fill runs before C's invalidation: the entry is stored, then C's invalidation
 *      deletes it. The stale window is the invalidation lag (I2).
 *  (d) A restarted invalidator replays from the slot's confirmed position; replaying an
 *      invalidation deletes and re-fences again: idempotent, fences only rise.
 *  (e) Generations and query-level fences. A whole-query invalidation (TRUNCATE, a
 *      transaction over the per-query key limit, a table rule, an unknown key, a gap, a
 *      reload that changed the query, admin INVALIDATE) is CS_SCRIPT_GEN_BUMP: it INCRs
 *      <ns>:g:<q> and, in the same script, raises the query-level fence <ns>:qf:<q> to the
 *      bump's LSN B (the commit's end LSN; for a reload or an admin bump the primary's last
 *      known position; for a gap the resync LSN, below). A fill carries the generation its
 *      key was built with and the script refuses it when the generation moved: no fill of
 *      data read for the old generation lands in the new one. A fill of the new generation
 *      is refused when its data is older than B (R < qf), in the same atomic check as the
 *      per-key fence: the generation alone is not enough, because a miss of the new
 *      generation read on a replica that has not replayed the bump's change (still within
 *      max_replica_lag) would otherwise store pre-change data until TTL. The query-level
 *      fence has no TTL: it only rises, and data at or past it includes every change the
 *      bump stood for. Debounced bumps (min_lifetime) carry the highest LSN they fold.
 *  (e2) Definitions. A generation's entries answer one definition of the query (SQL,
 *      parameter types, routing, invalidate_on): <ns>:qd:<q> records its fingerprint, written
 *      by CS_SCRIPT_DEF_BUMP in the same script as the INCR, so no generation is ever paired
 *      with another definition than the one whose process made it. A process uses a
 *      generation only when bucket 0's poll read it together with its own fingerprint (or
 *      its own DEF_BUMP returned it, or a message "<q> <g>" raised it while the recorded
 *      definition was its own: a DEF_BUMP's message carries its fingerprint, and the
 *      messages of one Redis arrive in order); any other message makes it poll, and a poll
 *      answer older than a message heard since is read again. A start or reload finding no
 *      fingerprint, or another one, bumps with its own at a query-level fence B = the
 *      primary's position read by this process (it waits until it has one): every change
 *      that no invalidation mapped to the new definition (decoded before it was mapped,
 *      or on a table not yet published) is at or below B, so (e) refuses fills older.
 *  (e3) The leader's mapping (review 36 R36-1). Invalidations exist only for what the
 *      leader maps, with its own config. At each stream start, from W (f) on, it records
 *      per query the fingerprint of its mapping (parameter types, routing, invalidate_on)
 *      and W (<ns>:inv:qmap, CS_SCRIPT_MAP_RECORD; the queries it does not map deleted),
 *      and decodes nothing before Redis acknowledged it. A process uses a query (fences on)
 *      only when the record names its own mapping and a bump covered the record: that
 *      bump (DEF_BUMP with the record, the cover marked in the same script, and only for a
 *      fence at or past the record's W) retires every entry filled before and fences the
 *      new generation at B >= W. A change C that no invalidation mapped to this definition
 *      was decoded by an earlier leader (or by this one with another mapping), so X(C) <=
 *      W <= B, and (e) refuses any fill older than it; every change after W is decoded with
 *      this mapping, so (a)-(d) hold for it. A record that changes (another mapping, the
 *      query removed and added again: R36-2) is a new record: covered again. While the
 *      record is not this definition's, the process reads and stores nothing of the query.
 *  (f) The horizon's start. A leader starts streaming at the slot's confirmed position W:
 *      every commit after W is replayed and its fences rewritten. A fence an earlier leader
 *      wrote for X > W may have expired; a fill with W <= R < X passing meanwhile is older
 *      than X, whose replayed invalidation then deletes it (case (c)). So H_start = W is
 *      enough, and replicas that caught up fill at once after a restart. W must be the
 *      position the stream really starts at: the one read before START_REPLICATION is lower
 *      when an earlier leader confirmed more in between and then let the slot go (review 41
 *      R41-2). So the SYNC (the epoch check, (g), (h), the owed bumps) runs only once the
 *      stream holds the slot, which nobody else can move then, after its position was read
 *      again (inv_setup.c start_read; reviews 48, 49).
 *  (g) Gaps. A slot that is created (first start, dropped, lost, a failover to a server
 *      without it) sees no change committed before its consistent point C: nothing ever
 *      fences those. Before CREATE_REPLICATION_SLOT the leader records a gap flush as owed
 *      (<ns>:inv:gap:<slot>, acknowledged by Redis first); after it, CS_SCRIPT_SYNC bumps
 *      every dependent query with qf = S >= C and raises the horizon to S, then clears the
 *      mark. A crash in between leaves the mark, and the next leader's SYNC flushes. Old
 *      entries die with the generation; new fills need R >= S, and every change after S is
 *      decoded and fenced.
 *  (h) Redis losing data. Fences, generations, entries and the horizon live in Redis; if it
 *      loses acknowledged writes (FLUSHALL, a restart from RDB or AOF everysec, a failover to
 *      a replica that missed writes) the argument above loses its premises. Every
 *      namespace has an epoch <ns>:epoch = "<run_id>:<random>", written by SYNC: a flush
 *      removes it, a restart or failover changes the run_id. Every invalidator write checks
 *      the epoch (an "EPOCH" error restarts the stream and SYNC runs again); the horizon
 *      publication also checks the run_id once per status interval; daemons read it with
 *      their generations and, with fences on, serve nothing from Redis and store nothing
 *      while it is missing or foreign, and every fill carries the epoch the daemon read
 *      (the epoch the daemon knows when it sends the fill; refused on mismatch: no fill sent
 *      before the daemon learned of a resync lands after it). SYNC:
 *       - no epoch (first start, everything flushed, or the epoch key lost alone): every
 *         query is bumped with qf = S and the horizon rises to S (every fence that may be
 *         missing is at or below S);
 *       - a foreign epoch with <ns>:inv:pos >= W: Redis applies writes (AOF, replication)
 *         in order and kept the position written after every confirmed invalidation, so
 *         nothing confirmed was lost; later ones are replayed from W. This needs the
 *         position to be written only after its invalidations were acknowledged, only to
 *         the Redis run the epoch names (the position write checks the run_id), and never
 *         past what the slot will replay: a new stream confirms from W again, and the
 *         flush sent to PostgreSQL never passes the position Redis acknowledged;
 *       - otherwise confirmed invalidations may be gone while older entries survived: every
 *         query is bumped with qf = S and the horizon rises to S.
 *      S = max(IDENTIFY_SYSTEM's position, C, everything received or confirmed) is at or
 *      past every change whose invalidation may have been lost.
 *  (i) Memory pressure and eviction. What Redis may do at maxmemory depends on its policy:
 *      - noeviction: every write command is refused (OOM). The invalidator's scripts carry
 *        the Redis 7 flag allow-oom ("#!lua flags=allow-oom"), so they run anyway: an
 *        invalidation DELs entries (freeing memory) and writes small fences, so memory may
 *        exceed maxmemory by the fences of the invalidations in flight. Fills are plain
 *        scripts: their SET fails with OOM and nothing is stored (a fill failure; the
 *        answer is still served). Nothing is evicted: (a)-(h) hold unchanged.
 *      - volatile-* (lru, lfu, random, ttl): only keys with a TTL are evicted: entries
 *        (a miss), leases (one more refresh), the horizon (fills refuse until the next
 *        publication: (b)) and per-key fences. Generations, query-level fences, the epoch,
 *        the position, the gap and slot marks, the debounce hash, fmax and evk have no TTL
 *        and are never evicted. An evicted fence is what would break (a); it is detected:
 *        Redis counts every eviction in INFO stats evicted_keys in the same step that
 *        removes the key, between commands (before the command that needed the memory, or
 *        in its eviction timer; never while a script runs). <ns>:fmax holds
 *        the highest LSN any fence or query-level fence was ever written with (INVAL,
 *        GEN_BUMP and SYNC raise it in the script that writes the fence; no TTL), and
 *        <ns>:evk the counters "<evicted_keys>:<total_commands_processed>" at which the
 *        fence state was last known whole. A fill (fences on) that finds evk missing, or
 *        evicted_keys different, or total_commands_processed lower (CONFIG RESETSTAT) than
 *        recorded, stores only if R >= fmax (fmax missing: refused), else -6. The script
 *        reads fmax first and the counters (INFO stats) only when R < fmax or fmax is
 *        missing: with R >= fmax it stores whether the state is whole or not, so reading the
 *        counters could change no outcome (the same predicate, evaluated in another order).
 *        Why safe: let C (X(C) > R) be applied before the fill, its fence evicted at te
 *        before the fill (otherwise (a) or (b)). If the fill saw the state not whole: fmax
 *        >= X(C) > R (raised with the fence), refused. If it saw it whole: evk was last
 *        written at T0 by the horizon publication (CS_SCRIPT_RAISE with fmax and evk: when
 *        the state is not whole it raises the horizon to max(H, fmax) and records the
 *        current counters, atomically), and evicted_keys did not move since T0 (the counter
 *        only rises, and a reset is seen as total_commands_processed going back), so te <
 *        T0 and, the fence having been written before te, the horizon at T0 was >= fmax(T0)
 *        >= X(C). The horizon never decreases while it lives, and whenever it is created
 *        again (it expired, or was evicted: an eviction after T0, excluded) it is created
 *        at or above fmax (RAISE treats a missing horizon as a state not whole) or at the
 *        resync LSN S, at or past every LSN of the primary it synchronised with (SYNC); so
 *        the fill's R >= H >= X(C): contradiction. Invalidations not yet written are case
 *        (c). The one gap: CONFIG RESETSTAT followed, before the next publication (one
 *        status interval), by exactly as many evictions as recorded and as many commands as
 *        Redis had processed before the reset; do not reset Redis's statistics under a
 *        busy cachesvc. The cost: while Redis evicts, fills need data at or past the
 *        newest invalidated change, and every status interval the horizon rises to it; no
 *        eviction, no cost but fmax read with the fill's other keys (one MGET), and one
 *        INFO for a fill whose data is older than the newest fence (its replica had not
 *        replayed the last invalidated change when read).
 *      - allkeys-* (lru, lfu, random): any key may go. An evicted generation makes a new
 *        daemon read generation 0 and serve entries written before a bump; an evicted gap
 *        mark loses a flush; an evicted query-level fence or fmax undoes (e) and the check
 *        above. So with fence = on cachesvc refuses allkeys-* and any policy it does not
 *        know at startup (check.c), naming volatile-lru or volatile-lfu instead: every
 *        entry has a TTL, so they evict entries as allkeys-* would while the consistency
 *        keys stay. The invalidator re-reads the policy (INFO memory) every 10 s and logs
 *        an error when it becomes unsafe.
 *      Negative entries (empty results) have their own budget per process
 *      ([cachesvc] negative_share), so misses on non-existent ids cannot fill Redis.
 *  (j) The primary. Visibility order on the primary differs from WAL order (a commit whose
 *      record ends before an LSN read may not be visible yet), so no LSN read there bounds
 *      a snapshot from below. Data read on the primary is tagged LSN 0: with fences on it
 *      is served but never stored.
 *
 * Together: every entry older than an applied invalidation is either refused at fill time
 * (a, b, e, g, h, i) or deleted by it (c, d, f). I1 follows: once the invalidator has applied every
 * change up to X and replicas replayed past X, no entry reflects a state older than X. */
#include "fence.h"

#include <stddef.h>
#include <stdio.h>

#include "params.h"

/* The epoch check every invalidator write makes: the namespace's epoch must be the one the
 * writer synchronised with (a FLUSHALL removed it, another leader's resync changed it). */
#define EPOCH_GUARD(key, want)                                                                   \
	"if " want " ~= '' and redis.call('GET', " key ") ~= " want " then\n"                    \
	"  return redis.error_reply('EPOCH the cache state was lost or resynchronised')\n"       \
	"end\n"

/* Every invalidator script must run when Redis is at maxmemory under noeviction (fence.c
 * (i)): Redis 7 refuses flagged scripts without allow-oom, and plain ones at their first
 * write. FILL and GENS stay plain: a fill at maxmemory fails at its SET (nothing stored),
 * GENS only reads. */
#define ALLOW_OOM "#!lua flags=allow-oom\n"

/* The eviction state: `cur` = "<evicted_keys>:<total_commands_processed>" now, `whole` =
 * the state recorded in the evk key is the current one (no eviction since it was recorded,
 * and the counters were not reset: total_commands_processed did not go back). */
#define EV_STATE(key)                                                                            \
	"local info = redis.call('INFO', 'stats')\n"                                            \
	"local ev = string.match(info, 'evicted_keys:(%d+)') or '?'\n"                           \
	"local tc = string.match(info, 'total_commands_processed:(%d+)') or '0'\n"               \
	"local cur = ev .. ':' .. tc\n"                                                          \
	"local whole = false\n"                                                                  \
	"local sv = redis.call('GET', " key ")\n"                                                \
	"if sv then\n"                                                                           \
	"  local sev, stc = string.match(sv, '^(%d+):(%d+)$')\n"                                 \
	"  whole = sev ~= nil and ev == sev and tonumber(tc) >= tonumber(stc)\n"                 \
	"end\n"

/* Raises the fmax key to an LSN (never lowers it; no TTL). */
#define FMAX_RAISE(key, lsn)                                                                     \
	"local fm = redis.call('GET', " key ")\n"                                                \
	"if not fm or fm < " lsn " then redis.call('SET', " key ", " lsn ") end\n"

/* Redis's run_id, for the epoch: a restart or failover changes it. */
#define RUN_ID "local rid = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'\n"

/* RAISE's second half (KEYS[1] the value to raise to ARGV[1], PX ARGV[2] or none; KEYS[3]
 * fmax, KEYS[4] the eviction record, read by EV: EV_STATE, or EV_STATE_C with the run_id):
 * evictions since the state was last known whole, or a value to recreate, raise it over
 * every fence ever written; then the state is whole (fence.c (i)). */
#define RAISE_TAIL(EV)                                                                     \
	"local v = redis.call('GET', KEYS[1])\n"                                            \
	"local existed = v\n"                                                               \
	"if not v or v < ARGV[1] then v = ARGV[1] end\n"                                   \
	"if KEYS[4] then\n" EV                                                              \
	"  if not whole or not existed then\n"                                             \
	"    local m = redis.call('GET', KEYS[3])\n"                                        \
	"    if m and v < m then v = m end\n"                                               \
	"    redis.call('SET', KEYS[4], cur)\n"                                             \
	"  end\n"                                                                           \
	"end\n"                                                                             \
	"if ARGV[2] == '0' then redis.call('SET', KEYS[1], v)\n"                            \
	"else redis.call('SET', KEYS[1], v, 'PX', ARGV[2]) end\n"                           \
	"return v\n"

/* The fill (fence.c cases (a)-(j); CLUSTER.md section 4 for the cluster's): the generation,
 * then with fences on the epoch (EPOCH_CHECK: one statement ending in `st = -4 break`, never
 * a `return`, which would leave the script without the lease DEL and with the wrong reply),
 * the horizon, the query-level fence, the key's fence and, only for data older than every
 * fence ever written (fmax, KEYS[7]: a fence may have been evicted), the eviction state
 * (EV_STATE_KEY8: EV_STATE or EV_STATE_C of KEYS[8], one INFO); the SET when all pass; the
 * caller's miss lease (the last key: KEYS[9] with fences on, KEYS[3] with fences off, whose
 * call has no KEYS[4..8]) released in the same step, after the SET, which fails first
 * at maxmemory under noeviction (an error reply: the caller DELs it), so a waiter's MGET sees
 * both or neither. One text for both layouts, so that they cannot drift apart.
 * With fences on, the six keys the verdict may look at (generation, epoch, horizon, query
 * fence, key fence, fmax) are read by one MGET at the start: the script runs alone, so it
 * sees what six GETs would, at one instant; a key the verdict does not reach is read for
 * nothing. One redis.call instead of up to six (each costs Redis a command lookup, an argv
 * and a reply conversion): the fill is the largest share of Redis's CPU per miss. With
 * fences off only the generation is read (one GET, as before: an MGET of six would cost
 * that path ~27% more, review 15 F3). The keys are namespace-private strings (the one
 * non-string key cachesvc writes, the debounce hash, is none of them); a key of another
 * type would read as missing here where GET failed the fill, so a fence or fmax key of
 * another type, written by something outside cachesvc, lets a fill through (review 15 F1:
 * the invalidation script's own read of such a key fails as well). The verdict is a
 * `repeat ... until true` block left by `break` with st set, not a local function: no
 * closure is made per call. Together ~8-12% fewer instructions per fill EVALSHA (bench
 * commit message: callgrind of redis-server). The arguments are as few as the checks need
 * (fence.h): with fences off the script gets the entry, the generation and the lease, with
 * fences on the two flags go as one mode string compared whole (interned: a pointer
 * comparison), and whether fences are on is whether KEYS[8] exists; the KEYS are in the
 * MGET's order. Redis builds KEYS and ARGV as fresh Lua tables per call, one string and one
 * slot per argument and a rehash at every power of two. */
#define FILL_SCRIPT(EPOCH_CHECK, EV_STATE_KEY8)                                                \
	"local v\n"                                                                            \
	"local fon = KEYS[8]\n"                                                                \
	"if fon then\n"                                                                        \
	"  v = redis.call('MGET', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])\n"     \
	"else v = { redis.call('GET', KEYS[2]) } end\n"                                        \
	"local g = v[1] or '0'\n"                                                              \
	"local st = 1\n"                                                                       \
	"repeat\n"                                                                             \
	"  if g ~= ARGV[3] then st = 0 break end\n"                                            \
	"  if not fon then st = 1 break end\n"                                                 \
	EPOCH_CHECK                                                                            \
	"  local h = v[3]\n"                                                                   \
	"  if not h then st = -1 break end\n"                                                  \
	"  if ARGV[4] < h then st = -2 break end\n"                                            \
	"  local md = ARGV[6]\n"                                                               \
	"  if md == 'qe' or md == 'q' then\n"                                                  \
	"    local qf = v[4]\n"                                                                \
	"    if qf and ARGV[4] < qf then st = -5 break end\n"                                  \
	"  end\n"                                                                              \
	"  local f = v[5]\n"                                                                   \
	"  if f and f > ARGV[4] then st = -3 break end\n"                                      \
	"  if md == 'qe' or md == 'e' then\n"                                                  \
	"    local m = v[6]\n"                                                                 \
	"    if not m or ARGV[4] < m then\n"                                                   \
	EV_STATE_KEY8                                                                          \
	"      if not whole then st = -6 break end\n"                                          \
	"    end\n"                                                                            \
	"  end\n"                                                                              \
	"until true\n"                                                                         \
	"if st == 1 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end\n"             \
	"local l\n"                                                                            \
	"if fon then l = KEYS[9] else l = KEYS[3] end\n"                                       \
	"if l then redis.call('DEL', l) end\n"                                                 \
	"return {st, g}\n"

/* A definition bump that covers the leader's mapping record ARGV[6] in hash KEYS[6]
 * (fence.h CS_SCRIPT_DEF_BUMP): skipped, `skip` returned, when another process covered that
 * record already under this definition. */
#define QMAP_COVER(skip)                                                                         \
	"local cov = ARGV[6] or ''\n"                                                            \
	"if cov ~= '' and redis.call('TYPE', KEYS[6]).ok == 'hash' then\n"                       \
	"  if redis.call('HGET', KEYS[6], ARGV[2] .. '/c') == cov and\n"                          \
	"      redis.call('GET', KEYS[5]) == ARGV[5] and redis.call('EXISTS', KEYS[2]) == 1 then\n" \
	"    " skip "\n"                                                                           \
	"  end\n"                                                                                  \
	"  if redis.call('HGET', KEYS[6], ARGV[2]) == cov and string.sub(cov, 18) <= ARGV[3] then\n" \
	"    redis.call('HSET', KEYS[6], ARGV[2] .. '/c', cov)\n"                                  \
	"  end\n"                                                                                  \
	"end\n"

const char *const cs_scripts[CS_SCRIPT_COUNT] = {
	[CS_SCRIPT_FILL] = FILL_SCRIPT(
		"  if v[2] ~= ARGV[5] then st = -4 break end\n",
		EV_STATE("KEYS[8]")),
	[CS_SCRIPT_INVAL] =
		ALLOW_OOM
		EPOCH_GUARD("KEYS[#KEYS - 1]", "ARGV[4]")
		"local n = 0\n"
		"for i = 1, #KEYS - 2, 2 do\n"
		"  local g = redis.call('GET', KEYS[i + 1]) or '0'\n"
		"  local q = ARGV[4 + i]\n"
		"  local p = ARGV[5 + i]\n"
		"  n = n + redis.call('DEL', ARGV[3] .. ':e:' .. q .. ':' .. g .. ':' .. p)\n"
		"  local f = redis.call('GET', KEYS[i])\n"
		"  if not f or f < ARGV[1] then f = ARGV[1] end\n"
		"  redis.call('SET', KEYS[i], f, 'PX', ARGV[2])\n"
		"end\n"
		FMAX_RAISE("KEYS[#KEYS]", "ARGV[1]")
		"return n\n",
	[CS_SCRIPT_GEN_BUMP] =
		ALLOW_OOM
		EPOCH_GUARD("KEYS[3]", "ARGV[4]")
		"local g = redis.call('INCR', KEYS[1])\n"
		"local f = redis.call('GET', KEYS[2])\n"
		"if not f or f < ARGV[3] then redis.call('SET', KEYS[2], ARGV[3]) end\n"
		FMAX_RAISE("KEYS[4]", "ARGV[3]")
		"if KEYS[5] then\n"
		"  local d = redis.call('HGET', KEYS[5], ARGV[2])\n"
		"  if d and d <= ARGV[3] then redis.call('HDEL', KEYS[5], ARGV[2]) end\n"
		"end\n"
		"redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. g)\n"
		"return g\n",
	[CS_SCRIPT_RAISE] =
		ALLOW_OOM
		"if KEYS[2] then\n"
		"  local e = redis.call('GET', KEYS[2])\n"
		"  if e ~= ARGV[3] then\n"
		"    return redis.error_reply('EPOCH the cache state was lost or resynchronised')\n"
		"  end\n"
		"  if ARGV[4] == '1' then\n"
		RUN_ID
		"    if string.sub(e, 1, #rid + 1) ~= rid .. ':' then\n"
		"      return redis.error_reply('EPOCH redis restarted or failed over')\n"
		"    end\n"
		"  end\n"
		"end\n"
		RAISE_TAIL(EV_STATE("KEYS[4]")),
	[CS_SCRIPT_DEB_RECORD] =
		ALLOW_OOM
		EPOCH_GUARD("KEYS[2]", "ARGV[3]")
		"local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
		"if not v or v < ARGV[2] then v = ARGV[2]; redis.call('HSET', KEYS[1], ARGV[1], v) end\n"
		"return v\n",
	[CS_SCRIPT_TIMELINE] =
		ALLOW_OOM
		"local cur = redis.call('GET', KEYS[1])\n"
		"local want = ARGV[1] .. ':' .. ARGV[2]\n"
		"if not cur then\n"
		"  redis.call('SET', KEYS[1], want)\n"
		"  return {1, ''}\n"
		"end\n"
		"local sid, tli = string.match(cur, '^(%d+):(%d+)$')\n"
		"if sid == ARGV[1] and tonumber(tli) > tonumber(ARGV[2]) then\n"
		"  return {0, cur}\n"
		"end\n"
		"if cur ~= want then\n"
		"  redis.call('SET', KEYS[1], want)\n"
		/* LSNs of another timeline or cluster are not comparable with the new slot's:
		 * the position must not vouch for anything in the resync */
		"  if KEYS[2] then redis.call('DEL', KEYS[2]) end\n"
		"end\n"
		"if sid ~= ARGV[1] then\n"
		"  return {2, cur}\n"
		"end\n"
		"return {1, cur}\n",
	[CS_SCRIPT_PRE_CREATE] =
		ALLOW_OOM
		"redis.call('SET', KEYS[1], '1')\n"
		"return redis.call('EXISTS', KEYS[2])\n",
	[CS_SCRIPT_SYNC] =
		ALLOW_OOM
		RUN_ID
		"local e = redis.call('GET', KEYS[1])\n"
		"local foreign = e and string.sub(e, 1, #rid + 1) ~= rid .. ':'\n"
		"local status_kept = false\n"
		"local lost = foreign or not e\n"
		"local gap = ARGV[6] == '1' or redis.call('EXISTS', KEYS[3]) == 1\n"
		"if foreign and ARGV[2] ~= '' then\n"
		/* a restart or failover that kept every invalidation up to the slot's confirmed
		 * position (writes reach the AOF and replicas in order: the position written after
		 * them survived) lost nothing confirmed; what came later is replayed */
		"  local pos = redis.call('GET', KEYS[6])\n"
		"  if pos and pos >= ARGV[2] then foreign = false; status_kept = true end\n"
		"end\n"
		"local status = 0\n"
		"if foreign then status = 2 elseif gap then status = 1 elseif status_kept then status = 4\n"
		"elseif lost then status = 3 end\n"
		"if status > 0 and status ~= 4 then\n"
		"  local k = 8\n"
		"  for i = 7, #ARGV, 2 do\n"
		"    if lost or (gap and ARGV[i + 1] == '1') then\n"
		"      local g = redis.call('INCR', KEYS[k])\n"
		"      local f = redis.call('GET', KEYS[k + 1])\n"
		"      if not f or f < ARGV[4] then redis.call('SET', KEYS[k + 1], ARGV[4]) end\n"
		"      redis.call('PUBLISH', ARGV[1], ARGV[i] .. ' ' .. g)\n"
		"    end\n"
		"    k = k + 2\n"
		"  end\n"
		FMAX_RAISE("KEYS[7]", "ARGV[4]")
		"  local h = redis.call('GET', KEYS[2])\n"
		"  if not h or h < ARGV[4] then h = ARGV[4] end\n"
		"  redis.call('SET', KEYS[2], h, 'PX', ARGV[5])\n"
		"end\n"
		"if lost then\n"
		"  e = rid .. ':' .. ARGV[3]\n"
		"  redis.call('SET', KEYS[1], e)\n"
		"  redis.call('PUBLISH', ARGV[1], '* ' .. e)\n"
		"end\n"
		"redis.call('DEL', KEYS[3])\n"
		"local had = redis.call('EXISTS', KEYS[4])\n"
		"redis.call('SET', KEYS[4], '1')\n"
		"return {status, e, had, redis.call('HGETALL', KEYS[5])}\n",
	[CS_SCRIPT_DEF_BUMP] =
		ALLOW_OOM
		EPOCH_GUARD("KEYS[3]", "ARGV[4]")
		QMAP_COVER("return tonumber(redis.call('GET', KEYS[1]) or '0')")
		"redis.call('SET', KEYS[5], ARGV[5])\n"
		"local g = redis.call('INCR', KEYS[1])\n"
		"local f = redis.call('GET', KEYS[2])\n"
		"if not f or f < ARGV[3] then redis.call('SET', KEYS[2], ARGV[3]) end\n"
		FMAX_RAISE("KEYS[4]", "ARGV[3]")
		"redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. g .. ' ' .. ARGV[5])\n"
		"return g\n",
	[CS_SCRIPT_GENS] =
		RUN_ID
		"local e = redis.call('GET', KEYS[1])\n"
		"local r = {0, ''}\n"
		"if e and string.sub(e, 1, #rid + 1) == rid .. ':' then r = {1, e} end\n"
		"local n = #KEYS\n"
		"if ARGV[1] == 'm' then n = n - 1 end\n"
		"for i = 2, n do r[#r + 1] = redis.call('GET', KEYS[i]) or '0' end\n"
		"if ARGV[1] == 'm' then\n"
		"  local h = KEYS[#KEYS]\n"
		"  local ok = redis.call('TYPE', h).ok == 'hash'\n"
		"  r[#r + 1] = ok and redis.call('HGET', h, '@') or '0'\n"
		"  for i = 2, #ARGV do\n"
		"    r[#r + 1] = ok and redis.call('HGET', h, ARGV[i]) or '0'\n"
		"    r[#r + 1] = ok and redis.call('HGET', h, ARGV[i] .. '/c') or '0'\n"
		"  end\n"
		"end\n"
		"return r\n",
	[CS_SCRIPT_MAP_RECORD] =
		ALLOW_OOM
		"local keep, n = {}, 0\n"
		"local t = redis.call('TYPE', KEYS[1]).ok\n"
		"if t ~= 'hash' and t ~= 'none' then redis.call('DEL', KEYS[1]) end\n"
		"for i = 3, #ARGV, 2 do\n"
		"  keep[ARGV[i]] = true\n"
		"  local cur = redis.call('HGET', KEYS[1], ARGV[i])\n"
		"  if not cur or #cur ~= #ARGV[i + 1] + 17 or\n"
		"      string.sub(cur, 1, #ARGV[i + 1] + 1) ~= ARGV[i + 1] .. ' ' or\n"
		"      not string.match(string.sub(cur, #ARGV[i + 1] + 2), '^%x+$') then\n"
		"    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[2])\n"
		"    n = n + 1\n"
		"  end\n"
		"end\n"
		"for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
		"  local q = f\n"
		"  if string.sub(f, -2) == '/c' then q = string.sub(f, 1, -3) end\n"
		"  if q ~= '@' and not keep[q] then\n"
		"    redis.call('HDEL', KEYS[1], f)\n"
		"    if q == f then n = n + 1 end\n"
		"  end\n"
		"end\n"
		"redis.call('HSET', KEYS[1], '@', '1')\n"
		"if n > 0 then redis.call('PUBLISH', ARGV[1], '* qmap') end\n"
		"return n\n",
};

/* ---- Cluster scripts (CLUSTER.md) ------------------------------------------------------ */

/* The epoch check of a cluster invalidator write: the bucket's copy must end with the
 * resynchronisation's ":<random>" (a FLUSHALL of its node removed it, another resync changed
 * it). An empty `want` checks nothing, as EPOCH_GUARD: a daemon's admin INVALIDATE before it
 * knows an epoch (fence off, no invalidator yet; review 9). */
#define EPOCH_SFX(key, want)                                                                     \
	"local ep_ = redis.call('GET', " key ")\n"                                               \
	"if " want " ~= '' and (not ep_ or #ep_ < #" want " or\n"                                \
	"    string.sub(ep_, -#" want ") ~= " want ") then\n"                                     \
	"  return redis.error_reply('EPOCH the cache state was lost or resynchronised')\n"       \
	"end\n"

/* EV_STATE with the node's run_id: "<run_id>:<evicted_keys>:<total_commands_processed>";
 * counters recorded on another node never make the state whole (CLUSTER.md C4). */
#define EV_STATE_C(key)                                                                          \
	"local crid = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'\n"      \
	"local info = redis.call('INFO', 'stats')\n"                                            \
	"local ev = string.match(info, 'evicted_keys:(%d+)') or '?'\n"                           \
	"local tc = string.match(info, 'total_commands_processed:(%d+)') or '0'\n"               \
	"local cur = crid .. ':' .. ev .. ':' .. tc\n"                                           \
	"local whole = false\n"                                                                  \
	"local sv = redis.call('GET', " key ")\n"                                                \
	"if sv then\n"                                                                           \
	"  local srid, sev, stc = string.match(sv, '^(%x+):(%d+):(%d+)$')\n"                     \
	"  whole = srid == crid and sev ~= nil and ev == sev and tonumber(tc) >= tonumber(stc)\n" \
	"end\n"

static const char *const cluster_scripts[CS_SCRIPT_ALL_COUNT - CS_SCRIPT_COUNT] = {
	[CS_SCRIPT_C_INVAL - CS_SCRIPT_COUNT] =
		ALLOW_OOM
		EPOCH_SFX("KEYS[#KEYS - 1]", "ARGV[4]")
		"local n = 0\n"
		"local r = {0}\n"
		"for i = 1, #KEYS - 2, 2 do\n"
		"  local g = redis.call('GET', KEYS[i + 1]) or '0'\n"
		"  local ek = ARGV[3] .. ':e:' .. ARGV[4 + i] .. ':' .. g .. ':' .. ARGV[5 + i]\n"
		"  n = n + redis.call('DEL', ek)\n"
		"  r[#r + 1] = ek\n"
		"  local f = redis.call('GET', KEYS[i])\n"
		"  if not f or f < ARGV[1] then f = ARGV[1] end\n"
		"  redis.call('SET', KEYS[i], f, 'PX', ARGV[2])\n"
		"end\n"
		FMAX_RAISE("KEYS[#KEYS]", "ARGV[1]")
		"r[1] = n\n"
		"return r\n",
	[CS_SCRIPT_C_GEN_BUMP - CS_SCRIPT_COUNT] =
		ALLOW_OOM
		EPOCH_GUARD("KEYS[3]", "ARGV[4]")
		"local g = redis.call('INCR', KEYS[1])\n"
		"local f = redis.call('GET', KEYS[2])\n"
		"if not f or f < ARGV[3] then f = ARGV[3]; redis.call('SET', KEYS[2], f) end\n"
		FMAX_RAISE("KEYS[4]", "ARGV[3]")
		"if KEYS[5] then\n"
		"  local d = redis.call('HGET', KEYS[5], ARGV[2])\n"
		"  if d and d <= ARGV[3] then redis.call('HDEL', KEYS[5], ARGV[2]) end\n"
		"end\n"
		"redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. g)\n"
		"return {g, f}\n",
	[CS_SCRIPT_C_GEN_SET - CS_SCRIPT_COUNT] =
		ALLOW_OOM
		"if ARGV[3] ~= '' then\n"
		EPOCH_SFX("KEYS[4]", "ARGV[3]")
		"end\n"
		"local g = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
		"local want = tonumber(ARGV[1])\n"
		"local qf = redis.call('GET', KEYS[2])\n"
		"if g == want and qf and qf > ARGV[2] then\n"
		"  return redis.error_reply('EPOCH generation ' .. ARGV[1] .. "
		"' issued again with a lower query fence: bucket 0 lost a bump')\n"
		"end\n"
		"if g < want then redis.call('SET', KEYS[1], ARGV[1]) end\n"
		"if not qf or qf < ARGV[2] then redis.call('SET', KEYS[2], ARGV[2]) end\n"
		FMAX_RAISE("KEYS[3]", "ARGV[2]")
		"return g\n",
	[CS_SCRIPT_C_RAISE - CS_SCRIPT_COUNT] =
		ALLOW_OOM
		"if KEYS[2] then\n"
		EPOCH_SFX("KEYS[2]", "ARGV[3]")
		"  if ARGV[4] == '1' then\n"
		RUN_ID
		"    if string.sub(ep_, 1, #rid + 1) ~= rid .. ':' then\n"
		"      return redis.error_reply('EPOCH redis restarted or failed over')\n"
		"    end\n"
		"  end\n"
		"end\n"
		RAISE_TAIL(EV_STATE_C("KEYS[4]")),
	[CS_SCRIPT_C_SYNC_PROBE - CS_SCRIPT_COUNT] =
		RUN_ID
		"local b0 = ARGV[2] == '1'\n"
		"local e = redis.call('GET', KEYS[1])\n"
		"local st = 2\n"
		"if e and string.sub(e, 1, #rid + 1) == rid .. ':' then st = 0\n"
		"elseif e and not b0 and ARGV[1] ~= '' then\n"
		/* writes reach replicas and a slot's new owner in order, but MIGRATE moves keys
		 * in no particular order: a kept bucket also needs its fmax (C2) */
		"  local pos = redis.call('GET', KEYS[2])\n"
		"  if pos and pos >= ARGV[1] then st = 1 end\n"
		"end\n"
		"if st ~= 2 and not redis.call('GET', KEYS[3]) then st = 2 end\n"
		"local r = {st, e or ''}\n"
		"local first = 4\n"
		"if b0 then first = 5 end\n"
		"for i = first, #KEYS do r[#r + 1] = redis.call('GET', KEYS[i]) or '0' end\n"
		"if b0 then r[#r + 1] = redis.call('EXISTS', KEYS[4]) end\n"
		"return r\n",
	[CS_SCRIPT_C_SYNC_STAMP - CS_SCRIPT_COUNT] =
		ALLOW_OOM
		RUN_ID
		/* without a flush, what the probe saw must still hold (review V1): a failover or
		 * a migration between the two scripts is found here, and the EPOCH error makes
		 * the invalidator probe again. ARGV[7]: the probed state ('' = a flush: no check),
		 * ARGV[8] the probed epoch copy, ARGV[9] W. */
		"if ARGV[7] ~= '' then\n"
		"  local e = redis.call('GET', KEYS[1]) or ''\n"
		"  local ok = e == ARGV[8] and redis.call('GET', KEYS[3]) ~= false\n"
		"  if ok and ARGV[7] == '0' then ok = string.sub(e, 1, #rid + 1) == rid .. ':' end\n"
		"  if ok and ARGV[7] == '1' then\n"
		"    local pos = redis.call('GET', KEYS[4])\n"
		"    ok = ARGV[9] ~= '' and pos ~= false and pos >= ARGV[9]\n"
		"  end\n"
		"  if not ok then\n"
		"    return redis.error_reply('EPOCH the bucket changed between probe and stamp')\n"
		"  end\n"
		"end\n"
		"local raise = ARGV[5] == '1'\n"
		"local k = 5\n"
		"for i = 10, #ARGV do\n"
		"  local want = ARGV[i]\n"
		/* "~<g_0>": a repair, only where the bucket is behind bucket 0 (a fan-out cut
		 * short); "<G>": a bump */
		"  if string.sub(want, 1, 1) == '~' then\n"
		"    want = string.sub(want, 2)\n"
		"    local have = tonumber(redis.call('GET', KEYS[k]) or '0')\n"
		"    if have >= tonumber(want) then want = '' end\n"
		"  end\n"
		"  if want ~= '' then\n"
		"    local g = tonumber(redis.call('GET', KEYS[k]) or '0')\n"
		"    if g < tonumber(want) then redis.call('SET', KEYS[k], want) end\n"
		"    local f = redis.call('GET', KEYS[k + 1])\n"
		"    if not f or f < ARGV[3] then redis.call('SET', KEYS[k + 1], ARGV[3]) end\n"
		"    raise = true\n"
		"    if ARGV[6] == '1' then\n"
		"      local q = string.match(KEYS[k], ':g:(.*)$')\n"
		"      redis.call('PUBLISH', ARGV[1], q .. ' ' .. want)\n"
		"    end\n"
		"  end\n"
		"  k = k + 2\n"
		"end\n"
		"if raise then\n"
		FMAX_RAISE("KEYS[3]", "ARGV[3]")
		"  local h = redis.call('GET', KEYS[2])\n"
		"  if not h or h < ARGV[3] then h = ARGV[3] end\n"
		"  redis.call('SET', KEYS[2], h, 'PX', ARGV[4])\n"
		"end\n"
		"local e = rid .. ARGV[2]\n"
		"if redis.call('GET', KEYS[1]) ~= e then\n"
		"  redis.call('SET', KEYS[1], e)\n"
		"  if ARGV[6] == '1' then redis.call('PUBLISH', ARGV[1], '* ' .. e) end\n"
		"end\n"
		"return e\n",
	[CS_SCRIPT_C_SYNC_FINISH - CS_SCRIPT_COUNT] =
		ALLOW_OOM
		"redis.call('DEL', KEYS[1])\n"
		"local had = redis.call('EXISTS', KEYS[2])\n"
		"redis.call('SET', KEYS[2], '1')\n"
		"return {had, redis.call('HGETALL', KEYS[3])}\n",
	/* CS_SCRIPT_FILL on bucket b's copies: the epoch copy compared by its ":<random>" part
	 * (each bucket's copy names its own node's run_id), the eviction record with the node's
	 * run_id (a bucket that moved is not whole on its new node until its next RAISE). */
	[CS_SCRIPT_C_FILL - CS_SCRIPT_COUNT] = FILL_SCRIPT(
		"  local ep = v[2]\n"
		"  if ARGV[5] == '' or not ep or #ep < #ARGV[5] or "
		"string.sub(ep, -#ARGV[5]) ~= ARGV[5] then st = -4 break end\n",
		EV_STATE_C("KEYS[8]")),
	[CS_SCRIPT_C_DEF_BUMP - CS_SCRIPT_COUNT] =
		ALLOW_OOM
		EPOCH_GUARD("KEYS[3]", "ARGV[4]")
		QMAP_COVER("return {tonumber(redis.call('GET', KEYS[1]) or '0'), "
		           "redis.call('GET', KEYS[2]), 1}")
		"redis.call('SET', KEYS[5], ARGV[5])\n"
		"local g = redis.call('INCR', KEYS[1])\n"
		"local f = redis.call('GET', KEYS[2])\n"
		"if not f or f < ARGV[3] then f = ARGV[3]; redis.call('SET', KEYS[2], f) end\n"
		FMAX_RAISE("KEYS[4]", "ARGV[3]")
		"redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. g .. ' ' .. ARGV[5])\n"
		"return {g, f}\n",
};

const char *const *cs_scripts_cluster(void)
{
	static const char *all[CS_SCRIPT_ALL_COUNT];
	if (all[0] == NULL) {
		for (int i = 0; i < CS_SCRIPT_COUNT; i++)
			all[i] = cs_scripts[i];
		for (int i = CS_SCRIPT_COUNT; i < CS_SCRIPT_ALL_COUNT; i++)
			all[i] = cluster_scripts[i - CS_SCRIPT_COUNT];
	}
	return all;
}

void cs_lsn_hex(uint64_t lsn, char out[17])
{
	snprintf(out, 17, "%016llX", (unsigned long long)lsn);
}

int cs_lsn_unhex(const char *s, size_t len, uint64_t *out)
{
	if (len != 16)
		return 0;
	uint64_t v = 0;
	for (size_t i = 0; i < 16; i++) {
		int d = cs_hex_digit(s[i]);
		if (d < 0)
			return 0;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 1;
}
