#!/usr/bin/env bash
# redis_cluster_route.sh PART - Redis Cluster routing (cachesvc/base/rcluster.c, issue 17)
# driven by rc_drive against a private cluster of this test's own (3 masters, 1 replica each).
#   route:    (a) 2000 keys over all slots, SET then GET, every reply right (discovery from one
#             seed); (b) one slot migrated by hand (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT
#             NODE) under load: ASK then MOVED seen, nothing lost or wrong - and, at the same time,
#             a driver with redirects off (max_redirects 0) must see errors (negative control),
#             and one sending Lua scripts (EVALSHA) must see the redirects and no error;
#             (e) single mode against a plain Redis.
#   reshard:  (c) `redis-cli --cluster reshard` of 1000 slots under load: errors bounded (and
#             reported), every key holds its last written value after; the same with redirects
#             off must see errors.
#   failover: (d) a master killed -9 under load: its slots fail fast (no command past the
#             timeout) until the replica is promoted, then every read succeeds. The periodic
#             refresh is off (60 s): the new master is found by the refreshes a dropped
#             connection and a refused slot ask for.
#             (f) then that promoted master, now without a replica, stopped (SIGSTOP: it still
#             accepts connections, never answers) in a cluster that serves partial coverage:
#             once the cluster marks it failed, the client's map drops its slots (commands
#             refused at once, SHOW slots / metrics show them unserved) instead of keeping the
#             owner and waiting out every command's timeout (review V4; the unit test
#             unit_rcluster holds the negative control: a map without its failed list keeps them).
. "$(dirname "$0")/daemon_lib.sh"

PART=${1:-route}
DRIVE=$CS_BUILD/tests/integration/rc_drive
[ -x "$DRIVE" ] || fail "no $DRIVE"
drive() { "$DRIVE" "$@" 2>>"$WORK/drive.log"; }
# get NAME LINE: the value of NAME=... in a driver's result line
get() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
expect() { # NAME OP VALUE LINE WHAT
  local v
  v=$(get "$1" "$4")
  [ -n "$v" ] || fail "$5: no $1 in: $4"
  [ "$v" "$2" "$3" ] || fail "$5: $1=$v, expected $2 $3 ($4)"
}
port_of() { echo "${1##*:}"; }
node_id() { redis-cli -p "$1" cluster myid; }

