#!/usr/bin/env bash
# near_cache.sh - issue 16 §1: the near cache answers repeated reads without Redis, stays
# coherent through Redis's client tracking (a commit drops the near entry, measured as
# staleness), flushes when the tracking connection is killed and when Redis restarts, keeps
# its byte bound, and honours the per-query opt-out. A private Redis, so its command
# counters are this test's alone.
. "$(dirname "$0")/daemon_lib.sh"

users_db 400
private_redis
FENCE=on
EXTRA_SERVICE="near_cache_size = 24KB
verify_interval = 0"
inval_config "$WORK/cs.ini" nc_user
cat >>"$WORK/cs.ini" <<'INI'

[query nc_off]
sql = SELECT id, name FROM users WHERE id = $1
params = id:int8
invalidate_on = users(id = $1)
near_cache = false
INI
# The daemon reaches Redis through a proxy that can silence its pub/sub connection (step 4).
PPORT=$(free_port)
/usr/bin/python3 "$(dirname "$0")/mute_proxy.py" "$PPORT" "$RPORT" >"$WORK/proxy.log" 2>&1 &
PROXY=$!
CLEANUPS+=("kill $PROXY")
until_true 10 redis-cli -p "$PPORT" ping >/dev/null || fail "the proxy did not start"
sed -i "s|^url = .*|url = redis://127.0.0.1:$PPORT/0|" "$WORK/cs.ini"
NS=cs
start_streaming "$WORK/cs.ini"
until_true 20 metric_is cachesvc_near_on 1 || fail "the near cache never came on: $(grep -i near "$WORK/cachesvc.log")"
ok "near cache on (tracking redirected): $(grep -o 'near cache: on.*' "$WORK/cachesvc.log" | head -1)"

# GETs of a query's entries sent by clients (not by scripts), counted by MONITOR.
monitor_start() {
  redis-cli -p "$RPORT" monitor >"$WORK/monitor.$1" 2>&1 &
  MON=$!
  sleep 0.3
}
monitor_gets() { # QUERY: stops the monitor, prints the GETs of QUERY's entries
  sleep 0.3
  kill "$MON" 2>/dev/null; wait "$MON" 2>/dev/null || true
  grep -v '\[0 lua\]' "$WORK/monitor.$1" | grep -c "\"GET\" \"$NS:e:$1:" || true
}

# 1. Repeated reads: served from memory, no Redis GET.
fill nc_user 1
cli get nc_user 1 >/dev/null # this GET's reply is stored near
h0=$(metric cachesvc_near_hits_total)
monitor_start nc_user
for _ in $(seq 20); do cli get nc_user 1 >/dev/null; done
g=$(monitor_gets nc_user)
h1=$(metric cachesvc_near_hits_total)
cli stats | grep -qE "near_hits +$h1\b" || fail "STATS does not show near_hits $h1: $(cli stats | grep near)"
[ $((h1 - h0)) = 20 ] || fail "20 reads of a hot key: $((h1 - h0)) near hits"
[ "$g" = 0 ] || fail "20 near hits still sent $g GETs of the entry to Redis"
[ "$(src nc_user 1)" = cache ] || fail "a near hit does not say source cache"
ok "20 reads of a hot key: 20 near hits, no GET of the entry reached Redis"

# The opt-out: every read goes to Redis.
fill nc_off 1
h0=$(metric cachesvc_near_hits_total)
monitor_start nc_off
for _ in $(seq 10); do cli get nc_off 1 >/dev/null; done
g=$(monitor_gets nc_off)
[ "$(metric cachesvc_near_hits_total)" = "$h0" ] || fail "near_cache = false: near hits counted"
[ "$g" -ge 10 ] || fail "near_cache = false: $g Redis GETs for 10 reads"
ok "near_cache = false: every read goes to Redis ($g GETs)"

