#!/usr/bin/env bash
# reload_pending.sh - a generation bump still owed survives a second reload (review 19
# R19-1): a reload changes query pu's SQL while Redis is down, so its bump is pending (the
# generation timer retries it); a second reload with pu unchanged must keep it owed. Before
# the fix it set pending_bump = changed = false, the next generations poll trusted the old
# generation again, and the entry filled under the OLD SQL answered the new query (this test
# failed so on 58051f3: "the old SQL's entry is served for the new SQL"). A bump in flight at
# a reload is owed the same way. No switch turns the carry-over off (the in-run control is
# the single-reload case, which must answer the new SQL too).
# Fences off (a restarted Redis keeps its data and no epoch check retires it); a private
# Redis with appendonly so its data survives the restart.
. "$(dirname "$0")/daemon_lib.sh"
PART=${1:-bug}
use_private_redis --appendonly yes
users_db 5
PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/cs.sock
conf() {
  FENCE=off write_config "$WORK/cs.ini" replica1
  printf '\n[query pu]\nsql = %s\nparams = id:int8\n' "$1" >>"$WORK/cs.ini"
}
conf 'SELECT id, name FROM users WHERE id = $1'
start_daemon "$WORK/cs.ini"
fill pu 1
cli --json get pu 1 | grep -q '"user 1"' || fail "pu 1: $(cli --json get pu 1)"
ok "SQL A's row cached: $(cli --json get pu 1)"
redis-cli -p "$RPORT" shutdown >/dev/null 2>&1 || true
private_redis_gone
conf 'SELECT id, upper(name) AS name FROM users WHERE id = $1'
kill -HUP "$DAEMON_PID"
sleep 2
cli --json show queries | grep -o '"pending_bump":[a-z]*' | head -1
if [ "$PART" = bug ]; then
  kill -HUP "$DAEMON_PID" # the same config again
  sleep 2
  echo "after the second reload: $(cli --json show queries | grep -o '"pending_bump":[a-z]*' | head -1)"
fi
start_redis
src_hit() { [ "$(src pu 1)" = cache ]; }
until_true 30 src_hit || fail "never served from the cache again"
out=$(cli --json get pu 1)
echo "answer: $out; generation in Redis: $(redis-cli -p "$RPORT" get "$NS:g:pu")"
if echo "$out" | grep -q '"user 1"'; then
  fail "the old SQL's entry is served for the new SQL (bump lost; $PART)"
fi
echo "$out" | grep -q '"USER 1"' || fail "unexpected answer $out"
ok "the new SQL answers ($PART)"
