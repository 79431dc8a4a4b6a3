#!/usr/bin/env bash
# lib_coalesce.sh - library mode coalesces like the daemon: 200 threads missing on one key
# at once through one blocking handle run ONE query on the replica (counted by the replica
# itself, pg_stat_statements), and so do 500 asynchronous GETs on one loop.
. "$(dirname "$0")/daemon_lib.sh"
: "${CS_LIB_TEST:?CS_LIB_TEST (the lib_test binary) must be set; meson test sets it}"

items_db 1 10 "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
write_config "$WORK/lib.ini" replica1
cat >>"$WORK/lib.ini" <<'INI'

[query co_item]
sql = SELECT v, pg_sleep(0.3) IS NULL AS slow FROM items WHERE id = $1
params = id:int8

[query co_warm]
sql = SELECT id FROM items WHERE id = $1
params = id:int8
INI
replica_port=$CS_PG_REPLICA1_PORT
pg "$replica_port" "$DB" -c "SELECT pg_stat_statements_reset()" >/dev/null
pattern='%pg_sleep%FROM items WHERE id%'

before=$(stmt_calls "$replica_port" "$pattern")
out=$("$CS_LIB_TEST" coalesce "$WORK/lib.ini" 200 co_item 3 2>"$WORK/lib_coalesce.log") ||
  { cat "$WORK/lib_coalesce.log" >&2; fail "coalesce scenario: $out"; }
ran=$(( $(stmt_calls "$replica_port" "$pattern") - before ))
[ "$ran" = 1 ] || fail "200 concurrent blocking misses ran the query $ran times: $out"
[ "$(echo "$out" | json coalesced)" -ge 150 ] || fail "too few coalesced: $out"
ok "200 threads, one key, one handle -> $ran replica query: $out"

before=$(stmt_calls "$replica_port" "$pattern")
out=$("$CS_LIB_TEST" coalesce_async "$WORK/lib.ini" 500 co_item 4 2>"$WORK/lib_coalesce_async.log") ||
  { cat "$WORK/lib_coalesce_async.log" >&2; fail "async coalesce scenario: $out"; }
ran=$(( $(stmt_calls "$replica_port" "$pattern") - before ))
[ "$ran" = 1 ] || fail "500 asynchronous misses ran the query $ran times: $out"
ok "500 asynchronous GETs, one key -> $ran replica query: $out"
