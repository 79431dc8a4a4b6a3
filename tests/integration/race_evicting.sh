#!/usr/bin/env bash
# race_evicting.sh - I1 under fire with Redis evicting (issue 14 item 4, fence.c (i)): the
# race of race_fenced.sh (writers on hot rows, readers through cachesvc, one replica applying
# WAL late) under maxmemory-policy volatile-lru while an evictor pushes Redis to maxmemory
# every 200 ms, so it evicts every key with a TTL: entries, the horizon and the fences the
# races depend on. After everything catches up the verifier finds 0 stale entries, and fills
# were refused because of the evictions.
# Changes its Redis's maxmemory and policy: on a Redis of its own, beside the other tests.
. "$(dirname "$0")/race_lib.sh"

use_private_redis
redis config set maxmemory 0 >/dev/null
redis config set maxmemory-policy volatile-lru >/dev/null

race_config on
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never streamed"
evicted() { redis info stats | sed -n 's/^evicted_keys:\([0-9]*\).*/\1/p'; }
ev0=$(evicted)
(
  end=$((SECONDS + 14))
  while [ $SECONDS -lt $end ]; do
    sleep 0.2
    redis config set maxmemory 1 >/dev/null
    redis set cs_test_pressure x >/dev/null 2>&1 || true
    redis config set maxmemory 0 >/dev/null
  done
) &
EVICTOR=$!
CLEANUPS+=('kill $EVICTOR')
n=$(race_round 12 44)
wait "$EVICTOR" || true
ev=$(( $(evicted) - ev0 ))
[ "$ev" -ge 10 ] || fail "only $ev keys evicted: the test staged no eviction"
settle
# The evictor may have taken the race's last entries: read every hot key again now that
# everything caught up, so the verifier has entries to check beside what survived the race.
for id in $(seq 1 "$HOT"); do ASAN_OPTIONS=$NOLEAK_ASAN_OPTIONS "$BURST" -p "$PORT" -c 1 -n 2 rc_hot "$id" >/dev/null || true; done
stale=$(verify_stale)
checked=$(verified_count)
[ "$checked" -ge 1 ] || fail "the verifier checked nothing: $(cat "$WORK/verify.json")"
[ "$stale" = 0 ] || fail "$stale stale entries survived the race under eviction: $(cat "$WORK/verify.json")"
refused=$(( $(metric cachesvc_fill_refused_eviction_total) + $(metric cachesvc_fill_refused_horizon_total) ))
ok "$n commits raced the readers while Redis evicted $ev keys; verifier: $checked checked, 0 stale; $refused fills refused (eviction check $(metric cachesvc_fill_refused_eviction_total), horizon $(metric cachesvc_fill_refused_horizon_total))"
