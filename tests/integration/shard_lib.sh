# shard_lib.sh - the preamble of the tests on a private two-shard sandbox (engine_shards.sh,
# engine_shards_inval.sh): skips without PostgreSQL 15, Redis or a build; `shard_sandbox NAME`
# makes $SB and $OUT (/tmp/cs-NAME-*), starts `scripts/sandbox start $SB --shards 2
# --replicas 1` and reads its env.sh. The test sets `trap cleanup EXIT` with its own cleanup
# (shard_cleanup stops the sandbox and removes both). pg PORT SQL..., port_of K PRIMARY|REPLICA1.
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/postgres" ] || { echo "SKIP: no PostgreSQL 15 in $PGBIN"; exit 77; }
command -v redis-server >/dev/null || { echo "SKIP: no redis-server"; exit 77; }
[ -n "${CS_BUILD:-}" ] || { echo "SKIP: CS_BUILD (the meson build directory) is not set"; exit 77; }
DRIVE=$CS_BUILD/tests/integration/shard_drive
[ -x "$DRIVE" ] || fail "no $DRIVE"
SANDBOX=$(cd "$(dirname "$0")/../.." && pwd)/scripts/sandbox
SB=
OUT=

shard_cleanup() {
  [ ${#RC_PORTS[@]} = 0 ] || rc_stop_all
  [ -z "$SB" ] || "$SANDBOX" stop "$SB" >/dev/null 2>&1 || true
  rm -rf "$SB" "$OUT"
}

shard_sandbox() { # NAME
  SB=$(mktemp -d "/tmp/cs-$1-sb.XXXXXX")
  chmod 755 "$SB"
  OUT=$(mktemp "/tmp/cs-$1-out.XXXXXX")
  # shellcheck disable=SC2086 # SHARD_SANDBOX_ARGS: more options (race_shards: --delay 2s)
  "$SANDBOX" start "$SB" --shards 2 --replicas 1 ${SHARD_SANDBOX_ARGS:-} >"$OUT" 2>&1 ||
    fail "sandbox start --shards 2: $(tail -5 "$OUT")"
  # shellcheck disable=SC1091
  . "$SB/env.sh"
}

pg() { # PORT SQL...
  local port=$1
  shift
  "$CS_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$CS_PG_SOCKET_DIR" -p "$port" -U postgres -d app "$@"
}
port_of() { local n=CS_PG_SHARD${1}_${2}_PORT; echo "${!n}"; } # K PRIMARY|REPLICA1
# shard_sections [SLOT]: the config sections of the private sandbox's servers, [shard s1] and
# [shard s2] (with SLOT, each shard's slot SLOT_s1, SLOT_s2) and [replica r1]/[replica r2] of
# their shards
shard_sections() {
  local k v
  for k in 1 2; do
    v=CS_PG_SHARD${k}_PRIMARY
    printf '[shard s%s]\nconninfo = %s\n' "$k" "${!v}"
    [ -z "${1:-}" ] || printf 'slot = %s_s%s\n' "$1" "$k"
  done
  for k in 1 2; do
    v=CS_PG_SHARD${k}_REPLICA1
    printf '[replica r%s]\nconninfo = %s\nshard = s%s\n' "$k" "${!v}" "$k"
  done
}

# shard_redis_cluster MASTERS: a private Redis Cluster of MASTERS masters, no replica, no
# persistence (engine_shards_cluster.sh), data in $SB/rc<i>, on free ports (claimed with mkdir
# under /tmp/port-locks as daemon_lib.sh's free_port does); shard_cleanup shuts it down. Sets
# RC_PORTS, RC_NODES (host:port,...) and RC_START[i] (the command that starts node i again,
# from its directory: a restart loads what SAVE wrote there). Waits (60 s) for cluster_state:ok.
RC_PORTS=()
RC_START=()
rc_free_port() {
  local p locks=${CS_SANDBOX_DIR:-/tmp}/port-locks
  mkdir -p "$locks" 2>/dev/null || true
  for _ in $(seq 2000); do
    p=$((10000 + RANDOM % 5000))
    mkdir "$locks/$p" 2>/dev/null || continue
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
    echo "$$" >"$locks/$p/owner"
    echo "$p"
    return 0
  done
  fail "no free port"
}
rc_pong() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }
rc_ok() { redis-cli -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }
rc_all_ok() { local p; for p in "${RC_PORTS[@]}"; do rc_ok "$p" || return 1; done; }
rc_wait() { # SECONDS CMD...: until CMD succeeds, else 1
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
shard_redis_cluster() { # MASTERS
  local i p bus d addrs=()
  for i in $(seq 1 "$1"); do
    p=$(rc_free_port)
    bus=$(rc_free_port)
    d=$SB/rc$i
    mkdir -p "$d"
    RC_START[i]="redis-server --port $p --bind 127.0.0.1 --save '' --appendonly no --cluster-enabled yes --cluster-port $bus --cluster-config-file $d/nodes.conf --cluster-node-timeout 1000 --daemonize yes --pidfile $d/redis.pid --logfile $d/redis.log --dir $d"
    (cd "$d" && eval "${RC_START[i]}") >/dev/null
    RC_PORTS+=("$p")
    addrs+=("127.0.0.1:$p")
  done
  for p in "${RC_PORTS[@]}"; do rc_wait 30 rc_pong "$p" || fail "cluster node $p did not start"; done
  timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
    >"$SB/rc-create.log" 2>&1 || fail "redis-cli --cluster create failed: $(tail -3 "$SB/rc-create.log")"
  rc_wait 60 rc_all_ok || fail "the cluster never reached cluster_state:ok"
  RC_NODES=$(IFS=,; echo "${addrs[*]}")
}
rc_stop_all() {
  local p locks=${CS_SANDBOX_DIR:-/tmp}/port-locks d
  for p in "${RC_PORTS[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  for d in "$locks"/*; do [ "$(cat "$d/owner" 2>/dev/null)" = "$$" ] && rm -rf "$d"; done
  return 0
}
