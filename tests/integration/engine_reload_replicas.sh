#!/usr/bin/env bash
# engine_reload_replicas.sh - the replica set changes on SIGHUP (issue 21 item 1): a replica
# added starts taking reads; one re-pointed (new conninfo) is drained and started again on
# the new server; one removed is drained and freed; unchanged ones keep their pools. One
# client connection reads throughout: it is never dropped and gets no error reply.
. "$(dirname "$0")/daemon_lib.sh"

PY=/usr/bin/python3
"$PY" -c 'import msgpack' 2>/dev/null || fail "$PY cannot import msgpack (scripts/lib.sh installs python3-msgpack)"
[ "${CS_PG_REPLICAS:-0}" -ge 2 ] || { echo "SKIP: needs 2 replicas"; exit 77; }
make_db <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE items (id bigint PRIMARY KEY, v text);
INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 200) i;
SQL
queries() {
  cat <<'INI'

[query rr_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
INI
}
served_by() { metric "cachesvc_pg_queries_total{server=\"$1\"}"; }
item_calls() { stmt_calls "$1" 'SELECT v FROM items WHERE id = $1'; }
port_of() { local v="CS_PG_REPLICA${1#replica}_PORT"; echo "${!v}"; }
EXTRA_SERVICE="verify_interval = 0
primary_fallback = false"
# the re-pointed replica: a third one if the sandbox has it (not the delayed one), else replica2
target=replica2
[ "${CS_PG_REPLICAS}" -ge 3 ] && [ "${CS_PG_DELAYED_REPLICA:-0}" != 3 ] && target=replica3
reload_to() { # CONF: copies it over the running config and sends SIGHUP; waits for the outcome
  local n
  n=$(grep -c 'reloaded \|reload refused\|reload failed' "$WORK/cs.log" || true)
  cp "$1" "$WORK/cs.ini"
  kill -HUP "$DAEMON_PID"
  until_true 10 reloaded_after "$n" || fail "no reload outcome logged"
  tail -n +1 "$WORK/cs.log" | grep 'reload refused\|reload failed' && fail "reload refused: $(grep 'reload refused' "$WORK/cs.log" | tail -1)"
  return 0
}
reloaded_after() { [ "$(grep -c 'reloaded \|reload refused\|reload failed' "$WORK/cs.log")" -gt "$1" ]; }

write_config "$WORK/cs.ini" replica1
queries >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini" cs
until_true 20 metric_is 'cachesvc_pg_up{server="r1",role="replica"}' 1 || fail "r1 never up"

# one connection reading (cache bypassed: every read is routed) for the whole test
"$PY" "$(dirname "$0")/steady_reader.py" "127.0.0.1:$PORT" "$WORK/stop" "$WORK/reader.json" rr_item 200 --bypass \
  >"$WORK/reader.log" 2>&1 &
READER=$!
CLEANUPS+=("touch $WORK/stop")
until_true 20 metric_ge 'cachesvc_pg_queries_total{server="r1"}' 20 || fail "the reader's reads do not reach r1"

# --- 1. add r2 --------------------------------------------------------------------------------
r1_before=$(served_by r1)
write_config "$WORK/b.ini" replica1 replica2
queries >>"$WORK/b.ini"
reload_to "$WORK/b.ini"
grep -q 'reload: postgres r2 added' "$WORK/cs.log" || fail "r2 not added"
until_true 20 metric_is 'cachesvc_pg_up{server="r2",role="replica"}' 1 || fail "r2 never up"
until_true 20 metric_ge 'cachesvc_pg_queries_total{server="r2"}' 10 || fail "r2 takes no reads"
[ "$(served_by r1)" -ge "$r1_before" ] || fail "r1's pool was replaced (its counters restarted) although unchanged"
grep -q 'postgres r1 removed or changed' "$WORK/cs.log" && fail "the unchanged r1 was retired"
ok "r2 added on SIGHUP and takes reads; r1 kept its pool"

# --- 2. re-point r1 to $target ----------------------------------------------------------------
target_before=$(item_calls "$(port_of "$target")")
cp "$WORK/b.ini" "$WORK/c.ini"
sed -i "s/port=$CS_PG_REPLICA1_PORT /port=$(port_of "$target") /" "$WORK/c.ini"
grep -q "port=$(port_of "$target") " "$WORK/c.ini" || fail "config c: r1 not re-pointed"
r1_before=$(served_by r1)
reload_to "$WORK/c.ini"
grep -q 'reload: postgres r1 removed or changed' "$WORK/cs.log" || fail "r1 not retired on re-point"
until_true 20 metric_is 'cachesvc_pg_up{server="r1",role="replica"}' 1 || fail "the re-pointed r1 never up"
until_true 20 grep -q 'postgres r1: drained, freed\|postgres r1: still busy' "$WORK/cs.log" || fail "the old r1 was never freed"
until_true 20 metric_ge 'cachesvc_pg_queries_total{server="r1"}' 10 || fail "the new r1 takes no reads"
target_gained() { [ "$(item_calls "$(port_of "$target")")" -gt "$target_before" ]; }
until_true 20 target_gained || fail "no read reached $target after re-pointing r1"
ok "r1 re-pointed to $target: the old pool drained and freed, the new one serves"

# --- 3. remove r2 -----------------------------------------------------------------------------
write_config "$WORK/d.ini" "$target"
queries >>"$WORK/d.ini"
reload_to "$WORK/d.ini"
until_true 20 grep -q 'postgres r2: drained, freed\|postgres r2: still busy' "$WORK/cs.log" || fail "r2 never freed"
[[ $(http /metrics) == *'server="r2"'* ]] && fail "r2 still in /metrics after its removal"
r1_now=$(served_by r1)
until_true 20 metric_ge 'cachesvc_pg_queries_total{server="r1"}' $((r1_now + 10)) || fail "r1 stopped serving after r2's removal"
ok "r2 removed: drained and freed"

touch "$WORK/stop"
wait "$READER" || fail "the reader's connection was lost: $(cat "$WORK/reader.json" "$WORK/reader.log")"
tally=$(cat "$WORK/reader.json")
[ "$(echo "$tally" | json errors)" = '{}' ] || fail "error replies during the reloads: $tally"
[ "$(echo "$tally" | json ok)" -gt 50 ] || fail "too few answers: $tally"
ok "one client connection read throughout, no error reply: $tally"
stop_daemon || fail "daemon exit status"
