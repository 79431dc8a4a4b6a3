#!/usr/bin/env bash
# inval_faults.sh - no invalidation is lost (I4): kill -9 between a commit and its Redis
# acknowledgement, then restart -> the key is invalidated; Redis restarted mid-stream (with
# its data kept by AOF, so the stale entry survives the restart) -> invalidated after it
# comes back. Uses a private Redis: CLIENT PAUSE would stall every other test.
. "$(dirname "$0")/daemon_lib.sh"

users_db 20
private_redis --appendonly yes --appendfsync always
redis() { redis-cli -p "$RPORT" "$@"; }
NS=cs # db 0 of the private Redis

FENCE=on
inval_config "$WORK/cs.ini" fx_user
sed -i "s|^url = .*|url = redis://127.0.0.1:$RPORT/0|" "$WORK/cs.ini"
sed -i 's/^status_interval = 100ms/status_interval = 100ms\nfence_ttl = 30s/' "$WORK/cs.ini"
start_streaming "$WORK/cs.ini" a
slot_confirmed() { primary postgres -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$SLOT'"; }

# --- 1. kill -9 after the commit reached the invalidator, before Redis acknowledged it ---
fill fx_user 7
rows_before=$(metric cachesvc_invalidator_rows_total)
redis client pause 20000 WRITE >/dev/null
lsn=$(commit_lsn "UPDATE users SET name = 'seven' WHERE id = 7")
until_true 10 metric_ge cachesvc_invalidator_rows_total $((rows_before + 1)) || fail "the change never reached the invalidator"
sleep 0.3 # its INVAL script is now queued behind the pause
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
redis client unpause >/dev/null
cached fx_user 7 || fail "the entry vanished although Redis never ran the invalidation"
[ "$(primary postgres -c "SELECT '$(slot_confirmed)'::pg_lsn < '$lsn'::pg_lsn")" = t ] ||
  fail "the slot confirmed $(slot_confirmed) >= $lsn without Redis acknowledging it"
ok "kill -9 mid-invalidation: the entry is still there and the slot did not confirm the commit"
PORT2=$PORT
start_daemon "$WORK/cs.ini" b
until_true 30 streaming || fail "the restarted invalidator never streamed"
wait_invalidated "$lsn"
cached fx_user 7 && fail "after the restart the commit's invalidation was not replayed"
[ "$(cli --json get fx_user 7 | json rows)" = '[[7, "seven"]]' ] || fail "stale data served: $(cli --json get fx_user 7)"
ok "restarted: the slot replayed the commit and the key was invalidated"

# --- 2. Redis restarted mid-stream, its data restored from AOF -------------------------------
fill fx_user 8
reconnects=$(metric cachesvc_invalidator_reconnects_total)
redis shutdown >/dev/null 2>&1 || true # AOF keeps the entry
private_redis_gone
# The entry is in the AOF the restart will load (checked on disk: once Redis is back, the
# invalidator may apply the update before a test could look, which is the point)
grep -a -q -E "^$NS:e:fx_user:[0-9]+:8"$'\r'"?$" "$WORK"/redis/appendonlydir/*.aof ||
  fail "the entry is not in the AOF: the test would prove nothing"
lsn=$(commit_lsn "UPDATE users SET name = 'eight' WHERE id = 8")
sleep 1 # the invalidator fails to apply it and retries with backoff
start_redis
wait_invalidated "$lsn"
cached fx_user 8 && fail "after the Redis restart the restored stale entry survived"
[ "$(cli --json get fx_user 8 | json rows)" = '[[8, "eight"]]' ] || fail "stale data served after the Redis restart"
[ "$(metric cachesvc_invalidator_reconnects_total)" -gt "$reconnects" ] ||
  fail "the invalidator never restarted its stream while Redis was down"
ok "Redis restarted mid-stream: the stream restarted and replayed; the restored entry was invalidated"
