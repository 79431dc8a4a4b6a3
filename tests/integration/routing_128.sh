#!/usr/bin/env bash
# routing_128.sh - issue 13 item 10: the set of servers a miss has tried must hold every
# server. 128 [replica] entries (alternately the sandbox's two replicas, one connection
# each) plus the primary: misses are served across all of them, a failing server's misses
# are retried on another, a saturated fleet is walked server by server before OVERLOADED,
# and the sanitizers (this runs on the ASan/UBSan build) report nothing. A config over
# the cap (255 replicas) is refused with a clear message. ~260 connections: on a private
# sandbox, so it runs beside the others.
. "$(dirname "$0")/daemon_lib.sh"
use_private_sandbox --replicas 2

NREP=128
# one socket per server connection, one monitor connection per server, plus clients
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 2048 ]; then
  ulimit -n 2048 2>/dev/null || { echo "SKIP: fd limit $(ulimit -n) < 2048"; exit 77; }
fi

FLAKY=${DB}_flaky
make_db <<SQL
CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO items SELECT i, 'v' || i FROM generate_series(0, 2000) i;
CREATE ROLE $FLAKY LOGIN;
GRANT SELECT ON items TO $FLAKY;
-- a server that fails every query with a retryable error (40001) when cachesvc logs in as
-- $FLAKY: its misses must be retried on another server
CREATE FUNCTION flaky() RETURNS boolean LANGUAGE plpgsql STABLE AS \$\$
BEGIN
  IF current_user = '$FLAKY' THEN
    RAISE EXCEPTION 'this server is flaky' USING ERRCODE = '40001';
  END IF;
  RETURN true;
END \$\$;
SQL
CLEANUPS+=("primary postgres -c 'DROP DATABASE IF EXISTS $DB WITH (FORCE)'; primary postgres -c 'DROP ROLE IF EXISTS $FLAKY'")

EXTRA_SERVICE='queue_max = 2
queue_timeout = 10s
health_interval = 1s' REQUEST_TIMEOUT=20s EXTRA_REPLICA='pool_size = 1' write_config "$WORK/base.ini" replica1
sed -i '/^health_interval = 200ms$/d' "$WORK/base.ini"
FLAKY_INDEX=100 # server index 100 (r101): far past bit 31
{
  cat "$WORK/base.ini"
  for i in $(seq 2 "$NREP"); do
    r=replica$((1 + (i - 1) % 2))
    ci=$(conninfo_of "$r")
    [ $((i - 1)) = $FLAKY_INDEX ] && ci="${ci/user=postgres/user=$FLAKY}"
    printf '\n[replica r%d]\nconninfo = %s\npool_size = 1\n' "$i" "$ci"
  done
  cat <<'INI'

[query rt_item]
sql = SELECT id, v, $2::int8 AS phase FROM items WHERE id = $1 AND flaky() AND pg_sleep(0.2) IS NOT NULL
params = id:int8, phase:int8
INI
} >"$WORK/cs.ini"
[ "$(grep -c '^\[replica ' "$WORK/cs.ini")" = $NREP ] || fail "test bug: not $NREP replicas"
start_daemon "$WORK/cs.ini"
all_up() { [ "$(http /metrics | grep -c '^cachesvc_pg_up{.*} 1$')" = $((NREP + 1)) ]; }
until_true 60 all_up || fail "not every server came up: $(http /metrics | grep -c '^cachesvc_pg_up{.*} 1$') of $((NREP + 1))"
ok "$NREP replicas and the primary up"

served_by() { # servers whose query counter is > 0, among r$1..r$2
  http /metrics | awk -v a="$1" -v b="$2" '
    $1 ~ /^cachesvc_pg_queries_total\{server="r[0-9]+"\}$/ {
      n = $1; gsub(/[^0-9]/, "", n); n += 0
      if (n >= a && n <= b && $2 > 0) c++
    } END { print c + 0 }'
}

# Phase 1: 200 concurrent misses (capacity 128 x 3): every one served, spread over the fleet.
out=$("$BURST" -p "$PORT" -c 8 -n 25 -t 30000 rt_item %i 1) || fail "burst 1: $out"
echo "burst 1: $out"
[ "$(echo "$out" | json ok)" = 200 ] || fail "not every miss was served: $out"
[ "$(echo "$out" | json errors)" = '{}' ] || fail "errors: $out"
[ "$(metric cachesvc_retries_total)" -ge 1 ] || fail "no retry although r$((FLAKY_INDEX + 1)) fails every query"
[ "$(metric "cachesvc_pg_errors_total{server=\"r$((FLAKY_INDEX + 1))\"}")" -ge 1 ] || fail "the flaky server was never tried"
high=$(served_by 33 $NREP)
[ "$high" -ge 32 ] || fail "only $high of the servers past index 31 served a query"
ok "200 misses served by $(served_by 1 $NREP) servers ($high past index 31), $(metric cachesvc_retries_total) retried after the flaky server failed them"
for id in 0 57 199; do
  [ "$(cli --json get rt_item $id 1 | json rows)" = "[[$id, \"v$id\", 1]]" ] || fail "answer for $id: $(cli --json get rt_item $id 1)"
done
ok "answers match the table"

# Phase 2: 600 concurrent misses, more than the fleet holds: every reply arrives; a miss
# that finds a full queue walks on to the next server, so all 128 replicas take work, and
# what finds every queue full is OVERLOADED (never spilled onto the primary).
out=$("$BURST" -p "$PORT" -c 8 -n 75 -t 60000 rt_item %i 2) || fail "burst 2: $out"
echo "burst 2: $out"
"$PY3" - "$out" <<'PY' || fail "burst 2: $out"
import json, sys
t = json.loads(sys.argv[1])
errs = t['errors']
assert t['ok'] + sum(errs.values()) == t['sent'] == 600, 'replies missing'
assert set(errs) <= {'overloaded', 'unavailable'}, errs   # unavailable: the flaky server, 3 attempts spent
assert errs.get('overloaded', 0) >= 1, 'nothing was refused: the fleet was never full'
assert t['ok'] >= 128, 'fewer answers than servers'
assert t['primary'] == 0, 'a saturated fleet spilled onto the primary'
PY
[ "$(served_by 1 $NREP)" = $NREP ] || fail "only $(served_by 1 $NREP) of $NREP replicas served a query"
ok "a saturated fleet: every replica took work, the rest were refused OVERLOADED, nothing spilled to the primary"

stop_daemon || fail "cachesvc exited with status $?"
! grep -q 'AddressSanitizer\|runtime error:\|LeakSanitizer' "$WORK/cachesvc.log" || fail "sanitizer report: $(grep -m3 -A3 'AddressSanitizer\|runtime error:\|LeakSanitizer' "$WORK/cachesvc.log")"
ok "no sanitizer report, clean exit"

# The cap: 255 replicas (256 servers with the primary). One more is refused at load.
{
  cat "$WORK/base.ini"
  for i in $(seq 2 256); do printf '\n[replica r%d]\nconninfo = %s\n' "$i" "$(conninfo_of replica1)"; done
} >"$WORK/over.ini"
set +e
msg=$("$CACHESVC" -c "$WORK/over.ini" --show-config 2>&1 >/dev/null)
rc=$?
set -e
[ $rc -ne 0 ] || fail "a config with 256 replicas was accepted"
echo "$msg" | grep -q 'at most 255' || fail "unclear message for too many replicas: $msg"
ok "256 replicas refused: $msg"
