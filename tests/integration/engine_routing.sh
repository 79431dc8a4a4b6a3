#!/usr/bin/env bash
# engine_routing.sh - routing by health and lag: a replica stopped -> traffic moves with no
# client error; lag above the bound -> that replica skipped; all replicas down -> primary
# fallback or a clear UNAVAILABLE, per config. Stops a replica: on a private sandbox, so it runs
# beside the others.
. "$(dirname "$0")/daemon_lib.sh"
use_private_sandbox --replicas 3 --delay 2s

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v text);
INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 1000) i;
SQL
queries() {
  cat <<'INI'

[query ro_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
INI
}
served_by() { metric "cachesvc_pg_queries_total{server=\"$1\"}"; }

# --- 1. replica1 stops mid-traffic: requests move to replica2 -------------------------------
write_config "$WORK/a.ini" replica1 replica2
queries >>"$WORK/a.ini"
start_daemon "$WORK/a.ini" a
out=$("$BURST" -p "$PORT" -c 4 -n 50 -r ro_item %i)
[ "$(echo "$out" | json ok)" = 200 ] || fail "warm-up burst: $out"
[ "$(served_by r1)" -gt 0 ] && [ "$(served_by r2)" -gt 0 ] || fail "load not spread: r1=$(served_by r1) r2=$(served_by r2)"
ok "both replicas serve: r1=$(served_by r1) r2=$(served_by r2)"

rep1_dir=$SB/replica1
restart_replica1() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$CS_PG_BIN/pg_ctl" -D "$rep1_dir" -w -l "$CS_SANDBOX_DIR/log/replica1.log" start
  else "$CS_PG_BIN/pg_ctl" -D "$rep1_dir" -w -l "$CS_SANDBOX_DIR/log/replica1.log" start; fi
}
if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$CS_PG_BIN/pg_ctl" -D "$rep1_dir" -m fast -w stop >/dev/null
else "$CS_PG_BIN/pg_ctl" -D "$rep1_dir" -m fast -w stop >/dev/null; fi
r2_before=$(served_by r2)
out=$("$BURST" -p "$PORT" -c 4 -n 50 -r ro_item %i)
[ "$(echo "$out" | json ok)" = 200 ] || fail "requests failed while replica1 was down: $out"
[ "$(echo "$out" | json primary)" = 0 ] || fail "went to the primary with replica2 up: $out"
[ $(( $(served_by r2) - r2_before )) -ge 200 ] || fail "replica2 did not take the traffic"
[ "$(metric 'cachesvc_pg_up{server="r1",role="replica"}')" = 0 ] || fail "r1 not marked down"
ok "replica1 stopped: all 200 requests answered by replica2, no client error"

restart_replica1 >/dev/null
until_true 30 metric_is 'cachesvc_pg_up{server="r1",role="replica"}' 1 || fail "r1 never came back"
r1_before=$(served_by r1)
"$BURST" -p "$PORT" -c 4 -n 50 -r ro_item %i >/dev/null
[ "$(served_by r1)" -gt "$r1_before" ] || fail "r1 back up but gets no traffic"
ok "replica1 back: it is retried and serves again"
stop_daemon || fail "daemon a exit status"

# --- 2. lag above max_replica_lag: the delayed replica is skipped ---------------------------
if [ "${CS_PG_DELAYED_REPLICA:-0}" != 0 ]; then
  PORT=$(free_port); APORT=$(free_port); SOCK=$WORK/b.sock
  EXTRA_SERVICE="max_replica_lag = 500ms
primary_fallback = false"
  write_config "$WORK/b.ini" replica1 "replica$CS_PG_DELAYED_REPLICA"
  queries >>"$WORK/b.ini"
  start_daemon "$WORK/b.ini" b
  # keep the primary writing so the delayed replica has something to lag behind on
  ( for i in $(seq 60); do primary "$DB" -c "UPDATE items SET v = v WHERE id = 1" >/dev/null; sleep 0.05; done ) &
  writer=$!
  r2_lagging() { awk -v v="$(metric 'cachesvc_pg_lag_seconds{server="r2"}')" 'BEGIN { exit !(v >= 0.5) }'; }
  until_true 20 r2_lagging || fail "the delayed replica never showed lag: $(metric 'cachesvc_pg_lag_seconds{server="r2"}')"
  r2_before=$(served_by r2)
  out=$("$BURST" -p "$PORT" -c 2 -n 50 -r ro_item %i)
  wait "$writer"
  [ "$(echo "$out" | json ok)" = 100 ] || fail "lag test burst: $out; $(http /metrics | grep -E 'pg_(lag|up)')"
  [ "$(served_by r2)" = "$r2_before" ] || fail "the lagging replica served $(( $(served_by r2) - r2_before )) requests"
  ok "a replica lagging past max_replica_lag gets no traffic"
  stop_daemon || fail "daemon b exit status"
fi

# --- 3. all replicas down: primary fallback, or UNAVAILABLE -------------------------------------
redis flushdb >/dev/null # parts 1-2 cached ro_item 5: these parts must miss
PORT=$(free_port); APORT=$(free_port); SOCK=$WORK/c.sock
EXTRA_SERVICE="primary_fallback = true"
write_config "$WORK/c.ini" down1 down2
queries >>"$WORK/c.ini"
start_daemon "$WORK/c.ini" c
cli --json get ro_item 5 | json source | grep -qx primary || fail "no primary fallback"
ok "all replicas down + primary_fallback = true: answered by the primary"
stop_daemon || fail "daemon c exit status"

PORT=$(free_port); APORT=$(free_port); SOCK=$WORK/d.sock
EXTRA_SERVICE="primary_fallback = false"
write_config "$WORK/d.ini" down1
queries >>"$WORK/d.ini"
start_daemon "$WORK/d.ini" d
redis flushdb >/dev/null
set +e
out=$(cli get ro_item 5 2>&1)
rc=$?
set -e
[ $rc = 1 ] && echo "$out" | grep -qi unavailable || fail "want UNAVAILABLE, got rc=$rc: $out"
ok "all replicas down + primary_fallback = false: a clear UNAVAILABLE ($out)"
