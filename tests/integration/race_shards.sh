#!/usr/bin/env bash
# race_shards.sh - issue #18's "invalidation per shard, including a race test with the
# verifier at 0 stale on each" (SHARDS.md step 6), on a private `sandbox --shards 2
# --replicas 1 --delay 2s`: each shard's one replica applies WAL 2 s late. The daemon reads
# those late replicas (max_replica_lag = 1h) with fences and one invalidator per shard on;
# rate-limited pgbench writers update hot rows on BOTH primaries (ids 1..HOT on s1,
# 1001..1000+HOT on s2: shard_ranges) while readers hammer the keys of both shards through
# the daemon, and go on after the writers stop, through the late replicas' window:
# the stale-set race of race_fenced.sh, on each shard. Once every invalidator has passed its
# primary's position, cachesvc-verify checks each shard's entries against that shard's
# primary and must find 0 stale on EACH shard (having checked entries on each). Then a
# legitimately misrouted entry (the map's other shard's key, with this shard's data) is
# reported as misrouted and not stale. Negative control: the same race with fence = off must
# leave stale entries that the verifier finds on each shard (a few seeds), and exit 1.
set -euo pipefail
. "$(dirname "$0")/shard_lib.sh"
CS=$CS_BUILD/cachesvc/cachesvc
CLI=$CS_BUILD/protocol/cachesvc-cli
BURST=$CS_BUILD/tests/integration/cs_burst
VERIFY=$CS_BUILD/cachesvc/cachesvc-verify
WARM=$CS_BUILD/cachesvc/cachesvc-warm
for x in "$CS" "$CLI" "$BURST" "$VERIFY" "$WARM"; do [ -x "$x" ] || fail "no $x"; done
PY3=/usr/bin/python3
# tools run in loops: no leak scan at each exit (daemon_lib.sh's NOLEAK_ASAN_OPTIONS)
NOLEAK=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
HOT=${HOT:-8}
RATE=${RATE:-100} # commits per second per primary (race_lib.sh's RATE: the invalidators keep up)
DPID=
cleanup() {
  [ -z "$DPID" ] || kill -KILL "$DPID" 2>/dev/null || true
  [ -z "${WORK:-}" ] || rm -rf "$WORK"
  shard_cleanup
}
trap cleanup EXIT
ok() { echo "ok - $* (at ${SECONDS}s)"; }
SHARD_SANDBOX_ARGS="--delay 2s" shard_sandbox race-shards
ok "a sandbox of 2 shards, each with one replica 2 s late"
WORK=$(mktemp -d /tmp/cs-race-shards.XXXXXX)
free_port() { "$PY3" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port) APORT=$(free_port)
P1=$(port_of 1 PRIMARY) P2=$(port_of 2 PRIMARY)
base=(0 0 1000)
for k in 1 2; do
  pg "$(port_of $k PRIMARY)" -c "CREATE TABLE hot (id bigint PRIMARY KEY, v bigint NOT NULL, pad text)" \
    -c "INSERT INTO hot SELECT i, 0, repeat('p', 100) FROM generate_series(${base[$k]} + 1, ${base[$k]} + $HOT) i"
done
# the replicas (2 s late) have the table before the daemon prepares its query there
replayed() { [ "$(pg "$(port_of "$1" REPLICA1)" -c "SELECT count(*) FROM hot" 2>/dev/null)" = "$HOT" ]; }
for k in 1 2; do
  deadline=$((SECONDS + 60))
  until replayed $k; do
    [ $SECONDS -lt $deadline ] || fail "shard$k's replica never replayed the table"
    sleep 0.2
  done
done
cat >"$WORK/update1.sql" <<SQL
\set id random(1, $HOT)
UPDATE hot SET v = v + 1 WHERE id = :id;
SQL
sed "s/random(1, $HOT)/random(1001, $((1000 + HOT)))/" "$WORK/update1.sql" >"$WORK/update2.sql"

http() { curl -s --max-time 5 "http://127.0.0.1:$APORT$1"; }
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

config() { # FENCE NAMESPACE
  cat >"$WORK/cs.ini" <<INI
[cachesvc]
listen = 127.0.0.1:$PORT
admin_listen = 127.0.0.1:$APORT
health_interval = 200ms
fence = $1
max_replica_lag = 1h
primary_fallback = true
verify_interval = 100ms
shard_map = ranges
shard_ranges = 1-1000:s1, 1001-2000:s2
[redis]
url = $CS_REDIS_URL
namespace = $2
[invalidator]
enabled = true
slot = cs_race
publication = cs_race
create_publication = true
$(shard_sections)
[query rc_hot]
sql = SELECT id, v FROM hot WHERE id = \$1
params = id:int8
shard_key = id
ttl = 10m
invalidate_on = hot(id = \$1)
[query rc_cold]
sql = SELECT id, v FROM hot WHERE id = \$1
params = id:int8
shard_key = id
ttl = 10m
invalidate_on = hot(id = \$1)
INI
}

