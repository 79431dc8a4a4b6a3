#!/usr/bin/env bash
# verify_basic.sh - cachesvc-verify against a daemon without an invalidator (fence = off):
# a clean cache verifies clean; a write the cache never hears of is reported as exactly one
# stale key; --sample bounds the work; entries that change mid-check or wait on a lagging
# invalidator are skipped, not stale; exit statuses; no password in any message.
. "$(dirname "$0")/daemon_lib.sh"

VERIFY=$CS_BUILD/cachesvc/cachesvc-verify

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text, score numeric, born date,
                    seen timestamptz, avatar bytea, ok boolean, ratio float8);
INSERT INTO users SELECT i, 'user ' || i, i * 1.5, '2000-01-01'::date + i,
  '2024-01-02 03:04:05.123456+00'::timestamptz + i * interval '1 hour',
  decode('00ff' || lpad(to_hex(i), 4, '0'), 'hex'), i % 2 = 0, i / 3.0
FROM generate_series(1, 20) i;
CREATE TABLE items (id bigint, owner bigint, label text);
INSERT INTO items SELECT i, i % 3, 'item ' || i FROM generate_series(1, 30) i;
SQL

write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query vb_user]
sql = SELECT id, name, score, born, seen, avatar, ok, ratio FROM users WHERE id = $1
params = id:int8
ttl = 10m

[query vb_items]
sql = SELECT id, label FROM items WHERE owner = $1
params = owner:int8
kind = list
ttl = 10m

[query vb_named]
sql = SELECT id, born FROM users WHERE name = $1 AND born >= $2 ORDER BY id
params = name:text, since:date
ttl = 10m
INI
start_daemon "$WORK/cs.ini"

# --- fill ------------------------------------------------------------------------------------
for id in 1 2 3 4 5 6 999; do # 999: an empty result, cached as a negative entry
  cli get vb_user "$id" >/dev/null || fail "get vb_user $id"
done
cli get vb_items 1 >/dev/null || fail "get vb_items 1"
cli get vb_items 2 >/dev/null || fail "get vb_items 2"
cli get vb_named 'user 5' 2000-01-01 >/dev/null || fail "get vb_named"
entries() { redis --scan --pattern "$NS:e:*" | wc -l; }
until_true 10 test "$(entries)" -eq 10 || fail "want 10 cache entries, have $(entries)"
ok "10 entries filled through the daemon (one negative)"

# each query's generation (a start bumps a query Redis records no definition of: 1 here)
GU=$(redis get "$NS:g:vb_user")
GN=$(redis get "$NS:g:vb_named")
# No invalidator runs here: stand in for one that has caught up.
redis set $NS:inv:pos FFFFFFFFFFFFFFFF >/dev/null

