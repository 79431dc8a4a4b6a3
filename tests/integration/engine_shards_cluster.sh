#!/usr/bin/env bash
# engine_shards_cluster.sh - two shards on a Redis Cluster (issue #18, SHARDS.md section 7 step
# 3b (2); issue #17): a private sandbox of two shards (scripts/sandbox --shards 2 --replicas 1)
# and a private 3-master Redis Cluster, the engine driven by tests/integration/shard_drive
# --stdin: A with fences and one invalidator per shard, B and C readers (fences on, no
# invalidator), C with the test hook --cluster-shard0 (every master's pub/sub subscribes the
# first shard's generations channel alone and the per-master epoch check reads the first shard's
# copies alone: the build before 3b (2)). shard_map = ranges: ids 1-1000 live on s1, 1001-2000
# on s2; both primaries hold every id, each with its own value.
#   (a) per-shard invalidation on the cluster: a commit on s1 changing ids 5 and 1500 invalidates
#       s1's key 5 and not s2's entry of id 1500, and vice versa (as engine_shards_inval.sh (a)).
#   (b) each shard's 256 epoch copies {<ns>@<s>:<b>}:epoch are on the cluster, each on the
#       master serving its bucket's slot, stamped with that master's run_id, one random part per
#       shard, the two shards' apart; no copy under {<ns>:<b>}.
#   (c) pub/sub per shard on the cluster: every master has A's and B's subscriptions of both
#       shards' channels (C's of s1's only); an admin INVALIDATE of key 1500 (A) makes B miss
#       it and keeps key 5 a hit; a generation of s2 announced only on a master's pub/sub (the
#       generations poll cannot learn it) makes B stop serving key 1500 from the cache, key 5
#       still a hit; control C keeps serving 1500 from the cache; an admin INVALIDATE of the
#       whole query (A) then bumps both shards and B caches both keys again.
#   (d) a Redis data-loss event for every shard: a master holding neither shard's bucket 0 but
#       a bucket of a key of each shard (X1 on s1, X2 on s2) is SAVEd, both keys are changed
#       and invalidated, A (the invalidators) stops, and the master restarts from that old RDB
#       (both stale entries back, stamped with the old run): B's check finds both shards'
#       copies foreign and serves neither stale entry; control C (s1's copies alone checked)
#       serves X2's stale entry from the cache. A started again: each shard's resynchronisation
#       counts a data loss (cachesvc_invalidator_redis_data_loss_total{shard=...}) and B caches
#       X1 and X2 again, fresh.
#   (e) control of (a): A again with --inv-shard0 (every shard's invalidator on s1's primary):
#       s1's commit deletes s2's entry of id 1500.
# No timing is asserted: every wait is bounded and only its outcome is checked.
set -euo pipefail
. "$(dirname "$0")/shard_lib.sh"
command -v redis-cli >/dev/null || { echo "SKIP: no redis-cli"; exit 77; }
PY3=/usr/bin/python3
[ -x "$PY3" ] || PY3=python3
declare -A DW DR DP # a driver's fds (write, read) and pid, by name
stop_drive() { # NAME
  local n=$1 pid=${DP[$1]:-}
  [ -n "$pid" ] || return 0
  { echo quit >&"${DW[$n]}"; } 2>/dev/null || true
  eval "exec ${DW[$n]}>&- ${DR[$n]}<&-"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  DP[$n]=
}
cleanup() {
  local n
  for n in "${!DP[@]}"; do stop_drive "$n"; done
  shard_cleanup
}
trap cleanup EXIT
shard_sandbox eshcl
shard_redis_cluster 3
runpg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

RUN=$RANDOM$RANDOM
for k in 1 2; do
  pg "$(port_of $k PRIMARY)" -c "CREATE TABLE t (id int8 PRIMARY KEY, v text)" \
    -c "INSERT INTO t SELECT i, 's$k-' || i || '-$RUN' FROM generate_series(1, 2000) i" \
    -c "CREATE PUBLICATION cs_pub FOR TABLE t"
