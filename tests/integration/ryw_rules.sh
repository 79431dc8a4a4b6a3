#!/usr/bin/env bash
# ryw_rules.sh - read-your-writes (I3, issue 13 item 5): the cache answers a token with an
# entry older than the token only when that is safe (engine_read.c ryw_cache_ok). Every key below
# is cached before a write to ANOTHER table (so none of them is touched), the invalidator
# passes the write's token, every replica replays it; then a GET with the token:
#   (a) rr_safe    keyed invalidate_on covering every table it reads   -> cache (control)
#   (b) rr_ttl     TTL-only (no invalidate_on)                          -> not cache
#   (c) rr_join    joins rr_cats, which is not in invalidate_on         -> not cache
#   (d) rr_table   whole-table rule                                     -> not cache
#       rr_minlife keyed rule but min_lifetime                          -> not cache
#   (f) rr_func    calls a function that reads rr_cats (not in invalidate_on) -> not cache
#   (e) rr_bumped  its generation INCR'd in Redis directly (no pub/sub message: the daemon
#                  has not heard of it) right before the GET            -> not cache
# Each "not cache" answer must carry the write-era data of a replica or the primary.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE rr_cats (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE rr_items (id bigint PRIMARY KEY, cat bigint NOT NULL, v bigint NOT NULL);
CREATE TABLE rr_other (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO rr_cats VALUES (1, 'one'), (2, 'two');
INSERT INTO rr_items SELECT i, 1 + i % 2, i * 10 FROM generate_series(1, 10) i;
INSERT INTO rr_other SELECT i, 0 FROM generate_series(1, 10) i;
CREATE FUNCTION rr_cat_name(bigint) RETURNS text LANGUAGE sql STABLE
  AS 'SELECT name FROM rr_cats WHERE id = $1';
SQL

FENCE=on
EXTRA_SERVICE="max_replica_lag = 1h
ryw_wait = 5s"
write_config "$WORK/cs.ini" replica1 replica2
cat >>"$WORK/cs.ini" <<'INI'

[query rr_safe]
sql = SELECT id, v FROM rr_items WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = rr_items(id = $1)

[query rr_ttl]
sql = SELECT id, v FROM rr_items WHERE id = $1
params = id:int8
ttl = 1h

[query rr_join]
sql = SELECT i.id, i.v, c.name FROM rr_items i JOIN rr_cats c ON c.id = i.cat WHERE i.id = $1
params = id:int8
ttl = 1h
invalidate_on = rr_items(id = $1)

[query rr_func]
sql = SELECT id, v, rr_cat_name(cat) AS name FROM rr_items WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = rr_items(id = $1)

[query rr_table]
sql = SELECT count(*) AS n FROM rr_items WHERE cat = $1
params = cat:int8
kind = aggregate
ttl = 1h
invalidate_on = rr_items

[query rr_minlife]
sql = SELECT id, v FROM rr_items WHERE id = $1
params = id:int8
ttl = 1h
min_lifetime = 20s
invalidate_on = rr_items(id = $1)

[query rr_bumped]
sql = SELECT id, v FROM rr_items WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = rr_items(id = $1)

[query rr_other]
sql = SELECT id, v FROM rr_other WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = rr_other(id = $1)
INI
invalidator_section >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never streamed"

filled_now() { cli get "$1" "$2" >/dev/null 2>&1 && [ "$(cli --json get "$1" "$2" | json source)" = cache ]; }
keys=("rr_safe 1" "rr_ttl 2" "rr_join 3" "rr_func 7" "rr_table 1" "rr_minlife 4" "rr_bumped 5")
for k in "${keys[@]}"; do
  # shellcheck disable=SC2086
  until_true 20 filled_now $k || fail "could not cache $k"
done
ok "cached: ${keys[*]}"

# a write elsewhere: none of the cached keys is touched, so each entry stays valid
token=$(commit_lsn "UPDATE rr_other SET v = v + 1 WHERE id = 1")
wait_invalidated "$token"
wait_replicas
pos_past() {
  local p
  p=$(redis get "$NS:inv:pos")
  [ -n "$p" ] && [ "$(primary postgres -c "SELECT '${p:0:8}/${p:8:8}'::pg_lsn >= '$token'::pg_lsn")" = t ]
}
until_true 10 pos_past || fail "$NS:inv:pos ($(redis get "$NS:inv:pos")) never passed the token $token"
for k in "${keys[@]}"; do
  # shellcheck disable=SC2086
  cached $k || fail "$k is no longer cached although nothing it reads changed"
done
ok "the invalidator passed the token $token; every entry is still cached (and older than the token)"

# (e) first: the daemon must not have heard of the bump yet (it polls generations every 1 s)
redis incr "$NS:g:rr_bumped" >/dev/null
out_e=$(cli -t 10000 --json --lsn "$token" get rr_bumped 5)
ryw_cache0=$(metric cachesvc_ryw_cache_total)

# source_of KEY... -> the answer's source; the rows must be the current ones either way
answer() { cli -t 10000 --json --lsn "$token" get "$@"; }
out_a=$(answer rr_safe 1)
out_b=$(answer rr_ttl 2)
out_c=$(answer rr_join 3)
out_f=$(answer rr_func 7)
out_d1=$(answer rr_table 1)
out_d2=$(answer rr_minlife 4)
src() { echo "$1" | json source; }

[ "$(src "$out_a")" = cache ] || fail "(a) token-safe query, token passed by the invalidator, key untouched: not answered from cache: $out_a"
[ "$(echo "$out_a" | json rows)" = '[[1, 10]]' ] || fail "(a) wrong rows: $out_a"
[ "$(metric cachesvc_ryw_cache_total)" -gt "$ryw_cache0" ] || fail "(a) ryw_cache not counted"
ok "(a) token-safe keyed query: answered from cache"

not_cache() { # LABEL OUT ROWS
  local s
  s=$(src "$2")
  [ "$s" = replica ] || [ "$s" = primary ] || fail "$1: answered from $s for a token newer than the entry: $2"
  [ "$(echo "$2" | json rows)" = "$3" ] || fail "$1: wrong rows: $2"
  ok "$1: answered by the $s"
}
not_cache "(b) TTL-only query" "$out_b" '[[2, 20]]'
not_cache "(c) SQL joins a table outside invalidate_on" "$out_c" '[[3, 30, "two"]]'
not_cache "(f) SQL calls a function reading a table outside invalidate_on" "$out_f" '[[7, 70, "two"]]'
not_cache "(d) whole-table rule" "$out_d1" '[[5]]'
not_cache "(d) min_lifetime" "$out_d2" '[[4, 40]]'
not_cache "(e) entry of a generation bumped in Redis, unheard of by the daemon" "$out_e" '[[5, 50]]'
grep -q "rr_join.*read-your-writes tokens are answered from the database" "$WORK/cachesvc.log" ||
  fail "no startup note that rr_join's tokens go to the database"
ok "the startup analysis named rr_join as not token-safe"

# (g) tokens that name their shard (issue #18, SHARDS.md 5): this deployment has no
# [shard NAME] sections, so its one shard has no name and "s1:$token" is refused
# bad_params with a clear message, in a GET and in an MGET (naming the item); the bare
# $token, with the same query and key, is answered (the control: only the shard differs).
shard_refused() { # LABEL OUT
  echo "$2" | grep -q "bad_params" || fail "$1: not refused with bad_params: $2"
  echo "$2" | grep -q 'shard tokens need \[shard NAME\] sections' || fail "$1: unclear message: $2"
}
rc=0; out_g=$(cli -t 10000 --lsn "s1:$token" get rr_safe 1 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "(g) shard token: exit status $rc, want 1 (a server error): $out_g"
shard_refused "(g) GET" "$out_g"
echo "$out_g" | grep -q 'names shard "s1"' || fail "(g) the message does not name the shard: $out_g"
rc=0; out_g=$(cli -t 10000 --lsn "s1:$token" mget rr_safe 1 -- rr_other 2 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "(g) shard token in an MGET: exit status $rc: $out_g"
shard_refused "(g) MGET" "$out_g"
echo "$out_g" | grep -q 'item 0: ' || fail "(g) the MGET refusal does not name the item: $out_g"
out_g=$(cli -t 10000 --json --lsn "$token" get rr_safe 1) || fail "(g) control: the bare token $token was refused: $out_g"
[ "$(echo "$out_g" | json rows)" = '[[1, 10]]' ] || fail "(g) control: wrong rows: $out_g"
rc=0; out_g=$(cli --lsn "s1:0/0" get rr_safe 1 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "(g) a shard token at 0/0 is a usage error, got $rc: $out_g"
ok "(g) cli: a token naming a shard is refused bad_params (GET, MGET item 0); the bare token is answered"

# ... and through the Python and Node clients, on one connection that stays usable
PYTHONPATH="$(cd "$(dirname "$0")/../.." && pwd)/protocol/python/src" "$PY3" - "127.0.0.1:$PORT" "$token" <<'PYEOF' || fail "(g) python client"
import sys
import cachesvc
addr, token = sys.argv[1], sys.argv[2]
with cachesvc.connect(addr, timeout=10) as c:
    for lsn in ("s1:" + token, cachesvc.Token(cachesvc.parse_lsn(token), "eu-1")):
        try:
            c.get("rr_safe", [1], lsn=lsn)
            sys.exit(f"shard token {lsn} was answered")
        except cachesvc.BadParamsError as e:
            assert "shard tokens need [shard NAME] sections" in e.message, e.message
    r = c.get("rr_safe", [1], lsn=token)  # the same connection, the bare token
    assert [tuple(x) for x in r.rows] == [(1, 10)], r.rows
    assert isinstance(cachesvc.parse_token(token), cachesvc.Token)
print("python: shard tokens refused, the bare token answered on the same connection")
PYEOF
NODE_DIR="$(cd "$(dirname "$0")/../.." && pwd)/protocol/node"
if command -v node >/dev/null && [ -d "$NODE_DIR/node_modules" ]; then
  node - "$PORT" "$token" "$NODE_DIR" <<'JSEOF' || fail "(g) node client"
const [port, token, dir] = process.argv.slice(2);
const { createClient, Codes } = require(dir + '/lib');
(async () => {
  const c = createClient({ host: '127.0.0.1', port: Number(port) });
  try {
    await c.get('rr_safe', [1], { lsn: 's1:' + token });
    throw new Error('shard token answered');
  } catch (e) {
    if (e.code !== Codes.BAD_PARAMS || !/shard tokens need \[shard NAME\] sections/.test(e.message)) throw e;
  }
  const r = await c.get('rr_safe', [1], { lsn: token });
  if (JSON.stringify(r.rows.map((row) => row.map(Number))) !== '[[1,10]]') throw new Error('rows ' + r.rows);
  await c.close();
  console.log('node: shard token refused, the bare token answered on the same connection');
})().catch((e) => { console.error(e); process.exit(1); });
JSEOF
else
  echo "(g) node client: skipped (no node or no protocol/node/node_modules: client_node installs them)"
fi
ok "(g) python and node clients: shard token refused bad_params, bare token answered, connection usable"
