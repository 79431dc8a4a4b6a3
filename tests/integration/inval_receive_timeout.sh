#!/usr/bin/env bash
# inval_receive_timeout.sh - a half-open replication stream (issue 14 item 7): the walsender
# serving this test's slot is frozen (SIGSTOP: the connection stays open, nothing arrives,
# not even keepalives). With receive_timeout = 2s the invalidator restarts the stream within
# a few seconds (counted); once the walsender is released (it then finds its client gone and
# frees the slot) the invalidator streams again and the change committed meanwhile is
# invalidated. Without a receive timeout the stream would wait for TCP (minutes).
. "$(dirname "$0")/daemon_lib.sh"

users_db 20
FENCE=on
inval_config "$WORK/cs.ini" rt_user
echo "receive_timeout = 2s" >>"$WORK/cs.ini"
start_streaming "$WORK/cs.ini"
fill rt_user 1
ok "streaming, rt_user 1 cached"

walsender() { primary postgres -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$SLOT' AND active"; }
WS=$(walsender)
[ -n "$WS" ] || fail "no walsender holds slot $SLOT"
CLEANUPS+=('kill -CONT "$WS"')
t0=$(metric cachesvc_invalidator_receive_timeouts_total)
kill -STOP "$WS"
primary "$DB" -c "UPDATE users SET name = 'one' WHERE id = 1" >/dev/null
start=$SECONDS
until_true 8 metric_ge cachesvc_invalidator_receive_timeouts_total $((t0 + 1)) ||
  fail "the frozen stream was not restarted within 8 s (receive_timeout = 2s)"
ok "frozen walsender: the stream was restarted after $((SECONDS - start)) s"
grep -q "nothing received on the replication stream" "$WORK/cachesvc.log" ||
  fail "the restart was not logged with its reason"

# Released, the old walsender sees its client gone and frees the slot; streaming resumes
# and the UPDATE made meanwhile is invalidated.
kill -CONT "$WS"
lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
until_true 30 streaming || fail "the invalidator does not stream again"
wait_invalidated "$lsn"
wait_replicas
[ "$(src rt_user 1)" != cache ] || fail "rt_user 1 served from the cache after its UPDATE"
[ "$(rows rt_user 1)" = '[[1,"one"]]' ] || fail "stale rt_user 1: $(cli --json get rt_user 1)"
ok "the stream resumed and the change committed while it was frozen was invalidated"
