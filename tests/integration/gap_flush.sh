#!/usr/bin/env bash
# gap_flush.sh - the gap flush is durable and a new slot's horizon is its consistent point
# (issue 13 item 2; fence.c, the gap):
#  a. a gap mark <ns>:inv:gap:<slot> left in Redis while the slot exists (a crash between
#     CREATE_REPLICATION_SLOT and the flush): the next start flushes (every dependent query's
#     generation bumped, gap_flushes_total 1, the old entries are no longer served; a query
#     without invalidate_on keeps its entries) and clears the mark.
#  b. a first start says "first start" and counts slot_created; a slot dropped while the
#     daemon is stopped (Redis intact) is "LOST": slot_lost_total 1 and a flush.
#  c. writes commit while the slot is being created (a transaction held open makes
#     CREATE_REPLICATION_SLOT wait, so commits land between IDENTIFY_SYSTEM and the slot's
#     consistent point: they are never decoded); readers fill from a replica 2 s behind.
#     Once everything caught up, the verifier finds 0 stale entries.
. "$(dirname "$0")/daemon_lib.sh"

D=${CS_PG_DELAYED_REPLICA:-0}
[ "$D" != 0 ] || { echo "SKIP: needs a sandbox with a delayed replica"; exit 77; }
VERIFY=$CS_BUILD/cachesvc/cachesvc-verify
HOT=40

