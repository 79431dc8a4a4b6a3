# race_lib.sh - the race scenario shared by race_fenced.sh and race_unfenced.sh (sourced).
# Writers update a few hot rows on the primary as fast as they can (pgbench); readers
# hammer the same keys through cachesvc; two replicas, one applying WAL late; fills race
# invalidations. Readers go on a little after the writers stop, inside the delayed
# replica's window: the classic stale-set race. Then everything catches up and the
# verifier inspects every cached entry against the primary.
# RACE_CLUSTER=1: the same on a private 3-master Redis Cluster of the test's own ([redis]
# cluster = on), the verifier scanning every master (CLUSTER.md step 5).
. "$(dirname "$0")/daemon_lib.sh"

[ "${CS_PG_DELAYED_REPLICA:-0}" != 0 ] || { echo "SKIP: needs a sandbox with a delayed replica"; exit 77; }
VERIFY=$CS_BUILD/cachesvc/cachesvc-verify
[ -x "$VERIFY" ] || fail "no $VERIFY"

HOT=${HOT:-12}
# RATE: the writers' commits per second (pgbench -R). Bounded so that the invalidator (an ASan
# build on a loaded machine) keeps up: the last change of a key is then invalidated inside the
# late replica's 2 s window, while the readers still run, and the fills that race it are the
# ones the fence must refuse. Unbounded, the invalidation lag outgrew that window: the race
# mostly did not happen (race_cluster_unfenced found no stale entry in 5 seeds of 6 on a loaded
# CI run; race_fenced: 66 fills refused in 3 seeds, 262 at 300/s)
RATE=${RATE:-300}
make_db <<SQL
CREATE TABLE hot (id bigint PRIMARY KEY, v bigint NOT NULL, pad text);
INSERT INTO hot SELECT i, 0, repeat('p', 100) FROM generate_series(1, $HOT) i;
SQL

race_config() { # FENCE
  FENCE=$1
  EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = true"
  # RACE_REPLICAS: the replicas read (default: a current one and the late one)
  # shellcheck disable=SC2086
  write_config "$WORK/cs.ini" ${RACE_REPLICAS:-replica1 "replica$CS_PG_DELAYED_REPLICA"}
  cat >>"$WORK/cs.ini" <<'INI'

[query rc_hot]
sql = SELECT id, v FROM hot WHERE id = $1
params = id:int8
ttl = 10m
invalidate_on = hot(id = $1)
INI
  invalidator_section >>"$WORK/cs.ini"
  if [ "${RACE_CLUSTER:-0}" = 1 ]; then
    [ -n "${RC_NODES:-}" ] || private_redis_cluster 3 0
    sed -i "s|^url = .*|url = redis://127.0.0.1\ncluster = on\nnodes = $RC_NODES\nnamespace = rc$$|" "$WORK/cs.ini"
  fi
}

cat >"$WORK/update.sql" <<SQL
\set id random(1, $HOT)
UPDATE hot SET v = v + 1 WHERE id = :id;
SQL

# race_round SECONDS SEED: writers for SECONDS (at RATE commits/s), readers for
# SECONDS + 1.5.
race_round() {
  local secs=$1 seed=$2
  "$CS_PG_BIN/pgbench" -n -h "$CS_PG_SOCKET_DIR" -p "$CS_PG_PRIMARY_PORT" -U postgres \
    -c 4 -j 2 -T "$secs" ${RATE:+-R "$RATE"} --random-seed="$seed" -f "$WORK/update.sql" "$DB" >"$WORK/pgbench.$seed.log" 2>&1 &
  local writers=$!
  local stop=$((SECONDS + secs + 2))
  local readers=()
  for r in 1 2 3; do
    (
      while [ $SECONDS -lt $stop ]; do
        for id in $(seq 1 "$HOT" | shuf --random-source=<(yes "$seed$r")); do
          ASAN_OPTIONS=$NOLEAK_ASAN_OPTIONS "$BURST" -p "$PORT" -c 2 -n "${BURST_N:-5}" rc_hot "$id" >/dev/null || exit 1
        done
      done
    ) &
    readers+=($!)
  done
  wait "$writers" || fail "pgbench failed: $(tail -5 "$WORK/pgbench.$seed.log")"
  for p in "${readers[@]}"; do wait "$p" || fail "a reader failed"; done
  grep -E "^number of transactions actually processed" "$WORK/pgbench.$seed.log" | awk '{print $NF}' | cut -d/ -f1
}

# settle: replicas (also the delayed one) and the invalidator catch up with the primary.
settle() {
  wait_replicas
  local lsn
  lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  wait_invalidated "$lsn"
}

# verify_stale: runs the verifier; prints the number of stale entries.
verify_stale() {
  local out
  out=$("$VERIFY" -c "$WORK/cs.ini" --json --wait 30 2>"$WORK/verify.err") || true
  echo "$out" >"$WORK/verify.json"
  "$PY3" -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["total"]["stale"] if "total" in v else v["stale"])' "$WORK/verify.json"
}
verified_count() {
  "$PY3" -c 'import json,sys; v=json.load(open(sys.argv[1])); t=v.get("total", v); print(t["checked"])' "$WORK/verify.json"
}
