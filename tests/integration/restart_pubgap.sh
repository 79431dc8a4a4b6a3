#!/usr/bin/env bash
# restart_pubgap.sh - review 35 R35-3, the restart variant of reload_pubgap.sh: a table added to
# the publication, then a restart whose config has a new query invalidated by it. A change to
# the table committed before the ALTER PUBLICATION is never streamed, and nothing else fences
# its key: a fill from a replica that has not replayed it would keep the old row for good. The
# new process finds no definition of the query recorded in Redis (keyspace.h <ns>:qd:<q>) and
# bumps its generation with a query-level fence at the primary's position, which refuses such
# fills.
# The hard path: replica 1 (the only one) is paused at P with the slot confirmed at or before P
# (the first daemon stopped with nothing committed after P), so a restarted invalidator starts
# at or before P and its horizon refuses nothing read at P: only the query-level fence can.
# Then key 1 of b and c changes (before the ALTER), the ALTER adds b and c, key 2 changes.
# Positive: daemon D2 (query qb on b) reads b's keys while paused: a fill is refused by the
# query-level fence, none stored; once the replica replayed everything and an invalidator
# passed it, both keys answer the new row. Negative control after it: the engine alone
# (shard_drive --no-definitions: the record neither read nor written, so nothing bumped at its
# start; --no-query-map: the leader's record of its mappings ignored too; no invalidator of its own, so Redis's horizon is still D2's start, at or before the
# replica), query qc on c, reads c's keys while paused: key 1's pre-ALTER row is stored, and
# it still holds it at the end.
. "$(dirname "$0")/daemon_lib.sh"
DRIVE=$CS_BUILD/tests/integration/shard_drive
# a PostgreSQL of its own: the slot must stay at or before the paused replica, and on the
# shared sandbox the other tests' WAL moves it (a CI run)
use_private_sandbox --replicas 1

users_db 3 "CREATE TABLE b (id bigint PRIMARY KEY, v text);" \
  "CREATE TABLE c (id bigint PRIMARY KEY, v text);" \
  "INSERT INTO b VALUES (1, 'old'), (2, 'old');" "INSERT INTO c VALUES (1, 'old'), (2, 'old');"
