#!/usr/bin/env bash
# engine_lease.sh - the cross-process miss lease ([redis] lease, DESIGN 4.3): three daemons on
# one Redis and one replica, ~1000 concurrent misses of one key spread over them -> ONE query
# on the replica (counted by the replica itself, pg_stat_statements), every request answered.
# Negative control: the same load with lease = 0 runs one query per daemon (3). And a holder
# killed with -9 in the middle of its query: the others query once the lease lapses; every
# request of theirs is answered, none hangs. And a daemon stopped while it waits on the
# lease exits cleanly.
#
# No timing decides an outcome: the query waits on an advisory lock (a gate) that the test
# holds on the replica, so the first query is still running when every daemon has missed;
# the test opens the gate only once the daemons' metrics (lease on) or the replica's lock
# queue (lease off) show all three misses in place.
. "$(dirname "$0")/daemon_lib.sh"

items_db 1 10 "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
replica_port=$CS_PG_REPLICA1_PORT
GATE=4242
STMT='%pg_advisory_xact_lock_shared%FROM items WHERE id%'
NDAEMONS=3

# ---- helpers ----------------------------------------------------------------------------------
# The gate: an exclusive advisory lock on the replica, held by a psql session fed via a FIFO.
gate_close() {
  rm -f "$WORK/gate.fifo"
  mkfifo "$WORK/gate.fifo"
  pg "$replica_port" "$DB" <"$WORK/gate.fifo" >"$WORK/gate.out" 2>&1 &
  GATE_PID=$!
  exec 7>"$WORK/gate.fifo"
  echo "SELECT pg_advisory_lock($GATE);" >&7
  until_true 20 gate_held || fail "could not take the gate lock on the replica"
}
gate_held() {
  [ "$(pg "$replica_port" "$DB" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $GATE AND mode = 'ExclusiveLock' AND granted")" = 1 ]
}
gate_open() {
  echo "SELECT pg_advisory_unlock_all();" >&7
  exec 7>&-
  wait "$GATE_PID" || fail "the gate session failed: $(cat "$WORK/gate.out")"
}
# queries of the test waiting at the gate on the replica
at_gate() {
  pg "$replica_port" "$DB" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $GATE AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
}
at_gate_is() { [ "$(at_gate)" = "$1" ]; }

