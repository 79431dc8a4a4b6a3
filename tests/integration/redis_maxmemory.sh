#!/usr/bin/env bash
# redis_maxmemory.sh - Redis at maxmemory (issue 14 item 4).
# (a) noeviction at maxmemory (maxmemory 1: every plain write is refused with OOM): a cached
#     key updated on the primary is invalidated (its entry deleted), a whole-table query's
#     generation is bumped (the invalidator's scripts run with allow-oom), the invalidator
#     does not restart, hits are still served, and a
#     miss is answered from the database while its fill fails (counted). Before the fix every
#     invalidation failed with OOM and the invalidator restarted in a loop.
# (c) fence = on: maxmemory-policy allkeys-lru is refused at startup (naming volatile-lru);
#     volatile-lru is accepted.
# Changes its Redis's maxmemory and policy: on a Redis of its own, beside the other tests.
. "$(dirname "$0")/daemon_lib.sh"

use_private_redis
redis config set maxmemory 0 >/dev/null
redis config set maxmemory-policy noeviction >/dev/null

users_db 20
FENCE=on
queries() {
  user_query mm_user
  cat <<'INI'

[query mm_count]
sql = SELECT count(*) AS n FROM users
invalidate_on = users
INI
  invalidator_section
}
write_config "$WORK/cs.ini"; queries >>"$WORK/cs.ini"
start_streaming "$WORK/cs.ini"
for i in 1 2; do fill mm_user $i; done
fill mm_count
ok "mm_user 1 and 2, mm_count cached"

# (a) maxmemory reached under noeviction.
r0=$(metric cachesvc_invalidator_reconnects_total)
f0=$(metric cachesvc_invalidator_redis_failures_total)
e0=$(metric cachesvc_fill_errors_total)
redis config set maxmemory 1 >/dev/null
redis set cs_test_oom x 2>&1 | grep -q OOM || fail "Redis is not refusing writes at maxmemory"
lsn=$(commit_lsn "UPDATE users SET name = 'one' WHERE id = 1; INSERT INTO users VALUES (21, 'new')")
wait_invalidated "$lsn"
wait_replicas
[ "$(src mm_user 1)" != cache ] || fail "mm_user 1 served from the cache after its UPDATE"
[ "$(rows mm_user 1)" = '[[1,"one"]]' ] || fail "stale mm_user 1: $(cli --json get mm_user 1)"
[ "$(rows mm_count)" = '[[21]]' ] || fail "stale mm_count: $(cli --json get mm_count)"
ok "at maxmemory (noeviction) an UPDATE is still invalidated, a whole-table query bumped"
[ "$(src mm_user 2)" = cache ] || fail "mm_user 2 not served from the cache at maxmemory"
[ "$(rows mm_user 3)" = '[[3,"user 3"]]' ] || fail "mm_user 3 not answered at maxmemory"
until_true 5 metric_ge cachesvc_fill_errors_total $((e0 + 1)) || fail "the refused fill was not counted"
[ "$(src mm_user 3)" != cache ] || fail "mm_user 3 stored at maxmemory"
ok "hits served, misses answered, fills fail (counted: $(( $(metric cachesvc_fill_errors_total) - e0 )))"
lsn=$(commit_lsn "UPDATE users SET name = 'two' WHERE id = 2")
wait_invalidated "$lsn"
sleep 2
r1=$(metric cachesvc_invalidator_reconnects_total)
f1=$(metric cachesvc_invalidator_redis_failures_total)
[ "$r1" = "$r0" ] || fail "the invalidator restarted $((r1 - r0)) times at maxmemory ($((f1 - f0)) Redis failures)"
[ "$f1" = "$f0" ] || fail "$((f1 - f0)) invalidator writes failed at maxmemory"
ok "no invalidator restart, no failed invalidator write at maxmemory"
redis config set maxmemory 0 >/dev/null
stop_daemon || true

# (c) the policy check at startup.
drop_slot
redis config set maxmemory-policy allkeys-lru >/dev/null
rc=0
timeout 30 "$CACHESVC" -c "$WORK/cs.ini" >"$WORK/refused.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "cachesvc started (rc $rc) with maxmemory-policy allkeys-lru and fence = on"
grep -q "maxmemory-policy is allkeys-lru.*volatile-lru" "$WORK/refused.log" ||
  fail "no clear refusal: $(tail -3 "$WORK/refused.log")"
ok "allkeys-lru refused at startup (fence = on)"
redis config set maxmemory-policy volatile-lru >/dev/null
start_streaming "$WORK/cs.ini" volatile
ok "volatile-lru accepted"
# The invalidator re-reads the policy (every 10 s) and says so loudly when it becomes unsafe.
redis config set maxmemory-policy allkeys-lru >/dev/null
until_true 25 grep -q "maxmemory-policy is now allkeys-lru" "$WORK/volatile.log" ||
  fail "the switch to allkeys-lru at runtime was not logged"
ok "a runtime switch to allkeys-lru is logged as an error"
