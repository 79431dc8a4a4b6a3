#!/usr/bin/env bash
# race_unfenced.sh - the same race with the fence switched off (fence = off: TTL-only
# fills) must leave stale entries: proof that race_fenced.sh can fail.
. "$(dirname "$0")/race_lib.sh"

race_config off
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never streamed"
found=0
for seed in 11 22 33; do
  race_round 12 "$seed" >/dev/null
  settle
  stale=$(verify_stale)
  found=$((found + stale))
  ok "seed $seed without the fence: $stale stale entries"
  [ "$found" -gt 0 ] && break
done
[ "$found" -gt 0 ] || fail "without the fence no stale entry appeared: the race test proves nothing"
ok "without the fence the verifier finds stale entries ($found): the fenced test can fail"
