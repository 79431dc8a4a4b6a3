#!/usr/bin/env bash
# pool_lsn_prepared.sh - the LSN statement a job reads before its data query (pgpool.c
# lsn_sql_replica) is prepared once per pooled connection, not parsed and planned by the
# replica on every miss (issue 16, the miss row), and prepared again whenever its statement
# may be gone: after a reload (DEALLOCATE ALL) and on a new connection. Counted on the replica
# itself, from its log: the test database has log_min_duration_statement = 0, so the replica
# logs every Parse, Bind and Execute of the daemon's backends ("parse NAME: SQL").
# What is asserted, on a replica pool of one connection:
#  - 20 misses: 1 parse of cs_lsn_replica, 0 unnamed parses of the LSN SQL, and 20 executes of
#    it (so the log sees every statement: a log that missed them could not pass "exactly 1"),
#    each right before the miss's data statement on the same backend (the LSN is read
#    before the data query's snapshot, REFERENCE.md 6);
#  - a reload that changes the query: its next miss runs DEALLOCATE ALL, then the LSN statement
#    is parsed again (2 in all), and the answer has the new SQL's columns;
#  - the pool's backend terminated: the next miss runs on a new backend, which parses it (3);
#  - the daemon's count, cachesvc_pg_lsn_prepares_total{server="r1"}, is the replica's: 3.
# Negative control: the previous daemon (the LSN query sent unnamed with every job) fails the
# first assertion ("the replica logged 0 executes of cs_lsn_replica for 20 misses").
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE tl (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO tl SELECT i, 'v' || i FROM generate_series(1, 100) i;
SQL
# log every statement of this database's sessions (new sessions on the replica read it from
# the replicated pg_db_role_setting)
primary postgres -c "ALTER DATABASE $DB SET log_min_duration_statement = 0"
wait_replicas
LOG=$CS_SANDBOX_DIR/log/replica1.log
[ -f "$LOG" ] || { echo "SKIP: no replica1 log at $LOG"; exit 77; }
LOG_FROM=$(($(wc -c <"$LOG") + 1))

EXTRA_REPLICA='pool_size = 1' write_config "$WORK/base.ini" replica1
q_section() { printf '\n[query lq]\nsql = %s\nparams = id:int8\nttl = 10m\n' "$1"; }
{ cat "$WORK/base.ini"; q_section 'SELECT id, v FROM tl WHERE id = $1'; } >"$WORK/cs.ini"
start_daemon "$WORK/cs.ini"

# this test's statement lines from the replica's log: "PID KIND NAME WHAT", in order, WHAT =
# lsn (the LSN SQL), dealloc (DEALLOCATE ALL) or - (log_line_prefix '%m [%p] %q%u@%d ':
# "DATE TIME UTC [PID] postgres@DB LOG:  duration: 0.1 ms  parse NAME: SQL"; an execute's NAME
# may carry "/PORTAL")
stmts() {
  tail -c +"$LOG_FROM" "$LOG" | awk -v db="postgres@$DB" '$5 == db && $6 == "LOG:" && $7 == "duration:" {
      pid = $4; gsub(/[][]/, "", pid); kind = $10; name = $11; sub(/:$/, "", name); sub(/\/.*/, "", name)
      what = index($0, "pg_last_wal_replay_lsn") ? "lsn" : $0 ~ /: DEALLOCATE ALL$/ ? "dealloc" : "-"
      print pid, kind, name, what }'
}
count() { stmts | awk -v k="$1" -v n="$2" -v l="${3:-}" '$2 == k && $3 == n && (l == "" || $4 == l) { c++ } END { print c + 0 }'; }
lsn_parses() { count parse cs_lsn_replica; }
executes_are() { [ "$(count execute cs_lsn_replica)" = "$1" ]; }

for i in $(seq 1 20); do
  [ "$(src lq "$i")" = replica ] || fail "miss $i was not answered by the replica"
