#!/usr/bin/env bash
# redis_restart.sh - Redis restarts, with and without its data (issue 13 item 4), fence = on,
# with an invalidator. A private redis-server (restarting the sandbox's would disturb every
# other test), one daemon throughout:
#  b. no persistence, restarted while writes and readers run: the loss is counted, then once
#     everything caught up the verifier finds 0 stale entries, and caching resumes;
#  c. AOF appendfsync always: nothing confirmed was lost -> the entries survive (no flush, no
#     loss counted, served from the cache without a new fill), and a write made while Redis
#     was down is invalidated once it is back;
#  d. Redis comes back from an OLD snapshot (an RDB saved before an invalidation): the
#     restored stale entries are not served once the invalidator resynchronised (every
#     query bumped), the verifier finds 0 stale entries.
. "$(dirname "$0")/daemon_lib.sh"

D=${CS_PG_DELAYED_REPLICA:-0}
[ "$D" != 0 ] || { echo "SKIP: needs a sandbox with a delayed replica"; exit 77; }
VERIFY=$CS_BUILD/cachesvc/cachesvc-verify
HOT=12
make_db <<SQL
CREATE TABLE hot (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO hot SELECT i, 0 FROM generate_series(0, $HOT - 1) i;
SQL

RPORT=$(free_port)
mkdir -p "$WORK/redis"
REDIS_MODE=none
start_redis() { # uses REDIS_MODE: none | aof | rdb
  local persist
  case $REDIS_MODE in
    none) persist=(--save '' --appendonly no) ;;
    aof) persist=(--save '' --appendonly yes --appendfsync always) ;;
    rdb) persist=(--save '' --appendonly no) ;; # RDB written by an explicit SAVE only
  esac
  redis-server --port "$RPORT" --bind 127.0.0.1 "${persist[@]}" --dbfilename dump.rdb \
    --daemonize yes --pidfile "$WORK/redis/redis.pid" --logfile "$WORK/redis.log" --dir "$WORK/redis" >/dev/null
  until_true 10 redis-cli -p "$RPORT" ping >/dev/null || fail "private redis did not start"
}
stop_redis() {
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  until_true 10 bash -c "! redis-cli -p $RPORT ping >/dev/null 2>&1" || fail "redis did not stop"
}
CLEANUPS+=("redis-cli -p $RPORT shutdown nosave")
start_redis
redis() { redis-cli -p "$RPORT" "$@"; }
NS=cs # db 0 of the private Redis

FENCE=on
EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = true"
write_config "$WORK/cs.ini" replica1 "replica$D"
sed -i "s|^url = .*|url = redis://127.0.0.1:$RPORT/0|" "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query rr_hot]
sql = SELECT id, v FROM hot WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = hot(id = $1)
INI
invalidator_section >>"$WORK/cs.ini"
start_streaming "$WORK/cs.ini"

gen() { local g; g=$(redis get "$NS:g:$1"); echo "${g:-0}"; }
# fill_all: every key (ids 0..HOT-1) cached in the current generation
all_cached() {
  "$BURST" -p "$PORT" -c 3 -n $((HOT / 3)) rr_hot %i >/dev/null 2>&1 || true
  [ "$(redis --scan --pattern "$NS:e:rr_hot:$(gen rr_hot):*" | wc -l)" = $HOT ]
}
fill_all() { until_true 30 all_cached || fail "could not cache every key"; }
settle() {
  wait_replicas
  wait_invalidated "$(primary "$DB" -c "SELECT pg_current_wal_lsn()")"
}
verify() { # TAG: runs the verifier; fails on a stale entry; prints "checked"
  local out stale checked
  out=$("$VERIFY" -c "$WORK/cs.ini" --json --wait 30 2>"$WORK/verify_$1.err") || true
  echo "$out" >"$WORK/verify_$1.json"
  stale=$(jnum stale <"$WORK/verify_$1.json"); checked=$(jnum checked <"$WORK/verify_$1.json")
  [ -n "$stale" ] && [ -n "$checked" ] || fail "$1: verifier: $(cat "$WORK/verify_$1.json" "$WORK/verify_$1.err")"
  [ "$stale" = 0 ] || fail "$1: $stale stale entries: $out"
  echo "$checked"
}
resynced() { # LOSS0 CHANGES0: the invalidator counted a loss and the daemon adopted the epoch
  metric_ge cachesvc_invalidator_redis_data_loss_total $(($1 + 1)) &&
    metric_ge cachesvc_redis_epoch_changes_total $(($2 + 1)) && streaming
}

