#!/usr/bin/env bash
# race_bumps.sh - I1 for whole-query invalidations (generation bumps), each with a query-level
# fence (fence.c (e)). The only replica is the delayed one (2 s behind), so right after each
# bump a miss reads data from before the change, while readers hammer the keys:
#   rb_trunc   TRUNCATE + re-insert with new values           (invalidator bump, TRUNCATE)
#   rb_bulk    one transaction updating more keys than the per-query limit (unknown key)
#   rb_count   an aggregate with a table rule and min_lifetime (1 s, shorter than the replica's
#              delay): two changes, the second one debounced (a bump at the end of the window)
#   rb_reload  a reload that adds the invalidate_on rule the old definition lacked, after a
#              change nobody invalidated (an engine-side bump at the primary's position)
# Each bump must refuse those fills (cachesvc_fill_refused_query_fence_total) and, once
# everything caught up, the verifier finds 0 stale entries. The negative control runs the
# same with query_fence = off and must find stale entries (the old data stored after the
# bump, alive until TTL).
. "$(dirname "$0")/daemon_lib.sh"

D=${CS_PG_DELAYED_REPLICA:-0}
[ "$D" != 0 ] || { echo "SKIP: needs a sandbox with a delayed replica"; exit 77; }
VERIFY=$CS_BUILD/cachesvc/cachesvc-verify
KEYS_LIMIT=10000 # QUERY_KEYS_MAX in invalidator.c