# A client MGET is one Redis MGET (issue 16 §2), not a GET per item.
cli mget --each nc_off $(seq 1 16) >/dev/null
monitor_start nc_off
out=$(cli --json mget --each nc_off $(seq 1 16))
sleep 0.3
kill "$MON" 2>/dev/null; wait "$MON" 2>/dev/null || true
mg=$(grep -v '\[0 lua\]' "$WORK/monitor.nc_off" | grep -c "\"MGET\" \"$NS:e:nc_off:" || true)
g=$(grep -v '\[0 lua\]' "$WORK/monitor.nc_off" | grep -c "\"GET\" \"$NS:e:nc_off:" || true)
[ "$mg" = 1 ] && [ "$g" = 0 ] || fail "an MGET of 16 cached keys sent $mg MGETs and $g GETs to Redis"
[ "$(echo "$out" | grep -o '"source":"cache"' | wc -l)" = 16 ] || fail "MGET of 16 cached keys: $out"
ok "an MGET of 16 cached keys is one Redis MGET"

# 2. A commit drops the near entry (the tracking message), and its staleness is measured.
s0=$(metric cachesvc_near_staleness_seconds_count)
d0=$(metric cachesvc_near_dropped_total)
lsn=$(commit_lsn "UPDATE users SET name = 'changed 1' WHERE id = 1")
wait_invalidated "$lsn"
until_true 5 metric_ge cachesvc_near_dropped_total $((d0 + 1)) || fail "the near entry was not dropped after the commit"
wait_replicas
r=$(rows nc_user 1)
case $r in *"changed 1"*) ;; *) fail "after the commit the daemon answers $r" ;; esac
until_true 5 metric_ge cachesvc_near_staleness_seconds_count $((s0 + 1)) || fail "no staleness sample for the dropped entry"
ok "a commit drops the near entry; staleness sample: $(metric 'cachesvc_near_staleness_quantile_seconds{q="0.5"}') s"

# 3. The tracking connection killed: everything near is dropped at once, then tracking
# comes back (a new redirect id, proven by a heartbeat echo) and near hits resume.
for i in 2 3 4; do fill nc_user $i; cli get nc_user $i >/dev/null; done
until_true 5 metric_ge cachesvc_near_entries 3 || fail "entries not held: $(metric cachesvc_near_entries)"
f0=$(metric cachesvc_near_flushes_total)
redis-cli -p "$RPORT" client kill type pubsub >/dev/null
until_true 5 metric_ge cachesvc_near_flushes_total $((f0 + 1)) || fail "CLIENT KILL of the tracking connection did not flush the near cache"
until_true 10 metric_is cachesvc_near_on 1 || fail "the near cache did not come back on"
h0=$(metric cachesvc_near_hits_total)
fill nc_user 2
cli get nc_user 2 >/dev/null
cli get nc_user 2 >/dev/null
until_true 5 metric_ge cachesvc_near_hits_total $((h0 + 1)) || fail "no near hits after tracking came back"
ok "CLIENT KILL of the tracking connection: flushed, back on, hits resume"

# The tracking connection goes silent (half-open: nothing arrives, nothing says so): a
# change made meanwhile is served from memory only until the heartbeat's echo is overdue
# (GEN_POLL_MS + NEAR_ECHO_MS); then everything near is dropped, the pub/sub connection is
# made again, and the change is visible.
fill nc_user 5
cli get nc_user 5 >/dev/null
until_true 5 metric_ge cachesvc_near_entries 1 || fail "key 5 not held"
e0=$(metric cachesvc_near_echo_lost_total)
kill -USR1 "$PROXY"
lsn=$(commit_lsn "UPDATE users SET name = 'changed 5' WHERE id = 5")
wait_invalidated "$lsn"
wait_replicas
until_true 10 metric_ge cachesvc_near_echo_lost_total $((e0 + 1)) || fail "a silent tracking connection was never noticed"
r=$(rows nc_user 5)
case $r in *"changed 5"*) ;; *) fail "after the echo was lost the daemon still answers $r" ;; esac
until_true 15 metric_is cachesvc_near_on 1 || fail "the near cache did not come back after a new pub/sub connection"
ok "a silent tracking connection: echo lost, flushed, reconnected, the change visible"

