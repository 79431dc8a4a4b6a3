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
#  (5) a DROP TABLE of the table and a CREATE again with other rows: the new rows;
#  (6) another role's DDL works with the triggers in place; it cannot drop queries (review 37);
#  (7) REFRESH MATERIALIZED VIEW, a temporary view's DROP: nothing dropped;
#  (8) a partition's DDL, and its DROP, drop the parent's query;
#  (9) review 37 R37-6: ALTER TABLE users RENAME TO: u's entries are dropped at the rename (u
#      is not served from the cache while no table is named users), and another table renamed
#      to users answers its own rows; a renamed column drops u too (its SQL then fails);
# (10) ALTER TABLE users SET SCHEMA: u's entries dropped, and again when it moves back;
# (11) ALTER SCHEMA s_a RENAME: the query on s_a.t_s is dropped; the table renamed after its
#      schema was renamed (and back): dropped again;
# (12) an upgrade from version 4 (and a row it left: R40-5) installs version 5 at the start;
# (13) the triggers' map of relations disagreeing with the catalogs (a restored dump) is repaired
#      in place at the start;
# (14) review 42 R42-1/R42-2: that repair while another session holds an open DDL transaction
#      (it waits on nothing); one that cannot get its lock is a warning (control: a DROP TABLE
#      of the map makes a third session's CREATE TABLE wait);
#      (14b) R44-1: one that wrote the map (a rename): the repair refused at once, the
#      migration commits (no deadlock), the next start repairs;
# (15) a rename by a role that is not a superuser;
# (16) R42-3: a table turned into a view (CREATE RULE "_RETURN") leaves the map, and a row left
#      for a view repairs nothing at the start;
# (17) R42-3: ALTER EXTENSION SET SCHEMA: the map follows the extension's tables (control: the
#      row left under the old schema leaves the query cached at a rename);
# (18) R42-5: --check as a role that is not a superuser says it cannot check the map; with a
#      map that disagrees it would repair it (not install the triggers).
# Negative controls: (v4) the triggers in place, their map of relations told the new name before
# the rename (what version 4 knew: the new name only): the rename leaves u cached (it is (13)'s
# control too: a map that disagrees with the catalogs and is not repaired, the check off);
# ddl_triggers = false and the triggers dropped: the same ALTER as (3) and a rename leave the old
# row cached after the invalidator passed them.
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

# (6) review 37 R37-1/R37-3: a role that is not a superuser runs DDL with the triggers in
# place (they are SECURITY DEFINER), and can neither write their table nor drop queries with
# a logical message of the old prefix
ROLE=r_${TEST_NAME}_$$
primary "$DB" -c "CREATE ROLE $ROLE LOGIN; GRANT CREATE, USAGE ON SCHEMA public TO $ROLE" >/dev/null
CLEANUPS+=("primary $DB -c 'DROP OWNED BY $ROLE; DROP ROLE $ROLE'")
as_role() { "$CS_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$CS_PG_SOCKET_DIR" -p "$CS_PG_PRIMARY_PORT" -U "$ROLE" -d "$DB" "$@"; }
as_role -c "CREATE TABLE mine (x int); ALTER TABLE mine ADD COLUMN y int; CREATE TEMP TABLE tt (x int); CREATE FUNCTION mine_f() RETURNS int LANGUAGE sql AS 'SELECT 1'; DROP TABLE mine" >/dev/null 2>"$WORK/role.err" ||
  fail "(6) DDL by a role that is not a superuser failed with the triggers in place: $(cat "$WORK/role.err")"
settled # (the role's DROP TABLE and CREATE FUNCTION dropped every query: "*")
fill u 2
d2=$(drops)
as_role -c "INSERT INTO cachesvc.ddl_event (nsp, rel) VALUES ('*', '*')" >/dev/null 2>&1 &&
  fail "(6) a role that is not a superuser wrote the triggers' table"
