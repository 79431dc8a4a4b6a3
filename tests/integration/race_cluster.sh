#!/usr/bin/env bash
# race_cluster.sh [off] - the race of race_fenced.sh on a Redis Cluster (3 masters, the
# daemon with [redis] cluster = on): writers on hot rows, readers through a 2 s-delayed
# replica, fills racing invalidations in 256 buckets spread over the masters. After the
# writers stop and everything catches up, cachesvc-verify (every master SCANned) finds 0
# stale entries, on each seed.
# With "off" the negative control: the same race with fence = off must leave stale entries
# (the fills' checks in each bucket are what the fenced run proves, CLUSTER.md section 4).
. "$(dirname "$0")/race_lib.sh"

# every hot key read once after the catch-up: entries that survived the race are hits (and
# judged as they are), the keys the race left uncached are filled now, so the verifier always
# has entries to judge
read_all() { for id in $(seq 1 "$HOT"); do cli get rc_hot "$id" >/dev/null 2>&1 || true; done; }

MODE=${1:-on}
# every miss reads the late replica: each key read in the last window after its last change
# is filled from a row 2 s old unless the fence refuses it (one seed finds them unfenced)
RACE_REPLICAS="replica$CS_PG_DELAYED_REPLICA" RACE_CLUSTER=1 race_config "$MODE"
grep -q '^cluster = on' "$WORK/cs.ini" || fail "the config is not in cluster mode: $(grep -A4 '^\[redis\]' "$WORK/cs.ini")"
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never streamed"
if [ "$MODE" = on ]; then
  for seed in 11 22; do
    n=$(race_round 10 "$seed")
    settle
    read_all
    stale=$(verify_stale)
    checked=$(verified_count)
    [ "$checked" -ge 1 ] || fail "seed $seed: the verifier checked nothing: $(cat "$WORK/verify.json") $(cat "$WORK/verify.err")"
    [ "$stale" = 0 ] || fail "seed $seed: $stale stale entries survived the race on the cluster: $(cat "$WORK/verify.json")"
    ok "seed $seed: $n commits raced the readers on the cluster; verifier: $checked checked, 0 stale"
  done
  refused=$(metric cachesvc_fill_refused_fence_total)
  ok "fences refused $refused fills on the cluster"
else
  found=0
  # up to 8 seeds: a loaded machine (CI with a cluster test beside it) slows the readers and
  # makes a stale fill rarer per round; the loop ends at the first one found
  for seed in 11 22 33 44 55 66 77 88; do
    race_round 10 "$seed" >/dev/null
    settle
    read_all
    stale=$(verify_stale)
    found=$((found + stale))
    ok "seed $seed without the fence on the cluster: $stale stale entries"
    [ "$found" -gt 0 ] && break
  done
  [ "$found" -gt 0 ] || fail "without the fence no stale entry appeared on the cluster: the race test proves nothing"
  ok "without the fence the verifier finds stale entries on the cluster ($found): race_cluster can fail"
fi
