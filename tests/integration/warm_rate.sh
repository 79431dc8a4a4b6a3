#!/usr/bin/env bash
# warm_rate.sh - cachesvc-warm's --rate holds however wide the window: N requests take at
# least N / rate seconds (a lower bound only: no speed is asserted), and the daemon saw
# them all on the batch tier.
. "$(dirname "$0")/daemon_lib.sh"
WARM=$CS_BUILD/cachesvc/cachesvc-warm
N=2000
RATE=400

items_db 1 $N
write_config "$WORK/cs.ini" replica1
item_query >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini"
seq 1 $N | sed 's/^/w_item /' >"$WORK/keys.txt"
# its start's own definition bump done (else it could count as the first flush's below)
until_true 15 eval '[ "$(http_status /healthz)" = 200 ]' || fail "the daemon never became healthy"

for spec in "-c 1" "-c 64 --connections 8" "-c 256 --burst 50"; do
  b0=$(metric cachesvc_definition_bumps_total)
  redis flushdb >/dev/null
  # the flush took the query's definition record with it: the daemon records it again with a
  # bump (within its 1 s generations poll); fills racing that bump would be refused
  until_true 10 metric_ge cachesvc_definition_bumps_total $((b0 + 1)) ||
    fail "the daemon never recorded its definition again after FLUSHDB"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$WARM" -p "$PORT" $spec --rate $RATE --json --quiet "$WORK/keys.txt" >"$WORK/r.json" ||
    fail "warm $spec: $(cat "$WORK/r.json")"
  t1=$(date +%s.%N)
  r=$(cat "$WORK/r.json")
  [ "$(json filled <<<"$r")" = $N ] || fail "warm $spec: $r"
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  awk -v e="$elapsed" -v n=$N -v r=$RATE 'BEGIN { exit !(e >= n / r) }' ||
    fail "warm $spec: $N requests at --rate $RATE took $elapsed s < $(awk -v n=$N -v r=$RATE 'BEGIN { print n / r }') s"
  ok "warm $spec: $N requests at --rate $RATE took $elapsed s (>= $((N / RATE)) s; tool says $(json rate <<<"$r")/s)"
done
