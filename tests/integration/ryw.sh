#!/usr/bin/env bash
# ryw.sh - read-your-writes (I3): a client writes, takes the token (pg_current_wal_lsn()
# after its commit), reads through cachesvc with it on another connection, and always sees
# its write: from the delayed replica once it replays the token (waiting up to ryw_wait),
# from the primary when the wait runs out, from cache once the invalidator passed it.
. "$(dirname "$0")/daemon_lib.sh"

[ "${CS_PG_DELAYED_REPLICA:-0}" != 0 ] || { echo "SKIP: needs a delayed replica"; exit 77; }
make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO items SELECT i, 0 FROM generate_series(1, 10) i;
SQL
delayed="replica$CS_PG_DELAYED_REPLICA"
queries() {
  cat <<'INI'

[query ry_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
invalidate_on = items(id = $1)
INI
}
write_token() { # ID VALUE -> prints the token
  primary "$DB" -c "UPDATE items SET v = $2 WHERE id = $1" >/dev/null
  primary "$DB" -c "SELECT pg_current_wal_lsn()"
}

# A: the delayed replica is the only one; ryw_wait longer than its delay.
FENCE=on
EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = false
ryw_wait = 5s"
write_config "$WORK/a.ini" "$delayed"
queries >>"$WORK/a.ini"
invalidator_section >>"$WORK/a.ini"
start_daemon "$WORK/a.ini" a
until_true 30 streaming || fail "a: the invalidator never streamed"
for round in 1 2 3; do
  token=$(write_token 1 $((100 + round)))
  out=$(cli -t 10000 --json --lsn "$token" get ry_item 1)
  [ "$(echo "$out" | json rows)" = "[[$((100 + round))]]" ] || fail "round $round: did not see its write: $out"
  src=$(echo "$out" | json source)
  [ "$src" = replica ] || [ "$src" = cache ] || fail "round $round: source $src with primary_fallback off"
  ok "round $round: token $token answered by the $src with the write"
done
[ "$(metric cachesvc_ryw_waits_total)" -ge 1 ] || fail "no request waited for the delayed replica"
ok "the delayed replica served read-your-writes after waiting for it to replay the token"

# once the invalidator passed the token and the entry was refilled, the cache answers
token=$(write_token 2 777)
wait_invalidated "$token"
wait_replicas
filled_now() { cli --json get ry_item 2 >/dev/null && [ "$(cli --json get ry_item 2 | json source)" = cache ]; }
until_true 20 filled_now || fail "could not cache ry_item 2"
out=$(cli --json --lsn "$token" get ry_item 2)
[ "$(echo "$out" | json source)" = cache ] && [ "$(echo "$out" | json rows)" = '[[777]]' ] ||
  fail "token already passed by the invalidator, yet not served from cache: $out"
ok "with the token already invalidated past, the cache answers"
stop_daemon || true

# B: ryw_wait shorter than the delay: the primary answers.
PORT=$(free_port); APORT=$(free_port); SOCK=$WORK/b.sock
EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = false
ryw_wait = 100ms"
write_config "$WORK/b.ini" "$delayed"
queries >>"$WORK/b.ini"
start_daemon "$WORK/b.ini" b
for round in 1 2 3; do
  token=$(write_token 3 $((200 + round)))
  out=$(cli --json --lsn "$token" get ry_item 3)
  [ "$(echo "$out" | json rows)" = "[[$((200 + round))]]" ] || fail "B round $round: did not see its write: $out"
  [ "$(echo "$out" | json source)" = primary ] || fail "B round $round: want the primary: $out"
done
[ "$(metric cachesvc_ryw_primary_total)" -ge 3 ] || fail "ryw_primary not counted"
ok "ryw_wait shorter than the replica's delay: the primary answers, with the write"

# without a token the delayed replica may answer stale data: what the token protects from
token=$(write_token 4 999)
out=$(cli --json --bypass get ry_item 4)
ok "without a token: $(echo "$out" | json rows) from the $(echo "$out" | json source) (stale is allowed here)"
