#!/usr/bin/env bash
# engine_shards_inval.sh - one invalidator per shard (issue #18, SHARDS.md section 7 step 4), on a
# private sandbox of two shards (scripts/sandbox --shards 2 --replicas 1), the invalidator on and
# fences on, through tests/integration/shard_drive --stdin (the engine alone; the daemon on a
# sharded config: sandbox_shards.sh). shard_map = ranges: key 5 lives on s1, key 1500 on s2; both primaries hold a
# row under both ids, each with its own value, so an answer from the wrong shard is seen.
#   (a) s1's primary commits one transaction changing ids 5 AND 1500 there: key 5 (s1's entry)
#       is invalidated and re-read with s1's new row; key 1500's entry (s2's, same id) stays a
#       cache hit with s2's row: s1's WAL never touches s2's keyspace. Then the same on s2's
#       primary: key 1500 re-read with s2's new row, key 5 still a hit with s1's.
#   (b) isolation: s1's primary stopped: s1's invalidator leaves streaming, s2's keeps
#       streaming; key 1500 still a hit, a change on s2 still invalidates it; s2's position
#       (<ns>@s2:inv:pos) never moves backwards and s2's epoch is unchanged (not flushed).
#       s1's primary back and its slot dropped (a gap flush of s1's keyspace): key 5 misses
#       (s1's generation bumped), key 1500 is still a hit, s2's epoch unchanged.
#   (c) negative control: shard_drive --inv-shard0 makes every shard's invalidator stream s1's
#       WAL (each in its own keyspace, with its own slot): (a)'s check must fail for both
#       commits: s1's change of id 1500 deletes s2's entry of it, and s2's change of key 1500
#       never invalidates it (its old row keeps coming from the cache for the control's 20 s bound);
#       then, as (b)'s control, s1's primary stopped: s2's invalidator leaves streaming and a
#       change on s2 is no longer invalidated.
# No timing is asserted: every wait is bounded (60 s) and only its outcome is checked.
set -euo pipefail
. "$(dirname "$0")/shard_lib.sh"
DPID=
stop_drive() {
  if [ -n "$DPID" ]; then
    { echo quit >&7; } 2>/dev/null || true
    exec 7>&- 8<&-
    local deadline=$((SECONDS + 30))
    while kill -0 "$DPID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    DPID=
  fi
}
cleanup() { stop_drive; shard_cleanup; }
trap cleanup EXIT
shard_sandbox eshinv
R() { redis-cli -u "$CS_REDIS_URL" "$@"; }
runpg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

RUN=$RANDOM$RANDOM
for k in 1 2; do
  pg "$(port_of $k PRIMARY)" -c "CREATE TABLE t (id int8 PRIMARY KEY, v text)" \
    -c "INSERT INTO t VALUES (5, 's$k-5-$RUN'), (1500, 's$k-1500-$RUN')" \
    -c "CREATE PUBLICATION cs_pub FOR TABLE t"
