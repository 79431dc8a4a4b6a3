#!/usr/bin/env bash
# cluster_chaos.sh PART - the daemon ([redis] cluster = on, its invalidator, fence on) under
# resharding and failover of its private Redis Cluster (issue #17's chaos tests, CLUSTER.md
# step 5), each part on a cluster of its own. The race of race_cluster.sh runs underneath
# (pgbench writers on hot rows, readers through cachesvc with the 2 s-delayed replica among
# the daemon's replicas); once everything caught up, cachesvc-verify over every master must
# find 0 stale entries. Client errors are counted (a read the daemon answers from PostgreSQL
# while a slot is unserved is an answer, not an error) and must stay within 1 per 1000 reads.
#   reshard:  `redis-cli --cluster reshard` moves slots from bucket 0's master to another,
#             a range that includes bucket 0's slot (the hardest case: every daemon's GENS and
#             the invalidator's bookkeeping live there; a moved bucket 0 counts as lost, C3,
#             so the namespace is flushed under load) plus 300 slots past it; the daemon's
#             per-master metrics must show the MOVED it followed.
#   failover: `CLUSTER FAILOVER` on the replica of a master that does not hold bucket 0:
#             a graceful failover loses nothing, so every bucket is found kept: no flush
#             (cachesvc_invalidator_redis_data_loss_total stays 0).
#             Then, on the same cluster and daemon, kill -9 of bucket 0's master (it has a
#             replica): service continues once the replica is promoted; bucket 0 on another
#             run is always lost (C3): a flush.
#   loss:     deterministic lost invalidation on a master M not holding bucket 0: M's
#             replica R is stopped and M drops its replication link (CLIENT KILL TYPE
#             replica: what M writes from then on never reaches R; a SIGSTOP alone would not
#             do: R's socket buffers the stream and R replays it when continued); the
#             invalidator DELs a cached entry of M's (an UPDATE of its row) and the slot's
#             confirmed position passes it; M is killed -9, R continued and promoted
#             (CLUSTER FAILOVER TAKEOVER): R holds the entry whose DEL was lost. A second
#             daemon B (no invalidator, cluster_epoch_check = off: only the invalidator
#             detects) reads the key. The invalidator (daemon A) must find the bucket lost
#             (data_loss_total rises) and flush; B must stop serving the stale entry (the
#             window from the promotion is reported: CLUSTER.md R5); cachesvc-verify: 0 stale.
#   lossc5:   the same loss with no invalidator running (A stopped once the DEL was
#             confirmed) and B's own per-master check on (cluster_epoch_check, CLUSTER.md
#             C5): B must stop serving the stale entry by itself and keep bypassing; then A
#             starts again, its SYNC flushes, B caches again; cachesvc-verify: 0 stale.
#   lossneg:  the negative control of both: no invalidator and B's check off: B serves the
#             stale entry from the promoted node for 15 s and cachesvc-verify reports it;
#             then A starts again, its SYNC finds the bucket lost and flushes: B stops.
. "$(dirname "$0")/race_lib.sh"

PART=${1:-reshard}
NSC=rc$$ # race_config's namespace
case $PART in
  reshard) private_redis_cluster 3 0 ;;
  *) private_redis_cluster 3 1 ;;
