#!/usr/bin/env bash
# ttl_policies.sh - TTL policies, counting events (never timings): jitter spreads expiries;
# stale-while-revalidate serves stale while exactly one refresh runs across two processes;
# XFetch refreshes early under load and not when idle; min_lifetime debounces a burst of
# 1000 changes into at most 2 invalidations and the final state is served; max_stale is
# never exceeded (stale-if-error); a negatively cached key turns positive on INSERT.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE items (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO items SELECT i, i FROM generate_series(1, 200) i;
CREATE TABLE events (id bigserial PRIMARY KEY, kind int NOT NULL);
ALTER TABLE events REPLICA IDENTITY FULL;
INSERT INTO events (kind) SELECT i % 3 FROM generate_series(1, 100) i;
SQL
wait_replicas
FENCE=on
REQUEST_TIMEOUT=1s
write_config "$WORK/base.ini" replica1
cp "$WORK/base.ini" "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query tp_jitter]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
ttl = 20s
ttl_jitter = 50%
negative_ttl = 0

[query tp_swr]
sql = SELECT v, pg_sleep(0.4) IS NULL AS slow FROM items WHERE id = $1
params = id:int8
kind = aggregate
ttl = 1s
stale_while_revalidate = 30s
xfetch_beta = 0

[query tp_xfetch]
sql = SELECT v, pg_sleep(0.2) IS NULL AS slow FROM items WHERE id = $1
params = id:int8
kind = aggregate
ttl = 3s
ttl_jitter = 0%
stale_while_revalidate = 0
xfetch_beta = 1

[query tp_count]
sql = SELECT count(*) AS n FROM events
kind = aggregate
ttl = 1h
stale_while_revalidate = 0
min_lifetime = 2s
invalidate_on = events

[query tp_maxstale]
sql = SELECT v, pg_sleep(CASE WHEN v < 0 THEN 5 ELSE 0 END) IS NULL AS s FROM items WHERE id = $1
params = id:int8
kind = aggregate
ttl = 1s
stale_while_revalidate = 1s
max_stale = 7s
xfetch_beta = 0

[query tp_neg]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
negative_ttl = 1h
invalidate_on = items(id = $1)
INI
invalidator_section >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini" a
PORT_A=$PORT
until_true 30 streaming || fail "the invalidator never streamed"
rep=$CS_PG_REPLICA1_PORT
calls() { stmt_calls "$rep" "%$1%"; }
fill_ok() { cli --json get "$@" >/dev/null && [ "$(cli --json get "$@" | json source)" = cache ]; }

# --- jitter: 60 keys filled together expire across the window ------------------------------
t0=$SECONDS
"$BURST" -p "$PORT" -c 6 -n 10 tp_jitter %i >/dev/null
fill_secs=$((SECONDS - t0 + 1))
# every PTTL read at one instant (one script), so a slow machine does not age the last ones
pttls=$(redis eval "local r = {} for _, k in ipairs(redis.call('KEYS', ARGV[1])) do r[#r + 1] = redis.call('PTTL', k) end return r" 0 "$NS:e:tp_jitter:*" | sort -n)
n=$(echo "$pttls" | wc -l)
lo=$(echo "$pttls" | head -1); hi=$(echo "$pttls" | tail -1)
[ "$n" -ge 55 ] || fail "only $n jitter entries"
# ttl_jitter extends (CONFIG.md): every TTL in [20 s, 30 s], never shorter than ttl. The
# fills took up to $fill_secs s: allow that much (2 to 6 s). A +-50% jitter would put the
# lowest near 10 s.
slack=$(( fill_secs > 6 ? 6000 : fill_secs > 2 ? fill_secs * 1000 : 2000 ))
[ "$lo" -ge $((20000 - slack)) ] && [ "$hi" -le 30000 ] || fail "TTLs outside 20 s .. 20 s + 50%: $lo..$hi (slack $slack ms)"
[ $((hi - lo)) -ge 4000 ] || fail "60 keys filled together expire within $((hi - lo)) ms of each other"
ok "jitter: $n keys filled together expire across $((hi - lo)) ms, all in 20 s .. 30 s (extends, never shortens)"

