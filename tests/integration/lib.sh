# lib.sh - shared helpers for shell integration tests (sourced, not run).
# The sandbox's variables come from the environment (scripts/test exports them) or
# from $CS_SANDBOX_ENV / $CS_SANDBOX_DIR/env.sh. Without a sandbox the test is skipped.
set -euo pipefail

if [ -z "${CS_PG_PRIMARY_PORT:-}" ]; then
  envfile=${CS_SANDBOX_ENV:-${CS_SANDBOX_DIR:-}/env.sh}
  if [ -f "$envfile" ]; then
    # shellcheck disable=SC1090
    . "$envfile"
  else
    echo "SKIP: no sandbox (set CS_SANDBOX_DIR or run scripts/test)"
    exit 77
  fi
fi

# The distribution's python3 (scripts/lib.sh installs it; meson runs on it) for the small
# JSON readers: a python3 found first on PATH can be a version manager's shim that costs
# about 2 s per call on a loaded machine (pyenv's here, CI's PATH included), which made
# tests that read a JSON field per request spend most of their time starting Python.
PY3=/usr/bin/python3
[ -x "$PY3" ] || PY3=python3

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# psql against a port on the sandbox's unix socket; -At output, errors are fatal.
pg() { # PORT DB SQL...
  local port=$1 db=$2
  shift 2
  "$CS_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$CS_PG_SOCKET_DIR" -p "$port" -U postgres -d "$db" "$@"
}
primary() { local db=$1; shift; pg "$CS_PG_PRIMARY_PORT" "$db" "$@"; }
replica() { local i=$1 db=$2 v="CS_PG_REPLICA${1}_PORT"; shift 2; pg "${!v}" "$db" "$@"; }

# nap SECS: sleep without forking /usr/bin/sleep (a read that times out on a pipe nobody
# writes to; the pipe is opened once per shell).
NAP_FD=
nap() {
  [ -n "$NAP_FD" ] || exec {NAP_FD}<> <(:)
  read -r -t "$1" -u "$NAP_FD" _ || true
}

# until_true SECONDS COMMAND...: polls COMMAND until it succeeds; false once SECONDS pass.
# Every 0.1 s for the first 2 s, then every 0.25 s: each try starts tools (the cli, psql,
# curl, redis-cli), and on the CI machine (2 paravirtualised cores) process start-up was most
# of the suite's CPU (perf of a suite run: bash, the cli, psql and redis-cli about 40% of the
# samples), so long waits polled 10 times a second slowed every test running beside them.
# UNTIL_POLL=SECS before the call: that interval throughout, for a condition that holds only
# for moments.
until_true() {
  local deadline=$((SECONDS + $1)) start=$SECONDS
  shift
  until "$@"; do
    [ $SECONDS -lt "$deadline" ] || return 1
    if [ -n "${UNTIL_POLL:-}" ]; then nap "$UNTIL_POLL"
    elif [ $((SECONDS - start)) -lt 2 ]; then nap 0.1; else nap 0.25; fi
  done
}

# A name unique to this test run, for databases, slots and key prefixes.
unique_name() { echo "t_$1_$$_$RANDOM"; }
