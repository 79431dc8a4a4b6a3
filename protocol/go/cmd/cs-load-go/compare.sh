#!/usr/bin/env bash
# compare.sh - W1 hit throughput from the Go client (cs-load-go) vs the C client (cs_load),
# one process each, the same daemon, the same connections, pipelined and not. Not a test:
# it prints numbers, asserts nothing. Needs a build (CS_BUILD, default ./build) and a
# sandbox (scripts/sandbox start DIR; then CS_SANDBOX_DIR=DIR). Takes about a minute.
#
#   CS_SANDBOX_DIR=/tmp/sb CS_BUILD=$PWD/build protocol/go/cmd/cs-load-go/compare.sh [SECS] [CONNS]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../../.." && pwd)
export CS_BUILD=${CS_BUILD:-$REPO/build}
SECS=${1:-3}
CONNS=${2:-50}
. "$REPO/tests/integration/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text, email text, created_at timestamptz);
INSERT INTO users SELECT i, 'user ' || i, 'user' || i || '@example.com', now() FROM generate_series(1, 100000) i;
SQL
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query w1_profile]
sql = SELECT id, name, email FROM users WHERE id = $1
params = id:int8
ttl = 600s
INI
start_daemon "$WORK/cs.ini"

export GOCACHE=$CS_BUILD/go-cache GOPATH=$CS_BUILD/go-path GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
(cd "$REPO/protocol/go" && go build -o "$WORK/cs-load-go" ./cmd/cs-load-go)
LOAD=$CS_BUILD/bench/cs_load
"$LOAD" -p "$PORT" -c 8 --unique -k 1:100000 w1_profile >/dev/null # every key cached
for P in 1 16; do
  c=$("$LOAD" -p "$PORT" -c "$CONNS" -d "$SECS" -k 1:100000 -P "$P" w1_profile)
  g=$("$WORK/cs-load-go" -addr "127.0.0.1:$PORT" -c "$CONNS" -d "${SECS}s" -k 1:100000 -P "$P" w1_profile)
  /usr/bin/python3 - "$P" "$c" "$g" <<'PY'
import json, sys
p, c, g = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"W1 hits, pipeline {p:>2}: C {c['throughput']:>9,.0f} req/s p99 {c['latency_us']['p99']:>6} us | "
      f"Go {g['throughput']:>9,.0f} req/s p99 {g['latency_us']['p99']:>6} us | Go/C {g['throughput'] / c['throughput']:.2f}x"
      f" (hit ratio C {c['hit_ratio']:.2f}, Go {g['hit_ratio']:.2f}; errors C {c['errors']}, Go {g['errors']})")
PY
done