both_streaming() {
  [ "$(http /metrics | grep -c '^cachesvc_invalidator_status{shard="s[12]",state="streaming"} 1$')" = 2 ]
}
start_daemon() {
  "$CS" -c "$WORK/cs.ini" >>"$WORK/daemon.log" 2>&1 &
  DPID=$!
  local deadline=$((SECONDS + 60))
  until ASAN_OPTIONS=$NOLEAK "$CLI" -p "$PORT" -t 500 ping >/dev/null 2>&1; do
    kill -0 "$DPID" 2>/dev/null || fail "cachesvc exited: $(tail -5 "$WORK/daemon.log")"
    [ $SECONDS -lt $deadline ] || fail "cachesvc did not answer in 60 s: $(tail -5 "$WORK/daemon.log")"
    sleep 0.2
  done
  until_true 60 both_streaming || fail "not one streaming invalidator per shard: $(http /metrics | grep invalidator_status)"
}
stop_daemon() {
  kill -TERM "$DPID"
  local deadline=$((SECONDS + 30))
  while kill -0 "$DPID" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "cachesvc did not exit within 30 s of SIGTERM"
    sleep 0.1
  done
  wait "$DPID" || fail "cachesvc exited with status $?: $(tail -5 "$WORK/daemon.log")"
  DPID=
}

# race_round SECONDS SEED: writers on both primaries for SECONDS, readers of both shards'
# keys for SECONDS + 6: past the writers, through the replicas' 2 s delay (the race) and on
# until the replicas have caught up, so that every key is filled again (entries to check).
race_round() {
  local secs=$1 seed=$2 w=() r=()
  for k in 1 2; do
    "$CS_PG_BIN/pgbench" -n -h "$CS_PG_SOCKET_DIR" -p "$(port_of $k PRIMARY)" -U postgres \
      -c 2 -j 1 -T "$secs" -R "$RATE" --random-seed="$seed" -f "$WORK/update$k.sql" app \
      >"$WORK/pgbench$k.$seed.log" 2>&1 &
    w+=($!)
  done
  local stop=$((SECONDS + secs + 6)) ids
  ids="$(seq 1 "$HOT") $(seq 1001 $((1000 + HOT)))"
  for n in 1 2; do
    (
      while [ $SECONDS -lt $stop ]; do
        for id in $(shuf -e $ids --random-source=<(yes "$seed$n")); do
          ASAN_OPTIONS=$NOLEAK "$BURST" -p "$PORT" -c 2 -n 5 rc_hot "$id" >/dev/null || exit 1
        done
      done
    ) &
    r+=($!)
  done
  for p in "${w[@]}"; do wait "$p" || fail "pgbench failed: $(tail -q -n 3 "$WORK"/pgbench*."$seed".log)"; done
  for p in "${r[@]}"; do wait "$p" || fail "a reader failed"; done
}

# settle: each shard's invalidator has confirmed its primary's current position.
confirmed_past() { # K LSN_NUMBER
  local c
  c=$(http /metrics | awk -v m="cachesvc_invalidator_confirmed_lsn{shard=\"s$1\"}" '$1 == m {print $2}')
  awk -v a="${c:-0}" -v b="$2" 'BEGIN { exit !(a >= b) }'
}
settle() {
  for k in 1 2; do
    local n
    n=$(pg "$(port_of $k PRIMARY)" -c "SELECT pg_current_wal_lsn() - '0/0'")
    until_true 60 confirmed_past $k "$n" || fail "shard s$k's invalidator never confirmed its primary's position"
  done
}

# verify: runs cachesvc-verify --json into $WORK/verify.json; prints its exit status.
verify() {
  local rc=0
  "$VERIFY" -c "$WORK/cs.ini" --json --wait 30 >"$WORK/verify.json" 2>"$WORK/verify.err" || rc=$?
  echo $rc
}
field() { # PATH... of verify.json ("stale": the total; "shards s1 checked")
  "$PY3" -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$WORK/verify.json" "$@"
}