done
for k in 1 2; do
  deadline=$((SECONDS + 60))
  until [ "$(pg "$(port_of $k REPLICA1)" -c "SELECT count(*) FROM t" 2>/dev/null || true)" = 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "shard$k's replica did not replay the rows"
    sleep 0.2
  done
done

config() { # NAMESPACE
  cat <<INI
[cachesvc]
listen = 127.0.0.1:1
admin_listen =
fence = true
verify_interval = 0
shard_map = ranges
shard_ranges = 1-1000:s1, 1001-2000:s2
[redis]
url = $CS_REDIS_URL
namespace = $1
[invalidator]
enabled = true
slot = cs_inv
publication = cs_pub
$(shard_sections cs_inv)
[query t]
sql = SELECT v FROM t WHERE id = \$1
params = id:int8
shard_key = id
ttl = 300s
invalidate_on = t(id = \$1)
INI
}

# the driver as a coprocess (fds 7 and 8): one command a line, each answer read with a bound
start_drive() { # CONFIG [--inv-shard0]
  coproc DRV { "$DRIVE" --stdin ${2:+"$2"} "$1" t 2>"$SB/drive.err"; }
  DPID=$DRV_PID
  # fixed copies: a coprocess's own descriptors are closed in subshells ($(...))
  exec 7>&"${DRV[1]}" 8<&"${DRV[0]}"
  local line
  read -r -t 60 line <&8 || fail "shard_drive not ready in 60 s: $(cat "$SB/drive.err")"
  [ "$line" = ready ] || fail "shard_drive: $line $(cat "$SB/drive.err")"
}
get() { # KEY: prints the answer line
  local line
  echo "get $1" >&7
  read -r -t 60 line <&8 || fail "no answer for key $1 in 60 s: $(cat "$SB/drive.err")"
  echo "$line"
}
metrics() { # PREFIX: prints the matching lines
  local line
  echo "metrics $1" >&7
  while read -r -t 60 line <&8; do
    [ "$line" = end ] && return 0
    echo "$line"
  done
  fail "no metrics in 60 s"
}
# until KEY is answered from the cache with VALUE (at most 60 s): 0, else 1
wait_hit() {
  local deadline=$((SECONDS + 60)) line
  while [ $SECONDS -lt $deadline ]; do
    line=$(get "$1")
    [[ $line == *" err=0 src=cache result="*"$2"* ]] && return 0
    sleep 0.1
  done
  echo "key $1: last answer $line (want $2 from the cache)"
  return 1
}
# until KEY answers VALUE, from anywhere (at most BOUND s, 60 by default; the controls wait 20 s
# for what must not happen: the invalidation they break takes about a second when it works)
wait_value() { # KEY VALUE [BOUND]
  local deadline=$((SECONDS + ${3:-60})) line
  while [ $SECONDS -lt $deadline ]; do
    line=$(get "$1")
    [[ $line == *" err=0 "*"result="*"$2"* ]] && return 0
    sleep 0.1
  done
  echo "key $1: last answer $line (want $2)"
  return 1
}
# KEY answers exactly VALUE from the cache now
is_hit() {
  local line
  line=$(get "$1")
  [[ $line == *" err=0 src=cache result="*"$2" ]] || { echo "key $1: $line (want $2 from the cache)"; return 1; }
}
state_of() { # SHARD: the invalidator's state from /metrics (shard label)
  metrics 'cachesvc_invalidator_status{' | grep "shard=\"$1\"" | grep ' 1$' | sed 's/.*state="\([a-z]*\)".*/\1/'
}
wait_state() { # SHARD STATE [not]
  local deadline=$((SECONDS + 60)) st
  while [ $SECONDS -lt $deadline ]; do
    st=$(state_of "$1")
    if [ "${3:-}" = not ]; then [ "$st" != "$2" ] && return 0; else [ "$st" = "$2" ] && return 0; fi
    sleep 0.2
  done
  echo "shard $1's invalidator: $st"
  return 1
}
lsn_num() { # the position as Redis holds it (16 hex digits, cs_lsn_hex) -> decimal; else fail
  [[ ${1:-} =~ ^[0-9A-Fa-f]{16}$ ]] || fail "not a position: '${1:-}'"
  echo $((16#$1))
}

cur() { pg "$(port_of "$1" PRIMARY)" -c "SELECT v FROM t WHERE id = $2"; } # SHARD ID
# (a)'s checks on a running driver, one half for each shard's commit: a commit on shard K's
# primary changing ids 5 and 1500 invalidates K's key and not the other shard's entry of the
# same id; each re-read is its own primary's row
half() { # K: 1 (its key 5, the other's 1500) or 2 (its key 1500, the other's 5)
  local k=$1 mine other o v_mine v_other
  if [ "$k" = 1 ]; then mine=5 other=1500 o=2; else mine=1500 other=5 o=1; fi
  wait_hit "$mine" "$(cur "$k" "$mine")" || return 1
  v_other=$(cur "$o" "$other")
  wait_hit "$other" "$v_other" || return 1
  pg "$(port_of "$k" PRIMARY)" -c "BEGIN" -c "UPDATE t SET v = v || '-a$k' WHERE id IN (5, 1500)" -c "COMMIT"
  v_mine=$(cur "$k" "$mine")
  # the key of K is invalidated once K's invalidator handled the commit (the other id's DEL,
  # in K's keyspace, went in the same INVAL): the other shard's entry must still be a hit
  wait_value "$mine" "$v_mine" "${HALF_BOUND:-60}" || { echo "(a) s$k's change of key $mine never invalidated its entry"; return 1; }
  # and stay one for HALF_HOLD s (3; the control's 20): a wrong DEL of it would come from the
  # other shard's invalidator, which may be behind this one (review 28 R28-4)
  local hold=$((SECONDS + ${HALF_HOLD:-3}))
  while :; do
    is_hit "$other" "$v_other" || { echo "(a) s$k's commit touched s$o's entry of id $other"; return 1; }
    [ $SECONDS -lt $hold ] || break
    sleep 0.2
  done
  wait_hit "$mine" "$v_mine" || return 1
}

# ---- (a) per shard invalidation --------------------------------------------------------------
NS=esi_$RUN
config "$NS" >"$SB/a.ini"
start_drive "$SB/a.ini"
wait_state s1 streaming || fail "(a) s1's invalidator"
wait_state s2 streaming || fail "(a) s2's invalidator"
msg=$(half 1) || fail "(a) $msg"
msg=$(half 2) || fail "(a) $msg"
for k in 1 2; do
  [ "$(R EXISTS "$NS@s$k:epoch")" = 1 ] && [ "$(R EXISTS "$NS@s$k:inv:pos")" = 1 ] ||
    fail "(a) shard s$k's epoch or position not under $NS@s$k: $(R --scan --pattern "$NS*" | sort | head -30)"
done
[ "$(R EXISTS "$NS:epoch")" = 0 ] && [ "$(R EXISTS "$NS:inv:pos")" = 0 ] ||
  fail "(a) an unsharded epoch or position written under $NS"
ok "(a) a commit on s1 invalidated s1's key 5 and not s2's entry of id 1500, and vice versa; each re-read is its own primary's row; epoch and position under $NS@s1 and $NS@s2"

# ---- (b) isolation: s1's primary down, then its slot dropped (a gap flush) -------------------
pos_before=$(lsn_num "$(R GET "$NS@s2:inv:pos")")
[ "$pos_before" -gt 0 ] || fail "(b) s2's position is 0"
gap_count() { metrics 'cachesvc_invalidator_gap_flushes_total{' | grep "shard=\"$1\"" | awk '{print $2}'; }
gaps1_before=$(gap_count s1) gaps2_before=$(gap_count s2)
epoch2=$(R GET "$NS@s2:epoch")
epoch1=$(R GET "$NS@s1:epoch")
v5=$(cur 1 5)
is_hit 5 "$v5" || fail "(b) key 5 not a hit before s1's primary stops"
# s1's stream restarts at its slot's position: a commit past it ((a)'s update of key 5, when
# the flushed position still trailed it) is decoded again once the primary is back and
# deletes key 5's entry again, a miss the check below would take for the flush's (a CI run).
# So s1's slot is first flushed past everything s1 committed.
s1_lsn=$(pg "$(port_of 1 PRIMARY)" -c "SELECT pg_current_wal_lsn()")
s1_flushed() { [ "$(pg "$(port_of 1 PRIMARY)" -c "SELECT confirmed_flush_lsn >= '$s1_lsn'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cs_inv_s1'")" = t ]; }
deadline=$((SECONDS + 30))
until s1_flushed; do
  [ $SECONDS -lt $deadline ] || fail "(b) s1's slot was never flushed past $s1_lsn"
  sleep 0.2
done
pid=$(head -1 "$SB/shard1/primary/postmaster.pid")
kill -INT "$pid"
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "(b) s1's primary did not stop"
  sleep 0.2
done
wait_state s1 streaming not || fail "(b) s1's invalidator still streaming with its primary down"
[ "$(state_of s2)" = streaming ] || fail "(b) s2's invalidator left streaming: $(state_of s2)"
is_hit 1500 "$(pg "$(port_of 2 PRIMARY)" -c "SELECT v FROM t WHERE id = 1500")" || fail "(b) key 1500 not a hit with s1 down"
pg "$(port_of 2 PRIMARY)" -c "UPDATE t SET v = v || '-b' WHERE id = 1500"
msg=$(wait_value 1500 "s2-1500-$RUN-a2-b") || fail "(b) s2's invalidation with s1 down: $msg"
msg=$(wait_hit 1500 "s2-1500-$RUN-a2-b") || fail "(b) $msg"
pos_mid=$(lsn_num "$(R GET "$NS@s2:inv:pos")")
[ "$pos_mid" -ge "$pos_before" ] || fail "(b) s2's position moved backwards: $pos_before -> $pos_mid"
[ "$(R GET "$NS@s2:epoch")" = "$epoch2" ] || fail "(b) s2's epoch changed with s1 down"
ok "(b) s1's primary down: s1's invalidator $(state_of s1), s2's streaming; key 1500 a hit and invalidated by s2's change; s2's position $pos_before -> $pos_mid, its epoch kept"
# s1 back, its slot dropped while its invalidator waits: s1's invalidator recreates it and flushes s1's keyspace
runpg "$CS_PG_BIN/pg_ctl" -D "$SB/shard1/primary" -l "$SB/log/s1-primary-again.log" -w -t 60 start >/dev/null ||
  fail "(b) s1's primary did not start"
# review 28 R28-5: key 5 a hit until the slot is dropped, so that its miss below is the
# flush's; and s1's generation is the one the flush bumps, s2's untouched
msg=$(is_hit 5 "$v5") || fail "(b) key 5 not a hit with s1's primary back, before its slot is dropped: $msg"
gen1=$(R GET "$NS@s1:g:t") gen2=$(R GET "$NS@s2:g:t")
deadline=$((SECONDS + 60))
until pg "$(port_of 1 PRIMARY)" -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'cs_inv_s1' AND active_pid IS NOT NULL" -c "SELECT pg_drop_replication_slot('cs_inv_s1')" >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || fail "(b) could not drop s1's slot"
  sleep 0.1
done
msg=$(wait_state s1 streaming) || fail "(b) s1's invalidator did not come back: $msg"
gaps=$(gap_count s1) gaps2=$(gap_count s2)
[ "$gaps" -gt "$gaps1_before" ] || fail "(b) no gap flush counted on s1: $gaps1_before -> $gaps"
[ "$gaps2" = "$gaps2_before" ] || fail "(b) s2 counted a gap flush: $gaps2_before -> $gaps2"
line=$(get 5)
[[ $line == *" src=cache "* ]] && fail "(b) key 5 still a hit after s1's gap flush: $line"
[ "${gen1:-0}" -lt "$(R GET "$NS@s1:g:t")" ] || fail "(b) s1's generation not bumped by its gap flush: '$gen1' -> '$(R GET "$NS@s1:g:t")'"
[ "$gen2" = "$(R GET "$NS@s2:g:t")" ] || fail "(b) s2's generation changed by s1's gap flush: '$gen2' -> '$(R GET "$NS@s2:g:t")'"
msg=$(is_hit 1500 "s2-1500-$RUN-a2-b") || fail "(b) s2's key 1500 lost to s1's gap flush: $msg"
[ "$(R GET "$NS@s2:epoch")" = "$epoch2" ] || fail "(b) s2's epoch changed by s1's gap flush"
pos_after=$(lsn_num "$(R GET "$NS@s2:inv:pos")")
[ "$pos_after" -ge "$pos_mid" ] || fail "(b) s2's position moved backwards: $pos_mid -> $pos_after"
ok "(b) s1's slot dropped: s1 flushed (gap flushes s1 $gaps1_before -> $gaps, s2 $gaps2_before -> $gaps2; key 5 a hit until then, missed after: $line; s1's generation ${gen1:-0} -> $(R GET "$NS@s1:g:t"), s2's kept at ${gen2:-none}); key 1500 still a hit, s2's epoch and position kept ($pos_after); s1's epoch ${epoch1:0:12}... -> $(R GET "$NS@s1:epoch" | cut -c1-12)..."
stop_drive

# ---- (c) negative control: every shard's invalidator on s1's primary ----------------------------
for k in 1 2; do # fresh rows (the control starts where (a) started)
  pg "$(port_of $k PRIMARY)" -c "UPDATE t SET v = 's$k-' || id || '-$RUN'"
done
# s2's WAL made far ahead of s1's: the control's s2 invalidator writes s1's LSNs into s2's
# fences and horizon, which must then lie below every data LSN of s2 (else they would refuse
# s2's fills, by chance of the two WALs' positions, instead of letting the stale row be served)
pg "$(port_of 2 PRIMARY)" -c "CREATE TABLE pad AS SELECT i, repeat('w', 200) AS p FROM generate_series(1, 100000) i"
[ "$(pg "$(port_of 1 PRIMARY)" -c "SELECT pg_current_wal_lsn() + 8000000 < '$(pg "$(port_of 2 PRIMARY)" -c "SELECT pg_current_wal_lsn()")'::pg_lsn")" = t ] ||
  fail "(c) s2's WAL is not 8 MB ahead of s1's: the control proves nothing"
NS=esn_$RUN
config "$NS" >"$SB/c.ini"
start_drive "$SB/c.ini" --inv-shard0
HALF_BOUND=20 HALF_HOLD=20
wait_state s1 streaming || fail "(c) s1's invalidator"
wait_state s2 streaming || fail "(c) s2's invalidator (on s1's primary)"
if msg1=$(half 1); then
  fail "(c) control: every invalidator on s1's WAL and (a)'s check of s1's commit still passed"
fi
[[ $msg1 == *"touched s2's entry"* ]] || fail "(c) control: s1's commit: not the failure sought: $msg1"
if msg2=$(half 2); then
  fail "(c) control: every invalidator on s1's WAL and (a)'s check of s2's commit still passed"
fi
[[ $msg2 == *"never invalidated"* ]] || fail "(c) control: s2's commit: not the failure sought: $msg2"
ok "(c) control: with every shard's invalidator on s1's primary, (a)'s check fails for both commits: $(tail -1 <<<"$msg1"); $(tail -1 <<<"$msg2") ($(head -1 <<<"$msg2"))"
# (b)'s control: s1's primary stopped, s2's invalidator (on it here) must leave streaming and
# s2's change of key 1500 go uninvalidated: what (b) checks does not hold
pid=$(head -1 "$SB/shard1/primary/postmaster.pid")
kill -INT "$pid"
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "(c) s1's primary did not stop"
  sleep 0.2
done
msg=$(wait_state s2 streaming not) || fail "(c) control: s2's invalidator on s1's primary kept streaming with it down: $msg"
v=$(cur 2 1500) # (its entry holds an older row: the control's staleness above)
msg=$(wait_hit 1500 "s2-1500-$RUN") || fail "(c) control: $msg"
pg "$(port_of 2 PRIMARY)" -c "UPDATE t SET v = v || '-cb' WHERE id = 1500"
if msg=$(wait_value 1500 "$v-cb" 20); then
  fail "(c) control: s2's change invalidated though its invalidator follows the stopped s1"
fi
ok "(c) control of (b): s1's primary stopped, s2's invalidator on it left streaming ($(state_of s2)) and s2's change of key 1500 was not invalidated ($msg)"
stop_drive
