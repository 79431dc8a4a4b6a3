#!/usr/bin/env bash
# stats_line.sh - issue 20 item 7: the daemon logs a PgBouncer-like "stats:" line every
# stats_period with the period's rates; a reload can change the period (0 = off).
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g;
SQL
EXTRA_SERVICE="stats_period = 1s"
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query t_by_id]
sql = SELECT id, v FROM t WHERE id = $1
params = id:int
ttl = 60s
INI
start_daemon "$WORK/cs.ini"
# 200 GETs of 10 keys within about a second: 10 misses, 190 hits.
for i in $(seq 20); do cli mget --each t_by_id 1 2 3 4 5 6 7 8 9 10 >/dev/null; done
until_true 10 grep -qE 'INFO stats: [1-9][0-9]* req/s \(hits [0-9.]+%' "$WORK/cachesvc.log" ||
  fail "no stats line with requests: $(grep 'stats:' "$WORK/cachesvc.log" | tail -3)"
line=$(grep -E 'INFO stats: [1-9][0-9]* req/s' "$WORK/cachesvc.log" | head -1)
echo "$line" | grep -qE 'hit [0-9.]+ ms, miss [0-9.]+ ms, clients [0-9]+, in flight [0-9]+$' ||
  fail "stats line without latencies or gauges: $line"
# The requests of all lines add up to the 200 sent (rates x 1 s periods, rounded), once
# the period holding the last request has been logged: wait for two more lines.
stats_lines() { grep -c 'INFO stats:' "$WORK/cachesvc.log"; }
more_lines() { [ "$(stats_lines)" -ge "$1" ]; }
until_true 10 more_lines $(($(stats_lines) + 2)) ||
  fail "no stats lines after the requests"
sum=$(grep -oE 'INFO stats: [0-9]+ req/s' "$WORK/cachesvc.log" | awk '{s += $3} END {print s}')
[ "$sum" -ge 150 ] && [ "$sum" -le 250 ] || fail "stats lines add up to $sum requests, want about 200"
ok "stats line every second: ${line#*INFO }"

sed -i 's/^stats_period = 1s$/stats_period = 0/' "$WORK/cs.ini"
kill -HUP "$DAEMON_PID"
until_true 10 grep -q "reloaded" "$WORK/cachesvc.log" || fail "no reload"
n1=$(grep -c 'INFO stats:' "$WORK/cachesvc.log")
sleep 2.5
n2=$(grep -c 'INFO stats:' "$WORK/cachesvc.log")
[ "$n1" = "$n2" ] || fail "stats_period = 0 after a reload: still logging ($n1 -> $n2)"
ok "a reload to stats_period = 0 stops the line"
