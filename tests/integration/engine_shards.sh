#!/usr/bin/env bash
# engine_shards.sh - the engine routes each key to its own shard (issue #18, SHARDS.md section
# 7 step 3b (1) and (3)), on a private sandbox of two shards (scripts/sandbox --shards 2
# --replicas 1; the shared sandbox is never touched), fences off and no invalidator (one per
# shard: engine_shards_inval.sh), through tests/integration/shard_drive (the engine
# alone; the daemon on a sharded config: sandbox_shards.sh).
#
# Both primaries hold a row under every id, each with its own value ("s1-<id>-<run>" on s1,
# "s2-<id>-<run>" on s2): an answer from the wrong shard is seen. Every answer (the miss, the
# cache hit, an MGET's items) must carry its key's own shard's value, read from that shard's
# primary, and never the other's:
#   (a) shard_map = ranges (1-1000:s1, 1001-2000:s2), keys of both shards, GET and MGET; a key
#       in no range is no_shard (12) in every round;
#   (b) shard_map = hash, the keys of SHARDS.md section 3's vectors (42, 0, -1: s1; 1000000: s2);
#   (c) tokens: s1:LSN on a key of s1 is served; s2:LSN on it is read on s1's primary, an
#       unknown shard's token and a bare LSN are bad_params (2); (c3) with s1's replica paused
#       and the cache old, s2:LSN on a key of s1 gets s1's primary's new row (GET and MGET
#       item), counted in cachesvc_ryw_other_shard_total; control --other-plain must fail it;
#   (d) negative control: shard_drive --force-shard0 pins every query to s1: the check of (a)
#       must fail (keys of s2 answered with s1's rows);
#   (f) admin INVALIDATE of the whole query bumps every shard's generation: after it, keys of
#       both shards miss (src replica, their own rows again); control: without it, the same
#       third round is all hits;
#   (g) one [shard] section (review 23 R23-1): still routed: a key in no range is no_shard,
#       a bare LSN bad_params; control: --force-shard0 serves that key from s1;
#   (e) health per shard: healthy ("ok") with both shards' servers up; s2's replica stopped,
#       the health message (/healthz's) names shard s2 and its replica, and not shard s1.
set -euo pipefail
. "$(dirname "$0")/shard_lib.sh"
trap shard_cleanup EXIT
shard_sandbox eshards

# ---- the rows: every id on both shards, each shard's value its own ----------------------------
IDS="5 42 0 -1 1000 1001 1500 2000 1000000"
RUN=$RANDOM$RANDOM
for k in 1 2; do
  vals=""
  for id in $IDS; do vals+="${vals:+,}($id, 's$k-$id-$RUN')"; done
  pg "$(port_of $k PRIMARY)" -c "CREATE TABLE t (id int8 PRIMARY KEY, v text)" \
    -c "INSERT INTO t VALUES $vals"
done
for k in 1 2; do # the replicas replayed them (a replica answers the misses)
  deadline=$((SECONDS + 60))
  until [ "$(pg "$(port_of $k REPLICA1)" -c "SELECT count(*) FROM t" 2>/dev/null || true)" = 9 ]; do
    [ $SECONDS -lt $deadline ] || fail "shard$k's replica did not replay the rows"
    sleep 0.2
  done
done
ok "rows planted under the same ids on both shards, each with its own value"

config() { # NAMESPACE MAP-LINES
  cat <<INI
[cachesvc]
listen = 127.0.0.1:1
admin_listen =
fence = false
verify_interval = 0
$2
[redis]
url = $CS_REDIS_URL
namespace = $1
[invalidator]
enabled = false
$(shard_sections)
[query t]
sql = SELECT v FROM t WHERE id = \$1
params = id:int8
shard_key = id
ttl = 300s
INI
}

