#!/usr/bin/env bash
# warm_from_sql.sh - cachesvc-warm --from-sql enumerates the keys with a query on a replica
# (streamed row by row) and warms them; rows with several columns give several params,
# NULL columns SQL NULL; an interrupted SQL run resumes by row number; a bad query or an
# unreachable replica stops the tool with exit 2 and the database's message.
. "$(dirname "$0")/daemon_lib.sh"
WARM=$CS_BUILD/cachesvc/cachesvc-warm
N=6000

make_db <<SQL
CREATE TABLE items (id bigint PRIMARY KEY, v text, last_active timestamptz);
INSERT INTO items SELECT i, 'v' || i, now() - i * interval '1 minute' FROM generate_series(1, $N) i;
SQL
wait_replicas
write_config "$WORK/cs.ini" replica1
item_query >>"$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query w_pair]
sql = SELECT count(*) AS n FROM items WHERE id = $1 AND v IS NOT DISTINCT FROM $2
params = id:int8, v:text
INI
start_daemon "$WORK/cs.ini"
# the keys are enumerated on another replica than the one the daemon reads from
ENUM=$(conninfo_of replica2)

fills0=$(metric cachesvc_fills_total)
"$WARM" -p "$PORT" -c 16 --rate 0 --json --query w_item --conninfo "$ENUM" \
  --from-sql "SELECT id FROM items ORDER BY last_active DESC LIMIT 4000" >"$WORK/r1.json" 2>"$WORK/w1.log" ||
  fail "--from-sql: $(cat "$WORK/r1.json" "$WORK/w1.log")"
r1=$(cat "$WORK/r1.json")
[ "$(json filled <<<"$r1")" = 4000 ] || fail "--from-sql: $r1"
[ "$(json done <<<"$r1")" = 4000 ] || fail "--from-sql: $r1"
fills=$(( $(metric cachesvc_fills_total) - fills0 ))
[ "$fills" = 4000 ] || fail "daemon fills: $fills"
out=$("$BURST" -p "$PORT" -c 4 -n 50 w_item 17)
[ "$(json cache <<<"$out")" = 200 ] || fail "key 17 not cached: $out"
src=$(cli --json get w_item 3999 | json source)
[ "$src" = cache ] || fail "key 3999: source=$src"
src=$(cli --json get w_item 4001 | json source)
[ "$src" != cache ] || fail "key 4001 was not in the SQL but is cached"
ok "--from-sql: 4000 keys enumerated on replica2 and warmed ($fills fills; 4001 not)"

# Several columns, and NULL.
"$WARM" -p "$PORT" --rate 0 --json --query w_pair --conninfo "$ENUM" \
  --from-sql "SELECT id, CASE WHEN id % 10 = 0 THEN NULL ELSE v END FROM items WHERE id <= 100 ORDER BY id" \
  >"$WORK/r2.json" 2>"$WORK/w2.log" || fail "two columns: $(cat "$WORK/r2.json" "$WORK/w2.log")"
r2=$(cat "$WORK/r2.json")
[ "$(json filled <<<"$r2")" = 100 ] || fail "two columns: $r2"
[ "$(cli --json get w_pair 7 v7 | json source)" = cache ] || fail "w_pair 7 v7 not cached"
[ "$(cli --json get w_pair 20 null | json source)" = cache ] || fail "w_pair 20 NULL not cached"
ok "two-column rows give two params; NULL columns are SQL NULL"

# Interrupted and resumed by row number: the resumed run sends only the missing rows.
SQLQ="SELECT id FROM items WHERE id > 4000 ORDER BY id"
ARGS=(-p "$PORT" -c 8 --rate 1000 --json --quiet --checkpoint "$WORK/sql.ck" --query w_item
  --conninfo "$ENUM" --from-sql "$SQLQ")
set +e
"$WARM" "${ARGS[@]}" >"$WORK/r3.json" 2>"$WORK/w3.log" &
pid=$!
sleep 1
kill -INT $pid
wait $pid
rc=$?
set -e
[ $rc = 3 ] || fail "SIGINT: exit $rc: $(cat "$WORK/r3.json" "$WORK/w3.log")"
done1=$(json done <"$WORK/r3.json")
req0=$(metric cachesvc_requests_total)
"$WARM" "${ARGS[@]}" >"$WORK/r4.json" 2>"$WORK/w4.log" || fail "resume: $(cat "$WORK/r4.json" "$WORK/w4.log")"
r4=$(cat "$WORK/r4.json")
sent=$(( $(metric cachesvc_requests_total) - req0 ))
[ "$(json done <<<"$r4")" = 2000 ] || fail "resume: $r4"
# (key 4001 was filled by the cli check above: it counts as already cached)
[ "$(json filled <<<"$r4")" = 1999 ] && [ "$(json already_cached <<<"$r4")" = 1 ] ||
  fail "resume: $r4"
[ "$sent" = $((2000 - done1)) ] || fail "resume sent $sent, want $((2000 - done1))"
ok "--from-sql interrupted after $done1 rows, resumed: sent the other $sent"
# another SQL is another input
set +e
"$WARM" -p "$PORT" --quiet --checkpoint "$WORK/sql.ck" --query w_item --conninfo "$ENUM" \
  --from-sql "SELECT id FROM items WHERE id > 4001 ORDER BY id" >/dev/null 2>"$WORK/w5.log"
rc=$?
set -e
[ $rc = 2 ] && grep -q "another input" "$WORK/w5.log" || fail "other SQL, same checkpoint: exit $rc $(cat "$WORK/w5.log")"
ok "a checkpoint of another SQL is refused"

# Errors: bad SQL, unreachable database.
set +e
"$WARM" -p "$PORT" --quiet --query w_item --conninfo "$ENUM" --from-sql "SELECT nope FROM items" \
  >/dev/null 2>"$WORK/w6.log"
rc=$?
set -e
[ $rc = 2 ] && grep -q 'column "nope" does not exist' "$WORK/w6.log" || fail "bad SQL: exit $rc: $(cat "$WORK/w6.log")"
set +e
"$WARM" -p "$PORT" --quiet --query w_item --conninfo "host=127.0.0.1 port=$(free_port) dbname=x connect_timeout=2" \
  --from-sql "SELECT 1" >/dev/null 2>"$WORK/w7.log"
rc=$?
set -e
[ $rc = 2 ] && grep -q "conninfo" "$WORK/w7.log" || fail "unreachable: exit $rc: $(cat "$WORK/w7.log")"
ok "bad SQL and an unreachable database: exit 2 with the reason"
