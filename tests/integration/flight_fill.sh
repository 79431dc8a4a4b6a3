#!/usr/bin/env bash
# flight_fill.sh - a flight stays findable until its fill is acknowledged (issue 13 item 9)
# and every request is answered exactly once (item 8). Uses a private Redis: CLIENT PAUSE
# and restarts would stall every other test on the sandbox's.
#
# 1. GETs that miss while the fill of their key is in flight share the answer: no second
#    replica query (counted by the replica itself, pg_stat_statements). The daemon has one
#    cache connection to Redis, so a GET's lookup is ordered with the fills: to have lookups
#    that miss (sent before the fill) but are answered after the database did, they are
#    queued in Redis behind a paused write:
#      - ff_slow 1 misses; its replica query waits on an advisory lock the test holds;
#      - CLIENT PAUSE WRITE; ff_fast 1 misses and reads the replica (a fast query): its
#        fill is held by the pause, and the cache connection with it (or the daemon's
#        generation poll, a write script too, holds it first: either way the test waits
#        until Redis reports the connection blocked);
#      - 50 GETs of ff_slow 1 (cs_burst, 5 connections, pipelined): their lookups queue;
#      - the lock is released: ff_slow's query answers the first GET, its fill is queued;
#      - CLIENT UNPAUSE: the 50 lookups miss while ff_slow's fill is still in flight.
#    Before the fix the flight was freed once the database answered, so the 50 ran a second
#    replica query. All 51 must be answered, with 1 replica query, and the key cached.
# 2. Pipelined GETs of one hot key on one connection (cs_load -P 256) while the private Redis
#    is stopped and restarted: every request answered (answered = sent, no error), and (in
#    the ASan build) no sanitizer report in the daemon's log.
. "$(dirname "$0")/daemon_lib.sh"
LOAD=$CS_BUILD/bench/cs_load