# check FILE ROUNDS ID:SHARD...: every round's answer of each id is its shard's row (read from
# that shard's primary now), never the other shard's; rounds after the first from the cache.
check() {
  local file=$1 rounds=$2
  shift 2
  local spec id k other want bad line r
  for spec in "$@"; do
    id=${spec%:*} k=${spec#*:}
    other=$((3 - k))
    want=$(pg "$(port_of "$k" PRIMARY)" -c "SELECT v FROM t WHERE id = $id")
    bad=$(pg "$(port_of "$other" PRIMARY)" -c "SELECT v FROM t WHERE id = $id")
    for ((r = 1; r <= rounds; r++)); do
      line=$(grep -E "^round=$r key=$id " "$file" || true)
      [ "$(grep -c . <<<"$line")" = 1 ] || { echo "key $id round $r: $(grep -c . <<<"$line") answers"; return 1; }
      [[ $line == *" err=0 "* ]] || { echo "key $id round $r: $line"; return 1; }
      [[ $line == *"$want"* ]] || { echo "key $id round $r: not shard s$k's row '$want': $line"; return 1; }
      [[ $line != *"$bad"* ]] || { echo "key $id round $r: shard s$other's row: $line"; return 1; }
      if [ "$r" -gt 1 ] && [[ $line != *" src=cache "* ]]; then
        echo "key $id round $r: not from the cache: $line"
        return 1
      fi
    done
  done
}

RANGES='shard_map = ranges
shard_ranges = 1-1000:s1, 1001-2000:s2'
RKEYS="5 42 1000 1001 1500 2000 1000000"
RSPEC="5:1 42:1 1000:1 1001:2 1500:2 2000:2"

# ---- (a) ranges: GETs (miss, hit), then a third round as one MGET ------------------------------
config "es_r_$RUN" "$RANGES" >"$SB/ranges.ini"
"$DRIVE" --mget --rounds 3 "$SB/ranges.ini" t $RKEYS >"$SB/a.out" 2>"$OUT" ||
  fail "shard_drive (ranges): $(cat "$OUT")"
msg=$(check "$SB/a.out" 3 $RSPEC) || fail "(a) ranges: $msg; output: $(cat "$SB/a.out")"
for r in 1 2 3; do
  grep -qE "^round=$r key=1000000 err=12 src=- result=.*no range" "$SB/a.out" ||
    fail "(a) key 1000000 (in no range), round $r: not no_shard: $(grep 'key=1000000' "$SB/a.out")"
done
ok "(a) ranges: GET (miss, hit) and MGET items each answered with their own shard's row; a key in no range is no_shard"
# each entry in its own shard's namespace (review 23 R23-4: answers alone cannot see a key
# stored under the other shard's name, which step 4's invalidators would then never delete)
nkeys() { redis-cli -u "$CS_REDIS_URL" --scan --pattern "$1" | grep -c . || true; }
n1=$(nkeys "es_r_$RUN@s1:e:*") n2=$(nkeys "es_r_$RUN@s2:e:*")
[ "$n1" = 3 ] && [ "$n2" = 3 ] ||
  fail "(a) entries per shard namespace: s1 $n1, s2 $n2, want 3 and 3: $(redis-cli -u "$CS_REDIS_URL" --scan --pattern "es_r_$RUN*")"
ok "(a) the entries of s1's keys (5 42 1000) under es_r_$RUN@s1, of s2's (1001 1500 2000) under es_r_$RUN@s2"

# ---- (b) hash: SHARDS.md section 3's vectors ----------------------------------------------------
config "es_h_$RUN" "shard_map = hash" >"$SB/hash.ini"
"$DRIVE" --metrics cachesvc_shard_ "$SB/hash.ini" t 42 0 -1 1000000 >"$SB/b.out" 2>"$OUT" ||
  fail "shard_drive (hash): $(cat "$OUT")"
msg=$(check "$SB/b.out" 2 42:1 0:1 -1:1 1000000:2) || fail "(b) hash: $msg; output: $(cat "$SB/b.out")"
# the request counters per shard (SHARDS.md section 6): s1 3 keys x 2 rounds (3 misses, 3 hits),
# s2 1 key x 2 rounds (1 miss, 1 hit)
want_m='cachesvc_shard_requests_total{shard="s1"} 6
cachesvc_shard_requests_total{shard="s2"} 2
cachesvc_shard_cache_requests_total{shard="s1",outcome="hit"} 3
cachesvc_shard_cache_requests_total{shard="s1",outcome="stale_hit"} 0
cachesvc_shard_cache_requests_total{shard="s1",outcome="miss"} 3
cachesvc_shard_cache_requests_total{shard="s2",outcome="hit"} 1
cachesvc_shard_cache_requests_total{shard="s2",outcome="stale_hit"} 0
cachesvc_shard_cache_requests_total{shard="s2",outcome="miss"} 1'
[ "$(grep '^cachesvc_shard_' "$SB/b.out" | sort)" = "$(sort <<<"$want_m")" ] ||
  fail "(b) per-shard request counters: $(grep '^cachesvc_shard_' "$SB/b.out")"
ok "(b) hash: the published vectors' keys answered from their shards (42, 0, -1: s1; 1000000: s2); requests, hits and misses counted per shard"

# ---- (c) tokens: a token of the key's shard is served, another shard's or a bare LSN refused --
"$DRIVE" --lsn s1 --rounds 1 "$SB/ranges.ini" t 5 >"$SB/c1.out" 2>"$OUT" || fail "shard_drive --lsn s1: $(cat "$OUT")"
msg=$(check "$SB/c1.out" 1 5:1) || fail "(c) token s1 on a key of s1: $msg"
"$DRIVE" --lsn s2 --rounds 1 "$SB/ranges.ini" t 5 >"$SB/c2.out" 2>"$OUT" || fail "shard_drive --lsn s2: $(cat "$OUT")"
grep -qE "^round=1 key=5 err=0 src=primary result=.*s1-5-$RUN" "$SB/c2.out" ||
  fail "(c) token s2 on a key of s1 not read on s1's primary: $(cat "$SB/c2.out")"
"$DRIVE" --lsn s9 --rounds 1 "$SB/ranges.ini" t 5 >"$SB/c2b.out" 2>"$OUT" || fail "shard_drive --lsn s9: $(cat "$OUT")"
grep -qE '^round=1 key=5 err=2 .*shard s9, which no \[shard\] section' "$SB/c2b.out" ||
  fail "(c) a token of an unknown shard not refused: $(cat "$SB/c2b.out")"
"$DRIVE" --lsn "" --rounds 1 "$SB/ranges.ini" t 1500 >"$SB/c3.out" 2>"$OUT" || fail "shard_drive --lsn '': $(cat "$OUT")"
grep -qE '^round=1 key=1500 err=2 .*bare LSN' "$SB/c3.out" ||
  fail "(c) a bare LSN not refused: $(cat "$SB/c3.out")"
ok "(c) a token of the key's shard is served; another shard's is read on the key's shard's primary; an unknown shard's and a bare LSN are bad_params"
# (c2) a token's LSN is compared with its own shard's WAL (review 23 R23-3): s2's WAL made far
# ahead of s1's, key 1500's row changed on s2 at L: s2:L on key 1500 answers the new row (never
# (a)'s cached one); s1:L on a key of s1 is future_lsn (s1 never reached L). Compared with
# the wrong shard's WAL, one of the two fails
pg "$(port_of 2 PRIMARY)" -c "CREATE TABLE pad AS SELECT i, repeat('w', 200) AS p FROM generate_series(1, 40000) i"
pg "$(port_of 2 PRIMARY)" -c "UPDATE t SET v = v || '-new' WHERE id = 1500"
lsn2=$(pg "$(port_of 2 PRIMARY)" -c "SELECT pg_current_wal_lsn()")
[ "$(pg "$(port_of 1 PRIMARY)" -c "SELECT pg_current_wal_lsn() < '$lsn2'::pg_lsn")" = t ] ||
  fail "(c2) s1's WAL is not behind s2's $lsn2: the test proves nothing"
"$DRIVE" --lsn "s2:$lsn2" --rounds 1 "$SB/ranges.ini" t 1500 >"$SB/c4.out" 2>"$OUT" || fail "shard_drive --lsn s2:$lsn2: $(cat "$OUT")"
grep -qE "^round=1 key=1500 err=0 src=(replica|primary) result=.*s2-1500-$RUN-new" "$SB/c4.out" ||
  fail "(c2) token s2:$lsn2 on key 1500: not the new row from s2: $(cat "$SB/c4.out")"
"$DRIVE" --lsn "s1:$lsn2" --rounds 1 "$SB/ranges.ini" t 5 >"$SB/c5.out" 2>"$OUT" || fail "shard_drive --lsn s1:$lsn2: $(cat "$OUT")"
grep -qE '^round=1 key=5 err=11 ' "$SB/c5.out" ||
  fail "(c2) token s1:$lsn2 (beyond s1's WAL) on key 5: not future_lsn: $(cat "$SB/c5.out")"
# the later parts read key 1500 from s2's replica: it must have replayed the change (review 25
# R25-2: the token's read may have been answered by the primary)
deadline=$((SECONDS + 60))
until [ "$(pg "$(port_of 2 REPLICA1)" -c "SELECT pg_last_wal_replay_lsn() >= '$lsn2'::pg_lsn" 2>/dev/null || true)" = t ]; do
  [ $SECONDS -lt $deadline ] || fail "(c2) s2's replica did not replay $lsn2"
  sleep 0.2
done
# (c3) a token of another shard (SHARDS.md section 5): key 5's row changed on s1's primary while
# s1's replica has its replay paused, key 5's old row in the cache ((a)): s2:L on key 5 is
# answered with the new row by s1's primary (src primary), never the cache's or the replica's
# old row, and counted; as an MGET item beside key 1500 (s2's own token), each judged alone.
# Control (--other-plain: the token dropped, a plain read): the cache's old row, and in a fresh
# namespace the paused replica's (or no answer): never s1's primary's new row.
# No primary fallback and no lag bound (review 33 R33-4): the paused replica stays a fit
# server, so only the other-shard rule can send the read to the primary (with the defaults, a
# replica 5 s behind sent a broken build's replica read to the primary too)
sed '/^\[cachesvc\]/a primary_fallback = false\nmax_replica_lag = 1h' "$SB/ranges.ini" >"$SB/c3.ini"
pg "$(port_of 1 REPLICA1)" -c "SELECT pg_wal_replay_pause()"
pg "$(port_of 1 PRIMARY)" -c "UPDATE t SET v = v || '-p' WHERE id = 5"
[ "$(pg "$(port_of 1 REPLICA1)" -c "SELECT v FROM t WHERE id = 5")" = "s1-5-$RUN" ] ||
  fail "(c3) s1's replica replayed the change though paused: the test proves nothing"
"$DRIVE" --lsn "s2:$lsn2" --rounds 1 --metrics cachesvc_ryw_other_shard_total "$SB/c3.ini" t 5 >"$SB/c6.out" 2>"$OUT" ||
  fail "shard_drive --lsn s2:$lsn2 (key 5): $(cat "$OUT")"
grep -qE "^round=1 key=5 err=0 src=primary result=.*s1-5-$RUN-p" "$SB/c6.out" ||
  fail "(c3) token s2:$lsn2 on key 5 (s1): not s1's primary's new row: $(cat "$SB/c6.out")"
grep -qx 'cachesvc_ryw_other_shard_total 1' "$SB/c6.out" || fail "(c3) not counted: $(cat "$SB/c6.out")"
"$DRIVE" --lsn "s2:$lsn2" --rounds 1 --mget --metrics cachesvc_ryw_other_shard_total "$SB/c3.ini" t 5 1500 >"$SB/c7.out" 2>"$OUT" ||
  fail "shard_drive --mget --lsn s2:$lsn2: $(cat "$OUT")"
grep -qE "^round=1 key=5 err=0 src=primary result=.*s1-5-$RUN-p" "$SB/c7.out" ||
  fail "(c3) MGET item key 5 with s2's token: not s1's primary's new row: $(cat "$SB/c7.out")"
grep -qE "^round=1 key=1500 err=0 src=[a-z]+ result=.*s2-1500-$RUN-new" "$SB/c7.out" ||
  fail "(c3) MGET item key 1500 with its own shard's token: not s2's new row: $(cat "$SB/c7.out")"
grep -qx 'cachesvc_ryw_other_shard_total 1' "$SB/c7.out" || fail "(c3) MGET: not counted once (key 5 only): $(cat "$SB/c7.out")"
"$DRIVE" --other-plain --lsn "s2:$lsn2" --rounds 1 "$SB/c3.ini" t 5 >"$SB/c8.out" 2>"$OUT" ||
  fail "shard_drive --other-plain: $(cat "$OUT")"
! grep -qE "^round=1 key=5 err=0 src=primary result=.*s1-5-$RUN-p" "$SB/c8.out" ||
  fail "(c3) control (--other-plain): still s1's primary's row: the check proves nothing: $(cat "$SB/c8.out")"
grep -qE "^round=1 key=5 err=0 src=cache result=.*s1-5-$RUN" "$SB/c8.out" && ! grep -q "s1-5-$RUN-p" "$SB/c8.out" ||
  fail "(c3) control (--other-plain): not the cache's old row: $(cat "$SB/c8.out")"
config "es_o_$RUN" "$RANGES" | sed '/^\[cachesvc\]/a primary_fallback = false\nmax_replica_lag = 1h' >"$SB/other.ini"
"$DRIVE" --other-plain --lsn "s2:$lsn2" --rounds 1 "$SB/other.ini" t 5 >"$SB/c9.out" 2>"$OUT" ||
  fail "shard_drive --other-plain (fresh namespace): $(cat "$OUT")"
! grep -qE "^round=1 key=5 err=0 src=primary " "$SB/c9.out" ||
  fail "(c3) control (--other-plain, fresh namespace): read on the primary: $(cat "$SB/c9.out")"
pg "$(port_of 1 REPLICA1)" -c "SELECT pg_wal_replay_resume()"
lsn1=$(pg "$(port_of 1 PRIMARY)" -c "SELECT pg_current_wal_lsn()")
deadline=$((SECONDS + 60))
until [ "$(pg "$(port_of 1 REPLICA1)" -c "SELECT pg_last_wal_replay_lsn() >= '$lsn1'::pg_lsn" 2>/dev/null || true)" = t ]; do
  [ $SECONDS -lt $deadline ] || fail "(c3) s1's replica did not replay $lsn1 after the resume"
  sleep 0.2
done
ok "(c3) s2:$lsn2 on key 5 (s1) read on s1's primary (its new row; replica paused, cache old), GET and MGET item, counted; control --other-plain: $(grep -o 'src=[a-z-]*' "$SB/c8.out") / $(grep -o 'src=[a-z-]*' "$SB/c9.out")"
ok "(c2) s2:$lsn2 on key 1500 read its new row from s2 ($(grep -o 'src=[a-z]*' "$SB/c4.out")); s1:$lsn2 on key 5 future_lsn (s1 behind)"

# ---- (d) negative control: every key forced to shard s1 -----------------------------------------
config "es_n_$RUN" "$RANGES" >"$SB/neg.ini"
"$DRIVE" --force-shard0 --mget --rounds 3 "$SB/neg.ini" t $RKEYS >"$SB/d.out" 2>"$OUT" ||
  fail "shard_drive --force-shard0: $(cat "$OUT")"
if msg=$(check "$SB/d.out" 3 $RSPEC); then
  fail "(d) control: every key forced to s1 and the check still passed: $(cat "$SB/d.out")"
fi
grep -q "s1-1500-$RUN" "$SB/d.out" || fail "(d) control: key 1500 not answered with s1's row: $(cat "$SB/d.out")"
ok "(d) control: routed to the wrong shard, the check fails ($msg)"

# ---- (f) INVALIDATE of the whole query: every shard's keys miss after it ------------------------
config "es_i_$RUN" "$RANGES" >"$SB/inval.ini"
"$DRIVE" --invalidate-after 2 --rounds 3 "$SB/inval.ini" t 5 1500 >"$SB/f.out" 2>"$OUT" ||
  fail "shard_drive --invalidate-after: $(cat "$OUT")"
grep -qE '^invalidate err=0 n=[1-9]' "$SB/f.out" || fail "(f) INVALIDATE failed: $(cat "$SB/f.out")"
msg=$(check "$SB/f.out" 2 5:1 1500:2) || fail "(f) before the INVALIDATE: $msg"
for spec in 5:1 1500:2; do
  id=${spec%:*} k=${spec#*:}
  want=$(pg "$(port_of "$k" PRIMARY)" -c "SELECT v FROM t WHERE id = $id")
  grep -qE "^round=3 key=$id err=0 src=replica result=.*$want" "$SB/f.out" ||
    fail "(f) key $id (shard s$k) not missed after the INVALIDATE: $(cat "$SB/f.out")"
done
# control: the same rounds without the INVALIDATE, in another namespace: round 3 all hits
config "es_j_$RUN" "$RANGES" >"$SB/inval2.ini"
"$DRIVE" --rounds 3 "$SB/inval2.ini" t 5 1500 >"$SB/f2.out" 2>"$OUT" || fail "shard_drive: $(cat "$OUT")"
msg=$(check "$SB/f2.out" 3 5:1 1500:2) || fail "(f) control: round 3 without an INVALIDATE: $msg"
ok "(f) INVALIDATE of the whole query: keys of both shards missed after it ($(grep '^invalidate' "$SB/f.out")); without it, hits"
# (f2) INVALIDATE of one key deletes it in its own shard (review 23 R23-4): key 1500 (s2) misses
# after it, key 5 (s1) still hits; in s1's namespace the DEL would leave 1500's entry a hit
config "es_k_$RUN" "$RANGES" >"$SB/inval3.ini"
"$DRIVE" --invalidate-key-after 2 --rounds 3 "$SB/inval3.ini" t 1500 5 >"$SB/f3.out" 2>"$OUT" ||
  fail "shard_drive --invalidate-key-after: $(cat "$OUT")"
grep -qE '^invalidate err=0 n=1' "$SB/f3.out" || fail "(f2) INVALIDATE of key 1500 failed: $(cat "$SB/f3.out")"
grep -qE "^round=3 key=1500 err=0 src=replica result=" "$SB/f3.out" || fail "(f2) key 1500 not missed after its INVALIDATE: $(cat "$SB/f3.out")"
grep -qE "^round=3 key=5 err=0 src=cache result=" "$SB/f3.out" || fail "(f2) key 5 not a hit after key 1500's INVALIDATE: $(cat "$SB/f3.out")"
ok "(f2) INVALIDATE of key 1500: its entry on s2 deleted (a miss after it), key 5 on s1 still a hit"

# ---- (g) one [shard] section: its keys still routed (review 23 R23-1) ---------------------------
config "es_g_$RUN" 'shard_map = ranges
shard_ranges = 1-1000:s1' | awk '/^\[/ { skip = ($0 == "[shard s2]" || $0 == "[replica r2]") } !skip' >"$SB/one.ini"
! grep -q 's2' "$SB/one.ini" || fail "(g) the one-shard config names s2: $(cat "$SB/one.ini")"
"$DRIVE" --rounds 2 "$SB/one.ini" t 5 1500 >"$SB/g.out" 2>"$OUT" || fail "shard_drive (one shard): $(cat "$OUT")"
msg=$(check "$SB/g.out" 2 5:1) || fail "(g) one shard, key 5: $msg"
for r in 1 2; do
  grep -qE "^round=$r key=1500 err=12 src=- result=.*no range" "$SB/g.out" ||
    fail "(g) one shard, key 1500 (in no range), round $r: not no_shard: $(grep 'key=1500' "$SB/g.out")"
done
"$DRIVE" --lsn "" --rounds 1 "$SB/one.ini" t 5 >"$SB/g2.out" 2>"$OUT" || fail "shard_drive --lsn '' (one shard): $(cat "$OUT")"
grep -qE '^round=1 key=5 err=2 .*bare LSN' "$SB/g2.out" || fail "(g) one shard: a bare LSN not refused: $(cat "$SB/g2.out")"
# (g)'s control (review 26 R26-5): routing off (--force-shard0 pins every query to s1): key
# 1500 is then served from s1, and the no_shard check above would fail
"$DRIVE" --force-shard0 --rounds 1 "$SB/one.ini" t 1500 >"$SB/g3.out" 2>"$OUT" || fail "shard_drive --force-shard0 (one shard): $(cat "$OUT")"
grep -qE '^round=1 key=1500 err=0 ' "$SB/g3.out" ||
  fail "(g) control (--force-shard0): key 1500 not served from s1: the check proves nothing: $(cat "$SB/g3.out")"
ok "(g) one [shard] section: its key answered from it, a key in no range no_shard (never served from s1 nor cached; control, routing off: served from s1), a bare LSN bad_params"

# ---- (e) health per shard: s2's replica stopped -----------------------------------------------
"$DRIVE" --health ok "$SB/ranges.ini" t 5 >"$SB/e1.out" 2>"$OUT" || fail "(e) not healthy with every server up: $(cat "$OUT")"
pid=$(head -1 "$SB/shard2/replica1/postmaster.pid")
kill -INT "$pid" # fast shutdown
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "(e) shard2's replica did not stop"
  sleep 0.2
done
"$DRIVE" --health "shard s2: no replica is usable: r2 down" "$SB/ranges.ini" t 5 >"$SB/e2.out" 2>"$OUT" ||
  fail "(e) s2's replica down: the health message does not name shard s2: $(cat "$OUT")"
! grep -q 'shard s1' "$SB/e2.out" || fail "(e) shard s1 named though its servers are up: $(cat "$SB/e2.out")"
ok "(e) health per shard: ok with every server up; $(cat "$SB/e2.out")"