# ---- b. no persistence, restarted while writes run ------------------------------------------
fill_all
cat >"$WORK/update.sql" <<SQL
\set id random(0, $HOT - 1)
UPDATE hot SET v = v + 1 WHERE id = :id;
SQL
loss0=$(metric cachesvc_invalidator_redis_data_loss_total)
changes0=$(metric cachesvc_redis_epoch_changes_total)
rm -f "$WORK/stop"
(
  while [ ! -e "$WORK/stop" ]; do
    "$BURST" -p "$PORT" -c 2 -n 6 rr_hot %i >/dev/null 2>&1 || true
    "$BURST" -p "$PORT" -c 3 -n 4 rr_hot %i >/dev/null 2>&1 || true
  done
) &
READERS=$!
CLEANUPS+=('kill $READERS')
"$CS_PG_BIN/pgbench" -n -h "$CS_PG_SOCKET_DIR" -p "$CS_PG_PRIMARY_PORT" -U postgres \
  -c 2 -j 2 -T 6 -f "$WORK/update.sql" "$DB" >"$WORK/pgbench.log" 2>&1 &
WRITERS=$!
sleep 2
redis set sentinel 1 >/dev/null
stop_redis
sleep 1
start_redis
[ "$(redis exists sentinel)" = 0 ] || fail "the restarted Redis kept data: the test would prove nothing"
wait "$WRITERS" || fail "pgbench failed: $(tail -5 "$WORK/pgbench.log")"
sleep 2.5 # readers go on while the late replica replays the last writes
touch "$WORK/stop"
wait "$READERS" 2>/dev/null || true
until_true 30 resynced "$loss0" "$changes0" ||
  fail "b: no resynchronisation after the restart (loss $(metric cachesvc_invalidator_redis_data_loss_total), epoch changes $(metric cachesvc_redis_epoch_changes_total))"
settle
"$BURST" -p "$PORT" -c 3 -n $((HOT / 3)) rr_hot %i >/dev/null 2>&1 || true
checked=$(verify b)
for k in 1 2 3; do fill rr_hot "$k"; done
ok "b: Redis restarted without persistence during writes: loss counted, verifier $checked checked, 0 stale; caching resumed"

# ---- c. AOF always: nothing confirmed is lost ------------------------------------------------
stop_redis
REDIS_MODE=aof
rm -f "$WORK/redis/"*.rdb
start_redis
until_true 30 resynced "$(metric cachesvc_invalidator_redis_data_loss_total)" "$(metric cachesvc_redis_epoch_changes_total)" ||
  fail "c: no resynchronisation on the fresh AOF Redis"
