#!/usr/bin/env bash
# cluster_read.sh PART [PART...] - the daemon's read path on a Redis Cluster (CLUSTER.md step
# 3b), on a private 3-master cluster, the daemon with its invalidator ([redis] cluster = on);
# several PARTs run one after the other on that one cluster (the dispatch at the end).
#   read:   misses then hits; every filled entry is in its bucket's slot ({<ns>:<b>} tag) on the
#           master CLUSTER SLOTS names for that slot; an MGET of keys on the 3 masters answers
#           every item, in order, from the cache; an admin INVALIDATE of one key; the verifier
#           sampler checks cluster entries (0 stale). Negative control: the same config with
#           cluster = off against one master: not every key cached, and the reason in the log
#           (the generations poll refused CROSSSLOT, keys MOVED).
#   inval:  UPDATE, DELETE and TRUNCATE reach the cached entries on every master; then a race:
#           writers UPDATE rows while readers read through the delayed replica; once the
#           invalidator confirmed the last write, every cached row equals the primary's (0
#           stale). Negative control: a second daemon with fences and the invalidator off on
#           the same cluster keeps serving the pre-UPDATE value.
#   repair: a bucket whose generation copy was set back (a fan-out cut short): its first fill
#           is refused, the daemon repairs the bucket from bucket 0 and the next fill stores.
#           Negative control: cluster_repair = off: the bucket keeps refusing fills.
#           Also: a reload that changes the query bumps it on bucket 0 and every bucket follows.
#           (registered together as cluster_repair: repair, then repairneg on the same cluster)
#   down:   the master of a cached key's bucket stops answering (SIGSTOP): every key is still
#           answered (from PostgreSQL), none hangs; once it is back every key caches again. No
#           negative control (the bypass has no switch): the guarantee is "no hang, no error".
#   slotless: a master of no slot (one the cluster keeps listing after its replica took over,
#           only suspected failed) is killed: every key still a hit (a CI failure: every read
#           bypassed the cache until the cluster flagged it failed). Negative control: the same
#           with the killed master owning one (empty) slot: every read bypasses.
. "$(dirname "$0")/daemon_lib.sh"

PART=${1:-read}
users_db 60 "CREATE PUBLICATION cs_pub FOR TABLE users;"
private_redis_cluster 3 0
rc() { redis-cli -c -p "${RC_PORTS[0]}" "$@"; }

# cluster_config FILE [cluster on|off] [fence] [invalidator on|off] [extra [redis] line]
cluster_config() {
  local f=$1 cl=${2:-on} fence=${3:-on} inv=${4:-on} extra=${5:-}
  FENCE=$fence EXTRA_REDIS="namespace = $NS" write_config "$f" ${REPLICAS:-replica1}
  if [ "$cl" = on ]; then
    sed -i "s|^url = .*|url = redis://127.0.0.1\ncluster = on\nnodes = $RC_NODES\n$extra|" "$f"
  else # one master, as a single Redis
    sed -i "s|^url = .*|url = redis://127.0.0.1:${RC_PORTS[0]}/0|" "$f"
  fi
  user_query cu >>"$f"
  if [ "$inv" = on ]; then invalidator_section >>"$f"; fi
  return 0
}
replica1_caught_up() {
  local lsn
  lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  until_true 30 replica_caught_up 1 "$lsn" || fail "replica1 did not replay $lsn"
}
gen_of() { local g; g=$(rc get "{$NS:$1}:g:cu"); echo "${g:-0}"; }
g0() { gen_of 0; }
entry_key() { echo "{$NS:$(bucket_of "$1")}:e:cu:$(g0):$1"; }

