#!/usr/bin/env bash
# cluster_near.sh PART [PART...] - the near cache on a Redis Cluster (CLUSTER.md section 7, E1
# and E2), on a private 3-master cluster, the daemon with its invalidator ([redis] cluster = on);
# several PARTs (not gens: its cluster has replicas) run one after the other on that cluster.
#   basic:  the near cache comes on only once every master's tracking is proven (a heartbeat
#           echo per master); hot keys on the 3 masters are served from the near cache; an
#           UPDATE of all of them drops every held entry through its own master's tracking
#           message (no flush) and the daemon answers the new rows; CLIENT KILL of one
#           master's pub/sub connection flushes it (and it comes back on); one master
#           restarted flushes it (and it comes back on); a keyless slot handed to another
#           master flushes it (the slot map changed) and it stays on; a 4th master joining
#           with no slot needs no proof: the near cache comes back on (review12 N1).
#   e1:     a watched GET answered after an ASK (its slot being migrated by hand, the key
#           already on the target) is served but not stored (cachesvc_near_resent_total):
#           a DEL of the key on the target (which tracks nothing for this client) leaves
#           nothing stale behind. Negative control e1neg (cluster_near_resend_check = off):
#           the near cache stores the redirected reply and still answers it from memory after
#           the key was deleted in Redis: an entry no invalidation will ever drop.
#           (registered together as cluster_near_e1: e1, then e1neg on the same cluster)
#   gens:   (3 masters with a replica each, nodes naming a replica first) every master has a
#           subscriber of the generations channel; with the first seed shut down, a
#           generation message PUBLISHed on a master reaches the daemon (review R6): the
#           bumped query's cached entry is no longer served. Negative control by hand: an
#           older build (pub/sub on the first seed only) with CS_GENS_ONLY_BUMP=1 fails it.
#   n3:     (review12 N3) with the periodic slot map refresh at 600 s, a keyless slot handed to
#           another master (no MOVED) flushes the near cache within 10 s: the heartbeat asks
#           the map every second. Negative control n3neg (cluster_near_refresh = off): no flush.
#   l2:     (review 13 L2) a master's lowest slot migrating (its keys moved to the target): the
#           near cache stays on (heartbeats in each master's highest slot). Negative control
#           by hand: the build before the fix goes off (heartbeats refused with ASK).
#   l7:     (review 13 L7) the engine alone (shard_drive) with one master's pub/sub connection
#           failing at start: it starts, retries it, every master subscribes, near cache on.
#   n6:     (review12 N6) an UPDATE of 12 held keys on the 3 masters: every key answers its new
#           row. Negative control n6neg (cluster_near_untracked_node: one master's reads stored
#           untracked while its heartbeats prove it): that master's keys answer stale.
#   n2:     (review12 N2) one master refusing its heartbeats (-OOM, connections up): the near
#           cache goes off and stays off while it refuses, back on once it takes writes.
. "$(dirname "$0")/daemon_lib.sh"

PART=${1:-basic}
users_db 60 "CREATE PUBLICATION cs_pub FOR TABLE users;"
if [ "$PART" = gens ]; then private_redis_cluster 3 1; else private_redis_cluster 3 0; fi
rc() { local m=${RC_MASTERS%%,*}; redis-cli -c -p "${m##*:}" "$@"; }

# near_config FILE [resend_check] [tracking] [size]
near_config() {
  local f=$1 resend=${2:-true} tracking=${3:-true} size=${4:-1MB}
  FENCE=on EXTRA_REDIS="namespace = $NS" EXTRA_SERVICE="near_cache_size = $size
near_cache_tracking = $tracking
verify_interval = 0" write_config "$f" replica1
  sed -i "s|^url = .*|url = redis://127.0.0.1\ncluster = on\nnodes = $RC_NODES|" "$f"
  if [ "$resend" != true ]; then sed -i "s|^cluster = on|&\ncluster_near_resend_check = $resend|" "$f"; fi
  user_query cu >>"$f"
  invalidator_section >>"$f"
}
gen_of() { local g; g=$(rc get "{$NS:$1}:g:cu"); echo "${g:-0}"; }
entry_key() { echo "{$NS:$(bucket_of "$1")}:e:cu:$(gen_of 0):$1"; }
near_on() { until_true "${1:-30}" metric_is cachesvc_near_on 1; }
proven_nodes() { http /metrics | grep -c '^cachesvc_near_node_proven{node="[^"]*"} 1$' || true; }
# hold ID...: each key filled, then read until it is a near hit
hold() {
  local id h
  for id in "$@"; do
    fill cu "$id"
    h=$(metric cachesvc_near_hits_total)
    until_true 10 eval "cli get cu $id >/dev/null; metric_ge cachesvc_near_hits_total $((h + 1))" ||
      fail "cu $id never became a near hit"
  done
}

