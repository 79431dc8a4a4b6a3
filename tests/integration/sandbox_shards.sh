#!/usr/bin/env bash
# sandbox_shards.sh - `scripts/sandbox start DIR --shards 2` (issue #18) on a private sandbox
# of its own (the shared one is never touched): two primaries, distinct PostgreSQL systems
# with wal_level=logical, each with its own replica (--replicas 1, delayed by --delay 1s on
# every shard); env.sh exports the per-shard variables, shard 1 also under the unsharded
# names. Both primaries take writes; each replica streams from its own primary only (its WAL
# sender's port, its system identifier and the rows it replays are its primary's and never
# the other shard's: each check is also made against the other shard and must fail there);
# with CS_BUILD (meson), a sharded config for these servers passes `cachesvc --check
# --offline` and `--check` (step 4: the SQL prepared on each shard's servers, the publication
# checked on each shard's primary: a publication missing on shard 2 only is named), and the
# daemon serves it with one invalidator per shard (the publication created on each primary;
# keys of each shard answered with their own shard's row, never the other's; /metrics has one
# streaming invalidator per shard); `stop` leaves no server running and no pid file behind.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/postgres" ] || { echo "SKIP: no PostgreSQL 15 in $PGBIN"; exit 77; }
command -v redis-server >/dev/null || { echo "SKIP: no redis-server"; exit 77; }
SANDBOX=$(cd "$(dirname "$0")/../.." && pwd)/scripts/sandbox

SB=$(mktemp -d /tmp/cs-shards-sb.XXXXXX)
chmod 755 "$SB"
OUT=$(mktemp /tmp/cs-shards-out.XXXXXX)
cleanup() { "$SANDBOX" stop "$SB" >/dev/null 2>&1 || true; rm -rf "$SB" "$OUT"; }
trap cleanup EXIT

"$SANDBOX" start "$SB" --shards 2 --replicas 1 --delay 1s >"$OUT" 2>&1 ||
  fail "sandbox start --shards 2: $(tail -5 "$OUT")"
# shellcheck disable=SC1091
. "$SB/env.sh"

# ---- env.sh ---------------------------------------------------------------------------------
[ "${CS_PG_SHARDS:-}" = 2 ] || fail "env.sh: CS_PG_SHARDS is '${CS_PG_SHARDS:-}', not 2"
for k in 1 2; do
  for v in PRIMARY_PORT PRIMARY REPLICAS REPLICA1_PORT REPLICA1 DELAYED_REPLICA; do
    n=CS_PG_SHARD${k}_$v
    [ -n "${!n:-}" ] || fail "env.sh: $n missing"
  done
  n=CS_PG_SHARD${k}_REPLICAS
  [ "${!n}" = 1 ] || fail "env.sh: $n is ${!n}, not 1 (--replicas 1)"
  n=CS_PG_SHARD${k}_DELAYED_REPLICA
  [ "${!n}" = 1 ] || fail "env.sh: $n is ${!n}, not 1 (--delay)"
done
[ "$CS_PG_PRIMARY_PORT" = "$CS_PG_SHARD1_PRIMARY_PORT" ] &&
  [ "$CS_PG_REPLICA1_PORT" = "$CS_PG_SHARD1_REPLICA1_PORT" ] ||
  fail "env.sh: the unsharded names are not shard 1's"
ports="$CS_PG_SHARD1_PRIMARY_PORT $CS_PG_SHARD1_REPLICA1_PORT $CS_PG_SHARD2_PRIMARY_PORT $CS_PG_SHARD2_REPLICA1_PORT $CS_REDIS_PORT"
[ "$(tr ' ' '\n' <<<"$ports" | sort -u | wc -l)" = 5 ] || fail "ports not distinct: $ports"
ok "env.sh exports both shards (ports $ports)"

