#!/usr/bin/env bash
# engine_read_path.sh - hit, miss and fill through the daemon; the TTL set on fill; MGET,
# REFRESH, INVALIDATE, STATS; and every error code a client can provoke from outside.
. "$(dirname "$0")/daemon_lib.sh"
CLI_LEAKS=1 # the cli's get, mget and --json paths: leak-checked (daemon_lib.sh cli)

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text, score numeric, born date,
                    seen timestamptz, avatar bytea, tags text[], meta jsonb, ok boolean);
INSERT INTO users SELECT i, 'user ' || i, i * 1.5, '2000-01-01'::date + i,
  '2024-01-02 03:04:05.123456+00'::timestamptz + i * interval '1 hour',
  decode('00ff' || lpad(to_hex(i), 4, '0'), 'hex'), ARRAY['a', 'b'], '{"k": 1}', i % 2 = 0
FROM generate_series(1, 100) i;
INSERT INTO users VALUES (101, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
SQL

REQUEST_TIMEOUT=1s
# one replica with one connection: the mixed MGET below sends up to 5 database jobs at once,
# which a queue of 6 holds; the burst of 12 slow requests still overflows it.
EXTRA_SERVICE="auth_token = sesame
max_result = 2kB
max_reply = 64kB
queue_max = 6
queue_timeout = 300ms"
EXTRA_REPLICA="pool_size = 1"
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query rp_user]
sql = SELECT id, name, score, born, seen, avatar, tags, meta, ok FROM users WHERE id = $1
params = id:int8
ttl = 90s

[query rp_names]
sql = SELECT id, name FROM users WHERE id <= $1 ORDER BY id
params = upto:int8
kind = list
ttl = 30s
ttl_jitter = 0%

[query rp_boom]
sql = SELECT 1 / (id - $1) AS x FROM users WHERE id = $1
params = id:int8

[query rp_slow]
sql = SELECT pg_sleep($1) IS NULL AS slept, $2::int8 AS n
params = secs:float8, n:int8

[query rp_huge]
sql = SELECT repeat('x', 1000) AS blob FROM generate_series(1, $1)
params = n:int4
INI
export CACHESVC_TOKEN=sesame
start_daemon "$WORK/cs.ini"

# --- miss, fill, hit ---------------------------------------------------------------------
out=$(cli --json get rp_user 7)
# the entry's TTL, read right after the fill (the checks below are slow on a loaded machine)
until_true 5 eval '[ -n "$(redis --scan --pattern "$NS:e:rp_user:*:7")" ]' || true
key=$(redis --scan --pattern "$NS:e:rp_user:*:7")
pttl=$([ -n "$key" ] && redis pttl "$key" || echo 0)
[ "$(echo "$out" | json source)" = replica ] || fail "first read not from a replica: $out"
echo "$out" | grep -q '"user 7"' || fail "wrong row: $out"
echo "$out" | grep -q '"2024-01-02T10:04:05.123456Z"' || fail "timestamptz not typed: $out"
out2=$(cli --json get rp_user 7)
[ "$(echo "$out2" | json source)" = cache ] || fail "second read not from cache: $out2"
[ "$(echo "$out" | json rows)" = "$(echo "$out2" | json rows)" ] || fail "cache returned other rows"
[ "$(echo "$out" | json lsn)" = "$(echo "$out2" | json lsn)" ] || fail "cache lost the data's LSN"
ok "miss from replica, then the same rows from cache"

[ -n "$key" ] || fail "no Redis entry for rp_user 7"
[ "$pttl" -gt 80000 ] && [ "$pttl" -le 90000 ] || fail "entry TTL $pttl ms, want (80 s, 90 s]"
ok "fill stored $key with TTL ${pttl} ms (ttl = 90s)"

# equal requests, one key: "7", "07" and 7 are the same int8
cli --json get rp_user 07 | json source | grep -qx cache || fail "07 did not hit the key of 7"
ok "parameters are canonical: 07 hits the entry of 7"

# NULLs and types
out=$(cli --json get rp_user 101)
echo "$out" | grep -q '\[101,null,null,null,null,null,null,null,null\]' || fail "NULL row: $out"
ok "NULL values round-trip"

# --- MGET ------------------------------------------------------------------------------------
out=$(cli --json mget rp_user 1 -- rp_user 7 -- rp_nosuch 1 -- rp_user abc 2>/dev/null || true) # exit 1: some items failed
[ "$(echo "$out" | grep -c '"source"')" = 2 ] || fail "MGET: want 2 results: $out"
echo "$out" | grep -q 'unknown_query\|unknown query' || fail "MGET: unknown query item: $out"
echo "$out" | grep -q 'bad_params\|bad parameters\|expected int8' || fail "MGET: bad params item: $out"
ok "MGET answers item by item"

# Every item of one MGET in its own place, whatever answers it and in whatever order the
# answers come: hits (one Redis MGET), misses (replica), errors answered at once (unknown
# query, bad parameters), a database error, a read-your-writes token and a bypass (each on
# its own path).
for id in 1 7; do cli get rp_user $id >/dev/null; done
until_true 5 eval '[ "$(src rp_user 1)" = cache ] && [ "$(src rp_user 7)" = cache ]' ||
  fail "rp_user 1 and 7 not cached"
