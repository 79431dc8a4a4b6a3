#!/usr/bin/env bash
# failover.sh MODE - a primary failover under traffic, on a private sandbox of its own (a
# primary and two replicas; the shared sandbox is never touched). Issue 21.
#
# The daemon's [primary] is multi-host (old primary first, then replica1) with
# target_session_attrs=read-write. Keys are cached, a writer updates them before and during
# the failover, one client connection reads throughout. The old primary is stopped
# (MODE fast: pg_ctl stop -m fast) or killed (MODE kill: SIGKILL to the postmaster and its
# processes); replica1 is promoted; replica2 is re-pointed at it (ALTER SYSTEM + reload);
# replica3 is left following the old primary: its replay stops, so it is banned by lag, and
# once the old primary is back it receives the old timeline: banned for its timeline.
# Then: the daemon answered throughout (error replies counted: 0 expected), the promoted
# replica is shown as promoted and not routed to, the invalidator found its slot missing
# on the new primary and reported it LOST (slot mark) with a gap flush, after catch-up the
# verifier finds 0 stale entries, and caching resumes without a restart (a fill, then
# src cache). Last, the old primary comes back as a stale primary on the old timeline: the
# invalidator refuses it (stale_primary_total, its slot reported) and streams from the new
# primary; nothing written on the stale server is ever served from the cache.
. "$(dirname "$0")/daemon_lib.sh"

MODE=${1:-fast}
case $MODE in fast | kill) ;; *) fail "MODE is fast or kill" ;; esac
PY=/usr/bin/python3
"$PY" -c 'import msgpack' 2>/dev/null || fail "$PY cannot import msgpack (scripts/lib.sh installs python3-msgpack)"
VERIFY=$CS_BUILD/cachesvc/cachesvc-verify
# a private sandbox: the primary is stopped, killed and replaced (--delay: none here)
use_private_sandbox --replicas 3
P_OLD=$CS_PG_PRIMARY_PORT
P_R1=$CS_PG_REPLICA1_PORT
P_R2=$CS_PG_REPLICA2_PORT
P_R3=$CS_PG_REPLICA3_PORT
redis flushdb >/dev/null

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO items SELECT i, 0 FROM generate_series(1, 200) i;
SQL

MULTI="host=127.0.0.1,127.0.0.1 port=$P_OLD,$P_R1 user=postgres dbname=$DB target_session_attrs=read-write connect_timeout=2"
cat >"$WORK/cs.ini" <<INI
[cachesvc]
listen = 127.0.0.1:$PORT
unix_socket = $SOCK
admin_listen = 127.0.0.1:$APORT
request_timeout = 5s
health_interval = 200ms
fence = on
max_replica_lag = 3s
primary_fallback = true
verify_interval = 0

[redis]
url = redis://127.0.0.1:$CS_REDIS_PORT/$REDIS_DB

[primary]
conninfo = $MULTI

[replica r1]
conninfo = host=127.0.0.1 port=$P_R1 user=postgres dbname=$DB connect_timeout=2

[replica r2]
conninfo = host=127.0.0.1 port=$P_R2 user=postgres dbname=$DB connect_timeout=2

[replica r3]
conninfo = host=127.0.0.1 port=$P_R3 user=postgres dbname=$DB connect_timeout=2

[query fo_item]
sql = SELECT id, v FROM items WHERE id = \$1
params = id:int8
ttl = 10m
invalidate_on = items(id = \$1)
INI
invalidator_section >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never streamed"

# ---- cache keys 1..40 -----------------------------------------------------------------------
is_cached_now() { [ "$(cli --json get fo_item "$1" | json source)" = cache ]; }
ncached() { redis --scan --pattern "$NS:e:fo_item:*" | wc -l; }
all_cached() { "$BURST" -p "$PORT" -c 1 -n 41 fo_item %i >/dev/null; [ "$(ncached)" -ge 40 ]; }
until_true 30 all_cached || fail "keys 1..40 never cached ($(ncached) entries)"
ok "$(ncached) keys cached before the failover"

# ---- traffic: one reading connection, one writer ----------------------------------------------
"$PY" "$(dirname "$0")/steady_reader.py" "127.0.0.1:$PORT" "$WORK/stop" "$WORK/reader.json" fo_item 40 \
  >"$WORK/reader.log" 2>&1 &