pg() { # PORT SQL...
  local port=$1
  shift
  "$CS_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$CS_PG_SOCKET_DIR" -p "$port" -U postgres -d app "$@"
}
port_of() { local n=CS_PG_SHARD${1}_${2}_PORT; echo "${!n}"; } # K PRIMARY|REPLICA1
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# ---- the primaries: distinct systems, logical decoding on, both take writes -----------------
declare -A sysid token
for k in 1 2; do
  p=$(port_of $k PRIMARY)
  [ "$(pg "$p" -c 'SELECT pg_is_in_recovery()')" = f ] || fail "shard$k primary is in recovery"
  [ "$(pg "$p" -c 'SHOW wal_level')" = logical ] || fail "shard$k primary: wal_level is not logical"
  sysid[$k]=$(pg "$p" -c 'SELECT system_identifier FROM pg_control_system()')
  token[$k]=shard${k}_$RANDOM$RANDOM
  pg "$p" -c "CREATE TABLE t (id int PRIMARY KEY, v text)" \
    -c "INSERT INTO t VALUES ($k, '${token[$k]}')"
  [ "$(pg "$p" -c "SELECT v FROM t")" = "${token[$k]}" ] || fail "shard$k primary lost its write"
done
[ "${sysid[1]}" != "${sysid[2]}" ] || fail "the two primaries are one PostgreSQL system"
ok "two primaries, distinct systems, wal_level=logical, both take writes"

# ---- each replica follows its own primary only ------------------------------------------------
sender_port() { pg "$(port_of "$1" REPLICA1)" -c 'SELECT sender_port FROM pg_stat_wal_receiver'; }
row_on() { [ "$(pg "$(port_of "$1" REPLICA1)" -c "SELECT v FROM t WHERE id = $1" 2>/dev/null)" = "${token[$1]}" ]; }
for k in 1 2; do
  o=$((3 - k))
  r=$(port_of $k REPLICA1)
  [ "$(pg "$r" -c 'SELECT pg_is_in_recovery()')" = t ] || fail "shard$k replica is not in recovery"
  [ "$(pg "$r" -c 'SHOW recovery_min_apply_delay')" = 1s ] || fail "shard$k replica: --delay not applied"
  until_true 30 test -n "$(sender_port $k)" || fail "shard$k replica: no WAL receiver"
  sp=$(sender_port $k)
  [ "$sp" = "$(port_of $k PRIMARY)" ] || fail "shard$k replica streams from port $sp, not its primary's"
  [ "$sp" != "$(port_of $o PRIMARY)" ] || fail "shard$k replica streams from shard$o's primary"
  sid=$(pg "$r" -c 'SELECT system_identifier FROM pg_control_system()')
  [ "$sid" = "${sysid[$k]}" ] || fail "shard$k replica is not a copy of its primary"
  [ "$sid" != "${sysid[$o]}" ] || fail "shard$k replica is a copy of shard$o's primary"
  until_true 60 row_on $k || fail "shard$k replica never replayed its primary's write"
  [ "$(pg "$r" -c "SELECT count(*) FROM t WHERE v = '${token[$o]}'")" = 0 ] ||
    fail "shard$k replica has shard$o's row"
done
ok "each replica streams from, is a copy of, and replays its own primary only"

# ---- the daemon: a sharded config validates, checks and is served (steps 1 and 4) ------------
# (CS_BUILD: meson's daemon_env; without it, e.g. run by hand, this part is skipped)
if [ -n "${CS_BUILD:-}" ]; then
  CS=$CS_BUILD/cachesvc/cachesvc
  CLI=$CS_BUILD/protocol/cachesvc-cli
  free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  PORT=$(free_port) APORT=$(free_port)
  for k in 1 2; do # id 1002 on both shards, each its own value (the ranges send it to s2)
    pg "$(port_of $k PRIMARY)" -c "INSERT INTO t VALUES (1002, 'shard${k}-1002-${token[$k]}')"
  done
  ini=$SB/sharded.ini
  cat >"$ini" <<INI