tok=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
out=$("$CS_BUILD/tests/integration/cs_mget_mix" -p "$PORT" rp_user,7 rp_user,60 rp_nosuch,1 \
  "rp_user,1,lsn=$tok" rp_user,abc rp_boom,5 rp_user,8,bypass rp_user,1 rp_user,61 rp_user,7) ||
  fail "mixed MGET not answered: $out"
want='^0 ok cache 7
1 ok replica 60
2 err 1
3 ok (cache|replica|primary) 1
4 err 2
5 err 8
6 ok (replica|primary) 8
7 ok cache 1
8 ok replica 61
9 ok cache 7$'
[[ "$out" =~ $want ]] || fail "mixed MGET items out of place or wrong: $(echo $out)"
ok "a mixed MGET (hits, misses, errors, a token, a bypass) answers every item in its place"

# --- REFRESH ------------------------------------------------------------------------------------
cli --json refresh rp_user 7 | json source | grep -qx replica || fail "REFRESH did not read a replica"
ok "REFRESH re-reads the database"

# --- INVALIDATE ---------------------------------------------------------------------------------
cli invalidate rp_user 7 >/dev/null || fail "INVALIDATE key failed"
[ -z "$(redis --scan --pattern "$NS:e:rp_user:*:7")" ] || fail "INVALIDATE left the entry"
cli --json get rp_user 7 | json source | grep -qx replica || fail "after INVALIDATE: not a miss"
ok "INVALIDATE of one key deletes it"
cli --json get rp_names 3 | json source | grep -qx replica || fail "rp_names miss"
cli --json get rp_names 3 | json source | grep -qx cache || fail "rp_names hit"
gen_before=$(redis get $NS:g:rp_names)
cli invalidate rp_names >/dev/null || fail "INVALIDATE query failed"
gen_after=$(redis get $NS:g:rp_names)
[ "$gen_after" = $(( ${gen_before:-0} + 1 )) ] || fail "generation $gen_before -> $gen_after"
cli --json get rp_names 3 | json source | grep -qx replica || fail "after a generation bump: not a miss"
ok "INVALIDATE of a query bumps its generation (O(1)) and drops every entry"

# --- results over max_result are served, not cached ----------------------------------------------
before=$(metric cachesvc_not_cached_large_total)
cli --json get rp_huge 3 | json source | grep -qx replica || fail "3 kB result not served"
cli --json get rp_huge 3 | json source | grep -qx replica || fail "3 kB result was cached (max_result 2kB)"
after=$(metric cachesvc_not_cached_large_total)
[ "$after" -ge $((before + 2)) ] || fail "not_cached_large $before -> $after"
ok "a result over max_result is served but not cached, and counted"

# --- STATS ------------------------------------------------------------------------------------
cli --json stats | grep -q '"hits"' || fail "STATS has no hits"
ok "STATS answers"

# --- error codes ------------------------------------------------------------------------------
expect_err() { # WANT_CODE_WORD CLI_ARGS...
  local want=$1 out rc
  shift
  set +e
  out=$(cli "$@" 2>&1)
  rc=$?
  set -e
  [ $rc -ne 0 ] || fail "'$*' succeeded: $out"
  echo "$out" | grep -qi "$want" || fail "'$*': want $want, got: $out"
  ok "error $want: $(echo "$out" | head -1)"
}
expect_err unknown_query get rp_nosuch 1
expect_err bad_params get rp_user abc
expect_err bad_params get rp_user 1 2
expect_err internal get rp_boom 5          # division by zero at run time
expect_err timeout get rp_slow 3 1          # past request_timeout (1 s)
expect_err too_large get rp_huge 100        # ~100 kB reply over max_reply (64 kB)
CACHESVC_TOKEN=wrong expect_err auth get rp_user 1
CACHESVC_TOKEN= expect_err auth get rp_user 1

# overloaded: one connection per replica, a queue of 6 waiting at most 300 ms, 12 slow
# requests at once (all different: no coalescing) -> most are refused, none is lost.
out=$("$BURST" -p "$PORT" -c 4 -n 3 -t 10000 rp_slow 0.4 %i)
echo "$out" | grep -q '"overloaded":[1-9]' || fail "no OVERLOADED under a burst: $out"
[ "$(echo "$out" | json ok)" -ge 1 ] || fail "the burst got no answer at all: $out"
[ $(( $(echo "$out" | json ok) + $(echo "$out" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["errors"].values()))') )) = 12 ] ||
  fail "replies lost: $out"
ok "a full queue answers OVERLOADED, every request gets a reply: $out"

# protocol: a frame with a bad version byte gets an error frame and a closed connection
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
printf '\x00\x00\x00\x01\x09\x02\x00\x00\x00\x00\x00\x01\xc0' >&4
reply=$(timeout 5 cat <&4 | od -An -tx1 | tr -d ' \n')
exec 4<&-
[ "${reply:8:4}" = 01ff ] || fail "no error frame for a bad version: $reply"
# the body is {"code": 7 (protocol), ...}: fixstr "code" followed by 0x07
echo "$reply" | grep -q 'a4636f646507' || fail "the error frame's code is not protocol (7): $reply"
ok "a malformed frame gets an ERROR frame with code protocol and the connection is closed"

# the daemon is still fine
cli --json get rp_user 7 | json source | grep -qx cache || fail "daemon unhealthy after the errors"
ok "the daemon serves on after every error"