esac
RACE_CLUSTER=1 race_config on
grep -q '^cluster = on' "$WORK/cs.ini" || fail "the config is not in cluster mode"
if [ "$PART" = reshard ]; then
  # a namespace whose bucket 0 is among the first 300 slots of its master's range (the
  # masters of `redis-cli --cluster create` hold 0-5460, 5461-10922, 10923-16383), so that a
  # reshard of 600 slots, taken by redis-cli in ascending order, moves it in a bounded time
  NSC=$("$PY3" -c 'import sys
def crc16(b):
    c = 0
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xffff if c & 0x8000 else (c << 1) & 0xffff
    return c
for k in range(100000):
    ns = "%s_%d" % (sys.argv[1], k)
    s = crc16(("%s:0" % ns).encode()) % 16384
    if s - max(f for f in (0, 5461, 10923) if f <= s) < 300:
        print(ns); break' "$NSC")
  sed -i "s|^namespace = .*|namespace = $NSC|" "$WORK/cs.ini"
fi

node_id() { redis-cli -p "$1" cluster myid; }
pid_of_port() {
  local i
  for i in "${!RC_PORTS[@]}"; do
    if [ "${RC_PORTS[$i]}" = "$1" ]; then cat "$WORK/rcluster/node$((i + 1))/redis.pid"; fi
  done
  return 0
}
replica_of() { redis-cli -p "$1" info replication | tr -d '\r' | sed -n 's/^slave0:.*port=\([0-9]*\),.*/\1/p'; }
is_master() { [ "$(redis-cli -p "$1" role 2>/dev/null | head -1)" = master ]; }
all_ok() {
  local p
  for p in "${RC_PORTS[@]}"; do
    redis_port_pong "$p" || continue
    rc_ok "$p" || return 1
  done
}
# the master ports, as the cluster has them now
masters_now() {
  local p
  for p in "${RC_PORTS[@]}"; do
    if redis_port_pong "$p" && is_master "$p"; then echo "$p"; fi
  done
}
bslot() { redis-cli -p "${RC_PORTS[0]}" cluster keyslot "{$NSC:$1}"; }
read_all() { for id in $(seq 1 "$HOT"); do cli get rc_hot "$id" >/dev/null 2>&1 || true; done; }
data_loss() { metric cachesvc_invalidator_redis_data_loss_total; }

# ---- the load: writers and readers until $WORK/stop ---------------------------------------
load_start() {
  local r
  rm -f "$WORK/stop" "$WORK"/reads.*
  (
    s=1
    while [ ! -e "$WORK/stop" ]; do
      "$CS_PG_BIN/pgbench" -n -h "$CS_PG_SOCKET_DIR" -p "$CS_PG_PRIMARY_PORT" -U postgres \
        -c 4 -j 2 -T 2 -R "$RATE" --random-seed="$s" -f "$WORK/update.sql" "$DB" >>"$WORK/pgbench.log" 2>&1 || exit 1
      s=$((s + 1))
    done
  ) &
  WRITERS=$!
  READERS=()
  for r in 1 2 3; do
    (
      while [ ! -e "$WORK/stop" ]; do
        for id in $(seq 1 "$HOT" | shuf); do
          [ ! -e "$WORK/stop" ] || break
          ASAN_OPTIONS=$NOLEAK_ASAN_OPTIONS "$BURST" -p "$PORT" -c 2 -n 5 -t 10000 rc_hot "$id" >>"$WORK/reads.$r" 2>>"$WORK/reads.err" ||
            echo '{"sent":10,"ok":0,"conn_fail":1}' >>"$WORK/reads.$r"
        done
      done
    ) &
    READERS+=($!)
  done
}
reads_done() { cat "$WORK"/reads.* 2>/dev/null | wc -l; }
reads_past() { [ "$(reads_done)" -ge "$1" ]; }
# load_wait_more N: until the readers completed N more bursts (bounded: 120 s)
# the read bursts (10 reads each, of the three readers together) before and after each event:
# 15 take ~7 s on a quiet machine, so the event always lands among running reads
LOAD_BURSTS=15
load_wait_more() {
  local want=$(($(reads_done) + $1))
  until_true 120 reads_past "$want" || fail "the readers stalled ($(reads_done) bursts, want $want)"
}
load_stop() {
  local p
  touch "$WORK/stop"
  wait "$WRITERS" || fail "pgbench failed: $(tail -5 "$WORK/pgbench.log")"
  for p in "${READERS[@]}"; do wait "$p"; done
  # sent, answered, errors (server errors and connection failures), from the cache
  read -r SENT ANSWERED ERRORS HITS < <(cat "$WORK"/reads.* | "$PY3" -c 'import json, sys
s = a = e = c = 0
for l in sys.stdin:
    try:
        v = json.loads(l)
    except ValueError: # a burst cut short: counted as failed, shown
        print("unparsable burst output: %r" % l, file=sys.stderr)
        v = {"sent": 10, "ok": 0, "conn_fail": 1}
    s += v["sent"]; a += v["ok"]; c += v.get("cache", 0)
    e += sum(v.get("errors", {}).values()) + 10 * v.get("conn_fail", 0)
print(s, a, e, c)')
  echo "load: $SENT reads sent, $ANSWERED answered ($HITS from the cache), $ERRORS errors"
  [ "$((ERRORS * 1000))" -le "$SENT" ] || fail "$ERRORS client errors for $SENT reads: more than 1 in 1000 ($(cat "$WORK"/reads.* | grep -v '"errors":{}' | head -5))"
  # (hits during the load are few: the writers invalidate the 12 hot rows hundreds of times
  # a second and fills through the delayed replica are refused; what is judged is what the
  # race leaves cached, by cachesvc-verify after the catch-up, which must check every key)
}
# catch_up WHAT: everything caught up, every hot key read, cachesvc-verify: 0 stale
catch_up() {
  until_true 60 all_ok || fail "$1: the cluster is not ok"
  settle
  # and the daemon caught up too: every generation read with its definition (a master that
  # lost bucket 0's keys lost the query's definition record with them: the daemon records it
  # again with a bump, and reads before that bump landed are served, not stored)
  daemon_healthy() { [ "$(http_status /healthz)" = 200 ]; }
  until_true 30 daemon_healthy || fail "$1: the daemon is not healthy after the catch-up: $(curl -s "http://127.0.0.1:$APORT/healthz")"
  read_all
  read_all
  local stale checked
  stale=$(verify_stale)
  checked=$(verified_count)
  [ "$checked" -ge 1 ] || fail "$1: the verifier checked nothing: $(cat "$WORK/verify.json") $(cat "$WORK/verify.err")"
  [ "$stale" = 0 ] || fail "$1: $stale stale entries after the catch-up: $(cat "$WORK/verify.json")"
  ok "$1: after the catch-up cachesvc-verify checked $checked entries over the masters: 0 stale"
}

case_reshard() {
  start_daemon "$WORK/cs.ini"
  until_true 30 streaming || fail "the invalidator never streamed"
  read_all
  local s0 from to first n t0 moved ask
  s0=$(bslot 0)
  from=$(rc_master_of "$s0")
  to=$(masters_now | grep -vx "$from" | head -1)
  # redis-cli takes the source's slots in ascending order: move its slots up to bucket 0's
  # and 300 more (bounded by what it holds)
  first=$(redis-cli -p "$from" cluster slots | paste - - - - - - | awk -v p="$from" '$4 == p { print $1 }' | sort -n | head -1)
  n=$((s0 - first + 301))
  [ "$n" -le 600 ] || fail "bucket 0's slot $s0 is $((s0 - first)) slots into its master's range"
  echo "bucket 0 is slot $s0 on master $from (first slot $first): moving $n slots to $to"
  load_start
  load_wait_more $LOAD_BURSTS
  local dl0
  dl0=$(data_loss)
  t0=$SECONDS
  local before
  before=$(reads_done)
  timeout 100 redis-cli --cluster reshard "127.0.0.1:$from" --cluster-from "$(node_id "$from")" \
    --cluster-to "$(node_id "$to")" --cluster-slots "$n" --cluster-yes >"$WORK/reshard.log" 2>&1 ||
    fail "redis-cli --cluster reshard failed: $(tail -3 "$WORK/reshard.log")"
  [ "$(rc_master_of "$s0")" = "$to" ] || fail "bucket 0's slot $s0 did not move to $to"
  ok "reshard of $n slots (bucket 0's among them) under load took $((SECONDS - t0)) s; $(($(reads_done) - before)) read bursts completed meanwhile"
  load_wait_more $LOAD_BURSTS
  load_stop
  ok "reads during the reshard: $SENT sent, $ERRORS errors (at most 1 in 1000)"
  moved=$(http /metrics | awk '/^cachesvc_redis_cluster_node_moved_total\{client="cache"/ { s += $2 } END { print s + 0 }')
  ask=$(http /metrics | awk '/^cachesvc_redis_cluster_node_ask_total\{/ { s += $2 } END { print s + 0 }')
  # the daemon's cache client learnt the new map: by a MOVED when one of its commands reached
  # a moved slot first, else by its periodic refresh (every 10 s; which comes first depends
  # on the timer's phase: a CI run saw none; MOVED itself is redis_cluster_route's (b))
  until_true 30 daemon_slot_on "$s0" "$to" ||
    fail "the daemon's map does not put bucket 0's slot $s0 on $to: $(cli --json show slots | grep -F "\"node\"" | head -5)"
  ok "the daemon's map has bucket 0's slot $s0 on $to; it followed $moved MOVED (cache client) and $ask ASK (both clients)"
  catch_up reshard
  echo "invalidator data-loss resyncs during the reshard: $(($(data_loss) - dl0)) (bucket 0 moved: C3)"
  # review V9b: the open slots the invalidator watched were closed cleanly: no loss, every
  # mark cleared
  [ "$(metric cachesvc_invalidator_open_slot_losses_total)" = 0 ] ||
    fail "a clean reshard counted as an open-slot loss: $(grep 'review V9b' "$WORK/cachesvc.log" | head -3)"
  until_true 30 metric_is cachesvc_invalidator_open_slot_marks 0 ||
    fail "open-slot marks left after the reshard: $(metric cachesvc_invalidator_open_slot_marks)"
  ok "open slots watched: $(metric cachesvc_invalidator_open_slot_marked_total) buckets marked while their slot moved, 0 losses, every mark cleared"
}

# daemon_slot_on SLOT PORT: the daemon's cache client (SHOW slots) serves SLOT from 127.0.0.1:PORT
daemon_slot_on() {
  cli --json show slots | "$PY3" -c 'import json, sys
s, node = int(sys.argv[1]), "127.0.0.1:" + sys.argv[2]
ok = any(r["first"] <= s <= r["last"] and r["node"] == node for r in map(json.loads, sys.stdin))
sys.exit(0 if ok else 1)' "$1" "$2"
}

case_failover() {
  start_daemon "$WORK/cs.ini"
  until_true 30 streaming || fail "the invalidator never streamed"
  read_all
  local m0 m r t0
  m0=$(rc_master_of "$(bslot 0)")
  m=$(masters_now | grep -vx "$m0" | head -1)
  r=$(replica_of "$m")
  [ -n "$r" ] || fail "master $m has no replica"
  load_start
  load_wait_more $LOAD_BURSTS
  t0=$SECONDS
  local before
  before=$(reads_done)
  # a manual failover the master cannot finish in time (the replica behind on a loaded
  # machine) is abandoned by Redis: ask again, up to 3 times
  local k
  for k in 1 2 3; do
    redis-cli -p "$r" cluster failover >/dev/null || fail "CLUSTER FAILOVER on $r refused"
    if until_true 15 is_master "$r"; then break; fi
  done
  is_master "$r" || fail "the replica $r was not promoted"
  until_true 30 all_ok || fail "the cluster is not ok after the failover"
  ok "CLUSTER FAILOVER of master $m (not bucket 0's) to its replica $r under load: $((SECONDS - t0)) s; $(($(reads_done) - before)) read bursts completed meanwhile"
  load_wait_more $LOAD_BURSTS
  load_stop
  ok "reads during the failover: $SENT sent, $ERRORS errors"
  catch_up failover
  [ "$(data_loss)" = 0 ] || fail "a graceful failover lost nothing, yet the invalidator took the data-loss path $(data_loss) times"
  ok "no data-loss resync: every bucket of the failed-over master was found kept"
}

# case_kill: on the daemon case_failover left running (its failover touched another master)
case_kill() {
  read_all
  local m r t0 pid
  m=$(rc_master_of "$(bslot 0)")
  r=$(replica_of "$m")
  pid=$(pid_of_port "$m")
  [ -n "$r" ] && [ -n "$pid" ] || fail "master $m: no replica or pid"
  load_start
  load_wait_more $LOAD_BURSTS
  local before
  before=$(reads_done)
  kill -9 "$pid"
  t0=$SECONDS
  until_true 60 is_master "$r" || fail "the replica $r was not promoted"
  until_true 60 all_ok || fail "the cluster is not ok after the kill"
  ok "kill -9 of bucket 0's master $m under load: replica $r promoted, cluster ok after $((SECONDS - t0)) s; $(($(reads_done) - before)) read bursts completed meanwhile"
  load_wait_more $LOAD_BURSTS
  load_stop
  ok "reads during the kill: $SENT sent, $ERRORS errors"
  catch_up kill
  [ "$(data_loss)" -ge 1 ] || fail "bucket 0 failed over to another run, yet no data-loss resync (C3)"
  ok "the invalidator took the data-loss path ($(data_loss)): bucket 0 on another run (C3)"
}

# ---- loss / lossneg -------------------------------------------------------------------------
slot_flushed_past() { # LSN: the slot's confirmed position (W of the next SYNC) passed LSN
  [ "$(primary postgres -c "SELECT confirmed_flush_lsn >= '$1'::pg_lsn FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = t ]
}
bcli() { "$CLI" -p "$BPORT" "$@"; }
bsrc() { bcli --json get rc_hot "$ID" | sed -n 's/^{"source":"\([a-z]*\)".*/\1/p'; }
brows() { bcli --json get rc_hot "$ID" | sed -n 's/.*"rows":\(.*\)}$/\1/p'; }
# B serves the stale value (OLD) from the cache
b_stale() { local j; j=$(bcli --json get rc_hot "$ID" 2>/dev/null); [[ $j == '{"source":"cache"'* ]] && [[ $j == *"$OLD"* ]]; }
b_not_stale() { local j; j=$(bcli --json get rc_hot "$ID" 2>/dev/null); [[ $j == '{"source":'* ]] && ! b_stale; }
b_filled() { bcli get rc_hot "$ID" >/dev/null 2>&1 && [ "$(bsrc)" = cache ]; }

case_loss() {
  local mode=$1 neg=false
  [ "$mode" = on ] || neg=true # the invalidator stopped before the loss
  # daemon A: the invalidator (and serving); daemon B: serving only, no invalidator
  start_daemon "$WORK/cs.ini" a
  until_true 30 streaming || fail "the invalidator never streamed"
  local apid=$DAEMON_PID
  BPORT=$(free_port)
  local bap
  bap=$(free_port)
  sed -e "s|^listen = .*|listen = 127.0.0.1:$BPORT|; s|^admin_listen = .*|admin_listen = 127.0.0.1:$bap|" \
    -e "s|^unix_socket = .*|unix_socket = $WORK/b.sock|" -e '/^\[invalidator\]/,$d' "$WORK/cs.ini" >"$WORK/b.ini"
  if [ "$mode" != c5 ]; then
    sed -i 's|^cluster = on$|cluster = on\ncluster_epoch_check = off|' "$WORK/b.ini"
  fi
  local aport=$PORT
  PORT=$BPORT start_daemon "$WORK/b.ini" b
  local bpid=$DAEMON_PID
  DAEMON_PID=$apid
  # a key in a bucket whose master does not hold bucket 0
  local m0 m r rpid mpid b id
  m0=$(rc_master_of "$(bslot 0)")
  ID=
  for id in $(seq 1 "$HOT"); do
    b=$(bucket_of "$id" rc_hot)
    m=$(rc_master_of "$(bslot "$b")")
    if [ "$b" != 0 ] && [ "$m" != "$m0" ]; then ID=$id; break; fi
  done
  [ -n "$ID" ] || fail "no hot key outside bucket 0's master"
  r=$(replica_of "$m")
  mpid=$(pid_of_port "$m")
  rpid=$(pid_of_port "$r")
  [ -n "$r" ] && [ -n "$mpid" ] && [ -n "$rpid" ] || fail "master $m: no replica or pid"
  OLD=$(primary "$DB" -c "SELECT v FROM hot WHERE id = $ID")
  OLD="[$ID,$OLD]"
  until_true 20 b_filled || fail "B could not cache rc_hot $ID"
  b_stale || fail "B does not serve the cached value $OLD: $(brows)"
  local key
  key=$(redis-cli -p "$m" --scan --pattern "{$NSC:$b}:e:rc_hot:*:$ID" | head -1)
  [ -n "$key" ] || fail "no entry of rc_hot $ID on $m: $(redis-cli -p "$m" --scan --pattern "{$NSC:$b}:*" | head -20)"
  # the entry replicated (a replica answers MOVED to a keyed read; SCAN names no key)
  on_replica() { [ "$(redis-cli -p "$r" --scan --pattern "$key")" = "$key" ]; }
  until_true 30 on_replica || fail "the entry $key never reached the replica $r"
  echo "rc_hot $ID: bucket $b, entry $key on master $m (bucket 0 on $m0), replica $r"
  # R stops hearing M: stopped, and its link dropped by M (what M writes from now on is in
  # M's backlog only)
  CLEANUPS=("kill -CONT $rpid" "${CLEANUPS[@]}")
  kill -STOP "$rpid"
  redis-cli -p "$m" client kill type replica >/dev/null
  local lsn
  lsn=$(commit_lsn "UPDATE hot SET v = v + 1000 WHERE id = $ID")
  wait_invalidated "$lsn"
  until_true 30 slot_flushed_past "$lsn" || fail "the slot's confirmed position never passed $lsn"
  [ "$(redis-cli -p "$m" exists "$key")" = 0 ] || fail "the invalidator did not DEL $key on $m"
  ok "UPDATE of rc_hot $ID at $lsn: its entry deleted on $m (not on its stopped replica), the slot confirmed past it"
  local dl0
  dl0=$(data_loss)
  if [ "$neg" = true ]; then
    stop_daemon "$apid" || true # the detection off: no invalidator runs from here
    ok "negative control: daemon A (the only invalidator) stopped"
  fi
  local found0
  found0=$(grep -c "names another Redis run" "$WORK/b.log" || true)
  kill -9 "$mpid"
  kill -CONT "$rpid"
  local t0=$SECONDS
  takeover() { is_master "$r" || { redis-cli -p "$r" cluster failover takeover >/dev/null 2>&1; sleep 1; is_master "$r"; }; }
  until_true 60 takeover || fail "the replica $r was not promoted"
  until_true 60 all_ok || fail "the cluster is not ok after the takeover"
  [ "$(redis-cli -p "$r" exists "$key")" = 1 ] || fail "the promoted $r does not hold $key: the DEL was not lost, the test proves nothing"
  ok "master $m killed, replica $r promoted after $((SECONDS - t0)) s: it holds $key, whose DEL was lost"
  local t1=$SECONDS
  if [ "$mode" = c5 ]; then
    # no invalidator: B's own check of the promoted master's epoch copy finds it (B may
    # bypass at first anyway, while its slot map does not have R yet: so wait for the
    # finding, not for a read that is not stale)
    b_found() { [ "$(grep -c "names another Redis run" "$WORK/b.log")" -gt "$found0" ]; }
    until_true 60 b_found || fail "C5: with no invalidator B's check never found the promoted master's epoch copy foreign"
    local window=$((SECONDS - t1)) k
    for k in $(seq 1 20); do
      b_stale && fail "C5: B served the stale entry after its check found the loss ($k reads after)"
      sleep 0.2
    done
    ok "C5: with no invalidator running B's check found the loss $window s after the promotion; 20 reads over 4 s since: none stale"
    PORT=$aport start_daemon "$WORK/cs.ini" a2
    until_true 30 streaming || fail "A's invalidator never streamed again"
    until_true 60 b_filled || fail "after A's resynchronisation B never cached rc_hot $ID again"
    b_stale && fail "B cached the stale value again"
    [ "$(data_loss)" -ge 1 ] || fail "A's restart found no lost bucket"
    ok "daemon A started again: its resynchronisation flushed (data loss seen), B caches again, fresh"
    catch_up lossc5
    return
  fi
  if [ "$neg" = true ]; then
    # B reads the stale entry from the promoted node: up to 20 s of reads, every one that the
    # cache answers is stale, and at least one is (B bypasses until its map has R ready)
    local served=0 fresh=0 j
    while [ $((SECONDS - t1)) -lt 15 ]; do
      j=$(bcli --json get rc_hot "$ID" 2>/dev/null || true)
      if [[ $j == '{"source":"cache"'* ]]; then
        if [[ $j == *"$OLD"* ]]; then served=$((served + 1)); else fresh=$((fresh + 1)); fi
      fi
      sleep 0.2
    done
    [ "$served" -ge 1 ] && [ "$fresh" = 0 ] ||
      fail "negative control: without the detection B served the stale entry $served times, a fresh one $fresh times"
    ok "negative control: without the invalidator's detection B served the stale entry $served times in 15 s (C5/R5)"
    settle_noinv
    # no invalidator runs: its position is frozen while other tests' WAL moves the primary's,
    # so the verifier would skip every entry as "invalidator behind"; say it passed everything
    redis-cli -c -p "$r" set "{$NSC:0}:inv:pos" FFFFFFFFFFFFFFFF >/dev/null
    local out vrc=0
    out=$("$VERIFY" -c "$WORK/b.ini" --query rc_hot --json 2>"$WORK/verify.err") || vrc=$?
    echo "$out" >"$WORK/verify.json"
    [ "$vrc" = 1 ] && [ "$("$PY3" -c 'import json,sys; v=json.load(sys.stdin); print(v.get("total", v)["stale"])' <<<"$out")" -ge 1 ] ||
      fail "negative control: cachesvc-verify did not report the stale entry (exit $vrc): $out $(cat "$WORK/verify.err")"
    ok "negative control: cachesvc-verify reports the stale entry"
    # the detection back: A's SYNC finds the bucket lost, flushes, B stops serving it
    PORT=$aport start_daemon "$WORK/cs.ini" a2
    until_true 30 streaming || fail "A's invalidator never streamed again"
    until_true 60 b_not_stale || fail "after A's restart B still serves the stale entry"
    ok "daemon A started again: B stopped serving the stale entry $((SECONDS - t1)) s after the promotion"
    [ "$(data_loss)" -ge 1 ] || fail "A's restart found no lost bucket"
    catch_up lossneg
    return
  fi
  # the invalidator (only it: B's check is off) finds the bucket lost and flushes; B may
  # bypass at first anyway (its slot map without R), so wait for the finding
  inv_found() { [ "$(data_loss)" -gt "$dl0" ]; }
  until_true 60 inv_found || fail "the invalidator did not take the data-loss path in 60 s ($dl0 -> $(data_loss))"
  local window=$((SECONDS - t1)) k
  until_true 30 b_not_stale || fail "B still serves the stale entry after the invalidator's flush"
  for k in $(seq 1 20); do
    b_stale && fail "B served the stale entry after the flush ($k reads after)"
    sleep 0.2
  done
  ok "the invalidator found the bucket lost and flushed ($dl0 -> $(data_loss) data-loss resyncs) $window s after the promotion; B's reads since: none stale"
  catch_up loss
  kill -0 "$bpid" || fail "daemon B exited"
}
# settle_noinv: the replicas caught up (no invalidator to wait for)
settle_noinv() { wait_replicas; }

case $PART in
  reshard) case_reshard ;;
  failover)
    case_failover
    case_kill
    ;;
  loss) case_loss on ;;
  lossc5) case_loss c5 ;;
  lossneg) case_loss neg ;;
  *) fail "unknown part $PART" ;;
esac
