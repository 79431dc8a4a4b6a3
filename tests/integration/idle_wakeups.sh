#!/usr/bin/env bash
# idle_wakeups.sh - an idle daemon sleeps: its deadline checks are armed for the deadlines
# there are (pgpool.c sweep_at, engine tick_arm), not run on a 5 ms period (issue 16, the
# miss row: the periodic sweeps woke the loop ~340 times a second with two servers, idle or
# not, between a miss's steps too). Counted by the kernel: the daemon's voluntary context
# switches (every sleep in epoll_wait that something ended) over 3 s with no client, a primary
# and two replicas, health_interval 200 ms. What remains is periodic work of its own (monitor
# rounds, Redis and generation checks: a few tens a second); the bound, 100 a second, is far
# above that and far below one wake-up per 5 ms per server. Then one miss and one hit still
# answer (the pool and the cache work with no sweep armed while idle).
# Negative control: the previous daemon (5 ms sweep per server and engine tick) fails it
# (~340 a second here). Last, a deadline after an idle period: a query on a frozen backend is
# timed out by the daemon (with only the job's own arming of the sweep removed, checked by
# hand, the client gives up after 20 s instead).
# Then the invalidator (issue 16, problem 1): its 10 ms tick and its Redis connection's
# timeout timer (timeout / 10) woke a daemon running it ~110 times a second, idle or not. Now
# both are armed for the deadlines there are (a command's timeout, the next status message and
# horizon at status_interval, a debounced bump, a backoff, the slot health check): a daemon
# streaming with status_interval 10 s and health_interval 10 s, idle, wakes fewer than 20 times
# a second, and a change after the idle period is still invalidated. The same bound on the
# invalidator alone (inv_drive --single): negative control, its tick polled every 10 ms again
# (--tick-polled, as before) exceeds it.
# Last, the invalidator alone on a private 3-master Redis Cluster (issue 16: its tick polled
# every 10 ms there, the cluster client's slot map tick every 50 ms): the same bound, idle, then
# a change still acknowledged and flushed past after the idle period (the position copies and
# the watch of open slots, driven by the armed tick); negative control --tick-polled again.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE tw (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO tw VALUES (1, 'one');
CREATE PUBLICATION cs_pub FOR TABLE tw;
SQL
write_config "$WORK/cs.ini" replica1 replica2
cat >>"$WORK/cs.ini" <<'INI'

[query wq]
sql = SELECT id, v FROM tw WHERE id = $1
params = id:int8
ttl = 10m
INI
start_daemon "$WORK/cs.ini"
# settled: every server checked once (each gauge carries server and role labels)
for s in primary,primary r1,replica r2,replica; do
  until_true 20 metric_is "cachesvc_pg_up{server=\"${s%,*}\",role=\"${s#*,}\"}" 1 || fail "server ${s%,*} never up"
