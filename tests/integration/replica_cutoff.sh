#!/usr/bin/env bash
# replica_cutoff.sh - issue 14 item 8, the other side: a replica whose WAL receiver is cut off
# from the primary (here: primary_conninfo emptied on replica2, as a partition would leave
# it) has replayed everything it received, yet it is not current. In a replica-only setup it
# must become unusable once max_replica_lag passes (misses fail, /healthz 503), and usable
# again when it streams. It reconfigures a replica: on a private sandbox, so it runs beside
# the others.
. "$(dirname "$0")/daemon_lib.sh"
use_private_sandbox --replicas 2

R2=$CS_PG_REPLICA2_PORT
rep2() { pg "$R2" postgres -c "$1"; }
ORIG=$(rep2 "SHOW primary_conninfo")
[ -n "$ORIG" ] || fail "replica2 has no primary_conninfo"
restore() {
  rep2 "ALTER SYSTEM SET primary_conninfo = '$(printf "%s" "$ORIG" | sed "s/'/''/g")'" >/dev/null
  rep2 "SELECT pg_reload_conf()" >/dev/null
}

make_db <<'SQL'
CREATE TABLE rc_t (id bigint PRIMARY KEY, v text);
INSERT INTO rc_t SELECT i, 'v' || i FROM generate_series(1, 100) i;
SQL
EXTRA_SERVICE="max_replica_lag = 1500ms"
write_config "$WORK/cs.ini" replica2
sed -i '/^\[primary\]$/,/^conninfo/d' "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query rc_row]
sql = SELECT v FROM rc_t WHERE id = $1
params = id:int8
ttl = 1m
INI
until_true 30 sh -c "[ \"\$('$CS_PG_BIN/psql' -X -At -h '$CS_PG_SOCKET_DIR' -p $R2 -U postgres -d $DB -c 'SELECT count(*) FROM rc_t' 2>/dev/null)\" = 100 ]" ||
  fail "replica2 never replayed the test table"
start_daemon "$WORK/cs.ini"
cli --json get rc_row 1 >/dev/null || fail "a miss failed while replica2 streams"

rep2 "ALTER SYSTEM SET primary_conninfo = ''" >/dev/null
rep2 "SELECT pg_reload_conf()" >/dev/null
until_true 20 sh -c "[ -z \"\$('$CS_PG_BIN/psql' -X -At -h '$CS_PG_SOCKET_DIR' -p $R2 -U postgres -d postgres -c 'SELECT pid FROM pg_stat_wal_receiver')\" ]" ||
  fail "replica2's WAL receiver did not stop"
# Everything received is replayed, and nothing more comes: past max_replica_lag it must
# not count as current.
failed=0
for _ in $(seq 60); do
  if ! cli -t 3000 --json get rc_row $((RANDOM % 100 + 1)) >/dev/null 2>&1 && [ "$(http_status /healthz)" = 503 ]; then
    failed=1
    break
  fi
  sleep 0.2
done
[ "$failed" = 1 ] || fail "a replica cut off from the primary still served misses and /healthz said $(http_status /healthz) (lag $(metric 'cachesvc_pg_lag_seconds{server="r1"}') s)"
ok "cut off: misses refused and /healthz 503 once max_replica_lag passed (lag $(metric 'cachesvc_pg_lag_seconds{server="r1"}') s)"

restore
until_true 30 cli -t 3000 --json get rc_row 7 >/dev/null 2>&1 || fail "replica2 streams again but misses still fail"
ok "streaming again: misses served"