# --- stale-while-revalidate: exactly one refresh across two processes ------------------------
PORT=$(free_port); APORT_B=$(free_port); APORT_A=$APORT
APORT=$APORT_B; SOCK=$WORK/b.sock
sed -e "s/^listen = .*/listen = 127.0.0.1:$PORT/" -e "s/^admin_listen = .*/admin_listen = 127.0.0.1:$APORT_B/" \
  -e "s|^unix_socket = .*|unix_socket = $SOCK|" -e '/^\[invalidator\]/,$d' "$WORK/cs.ini" >"$WORK/b.ini"
start_daemon "$WORK/b.ini" b
PORT_B=$PORT
PORT=$PORT_A; APORT=$APORT_A
until_true 20 fill_ok tp_swr 5 || fail "could not cache tp_swr 5"
sleep 1.3 # past the 1 s soft expiry, inside the 30 s revalidation window
before=$(calls 'pg_sleep(%items WHERE id%')
"$BURST" -p "$PORT_A" -c 5 -n 4 tp_swr 5 >"$WORK/swr_a.json" &
burst_a=$!
"$BURST" -p "$PORT_B" -c 5 -n 4 tp_swr 5 >"$WORK/swr_b.json"
wait "$burst_a"
stale=$(( $(json stale <"$WORK/swr_a.json") + $(json stale <"$WORK/swr_b.json") ))
okc=$(( $(json ok <"$WORK/swr_a.json") + $(json ok <"$WORK/swr_b.json") ))
[ "$okc" = 40 ] || fail "SWR: not every request answered: $(cat "$WORK"/swr_*.json)"
[ "$stale" -ge 1 ] || fail "SWR: nothing was served stale"
sleep 1 # the refresh (0.4 s) lands
ran=$(( $(calls 'pg_sleep(%items WHERE id%') - before ))
[ "$ran" = 1 ] || fail "SWR: $ran refreshes ran on the replica for one key across two processes"
ok "stale-while-revalidate: $stale of 40 requests served stale, exactly $ran refresh across two processes"
# the refresh released its lease: the next expiry is refreshed again, once
sleep 1.3
"$BURST" -p "$PORT_A" -c 5 -n 4 tp_swr 5 >/dev/null &
burst_a=$!
"$BURST" -p "$PORT_B" -c 5 -n 4 tp_swr 5 >/dev/null
wait "$burst_a"
sleep 1
ran=$(( $(calls 'pg_sleep(%items WHERE id%') - before ))
[ "$ran" = 2 ] || fail "SWR: the second expiry gave $((ran - 1)) refreshes (want 1: the lease must be released)"
ok "stale-while-revalidate: the next expiry is refreshed once more (the lease was released)"
PORT=$PORT_B stop_daemon "$(pgrep -f "$WORK/b.ini" | head -1)" || true

# --- XFetch: early refresh under steady load, none when idle ----------------------------------
until_true 20 fill_ok tp_xfetch 7 || fail "could not cache tp_xfetch 7"
until_true 20 fill_ok tp_xfetch 8 || fail "could not cache tp_xfetch 8"
early0=$(metric 'cachesvc_query_refreshes_total{query="tp_xfetch",cause="early"}')
exp0=$(metric 'cachesvc_query_refreshes_total{query="tp_xfetch",cause="expired"}')
end=$((SECONDS + 4))
while [ $SECONDS -lt $end ]; do ASAN_OPTIONS=$NOLEAK_ASAN_OPTIONS "$BURST" -p "$PORT" -c 2 -n 10 tp_xfetch 7 >/dev/null; done
early=$(( $(metric 'cachesvc_query_refreshes_total{query="tp_xfetch",cause="early"}') - early0 ))
expired=$(( $(metric 'cachesvc_query_refreshes_total{query="tp_xfetch",cause="expired"}') - exp0 ))
[ "$early" -ge 1 ] || fail "XFetch: no early refresh under steady load"
ok "XFetch: $early early refreshes under steady load ($expired after expiry)"
early1=$(metric 'cachesvc_query_refreshes_total{query="tp_xfetch",cause="early"}')
sleep 4 # key 8 idles past its expiry
[ "$(metric 'cachesvc_query_refreshes_total{query="tp_xfetch",cause="early"}')" = "$early1" ] ||
  fail "XFetch refreshed an idle key"
