#!/usr/bin/env bash
# namespace.sh - deployments sharing one Redis never see each other's state (issue 13 item 6).
# Two daemons with the same query name on two databases of the sandbox Redis (default
# namespaces cs<dbA> and cs<dbB>; pub/sub channels ignore the database number, so the
# channel must carry the namespace). Daemon A invalidates the whole query over and over
# (generation bump + a message on A's channel); daemon B keeps filling: every fill stored,
# none refused for a generation it never had, and B's generation stays B's own.
# Before the fix both used the channel "cs:gen": B adopted A's generations and refused fills.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE ns_items (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO ns_items SELECT i, 'v' || i FROM generate_series(1, 200) i;
SQL

# a second Redis database of this test's own
DB_A=$REDIS_DB NS_A=$NS LOCK_A=$REDIS_DB_LOCK
claim_redis_db
DB_B=$REDIS_DB NS_B=cs$DB_B
CLEANUPS+=("rm -rf '$REDIS_DB_LOCK'")
REDIS_DB=$DB_A REDIS_DB_LOCK=$LOCK_A
[ "$DB_A" != "$DB_B" ] || fail "claimed the same Redis database twice"
redis_b() { redis-cli -p "$CS_REDIS_PORT" -n "$DB_B" "$@"; }
redis_b flushdb >/dev/null

queries() {
  cat <<'INI'

[query ns_item]
sql = SELECT id, v FROM ns_items WHERE id = $1
params = id:int8
ttl = 1h
INI
}
write_config "$WORK/a.ini" replica1
queries >>"$WORK/a.ini"
PORT_A=$PORT APORT_A=$APORT
PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/b.sock
write_config "$WORK/b.ini" replica1
sed -i "s|^url = .*|url = redis://127.0.0.1:$CS_REDIS_PORT/$DB_B|" "$WORK/b.ini"
queries >>"$WORK/b.ini"
PORT_B=$PORT APORT_B=$APORT

PORT=$PORT_A APORT=$APORT_A
start_daemon "$WORK/a.ini" a
PORT=$PORT_B APORT=$APORT_B
start_daemon "$WORK/b.ini" b
on_a() { PORT=$PORT_A APORT=$APORT_A "$@"; }
on_b() { PORT=$PORT_B APORT=$APORT_B "$@"; }
gen_a() { local g; g=$(redis-cli -p "$CS_REDIS_PORT" -n "$DB_A" get "$NS_A:g:ns_item"); echo "${g:-0}"; }
gen_b() { local g; g=$(redis_b get "$NS_B:g:ns_item"); echo "${g:-0}"; }

# both daemons subscribed and serving
on_a cli get ns_item 1 >/dev/null || fail "a: GET failed"
on_b cli get ns_item 1 >/dev/null || fail "b: GET failed"
on_b until_true 10 metric_ge cachesvc_fills_total 1 || fail "b: the first fill was not stored"
fills0=$(on_b metric cachesvc_fills_total)
gb0=$(gen_b)
ga0=$(gen_a)
bumps_b0=$(on_b metric cachesvc_generation_bumps_total) # its start's definition bump

# A bumps its generation 20 times (each one published on A's channel); B fills a new key
# after every bump, so B's fills race A's messages throughout.
for i in $(seq 1 20); do
  on_a cli invalidate ns_item >/dev/null || fail "a: invalidate failed"
  on_b cli get ns_item $((i + 100)) >/dev/null || fail "b: GET $((i + 100)) failed"
done
[ "$(gen_a)" -ge $((ga0 + 20)) ] || fail "a: 20 whole-query invalidations moved its generation only from $ga0 to $(gen_a)"
ok "a: 20 whole-query invalidations, generation $ga0 -> $(gen_a)"

# a few more fills of B after the last message, then B's counters
for i in $(seq 1 5); do on_b cli get ns_item $((i + 150)) >/dev/null || fail "b: GET failed"; done
on_b until_true 10 metric_ge cachesvc_fills_total $((fills0 + 25)) ||
  fail "b: only $(($(on_b metric cachesvc_fills_total) - fills0)) of 25 fills stored (refused for generation: $(on_b metric cachesvc_fill_refused_generation_total))"
[ "$(on_b metric cachesvc_fill_refused_generation_total)" = 0 ] ||
  fail "b: $(on_b metric cachesvc_fill_refused_generation_total) fills refused for a generation: A's messages reached B"
[ "$(gen_b)" = "$gb0" ] || fail "b: its generation moved ($gb0 -> $(gen_b)) without any invalidation of its own"
# B's entries are under B's own (unchanged) generation: B did not adopt A's
REDIS_DB=$DB_B NS=$NS_B cached ns_item 155 || fail "b: ns_item 155 is not cached under B's generation $(gen_b)"
src=$(on_b cli --json get ns_item 155 | json source)
[ "$src" = cache ] || fail "b: ns_item 155 answered from $src, not the cache"
[ "$(on_b metric cachesvc_generation_bumps_total)" = "$bumps_b0" ] || fail "b: counted generation bumps it never made"
ok "b: 25 fills stored, 0 refused for a generation, its generation stays $gb0: A's channel is not B's"

# and the other way round: B's own invalidation bumps B only
on_b cli invalidate ns_item >/dev/null || fail "b: invalidate failed"
ga1=$(gen_a)
[ "$(gen_b)" = $((gb0 + 1)) ] || fail "b: its invalidation did not bump its generation ($(gen_b))"
fa=$(on_a metric cachesvc_fills_total)
on_a cli get ns_item 199 >/dev/null
on_a until_true 10 metric_ge cachesvc_fills_total $((fa + 1)) || fail "a: its fill after B's bump was not stored"
[ "$(gen_a)" = "$ga1" ] || fail "a: its generation moved on B's invalidation"
ok "b's invalidation bumps b only"