make_db <<SQL
CREATE TABLE ta (id bigint PRIMARY KEY, v bigint NOT NULL);
CREATE TABLE tb (id bigint PRIMARY KEY, v bigint NOT NULL);
CREATE TABLE tc (id bigint PRIMARY KEY, g bigint NOT NULL, v bigint NOT NULL);
CREATE TABLE td (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO ta SELECT i, 0 FROM generate_series(1, 20) i;
INSERT INTO tb SELECT i, 0 FROM generate_series(1, $((KEYS_LIMIT + 500))) i;
INSERT INTO tc SELECT i, i % 4, 1 FROM generate_series(1, 400) i;
INSERT INTO td SELECT i, 0 FROM generate_series(1, 20) i;
SQL

queries() { # RELOADED: 1 = rb_reload has its invalidate_on rule
  cat <<'INI'

[query rb_trunc]
sql = SELECT id, v FROM ta WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = ta(id = $1)

[query rb_bulk]
sql = SELECT id, v FROM tb WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = tb(id = $1)

[query rb_count]
sql = SELECT count(*) AS n, sum(v) AS s FROM tc WHERE g = $1
params = g:int8
kind = aggregate
ttl = 1h
ttl_jitter = 0%
stale_while_revalidate = 0
xfetch_beta = 0
min_lifetime = 1s
invalidate_on = tc
INI
  printf '\n[query rb_reload]\nsql = SELECT id, v FROM td WHERE id = $1\nparams = id:int8\nttl = 1h\n'
  [ "$1" = 1 ] && printf 'invalidate_on = td(id = $1)\n'
  # td must be published from the start: the reload only changes the query's mapping
  printf '\n[query rb_pub_td]\nsql = SELECT v FROM td WHERE id = $1\nparams = id:int8\nttl = 1h\ninvalidate_on = td(id = $1)\n'
}

config() { # QFENCE RELOADED
  FENCE=on
  EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = false
query_fence = $1"
  write_config "$WORK/cs.ini" "replica$D"
  queries "$2" >>"$WORK/cs.ini"
  invalidator_section >>"$WORK/cs.ini"
}

# readers KEYS...: hammers the keys through cachesvc until $WORK/stop exists.
readers() {
  rm -f "$WORK/stop"
  (
    while [ ! -e "$WORK/stop" ]; do
      for k in "$@"; do
        # shellcheck disable=SC2086
        "$BURST" -p "$PORT" -c 2 -n 3 $k >/dev/null 2>&1 || true
      done
    done
  ) &
  READERS=$!
}
stop_readers() { touch "$WORK/stop"; wait "$READERS" 2>/dev/null || true; }

ALL_KEYS=("rb_trunc 1" "rb_trunc 2" "rb_bulk 1" "rb_bulk 2" "rb_count 1" "rb_count 2" "rb_reload 1" "rb_reload 2")
# fill_all: until every key is cached (30 s); each try reads them all in one MGET (a cli per
# key took about 1 s on a loaded machine), then checks each entry in Redis.
fill_all() {
  until_true 30 all_cached_now || fail "could not cache every key: $(for k in "${ALL_KEYS[@]}"; do cached $k || printf '%s, ' "$k"; done)"
}
all_cached_now() {
  local words=() k
  for k in "${ALL_KEYS[@]}"; do
    [ ${#words[@]} = 0 ] || words+=(--)
    # shellcheck disable=SC2206
    words+=($k)
  done
  cli mget "${words[@]}" >/dev/null 2>&1 || true
  for k in "${ALL_KEYS[@]}"; do
    # shellcheck disable=SC2086
    cached $k || return 1
  done
}
gen() { local g; g=$(redis get "$NS:g:$1"); echo "${g:-0}"; }
bumped() { [ "$(gen "$1")" -ge $(($2 + $3)) ]; }
# read_after_bump QUERY GEN0 N KEYS...: waits until QUERY's generation is GEN0 + N, then
# reads KEYS again and again for a second, well inside the replica's 2 s delay: once the
# daemon has heard of the bump, each read misses and fills from the late replica.
read_after_bump() {
  local q=$1 g0=$2 n=$3
  shift 3
  until_true 10 bumped "$q" "$g0" "$n" || fail "$q: generation never moved past $g0 + $n"
  local t0=$EPOCHREALTIME
  while awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { exit !(a - b < 1.2) }'; do
    for k in "$@"; do
      # shellcheck disable=SC2086
      cli get $k >/dev/null 2>&1 || true
    done
  done
}

# round QFENCE: one daemon, every bump path at once; prints the verifier's stale count.
round() {
  local qf=$1
  primary "$DB" -c "UPDATE ta SET v = 0; UPDATE tb SET v = 0; UPDATE tc SET v = 1; UPDATE td SET v = 0" >/dev/null
  wait_replicas
  redis flushdb >/dev/null
  config "$qf" 0
  start_daemon "$WORK/cs.ini" "round_$qf"
  until_true 30 streaming || fail "the invalidator never streamed"
  fill_all
  readers "rb_trunc 1" "rb_trunc 2" "rb_bulk 1" "rb_bulk 2" "rb_count 1" "rb_count 2" "rb_reload 1" "rb_reload 2"

  # Each change, then (as soon as Redis has the bump) a read of the query's keys: the
  # replica is 2 s behind the change, so the miss reads data from before it.
  # 1. TRUNCATE and re-insert with new values
  local g
  g=$(gen rb_trunc)
  primary "$DB" -c "BEGIN; TRUNCATE ta; INSERT INTO ta SELECT i, 7 FROM generate_series(1, 20) i; COMMIT" >/dev/null
  read_after_bump rb_trunc "$g" 1 "rb_trunc 1" "rb_trunc 2"
  # 2. a bulk transaction over the per-query key limit
  g=$(gen rb_bulk)
  primary "$DB" -c "UPDATE tb SET v = 7 WHERE id <= $((KEYS_LIMIT + 100))" >/dev/null
  read_after_bump rb_bulk "$g" 1 "rb_bulk 1" "rb_bulk 2"
  # 3. the aggregate's table, twice within min_lifetime: the second bump is debounced
  g=$(gen rb_count)
  primary "$DB" -c "UPDATE tc SET v = 2 WHERE id % 2 = 0" >/dev/null
  read_after_bump rb_count "$g" 1 "rb_count 1" "rb_count 2"
  primary "$DB" -c "UPDATE tc SET v = 3 WHERE id % 2 = 0" >/dev/null
  read_after_bump rb_count "$g" 2 "rb_count 1" "rb_count 2"
  # 4. a change the old rb_reload definition does not invalidate, then a reload adding the
  # rule; the daemon's monitor must have seen the primary past the change first
  local lsn
  lsn=$(commit_lsn "UPDATE td SET v = 7")
  sleep 0.6 # > health_interval
  g=$(gen rb_reload)
  config "$qf" 1
  kill -HUP "$DAEMON_PID"
  read_after_bump rb_reload "$g" 1 "rb_reload 1" "rb_reload 2"
  stop_readers
  wait_replicas
  lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  wait_invalidated "$lsn"
  local out
  out=$("$VERIFY" -c "$WORK/cs.ini" --json --wait 30 2>"$WORK/verify_$qf.err") || true
  echo "$out" >"$WORK/verify_$qf.json"
  local refused
  refused=$(metric cachesvc_fill_refused_query_fence_total)
  stop_daemon >/dev/null 2>&1 || true
  "$PY3" -c 'import json,sys; v=json.load(open(sys.argv[1])); t=v.get("total", v); print(t["stale"], t["checked"], sys.argv[2])' "$WORK/verify_$qf.json" "$refused"
}

round true >"$WORK/round_true.out" || fail "round with query fences failed"
read -r stale checked refused <"$WORK/round_true.out"
[ "$checked" -ge 4 ] || fail "the verifier checked only $checked entries: $(cat "$WORK/verify_true.json")"
[ "$stale" = 0 ] || fail "query-level fences on: $stale stale entries survived the bumps: $(cat "$WORK/verify_true.json")"
[ "$refused" -ge 4 ] || fail "query-level fences refused only $refused fills: the race did not happen"
ok "query-level fences on: every bump path raced readers on a 2 s-late replica; $refused fills refused; verifier: $checked checked, 0 stale"

round false >"$WORK/round_false.out" || fail "round without query fences failed"
read -r stale checked refused <"$WORK/round_false.out"
[ "$stale" -ge 1 ] || fail "negative control: with query_fence = off the verifier found no stale entry (the test proves nothing): $(cat "$WORK/verify_false.json")"
ok "negative control: query_fence = off leaves $stale stale entries after the bumps"
