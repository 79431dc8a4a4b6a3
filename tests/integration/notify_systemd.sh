#!/usr/bin/env bash
# notify_systemd.sh - the daemon's systemd notifications (cachesvc/daemon/notify.c) on a socket
# of the test's own (NOTIFY_SOCKET, read by tests/integration/notify_recv): READY=1 (with a
# STATUS line) only once the port answers; on SIGHUP RELOADING=1 with a current
# MONOTONIC_USEC, then READY=1, for an applied and for a refused reload; STOPPING=1 on
# SIGTERM, then a clean exit. Skipped (77) when the daemon was built without libsystemd.
. "$(dirname "$0")/daemon_lib.sh"
RECV=$CS_BUILD/tests/integration/notify_recv
if [ "${CS_HAVE_LIBSYSTEMD:-}" != 1 ]; then # set by meson when libsystemd was found
  echo "SKIP: cachesvc built without libsystemd (notifications are no-ops)"
  exit 77
fi

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v text);
INSERT INTO items VALUES (1, 'one');
SQL
# The only replica is down: the daemon is never healthy, so it accepts clients only after
# its 5 s readiness wait. A READY=1 sent before the port answers falls in that window.
write_config "$WORK/base.ini" down
cat "$WORK/base.ini" - >"$WORK/cs.ini" <<'INI'

[query ns_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
INI

NSOCK=$WORK/notify.sock
OUT=$WORK/notify.out
"$RECV" "$NSOCK" 90 >"$OUT" &
RECV_PID=$!
CLEANUPS+=("kill $RECV_PID")
until_true 10 test -S "$NSOCK" || fail "notify_recv did not bind $NSOCK"

NOTIFY_SOCKET=$NSOCK "$CACHESVC" -c "$WORK/cs.ini" >"$WORK/cachesvc.log" 2>&1 &
DAEMON_PID=$!
DAEMON_PIDS+=("$DAEMON_PID")

# Until READY=1 arrives, try the port; once it arrives, the port must answer at once.
refused_before=0
ready_seen() { grep -q ' READY=1$' "$OUT"; }
deadline=$((SECONDS + 30))
until ready_seen; do
  kill -0 "$DAEMON_PID" 2>/dev/null || fail "cachesvc exited: $(tail -5 "$WORK/cachesvc.log")"
  [ $SECONDS -lt $deadline ] || fail "no READY=1 within 30 s: $(cat "$OUT")"
  if ! "$CLI" -p "$PORT" -t 200 ping >/dev/null 2>&1; then
    refused_before=$((refused_before + 1))
  fi
  ready_seen && break
  sleep 0.1
done
"$CLI" -p "$PORT" -t 1000 ping >/dev/null || fail "READY=1 arrived but the port does not answer"
[ "$refused_before" -gt 0 ] || fail "the port answered before READY=1 every time: the test proves nothing"
ok "READY=1 only once the port answers ($refused_before pings before it got no answer)"
[ "$(grep -c ' READY=1$' "$OUT")" = 1 ] || fail "READY=1 sent more than once at startup: $(cat "$OUT")"
grep -q " STATUS=accepting clients on 127.0.0.1:$PORT" "$OUT" || fail "no STATUS line: $(cat "$OUT")"
ok "one READY=1 and a STATUS line naming the listener"

# reload_cycle WHAT: SIGHUP, then RELOADING=1 + MONOTONIC_USEC (the time of the signal,
# within 5 s before its receipt) and READY=1 as the next two datagrams.
reload_cycle() {
  local before new
  before=$(wc -l <"$OUT")
  kill -HUP "$DAEMON_PID"
  # (re-counted on every try: the reload's SQL check makes READY=1 come later)
  until_true 10 sh -c "[ \$(wc -l <'$OUT') -ge $((before + 2)) ]" ||
    fail "$1: no RELOADING/READY pair after SIGHUP: $(tail -n +$((before + 1)) "$OUT")"
  new=$(tail -n +$((before + 1)) "$OUT")
  awk 'NR == 1 {
         if ($2 != "RELOADING=1" || $3 !~ /^MONOTONIC_USEC=[0-9]+$/) exit 1
         t = substr($3, 16); if (t > $1 || $1 - t > 5000000) exit 1 }
       NR == 2 && $2 != "READY=1" { exit 1 }' <<<"$new" ||
    fail "$1: expected RELOADING=1 MONOTONIC_USEC=<now>, then READY=1; got: $new"
  ok "$1: RELOADING=1 (MONOTONIC_USEC current), then READY=1"
}
cat "$WORK/base.ini" - >"$WORK/cs.ini" <<'INI'

[query ns_item]
sql = SELECT upper(v) AS v FROM items WHERE id = $1
params = id:int8
INI
reload_cycle "applied reload"
until_true 10 grep -q "reloaded" "$WORK/cachesvc.log" || fail "the reload was not applied"
echo "[query broken" >>"$WORK/cs.ini"
reload_cycle "refused reload"
grep -q "reload failed" "$WORK/cachesvc.log" || fail "the broken file was not refused"

before=$(wc -l <"$OUT")
stop_daemon || fail "cachesvc exited non-zero after SIGTERM"
until_true 5 grep -q ' STOPPING=1$' "$OUT" || fail "no STOPPING=1 after SIGTERM: $(cat "$OUT")"
after=$(tail -n +$((before + 1)) "$OUT")
[ "$(awk '{print $2}' <<<"$after")" = STOPPING=1 ] || fail "after SIGTERM expected only STOPPING=1, got: $after"
ok "SIGTERM: STOPPING=1, nothing after it, exit 0"