done
until_true 10 executes_are 20 || fail "the replica logged $(count execute cs_lsn_replica) executes of cs_lsn_replica for 20 misses (expected 20)"
n=$(lsn_parses)
u=$(count parse '<unnamed>' lsn)
[ "$n" = 1 ] && [ "$u" = 0 ] || fail "20 misses on one connection: $n parses of cs_lsn_replica and $u unnamed parses of the LSN SQL (expected 1 and 0)"
# every data execute comes right after an LSN execute of the same backend
bad=$(stmts | awk '$2 == "execute" && $3 ~ /^cs_[0-9a-f]+$/ { if (last[$1] != "cs_lsn_replica") b++ }
  $2 == "execute" { last[$1] = $3 } END { print b + 0 }')
[ "$bad" = 0 ] || fail "$bad data executes not preceded by the LSN statement's execute on their backend"
ok "20 misses on one pooled connection: the LSN statement parsed once, executed 20 times, each before its data query"

# A reload that changes the query: DEALLOCATE ALL, then the LSN statement is prepared again.
{ cat "$WORK/base.ini"; q_section 'SELECT id, v, length(v) AS n FROM tl WHERE id = $1'; } >"$WORK/cs.ini.new"
mv "$WORK/cs.ini.new" "$WORK/cs.ini"
kill -HUP "$DAEMON_PID"
until_true 10 grep -q 'reloaded ' "$WORK/cachesvc.log" || fail "the reload was not logged"
cols=$(cli get lq 21 | sed -n 1p | tr -d ' ')
[ "$cols" = 'id|v|n' ] || fail "after the reload the miss answered with columns $cols (the new SQL's: id|v|n)"
# (the reload's check of the new SQL runs an EXPLAIN through the pool first, with its own LSN
# execute: executes are not counted here)
until_true 10 eval '[ "$(lsn_parses)" -ge 2 ]' || fail "after the reload: $(lsn_parses) parses of cs_lsn_replica (expected 2)"
[ "$(lsn_parses)" = 2 ] || fail "after the reload: $(lsn_parses) parses of cs_lsn_replica (expected 2)"
# (awk reads to the end: under pipefail an early exit would SIGPIPE the writer)
prev=$(stmts | awk '$2 == "parse" && $3 == "cs_lsn_replica" && ++n == 2 { p = last[$1] }
  $2 == "execute" { last[$1] = $4 } END { print p }')
[ "$prev" = dealloc ] || fail "the second parse of cs_lsn_replica did not follow a DEALLOCATE ALL on its backend"
ok "a reload: DEALLOCATE ALL, the LSN statement prepared again (2), the new SQL's answer"

# The pool's backend terminated: the next miss runs on a new connection, which prepares it.
old_pid=$(replica 1 "$DB" -c "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'cachesvc'")
[ -n "$old_pid" ] || fail "no pooled backend of the daemon on replica1"
replica 1 postgres -c "SELECT pg_terminate_backend($old_pid)" >/dev/null
until_true 10 eval '[ -z "$(replica 1 postgres -c "SELECT 1 FROM pg_stat_activity WHERE pid = '"$old_pid"'")" ]' ||
  fail "backend $old_pid did not exit"
for i in 22 23; do
  until_true 10 eval '[ "$(src lq '"$i"')" = replica ]' || fail "miss $i after the backend was terminated failed"
done
until_true 10 eval '[ "$(lsn_parses)" -ge 3 ]' || fail "after a new connection: $(lsn_parses) parses of cs_lsn_replica (expected 3)"
new_pid=$(stmts | awk '$2 == "parse" && $3 == "cs_lsn_replica" { p = $1 } END { print p }')
[ "$new_pid" != "$old_pid" ] || fail "the third parse was on the terminated backend $old_pid"
[ "$(lsn_parses)" = 3 ] || fail "after a new connection: $(lsn_parses) parses of cs_lsn_replica (expected 3)"
n=$(metric 'cachesvc_pg_lsn_prepares_total{server="r1"}')
[ "$n" = 3 ] || fail "cachesvc_pg_lsn_prepares_total{server=\"r1\"} = $n, the replica parsed it 3 times"
ok "a new connection prepares it again (3 on the replica, 3 counted by the daemon)"