fill_all
settle
loss0=$(metric cachesvc_invalidator_redis_data_loss_total)
flush0=$(metric cachesvc_invalidator_gap_flushes_total)
changes0=$(metric cachesvc_redis_epoch_changes_total)
g0=$(gen rr_hot)
pos0=$(redis get "$NS:inv:pos")
redis-cli -p "$RPORT" shutdown >/dev/null 2>&1 || true # AOF (fsync always) keeps everything
until_true 10 bash -c "! redis-cli -p $RPORT ping >/dev/null 2>&1" || fail "redis did not stop"
lsn=$(commit_lsn "UPDATE hot SET v = v + 1000 WHERE id = 5")
sleep 1
# what the slot says was confirmed while Redis (and so its inv:pos) was down
conf_down=$(primary postgres -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$SLOT'")
start_redis
[ "$(redis --scan --pattern "$NS:e:rr_hot:*" | wc -l)" = $HOT ] || fail "c: AOF did not restore the entries: the test would prove nothing"
until_true 30 metric_ge cachesvc_redis_epoch_changes_total $((changes0 + 1)) || fail "c: the daemon never adopted the new epoch"
wait_invalidated "$lsn"
grep -q 'kept every invalidation' "$WORK/cachesvc.log" || fail "c: the restart without loss was not recognised (inv:pos at the shutdown $pos0, slot confirmed while Redis was down $conf_down): $(grep -i 'redis' "$WORK/cachesvc.log" | tail -5)"
[ "$(metric cachesvc_invalidator_redis_data_loss_total)" = "$loss0" ] || fail "c: a restart that lost nothing counted a data loss"
[ "$(metric cachesvc_invalidator_gap_flushes_total)" = "$flush0" ] || fail "c: a restart that lost nothing flushed"
[ "$(gen rr_hot)" = "$g0" ] || fail "c: the generation moved from $g0 to $(gen rr_hot): the entries were dropped"
fills0=$(metric cachesvc_fills_total)
hit() { [ "$(src rr_hot "$1")" = cache ]; }
for k in 1 2 3 4 6 7; do until_true 10 hit "$k" || fail "c: rr_hot $k was not served from the surviving entry"; done
[ "$(metric cachesvc_fills_total)" = "$fills0" ] || fail "c: the hits needed new fills: the entries did not survive"
wait_replicas
[ "$(src rr_hot 5)" != cache ] || fail "c: rr_hot 5, written while Redis was down, was served from the cache"
want=$(primary "$DB" -c "SELECT v FROM hot WHERE id = 5")
[ "$(rows rr_hot 5)" = "[[5,$want]]" ] || fail "c: stale rr_hot 5: $(cli --json get rr_hot 5)"
ok "c: Redis restarted with AOF always: no loss counted, no flush, entries served without a fill; the write made meanwhile was invalidated"

# ---- d. Redis comes back from an old snapshot -------------------------------------------------
stop_redis
REDIS_MODE=rdb
rm -rf "$WORK/redis" && mkdir -p "$WORK/redis"
start_redis
until_true 30 resynced "$(metric cachesvc_invalidator_redis_data_loss_total)" "$(metric cachesvc_redis_epoch_changes_total)" ||
  fail "d: no resynchronisation on the fresh Redis"
fill_all
settle
redis save >/dev/null || fail "d: SAVE failed"
cp "$WORK/redis/dump.rdb" "$WORK/old.rdb"
# After the snapshot: changes invalidated (entries deleted, fences set), some refilled.
lsn=$(commit_lsn "UPDATE hot SET v = v + 100 WHERE id IN (1, 2, 3, 4)")
wait_invalidated "$lsn"
wait_replicas
fill rr_hot 1
fill rr_hot 2
settle
loss0=$(metric cachesvc_invalidator_redis_data_loss_total)
changes0=$(metric cachesvc_redis_epoch_changes_total)
stop_redis
cp "$WORK/old.rdb" "$WORK/redis/dump.rdb"
start_redis
[ "$(redis --scan --pattern "$NS:e:rr_hot:*" | wc -l)" = $HOT ] || fail "d: the old snapshot was not restored: the test would prove nothing"
until_true 30 resynced "$loss0" "$changes0" ||
  fail "d: no resynchronisation after the old snapshot came back (loss $(metric cachesvc_invalidator_redis_data_loss_total))"
grep -q 'epoch was written by another' "$WORK/cachesvc.log" || fail "d: the old snapshot was not reported as a loss of confirmed invalidations"
wait_replicas
for k in 1 2 3 4; do
  want=$(primary "$DB" -c "SELECT v FROM hot WHERE id = $k")
  [ "$(src rr_hot "$k")" != cache ] || fail "d: rr_hot $k was served from the restored snapshot"
  [ "$(rows rr_hot "$k")" = "[[$k,$want]]" ] || fail "d: stale rr_hot $k: $(cli --json get rr_hot "$k")"
done
"$BURST" -p "$PORT" -c 3 -n $((HOT / 3)) rr_hot %i >/dev/null 2>&1 || true
settle
checked=$(verify d)
[ "$checked" -ge $((HOT / 2)) ] || fail "d: the verifier checked only $checked entries"
ok "d: Redis restored from an old snapshot: loss counted, every query resynchronised, no restored stale entry served; verifier $checked checked, 0 stale"