case_basic() {
  near_config "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  near_on || fail "the near cache never came on: $(grep -i near "$WORK/cachesvc.log" | tail -5)"
  [ "$(proven_nodes)" = 3 ] || fail "near on but $(proven_nodes) of 3 masters proven: $(http /metrics | grep near_node_proven)"
  ok "near cache on once the 3 masters' tracking is proven: $(grep -o 'near cache: on.*' "$WORK/cachesvc.log" | head -1)"
  local id ports=() p h0 d0 f0 lsn
  for id in $(seq 1 12); do
    p=$(port_of_slot "$(rc cluster keyslot "$(entry_key "$id")")")
    ports+=("$p")
  done
  [ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" = 3 ] || fail "keys 1-12 are not spread over the 3 masters: ${ports[*]}"
  hold $(seq 1 12)
  h0=$(metric cachesvc_near_hits_total)
  for _ in 1 2 3; do cli mget --each cu $(seq 1 12) >/dev/null; done
  [ $(( $(metric cachesvc_near_hits_total) - h0 )) -ge 36 ] || fail "36 reads of 12 held keys: $(( $(metric cachesvc_near_hits_total) - h0 )) near hits"
  ok "12 keys on the 3 masters held near: 36 reads, 36 near hits"
  d0=$(metric cachesvc_near_dropped_total)
  f0=$(metric cachesvc_near_flushes_total)
  lsn=$(commit_lsn "UPDATE users SET name = 'near ' || id WHERE id <= 12")
  wait_invalidated "$lsn"
  until_true 10 metric_ge cachesvc_near_dropped_total $((d0 + 12)) ||
    fail "the UPDATE dropped $(( $(metric cachesvc_near_dropped_total) - d0 )) of 12 held entries"
  [ "$(metric cachesvc_near_flushes_total)" = "$f0" ] || fail "a flush happened: the drops prove nothing"
  wait_replicas
  for id in $(seq 1 12); do
    case $(rows cu "$id") in *"near $id"*) ;; *) fail "cu $id after the UPDATE: $(rows cu "$id")" ;; esac
  done
  ok "an UPDATE of the 12 keys: every held entry dropped by its master's tracking message (no flush); new rows answered"

  # one master's tracking pub/sub connection killed: flushed, then on again
  hold 1 2 3
  f0=$(metric cachesvc_near_flushes_total)
  redis-cli -p "${RC_PORTS[1]}" client kill type pubsub >/dev/null
  until_true 5 metric_ge cachesvc_near_flushes_total $((f0 + 1)) ||
    fail "CLIENT KILL of master ${RC_PORTS[1]}'s pub/sub connection did not flush the near cache"
  near_on 20 || fail "the near cache did not come back on after the CLIENT KILL"
  hold 4
  ok "CLIENT KILL of one master's tracking connection: flushed, back on, hits resume"

  # one master restarted (no save: it comes back empty, the same node)
  hold 1 2 3
  f0=$(metric cachesvc_near_flushes_total)
  local d=$WORK/rcluster/node3 port=${RC_PORTS[2]} bus
  bus=$(grep myself "$d/nodes.conf" | awk '{ print $2 }' | sed 's/.*@\([0-9]*\).*/\1/')
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  until_true 10 eval "! redis_port_pong $port" || fail "master $port did not stop"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
    --cluster-port "$bus" --cluster-config-file "$d/nodes.conf" \
    --cluster-node-timeout "${CS_RC_NODE_TIMEOUT:-1000}" --daemonize yes \
    --pidfile "$d/redis.pid" --logfile "$WORK/rcluster3.log" --dir "$d" >/dev/null
  until_true 5 metric_ge cachesvc_near_flushes_total $((f0 + 1)) || fail "a master's restart did not flush the near cache"
  until_true 60 rc_ok "$port" || fail "master $port did not rejoin"
  near_on 60 || fail "the near cache did not come back on after the restart"
  [ "$(proven_nodes)" = 3 ] || fail "near on after the restart but $(proven_nodes) of 3 masters proven"
  fill cu 5
  ok "one master restarted: flushed, back on with the 3 masters proven"

  # a slot (holding no key) handed to another master: the daemon's next slot map flushes
  # the near cache (entries read from an old owner must not outlive the move)
  hold 1 2 3
  f0=$(metric cachesvc_near_flushes_total)
  local slot=0 owner to toid
  for slot in $(seq 100 16383); do
    owner=$(port_of_slot "$slot")
    [ -n "$owner" ] && [ "$(redis-cli -p "$owner" cluster countkeysinslot "$slot")" = 0 ] && break
  done
  for to in "${RC_PORTS[@]}"; do [ "$to" != "$owner" ] && break; done
  toid=$(redis-cli -p "$to" cluster myid)
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$slot" node "$toid" >/dev/null; done
  until_true 30 metric_ge cachesvc_near_flushes_total $((f0 + 1)) ||
    fail "slot $slot moved from $owner to $to: the near cache was not flushed"
  grep -q 'near cache: flushed (the slot map changed)' "$WORK/cachesvc.log" ||
    fail "the flush was not the slot map's: $(grep 'near cache' "$WORK/cachesvc.log" | tail -3)"
  metric_is cachesvc_near_on 1 || near_on 10 || fail "the near cache went off for a slot move"
  ok "slot $slot handed from $owner to $to: the near cache flushed (the slot map changed), still on"

  # a 4th master joins with no slot (scale-out before the reshard): it holds no entry, so the
  # near cache comes back on without its proof (review12 N1: it stayed off, and the search
  # for a heartbeat key in its slots ran 2^18 CRC16s on every tick)
  local np nb nd=$WORK/rcluster/node-extra masters
  np=$(free_port)
  nb=$(free_port)
  mkdir -p "$nd"
  CLEANUPS+=("redis-cli -p $np shutdown nosave")
  redis-server --port "$np" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
    --cluster-port "$nb" --cluster-config-file "$nd/nodes.conf" \
    --cluster-node-timeout "${CS_RC_NODE_TIMEOUT:-1000}" --daemonize yes \
    --pidfile "$nd/redis.pid" --logfile "$WORK/rcluster-extra.log" --dir "$nd" >/dev/null
  until_true 30 redis_port_pong "$np" || fail "the extra node did not start"
  timeout 60 redis-cli --cluster add-node "127.0.0.1:$np" "127.0.0.1:${RC_PORTS[0]}" \
    >"$WORK/add-node.log" 2>&1 || fail "redis-cli --cluster add-node failed: $(tail -3 "$WORK/add-node.log")"
  masters() { http /metrics | grep -c '^cachesvc_redis_cluster_node_up{client="cache",node="[^"]*"} 1$' || true; }
  until_true 60 eval '[ "$(masters)" = 4 ]' || fail "the daemon never saw the 4th master: $(masters) up"
  near_on 30 || fail "with a master serving no slot the near cache never came back on: $(grep 'near cache' "$WORK/cachesvc.log" | tail -3)"
  hold 6
  ok "a 4th master with no slot joined: the near cache back on without its proof, hits resume"
}

