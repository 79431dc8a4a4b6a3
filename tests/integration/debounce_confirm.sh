#!/usr/bin/env bash
# debounce_confirm.sh - min_lifetime never holds back other invalidations or the confirmed
# position, and a debounced bump is never lost (issue 13 item 13).
#   dc_count  an aggregate with a whole-table rule and min_lifetime = 30s
#   dc_item   a keyed query on another table
# Two changes to dc_count's table: the first bumps at once, the second is debounced (owed,
# recorded in <ns>:inv:deb). Then a keyed UPDATE of dc_item's table: within 5 s (the window
# is 30 s) the invalidator's confirmed position (metric and <ns>:inv:pos) passes its LSN and
# the entry is gone. Before the fix the debounced commit held the confirmation for the
# whole window. The owed bump still lands after the window (generation moves, query-level
# fence at the second change). Then a third change is debounced, the daemon is killed -9
# within the window, after the change was confirmed (so the slot will not replay it), and
# restarted: the owed bump is performed from <ns>:inv:deb.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE dc_agg (id bigint PRIMARY KEY, g bigint NOT NULL, v bigint NOT NULL);
CREATE TABLE dc_items (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO dc_agg SELECT i, i % 2, 1 FROM generate_series(1, 100) i;
INSERT INTO dc_items SELECT i, 0 FROM generate_series(1, 10) i;
SQL
FENCE=on
write_config "$WORK/cs.ini" replica1
cat >>"$WORK/cs.ini" <<'INI'

[query dc_count]
sql = SELECT count(*) AS n, sum(v) AS s FROM dc_agg WHERE g = $1
params = g:int8
kind = aggregate
ttl = 1h
ttl_jitter = 0%
min_lifetime = 30s
invalidate_on = dc_agg

[query dc_item]
sql = SELECT id, v FROM dc_items WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = dc_items(id = $1)
INI
invalidator_section >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini" a
until_true 30 streaming || fail "the invalidator never streamed"

fill_one() { cli get "$1" "$2" >/dev/null 2>&1 && cached "$1" "$2"; }
gen() { local g; g=$(redis get "$NS:g:$1"); echo "${g:-0}"; }
gen_ge() { [ "$(gen "$1")" -ge "$2" ]; }
# commit_lsns SQL: commits SQL in its own transaction; sets LOW to the WAL insert position
# inside it, after SQL (above every earlier commit, below this one's commit record) and HIGH to
# pg_current_wal_lsn() after the commit (at or past this commit; other databases' writes on the
# shared primary can carry it further, so a fence at this commit's end may be below HIGH).
commit_lsns() {
  LOW=$(primary "$DB" -c "BEGIN" -c "$1" -c "SELECT pg_current_wal_insert_lsn()" -c "COMMIT")
  HIGH=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
}
lsn_ge() { [ "$(primary postgres -c "SELECT '$1'::pg_lsn >= '$2'::pg_lsn")" = t ]; }
hex_lsn() { echo "${1:0:8}/${1:8:8}" | sed 's|^0*\([0-9A-F]\)|\1|; s|/0*\([0-9A-F]\)|/\1|'; }
pos_past() { local p; p=$(redis get "$NS:inv:pos"); [ -n "$p" ] && lsn_ge "$(hex_lsn "$p")" "$1"; }
deb_owed() { [ -n "$(redis hget "$NS:inv:deb" dc_count)" ]; }

until_true 20 fill_one dc_count 1 || fail "could not cache dc_count 1"
until_true 20 fill_one dc_item 1 || fail "could not cache dc_item 1"
g0=$(gen dc_count)

# change 1: bumps at once
lsn1=$(commit_lsn "UPDATE dc_agg SET v = 2 WHERE id = 1")
until_true 10 gen_ge dc_count $((g0 + 1)) || fail "the first table change did not bump dc_count"
# change 2, within min_lifetime: debounced, recorded as owed
commit_lsns "UPDATE dc_agg SET v = 3 WHERE id = 2"
lsn2_in=$LOW
until_true 10 deb_owed || fail "the debounced bump was not recorded in $NS:inv:deb"
until_true 10 metric_ge cachesvc_invalidator_debounced_total 1 || fail "nothing counted as debounced"
[ "$(gen dc_count)" = $((g0 + 1)) ] || fail "the second change bumped at once: not debounced"
ok "dc_count: change 1 bumped at once, change 2 debounced (owed in $NS:inv:deb)"

# a keyed UPDATE of another query's table, after the debounced commit
lsn3=$(commit_lsn "UPDATE dc_items SET v = 9 WHERE id = 1")
confirmed_past() { invalidated_past "$(lsn_num "$lsn3")"; }
until_true 5 confirmed_past ||
  fail "the confirmed position ($(metric cachesvc_invalidator_confirmed_lsn)) did not pass the keyed UPDATE ($lsn3 = $(lsn_num "$lsn3")) within 5 s: the debounce window holds it back"
until_true 5 pos_past "$lsn3" || fail "$NS:inv:pos ($(redis get "$NS:inv:pos")) did not pass $lsn3 within 5 s"
cached dc_item 1 && fail "dc_item 1 is still cached after its invalidation was confirmed"
[ "$(cli --json get dc_item 1 | json rows)" = '[[1, 9]]' ] || fail "dc_item 1 not the new row"
deb_owed || fail "the owed bump is no longer in $NS:inv:deb: the window ended before this check (a machine too slow for the test) or the record was lost"
[ "$(gen dc_count)" = $((g0 + 1)) ] || fail "the debounced bump landed already: the window ended before this check (a machine too slow for the test)"
ok "within the window: confirmed position and $NS:inv:pos passed the keyed UPDATE; dc_item 1 invalidated"

# the owed bump lands after the window, with its query-level fence at change 2
until_true 60 gen_ge dc_count $((g0 + 2)) || fail "the debounced bump never landed (generation $(gen dc_count))"
qf=$(redis get "$NS:qf:dc_count")
# change 2's commit ends past lsn2_in, every earlier commit before it: a fence below lsn2_in
# is an earlier change's
lsn_ge "$(hex_lsn "$qf")" "$lsn2_in" || fail "the debounced bump's query-level fence $qf is below change 2 (inside it: $lsn2_in)"
until_true 5 bash -c "[ -z \"\$(redis-cli -p $CS_REDIS_PORT -n $REDIS_DB hget $NS:inv:deb dc_count)\" ]" ||
  fail "the owed bump was performed but stays in $NS:inv:deb"
ok "after the window: dc_count bumped to $(gen dc_count), query-level fence $qf >= change 2"

# kill -9 within a window: the owed bump survives in Redis
g2=$(gen dc_count)
commit_lsns "UPDATE dc_agg SET v = 4 WHERE id = 3"
lsn4=$HIGH lsn4_in=$LOW
until_true 10 deb_owed || fail "change 4 was not debounced (the window just started)"
wait_invalidated "$lsn4" # confirmed: the slot will not replay it
[ "$(gen dc_count)" = "$g2" ] || fail "change 4 bumped at once: not debounced"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
ok "change 4 debounced and confirmed, daemon killed -9 within the window"
start_daemon "$WORK/cs.ini" b
until_true 40 gen_ge dc_count $((g2 + 1)) || fail "after the restart the owed bump was never performed (generation $(gen dc_count))"
qf=$(redis get "$NS:qf:dc_count")
lsn_ge "$(hex_lsn "$qf")" "$lsn4_in" || fail "the restored bump's query-level fence $qf is below change 4 (inside it: $lsn4_in)"
ok "restarted: the owed bump was performed (generation $g2 -> $(gen dc_count), fence $qf)"
