#!/usr/bin/env bash
# inval_leader.sh - two processes configured as invalidators on one slot: one streams, the
# other stands by; kill -9 the leader and the standby takes over, nothing missed.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text);
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 20) i;
SQL
FENCE=on
queries() {
  cat <<'INI'

[query ld_user]
sql = SELECT id, name FROM users WHERE id = $1
params = id:int8
invalidate_on = users(id = $1)
INI
  invalidator_section
}
write_config "$WORK/a.ini"; queries >>"$WORK/a.ini"
PORT_A=$PORT APORT_A=$APORT
start_daemon "$WORK/a.ini" a
PID_A=$DAEMON_PID
until_true 30 streaming || fail "a never streamed"
PORT=$(free_port); APORT=$(free_port); SOCK=$WORK/b.sock
write_config "$WORK/b.ini"; queries >>"$WORK/b.ini"
start_daemon "$WORK/b.ini" b
PID_B=$DAEMON_PID
until_true 30 metric_is cachesvc_invalidator_state 1 || fail "b is not standing by: state $(metric cachesvc_invalidator_state)"
grep -q "standing by" "$WORK/b.log" || fail "b did not log standing by"
ok "one invalidator streams (a), the other stands by (b)"

filled_now() { cli --json get "$@" >/dev/null && [ "$(cli --json get "$@" | json source)" = cache ]; }
until_true 20 filled_now ld_user 3 || fail "could not cache ld_user 3"
kill -KILL "$PID_A"
lsn=$(commit_lsn "UPDATE users SET name = 'three' WHERE id = 3")
until_true 40 streaming || fail "b never took over (state $(metric cachesvc_invalidator_state))"
ok "a killed: b took over the slot"
wait_invalidated "$lsn"
cached ld_user 3 && fail "the change made while nobody led was missed"
[ "$(cli --json get ld_user 3 | json rows)" = '[[3, "three"]]' ] || fail "stale read after the takeover"
ok "the change committed during the takeover was invalidated"
