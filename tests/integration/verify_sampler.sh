#!/usr/bin/env bash
# verify_sampler.sh - the daemon's low-rate verifier sampler: it checks cached entries
# against the primary (0 stale while everything is consistent), and counts a mismatch in
# /metrics when an entry holds data the primary does not (planted here by copying another
# key's entry over it, which no invalidation will ever remove).
. "$(dirname "$0")/daemon_lib.sh"

users_db 5
FENCE=on
EXTRA_SERVICE="verify_interval = 100ms"
inval_config "$WORK/cs.ini" vs_user
start_streaming "$WORK/cs.ini"
for i in 1 2 3; do fill vs_user $i; done
primary "$DB" -c "UPDATE users SET name = 'renamed' WHERE id = 3" >/dev/null # invalidated: fine

until_true 30 metric_ge cachesvc_verify_checked_total 5 || fail "the sampler checked $(metric cachesvc_verify_checked_total) entries"
[ "$(metric cachesvc_verify_stale_total)" = 0 ] || fail "the sampler found stale entries in a consistent cache"
ok "sampler: $(metric cachesvc_verify_checked_total) entries checked against the primary, 0 stale"

g=$(redis get $NS:g:vs_user); g=${g:-0}
redis eval "redis.call('SET', KEYS[2], redis.call('GET', KEYS[1]), 'PX', 600000) return 1" 2 \
  "$NS:e:vs_user:$g:1" "$NS:e:vs_user:$g:2" >/dev/null
until_true 30 metric_ge cachesvc_verify_stale_total 1 || fail "the planted stale entry was never found"
grep -q "verifier: STALE entry $NS:e:vs_user:$g:2" "$WORK/cachesvc.log" || fail "no log line names the stale key"
ok "sampler: the planted stale entry was found ($(metric cachesvc_verify_stale_total) in /metrics) and logged"

# a key whose parameter text does not decode (int8 "x1"): skipped as bad_key, and counted by
# reason, not only in the total
redis eval "redis.call('SET', KEYS[2], redis.call('GET', KEYS[1]), 'PX', 600000) return 1" 2 \
  "$NS:e:vs_user:$g:1" "$NS:e:vs_user:$g:x1" >/dev/null
until_true 60 metric_ge 'cachesvc_verify_skipped_by_reason_total{reason="bad_key"}' 1 ||
  fail "a key that does not decode was not counted as bad_key: $(http /metrics | grep skipped_by_reason)"
ok "sampler: a key that does not decode is counted as skipped, reason bad_key"
