#!/usr/bin/env bash
# shutdown_inflight.sh - issue 13 item 11: shutting down with requests in flight. Many
# clients pipeline misses against a slow query (two connections to the one replica, so
# most wait in its queue); SIGTERM starts the drain, a second SIGTERM exits at once.
# Every request must still be answered (a result or SHUTTING_DOWN) and the daemon must
# exit 0 with no sanitizer report (on the ASan build: the engine answering requests of
# a client whose server object was already freed was a use-after-free).
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO items SELECT i, 'v' || i FROM generate_series(0, 1000) i;
SQL
EXTRA_SERVICE='queue_timeout = 60s
primary_fallback = false' REQUEST_TIMEOUT=60s EXTRA_REPLICA='pool_size = 2' write_config "$WORK/cs.ini" replica1
cat >>"$WORK/cs.ini" <<'INI'

[query sd_slow]
sql = SELECT id, v, pg_sleep(0.05) IS NULL AS slept FROM items WHERE id = $1
params = id:int8
INI

for round in drain exit; do
  redis flushdb >/dev/null # misses again, not the first round's entries
  start_daemon "$WORK/cs.ini" "cachesvc-$round"
  # 16 connections x 20 pipelined misses (under max_inflight: all read at once)
  "$BURST" -p "$PORT" -c 16 -n 20 -t 60000 sd_slow %i >"$WORK/burst-$round.out" 2>"$WORK/burst-$round.err" &
  burst=$!
  until_true 20 metric_ge cachesvc_inflight 280 || fail "the misses never were in flight together ($(metric cachesvc_inflight))"
  kill -TERM "$DAEMON_PID"
  if [ $round = exit ]; then
    sleep 0.5 # some answered by the drain, most still queued
    kill -TERM "$DAEMON_PID"
  fi
  rc=0
  for _ in $(seq 300); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$DAEMON_PID" 2>/dev/null && fail "$round: cachesvc still running 30 s after SIGTERM"
  wait "$DAEMON_PID" || rc=$?
  wait "$burst" || fail "$round: replies missing (connection lost): $(cat "$WORK/burst-$round.err")"
  out=$(cat "$WORK/burst-$round.out")
  echo "$round: $out"
  [ $rc = 0 ] || fail "$round: exit status $rc: $(grep -m5 -A8 'Sanitizer\|runtime error' "$WORK/cachesvc-$round.log")"
  ! grep -q 'AddressSanitizer\|runtime error:\|LeakSanitizer' "$WORK/cachesvc-$round.log" || fail "$round: sanitizer report"
  "$PY3" - "$out" "$round" <<'PY' || fail "$round: $out"
import json, sys
t, round = json.loads(sys.argv[1]), sys.argv[2]
errs = t['errors']
assert t['ok'] + sum(errs.values()) == t['sent'] == 320, 'replies missing'
assert set(errs) <= {'shutting_down'}, errs
if round == 'drain':
    assert t['ok'] == 320, 'the drain did not finish the in-flight requests'
else:
    assert errs.get('shutting_down', 0) >= 1, 'the second signal did not cut the drain short'
PY
  ok "$round: all 320 pipelined misses answered ($out), exit 0, no sanitizer report"
done