# e1 [neg]: a watched GET redirected by ASK is not stored (or, negative control, is).
case_e1() {
  local resend=true
  [ "${1:-}" = neg ] && resend=false
  near_config "$WORK/cs.ini" "$resend"
  start_streaming "$WORK/cs.ini"
  near_on || fail "the near cache never came on"
  local id=1 k slot a b aid bid keys r0 e0
  fill cu "$id"
  k=$(entry_key "$id")
  slot=$(rc cluster keyslot "$k")
  a=$(port_of_slot "$slot")
  for b in "${RC_PORTS[@]}"; do [ "$b" != "$a" ] && break; done
  aid=$(redis-cli -p "$a" cluster myid)
  bid=$(redis-cli -p "$b" cluster myid)
  # the slot migrating from a to b, every key of it already on b: a GET sent to a is ASKed to b
  redis-cli -p "$b" cluster setslot "$slot" importing "$aid" >/dev/null
  redis-cli -p "$a" cluster setslot "$slot" migrating "$bid" >/dev/null
  keys=$(redis-cli -p "$a" cluster getkeysinslot "$slot" 1000)
  for key in $keys; do
    [ "$(redis-cli -p "$a" migrate 127.0.0.1 "$b" "$key" 0 5000)" = OK ] || fail "MIGRATE $key failed"
  done
  echo "$keys" | grep -qxF "$k" || fail "$k is not in slot $slot on $a: $keys"
  [ "$(redis-cli -p "$a" cluster countkeysinslot "$slot")" = 0 ] || fail "keys of slot $slot still on $a"
  near_on 10 || fail "the near cache went off during the migration"
  r0=$(metric cachesvc_near_resent_total)
  e0=$(metric cachesvc_near_entries)
  for _ in 1 2 3; do
    [ "$(src cu "$id")" = cache ] || fail "cu $id not answered from the cache during the migration"
  done
  metric_ge cachesvc_near_resent_total $((r0 + 1)) || fail "no watched read counted as resent (no ASK?)"
  # the key deleted where it lives now (b: it tracks nothing of this client's)
  redis-cli -c -p "$a" del "$k" >/dev/null
  [ "$(redis-cli -c -p "$a" exists "$k")" = 0 ] || fail "$k survived its DEL"
  local s
  s=$(src cu "$id")
  # finish the migration either way
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$slot" node "$bid" >/dev/null; done
  if [ "$resend" = true ]; then
    [ "$s" != cache ] || fail "after its DEL in Redis cu $id was still answered from the cache (held untracked)"
    [ "$(metric cachesvc_near_entries)" -le "$e0" ] || fail "near entries grew from $e0 to $(metric cachesvc_near_entries) with ASKed reads"
    ok "watched GETs ASKed to the importing master: served ($(( $(metric cachesvc_near_resent_total) - r0 )) resent), never stored; after the key's DEL: source $s"
  else
    [ "$s" = cache ] || fail "negative control: the ASKed reply was not held (source $s): the test proves nothing"
    ok "negative control (cluster_near_resend_check = off): the ASKed reply was stored untracked and is served after its key was deleted in Redis"
  fi
}

