#!/usr/bin/env bash
# restart_pubgap.sh - review 35 R35-3, the restart variant of reload_pubgap.sh: a table added to
# the publication, then a restart whose config has a new query invalidated by it. A change to
# the table committed before the ALTER PUBLICATION was never streamed, and one committed after
# it was decoded by the old process without a query to map it to: no per-key fence exists for
# either. The new process finds no definition of the query recorded in Redis (keyspace.h
# <ns>:qd:<q>) and bumps its generation with a query-level fence at the primary's position, so
# fills from a replica that has not replayed those changes are refused.
# Key 1 is changed before the ALTER, key 2 after it; replica 1 (the only one) is paused before
# both. Positive: daemon D2 (query qb on b) reads both keys while the replica is paused; once it
# has replayed them, both answer the new value.
# Negative control: the engine alone (shard_drive --no-definitions: the record neither read nor
# written, so nothing is bumped at its start), query qc on table c with the same history, reads
# while paused, then after the replica replayed and the invalidator passed everything, key 1 is
# still the old row, from the cache.
. "$(dirname "$0")/daemon_lib.sh"
DRIVE=$CS_BUILD/tests/integration/shard_drive

users_db 3 "CREATE TABLE b (id bigint PRIMARY KEY, v text);" \
  "CREATE TABLE c (id bigint PRIMARY KEY, v text);" \
  "INSERT INTO b VALUES (1, 'old'), (2, 'old');" "INSERT INTO c VALUES (1, 'old'), (2, 'old');"
FENCE=on EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = off" write_config "$WORK/base.ini"
cp "$WORK/base.ini" "$WORK/cs.ini"
user_query u >>"$WORK/cs.ini"
inv() {
  cat <<INI

[invalidator]
enabled = true
slot = $SLOT
publication = cs_pub
status_interval = 10s
INI
}
inv >>"$WORK/cs.ini"
start_streaming "$WORK/cs.ini" d1
# published writes on users all along (a busy primary: the horizon stays behind)
( while :; do primary "$DB" -c "UPDATE users SET name = name WHERE id = 3" >/dev/null 2>&1; sleep 0.2; done ) &
WRITER=$!
CLEANUPS+=("kill $WRITER" "replica 1 $DB -c 'SELECT pg_wal_replay_resume()'")
sleep 2
wait_replicas
replica 1 "$DB" -c "SELECT pg_wal_replay_pause()" >/dev/null
primary "$DB" -c "UPDATE b SET v = 'new' WHERE id = 1; UPDATE c SET v = 'new' WHERE id = 1" >/dev/null
primary "$DB" -c "ALTER PUBLICATION cs_pub ADD TABLE b, c" >/dev/null
primary "$DB" -c "UPDATE b SET v = 'new' WHERE id = 2; UPDATE c SET v = 'new' WHERE id = 2" >/dev/null
# the old process decodes (and confirms) the changes after the ALTER with no query on b or c
wait_invalidated "$(primary "$DB" -c 'SELECT pg_current_wal_lsn()')"
stop_daemon

# ---- positive: a restart with query qb ----
{ cat "$WORK/base.ini"; user_query u
  printf '\n[query qb]\nsql = SELECT id, v FROM b WHERE id = $1\nparams = id:int8\ninvalidate_on = b(id = $1)\n'
  inv; } >"$WORK/b.ini"
start_streaming "$WORK/b.ini" d2
for k in 1 2; do
  for _ in 1 2 3 4 5 6; do cli --json get qb "$k" >/dev/null 2>&1; sleep 0.3; done
done
metric_ge cachesvc_definition_bumps_total 1 || fail "qb was not bumped at the start: $(metric cachesvc_definition_bumps_total)"
stop_daemon

# ---- negative control: the same with the record off, query qc on c ----
{ cat "$WORK/base.ini"; user_query u
  printf '\n[query qc]\nsql = SELECT id, v FROM c WHERE id = $1\nparams = id:int8\ninvalidate_on = c(id = $1)\n'
  inv; } >"$WORK/c.ini"
coproc DRV { "$DRIVE" --stdin --no-definitions "$WORK/c.ini" qc 2>"$WORK/drive.err"; }
DPID=$DRV_PID
CLEANUPS+=("kill $DPID")
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
until_true 30 eval '[ "$(dmetric cachesvc_invalidator_state)" = 3 ]' || fail "control: the driver's invalidator never streamed"
for k in 1 2; do
  for _ in 1 2 3 4 5 6; do dget "$k" >/dev/null; sleep 0.3; done
done

kill $WRITER
replica 1 "$DB" -c "SELECT pg_wal_replay_resume()" >/dev/null
wait_replicas
want=$(lsn_num "$(primary "$DB" -c 'SELECT pg_current_wal_lsn()')")
until_true 30 eval 'awk -v a="$(dmetric cachesvc_invalidator_confirmed_lsn)" -v b="$want" "BEGIN { exit !(a >= b) }"' ||
  fail "control: the driver's invalidator never passed $want"
l=$(dget 1)
[[ $l == *"src=cache"*"old"* ]] || fail "control: with the record off, key 1 was expected stale (old, from the cache) after the replica replayed the change: $l"
echo quit >&7
wait "$DPID" 2>/dev/null || true
ok "control: with the record off the new query keeps key 1's old row ($l)"

# ---- the positive side's verdict, after the replica replayed everything ----
start_streaming "$WORK/b.ini" d3
wait_invalidated "$(primary "$DB" -c 'SELECT pg_current_wal_lsn()')"
metric_is cachesvc_definition_bumps_total 0 || fail "a restart with qb unchanged bumped it again"
for k in 1 2; do
  r=$(cli --json get qb "$k") || fail "get qb $k: $r"
  grep -q '"new"' <<<"$r" || fail "key $k: the old row after the replica replayed the change (a fill of data older than the new query's start): $r"
done
stop_daemon
ok "a new query at a restart, on a table just added to the publication: no entry filled from data older than its start (key 1 changed before the ALTER, key 2 after: both answer the new row)"