done
sleep 1
switches() { cat /proc/"$DAEMON_PID"/task/*/status | awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'; }
a=$(switches)
sleep 3
b=$(switches)
rate=$(((b - a) / 3))
[ "$rate" -lt 100 ] || fail "an idle daemon woke up $rate times a second (bound 100)"
ok "an idle daemon with three servers: $rate wake-ups a second"

[ "$(src wq 1)" = replica ] || fail "the miss after the idle period was not answered by a replica"
until_true 10 eval '[ "$(src wq 1)" = cache ]' || fail "the entry was not served from the cache"
ok "a miss and a hit after the idle period"

# A deadline still fires after an idle period (review 7c, P5): the sweep is armed by the job
# that needs it, not by a period. One replica with one connection, no primary fallback; the
# connection's backend is frozen (SIGSTOP) after the pool has been idle, so only the daemon's
# own deadline can end the request: it must answer TIMEOUT (the server's error), not leave the
# client to give up on its own (exit 4 after 20 s).
stop_daemon
REQUEST_TIMEOUT=2s EXTRA_SERVICE="primary_fallback = false" EXTRA_REPLICA="pool_size = 1" \
  write_config "$WORK/cs1.ini" replica1
# no monitor round during the step (each arms the sweep for its own query): only the job's
# own arming can time it out
sed -i 's/^health_interval = .*/health_interval = 60s/' "$WORK/cs1.ini"
cat >>"$WORK/cs1.ini" <<'INI'

[query wq]
sql = SELECT id, v FROM tw WHERE id = $1
params = id:int8
ttl = 10m
INI
start_daemon "$WORK/cs1.ini" one
[ "$(src wq 3)" = replica ] || fail "no miss answered by the one replica"
backend() { replica 1 postgres -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND application_name = 'cachesvc'"; }
BPID=$(backend)
[ -n "$BPID" ] && [ "$(echo "$BPID" | wc -l)" = 1 ] || fail "want one pool backend on replica1, got: $BPID"
sleep 3 # idle: nothing in any queue, no sweep armed (the last monitor query ended long ago)
CLEANUPS+=('kill -CONT "$BPID"')
kill -STOP "$BPID"
rc=0
out=$(cli -t 20000 get wq 2 2>&1) || rc=$? # wq 2: not cached, a query
kill -CONT "$BPID"
[ "$rc" != 4 ] || fail "after an idle period the daemon never timed the frozen query out: the client gave up (exit 4): $out"
echo "$out" | grep -qi timeout || fail "after an idle period, a frozen query: want the server's timeout error, got (exit $rc): $out"
ok "after an idle period, a query on a frozen backend is timed out by the daemon: $(echo "$out" | head -1)"

# The invalidator, idle (issue 16, problem 1), on a PostgreSQL of its own: on the shared
# sandbox the other tests' WAL reaches every walsender, and the stream is not idle (a CI run
# counted 29 wake-ups a second there)
stop_daemon
use_private_sandbox --replicas 1
make_db <<'SQL'
CREATE TABLE tw (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO tw VALUES (1, 'one');
CREATE PUBLICATION cs_pub FOR TABLE tw;
SQL
write_config "$WORK/inv.ini" replica1
sed -i 's/^health_interval = .*/health_interval = 10s/' "$WORK/inv.ini"
cat >>"$WORK/inv.ini" <<'INI'

[query wq]
sql = SELECT id, v FROM tw WHERE id = $1
params = id:int8
ttl = 10m
invalidate_on = tw(id = $1)
INI
invalidator_section | sed 's/^status_interval = .*/status_interval = 10s/' >>"$WORK/inv.ini"
start_daemon "$WORK/inv.ini" inv
until_true 30 streaming || fail "the invalidator never streamed"
[ "$(src wq 1)" = replica ] || fail "the miss was not answered by a replica"
until_true 10 eval '[ "$(src wq 1)" = cache ]' || fail "the entry was not served from the cache"
sleep 2 # settled: the stream's first status message, horizon and position are out
a=$(switches)
sleep 3
b=$(switches)
rate=$(((b - a) / 3))
[ "$rate" -lt 20 ] || fail "an idle daemon running the invalidator woke up $rate times a second (bound 20)"
ok "an idle daemon running the invalidator (status_interval 10 s): $rate wake-ups a second"
lsn=$(commit_lsn "UPDATE tw SET v = 'uno' WHERE id = 1")
wait_invalidated "$lsn"
until_true 10 eval '[ "$(cli get wq 1 2>/dev/null | grep -c uno)" = 1 ]' ||
  fail "after the idle period, the change was not invalidated: $(cli get wq 1 2>&1)"
ok "after the idle period, a change is invalidated (confirmed past $lsn, the new row served)"
stop_daemon

# The invalidator alone (no engine), idle: the bound holds; its tick polled every 10 ms as
# before (--tick-polled): the bound fails (negative control).
DRIVE=$CS_BUILD/tests/integration/inv_drive
[ -x "$DRIVE" ] || fail "no $DRIVE"
STATS=$WORK/inv.stats
drive_state() { { tr " " "\n" <"$STATS"; } 2>/dev/null | sed -n "s/^state=//p"; }
drive_start() { # SEEDS FLAGS...: inv_drive on SEEDS, streaming (DRIVE_PID)
  local seeds=$1
  shift
  rm -f "$STATS"
  "$DRIVE" run "$WORK/inv.ini" "$seeds" "$STATS" --stats-ms 1000 "$@" >>"$WORK/drive.log" 2>&1 &
  DRIVE_PID=$!
  CLEANUPS+=("kill $DRIVE_PID")
  until_true 60 eval '[ "$(drive_state)" = 3 ]' || { tail -20 "$WORK/drive.log" >&2; fail "inv_drive never streamed"; }
  sleep 2
}
drive_switches() {
  awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }' /proc/"$DRIVE_PID"/task/*/status
}
drive_wakeups() { # the running inv_drive's wake-ups a second, over 3 s
  local a b
  a=$(drive_switches)
  sleep 3
  b=$(drive_switches)
  echo $(((b - a) / 3))
}
drive_stop() {
  kill "$DRIVE_PID"
  wait "$DRIVE_PID" 2>/dev/null || true
}
drive_rate() { # SEEDS FLAGS...: the idle invalidator's wake-ups a second
  drive_start "$@" >&2
  drive_wakeups
  drive_stop
}
rate=$(drive_rate "127.0.0.1:$CS_REDIS_PORT" --single)
[ "$rate" -lt 20 ] || fail "the idle invalidator alone woke up $rate times a second (bound 20)"
ok "the idle invalidator alone: $rate wake-ups a second"
rate=$(drive_rate "127.0.0.1:$CS_REDIS_PORT" --single --tick-polled)
[ "$rate" -ge 20 ] || fail "negative control: with the tick polled every 10 ms the idle invalidator woke up only $rate times a second: the count does not see it"
ok "negative control: the tick polled every 10 ms (as before): $rate wake-ups a second, over the bound"

# The invalidator on a Redis Cluster (issue 16): its tick was polled every 10 ms whatever there
# was to watch (the position copies, the retry queues, the watch of open slots: CLUSTER.md V5,
# V2, V9b), and the cluster client's slot map tick ran every 50 ms; both are now armed for the
# deadlines there are. The invalidator alone on a private 3-master cluster, streaming with
# status_interval 10 s, idle: the same bound. Then what those deadlines drive still runs after
# the idle period: a change is invalidated and the flushed position PostgreSQL holds for the
# slot passes it (it waits for every bucket's position copy, written once per status
# interval, and for a complete round of the open-slot watch that started after the change).
# Negative control: the tick polled every 10 ms again (--tick-polled) exceeds the bound.
private_redis_cluster 3 0
drive_start "$RC_NODES"
rate=$(drive_wakeups)
[ "$rate" -lt 20 ] ||
  fail "the idle invalidator on a cluster woke up $rate times a second (bound 20)"
ok "the idle invalidator on a 3-master cluster: $rate wake-ups a second"
flushed_past() { # LSN: the slot's confirmed_flush_lsn is at or past it
  [ "$(primary postgres -c "SELECT confirmed_flush_lsn >= '$1' FROM pg_replication_slots
    WHERE slot_name = '$SLOT'")" = t ]
}
lsn=$(commit_lsn "UPDATE tw SET v = 'dos' WHERE id = 1")
until_true 90 flushed_past "$lsn" ||
  fail "after the idle period on a cluster, the slot's flushed position never passed the" \
    "change at $lsn: $(cat "$STATS")"
grep -q "redis_failures=0 " "$STATS" || fail "inv_drive counted Redis failures: $(cat "$STATS")"
ok "after the idle period on a cluster, a change is acknowledged by the cluster and flushed" \
  "past ($lsn)"
drive_stop
rate=$(drive_rate "$RC_NODES" --tick-polled)
[ "$rate" -ge 20 ] || fail "negative control: with the tick polled every 10 ms the idle" \
  "invalidator on a cluster woke up only $rate times a second: the count does not see it"
ok "negative control on a cluster: the tick polled every 10 ms (as before): $rate wake-ups a" \
  "second, over the bound"
