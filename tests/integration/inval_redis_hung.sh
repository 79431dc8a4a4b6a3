#!/usr/bin/env bash
# inval_redis_hung.sh - Redis hangs (SIGSTOP of the sandbox's redis-server) under a streaming
# invalidator (issue 14 item 9): the invalidator backs off instead of churning replication
# connections (exponential from 200 ms, capped at 5 s: at most ~7 reconnects in 10 s; the
# issue saw 33 in 11 s), and streams and invalidates again once Redis resumes. A second
# invalidator on the same slot stands by: it logs "standing by" once (a state change), not
# every second, and its state metric stays 1 (standby).
# Stops its Redis: on a Redis of its own, beside the other tests.
. "$(dirname "$0")/daemon_lib.sh"

use_private_redis
REDIS_PID=$(cat "$WORK/redis/redis.pid")
[ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" || fail "no private redis pid"
CLEANUPS+=('kill -CONT "$REDIS_PID"')

users_db 20
EXTRA_REDIS="timeout = 300ms"
inval_config "$WORK/a.ini" rh_user
start_streaming "$WORK/a.ini" a
PORT_A=$PORT APORT_A=$APORT

# The standby: logs the state once.
PORT=$(free_port); APORT=$(free_port); SOCK=$WORK/b.sock
inval_config "$WORK/b.ini" rh_user
start_daemon "$WORK/b.ini" b
PID_B=$DAEMON_PID
until_true 30 metric_is cachesvc_invalidator_state 1 || fail "b is not standing by: state $(metric cachesvc_invalidator_state)"
for _ in $(seq 40); do
  [ "$(metric cachesvc_invalidator_state)" = 1 ] || fail "b's state left standby while a leads: $(metric cachesvc_invalidator_state)"
  sleep 0.1
done
n=$(grep -c "standing by" "$WORK/b.log" || true)
[ "$n" = 1 ] || fail "b logged \"standing by\" $n times in 4 s (a state change is logged once)"
ok "the standby logged \"standing by\" once, its state metric stays 1"
stop_daemon "$PID_B" || true # (it would take the slot over while Redis hangs)
PORT=$PORT_A APORT=$APORT_A

# Redis hangs for 10 s while a change waits to be invalidated.
r0=$(metric cachesvc_invalidator_reconnects_total)
kill -STOP "$REDIS_PID"
primary "$DB" -c "UPDATE users SET name = 'one' WHERE id = 1" >/dev/null
sleep 10
r1=$(metric cachesvc_invalidator_reconnects_total)
kill -CONT "$REDIS_PID"
n=$((r1 - r0))
[ "$n" -ge 1 ] || fail "no reconnect while Redis hung: the test staged nothing"
[ "$n" -le 8 ] || fail "$n replication reconnects in 10 s while Redis hung: no backoff"
ok "Redis hung 10 s: $n replication reconnects (bounded backoff)"

lsn=$(commit_lsn "UPDATE users SET name = 'two' WHERE id = 2")
until_true 30 streaming || fail "a does not stream again after Redis resumed"
wait_invalidated "$lsn"
ok "Redis resumed: the invalidator streams and invalidates again"
