#!/usr/bin/env bash
# inval_cluster.sh PART [PART...] - the invalidator on a Redis Cluster (CLUSTER.md, build order
# step 4), run alone by inv_drive against the sandbox primary and a private cluster (3 masters);
# several PARTs run one after the other on that one cluster (the dispatch at the end).
#   basic: (a) every bucket synchronised: epoch copies "<run_id of its node>:<random>" with one
#          random part, fmax, horizon and position copies; evk names its node (C4);
#          (b) UPDATEs delete entries in their own buckets, on every master, raise the fences
#          there, and leave other keys alone; (c) TRUNCATE: bucket 0's bump fanned out to all
#          256 buckets (generation and query fence copies); (d) I4 across nodes: with one master
#          paused (CLIENT PAUSE), a commit touching its bucket is not confirmed until it is back;
#          (e) FLUSHALL of one master (not bucket 0's): detected as data loss, every bucket
#          restamped with a new random part, every query bumped in every bucket.
#   c1:    the migration race of review hole C1, by hand: a bucket's keys migrated but its
#          entry, an UPDATE invalidates it (the INVAL is ASKed to the importing node), then the
#          entry migrates. With the routed DEL off (--no-c1) the entry survives (the race is
#          real: negative control); with it on, it is gone.
#   i4neg: (d)'s negative control: commits not held for their per-bucket INVALs are confirmed
#          while the paused master has not acknowledged. (registered together with basic as
#          inval_cluster: basic, then i4neg on the same cluster)
#   c2:    migrations: a bucket moved whole is kept (no flush) with fmax and horizon raised to S;
#          one moved without fmax is lost; bucket 0 moved is lost (C3).
#   c3:    GEN_SET refuses a generation number issued again with a lower query fence (C3).
#   v1:    review V1: a bucket's master fails over (takeover by its replica) and the new one
#          misses an invalidation, between the SYNC's probe and its stamp (while gdb holds the
#          invalidator at sync_decide): the stamp's run_id re-check finds it and the bucket is
#          flushed. Negative control (--no-v1): stamped whole, its stale entry stays current.
#   v5:    review V5, the position copies: (1) bucket 0's copy follows every commit, the other
#          buckets' once per status interval: over 20 commits touching only bucket 0's master,
#          another master runs at most the status intervals' fan-outs (horizon and position),
#          not one per commit; negative control (--pos-every, the fan-out on every advance as
#          before): over that bound. (2) The position reported to PostgreSQL as flushed never
#          passes the lowest position copy acknowledged in every bucket: with one bucket's copy
#          made unwritable (a hash: its RAISE fails), the slot's confirmed_flush_lsn stays at or
#          below that copy while commits are confirmed, and catches up once it is writable;
#          negative control (--no-pos-min: flush follows bucket 0's copy alone): it passes it.
#   w3:    review W3: a failed position write is retried after an exponential backoff (20 ms
#          up to 2 s), not on every 10 ms tick: with the copy written on every advance made
#          unwritable (a hash), the failed GETs of its node over T seconds stay within 10 + T;
#          on the cluster (bucket 0's copy) and in single-Redis mode (inv_drive --single on a
#          private Redis: the daemon's path). Negative control (--no-pos-backoff): over it.
#   dl:    review 43 R43-1: on a cluster the tick is armed for the cluster's own deadlines:
#          at status_interval 60 s, bucket 0's position write that failed (the copy a hash) is
#          retried after its backoff once the copy is writable: it reaches the commit's LSN
#          within 10 s. dlneg: its negative control (--no-cluster-deadlines: the retry waits
#          for the next interval's tick, ~60 s after the start). (registered together as
#          inval_cluster_deadlines: dlneg, then dl on the same cluster)
#   v2:    review V2: one master stopped (SIGSTOP; cluster-require-full-coverage no, so the
#          others serve) while commits touch buckets on every master. Entries (filled by a
#          daemon without invalidator) on the healthy masters are invalidated within a bound,
#          the stream is never restarted (reconnects), the commands the stopped master did not
#          take wait in its retry queue, nothing is confirmed at or past the first commit that
#          touches it (the slot's confirmed_flush_lsn neither); once it is resumed the queue
#          lands: its entries are gone, the confirmed position catches up, cachesvc-verify
#          finds 0 stale. Negative control (--retry-max 0, no queue: the stream restarts as
#          before V2): the healthy masters' entries are not invalidated within the bound.
#          And a queue past its bound (--retry-max 1) restarts the stream as before, logged.
#   v9b:   review V9b (CLUSTER.md section 7): a migration resumed from a promoted replica of its
#          source: bucket b's slot moved whole to a new master X (replica X2); an entry filled;
#          the slot opened towards a new master Y with every key but the entry moved (C1); the
#          watch of open slots marks b in bucket 0 (both ends, their run_ids), and a commit
#          confirmed while the slot is open is not flushed until the mark is written (the
#          marks made unwritable first, then writable: flushed once marked); X2 cut off; an
#          UPDATE: INVAL ASKed to Y, its routed DEL deletes the entry on X; confirmed and
#          flushed past; the invalidator stopped, X killed, X2 promoted holding the entry, the
#          slot reopened from X2 and finished on Y. Negative control first (--no-v9b): started
#          again on that state, the invalidator finds b whole on Y, no data loss: the daemon
#          serves the stale entry, cachesvc-verify reports it. Then with the watch on: the mark
#          read back names a source the cluster marks failed: a loss (counted, logged), the
#          namespace flushed, the daemon answers the new row, cachesvc-verify 0 stale, the
#          mark retired.
#   v9ask: review V9's path as stated, NOT registered in meson.build: an entry MIGRATEd alone
#          to a 4th, slotless master T whose replica T2 is then cut off (SIGSTOP, CLIENT KILL TYPE replica), the bucket's copies
#          left on the migrating node S; an UPDATE of its row: the INVAL on S is refused (the
#          entry it DELs inside its body is not local), the commit stays unconfirmed and no
#          DEL reaches T; T killed -9, T2 promoted (TAKEOVER) holding the entry, the slot
#          finished on T2: the INVAL runs there, the entry is gone, cachesvc-verify 0 stale.
#          No negative control: what prevents the path is Redis's own script key check.
#   r18stall, r18requeue, r18drain (registered as inval_cluster_hold, _requeue, _drain), and
#          r18load, r18early (not registered): review 18 of the V9b watch (CLUSTER.md section
#          7). r18drain (R18-1b): a new master X takes bucket b's slot as its only slot, then
#          gives it back; Redis makes the emptied X a replica of the node that took it: a
#          drain, no loss (before the fix: a loss and a namespace flush), the mark cleared.
#   r51:   review 51 R51-1: a loss (a hold) is recorded in bucket 0 before the slot is let go:
#          bucket 0's master refusing DEL, the slot stays with its walsender, retried; allowed,
#          recorded, restarted, flushed. r51neg: its negative control (--loss-record-nowait).
#          r51fb: the DEL refused past the wait's bound: the stream restarts anyway, and its
#          own SYNC flushes once DEL is allowed (review 53).
#          (registered together as inval_cluster_r51)
#   r26carry (registered as inval_cluster_holdcarry): review 26 R26-2: a master refusing
#          CLUSTER NODES and the walsender terminated every 4 s (the hold bound 10 s): the
#          streaming time without a complete round carries over the restarts, so the hold
#          fires and the slot is flushed past the commit while the restarts go on; negative
#          control (--open-hold-nocarry): never flushed in 10 restarts.
#   g2:    review G2: a command stuck on its migrating slot (TRYAGAIN: the bucket's declared
#          keys split between S and T) does not hold another slot's command queued on the
#          same node S (timed out while S was paused): that one drains, the stuck commit stays
#          held, no stream restart; the slot finished, everything lands. g2neg: its
#          negative control (--oldest-only, the oldest command alone probes, as before).
#          (registered together as inval_cluster_g2: g2, then g2neg on the same cluster)
#   v9c:   review V9c: an entry MIGRATEd alone to another master; an UPDATE of its row: the
#          INVAL on the migrating node is refused ("non local key") and waits in its node's
#          retry queue (no restart, the commit held); the slot finished: the entry is gone,
#          confirmed, cachesvc-verify 0 stale. v9cneg: its negative control (--no-v9c: the
#          refusal restarts the stream, as before). (registered together as inval_cluster_v9c)
#   g5:    review G5: a master back from an old snapshot (SAVE, shut down with an INVAL queued,
#          started again from its dump): its first retry is a RAISE with the run_id check,
#          which restarts the stream before the queued commit is confirmed; the entry the
#          snapshot brought back is gone by then. g5neg: its negative control (--no-g5).
#          (registered together as inval_cluster_g5)
#   g5g2:  G5's check with G2's stuck slot: the node's oldest queued command in a slot whose
#          keys are split (TRYAGAIN): the check goes to another bucket of the node, the other
#          slot's command drains.
#   pace:  the retry queue's paced drain: a master stopped while 12 TRUNCATEs fan out; resumed,
#          its queue (over 400 commands) drains with at most 256 in flight. paceneg: its
#          negative control (--unpaced: the whole queue at once, as before). (registered
#          together as inval_cluster_pace)
#   v3:    review V3: the Redis commands in flight or owed (a bump's GEN_SETs, an INVAL's DELs)
#          are bounded: 20 TRUNCATEs replayed in one burst with the bound at 300 pause the
#          stream and never exceed 300 + one commit's 256, every bucket ends at bucket 0's
#          generation; negative control (--cmd-limit 0, no bound): over it.
. "$(dirname "$0")/daemon_lib.sh"

PART=${1:-basic}
DRIVE=$CS_BUILD/tests/integration/inv_drive
[ -x "$DRIVE" ] || fail "no $DRIVE"

# dl and dlneg: a keepalive that moves the stream's position publishes it directly, so other
# tests' WAL on the shared primary would drive the work they watch: a primary of their own
case " $* " in *" dl "* | *" dlneg "*) use_private_sandbox --replicas 1 ;; esac
users_db 40 "CREATE PUBLICATION cs_pub FOR TABLE users;"
FENCE=on
inval_config "$WORK/cs.ini" iv_user
# v1 fails a master over to its replica: one replica each there
private_redis_cluster 3 "$([ "$PART" = v1 ] && echo 1 || echo 0)"