# ---- fenced: 0 stale on each shard ----------------------------------------------------------
config on "rs$$a"
start_daemon
for seed in ${FENCED_SEEDS:-11}; do # more: FENCED_SEEDS="11 22 33"
  race_round 6 "$seed"
  settle
  rc=$(verify)
  for k in 1 2; do
    checked=$(field shards s$k checked) stale=$(field shards s$k stale)
    [ "$checked" -ge 1 ] || fail "seed $seed: the verifier checked nothing on s$k: $(cat "$WORK/verify.json")"
    # entries compared and found current, not only counted (a skipped entry counts as checked:
    # review 31 R31-5)
    [ "$(field shards s$k ok)" -ge 1 ] || fail "seed $seed: no entry of s$k compared ok: $(cat "$WORK/verify.json")"
    [ "$stale" = 0 ] || fail "seed $seed: $stale stale entries on s$k survived the race: $(cat "$WORK/verify.json")"
  done
  [ "$rc" = 0 ] || fail "seed $seed: cachesvc-verify exited $rc with 0 stale: $(cat "$WORK/verify.err")"
  [ "$(field checked)" = $(($(field shards s1 checked) + $(field shards s2 checked))) ] ||
    fail "total is not the sum of the shards: $(cat "$WORK/verify.json")"
  ok "seed $seed: fenced, 2 shards raced (commits $(grep -h 'actually processed' "$WORK"/pgbench?."$seed".log | awk '{print $NF}' | tr '\n' ' ')); verifier: s1 $(field shards s1 checked) checked, s2 $(field shards s2 checked) checked, 0 stale on each"
done
m() { http /metrics | awk -v m="$1" '$1 == m {print $2}'; }
ok "fences refused $(m cachesvc_fill_refused_fence_total) fills (the races the fences won)"
# the daemon's sampler: each shard's entries against that shard's primary (checking s2's
# entries against s1's primary would find them all stale: s1 has no row of theirs)
[ "$(m cachesvc_verify_stale_total)" = 0 ] && [ "$(m cachesvc_verify_checked_total)" -ge 1 ] ||
  fail "the sampler: $(m cachesvc_verify_checked_total) checked, $(m cachesvc_verify_stale_total) stale (want >= 1, 0): $(grep -a 'verifier:' "$WORK/daemon.log" | head -3)"
ok "the sampler checked $(m cachesvc_verify_checked_total) entries of both shards, 0 stale"