# gens: a generation message through another master while the first seed's pub/sub is down.
# The first seed named in nodes is a replica: stopped, the data path (masters only) goes on,
# and a pub/sub connection pinned to it (review R6) would hear nothing more.
case_gens() {
  local p rep="" s0 g s=cache
  for p in ${RC_NODES//,/ }; do
    case ",$RC_MASTERS," in *",$p,"*) ;; *) rep=$p; break ;; esac
  done
  [ -n "$rep" ] || fail "no replica in the cluster: $RC_NODES / $RC_MASTERS"
  s0=${rep##*:}
  RC_NODES="$rep,$RC_MASTERS" near_config "$WORK/cs.ini" true true 0 # R6: no near cache needed
  start_streaming "$WORK/cs.ini"
  # one subscriber of the generations channel on every master (PUBSUB is per node);
  # CS_GENS_ONLY_BUMP=1 skips this check (the negative control by hand: an older build,
  # subscribed on the first seed only, must then fail the bump below)
  if [ -z "${CS_GENS_ONLY_BUMP:-}" ]; then
    for p in ${RC_MASTERS//,/ }; do
      until_true 10 eval '[ "$(redis-cli -p "${p##*:}" pubsub numsub "$NS:gen" | tail -1)" -ge 1 ]' ||
        fail "master $p has no subscriber of $NS:gen"
    done
    ok "every master has a subscriber of the generations channel"
  fi
  fill cu 7
  [ "$(src cu 7)" = cache ] || fail "cu 7 not cached"
  redis-cli -p "$s0" shutdown nosave >/dev/null 2>&1 || true
  until_true 10 eval '! redis_port_pong $s0' || fail "the first seed $rep did not stop"
  # a pub/sub connection dropped makes the generations unknown until the next poll (1 s):
  # served again first, so that the bypass of that window cannot pass for the message's
  # effect
  until_true 10 eval '[ "$(src cu 7)" = cache ]' || fail "cu 7 not served from the cache after the first seed stopped"
  # announced only (Redis's copies stay behind: the generations poll cannot learn it), on a
  # master
  g=$(( $(gen_of 0) + 5 ))
  p=${RC_MASTERS%%,*}
  redis-cli -p "${p##*:}" publish "$NS:gen" "cu $g" >/dev/null
  until_true 10 eval 's=$(src cu 7); [ "$s" != cache ]' || true
  [ "$s" != cache ] || fail "the bump published on $p never reached the daemon (first seed $rep down)"
  ok "a generation published on master $p reached the daemon while the first seed ($rep, a replica) was down"
}

# n3 [neg]: review12 N3. The periodic slot map refresh set to 10 min (cluster_refresh_interval):
# a keyless slot inside a master's range (no heartbeat, bucket or entry key in it: nothing
# read from it, so no MOVED) handed to another master: the near cache's heartbeat asks the
# map again every second, so the near cache is flushed (the slot map changed) within 10 s.
# n3neg (cluster_near_refresh = off): not flushed in those 10 s (the map waits for a MOVED or
# the periodic refresh).
case_n3() {
  local neg=${1:-} slot owner to toid p f0 stop flushed=false
  near_config "$WORK/cs.ini"
  sed -i "s|^cluster = on|&\ncluster_refresh_interval = 600s|" "$WORK/cs.ini"
  [ "$neg" != neg ] || sed -i "s|^cluster = on|&\ncluster_near_refresh = false|" "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  near_on || fail "the near cache never came on: $(grep -i near "$WORK/cachesvc.log" | tail -5)"
  hold 1 2 3
  for slot in $(seq 100 16383); do
    owner=$(port_of_slot "$slot")
    [ -n "$owner" ] && [ "$(port_of_slot $((slot - 1)))" = "$owner" ] &&
      [ "$(port_of_slot $((slot + 1)))" = "$owner" ] &&
      [ "$(redis-cli -p "$owner" cluster countkeysinslot "$slot")" = 0 ] && break
  done
  for to in "${RC_PORTS[@]}"; do [ "$to" != "$owner" ] && break; done
  toid=$(redis-cli -p "$to" cluster myid)
  metric_is cachesvc_near_on 1 || near_on 10 || fail "the near cache went off before the move"
  f0=$(metric cachesvc_near_flushes_total)
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$slot" node "$toid" >/dev/null; done
  stop=$((SECONDS + 10))
  while [ $SECONDS -lt $stop ]; do
    if metric_ge cachesvc_near_flushes_total $((f0 + 1)); then flushed=true; break; fi
    sleep 0.3
  done
  if [ "$neg" = neg ]; then
    [ "$flushed" = false ] || fail "n3neg: flushed without the heartbeat's map refresh: the test proves nothing ($(grep 'near cache' "$WORK/cachesvc.log" | tail -2))"
    ok "n3neg: negative control (cluster_near_refresh = off): slot $slot handed from $owner to $to, the near cache not flushed in 10 s"
  else
    [ "$flushed" = true ] || fail "n3: slot $slot moved from $owner to $to: the near cache was not flushed within 10 s (periodic refresh 600 s)"
    grep -q 'near cache: flushed (the slot map changed)' "$WORK/cachesvc.log" ||
      fail "n3: the flush was not the slot map's: $(grep 'near cache' "$WORK/cachesvc.log" | tail -3)"
    ok "n3: slot $slot handed from $owner to $to with no MOVED and the periodic refresh at 600 s: the near cache flushed (the slot map changed) within 10 s"
  fi
}

# l2: review 13 L2. A master's lowest slot put MIGRATING to another master with its keys
# moved (the first step of a reshard: redis-cli moves a source's slots in ascending order):
# the near cache stays on for 15 s (every master's heartbeat in a slot it keeps: its highest).
# Negative control by hand: the build before the fix (heartbeat in the lowest slot), e.g.
# CS_BUILD=/work/main/build-lay cluster_near.sh l2: that master's heartbeats answer ASK, the
# near cache goes off.
l2_keys_only_hb() { # PORT SLOT: the slot holds no key but heartbeat keys
  ! redis-cli -p "$1" cluster getkeysinslot "$2" 100 | grep -v '^$' | grep -qv ':nhb:'
}
case_l2() {
  local a="" lo b bid aid p keys e0 stop off=false
  near_config "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  near_on || fail "the near cache never came on: $(grep -i near "$WORK/cachesvc.log" | tail -5)"
  hold 1 2 3
  # a master whose lowest slot holds no key of the cache's own (buckets, entries)
  while read -r start _ _ port _; do
    if l2_keys_only_hb "$port" "$start"; then a=$port lo=$start; break; fi
  done < <(redis-cli -p "${RC_PORTS[0]}" cluster slots | paste - - - - - - | sort -n)
  [ -n "$a" ] || fail "l2: every master's lowest slot holds cache keys"
  for b in "${RC_PORTS[@]}"; do [ "$b" != "$a" ] && break; done
  aid=$(redis-cli -p "$a" cluster myid)
  bid=$(redis-cli -p "$b" cluster myid)
  redis-cli -p "$b" cluster setslot "$lo" importing "$aid" >/dev/null
  redis-cli -p "$a" cluster setslot "$lo" migrating "$bid" >/dev/null
  mapfile -t keys < <(redis-cli -p "$a" cluster getkeysinslot "$lo" 100 | grep -v '^$')
  [ ${#keys[@]} = 0 ] || redis-cli -p "$a" migrate 127.0.0.1 "$b" "" 0 5000 keys "${keys[@]}" >/dev/null
  e0=$(metric cachesvc_near_echo_lost_total)
  stop=$((SECONDS + 15))
  while [ $SECONDS -lt $stop ]; do
    metric_is cachesvc_near_on 1 || { off=true; break; }
    sleep 0.5
  done
  [ "$off" = false ] || fail "l2: the near cache went off while master $a's lowest slot $lo migrates (${#keys[@]} keys moved): $(grep 'near cache' "$WORK/cachesvc.log" | tail -3)"
  [ "$(metric cachesvc_near_echo_lost_total)" = "$e0" ] || fail "l2: echoes lost while slot $lo migrates"
  hold 4
  ok "l2: master $a's lowest slot $lo migrating to $b (${#keys[@]} keys moved): the near cache stayed on for 15 s, hits go on"
  # the slot finished on b: the map changes (flushed, stays on)
  mapfile -t keys < <(redis-cli -p "$a" cluster getkeysinslot "$lo" 100 | grep -v '^$')
  [ ${#keys[@]} = 0 ] || redis-cli -p "$a" migrate 127.0.0.1 "$b" "" 0 5000 keys "${keys[@]}" >/dev/null
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$lo" node "$bid" >/dev/null; done
  near_on 20 || fail "l2: the near cache did not stay or come back on once slot $lo moved"
  hold 5
  ok "l2: slot $lo finished on $b: the near cache on, hits go on"
}

# l7: review 13 L7. The engine alone (shard_drive --stdin) with its first master's pub/sub
# connection failing at start (--psn-fail 1, as on out of memory): it starts (before the fix:
# "[redis] nodes: no pub/sub connections made", exit 2), the failure is logged, the master is
# tried again (every 5 s) until every master has its subscriber of the generations channel,
# and the near cache comes on (every master's tracking proven). Negative control by hand: the
# fatal psn_setup (return -1 when a connection is missing) fails the first check.
l7_subscribed() {
  local p
  for p in ${RC_MASTERS//,/ }; do
    [ "$(redis-cli -p "${p##*:}" pubsub numsub "$NS:gen" | tail -1)" -ge 1 ] || return 1
  done
}
l7_near_on() {
  local l on=""
  echo "metrics cachesvc_near_on" >&"${L7[1]}"
  while read -r -t 10 l <&"${L7[0]}"; do
    [ "$l" = end ] && break
    case $l in "cachesvc_near_on "*) on=${l#* } ;; esac
  done
  [ "$on" = 1 ]
}
case_l7() {
  local line=""
  near_config "$WORK/cs.ini"
  coproc L7 { exec "$CS_BUILD/tests/integration/shard_drive" --psn-fail 1 --stdin "$WORK/cs.ini" cu 2>"$WORK/drive.log"; }
  CLEANUPS+=("kill $L7_PID")
  read -r -t 60 line <&"${L7[0]}" || true
  [ "$line" = ready ] || fail "l7: the engine did not start with one pub/sub connection failed (got '$line'): $(tail -3 "$WORK/drive.log")"
  grep -q 'pub/sub on .*failed by the test hook' "$WORK/drive.log" || fail "l7: no pub/sub connection failed: $(grep -i pub/sub "$WORK/drive.log" | tail -3)"
  until_true 30 l7_subscribed || fail "l7: a master never got its generations subscriber: $(for p in ${RC_MASTERS//,/ }; do redis-cli -p "${p##*:}" pubsub numsub "$NS:gen" | tail -1; done | paste -sd' ')"
  until_true 30 l7_near_on || fail "l7: the near cache never came on: $(grep 'near cache' "$WORK/drive.log" | tail -3)"
  echo quit >&"${L7[1]}"
  ok "l7: one master's pub/sub connection failed at start: the engine started, the master was tried again, every master subscribed and the near cache came on"
}

# n6 [neg]: review12 N6. 12 keys on the 3 masters held near; an UPDATE of all of them: every
# held entry is dropped by its own master's tracking message and the daemon answers the new
# rows. n6neg (cluster_near_untracked_node = one master: its heartbeats tracked, so the near
# cache comes on, but its reads stored untracked): that master's keys keep answering their old
# rows from the near cache after the UPDATE was invalidated, the other masters' do not - the
# per-master check above is what finds one master's tracking missing.
case_n6() {
  local neg=${1:-} id p m ports=() lsn d0 stale=() fresh=()
  near_config "$WORK/cs.ini"
  m=${RC_MASTERS%%,*}
  [ "$neg" != neg ] || sed -i "s|^cluster = on|&\ncluster_near_untracked_node = $m|" "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  near_on || fail "the near cache never came on: $(grep -i near "$WORK/cachesvc.log" | tail -5)"
  for id in $(seq 1 12); do
    p=$(port_of_slot "$(rc cluster keyslot "$(entry_key "$id")")")
    ports+=("$p")
  done
  [ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" = 3 ] || fail "keys 1-12 are not spread over the 3 masters: ${ports[*]}"
  hold $(seq 1 12)
  d0=$(metric cachesvc_near_dropped_total)
  lsn=$(commit_lsn "UPDATE users SET name = 'n6 ' || id WHERE id <= 12")
  wait_invalidated "$lsn"
  wait_replicas
  # the tracked masters' drops (all 12 without the control) before the rows are read
  local want=0
  for p in "${ports[@]}"; do [ "$neg" = neg ] && [ "$p" = "${m##*:}" ] || want=$((want + 1)); done
  until_true 10 metric_ge cachesvc_near_dropped_total $((d0 + want)) ||
    fail "n6: $(( $(metric cachesvc_near_dropped_total) - d0 )) of $want held entries of tracked masters dropped"
  for id in $(seq 1 12); do
    case $(rows cu "$id") in *"n6 $id"*) fresh+=("$id") ;; *) stale+=("$id:${ports[$((id - 1))]}") ;; esac
  done
  if [ "$neg" = neg ]; then
    [ ${#stale[@]} -gt 0 ] || fail "n6neg: every key answered its new row with master $m untracked: the test proves nothing"
    for p in "${stale[@]}"; do [ "${p#*:}" = "${m##*:}" ] || fail "n6neg: key ${p%%:*} of master ${p#*:} (tracked) answered stale"; done
    ok "n6neg: negative control (cluster_near_untracked_node = $m): ${#stale[@]} keys of that master answered stale from the near cache after the UPDATE (${stale[*]}), the other masters' ${#fresh[@]} fresh"
  else
    [ ${#stale[@]} = 0 ] || fail "n6: keys answered stale after the UPDATE: ${stale[*]}"
    ok "n6: an UPDATE of 12 held keys on the 3 masters: every key answered its new row"
  fi
}

# n2: review12 N2 (review 13 L5: untested). One master refuses every heartbeat with an error
# while both its connections stay up (CONFIG SET maxmemory 1 under noeviction: the heartbeat's
# SET answers -OOM): its proof ages out, so the near cache goes off and stays off while it
# refuses; maxmemory restored, it comes back on. Negative control by hand: cl_heartbeat
# without the age check of a proven master (the rule before N2): the near cache stays on.
case_n2() {
  local m lost0 stop off=true
  near_config "$WORK/cs.ini"
  start_streaming "$WORK/cs.ini"
  near_on || fail "the near cache never came on: $(grep -i near "$WORK/cachesvc.log" | tail -5)"
  hold 1 2 3
  m=${RC_MASTERS%%,*}
  m=${m##*:}
  [ "$(redis-cli -p "$m" config get maxmemory-policy | tail -1)" = noeviction ] || fail "n2: master $m is not noeviction"
  lost0=$(metric cachesvc_near_echo_lost_total)
  CLEANUPS+=("redis-cli -p $m config set maxmemory 0")
  redis-cli -p "$m" config set maxmemory 1 >/dev/null
  until_true 20 metric_is cachesvc_near_on 0 || fail "n2: master $m refused every heartbeat (-OOM) for 20 s and the near cache stayed on"
  metric_ge cachesvc_near_echo_lost_total $((lost0 + 1)) || fail "n2: off, but no lost echo counted"
  stop=$((SECONDS + 8))
  while [ $SECONDS -lt $stop ]; do
    metric_is cachesvc_near_on 0 || { off=false; break; }
    sleep 0.5
  done
  [ "$off" = true ] || fail "n2: the near cache came back on while master $m still refused its heartbeats"
  ok "n2: master $m refusing its heartbeats (-OOM): the near cache off, and off for 8 s more while it refuses"
  redis-cli -p "$m" config set maxmemory 0 >/dev/null
  near_on 30 || fail "n2: the near cache did not come back on once $m took writes again"
  hold 4
  ok "n2: maxmemory restored on $m: the near cache back on, hits resume"
}

# Several parts may share one cluster (cluster_near.sh PART PART...: meson.build's merged pair,
# e1 and its negative control, which would otherwise pay a cluster start and the setup above
# each): run in order; before the next, the previous part's daemon stopped, the cluster settled
# again (cluster_state:ok on every node, none flagged fail) and every cached entry of cu deleted
# on every master, so that the part starts with nothing cached, as on a cluster of its own
# (its daemon new: near cache and metrics empty).
drop_entries() {
  local p k
  for p in "${RC_PORTS[@]}"; do
    [ "$(redis-cli -p "$p" role | head -1)" = master ] || continue
    redis-cli -p "$p" --scan --pattern "{$NS:*}:e:cu:*" | while read -r k; do
      redis-cli -p "$p" del "$k" >/dev/null
    done
    [ -z "$(redis-cli -p "$p" --scan --pattern "{$NS:*}:e:cu:*")" ] ||
      fail "entries of cu left on $p"
  done
}
prev=
for PART in "${@:-basic}"; do
  if [ -n "$prev" ]; then
    [ "$PART" != gens ] || fail "part gens needs a cluster of its own (replicas)"
    for pid in "${DAEMON_PIDS[@]}"; do
      ! kill -0 "$pid" 2>/dev/null || stop_daemon "$pid" ||
        fail "part $PART: part $prev's daemon $pid exited with an error"
    done
    until_true 60 cluster_settled || fail "part $PART: the cluster did not settle after part $prev"
    drop_entries
    echo "---- part $PART (same cluster)"
  fi
  prev=$PART
  case $PART in
    basic) case_basic ;;
    e1) case_e1 ;;
    e1neg) case_e1 neg ;;
    gens) case_gens ;;
    n3) case_n3 ;;
    n3neg) case_n3 neg ;;
    l2) case_l2 ;;
    l7) case_l7 ;;
    n6) case_n6 ;;
    n6neg) case_n6 neg ;;
    n2) case_n2 ;;
    *) fail "unknown part $PART" ;;
  esac
done