as_role -c "SELECT pg_logical_emit_message(true, 'cachesvc.ddl', '*')" >/dev/null 2>&1 || true
# temporary objects of every kind (review 38 R38-1: a temporary function, domain or view wrote "*")
as_role -c "CREATE FUNCTION pg_temp.tf() RETURNS int LANGUAGE sql AS 'SELECT 1'; CREATE DOMAIN pg_temp.td AS int; CREATE TEMP TABLE tt2 (x int); CREATE TEMP VIEW tv2 AS SELECT x FROM tt2; DROP VIEW tv2; CREATE RULE r2 AS ON INSERT TO tt2 DO INSTEAD NOTHING; DROP RULE r2 ON tt2; CREATE POLICY p2 ON tt2 USING (true); ALTER POLICY p2 ON tt2 USING (false); DROP POLICY p2 ON tt2" >/dev/null 2>"$WORK/role.err" ||
  fail "(6) temporary objects: $(cat "$WORK/role.err")"
settled
[ "$(drops)" = "$d2" ] || fail "(6) another role dropped queries: $d2 -> $(drops)"
[ "$(src u 2)" = cache ] || fail "(6) u 2 no longer cached after another role's attempts"
[ "$(primary "$DB" -c "SELECT count(*) FROM cachesvc.ddl_event")" = 0 ] || fail "(6) rows left in cachesvc.ddl_event (each DDL deletes its own)"
ok "(6) DDL by another role works with the triggers in place; it can neither write their table nor drop queries (nor through temporary objects); the table stays empty"

# (7) R37-4/R37-5: REFRESH MATERIALIZED VIEW and a temporary view's DROP drop nothing
primary "$DB" -c "CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM users" >/dev/null
settled
fill u 2
d3=$(drops)
primary "$DB" -c "REFRESH MATERIALIZED VIEW mv" >/dev/null
primary "$DB" -c "CREATE TEMP VIEW tv AS SELECT 1 AS one; DROP VIEW tv" >/dev/null
settled
[ "$(drops)" = "$d3" ] || fail "(7) REFRESH MATERIALIZED VIEW or a temporary view dropped queries: $d3 -> $(drops)"
[ "$(src u 2)" = cache ] || fail "(7) u 2 no longer cached"
ok "(7) REFRESH MATERIALIZED VIEW and a temporary view's DROP drop nothing"
stop_daemon

# (8) R37-2: a partition dropped: the rows it held leave the parent's query
primary "$DB" -c "CREATE TABLE pt (id bigint PRIMARY KEY, v text) PARTITION BY RANGE (id); CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (10); CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (10) TO (20); INSERT INTO pt VALUES (2, 'two'), (12, 'twelve'); ALTER PUBLICATION cs_pub ADD TABLE pt; ALTER PUBLICATION cs_pub SET (publish_via_partition_root = true)" >/dev/null
printf '\n[query qp]\nsql = SELECT id, v FROM pt WHERE id = $1\nparams = id:int8\ninvalidate_on = pt(id = $1)\n' >>"$WORK/cs.ini"
start_streaming "$WORK/cs.ini" d2b
fill qp 2
fill qp 12
primary "$DB" -c "ALTER TABLE pt2 SET (fillfactor = 90)" >/dev/null # a partition's own DDL
settled
[ "$(src qp 12)" = cache ] && fail "(8) a partition's DDL left its parent's query cached"
primary "$DB" -c "DROP TABLE pt1" >/dev/null
settled
r=$(cli --json get qp 2) || fail "(8) get: $r"
grep -q '"two"' <<<"$r" && fail "(8) a row of a dropped partition still answered: $r"
ok "(8) a partition's DDL and its DROP drop the parent's query: the dropped rows are gone"
stop_daemon

