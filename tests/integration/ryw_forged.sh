#!/usr/bin/env bash
# ryw_forged.sh - a read-your-writes token beyond the primary's current position (forged:
# lsn = 2^64-1, or far ahead) is refused quickly with future_lsn instead of sending the read
# to the primary after a wait; a real token - taken right after a commit, before the monitor
# has seen the primary move - still works.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE rf_t (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO rf_t SELECT i, 0 FROM generate_series(1, 10) i;
SQL
EXTRA_SERVICE="ryw_wait = 2s
primary_fallback = on"
write_config "$WORK/cs.ini"
# a slow monitor, so real tokens are usually ahead of the primary's known position
sed -i 's/^health_interval = 200ms$/health_interval = 1s/' "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query rf_row]
sql = SELECT v FROM rf_t WHERE id = $1
params = id:int8
ttl = 1m
INI
start_daemon "$WORK/cs.ini"
until_true 10 eval '[ "$(http_status /healthz)" = 200 ]' || fail "never healthy: $(http /healthz)"

for tok in FFFFFFFF/FFFFFFFF 7FFFFFFF/0; do
  t0=$(date +%s%N)
  out=$(cli --lsn "$tok" get rf_row 1 2>&1) && fail "token $tok was served: $out"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$out" | grep -q "future_lsn" || fail "token $tok: not refused with future_lsn: $out"
  [ "$ms" -lt 1500 ] || fail "token $tok refused only after $ms ms (ryw_wait is 2 s)"
  ok "token $tok refused in $ms ms: $out"
done
[ "$(metric cachesvc_ryw_primary_total)" = 0 ] || fail "a forged token reached the primary"
[ "$(metric cachesvc_ryw_token_refused_total)" -ge 2 ] || fail "refusals not counted"
[ "$(metric 'cachesvc_errors_total{code="future_lsn"}')" -ge 2 ] || fail "error not counted by code: $(http /metrics | grep errors_total)"
ok "forged tokens never reach a replica wait or the primary; counted"

# real tokens, read at once (the monitor saw the primary up to 1 s ago): never refused
for round in 1 2 3 4 5; do
  primary "$DB" -c "UPDATE rf_t SET v = $round WHERE id = 2" >/dev/null
  tok=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  out=$(cli --json --lsn "$tok" get rf_row 2 2>&1) || fail "round $round: real token $tok refused: $out"
  [ "$(echo "$out" | sed -n 's/.*"rows":\(.*\)}$/\1/p')" = "[[$round]]" ] || fail "round $round: did not see the write: $out"
done
[ "$(metric cachesvc_ryw_token_checks_total)" -ge 1 ] || echo "# (no real token was ahead of the known position)"
ok "5 real tokens taken right after their commit answered with the write ($(metric cachesvc_ryw_token_checks_total) re-checked against a fresh primary position)"
