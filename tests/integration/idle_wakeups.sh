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
# (~340 a second here).
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE tw (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO tw VALUES (1, 'one');
SQL
write_config "$WORK/cs.ini" replica1 replica2
cat >>"$WORK/cs.ini" <<'INI'

[query wq]
sql = SELECT id, v FROM tw WHERE id = $1
params = id:int8
ttl = 10m
INI
start_daemon "$WORK/cs.ini"
until_true 20 metric_is 'cachesvc_pg_up{server="r2"}' 1 || true # settled: every server checked once
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
