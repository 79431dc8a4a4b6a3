#!/usr/bin/env bash
# log_full_pipe.sh - logging never blocks the loop (issue 14, item 10): with its stderr on a
# pipe nobody reads and debug logging, the daemon keeps answering PING and GET while it
# logs thousands of lines; lines that did not fit are dropped and counted, and once the
# pipe is read again every line that was written is whole, in order, and the "N lines
# dropped" notes account for exactly the lines missing.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v text);
INSERT INTO items VALUES (1, 'one');
SQL
EXTRA_SERVICE="log_level = debug
stats_period = 1h"
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query lp_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
INI

# stderr: a FIFO whose read end this shell holds (fd 7) and does not read until the end.
mkfifo "$WORK/stderr.fifo"
exec 7<>"$WORK/stderr.fifo"
CLEANUPS+=('exec 7<&-')
"$CACHESVC" -c "$WORK/cs.ini" >/dev/null 2>"$WORK/stderr.fifo" &
DAEMON_PID=$!
DAEMON_PIDS+=("$DAEMON_PID")
until_true 30 daemon_answers || fail "cachesvc did not come up"

# Every garbage connection makes the daemon log one DEBUG line ("closing client: protocol
# error: unknown opcode ..."), about 100 bytes: 5000 of them are 8 times the 64 KiB a pipe
# holds, more than the pipe and the log's 256 KiB queue together.
SENT=0
garbage() {
  exec 6<>"/dev/tcp/127.0.0.1/$PORT" || fail "connect failed after $SENT garbage clients"
  printf '\x00\x00\x00\x01\x01\x63\x00\x00\x00\x00\x00\x03\xc0' >&6 || true
  exec 6<&-
  SENT=$((SENT + 1))
}
answers() { # within 3 s, or the loop is blocked
  timeout 5 "$CLI" -p "$PORT" -t 3000 ping >/dev/null 2>&1
}
for _ in $(seq 1 10); do
  for _ in $(seq 1 500); do garbage; done
  answers || fail "no PING answer within 3 s after $SENT logged lines (the loop is blocked on stderr)"
done
ok "$SENT lines logged to a pipe nobody reads: PING still answered every 500 lines"

out=$(timeout 10 "$CLI" -p "$PORT" -t 3000 --json get lp_item 1) || fail "GET did not answer: $out"
echo "$out" | grep -q '"source":"replica"' || fail "GET not answered by the replica: $out"
# The fill's SET goes out after the miss is answered: a GET that comes before Redis has
# acknowledged it shares the flight's answer ("replica"; a CI run). A hit within 10 s.
hit() {
  out=$(timeout 10 "$CLI" -p "$PORT" -t 3000 --json get lp_item 1) || fail "GET did not answer: $out"
  echo "$out" | grep -q '"source":"cache"'
}
until_true 10 hit || fail "GET never served from the cache: $out"
ok "GET still served (miss from the replica, then a hit) while stderr is full"

# Now read the pipe. The queue goes out at the daemon's next lines: keep making one more
# until every line is accounted for (written, or counted in a "lines dropped" note).
timeout 60 cat <&7 >"$WORK/stderr.log" &
CAT_PID=$!
CLEANUPS+=("kill $CAT_PID")
written() { grep -c 'DEBUG closing client: protocol error' "$WORK/stderr.log" || true; }
dropped() { sed -n 's/.* WARNING log: \([0-9]*\) lines dropped.*/\1/p' "$WORK/stderr.log" | awk '{s += $1} END {print s + 0}'; }
# Every garbage line is written or counted: written + dropped >= SENT. The notes count every
# dropped line, not only these: a line of another kind that came while the queue was full (a
# WARNING of a server slow on a loaded machine, a stats line) is counted too (a CI run: 1 such
# line, written + dropped = SENT + 1). So the sum may exceed SENT by those few lines, never
# fall below it.
OTHER_MAX=5
accounted() {
  garbage
  sleep 0.2
  local sum=$(($(written) + $(dropped)))
  [ "$sum" -ge "$SENT" ] && [ "$sum" -le $((SENT + OTHER_MAX)) ]
}
until_true 20 accounted || fail "lines lost without a count: sent $SENT, written $(written), dropped $(dropped) (at most $OTHER_MAX lines of other kinds may be among the dropped)"
[ "$(dropped)" -gt 0 ] || fail "nothing dropped: the test did not fill the queue (sent $SENT)"
ok "every line accounted for: $SENT logged = $(written) written + $(dropped) dropped and counted"

# Whole lines only, in order: every line has the prefix, timestamps never go back.
bad=$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} UTC \[[0-9]+\] (DEBUG|INFO|WARNING|ERROR) ' "$WORK/stderr.log" || true)
[ "$bad" = 0 ] || fail "$bad torn or foreign lines in the log: $(grep -vE '^[0-9]{4}-' "$WORK/stderr.log" | head -3)"
awk '{ t = $1 " " $2; if (t < last) { print "line " NR " goes back: " last " > " t; exit 1 } last = t }' \
  "$WORK/stderr.log" || fail "lines out of order"
ok "$(wc -l <"$WORK/stderr.log") lines written whole and in order"

answers || fail "PING after the drain"
kill -0 "$DAEMON_PID" || fail "the daemon died"
