#!/usr/bin/env bash
# run.sh - W1 hit throughput of the Node client next to the C client (cs_load) on the same
# daemon and the same number of connections, pipelined and not. Uses a running sandbox
# (CS_SANDBOX_DIR or the sandbox's variables) and a build (CS_BUILD, default build): loads
# a users table into a database of its own, starts a daemon, warms every key, then runs
#   C cs_load -P 1, Node -P 1, C cs_load -P 16, Node -P 16
# for DURATION seconds each and prints one JSON line per run. Nothing is asserted.
#   CS_BUILD=$PWD/build protocol/node/bench/run.sh [USERS=20000] [CONNS=4] [DURATION=5]
set -euo pipefail
NODE_BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$NODE_BENCH/../../.." && pwd)
export CS_BUILD=${CS_BUILD:-$REPO/build}
USERS=${USERS:-20000}
CONNS=${CONNS:-4}
DURATION=${DURATION:-5}
. "$REPO/tests/integration/daemon_lib.sh"
"$NODE_BENCH/../scripts/deps.sh"

make_db <<SQL
CREATE TABLE users (id bigint PRIMARY KEY, name text, email text);
INSERT INTO users SELECT i, 'user ' || i, 'user' || i || '@example.com' FROM generate_series(1, $USERS) i;
SQL
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query w1_profile]
sql = SELECT id, name, email FROM users WHERE id = $1
params = id:int8
ttl = 1h
INI
start_daemon "$WORK/cs.ini"
LOAD=$CS_BUILD/bench/cs_load
"$LOAD" -p "$PORT" -c "$CONNS" --unique -k "1:$USERS" w1_profile >/dev/null # every key cached

for p in 1 16; do
  echo "{\"run\": \"C cs_load P=$p\", \"result\": $("$LOAD" -p "$PORT" -c "$CONNS" -d "$DURATION" -k "1:$USERS" -P "$p" w1_profile)}"
  echo "{\"run\": \"node P=$p\", \"result\": $(node "$NODE_BENCH/w1.js" --port "$PORT" --conns "$CONNS" --duration "$DURATION" --keys "1:$USERS" --pipeline "$p")}"
done
