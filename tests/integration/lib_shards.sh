#!/usr/bin/env bash
# lib_shards.sh - library mode on a sharded config (issue #18, SHARDS.md section 7 step 5:
# cs_get_req.shard in library mode), on a private sandbox of two shards (scripts/sandbox
# --shards 2 --replicas 1), fences and invalidator off, through lib_test's `shards` mode (the
# public blocking API: cachesvc_sync_open, cachesvc_sync_get_token, cachesvc_token_parse).
#
# Both primaries hold a row under every id, each with its own value ("s1-<id>-<run>" on s1,
# "s2-<id>-<run>" on s2): an answer from the wrong shard is seen.
#   (a) shard_map = ranges (1-1000:s1, 1001-2000:s2): keys of both shards answered with their
#       own shard's row (the miss), then from the cache; a key in no range is no_shard;
#   (b) tokens: key 1500's row changed on s2 after (a) cached it (without a token: the cache's
#       old row, the control): the token s2:LSN (LSN after the change) answers the new row; a
#       bare LSN is bad_params;
#   (c) a token of another shard (s1:LSN on key 1500 of s2) is answered by s2's primary
#       (src primary, the new row), never the cache's old row; an unknown shard's is bad_params;
#   (d) negative control: the query pinned to s1 (shard = s1, routing off): (a)'s check must
#       fail (key 1500 answered with s1's row);
#   (e) a deployment without [shard] sections refuses a token naming a shard (bad_params, the
#       asynchronous API through the callback, never inside the call).
# (c) and (e) also go through the asynchronous API (lib_test shards_async).
set -euo pipefail
. "$(dirname "$0")/shard_lib.sh"
: "${CS_LIB_TEST:?CS_LIB_TEST (the lib_test binary) must be set; meson test sets it}"
trap shard_cleanup EXIT
shard_sandbox libshards

IDS="5 1000 1001 1500"
RUN=$RANDOM$RANDOM
for k in 1 2; do
  vals=""
  for id in $IDS; do vals+="${vals:+,}($id, 's$k-$id-$RUN')"; done
  pg "$(port_of $k PRIMARY)" -c "CREATE TABLE t (id int8 PRIMARY KEY, v text)" \
    -c "INSERT INTO t VALUES $vals"
done
for k in 1 2; do
  deadline=$((SECONDS + 60))
  until [ "$(pg "$(port_of $k REPLICA1)" -c "SELECT count(*) FROM t" 2>/dev/null || true)" = 4 ]; do
    [ $SECONDS -lt $deadline ] || fail "shard$k's replica did not replay the rows"
    sleep 0.2
  done
done
ok "rows planted under the same ids on both shards, each with its own value"

config() { # NAMESPACE QUERY-ROUTING-LINE
  cat <<INI
[cachesvc]
listen = 127.0.0.1:1
admin_listen =
fence = false
verify_interval = 0
shard_map = ranges
shard_ranges = 1-1000:s1, 1001-2000:s2
[redis]
url = $CS_REDIS_URL
namespace = $1
[invalidator]
enabled = false
$(shard_sections)
[query t]
sql = SELECT v FROM t WHERE id = \$1
params = id:int8
$2
ttl = 300s
INI
}

run() { # OUTFILE ARGS...
  local out=$1
  shift
  "$CS_LIB_TEST" shards "$@" >"$out" 2>"$OUT" || fail "lib_test shards $*: $(tail -20 "$OUT")"
}

