#!/usr/bin/env bash
# query_definition.sh - a query's entries answer the definition that filled them. Redis records,
# beside each query's generation, the fingerprint of the definition that generation answers
# (keyspace.h <ns>:qd:<q>: SQL, parameter types, routing, invalidate_on). A start or reload
# whose definition differs takes over with a generation bump; a process whose definition is not
# the recorded one uses none of the query's entries.
#  (a) a restart with the query's SQL changed answers the new SQL, not the entry the old SQL
#      filled (before: the old column, from the cache, until its TTL); a restart with the same
#      definition bumps nothing and keeps serving the entry.
#  (b) a rolling deploy: daemon A (old SQL) runs while daemon B (new SQL) starts. B takes the
#      query over; A answers its own SQL from the database, never B's entries, and says so
#      (log, gauge); B serves its entries.
# Negative controls (tests/integration/shard_drive, the engine alone, --no-definitions:
# cs_engine_test_no_definitions, the record neither read nor written): the old SQL answered
# from an entry of the new one, in (a) and (b); the same driver without it answers its own SQL.
. "$(dirname "$0")/daemon_lib.sh"
DRIVE=$CS_BUILD/tests/integration/shard_drive

make_db <<'SQL'
CREATE TABLE ta (id bigint PRIMARY KEY, a_name text NOT NULL, a_other text NOT NULL);
INSERT INTO ta SELECT i, 'name-' || i, 'other-' || i FROM generate_series(1, 10) i;
SQL
wait_replicas
write_config "$WORK/base.ini" replica1
# qa_conf FILE COLUMN: the base config and query qa reading COLUMN of ta by id
qa_conf() {
  { cat "$WORK/base.ini"; printf '\n[query qa]\nsql = SELECT %s AS v FROM ta WHERE id = $1\nparams = id:int8\nttl = 10m\n' "$2"; } >"$1"
}
# drive CONFIG KEY [--no-definitions]: one GET of qa KEY by the engine alone; its answer line
drive() {
  "$DRIVE" --rounds 1 ${3:+"$3"} "$1" qa "$2" 2>"$WORK/drive.err" | grep '^round=' ||
    fail "shard_drive: $(cat "$WORK/drive.err")"
}
cache_src() { [ "$(src qa "$1")" = cache ]; }

# ---- (a) a restart with changed SQL ----
qa_conf "$WORK/a.ini" a_name
qa_conf "$WORK/b.ini" a_other
start_daemon "$WORK/a.ini"
fill qa 1
rows qa 1 | grep -q 'name-1' || fail "(a) the first definition's fill: $(rows qa 1)"
stop_daemon
start_daemon "$WORK/b.ini" b1
r=$(cli --json get qa 1) || fail "(a) get after the restart: $r"
grep -q '"other-1"' <<<"$r" || fail "(a) a restart with qa's SQL changed answered the old SQL's entry: $r"
metric_ge cachesvc_definition_bumps_total 1 || fail "(a) no definition bump counted: $(metric cachesvc_definition_bumps_total)"
fill qa 1
rows qa 1 | grep -q 'other-1' || fail "(a) the new definition's entry: $(rows qa 1)"
stop_daemon
start_daemon "$WORK/b.ini" b2
until_true 15 cache_src 1 || fail "(a) a restart with the same definition did not serve its entry: $(cli --json get qa 1)"
rows qa 1 | grep -q 'other-1' || fail "(a) same definition: $(rows qa 1)"
metric_is cachesvc_definition_bumps_total 0 || fail "(a) a restart with the same definition bumped: $(metric cachesvc_definition_bumps_total)"
stop_daemon
ok "(a) restart with qa's SQL changed: the new SQL's row, not the old entry; the same definition again: no bump, its entry served"

# control: the engine with the first SQL and the record off serves the second SQL's entry
l=$(drive "$WORK/a.ini" 1 --no-definitions)
[[ $l == *"src=cache"*"other-1"* ]] || fail "(a) control: with the record off, the old SQL was expected to answer the new SQL's entry from the cache: $l"
l=$(drive "$WORK/a.ini" 1)
[[ $l == *"name-1"* && $l != *"src=cache"* ]] || fail "(a) the driver with the record on: $l"
ok "(a) control: with the record off the old SQL answers the new SQL's entry ($l with it on)"