# start_set LEASE: NDAEMONS daemons on the same Redis database and replica with
# [redis] lease = LEASE, fences on (fills go through the fence script; the last daemon runs
# the invalidator, which writes the epoch); ports in PORTS[], admin ports in APORTS[], pids in
# PIDS[], configs d<I>.ini. Returns once every daemon reads and fills the cache (probed with
# key 9).
start_set() {
  local lease=$1 i
  PORTS=() APORTS=() PIDS=()
  for i in $(seq 1 $NDAEMONS); do
    PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/d$i.sock
    FENCE=on REQUEST_TIMEOUT=30s EXTRA_REDIS="lease = $lease" write_config "$WORK/d$i.ini" replica1
    cat >>"$WORK/d$i.ini" <<'INI'

[query le_item]
sql = SELECT v, pg_advisory_xact_lock_shared(4242) IS NULL AS gated FROM items WHERE id = $1
params = id:int8
invalidate_on = items(id = $1)
lease = true
INI
    if [ "$i" = $NDAEMONS ]; then
      invalidator_section >>"$WORK/d$i.ini"
      start_streaming "$WORK/d$i.ini" "d$i"
    else
      start_daemon "$WORK/d$i.ini" "d$i"
    fi
    PORTS+=("$PORT") APORTS+=("$APORT") PIDS+=("$DAEMON_PID")
  done
  for i in "${!PORTS[@]}"; do
    PORT=${PORTS[$i]} fill le_item 9
  done
}
# set_lease LEASE: every daemon reloads (SIGHUP) with [redis] lease = LEASE; waits until each
# has logged the reload.
reloaded() { [ "$(grep -c '^.*reloaded ' "$WORK/d$(($1 + 1)).log")" -ge "$2" ]; }
RELOADS=0
set_lease() {
  local i
  RELOADS=$((RELOADS + 1))
  for i in "${!PIDS[@]}"; do
    sed -i "0,/^lease = /s/^lease = .*/lease = $1/" "$WORK/d$((i + 1)).ini" # [redis]'s, the first
    kill -HUP "${PIDS[$i]}"
  done
  for i in "${!PIDS[@]}"; do
    until_true 30 reloaded "$i" "$RELOADS" || fail "daemon $i did not reload: $(tail -3 "$WORK/d$((i + 1)).log")"
  done
}
stop_set() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop_daemon "$pid" || fail "a daemon exited with an error"
  done
}
# The counters this test reads, cachesvc_<name>_total, per daemon: snap I reads daemon I's
# /metrics once into CUR[I,name]; mark copies CUR into BASE (a phase's starting point).
COUNTERS="fills lease_acquired lease_waited lease_served lease_gone lease_timeouts lease_unavailable"
declare -A CUR BASE
snap() {
  local c v
  for c in $COUNTERS; do CUR[$1,$c]=0; done
  while read -r c v; do
    CUR[$1,$c]=$v
  done < <(APORT=${APORTS[$1]} http /metrics |
    awk -v want=" $COUNTERS " '$1 ~ /^cachesvc_.*_total$/ { n = substr($1, 10, length($1) - 15);
      if (index(want, " " n " ")) print n, int($2) }')
}
mark() {
  local i c
  for i in "${!APORTS[@]}"; do
    snap "$i"
    for c in $COUNTERS; do BASE[$i,$c]=${CUR[$i,$c]:-0}; done
  done
}
# delta I NAME: daemon I's increase of a counter since mark; sum NAME: over the live daemons
delta() { snap "$1"; echo $((${CUR[$1,$2]:-0} - ${BASE[$1,$2]:-0})); }
sum() {
  local i t=0
  for i in "${!APORTS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || continue
    t=$((t + $(delta "$i" "$1")))
  done
  echo "$t"
}
sum_is() { [ "$(sum "$1")" = "$2" ]; }
# burst I ID: 20 connections x 17 GETs of le_item(ID) to daemon I, in the background;
# the JSON tally goes to $WORK/burst.I
burst() {
  "$BURST" -p "${PORTS[$1]}" -c 20 -n 17 -t 60000 le_item "$2" >"$WORK/burst.$1" 2>&1 &
  BURST_PIDS[$1]=$!
}
# burst_ok I: the burst finished and every one of its 340 requests got an answer
burst_ok() {
  wait "${BURST_PIDS[$1]}" || fail "burst to daemon $1 failed: $(cat "$WORK/burst.$1")"
  [ "$(jnum ok <"$WORK/burst.$1")" = 340 ] || fail "daemon $1: not every request answered: $(cat "$WORK/burst.$1")"
}
calls() { stmt_calls "$replica_port" "$STMT"; }

# ---- 1. lease on: ~1000 misses over three daemons -> one replica query ------------------------
start_set 10s
mark
before=$(calls)
gate_close
for i in 0 1 2; do burst "$i" 3; done
# one daemon holds the lease and its query waits at the gate; the other two wait on the lease
until_true 30 sum_is lease_waited 2 ||
  fail "the misses did not all reach the lease: acquired $(sum lease_acquired), waited $(sum lease_waited)"
[ "$(sum lease_acquired)" = 1 ] || fail "$(sum lease_acquired) daemons took the lease"
until_true 30 at_gate_is 1 || fail "$(at_gate) queries at the replica (expected the holder's alone)"
gate_open
for i in 0 1 2; do burst_ok "$i"; done
ran=$(($(calls) - before))
[ "$ran" = 1 ] || fail "1020 concurrent misses over 3 daemons ran the query $ran times on the replica"
fills=$(sum fills)
[ "$fills" = 1 ] || fail "$fills fills over the daemons (expected 1)"
served=$(sum lease_served)
[ "$served" = 2 ] || fail "$served lease waits served from the holder's fill (expected 2)"
for k in gone timeouts unavailable; do
  [ "$(sum lease_$k)" = 0 ] || fail "lease_$k = $(sum lease_$k) (expected 0)"
done
[ -z "$(redis keys "$NS:l:*")" ] || fail "the holder did not release the lease: $(redis keys "$NS:l:*")"
ok "lease on: 1020 misses over 3 daemons -> $ran replica query, $fills fill, 2 daemons served the holder's fill"