# jget EXPR < JSON: a Python expression over the parsed object `v`.
jget() { "$PY3" -c 'import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# --- a clean cache -----------------------------------------------------------------------------
rc=0
out=$("$VERIFY" -c "$WORK/cs.ini" --json) || rc=$?
[ $rc -eq 0 ] || fail "clean cache: exit $rc: $out"
[ "$(echo "$out" | jget 'v["checked"]')" = 10 ] || fail "clean cache: checked: $out"
[ "$(echo "$out" | jget 'v["ok"]')" = 10 ] || fail "clean cache: ok: $out"
[ "$(echo "$out" | jget 'v["stale"]')" = 0 ] || fail "clean cache: stale: $out"
[ "$(echo "$out" | jget 'v["queries"]["vb_named"]["ordered"]')" = True ] || fail "ORDER BY: $out"
[ "$(echo "$out" | jget 'v["queries"]["vb_items"]["ordered"]')" = False ] || fail "no ORDER BY: $out"
ok "a clean cache: 10 checked, 10 ok, exit 0"

# Rows of an unordered query come back in another order: still equal (compared as multisets).
# (an UPDATE writes new row versions after the others: a sequential scan sees another order)
primary "$DB" -c "UPDATE items SET label = label WHERE owner = 1 AND id < 15" >/dev/null
rc=0
out=$("$VERIFY" -c "$WORK/cs.ini" --query vb_items --json) || rc=$?
[ $rc -eq 0 ] && [ "$(echo "$out" | jget 'v["ok"]')" = 2 ] || fail "row order: exit $rc: $out"
ok "rows of a query without ORDER BY compare as a multiset"

# --- a write the cache never hears of ---------------------------------------------------------
primary "$DB" -c "UPDATE users SET name = 'changed' WHERE id = 3" >/dev/null
rc=0
out=$("$VERIFY" -c "$WORK/cs.ini" --json) || rc=$?
[ $rc -eq 1 ] || fail "stale cache: exit $rc, want 1: $out"
[ "$(echo "$out" | jget 'v["stale"]')" = 1 ] || fail "stale count: $out"
[ "$(echo "$out" | jget 'v["ok"]')" = 9 ] || fail "ok count: $out"
[ "$(echo "$out" | jget 'v["stale_keys"][0]["key"]')" = "$NS:e:vb_user:${GU:-0}:3" ] || fail "stale key: $out"
echo "$out" | jget 'v["stale_keys"][0]["diff"]' | grep -q '"user 3".*"changed"' ||
  fail "diff does not show the change: $out"
ok "a write left unseen by the cache: exactly $NS:e:vb_user:${GU:-0}:3 reported stale, exit 1"

rc=0
text=$("$VERIFY" -c "$WORK/cs.ini") || rc=$?
[ $rc -eq 1 ] || fail "text mode: exit $rc"
echo "$text" | grep -q "^STALE $NS:e:vb_user:${GU:-0}:3 lsn [0-9A-F]*/[0-9A-F]* age " || fail "text: $text"
echo "$text" | grep -q '^total: checked 10, ok 9, stale 1, skipped 0$' || fail "text total: $text"
ok "text report names the key, its LSN and age"

# --- sampling -------------------------------------------------------------------------------------
for _ in 1 2 3; do
  rc=0
  out=$("$VERIFY" -c "$WORK/cs.ini" --sample 3 --json) || rc=$?
  [ $rc -le 1 ] || fail "--sample: exit $rc: $out"
  [ "$(echo "$out" | jget 'v["queries"]["vb_user"]["checked"]')" = 3 ] || fail "--sample 3 (vb_user): $out"
  [ "$(echo "$out" | jget 'v["queries"]["vb_items"]["checked"]')" = 2 ] || fail "--sample 3 (vb_items): $out"
  [ "$(echo "$out" | jget 'v["checked"]')" = 6 ] || fail "--sample 3 total: $out"
done
ok "--sample 3 checks at most 3 entries per query"

# --- skipped, not stale ----------------------------------------------------------------------------
# The invalidator is behind ($NS:inv:pos far below the primary): skipped, and only the
# first entry waits for it.
redis set $NS:inv:pos 0000000000000001 >/dev/null
rc=0
start=$SECONDS
out=$("$VERIFY" -c "$WORK/cs.ini" --query vb_user --wait 2 --json) || rc=$?
[ $rc -eq 0 ] || fail "invalidator behind: exit $rc: $out"
[ "$(echo "$out" | jget 'v["skipped_reasons"]["invalidator_behind"]')" = 7 ] || fail "behind: $out"
[ $((SECONDS - start)) -le 6 ] || fail "a stalled invalidator cost --wait per entry"
ok "invalidator behind: 7 entries skipped (not stale), one bounded wait"

# An entry deleted between the two reads: the verifier waits for the invalidator after
# its first read; delete the entry, then let the "invalidator" catch up.
rc=0
"$VERIFY" -c "$WORK/cs.ini" --query vb_named --wait 30 --json -v >"$WORK/mid.json" 2>"$WORK/mid.err" &
vpid=$!
until_true 20 grep -q 'waiting for the invalidator' "$WORK/mid.err" || fail "verifier never waited"
redis del "$(redis --scan --pattern "$NS:e:vb_named:*")" >/dev/null
redis set $NS:inv:pos FFFFFFFFFFFFFFFF >/dev/null
wait $vpid || rc=$?
out=$(cat "$WORK/mid.json")
[ $rc -eq 0 ] || fail "deleted mid-check: exit $rc: $out"
[ "$(echo "$out" | jget 'v["checked"]')" = 1 ] || fail "deleted mid-check: $out"
[ "$(echo "$out" | jget 'v["skipped_reasons"]["changed"]')" = 1 ] || fail "deleted mid-check: $out"
grep -q "skipped $NS:e:vb_named:${GN:-0}:user%205:2000-01-01: changed while checking: deleted" "$WORK/mid.err" ||
  fail "no skip note: $(cat "$WORK/mid.err")"
ok "an entry deleted between the two reads is skipped (changed while checking)"

# A generation bump hides the old entries: nothing of vb_user is checked.
redis incr $NS:g:vb_user >/dev/null
rc=0
out=$("$VERIFY" -c "$WORK/cs.ini" --query vb_user --json) || rc=$?
[ $rc -eq 0 ] && [ "$(echo "$out" | jget 'v["checked"]')" = 0 ] || fail "after a bump: $out"
ok "only the current generation is checked"

# --- exit statuses, and no secrets ------------------------------------------------------------------
rc=0; "$VERIFY" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "no arguments: exit $rc"
rc=0; "$VERIFY" -c "$WORK/cs.ini" --query nosuch >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "unknown query: exit $rc"
rc=0; "$VERIFY" -c "$WORK/nosuch.ini" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "missing config: exit $rc"
rc=0; "$VERIFY" -c "$WORK/cs.ini" --sample 0 >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "--sample 0: exit $rc"

dead=$(free_port)
sed "s|^url = .*|url = redis://:hunter2@127.0.0.1:$dead/0|" "$WORK/cs.ini" >"$WORK/noredis.ini"
rc=0; "$VERIFY" -c "$WORK/noredis.ini" >"$WORK/noredis.out" 2>&1 || rc=$?
[ $rc -eq 3 ] || fail "Redis down: exit $rc: $(cat "$WORK/noredis.out")"
! grep -q hunter2 "$WORK/noredis.out" || fail "the Redis password was printed"
sed "s|^conninfo = host=127.0.0.1 port=$CS_PG_PRIMARY_PORT |conninfo = host=127.0.0.1 port=$dead password=hunter2 |" \
  "$WORK/cs.ini" >"$WORK/nopg.ini"
grep -q "port=$dead password=hunter2" "$WORK/nopg.ini" || fail "test bug: primary conninfo not rewritten"
rc=0; "$VERIFY" -c "$WORK/nopg.ini" >"$WORK/nopg.out" 2>&1 || rc=$?
[ $rc -eq 3 ] || fail "primary down: exit $rc: $(cat "$WORK/nopg.out")"
! grep -q hunter2 "$WORK/nopg.out" || fail "the primary's password was printed: $(cat "$WORK/nopg.out")"
ok "exit 2 on usage/config errors, 3 when a server is unreachable; passwords masked"

stop_daemon
