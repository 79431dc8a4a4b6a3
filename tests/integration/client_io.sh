#!/usr/bin/env bash
# client_io.sh - issue 16 section 2, the client socket without a bufferevent: a reply is
# written to the socket at once when nothing is queued for its client, and only the part the
# socket does not take is queued; that tail counts against the output limits (a client that
# stops reading is paused past client_output_soft_limit) and is written out in full once the
# client reads. The read timeout keeps its meaning: idle_timeout closes a connection that
# sends nothing and waits for nothing (counted), not one waiting for a slow answer, and not
# one paused by its own unread output.
. "$(dirname "$0")/daemon_lib.sh"

# An 8 MiB row: far more than a loopback socket takes from a peer that does not read (its
# 64 kB receive buffer, at most 4 MB of send buffer: net.ipv4.tcp_wmem).
make_db <<'SQL'
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big VALUES (1, repeat(md5('1'), 262144));
SQL
EXTRA_SERVICE="max_reply = 16MB
client_output_soft_limit = 1MB
client_output_hard_limit = 64MB
idle_timeout = 1500ms
send_timeout = 5s" write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query big_row]
sql = SELECT v FROM big WHERE id = $1
params = id:int4

[query slow]
sql = SELECT $1::int AS id, pg_sleep(2.5)::text AS slept
params = id:int4
INI
start_daemon "$WORK/cs.ini"

# (over max_result, 1 MB: served from the replica each time, not cached; a reply to a miss
# and to a hit take the same path to the client)

# One GET answered at once (the direct write leaves a tail, written as the client reads),
# then the same GET left unread for 3 s: its tail stays queued, counted, and pauses the
# client (over the 1 MB soft limit); once read, the reply is whole. The paused client is
# not closed by idle_timeout (1.5 s): it is not being read, so it is not idle.
"$HOSTILE" -p "$PORT" lateread big_row 1 3000 >"$WORK/late.json" &
hpid=$!
CLEANUPS+=("kill $hpid")
# the prompt reply's draining client is paused too (until it is under the low-water mark):
# wait for the row of the unread reply, paused with its tail queued
row=
late_row() {
  local r q
  r=$(cli --json show clients | grep '"paused":true') || return 1
  q=$(jnum queued_bytes <<<"$r")
  [ "${q:-0}" -gt $((1024 * 1024)) ] && row=$r
}
for _ in $(seq 40); do
  sleep 0.1
  late_row && break
  row=$(cli --json show clients | grep '"paused":true') || row=
done
[ -n "$row" ] || fail "no paused client while an 8 MB reply waits unread: $(cli --json show clients)"
queued=$(jnum queued_bytes <<<"$row")
[ "$queued" -gt $((1024 * 1024)) ] ||
  fail "an 8 MB reply left unread: $queued bytes queued, want the tail (> the 1 MB soft limit)"
ok "unread 8 MB reply: $queued bytes queued, client paused"
wait "$hpid" || fail "cs_hostile lateread failed"
r=$(cat "$WORK/late.json")
prompt=$(jnum prompt <<<"$r")
late=$(jnum late <<<"$r")
[ -n "$prompt" ] && [ "$prompt" -gt $((8 * 1024 * 1024)) ] || fail "the reply read at once is not whole: $r"
[ -n "$late" ] && [ "$late" -gt $((8 * 1024 * 1024)) ] || fail "the reply read late is not whole: $r"
[ "$(jnum same_result <<<"$r")" = 1 ] || fail "the reply read late differs from the one read at once: $r"
[ "$(metric cachesvc_idle_closed_total)" = 0 ] || fail "a client paused by its own output was idle-closed"
[ "$(metric cachesvc_output_limit_closed_total)" = 0 ] || fail "an 8 MB reply passed the 64 MB hard limit"
ok "both replies whole ($prompt and $late bytes, same result); not idle-closed"

# Idle: a connection that sends nothing is closed after idle_timeout (1.5 s), and counted.
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
t0=$(date +%s%N)
timeout 10 cat <&4 >/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
exec 4<&-
[ "$ms" -ge 1300 ] && [ "$ms" -le 5000 ] || fail "an idle connection closed after $ms ms (idle_timeout 1.5 s)"
[ "$(metric cachesvc_idle_closed_total)" = 1 ] || fail "idle close not counted: $(metric cachesvc_idle_closed_total)"
ok "an idle connection closed after $ms ms, counted"

# Busy is not idle: a client waiting 2.5 s for a miss sends nothing meanwhile, and keeps
# its connection until the answer comes.
out=$(cli --json get slow 1) || fail "a client waiting 2.5 s (idle_timeout 1.5 s) got: $out"
grep -q '"source":"replica"' <<<"$out" || fail "the slow query was not answered by the replica: $out"
[ "$(metric cachesvc_idle_closed_total)" = 1 ] || fail "a client waiting for its answer was idle-closed"
ok "a client waiting 2.5 s for its answer kept its connection"
cli ping >/dev/null || fail "the daemon does not answer"

# send_timeout (5 s): the unread reply above waited 3 s and was kept; one left unread for 9 s
# is closed once the socket has taken nothing of it for 5 s, and counted - the client's
# second read finds the connection closed. Negative control: with send_timeout = 0 (a
# reload; new connections take it) the same client keeps its connection and its reply.
[ "$(metric cachesvc_send_timeout_closed_total)" = 0 ] || fail "a reply read within send_timeout was closed"
r=$("$HOSTILE" -p "$PORT" lateread big_row 1 9000) || fail "cs_hostile lateread failed: $r"
grep -q '"late":-1,' <<<"$r" || fail "a reply left unread for 9 s (send_timeout 5 s) was still read: $r"
[ "$(metric cachesvc_send_timeout_closed_total)" = 1 ] ||
  fail "send timeout not counted: $(metric cachesvc_send_timeout_closed_total)"
ok "a client that read nothing for 9 s was closed by send_timeout (5 s), counted"
sed -i 's/^send_timeout = .*/send_timeout = 0/' "$WORK/cs.ini"
kill -HUP "$DAEMON_PID"
until_true 15 grep -q '^.*reloaded ' "$WORK/cachesvc.log" || fail "no reload: $(tail -3 "$WORK/cachesvc.log")"
r=$("$HOSTILE" -p "$PORT" lateread big_row 1 9000) || fail "cs_hostile lateread failed: $r"
[ "$(jnum late <<<"$r")" -gt $((8 * 1024 * 1024)) ] || fail "with send_timeout = 0 the unread reply was lost: $r"
[ "$(metric cachesvc_send_timeout_closed_total)" = 1 ] || fail "send_timeout = 0 still closed a client"
ok "negative control: send_timeout = 0 keeps a client that read nothing for 9 s, reply whole"
