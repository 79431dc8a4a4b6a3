#!/usr/bin/env bash
# bench_smoke.sh - the load generator runs: cs_load drives a daemon for about a second and
# its JSON reports requests > 0 and no errors. No timing is asserted.
. "$(dirname "$0")/daemon_lib.sh"
LOAD=$CS_BUILD/bench/cs_load
[ -x "$LOAD" ] || fail "no $LOAD (bench/meson.build builds it)"

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 1000) i;
SQL
write_config "$WORK/cs.ini" replica1
cat >>"$WORK/cs.ini" <<'INI'

[query smoke_user]
sql = SELECT id, name FROM users WHERE id = $1
params = id:int8
INI
start_daemon "$WORK/cs.ini"

# field JSON PATH...: a (nested) field of one JSON object.
field() { "$PY3" -c 'import json,sys; v=json.loads(sys.argv[1])
for k in sys.argv[2:]: v=v[k]
print(v)' "$@"; }
check() { # NAME JSON: requests > 0 and errors == 0
  local req err
  req=$(field "$2" requests) err=$(field "$2" errors)
  [ "$req" -gt 0 ] || fail "$1: no requests: $2"
  [ "$err" = 0 ] || fail "$1: $err errors: $2"
  ok "$1: $req requests, 0 errors"
}

out=$("$LOAD" -p "$PORT" -c 4 -d 1 -k 1:1000 smoke_user) || fail "cs_load failed: $out"
check "zipf GET" "$out"
[ "$(field "$out" latency_us count)" -gt 0 ] || fail "no latency recorded: $out"
# The event loop (one thread, the async client API) is the default engine.
[ "$(field "$out" engine)" = loop ] || fail "default engine is not the event loop: $out"
[ "$(field "$out" sources cache)" -gt 0 ] || fail "no cache hits counted: $out"

out=$("$LOAD" -p "$PORT" -c 4 -d 1 -k 1:1000 --threads smoke_user) || fail "cs_load --threads failed: $out"
check "zipf GET, thread per connection" "$out"
[ "$(field "$out" engine)" = threads ] || fail "--threads: $out"

out=$("$LOAD" -p "$PORT" -c 3 -n 3000 -P 4 --ping) || fail "cs_load --ping failed: $out"
check "PING, loop mode" "$out"
[ "$(field "$out" requests)" = 3000 ] || fail "--ping -n 3000 sent $(field "$out" requests): $out"
[ "$(field "$out" ops)" = 3000 ] || fail "--ping -n 3000 answered $(field "$out" ops): $out"

out=$("$LOAD" -s "$SOCK" -c 2 -d 1 -k 1:1000 --uniform -P 8 smoke_user) || fail "cs_load -P failed: $out"
check "pipelined GET" "$out"

out=$("$LOAD" -p "$PORT" -c 2 -d 1 -k 1:1000 -b 16 smoke_user) || fail "cs_load -b failed: $out"
check "MGET 16" "$out"

out=$("$LOAD" -p "$PORT" -c 2 -d 1 -k 1:1000 -b 16 -P 4 smoke_user) || fail "cs_load -b -P failed: $out"
check "MGET 16, 4 in flight per connection" "$out"
[ $(( $(field "$out" requests) % 16 )) = 0 ] || fail "MGET 16 keys not a multiple of 16: $out"

out=$("$LOAD" -p "$PORT" -c 2 -n 200 --unique -k 1:100 smoke_user) || fail "cs_load --unique failed: $out"
check "unique keys" "$out"
[ "$(field "$out" requests)" = 100 ] || fail "--unique over 100 keys sent $(field "$out" requests): $out"

# No server listening: the loop's non-blocking connects fail, cs_load exits 1 and says so.
if out=$("$LOAD" -p 1 -c 2 -d 1 -t 500 smoke_user 2>/dev/null); then
  fail "cs_load against a closed port succeeded: $out"
fi
[ "$(field "$out" connected)" = 0 ] || fail "connected to a closed port: $out"
ok "no server: exit 1, 0 connected"

out=$("$LOAD" -p "$PORT" -c 2 -d 1 -k 1:1000 -w 10 --pg "$(conninfo_of primary)" \
  --update 'UPDATE users SET name = name WHERE id = $1' smoke_user) || fail "cs_load -w failed: $out"
check "read/write mix" "$out"
[ "$(field "$out" writes)" -gt 0 ] || fail "no writes: $out"
[ "$(field "$out" write_errors)" = 0 ] || fail "write errors: $out"

out=$("$LOAD" -p "$PORT" --idle 20 -d 0.2) || fail "cs_load --idle failed: $out"
[ "$(field "$out" idle_connections)" = 20 ] || fail "idle connections: $out"
ok "20 idle connections held"
