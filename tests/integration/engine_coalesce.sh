#!/usr/bin/env bash
# engine_coalesce.sh - 1000 concurrent misses on one key run ONE query on the replica
# (counted by the replica itself, pg_stat_statements), and all 1000 get the answer.
. "$(dirname "$0")/daemon_lib.sh"

items_db 1 10 "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
write_config "$WORK/cs.ini" replica1
cat >>"$WORK/cs.ini" <<'INI'

[query co_item]
sql = SELECT v, pg_sleep(0.3) IS NULL AS slow FROM items WHERE id = $1
params = id:int8
INI
start_daemon "$WORK/cs.ini"
replica_port=$CS_PG_REPLICA1_PORT
pg "$replica_port" "$DB" -c "SELECT pg_stat_statements_reset()" >/dev/null
before=$(stmt_calls "$replica_port" '%pg_sleep%FROM items WHERE id%')

out=$("$BURST" -p "$PORT" -c 50 -n 20 -t 20000 co_item 3)
[ "$(echo "$out" | json ok)" = 1000 ] || fail "not every request answered: $out"
after=$(stmt_calls "$replica_port" '%pg_sleep%FROM items WHERE id%')
ran=$((after - before))
[ "$ran" = 1 ] || fail "1000 concurrent misses ran the query $ran times on the replica: $out"
coalesced=$(metric cachesvc_coalesced_total)
[ "$coalesced" -ge 900 ] || fail "only $coalesced requests coalesced"
ok "1000 concurrent misses -> $ran replica query, $coalesced joined it: $out"

# and then they are hits
out=$("$BURST" -p "$PORT" -c 10 -n 10 co_item 3)
[ "$(echo "$out" | json cache)" = 100 ] || fail "after the fill not all hits: $out"
ok "afterwards every read is a hit"