make_db <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE ff_items (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO ff_items SELECT i, 'v' || i FROM generate_series(1, 100) i;
SQL
private_redis --appendonly no
redis() { redis-cli -p "$RPORT" "$@"; }
NS=cs # db 0 of the private Redis

# fence off: no invalidator needed, fills are stored as soon as Redis runs them
REQUEST_TIMEOUT=60s
EXTRA_SERVICE="max_inflight = 16"
EXTRA_REDIS="timeout = 60s"
write_config "$WORK/cs.ini" replica1
sed -i "s|^url = .*|url = redis://127.0.0.1:$RPORT/0|" "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query ff_slow]
sql = SELECT f.id, f.v FROM ff_items f, LATERAL (SELECT pg_advisory_xact_lock_shared(4242)) l WHERE f.id = $1
params = id:int8
ttl = 1h

[query ff_fast]
sql = SELECT id, v FROM ff_items WHERE id = $1
params = id:int8
ttl = 1h

[query ff_hot]
sql = SELECT id, v FROM ff_items WHERE id = $1
params = id:int8
ttl = 1h
INI
start_daemon "$WORK/cs.ini"
rport=$CS_PG_REPLICA1_PORT
pg "$rport" "$DB" -c "SELECT pg_stat_statements_reset()" >/dev/null
slow_calls() { stmt_calls "$rport" '%FROM ff_items f, LATERAL%'; }

# --- 1. the flight outlives the database's answer until its fill is acknowledged ---------
# hold the advisory lock on the replica (a session of our own; closing its input ends it)
mkfifo "$WORK/lock.fifo"
pg "$rport" "$DB" <"$WORK/lock.fifo" >"$WORK/lock.out" 2>&1 &
LOCKER=$!
exec 7>"$WORK/lock.fifo"
CLEANUPS+=("exec 7>&-" "kill $LOCKER")
echo "SELECT pg_advisory_lock(4242);" >&7
lock_held() { [ "$(pg "$rport" "$DB" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted")" -ge 1 ]; }
until_true 10 lock_held || fail "could not take the advisory lock on the replica: $(cat "$WORK/lock.out")"

cli -t 60000 --json get ff_slow 1 >"$WORK/first.json" 2>&1 7>&- &
FIRST=$!
slow_waiting() { [ "$(pg "$rport" "$DB" -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE '%ff_items%'")" -ge 1 ]; }
until_true 10 slow_waiting || fail "the first GET's replica query never waited on the lock"
ok "ff_slow 1 missed; its replica query waits on the test's advisory lock"

req0=$(metric cachesvc_requests_total)
redis client pause 60000 WRITE >/dev/null
CLEANUPS+=("redis-cli -p $RPORT client unpause")
# a fast miss: its fill (a write script) is held by the pause, and every later command on
# the daemon's cache connection with it (so may be its generation poll, a write script too)
cli -t 60000 --json get ff_fast 1 >"$WORK/fast.json" 2>&1 7>&- &
FAST=$!
conn_blocked() { [ "$(redis info clients | tr -d '\r' | awk -F: '$1 == "blocked_clients" {print $2}')" -ge 1 ]; }
until_true 20 conn_blocked || fail "the daemon's cache connection never blocked on the paused write"
ok "CLIENT PAUSE WRITE: the daemon's cache connection is held by a paused write"

"$BURST" -p "$PORT" -c 5 -n 10 -t 60000 ff_slow 1 >"$WORK/burst.json" 2>&1 7>&- &
BURSTER=$!
until_true 20 metric_ge cachesvc_requests_total $((req0 + 51)) || fail "the GETs never reached the daemon"
[ "$(slow_calls)" = 0 ] || fail "ff_slow ran $(slow_calls) times before the lock was released"
ok "50 GETs of ff_slow 1 received; their lookups queue behind the paused fill"

echo "SELECT pg_advisory_unlock(4242);" >&7 # ff_slow's query answers
exec 7>&-
wait "$FIRST" || fail "the first GET failed: $(cat "$WORK/first.json")"
[ "$(json source <"$WORK/first.json")" = replica ] || fail "first GET: $(cat "$WORK/first.json")"
[ "$(json rows <"$WORK/first.json")" = '[[1, "v1"]]' ] || fail "first GET rows: $(cat "$WORK/first.json")"
[ "$(slow_calls)" = 1 ] || fail "ff_slow ran $(slow_calls) times, want 1 so far"
cached ff_slow 1 && fail "ff_slow 1 stored during the pause"
redis client unpause >/dev/null
wait "$BURSTER" || fail "cs_burst failed: $(cat "$WORK/burst.json")"
wait "$FAST" || fail "ff_fast 1 not answered: $(cat "$WORK/fast.json")"
[ "$(json rows <"$WORK/fast.json")" = '[[1, "v1"]]' ] || fail "ff_fast 1: $(cat "$WORK/fast.json")"
out=$(cat "$WORK/burst.json")
[ "$(echo "$out" | json ok)" = 50 ] || fail "not every GET answered: $out"
calls=$(slow_calls)
[ "$calls" = 1 ] || fail "the 50 GETs that missed while the fill was in flight ran ff_slow again: $calls replica queries in all: $out"
until_true 10 cached ff_slow 1 || fail "after the unpause ff_slow 1 is not cached"
until_true 10 cached ff_fast 1 || fail "after the unpause ff_fast 1 is not cached"
[ "$(cli --json get ff_slow 1 | json source)" = cache ] || fail "ff_slow 1 not a hit afterwards"
ok "51 GETs of ff_slow 1 answered by 1 replica query (burst: $out); the key is cached after the unpause"

# --- 2. pipelined GETs of a hot key during a Redis outage ---------------------------------
# -P 256 > max_inflight (16): the daemon stops reading the connection and reads the next
# requests from inside a reply (request_done -> client_read), so they join the flight that
# is answering its waiters (item 8)
"$LOAD" -p "$PORT" -c 1 -P 256 -d 8 -k 7:7 -t 20000 ff_hot >"$WORK/load.json" 2>"$WORK/load.err" &
LOADER=$!
sleep 2
redis shutdown nosave >/dev/null 2>&1 || true
private_redis_gone
sleep 2
start_redis
wait "$LOADER" || fail "cs_load failed: $(cat "$WORK/load.json" "$WORK/load.err")"
out=$(cat "$WORK/load.json")
read -r sent answered errors < <("$PY3" -c 'import json,sys; r=json.load(sys.stdin); s=r["sources"]; print(r["requests"], s["cache"]+s["replica"]+s["primary"], r["errors"])' <<<"$out")
[ "$sent" -ge 1000 ] || fail "cs_load sent only $sent requests: $out"
[ "$errors" = 0 ] && [ "$answered" = "$sent" ] || fail "pipelined GETs during the outage: $answered of $sent answered, $errors errors: $out"
[ "$(metric cachesvc_bypass_redis_total)" -ge 1 ] || fail "no request was served while Redis was down: the outage was not exercised"
kill -0 "$DAEMON_PID" || fail "the daemon died"
grep -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$WORK/cachesvc.log" && fail "sanitizer report in the daemon's log"
stop_daemon || fail "the daemon exited with an error after the outage"
grep -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$WORK/cachesvc.log" && fail "sanitizer report at shutdown"
ok "$sent pipelined GETs of one hot key across a Redis stop/start: all answered, no error, no sanitizer report"