# (9) R37-6: a table renamed away: its queries dropped at the rename; another renamed to its name
primary "$DB" -c "CREATE TABLE users_b (id bigint PRIMARY KEY, name text); INSERT INTO users_b VALUES (2, 'bee 2'); ALTER PUBLICATION cs_pub ADD TABLE users_b; CREATE SCHEMA s_a; CREATE TABLE s_a.t_s (id bigint PRIMARY KEY, v text); INSERT INTO s_a.t_s VALUES (1, 'ess 1'); ALTER PUBLICATION cs_pub ADD TABLE s_a.t_s" >/dev/null
printf '\n[query qs]\nsql = SELECT id, v FROM s_a.t_s WHERE id = $1\nparams = id:int8\ninvalidate_on = s_a.t_s(id = $1)\n' >>"$WORK/cs.ini"
start_streaming "$WORK/cs.ini" d4
not_cached() { # QUERY PARAM: the key's answer does not come from the cache (an error is fine)
  local r
  r=$(cli --json get "$@" 2>&1) || true
  ! grep -q '"source":"cache"' <<<"$r"
}
fill u 2
d4=$(drops)
primary "$DB" -c "ALTER TABLE users RENAME TO users_a" >/dev/null
settled
not_cached u 2 || fail "(9) u 2 still served from the cache after its table was renamed away: $(cli --json get u 2)"
awk -v a="$(drops)" -v b="$d4" 'BEGIN { exit !(a > b) }' || fail "(9) the rename was not counted as a ddl drop: $(drops)"
primary "$DB" -c "ALTER TABLE users_b RENAME TO users" >/dev/null
settled
r=$(cli --json get u 2) || fail "(9) get: $r"
grep -q '"bee 2"' <<<"$r" || fail "(9) after another table was renamed to users: $r"
fill u 2
primary "$DB" -c "ALTER TABLE users RENAME COLUMN name TO nm" >/dev/null
settled
not_cached u 2 || fail "(9) u 2 still served from the cache after its column was renamed"
primary "$DB" -c "ALTER TABLE users RENAME COLUMN nm TO name" >/dev/null
ok "(9) RENAME TO: the query on the old name dropped at the rename, the table renamed to it answers; RENAME COLUMN drops it too"

# (10) SET SCHEMA: away and back
settled
fill u 2
primary "$DB" -c "CREATE SCHEMA s_x; ALTER TABLE users SET SCHEMA s_x" >/dev/null
settled
not_cached u 2 || fail "(10) u 2 still served from the cache after its table moved to another schema"
primary "$DB" -c "ALTER TABLE s_x.users SET SCHEMA public" >/dev/null
settled
r=$(cli --json get u 2) || fail "(10) get: $r"
grep -q '"bee 2"' <<<"$r" || fail "(10) after the table moved back: $r"
ok "(10) SET SCHEMA: the query on the old schema's table dropped"

# (11) ALTER SCHEMA RENAME: every table of the schema changes its name
fill qs 1
primary "$DB" -c "ALTER SCHEMA s_a RENAME TO s_b" >/dev/null
settled
not_cached qs 1 || fail "(11) qs 1 still served from the cache after its schema was renamed"
primary "$DB" -c "ALTER SCHEMA s_b RENAME TO s_a" >/dev/null
settled
r=$(cli --json get qs 1) || fail "(11) get: $r"
grep -q '"ess 1"' <<<"$r" || fail "(11) after the schema was renamed back: $r"
fill qs 1 # the old name of a table renamed in a schema renamed since it was known
primary "$DB" -c "ALTER TABLE s_a.t_s RENAME TO t_s2" >/dev/null
settled
not_cached qs 1 || fail "(11) qs 1 still served from the cache after its table was renamed in a renamed schema"
primary "$DB" -c "ALTER TABLE s_a.t_s2 RENAME TO t_s" >/dev/null
ok "(11) ALTER SCHEMA RENAME: the query on its table dropped; a table of a renamed schema renamed: dropped"

