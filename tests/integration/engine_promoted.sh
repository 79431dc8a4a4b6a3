#!/usr/bin/env bash
# engine_promoted.sh - a [replica] that is not in recovery (promoted, or a primary listed as
# a replica: here [replica r1] points at the sandbox primary) is never routed to as a
# replica: its state shows in /metrics (cachesvc_pg_promoted), its reads would be the
# primary's (src primary, never cached with fences on), and /healthz says why when no
# replica is usable. Issue 21 item 1.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE items (id bigint PRIMARY KEY, v text);
INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 500) i;
SQL
queries() {
  cat <<'INI'

[query pm_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
invalidate_on = items(id = $1)
INI
}
served_by() { metric "cachesvc_pg_queries_total{server=\"$1\"}"; }
# data queries of pm_item executed on a server (pg_stat_statements, counted by PostgreSQL)
item_calls() { stmt_calls "$1" 'SELECT v FROM items WHERE id = $1'; }
point_r1_at_primary() { # the conninfo line after [replica r1] -> the primary's
  awk -v ci="$(conninfo_of primary)" '{ if (r1 && /^conninfo = /) { print "conninfo = " ci; r1 = 0; next } if ($0 == "[replica r1]") r1 = 1; print }' "$1" >"$1.new"
  mv "$1.new" "$1"
}

# --- 1. r1 = the primary (not in recovery), r2 = a real replica: only r2 takes reads ------------
FENCE=on
EXTRA_SERVICE="verify_interval = 0" # the sampler reads on the primary: keep its counts ours
write_config "$WORK/a.ini" replica1 replica1
# r1 is the primary itself: a server out of recovery in the replica set
point_r1_at_primary "$WORK/a.ini"
grep -A1 '^\[replica r1\]' "$WORK/a.ini" | grep -q "port=$CS_PG_PRIMARY_PORT " || fail "config: r1 does not point at the primary"
queries >>"$WORK/a.ini"
invalidator_section >>"$WORK/a.ini"
start_daemon "$WORK/a.ini" a
until_true 30 streaming || fail "the invalidator never streamed"
until_true 20 metric_is 'cachesvc_pg_up{server="r1",role="replica"}' 1 || fail "r1 never up"
until_true 20 metric_is 'cachesvc_pg_up{server="r2",role="replica"}' 1 || fail "r2 never up"
until_true 20 metric_is 'cachesvc_pg_promoted{server="r1"}' 1 || fail "r1 (out of recovery) not shown as promoted: $(http /metrics | grep 'server="r1"')"
[ "$(metric 'cachesvc_pg_promoted{server="r2"}')" = 0 ] || fail "r2 (in recovery) shown as promoted"
before_primary=$(item_calls "$CS_PG_PRIMARY_PORT")
out=$("$BURST" -p "$PORT" -c 4 -n 50 -r pm_item %i)
[ "$(echo "$out" | json ok)" = 200 ] || fail "burst: $out"
on_primary=$(( $(item_calls "$CS_PG_PRIMARY_PORT") - before_primary ))
[ "$on_primary" = 0 ] || fail "$on_primary reads went to the promoted r1 (it is still treated as a replica): $out"
[ "$(served_by r1)" = 0 ] || fail "r1 ran $(served_by r1) queries"
[ "$(served_by r2)" -ge 200 ] || fail "r2 ran only $(served_by r2) queries"
[ "$(http_status /healthz)" = 200 ] || fail "healthz not 200 with r2 usable: $(http /healthz)"
grep -q 'postgres r1: not in recovery: promoted' "$WORK/a.log" || fail "no log line for the promoted r1"
[ "$(grep -c 'postgres r1: not in recovery' "$WORK/a.log")" = 1 ] || fail "the promotion is logged more than once"
ok "a replica out of recovery is never routed to; r2 took all 200 reads; logged once"
stop_daemon || fail "daemon a exit status"

# --- 2. the promoted replica is the only one: primary fallback, /healthz says why ---------------
PORT=$(free_port); APORT=$(free_port); SOCK=$WORK/b.sock
write_config "$WORK/b.ini" replica1
point_r1_at_primary "$WORK/b.ini"
queries >>"$WORK/b.ini"
invalidator_section >>"$WORK/b.ini"
start_daemon "$WORK/b.ini" b
until_true 30 streaming || fail "the invalidator never streamed"
until_true 20 metric_is 'cachesvc_pg_promoted{server="r1"}' 1 || fail "r1 not shown as promoted"
out=$("$BURST" -p "$PORT" -c 2 -n 20 -r pm_item %i)
[ "$(echo "$out" | json ok)" = 40 ] || fail "burst: $out"
[ "$(echo "$out" | json primary)" = 40 ] || fail "answers not marked src primary: $out"
[ "$(echo "$out" | json replica)" = 0 ] || fail "answers marked src replica: $out"
[ "$(metric cachesvc_primary_fallbacks_total)" -ge 40 ] || fail "primary_fallbacks_total $(metric cachesvc_primary_fallbacks_total) < 40"
[ "$(served_by r1)" = 0 ] || fail "r1 (promoted) ran $(served_by r1) queries as a replica"
[ "$(metric cachesvc_fills_total)" = 0 ] || fail "primary reads were cached with fences on"
[ "$(http_status /healthz)" = 503 ] || fail "healthz $(http_status /healthz) with no usable replica"
[[ $(http /healthz) == *'r1 promoted'* ]] || fail "healthz does not say why: $(http /healthz)"
ok "only a promoted replica: reads go to the primary (src primary, fallbacks counted, not cached); /healthz: $(http /healthz | head -c 120)"
stop_daemon || fail "daemon b exit status"