case_a() {
  local out p n sum=0
  out=$(drive --seeds "$RC_SEED" --keys 2000 --prefix a: fill)
  echo "fill: $out"
  expect ok = 2000 "$out" "(a) fill"
  expect err = 0 "$out" "(a) fill"
  expect refused = 0 "$out" "(a) fill"
  out=$(drive --seeds "$RC_NODES" --keys 2000 --prefix a: check)
  echo "check: $out"
  expect ok = 2000 "$out" "(a) check"
  expect wrong = 0 "$out" "(a) check"
  expect nodes = 3 "$out" "(a) check: the three masters"
  expect resent = 0 "$out" "(a) check: no reply flagged resent (each command sent once)"
  for m in ${RC_MASTERS//,/ }; do
    n=$(redis-cli -p "$(port_of "$m")" dbsize)
    [ "$n" -gt 500 ] || fail "(a) master $m holds $n of the 2000 keys: not spread"
    sum=$((sum + n))
  done
  [ "$sum" = 2000 ] || fail "(a) the masters hold $sum keys, not 2000"
  ok "(a) 2000 keys over all slots and every master, every reply right"
}

# migrate_slot SLOT FROM_PORT TO_PORT FIRST_BATCH: the manual resharding steps of the Redis
# docs, slowly (FIRST_BATCH keys, a pause, the rest, a pause) so clients meet the slot half
# migrated, then SETSLOT NODE on the importing node, the migrating one and every other master.
migrate_slot() { # SLOT FROM_PORT TO_PORT FIRST_BATCH
  local ts=$SECONDS slot=$1 from=$2 to=$3 from_id to_id keys n p
  from_id=$(node_id "$from")
  to_id=$(node_id "$to")
  [ "$(redis-cli -p "$to" cluster setslot "$slot" importing "$from_id")" = OK ] || fail "setslot importing"
  [ "$(redis-cli -p "$from" cluster setslot "$slot" migrating "$to_id")" = OK ] || fail "setslot migrating"
  # half the keys, a pause with the slot half migrated, then the rest
  for n in "$4" 1000 1000; do
    mapfile -t keys < <(redis-cli -p "$from" cluster getkeysinslot "$slot" "$n" | grep -v '^$')
    [ ${#keys[@]} -gt 0 ] || break
    redis-cli -p "$from" migrate 127.0.0.1 "$to" "" 0 5000 keys "${keys[@]}" >/dev/null
    echo "(b) +$((SECONDS - ts)) s: ${#keys[@]} keys migrated"
    sleep 1
  done
  [ "$(redis-cli -p "$from" cluster countkeysinslot "$slot")" = 0 ] || fail "keys left in slot $slot"
  redis-cli -p "$to" cluster setslot "$slot" node "$to_id" >/dev/null
  redis-cli -p "$from" cluster setslot "$slot" node "$to_id" >/dev/null
  for p in ${RC_MASTERS//,/ }; do
    redis-cli -p "$(port_of "$p")" cluster setslot "$slot" node "$to_id" >/dev/null
  done
}

case_b() {
  local slot from to out neg lua pos_pid neg_pid lua_pid m
  slot=$(redis-cli -p "${RC_PORTS[0]}" cluster keyslot mig)
  # the keys of both drivers are "{mig}...": all in this one slot
  drive --seeds "$RC_NODES" --tag mig --prefix p --keys 300 fill >/dev/null
  drive --seeds "$RC_NODES" --tag mig --prefix n --keys 300 fill >/dev/null
  drive --seeds "$RC_NODES" --tag mig --prefix s --keys 300 fill >/dev/null
  from=$(rc_master_of "$slot")
  [ -n "$from" ] || fail "(b) no master for slot $slot"
  for m in ${RC_MASTERS//,/ }; do
    [ "$(port_of "$m")" = "$from" ] || { to=$(port_of "$m"); break; }
  done
  echo "(b) slot $slot: $from -> $to"
  drive --seeds "$RC_NODES" --refresh 60000 --tag mig --prefix p --keys 300 --conc 16 --think 2 --duration 45 --until-file "$WORK/b.stop" load >"$WORK/b_pos.out" &
  pos_pid=$!
  drive --seeds "$RC_NODES" --refresh 60000 --redirects 0 --tag mig --prefix n --keys 300 --conc 16 --think 2 --duration 45 --until-file "$WORK/b.stop" load >"$WORK/b_neg.out" &
  neg_pid=$!
  drive --seeds "$RC_NODES" --refresh 60000 --script --tag mig --prefix s --keys 300 --conc 8 --think 2 --duration 45 --until-file "$WORK/b.stop" load >"$WORK/b_lua.out" &
  lua_pid=$!
  local t0=$SECONDS
  sleep 1.5
  migrate_slot "$slot" "$from" "$to" 300
  echo "(b) slot $slot owned by $to from +$((SECONDS - t0)) s"
  sleep 1.5 # the load goes on with the slot at its new home (MOVED)
  touch "$WORK/b.stop"
  wait "$pos_pid" || fail "(b) driver failed"
  wait "$neg_pid" || fail "(b) negative driver failed"
  wait "$lua_pid" || fail "(b) script driver failed"
  out=$(cat "$WORK/b_pos.out")
  lua=$(cat "$WORK/b_lua.out")
  neg=$(cat "$WORK/b_neg.out")
  echo "(b) redirects on:  $out"
  echo "(b) redirects off: $neg"
  echo "(b) scripts:       $lua"
  expect ask -gt 0 "$out" "(b) ASK seen"
  expect moved -gt 0 "$out" "(b) MOVED seen"
  expect err = 0 "$out" "(b) no command lost"
  expect refused = 0 "$out" "(b) no command refused"
  expect wrong = 0 "$out" "(b) no reply wrong"
  expect final_bad = 0 "$out" "(b) every key after"
  expect final_checked = 300 "$out" "(b) every key after"
  expect ok -gt 1000 "$out" "(b) load ran"
  ok "(b) slot migrated under load: ASK and MOVED followed, nothing lost or wrong"
  # cs_rc_resent (CLUSTER.md E1) names the replies of commands sent more than once
  expect resent -gt 0 "$out" "(b) redirected replies flagged resent"
  [ "$(get resent "$out")" -le $(( $(get ask "$out") + $(get moved "$out") + $(get tryagain "$out") )) ] ||
    fail "(b) more replies flagged resent than redirects and retries: $out"
  ok "(b) $(get resent "$out") replies flagged resent (cs_rc_resent), at most one per redirect or retry"
  for f in ask moved; do expect "$f" -gt 0 "$lua" "(b) scripts: $f seen"; done
  for f in err refused wrong final_bad; do expect "$f" = 0 "$lua" "(b) scripts"; done
  expect final_checked = 300 "$lua" "(b) scripts: every key after"
  ok "(b) the same through EVALSHA (cs_rc_script): ASK and MOVED followed, nothing lost or wrong"
  expect err -gt 0 "$neg" "(b) negative control: redirects off must fail"
  expect redirects_exhausted -gt 0 "$neg" "(b) negative control"
  ok "(b) negative control: with max_redirects 0 the same migration gives $(get err "$neg") errors"
}

case_e() {
  local out
  private_redis
  out=$(drive --url "redis://127.0.0.1:$RPORT/0" --keys 2000 --prefix e: fill)
  expect ok = 2000 "$out" "(e) single fill"
  out=$(drive --url "redis://127.0.0.1:$RPORT/0" --keys 2000 --prefix e: check)
  echo "(e) single: $out"
  expect ok = 2000 "$out" "(e) single check"
  expect nodes = 1 "$out" "(e) one node"
  [ "$(redis-cli -p "$RPORT" dbsize)" = 2000 ] || fail "(e) plain Redis holds $(redis-cli -p "$RPORT" dbsize) keys"
  ok "(e) single mode against a plain Redis: 2000 keys set and read back"
}

case_c() {
  local out neg from to pos_pid neg_pid ok_n err_n t0
  drive --seeds "$RC_NODES" --prefix c: --keys 2000 fill >/dev/null
  drive --seeds "$RC_NODES" --prefix cn: --keys 1000 fill >/dev/null
  from=$(port_of "${RC_MASTERS%%,*}")
  to=$(port_of "$(echo "$RC_MASTERS" | cut -d, -f2)")
  drive --seeds "$RC_NODES" --prefix c: --keys 2000 --conc 32 --think 2 --duration 45 --until-file "$WORK/c.stop" \
    --metrics "$WORK/c.prom" --slots "$WORK/c.slots" load >"$WORK/c_pos.out" &
  pos_pid=$!
  drive --seeds "$RC_NODES" --redirects 0 --prefix cn: --keys 1000 --conc 8 --think 2 --duration 45 --until-file "$WORK/c.stop" load >"$WORK/c_neg.out" &
  neg_pid=$!
  sleep 1.5
  t0=$SECONDS
  timeout 60 redis-cli --cluster reshard "127.0.0.1:$from" --cluster-from "$(node_id "$from")" \
    --cluster-to "$(node_id "$to")" --cluster-slots 1000 --cluster-yes >"$WORK/reshard.log" 2>&1 ||
    fail "(c) redis-cli --cluster reshard failed: $(tail -3 "$WORK/reshard.log")"
  echo "(c) reshard of 1000 slots took $((SECONDS - t0)) s"
  kill -0 "$pos_pid" 2>/dev/null || fail "(c) the load ended before the reshard did"
  sleep 1.5
  touch "$WORK/c.stop"
  wait "$pos_pid" || fail "(c) driver failed"
  wait "$neg_pid" || fail "(c) negative driver failed"
  out=$(cat "$WORK/c_pos.out")
  neg=$(cat "$WORK/c_neg.out")
  echo "(c) redirects on:  $out"
  echo "(c) redirects off: $neg"
  ok_n=$(get ok "$out")
  err_n=$(get err "$out")
  expect moved -gt 0 "$out" "(c) MOVED seen"
  expect wrong = 0 "$out" "(c) no reply wrong"
  expect final_bad = 0 "$out" "(c) every key readable after"
  expect final_checked = 2000 "$out" "(c) every key readable after"
  # bounded: at most 1 failed command per 1000 (each would be a bypass in the engine)
  [ $((err_n * 1000)) -le "$ok_n" ] || fail "(c) $err_n errors for $ok_n commands: more than 1 in 1000"
  ok "(c) reshard of 1000 slots under load: $ok_n commands, $err_n errors, every key right after"
  # what an operator sees of that client: per-master MOVED counts summing to the driver's, and
  # the slot map as routed equal to the cluster's own after the reshard
  local sum cl
  sum=$(awk '/^cachesvc_redis_cluster_node_moved_total\{/ { s += $2 } END { print s + 0 }' "$WORK/c.prom")
  [ "$sum" = "$(get moved "$out")" ] || fail "(c) metrics: moved_total over the masters is $sum, the driver counted $(get moved "$out")"
  [ "$(grep -c '^cachesvc_redis_cluster_node_up{client="drive",node="[^"]*"} 1$' "$WORK/c.prom")" = 3 ] ||
    fail "(c) metrics: want 3 masters up: $(grep node_up "$WORK/c.prom")"
  grep -q '^cachesvc_redis_cluster_slots_covered{client="drive"} 16384$' "$WORK/c.prom" || fail "(c) metrics: slots covered: $(grep slots_covered "$WORK/c.prom")"
  if command -v promtool >/dev/null; then
    cl=$(promtool check metrics <"$WORK/c.prom" 2>&1) && [ -z "$cl" ] || fail "(c) promtool check metrics: $cl"
  fi
  # CLUSTER SLOTS as "first last host:port" lines, sorted, merged where adjacent on one master
  cl=$(redis-cli -p "$from" --json cluster slots 2>/dev/null | "$PY3" -c '
import json, sys
r = sorted((s[0], s[1], "%s:%d" % (s[2][0], s[2][1])) for s in json.load(sys.stdin))
out = []
for a, b, n in r:
    if out and out[-1][2] == n and out[-1][1] + 1 == a: out[-1][1] = b
    else: out.append([a, b, n])
print("\n".join("%d %d %s" % tuple(x) for x in out))')
  [ "$(awk '{ print $1, $2, $3 }' "$WORK/c.slots")" = "$cl" ] || fail "(c) the routed slot map differs from CLUSTER SLOTS: $(cat "$WORK/c.slots") vs $cl"
  ok "(c) per-master metrics (MOVED $sum, promtool clean) and the routed slot map ($(wc -l <"$WORK/c.slots") ranges) match the cluster"
  expect err -gt 0 "$neg" "(c) negative control: redirects off must fail"
  ok "(c) negative control: with max_redirects 0 the reshard gives $(get err "$neg") errors"
}

# replicated P: every replica of the master on port P has its whole replication stream.
replicated() {
  local info off
  info=$(redis-cli -p "$1" info replication | tr -d '\r')
  off=$(echo "$info" | sed -n 's/^master_repl_offset://p')
  echo "$info" | grep -q '^slave0:' || return 1
  ! echo "$info" | grep '^slave[0-9]*:' | grep -qv "offset=$off,"
}

case_d() {
  local out victim vpid replica i p t0 timeout=1000
  drive --seeds "$RC_NODES" --prefix d: --keys 2000 fill >/dev/null
  for m in ${RC_MASTERS//,/ }; do
    until_true 20 replicated "$(port_of "$m")" || fail "(d) replicas of $m never caught up"
  done
  victim=$(port_of "${RC_MASTERS%%,*}")
  replica=$(redis-cli -p "$victim" info replication | tr -d '\r' | sed -n 's/^slave0:.*port=\([0-9]*\),.*/\1/p')
  for i in "${!RC_PORTS[@]}"; do
    [ "${RC_PORTS[$i]}" = "$victim" ] && vpid=$(cat "$WORK/rcluster/node$((i + 1))/redis.pid")
  done
  [ -n "$vpid" ] && [ -n "$replica" ] || fail "(d) victim $victim: no pid or replica"
  drive --seeds "$RC_NODES" --refresh 60000 --timeout "$timeout" --prefix d: --keys 2000 --conc 16 --think 2 --duration 45 --until-file "$WORK/d.stop" getload \
    >"$WORK/d.out" &
  local pid=$!
  sleep 2
  kill -9 "$vpid"
  t0=$SECONDS
  echo "(d) killed master $victim (pid $vpid); its replica is $replica"
  until_true 20 bash -c "[ \"\$(redis-cli -p $replica role | head -1)\" = master ]" ||
    fail "(d) the replica $replica was not promoted"
  until_true 20 rc_ok "$replica" || fail "(d) cluster not ok after the failover"
  echo "(d) replica promoted, cluster ok after $((SECONDS - t0)) s"
  kill -0 "$pid" 2>/dev/null || fail "(d) the load ended before the failover completed"
  sleep 5 # served by the new master (the last 3 s must be free of errors)
  touch "$WORK/d.stop"
  wait "$pid" || fail "(d) driver failed"
  out=$(cat "$WORK/d.out")
  echo "(d) $out"
  expect wrong = 0 "$out" "(d) no reply wrong"
  [ $(($(get err "$out") + $(get refused "$out"))) -gt 0 ] || fail "(d) the kill was not felt: $out"
  # fail fast: no command waits past its timeout (+ the timer's period and loop slack)
  expect max_ms -le $((timeout + 1000)) "$out" "(d) no command past the timeout"
  # then succeed: nothing failed in the last 3 s of the load
  expect last_err_ago_ms -ge 3000 "$out" "(d) every command succeeds after the promotion"
  ok "(d) master killed: $(get err "$out") failed and $(get refused "$out") refused at once (slowest $(get max_fail_ms "$out") ms), then served by the promoted replica"
}

case_f() {
  local out victim vpid i p other
  victim=$(rc_master_of 0)
  [ -n "$victim" ] || fail "(f) no master serves slot 0"
  # it must have no replica left (case d killed its old master), or it would be failed over
  [ "$(redis-cli -p "$victim" info replication | tr -d '\r' | sed -n 's/^connected_slaves://p')" = 0 ] ||
    fail "(f) the master of slot 0 ($victim) still has a replica"
  for p in "${RC_PORTS[@]}"; do
    redis_port_pong "$p" && redis-cli -p "$p" config set cluster-require-full-coverage no >/dev/null
  done
  for i in "${!RC_PORTS[@]}"; do
    [ "${RC_PORTS[$i]}" = "$victim" ] && vpid=$(cat "$WORK/rcluster/node$((i + 1))/redis.pid")
  done
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$victim" ] && redis_port_pong "$p" && other=$p && break; done
  drive --seeds "127.0.0.1:$other" --refresh 500 --timeout 2000 --prefix d: --keys 2000 --conc 16 --think 2 --duration 45 \
    --until-file "$WORK/f.stop" --metrics "$WORK/f.prom" --slots "$WORK/f.slots" getload >"$WORK/f.out" &
  local pid=$!
  sleep 2
  kill -STOP "$vpid"
  CLEANUPS=("kill -CONT $vpid" "${CLEANUPS[@]}")
  echo "(f) stopped master $victim (pid $vpid)"
  failed_seen() { redis-cli -p "$other" cluster nodes | grep -q ":$victim@[0-9]* [^ ]*master,fail"; }
  until_true 20 failed_seen || fail "(f) the cluster never marked $victim failed"
  sleep 6 # refreshes (one asked of the stopped node waits out the 2 s timeout first)
  touch "$WORK/f.stop"
  wait "$pid" || fail "(f) driver failed"
  kill -CONT "$vpid"
  out=$(cat "$WORK/f.out")
  echo "(f) $out"
  expect wrong = 0 "$out" "(f) no reply wrong"
  expect refused -gt 0 "$out" "(f) commands for the failed master's slots refused at once"
  grep -q "^0 [0-9]* - 0$" "$WORK/f.slots" || fail "(f) slot 0 still routed to the failed master: $(cat "$WORK/f.slots")"
  grep -q '^cachesvc_redis_cluster_slots_covered{client="drive"} 16384$' "$WORK/f.prom" &&
    fail "(f) metrics: every slot still covered with a master failed"
  ok "(f) a stopped master marked failed: its slots unserved in the map ($(grep -c ' - ' "$WORK/f.slots") range(s)), $(get refused "$out") commands refused at once"
}

case $PART in
  route)
    private_redis_cluster 3 1
    case_a
    case_b
    case_e
    ;;
  reshard)
    private_redis_cluster 3 1
    case_c
    ;;
  failover)
    private_redis_cluster 3 1
    case_d
    case_f
    ;;
  *) fail "unknown part $PART" ;;
esac