done
# s2's WAL far ahead of s1's: (e)'s s2 invalidator writes s1's LSNs into s2's fences and
# horizon, which must lie below every data LSN of s2 (else they refuse s2's fills by chance
# instead of letting the control's wrong DEL show)
pg "$(port_of 2 PRIMARY)" -c "CREATE TABLE pad AS SELECT i, repeat('w', 200) AS p FROM generate_series(1, 100000) i"
for k in 1 2; do
  deadline=$((SECONDS + 60))
  until [ "$(pg "$(port_of $k REPLICA1)" -c "SELECT count(*) FROM t" 2>/dev/null || true)" = 2000 ]; do
    [ $SECONDS -lt $deadline ] || fail "shard$k's replica did not replay the rows"
    sleep 0.2
  done
done

config() { # NAMESPACE INVALIDATOR(true|false)
  cat <<INI
[cachesvc]
listen = 127.0.0.1:1
admin_listen =
fence = true
verify_interval = 0
shard_map = ranges
shard_ranges = 1-1000:s1, 1001-2000:s2
[redis]
url = redis://127.0.0.1
cluster = on
nodes = $RC_NODES
namespace = $1
[invalidator]
enabled = $2
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

# a driver NAME over two FIFOs: one command a line, each answer read with a bound
start_drive() { # NAME CONFIG [OPTION]
  local n=$1 line w r
  rm -f "$SB/$n.in" "$SB/$n.out"
  mkfifo "$SB/$n.in" "$SB/$n.out"
  "$DRIVE" --stdin ${3:+"$3"} "$2" t <"$SB/$n.in" >"$SB/$n.out" 2>"$SB/$n.err" &
  DP[$n]=$!
  exec {w}>"$SB/$n.in" {r}<"$SB/$n.out"
  DW[$n]=$w DR[$n]=$r
  read -r -t 60 line <&"${DR[$n]}" || fail "driver $n not ready in 60 s: $(tail -5 "$SB/$n.err")"
  [ "$line" = ready ] || fail "driver $n: $line $(tail -5 "$SB/$n.err")"
}
say() { # NAME COMMAND: prints the answer line
  local line
  echo "$2" >&"${DW[$1]}"
  read -r -t 60 line <&"${DR[$1]}" || fail "driver $1: no answer to '$2' in 60 s: $(tail -5 "$SB/$1.err")"
  echo "$line"
}
get() { say "$1" "get $2"; } # NAME KEY
metrics() { # NAME PREFIX: the matching lines
  local line
  echo "metrics $2" >&"${DW[$1]}"
  while read -r -t 60 line <&"${DR[$1]}"; do
    [ "$line" = end ] && return 0
    echo "$line"
  done
  fail "driver $1: no metrics in 60 s"
}
wait_hit() { # NAME KEY VALUE [BOUND]: until KEY is answered from the cache with VALUE
  local deadline=$((SECONDS + ${4:-60})) line
  while [ $SECONDS -lt $deadline ]; do
    line=$(get "$1" "$2")
    [[ $line == *" err=0 src=cache result="*"$3" ]] && return 0
    sleep 0.1
  done
  echo "$1: key $2: last answer $line (want $3 from the cache)"
  return 1
}
wait_value() { # NAME KEY VALUE [BOUND]: until KEY answers VALUE, from anywhere
  local deadline=$((SECONDS + ${4:-60})) line
  while [ $SECONDS -lt $deadline ]; do
    line=$(get "$1" "$2")
    [[ $line == *" err=0 "*"result="*"$3" ]] && return 0
    sleep 0.1
  done
  echo "$1: key $2: last answer $line (want $3)"
  return 1
}
is_hit() { # NAME KEY VALUE: KEY answers exactly VALUE from the cache now
  local line
  line=$(get "$1" "$2")
  [[ $line == *" err=0 src=cache result="*"$3" ]] || { echo "$1: key $2: $line (want $3 from the cache)"; return 1; }
}
state_of() { # NAME SHARD: the invalidator's state
  metrics "$1" 'cachesvc_invalidator_status{' | grep "shard=\"$2\"" | grep ' 1$' | sed 's/.*state="\([a-z]*\)".*/\1/'
}
wait_streaming() { # NAME
  local k deadline
  for k in s1 s2; do
    deadline=$((SECONDS + 60))
    until [ "$(state_of "$1" $k)" = streaming ]; do
      [ $SECONDS -lt $deadline ] || fail "$1: shard $k's invalidator: $(state_of "$1" $k)"
      sleep 0.2
    done
  done
}
cur() { pg "$(port_of "$1" PRIMARY)" -c "SELECT v FROM t WHERE id = $2"; } # SHARD ID
# (a)'s half for shard K's commit on driver NAME (reading; A invalidates): ids 5 and 1500
# changed on K's primary: K's key invalidated, the other shard's entry of the same id kept
half() { # NAME K
  local d=$1 k=$2 mine other o v_mine v_other
  if [ "$k" = 1 ]; then mine=5 other=1500 o=2; else mine=1500 other=5 o=1; fi
  wait_hit "$d" "$mine" "$(cur "$k" "$mine")" || return 1
  v_other=$(cur "$o" "$other")
  wait_hit "$d" "$other" "$v_other" || return 1
  pg "$(port_of "$k" PRIMARY)" -c "BEGIN" -c "UPDATE t SET v = v || '-a$k' WHERE id IN (5, 1500)" -c "COMMIT"
  v_mine=$(cur "$k" "$mine")
  wait_value "$d" "$mine" "$v_mine" "${HALF_BOUND:-60}" || { echo "(a) s$k's change of key $mine never invalidated its entry"; return 1; }
  local hold=$((SECONDS + ${HALF_HOLD:-3}))
  while :; do
    is_hit "$d" "$other" "$v_other" || { echo "(a) s$k's commit touched s$o's entry of id $other"; return 1; }
    [ $SECONDS -lt $hold ] || break
    sleep 0.2
  done
  wait_hit "$d" "$mine" "$v_mine" || return 1
}
rc() { redis-cli -c -p "${RC_PORTS[0]}" "$@"; }
keyslot() { redis-cli -p "${RC_PORTS[0]}" cluster keyslot "$1"; }
master_of_slot() { # SLOT: the port of its master
  redis-cli -p "${RC_PORTS[0]}" cluster slots | paste - - - - - - | awk -v s="$1" '$1 <= s && s <= $2 { print $4 }' | head -1
}
bucket_of() { # ID: the bucket of query t's key ID (CLUSTER.md section 2)
  "$PY3" -c 'import sys
h = 2166136261
for c in b"t\0" + sys.argv[1].encode():
    h = ((h ^ c) * 16777619) & 0xffffffff
print(h % 256)' "$1"
}
master_of_key() { master_of_slot "$(keyslot "{$NS@s$1:$(bucket_of "$2")}")"; } # SHARD ID

NS=escl_$RUN
config "$NS" true >"$SB/a.ini"
config "$NS" false >"$SB/b.ini"
start_drive A "$SB/a.ini"
wait_streaming A
start_drive B "$SB/b.ini"
start_drive C "$SB/b.ini" --cluster-shard0

# ---- (a) per-shard invalidation on the cluster -----------------------------------------------
msg=$(half B 1) || fail "(a) $msg"
msg=$(half B 2) || fail "(a) $msg"
ok "(a) on the cluster: a commit on s1 invalidated s1's key 5 and not s2's entry of id 1500, and vice versa (B reading, A invalidating)"

# ---- (b) each shard's epoch copies -----------------------------------------------------------
declare -A RAND
for k in 1 2; do
  n=0 rands=
  for p in "${RC_PORTS[@]}"; do
    run=$(redis-cli -p "$p" info server | sed -n 's/^run_id:\([0-9a-f]*\).*/\1/p')
    keys=$(redis-cli -p "$p" --scan --pattern "{$NS@s$k:*}:epoch" | sort)
    [ -n "$keys" ] || continue
    vals=$(sed 's/^/GET /' <<<"$keys" | redis-cli -p "$p")
    while read -r v; do
      [ "${v%%:*}" = "$run" ] || fail "(b) shard s$k: a copy on $p reads '$v', not stamped with its run $run"
      rands+="${v#*:}"$'\n'
      n=$((n + 1))
    done <<<"$vals"
  done
  [ "$n" = 256 ] || fail "(b) shard s$k: $n epoch copies on the cluster, not 256"
  [ "$(sort -u <<<"${rands%$'\n'}" | wc -l)" = 1 ] || fail "(b) shard s$k: the copies' random parts differ: $(sort -u <<<"$rands" | head -3)"
  RAND[$k]=$(head -1 <<<"$rands")
done
[ "${RAND[1]}" != "${RAND[2]}" ] || fail "(b) both shards' copies carry one random part ${RAND[1]}"
for p in "${RC_PORTS[@]}"; do
  [ -z "$(redis-cli -p "$p" --scan --pattern "{$NS:*}")" ] || fail "(b) keys under {$NS:*} on $p: $(redis-cli -p "$p" --scan --pattern "{$NS:*}" | head -5)"
done
ok "(b) each shard's 256 epoch copies on the masters, each stamped with its master's run_id; random parts s1 ${RAND[1]:0:8}..., s2 ${RAND[2]:0:8}...; nothing under {$NS:*}"

# ---- (c) generations of each shard through every master's pub/sub ----------------------------
subs() { # PORT: the master's subscribers of s1's and s2's channels, "N1 N2"
  echo "$(redis-cli -p "$1" pubsub numsub "$NS@s1:gen" | tail -1) $(redis-cli -p "$1" pubsub numsub "$NS@s2:gen" | tail -1)"
}
for p in "${RC_PORTS[@]}"; do
  rc_wait 20 eval '[ "$(subs $p)" = "3 2" ]' ||
    fail "(c) master $p: subscribers of s1's and s2's channels: $(subs "$p") (want 3 2: A, B and C; A and B)"
done
ok "(c) every master: s1's channel subscribed by A, B and C, s2's by A and B (C is the control)"
v5=$(cur 1 5) v1500=$(cur 2 1500)
for d in B C; do
  msg=$(wait_hit $d 5 "$v5") || fail "(c) $msg"
  msg=$(wait_hit $d 1500 "$v1500") || fail "(c) $msg"
done
line=$(say A "invalidate 1500")
[[ $line == "invalidate err=0 "* ]] || fail "(c) admin INVALIDATE of key 1500: $line"
line=$(get B 1500)
[[ $line == *" src=cache "* ]] && fail "(c) key 1500 still a hit in B after its admin INVALIDATE: $line"
msg=$(is_hit B 5 "$v5") || fail "(c) key 5 lost to the INVALIDATE of key 1500: $msg"
ok "(c) admin INVALIDATE of key 1500 (s2) in A: B missed it ($line), key 5 (s1) still a hit"
for d in B C; do msg=$(wait_hit $d 1500 "$v1500") || fail "(c) $msg"; done
g2=$(rc GET "{$NS@s2:0}:g:t")
[[ $g2 =~ ^[0-9]+$ ]] || fail "(c) s2's generation of t: '$g2'"
# announced only, on one master (Redis's copies stay behind: no poll can learn it)
redis-cli -p "${RC_PORTS[1]}" publish "$NS@s2:gen" "t $((g2 + 1))" >/dev/null
s=cache
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
  line=$(get B 1500)
  [[ $line == *" src=cache "* ]] || { s=other; break; }
  sleep 0.1
done
[ "$s" != cache ] || fail "(c) s2's generation $((g2 + 1)) published on ${RC_PORTS[1]} never reached B: key 1500 still a hit: $line"
msg=$(is_hit B 5 "$v5") || fail "(c) s2's announced generation touched key 5 (s1): $msg"
ok "(c) a generation of s2 announced on master ${RC_PORTS[1]} reached B: key 1500 no longer a hit ($line), key 5 still one"
hold=$((SECONDS + 5))
while [ $SECONDS -lt $hold ]; do
  msg=$(is_hit C 1500 "$v1500") || fail "(c) control: C (s1's channel alone) stopped serving key 1500 from the cache: $msg"
  sleep 0.2
done
ok "(c) control: C, subscribed to s1's channel alone, kept serving key 1500 from the cache for 5 s after s2's announced generation"
line=$(say A "invalidate")
[[ $line == "invalidate err=0 "* ]] || fail "(c) admin INVALIDATE of the whole query: $line"
[ "$(rc GET "{$NS@s2:0}:g:t")" -gt "$g2" ] || fail "(c) s2's generation did not rise"
msg=$(wait_hit B 1500 "$v1500") || fail "(c) after the whole INVALIDATE: $msg"
msg=$(wait_hit B 5 "$v5") || fail "(c) after the whole INVALIDATE: $msg"
ok "(c) admin INVALIDATE of the whole query: s2's generation $g2 -> $(rc GET "{$NS@s2:0}:g:t"); B caches both keys again"

# ---- (d) a master restarted from an old RDB: a loss of every shard ---------------------------
m1=$(master_of_slot "$(keyslot "{$NS@s1:0}")")
m2=$(master_of_slot "$(keyslot "{$NS@s2:0}")")
M=
for p in "${RC_PORTS[@]}"; do [ "$p" != "$m1" ] && [ "$p" != "$m2" ] && M=$p && break; done
[ -n "$M" ] || fail "(d) no master without a bucket 0"
X1= X2=
for id in $(seq 10 1000); do [ "$(master_of_key 1 "$id")" = "$M" ] && [ "$(bucket_of "$id")" != 0 ] && X1=$id && break; done
for id in $(seq 1010 2000); do [ "$(master_of_key 2 "$id")" = "$M" ] && [ "$(bucket_of "$id")" != 0 ] && X2=$id && break; done
[ -n "$X1" ] && [ -n "$X2" ] || fail "(d) no key of each shard on master $M"
o1=$(cur 1 "$X1") o2=$(cur 2 "$X2")
for d in B C; do
  msg=$(wait_hit $d "$X1" "$o1") || fail "(d) $msg"
  msg=$(wait_hit $d "$X2" "$o2") || fail "(d) $msg"
done
idx=0
for i in "${!RC_PORTS[@]}"; do [ "${RC_PORTS[$i]}" = "$M" ] && idx=$((i + 1)); done
redis-cli -p "$M" save >/dev/null
[ -s "$SB/rc$idx/dump.rdb" ] || fail "(d) SAVE on $M wrote no $SB/rc$idx/dump.rdb"
pg "$(port_of 1 PRIMARY)" -c "UPDATE t SET v = v || '-d' WHERE id = $X1"
pg "$(port_of 2 PRIMARY)" -c "UPDATE t SET v = v || '-d' WHERE id = $X2"
lsn1=$(pg "$(port_of 1 PRIMARY)" -c "SELECT pg_current_wal_lsn()")
lsn2=$(pg "$(port_of 2 PRIMARY)" -c "SELECT pg_current_wal_lsn()")
msg=$(wait_value B "$X1" "$o1-d") || fail "(d) $msg"
msg=$(wait_value B "$X2" "$o2-d") || fail "(d) $msg"
flushed() { [ "$(pg "$(port_of "$1" PRIMARY)" -c "SELECT confirmed_flush_lsn >= '$2'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cs_inv_s$1'")" = t ]; }
rc_wait 60 flushed 1 "$lsn1" || fail "(d) s1's slot never confirmed past $lsn1"
rc_wait 60 flushed 2 "$lsn2" || fail "(d) s2's slot never confirmed past $lsn2"
stop_drive A
redis-cli -p "$M" shutdown nosave >/dev/null 2>&1 || true
rc_wait 30 eval '! rc_pong $M' || fail "(d) master $M did not stop"
(cd "$SB/rc$idx" && eval "${RC_START[idx]}") >/dev/null
rc_wait 30 rc_pong "$M" || fail "(d) master $M did not start again"
rc_wait 60 rc_all_ok || fail "(d) the cluster is not ok after $M's restart"
k1=$(redis-cli -p "$M" --scan --pattern "{$NS@s1:$(bucket_of "$X1")}:e:t:*" | head -1)
k2=$(redis-cli -p "$M" --scan --pattern "{$NS@s2:$(bucket_of "$X2")}:e:t:*" | head -1)
[ -n "$k1" ] && [ -n "$k2" ] || fail "(d) $M restarted without the old entries of $X1 and $X2: the test proves nothing"
ok "(d) master $M (neither shard's bucket 0) restarted from the RDB saved before the changes of $X1 (s1) and $X2 (s2): both stale entries back"
found() { grep -q "epoch copy of shard $2 is gone or names another Redis run" "$SB/$1.err"; }
rc_wait 60 found B s1 || fail "(d) B never found s1's copies on $M foreign: $(tail -5 "$SB/B.err")"
rc_wait 60 found B s2 || fail "(d) B never found s2's copies on $M foreign: $(tail -5 "$SB/B.err")"
rc_wait 60 found C s1 || fail "(d) C never found s1's copies on $M foreign"
for j in $(seq 1 20); do
  for x in "1 $X1 $o1" "2 $X2 $o2"; do
    set -- $x
    line=$(get B "$2")
    [[ $line == *" err=0 "*"result="*"$3" ]] && fail "(d) B served shard s$1's stale entry of $2 after the loss: $line"
    [[ $line == *" err=0 "*"result="*"$3-d" ]] || fail "(d) B: key $2: $line (want $3-d)"
  done
  sleep 0.2
done
ok "(d) B found both shards' copies on $M foreign and served neither stale entry (20 reads of each over 4 s)"
stale=0
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ] && [ $stale = 0 ]; do
  line=$(get C "$X2")
  [[ $line == *" src=cache result="*"$o2" ]] && stale=1
  line1=$(get C "$X1")
  [[ $line1 == *" src=cache result="*"$o1" ]] && fail "(d) control: C served s1's stale entry (its copies are checked): $line1"
  sleep 0.2
done
[ $stale = 1 ] || fail "(d) control: C (s1's copies alone checked) never served s2's stale entry of $X2: $line"
ok "(d) control: C, checking s1's copies alone, served s2's stale entry of $X2 from the cache ($line)"
start_drive A "$SB/a.ini"
wait_streaming A
for k in s1 s2; do
  n=$(metrics A 'cachesvc_invalidator_redis_data_loss_total{' | grep "shard=\"$k\"" | awk '{print $2}')
  [ "${n:-0}" -ge 1 ] || fail "(d) shard $k's resynchronisation counted no data loss: '$n'"
done
for x in "$X1 $o1" "$X2 $o2"; do
  set -- $x
  deadline=$((SECONDS + 60))
  while :; do
    line=$(get B "$1")
    [[ $line == *" result="*"$2" ]] && fail "(d) B served the stale entry of $1 after the resynchronisation: $line"
    [[ $line == *" err=0 src=cache result="*"$2-d" ]] && break
    [ $SECONDS -lt $deadline ] || fail "(d) B never cached $1 again: $line"
    sleep 0.1
  done
done
ok "(d) A started again: both shards' resynchronisations counted a data loss; B caches $X1 and $X2 again, fresh"
stop_drive A
stop_drive B
stop_drive C

# ---- (e) control of (a): every shard's invalidator on s1's primary ---------------------------
for k in 1 2; do pg "$(port_of $k PRIMARY)" -c "UPDATE t SET v = 's$k-' || id || '-$RUN' WHERE id IN (5, 1500)"; done
[ "$(pg "$(port_of 1 PRIMARY)" -c "SELECT pg_current_wal_lsn() + 8000000 < '$(pg "$(port_of 2 PRIMARY)" -c "SELECT pg_current_wal_lsn()")'::pg_lsn")" = t ] ||
  fail "(e) s2's WAL is not 8 MB ahead of s1's: the control proves nothing"
NS=escn_$RUN
config "$NS" true >"$SB/e.ini"
start_drive E "$SB/e.ini" --inv-shard0
wait_streaming E
HALF_BOUND=20 HALF_HOLD=20
if msg=$(half E 1); then
  fail "(e) control: every invalidator on s1's WAL and (a)'s check of s1's commit still passed"
fi
[[ $msg == *"touched s2's entry"* ]] || fail "(e) control: not the failure sought: $msg"
ok "(e) control: with every shard's invalidator on s1's primary, (a)'s check fails on the cluster: $(tail -1 <<<"$msg")"
stop_drive E