[cachesvc]
listen = 127.0.0.1:$PORT
admin_listen = 127.0.0.1:$APORT
shard_map = ranges
shard_ranges = 1-1000:s1, 1001-2000:s2
[redis]
url = $CS_REDIS_URL
namespace = ssh$RANDOM
[invalidator]
enabled = true
slot = cs_smoke
publication = cs_smoke
create_publication = true
[shard s1]
conninfo = $CS_PG_SHARD1_PRIMARY
[shard s2]
conninfo = $CS_PG_SHARD2_PRIMARY
[replica r1]
conninfo = $CS_PG_SHARD1_REPLICA1
shard = s1
[replica r2]
conninfo = $CS_PG_SHARD2_REPLICA1
shard = s2
[query t]
sql = SELECT v FROM t WHERE id = \$1
params = id:int4
shard_key = id
invalidate_on = t(id = \$1)
INI
  "$CS" -c "$ini" --check --offline >"$OUT" 2>&1 || fail "--check --offline refused the sharded config: $(cat "$OUT")"
  grep -q ': ok (offline' "$OUT" || fail "--check --offline: $(cat "$OUT")"
  # --check: the publication is missing on both primaries: named per shard, nothing created
  timeout 60 "$CS" -c "$ini" --check >"$OUT" 2>&1 || fail "--check of the sharded config: $(cat "$OUT")"
  [ "$(grep -c 'would create publication "cs_smoke" on shard s[12]' "$OUT")" = 2 ] ||
    fail "--check: not one publication per shard: $(cat "$OUT")"
  would=$(grep -o 'would create publication "cs_smoke" on shard s[12]' "$OUT" | tr '\n' ';')
  ! grep -q "read-your-writes tokens are answered from the database" "$OUT" ||
    fail "--check: t's tokens sent to the database with the same schema on both shards: $(cat "$OUT")"
  # review 28 R28-8: t gets a child table on s2 only (schema drift): the keyed query's
  # read-your-writes coverage is judged on every shard it reads, so its tokens go to the
  # database (judged on s1 alone, as before, they were answered from the cache)
  pg "$(port_of 2 PRIMARY)" -c "CREATE TABLE t_child () INHERITS (t)"
  timeout 60 "$CS" -c "$ini" --check >"$OUT" 2>&1 || fail "--check with t_child on s2: $(cat "$OUT")"
  grep -q "\[query t\] read-your-writes tokens are answered from the database, not the cache: .*children.* (on at least one shard)" "$OUT" ||
    fail "--check: a child of t on s2 only did not send t's tokens to the database: $(cat "$OUT")"
  pg "$(port_of 2 PRIMARY)" -c "DROP TABLE t_child"
  # a query whose SQL does not prepare on shard 2 only (its table missing there) is refused
  pg "$(port_of 1 PRIMARY)" -c "CREATE TABLE only1 (id int PRIMARY KEY, v text)"
  sed -e 's/FROM t WHERE/FROM only1 WHERE/' -e '/^invalidate_on/d' -e '/^\[invalidator\]/,/^create_publication/d' "$ini" >"$SB/only1.ini"
  rc=0
  timeout 60 "$CS" -c "$SB/only1.ini" --check >"$OUT" 2>&1 || rc=$?
  [ $rc = 1 ] && grep -q 'query t\] sql: does not prepare: .*only1' "$OUT" ||
    fail "--check: a table missing on shard s2 only not found (exit $rc): $(cat "$OUT")"
  ok "a sharded config passes --check --offline and --check ($would); SQL not preparing on s2 only is refused; a child of t on s2 only sends t's tokens to the database (R28-8)"
  # review 28 R28-1: a slot of s1's default name already in another database of s1's server
  # (a slot name is per server): s1's invalidator must say so, not stand by or stream it
  pg "$(port_of 1 PRIMARY)" -c "CREATE DATABASE other"
  pg "$(port_of 1 PRIMARY)" -d other -c "SELECT 1 FROM pg_create_logical_replication_slot('cs_smoke_s1', 'pgoutput')" >/dev/null
  # the daemon serves it
  "$CS" -c "$ini" >"$SB/daemon.log" 2>&1 &
  DPID=$!
  trap 'kill $DPID 2>/dev/null || true; cleanup' EXIT
  deadline=$((SECONDS + 60))
  until "$CLI" -p "$PORT" -t 500 ping >/dev/null 2>&1; do
    kill -0 $DPID 2>/dev/null || fail "cachesvc exited on a sharded config: $(tail -5 "$SB/daemon.log")"
    [ $SECONDS -lt $deadline ] || fail "cachesvc did not answer in 60 s: $(tail -5 "$SB/daemon.log")"
    sleep 0.2
  done
  for k in 1 2; do
    [ "$(pg "$(port_of $k PRIMARY)" -c "SELECT count(*) FROM pg_publication WHERE pubname = 'cs_smoke'")" = 1 ] ||
      fail "the daemon did not create the publication on shard$k's primary"
  done
  answer() { # ID WANT: until the daemon answers ID with WANT (60 s)
    local deadline=$((SECONDS + 60)) out=
    while [ $SECONDS -lt $deadline ]; do
      out=$("$CLI" -p "$PORT" --json get t "$1" 2>&1 || true)
      [[ $out == *"$2"* ]] && { echo "$out"; return 0; }
      sleep 0.2
    done
    echo "key $1: $out"
    return 1
  }
  deadline=$((SECONDS + 60))
  until grep -q 'invalidator of shard s1: slot "cs_smoke_s1" belongs to another database' "$SB/daemon.log"; do
    [ $SECONDS -lt $deadline ] || fail "daemon: s1's invalidator did not name its slot taken in another database: $(grep -a invalidator "$SB/daemon.log" | tail -5)"
    sleep 0.2
  done
  ! curl -s "http://127.0.0.1:$APORT/metrics" | grep -q '^cachesvc_invalidator_status{shard="s1",state="\(streaming\|standby\)"} 1$' ||
    fail "daemon: s1's invalidator streams or stands by on another database's slot"
  pg "$(port_of 1 PRIMARY)" -d other -c "SELECT pg_drop_replication_slot('cs_smoke_s1')" >/dev/null
  ok "daemon: s1's slot name taken in another database of its server: said so (error), not streamed nor stood by for; the slot dropped, it goes on"
  msg=$(answer 1 "${token[1]}") || fail "daemon: key 1 (s1) not s1's row: $msg"
  msg=$(answer 1002 "shard2-1002-${token[2]}") || fail "daemon: key 1002 (s2) not s2's row: $msg"
  [[ $msg != *shard1-1002* ]] || fail "daemon: key 1002 answered with s1's row: $msg"
  deadline=$((SECONDS + 60))
  until [ "$(curl -s "http://127.0.0.1:$APORT/metrics" | grep -c '^cachesvc_invalidator_status{shard="s[12]",state="streaming"} 1$')" = 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "daemon: not one streaming invalidator per shard: $(curl -s "http://127.0.0.1:$APORT/metrics" | grep invalidator_status)"
    sleep 0.2
  done
  for k in 1 2; do # each invalidator's log lines name its shard
    grep -q "invalidator of shard s$k: streaming from slot \"cs_smoke_s$k\"" "$SB/daemon.log" ||
      fail "daemon: no log line of shard s$k's invalidator streaming: $(grep invalidator "$SB/daemon.log")"
  done
  # review 28 R28-6: the daemon hands shard tokens to the engine: s2's own token is answered,
  # s1's token on s2's key and a bare LSN are refused (bad_params), naming why
  lsn2=$(pg "$(port_of 2 PRIMARY)" -c "SELECT pg_current_wal_lsn()")
  out=$("$CLI" -p "$PORT" -t 30000 --json --lsn "s2:$lsn2" get t 1002 2>&1) ||
    fail "daemon: the token s2:$lsn2 on s2's key refused: $out"
  [[ $out == *"shard2-1002-${token[2]}"* ]] || fail "daemon: s2:$lsn2 on key 1002 not s2's row: $out"
  # SHARDS.md section 5: s1's token on s2's key is read on s2's primary, and counted
  out=$("$CLI" -p "$PORT" -t 30000 --json --lsn "s1:$lsn2" get t 1002 2>&1) ||
    fail "daemon: s1's token on s2's key not answered: $out"
  [[ $out == *"shard2-1002-${token[2]}"* && $out == *'"source":"primary"'* ]] ||
    fail "daemon: s1's token on s2's key not s2's primary's row: $out"
  rc=0; out=$("$CLI" -p "$PORT" -t 30000 --lsn "$lsn2" get t 1 2>&1) || rc=$?
  [ "$rc" = 1 ] && [[ $out == *"bare LSN"* ]] || fail "daemon: a bare LSN not refused (exit $rc): $out"
  ok "daemon: shard tokens reach the engine: s2:$lsn2 answered on s2's key, s1's read there on s2's primary, a bare LSN refused"
  # SHARDS.md section 6: server, pool and lag metrics labelled with their shard, requests per
  # shard, the other-shard token counted; SHOW servers has a shard column
  m=$(curl -s "http://127.0.0.1:$APORT/metrics")
  for pair in s1:r1 s2:r2 s1:primary@s1 s2:primary@s2; do
    sh=${pair%%:*} sv=${pair#*:}
    for f in cachesvc_pg_up cachesvc_pg_lag_seconds cachesvc_pg_pool_size cachesvc_pg_queries_total; do
      grep -q "^$f{shard=\"$sh\",server=\"$sv\"" <<<"$m" ||
        fail "daemon /metrics: no $f{shard=\"$sh\",server=\"$sv\",...}: $(grep "^$f" <<<"$m")"
    done
  done
  ! grep -q '^cachesvc_pg_[a-z_]*{server=' <<<"$m" || fail "daemon /metrics: a server sample without its shard: $(grep '^cachesvc_pg_[a-z_]*{server=' <<<"$m" | head -3)"
  for sh in s1 s2; do
    n=$(grep "^cachesvc_shard_requests_total{shard=\"$sh\"} " <<<"$m" | awk '{print $2}')
    [ "${n:-0}" -ge 1 ] || fail "daemon /metrics: no requests counted for shard $sh: $(grep '^cachesvc_shard_' <<<"$m")"
    grep -q "^cachesvc_shard_cache_requests_total{shard=\"$sh\",outcome=\"hit\"} " <<<"$m" ||
      fail "daemon /metrics: no cache outcomes of shard $sh: $(grep '^cachesvc_shard_' <<<"$m")"
  done
  grep -qx 'cachesvc_ryw_other_shard_total 1' <<<"$m" || fail "daemon /metrics: the other shard's token not counted once: $(grep ryw_other <<<"$m")"
  if command -v promtool >/dev/null; then
    out=$(promtool check metrics <<<"$m" 2>&1) && [ -z "$out" ] || fail "promtool check metrics (sharded): $(head -20 <<<"$out")"
  fi
  out=$("$CLI" -p "$PORT" --json show servers 2>&1) || fail "show servers: $out"
  for pair in s1:r1 s2:r2 s1:primary@s1 s2:primary@s2; do
    grep -q "{\"name\":\"${pair#*:}\",[^}]*\"shard\":\"${pair%%:*}\"}" <<<"$out" ||
      fail "show servers: no row of ${pair#*:} with shard ${pair%%:*}: $out"
  done
  ok "daemon: server/pool/lag metrics labelled shard=, requests per shard, other-shard token counted$(command -v promtool >/dev/null && echo ', promtool clean'); SHOW servers names each server's shard"
  kill -TERM $DPID
  deadline=$((SECONDS + 30))
  while kill -0 $DPID 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "cachesvc did not exit within 30 s of SIGTERM"
    sleep 0.1
  done
  ok "the daemon serves the sharded config: the publication created on each primary, key 1 answered with s1's row, key 1002 with s2's ($(grep -o '"source":"[a-z]*"' <<<"$msg")), one streaming invalidator per shard, each logging its shard"
  # review 28 R28-3: a shard no query with invalidate_on reads (t pinned to s1): the daemon
  # starts, creating an empty publication on s2, and s2's invalidator streams it (the start
  # was refused: "no invalidate_on table to publish on shard s2")
  sed -e 's/^shard_key = id$/shard = s1/' -e 's/^slot = cs_smoke$/slot = cs_pin/' \
    -e 's/^publication = cs_smoke$/publication = cs_pin/' "$ini" >"$SB/pinned.ini"
  "$CS" -c "$SB/pinned.ini" >"$SB/pinned.log" 2>&1 &
  DPID=$!
  deadline=$((SECONDS + 60))
  until [ "$(curl -s "http://127.0.0.1:$APORT/metrics" | grep -c '^cachesvc_invalidator_status{shard="s[12]",state="streaming"} 1$')" = 2 ]; do
    kill -0 $DPID 2>/dev/null || fail "cachesvc refused a shard without invalidate_on tables: $(tail -3 "$SB/pinned.log")"
    [ $SECONDS -lt $deadline ] || fail "daemon (t pinned to s1): not one streaming invalidator per shard: $(grep -a invalidator "$SB/pinned.log" | tail -4)"
    sleep 0.2
  done
  grep -q 'created publication "cs_pin" on shard s2 for 0 tables' "$SB/pinned.log" ||
    fail "daemon (t pinned to s1): no empty publication created on s2: $(grep -a publication "$SB/pinned.log")"
  # no query's table; the DDL triggers' own table (cachesvc.ddl_event) is added to it
  [ "$(pg "$(port_of 2 PRIMARY)" -c "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'cs_pin' AND schemaname <> 'cachesvc'")" = 0 ] ||
    fail "daemon (t pinned to s1): s2's publication has tables"
  [ "$(pg "$(port_of 2 PRIMARY)" -c "SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_publication_tables WHERE pubname = 'cs_pin'")" = cachesvc.ddl_event ] ||
    fail "daemon (t pinned to s1): the DDL triggers' table is not in s2's publication"
  # review 31 R31-2: a reload keying t (so s2 reads it too) while s2's publication lacks t is
  # refused, naming table, publication and shard (applied, s2's entries of t would never be
  # invalidated); once t is in the publication the same reload is applied
  reloads() { grep -ac "$1" "$SB/pinned.log" || true; }
  sed -i '/^\[query t\]/,$ s/^shard = s1$/shard_key = id/' "$SB/pinned.ini"
  r0=$(reloads 'reload refused')
  kill -HUP $DPID
  deadline=$((SECONDS + 30))
  until [ "$(reloads 'reload refused')" -gt "$r0" ]; do
    ! grep -q "reloaded $SB/pinned.ini" "$SB/pinned.log" || fail "daemon: the reload keying t applied while s2's publication lacks t"
    ! grep -q "reload failed" "$SB/pinned.log" || fail "daemon: $(grep -a 'reload failed' "$SB/pinned.log")"
    [ $SECONDS -lt $deadline ] || fail "daemon: no answer to the reload keying t: $(tail -3 "$SB/pinned.log")"
    sleep 0.2
  done
  grep -a 'reload refused' "$SB/pinned.log" | tail -1 | grep -q 'table public.t is not in publication "cs_pin" on shard s2' ||
    fail "daemon: the reload refused without naming t, cs_pin and s2: $(grep -a 'reload refused' "$SB/pinned.log" | tail -1)"
  pg "$(port_of 2 PRIMARY)" -c "ALTER PUBLICATION cs_pin ADD TABLE t"
  kill -HUP $DPID
  deadline=$((SECONDS + 30))
  until grep -q "reloaded $SB/pinned.ini" "$SB/pinned.log"; do
    [ $SECONDS -lt $deadline ] || fail "daemon: the reload keying t not applied once t is in s2's publication: $(tail -3 "$SB/pinned.log")"
    sleep 0.2
  done
  kill -TERM $DPID
  deadline=$((SECONDS + 30))
  while kill -0 $DPID 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "cachesvc did not exit within 30 s of SIGTERM"
    sleep 0.1
  done
  ok "a shard no invalidate_on query reads: its empty publication created, both invalidators streaming (R28-3); a reload keying t refused while s2's publication lacks t, applied once it has it (R31-2)"
fi

# ---- stop cleans up -------------------------------------------------------------------------
pids=()
for d in "$SB"/shard*/primary "$SB"/shard*/replica*; do
  [ -f "$d/postmaster.pid" ] || fail "$d has no postmaster.pid while running"
  pids+=("$(head -1 "$d/postmaster.pid")")
done
[ "${#pids[@]}" = 4 ] || fail "expected 4 PostgreSQL servers, found ${#pids[@]}"
pids+=("$(cat "$SB/redis/redis.pid")")
"$SANDBOX" stop "$SB" >"$OUT" 2>&1 || fail "sandbox stop: $(tail -5 "$OUT")"
for p in "${pids[@]}"; do
  ! kill -0 "$p" 2>/dev/null || fail "process $p still runs after stop"
done
left=$(find "$SB" -name postmaster.pid -o -name redis.pid)
[ -z "$left" ] || fail "pid files left after stop: $left"
for p in $ports; do
  ! "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$p" || fail "port $p still answers after stop"
done
ok "stop ended all ${#pids[@]} servers"