# ---- cachesvc-warm --from-sql per shard: the SQL on each shard's replica ---------------------
# rc_cold (never read yet) over the same rows; the replicas caught up first, so that no fill
# is refused for a fence of the race. Control: s1's replica alone warms s1's keys only.
caught_up() { # K
  local p
  p=$(pg "$(port_of "$1" PRIMARY)" -c "SELECT pg_current_wal_lsn()")
  [ "$(pg "$(port_of "$1" REPLICA1)" -c "SELECT pg_last_wal_replay_lsn() >= '$p'")" = t ]
}
for k in 1 2; do until_true 60 caught_up $k || fail "shard$k's replica never caught up"; done
cold() { redis-cli -h 127.0.0.1 -p "$CS_REDIS_PORT" --scan --pattern "rs$$a@s$1:e:rc_cold:*" | wc -l; }
warm() { # CONNINFO...
  local a=()
  for c in "$@"; do a+=(--conninfo "$c"); done
  ASAN_OPTIONS=$NOLEAK "$WARM" -p "$PORT" --rate 0 --quiet --json --query rc_cold "${a[@]}" \
    --from-sql "SELECT id FROM hot ORDER BY id" >"$WORK/warm.json" 2>"$WORK/warm.err" ||
    fail "cachesvc-warm: $(cat "$WORK/warm.json" "$WORK/warm.err" 2>/dev/null)"
}
wj() { "$PY3" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/warm.json" "$1"; }
warm "$CS_PG_SHARD1_REPLICA1"
[ "$(wj "done")" = "$HOT" ] && [ "$(cold 1)" = "$HOT" ] && [ "$(cold 2)" = 0 ] ||
  fail "warm on s1's replica alone: $(cat "$WORK/warm.json"); entries s1 $(cold 1), s2 $(cold 2)"
warm "$CS_PG_SHARD1_REPLICA1" "$CS_PG_SHARD2_REPLICA1"
[ "$(wj "done")" = $((2 * HOT)) ] && [ "$(wj filled)" = "$HOT" ] && [ "$(cold 1)" = "$HOT" ] &&
  [ "$(cold 2)" = "$HOT" ] ||
  fail "warm on both shards' replicas: $(cat "$WORK/warm.json"); entries s1 $(cold 1), s2 $(cold 2)"
ok "warm --from-sql with one --conninfo per shard: $(wj "done") rows of 2 shards, $(wj filled) filled (s2's), each key under its shard (s1 $(cold 1), s2 $(cold 2)); s1's replica alone warmed s1's keys only"

# ---- a misrouted entry: s2's key 1001 under s1's prefix, with s1's data equal to it --------
# (what a shard map changed across a restart leaves behind): checked against s1's primary,
# not stale, counted as misrouted on s1; with s1's row gone, stale on s1
NS=rs$$a
redis() { redis-cli -h 127.0.0.1 -p "$CS_REDIS_PORT" "$@"; }
g1=$(redis GET "$NS@s1:g:rc_hot") g2=$(redis GET "$NS@s2:g:rc_hot")
src="$NS@s2:e:rc_hot:${g2:-0}:1001" dst="$NS@s1:e:rc_hot:${g1:-0}:1001"
filled() { ASAN_OPTIONS=$NOLEAK "$CLI" -p "$PORT" get rc_hot 1001 >/dev/null 2>&1 || true; [ "$(redis EXISTS "$src")" = 1 ]; }
until_true 30 filled || fail "key 1001 never cached under $src"
pg "$P2" -c "COPY (SELECT * FROM hot WHERE id = 1001) TO STDOUT" >"$WORK/row1001"
pg "$P1" -c "COPY hot FROM STDIN" <"$WORK/row1001"
settle # s1's invalidator past the insert (it had no entry of 1001 to delete)
redis COPY "$src" "$dst" >/dev/null
rc=$(verify)
[ "$(field shards s1 misrouted)" = 1 ] && [ "$(field shards s2 misrouted)" = 0 ] &&
  [ "$(field stale)" = 0 ] && [ "$rc" = 0 ] ||
  fail "the misrouted entry not reported as such (exit $rc): $(cat "$WORK/verify.json")"
pg "$P1" -c "DELETE FROM hot WHERE id = 1001"
settle # s1's invalidator deleted the copy (key 1001 of s1's keyspace): plant it again
redis COPY "$src" "$dst" REPLACE >/dev/null
rc=$(verify)
[ "$(field shards s1 stale)" = 1 ] && [ "$(field shards s1 misrouted)" = 1 ] && [ "$rc" = 1 ] ||
  fail "a misrouted entry differing from its shard's primary not stale (exit $rc): $(cat "$WORK/verify.json")"
grep -q '"shard":"s1"' "$WORK/verify.json" || fail "the stale key does not name its shard: $(cat "$WORK/verify.json")"
# the text report: a line per query and shard, per shard (with its misrouted entries), total
rc=0
"$VERIFY" -c "$WORK/cs.ini" --wait 30 >"$WORK/verify.txt" 2>&1 || rc=$?
for want in "^STALE shard s1 rs$$a@s1:e:rc_hot:[0-9]*:1001 lsn " "^shard s1: query rc_hot (generation [0-9]*): checked " \
  "^shard s2: query rc_cold (generation [0-9]*): checked " "^shard s1: checked [0-9]*, ok [0-9]*, stale 1," \
  "^shard s1: 1 entries misrouted " "^shard s2: checked [0-9]*, ok [0-9]*, stale 0," "^total: checked "; do
  grep -q "$want" "$WORK/verify.txt" || fail "text report (exit $rc) lacks /$want/: $(cat "$WORK/verify.txt")"
done
[ "$rc" = 1 ] || fail "text report: exit $rc, not 1"
redis DEL "$dst" >/dev/null
stop_daemon
ok "an entry of s2's key under s1's prefix: misrouted on s1, checked against s1's primary (equal: ok; differing: stale, exit 1)"

# ---- control: fence = off must leave stale entries on each shard -------------------------------
config off "rs$$b"
start_daemon
declare -A found=([1]=0 [2]=0)
for seed in 33 44 55 66; do
  race_round 6 "$seed"
  settle
  rc=$(verify)
  for k in 1 2; do found[$k]=$((found[$k] + $(field shards s$k stale))); done
  ok "seed $seed without the fence: s1 $(field shards s1 stale) stale, s2 $(field shards s2 stale) stale (exit $rc)"
  if [ "$(field stale)" -gt 0 ]; then
    [ "$rc" = 1 ] || fail "stale entries found but cachesvc-verify exited $rc"
  fi
  [ "${found[1]}" -gt 0 ] && [ "${found[2]}" -gt 0 ] && break
done
[ "${found[1]}" -gt 0 ] && [ "${found[2]}" -gt 0 ] ||
  fail "without the fence stale entries did not appear on each shard (s1 ${found[1]}, s2 ${found[2]}): the race test proves nothing"
sampled=$(m cachesvc_verify_stale_total)
s1=$(grep -ac "verifier: STALE entry rs$$b@s1:" "$WORK/daemon.log" || true)
s2=$(grep -ac "verifier: STALE entry rs$$b@s2:" "$WORK/daemon.log" || true)
stop_daemon
[ "$sampled" -ge 1 ] && [ "$s1" -ge 1 ] && [ "$s2" -ge 1 ] ||
  fail "without the fence the daemon's sampler found $sampled stale entries (logged: s1 $s1, s2 $s2): not on each shard"
ok "without the fence the sampler found $sampled stale entries, on each shard (logged: s1 $s1, s2 $s2)"
ok "without the fence the verifier finds stale entries on each shard (s1 ${found[1]}, s2 ${found[2]}): the fenced run can fail"