case_read() {
  EXTRA_SERVICE="verify_interval = 300ms" cluster_config "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  local id k slot p ports=() out n
  for id in $(seq 1 12); do
    [ "$(src cu "$id")" != cache ] || fail "(a) cu $id a hit before any fill"
    fill cu "$id"
    k=$(entry_key "$id")
    slot=$(rc cluster keyslot "$k")
    [ "$slot" = "$(rc cluster keyslot "{$NS:$(bucket_of "$id")}")" ] || fail "(a) $k is not in its bucket's slot"
    p=$(port_of_slot "$slot")
    [ "$(redis-cli -p "$p" exists "$k")" = 1 ] || fail "(a) $k is not on the master of slot $slot ($p)"
    ports+=("$p")
  done
  [ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" = 3 ] || fail "(a) entries 1-12 are not spread over the 3 masters: ${ports[*]}"
  ok "(a) misses, then hits; 12 entries each in its bucket's slot, on its master (all 3 masters)"
  # what an operator sees: SHOW slots as the cluster has it, every master up in /metrics for
  # both of the daemon's clients (the cache connection and the invalidator)
  out=$(cli --json show slots)
  local want got
  want=$(redis-cli -p "${RC_PORTS[0]}" cluster slots | paste - - - - - - | awk '{ print $1, $2, $3 ":" $4 }' | sort -n)
  got=$(echo "$out" | "$PY3" -c 'import json, sys
for l in sys.stdin:
    r = json.loads(l)
    print(r["first"], r["last"], r["node"], r["ready"])' | sort -n)
  [ "$(echo "$got" | awk '{ print $1, $2, $3 }')" = "$want" ] || fail "(a) SHOW slots: $got, CLUSTER SLOTS: $want"
  ! echo "$got" | grep -q ' False$' || fail "(a) SHOW slots: a master not ready: $got"
  for c in cache invalidator; do
    [ "$(http /metrics | grep -c "^cachesvc_redis_cluster_node_up{client=\"$c\",node=\"[^\"]*\"} 1$")" = 3 ] ||
      fail "(a) /metrics: want 3 masters up for $c: $(http /metrics | grep "node_up{client=\"$c\"")"
  done
  # the invalidator's retry queue (review V2) and stream pauses (review 10 F4) are exported
  out=$(http /metrics)
  for m in 'cachesvc_invalidator_retry_queue_commands 0' 'cachesvc_invalidator_retry_overflows_total 0' \
    'cachesvc_invalidator_paused{reason="commands"} 0' 'cachesvc_invalidator_pauses_total 0'; do
    grep -qxF "$m" <<<"$out" || fail "(a) /metrics: no \"$m\": $(echo "$out" | grep -E 'invalidator_(retr|paus|redis_commands)')"
  done
  grep -q '^cachesvc_invalidator_redis_commands_in_flight ' <<<"$out" || fail "(a) /metrics: no commands in flight"
  ok "(a) SHOW slots names the masters of CLUSTER SLOTS ($(echo "$got" | wc -l) ranges, all ready); 3 masters up in /metrics for the cache and the invalidator"
  out=$(cli --json mget --each cu 1 2 3 4 5 6 7 8 9 10 11 12)
  n=$(echo "$out" | grep -c '"source":"cache"' || true)
  [ "$n" = 12 ] || fail "(a) MGET across slots: $n of 12 items from the cache: $out"
  [ "$(echo "$out" | grep -o '"user [0-9]*"' | tr -d '"' | paste -sd,)" = "$(seq 1 12 | sed 's/^/user /' | paste -sd,)" ] ||
    fail "(a) MGET answers out of order: $out"
  metric_ge cachesvc_redis_cluster_mget_parts_total 3 || fail "(a) the MGET was not split per slot"
  ok "(a) MGET of 12 keys on 3 masters: every item a hit, in order, one Redis MGET per slot"
  # admin INVALIDATE of one key: C_INVAL in its bucket, then the routed DEL
  k=$(entry_key 3)
  cli invalidate cu 3 >/dev/null || fail "(a) admin INVALIDATE cu 3 failed"
  [ "$(rc exists "$k")" = 0 ] || fail "(a) $k survived its admin INVALIDATE"
  [ -n "$(rc get "{$NS:$(bucket_of 3)}:f:cu:3")" ] || fail "(a) no fence for cu 3 in its bucket"
  [ "$(rc exists "$(entry_key 4)")" = 1 ] || fail "(a) admin INVALIDATE cu 3 removed cu 4"
  ok "(a) admin INVALIDATE of one key: its entry deleted and its fence set in its bucket"
  # the verifier sampler walks the buckets node by node ({<ns>:*}:e:<q>:<g>:*)
  until_true 30 metric_ge cachesvc_verify_checked_total 3 ||
    fail "(a) the sampler checked $(metric cachesvc_verify_checked_total) entries on the cluster (skipped: $(metric cachesvc_verify_skipped_total))"
  metric_is cachesvc_verify_stale_total 0 || fail "(a) the sampler found stale entries"
  ok "(a) the verifier sampler checked $(metric cachesvc_verify_checked_total) cluster entries against the primary: 0 stale"
  stop_daemon
  # negative control: no routing (cluster = off, one master as a single Redis)
  rc flushall >/dev/null 2>&1
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" flushall >/dev/null; done
  cluster_config "$WORK/neg.ini" off off off
  start_daemon "$WORK/neg.ini" neg
  for _ in 1 2 3; do cli mget --each cu $(seq 1 12) >/dev/null 2>&1; done
  out=$(cli --json mget --each cu $(seq 1 12))
  [ "$(echo "$out" | grep -c '"rows"')" = 12 ] || fail "(a) negative control: not every item answered: $out"
  n=$(echo "$out" | grep -c '"source":"cache"' || true)
  [ "$n" -lt 12 ] || fail "(a) negative control: without routing all 12 keys were still cached"
  # the reason (review R8): a daemon that does not route sends keys of several slots to one
  # master: the generations poll (one script over the epoch and every generation key) is
  # refused CROSSSLOT, and keys of other masters' slots MOVED; the named reason must be seen
  local why
  metric_ge cachesvc_redis_gens_errors_total 1 || fail "(a) negative control: no generations poll failed"
  why=$(grep -o 'CROSSSLOT\|MOVED [0-9]*' "$WORK/neg.log" | sort | uniq -c | tr '\n' ' ')
  [ -n "$why" ] || fail "(a) negative control: no CROSSSLOT or MOVED in the daemon's log: $(tail -5 "$WORK/neg.log")"
  ok "(a) negative control: without cluster routing $n of 12 keys cached, the cache refused: $why"
}

case_inval() {
  REPLICAS="replica1 replica2" cluster_config "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  local id lsn bad=0 n
  for id in $(seq 1 12); do fill cu "$id"; done
  lsn=$(commit_lsn "UPDATE users SET name = 'new ' || id WHERE id <= 6")
  wait_invalidated "$lsn"
  wait_replicas
  for id in $(seq 1 6); do
    [ "$(rows cu "$id")" = '[["'"$id"'","new '"$id"'"]]' ] || [ "$(rows cu "$id")" = '[['"$id"',"new '"$id"'"]]' ] ||
      fail "(b) cu $id after UPDATE: $(rows cu "$id")"
  done
  lsn=$(commit_lsn "DELETE FROM users WHERE id = 7")
  wait_invalidated "$lsn"
  wait_replicas
  [ "$(rows cu 7)" = '[]' ] || fail "(b) cu 7 after DELETE: $(rows cu 7)"
  for id in 8 9; do fill cu "$id"; done
  lsn=$(commit_lsn "TRUNCATE users")
  wait_invalidated "$lsn"
  wait_replicas
  for id in 8 9 10; do
    [ "$(rows cu "$id")" = '[]' ] || fail "(b) cu $id after TRUNCATE: $(rows cu "$id")"
  done
  ok "(b) UPDATE, DELETE and TRUNCATE reached the entries on the cluster"

  # the race: writers, readers through the delayed replica (2s behind: its reads fill with
  # data the invalidator already fenced)
  primary "$DB" -c "INSERT INTO users SELECT i, 'r0 ' || i FROM generate_series(1, 40) i" >/dev/null
  (for round in $(seq 1 12); do
    primary "$DB" -c "UPDATE users SET name = 'r$round ' || id WHERE id % 3 = $((round % 3))" >/dev/null
    sleep 0.2
  done) &
  local wpid=$!
  (for round in $(seq 1 8); do cli mget --each cu $(seq 1 40) >/dev/null 2>&1; sleep 0.2; done) &
  local rpid=$!
  wait "$wpid"
  wait "$rpid"
  lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  wait_invalidated "$lsn"
  wait_replicas # the fills below read data past every fence
  # every key read once (entries that survived the race are hits; the keys the race left
  # uncached are filled now: when the last rounds invalidated every key, a single read found
  # nothing cached and the check had nothing to judge), then read again; every cached item
  # of both reads compared with the primary
  cli --json mget --each cu $(seq 1 40) >"$WORK/race0.json" 2>&1
  cli --json mget --each cu $(seq 1 40) >"$WORK/race.json" 2>&1
  primary "$DB" -c "SELECT name FROM users ORDER BY id" >"$WORK/race.pg"
  bad=$("$PY3" - "$WORK/race0.json" "$WORK/race.json" "$WORK/race.pg" <<'PY'
import json, sys
want = [l.rstrip("\n") for l in open(sys.argv[3])]
bad, counts = 0, []
for f in sys.argv[1:3]:
    got = [json.loads(l) for l in open(f) if l.strip()]
    counts.append(len(got))
    for i, (g, w) in enumerate(zip(got, want)):
        if g.get("source") == "cache" and json.dumps(w) not in json.dumps(g.get("rows")):
            bad += 1
            print("stale: cu %d cache %s primary %s" % (i + 1, g.get("rows"), w), file=sys.stderr)
print(bad if counts == [40, 40] and len(want) == 40 else "count %s %d" % (counts, len(want)))
PY
)
  [ "$bad" = 0 ] || fail "(b) race: $bad of 40 keys stale after the invalidator caught up"
  n=$(grep -c '"source":"cache"' "$WORK/race.json" || true)
  [ "$n" -ge 1 ] || fail "(b) race: no key was served from the cache at the end: nothing checked"
  ok "(b) race (12 UPDATE rounds, readers on the 2s-delayed replica): 0 stale of $n cached keys (40 read)"
  # and cachesvc-verify, which finds the entries itself (every master SCANned), agrees
  local vout vrc=0 vc vo vs
  vout=$("$CS_BUILD/cachesvc/cachesvc-verify" -c "$WORK/cs.ini" --json 2>"$WORK/verify.err") || vrc=$?
  [ $vrc = 0 ] || fail "(b) cachesvc-verify on the cluster: exit $vrc: $vout $(cat "$WORK/verify.err")"
  read -r vc vo vs < <(echo "$vout" | "$PY3" -c 'import json,sys; v=json.load(sys.stdin); print(v["checked"], v["ok"], v["stale"])')
  [ "$vs" = 0 ] && [ "$vc" -ge 10 ] && [ "$vo" -ge 1 ] || fail "(b) cachesvc-verify: checked $vc, ok $vo, stale $vs: $vout"
  ok "(b) cachesvc-verify over the 3 masters: $vc entries checked, $vo ok, 0 stale"

  # negative control: a daemon with no fences and no invalidator fills the same keys, then
  # an UPDATE nobody invalidates for it stays served
  stop_daemon
  PORT=$(free_port) APORT=$(free_port)
  cluster_config "$WORK/neg.ini" on off off
  start_daemon "$WORK/neg.ini" neg
  primary "$DB" -c "INSERT INTO users VALUES (41, 'old 41')" >/dev/null
  replica1_caught_up
  fill cu 41
  primary "$DB" -c "UPDATE users SET name = 'new 41' WHERE id = 41" >/dev/null
  replica1_caught_up # a miss now would read 'new 41'
  rows cu 41 | grep -q "old 41" || fail "(b) negative control: without an invalidator the old value was not served: $(rows cu 41)"
  # cachesvc-verify reports it (no invalidator runs now: the position says it passed
  # everything, so the verifier judges every entry)
  redis-cli -c -p "${RC_PORTS[0]}" set "{$NS:0}:inv:pos" FFFFFFFFFFFFFFFF >/dev/null
  vrc=0
  vout=$("$CS_BUILD/cachesvc/cachesvc-verify" -c "$WORK/neg.ini" --query cu --json 2>"$WORK/verify.err") || vrc=$?
  [ $vrc = 1 ] && [ "$(echo "$vout" | "$PY3" -c 'import json,sys; print(json.load(sys.stdin)["stale"])')" -ge 1 ] ||
    fail "(b) negative control: cachesvc-verify did not report the stale entry of cu 41 (exit $vrc): $vout $(cat "$WORK/verify.err")"
  ok "(b) negative control: without the invalidator the UPDATEd row stays stale in the cache"
}

case_repair() {
  local on=${1:-true}
  cluster_config "$WORK/cs.ini" on on on "cluster_repair = $on"
  start_streaming "$WORK/cs.ini"
  local id=5 b g n
  b=$(bucket_of $id)
  [ "$b" != 0 ] || fail "key $id is in bucket 0"
  cli invalidate cu >/dev/null || fail "admin INVALIDATE failed"
  g=$(g0)
  [ "$(gen_of "$b")" = "$g" ] || fail "(c) the admin bump's fan-out did not reach bucket $b ($(gen_of "$b") != $g)"
  # the fan-out cut short: bucket b behind bucket 0, its generation and its query fence
  local qf0
  qf0=$(rc get "{$NS:0}:qf:cu")
  [ -n "$qf0" ] || fail "(c) no query fence in bucket 0 after the bump"
  rc set "{$NS:$b}:g:cu" $((g - 1)) >/dev/null
  rc del "{$NS:$b}:qf:cu" >/dev/null
  # the daemon knows g (pub/sub): its fill of bucket b is refused (g_b < g)
  cli get cu $id >/dev/null
  sleep 0.5
  n=0
  for _ in 1 2 3 4 5 6; do
    cli get cu $id >/dev/null 2>&1
    sleep 0.3
    if [ "$(src cu $id)" = cache ]; then n=1; break; fi
  done
  if [ "$on" = true ]; then
    [ "$n" = 1 ] || fail "(c) bucket $b never filled after its repair (g_b = $(gen_of "$b"), g_0 = $g)"
    [ "$(gen_of "$b")" = "$g" ] || fail "(c) bucket $b not repaired"
    # the repair carries bucket 0's query fence with the generation (CLUSTER.md (e'))
    [ "$(rc get "{$NS:$b}:qf:cu")" \> "$qf0" ] || [ "$(rc get "{$NS:$b}:qf:cu")" = "$qf0" ] ||
      fail "(c) bucket $b repaired with query fence '$(rc get "{$NS:$b}:qf:cu")' below bucket 0's $qf0"
    metric_ge cachesvc_redis_cluster_repairs_total 1 || fail "(c) no repair counted"
    ok "(c) a bucket behind bucket 0 refused a fill, was repaired (g_b = $g) and then filled"
    # a reload that changes the query bumps it on bucket 0 and fans out to every bucket
    sed -i 's/^sql = SELECT id, name FROM users WHERE id = \$1$/sql = SELECT id, name FROM users WHERE id = $1 AND true/' "$WORK/cs.ini"
    cli reload >/dev/null || fail "(c) reload refused"
    until_true 10 bash -c "[ \"\$(redis-cli -c -p ${RC_PORTS[0]} get '{$NS:0}:g:cu')\" -gt $g ]" || fail "(c) the reload did not bump the query"
    g=$(g0)
    sleep 0.5
    for b in 1 17 64 100 128 200 254 255; do
      [ "$(gen_of "$b")" = "$g" ] || fail "(c) the reload bump did not reach bucket $b ($(gen_of "$b") != $g)"
    done
    ok "(c) a reload's bump reached every bucket sampled (g = $g)"
  else
    [ "$n" = 0 ] || fail "(c) negative control: the bucket filled without a repair"
    [ "$(gen_of "$b")" = $((g - 1)) ] || fail "(c) negative control: bucket $b changed"
    ok "(c) negative control: with cluster_repair = off bucket $b keeps refusing fills"
  fi
}

case_down() {
  cluster_config "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  local id p k out n
  for id in $(seq 1 9); do fill cu "$id"; done
  # the master of cu 1's bucket stops answering (SIGSTOP: connections stay open, no reply)
  k=$(entry_key 1)
  p=$(port_of_slot "$(rc cluster keyslot "$k")")
  local i pid=
  for i in "${!RC_PORTS[@]}"; do
    if [ "${RC_PORTS[$i]}" = "$p" ]; then pid=$(cat "$WORK/rcluster/node$((i + 1))/redis.pid"); fi
  done
  [ -n "$pid" ] || fail "(d) no pid for the master on $p"
  CLEANUPS=("kill -CONT $pid" "${CLEANUPS[@]}")
  kill -STOP "$pid"
  sleep 0.2
  # every key still answered (the bypass: from PostgreSQL, not stored), never a hang: each
  # GET is bounded by the client's own timeout, below the test's
  out=$(for id in $(seq 1 9); do "$CLI" -p "$PORT" -t 8000 --json get cu "$id" 2>&1; done)
  n=$(echo "$out" | grep -c '"rows":\[\["\?[0-9]' || true)
  [ "$n" = 9 ] || fail "(d) with a master down only $n of 9 keys answered: $out"
  ok "(d) a master not answering: all 9 keys answered, $(echo "$out" | grep -c '"source":"cache"' || true) from the cache"
  kill -CONT "$pid"
  until_true 30 rc_ok "$p" || fail "(d) the cluster did not recover"
  for id in $(seq 1 9); do fill cu "$id"; done
  ok "(d) the master back: every key cached again"
}

# slotless: an extra master joins the cluster (its own shard); KEEP the slot it is given
# (none: ""), the daemon's map lists it, it is killed -9 while the cluster only suspects it
# (cluster-node-timeout raised to 60 s on every node: no FAIL flag, CLUSTER SHARDS keeps it
# "online"), and the daemon's connection to it fails; sets SL_SRC: the sources of cu 1-9
slotless_kill() {
  local slot=$1 p bus d pid q i
  p=$(free_port)
  bus=$(free_port)
  d=$WORK/rcluster/extra$p
  mkdir -p "$d"
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
    --cluster-port "$bus" --cluster-config-file "$d/nodes.conf" --cluster-node-timeout 60000 \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" --dir "$d" >/dev/null
  CLEANUPS+=("redis-cli -p $p shutdown nosave")
  until_true 10 redis_port_pong "$p" || fail "(f) the extra node did not start"
  redis-cli -p "${RC_PORTS[0]}" cluster meet 127.0.0.1 "$p" "$bus" >/dev/null
  until_true 30 eval '[ "$(redis-cli -p "${RC_PORTS[0]}" cluster nodes | grep -c ":$p@")" = 1 ] && rc_ok "$p"' ||
    fail "(f) $p never joined the cluster"
  local id
  id=$(redis-cli -p "$p" cluster myid)
  for q in "${RC_PORTS[@]}"; do
    until_true 30 eval "redis-cli -p $q cluster nodes | grep -q '^$id '" || fail "(f) $q never learnt of $p"
  done
  if [ -n "$slot" ]; then
    [ "$(rc cluster countkeysinslot "$slot")" = 0 ] || fail "(f) slot $slot is not empty"
    for q in "${RC_PORTS[@]}" "$p"; do redis-cli -p "$q" cluster setslot "$slot" node "$id" >/dev/null; done
    until_true 30 eval '[ "$(port_of_slot "$slot")" = "$p" ]' || fail "(f) slot $slot never moved to $p"
  fi
  until_true 30 grep -q "redis cluster cache: node 127.0.0.1:$p joined the map" "$WORK/cachesvc.log" ||
    fail "(f) the daemon's map never listed $p"
  pid=$(cat "$d/redis.pid")
  kill -9 "$pid"
  until_true 30 grep -q "redis cache 127.0.0.1:$p: connect failed" "$WORK/cachesvc.log" ||
    fail "(f) the daemon never lost $p"
  # the cluster still lists it as a master, its health "online" (suspected at most)
  redis-cli -p "${RC_PORTS[0]}" cluster nodes | grep ":$p@" | grep -q master ||
    fail "(f) the cluster no longer lists $p as a master"
  ! redis-cli -p "${RC_PORTS[0]}" cluster nodes | grep ":$p@" | grep -q 'master,fail ' ||
    fail "(f) $p already flagged failed: the case is not the one under test"
  SL_PORT=$p SL_ID=$id
}
sl_sources() { # sets SL_SRC: the sources of cu 1-9, as "cache x9" or "cache x3, replica x6"
  SL_SRC=$(for i in $(seq 1 9); do src cu "$i"; done | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')
}
sl_all() { sl_sources; [ "$SL_SRC" = "$1 x9" ]; }
slotless_forget() { # the killed extra node forgotten (its slot, if any, back to OWNER first)
  local q
  if [ -n "${1:-}" ]; then
    for q in "${RC_PORTS[@]}"; do redis-cli -p "$q" cluster setslot "$1" node "$2" >/dev/null; done
  fi
  for q in "${RC_PORTS[@]}"; do redis-cli -p "$q" cluster forget "$SL_ID" >/dev/null; done
}
case_slotless() {
  local q t0 slot owner ownerid
  t0=$(redis-cli -p "${RC_PORTS[0]}" config get cluster-node-timeout | tail -1)
  for q in "${RC_PORTS[@]}"; do
    redis-cli -p "$q" config set cluster-node-timeout 60000 >/dev/null
    CLEANUPS=("redis-cli -p $q config set cluster-node-timeout $t0" "${CLEANUPS[@]}")
  done
  cluster_config "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  for id in $(seq 1 9); do fill cu "$id"; done
  slotless_kill ""
  # (a lost connection stops the use of the generations until the next poll, 1 s)
  until_true 15 sl_all cache || fail "(f) a killed master of no slot: cu 1-9 answered from $SL_SRC, not all from the cache"
  sleep 2 # the daemon retries the dead node meanwhile (with backoff): still every read a hit
  sl_all cache || fail "(f) a killed master of no slot: then cu 1-9 answered from $SL_SRC"
  # review 45 R45-1: nor does it hold the invalidator's watch of open slots: its rounds
  # (one per status interval, 100 ms) complete without it (they were all incomplete, the
  # flushed position held, and the namespace flushed at every hold bound)
  local r0 i0
  r0=$(metric cachesvc_invalidator_open_slot_rounds_total)
  i0=$(metric cachesvc_invalidator_open_slot_rounds_incomplete_total)
  until_true 20 metric_ge cachesvc_invalidator_open_slot_rounds_total $((r0 + 5)) ||
    fail "(f) a killed master of no slot: the rounds of open slots no longer complete ($r0 -> $(metric cachesvc_invalidator_open_slot_rounds_total); incomplete $i0 -> $(metric cachesvc_invalidator_open_slot_rounds_incomplete_total))"
  [ "$(metric cachesvc_invalidator_open_slot_holds_total)" = 0 ] || fail "(f) a killed master of no slot: a hold was declared a loss"
  ok "(f) a master of no slot killed (the cluster lists it, not failed): cu 1-9 all from the cache, the open-slot rounds complete"
  # review 46 R46-1: a slot opened towards that node (a reshard onto it, stuck): its end never
  # answers, so the rounds are incomplete again and the flushed position held under the hold
  # bound (60 s); taken as complete, the end "not answered for 3 s" flushed the namespace
  # every few seconds
  local ms mp l0
  ms=$(rc cluster keyslot "{$NS:$(bucket_of 1)}")
  mp=$(port_of_slot "$ms")
  l0=$(metric cachesvc_invalidator_open_slot_losses_total)
  i0=$(metric cachesvc_invalidator_open_slot_rounds_incomplete_total)
  redis-cli -p "$mp" cluster setslot "$ms" migrating "$SL_ID" >/dev/null || fail "(f) SETSLOT MIGRATING on $mp"
  CLEANUPS=("redis-cli -p $mp cluster setslot $ms stable" "${CLEANUPS[@]}")
  until_true 20 metric_ge cachesvc_invalidator_open_slot_rounds_incomplete_total $((i0 + 5)) ||
    fail "(f) slot $ms open towards the dead master of no slot: the rounds of open slots still complete"
  sleep 6 # twice the 3 s an end may go unanswered
  [ "$(metric cachesvc_invalidator_open_slot_losses_total)" = "$l0" ] ||
    fail "(f) slot $ms open towards the dead master of no slot: a loss within 6 s ($l0 -> $(metric cachesvc_invalidator_open_slot_losses_total)): $(grep -a 'was being migrated' "$WORK/cachesvc.log" | tail -1)"
  redis-cli -p "$mp" cluster setslot "$ms" stable >/dev/null
  ok "(f) a slot opened towards it: the rounds are incomplete (the position held), no loss within 6 s"
  slotless_forget
  # negative control: the same with the killed master owning one slot (no key of the test's
  # in it): every read bypasses, as while any slot's master is not ready
  local used
  used=$(for b in $(seq 0 255); do echo "CLUSTER KEYSLOT {$NS:$b}"; done | redis-cli -p "${RC_PORTS[0]}" | sort -un)
  for slot in $(seq 0 16383); do
    grep -qx "$slot" <<<"$used" && continue
    [ "$(rc cluster countkeysinslot "$slot")" = 0 ] && break
  done
  owner=$(port_of_slot "$slot")
  ownerid=$(redis-cli -p "$owner" cluster myid)
  for id in $(seq 1 9); do fill cu "$id"; done
  slotless_kill "$slot"
  sleep 3 # 3 generations polls
  sl_sources
  [ "$SL_SRC" = "replica x9" ] || fail "(f) negative control: a killed master of slot $slot: cu 1-9 answered from $SL_SRC, not all bypassed"
  # and its rounds of open slots stay incomplete (the measure of R45-1's part can fail)
  r0=$(metric cachesvc_invalidator_open_slot_rounds_total)
  i0=$(metric cachesvc_invalidator_open_slot_rounds_incomplete_total)
  until_true 20 metric_ge cachesvc_invalidator_open_slot_rounds_incomplete_total $((i0 + 5)) ||
    fail "(f) negative control: a killed master of slot $slot: the rounds of open slots are not incomplete"
  [ "$(metric cachesvc_invalidator_open_slot_rounds_total)" -le $((r0 + 1)) ] ||
    fail "(f) negative control: a killed master of slot $slot: rounds of open slots completed ($r0 -> $(metric cachesvc_invalidator_open_slot_rounds_total))"
  ok "(f) negative control: the killed master owning slot $slot (empty): cu 1-9 all bypass the cache"
  slotless_forget "$slot" "$ownerid"
}

# policy: the startup check of maxmemory-policy (fence.c (i)) asks every node of the cluster,
# replicas' policy matters too (a promoted replica keeps its own); --check reaches every node.
case_policy() {
  cluster_config "$WORK/cs.ini"
  local out rc=0 p=${RC_PORTS[1]}
  out=$(timeout 60 "$CACHESVC" -c "$WORK/cs.ini" --check 2>&1) || rc=$?
  [ $rc = 0 ] || fail "(e) --check on a healthy cluster: exit $rc: $out"
  ok "(e) --check on a healthy cluster: $out"
  redis-cli -p "$p" config set maxmemory-policy allkeys-lru >/dev/null
  CLEANUPS+=("redis-cli -p $p config set maxmemory-policy noeviction")
  rc=0
  out=$(timeout 60 "$CACHESVC" -c "$WORK/cs.ini" --check 2>&1) || rc=$?
  [ $rc = 1 ] && grep -q "node 127.0.0.1:$p: maxmemory-policy is allkeys-lru" <<<"$out" ||
    fail "(e) a node with allkeys-lru: exit $rc, want 1 naming node $p: $out"
  rc=0
  timeout 60 "$CACHESVC" -c "$WORK/cs.ini" >"$WORK/policy.log" 2>&1 || rc=$?
  [ $rc = 1 ] || fail "(e) the daemon started with allkeys-lru on node $p (exit $rc): $(tail -3 "$WORK/policy.log")"
  ok "(e) allkeys-lru on one node of the cluster: --check and the daemon refuse, naming it"
  sed -i 's/^fence = on/fence = off/' "$WORK/cs.ini"
  rc=0
  out=$(timeout 60 "$CACHESVC" -c "$WORK/cs.ini" --check 2>&1) || rc=$?
  [ $rc = 0 ] || fail "(e) fence = off: the policy does not matter, yet --check exit $rc: $out"
  ok "(e) with fence = off the same cluster passes (the policy matters to the fences only)"
  # a one-node cluster whose node does not know its own address (CLUSTER NODES lists it as
  # ":port"): still checked, through the seed's host (it was skipped, and the cluster called
  # checked: review 10)
  local p1 d1=$WORK/onenode
  p1=$(free_port)
  mkdir -p "$d1"
  redis-server --port "$p1" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
    --cluster-port "$(free_port)" --cluster-config-file "$d1/nodes.conf" --daemonize yes \
    --pidfile "$d1/redis.pid" --logfile "$d1/redis.log" --dir "$d1" >/dev/null
  CLEANUPS+=("redis-cli -p $p1 shutdown nosave")
  until_true 10 redis_port_pong "$p1" || fail "(e) the one-node cluster did not start"
  redis-cli -p "$p1" cluster addslotsrange 0 16383 >/dev/null
  redis-cli -p "$p1" config set maxmemory-policy allkeys-lru >/dev/null
  redis-cli -p "$p1" cluster nodes | grep -q " :$p1@" || echo "(note: the node knows its address: $(redis-cli -p "$p1" cluster nodes))"
  sed "s|^nodes = .*|nodes = 127.0.0.1:$p1|; s/^fence = off/fence = on/" "$WORK/cs.ini" >"$WORK/one.ini"
  rc=0
  out=$(timeout 60 "$CACHESVC" -c "$WORK/one.ini" --check 2>&1) || rc=$?
  [ $rc = 1 ] && grep -q "node 127.0.0.1:$p1: maxmemory-policy is allkeys-lru" <<<"$out" ||
    fail "(e) a one-node cluster with allkeys-lru: exit $rc, want 1 naming node $p1: $out"
  ok "(e) a node listed as \":$p1\" is checked through the seed's host: refused"
  # a daemon with no epoch (fence off, no invalidator ever ran on this cluster): an admin
  # INVALIDATE of one key works as on one Redis (the cluster script's epoch check exempts an
  # empty epoch, as EPOCH_GUARD does; it answered EPOCH before: review 9)
  cluster_config "$WORK/nofence.ini" on off off
  start_daemon "$WORK/nofence.ini"
  fill cu 1
  [ "$(src cu 1)" = cache ] || fail "(e) cu 1 not cached by the fence-off daemon"
  out=$(cli invalidate cu 1 2>&1) || fail "(e) admin INVALIDATE of one key without an epoch: $out"
  [ "$(src cu 1)" != cache ] || fail "(e) cu 1 still a hit after INVALIDATE"
  ok "(e) without an epoch, admin INVALIDATE of one key deletes it: $out"
  stop_daemon
  # nodes naming a plain Redis: one line with the fix to make, not one every 100 ms
  PORT=$(free_port) APORT=$(free_port)
  cluster_config "$WORK/plain.ini" on off off
  sed -i "s|^nodes = .*|nodes = 127.0.0.1:$CS_REDIS_PORT|" "$WORK/plain.ini"
  start_daemon "$WORK/plain.ini" plain
  sleep 3
  n=$(grep -c 'cluster support disabled' "$WORK/plain.log" || true)
  [ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "(e) nodes = a plain Redis: $n log lines in 3 s: $(grep -m3 'cluster support' "$WORK/plain.log")"
  grep -q 'set \[redis\] cluster = off' "$WORK/plain.log" || fail "(e) no hint to set cluster = off: $(grep -m1 'cluster support' "$WORK/plain.log")"
  ok "(e) nodes naming a plain Redis: $n line(s) in 3 s, saying to set cluster = off"
}

# Several parts may share one cluster (cluster_read.sh PART PART...: meson.build's merged pair,
# repair and its negative control, which would otherwise pay a cluster start and the setup
# above each): run in order, the previous part's daemon stopped and the cluster settled again
# (cluster_state:ok on every node, none flagged fail) before the next. Each part writes its own
# config and starts its own daemon (its metrics new) and its own fills.
prev=
for PART in "${@:-read}"; do
  if [ -n "$prev" ]; then
    for pid in "${DAEMON_PIDS[@]}"; do
      ! kill -0 "$pid" 2>/dev/null || stop_daemon "$pid" ||
        fail "part $PART: part $prev's daemon $pid exited with an error"
    done
    until_true 60 cluster_settled || fail "part $PART: the cluster did not settle after part $prev"
    echo "---- part $PART (same cluster)"
  fi
  prev=$PART
  case "$PART" in
    down) case_down ;;
    slotless) case_slotless ;;
    policy) case_policy ;;
    read) case_read ;;
    inval) case_inval ;;
    repair) case_repair true ;;
    repairneg) case_repair false ;;
    *) fail "unknown part $PART" ;;
  esac
done