# check FILE ROUNDS ID:SHARD...: each round's answer of id is its shard's row, never the other
# shard's; rounds after the first from the cache
check() {
  local file=$1 rounds=$2
  shift 2
  local spec id k want bad line r
  for spec in "$@"; do
    id=${spec%:*} k=${spec#*:}
    want=$(pg "$(port_of "$k" PRIMARY)" -c "SELECT v FROM t WHERE id = $id")
    bad=$(pg "$(port_of $((3 - k)) PRIMARY)" -c "SELECT v FROM t WHERE id = $id")
    for ((r = 1; r <= rounds; r++)); do
      line=$(grep -E "^round=$r key=$id " "$file" || true)
      [ "$(grep -c . <<<"$line")" = 1 ] || { echo "key $id round $r: no single answer"; return 1; }
      [[ $line == *" err=0 "* && $line == *"value=$want" ]] || { echo "key $id round $r: not s$k's row '$want': $line"; return 1; }
      [[ $line != *"$bad"* ]] || { echo "key $id round $r: the other shard's row: $line"; return 1; }
      if [ "$r" -gt 1 ] && [[ $line != *" src=cache "* ]]; then
        echo "key $id round $r: not from the cache: $line"
        return 1
      fi
    done
  done
}

# ---- (a) routing ---------------------------------------------------------------------------
config "ls_a_$RUN" "shard_key = id" >"$SB/a.ini"
run "$SB/a.out" "$SB/a.ini" t - 2 5 1000 1001 1500 1000000
msg=$(check "$SB/a.out" 2 5:1 1000:1 1001:2 1500:2) || fail "(a) $msg; output: $(cat "$SB/a.out")"
for r in 1 2; do
  grep -qE "^round=$r key=1000000 err=no_shard src=- value=.*no range" "$SB/a.out" ||
    fail "(a) key 1000000 (in no range), round $r: not no_shard: $(grep 'key=1000000' "$SB/a.out")"
done
ok "(a) library mode: keys of s1 and s2 answered with their own shard's row, then from the cache; a key in no range no_shard"

# ---- (b), (c) tokens: key 1500's row changed on s2 after (a) cached it ---------------------
pg "$(port_of 2 PRIMARY)" -c "UPDATE t SET v = v || '-new' WHERE id = 1500"
lsn2=$(pg "$(port_of 2 PRIMARY)" -c "SELECT pg_current_wal_lsn()")
lsn1=$(pg "$(port_of 1 PRIMARY)" -c "SELECT pg_current_wal_lsn()")
# without a token: the cache's old row (what a token must not be answered with)
run "$SB/b0.out" "$SB/a.ini" t - 1 1500
grep -qE "^round=1 key=1500 err=0 src=cache value=s2-1500-$RUN$" "$SB/b0.out" ||
  fail "(b) control: without a token, not the cache's old row (the token checks prove nothing): $(cat "$SB/b0.out")"
# (c) a token of another shard (s1's LSN on a key of s2): s2's primary, never the cache
run "$SB/c.out" "$SB/a.ini" t "s1:$lsn1" 1 1500
grep -qE "^round=1 key=1500 err=0 src=primary value=s2-1500-$RUN-new$" "$SB/c.out" ||
  fail "(c) token s1:$lsn1 on key 1500 (s2): not s2's primary's row: $(cat "$SB/c.out")"
run "$SB/c2.out" "$SB/a.ini" t "s9:$lsn1" 1 1500
grep -qE '^round=1 key=1500 err=bad_params .*no \[shard\] section' "$SB/c2.out" ||
  fail "(c) a token of an unknown shard not bad_params: $(cat "$SB/c2.out")"
# the same through the asynchronous API (cachesvc_get_token, callback from our loop)
"$CS_LIB_TEST" shards_async "$SB/a.ini" t "s1:$lsn1" 1500 >"$SB/c3.out" 2>"$OUT" || fail "lib_test shards_async: $(tail -20 "$OUT")"
grep -qE "^round=1 key=1500 err=0 src=primary value=s2-1500-$RUN-new$" "$SB/c3.out" ||
  fail "(c) async: token s1:$lsn1 on key 1500 (s2): not s2's primary's row: $(cat "$SB/c3.out")"
ok "(c) token s1:$lsn1 on a key of s2 answered by s2's primary (the cache held the old row); a token of an unknown shard bad_params"
# (b) a token of the key's shard
run "$SB/b1.out" "$SB/a.ini" t "s2:$lsn2" 1 1500
grep -qE "^round=1 key=1500 err=0 src=(replica|primary) value=s2-1500-$RUN-new$" "$SB/b1.out" ||
  fail "(b) token s2:$lsn2 on key 1500: not s2's new row: $(cat "$SB/b1.out")"
run "$SB/b3.out" "$SB/a.ini" t "$lsn2" 1 1500
grep -qE '^round=1 key=1500 err=bad_params .*bare LSN' "$SB/b3.out" ||
  fail "(b) a bare LSN on a sharded deployment not bad_params: $(cat "$SB/b3.out")"
ok "(b) token s2:$lsn2 honoured ($(grep -o 'src=[a-z]*' "$SB/b1.out"); without a token the cache's old row); a bare LSN bad_params"

# ---- (d) negative control: routing off (the query pinned to s1) -----------------------------
config "ls_d_$RUN" "shard = s1" >"$SB/d.ini"
run "$SB/d.out" "$SB/d.ini" t - 2 5 1000 1001 1500
if msg=$(check "$SB/d.out" 2 5:1 1000:1 1001:2 1500:2); then
  fail "(d) control: every key pinned to s1 and the check still passed: $(cat "$SB/d.out")"
fi
grep -q "value=s1-1500-$RUN" "$SB/d.out" || fail "(d) control: key 1500 not answered with s1's row: $(cat "$SB/d.out")"
ok "(d) control: routing off, the check fails ($msg)"

# ---- (e) unsharded: a token naming a shard is refused ----------------------------------------
config "ls_e_$RUN" "" | awk '/^\[/ { skip = ($0 ~ /^\[(shard|replica) /) } !skip' |
  sed -e '/^shard_map/d' -e '/^shard_ranges/d' >"$SB/e.ini"
printf '[primary]\nconninfo = %s\n' "$CS_PG_SHARD1_PRIMARY" >>"$SB/e.ini"
run "$SB/e.out" "$SB/e.ini" t "s1:$lsn1" 1 5
grep -qE '^round=1 key=5 err=bad_params .*shard tokens need \[shard NAME\] sections' "$SB/e.out" ||
  fail "(e) unsharded: a shard token not refused: $(cat "$SB/e.out")"
"$CS_LIB_TEST" shards_async "$SB/e.ini" t "s1:$lsn1" 5 >"$SB/e3.out" 2>"$OUT" || fail "lib_test shards_async (unsharded): $(tail -20 "$OUT")"
grep -qE '^round=1 key=5 err=bad_params .*shard tokens need \[shard NAME\] sections' "$SB/e3.out" ||
  fail "(e) unsharded, async: a shard token not refused through the callback: $(cat "$SB/e3.out")"
run "$SB/e2.out" "$SB/e.ini" t "$lsn1" 1 5
grep -qE "^round=1 key=5 err=0 .*value=s1-5-$RUN$" "$SB/e2.out" || fail "(e) unsharded: a bare LSN not served: $(cat "$SB/e2.out")"
ok "(e) without [shard] sections a shard token is bad_params (blocking, and asynchronous through the callback), a bare LSN served"