# ---- (b) a rolling deploy: two definitions at once ----
start_daemon "$WORK/a.ini" A
A_PID=$DAEMON_PID A_PORT=$PORT A_APORT=$APORT
fill qa 2
rows qa 2 | grep -q 'name-2' || fail "(b) A's entry: $(rows qa 2)"
PORT=$(free_port)
APORT=$(free_port)
SOCK=$WORK/b.sock
write_config "$WORK/base.ini" replica1
qa_conf "$WORK/b2.ini" a_other
start_daemon "$WORK/b2.ini" B
B_PORT=$PORT B_APORT=$APORT
fill qa 2
rows qa 2 | grep -q 'other-2' || fail "(b) B answered A's entry: $(rows qa 2)"
PORT=$A_PORT APORT=$A_APORT
until_true 15 metric_is cachesvc_queries_foreign_definition 1 ||
  fail "(b) A never saw B's definition: gauge $(metric cachesvc_queries_foreign_definition)"
for _ in 1 2 3 4 5; do
  r=$(cli --json get qa 2) || fail "(b) A's get: $r"
  grep -q '"name-2"' <<<"$r" || fail "(b) A (old SQL) answered B's row: $r"
  grep -q '"source":"cache"' <<<"$r" && fail "(b) A served from the cache while B's definition owns it: $r"
  sleep 0.2
done
grep -q 'another process started or reloaded with another definition' "$WORK/A.log" ||
  fail "(b) A did not say why it bypasses"
metric_ge cachesvc_definition_foreign_total 1 || fail "(b) A's foreign polls not counted"
PORT=$B_PORT APORT=$B_APORT
cache_src 2 || fail "(b) B stopped serving its entry: $(cli --json get qa 2)"
rows qa 2 | grep -q 'other-2' || fail "(b) B: $(rows qa 2)"
ok "(b) two definitions at once: the later one (B) owns the query; A answers its own SQL from the database, never B's entries"

# the verifier with A's config: B's entries are not A's definition's, so not compared
rc=0
out=$("$CS_BUILD/cachesvc/cachesvc-verify" -c "$WORK/a.ini" --json 2>"$WORK/verify.err") || rc=$?
[ $rc = 0 ] || fail "(b) cachesvc-verify with A's config: exit $rc: $out $(cat "$WORK/verify.err")"
grep -q 'query qa: Redis records another definition' "$WORK/verify.err" ||
  fail "(b) cachesvc-verify compared B's entries with A's SQL: $out $(cat "$WORK/verify.err")"
ok "(b) cachesvc-verify with the old SQL's config skips the query (another definition's entries)"

# review 36 R36-5: a SIGHUP of A with its config unchanged takes nothing over (each flip
# dropped the query's whole cache: logrotate or config management HUP every process)
kill -HUP "$A_PID"
until_true 15 grep -q 'reloaded ' "$WORK/A.log" || fail "(b) A did not reload: $(tail -3 "$WORK/A.log")"
sleep 2 # two polls
PORT=$A_PORT APORT=$A_APORT
metric_is cachesvc_queries_foreign_definition 1 || fail "(b) A's unchanged reload took qa back: foreign gauge $(metric cachesvc_queries_foreign_definition)"
PORT=$B_PORT APORT=$B_APORT
metric_is cachesvc_queries_foreign_definition 0 || fail "(b) B lost qa to A's unchanged reload"
cache_src 2 || fail "(b) B no longer serves its entry after A's unchanged reload: $(cli --json get qa 2)"
ok "(b) A reloaded with its config unchanged: B keeps qa (its entry served), A stays on the database"
# review 45 R45-3: a pause and resume of qa on A takes nothing over either, and A says so (it
# said "a new generation, then served from the cache")
PORT=$A_PORT APORT=$A_APORT
g0=$(redis get "$NS:g:qa")
cli pause qa >/dev/null || fail "(b) pause on A"
cli resume qa >/dev/null || fail "(b) resume on A"
grep -q "query qa resumed by an admin request: another process's definition of it owns its cache" "$WORK/A.log" ||
  fail "(b) A's resume of a query another definition owns did not say it still bypasses: $(grep -a 'resumed by' "$WORK/A.log")"