# (12) an upgrade from version 4 (ddl_v4.sql: no map of relations), with a row it left behind
# (review 40 R40-5) and a rename while it was in place: the start installs version 5, deletes
# the row, seeds the map with the current names; a rename is followed
stop_daemon
primary "$DB" -f "$(dirname "$0")/ddl_v4.sql" >/dev/null
primary "$DB" -c "DROP TABLE cachesvc.ddl_rel; INSERT INTO cachesvc.ddl_event (nsp, rel) VALUES ('*', '*'); ALTER TABLE users_a RENAME TO users_old" >/dev/null
[ "$(primary "$DB" -c "SELECT obj_description('cachesvc.ddl_end()'::regprocedure, 'pg_proc')")" = "cachesvc ddl triggers 4" ] ||
  fail "(12) version 4 not in place"
start_streaming "$WORK/cs.ini" d5
grep -q 'installed the DDL event triggers' "$WORK/d5.log" || fail "(12) version 4 was not replaced at the start"
[ "$(primary "$DB" -c "SELECT obj_description('cachesvc.ddl_end()'::regprocedure, 'pg_proc')")" = "cachesvc ddl triggers 5" ] ||
  fail "(12) not version 5 after the start"
[ "$(primary "$DB" -c "SELECT count(*) FROM cachesvc.ddl_event")" = 0 ] || fail "(12) the row version 4 left is still there"
[ "$(primary "$DB" -c "SELECT rel FROM cachesvc.ddl_rel WHERE relid = 'public.users_old'::regclass")" = users_old ] ||
  fail "(12) the map of relations was not seeded with the current names"
settled
fill u 2
primary "$DB" -c "ALTER TABLE users RENAME TO users_e" >/dev/null
settled
not_cached u 2 || fail "(12) after the upgrade, u 2 still served from the cache after its table was renamed away"
primary "$DB" -c "ALTER TABLE users_e RENAME TO users" >/dev/null
ok "(12) an upgrade from version 4: replaced, its row deleted, the map seeded; a rename followed"

# (13) a map of relations that disagrees with the catalogs (a restored dump: another database's
# oids) is repaired at the start: two tables' names swapped in it, then a rename followed
stop_daemon
primary "$DB" -c "UPDATE cachesvc.ddl_rel SET rel = CASE rel WHEN 'users' THEN 'users_old' ELSE 'users' END WHERE relid IN ('public.users'::regclass, 'public.users_old'::regclass)" >/dev/null
start_streaming "$WORK/cs.ini" d6
grep -q 'repaired the DDL event triggers. map of relations' "$WORK/d6.log" || fail "(13) a map that disagrees with the catalogs was left as it was"
grep -q 'installed the DDL event triggers' "$WORK/d6.log" && fail "(13) the triggers were installed again to repair their map (review 42 R42-1)"
[ "$(primary "$DB" -c "SELECT rel FROM cachesvc.ddl_rel WHERE relid = 'public.users'::regclass")" = users ] ||
  fail "(13) the map of relations was not repaired"
settled
fill u 2
primary "$DB" -c "ALTER TABLE users RENAME TO users_f" >/dev/null
settled
not_cached u 2 || fail "(13) u 2 still served from the cache after its table was renamed away"
primary "$DB" -c "ALTER TABLE users_f RENAME TO users" >/dev/null
stop_daemon
start_streaming "$WORK/cs.ini" d7
grep -q 'installed the DDL event triggers\|repaired the DDL' "$WORK/d7.log" && fail "(13) a map that agrees with the catalogs was repaired again"
ok "(13) a map of relations that disagrees with the catalogs is repaired at the start (one that agrees is left)"

