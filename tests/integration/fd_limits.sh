#!/usr/bin/env bash
# fd_limits.sh - issue 14 item 1: running out of file descriptors never spins the daemon.
# Under a 64 soft / 128 hard open-file limit and the default max_clients (10000), the
# daemon raises the soft limit to the hard one, caps max_clients to what 128 leaves after
# the servers', pools' and admin endpoint's share (and says so in the log); a flood of
# more connections than that gets OVERLOADED answers, the admin endpoint still answers, and
# a fresh client is served once the flood is gone. Then the soft limit is lowered under the
# daemon's feet (prlimit) so accept() itself fails with EMFILE: the listeners pause instead
# of spinning, the errors are counted, the log stays short and CPU stays low.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE t (id int PRIMARY KEY);
SQL
write_config "$WORK/cs.ini"

bash -c 'ulimit -Sn 64 && ulimit -Hn 128 && exec "$0" -c "$1"' "$CACHESVC" "$WORK/cs.ini" \
  >"$WORK/cachesvc.log" 2>&1 &
DAEMON_PID=$! DAEMON_LOG=$WORK/cachesvc.log
DAEMON_PIDS+=("$DAEMON_PID")
until_true 30 daemon_answers || fail "cachesvc did not come up under ulimit -n 128"

soft=$(awk '/^Max open files/ {print $4}' "/proc/$DAEMON_PID/limits")
[ "$soft" = 128 ] || fail "open-file soft limit is $soft, not raised to the hard limit 128"
ok "soft open-file limit raised 64 -> 128"
line=$(grep -m1 "max_clients 10000 capped to" "$WORK/cachesvc.log") ||
  fail "no log line about capping max_clients"
cap=$(echo "$line" | sed -n 's/.*capped to \([0-9]*\):.*/\1/p')
[ -n "$cap" ] && [ "$cap" -ge 10 ] && [ "$cap" -lt 128 ] || fail "odd cap: $line"
[ "$(metric cachesvc_max_clients_effective)" = "$cap" ] || fail "metric max_clients_effective is not $cap"
ok "logged: ${line#*] }"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat"; }
accept_lines() { grep -c "accept: " "$WORK/cachesvc.log" || true; }

# ---- 1. a flood past the cap: OVERLOADED answers, no EMFILE ----------------------------------
n=$((cap + 60))
"$HOSTILE" -p "$PORT" flood "$n" 4000 >"$WORK/flood1.json" &
fpid=$!
until_true 20 test -s "$WORK/flood1.json" || fail "the flood tool did not finish its round"
t0=$(cpu_ticks)
r=$(cat "$WORK/flood1.json")
ok "flood of $n connections: $r"
served=$(echo "$r" | jnum ok)
over=$(echo "$r" | jnum overloaded)
noreply=$(echo "$r" | jnum noreply)
[ "$noreply" = 0 ] || fail "$noreply connections got no answer (accept stalled): $r"
[ "$over" -ge 55 ] || fail "connections past the cap were not answered OVERLOADED: $r"
[ "$served" -ge $((cap - 5)) ] || fail "fewer than the cap ($cap) were served: $r"
# while the flood holds its connections: the admin endpoint and a new client get answers
[ "$(http_status /healthz)" != "" ] || fail "the admin endpoint did not answer during the flood"
out=$(timeout 10 "$HOSTILE" -p "$PORT" flood 1 0)
[ "$(echo "$out" | jnum overloaded)" = 1 ] || fail "a client past the cap got $out, not OVERLOADED"
sleep 2
t1=$(cpu_ticks)
wait "$fpid"
until_true 5 cli -t 1000 ping >/dev/null || fail "a fresh PING after the flood failed"
ticks=$((t1 - t0))
[ "$ticks" -lt 100 ] || fail "the daemon used $ticks CPU ticks in 2 s of holding the flood (spinning?)"
[ "$(accept_lines)" -lt 5 ] || fail "accept errors logged $(accept_lines) times"
[ "$(metric cachesvc_connections_rejected_total)" -ge 55 ] || fail "rejections not counted"
ok "past the cap: OVERLOADED at once, admin answered, $ticks CPU ticks while held, fresh PING served"

# ---- 2. EMFILE for real: the limit lowered under the daemon ----------------------------------
used=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
prlimit --pid "$DAEMON_PID" --nofile=$((used + 8)):128 || fail "prlimit failed"
lines0=$(accept_lines)
"$HOSTILE" -p "$PORT" flood 40 5000 >"$WORK/flood2.json" &
fpid=$!
until_true 20 test -s "$WORK/flood2.json" || fail "the flood tool did not finish its round"
t0=$(cpu_ticks)
sleep 3
t1=$(cpu_ticks)
ok "flood of 40 with $((used + 8)) descriptors allowed: $(cat "$WORK/flood2.json")"
wait "$fpid"
prlimit --pid "$DAEMON_PID" --nofile=128:128
until_true 5 cli -t 1000 ping >/dev/null || fail "no PING served after the EMFILE flood"
ticks=$((t1 - t0))
lines=$(($(accept_lines) - lines0))
errors=$(metric cachesvc_accept_errors_total)
pauses=$(metric cachesvc_accept_pauses_total)
[ "$errors" -ge 1 ] && [ "$pauses" -ge 1 ] || fail "EMFILE not counted (errors $errors, pauses $pauses)"
[ "$lines" -ge 1 ] && [ "$lines" -lt 5 ] || fail "$lines accept-error log lines in 8 s (want 1..4)"
[ "$ticks" -lt 100 ] || fail "the daemon used $ticks CPU ticks in 3 s of EMFILE (spinning)"
grep -m1 "accept: " "$WORK/cachesvc.log" | sed 's/^/  log: /'
ok "EMFILE: $errors accept errors, $pauses pauses, $lines log lines, $ticks CPU ticks in 3 s; PING served after"
kill -0 "$DAEMON_PID" || fail "the daemon died"

# ---- 3. the admin endpoint's connection cap ---------------------------------------------------
base=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
afds=()
for _ in $(seq 40); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$APORT" || fail "cannot connect to the admin port"
  afds+=("$fd")
done
sleep 0.5
held=$(($(ls "/proc/$DAEMON_PID/fd" | wc -l) - base))
for fd in "${afds[@]}"; do exec {fd}<&-; done
[ "$held" -le 16 ] || fail "40 idle admin connections hold $held descriptors (cap 16)"
until_true 5 test "$(http_status /healthz)" = 200 || fail "/healthz not served after the admin flood"
ok "40 idle admin connections held $held descriptors (cap 16); /healthz served after"