# 4. The byte bound: 300 distinct keys read twice through a 24 KB near cache.
until_true 10 metric_is cachesvc_near_on 1 || fail "near cache off"
for _ in 1 2 3; do
  for first in 100 250; do
    # shellcheck disable=SC2046
    cli mget --each nc_user $(seq "$first" $((first + 149))) >/dev/null
  done
done
b=$(metric cachesvc_near_bytes)
ev=$(metric cachesvc_near_evictions_total)
[ "$b" -le 24576 ] || fail "near_bytes $b above near_cache_size 24KB"
[ "$ev" -ge 1 ] || fail "no evictions with 300 keys in 24 KB"
ok "byte bound: $b bytes held (<= 24576), $ev evictions, $(metric cachesvc_near_entries) entries"

# 4b. near_cache_size reloads: a smaller bound evicts down to it at once; turning the near
# cache off is refused (a restart) and the running one keeps its bound.
ev0=$(metric cachesvc_near_evictions_total)
sed -i 's/^near_cache_size = .*/near_cache_size = 8KB/' "$WORK/cs.ini"
kill -HUP "$DAEMON_PID"
until_true 15 grep -q '^.*reloaded ' "$WORK/cachesvc.log" || fail "no reload: $(tail -3 "$WORK/cachesvc.log")"
b=$(metric cachesvc_near_bytes)
[ "$b" -le 8192 ] || fail "near_bytes $b above the reloaded near_cache_size 8KB"
metric_ge cachesvc_near_evictions_total $((ev0 + 1)) || fail "the smaller bound evicted nothing"
sed -i 's/^near_cache_size = .*/near_cache_size = 0/' "$WORK/cs.ini"
kill -HUP "$DAEMON_PID"
until_true 15 grep -q 'reload refused.*near_cache_size' "$WORK/cachesvc.log" ||
  fail "turning the near cache off by reload was not refused: $(tail -3 "$WORK/cachesvc.log")"
metric_is cachesvc_near_on 1 || fail "the refused reload turned the near cache off"
sed -i 's/^near_cache_size = .*/near_cache_size = 24KB/' "$WORK/cs.ini"
kill -HUP "$DAEMON_PID"
until_true 15 [ "$(grep -c '^.*reloaded ' "$WORK/cachesvc.log")" -ge 2 ] || fail "no second reload"
ok "near_cache_size reloads: 8KB evicted down to $b bytes; 0 refused (needs a restart)"

# 4c. The heartbeat refused (review 13 L4): Redis answers the heartbeat's SET with -OOM
# (maxmemory 1 under noeviction) while both connections stay up, so no echo can come: the
# proof lapses within GEN_POLL_MS + NEAR_ECHO_MS, the near cache goes off and is flushed
# (nothing proves invalidations still arrive); once writes are accepted again a new echo
# turns it back on.
until_true 10 metric_is cachesvc_near_on 1 || fail "near cache off before the refused heartbeat"
fill nc_user 8
cli get nc_user 8 >/dev/null
until_true 5 metric_ge cachesvc_near_entries 1 || fail "key 8 not held"
ps0=$(redis-cli -p "$RPORT" client list type pubsub | grep -o '^id=[0-9]*' | sort | tr '\n' ' ')
f0=$(metric cachesvc_near_flushes_total)
hf0=$(metric cachesvc_near_heartbeat_failed_total)
lapsed0=$(grep -c 'no heartbeat echo lately' "$WORK/cachesvc.log" || true)
pol=$(redis-cli -p "$RPORT" config get maxmemory-policy | tail -1)
mm=$(redis-cli -p "$RPORT" config get maxmemory | tail -1)
redis-cli -p "$RPORT" config set maxmemory-policy noeviction >/dev/null
redis-cli -p "$RPORT" config set maxmemory 1 >/dev/null
until_true 10 metric_ge cachesvc_near_heartbeat_failed_total $((hf0 + 1)) ||
  fail "the heartbeat was not refused (maxmemory 1, noeviction)"
