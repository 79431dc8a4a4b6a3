#!/usr/bin/env bash
# lib_read_path.sh - the daemon's read-path scenarios again, through library mode
# (libcachesvc, public API only): miss then hit, errors, invalidate/refresh/stats,
# read-your-writes with min_lsn, bounded timeouts with late results, the handle's queue
# bound, close with calls in flight, and the asynchronous API on the program's own loop.
# The scenarios themselves are in lib_test.c; this script makes the database and config.
. "$(dirname "$0")/daemon_lib.sh"
: "${CS_LIB_TEST:?CS_LIB_TEST (the lib_test binary) must be set; meson test sets it}"

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text);
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 100) i;
SQL

queries() {
  cat <<'INI'

[query lp_user]
sql = SELECT id, name FROM users WHERE id = $1
params = id:int8
ttl = 90s

[query lp_boom]
sql = SELECT 1 / (id - $1) AS x FROM users WHERE id = $1
params = id:int8

[query lp_slow]
sql = SELECT pg_sleep($1) IS NULL AS slept, $2::int8 AS n
params = secs:float8, n:int8
ttl = 60s
INI
}
write_config "$WORK/lib.ini" replica1
queries >>"$WORK/lib.ini"
# read-your-writes: a prompt replica and the delayed one (CS_PG_DELAY behind)
write_config "$WORK/ryw.ini" replica1 "replica$CS_PG_DELAYED_REPLICA"
queries >>"$WORK/ryw.ini"

run() { # MODE ARGS...: runs one scenario, its log kept for the failure report
  local mode=$1
  shift
  "$CS_LIB_TEST" "$mode" "$@" 2>"$WORK/lib_$mode.log" || { cat "$WORK/lib_$mode.log" >&2; fail "scenario $mode"; }
}

CS_LIB_METRICS_OUT=$WORK/lib_metrics.txt run readpath "$WORK/lib.ini"
# library mode's exposition (cachesvc_sync_metrics) is valid too: no promtool error or lint
if command -v promtool >/dev/null; then
  out=$(promtool check metrics <"$WORK/lib_metrics.txt" 2>&1) && [ -z "$out" ] ||
    fail "promtool check metrics on cachesvc_sync_metrics: $(printf '%s' "$out" | head -20)"
  ok "library mode's metrics pass promtool check metrics"
fi
redis flushdb >/dev/null
run ryw "$WORK/ryw.ini" "$(conninfo_of primary)"
run timeout "$WORK/lib.ini"
run overload "$WORK/lib.ini"
run close "$WORK/lib.ini"
run async "$WORK/lib.ini"

# The library used the same Redis layout as the daemon: entries under $NS:e:<query>:...
[ -n "$(redis --scan --pattern "$NS:e:lp_user:*")" ] || fail "no $NS:e:lp_user:* entries in Redis"
ok "entries are stored under the daemon's key layout"