make_db <<SQL
CREATE TABLE hot (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO hot SELECT i, 0 FROM generate_series(0, $HOT) i;
CREATE TABLE other (id bigint PRIMARY KEY, v text);
INSERT INTO other SELECT i, 'o' || i FROM generate_series(1, 10) i;
SQL

config() { # REPLICA
  FENCE=on
  EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = false"
  write_config "$WORK/cs.ini" "$1"
  cat >>"$WORK/cs.ini" <<'INI'

[query gf_hot]
sql = SELECT id, v FROM hot WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = hot(id = $1)

[query gf_plain]
sql = SELECT id, v FROM other WHERE id = $1
params = id:int8
ttl = 1h
INI
  invalidator_section >>"$WORK/cs.ini"
}
gen() { local g; g=$(redis get "$NS:g:$1"); echo "${g:-0}"; }
slot_exists() { [ "$(primary postgres -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = 1 ]; }

# ---- b (first half): a first start ----------------------------------------------------------
config replica1
start_daemon "$WORK/cs.ini" first
until_true 30 streaming || fail "the invalidator never streamed"
grep -q 'first start' "$WORK/first.log" || fail "a first start did not say so: $(grep invalidator "$WORK/first.log")"
grep -q 'was LOST' "$WORK/first.log" && fail "a first start was reported as a lost slot"
[ "$(metric cachesvc_invalidator_slot_created_total)" = 1 ] || fail "slot_created_total = $(metric cachesvc_invalidator_slot_created_total)"
[ "$(metric cachesvc_invalidator_slot_lost_total)" = 0 ] || fail "a first start counted a lost slot"
[ "$(metric cachesvc_invalidator_redis_data_loss_total)" = 0 ] || fail "a first start counted a Redis data loss"
slot_exists || fail "no slot $SLOT"
[ "$(redis exists "$NS:inv:slot:$SLOT")" = 1 ] || fail "no slot mark $NS:inv:slot:$SLOT after streaming"
# A normal first start is news, not a problem: no WARNING or ERROR from the invalidator.
! grep -E ' (WARNING|ERROR) invalidator' "$WORK/first.log" ||
  fail "a normal first start logged invalidator warnings (above)"
ok "first start: logged \"first start\" (no warning), slot_created_total 1, no loss counted"

# ---- a: a gap mark owed while the slot exists ----------------------------------------------
fill gf_hot 1
fill gf_hot 2
fill gf_plain 1
gh=$(gen gf_hot)
gp=$(gen gf_plain)
stop_daemon || fail "the daemon did not exit cleanly"
# a crash right after CREATE_REPLICATION_SLOT, before the flush: the mark is owed
redis set "$NS:inv:gap:$SLOT" 1 >/dev/null
slot_exists || fail "the slot vanished"
start_daemon "$WORK/cs.ini" gap
until_true 30 streaming || fail "the invalidator never streamed after the restart"
[ "$(metric cachesvc_invalidator_gap_flushes_total)" = 1 ] ||
  fail "the owed gap flush was not performed: gap_flushes_total = $(metric cachesvc_invalidator_gap_flushes_total)"
grep -q 'gap flushed' "$WORK/gap.log" || fail "the gap flush was not logged"
[ "$(gen gf_hot)" -gt "$gh" ] || fail "gf_hot's generation stayed at $gh: its old entries are still current"
[ "$(gen gf_plain)" = "$gp" ] || fail "gf_plain (no invalidate_on) was bumped by the gap flush"
[ "$(redis exists "$NS:inv:gap:$SLOT")" = 0 ] || fail "the gap mark was not cleared by the flush"
[ "$(redis get "$NS:qf:gf_hot")" != "" ] || fail "the gap flush recorded no query-level fence for gf_hot"
for k in 1 2; do
  s=$(src gf_hot "$k")
  [ "$s" != cache ] || fail "gf_hot $k: an entry of the generation before the gap flush was served"
done
[ "$(src gf_plain 1)" = cache ] || fail "gf_plain 1 lost its entry (the flush is for dependent queries only)"
[ "$(metric cachesvc_invalidator_slot_created_total)" = 0 ] && [ "$(metric cachesvc_invalidator_slot_lost_total)" = 0 ] ||
  fail "the slot existed: neither created nor lost"
fill gf_hot 1
ok "a gap mark owed with the slot in place: flushed at the next start (gf_hot $gh -> $(gen gf_hot)), mark cleared, caching resumed"

# ---- b (second half): the slot is dropped while the daemon is stopped ----------------------
fill gf_hot 3
stop_daemon || fail "the daemon did not exit cleanly"
drop_slot
slot_exists && fail "could not drop the slot"
gh=$(gen gf_hot)
start_daemon "$WORK/cs.ini" lost
until_true 30 streaming || fail "the invalidator never streamed after losing its slot"
grep -q 'was LOST' "$WORK/lost.log" || fail "a lost slot was not reported: $(grep invalidator "$WORK/lost.log")"
grep -q 'first start' "$WORK/lost.log" && fail "a lost slot was reported as a first start"
[ "$(metric cachesvc_invalidator_slot_lost_total)" = 1 ] || fail "slot_lost_total = $(metric cachesvc_invalidator_slot_lost_total)"
[ "$(metric cachesvc_invalidator_slot_created_total)" = 0 ] || fail "a lost slot counted as created"
[ "$(metric cachesvc_invalidator_gap_flushes_total)" = 1 ] || fail "a lost slot was not flushed"
[ "$(gen gf_hot)" -gt "$gh" ] || fail "gf_hot was not bumped after the slot was lost"
[ "$(src gf_hot 3)" != cache ] || fail "gf_hot 3 from before the lost slot was served"
ok "slot dropped while stopped: \"was LOST\", slot_lost_total 1, dependent entries flushed"
stop_daemon || fail "the daemon did not exit cleanly"

# ---- c: commits between IDENTIFY_SYSTEM and the new slot's consistent point ----------------
drop_slot
redis flushdb >/dev/null
primary "$DB" -c "UPDATE hot SET v = 0" >/dev/null
wait_replicas
config "replica$D"
# A transaction with an xid held open until the test releases it (a row in "release"):
# CREATE_REPLICATION_SLOT waits until it ends. The daemon accepts clients once its
# invalidator streams, so it is started without waiting for it.
primary "$DB" -c "CREATE TABLE release (x int)" >/dev/null
primary "$DB" >/dev/null 2>&1 <<'SQL' &
DO $$
BEGIN
  UPDATE hot SET v = v + 1 WHERE id = 0;
  FOR i IN 1..600 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM release);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SQL
HOLDER=$!
holding() { [ "$(primary postgres -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND backend_xid IS NOT NULL AND query LIKE 'DO %'")" = 1 ]; }
until_true 10 holding || fail "the open transaction did not start"
"$CACHESVC" -c "$WORK/cs.ini" >"$WORK/create.log" 2>&1 &
DAEMON_PID=$! DAEMON_LOG=$WORK/create.log
DAEMON_PIDS+=("$DAEMON_PID")
CLEANUPS+=('primary "$DB" -c "INSERT INTO release VALUES (1)"')
until_true 10 slot_exists || fail "the invalidator did not start creating its slot"
sleep 0.5
[ "$(primary postgres -c "SELECT confirmed_flush_lsn IS NULL FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = t ] ||
  fail "the slot became consistent although a transaction was open (the test would prove nothing)"
# readers on the late replica, from the moment the daemon answers until after the writes
rm -f "$WORK/stop"
(
  while [ ! -e "$WORK/stop" ]; do
    "$BURST" -p "$PORT" -c 4 -n 10 gf_hot %i >/dev/null 2>&1 || sleep 0.05
  done
) &
READERS=$!
CLEANUPS+=('kill $READERS')
cat >"$WORK/update.sql" <<SQL
\set id random(1, $HOT)
UPDATE hot SET v = v + 1 WHERE id = :id;
SQL
# writes while the slot waits for the open transaction, which ends right after them: none
# of them will ever be decoded, and the late replica replays them after the slot is
# consistent (while the readers fill from it)
"$CS_PG_BIN/pgbench" -n -h "$CS_PG_SOCKET_DIR" -p "$CS_PG_PRIMARY_PORT" -U postgres \
  -c 2 -j 2 -T 2 -f "$WORK/update.sql" "$DB" >"$WORK/pgbench.log" 2>&1 || fail "pgbench failed: $(tail -5 "$WORK/pgbench.log")"
n=$(awk '/^number of transactions actually processed/ {print $NF}' "$WORK/pgbench.log" | cut -d/ -f1)
[ "$(primary postgres -c "SELECT confirmed_flush_lsn IS NULL FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = t ] ||
  fail "the slot became consistent before the writes ended (the test would prove nothing)"
primary "$DB" -c "INSERT INTO release VALUES (1)" >/dev/null
[ "${n:-0}" -ge 50 ] || fail "pgbench made only ${n:-0} updates"
wait "$HOLDER" || fail "the open transaction failed"
until_true 30 daemon_answers || fail "cachesvc did not come up"
until_true 30 streaming || fail "the invalidator never streamed after creating its slot"
sleep 4 # the late replica replays the writes (2 s behind) while the readers go on
touch "$WORK/stop"
wait "$READERS" 2>/dev/null || true
wait_replicas
wait_invalidated "$(primary "$DB" -c "SELECT pg_current_wal_lsn()")"
# every key once more, so an entry filled during the window would be found cached
"$BURST" -p "$PORT" -c 4 -n 10 gf_hot %i >/dev/null 2>&1 || true
for k in $(seq 1 $HOT); do cli get gf_hot "$k" >/dev/null 2>&1 || true; done
out=$("$VERIFY" -c "$WORK/cs.ini" --json --wait 30 2>"$WORK/verify.err") || true
echo "$out" >"$WORK/verify.json"
stale=$(jnum stale <"$WORK/verify.json"); checked=$(jnum checked <"$WORK/verify.json")
[ -n "$stale" ] && [ -n "$checked" ] || fail "verifier: $(cat "$WORK/verify.json" "$WORK/verify.err")"
[ "$checked" -ge 10 ] || fail "the verifier checked only $checked entries: $out"
[ "$stale" = 0 ] || fail "$stale stale entries survived writes made while the slot was created: $out"
ok "$n updates committed while the slot was created, readers on a 2 s-late replica: verifier $checked checked, 0 stale"
