#!/usr/bin/env bash
# engine_miss_trips.sh - what a miss asks Redis (issue 16, the miss p50 row), read from
# Redis's MONITOR: a miss of a row query (no lease by default, CONFIG.md [query] lease) sends
# exactly its GET and the fill script, no lease SET NX before the query and no DEL after the
# fill; the fill script reads no INFO when the data is at or past every fence written (fmax:
# fence.c (i)); a miss of an aggregate (lease by default) takes the lease with one SET NX
# and the fill script releases it (no DEL of its own, no lease left behind).
# Fences on, with the invalidator (its horizon publication reads INFO stats too: only the
# INFO calls inside fill scripts are counted).
. "$(dirname "$0")/daemon_lib.sh"

users_db 100
FENCE=on
EXTRA_SERVICE="verify_interval = 0" # its sampler reads entries too
inval_config "$WORK/c.ini" mt_row
cat >>"$WORK/c.ini" <<'INI'

[query mt_agg]
sql = SELECT count(*) FROM users WHERE id <= $1
params = n:int8
kind = aggregate
INI
start_streaming "$WORK/c.ini"
fill mt_row 1 # the horizon is published and fills store

redis-cli -p "$CS_REDIS_PORT" monitor >"$WORK/monitor.txt" 2>&1 &
MON=$!
CLEANUPS+=("kill $MON 2>/dev/null || true")
until_true 10 test -s "$WORK/monitor.txt" || fail "MONITOR did not start"
for i in $(seq 2 21); do cli get mt_row "$i" >/dev/null || fail "mt_row $i failed"; done
for i in $(seq 1 8); do cli get mt_agg "$i" >/dev/null || fail "mt_agg $i failed"; done
for i in $(seq 2 21); do until_true 10 cached mt_row "$i" || fail "mt_row $i was not stored"; done
for i in $(seq 1 8); do until_true 10 cached mt_agg "$i" || fail "mt_agg $i was not stored"; done
kill "$MON" 2>/dev/null || true
wait "$MON" 2>/dev/null || true

# count WHO CMD [FIRST]: MONITOR lines of this test's database: a command CMD (whose first
# argument starts with FIRST) sent by a client (a daemon's connection) or by a script (lua)
count() {
  local who='[0-9.:]+'
  [ "$1" = lua ] && who=lua
  grep -Ec "\\[$REDIS_DB $who\\] \"$2\"${3:+ \"$3}" "$WORK/monitor.txt" || true
}
# fills: scripts sent with an entry as their first key (EVALSHA sha nkeys entry ...)
fills() { grep -Ec "\\[$REDIS_DB [0-9.:]+\\] \"EVALSHA\" \"[0-9a-f]+\" \"[0-9]+\" \"$NS:e:$1:" "$WORK/monitor.txt" || true; }
# fill_infos: INFO calls inside fill scripts (a script's commands follow its EVALSHA line:
# scripts run alone)
fill_infos() {
  awk -v db="[$REDIS_DB" -v e="\"$NS:e:" '$2 != db { next }
    $3 != "lua]" { infill = $4 == "\"EVALSHA\"" && index($7, e) == 1; next }
    $4 == "\"INFO\"" && infill { n++ }
    END { print n + 0 }' "$WORK/monitor.txt"
}
n=$(count client GET "$NS:e:mt_row:")
[ "$n" = 20 ] || fail "20 misses of mt_row sent $n GETs of their entry (expected one each)"
n=$(fills mt_row)
[ "$n" = 20 ] || fail "20 misses of mt_row sent $n fill scripts (expected one each)"
n=$(count client SET "$NS:l:mt_row:")
[ "$n" = 0 ] || fail "a row query's misses took the lease $n times (its default is no lease)"
n=$(count client DEL)
[ "$n" = 0 ] || fail "the daemon sent $n DELs (the fill script releases the lease)"
n=$(fill_infos)
[ "$n" = 0 ] || fail "$n INFO calls in 28 fill scripts (none when the data is past fmax)"
ok "a row miss: one GET and one fill script, no lease, no DEL; no INFO in 28 fills"

n=$(count client SET "$NS:l:mt_agg:")
[ "$n" = 8 ] || fail "8 misses of an aggregate took the lease $n times (its default is the lease)"
n=$(fills mt_agg)
[ "$n" = 8 ] || fail "8 misses of mt_agg sent $n fill scripts (expected one each)"
n=$(count lua DEL "$NS:l:mt_agg:")
[ "$n" = 8 ] || fail "the fill scripts released $n of 8 leases"
[ -z "$(redis keys "$NS:l:*")" ] || fail "leases left behind: $(redis keys "$NS:l:*")"
ok "an aggregate miss takes the lease (SET NX) and its fill script releases it: 8 of 8"