rc() { redis-cli -c -p "${RC_PORTS[0]}" "$@"; }
port_of() { echo "${1##*:}"; }
STATS=$WORK/inv.stats
DPID=
start_drive() { # [--no-c1]
  rm -f "$STATS"
  "$DRIVE" run "${CONF:-$WORK/cs.ini}" "$RC_NODES" "$STATS" "$@" >>"$WORK/drive.log" 2>&1 &
  DPID=$!
  CLEANUPS+=("kill $DPID")
  until_true 60 drive_streaming || { tail -20 "$WORK/drive.log"; fail "the invalidator never streamed on the cluster"; }
}
stop_drive() { kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID=; }
stat() { { tr " " "\n" <"$STATS"; } 2>/dev/null | sed -n "s/^$1=//p"; }
drive_streaming() { [ "$(stat state)" = 3 ]; }
confirmed_past() { awk -v a="$(stat confirmed)" -v b="$1" 'BEGIN { exit !(a >= b) }'; }
wait_confirmed() { # LSN
  local n
  n=$(lsn_num "$1")
  until_true 60 confirmed_past "$n" || fail "the invalidator never confirmed $1 (at $(stat confirmed))"
}
# Each run of an ASan binary costs ~0.2 s of CPU and more of wall time on a loaded machine
# (LeakSanitizer's exit scan): the buckets of ids 0-299 and the 256 buckets' slots are
# computed once, by one run each.
mapfile -t BUCKET_OF < <("$DRIVE" bucket iv_user $(seq 0 299))
[ ${#BUCKET_OF[@]} = 300 ] || fail "inv_drive bucket gave ${#BUCKET_OF[@]} lines, not 300"
"$DRIVE" slots "$NS" >"$WORK/bucket_slots" || fail "inv_drive slots failed"
bucket() {
  if [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -lt 300 ]; then echo "${BUCKET_OF[$1]}"; else "$DRIVE" bucket iv_user "$1"; fi
}
# every_bucket SUFFIX: "<b> <value>" of {NS:b}:SUFFIX for every bucket (one pipe per call)
# (plain redis-cli pipes, one per master: `redis-cli -c` does not follow redirects from a pipe)
owners() { # writes "<bucket> <port of its master>" for the 256 buckets to $WORK/owners
  local o
  # "<start> <end> <port>" per range: CLUSTER SLOTS, flat: start, end, ip, port, id and the
  # (empty) metadata line of the master (no replicas here)
  o=$(redis-cli -p "${RC_PORTS[0]}" cluster slots | paste - - - - - - | awk '{ print $1, $2, $4 }')
  awk -v o="$o" 'BEGIN { n = split(o, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); s[i] = f[1]; e[i] = f[2]; pt[i] = f[3] } }
    { for (i = 1; i <= n; i++) if ($2 >= s[i] && $2 <= e[i]) print $1, pt[i] }' "$WORK/bucket_slots" >"$WORK/owners"
}
every_bucket() {
  local p
  owners
  for p in $(awk '{ print $2 }' "$WORK/owners" | sort -u); do
    awk -v p="$p" -v ns="$NS" -v k="$1" '$2 == p { print "GET {" ns ":" $1 "}:" k }' "$WORK/owners" |
      redis-cli -p "$p" | paste -d' ' <(awk -v p="$p" '$2 == p { print $1 }' "$WORK/owners") -
  done | sort -n
}
lsnhex() { primary postgres -c "SELECT lpad(upper(to_hex(('$1'::pg_lsn - '0/0')::bigint)), 16, '0')"; }
# the master of bucket B as of the last owners or every_bucket call (no slot moves in basic)
node_port_of_bucket() { awk -v b="$1" '$1 == b { print $2 }' "$WORK/owners"; }
run_id_of() { redis-cli -p "$1" info server | sed -n 's/^run_id:\([0-9a-f]*\).*/\1/p'; }

case_basic() {
  start_drive
  local out b v sfx p bad n lsn gen g0 q0 ids=() ports=() id m0 lsn2 stop
  owners
  # (a)
  out=$(every_bucket epoch)
  sfx=$(echo "$out" | awk '{ sub(/^[^:]*/, "", $2); print $2 }' | sort -u)
  [ "$(echo "$sfx" | wc -l)" = 1 ] && [ -n "$sfx" ] || fail "(a) the buckets' epochs differ or are missing: $(echo "$sfx" | head -3)"
  bad=0
  while read -r b v; do
    p=$(node_port_of_bucket "$b")
    [ "${v%%:*}" = "$(run_id_of "$p")" ] || bad=$((bad + 1))
  done < <(echo "$out" | head -16) # the run_id check on 16 buckets (redis-cli is slow here)
  [ "$bad" = 0 ] || fail "(a) $bad epoch copies do not name their node's run_id"
  [ "$(every_bucket fmax | awk '$2 == "" { n++ } END { print n + 0 }')" = 0 ] || fail "(a) a bucket without fmax"
  until_true 30 all_buckets_have horizon || fail "(a) a bucket without horizon"
  until_true 30 all_buckets_have evk || fail "(a) a bucket without evk"
  for b in 0 1 2 3; do
    p=$(node_port_of_bucket "$b")
    v=$(rc get "{$NS:$b}:evk")
    [[ $v =~ ^$(run_id_of "$p"):[0-9]+:[0-9]+$ ]] || fail "(a) evk of bucket $b is \"$v\", not \"<run_id of $p>:<evicted>:<commands>\" (C4)"
  done
  ok "(a) 256 buckets synchronised: one random part, run_ids of their nodes, fmax, horizon, evk with the node's run_id"

  # (b)
  for id in $(seq 1 12); do
    b=$(bucket "$id")
    gen=$(rc get "{$NS:$b}:g:iv_user")
    rc set "{$NS:$b}:e:iv_user:${gen:-0}:$id" stale >/dev/null
    ports+=("$(node_port_of_bucket "$b")")
  done
  b=$(bucket 30)
  rc set "{$NS:$b}:e:iv_user:$(rc get "{$NS:$b}:g:iv_user" | sed 's/^$/0/'):30" keep >/dev/null
  [ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" = 3 ] || fail "(b) keys 1-12 are not spread over the 3 masters: ${ports[*]}"
  lsn=$(commit_lsn "UPDATE users SET name = name || '!' WHERE id <= 12")
  wait_confirmed "$lsn"
  for id in $(seq 1 12); do
    b=$(bucket "$id")
    gen=$(rc get "{$NS:$b}:g:iv_user")
    [ "$(rc exists "{$NS:$b}:e:iv_user:${gen:-0}:$id")" = 0 ] || fail "(b) entry $id (bucket $b) survived its UPDATE"
    v=$(rc get "{$NS:$b}:f:iv_user:$id")
    [[ "$v" > "$(lsnhex 0/0)" ]] || fail "(b) no fence for $id in bucket $b"
  done
  b=$(bucket 30)
  [ "$(rc get "{$NS:$b}:e:iv_user:$(rc get "{$NS:$b}:g:iv_user" | sed 's/^$/0/'):30")" = keep ] || fail "(b) entry 30 was deleted, nothing changed it"
  ok "(b) UPDATE: 12 entries deleted in their own buckets on all 3 masters, fences raised, key 30 kept"

  # (c)
  g0=$(rc get "{$NS:0}:g:iv_user")
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  g0=$(rc get "{$NS:0}:g:iv_user")
  q0=$(rc get "{$NS:0}:qf:iv_user")
  n=$(every_bucket g:iv_user | awk -v g="$g0" '$2 != g { n++ } END { print n + 0 }')
  [ "$n" = 0 ] || fail "(c) $n buckets do not hold bucket 0's generation $g0 after TRUNCATE"
  n=$(every_bucket qf:iv_user | awk -v q="$q0" '$2 < q { n++ } END { print n + 0 }')
  [ "$n" = 0 ] || fail "(c) $n buckets have a query fence below bucket 0's $q0"
  n=$(every_bucket fmax | awk -v q="$q0" '$2 < q { n++ } END { print n + 0 }')
  [ "$n" = 0 ] || fail "(c) $n buckets have fmax below $q0"
  primary "$DB" -c "INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i" >/dev/null
  ok "(c) TRUNCATE: generation $g0 and query fence $q0 in all 256 buckets"

  # (d) I4 across nodes: pause the master of key 3's bucket (not bucket 0's)
  id=3
  m0=$(node_port_of_bucket 0)
  for id in $(seq 1 12); do [ "$(node_port_of_bucket "$(bucket "$id")")" != "$m0" ] && break; done
  b=$(bucket "$id")
  p=$(node_port_of_bucket "$b")
  redis-cli -p "$p" client pause 4000 write >/dev/null
  stop=$((SECONDS + 3))
  lsn=$(commit_lsn "UPDATE users SET name = name || '?' WHERE id = $id")
  n=$(lsn_num "$lsn")
  while [ $SECONDS -lt $stop ]; do
    ! confirmed_past "$n" || fail "(d) confirmed $(stat confirmed) >= $n while the master of bucket $b was paused"
    sleep 0.2
  done
  wait_confirmed "$lsn"
  ok "(d) I4 across nodes: nothing confirmed past a commit while one of its nodes was paused; confirmed after"

  # (e) FLUSHALL of a master that does not hold bucket 0
  v=$(stat data_loss)
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$m0" ] && break; done
  g0=$(rc get "{$NS:0}:g:iv_user")
  redis-cli -p "$p" flushall >/dev/null
  until_true 60 data_loss_above "$v" || fail "(e) FLUSHALL of $p not detected (data_loss $(stat data_loss))"
  until_true 60 drive_streaming || fail "(e) not streaming again after the resync"
  out=$(every_bucket epoch)
  n=$(echo "$out" | awk '{ sub(/^[^:]*/, "", $2); print $2 }' | sort -u)
  [ "$(echo "$n" | wc -l)" = 1 ] && [ "$n" != "$sfx" ] || fail "(e) the epochs were not restamped with one new random part: $(echo "$n" | head -3)"
  n=$(every_bucket g:iv_user | awk -v g="$g0" '$2 <= g { n++ } END { print n + 0 }')
  [ "$n" = 0 ] || fail "(e) $n buckets kept a generation at or below $g0 after the loss"
  until_true 30 all_buckets_have horizon || fail "(e) a bucket without horizon after the resync"
  ok "(e) FLUSHALL of master $p: data loss detected, every bucket restamped and bumped past $g0"
}
data_loss_above() { [ "$(stat data_loss)" -gt "$1" ]; }
all_buckets_have() { [ "$(every_bucket "$1" | awk '$2 == "" { n++ } END { print n + 0 }')" = 0 ]; }

# c1_race ID DRIVE-FLAGS...: the race on key ID's bucket; prints the entry's EXISTS at the end
c1_race() {
  local id=$1 b slot from to from_id to_id gen e keys lsn p
  shift
  start_drive "$@" >&2
  b=$(bucket "$id")
  slot=$(rc cluster keyslot "{$NS:$b}")
  from=$(rc_master_of "$slot")
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$from" ] && to=$p && break; done
  # the bucket's fence and generation copies exist (an UPDATE, and the TRUNCATE before)
  lsn=$(commit_lsn "UPDATE users SET name = name || '.' WHERE id = $id")
  wait_confirmed "$lsn" >&2
  gen=$(rc get "{$NS:$b}:g:iv_user")
  e="{$NS:$b}:e:iv_user:${gen:-0}:$id"
  rc set "$e" stale >/dev/null
  from_id=$(redis-cli -p "$from" cluster myid)
  to_id=$(redis-cli -p "$to" cluster myid)
  redis-cli -p "$to" cluster setslot "$slot" importing "$from_id" >/dev/null
  redis-cli -p "$from" cluster setslot "$slot" migrating "$to_id" >/dev/null
  mapfile -t keys < <(redis-cli -p "$from" cluster getkeysinslot "$slot" 1000 | grep -v '^$' | grep -vxF "$e")
  redis-cli -p "$from" migrate 127.0.0.1 "$to" "" 0 5000 keys "${keys[@]}" >/dev/null
  [ "$(redis-cli -p "$from" cluster countkeysinslot "$slot")" = 1 ] || fail "c1: expected only the entry left on $from"
  lsn=$(commit_lsn "UPDATE users SET name = name || '.' WHERE id = $id")
  wait_confirmed "$lsn" >&2
  redis-cli -p "$from" migrate 127.0.0.1 "$to" "" 0 5000 keys "$e" >/dev/null
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$slot" node "$to_id" >/dev/null; done
  rc exists "$e"
  stop_drive
}

case_c1() {
  # a one-time TRUNCATE writes every bucket's generation copy (the INVAL's declared keys then
  # all exist, and it runs on the importing node after ASK)
  start_drive
  local lsn ida idb
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  primary "$DB" -c "INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i" >/dev/null
  stop_drive
  for ida in $(seq 1 40); do [ "$(bucket "$ida")" != 0 ] && break; done
  for idb in $(seq 2 40); do [ "$(bucket "$idb")" != 0 ] && [ "$(bucket "$idb")" != "$(bucket "$ida")" ] && break; done
  [ "$(c1_race "$ida" --no-c1)" = 1 ] || fail "c1 negative control: with the routed DEL off the entry should have survived the migration"
  ok "c1: negative control: routed DEL off, the stale entry migrated in after its INVAL ran on the importing node"
  [ "$(c1_race "$idb")" = 0 ] || fail "c1: the stale entry survived the migration race"
  ok "c1: the INVAL ASKed to the importing node is followed by a routed DEL: entry gone"
}

# C3 (the invalidator's side): bucket 0 "forgot" a bump: bucket 5 holds generation g0+1 with a
# query fence above anything bucket 0 will give it. The next TRUNCATE's bump issues g0+1 again
# on bucket 0; its GEN_SET to bucket 5 must be refused (an EPOCH error: the invalidator
# restarts, replays the commit and bumps again), so that no bucket ends up sharing generation
# g0+1 between two bumps.
case_c3() {
  start_drive
  local lsn g0 b=5 f n g
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  g0=$(rc get "{$NS:0}:g:iv_user")
  rc set "{$NS:$b}:g:iv_user" $((g0 + 1)) >/dev/null
  rc set "{$NS:$b}:qf:iv_user" 7FFFFFFFFFFFFFFF >/dev/null
  f=$(stat redis_failures)
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  [ "$(stat redis_failures)" -gt "$f" ] || fail "c3: GEN_SET accepted generation $((g0 + 1)) issued again with a lower query fence"
  g=$(rc get "{$NS:0}:g:iv_user")
  [ "$g" -gt $((g0 + 1)) ] || fail "c3: bucket 0 ended at generation $g, the reused number"
  n=$(every_bucket g:iv_user | awk -v g="$g" '$2 != g { n++ } END { print n + 0 }')
  [ "$n" = 0 ] || fail "c3: $n buckets do not hold generation $g"
  grep -q "issued again with a lower query fence" "$WORK/drive.log" || fail "c3: no refusal logged"
  ok "c3: generation $((g0 + 1)) reused with a lower query fence refused; the replayed bump gave $g to every bucket"
}

# I4's negative control: with commits not held for their per-bucket INVALs (--no-hold), a
# commit touching only a paused master's bucket is confirmed while that master is paused.
case_i4neg() {
  start_drive --no-hold
  local id b p m0 lsn n stop
  owners
  m0=$(node_port_of_bucket 0)
  for id in $(seq 1 12); do [ "$(node_port_of_bucket "$(bucket "$id")")" != "$m0" ] && break; done
  b=$(bucket "$id")
  p=$(node_port_of_bucket "$b")
  redis-cli -p "$p" client pause 10000 write >/dev/null
  stop=$((SECONDS + 9))
  lsn=$(commit_lsn "UPDATE users SET name = name || '?' WHERE id = $id")
  n=$(lsn_num "$lsn")
  until confirmed_past "$n" || [ $SECONDS -ge $stop ]; do sleep 0.2; done
  confirmed_past "$n" || fail "i4neg: with the holds off, $lsn was still not confirmed while the master of bucket $b was paused"
  ok "i4neg: negative control: holds off, a commit confirmed while its node was paused"
}

# move_bucket B: migrates bucket B's slot (every key) to another master, by hand.
move_bucket() {
  local slot from to p from_id to_id keys
  slot=$(rc cluster keyslot "{$NS:$1}")
  from=$(node_port_of_bucket "$1")
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$from" ] && to=$p && break; done
  from_id=$(redis-cli -p "$from" cluster myid)
  to_id=$(redis-cli -p "$to" cluster myid)
  redis-cli -p "$to" cluster setslot "$slot" importing "$from_id" >/dev/null
  redis-cli -p "$from" cluster setslot "$slot" migrating "$to_id" >/dev/null
  mapfile -t keys < <(redis-cli -p "$from" cluster getkeysinslot "$slot" 10000 | grep -v '^$')
  [ ${#keys[@]} = 0 ] || redis-cli -p "$from" migrate 127.0.0.1 "$to" "" 0 5000 keys "${keys[@]}" >/dev/null
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$slot" node "$to_id" >/dev/null; done
  owners
  [ "$(node_port_of_bucket "$1")" = "$to" ] || fail "bucket $1 did not move to $to"
}
restamped() { # B PORT: bucket B's epoch copy names PORT's run_id, and the stream is back
  [[ "$(rc get "{$NS:$1}:epoch")" == "$(run_id_of "$2"):"* ]] && drive_streaming
}

# C2 and C3 through migrations: (1) bucket B moved whole to another master: its epoch copy is
# foreign there, the invalidator resyncs and finds it kept (no flush: data_loss unchanged, same
# random part), and raises its fmax and horizon to S (C2: at or past an LSN taken before);
# (2) a bucket moved without its fmax copy is lost: flush; (3) bucket 0 moved: always lost (C3).
case_c2() {
  local b1 b2 l dl sfx f n
  # the negative control first: with the raise off, a kept bucket's fmax stays where it was
  start_drive --no-c2
  owners
  for n in $(seq 200 255); do [ "$(node_port_of_bucket "$n")" != "$(node_port_of_bucket 0)" ] && break; done
  l=$(commit_lsn "CREATE TABLE c2_neg (x int); INSERT INTO c2_neg VALUES (1)") # WAL past S0, no key
  move_bucket "$n"
  until_true 60 restamped "$n" "$(node_port_of_bucket "$n")" || fail "c2: bucket $n not restamped after its migration"
  f=$(rc get "{$NS:$n}:fmax")
  [[ "$f" < "$(lsnhex "$l")" ]] || fail "c2 negative control: with the raise off, kept bucket $n's fmax $f still rose past $l"
  ok "c2: negative control: raise off, kept bucket $n's fmax stays at $f, below $l"
  stop_drive
  start_drive
  owners
  for b1 in $(seq 1 255); do [ "$(node_port_of_bucket "$b1")" != "$(node_port_of_bucket 0)" ] && break; done
  for b2 in $(seq $((b1 + 1)) 255); do [ "$(node_port_of_bucket "$b2")" != "$(node_port_of_bucket 0)" ] && break; done
  l=$(commit_lsn "CREATE TABLE c2_pad (x int); INSERT INTO c2_pad VALUES (1)") # WAL past S0, no key
  f=$(rc get "{$NS:$b1}:fmax")
  [[ "$f" < "$(lsnhex "$l")" ]] || fail "c2: bucket $b1's fmax $f is already past $l"
  dl=$(stat data_loss)
  sfx=$(rc get "{$NS:0}:epoch")
  sfx=${sfx#*:}
  move_bucket "$b1"
  until_true 60 restamped "$b1" "$(node_port_of_bucket "$b1")" || fail "c2: bucket $b1 not restamped after its migration"
  [ "$(stat data_loss)" = "$dl" ] || fail "c2: a migration of bucket $b1 was taken for a data loss"
  [ "$(rc get "{$NS:0}:epoch" | cut -d: -f2)" = "$sfx" ] || fail "c2: the random part changed: flushed"
  f=$(rc get "{$NS:$b1}:fmax")
  [[ ! "$f" < "$(lsnhex "$l")" ]] || fail "c2: kept bucket $b1's fmax $f not raised past $l (C2)"
  f=$(rc get "{$NS:$b1}:horizon")
  [[ ! "$f" < "$(lsnhex "$l")" ]] || fail "c2: kept bucket $b1's horizon $f not raised past $l (C2)"
  ok "c2: bucket $b1 migrated: kept (no flush), its fmax and horizon raised to S"
  rc del "{$NS:$b2}:fmax" >/dev/null
  move_bucket "$b2"
  until_true 60 data_loss_above "$dl" || fail "c2: bucket $b2 moved without fmax not taken for lost"
  until_true 60 drive_streaming || fail "c2: not streaming after the flush"
  ok "c2: bucket $b2 migrated without its fmax: lost, flushed"
  dl=$(stat data_loss)
  move_bucket 0
  until_true 60 data_loss_above "$dl" || fail "c3: bucket 0 migrated was not taken for lost"
  ok "c3: bucket 0 on another node's run: lost, flushed"
}

# V1: the SYNC's probe and stamp are two scripts; what the probe saw must still hold when the
# stamp runs. A key of a bucket B not on bucket 0's node is invalidated; then, with the
# invalidator stopped at sync_decide (every bucket probed, none stamped), B's master fails over
# for real (CLUSTER FAILOVER TAKEOVER on its replica: a new run_id, the same epoch copy) and the
# new master is made to look like a replica that missed the invalidation: the entry back, its
# fence gone, an old position copy. Only the stamp's run_id re-check can see it. RUN: "on" or
# "off" (--no-v1).
v1_run() {
  local mode=$1 id b p m0 rp gen gen2 e
  start_drive
  m0=$(rc_master_of "$(rc cluster keyslot "{$NS:0}")")
  for id in $(seq 1 40); do
    b=$(bucket "$id")
    p=$(rc_master_of "$(rc cluster keyslot "{$NS:$b}")")
    [ "$b" != 0 ] && [ "$p" != "$m0" ] && break
  done
  replica_of_p() { rp=$(redis-cli -p "$p" role | sed -n 4p); [ -n "$rp" ]; } # its replica's port
  until_true 30 replica_of_p || fail "v1 ($mode): master $p has no replica attached"
  gen=$(rc get "{$NS:$b}:g:iv_user")
  e="{$NS:$b}:e:iv_user:${gen:-0}:$id"
  rc set "$e" stale >/dev/null
  local l
  l=$(commit_lsn "UPDATE users SET name = name || '!' WHERE id = $id")
  wait_confirmed "$l"
  [ "$(rc exists "$e")" = 0 ] || fail "v1 ($mode): the UPDATE did not delete $e"
  # and confirmed to PostgreSQL too: the restart below must not replay the UPDATE (its
  # replay would delete the entry the failover brings back, whatever the re-check does)
  v1_flushed() { [ "$(primary postgres -c "SELECT confirmed_flush_lsn >= '$l' FROM pg_replication_slots WHERE slot_name = '$SLOT'")" = t ]; }
  until_true 30 v1_flushed || fail "v1 ($mode): the slot's confirmed_flush_lsn never reached $l"
  stop_drive
  cat >"$WORK/v1-manip.sh" <<EOM
redis-cli -p $rp cluster failover takeover >/dev/null
for i in \$(seq 100); do [ "\$(redis-cli -p $rp role | head -1)" = master ] && break; sleep 0.1; done
redis-cli -p $rp set '$e' stale >/dev/null
redis-cli -p $rp del '{$NS:$b}:f:iv_user:$id' >/dev/null
redis-cli -p $rp set '{$NS:$b}:inv:pos' 0000000000000001 >/dev/null
[ "\$(redis-cli -p $rp get '$e')" = stale ] && touch '$WORK/v1-manipulated'
EOM
  cat >"$WORK/v1.gdb" <<EOG
set pagination off
handle SIGPIPE nostop noprint pass
handle SIGTERM nostop noprint pass
break sync_decide
commands 1
  shell bash $WORK/v1-manip.sh
  delete 1
  continue
end
run
EOG
  rm -f "$STATS" "$WORK/v1-manipulated"
  : >"$WORK/drive.log"
  local flag=()
  [ "$mode" = off ] && flag=(--no-v1)
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 timeout -s KILL 120 gdb -q -batch -x "$WORK/v1.gdb" \
    --args "$DRIVE" run "$WORK/cs.ini" "$RC_NODES" "$STATS" "${flag[@]}" >>"$WORK/drive.log" 2>&1 &
  DPID=$!
  CLEANUPS+=("pkill -P $DPID; kill $DPID")
  until_true 90 drive_streaming || { tail -30 "$WORK/drive.log"; fail "v1 ($mode): the invalidator never streamed under gdb"; }
  [ -e "$WORK/v1-manipulated" ] || fail "v1 ($mode): the failover and loss at sync_decide did not happen"
  gen2=$(rc get "{$NS:$b}:g:iv_user")
  V1_STALE=0
  [ "${gen2:-0}" = "${gen:-0}" ] && [ "$(rc get "$e")" = stale ] && V1_STALE=1
  # the stamp's EPOCH answer is a Redis failure of the resync (the restart's log line is rate
  # limited); the negative control's run has none
  V1_CAUGHT=0
  [ "$(stat redis_failures)" -ge 1 ] && V1_CAUGHT=1
  V1_DESC="bucket $b, master $p failed over to $rp: generation ${gen:-0} -> ${gen2:-0}, data_loss $(stat data_loss), redis_failures $(stat redis_failures)"
  # the invalidator (gdb's inferior) is stopped, not gdb: gdb 13 killed while it traces has
  # died of SIGSEGV (a CI run, exit 139); gdb -batch ends with its inferior. gdb's exit status
  # is not the test's
  local g i
  for g in $(pgrep -P "$DPID"); do
    for i in $(pgrep -P "$g"); do kill "$i" 2>/dev/null || :; done
  done
  wait "$DPID" 2>/dev/null || : # (timeout -s KILL 120 bounds it)
  DPID=
}
case_v1() {
  command -v gdb >/dev/null || fail "v1 needs gdb (scripts/lib.sh installs it)"
  v1_run off
  [ "$V1_STALE" = 1 ] && [ "$V1_CAUGHT" = 0 ] || fail "v1 negative control: with the re-check off, the lost invalidation was still found ($V1_DESC): the test proves nothing"
  ok "v1: negative control: re-check off, the bucket is stamped whole and its stale entry stays current ($V1_DESC)"
  v1_run on
  [ "$V1_STALE" = 0 ] || fail "v1: a loss between probe and stamp went unseen: stale entry current ($V1_DESC)"
  [ "$V1_CAUGHT" = 1 ] || fail "v1: the bucket was flushed, but not by the stamp's re-check ($V1_DESC)"
  ok "v1: a loss between the SYNC's probe and its stamp is found by the stamp: flushed ($V1_DESC)"
}

# V5 (1): evalsha calls on a master M other than bucket 0's over 20 commits that touch only
# keys of bucket 0's master (so M sees only the periodic fan-outs), each confirmed before the
# next. Sets V5_EV (the calls), V5_BOUND (two fan-outs, horizon and position, to M's buckets
# per status interval begun in the window, plus one of each) and V5_DESC.
v5_count() {
  local m0 mp nb ids=() id i t0 ev
  CONF=$WORK/cs5.ini
  sed 's/^status_interval = .*/status_interval = 20s/' "$WORK/cs.ini" >"$CONF"
  start_drive "$@"
  CONF=
  owners
  m0=$(node_port_of_bucket 0)
  for mp in "${RC_PORTS[@]}"; do [ "$mp" != "$m0" ] && break; done
  nb=$(awk -v p="$mp" '$2 == p { n++ } END { print n + 0 }' "$WORK/owners")
  for id in $(seq 1 40); do [ "$(node_port_of_bucket "$(bucket "$id")")" = "$m0" ] && ids+=("$id"); done
  [ ${#ids[@]} -gt 0 ] || fail "v5: no key of 1..40 on bucket 0's master"
  until_true 60 all_buckets_have inv:pos || fail "v5: a bucket without its position copy"
  redis-cli -p "$mp" config resetstat >/dev/null
  t0=$SECONDS
  for i in $(seq 0 9); do
    id=${ids[$((i % ${#ids[@]}))]}
    wait_confirmed "$(commit_lsn "UPDATE users SET name = name || '+' WHERE id = $id")"
  done
  ev=$(redis-cli -p "$mp" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p')
  V5_EV=${ev:-0}
  V5_BOUND=$((((SECONDS - t0) / 20 + 2) * 2 * nb))
  V5_DESC="master $mp ($nb buckets): $V5_EV scripts over 10 commits in $((SECONDS - t0)) s, bound $V5_BOUND"
  stop_drive
}
# V5 (2): bucket B's position copy (B not on bucket 0's master) replaced by a hash atomically
# (its last value P read in the same script; its RAISE fails from then on), then commits; the
# slot's confirmed_flush_lsn must stay at or below P. MODE on: watched for 3 s while the
# commits are confirmed, then the copy is made writable again and the flush must catch up.
# MODE off (--no-pos-min): the flush must pass P.
slot_flush() { primary postgres -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$SLOT'"; }
flush_above() { [[ "$(lsnhex "$(slot_flush)")" > "$1" ]]; }
flush_at_least() { [[ ! "$(lsnhex "$(slot_flush)")" < "$1" ]]; }
v5_flush() {
  local mode=$1 m0 b p lsn c stop id
  shift
  start_drive "$@"
  owners
  m0=$(node_port_of_bucket 0)
  for b in $(seq 1 255); do [ "$(node_port_of_bucket "$b")" != "$m0" ] && break; done
  until_true 60 all_buckets_have inv:pos || fail "v5 ($mode): a bucket without its position copy"
  p=$(rc eval "local v = redis.call('GET', KEYS[1]); redis.call('DEL', KEYS[1]); redis.call('HSET', KEYS[1], 'was', v); return v" 1 "{$NS:$b}:inv:pos")
  [[ $p =~ ^[0-9A-F]{16}$ ]] || fail "v5 ($mode): bucket $b's position copy was \"$p\""
  for id in 1 2 3; do lsn=$(commit_lsn "UPDATE users SET name = name || '~' WHERE id = $id"); done
  wait_confirmed "$lsn"
  c=$(lsnhex "$lsn")
  if [ "$mode" = off ]; then
    until_true 30 flush_above "$p" || fail "v5 negative control: with --no-pos-min the slot's flush $(slot_flush) never passed bucket $b's copy $p"
    V5_FLUSH_DESC="bucket $b's copy $p, slot flushed to $(slot_flush), confirmed $lsn"
    rc del "{$NS:$b}:inv:pos" >/dev/null
  else
    stop=$((SECONDS + 3))
    while [ $SECONDS -lt $stop ]; do
      ! flush_above "$p" || fail "v5: the slot's flush $(slot_flush) passed bucket $b's acknowledged copy $p (confirmed $lsn)"
      sleep 0.2
    done
    V5_FLUSH_DESC="bucket $b's copy $p, slot flush $(slot_flush), confirmed $lsn"
    rc del "{$NS:$b}:inv:pos" >/dev/null
    until_true 30 flush_at_least "$c" || fail "v5: the slot's flush $(slot_flush) never reached $lsn once bucket $b's copy was writable again"
  fi
  stop_drive
}
case_v5() {
  v5_count --pos-every
  [ "$V5_EV" -gt "$V5_BOUND" ] || fail "v5 negative control: with the position on every advance, still within the bound ($V5_DESC): the test proves nothing"
  ok "v5: negative control: every advance to every bucket: $V5_DESC"
  v5_count
  [ "$V5_EV" -le "$V5_BOUND" ] || fail "v5: buckets 1..255 got the position more often than once per status interval ($V5_DESC)"
  ok "v5: buckets 1..255 once per status interval: $V5_DESC"
  v5_flush off --no-pos-min
  ok "v5: negative control: flush follows bucket 0's copy alone and passes a bucket's copy ($V5_FLUSH_DESC)"
  v5_flush on
  ok "v5: the slot's flush stayed at or below the lowest acknowledged copy, and caught up after ($V5_FLUSH_DESC)"
}

# W3: KEY's node PORT; the position copy KEY made unwritable while the position moves; sets
# W3_N (failed GETs there, each a retry of the position write), W3_BOUND (10 + the window's
# seconds: ~7 doublings from 20 ms to 2 s, then one per 2 s) and W3_DESC.
w3_count() { # PORT KEY
  local port=$1 key=$2 t0 v
  until_true 60 key_exists "$port" "$key" || fail "w3: no position copy $key"
  v=$(redis-cli -p "$port" eval "local v = redis.call('GET', KEYS[1]); redis.call('DEL', KEYS[1]); redis.call('HSET', KEYS[1], 'was', v); return v" 1 "$key")
  [[ $v =~ ^[0-9A-F]{16}$ ]] || fail "w3: $key was \"$v\""
  t0=$SECONDS
  redis-cli -p "$port" config resetstat >/dev/null
  wait_confirmed "$(commit_lsn "UPDATE users SET name = name || '^' WHERE id = 5")"
  sleep 4
  W3_N=$(redis-cli -p "$port" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_get:.*failed_calls=\([0-9]*\).*/\1/p')
  W3_N=${W3_N:-0}
  W3_BOUND=$((10 + SECONDS - t0))
  W3_DESC="$W3_N failed writes of $key in $((SECONDS - t0)) s, bound $W3_BOUND"
  redis-cli -p "$port" del "$key" >/dev/null
  until_true 30 key_exists "$port" "$key" || fail "w3: the position copy $key was not written again once writable"
}
key_exists() { [ "$(redis-cli -p "$1" exists "$2")" = 1 ]; }
w3_run() { # MODE (cluster | single) FLAGS...
  local mode=$1
  shift
  if [ "$mode" = single ]; then
    RC_NODES_SAVED=$RC_NODES
    RC_NODES=127.0.0.1:$RPORT
    start_drive --single "$@"
    RC_NODES=$RC_NODES_SAVED
    w3_count "$RPORT" "$NS:inv:pos"
  else
    start_drive "$@"
    owners
    w3_count "$(node_port_of_bucket 0)" "{$NS:0}:inv:pos"
  fi
  stop_drive
}
case_w3() {
  local mode
  private_redis
  for mode in cluster single; do
    w3_run "$mode" --no-pos-backoff
    [ "$W3_N" -gt "$W3_BOUND" ] || fail "w3 negative control ($mode): retried on every tick, still within the bound ($W3_DESC): the test proves nothing"
    ok "w3: negative control ($mode): a failed position write retried on every tick: $W3_DESC"
    w3_run "$mode"
    [ "$W3_N" -ge 1 ] && [ "$W3_N" -le "$W3_BOUND" ] || fail "w3 ($mode): the failed position write was not retried with a backoff ($W3_DESC)"
    ok "w3: a failed position write retried with an exponential backoff ($mode): $W3_DESC"
  done
}

# Review 43 R43-1: the tick armed for the cluster's own deadlines, here bucket 0's position copy
# retried after its backoff. status_interval 60 s; the copy made unwritable (a hash) before a
# commit, so its write fails; once it has failed, and the standby snapshot PostgreSQL logs after
# the commit (bgwriter, within 15 s) has moved the stream's position (a keepalive past the
# confirmed position publishes it directly, here still onto the hash), and past the stream's
# STABLE_US deadline (30 s after the start: its tick publishes too), the copy is made writable
# again (DEL) 32 s after the start: it must reach the commit's LSN within DL_BOUND s (the
# backoff is at most 2 s), far below the interval. Without the deadlines
# (--no-cluster-deadlines) the retry waits for the next tick the stream's own deadlines arm (the
# horizon's, ~60 s after the start). A round is inconclusive (run again, at most 3 times) if
# the stream's position moved in the window anyway or the window reached past 54 s after the
# start (PostgreSQL's own WAL: the parts run on a primary of their own, see the setup).
DL_BOUND=10
dl_at() { # PORT KEY HEX: the copy at HEX or past (16 upper-case hex digits: a string compare)
  local v
  v=$(redis-cli -p "$1" get "$2" 2>/dev/null)
  [[ $v =~ ^[0-9A-F]{16}$ ]] && [[ ! $v < $3 ]]
}
dl_failed() { # PORT: a failed GET there (the position script's, on the hash)
  local n
  n=$(redis-cli -p "$1" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_get:.*failed_calls=\([0-9]*\).*/\1/p')
  [ "${n:-0}" -ge 1 ]
}
now_ms() { date +%s%3N; }
dl_round() { # FLAGS...: sets DL_RES (reached | missed | inconclusive) and DL_DESC
  local port key t0 lsn hex c0 c1 w0 w1 v
  sed 's/^status_interval = .*/status_interval = 60s/' "$WORK/cs.ini" >"$WORK/cs-dl.ini"
  grep -q '^status_interval = 60s' "$WORK/cs-dl.ini" || fail "dl: no status_interval in $WORK/cs.ini"
  CONF=$WORK/cs-dl.ini start_drive "$@"
  t0=$(now_ms)
  owners
  port=$(node_port_of_bucket 0)
  key="{$NS:0}:inv:pos"
  until_true 20 key_exists "$port" "$key" || fail "dl: no position copy $key"
  redis-cli -p "$port" config resetstat >/dev/null
  v=$(redis-cli -p "$port" eval "local v = redis.call('GET', KEYS[1]); redis.call('DEL', KEYS[1]); redis.call('HSET', KEYS[1], 'was', v); return v" 1 "$key")
  [[ $v =~ ^[0-9A-F]{16}$ ]] || fail "dl: $key was \"$v\""
  lsn=$(commit_lsn "UPDATE users SET name = name || '~' WHERE id = 7")
  hex=$(lsnhex "$lsn")
  wait_confirmed "$lsn"
  until_true 20 dl_failed "$port" || fail "dl: the write of $key on the hash never failed"
  # the standby snapshot after the commit (if none in 25 s: the round may be inconclusive)
  until_true 25 confirmed_past $(($(lsn_num "$lsn") + 1)) || true
  v=$((t0 + 32000 - $(now_ms)))
  [ "$v" -le 0 ] || sleep "$((v / 1000)).$(printf %03d $((v % 1000)))"
  c0=$(stat confirmed)
  redis-cli -p "$port" del "$key" >/dev/null
  w0=$(now_ms)
  if until_true "$DL_BOUND" dl_at "$port" "$key" "$hex"; then DL_RES=reached; else DL_RES=missed; fi
  w1=$(now_ms)
  c1=$(stat confirmed)
  DL_DESC="$key $DL_RES $hex in $(((w1 - w0) / 1000)).$(((w1 - w0) % 1000 / 100)) s after writable (bound $DL_BOUND s), window $(((w0 - t0) / 1000))..$(((w1 - t0) / 1000)) s after the start"
  if [ "$DL_RES" = missed ]; then
    # the work is only delayed: the horizon's tick (~60 s after the start) writes it
    until_true 90 dl_at "$port" "$key" "$hex" || fail "dl: $key never reached $hex ($DL_DESC)"
    DL_DESC="$DL_DESC; reached $(( ($(now_ms) - t0) / 1000 )) s after the start (position $c0 -> $(stat confirmed))"
  elif [ "$c1" != "$c0" ] || [ $((w1 - t0)) -gt 54000 ]; then
    DL_RES=inconclusive
    DL_DESC="$DL_DESC (position $c0 -> $c1)"
  fi
  stop_drive
}
case_dl() { # NEG (true: the negative control, --no-cluster-deadlines)
  local neg=$1 i
  for i in 1 2 3; do
    if $neg; then dl_round --no-cluster-deadlines; else dl_round; fi
    [ "$DL_RES" = inconclusive ] || break
    echo "# dl: round $i inconclusive: $DL_DESC"
  done
  if $neg; then
    [ "$DL_RES" = missed ] || fail "dl negative control: without the cluster's deadlines, still $DL_DESC: the test proves nothing"
    ok "dl: negative control (--no-cluster-deadlines): $DL_DESC"
  else
    [ "$DL_RES" = reached ] || fail "dl: bucket 0's position copy was not retried after its backoff: $DL_DESC"
    ok "dl: bucket 0's failed position write retried at its deadline: $DL_DESC"
  fi
}

# V3: the Redis commands in flight are bounded. The driver stopped, 20 TRUNCATEs committed
# (each a bump on bucket 0 that owes 255 GEN_SETs), the driver started again: the slot
# replays them in one burst. Sets V3_MAX (the most commands in flight or owed), V3_PAUSES.
# With no bound (--cmd-limit 0) it waits only until the bound is passed: the unbounded burst
# may time commands out on a loaded machine, and every restart replays it.
v3_burst() {
  local lsn i
  stop_drive
  for i in $(seq 1 20); do echo "TRUNCATE users;"; done | primary "$DB" >/dev/null
  lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  start_drive "$@"
  if [ "$2" = 0 ]; then
    until_true 60 v3_past "$V3_BOUND" || fail "v3 negative control: never more than $(stat cmds_max) commands in flight"
  else
    wait_confirmed "$lsn"
  fi
  V3_MAX=$(stat cmds_max)
  V3_PAUSES=$(stat pauses)
}
v3_past() { [ "$(stat cmds_max)" -gt "$1" ]; }
case_v3() {
  local g0 n bound=$((300 + 256))
  V3_BOUND=$bound
  # a loaded machine: commands wait in Redis's queue behind a burst of 256-command fan-outs
  CONF=$WORK/cs3.ini
  sed 's/^\[redis\]$/[redis]\ntimeout = 5s/' "$WORK/cs.ini" >"$CONF"
  start_drive
  v3_burst --cmd-limit 0
  [ "$V3_MAX" -gt "$bound" ] || fail "v3 negative control: with no bound, at most $V3_MAX commands in flight over 20 replayed TRUNCATEs (bound $bound): the test proves nothing"
  ok "v3: negative control: no bound, $V3_MAX commands in flight or owed over 20 replayed TRUNCATEs"
  v3_burst --cmd-limit 300
  [ "$V3_MAX" -le "$bound" ] || fail "v3: $V3_MAX commands in flight or owed with the bound at 300 (at most 300 + one commit's 256)"
  [ "$V3_PAUSES" -ge 1 ] || fail "v3: the stream never paused on the commands in flight"
  g0=$(rc get "{$NS:0}:g:iv_user")
  n=$(every_bucket g:iv_user | awk -v g="$g0" '$2 != g { n++ } END { print n + 0 }')
  [ "$n" = 0 ] || fail "v3: $n buckets do not hold bucket 0's generation $g0 after the paused replay"
  ok "v3: bound 300: at most $V3_MAX commands in flight or owed, $V3_PAUSES pauses; every bucket at generation $g0"
  stop_drive
  CONF=
}

# V2. v2_round FLAGS...: fills V2_A, V2_H and 3 controls through the daemon, stops master V2_P, commits an
# UPDATE of its keys (V2_A: the held commit), waits until the invalidator noticed (a command
# queued, or a restart), then an UPDATE of V2_A and V2_H (every master); sets V2_GONE
# (the healthy masters' entries all gone within 20 s: true/false), checks (queue on) that
# nothing was confirmed at or past the held commit meanwhile, resumes V2_P.
v2_gen() { local g; g=$(redis-cli -p "$(node_port_of_bucket "$1")" get "{$NS:$1}:g:iv_user"); echo "${g:-0}"; }
v2_entry_exists() { # ID
  local b
  b=$(bucket "$1")
  [ "$(redis-cli -p "$(node_port_of_bucket "$b")" exists "{$NS:$b}:e:iv_user:$(v2_gen "$b"):$1")" = 1 ]
}
v2_healthy_gone() {
  local id
  for id in "${V2_H[@]}"; do ! v2_entry_exists "$id" || return 1; done
}
v2_stopped_gone() {
  local id
  for id in "${V2_A[@]}"; do ! v2_entry_exists "$id" || return 1; done
}
v2_slot_flush() { lsn_num "$(primary postgres -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '$SLOT'")"; }
v2_failure_seen() { [ "$(stat rq_queued)" -ge 1 ] || [ "$(stat reconnects)" -gt "$1" ]; }
v2_round() {
  local id r0 lsn1 n1 lsn2 stop neg=${1:-}
  start_drive "$@"
  for id in "${V2_A[@]}" "${V2_H[@]}" 31 32 33; do fill iv_user "$id"; done
  r0=$(stat reconnects)
  kill -STOP "$V2_PID"
  lsn1=$(commit_lsn "UPDATE users SET name = name || 'a' WHERE id IN ($(IFS=,; echo "${V2_A[*]}"))")
  n1=$(lsn_num "$lsn1")
  # the invalidator found the master gone (queued a command, or restarted without a queue):
  # commits already sent to the healthy masters before that prove nothing
  until_true 30 v2_failure_seen "$r0" || fail "v2: the invalidator never noticed that $V2_P stopped ($(cat "$STATS"))"
  lsn2=$(commit_lsn "UPDATE users SET name = name || 'b' WHERE id IN ($(IFS=,; echo "${V2_A[*]},${V2_H[*]}"))")
  stop=$((SECONDS + 20))
  V2_GONE=false
  while [ $SECONDS -lt $stop ]; do
    if [ -z "$neg" ]; then
      ! confirmed_past "$n1" || fail "v2: confirmed $(stat confirmed) >= $n1 (the held commit) while master $V2_P was stopped"
    fi
    if v2_healthy_gone; then V2_GONE=true; break; fi
    sleep 0.3
  done
  if [ -z "$neg" ] && [ "$V2_GONE" = true ]; then
    sleep 3 # later commits (and status intervals) pass; still held
    ! confirmed_past "$n1" || fail "v2: confirmed $(stat confirmed) >= $n1 (the held commit) while master $V2_P was stopped"
    [ "$(v2_slot_flush)" -lt "$n1" ] || fail "v2: the slot's confirmed_flush_lsn passed the held commit $lsn1"
    [ "$(stat reconnects)" = "$r0" ] || fail "v2: the stream restarted ($r0 -> $(stat reconnects) connections) while master $V2_P was stopped: $(tail -5 "$WORK/drive.log")"
    [ "$(stat rq_queued)" -ge 1 ] && [ "$(stat rq_depth)" -ge 1 ] || fail "v2: nothing in the retry queue ($(cat "$STATS"))"
    V2_DESC="queued $(stat rq_queued), depth $(stat rq_depth), retries $(stat rq_retries), confirmed $(stat confirmed) < held $n1"
  fi
  kill -CONT "$V2_PID"
  wait_confirmed "$lsn2"
  V2_R0=$r0
}
case_v2() {
  local p i m0 id vout vrc=0 vs vc
  owners
  m0=$(node_port_of_bucket 0)
  # the stopped master: neither bucket 0's (the position and bumps flow) nor the one rc() asks
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$m0" ] && [ "$p" != "${RC_PORTS[0]}" ] && break; done
  V2_P=$p
  for i in "${!RC_PORTS[@]}"; do [ "${RC_PORTS[$i]}" = "$p" ] && V2_PID=$(cat "$WORK/rcluster/node$((i + 1))/redis.pid"); done
  CLEANUPS=("kill -CONT $V2_PID" "${CLEANUPS[@]}")
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" config set cluster-require-full-coverage no >/dev/null; done
  V2_A=() V2_H=()
  for id in $(seq 1 30); do # 3 keys on the stopped master, 6 on the others (both of them)
    if [ "$(node_port_of_bucket "$(bucket "$id")")" = "$V2_P" ]; then
      [ ${#V2_A[@]} -ge 3 ] || V2_A+=("$id")
    else
      [ ${#V2_H[@]} -ge 6 ] || V2_H+=("$id")
    fi
  done
  [ ${#V2_A[@]} = 3 ] && [ ${#V2_H[@]} = 6 ] || fail "v2: keys 1-30 are not spread: ${V2_A[*]} / ${V2_H[*]}"
  [ "$(for id in "${V2_H[@]}"; do node_port_of_bucket "$(bucket "$id")"; done | sort -u | wc -l)" = 2 ] ||
    fail "v2: keys ${V2_H[*]} are not on both healthy masters"
  # a daemon without invalidator fills real entries (cachesvc-verify reads them)
  DCONF=$WORK/d.ini
  FENCE=on EXTRA_REDIS="namespace = $NS" write_config "$DCONF" replica1
  sed -i "s|^url = .*|url = redis://127.0.0.1\ncluster = on\nnodes = $RC_NODES|" "$DCONF"
  user_query iv_user >>"$DCONF"
  # the negative control first: no queue, the old behaviour
  start_drive
  start_daemon "$DCONF"
  stop_drive
  v2_round --retry-max 0
  [ "$V2_GONE" = false ] || fail "v2 negative control (--retry-max 0): the healthy masters' entries were invalidated while $V2_P was stopped: the test proves nothing"
  [ "$(stat reconnects)" -gt "$V2_R0" ] || fail "v2 negative control: the stream never restarted"
  ok "v2: negative control (no retry queue): with master $V2_P stopped the stream restarts ($V2_R0 -> $(stat reconnects) connections) and the entries of ids ${V2_H[*]} on the healthy masters stay for 20 s"
  stop_drive
  v2_round
  [ "$V2_GONE" = true ] || fail "v2: the healthy masters' entries were not invalidated within 20 s while $V2_P was stopped ($(cat "$STATS"))"
  ok "v2: master $V2_P stopped: entries of ids ${V2_H[*]} on the healthy masters invalidated, the stream never restarted, $V2_DESC"
  until_true 30 v2_stopped_gone || fail "v2: entries of ids ${V2_A[*]} on $V2_P survived its return"
  [ "$(stat reconnects)" = "$V2_R0" ] || fail "v2: the stream restarted when $V2_P came back"
  [ "$(stat rq_depth)" = 0 ] && [ "$(stat rq_overflows)" = 0 ] || fail "v2: retry queue not drained ($(cat "$STATS"))"
  vout=$("$CS_BUILD/cachesvc/cachesvc-verify" -c "$DCONF" --json 2>"$WORK/verify.err") || vrc=$?
  vs=$("$PY3" -c 'import json,sys; v=json.load(sys.stdin); t=v.get("total", v); print(t["stale"])' <<<"$vout")
  vc=$("$PY3" -c 'import json,sys; v=json.load(sys.stdin); t=v.get("total", v); print(t["checked"])' <<<"$vout")
  [ "$vrc" = 0 ] && [ "$vs" = 0 ] && [ "$vc" -ge 3 ] || fail "v2: cachesvc-verify: exit $vrc, checked $vc, stale $vs: $vout $(cat "$WORK/verify.err")"
  ok "v2: $V2_P resumed: its queued commands landed (entries of ids ${V2_A[*]} gone), confirmed past every commit, the stream never restarted; cachesvc-verify: $vc checked, 0 stale"
  stop_drive
  # past the queue's bound (1 command): the stream restarts, as before V2 (logged, counted)
  local r0 lsn
  start_drive --retry-max 1
  r0=$(stat reconnects)
  kill -STOP "$V2_PID"
  lsn=$(commit_lsn "UPDATE users SET name = name || 'c' WHERE id <= 40")
  until_true 30 v2_overflowed "$r0" || fail "v2: a retry queue past its bound did not restart the stream ($(cat "$STATS"))"
  grep -q "retry queue of redis node .* is full" "$WORK/drive.log" || fail "v2: the overflow was not logged"
  kill -CONT "$V2_PID"
  wait_confirmed "$lsn"
  ok "v2: a retry queue past its bound (1 command) restarts the stream as before V2: $(stat rq_overflows) overflows, logged; confirmed once $V2_P is back"
  stop_drive
}
v2_overflowed() { [ "$(stat rq_overflows)" -ge 1 ] && [ "$(stat reconnects)" -gt "$1" ]; }

# V9. v9_node: starts one more cluster node (no slot) and has the cluster meet it; sets
# V9_PORT and V9_PID.
v9_node() {
  local p bus d
  p=$(free_port)
  bus=$(free_port)
  d=$WORK/rcluster/v9node$1
  mkdir -p "$d"
  CLEANUPS+=("redis-cli -p $p shutdown nosave")
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
    --cluster-port "$bus" --cluster-config-file "$d/nodes.conf" \
    --cluster-node-timeout "${CS_RC_NODE_TIMEOUT:-1000}" --daemonize yes \
    --pidfile "$d/redis.pid" --logfile "$WORK/rcluster-v9-$1.log" --dir "$d" >/dev/null
  until_true 30 redis_port_pong "$p" || fail "v9: node $p did not start"
  until_true 10 test -s "$d/redis.pid" || fail "v9: node $p wrote no pid file"
  redis-cli -p "${RC_PORTS[0]}" cluster meet 127.0.0.1 "$p" "$bus" >/dev/null
  V9_PORT=$p
  V9_PID=$(cat "$d/redis.pid")
}
v9_knows() { redis-cli -p "$1" cluster nodes | grep -q "^$2 "; }
v9_link_up() { redis-cli -p "$1" info replication | grep -q '^master_link_status:up'; }
v9_master() { [ "$(redis-cli -p "$1" role 2>/dev/null | head -1)" = master ]; }
v9_takeover() { v9_master "$1" || { redis-cli -p "$1" cluster failover takeover >/dev/null 2>&1; sleep 1; v9_master "$1"; }; }
# EXISTS of KEY on PORT after ASKING (a slot the node imports)
# v9_owns PORT ID SLOT: PORT's view lists node ID as a master serving SLOT
v9_owns() {
  redis-cli -p "$1" cluster nodes | awk -v id="$2" -v s="$3" '$1 == id && $3 ~ /master/ {
    for (i = 9; i <= NF; i++) { n = split($i, r, "-"); if ($i !~ /^\[/ && s >= r[1] && s <= r[n]) f = 1 } }
    END { exit !f }'
}
v9_exists_asking() { printf 'ASKING\nEXISTS %s\n' "$2" | redis-cli -p "$1" | tail -1; }
v9_verify() { # sets V9_VRC V9_STALE V9_CHECKED
  local vout
  V9_VRC=0
  vout=$("$CS_BUILD/cachesvc/cachesvc-verify" -c "$DCONF" --json 2>"$WORK/verify.err") || V9_VRC=$?
  V9_STALE=$("$PY3" -c 'import json,sys; v=json.load(sys.stdin); t=v.get("total", v); print(t["stale"])' <<<"$vout")
  V9_CHECKED=$("$PY3" -c 'import json,sys; v=json.load(sys.stdin); t=v.get("total", v); print(t["checked"])' <<<"$vout")
}
# v9_keyed_entry [FLAGS]: the invalidator started (start_drive FLAGS), every bucket's copies
# written (a TRUNCATE), 40 rows, and one of them (id, its bucket b in slot, not bucket 0's
# slot0) updated so that its key's fence exists; both commits confirmed
v9_keyed_entry() {
  start_drive "$@"
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  primary "$DB" -c "INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i" >/dev/null
  slot0=$(rc cluster keyslot "{$NS:0}")
  for id in $(seq 1 40); do
    b=$(bucket "$id")
    [ "$b" != 0 ] && [ "$(rc cluster keyslot "{$NS:$b}")" != "$slot0" ] && break
  done
  slot=$(rc cluster keyslot "{$NS:$b}")
  lsn=$(commit_lsn "UPDATE users SET name = name || '.' WHERE id = $id")
  wait_confirmed "$lsn"
}
# v9_fill_entry: a daemon without invalidator (cluster mode, fences on) fills iv_user $id
# and stops; sets e, the entry's key in bucket $b
v9_fill_entry() {
  DCONF=$WORK/d.ini
  FENCE=on EXTRA_REDIS="namespace = $NS" write_config "$DCONF" replica1
  sed -i "s|^url = .*|url = redis://127.0.0.1\ncluster = on\nnodes = $RC_NODES|" "$DCONF"
  user_query iv_user >>"$DCONF"
  start_daemon "$DCONF"
  fill iv_user "$id"
  stop_daemon
  gen=$(rc get "{$NS:$b}:g:iv_user")
  e="{$NS:$b}:e:iv_user:${gen:-0}:$id"
}
case_v9ask() {
  local flags=() t tpid t2 t2pid tid t2id s sid id b slot slot0 lsn n gen e keys p dl0
  v9_node 1
  t=$V9_PORT tpid=$V9_PID
  v9_node 2
  t2=$V9_PORT t2pid=$V9_PID
  CLEANUPS=("kill -CONT $t2pid" "${CLEANUPS[@]}")
  tid=$(redis-cli -p "$t" cluster myid)
  t2id=$(redis-cli -p "$t2" cluster myid)
  until_true 30 v9_knows "$t2" "$tid" || fail "v9: $t2 never learnt of $t"
  redis-cli -p "$t2" cluster replicate "$tid" >/dev/null || fail "v9: CLUSTER REPLICATE failed"
  until_true 30 v9_link_up "$t2" || fail "v9: $t2 never replicated $t"
  until_true 30 rc_ok "$t" || fail "v9: $t never reached cluster_state:ok"
  # a TRUNCATE writes every bucket's generation copy, an UPDATE the key's fence: the INVAL's
  # declared keys all exist on the migrating node (only the entry moves): it runs there
  v9_keyed_entry "${flags[@]}"
  # a daemon without invalidator fills the entry (cachesvc-verify reads it)
  v9_fill_entry
  [ "$(rc exists "$e")" = 1 ] || fail "v9: no entry $e after the fill"
  s=$(rc_master_of "$slot")
  sid=$(redis-cli -p "$s" cluster myid)
  redis-cli -p "$t" cluster setslot "$slot" importing "$sid" >/dev/null
  redis-cli -p "$s" cluster setslot "$slot" migrating "$tid" >/dev/null
  redis-cli -p "$s" migrate 127.0.0.1 "$t" "" 0 5000 keys "$e" >/dev/null
  [ "$(redis-cli -p "$t" wait 1 5000)" = 1 ] || fail "v9: $t2 did not get the migrated entry"
  [ "$(v9_exists_asking "$t" "$e")" = 1 ] || fail "v9: the entry did not migrate to $t"
  kill -STOP "$t2pid"
  redis-cli -p "$t" client kill type replica >/dev/null
  lsn=$(commit_lsn "UPDATE users SET name = name || 'x' WHERE id = $id")
  n=$(lsn_num "$lsn")
  # the INVAL runs where the bucket's epoch copy is (the migrating node) and DELs the
  # entry inside its body: a key of a migrating slot that the node no longer holds, which
  # Redis refuses ("non local key"); the commit stays unconfirmed, the DEL is never sent
  until_true 30 grep -q "non local key" "$WORK/drive.log" || fail "v9ask: the INVAL on the migrating node was not refused: $(tail -5 "$WORK/drive.log")"
  sleep 2
  ! confirmed_past "$n" || fail "v9ask: confirmed $(stat confirmed) >= $n while the INVAL was refused"
  [ "$(v9_exists_asking "$t" "$e")" = 1 ] || fail "v9ask: the entry on $t was deleted: the DEL was sent after all"
  ok "v9ask: the INVAL on migrating node $s refused (non local key: its entry is on $t), $lsn not confirmed, no DEL ASKed to $t"
  dl0=$(stat data_loss)
  kill -9 "$tpid"
  kill -CONT "$t2pid"
  until_true 60 v9_takeover "$t2" || fail "v9ask: $t2 was not promoted"
  # the migration finished on the promoted node: the slot's other keys follow, then SETSLOT NODE
  redis-cli -p "$t2" cluster setslot "$slot" importing "$sid" >/dev/null
  [ "$(v9_exists_asking "$t2" "$e")" = 1 ] || fail "v9ask: the promoted $t2 does not hold $e: the test proves nothing"
  redis-cli -p "$s" cluster setslot "$slot" migrating "$t2id" >/dev/null
  mapfile -t keys < <(redis-cli -p "$s" cluster getkeysinslot "$slot" 10000 | grep -v '^$')
  [ ${#keys[@]} = 0 ] || redis-cli -p "$s" migrate 127.0.0.1 "$t2" "" 0 5000 keys "${keys[@]}" >/dev/null
  for p in "${RC_PORTS[@]}" "$t2"; do redis-cli -p "$p" cluster setslot "$slot" node "$t2id" >/dev/null; done
  ok "v9ask: $t killed, $t2 promoted holding $e (not invalidated yet), slot $slot finished on $t2"
  wait_confirmed "$lsn"
  [ "$(redis-cli -p "$t2" exists "$e")" = 0 ] || fail "v9ask: $e survived on $t2"
  v9_verify
  [ "$V9_VRC" = 0 ] && [ "$V9_STALE" = 0 ] || fail "v9ask: cachesvc-verify: exit $V9_VRC, checked $V9_CHECKED, stale $V9_STALE: $(cat "$WORK/verify.err")"
  ok "v9ask: once the slot is $t2's the INVAL runs there: $e gone, $lsn confirmed (data loss $dl0 -> $(stat data_loss)); cachesvc-verify: $V9_CHECKED checked, 0 stale"
  stop_drive
}

# V9b (CLUSTER.md section 7): the migrating node X, holding no other bucket, deletes the
# stale entry (the routed DEL of an INVAL ASKed to the importing node Y: C1's configuration);
# the bucket's copies are on Y and go on there; X fails over to a replica X2 that missed the
# DEL while no invalidator runs, and the migration is resumed from X2 (its entry MIGRATEd to Y):
# the entry is on Y, and the bucket is whole there. The watch of open slots (inv_open.c) marked
# the bucket before the failover; the negative control (--no-v9b) and the fix then start on
# that same state, in that order (the fix flushes).
v9b_state() { # the entry's value on Y, as the daemon answers it: "<source> <name>"
  echo "$(src iv_user "$id") $(rows iv_user "$id" | sed -n 's/.*"\(user [^"]*\)".*/\1/p')"
}
v9b_resume() { # (case_v9b's locals) the slot opened from X2 to Y, the entry MIGRATEd; the
  # replies of the last try in V9B_LAST
  [ "$(v9_exists_asking "$y" "$e")" = 1 ] && return 0
  V9B_LAST="importing on $y: $(redis-cli -p "$y" cluster setslot "$slot" importing "$x2id" 2>&1);"
  V9B_LAST+=" migrating on $x2: $(redis-cli -p "$x2" cluster setslot "$slot" migrating "$yid" 2>&1);"
  V9B_LAST+=" migrate: $(redis-cli -p "$x2" migrate 127.0.0.1 "$y" "" 0 5000 keys "$e" 2>&1);"
  V9B_LAST+=" exists on $x2: $(redis-cli -p "$x2" exists "$e" 2>&1), ttl $(redis-cli -p "$x2" pttl "$e" 2>&1)"
  [ "$(v9_exists_asking "$y" "$e")" = 1 ]
}
v9b_own_x2() { # (case_v9b's locals) every live master lists X2 as the slot's owner
  local p r=0
  for p in "${RC_PORTS[@]}" "$y"; do
    v9_master "$p" || continue
    v9_owns "$p" "$x2id" "$slot" && continue
    redis-cli -p "$p" cluster setslot "$slot" node "$x2id" >/dev/null 2>&1
    v9_owns "$p" "$x2id" "$slot" || r=1
  done
  return $r
}
v9b_views() { # PORT...: each node's view of the nodes, for a failure message
  local p
  for p in "$@"; do printf '\n-- cluster nodes seen by %s:\n%s' "$p" "$(redis-cli -p "$p" cluster nodes 2>&1)"; done
}
case_v9b() {
  local x xpid x2 x2pid y xid x2id yid id id2 b slot slot0 o oid lsn n gen e keys p mark dl0 st
  v9_node 1
  x=$V9_PORT xpid=$V9_PID
  v9_node 2
  x2=$V9_PORT x2pid=$V9_PID
  v9_node 3
  y=$V9_PORT
  CLEANUPS=("kill -CONT $x2pid" "${CLEANUPS[@]}")
  xid=$(redis-cli -p "$x" cluster myid)
  x2id=$(redis-cli -p "$x2" cluster myid)
  yid=$(redis-cli -p "$y" cluster myid)
  until_true 30 v9_knows "$x2" "$xid" || fail "v9b: $x2 never learnt of $x"
  redis-cli -p "$x2" cluster replicate "$xid" >/dev/null || fail "v9b: CLUSTER REPLICATE failed"
  until_true 30 v9_link_up "$x2" || fail "v9b: $x2 never replicated $x"
  until_true 30 rc_ok "$y" || fail "v9b: $y never reached cluster_state:ok"
  v9_keyed_entry
  # the bucket's slot moved whole to X, which then holds no other bucket
  o=$(rc_master_of "$slot")
  oid=$(redis-cli -p "$o" cluster myid)
  redis-cli -p "$x" cluster setslot "$slot" importing "$oid" >/dev/null
  redis-cli -p "$o" cluster setslot "$slot" migrating "$xid" >/dev/null
  mapfile -t keys < <(redis-cli -p "$o" cluster getkeysinslot "$slot" 10000 | grep -v '^$')
  redis-cli -p "$o" migrate 127.0.0.1 "$x" "" 0 5000 keys "${keys[@]}" >/dev/null
  for p in "${RC_PORTS[@]}" "$x" "$x2" "$y"; do redis-cli -p "$p" cluster setslot "$slot" node "$xid" >/dev/null; done
  until_true 60 restamped "$b" "$x" || fail "v9b: bucket $b not restamped on $x"
  v9_fill_entry
  [ "$(redis-cli -p "$x" exists "$e")" = 1 ] || fail "v9b: no entry $e on $x after the fill"
  # the ordering: the marks made unwritable (a string: HSET fails WRONGTYPE) before the slot
  # opens; a commit confirmed while the slot is open and unmarked is not flushed
  rc set "{$NS:0}:inv:open:$SLOT" blocked >/dev/null
  # C1's configuration: every key of the slot but the entry moved to Y
  redis-cli -p "$y" cluster setslot "$slot" importing "$xid" >/dev/null
  redis-cli -p "$x" cluster setslot "$slot" migrating "$yid" >/dev/null
  mapfile -t keys < <(redis-cli -p "$x" cluster getkeysinslot "$slot" 10000 | grep -v '^$' | grep -vxF "$e")
  redis-cli -p "$x" migrate 127.0.0.1 "$y" "" 0 5000 keys "${keys[@]}" >/dev/null
  [ "$(redis-cli -p "$x" cluster countkeysinslot "$slot")" = 1 ] || fail "v9b: expected only the entry left on $x"
  [ "$(redis-cli -p "$x" wait 1 5000)" = 1 ] || fail "v9b: $x2 did not follow the migration"
  for id2 in $(seq 1 40); do
    [ "$(rc cluster keyslot "{$NS:$(bucket "$id2")}")" != "$slot" ] && break
  done
  lsn=$(commit_lsn "UPDATE users SET name = name || '.' WHERE id = $id2")
  wait_confirmed "$lsn"
  sleep 2
  ! flush_at_least "$(lsnhex "$lsn")" || fail "v9b: $lsn flushed while slot $slot was open and its bucket unmarked"
  ok "v9b: slot $slot open, its mark unwritable: $lsn confirmed ($(stat confirmed)) but not flushed ($(slot_flush))"
  # the watch marks the bucket in bucket 0, naming both ends and their runs; then the flush
  # passes
  rc del "{$NS:0}:inv:open:$SLOT" >/dev/null
  mark=
  until_true 30 v9b_marked || fail "v9b: bucket $b never marked (mark: '$mark', stats: $(cat "$STATS"))"
  until_true 30 flush_at_least "$(lsnhex "$lsn")" || fail "v9b: $lsn never flushed once bucket $b was marked"
  ok "v9b: slot $slot open from $x to $y: bucket $b marked \"$mark\", then $lsn flushed"
  kill -STOP "$x2pid"
  redis-cli -p "$x" client kill type replica >/dev/null
  lsn=$(commit_lsn "UPDATE users SET name = name || 'x' WHERE id = $id")
  wait_confirmed "$lsn"
  until_true 60 flush_at_least "$(lsnhex "$lsn")" || fail "v9b: the slot's confirmed_flush_lsn never passed $lsn"
  [ "$(redis-cli -p "$x" cluster countkeysinslot "$slot")" = 0 ] || fail "v9b: the routed DEL did not delete $e on $x"
  ok "v9b: the INVAL ran on $y (ASK), its routed DEL deleted $e on $x (unreplicated), $lsn confirmed, the slot flushed past it"
  stop_drive
  kill -9 "$xpid"
  kill -CONT "$x2pid"
  until_true 60 v9_takeover "$x2" || fail "v9b: $x2 was not promoted"
  [ "$(redis-cli -p "$x2" exists "$e")" = 1 ] || fail "v9b: the promoted $x2 does not hold $e: the test proves nothing"
  # an importing node ignores news of its slot's owner: Y is told to forget the migration,
  # learns that X2 owns the slot, and imports it again from X2
  redis-cli -p "$y" cluster setslot "$slot" stable >/dev/null
  # Y must list X2 as the slot's owner before it imports from X2: while importing, Y ignores
  # X2's claim of the slot, keeps X (failed) as its owner and its cluster state "fail", and
  # answers CLUSTERDOWN even for the entry MIGRATEd to it (a CI failure: Y still "ok" from
  # before X's FAIL reached it). Gossip alone may never tell it: X2, resumed just before its
  # takeover, can take X's own config epoch (Redis bumps its current epoch, which it had not
  # yet learnt, not the largest epoch it knows), and an equal epoch never wins a slot from a
  # dead node (a CI failure: X and X2 both at epoch 4). So the slot is assigned to X2 on every
  # node, as redis-cli --cluster fix would.
  until_true 60 v9b_own_x2 || fail "v9b: $y never listed $x2 as the owner of slot $slot$(v9b_views "$y")"
  for p in "$x2" "$y"; do until_true 60 rc_ok "$p" || fail "v9b: $p never reached cluster_state:ok"; done
  # the migration resumed from the promoted replica (as redis-cli --cluster fix would); again
  # until the entry is on Y: Y refuses to import from X2 (and the MIGRATE) until gossip told
  # it of X2's promotion, which cluster_state:ok does not wait for
  V9B_LAST=
  until_true 60 v9b_resume || fail "v9b: $e did not reach $y (last try: $V9B_LAST)$(v9b_views "$x2" "$y")"
  for p in "${RC_PORTS[@]}" "$x2" "$y"; do redis-cli -p "$p" cluster setslot "$slot" node "$yid" >/dev/null; done
  [ "$(redis-cli -p "$y" exists "$e")" = 1 ] || fail "v9b: $e not on $y once the slot is its own"
  ok "v9b: $x killed, $x2 promoted holding $e, the migration resumed from it and finished on $y"
  # the daemon (no invalidator) that filled it, to read the entry as a client would
  start_daemon "$DCONF"
  # negative control: the watch off, the same state: bucket b whole on Y, no loss, stale
  start_drive --no-v9b
  until_true 60 restamped "$b" "$y" || fail "v9b: bucket $b not stamped on $y"
  sleep 2
  v9_verify
  st=$(v9b_state)
  [ "$(stat data_loss)" = 0 ] && [ "$(redis-cli -p "$y" exists "$e")" = 1 ] && [ "$V9_STALE" -ge 1 ] &&
    [[ "$st" == "cache "*"." ]] ||
    fail "v9b: negative control (--no-v9b): the stale entry was not reproduced (data_loss $(stat data_loss), verify: exit $V9_VRC, $V9_STALE stale of $V9_CHECKED, the daemon answers \"$st\")"
  ok "v9b: negative control (--no-v9b): bucket $b whole on $y, no data loss found, $e stale: the daemon answers \"$st\", cachesvc-verify $V9_STALE stale of $V9_CHECKED"
  stop_drive
  # the fix: the mark read back, its source failed: a loss, the namespace flushed
  [ "$(rc hget "{$NS:0}:inv:open:$SLOT" "$b")" = "$mark" ] || fail "v9b: the mark did not survive: $(rc hget "{$NS:0}:inv:open:$SLOT" "$b")"
  dl0=0 # a new process
  start_drive
  until_true 30 v9b_lost || fail "v9b: no loss found (stats: $(cat "$STATS")): $(tail -5 "$WORK/drive.log")"
  grep -q "bucket $b's hash slot $slot was being migrated (from ${xid:0:12} to ${yid:0:12}) and its source is marked failed by the cluster: .*review V9b" "$WORK/drive.log" ||
    fail "v9b: the loss was not logged with its reason (the source failed): $(grep -a "review V9b" "$WORK/drive.log" | tail -1)"
  grep -q "Redis LOST DATA" "$WORK/drive.log" || fail "v9b: the flush was not logged"
  until_true 30 v9b_fresh || fail "v9b: the daemon still answers \"$(v9b_state)\" for $id"
  v9_verify
  [ "$V9_VRC" = 0 ] && [ "$V9_STALE" = 0 ] && [ "$V9_CHECKED" -ge 1 ] || fail "v9b: cachesvc-verify: exit $V9_VRC, checked $V9_CHECKED, stale $V9_STALE: $(cat "$WORK/verify.err")"
  until_true 30 v9b_unmarked || fail "v9b: the mark was not retired by the flush: $(rc hgetall "{$NS:0}:inv:open:$SLOT")"
  ok "v9b: the mark found with its source failed: a loss (open_losses $(stat open_losses), data_loss $(stat data_loss)), logged, the namespace flushed; the daemon answers \"$(v9b_state)\"; cachesvc-verify: $V9_CHECKED checked, 0 stale; the mark retired"
  stop_drive
  stop_daemon
}
v9b_marked() {
  mark=$(rc hget "{$NS:0}:inv:open:$SLOT" "$b")
  # R22-1: the marking round's wall-clock time (s) as a 5th token
  [[ "$mark" =~ ^"$xid $(run_id_of "$x") $yid $(run_id_of "$y") "[1-9][0-9]*$ ]] && [ "$(stat open_marks)" -ge 1 ]
}
v9b_lost() { [ "$(stat open_losses)" -ge 1 ] && [ "$(stat data_loss)" -gt "$dl0" ] && drive_streaming; }
v9b_fresh() { [[ "$(v9b_state)" == *"x" ]]; }
# the marks' bucket fields (the hash also holds "lsn", the position they vouch for: R18-4)
open_fields() { rc hkeys "{$NS:0}:inv:open:$SLOT" | grep -vc '^lsn$' || true; }
v9b_unmarked() { [ "$(open_fields)" = 0 ] && [ "$(stat open_marks)" = 0 ]; }

# R18-1 (review18.md): a slot moved X -> Y and, before a round saw it closed, opened again
# Y -> X (no failover, no restart anywhere: nothing can be lost). The control first: the same
# moves with the mark cleared in between: no loss. Then the quick succession: the mark (X, Y)
# still on meets the slot open (Y, X): "open between other nodes", a loss, the namespace
# flushed. FAILS when the false loss happens (the finding reproduced).
r18_move() { # SLOT FROM_PORT FROM_ID TO_PORT TO_ID: open FROM -> TO, move every key
  redis-cli -p "$4" cluster setslot "$1" importing "$3" >/dev/null
  redis-cli -p "$2" cluster setslot "$1" migrating "$5" >/dev/null
}
r18_finish() { # SLOT TO_ID PORTS...: the slot TO's
  local s=$1 to=$2 p
  shift 2
  for p in "$@"; do redis-cli -p "$p" cluster setslot "$s" node "$to" >/dev/null; done
}
r18_keys() { # SLOT FROM_PORT TO_PORT
  local k
  mapfile -t k < <(redis-cli -p "$2" cluster getkeysinslot "$1" 10000 | grep -v '^$')
  [ "${#k[@]}" = 0 ] || redis-cli -p "$2" migrate 127.0.0.1 "$3" "" 0 5000 keys "${k[@]}" >/dev/null
}
r18_marked() { [ "$(stat open_marks)" -ge 1 ] && [ -n "$(rc hget "{$NS:0}:inv:open:$SLOT" "$b")" ]; }
r18_unmarked() { [ "$(stat open_marks)" = 0 ] && [ "$(open_fields)" = 0 ]; }
case_r18requeue() {
  local x y xid yid p l0 d0 others
  CONF=$WORK/cs1s.ini
  sed 's/^status_interval = .*/status_interval = 1s/' "$WORK/cs.ini" >"$CONF"
  grep -q '^status_interval = 1s' "$CONF" || fail "r18: no status_interval in $WORK/cs.ini"
  v9_keyed_entry
  x=$(rc_master_of "$slot")
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$x" ] && y=$p && break; done
  xid=$(redis-cli -p "$x" cluster myid)
  yid=$(redis-cli -p "$y" cluster myid)
  # control: X -> Y, marked, finished, the mark cleared; then Y -> X: a new mark, no loss
  r18_move "$slot" "$x" "$xid" "$y" "$yid"
  until_true 30 r18_marked || fail "r18: bucket $b never marked"
  r18_keys "$slot" "$x" "$y"
  r18_finish "$slot" "$yid" "$y" "$x" "${RC_PORTS[@]}"
  until_true 30 r18_unmarked || fail "r18: the mark never cleared"
  r18_move "$slot" "$y" "$yid" "$x" "$xid"
  until_true 30 r18_marked || fail "r18: bucket $b never marked (back)"
  r18_keys "$slot" "$y" "$x"
  r18_finish "$slot" "$xid" "$x" "$y" "${RC_PORTS[@]}"
  until_true 30 r18_unmarked || fail "r18: the mark never cleared (back)"
  [ "$(stat open_losses)" = 0 ] || fail "r18: control: a loss with the mark cleared in between"
  ok "r18: control: slot $slot moved $x -> $y -> $x with the mark cleared in between: 0 losses"
  # the quick succession: X -> Y finished and at once Y -> X opened
  until_true 60 drive_streaming || fail "r18: not streaming"
  l0=$(stat open_losses) d0=$(stat data_loss)
  r18_move "$slot" "$x" "$xid" "$y" "$yid"
  until_true 30 r18_marked || fail "r18: bucket $b never marked (2)"
  local mk0
  mk0=$(stat open_marked)
  r18_keys "$slot" "$x" "$y"
  r18_finish "$slot" "$yid" "$y" "${RC_PORTS[@]}"
  r18_move "$slot" "$y" "$yid" "$x" "$xid"
  until_true 30 eval '[[ "$(rc hget "{$NS:0}:inv:open:$SLOT" "$b")" =~ ^"$yid $(run_id_of "$y") $xid $(run_id_of "$x") "[1-9][0-9]*$ ]]' ||
    fail "r18: the mark was not replaced by ($y, $x): '$(rc hget "{$NS:0}:inv:open:$SLOT" "$b")' (open_losses $l0 -> $(stat open_losses)): $(grep -a "review V9b" "$WORK/drive.log" | tail -1)"
  [ "$(stat open_losses)" = "$l0" ] || until_true 30 data_loss_above "$d0" ||
    echo "r18: the loss was not followed by a flush within 30 s"
  echo "r18: open_losses $l0 -> $(stat open_losses), data_loss $d0 -> $(stat data_loss)"
  # a replacement is not a new mark: open_marked unchanged unless a round cleared it between
  [ "$(stat open_marked)" = "$mk0" ] ||
    echo "r18: note: a round saw the slot closed between the moves (open_marked $mk0 -> $(stat open_marked)): the replacement was not exercised this run"
  grep -a "review V9b" "$WORK/drive.log" | tail -2 || true
  # leave the slot Y's
  redis-cli -p "$x" cluster setslot "$slot" stable >/dev/null
  redis-cli -p "$y" cluster setslot "$slot" stable >/dev/null
  [ "$(stat open_losses)" = "$l0" ] ||
    fail "r18: REPRODUCED: slot $slot moved $x -> $y and reopened $y -> $x within a round, no failover: counted as an open-slot loss (open_losses $(stat open_losses), data_loss $d0 -> $(stat data_loss): the namespace flushed)"
  ok "r18: slot $slot moved $x -> $y and reopened $y -> $x within a round: no loss, the mark replaced by the new ends"
  stop_drive
}

# R18-5 (review18.md): one master answers CLUSTER NODES with an error (here an ACL without
# cluster|nodes; likewise a proxy refusing it, or more than 256 open slots on one master):
# every round is incomplete. The fix: a warning naming the master and its reply, the rounds
# counted, and after max(10 s, 10 status intervals) without a complete round a loss (the
# namespace flushed), after which the flushed position passes what was confirmed. Negative
# control: the same commit, the same wait, while rounds complete: no hold, no flush.
# R22-3 (review22.md): the cause persisting, each hold doubles the next bound (10 s, then
# 20 s: the second loss logged with the longer bound, after no complete round in between),
# back to the base once a round completes (the gauge open_hold_ms). Negative control
# (--open-hold-fixed, the backoff off): the second hold at 10 s again.
r18_log_since() { tail -n +"$1" "$WORK/drive.log" | grep -aq "$2"; }
# R22-1 (review22.md): a mark whose end did not answer INFO when marked ("-") is read back at a
# stream start (so no in-memory marking time): it carries the marking round's wall-clock time,
# and is vouched for by the end's uptime. A mark of bucket 7 (its slot closed, its ends two
# masters) written by hand, the invalidator started: "clear", the mark cleared with no loss
# (before the fix: every such mark a loss); "loss" (the end restarted since that time, or a
# 4-token mark of an older version with no time): a loss, logged, the namespace flushed.
r22_unmarked7() { [ -z "$(rc hget "{$NS:0}:inv:open:$SLOT" 7)" ]; }
r22_mark() { # EXPECT (clear | loss) LABEL VALUE
  local n0
  rc hset "{$NS:0}:inv:open:$SLOT" 7 "$3" >/dev/null
  n0=$(wc -l <"$WORK/drive.log")
  start_drive
  until_true 30 r22_unmarked7 || fail "r22-1: $2: the mark never cleared ('$(rc hget "{$NS:0}:inv:open:$SLOT" 7)')"
  until_true 30 drive_streaming || fail "r22-1: $2: not streaming"
  if [ "$1" = clear ]; then
    [ "$(stat data_loss)" = 0 ] && [ "$(stat open_losses)" = 0 ] ||
      fail "r22-1: $2: a loss: $(tail -n +"$n0" "$WORK/drive.log" | grep -a "review V9b" | tail -1)"
    ok "r22-1: $2: mark '$3' read back: vouched for by the uptime, cleared, no loss"
  else
    [ "$(stat open_losses)" -ge 1 ] && [ "$(stat data_loss)" -ge 1 ] || fail "r22-1: $2: no loss"
    r18_log_since "$n0" "not answered when it was marked, restarted since" || fail "r22-1: $2: the reason not logged"
    ok "r22-1: $2: mark '$3' read back: a loss (open_losses $(stat open_losses), data_loss $(stat data_loss))"
  fi
  stop_drive
}
r18_hold_bounds() { # LINE: the bounds (s) of the holds logged since LINE, in order
  tail -n +"$1" "$WORK/drive.log" | sed -n 's/.*ERROR invalidator: no complete round of open slots for \([0-9]*\) s .*/\1/p' | tr '\n' ' '
}
r18_holds_above() { [ "$(stat open_holds)" -gt "$1" ]; }
r18_second_hold() { # N0 H0 FLAGS...: with $p refusing, two holds after N0; prints their bounds
  local n0=$1 h0=$2 lsn
  shift 2
  lsn=$(commit_lsn "INSERT INTO users VALUES (10$h0, 'h')")
  wait_confirmed "$lsn"
  until_true 90 r18_holds_above "$h0" || fail "r22-3: no first hold $*"
  until_true 60 drive_streaming || fail "r22-3: not streaming after the first hold $*"
  local r1
  r1=$(stat open_rounds)
  lsn=$(commit_lsn "INSERT INTO users VALUES (20$h0, 'h')")
  wait_confirmed "$lsn"
  until_true 120 r18_holds_above "$((h0 + 1))" || fail "r22-3: no second hold $*"
  [ "$(stat open_rounds)" = "$r1" ] || fail "r22-3: a round completed between the holds $*: the test proves nothing"
  r18_hold_bounds "$n0"
}
# review 26 R26-2: stream restarts more often than the hold bound (a walsender terminated every
# 4 s, the bound 10 s) while a master refuses CLUSTER NODES: the streaming time without a
# complete round carries over across restarts, so the hold still fires and the slot is flushed
# past the commit while the restarts go on. r26_round FLAGS...: R26_FLUSHED true/false.
r26_round() {
  local lsn p i
  start_drive --open-hold-ms 10000 --open-hold-fixed "$@"
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  until_true 30 flush_at_least "$(lsnhex "$lsn")" || fail "r26: never flushed before the ACL"
  p=${RC_PORTS[2]}
  redis-cli -p "$p" acl setuser default -cluster\|nodes >/dev/null
  lsn=$(commit_lsn "INSERT INTO users VALUES (1, 'a')")
  wait_confirmed "$lsn"
  R26_FLUSHED=false
  for i in $(seq 10); do
    sleep 4
    if flush_at_least "$(lsnhex "$lsn")"; then R26_FLUSHED=true; break; fi
    primary postgres -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND active_pid IS NOT NULL" >/dev/null
  done
  R26_DESC="$i walsenders terminated, open_holds $(stat open_holds), reconnects $(stat reconnects), slot flushed to $(slot_flush), commit $lsn"
  redis-cli -p "$p" acl setuser default +cluster\|nodes >/dev/null
  stop_drive
}
case_r26carry() {
  CLEANUPS=("redis-cli -p ${RC_PORTS[2]} acl setuser default +cluster\\|nodes" "${CLEANUPS[@]}")
  r26_round --open-hold-nocarry
  [ "$R26_FLUSHED" = false ] ||
    fail "r26 negative control (--open-hold-nocarry): flushed while the restarts went on ($R26_DESC): the test proves nothing"
  ok "r26: negative control (the hold's clock restarts with each stream): never held, never flushed ($R26_DESC)"
  r26_round
  [ "$R26_FLUSHED" = true ] ||
    fail "r26: a stream restart every 4 s kept the hold (10 s) from firing: never flushed ($R26_DESC)"
  ok "r26: the streaming time without a complete round carried over the restarts: held and flushed ($R26_DESC)"
}
# R51-1 (review 51): a loss the watch of open slots found is recorded in bucket 0 (its epoch
# copy deleted) before the stream lets the slot go, so that whoever streams next flushes. A hold
# (one master refusing CLUSTER NODES, the bound 10 s) is the loss; bucket 0's master refuses
# DEL (an ACL): the record fails and is sent again with a backoff, and the slot stays held by
# the same walsender meanwhile, its epoch copy in place; DEL allowed again: recorded, the copy
# gone, then the restart (a new walsender) and its SYNC's flush (the wait's bound raised to 15 s
# for this). r51neg: its negative control (--loss-record-nowait: the DEL sent and the slot let
# go at once): a new walsender while the record is still refused. r51fb: review 53 F2/F3: the
# DEL refused past the wait's bound (5 s): the stream restarts anyway, the loss owed in memory;
# DEL allowed again (the SYNC's scripts need it too), this process's own SYNC flushes.
slot_pid() { primary postgres -c "SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = '$SLOT'"; }
case_r51() { # MODE: fix, neg, fb
  local mode=$1 p m0 lsn pid0 n0 h0 d0 r0 id t
  case $mode in
  neg) start_drive --open-hold-ms 10000 --loss-record-nowait ;;
  fb) start_drive --open-hold-ms 10000 ;;
  *) start_drive --open-hold-ms 10000 --record-hold-ms 15000 ;;
  esac
  lsn=$(commit_lsn "INSERT INTO users VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = 'a'")
  wait_confirmed "$lsn"
  until_true 30 flush_at_least "$(lsnhex "$lsn")" || fail "r51: never flushed before the ACLs"
  owners
  m0=$(node_port_of_bucket 0)
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$m0" ] && break; done
  for id in $(seq 2 40); do [ "$(node_port_of_bucket "$(bucket "$id")")" != "$m0" ] && break; done
  [ -n "$(rc get "{$NS:0}:epoch")" ] || fail "r51: bucket 0 has no epoch copy to begin with"
  pid0=$(slot_pid)
  [ "$pid0" != 0 ] || fail "r51: the slot is not active"
  CLEANUPS=("redis-cli -p $p acl setuser default +cluster\\|nodes" "redis-cli -p $m0 acl setuser default +del" "${CLEANUPS[@]}")
  n0=$(wc -l <"$WORK/drive.log") h0=$(stat open_holds) d0=$(stat data_loss) r0=$(stat open_record_retries)
  redis-cli -p "$m0" acl setuser default -del >/dev/null
  redis-cli -p "$p" acl setuser default -cluster\|nodes >/dev/null
  lsn=$(commit_lsn "INSERT INTO users VALUES ($id, 'b') ON CONFLICT (id) DO UPDATE SET name = 'b'")
  wait_confirmed "$lsn"
  until_true 60 eval '[ "$(stat open_holds)" -gt "$h0" ]' || fail "r51: no hold while $p refuses CLUSTER NODES"
  if [ "$mode" = fb ]; then
    until_true 30 eval '[ "$(stat open_record_fallbacks)" -ge 1 ]' ||
      fail "r51fb: the record refused, yet no restart past the wait's bound ($(stat open_record_retries) retries)"
    r18_log_since "$n0" "the loss is still not recorded in bucket 0, 5000 ms or more after it was found .*: restarting anyway" ||
      fail "r51fb: the fallback not logged"
    until_true 10 eval '[ "$(slot_pid)" != "$pid0" ]' || fail "r51fb: past the bound, the slot still with walsender $pid0"
    # review 54 F1: the loss is owed in memory: the next SYNC must flush, which its scripts
    # cannot do while DEL is refused: no stream begins (one that did forgot the loss)
    t=$((SECONDS + 4))
    while [ $SECONDS -lt $t ]; do
      ! drive_streaming || fail "r51fb: streaming again with DEL still refused: a SYNC without the flush (the loss not owed in memory)"
      sleep 0.2
    done
    [ "$(stat data_loss)" = "$d0" ] || fail "r51fb: a flush while DEL was refused (the SYNC's scripts need it too)"
    ok "r51fb: the DEL refused past the wait's bound (5 s): the stream restarted anyway (walsender $pid0 -> $(slot_pid)), the loss owed in memory"
    # the SYNC's scripts need DEL too: allowed again, this process's SYNC flushes
    redis-cli -p "$m0" acl setuser default +del >/dev/null
    until_true 30 eval '[ "$(stat data_loss)" -gt "$d0" ]' ||
      fail "r51fb: DEL allowed again, this process's SYNC did not flush (data_loss $(stat data_loss))"
    until_true 60 drive_streaming || fail "r51fb: not streaming after the flush"
    ok "r51fb: DEL allowed again: this process's own SYNC flushed (data_loss $d0 -> $(stat data_loss))"
    redis-cli -p "$p" acl setuser default +cluster\|nodes >/dev/null
    return
  fi
  if [ "$mode" = neg ]; then
    until_true 15 eval '[ "$(slot_pid)" != "$pid0" ]' ||
      fail "r51neg: the record not waited for, yet the slot stayed with walsender $pid0"
    [ -n "$(rc get "{$NS:0}:epoch")" ] || fail "r51neg: the epoch copy is gone: the record was not refused"
    ok "r51neg: control: not waiting for the record, the slot let go (walsender $pid0 -> $(slot_pid)) while bucket 0 still refused the DEL (its epoch copy in place): a standby taking it now would stream without the flush"
    redis-cli -p "$m0" acl setuser default +del >/dev/null
    redis-cli -p "$p" acl setuser default +cluster\|nodes >/dev/null
    until_true 60 drive_streaming || fail "r51neg: not streaming again"
    return
  fi
  until_true 20 eval '[ "$(stat open_record_retries)" -ge $((r0 + 3)) ]' ||
    fail "r51: the record not sent again ($(stat open_record_retries) retries)"
  r18_log_since "$n0" "the loss could not be recorded in bucket 0 (DEL of its epoch copy: NOPERM" ||
    fail "r51: the failed record was not logged: $(tail -n +"$n0" "$WORK/drive.log" | tail -3)"
  t=$((SECONDS + 6))
  while [ $SECONDS -lt $t ]; do
    [ "$(slot_pid)" = "$pid0" ] || fail "r51: the slot was let go (walsender $pid0 -> $(slot_pid)) with the loss not recorded"
    sleep 0.5
  done
  [ -n "$(rc get "{$NS:0}:epoch")" ] || fail "r51: the epoch copy is gone while DEL was refused"
  ok "r51: the loss's record refused ($(stat open_record_retries) tries, logged): the slot kept by walsender $pid0 for 6 s more"
  redis-cli -p "$m0" acl setuser default +del >/dev/null
  until_true 20 eval '[ "$(slot_pid)" != "$pid0" ]' || fail "r51: recorded, yet no restart"
  r18_log_since "$n0" "the loss is recorded in bucket 0 after" || fail "r51: the record's success not logged"
  redis-cli -p "$p" acl setuser default +cluster\|nodes >/dev/null
  until_true 60 drive_streaming || fail "r51: not streaming after the record"
  until_true 30 eval '[ "$(stat data_loss)" -gt "$d0" ]' || fail "r51: the SYNC after the record did not flush (data_loss $(stat data_loss))"
  [ -n "$(rc get "{$NS:0}:epoch")" ] || fail "r51: no epoch copy after the SYNC"
  ok "r51: DEL allowed again: the loss recorded, then the restart (walsender $(slot_pid)) and its SYNC's flush (data_loss $d0 -> $(stat data_loss))"
}

case_r18stall() {
  local lsn p n0 h0 d0 f r0
  start_drive --open-hold-ms 10000 # the default, 60 s, is for production
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  until_true 30 flush_at_least "$(lsnhex "$lsn")" || fail "r18: never flushed before the ACL"
  p=${RC_PORTS[2]}
  CLEANUPS=("redis-cli -p $p acl setuser default +cluster\\|nodes" "${CLEANUPS[@]}")
  redis-cli -p "$p" acl setuser default -cluster\|nodes >/dev/null
  n0=$(wc -l <"$WORK/drive.log") h0=$(stat open_holds) d0=$(stat data_loss)
  lsn=$(commit_lsn "INSERT INTO users VALUES (1, 'a')")
  wait_confirmed "$lsn"
  until_true 30 r18_log_since "$n0" "round of open slots was incomplete (.*:$p.*CLUSTER NODES: NOPERM" ||
    fail "r18: no warning naming $p and its reply: $(tail -n +"$n0" "$WORK/drive.log" | tail -3)"
  # (the stats file is rewritten every 100 ms: the count may follow the log line by one)
  until_true 10 eval '[ "$(stat open_incomplete)" -ge 1 ]' || fail "r18: incomplete rounds not counted"
  ok "r18: $p refusing CLUSTER NODES: warned (\"$(tail -n +"$n0" "$WORK/drive.log" | grep -a "round of open slots was incomplete" | head -1 | cut -c1-160)...\"), $(stat open_incomplete) incomplete rounds counted"
  until_true 60 flush_at_least "$(lsnhex "$lsn")" ||
    fail "r18: $p refusing CLUSTER NODES: $lsn confirmed but the flushed position stayed at $(slot_flush)"
  until_true 5 eval '[ "$(stat open_holds)" -gt "$h0" ] && [ "$(stat data_loss)" -gt "$d0" ]' ||
    fail "r18: flushed past $lsn without a hold (open_holds $(stat open_holds), data_loss $(stat data_loss))"
  r18_log_since "$n0" "no complete round of open slots for 10 s (.*$p.*): the flushed position was held; treated as a loss" ||
    fail "r18: the hold was not logged"
  ok "r18: no complete round for 10 s: a loss (open_holds $(stat open_holds), data_loss $d0 -> $(stat data_loss)), the namespace flushed, then the slot flushed past $lsn ($(slot_flush))"
  # R22-3: still refused: the next hold waits twice as long, logged with its bound
  r18_log_since "$n0" "no complete round of open slots for 10 s .*the next hold bound is 20 s until a round completes" ||
    fail "r22-3: the first hold did not announce a 20 s bound"
  until_true 30 eval '[ "$(stat open_hold_ms)" = 20000 ]' || fail "r22-3: the bound after one hold is $(stat open_hold_ms) ms, not 20000"
  local r1 b
  h0=$(stat open_holds) r1=$(stat open_rounds)
  lsn=$(commit_lsn "INSERT INTO users VALUES (4, 'd')")
  wait_confirmed "$lsn"
  until_true 120 r18_holds_above "$h0" || fail "r22-3: no second hold while $p refuses"
  [ "$(stat open_rounds)" = "$r1" ] || fail "r22-3: a round completed between the holds: the test proves nothing"
  b=$(r18_hold_bounds "$n0")
  [ "$b" = "10 20 " ] || fail "r22-3: the holds' bounds in order: '$b', not '10 20 '"
  until_true 30 eval '[ "$(stat open_hold_ms)" = 40000 ]' || fail "r22-3: the bound after two holds is $(stat open_hold_ms) ms, not 40000"
  ok "r22-3: $p still refusing: the second hold after 20 s, not 10 (bounds logged in order: $b; open_holds $(stat open_holds), no round completed in between; the bound now $(stat open_hold_ms) ms)"
  # control: CLUSTER NODES answered again: the flushed position passes a commit, no hold
  redis-cli -p "$p" acl setuser default +cluster\|nodes >/dev/null
  until_true 60 drive_streaming || fail "r18: not streaming"
  h0=$(stat open_holds) d0=$(stat data_loss)
  lsn=$(commit_lsn "INSERT INTO users VALUES (2, 'b')")
  wait_confirmed "$lsn"
  until_true 30 flush_at_least "$(lsnhex "$lsn")" || fail "r18: control: $lsn never flushed"
  [ "$(stat open_holds)" = "$h0" ] && [ "$(stat data_loss)" = "$d0" ] ||
    fail "r18: control: a hold or a flush with every round complete"
  ok "r18: control: every master answering: $lsn flushed with no hold and no flush"
  until_true 30 eval '[ "$(stat open_hold_ms)" = 10000 ]' || fail "r22-3: the bound not back to its base after a complete round: $(stat open_hold_ms) ms"
  r18_log_since "$n0" "a round of open slots completed: the hold bound is back to its base" || fail "r22-3: the reset not logged"
  ok "r22-3: a round completed: the bound back to 10 s"
  # R22-3's negative control: the backoff off, the second hold comes at the base again
  stop_drive
  redis-cli -p "$p" acl setuser default -cluster\|nodes >/dev/null
  n0=$(wc -l <"$WORK/drive.log")
  start_drive --open-hold-ms 10000 --open-hold-fixed
  b=$(r18_second_hold "$n0" 0 "(backoff off)")
  [ "$b" = "10 10 " ] || fail "r22-3: negative control: the backoff off, the holds' bounds were '$b', not '10 10 '"
  ok "r22-3: negative control: the backoff off (--open-hold-fixed): holds at $b s"
  redis-cli -p "$p" acl setuser default +cluster\|nodes >/dev/null
  until_true 60 drive_streaming || fail "r18: not streaming"
  lsn=$(commit_lsn "INSERT INTO users VALUES (5, 'e')")
  wait_confirmed "$lsn"
  until_true 60 flush_at_least "$(lsnhex "$lsn")" || fail "r22-3: negative control: $lsn never flushed once answered"
  # R18-4: the marks carry the position they vouch for ("lsn"): a restart finds it >= the
  # slot's confirmed position (no loss); bucket 0 without the last writes (the field lowered,
  # as a replica promoted before they reached it would hold it) is a loss
  local ml
  ml=$(rc hget "{$NS:0}:inv:open:$SLOT" lsn)
  [ -n "$ml" ] || fail "r18-4: no lsn field in the marks"
  stop_drive
  # R22-3: the base from the cluster's cluster-node-timeout (20 s here: 4 x 20 s = 80 s)
  for q in "${RC_PORTS[@]}"; do
    CLEANUPS=("redis-cli -p $q config set cluster-node-timeout $(redis-cli -p "$q" config get cluster-node-timeout | tail -1)" "${CLEANUPS[@]}")
    redis-cli -p "$q" config set cluster-node-timeout 20000 >/dev/null
  done
  n0=$(wc -l <"$WORK/drive.log")
  start_drive
  until_true 30 eval '[ "$(stat open_hold_ms)" = 80000 ]' || fail "r22-3: cluster-node-timeout 20 s: the bound is $(stat open_hold_ms) ms, not 80000"
  r18_log_since "$n0" "cluster-node-timeout 20000 ms: the hold bound of open slots is at least 80 s" || fail "r22-3: the derived bound not logged"
  ok "r22-3: cluster-node-timeout 20 s: the hold bound 80 s (4 x), logged"
  lsn=$(commit_lsn "INSERT INTO users VALUES (3, 'c')")
  wait_confirmed "$lsn"
  until_true 30 flush_at_least "$(lsnhex "$lsn")" || fail "r18-4: control: $lsn never flushed"
  [ "$(stat data_loss)" = 0 ] && [ "$(stat open_losses)" = 0 ] ||
    fail "r18-4: control: a loss at a plain restart: $(tail -n +"$n0" "$WORK/drive.log" | grep -a "review V9b" | tail -1)"
  ok "r18-4: control: restarted with the marks' lsn $ml: no loss, $lsn flushed"
  # review 24 R24-3 (review 26 R26-1): the value learnt is kept across streams: CONFIG GET
  # refused from now on and the stream restarted (the walsender terminated) in the same
  # process: the refusal is logged, the bound stays 80 s (not the 60 s rule)
  for q in "${RC_PORTS[@]}"; do
    CLEANUPS=("redis-cli -p $q acl setuser default +config\\|get" "${CLEANUPS[@]}")
    redis-cli -p "$q" acl setuser default -config\|get >/dev/null
  done
  r0=$(stat reconnects)
  primary postgres -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '$SLOT' AND active_pid IS NOT NULL" >/dev/null
  until_true 30 eval '[ "$(stat reconnects)" -gt "$r0" ] && drive_streaming' || fail "r24-3: the stream did not restart"
  until_true 30 r18_log_since "$n0" "CONFIG GET cluster-node-timeout refused (NOPERM.*stays that of the last value read, 20000 ms" ||
    fail "r24-3: the refusal after a restart not logged with the value kept: $(tail -n +"$n0" "$WORK/drive.log" | grep -a "CONFIG GET" | tail -2)"
  [ "$(stat open_hold_ms)" = 80000 ] || fail "r24-3: CONFIG refused after a stream restart: the bound is $(stat open_hold_ms) ms, not the 80000 learnt"
  ok "r24-3: the node timeout learnt is kept across a stream restart: CONFIG GET refused, the bound stays 80 s"
  stop_drive
  # R22-3: CONFIG refused (ACL): the 60 s rule, said once
  for q in "${RC_PORTS[@]}"; do
    CLEANUPS=("redis-cli -p $q acl setuser default +config\\|get" "${CLEANUPS[@]}")
    redis-cli -p "$q" acl setuser default -config\|get >/dev/null
  done
  n0=$(($(wc -l <"$WORK/drive.log") + 1)) # tail -n +N starts at line N: past the last line
  start_drive
  until_true 30 r18_log_since "$n0" "CONFIG GET cluster-node-timeout refused (NOPERM" || fail "r22-3: the refusal not logged"
  [ "$(stat open_hold_ms)" = 60000 ] || fail "r22-3: CONFIG refused: the bound is $(stat open_hold_ms) ms, not 60000"
  [ "$(tail -n +"$n0" "$WORK/drive.log" | grep -ac "CONFIG GET cluster-node-timeout refused")" = 1 ] || fail "r22-3: the refusal logged more than once"
  ok "r22-3: CONFIG GET refused: the bound stays 60 s, said once"
  stop_drive
  for q in "${RC_PORTS[@]}"; do
    redis-cli -p "$q" acl setuser default +config\|get >/dev/null
  done
  rc hset "{$NS:0}:inv:open:$SLOT" lsn 0000000000000001 >/dev/null
  n0=$(wc -l <"$WORK/drive.log")
  start_drive
  until_true 30 eval '[ "$(stat data_loss)" -ge 1 ] && drive_streaming' || fail "r18-4: no loss with the marks behind"
  r18_log_since "$n0" "bucket 0 lost their last writes (review V9b, R18-4)" || fail "r18-4: the loss reason not logged"
  until_true 30 eval '[ "$(rc hget "{$NS:0}:inv:open:$SLOT" lsn)" != 0000000000000001 ]' || fail "r18-4: the marks not reset"
  ok "r18-4: the marks vouching for less than the slot's confirmed position: a loss, logged, the namespace flushed, the marks reset ($(rc hget "{$NS:0}:inv:open:$SLOT" lsn))"
  stop_drive
  # R22-1: a "-" mark read back at a stream start, its slot closed
  local id0 id1 run1 up0 now
  id0=$(redis-cli -p "${RC_PORTS[0]}" cluster myid) id1=$(redis-cli -p "${RC_PORTS[1]}" cluster myid)
  run1=$(run_id_of "${RC_PORTS[1]}")
  up0=$(redis-cli -p "${RC_PORTS[0]}" info server | sed -n 's/^uptime_in_seconds:\([0-9]*\).*/\1/p')
  now=$(date +%s)
  r22_mark clear "its source up since before the marking time" "$id0 - $id1 $run1 $((now - 1))"
  r22_mark loss "its source started after the marking time (restarted since)" "$id0 - $id1 $run1 $((now - up0 - 30))"
  r22_mark loss "an older version's mark (no time)" "$id0 - $id1 $run1"
}

# R18-3 (review18.md): V9b's path with the watch ON, the failover and the resumption before
# the first round that evaluates the slot. To make that window deterministic the marks are made
# unwritable (a string, as inval_cluster_v9b does) while the slot opens, so no mark is recorded
# (in production the window is one status interval from the opening, or longer while rounds
# time out): the slot opened X -> Y, b restamped on Y, the routed DEL on X, confirmed; X killed,
# X2 promoted, Y told to import from X2 and X2 to migrate to Y; the marks writable again: the
# round sees a consistent X2 -> Y, marks it, the flush passes the commit, the migration
# finishes, the entry is stale on Y. FAILS when the stale entry is served.
r18_nodes_calls() { redis-cli -p "${RC_PORTS[0]}" info commandstats | sed -n 's/^cmdstat_cluster|nodes:calls=\([0-9]*\),.*/\1/p'; }
case_r18early() {
  local x xpid x2 x2pid y xid x2id yid id b slot slot0 o oid lsn gen e keys p mark
  v9_node 1
  x=$V9_PORT xpid=$V9_PID
  v9_node 2
  x2=$V9_PORT x2pid=$V9_PID
  v9_node 3
  y=$V9_PORT
  CLEANUPS=("kill -CONT $x2pid" "${CLEANUPS[@]}")
  xid=$(redis-cli -p "$x" cluster myid)
  x2id=$(redis-cli -p "$x2" cluster myid)
  yid=$(redis-cli -p "$y" cluster myid)
  until_true 30 v9_knows "$x2" "$xid" || fail "r18: $x2 never learnt of $x"
  redis-cli -p "$x2" cluster replicate "$xid" >/dev/null || fail "r18: CLUSTER REPLICATE failed"
  until_true 30 v9_link_up "$x2" || fail "r18: $x2 never replicated $x"
  until_true 30 rc_ok "$y" || fail "r18: $y never reached cluster_state:ok"
  v9_keyed_entry
  o=$(rc_master_of "$slot")
  oid=$(redis-cli -p "$o" cluster myid)
  redis-cli -p "$x" cluster setslot "$slot" importing "$oid" >/dev/null
  redis-cli -p "$o" cluster setslot "$slot" migrating "$xid" >/dev/null
  mapfile -t keys < <(redis-cli -p "$o" cluster getkeysinslot "$slot" 10000 | grep -v '^$')
  redis-cli -p "$o" migrate 127.0.0.1 "$x" "" 0 5000 keys "${keys[@]}" >/dev/null
  for p in "${RC_PORTS[@]}" "$x" "$x2" "$y"; do redis-cli -p "$p" cluster setslot "$slot" node "$xid" >/dev/null; done
  until_true 120 restamped "$b" "$x" || fail "r18: bucket $b not restamped on $x"
  v9_fill_entry
  [ "$(redis-cli -p "$x" exists "$e")" = 1 ] || fail "r18: no entry $e on $x after the fill"
  local t0=$SECONDS
  rc set "{$NS:0}:inv:open:$SLOT" blocked >/dev/null
  redis-cli -p "$y" cluster setslot "$slot" importing "$xid" >/dev/null
  redis-cli -p "$x" cluster setslot "$slot" migrating "$yid" >/dev/null
  mapfile -t keys < <(redis-cli -p "$x" cluster getkeysinslot "$slot" 10000 | grep -v '^$' | grep -vxF "$e")
  redis-cli -p "$x" migrate 127.0.0.1 "$y" "" 0 5000 keys "${keys[@]}" >/dev/null
  [ "$(redis-cli -p "$x" wait 1 5000)" = 1 ] || fail "r18: $x2 did not follow the migration"
  until_true 60 restamped "$b" "$y" || fail "r18: bucket $b not restamped on $y"
  kill -STOP "$x2pid"
  redis-cli -p "$x" client kill type replica >/dev/null
  lsn=$(commit_lsn "UPDATE users SET name = name || 'x' WHERE id = $id")
  wait_confirmed "$lsn"
  [ "$(redis-cli -p "$x" cluster countkeysinslot "$slot")" = 0 ] || fail "r18: the routed DEL did not delete $e on $x"
  kill -9 "$xpid"
  kill -CONT "$x2pid"
  # the resumption at once (X2 serving the slot without b's copies would be seen by the
  # epoch check: the window this finding is about is the watch's own)
  until_true 30 eval 'redis-cli -p "$x2" cluster failover takeover >/dev/null 2>&1; v9_master "$x2" || { sleep 0.05; v9_master "$x2"; }' || fail "r18: $x2 was not promoted"
  redis-cli -p "$x2" cluster setslot "$slot" migrating "$yid" >/dev/null
  redis-cli -p "$y" cluster setslot "$slot" stable >/dev/null
  redis-cli -p "$y" cluster setslot "$slot" importing "$x2id" >/dev/null
  [ "$(redis-cli -p "$x2" exists "$e")" = 1 ] || fail "r18: the promoted $x2 does not hold $e"
  for p in "$x2" "$y"; do until_true 60 rc_ok "$p" || fail "r18: $p never reached cluster_state:ok"; done
  echo "r18: opened, DEL confirmed, failover, resumed from $x2 in $((SECONDS - t0)) s; open_marks $(stat open_marks); mark now: '$(rc hget "{$NS:0}:inv:open:$SLOT" "$b")'"
  [ "$(stat data_loss)" = 0 ] || fail "r18: the window was missed: a flush (data_loss $(stat data_loss)) before the resumption was seen"
  [ "$(stat open_marks)" = 0 ] || fail "r18: marked before the resumption"
  rc del "{$NS:0}:inv:open:$SLOT" >/dev/null
  mark=
  until_true 40 eval '[ -n "$(rc hget "{$NS:0}:inv:open:$SLOT" "$b")" ]' || fail "r18: never marked"
  mark=$(rc hget "{$NS:0}:inv:open:$SLOT" "$b")
  echo "r18: mark \"$mark\" (x2 $x2id, y $yid)"
  until_true 60 flush_at_least "$(lsnhex "$lsn")" || fail "r18: $lsn never flushed"
  redis-cli -p "$x2" migrate 127.0.0.1 "$y" "" 0 5000 keys "$e" >/dev/null
  for p in "${RC_PORTS[@]}" "$x2" "$y"; do redis-cli -p "$p" cluster setslot "$slot" node "$yid" >/dev/null; done
  [ "$(redis-cli -p "$y" exists "$e")" = 1 ] || fail "r18: $e not on $y once the slot is its own"
  sleep 3
  start_daemon "$DCONF"
  v9_verify
  local st
  st=$(v9b_state)
  echo "r18: open_losses $(stat open_losses) data_loss $(stat data_loss) open_marks $(stat open_marks); verify: exit $V9_VRC, $V9_STALE stale of $V9_CHECKED; the daemon answers \"$st\""
  grep -a "review V9b\|LOST" "$WORK/drive.log" | tail -3
  [ "$V9_STALE" = 0 ] && [[ "$st" == *"x" ]] ||
    fail "r18: REPRODUCED: watch on, $lsn flushed, its DEL lost by $x's failover and $e carried from $x2 to $y: stale (the daemon answers \"$st\", cachesvc-verify $V9_STALE stale)"
  ok "r18: not stale"
  stop_drive
  stop_daemon
}

# R18-9 (review18.md): the marks unreadable at a stream's start (here the key of another type;
# likewise CLUSTERDOWN on bucket 0's slot): HGETALL is sent again at every 10 ms tick without
# backoff, no round ever polls, the flushed position never rises. FAILS when that happens.
r18_hgetall() { redis-cli -p "$1" info commandstats | sed -n 's/^cmdstat_hgetall:calls=\([0-9]*\),.*/\1/p'; }
case_r18load() {
  local lsn p c0 c1 f
  start_drive
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  stop_drive
  rc set "{$NS:0}:inv:open:$SLOT" blocked >/dev/null
  p=$(rc_master_of "$(rc cluster keyslot "{$NS:0}")")
  start_drive
  lsn=$(commit_lsn "INSERT INTO users VALUES (1, 'a')")
  wait_confirmed "$lsn"
  c0=$(r18_hgetall "$p")
  sleep 5
  c1=$(r18_hgetall "$p")
  f=$(slot_flush)
  echo "r18: HGETALL on $p: ${c0:-0} -> ${c1:-0} in 5 s; $lsn confirmed, slot flushed at $f"
  local held=0
  flush_at_least "$(lsnhex "$lsn")" || held=1
  rc del "{$NS:0}:inv:open:$SLOT" >/dev/null
  if [ $((${c1:-0} - ${c0:-0})) -gt 50 ] && [ "$held" = 1 ]; then
    fail "r18: REPRODUCED: the marks unreadable: $((c1 - c0)) HGETALL in 5 s (no backoff), $lsn confirmed but not flushed ($f)"
  fi
  [ "$(grep -ac "marks of open slots could not be read back (WRONGTYPE" "$WORK/drive.log")" = 1 ] ||
    fail "r18: the marks' read error not logged exactly once"
  ok "r18: no retry storm: $((c1 - c0)) HGETALL in 5 s, the error logged once"
  stop_drive
}

# R18-1b (review18.md): draining a master (its last slot moved away, as before del-node): Redis
# 7.0 turns the emptied master into a replica of the node that took its last slot
# (cluster-allow-replica-migration, on by default) at once; the round that would clear the
# mark sees its source listed as a replica first: "its source is now a replica", a loss, the
# namespace flushed, nothing lost. FAILS when that happens.
case_r18drain() {
  local x xid o oid id b slot slot0 lsn keys p d0 r0
  v9_node 1
  x=$V9_PORT
  xid=$(redis-cli -p "$x" cluster myid)
  until_true 30 rc_ok "$x" || fail "r18: $x never reached cluster_state:ok"
  v9_keyed_entry
  o=$(rc_master_of "$slot")
  oid=$(redis-cli -p "$o" cluster myid)
  # b's slot to the empty master X (its only slot), then the mark cleared
  r18_move "$slot" "$o" "$oid" "$x" "$xid"
  until_true 30 r18_marked || fail "r18: bucket $b never marked"
  r18_keys "$slot" "$o" "$x"
  r18_finish "$slot" "$xid" "$x" "$o" "${RC_PORTS[@]}"
  until_true 30 r18_unmarked || fail "r18: the mark never cleared"
  until_true 60 drive_streaming || fail "r18: not streaming"
  [ "$(stat open_losses)" = 0 ] || fail "r18: a loss on the way in"
  d0=$(stat data_loss)
  ok "r18: slot $slot moved $o -> $x (X's only slot): no loss"
  # drained: the slot back to O; X, empty, becomes O's replica
  r18_move "$slot" "$x" "$xid" "$o" "$oid"
  until_true 30 r18_marked || fail "r18: bucket $b never marked (back)"
  r18_keys "$slot" "$x" "$o"
  r18_finish "$slot" "$oid" "$o" "$x" "${RC_PORTS[@]}"
  until_true 30 sh -c "redis-cli -p $x role | head -1 | grep -qx slave" ||
    fail "r18: $x did not become a replica once drained: the test proves nothing"
  # R22-5 (review22.md): the verdict only once a complete round has read X as a replica: two
  # more complete rounds than when the role was seen (the one in flight may have read before)
  r0=$(stat open_rounds)
  until_true 60 eval '[ "$(stat open_rounds)" -ge $((r0 + 2)) ] || [ "$(stat open_losses)" != 0 ]' ||
    fail "r18: no complete round after the drain (open_rounds $r0 -> $(stat open_rounds)): the test proves nothing"
  echo "r18: $x now: $(redis-cli -p "$x" role | head -1); open_rounds $r0 -> $(stat open_rounds); open_losses $(stat open_losses), data_loss $d0 -> $(stat data_loss)"
  { grep -a "review V9b" "$WORK/drive.log" || true; } | tail -1
  [ "$(stat open_losses)" = 0 ] && [ "$(stat data_loss)" = "$d0" ] ||
    fail "r18: REPRODUCED: draining $x (its last slot $slot moved to $o, no failover) counted as an open-slot loss (data_loss $d0 -> $(stat data_loss))"
  until_true 30 r18_unmarked || fail "r18: the mark was not cleared after the drain"
  [ "$(stat open_losses)" = 0 ] && [ "$(stat data_loss)" = "$d0" ] ||
    fail "r18: REPRODUCED: a loss while the drained mark cleared (data_loss $d0 -> $(stat data_loss))"
  ok "r18: $x drained (its last slot $slot back to $o, $x now $(redis-cli -p "$x" role | head -1) of it): no loss, the mark cleared"
  stop_drive
}

# G2 and V9c (CLUSTER.md sections 7 and 9): the retry queue per slot.
rq_stat_above() { [ "$(stat "$1")" -gt "$2" ]; }
# g2_pick: two ids A, H whose buckets BA, BH lie on one master S in two slots SA, SH, neither
# bucket 0's; T another master
g2_pick() {
  local id b p slot0
  owners
  slot0=$(rc cluster keyslot "{$NS:0}")
  A= H=
  for id in $(seq 1 40); do
    b=$(bucket "$id")
    [ "$b" != 0 ] && [ "$(rc cluster keyslot "{$NS:$b}")" != "$slot0" ] || continue
    if [ -z "$A" ]; then
      A=$id BA=$b S=$(node_port_of_bucket "$b")
    elif [ "$(node_port_of_bucket "$b")" = "$S" ] && [ "$(rc cluster keyslot "{$NS:$b}")" != "$(rc cluster keyslot "{$NS:$BA}")" ]; then
      H=$id BH=$b
      break
    fi
  done
  [ -n "$H" ] || fail "g2: no two ids of 1-40 in two slots of one master"
  SA=$(rc cluster keyslot "{$NS:$BA}")
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$S" ] && T=$p && break; done
}
entry_of() { local g; g=$(rc get "{$NS:$1}:g:iv_user"); echo "{$NS:$1}:e:iv_user:${g:-0}:$2"; }
g2_drops() { grep -c "redis invalidator 127.0.0.1:$S: dropping connection: command timed out" "$WORK/drive.log" || true; }
g2_h_queued() { [ "$(g2_drops)" -gt "$d0" ] && rq_stat_above rq_queued "$q0"; }
g2_h_gone() { [ "$(redis-cli -p "$S" exists "$EH")" = 0 ]; }
# G2: slot SA migrating with its bucket's declared keys split between S and T (every key but
# the epoch copy moved): an INVAL of A's bucket on S answers TRYAGAIN for as long as the slot
# stays so. Then S is paused (CLIENT PAUSE WRITE, longer than the invalidator's 1 s Redis
# timeout) while H's row is updated: H's INVAL (another slot, same node) times out and is
# queued behind A's. Once S answers again, H's INVAL must drain (its entry gone) while A's
# slot still refuses. Negative control (--oldest-only, the probe of the oldest command alone
# as before G2): H's entry stays for 20 s. Both end with the slot finished on T: everything
# lands, confirmed (the bucket then answers EPOCH on T: one restart, a SYNC that finds it kept,
# as C2's moves).
# g2_split_slot PART (after start_drive): rows 1-40 written again, g2_pick's A and H updated
# and confirmed, H's entry EH planted stale, then slot SA migrating from S to T with every key
# of it but the epoch copy moved: an INVAL of A's bucket answers TRYAGAIN (G2's stuck slot)
g2_split_slot() {
  local lsn s_id epk keys # (t_id: the caller's, set here)
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  primary "$DB" -c "INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i" >/dev/null
  g2_pick
  lsn=$(commit_lsn "UPDATE users SET name = name || '.' WHERE id IN ($A, $H)")
  wait_confirmed "$lsn"
  EH=$(entry_of "$BH" "$H")
  rc set "$EH" stale >/dev/null
  s_id=$(redis-cli -p "$S" cluster myid)
  t_id=$(redis-cli -p "$T" cluster myid)
  redis-cli -p "$T" cluster setslot "$SA" importing "$s_id" >/dev/null
  redis-cli -p "$S" cluster setslot "$SA" migrating "$t_id" >/dev/null
  epk=$(redis-cli -p "$S" cluster getkeysinslot "$SA" 1000 | grep -v '^$' | grep ':epoch$' | head -1)
  [ -n "$epk" ] || fail "$1: no epoch copy in slot $SA on $S"
  mapfile -t keys < <(redis-cli -p "$S" cluster getkeysinslot "$SA" 1000 | grep -v '^$' | grep -vxF "$epk")
  redis-cli -p "$S" migrate 127.0.0.1 "$T" "" 0 5000 keys "${keys[@]}" >/dev/null
}

case_g2() {
  local neg=$1 flags=() lsn n r0 q0 d0 h0 keys p s_id t_id epk stop gone=false again=false
  [ "$neg" = true ] && flags=(--oldest-only)
  start_drive "${flags[@]}"
  g2_split_slot g2
  r0=$(stat reconnects)
  q0=$(stat rq_queued)
  lsn=$(commit_lsn "UPDATE users SET name = name || 'a' WHERE id = $A")
  n=$(lsn_num "$lsn")
  until_true 30 rq_stat_above rq_queued "$q0" || fail "g2: A's INVAL (slot $SA, TRYAGAIN) was not queued ($(cat "$STATS")): $(tail -5 "$WORK/drive.log")"
  q0=$(stat rq_queued)
  h0=$(stat rq_slot_holds)
  d0=$(g2_drops)
  redis-cli -p "$S" client pause 10000 write >/dev/null
  lsn=$(commit_lsn "UPDATE users SET name = name || 'h' WHERE id = $H")
  # H's INVAL, sent at once, blocks on the paused node until the 1 s Redis timeout drops the
  # connection, which queues it. rq_queued alone does not say so: A's probe refused again
  # (TRYAGAIN, answered just before the pause) counts too, and an unpause then let H's INVAL
  # through at once (a CI run of g2neg). So: a drop after the commit, then one more timeout's
  # length for an INVAL sent on the next connection.
  until_true 5 g2_h_queued || fail "g2: H's INVAL was not queued while $S was paused (drops $d0 -> $(g2_drops); $(cat "$STATS"))"
  sleep 1.5
  redis-cli -p "$S" client unpause >/dev/null
  stop=$((SECONDS + 20))
  while [ $SECONDS -lt $stop ]; do
    ! confirmed_past "$n" || fail "g2: confirmed $(stat confirmed) >= $n while A's INVAL was refused"
    if g2_h_gone; then gone=true; break; fi
    sleep 0.3
  done
  if [ "$neg" = true ] && [ "$gone" = true ] && [ "$(stat reconnects)" != "$r0" ] && [ "${2:-1}" = 1 ]; then
    # the stream restarted inside the window (a loaded machine: a SYNC re-sends H's INVAL on
    # its own): the case did not hold, not the control; run once more after the slot is done
    echo "g2neg: the stream restarted inside the window ($r0 -> $(stat reconnects)): the case did not hold, once more"
    again=true
  else
    [ "$(stat reconnects)" = "$r0" ] || fail "g2: the stream restarted ($r0 -> $(stat reconnects)): $(tail -5 "$WORK/drive.log")"
  fi
  if [ "$again" = true ]; then
    :
  elif [ "$neg" = true ]; then
    [ "$gone" = false ] || fail "g2neg: with oldest-only probing H's entry was invalidated while A's slot refused: the test proves nothing"
    ok "g2neg: negative control (--oldest-only): A's INVAL (slot $SA, TRYAGAIN) probes $S's queue and holds H's (another slot) for 20 s: $EH stays ($(stat rq_retries) retries)"
  else
    [ "$gone" = true ] || fail "g2: H's INVAL (slot of bucket $BH) stayed queued behind A's on $S for 20 s ($(cat "$STATS"))"
    rq_stat_above rq_slot_holds 0 || fail "g2: no slot set apart ($(cat "$STATS"))"
    ! confirmed_past "$n" || fail "g2: confirmed past A's held commit"
    ok "g2: A's INVAL refused on $S (slot $SA migrating, TRYAGAIN) waits apart; H's INVAL on the same node drained: $EH gone, A's commit still held ($(stat rq_slot_holds) slot holds, $(stat rq_retries) retries)"
  fi
  mapfile -t keys < <(redis-cli -p "$S" cluster getkeysinslot "$SA" 10000 | grep -v '^$')
  [ ${#keys[@]} = 0 ] || redis-cli -p "$S" migrate 127.0.0.1 "$T" "" 0 5000 keys "${keys[@]}" >/dev/null
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$SA" node "$t_id" >/dev/null; done
  wait_confirmed "$lsn"
  until_true 30 g2_h_gone || fail "g2: $EH survived"
  until_true 30 rq_depth_zero || fail "g2: the retry queue did not drain ($(cat "$STATS"))"
  # (the slot's bucket on T answers EPOCH, its copy naming S's run: one restart and a SYNC
  # that finds it kept, C2; not this test's subject)
  ok "g2: slot $SA finished on $T: every queued command landed, $lsn confirmed"
  stop_drive
  if [ "$again" = true ]; then case_g2 true 2; fi
}
rq_depth_zero() { [ "$(stat rq_depth)" = 0 ]; }

# G5: a node back from an old snapshot. Two ids K, L whose buckets lie on master S (not bucket
# 0's). An entry of K written, S snapshotted (SAVE), K updated: its INVAL (DEL of the entry)
# acknowledged by S, confirmed, but not in the snapshot. S shut down; L updated: its INVAL
# waits in S's retry queue. S restarted from the snapshot (a new run_id; K's entry back, its
# buckets' epoch copies carrying the resync's suffix and the former run_id). The status
# interval is 20 s, so the periodic RAISE is not what finds it: when L's commit is confirmed,
# the stream must have restarted (the first retry to S is a RAISE with the run_id check:
# EPOCH) and K's entry must be gone (the SYNC's verdict: replayed or flushed). g5neg (--no-g5,
# S's oldest queued command first, as before): L's INVAL drains on the old snapshot, L's
# commit is confirmed with no restart and K's stale entry still there.
g5_pick() {
  local id b slot0
  owners
  slot0=$(rc cluster keyslot "{$NS:0}")
  K= L= S=
  for id in $(seq 1 40); do
    b=$(bucket "$id")
    [ "$b" != 0 ] && [ "$(rc cluster keyslot "{$NS:$b}")" != "$slot0" ] || continue
    [ "$(node_port_of_bucket "$b")" != "$(node_port_of_bucket 0)" ] || continue
    if [ -z "$K" ]; then
      K=$id BK=$b S=$(node_port_of_bucket "$b")
    elif [ "$(node_port_of_bucket "$b")" = "$S" ]; then
      L=$id BL=$b
      break
    fi
  done
  [ -n "$L" ] || fail "g5: no two ids on one master other than bucket 0's"
}
g5_restart() { # PORT: starts the node again as private_redis_cluster did, from its dump.rdb
  local i d
  for i in "${!RC_PORTS[@]}"; do [ "${RC_PORTS[$i]}" = "$1" ] && break; done
  d=$WORK/rcluster/node$((i + 1))
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
    --cluster-port "$G5_BUS" --cluster-config-file "$d/nodes.conf" \
    --cluster-node-timeout "${CS_RC_NODE_TIMEOUT:-1000}" --daemonize yes \
    --pidfile "$d/redis.pid" --logfile "$WORK/rcluster$((i + 1))-g5.log" --dir "$d" >/dev/null
  until_true 30 redis_port_pong "$1" || fail "g5: $1 did not start again"
  until_true 30 rc_ok "$1" || fail "g5: $1 never reached cluster_state:ok again"
}
# g5g2: G5's check with G2's stuck slot. Slot SA of master S migrating with its bucket's keys
# split between S and T (every key but the epoch copy moved: a script naming two of its keys
# answers TRYAGAIN), then S stopped (SIGSTOP) while A (bucket in SA) and H (another slot of S)
# are updated: both INVALs time out, A's first in S's queue, the node down. S resumed (the
# same run): its run_id check must not be sent to A's bucket for ever (TRYAGAIN: the check
# moves to another bucket of S), so H's INVAL lands within 20 s while A's commit stays held,
# no stream restart. Negative control by hand: the check always to the oldest command's own
# bucket (rid_bucket returning `own`): H's entry stays.
case_g5g2() {
  local lsn n r0 q0 keys p s_id t_id epk pid i stop gone=false
  start_drive
  g2_split_slot g5g2
  for i in "${!RC_PORTS[@]}"; do [ "${RC_PORTS[$i]}" = "$S" ] && pid=$(cat "$WORK/rcluster/node$((i + 1))/redis.pid"); done
  CLEANUPS=("kill -CONT $pid" "${CLEANUPS[@]}")
  r0=$(stat reconnects)
  q0=$(stat rq_queued)
  kill -STOP "$pid"
  lsn=$(commit_lsn "UPDATE users SET name = name || 'a' WHERE id = $A")
  n=$(lsn_num "$lsn")
  until_true 30 rq_stat_above rq_queued "$q0" || { kill -CONT "$pid"; fail "g5g2: A's INVAL was not queued while $S was stopped"; }
  q0=$(stat rq_queued)
  lsn=$(commit_lsn "UPDATE users SET name = name || 'h' WHERE id = $H")
  until_true 30 rq_stat_above rq_queued "$q0" || { kill -CONT "$pid"; fail "g5g2: H's INVAL was not queued while $S was stopped"; }
  kill -CONT "$pid"
  stop=$((SECONDS + 20))
  while [ $SECONDS -lt $stop ]; do
    ! confirmed_past "$n" || fail "g5g2: confirmed $(stat confirmed) >= $n while A's INVAL was refused"
    if g2_h_gone; then gone=true; break; fi
    sleep 0.3
  done
  [ "$(stat reconnects)" = "$r0" ] || fail "g5g2: the stream restarted ($r0 -> $(stat reconnects)): $(tail -5 "$WORK/drive.log")"
  [ "$gone" = true ] || fail "g5g2: H's INVAL stayed queued behind the run_id check on $S for 20 s ($(cat "$STATS"))"
  rq_stat_above rq_rid_checks 0 || fail "g5g2: no run_id check counted ($(cat "$STATS"))"
  ok "g5g2: $S back from a stop with A's slot $SA split: the run_id check passed on another bucket of $S, H's INVAL drained ($EH gone), A's commit held, no restart ($(stat rq_rid_checks) checks)"
  mapfile -t keys < <(redis-cli -p "$S" cluster getkeysinslot "$SA" 10000 | grep -v '^$')
  [ ${#keys[@]} = 0 ] || redis-cli -p "$S" migrate 127.0.0.1 "$T" "" 0 5000 keys "${keys[@]}" >/dev/null
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$SA" node "$t_id" >/dev/null; done
  wait_confirmed "$lsn"
  until_true 30 rq_depth_zero || fail "g5g2: the retry queue did not drain ($(cat "$STATS"))"
  ok "g5g2: slot $SA finished on $T: every queued command landed"
  stop_drive
}
case_g5() {
  local neg=$1 flags=() lsn n r0 q0 rid0 ek restarted gone
  [ "$neg" = true ] && flags=(--no-g5)
  sed 's/^status_interval = .*/status_interval = 20s/' "$WORK/cs.ini" >"$WORK/cs-g5.ini"
  CONF=$WORK/cs-g5.ini start_drive "${flags[@]}"
  g5_pick
  G5_BUS=$(redis-cli -p "$S" config get cluster-port | tail -1)
  ek=$(entry_of "$BK" "$K")
  rc set "$ek" stale >/dev/null
  rid0=$(run_id_of "$S")
  [ "$(redis-cli -p "$S" save)" = OK ] || fail "g5: SAVE on $S failed"
  lsn=$(commit_lsn "UPDATE users SET name = name || 'k' WHERE id = $K")
  wait_confirmed "$lsn"
  [ "$(redis-cli -p "$S" exists "$ek")" = 0 ] || fail "g5: K's entry $ek survived its INVAL"
  r0=$(stat reconnects)
  q0=$(stat rq_queued)
  redis-cli -p "$S" shutdown nosave >/dev/null 2>&1
  lsn=$(commit_lsn "UPDATE users SET name = name || 'l' WHERE id = $L")
  n=$(lsn_num "$lsn")
  until_true 30 rq_stat_above rq_queued "$q0" || fail "g5: L's INVAL was not queued while $S was down ($(cat "$STATS"))"
  ! confirmed_past "$n" || fail "g5: L's commit confirmed while $S was down"
  g5_restart "$S"
  [ "$(run_id_of "$S")" != "$rid0" ] || fail "g5: $S kept its run_id"
  # (with the check on, the SYNC may have replayed K's commit already: asserted in g5neg)
  [ "$neg" != true ] || [ "$(redis-cli -p "$S" exists "$ek")" = 1 ] || fail "g5neg: K's entry is not back with the snapshot: the test proves nothing"
  until_true 60 confirmed_past "$n" || fail "g5: L's commit never confirmed ($(cat "$STATS")): $(tail -5 "$WORK/drive.log")"
  restarted=false gone=false
  [ "$(stat reconnects)" -gt "$r0" ] && restarted=true
  [ "$(redis-cli -p "$S" exists "$(entry_of "$BK" "$K")")" = 0 ] && gone=true
  if [ "$neg" = true ]; then
    [ "$restarted" = false ] || fail "g5neg: the stream restarted before L's commit was confirmed without the check: the test proves nothing ($(grep -c 'restart' "$WORK/drive.log") log lines)"
    [ "$gone" = false ] || fail "g5neg: K's stale entry was gone without the check: the test proves nothing"
    ok "g5neg: negative control (--no-g5): $S back from its snapshot took its retry queue, L's commit confirmed with no restart, K's stale entry $ek still there"
  else
    [ "$restarted" = true ] || fail "g5: L's commit confirmed on $S back from an old snapshot before any restart ($(cat "$STATS"))"
    grep -q 'failed the run_id check before its retry queue' "$WORK/drive.log" || fail "g5: the restart was not the retry's run_id check: $(grep -i epoch "$WORK/drive.log" | tail -3)"
    rq_stat_above rq_rid_checks 0 || fail "g5: no run_id check counted ($(cat "$STATS"))"
    [ "$gone" = true ] || fail "g5: K's stale entry $ek still there once L's commit was confirmed"
    ok "g5: $S back from an old snapshot: its first retry, a RAISE with the run_id check, answered EPOCH, the stream restarted before L's commit was confirmed, K's stale entry gone ($(stat rq_rid_checks) checks)"
  fi
  stop_drive
}

# g5b (review 39 R39-1): a fresh command's TRYAGAIN from a node whose run_id check is owed
# must not end the node's down state (before the fix, rq_put's RQ_FAIL_SLOT branch did, and the
# queue drained with no check: L confirmed, no restart, K's stale entry there). S (not bucket 0's master) holds A (slot SA, split as in g2),
# K and L. K's entry planted, SA split, S saved, K updated (DEL acknowledged), S shut down, L
# updated (queued, check owed), S started again from its dump and paused for writes at once
# (the check, a write script, is postponed and times out: backoff, not probing; a TRYAGAIN is
# answered before a pause). A updated 12 times: S must never be said to answer again; S
# unpaused: the check answers EPOCH and the stream restarts; the slot finished, L lands.
case_g5b() {
  local id b s slot0 lsn n r0 q0 rid0 ek keys s_id t_id epk i d line0 tries flipped=false
  sed 's/^status_interval = .*/status_interval = 20s/' "$WORK/cs.ini" >"$WORK/cs-g5.ini"
  CONF=$WORK/cs-g5.ini start_drive
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  primary "$DB" -c "INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 40) i" >/dev/null
  owners
  slot0=$(rc cluster keyslot "{$NS:0}")
  S= A= K= L=
  local seen=" "
  for id in $(seq 1 40); do
    b=$(bucket "$id")
    [ "$b" != 0 ] || continue
    s=$(rc cluster keyslot "{$NS:$b}")
    [ "$s" != "$slot0" ] && [ "$(node_port_of_bucket "$b")" != "$(node_port_of_bucket 0)" ] || continue
    [ -z "$S" ] && S=$(node_port_of_bucket "$b")
    [ "$(node_port_of_bucket "$b")" = "$S" ] || continue
    [[ $seen != *" $s "* ]] || continue
    seen+="$s "
    if [ -z "$A" ]; then A=$id BA=$b SA=$s
    elif [ -z "$K" ]; then K=$id BK=$b
    else L=$id BL=$b; break; fi
  done
  [ -n "$L" ] || fail "g5b: no three ids in three slots of one master"
  for i in "${RC_PORTS[@]}"; do [ "$i" != "$S" ] && T=$i && break; done
  echo "g5b: S=$S T=$T A=$A/$BA/$SA K=$K/$BK L=$L/$BL"
  ek=$(entry_of "$BK" "$K")
  rc set "$ek" stale >/dev/null
  s_id=$(redis-cli -p "$S" cluster myid)
  t_id=$(redis-cli -p "$T" cluster myid)
  redis-cli -p "$T" cluster setslot "$SA" importing "$s_id" >/dev/null
  redis-cli -p "$S" cluster setslot "$SA" migrating "$t_id" >/dev/null
  epk=$(redis-cli -p "$S" cluster getkeysinslot "$SA" 1000 | grep -v '^$' | grep ':epoch$' | head -1)
  [ -n "$epk" ] || fail "g5b: no epoch copy in slot $SA on $S"
  mapfile -t keys < <(redis-cli -p "$S" cluster getkeysinslot "$SA" 1000 | grep -v '^$' | grep -vxF "$epk")
  redis-cli -p "$S" migrate 127.0.0.1 "$T" "" 0 5000 keys "${keys[@]}" >/dev/null
  G5_BUS=$(redis-cli -p "$S" config get cluster-port | tail -1)
  rid0=$(run_id_of "$S")
  [ "$(redis-cli -p "$S" save)" = OK ] || fail "g5b: SAVE on $S failed"
  lsn=$(commit_lsn "UPDATE users SET name = name || 'k' WHERE id = $K")
  wait_confirmed "$lsn"
  [ "$(redis-cli -p "$S" exists "$ek")" = 0 ] || fail "g5b: K's entry $ek survived its INVAL"
  r0=$(stat reconnects)
  q0=$(stat rq_queued)
  redis-cli -p "$S" shutdown nosave >/dev/null 2>&1
  lsn=$(commit_lsn "UPDATE users SET name = name || 'l' WHERE id = $L")
  n=$(lsn_num "$lsn")
  until_true 30 rq_stat_above rq_queued "$q0" || fail "g5b: L's INVAL was not queued"
  for i in "${!RC_PORTS[@]}"; do [ "${RC_PORTS[$i]}" = "$S" ] && break; done
  d=$WORK/rcluster/node$((i + 1))
  redis-server --port "$S" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
    --cluster-port "$G5_BUS" --cluster-config-file "$d/nodes.conf" \
    --cluster-node-timeout "${CS_RC_NODE_TIMEOUT:-1000}" --daemonize yes \
    --pidfile "$d/redis.pid" --logfile "$WORK/rcluster$((i + 1))-g5b.log" --dir "$d" >/dev/null
  CLEANUPS=("redis-cli -p $S client unpause" "${CLEANUPS[@]}")
  for i in $(seq 1 500); do
    [ "$(redis-cli -p "$S" client pause 60000 write 2>/dev/null)" = OK ] && break
    sleep 0.01
  done
  [ "$(run_id_of "$S")" != "$rid0" ] || fail "g5b: $S kept its run_id"
  until_true 30 rc_ok "$S" || fail "g5b: $S never ok"
  [ "$(redis-cli -p "$S" exists "$ek")" = 1 ] || fail "g5b: K's entry not back with the snapshot"
  [ "$(stat reconnects)" = "$r0" ] || fail "g5b: the stream restarted before the pause (the check won): $(grep -a 'run_id check' "$WORK/drive.log" | tail -2)"
  sleep 4
  line0=$(wc -l <"$WORK/drive.log")
  for tries in $(seq 1 12); do
    commit_lsn "UPDATE users SET name = name || 'a' WHERE id = $A" >/dev/null
    for i in $(seq 1 30); do
      if tail -n +"$line0" "$WORK/drive.log" | grep -aq "redis node 127.0.0.1:$S answers again"; then flipped=true; break; fi
      sleep 0.05
    done
    [ "$flipped" = true ] && break
    [ "$(stat reconnects)" = "$r0" ] || break
  done
  redis-cli -p "$S" client unpause >/dev/null
  [ "$flipped" = false ] || fail "g5b: $S, back from an old snapshot with its run_id check owed, was taken as up on a TRYAGAIN of slot $SA (its queue then drains unchecked: review 39 R39-1)"
  # the check goes out once S takes writes: EPOCH, the stream restarts before L's commit
  until_true 30 grep -aq 'failed the run_id check before its retry queue' "$WORK/drive.log" ||
    fail "g5b: no run_id check failed on $S ($(cat "$STATS"))"
  [ "$(redis-cli -p "$S" exists "$ek")" = 0 ] || ! confirmed_past "$n" ||
    fail "g5b: L's commit confirmed on $S back from an old snapshot with K's stale entry there"
  ok "g5b: $S back from an old snapshot, slot $SA split: $tries TRYAGAINs did not end its down state, its run_id check answered EPOCH and the stream restarted"
  # the slot finished on T (the SYNC cannot stamp a split bucket): L lands, K's entry gone
  mapfile -t keys < <(redis-cli -p "$S" cluster getkeysinslot "$SA" 10000 | grep -v '^$')
  [ ${#keys[@]} = 0 ] || redis-cli -p "$S" migrate 127.0.0.1 "$T" "" 0 5000 keys "${keys[@]}" >/dev/null
  for i in "${RC_PORTS[@]}"; do redis-cli -p "$i" cluster setslot "$SA" node "$t_id" >/dev/null; done
  until_true 90 confirmed_past "$n" || fail "g5b: L's commit never confirmed ($(cat "$STATS"))"
  [ "$(redis-cli -p "$S" exists "$ek")" = 0 ] || fail "g5b: K's stale entry $ek still on $S once L's commit was confirmed"
  ok "g5b: slot $SA finished: L's commit confirmed after the resynchronisation, K's stale entry gone"
  stop_drive
}

# V9c: an entry MIGRATEd alone (ahead of its bucket's other keys) to another master T; an
# UPDATE of its row: the INVAL on the migrating node S is refused ("non local key": it DELs the
# entry inside its body). It waits in S's retry queue, its slot apart (G2): retried, no stream
# restart, the commit not confirmed. The slot finished on T: the entry is gone, the commit
# confirmed (the bucket's copy on T then answers EPOCH: a restart, a SYNC finding it kept, C2),
# cachesvc-verify 0 stale. Negative control (--no-v9c): the
# refusal restarts the stream, as before.
v9c_restarted() { [ "$(stat reconnects)" -gt "$1" ]; }
case_v9c() {
  local neg=$1 flags=() id b slot slot0 lsn n gen e keys p from to from_id to_id r0 q0 t0
  [ "$neg" = true ] && flags=(--no-v9c)
  v9_keyed_entry "${flags[@]}"
  v9_fill_entry
  [ "$(rc exists "$e")" = 1 ] || fail "v9c: entry $e not filled"
  from=$(rc_master_of "$slot")
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$from" ] && to=$p && break; done
  from_id=$(redis-cli -p "$from" cluster myid)
  to_id=$(redis-cli -p "$to" cluster myid)
  redis-cli -p "$to" cluster setslot "$slot" importing "$from_id" >/dev/null
  redis-cli -p "$from" cluster setslot "$slot" migrating "$to_id" >/dev/null
  redis-cli -p "$from" migrate 127.0.0.1 "$to" "" 0 5000 keys "$e" >/dev/null
  r0=$(stat reconnects)
  q0=$(stat rq_queued)
  lsn=$(commit_lsn "UPDATE users SET name = name || 'x' WHERE id = $id")
  n=$(lsn_num "$lsn")
  if [ "$neg" = true ]; then
    until_true 30 v9c_restarted "$r0" || fail "v9cneg: the refused INVAL did not restart the stream ($(cat "$STATS"))"
    grep -q "non local key" "$WORK/drive.log" || fail "v9cneg: the stream restarted for another reason: $(tail -5 "$WORK/drive.log")"
    ok "v9cneg: negative control (--no-v9c): the INVAL refused on $from (non local key) restarts the stream ($r0 -> $(stat reconnects) connections)"
  else
    until_true 30 rq_stat_above rq_queued "$q0" || fail "v9c: the refused INVAL was not queued ($(cat "$STATS")): $(tail -5 "$WORK/drive.log")"
    t0=$(stat rq_retries)
    until_true 30 rq_stat_above rq_retries "$((t0 + 2))" || fail "v9c: the queued INVAL was not retried ($(cat "$STATS"))"
    [ "$(stat reconnects)" = "$r0" ] || fail "v9c: the stream restarted ($r0 -> $(stat reconnects)): $(tail -5 "$WORK/drive.log")"
    ! confirmed_past "$n" || fail "v9c: confirmed $(stat confirmed) >= $n while its INVAL was refused"
    rq_stat_above rq_slot_holds 0 || fail "v9c: the slot was not set apart ($(cat "$STATS"))"
    ok "v9c: the INVAL refused on $from (non local key: its entry moved alone to $to) waits in the retry queue ($(stat rq_retries) retries): no restart, $lsn held"
  fi
  mapfile -t keys < <(redis-cli -p "$from" cluster getkeysinslot "$slot" 10000 | grep -v '^$')
  [ ${#keys[@]} = 0 ] || redis-cli -p "$from" migrate 127.0.0.1 "$to" "" 0 5000 keys "${keys[@]}" >/dev/null
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" cluster setslot "$slot" node "$to_id" >/dev/null; done
  wait_confirmed "$lsn"
  [ "$(redis-cli -p "$to" exists "$e")" = 0 ] || fail "v9c: $e survived on $to"
  v9_verify
  [ "$V9_VRC" = 0 ] && [ "$V9_STALE" = 0 ] || fail "v9c: cachesvc-verify: exit $V9_VRC, stale $V9_STALE: $(cat "$WORK/verify.err")"
  ok "v9c: slot $slot finished on $to: the INVAL landed there, $e gone, $lsn confirmed; cachesvc-verify: $V9_CHECKED checked, 0 stale"
  stop_drive
}

# The paced drain: one master P stopped (SIGSTOP; cluster-require-full-coverage no) while 12
# TRUNCATEs fan their GEN_SETs out to every bucket: hundreds of P's commands queue. P resumed:
# the queue drains with at most RQ_DRAIN_WINDOW (256) of its commands in flight (rq_out_max),
# everything confirmed. Negative control (--unpaced: the whole queue at once, as before): more.
pace_deep() { [ "$(stat rq_depth)" -gt 400 ]; }
case_pace() {
  local neg=$1 flags=() p i m0 pid lsn k
  [ "$neg" = true ] && flags=(--unpaced)
  owners
  m0=$(node_port_of_bucket 0)
  for p in "${RC_PORTS[@]}"; do [ "$p" != "$m0" ] && [ "$p" != "${RC_PORTS[0]}" ] && break; done
  for i in "${!RC_PORTS[@]}"; do [ "${RC_PORTS[$i]}" = "$p" ] && pid=$(cat "$WORK/rcluster/node$((i + 1))/redis.pid"); done
  CLEANUPS=("kill -CONT $pid" "${CLEANUPS[@]}")
  for i in "${RC_PORTS[@]}"; do redis-cli -p "$i" config set cluster-require-full-coverage no >/dev/null; done
  start_drive "${flags[@]}"
  lsn=$(commit_lsn "TRUNCATE users")
  wait_confirmed "$lsn"
  kill -STOP "$pid"
  for k in $(seq 1 12); do lsn=$(commit_lsn "TRUNCATE users"); done
  until_true 60 pace_deep || { kill -CONT "$pid"; fail "pace: fewer than 400 commands queued for the stopped master $p ($(cat "$STATS"))"; }
  sleep 1 # the 12 commits' fan-outs all sent
  kill -CONT "$pid"
  wait_confirmed "$lsn"
  until_true 60 rq_depth_zero || fail "pace: the retry queue did not drain ($(cat "$STATS"))"
  if [ "$neg" = true ]; then
    [ "$(stat rq_out_max)" -gt 256 ] || fail "paceneg: unpaced, at most $(stat rq_out_max) queued commands were in flight: the test proves nothing"
    ok "paceneg: negative control (--unpaced): master $p back, $(stat rq_out_max) of its queued commands in flight at once"
  else
    [ "$(stat rq_out_max)" -le 256 ] || fail "pace: $(stat rq_out_max) queued commands in flight at once (bound 256)"
    ok "pace: master $p back: its queue (over 400 commands) drained with at most $(stat rq_out_max) in flight (bound 256), $lsn confirmed"
  fi
  stop_drive
}

# Several parts may share one cluster (inval_cluster.sh PART PART...: meson.build's merged
# pairs, a guarantee and its negative control, each of which would otherwise pay a cluster start
# and the setup above): run in order, each after the cluster is settled again (every node up,
# cluster_state:ok everywhere, no node flagged fail or pfail), the previous part's invalidator
# stopped (basic leaves it running) and its log set aside (drive.PART.log: v9cneg greps
# drive.log for its own refusal). Each part starts its own invalidator (its stats file new) and
# rewrites the rows it uses.
prev=
for PART in "${@:-basic}"; do
  if [ -n "$prev" ]; then
    [ -z "$DPID" ] || stop_drive
    until_true 60 cluster_settled || fail "part $PART: the cluster did not settle after part $prev"
    [ ! -e "$WORK/drive.log" ] || mv "$WORK/drive.log" "$WORK/drive.$prev.log"
    echo "---- part $PART (same cluster)"
  fi
  prev=$PART
  case "$PART" in
  r18drain) case_r18drain ;;
  g2) case_g2 false ;;
  g2neg) case_g2 true ;;
  g5) case_g5 false ;;
  g5neg) case_g5 true ;;
  g5g2) case_g5g2 ;;
  g5b) case_g5b ;;
  v9c) case_v9c false ;;
  pace) case_pace false ;;
  paceneg) case_pace true ;;
  v9cneg) case_v9c true ;;
  r18load) case_r18load ;;
  r18early) case_r18early ;;
  r18stall) case_r18stall ;;
  r51) case_r51 fix ;;
  r51neg) case_r51 neg ;;
  r51fb) case_r51 fb ;;
  r26carry) case_r26carry ;;
  r18requeue) case_r18requeue ;;
  basic) case_basic ;;
  v9b) case_v9b ;;
  v9ask) case_v9ask ;;
  v2) case_v2 ;;
  v1) case_v1 ;;
  v5) case_v5 ;;
  w3) case_w3 ;;
  dl) case_dl false ;;
  dlneg) case_dl true ;;
  v3) case_v3 ;;
  c2) case_c2 ;;
  i4neg) case_i4neg ;;
  c1) case_c1 ;;
  c3) case_c3 ;;
  *) fail "unknown part $PART" ;;
  esac
done
