#!/usr/bin/env bash
# ddl_rewrite.sh - data a DDL command rewrites is never decoded as row changes: ALTER COLUMN ...
# TYPE ... USING upper(name) changes every row of users without an UPDATE in the stream, and
# before the DDL event triggers the cached row stayed "user 1" while the primary said "USER 1",
# even after later changes and the invalidator passing them. With [invalidator] ddl_triggers
# (the default) the start installs event triggers whose logical messages drop the table's
# queries at the DDL's commit, with a query-level fence there.
#  (1) the triggers are installed at start (and a second start with them in place changes
#      nothing: no message, no drop);
#  (2) a DDL command on another table (and a CREATE INDEX on users) drops nothing: u stays a hit;
#  (3) ALTER COLUMN ... TYPE ... USING on users: u answers the rewritten row, counted under
#      query_drops_total{reason="ddl"};
#  (4) CREATE FUNCTION (not a table: "*"): every query with invalidate_on is dropped;
#  (5) a DROP TABLE of the table and a CREATE again with other rows: the new rows.
# Negative control: ddl_triggers = false and the triggers dropped: the same ALTER leaves the old
# row cached after the invalidator passed it.
. "$(dirname "$0")/daemon_lib.sh"

users_db 3 "CREATE TABLE other (id bigint PRIMARY KEY, v text);"
FENCE=on inval_config "$WORK/cs.ini" u
start_streaming "$WORK/cs.ini" d1
ntrig() { primary "$DB" -c "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'cachesvc_ddl_%' AND evtenabled <> 'D'"; }
[ "$(ntrig)" = 2 ] || fail "(1) the DDL event triggers were not installed: $(ntrig) $(grep -a 'ddl_triggers' "$WORK/d1.log")"
grep -q 'installed the DDL event triggers' "$WORK/d1.log" || fail "(1) no log line for the installation"
stop_daemon
start_streaming "$WORK/cs.ini" d2
grep -q 'installed the DDL event triggers' "$WORK/d2.log" && fail "(1) a second start installed them again"
ok "(1) the DDL event triggers installed at the first start, left as they are at the next"

drops() { metric 'cachesvc_invalidator_query_drops_total{reason="ddl"}'; }
settled() { # waits until the invalidator passed everything committed so far
  wait_replicas
  wait_invalidated "$(primary "$DB" -c 'SELECT pg_current_wal_lsn()')"
}
fill u 1
d0=$(drops)
primary "$DB" -c "ALTER TABLE other ADD COLUMN w int" >/dev/null
primary "$DB" -c "CREATE INDEX users_name ON users (name)" >/dev/null
settled
[ "$(drops)" = "$d0" ] || fail "(2) a DDL command on another table (or an index) dropped a query: $d0 -> $(drops)"
[ "$(src u 1)" = cache ] || fail "(2) u 1 is no longer cached after DDL on another table"
ok "(2) DDL on another table and CREATE INDEX drop nothing"

primary "$DB" -c "ALTER TABLE users ALTER COLUMN name TYPE text USING upper(name)" >/dev/null
settled
r=$(cli --json get u 1) || fail "(3) get: $r"
grep -q '"USER 1"' <<<"$r" || fail "(3) the row rewritten by ALTER ... USING: $r"
awk -v a="$(drops)" -v b="$d0" 'BEGIN { exit !(a > b) }' || fail "(3) not counted as a ddl drop: $(drops)"
ok "(3) ALTER COLUMN ... TYPE ... USING: the rewritten row answers, not the cached one"

fill u 1
d1=$(drops)
primary "$DB" -c "CREATE FUNCTION f_ddl() RETURNS int LANGUAGE sql AS 'SELECT 1'" >/dev/null
settled
awk -v a="$(drops)" -v b="$d1" 'BEGIN { exit !(a > b) }' || fail "(4) CREATE FUNCTION dropped nothing"
[ "$(src u 1)" = cache ] && fail "(4) u 1 still cached after a function changed (it may read it)"
ok "(4) a DDL command on something other than a table drops every query with invalidate_on"

fill u 2
primary "$DB" -c "DROP TABLE users; CREATE TABLE users (id bigint PRIMARY KEY, name text); INSERT INTO users VALUES (2, 'again 2')" >/dev/null
primary "$DB" -c "ALTER PUBLICATION cs_pub ADD TABLE users" >/dev/null
settled
r=$(cli --json get u 2) || fail "(5) get: $r"
grep -q '"again 2"' <<<"$r" || fail "(5) a table dropped and created again: $r"
ok "(5) DROP TABLE and CREATE again: the new table's row"
stop_daemon

# ---- negative control: the triggers off ----
primary "$DB" -c "DROP EVENT TRIGGER cachesvc_ddl_end; DROP EVENT TRIGGER cachesvc_ddl_drop" >/dev/null
sed -i 's/^\[invalidator\]$/[invalidator]\nddl_triggers = false/' "$WORK/cs.ini"
start_streaming "$WORK/cs.ini" d3
[ "$(ntrig)" = 0 ] || fail "control: ddl_triggers = false installed the triggers"
fill u 2
primary "$DB" -c "ALTER TABLE users ALTER COLUMN name TYPE text USING upper(name)" >/dev/null
settled
sleep 1
r=$(cli --json get u 2) || fail "control: get: $r"
grep -q '"again 2"' <<<"$r" || fail "control: without the triggers the old row was expected to stay cached: $r"
grep -q '"source":"cache"' <<<"$r" || fail "control: not from the cache: $r"
ok "control: without the triggers the rewritten row stays cached with its old value ($r)"
stop_daemon