until_true 15 metric_is cachesvc_near_on 0 ||
  { redis-cli -p "$RPORT" config set maxmemory "$mm" >/dev/null
    fail "heartbeats refused for 15 s ($(metric cachesvc_near_heartbeat_failed_total) in all): the near cache stayed on"; }
metric_ge cachesvc_near_flushes_total $((f0 + 1)) || fail "the near cache went off without a flush"
[ "$(metric cachesvc_near_entries)" = 0 ] || fail "entries held with the proof lapsed: $(metric cachesvc_near_entries)"
sleep 2
metric_is cachesvc_near_on 0 || fail "the near cache came back on while heartbeats are still refused"
# (after the 2 s: a reconnect of the pub/sub connection would be deferred ~100 ms past the
# near cache going off, review 16 R16-3)
ps1=$(redis-cli -p "$RPORT" client list type pubsub | grep -o '^id=[0-9]*' | sort | tr '\n' ' ')
[ "$ps0" = "$ps1" ] || fail "the pub/sub connection changed ($ps0-> $ps1): not the refused heartbeat's doing alone"
redis-cli -p "$RPORT" config set maxmemory "$mm" >/dev/null
redis-cli -p "$RPORT" config set maxmemory-policy "$pol" >/dev/null
until_true 15 metric_is cachesvc_near_on 1 || fail "the near cache did not come back once heartbeats were accepted"
[ "$(grep -c 'no heartbeat echo lately' "$WORK/cachesvc.log" || true)" -gt "$lapsed0" ] ||
  fail "no log line for the lapsed proof"
ok "heartbeat refused (-OOM): proof lapsed, near cache off and flushed, back on after a new echo"

# 5. Redis restarted (data lost): the near cache is flushed, nothing old is served.
f0=$(metric cachesvc_near_flushes_total)
redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
private_redis_gone
until_true 5 metric_ge cachesvc_near_flushes_total $((f0 + 1)) || fail "a Redis restart did not flush the near cache"
[ "$(metric cachesvc_near_entries)" = 0 ] || fail "entries held with Redis down: $(metric cachesvc_near_entries)"
until_true 5 metric_is cachesvc_near_garbage_entries 0 || fail "the flushed entries were never freed: $(metric cachesvc_near_garbage_entries) left"
start_redis
until_true 20 metric_is cachesvc_near_on 1 || fail "the near cache did not come back after the restart"
ok "Redis restart: near cache flushed ($(metric cachesvc_near_flushes_total) flushes), back on"

# 6. FLUSHDB of another database: Redis sends every tracking client a nil invalidation
# (it cannot tell which keys went), and the epoch in ours survives, so only the nil message
# can flush the near cache.
until_true 20 filled_now nc_user 7 || fail "no fill after the restart"
cli get nc_user 7 >/dev/null
until_true 5 metric_ge cachesvc_near_entries 1 || fail "no entry held after the restart"
f0=$(metric cachesvc_near_flushes_total)
i0=$(metric cachesvc_redis_epoch_invalid_total)
redis-cli -p "$RPORT" -n 15 flushdb >/dev/null
until_true 5 metric_ge cachesvc_near_flushes_total $((f0 + 1)) || fail "FLUSHDB (a nil tracking message) did not flush the near cache"
[ "$(metric cachesvc_redis_epoch_invalid_total)" = "$i0" ] || fail "the epoch check fired: not the nil message's flush"
ok "a nil tracking message (FLUSHDB of another database) flushes the near cache"

# The near cache's metrics are valid exposition (promtool, as metrics_valid checks the rest).
if command -v promtool >/dev/null; then
  http /metrics >"$WORK/metrics.txt"
  grep -q '^cachesvc_near_staleness_seconds_bucket' "$WORK/metrics.txt" || fail "no near staleness histogram"
  rc=0
  promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1 || rc=$?
  [ $rc = 0 ] && [ ! -s "$WORK/promtool.out" ] || fail "promtool: $(head -5 "$WORK/promtool.out")"
  ok "near cache metrics pass promtool check metrics"
fi