ok "XFetch: no refresh while idle"

# --- min_lifetime: 1000 changes -> at most 2 invalidations, final state served ----------------
until_true 20 fill_ok tp_count || fail "could not cache tp_count"
g0=$(redis get $NS:g:tp_count); g0=${g0:-0}
cat >"$WORK/ins.sql" <<'SQL'
INSERT INTO events (kind) VALUES (1);
SQL
"$CS_PG_BIN/pgbench" -n -h "$CS_PG_SOCKET_DIR" -p "$CS_PG_PRIMARY_PORT" -U postgres -c 2 -t 500 \
  -f "$WORK/ins.sql" "$DB" >/dev/null 2>&1 || fail "pgbench inserts failed"
lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
want=$(primary "$DB" -c "SELECT count(*) FROM events")
wait_invalidated "$lsn" # waits past the debounce window too: the commits are confirmed only then
wait_replicas
bumps=$(( $(redis get $NS:g:tp_count) - g0 ))
[ "$bumps" -ge 1 ] && [ "$bumps" -le 2 ] || fail "1000 changes gave $bumps invalidations (want 1..2)"
final() { [ "$(cli --json get tp_count | json rows)" = "[[$want]]" ]; }
until_true 20 final || fail "after the window tp_count serves $(cli --json get tp_count | json rows), want $want"
deb=$(metric 'cachesvc_query_debounced_total{query="tp_count"}')
ok "min_lifetime: 1000 committed changes -> $bumps invalidations ($deb debounced); final count $want served"

# --- max_stale: stale served only up to max_stale while refreshes fail -------------------------
until_true 20 fill_ok tp_maxstale 9 || fail "could not cache tp_maxstale 9"
lsn=$(commit_lsn "UPDATE items SET v = -9 WHERE id = 9") # refreshes now time out (5 s > 1 s)
until_true 30 replica_caught_up 1 "$lsn" || fail "replica1 did not replay the update"
worst=0; served_stale=0; errors=0
# until the first error past max_stale (bounded): a slow machine only stretches the loop
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ] && [ "$errors" = 0 ]; do
  if out=$(cli -t 3000 --json get tp_maxstale 9 2>/dev/null); then
    if [ "$(echo "$out" | json stale)" = true ]; then
      age=$(echo "$out" | json age_ms)
      served_stale=$((served_stale + 1))
      [ "$age" -gt "$worst" ] && worst=$age
    fi
  else
    errors=$((errors + 1))
  fi
  sleep 0.2
done
[ "$served_stale" -ge 1 ] || fail "max_stale: nothing served stale while refreshes failed"
[ "$worst" -le 7000 ] || fail "max_stale: served data $worst ms old (max_stale 7 s)"
[ "$errors" -ge 1 ] || fail "max_stale: past it, stale was still served (no error)"
ok "max_stale: stale served $served_stale times while refreshes failed, oldest $worst ms <= 7000; then errors"

# --- negative caching turns positive when the row appears --------------------------------------
out=$(cli --json get tp_neg 5000)
[ "$(echo "$out" | json rows)" = '[]' ] || fail "tp_neg 5000 should be empty: $out"
until_true 20 fill_ok tp_neg 5000 || fail "the empty result was not cached (negative_ttl)"
lsn=$(commit_lsn "INSERT INTO items VALUES (5000, 42)")
wait_invalidated "$lsn"
positive() { [ "$(cli --json get tp_neg 5000 | json rows)" = '[[42]]' ]; }
until_true 20 positive || fail "the negatively cached key did not turn positive: $(cli --json get tp_neg 5000)"
ok "negative caching: the cached empty result turned positive when the row was inserted"