# ---- 2. negative control, lease = 0 (SIGHUP): the same load -> one query per daemon ------------
set_lease 0
mark
before=$(calls)
gate_close
for i in 0 1 2; do burst "$i" 4; done
until_true 30 at_gate_is 3 || fail "lease off: $(at_gate) queries reached the replica (expected 3)"
gate_open
for i in 0 1 2; do burst_ok "$i"; done
ran=$(($(calls) - before))
[ "$ran" = 3 ] || fail "lease off: the query ran $ran times (expected one per daemon: 3)"
[ "$(sum lease_acquired)$(sum lease_waited)" = 00 ] || fail "lease off took or waited on a lease"
ok "negative control, lease = 0: the same load -> $ran replica queries"

# ---- 2b. [redis] lease on, the query's own lease line removed: a row query's default is no
# lease (CONFIG.md: by kind, aggregates only), so the same load -> one query per daemon -------
for i in 1 2 3; do sed -i '/^\[query le_item\]/,$ { /^lease = /d }' "$WORK/d$i.ini"; done
set_lease 10s
mark
before=$(calls)
gate_close
for i in 0 1 2; do burst "$i" 7; done
until_true 30 at_gate_is 3 || fail "row query without lease: $(at_gate) queries reached the replica (expected 3)"
gate_open
for i in 0 1 2; do burst_ok "$i"; done
ran=$(($(calls) - before))
[ "$ran" = 3 ] || fail "row query without lease: the query ran $ran times (expected one per daemon: 3)"
[ "$(sum lease_acquired)$(sum lease_waited)" = 00 ] || fail "a row query took or waited on a lease by default"
ok "[query] lease by kind: a row query takes no lease by default -> $ran replica queries"
for i in 1 2 3; do sed -i '/^\[query le_item\]/a lease = true' "$WORK/d$i.ini"; done

# ---- 3. the holder killed (-9) in the middle of its query ------------------------------------
set_lease 5s
mark
gate_close
burst 0 5
until_true 30 at_gate_is 1 || fail "the holder's query did not reach the replica"
[ "$(delta 0 lease_acquired)" = 1 ] || fail "daemon 0 did not take the lease"
burst 1 5
burst 2 5
until_true 30 sum_is lease_waited 2 || fail "daemons 1 and 2 did not wait on the lease"
kill -KILL "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
wait "${BURST_PIDS[0]}" 2>/dev/null || true # its clients lose their connection: expected
unset 'PIDS[0]' 'APORTS[0]' 'PORTS[0]'
gate_open
# the lease lapses (5 s after the holder took it): the waiters query (gone), or one of them
# is served the other's fill
for i in 1 2; do burst_ok "$i"; done
queried=$(($(sum lease_gone) + $(sum lease_timeouts)))
served=$(sum lease_served)
[ "$queried" -ge 1 ] && [ $((queried + served)) = 2 ] ||
  fail "after the holder died: $queried waits queried, $served served (expected >= 1 and 2 in all)"
fills=$(sum fills)
[ "$fills" = "$queried" ] || fail "$fills fills for $queried queries of the waiters"
ok "holder killed -9 mid-query: the other daemons queried after the lease lapsed ($queried queried, $served served), 680 requests answered"

# ---- 4. a daemon that stops while it waits on the lease ---------------------------------------
# Two SIGTERMs: exit now, with a flight waiting on the lease (between two re-reads, or with a
# re-read in flight): it answers its clients (SHUTTING_DOWN) and nothing leaks (ASan).
mark
gate_close
burst 1 6
until_true 30 at_gate_is 1 || fail "daemon 1's query did not reach the replica"
burst 2 6
until_true 30 sum_is lease_waited 1 || fail "daemon 2 did not wait on daemon 1's lease"
kill -TERM "${PIDS[2]}"
sleep 0.2
kill -TERM "${PIDS[2]}"
rc=0
wait "${PIDS[2]}" || rc=$?
[ "$rc" = 0 ] || fail "daemon 2, stopped while waiting on the lease, exited with $rc: $(tail -5 "$WORK/d3.log")"
wait "${BURST_PIDS[2]}" 2>/dev/null || true # answered shutting_down, or the connection closed
unset 'PIDS[2]' 'APORTS[2]' 'PORTS[2]'
gate_open
burst_ok 1
ok "a daemon stopped while waiting on the lease exits cleanly; the holder's clients are answered"
stop_set
