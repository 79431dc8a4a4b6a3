# daemon_lib.sh - helpers for tests that run a cachesvc daemon on the sandbox (sourced).
# Each test gets its own database, Redis database index, ports and unix socket, so tests
# run side by side on one sandbox.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${CS_BUILD:?CS_BUILD (the meson build dir) must be set; meson test sets it}"
CACHESVC=$CS_BUILD/cachesvc/cachesvc
CLI=$CS_BUILD/protocol/cachesvc-cli
BURST=$CS_BUILD/tests/integration/cs_burst
HOSTILE=$CS_BUILD/tests/integration/cs_hostile
TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "/tmp/cs-$TEST_NAME.XXXXXX")
DB=t_${TEST_NAME}_$$
DAEMON_PIDS=()
CLEANUPS=()

cleanup_all() {
  local rc=$?
  for pid in "${DAEMON_PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for c in "${CLEANUPS[@]}"; do
    eval "$c" >/dev/null 2>&1 || true
  done
  primary postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  if [ $rc -ne 0 ]; then
    for f in "$WORK"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $f (last 40 lines)"
      tail -40 "$f"
    done
  fi
  [ -n "${CS_KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup_all EXIT

# A free loopback port of this test's own: claimed with mkdir in the sandbox directory so
# tests starting side by side never pick the same one, and below the kernel's ephemeral
# range (32768+) so no outgoing connection can hold it. The sandbox uses 15000-32000.
PORT_LOCKS=${CS_SANDBOX_DIR:-/tmp}/port-locks
mkdir -p "$PORT_LOCKS" 2>/dev/null || true
free_port() {
  local p
  for _ in $(seq 2000); do
    p=$((10000 + RANDOM % 5000))
    mkdir "$PORT_LOCKS/$p" 2>/dev/null || continue
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      continue # in use by something else: keep the lock, it is not ours to free
    fi
    echo "$$" >"$PORT_LOCKS/$p/owner"
    echo "$p"
    return 0
  done
  fail "no free port"
}
release_ports() {
  local d
  for d in "$PORT_LOCKS"/*; do
    [ "$(cat "$d/owner" 2>/dev/null)" = "$$" ] && rm -rf "$d"
  done
  return 0
}

# A Redis database index of its own (1..63; 0 is the demo's), claimed atomically with mkdir
# in the sandbox directory so tests running side by side never share (and flush) one.
claim_redis_db() {
  local lockdir=${CS_SANDBOX_DIR:-/tmp}/redis-db-locks i
  mkdir -p "$lockdir" 2>/dev/null || true
  for _ in $(seq 300); do
    for i in $(seq 1 63); do
      if mkdir "$lockdir/$i" 2>/dev/null; then
        echo "$$" >"$lockdir/$i/owner"
        REDIS_DB=$i
        REDIS_DB_LOCK=$lockdir/$i
        return 0
      fi
      # a lock left by a test that died: its owner process is gone
      local owner
      owner=$(cat "$lockdir/$i/owner" 2>/dev/null || true)
      if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
        rm -rf "$lockdir/$i"
      fi
    done
    sleep 0.1
  done
  fail "no free Redis database index"
}
claim_redis_db
NS=cs$REDIS_DB # the default namespace of db N (keyspace.h)
CLEANUPS+=('rm -rf "$REDIS_DB_LOCK"' release_ports)
redis() { redis-cli -p "$CS_REDIS_PORT" -n "$REDIS_DB" "$@"; }
redis flushdb >/dev/null

# make_db < SQL: creates the test database from the SQL on stdin and waits until every
# replica has it; the delayed one (2 s behind) only if the test uses it (below).
make_db() {
  primary postgres -c "CREATE DATABASE $DB"
  primary "$DB" >/dev/null
  local lsn
  lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  replicas_replay "$lsn"
}
replica_caught_up() { # N LSN (pg directly: replica below notes a use)
  local v="CS_PG_REPLICA${1}_PORT"
  [ "$(pg "${!v}" postgres -c "SELECT pg_last_wal_replay_lsn() >= '$2'::pg_lsn")" = t ]
}
wait_replicas() { # waits for every replica to replay the primary's current position
  local lsn
  lsn=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
  replicas_replay "$lsn"
}
# The delayed replica (CS_PG_DELAYED_REPLICA) replays every commit 2 s late: waiting for it in
# make_db and wait_replicas cost every test 2 s or more each time, and most tests never use it.
# So those waits leave it out, the position it owes noted in $DELAYED_OWED, until the test
# first uses it: a config naming it (conninfo_of) or a query on it (replica). That use first
# waits for the owed position (what make_db and wait_replicas would have waited for), and from
# then on they wait for it as for every replica. (In a file: conninfo_of runs in $(...).)
DELAYED_OWED=$WORK/delayed-replica.owed
DELAYED_USED=$WORK/delayed-replica.used
is_delayed_replica() { # N
  [ "${CS_PG_DELAYED_REPLICA:-0}" != 0 ] && [ "$1" = "$CS_PG_DELAYED_REPLICA" ]
}
replicas_replay() { # LSN
  local i
  for i in $(seq 1 "$CS_PG_REPLICAS"); do
    if is_delayed_replica "$i" && [ ! -e "$DELAYED_USED" ]; then
      echo "$1" >"$DELAYED_OWED"
      continue
    fi
    until_true 60 replica_caught_up "$i" "$1" || fail "replica$i did not replay $1"
  done
}
delayed_replica_used() { # N: replica N is used; the delayed one: catch up on what it owes
  is_delayed_replica "$1" && [ ! -e "$DELAYED_USED" ] || return 0
  if [ -s "$DELAYED_OWED" ]; then
    until_true 60 replica_caught_up "$1" "$(cat "$DELAYED_OWED")" ||
      fail "replica$1 (delayed) did not replay $(cat "$DELAYED_OWED")"
  fi
  touch "$DELAYED_USED"
}
replica() { # as lib.sh's, noting the use
  delayed_replica_used "$1"
  local v="CS_PG_REPLICA${1}_PORT" db=$2
  shift 2
  pg "${!v}" "$db" "$@"
}

conninfo_of() { # primary | replicaN -> conninfo for the test database
  case $1 in
    primary) echo "host=127.0.0.1 port=$CS_PG_PRIMARY_PORT user=postgres dbname=$DB" ;;
    replica*)
      delayed_replica_used "${1#replica}"
      local v="CS_PG_REPLICA${1#replica}_PORT"
      echo "host=127.0.0.1 port=${!v} user=postgres dbname=$DB"
      ;;
  esac
}

# write_config FILE [REPLICAS...]: the service, Redis and server sections (replica names
# r1.. pointing at the given sandbox replicas, default replica1); append [query] sections.
PORT=$(free_port)
APORT=$(free_port)
SOCK=$WORK/cs.sock
write_config() {
  local f=$1
  shift
  local reps=("$@")
  [ ${#reps[@]} -gt 0 ] || reps=(replica1)
  cat >"$f" <<INI
[cachesvc]
listen = 127.0.0.1:$PORT
unix_socket = $SOCK
admin_listen = 127.0.0.1:$APORT
request_timeout = ${REQUEST_TIMEOUT:-5s}
health_interval = 200ms
fence = ${FENCE:-off}
${EXTRA_SERVICE:-}

[redis]
url = redis://127.0.0.1:$CS_REDIS_PORT/$REDIS_DB
${EXTRA_REDIS:-}

[primary]
conninfo = $(conninfo_of primary)
INI
  local n=1
  for r in "${reps[@]}"; do
    if [ "${r#down}" != "$r" ]; then
      # a replica that is never up: nothing listens on that port
      printf '\n[replica r%d]\nconninfo = host=127.0.0.1 port=%d user=postgres dbname=%s connect_timeout=1\n' "$n" "$(free_port)" "$DB" >>"$f"
    else
      printf '\n[replica r%d]\nconninfo = %s\n%s\n' "$n" "$(conninfo_of "$r")" "${EXTRA_REPLICA:-}" >>"$f"
    fi
    n=$((n + 1))
  done
}

# start_daemon CONF [NAME]: starts cachesvc in the background; waits until it answers PING.
start_daemon() {
  local conf=$1 name=${2:-cachesvc}
  "$CACHESVC" -c "$conf" >"$WORK/$name.log" 2>&1 &
  DAEMON_PID=$!
  DAEMON_LOG=$WORK/$name.log
  DAEMON_PIDS+=("$DAEMON_PID")
  until_true 30 daemon_answers || { cat "$WORK/$name.log" >&2; fail "cachesvc did not come up"; }
}
daemon_answers() {
  if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    local rc=0
    wait "$DAEMON_PID" 2>/dev/null || rc=$?
    fail "cachesvc exited (status $rc) before it answered: $(tail -n 30 "${DAEMON_LOG:-/dev/null}")"
  fi
  cli -t 500 ping >/dev/null 2>&1
}
# stop_daemon [PID]: SIGTERM, then waits (bounded) for the exit; returns its status.
stop_daemon() {
  local pid=${1:-$DAEMON_PID} rc=0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    fail "cachesvc did not exit within 10 s of SIGTERM"
  fi
  wait "$pid" || rc=$?
  return $rc
}

# Every run of an ASan binary pays LeakSanitizer's exit scan: about 0.15 s of CPU, and 0.2-0.5 s
# of wall time on a loaded machine, against 0.05 s without it. Tools run in loops (the cli
# polling in until_true, up to 10 runs a second; the race tests' readers, one cs_burst of 10
# reads after another) spent a third of some tests' CPU on it, so they run with
# NOLEAK_ASAN_OPTIONS; the daemons, drivers and tools run once keep leak checks.
NOLEAK_ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
# cli ARGS: cachesvc-cli on this test's daemon. In a sanitized build, the copy built without
# sanitizers (protocol/meson.build cachesvc-cli-plain: a third of the CPU per run), except in
# the tests of the cli's own commands (admin_ops, show_views, engine_read_path), which set
# CLI_LEAKS=1 and run the instrumented one with leak checks; "$CLI" run directly keeps them
# everywhere.
CLI_PLAIN=$CS_BUILD/protocol/cachesvc-cli-plain
[ -x "$CLI_PLAIN" ] || CLI_PLAIN=$CLI
cli() {
  if [ -n "${CLI_LEAKS:-}" ]; then
    "$CLI" -p "$PORT" "$@"
  else
    ASAN_OPTIONS=$NOLEAK_ASAN_OPTIONS "$CLI_PLAIN" -p "$PORT" "$@"
  fi
}
# json FIELD < one JSON object: prints a top-level field (python3 is a meson dependency).
json() { "$PY3" -c 'import json,sys; v=json.load(sys.stdin); print(json.dumps(v.get(sys.argv[1])) if not isinstance(v.get(sys.argv[1]), str) else v[sys.argv[1]])' "$1"; }

# http_response PATH: the admin endpoint's whole answer (status line, headers, body); http PATH:
# its body. Both fail on no answer.
http_response() {
  exec 3<>"/dev/tcp/127.0.0.1/$APORT" || fail "admin endpoint not reachable"
  printf 'GET %s HTTP/1.0\r\nHost: x\r\n\r\n' "$1" >&3
  cat <&3
  exec 3<&-
}
http() { http_response "$1" | sed '1,/^\r$/d'; }
http_status() {
  exec 3<>"/dev/tcp/127.0.0.1/$APORT" || fail "admin endpoint not reachable"
  printf 'GET %s HTTP/1.0\r\nHost: x\r\n\r\n' "$1" >&3
  head -1 <&3 | awk '{print $2}'
  exec 3<&-
}
# metric NAME_WITH_LABELS: the value of one /metrics sample (0 when absent).
metric() {
  local v
  v=$(http /metrics | awk -v m="$1" '$1 == m {print $2}')
  echo "${v:-0}"
}

# metric_is NAME VALUE / metric_ge NAME VALUE: for until_true (re-read on every try).
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_ge() { awk -v v="$(metric "$1")" -v w="$2" 'BEGIN { exit !(v >= w) }'; }

# stmt_calls PORT PATTERN: executions of statements matching PATTERN on a server
# (pg_stat_statements; counted on the server itself, not by cachesvc).
stmt_calls() {
  local v
  v=$(pg "$1" "$DB" -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() AND query LIKE '$2'")
  # (pg_stat_statements shows constants as $n: match on the statement's shape)
  echo "${v:-0}"
}

# Reading cachesvc-cli --json without python (the pyenv shim can take seconds per call on a
# busy machine): src QUERY PARAM... -> the answer's source; rows QUERY PARAM... -> its rows;
# jnum FIELD < JSON -> the first numeric FIELD.
src() { cli --json get "$@" | sed -n 's/^{"source":"\([a-z]*\)".*/\1/p'; }
rows() { cli --json get "$@" | sed -n 's/.*"rows":\(.*\)}$/\1/p'; }
jnum() { grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }

# ---- invalidator helpers ---------------------------------------------------------------------
SLOT=t_${TEST_NAME}_$$
# invalidator_section: the [invalidator] section for this test's slot (publication cs_pub in
# the test database, created by the daemon at startup).
invalidator_section() {
  cat <<INI

[invalidator]
enabled = true
slot = $SLOT
publication = cs_pub
status_interval = 100ms
INI
}
drop_slot() {
  primary postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT'" >/dev/null 2>&1 || true
}
CLEANUPS+=("drop_slot")

# commit_lsn SQL...: runs SQL on the primary and prints the WAL position right after it
# (every commit of SQL ends at or before it).
commit_lsn() {
  primary "$DB" -c "$1" >/dev/null
  primary "$DB" -c "SELECT pg_current_wal_lsn()"
}
lsn_num() { primary postgres -c "SELECT '$1'::pg_lsn - '0/0'"; }
# wait_invalidated LSN: until the invalidator has confirmed (Redis acknowledged) LSN.
invalidated_past() { awk -v a="$(metric cachesvc_invalidator_confirmed_lsn)" -v b="$1" 'BEGIN { exit !(a >= b) }'; }
wait_invalidated() {
  local n
  n=$(lsn_num "$1")
  until_true 30 invalidated_past "$n" || fail "the invalidator never confirmed $1 (at $(metric cachesvc_invalidator_confirmed_lsn))"
}
# cached QUERY CANON: is there an entry for that key (current generation)?
cached() {
  local g
  g=$(redis get "$NS:g:$1")
  [ "$(redis exists "$NS:e:$1:${g:-0}:$2")" = 1 ]
}
streaming() { metric_is cachesvc_invalidator_state 3; }

# ---- common set-ups ------------------------------------------------------------------------
# users_db N [SQL...]: the test database with users(id, name) holding rows 1..N ('user ' || id);
# any SQL lines given run after the CREATE TABLE and before the rows go in.
users_db() {
  local n=$1
  shift
  make_db < <(
    echo "CREATE TABLE users (id bigint PRIMARY KEY, name text);"
    [ $# -eq 0 ] || printf '%s\n' "$@"
    echo "INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, $n) i;"
  )
}
# user_query NAME: a [query NAME] section reading one users row by id, invalidated by that row.
user_query() {
  printf '\n[query %s]\nsql = SELECT id, name FROM users WHERE id = $1\nparams = id:int8\ninvalidate_on = users(id = $1)\n' "$1"
}
# inval_config FILE QUERY [REPLICAS...]: write_config, user_query QUERY, invalidator_section.
inval_config() {
  local f=$1 q=$2
  shift 2
  write_config "$f" "$@"
  user_query "$q" >>"$f"
  invalidator_section >>"$f"
}
# start_streaming CONF [NAME]: start_daemon, then waits (30 s) until its invalidator streams
# and, with fences on, until the mapping it recorded is covered (review 36 R36-1: a process
# covers a new record of the leader's with a generation bump, which retires what was filled
# before; once per query at a first start).
start_streaming() {
  start_daemon "$@"
  until_true 30 streaming || fail "${2:-cachesvc}: the invalidator never streamed"
  if grep -q '^fence = on' "$1"; then
    until_true 30 qmap_covered "$1" || fail "${2:-cachesvc}: the leader's query mappings were never covered: $(qmap_cmd "$1" hgetall)"
  fi
}
# qmap_cmd CONF CMD...: CMD on the leader's mapping record of CONF's namespace, on CONF's Redis
# ([redis] url; a cluster's: bucket 0's, through the private cluster's first node)
qmap_cmd() {
  local conf=$1 ns url hp db
  shift
  if grep -q '^cluster = on' "$conf"; then
    ns=$(sed -n 's/^namespace = //p' "$conf" | tail -1)
    redis-cli -c -p "${RC_PORTS[0]}" "$1" "{${ns:-cs}:0}:inv:qmap" "${@:2}"
    return
  fi
  local auth=()
  url=$(sed -n 's|^url = redis://||p' "$conf" | tail -1)
  hp=${url%%/*}
  db=${url#*/}
  [ "$db" != "$url" ] && [ -n "$db" ] || db=0
  if [[ $hp == *@* ]]; then # [user]:password@host:port
    local cred=${hp%@*}
    hp=${hp##*@}
    [ -z "${cred%%:*}" ] || auth+=(--user "${cred%%:*}")
    auth+=(-a "${cred#*:}" --no-auth-warning)
  fi
  ns=$(sed -n 's/^namespace = //p' "$conf" | tail -1)
  [ -n "$ns" ] || { [ "$db" = 0 ] && ns=cs || ns=cs$db; }
  redis-cli -h "${hp%:*}" -p "${hp##*:}" "${auth[@]}" -n "$db" "$1" "$ns:inv:qmap" "${@:2}"
}
# qmap_covered CONF: the record exists and each query's record is covered ("<q>/c" = "<q>")
qmap_covered() {
  local f v
  [ "$(qmap_cmd "$1" hget @)" = 1 ] || return 1
  for f in $(qmap_cmd "$1" hkeys); do
    case "$f" in @ | */c) continue ;; esac
    v=$(qmap_cmd "$1" hget "$f")
    [ "$(qmap_cmd "$1" hget "$f/c")" = "$v" ] || return 1
  done
}
# filled_now QUERY PARAM...: one GET, then true when the next GET of that key is a hit.
filled_now() { cli get "$@" >/dev/null 2>&1 && [ "$(src "$@")" = cache ]; }
# fill QUERY PARAM...: until that key is cached (20 s), or fails.
fill() { until_true 20 filled_now "$@" || fail "could not get $* cached"; }
# items_db FIRST LAST [SQL...]: the test database with items(id, v) holding rows FIRST..LAST
# (v = 'v' || id), once every replica has replayed it; SQL lines run before the rows go in.
items_db() {
  local first=$1 last=$2
  shift 2
  make_db < <(
    echo "CREATE TABLE items (id bigint PRIMARY KEY, v text);"
    [ $# -eq 0 ] || printf '%s\n' "$@"
    echo "INSERT INTO items SELECT i, 'v' || i FROM generate_series($first, $last) i;"
  )
  wait_replicas
}
# item_query: the [query w_item] section reading one items row's v by id.
item_query() {
  printf '\n[query w_item]\nsql = SELECT v FROM items WHERE id = $1\nparams = id:int8\n'
}
# private_redis [OPTION...]: a redis-server of this test's own on RPORT (data in $WORK/redis,
# shut down at exit), started at once; start_redis starts it again after a stop, with the same
# options (default --appendonly no). Point a config at it with
#   sed -i "s|^url = .*|url = redis://127.0.0.1:$RPORT/0|" FILE
private_redis() {
  RPORT=$(free_port)
  PRIVATE_REDIS_OPTS=("$@")
  [ ${#PRIVATE_REDIS_OPTS[@]} -gt 0 ] || PRIVATE_REDIS_OPTS=(--appendonly no)
  mkdir -p "$WORK/redis"
  # (continued first: a test may fail while it holds its Redis stopped, and a SHUTDOWN sent
  # to a stopped Redis waits for ever)
  CLEANUPS+=("private_redis_down $RPORT")
  start_redis
}
private_redis_down() {
  local pid
  pid=$(cat "$WORK/redis/redis.pid" 2>/dev/null || true)
  [ -z "$pid" ] || kill -CONT "$pid" 2>/dev/null || true
  timeout 10 redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || { [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; }
}
# use_private_sandbox [SANDBOX OPTIONS...]: a sandbox of this test's own (scripts/sandbox: a
# primary, replicas, a Redis; about 8 s to start) in place of the shared one, for a test that
# stops, restarts or reconfigures a server or needs many connections: it then runs beside the
# others instead of alone. Sets SB (its directory, inside the shared sandbox's); from here on
# every helper (primary, replica, make_db, redis, conninfo_of) talks to it. Call it before
# make_db.
SANDBOX_SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/sandbox
runpg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
use_private_sandbox() {
  local keep=$PORT_LOCKS parent=${CS_SANDBOX_DIR:-/tmp}/private
  # under the shared sandbox's directory: stopping that one stops this one too, should this
  # test be killed before its cleanup ran (meson's timeout: SIGTERM, SIGKILL 0.5 s later)
  mkdir -p "$parent" && chmod 755 "$parent" || fail "cannot make $parent"
  SB=$(mktemp -d "$parent/$TEST_NAME.XXXXXX")
  chmod 755 "$SB" # the servers run as postgres when the test runs as root
  CLEANUPS+=("\"$SANDBOX_SCRIPT\" stop \"$SB\"; rm -rf \"$SB\"")
  "$SANDBOX_SCRIPT" start "$SB" "$@" >"$WORK/sandbox.out" 2>&1 ||
    fail "private sandbox: $(tail -5 "$WORK/sandbox.out")"
  set -a
  . "$SB/env.sh"
  set +a
  PORT_LOCKS=$keep # ports stay claimed where every test claims them
}

# use_private_redis [OPTS]: this test's own Redis (private_redis) in place of the sandbox's,
# for every helper too (redis, write_config's url, the namespace NS of database 0): a test
# that changes Redis's configuration (maxmemory, policy) or stops it then runs beside the
# others instead of alone.
use_private_redis() {
  private_redis "$@"
  CS_REDIS_PORT=$RPORT
  CS_REDIS_URL=redis://127.0.0.1:$RPORT/0
  REDIS_DB=0
  NS=cs # database 0's default namespace (keyspace.h)
}
redis_pong() { [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ]; }
start_redis() {
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' "${PRIVATE_REDIS_OPTS[@]}" \
    --daemonize yes --pidfile "$WORK/redis/redis.pid" --logfile "$WORK/redis.log" --dir "$WORK/redis" >/dev/null
  # PONG, not just an answer: while it loads its AOF or RDB Redis answers -LOADING (and
  # redis-cli still exits 0), and what a test reads then is not the restored data
  until_true 30 redis_pong || fail "private redis did not start (or never finished loading)"
}
# private_redis_gone: waits (10 s) until the private Redis no longer answers, or fails.
private_redis_gone() {
  until_true 10 bash -c "! redis-cli -p $RPORT ping >/dev/null 2>&1" || fail "private redis did not stop"
}

# private_redis_cluster MASTERS REPLICAS: a Redis Cluster of this test's own (so a test that
# reshards or fails over disturbs no other), every node on a free port of the test's own
# (cluster bus ports too), data in $WORK/rcluster, shut down at exit. Waits (60 s) until
# every node says cluster_state:ok. Sets RC_PORTS (every node), RC_NODES
# (host:port,... every node), RC_MASTERS (host:port,... the masters) and RC_SEED (one node).
# CS_RC_NODE_TIMEOUT (ms, default 1000) is the cluster-node-timeout: failover detection.
rc_ok() { redis-cli -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }
# bucket_of ID [QUERY]: the bucket of key QUERY:ID (default cu): FNV-1a-32 of "QUERY\0ID"
# mod 256 (CLUSTER.md section 2)
bucket_of() {
  "$PY3" -c 'import sys
h = 2166136261
for c in sys.argv[2].encode() + b"\0" + sys.argv[1].encode():
    h = ((h ^ c) * 16777619) & 0xffffffff
print(h % 256)' "$1" "${2:-cu}"
}
# cluster_settled: every node of the private cluster (RC_PORTS) says cluster_state:ok and none
# is flagged fail or pfail (the tests that run several parts on one cluster wait for it
# between parts)
cluster_settled() {
  local p flags
  for p in "${RC_PORTS[@]}"; do
    rc_ok "$p" || return 1
    flags=$(redis-cli -p "$p" cluster nodes | awk '{ print $3 }')
    [ -n "$flags" ] && [[ $flags != *fail* ]] || return 1
  done
}
# port_of_slot SLOT: the port of the master of SLOT in the private cluster (RC_PORTS)
port_of_slot() {
  redis-cli -p "${RC_PORTS[0]}" cluster slots | paste - - - - - - |
    awk -v s="$1" '$1 <= s && s <= $2 { print $4 }'
}
private_redis_cluster() {
  local m=$1 r=$2 n i p bus d addrs=()
  n=$((m * (1 + r)))
  RC_PORTS=()
  for i in $(seq 1 "$n"); do
    p=$(free_port)
    bus=$(free_port)
    d=$WORK/rcluster/node$i
    mkdir -p "$d"
    CLEANUPS+=("redis-cli -p $p shutdown nosave")
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes \
      --cluster-port "$bus" --cluster-config-file "$d/nodes.conf" \
      --cluster-node-timeout "${CS_RC_NODE_TIMEOUT:-1000}" --daemonize yes \
      --pidfile "$d/redis.pid" --logfile "$WORK/rcluster$i.log" --dir "$d" >/dev/null
    RC_PORTS+=("$p")
    addrs+=("127.0.0.1:$p")
  done
  for p in "${RC_PORTS[@]}"; do
    until_true 30 redis_port_pong "$p" || fail "cluster node $p did not start"
  done
  timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$r" --cluster-yes \
    >"$WORK/rcluster-create.log" 2>&1 || fail "redis-cli --cluster create failed"
  for p in "${RC_PORTS[@]}"; do
    until_true 60 rc_ok "$p" || fail "cluster node $p never reached cluster_state:ok"
  done
  RC_NODES=$(IFS=,; echo "${addrs[*]}")
  RC_MASTERS=$(for p in "${RC_PORTS[@]}"; do
    if [ "$(redis-cli -p "$p" role | head -1)" = master ]; then echo "127.0.0.1:$p"; fi
  done | paste -sd,)
  RC_SEED=${addrs[0]}
}
redis_port_pong() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }
# rc_master_of SLOT: the port of the master that serves SLOT now (as the first live node sees it).
rc_master_of() {
  local p
  for p in "${RC_PORTS[@]}"; do
    redis_port_pong "$p" || continue
    redis-cli -p "$p" cluster shards 2>/dev/null | awk -v s="$1" '
      /^slots$/ { mode = "slots"; n = 0; delete r; next }
      /^nodes$/ { mode = "nodes"; mine = 0; for (i = 0; i < n; i += 2) if (s >= r[i] && s <= r[i+1]) mine = 1; next }
      mode == "slots" && /^[0-9]+$/ { r[n++] = $0; next }
      mode == "nodes" && mine && prev == "port" { port = $0 }
      mode == "nodes" && mine && prev == "role" && $0 == "master" { found = port }
      mode == "nodes" && mine && prev == "health" && $0 != "online" && found == port { found = "" }
      { prev = $0 }
      END { if (found != "") print found }'
    return 0
  done
}
