#!/usr/bin/env bash
# redis_eviction.sh - a fence evicted under maxmemory-policy volatile-lru (issue 14 item 4,
# fence.c (i)), deterministically: mm_user 1 is cached, replica1's replay is paused, the row
# is updated (the invalidator deletes the entry and writes its fence), then Redis is pushed
# to maxmemory so it evicts every key with a TTL (the fence, the horizon, entries), and the
# key is read again: the paused replica returns the old row. With the eviction check the
# fill is refused (the evicted_keys counter moved and the data is older than fmax); the
# negative control (eviction_check = false) stores the stale row, still served after the
# replica caught up.
# Changes its Redis's maxmemory and policy and pauses replica1: on a private sandbox, so it
# runs beside the others.
. "$(dirname "$0")/daemon_lib.sh"
use_private_sandbox --replicas 1

redis config set maxmemory 0 >/dev/null
redis config set maxmemory-policy volatile-lru >/dev/null

users_db 20
FENCE=on
fences() { redis --scan --pattern "$NS:f:*" | wc -l; }

# scenario CHECK: prints the row served for mm_user 1 after the eviction, once the replica
# caught up, and the source it came from.
scenario() {
  EXTRA_SERVICE="max_replica_lag = 60s
eviction_check = $1"
  inval_config "$WORK/$1.ini" mm_user
  # hold: a slow horizon publication, so the fill meets the horizon restored by hand below
  [ "${2:-}" != hold ] || sed -i 's/^status_interval = .*/status_interval = 20s/' "$WORK/$1.ini"
  start_streaming "$WORK/$1.ini" "check_$1"
  primary "$DB" -c "UPDATE users SET name = 'user 1' WHERE id = 1" >/dev/null
  wait_replicas
  fill mm_user 1
  replica 1 postgres -c "SELECT pg_wal_replay_pause()" >/dev/null
  lsn=$(commit_lsn "UPDATE users SET name = 'new $1' WHERE id = 1")
  wait_invalidated "$lsn"
  [ "$(fences)" -ge 1 ] || fail "no fence written"
  # Evict every key with a TTL: maxmemory 1, then writes (each refused, each evicting first).
  local ev0 h0
  ev0=$(redis info stats | sed -n 's/^evicted_keys:\([0-9]*\).*/\1/p')
  h0=$(redis get "$NS:horizon")
  redis config set maxmemory 1 >/dev/null
  for _ in $(seq 50); do
    redis set cs_test_pressure x >/dev/null 2>&1 || true
    [ "$(fences)" = 0 ] && break
  done
  redis config set maxmemory 0 >/dev/null
  [ "$(fences)" = 0 ] || fail "the fence was not evicted"
  [ "$(redis info stats | sed -n 's/^evicted_keys:\([0-9]*\).*/\1/p')" -gt "$ev0" ] || fail "nothing evicted"
  if [ "${2:-}" = hold ]; then
    # The horizon back as it was (the eviction took it too): only the fill script's own
    # eviction check (evicted_keys moved, data older than fmax) can refuse now.
    [ -n "$h0" ] || fail "no horizon before the pressure"
    redis set "$NS:horizon" "$h0" PX 60000 >/dev/null
  fi
  # The paused replica still has the old row: a miss reads it and tries to fill.
  [ "$(rows mm_user 1)" = '[[1,"user 1"]]' ] || fail "the paused replica did not answer the old row: $(cli --json get mm_user 1)"
  # Read it again for up to 4 s: the first fill may be refused for a reason that is not the
  # check under test (the horizon was evicted too and is republished within status_interval)
  # and a fill lands after its reply, so a read or two may pass before a stale fill is stored.
  # With the check on, none of these reads may come from the cache.
  SRC_PAUSED=
  for _ in $(seq 10); do
    sleep 0.4
    SRC_PAUSED=$(src mm_user 1)
    [ "$SRC_PAUSED" != cache ] || break
  done
  replica 1 postgres -c "SELECT pg_wal_replay_resume()" >/dev/null
  wait_replicas
  ROW_AFTER=$(rows mm_user 1)
  SRC_AFTER=$(src mm_user 1)
  REFUSED=$(( $(metric cachesvc_fill_refused_eviction_total) + $(metric cachesvc_fill_refused_horizon_total) ))
  REFUSED_EVICTION=$(metric cachesvc_fill_refused_eviction_total)
  stop_daemon || true
  drop_slot
  redis flushdb >/dev/null
}

scenario true
[ "$SRC_PAUSED" != cache ] || fail "the stale row read after its fence was evicted was stored"
[ "$ROW_AFTER" = '[[1,"new true"]]' ] || fail "stale mm_user 1 after the replica caught up: $ROW_AFTER ($SRC_AFTER)"
[ "$REFUSED" -ge 1 ] || fail "no fill refused by the eviction check"
ok "fence evicted: the stale fill was refused ($REFUSED refusals), the new row is served"

scenario true hold
[ "$SRC_PAUSED" != cache ] || fail "horizon held: the stale row read after its fence was evicted was stored"
[ "$REFUSED_EVICTION" -ge 1 ] || fail "horizon held: no fill refused by the fill script's eviction check"
[ "$ROW_AFTER" = '[[1,"new true"]]' ] || fail "horizon held: stale mm_user 1 after the replica caught up: $ROW_AFTER"
ok "fence evicted, horizon intact: the fill script's own check refused the stale fill ($REFUSED_EVICTION)"

scenario false
[ "$SRC_PAUSED" = cache ] && [ "$ROW_AFTER" = '[[1,"user 1"]]' ] ||
  fail "negative control: without the eviction check the stale fill was not stored ($SRC_PAUSED, $ROW_AFTER): the test proves nothing"
ok "negative control (eviction_check = false): the stale row was stored and is served after the replica caught up"
