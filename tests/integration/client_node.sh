#!/usr/bin/env bash
# client_node.sh - the Node.js client (protocol/node) against a real daemon on the sandbox:
# typed values of every column type, hit/miss and sources, every opcode, pipelining with a
# slow miss overtaken by a hit, request errors that keep the connection and a protocol
# error that closes it, the auth token, TCP and unix socket, a pool, reconnecting after
# the daemon restarts, and the admin requests (show, pause/resume, reload; admin_token set
# and removed by a reload). The assertions are in protocol/node/test/integration.test.js.
. "$(dirname "$0")/daemon_lib.sh"

# CS_NODE_BIN: the node binary to run the tests with (default: node on PATH).
NODE_DIR=$(cd "$(dirname "$0")/../../protocol/node" && pwd)
command -v "${CS_NODE_BIN:-node}" >/dev/null || { echo "SKIP: node is not installed"; exit 77; }
"$NODE_DIR/scripts/deps.sh" || fail "npm ci failed"

make_db <<'SQL'
CREATE TABLE kinds (id bigint PRIMARY KEY, small int4, big int8, score numeric, seen timestamptz,
                    wall timestamp, blob bytea, tags text[], doc jsonb, ok boolean, f float8,
                    born date, u uuid, name text);
INSERT INTO kinds VALUES
  (1, 42, 9007199254740993, 12345678901234567890.123456789, '2024-01-02 03:04:05.123456+00',
   '2024-01-02 03:04:05.5', '\x00ff10', ARRAY['a', 'b c'], '{"k": [1, 2], "s": "x"}', true, 1.5,
   '2000-01-31', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'héllo'),
  (2, -7, -9223372036854775808, -0.5, 'infinity', '-infinity', '', '{}', '[]', false, -2.25,
   '1999-12-31', '00000000-0000-0000-0000-000000000000', ''),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE names (id bigint PRIMARY KEY, name text);
INSERT INTO names SELECT i, 'name ' || i FROM generate_series(1, 50) i;
SQL

REQUEST_TIMEOUT=3s
EXTRA_SERVICE="auth_token = sesame"
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query nc_kinds]
sql = SELECT id, small, big, score, seen, wall, blob, tags, doc, ok, f, born, u, name FROM kinds WHERE id = $1
params = id:int8
ttl = 60s

[query nc_name]
sql = SELECT id, name FROM names WHERE id = $1
params = id:int8
ttl = 60s

[query nc_upto]
sql = SELECT id, name FROM names WHERE id <= $1 ORDER BY id
params = upto:int8
kind = list
ttl = 60s

[query nc_slow]
sql = SELECT pg_sleep($1) IS NULL AS slept, $2::int8 AS n
params = secs:float8, n:int8
ttl = 60s

[query nc_count]
sql = SELECT count(*) AS n FROM names
ttl = 60s
INI
export CACHESVC_TOKEN=sesame
start_daemon "$WORK/cs.ini"

# The test restarts the daemon itself (to see the client reconnect); a daemon it started
# is killed here if the test dies first.
CLEANUPS+=('kill -KILL "$(cat "$WORK/node-daemon.pid" 2>/dev/null)"')

# a write on the primary and its WAL position: a read-your-writes token for the test
write_lsn=$(commit_lsn "UPDATE names SET name = 'renamed' WHERE id = 50")

CS_NODE_PORT=$PORT CS_NODE_SOCK=$SOCK CS_NODE_TOKEN=sesame CS_NODE_CACHESVC=$CACHESVC \
  CS_NODE_CONF=$WORK/cs.ini CS_NODE_DAEMON_PID=$DAEMON_PID CS_NODE_WORK=$WORK \
  CS_NODE_WRITE_LSN=$write_lsn \
  timeout 150 "${CS_NODE_BIN:-node}" --test "$NODE_DIR/test/integration.test.js" ||
  fail "node integration tests failed"
ok "Node.js client integration tests passed"
