#!/usr/bin/env bash
# reload_pubgap.sh - review 34 R34-1: a table added to the publication, then a reload adding a
# query that invalidates on it. A change to the table committed before the ALTER PUBLICATION
# is never streamed, and one committed before the reload was not mapped to the new query: a
# fill of the new query from a replica that has not replayed such a change must be refused.
# The reload bumps the new query's generation with a query-level fence at the primary's
# position read by the reload's publication check (past the ALTER). Key 1 is changed before
# the ALTER, key 2 after it; the replica is paused before both; after it replays them and the
# invalidator passes them, both keys answer the new value (before the fix, key 1 kept coming
# from the cache with its old value: the reviewer's run, /work/wt/notes/review34_pubgap.out).
. "$(dirname "$0")/daemon_lib.sh"

users_db 3 "CREATE TABLE b (id bigint PRIMARY KEY, v text);" \
  "INSERT INTO b VALUES (1, 'old'), (2, 'old');"
FENCE=on EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = off" write_config "$WORK/cs.ini"
user_query u >>"$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<INI

[invalidator]
enabled = true
slot = $SLOT
publication = cs_pub
status_interval = 10s
INI
start_streaming "$WORK/cs.ini"
primary "$DB" -c "SELECT count(*) FROM pg_publication_tables WHERE pubname='cs_pub' AND tablename='b'"
# published writes on users: fences written all along, so the horizon stays behind (the
# ordinary state of a busy primary; a quiet invalidator's horizon follows its position)
( while :; do primary "$DB" -c "UPDATE users SET name = name WHERE id = 3" >/dev/null 2>&1; sleep 0.2; done ) &
WRITER=$!
CLEANUPS+=("kill $WRITER")
sleep 3
wait_replicas
wait_replicas
replica 1 "$DB" -c "SELECT pg_wal_replay_pause()" >/dev/null
primary "$DB" -c "UPDATE b SET v = 'new' WHERE id = 1" >/dev/null # before the ALTER: not streamed
primary "$DB" -c "ALTER PUBLICATION cs_pub ADD TABLE b" >/dev/null
primary "$DB" -c "UPDATE b SET v = 'new' WHERE id = 2" >/dev/null # after it: streamed
printf '\n[query qb]\nsql = SELECT id, v FROM b WHERE id = $1\nparams = id:int8\ninvalidate_on = b(id = $1)\n' >>"$WORK/cs.ini"
kill -HUP "$DAEMON_PID"
until_true 15 grep -q 'reloaded \|reload refused' "$WORK/cachesvc.log" || fail "no reload outcome"
grep -q 'reloaded ' "$WORK/cachesvc.log" || fail "the reload was refused: $(grep -a 'reload refused' "$WORK/cachesvc.log")"
until_true 15 streaming || fail "not streaming after the reload"
# reads while the replica still has the old rows: fills of them must be refused
for k in 1 2; do
  for _ in 1 2 3 4 5 6; do cli --json get qb "$k" >/dev/null 2>&1; sleep 0.3; done
done
kill $WRITER
replica 1 "$DB" -c "SELECT pg_wal_replay_resume()" >/dev/null
wait_replicas
wait_invalidated "$(primary "$DB" -c 'SELECT pg_current_wal_lsn()')"
for k in 1 2; do
  r=$(cli --json get qb "$k") || fail "get qb $k: $r"
  grep -q '"new"' <<<"$r" || fail "key $k: the old row after the replica replayed the change and the invalidator passed it (filled from data older than the reload's fence): $r"
done
ok "a new query on a table just added to the publication: no entry filled from data older than the reload (key 1 changed before the ALTER, key 2 after: both answer the new row)"
