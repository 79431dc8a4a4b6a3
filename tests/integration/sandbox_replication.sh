#!/usr/bin/env bash
# sandbox_replication.sh - a row written on the primary shows up on every replica,
# and on the delayed replica only after its apply delay.
. "$(dirname "$0")/lib.sh"

db=$(unique_name repl)
primary postgres -c "CREATE DATABASE $db"
trap 'primary postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

# Wait until the CREATE DATABASE itself is replayed everywhere.
db_on() { [ "$(replica "$1" postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 1 ]; }
for i in $(seq 1 "$CS_PG_REPLICAS"); do
  until_true 60 db_on "$i" || fail "replica$i never saw database $db"
done

primary "$db" -c "CREATE TABLE t (id int PRIMARY KEY, v text)"
token=$RANDOM$RANDOM
start=$SECONDS
primary "$db" -c "INSERT INTO t VALUES (1, '$token')"
lsn=$(primary "$db" -c "SELECT pg_current_wal_lsn()")

row_on() { [ "$(replica "$1" "$db" -c "SELECT v FROM t WHERE id = 1" 2>/dev/null)" = "$token" ]; }

for i in $(seq 1 "$CS_PG_REPLICAS"); do
  if [ "$i" = "${CS_PG_DELAYED_REPLICA:-0}" ]; then
    continue
  fi
  until_true 30 row_on "$i" || fail "row not on replica$i after 30 s"
  ok "replica$i has the row"
done

if [ "${CS_PG_DELAYED_REPLICA:-0}" != 0 ]; then
  d=$CS_PG_DELAYED_REPLICA
  # Right after the commit, the delayed replica must not show it yet (its apply
  # delay is at least a second; we look well within it).
  if [ $((SECONDS - start)) -lt 1 ] && row_on "$d"; then
    fail "delayed replica$d shows the row before its apply delay"
  fi
  until_true 60 row_on "$d" || fail "row not on delayed replica$d after 60 s"
  replay=$(replica "$d" "$db" -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")
  [ "$replay" = t ] || fail "delayed replica$d replay LSN is behind the commit it shows"
  ok "delayed replica$d has the row after $((SECONDS - start)) s"
fi
