#!/usr/bin/env bash
# inval_backoff.sh - a failure that happens deterministically right after START_REPLICATION
# keeps the invalidator's reconnect backoff growing (issue 13 item 12): the publication is
# dropped under a streaming invalidator and a change is committed, so every START decodes
# that change and fails ("publication does not exist"). Over 10 s the invalidator reconnects
# a bounded number of times (backoff 200 ms doubling to 5 s: about 5; a backoff reset at
# every START would reconnect every 200 ms, ~30-50 times). Then the cause is fixed
# (publication recreated, the slot moved past the undecodable change) and it streams again:
# a later UPDATE is invalidated.
. "$(dirname "$0")/daemon_lib.sh"

users_db 20
inval_config "$WORK/cs.ini" bo_user
start_streaming "$WORK/cs.ini"
lsn=$(commit_lsn "UPDATE users SET name = 'one' WHERE id = 1")
wait_invalidated "$lsn"
ok "streaming"

# The deterministic failure: every START now decodes a change it cannot publish.
r0=$(metric cachesvc_invalidator_reconnects_total)
primary "$DB" -c "DROP PUBLICATION cs_pub" >/dev/null
primary "$DB" -c "UPDATE users SET name = 'two' WHERE id = 2" >/dev/null
until_true 20 metric_ge cachesvc_invalidator_reconnects_total $((r0 + 1)) ||
  fail "the invalidator did not fail on the change (no reconnect)"
r1=$(metric cachesvc_invalidator_reconnects_total)
sleep 10
r2=$(metric cachesvc_invalidator_reconnects_total)
n=$((r2 - r1))
grep -q 'publication "cs_pub" does not exist' "$WORK/cachesvc.log" ||
  fail "the failure was not the one staged: $(grep invalidator "$WORK/cachesvc.log" | tail -5)"
[ "$n" -ge 2 ] || fail "only $n reconnects in 10 s: the failure did not persist (the test would prove nothing)"
[ "$n" -le 8 ] || fail "$n reconnects in 10 s after a failure right after START: the backoff was reset by START"
ok "a failure right after START: $n reconnects in 10 s (bounded backoff)"

# Fix the cause: publish again, and move the slot past the change it cannot decode (the slot
# is only free between attempts).
primary "$DB" -c "CREATE PUBLICATION cs_pub FOR TABLE users" >/dev/null
target=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
advance() {
  primary "$DB" -c "SELECT pg_replication_slot_advance('$SLOT', '$target')" >/dev/null 2>"$WORK/advance.err"
}
until_true 30 advance || fail "could not advance the slot: $(cat "$WORK/advance.err")"
fill bo_user 3
lsn=$(commit_lsn "UPDATE users SET name = 'three' WHERE id = 3")
wait_invalidated "$lsn"
until_true 10 streaming || fail "not streaming after the fix"
wait_replicas
[ "$(src bo_user 3)" != cache ] || fail "bo_user 3 served from the cache after its UPDATE"
[ "$(rows bo_user 3)" = '[[3,"three"]]' ] || fail "stale bo_user 3: $(cli --json get bo_user 3)"
ok "cause fixed: the invalidator streams again and invalidates"