# (14) review 42 R42-1, R42-2: the map repaired in place (a transaction of its own, a short
# lock_timeout, no table lock stronger than a DDL command's) while another session holds an
# open DDL transaction, which read the map: the repair waits on nothing, and the session is
# still open when the start has repaired the map. A repair that cannot get its lock is a
# warning naming the consequence. Control: a DROP TABLE of the map, what the start did
# before, queues behind that session and every DDL queues behind it (a lock_timeout on the
# third session, not a time measured).
stop_daemon
bad_map() { primary "$DB" -c "UPDATE cachesvc.ddl_rel SET rel = 'wrong' WHERE relid = 'public.users'::regclass" >/dev/null; }
map_agrees() {
  [ "$(primary "$DB" -c "SELECT NOT EXISTS (SELECT FROM pg_class c LEFT JOIN cachesvc.ddl_rel m ON m.relid = c.oid WHERE c.relkind IN ('r', 'p', 'f', 'm') AND c.relpersistence <> 't' AND (m.relid IS NULL OR m.nspid <> c.relnamespace OR m.rel <> c.relname))")" = t ]
}
session() { # NAME SQL: a session of its own in the background (application_name NAME)
  PGAPPNAME=$1 "$CS_PG_BIN/psql" -X -q -At -h "$CS_PG_SOCKET_DIR" -p "$CS_PG_PRIMARY_PORT" -U postgres -d "$DB" -c "$2" >"$WORK/$1.out" 2>&1 &
  CLEANUPS+=("end_session $1")
}
session_sleeping() { [ "$(primary postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1' AND wait_event = 'PgSleep'")" = 1 ]; }
session_gone() { [ "$(primary postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1'")" = 0 ]; }
end_session() {
  primary postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$1'" >/dev/null
  until_true 20 session_gone "$1" || fail "session $1 did not end"
}
bad_map
session s_ddl "BEGIN; ALTER TABLE other ADD COLUMN s14 int; SELECT pg_sleep(300); COMMIT"
until_true 20 session_sleeping s_ddl || fail "(14) the session with an open DDL transaction never got to its sleep: $(cat "$WORK/s_ddl.out")"
[ "$(primary "$DB" -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 's_ddl' AND l.relation = 'cachesvc.ddl_rel'::regclass AND l.granted")" -ge 1 ] ||
  fail "(14) the open DDL transaction holds no lock on the map: the case is not set up"
start_streaming "$WORK/cs.ini" d8
grep -q 'repaired the DDL event triggers. map of relations' "$WORK/d8.log" || fail "(14) the map was not repaired while a DDL transaction was open: $(grep -a ddl_triggers "$WORK/d8.log")"
session_sleeping s_ddl || fail "(14) the open DDL transaction ended before the repair was done: the case did not hold"
map_agrees || fail "(14) the map still disagrees after the repair"
primary "$DB" -c "SET lock_timeout = '5s'; CREATE TABLE o14 (x int); ALTER TABLE users ADD COLUMN t14 int; ALTER TABLE users DROP COLUMN t14; SELECT count(*) FROM users" >/dev/null 2>"$WORK/o14.err" ||
  fail "(14) DDL by a third session after the repair: $(cat "$WORK/o14.err")"
stop_daemon
# a repair that cannot get the triggers' advisory lock within its lock_timeout: a warning
bad_map
session s_adv "SELECT pg_advisory_lock(hashtext('cachesvc ddl triggers 5')); SELECT pg_sleep(300)"
until_true 20 session_sleeping s_adv || fail "(14) the session holding the advisory lock never got to its sleep: $(cat "$WORK/s_adv.out")"
start_streaming "$WORK/cs.ini" d9
grep -q 'WARNING.*map of relations.*could not be repaired.*lock timeout.*wrong old name' "$WORK/d9.log" ||
  fail "(14) a repair that failed was not a warning: $(grep -a ddl_triggers "$WORK/d9.log")"
grep -q 'installed the DDL event triggers\|repaired the DDL' "$WORK/d9.log" && fail "(14) a repair that failed logged success"
map_agrees && fail "(14) the map agrees although its repair could not get its lock: the case did not hold"
end_session s_adv
stop_daemon
start_streaming "$WORK/cs.ini" d10
grep -q 'repaired the DDL event triggers. map of relations' "$WORK/d10.log" || fail "(14) the next start did not repair the map"
map_agrees || fail "(14) the map still disagrees after the next start"
# control: the map dropped, as the start did before, while the DDL transaction is open
session s_drop "BEGIN; SET LOCAL lock_timeout = '60s'; DROP TABLE cachesvc.ddl_rel; ROLLBACK"
drop_waits() { [ "$(primary "$DB" -c "SELECT count(*) FROM pg_locks WHERE relation = 'cachesvc.ddl_rel'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted")" = 1 ]; }
until_true 20 drop_waits || fail "control (14): a DROP TABLE of the map did not wait behind the open DDL transaction"
primary "$DB" -c "SET lock_timeout = '2s'; CREATE TABLE o14c (x int)" >/dev/null 2>"$WORK/o14c.err" &&
  fail "control (14): a CREATE TABLE was expected to wait behind the DROP TABLE of the map"
grep -q 'lock timeout' "$WORK/o14c.err" || fail "control (14): not a lock timeout: $(cat "$WORK/o14c.err")"
end_session s_drop
end_session s_ddl
ok "(14) the map repaired in place while a DDL transaction was open (it did not wait for it); a repair that failed is a warning; control: a DROP TABLE of the map made another session's CREATE TABLE wait ($(cat "$WORK/o14c.err"))"
# (14b) review 44 R44-1, R44-2: a DDL transaction still open that wrote the map (a rename): the
# repair fails at once (it takes the map NOWAIT: it used to lock the rows it rewrote and wait
# for the rename's, and the migration's next DDL on a rewritten row then deadlocked and was
# cancelled), the migration goes on and commits, and the next start repairs.
stop_daemon
bad_map
session s_gate "SELECT pg_advisory_lock(4242); SELECT pg_sleep(300)"
until_true 20 session_sleeping s_gate || fail "(14b) the gate session never got to its sleep"
session s_mig "BEGIN; ALTER TABLE other RENAME TO other14; SELECT pg_advisory_lock(4242); ALTER TABLE users ADD COLUMN z14 int; ALTER TABLE other14 RENAME TO other; COMMIT"
mig_waits() { [ "$(primary postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 's_mig' AND wait_event = 'advisory'")" = 1 ]; }
until_true 20 mig_waits || fail "(14b) the migration never waited at its gate: $(cat "$WORK/s_mig.out")"
start_streaming "$WORK/cs.ini" d14b
grep -q 'WARNING.*map of relations.*could not be repaired' "$WORK/d14b.log" ||
  fail "(14b) the repair with a rename's transaction open was not refused at once with a warning: $(grep -a 'map of relations' "$WORK/d14b.log")"
end_session s_gate
until_true 30 session_gone s_mig || fail "(14b) the migration did not finish: $(cat "$WORK/s_mig.out")"
! grep -qi 'deadlock\|ERROR' "$WORK/s_mig.out" || fail "(14b) the migration failed: $(cat "$WORK/s_mig.out")"
[ "$(primary "$DB" -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'z14'")" = 1 ] ||
  fail "(14b) the migration's change is not there: $(cat "$WORK/s_mig.out")"
primary "$DB" -c "ALTER TABLE users DROP COLUMN z14" >/dev/null
stop_daemon
start_streaming "$WORK/cs.ini" d14c
map_agrees || fail "(14b) the next start did not repair the map"
ok "(14b) a rename's transaction open: the repair refused at once (a warning), the migration committed, the next start repaired the map"

# (15) a rename by a role that is not a superuser (the map written through the SECURITY
# DEFINER functions): u's entries dropped
settled
primary "$DB" -c "ALTER TABLE users OWNER TO $ROLE" >/dev/null
settled
fill u 2
as_role -c "ALTER TABLE users RENAME TO users_r" >/dev/null 2>"$WORK/role.err" || fail "(15) the role's rename: $(cat "$WORK/role.err")"
settled
not_cached u 2 || fail "(15) u 2 still served from the cache after another role renamed its table away"
[ "$(primary "$DB" -c "SELECT rel FROM cachesvc.ddl_rel WHERE relid = 'public.users_r'::regclass")" = users_r ] || fail "(15) the map does not name the role's renamed table"
as_role -c "ALTER TABLE users_r RENAME TO users" >/dev/null
primary "$DB" -c "ALTER TABLE users OWNER TO postgres" >/dev/null
ok "(15) a rename by a role that is not a superuser: the map followed, the query on the old name dropped"

# (16) review 42 R42-3: a table turned into a view (CREATE RULE "_RETURN", any table owner)
# leaves the map; a row left for something that is not a table (written by hand) makes no
# start repair anything
as_role -c "CREATE TABLE cv (x int); CREATE RULE \"_RETURN\" AS ON SELECT TO cv DO INSTEAD SELECT 1 AS x" >/dev/null 2>"$WORK/role.err" ||
  fail "(16) the role's CREATE RULE _RETURN: $(cat "$WORK/role.err")"
[ "$(primary "$DB" -c "SELECT relkind FROM pg_class WHERE oid = 'public.cv'::regclass")" = v ] || fail "(16) cv did not become a view"
[ "$(primary "$DB" -c "SELECT count(*) FROM cachesvc.ddl_rel WHERE relid = 'public.cv'::regclass")" = 0 ] || fail "(16) the row of a table turned into a view is still in the map"
primary "$DB" -c "INSERT INTO cachesvc.ddl_rel VALUES ('public.cv'::regclass, 'public'::regnamespace, 'cv')" >/dev/null
stop_daemon
start_streaming "$WORK/cs.ini" d11
grep -q 'installed the DDL event triggers\|repaired the DDL' "$WORK/d11.log" && fail "(16) a row left for a view made the start repair the map"
as_role -c "DROP VIEW cv" >/dev/null
ok "(16) a table turned into a view leaves the map; a row left for a view repairs nothing at the start"

# (18) review 42 R42-5: --check as a role that is not a superuser says the map cannot be
# checked (no permission error left in the server's log only); as a superuser, a map that
# disagrees is "would repair the map", not "would install the triggers"
primary "$DB" -c "GRANT SELECT ON ALL TABLES IN SCHEMA public, s_a TO $ROLE; GRANT USAGE ON SCHEMA s_a TO $ROLE" >/dev/null
wait_replicas # --check prepares the queries on the replica too (a CI run: the GRANT not replayed yet)
sed "s/user=postgres/user=$ROLE/" "$WORK/cs.ini" >"$WORK/cs_role.ini"
out=$(timeout 60 "$CACHESVC" -c "$WORK/cs_role.ini" --check 2>&1) || true
grep -q "cannot check the DDL event triggers' map of relations as role $ROLE (needs a superuser)" <<<"$out" ||
  fail "(18) --check as a role that is not a superuser: $out"
grep -q 'would install' <<<"$out" && fail "(18) --check as a role that is not a superuser would install the triggers (they are in place): $out"
bad_map
out=$(timeout 60 "$CACHESVC" -c "$WORK/cs.ini" --check 2>&1) || true
grep -q "would repair the DDL event triggers' map of relations" <<<"$out" || fail "(18) --check with a map that disagrees: $out"
grep -q 'would install' <<<"$out" && fail "(18) --check with a map that disagrees would install the triggers: $out"
map_agrees && fail "(18) --check repaired the map"
stop_daemon
start_streaming "$WORK/cs.ini" d11b
grep -q 'repaired the DDL event triggers. map of relations' "$WORK/d11b.log" || fail "(18) the start after --check did not repair the map"
ok "(18) --check: a role that is not a superuser cannot check the map (said so); a map that disagrees: would repair it"

# (17) review 42 R42-3: ALTER EXTENSION ... SET SCHEMA moves the extension's tables: their rows
# follow, so a later rename drops the query on the moved name. Control: the row left under
# the old schema (before the fix) leaves the query cached at the rename. An extension of
# contrib (hstore, relocatable) with a table added to it: no control file to write.
if [ "$(primary "$DB" -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'hstore'")" = 1 ]; then
  stop_daemon
  primary "$DB" -c "CREATE SCHEMA ext_a; CREATE EXTENSION hstore SCHEMA ext_a; CREATE TABLE ext_a.t_e (id bigint PRIMARY KEY, v text); INSERT INTO ext_a.t_e VALUES (1, 'e 1'); ALTER EXTENSION hstore ADD TABLE ext_a.t_e; CREATE SCHEMA ext_b; ALTER EXTENSION hstore SET SCHEMA ext_b; ALTER PUBLICATION cs_pub ADD TABLE ext_b.t_e" >/dev/null
  [ "$(primary "$DB" -c "SELECT nspid::regnamespace FROM cachesvc.ddl_rel WHERE relid = 'ext_b.t_e'::regclass")" = ext_b ] ||
    fail "(17) the map did not follow the extension's table to its new schema"
  printf '\n[query qe]\nsql = SELECT id, v FROM ext_b.t_e WHERE id = $1\nparams = id:int8\ninvalidate_on = ext_b.t_e(id = $1)\n' >>"$WORK/cs.ini"
  start_streaming "$WORK/cs.ini" d12
  grep -q 'repaired the DDL' "$WORK/d12.log" && fail "(17) the start repaired the map: the triggers did not follow the extension"
  fill qe 1
  primary "$DB" -c "ALTER TABLE ext_b.t_e RENAME TO t_e2" >/dev/null
  settled
  not_cached qe 1 || fail "(17) qe 1 still served from the cache after its table, moved with its extension, was renamed away"
  primary "$DB" -c "ALTER TABLE ext_b.t_e2 RENAME TO t_e" >/dev/null
  settled
  fill qe 1 # control: the row under the old schema, as before the fix
  primary "$DB" -c "UPDATE cachesvc.ddl_rel SET nspid = 'ext_a'::regnamespace WHERE relid = 'ext_b.t_e'::regclass" >/dev/null
  primary "$DB" -c "ALTER TABLE ext_b.t_e RENAME TO t_e2" >/dev/null
  settled
  sleep 1
  r=$(cli --json get qe 1) || fail "control (17): get: $r"
  grep -q '"source":"cache"' <<<"$r" || fail "control (17): with the row under the old schema, qe 1 was expected to stay cached: $r"
  primary "$DB" -c "ALTER TABLE ext_b.t_e2 RENAME TO t_e" >/dev/null
  settled
  ok "(17) ALTER EXTENSION SET SCHEMA: the map follows its tables, a later rename drops the query; control: the row left under the old schema leaves it cached"
else
  echo "ok - (17) SKIPPED: contrib extension hstore is not available (ALTER EXTENSION SET SCHEMA needs a relocatable extension)"
fi

# ---- negative control (v4): the map told the new name before the rename (the new name only) ----
fill u 2
primary "$DB" -c "UPDATE cachesvc.ddl_rel SET rel = 'users_c' WHERE relid = 'public.users'::regclass" >/dev/null
primary "$DB" -c "ALTER TABLE users RENAME TO users_c" >/dev/null
settled
sleep 1
r=$(cli --json get u 2) || fail "control (v4): get: $r"
grep -q '"source":"cache"' <<<"$r" || fail "control (v4): with the new name only, u 2 was expected to stay cached: $r"
primary "$DB" -c "ALTER TABLE users_c RENAME TO users" >/dev/null
settled
ok "control (v4): a rename recorded by its new name only leaves the query on the old name cached ($r)"
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
grep -q '"bee 2"' <<<"$r" || fail "control: without the triggers the old row was expected to stay cached: $r"
grep -q '"source":"cache"' <<<"$r" || fail "control: not from the cache: $r"
primary "$DB" -c "ALTER TABLE users RENAME TO users_d" >/dev/null
settled
sleep 1
r2=$(cli --json get u 2) || fail "control: get after the rename: $r2"
grep -q '"source":"cache"' <<<"$r2" || fail "control: without the triggers u 2 was expected to stay cached after its table was renamed away: $r2"
ok "control: without the triggers the rewritten row stays cached with its old value ($r), and after the rename ($r2)"
stop_daemon
