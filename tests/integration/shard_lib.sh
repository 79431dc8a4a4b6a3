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

shard_cleanup() { [ -z "$SB" ] || "$SANDBOX" stop "$SB" >/dev/null 2>&1 || true; rm -rf "$SB" "$OUT"; }

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