sleep 2 # two polls
[ "$(redis get "$NS:g:qa")" = "$g0" ] || fail "(b) A's resume bumped qa ($g0 -> $(redis get "$NS:g:qa"))"
metric_is cachesvc_queries_foreign_definition 1 || fail "(b) A's resume took qa back: foreign gauge $(metric cachesvc_queries_foreign_definition)"
PORT=$B_PORT APORT=$B_APORT
cache_src 2 || fail "(b) B no longer serves its entry after A's pause and resume: $(cli --json get qa 2)"
ok "(b) A paused and resumed qa: no bump, B keeps it, A says it still bypasses the cache"

l=$(drive "$WORK/a.ini" 2 --no-definitions)
[[ $l == *"src=cache"*"other-2"* ]] || fail "(b) control: with the record off, an old-SQL process was expected to serve B's entry: $l"
ok "(b) control: with the record off a process of the old SQL serves the new SQL's entry ($l)"
# review 45 R45-2: B (the owner) gone, as a canary stopped: A still bypasses the cache for qa
# (neither a reload nor a resume takes it over, above) until an admin claims it there
stop_daemon
PORT=$A_PORT APORT=$A_APORT
sleep 1.5 # a poll
metric_is cachesvc_queries_foreign_definition 1 || fail "(b) A took qa over when B stopped: gauge $(metric cachesvc_queries_foreign_definition)"
gc=$(redis get "$NS:g:qa")
r=$(cli --json claim qa) || fail "(b) claim on A: $r"
grep -q '"claimed":true' <<<"$r" || fail "(b) claim reply: $r"
until_true 10 metric_is cachesvc_queries_foreign_definition 0 || fail "(b) A's claim did not take qa over: gauge $(metric cachesvc_queries_foreign_definition)"
# the takeover's bump is also the one A's resume (above) owed: one bump, not a second one
# a poll later that drops what was filled in between (a CI run)
sleep 2.5 # two polls
[ "$(redis get "$NS:g:qa")" = $((gc + 1)) ] ||
  fail "(b) A's claim bumped qa more than once ($gc -> $(redis get "$NS:g:qa"))"
grep -q 'query qa claimed by an admin request' "$WORK/A.log" || fail "(b) A's claim not logged"
fill qa 2
rows qa 2 | grep -q 'name-2' || fail "(b) A's claimed qa answers: $(rows qa 2)"
cache_src 2 || fail "(b) A does not serve qa from the cache after its claim: $(cli --json get qa 2)"
r=$(cli --json claim qa) || fail "(b) a second claim: $r"
grep -q '"claimed":false' <<<"$r" || fail "(b) a claim of a query A owns changed something: $r"
ok "(b) the owner gone, A claimed qa: its own rows from the cache again (a second claim changes nothing)"
stop_daemon "$A_PID"

# ---- (c) the hard path: A refreshes all the time while B starts (review 36 R36-13: a fill
# refused for B's newer generation made A adopt it, and A then filled B's generation with A's
# rows until its next poll). Every entry of the generation Redis pairs with B's definition
# must hold B's SQL.
PORT=$A_PORT APORT=$A_APORT SOCK=$WORK/cs.sock
write_config "$WORK/base.ini" replica1
qa_conf "$WORK/a.ini" a_name
start_daemon "$WORK/a.ini" A3
A_PID=$DAEMON_PID
until_true 15 cache_src 3 || fill qa 3
( while :; do ASAN_OPTIONS=$NOLEAK_ASAN_OPTIONS "$BURST" -p "$A_PORT" -c 4 -n 400 -r qa %i >/dev/null 2>&1; done ) &
LOAD=$!
CLEANUPS+=("kill $LOAD")
sleep 2
PORT=$B_PORT APORT=$B_APORT SOCK=$WORK/b.sock
start_daemon "$WORK/b2.ini" B3
for k in 1 2 3 4 5 6 7 8; do fill qa "$k"; done
sleep 2
kill $LOAD
wait $LOAD 2>/dev/null || true
g=$(redis get "$NS:g:qa")
n=0 bad=0
for k in $(redis --scan --pattern "$NS:e:qa:$g:*"); do
  n=$((n + 1))
  redis get "$k" | grep -aq 'name-' && bad=$((bad + 1))
done
[ "$n" -ge 8 ] || fail "(c) only $n entries in B's generation $g"
[ "$bad" = 0 ] || fail "(c) $bad of $n entries of B's generation $g hold A's SQL's rows"
ok "(c) A refreshing under load while B started: $n entries of B's generation, none with A's rows"
stop_daemon
stop_daemon "$A_PID"