FENCE=on EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = off" write_config "$WORK/base.ini"
inv() { # STATUS_INTERVAL
  printf '\n[invalidator]\nenabled = true\nslot = %s\npublication = cs_pub\nstatus_interval = %s\n' "$SLOT" "$1"
}
{ cat "$WORK/base.ini"; user_query u; inv 10s; } >"$WORK/cs.ini"
start_streaming "$WORK/cs.ini" d1
writer() { while :; do primary "$DB" -c "UPDATE users SET name = name WHERE id = 3" >/dev/null 2>&1; sleep 0.2; done; }
writer &
WRITER=$!
CLEANUPS+=("kill $WRITER" "replica 1 $DB -c 'SELECT pg_wal_replay_resume()'")
sleep 2
kill $WRITER
wait_invalidated "$(primary "$DB" -c 'SELECT pg_current_wal_lsn()')"
stop_daemon # the slot's position stays where it is now (W): no invalidator runs
slot_w() { primary postgres -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$SLOT'"; }
W=$(slot_w)
# the replica past everything written so far (the position the invalidator wrote to Redis too)
wait_replicas
replica 1 "$DB" -c "SELECT pg_wal_replay_pause()" >/dev/null
until_true 10 eval '[ "$(replica 1 postgres -c "SELECT pg_is_wal_replay_paused()")" = t ]' || fail "replica 1 did not pause"
P=$(replica 1 postgres -c "SELECT pg_last_wal_replay_lsn()") # >= W
primary "$DB" -c "UPDATE b SET v = 'new' WHERE id = 1; UPDATE c SET v = 'new' WHERE id = 1" >/dev/null
primary "$DB" -c "ALTER PUBLICATION cs_pub ADD TABLE b, c" >/dev/null
primary "$DB" -c "UPDATE b SET v = 'new' WHERE id = 2; UPDATE c SET v = 'new' WHERE id = 2" >/dev/null
# published writes on users all along again (a busy primary: fences keep the horizon behind)
writer &
WRITER=$!
CLEANUPS+=("kill $WRITER")

# the path only the query-level fence guards: the slot still at or before the paused replica, so
# the restarted invalidator's horizon (its start position) refuses nothing read there
[ "$(primary postgres -c "SELECT '$(slot_w)'::pg_lsn <= '$P'::pg_lsn")" = t ] ||
  fail "setup: the slot moved past the paused replica ($(slot_w) > $P)"

# ---- positive: a restart with query qb ----
{ cat "$WORK/base.ini"; user_query u
  printf '\n[query qb]\nsql = SELECT id, v FROM b WHERE id = $1\nparams = id:int8\ninvalidate_on = b(id = $1)\n'
  inv 10s; } >"$WORK/b.ini"
start_streaming "$WORK/b.ini" d2
for k in 1 2; do
  for _ in 1 2 3 4 5 6; do cli --json get qb "$k" >/dev/null 2>&1; sleep 0.3; done
done
metric_ge cachesvc_definition_bumps_total 1 || fail "qb was not bumped at the start: $(metric cachesvc_definition_bumps_total)"
metric_ge cachesvc_fill_refused_query_fence_total 1 ||
  fail "no fill refused by the query-level fence (refused by the horizon: $(metric cachesvc_fill_refused_horizon_total)): the test did not take its path"
stop_daemon

# ---- negative control: query qc with the record off ----
{ cat "$WORK/base.ini"; user_query u
  printf '\n[query qc]\nsql = SELECT id, v FROM c WHERE id = $1\nparams = id:int8\ninvalidate_on = c(id = $1)\n'
  } >"$WORK/c.ini" # no invalidator: d2 streamed and stopped, its horizon (its start) stays
coproc DRV { "$DRIVE" --stdin --no-definitions --no-query-map "$WORK/c.ini" qc 2>"$WORK/drive.err"; }
DPID=$DRV_PID
CLEANUPS+=("kill -9 $DPID")
exec 7>&"${DRV[1]}" 8<&"${DRV[0]}"
read -r -t 60 line <&8 || fail "shard_drive not ready in 60 s: $(cat "$WORK/drive.err")"
[ "$line" = ready ] || fail "shard_drive: $line $(cat "$WORK/drive.err")"
dget() { local l; echo "get $1" >&7; read -r -t 60 l <&8 || fail "shard_drive: no answer: $(cat "$WORK/drive.err")"; echo "$l"; }
dmetric() { # NAME: its value in the driver's /metrics
  local l v=
  echo "metrics $1" >&7
  while read -r -t 60 l <&8; do
    [ "$l" = end ] && break
    [[ $l == "$1 "* ]] && v=${l#* }
  done
  echo "${v:-0}"
}
stored=
for _ in $(seq 1 20); do
  l=$(dget 1)
  [[ $l == *"src=cache"*"old"* ]] && { stored=$l; break; }
  sleep 0.3
done
[ -n "$stored" ] || fail "control: with the record off, key 1's pre-ALTER row was expected to be stored from the paused replica: $l"
echo quit >&7
wait "$DPID" 2>/dev/null || true
exec 7>&- 8<&-
ok "control: with the record off, the new query stored key 1's pre-ALTER row ($stored)"

kill $WRITER
replica 1 "$DB" -c "SELECT pg_wal_replay_resume()" >/dev/null
wait_replicas
start_streaming "$WORK/b.ini" d3
wait_invalidated "$(primary "$DB" -c 'SELECT pg_current_wal_lsn()')"
metric_is cachesvc_definition_bumps_total 0 || fail "a restart with qb unchanged bumped it again"
for k in 1 2; do
  r=$(cli --json get qb "$k") || fail "get qb $k: $r"
  grep -q '"new"' <<<"$r" || fail "key $k: the old row after the replica replayed the change (a fill of data older than the new query's start): $r"
done
# and qb is usable at all (review 36 R36-8: "new" from the database alone would pass the above)
for k in 1 2; do
  fill qb "$k"
  rows qb "$k" | grep -q '"new"' || fail "key $k cached with: $(rows qb "$k")"
done
g=$(redis get "$NS:g:qc")
redis get "$NS:e:qc:${g:-0}:1" | grep -aq old ||
  fail "control: qc's entry for key 1 no longer holds the old row: $(redis get "$NS:e:qc:${g:-0}:1" | tr -c '[:print:]' .)"
stop_daemon
ok "a new query at a restart, on a table just added to the publication: no entry filled from data older than its start (key 1 changed before the ALTER, key 2 after: both answer the new row, then from the cache; the control's entry for key 1 still holds the old one)"