READER=$!
CLEANUPS+=("touch $WORK/stop $WORK/stopw")
(
  while [ ! -f "$WORK/stopw" ]; do
    if "$CS_PG_BIN/psql" -X -q -At "$MULTI" -c "UPDATE items SET v = v + 1 WHERE id = $((RANDOM % 40 + 1))" >/dev/null 2>>"$WORK/writes.err"
    then echo ok; else echo err; fi
    sleep 0.05
  done
) >"$WORK/writes" &
WRITER=$!
nwrites() { grep -c '^ok' "$WORK/writes" || true; }
writes_ge() { [ "$(nwrites)" -ge "$1" ]; }
until_true 30 writes_ge 5 || fail "the writer does not write: $(tail -3 "$WORK/writes.err")"

# ---- the failover -----------------------------------------------------------------------------
writes_before=$(nwrites)
if [ "$MODE" = fast ]; then
  runpg "$CS_PG_BIN/pg_ctl" -D "$SB/primary" -m fast -w -t 60 stop >/dev/null || fail "stopping the old primary"
else
  # a crash: let both replicas receive everything first (replica2 must be able to follow
  # replica1), then SIGKILL the postmaster and its processes
  lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  for i in 1 2; do until_true 30 replica_caught_up "$i" "$lsn" || fail "replica$i behind before the kill"; done
  pm=$(head -1 "$SB/primary/postmaster.pid")
  kids=$(ps -o pid= --ppid "$pm" || true)
  kill -KILL "$pm" $kids 2>/dev/null || true
  until_true 20 bash -c "! kill -0 $pm 2>/dev/null" || fail "the old primary survived SIGKILL"
fi
sleep 1 # the failure is noticed; traffic goes on meanwhile
runpg "$CS_PG_BIN/pg_ctl" -D "$SB/replica1" -w -t 60 promote >/dev/null || fail "promoting replica1"
pg "$P_R2" postgres -c "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=$P_R1 user=postgres'" >/dev/null
pg "$P_R2" postgres -c "ALTER SYSTEM SET primary_slot_name = ''" >/dev/null
pg "$P_R2" postgres -c "SELECT pg_reload_conf()" >/dev/null
# the helpers now see the new topology: replica1 is the primary, replica2 its only replica
CS_PG_PRIMARY_PORT=$P_R1
CS_PG_REPLICAS=1
CS_PG_REPLICA1_PORT=$P_R2
follows() { [ "$(pg "$P_R2" postgres -c "SELECT status = 'streaming' FROM pg_stat_wal_receiver")" = t ]; }
until_true 60 follows || fail "replica2 does not follow the new primary"
until_true 30 writes_ge $((writes_before + 5)) || fail "no writes on the new primary: $(tail -3 "$WORK/writes.err")"
ok "failover ($MODE): old primary down, replica1 promoted, replica2 follows it; writes go on"

until_true 30 metric_is 'cachesvc_pg_promoted{server="r1"}' 1 || fail "r1 not shown as promoted"
r3_lagging() { awk -v l="$(metric 'cachesvc_pg_lag_seconds{server="r3"}')" 'BEGIN { exit !(l > 3) }'; }
until_true 40 r3_lagging || fail "replica3 (left on the dead old primary) is not banned by lag: $(http /metrics | grep 'server="r3"')"
r3_frozen=$(metric 'cachesvc_pg_queries_total{server="r3"}')
ok "replica3 cannot follow the new primary: its replay stopped, banned by lag"
until_true 60 grep -q "slot \"$SLOT\" was LOST" "$WORK/cachesvc.log" || fail "the missing slot on the new primary was not reported LOST"
until_true 30 metric_ge cachesvc_invalidator_slot_lost_total 1 || fail "slot_lost_total not counted"
until_true 30 metric_ge cachesvc_invalidator_gap_flushes_total 1 || fail "no gap flush"
until_true 60 streaming || fail "the invalidator does not stream from the new primary"
ok "the invalidator reported the slot LOST on the new primary, flushed the gap, streams again"

# ---- catch-up: the verifier finds nothing stale -----------------------------------------------
touch "$WORK/stopw"
wait "$WRITER" || true
wait_replicas
wait_invalidated "$(primary "$DB" -c "SELECT pg_current_wal_lsn()")"
touch "$WORK/stop"
wait "$READER" || fail "the reader's connection was lost: $(cat "$WORK/reader.json" "$WORK/reader.log")"
tally=$(cat "$WORK/reader.json")
[ "$(echo "$tally" | json errors)" = '{}' ] || fail "error replies during the failover: $tally"
ok "one client connection read throughout, 0 error replies: $tally (writes: $(nwrites) ok, $(grep -c '^err' "$WORK/writes") failed)"
r1_replica_reads=$(metric 'cachesvc_pg_queries_total{server="r1"}')
out=$("$VERIFY" -c "$WORK/cs.ini" --json --wait 30 2>"$WORK/verify.err") || true
echo "$out" >"$WORK/verify.json"
stale=$("$PY" -c 'import json,sys; v=json.load(open(sys.argv[1])); t=v.get("total", v); print(t["stale"], t["checked"])' "$WORK/verify.json") ||
  fail "verifier: $(cat "$WORK/verify.err")"
