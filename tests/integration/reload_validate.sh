#!/usr/bin/env bash
# reload_validate.sh - issue 20 item 3: SIGHUP checks every new or changed query's SQL on a
# replica before swapping it in. SQL that does not prepare (a missing column, a wrong
# parameter type, a missing table) refuses the whole reload with the reason, and the running
# definitions keep answering; good SQL is applied. The check plans (EXPLAIN) and executes
# nothing: a query that would write is never run.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g;
CREATE TABLE side_effects (n int);
SQL
write_config "$WORK/base.ini"
conf() { # SQL_OF_Q1 [EXTRA QUERY SECTION]
  cp "$WORK/base.ini" "$WORK/cs.ini"
  printf '\n[query q1]\nsql = %s\nparams = id:int\nttl = 60s\n%s\n' "$1" "${2:-}" >>"$WORK/cs.ini"
}
outcomes() { grep -c 'reloaded \|reload refused\|reload failed' "$WORK/cachesvc.log" || true; }
reload() { # waits for the outcome; prints the new outcome line
  local n
  n=$(outcomes)
  kill -HUP "$DAEMON_PID"
  until_true 15 sh -c "[ \$(grep -c 'reloaded \|reload refused\|reload failed' '$WORK/cachesvc.log') -gt $n ]" ||
    fail "no reload outcome logged"
  grep 'reloaded \|reload refused\|reload failed' "$WORK/cachesvc.log" | tail -1
}

conf 'SELECT id, v FROM t WHERE id = $1'
start_daemon "$WORK/cs.ini"
[ "$(rows q1 3)" = '[[3,"v3"]]' ] || fail "q1 3: $(rows q1 3)"

# 1. A missing column: refused, q1 keeps its definition.
conf 'SELECT id, nope FROM t WHERE id = $1'
line=$(reload)
echo "$line" | grep -q 'reload refused, keeping the running config: \[query q1\] sql: does not prepare: r1: .*nope' ||
  fail "a missing column was not refused with the reason: $line"
[ "$(rows q1 4)" = '[[4,"v4"]]' ] || fail "after a refused reload q1 4: $(rows q1 4)"
ok "a missing column: ${line#*INFO }"

# 2. A new query on a missing table, beside a good change: the whole reload is refused.
conf 'SELECT id, v, 1 AS one FROM t WHERE id = $1' "$(printf '\n[query q2]\nsql = SELECT * FROM missing_t WHERE id = $1\nparams = id:int\nttl = 60s')"
line=$(reload)
echo "$line" | grep -q 'reload refused.*\[query q2\] sql: does not prepare: r1: .*missing_t' ||
  fail "a query on a missing table was not refused: $line"
[ "$(rows q1 5)" = '[[5,"v5"]]' ] || fail "q1 changed although the reload was refused: $(rows q1 5)"
ok "a new query on a missing table refuses the whole reload; q1 unchanged"

# 3. A parameter type the SQL cannot take (text compared with an int parameter).
conf 'SELECT id, v FROM t WHERE v = $1 AND id = 1'
line=$(reload)
echo "$line" | grep -q 'reload refused.*\[query q1\] sql: does not prepare' || fail "text = int was not refused: $line"
ok "a parameter type the SQL cannot take: refused"

# 5. Good SQL is applied.
conf 'SELECT id, upper(v) AS v FROM t WHERE id = $1'
line=$(reload)
echo "$line" | grep -q 'reloaded ' || fail "a good change was refused: $line"
until_true 10 sh -c "[ \"\$('$CLI' -p $PORT --json get q1 6 | sed -n 's/.*\"rows\":\\(.*\\)}\$/\\1/p')\" = '[[6,\"V6\"]]' ]" ||
  fail "the new definition does not answer: $(rows q1 6)"
ok "a good change is applied"

# 6. Planned, never executed - on the primary too. With the only replica down the check
#    falls back to the primary, where a write would land. SQL beginning with "(ANALYZE)"
#    would turn a bare "EXPLAIN " prefix into EXPLAIN (ANALYZE), which executes: the
#    check's option list makes it a syntax error instead, and nothing reaches side_effects.
stop_daemon || true
write_config "$WORK/base.ini" down
conf 'SELECT id, v FROM t WHERE id = $1'
start_daemon "$WORK/cs.ini" cachesvc2
mv "$WORK/cachesvc2.log" "$WORK/cachesvc.log"
until_true 20 sh -c "'$CLI' -p $PORT -t 3000 get q1 1 >/dev/null 2>&1" || fail "q1 on the primary"
conf '(ANALYZE) INSERT INTO side_effects VALUES ($1) RETURNING n AS id, n::text AS v'
line=$(reload)
[ "$(primary "$DB" -c 'SELECT count(*) FROM side_effects')" = 0 ] || fail "the check executed the SQL on the primary: $line"
echo "$line" | grep -q 'reload refused.*\[query q1\] sql: does not prepare' || fail "(ANALYZE) INSERT was not refused: $line"
ok "checked on the primary (replica down): an (ANALYZE) INSERT is refused and executes nothing"
