#!/usr/bin/env bash
# inval_leader.sh - two processes configured as invalidators on one slot: one streams, the
# other stands by; kill -9 the leader and the standby takes over, nothing missed.
. "$(dirname "$0")/daemon_lib.sh"

users_db 20
FENCE=on
inval_config "$WORK/a.ini" ld_user
PORT_A=$PORT APORT_A=$APORT
start_streaming "$WORK/a.ini" a
PID_A=$DAEMON_PID
PORT=$(free_port); APORT=$(free_port); SOCK=$WORK/b.sock
inval_config "$WORK/b.ini" ld_user
start_daemon "$WORK/b.ini" b
PID_B=$DAEMON_PID
until_true 30 metric_is cachesvc_invalidator_state 1 || fail "b is not standing by: state $(metric cachesvc_invalidator_state)"
grep -q "standing by" "$WORK/b.log" || fail "b did not log standing by"
ok "one invalidator streams (a), the other stands by (b)"

fill ld_user 3
kill -KILL "$PID_A"
lsn=$(commit_lsn "UPDATE users SET name = 'three' WHERE id = 3")
until_true 40 streaming || fail "b never took over (state $(metric cachesvc_invalidator_state))"
ok "a killed: b took over the slot"
wait_invalidated "$lsn"
cached ld_user 3 && fail "the change made while nobody led was missed"
[ "$(cli --json get ld_user 3 | json rows)" = '[[3, "three"]]' ] || fail "stale read after the takeover"
ok "the change committed during the takeover was invalidated"