[ "${stale%% *}" = 0 ] || fail "verifier: ${stale%% *} stale entries after catch-up: $out"
[ "${stale##* }" -gt 0 ] || fail "the verifier checked nothing: $out"
ok "after catch-up the verifier checked ${stale##* } entries: 0 stale"

# ---- caching resumes on the promoted topology ---------------------------------------------------
first=$(cli --json get fo_item 150)
[ "$(echo "$first" | json source)" != cache ] || fail "key 150 was cached before"
until_true 20 is_cached_now 150 || fail "caching did not resume: $(cli --json get fo_item 150)"
[ "$(metric 'cachesvc_pg_queries_total{server="r1"}')" = "$r1_replica_reads" ] || fail "the promoted r1 got replica reads"
ok "caching resumed without a restart (a fill from replica2, then src cache)"

# ---- the old primary comes back as a stale primary ----------------------------------------------
runpg "$CS_PG_BIN/pg_ctl" -D "$SB/primary" -l "$SB/log/primary.log" -w -t 60 start >/dev/null 2>&1 || fail "restarting the old primary"
[ "$(pg "$P_OLD" postgres -c "SELECT pg_is_in_recovery()")" = f ] || fail "the old primary came back in recovery"
# replica3 reconnects to it and receives the old timeline again
until_true 60 metric_is 'cachesvc_pg_old_timeline{server="r3"}' 1 || fail "replica3 on the old timeline not detected: $(http /metrics | grep 'server="r3"')"
ok "replica3 streams the old timeline from the returning old primary: banned for its timeline"
pg "$P_OLD" "$DB" -c "UPDATE items SET v = -999 WHERE id BETWEEN 1 AND 40" >/dev/null # stale data
stale_before=$(metric cachesvc_invalidator_stale_primary_total)
# make the invalidator reconnect: the first host of its conninfo is now the stale server
primary postgres -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND active_pid IS NOT NULL" >/dev/null
until_true 30 metric_ge cachesvc_invalidator_stale_primary_total $((stale_before + 1)) || fail "the stale old primary was not refused"
grep -q "127.0.0.1:$P_OLD is a STALE PRIMARY" "$WORK/cachesvc.log" || fail "no error naming the stale host"
grep -q "drop slot \"$SLOT\" on 127.0.0.1:$P_OLD" "$WORK/cachesvc.log" || fail "the stale server's slot not reported"
until_true 30 streaming || fail "the invalidator does not stream again (from the new primary)"
n=$(pg "$P_OLD" postgres -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'cachesvc-invalidator'")
[ "$n" = 0 ] || fail "the invalidator streams from the stale primary"
lsn=$(commit_lsn "UPDATE items SET v = v + 1000 WHERE id = 3")
wait_invalidated "$lsn"
cached fo_item 3 && fail "a change on the new primary was not invalidated after the stale primary came back"
# every key twice (a miss fills, the next read may hit): no cached answer holds its data
PYTHONPATH=$(cd "$(dirname "$0")/../.." && pwd)/protocol/python/src "$PY" - "127.0.0.1:$PORT" <<'PYEOF' || fail "the stale primary's data was served from the cache"
import sys, cachesvc
c = cachesvc.connect(sys.argv[1], timeout=10.0)
bad = []
for k in list(range(1, 41)) * 2:
    r = c.get("fo_item", [k])
    if int(r.meta.source) == 0 and r.rows and r.rows[0][1] == -999:
        bad.append(k)
if bad:
    print("cached stale-primary rows for keys", bad)
    sys.exit(1)
PYEOF
[ "$(metric 'cachesvc_pg_queries_total{server="r3"}')" = "$r3_frozen" ] || fail "replica3 (old timeline) got reads"
ok "the old primary came back on the old timeline: refused ($(metric cachesvc_invalidator_stale_primary_total)x), its slot reported, nothing of it cached"
stop_daemon || fail "daemon exit status"
