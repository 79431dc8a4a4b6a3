#!/usr/bin/env bash
# client_go.sh - the Go client (protocol/go) against a real daemon on the sandbox: typed
# values of every column type, hit/miss and sources, every opcode, pipelining out of order
# (a slow miss overtaken by a hit on one connection), request errors that keep the
# connection, a protocol error that closes it, the auth token, TCP and unix socket,
# reconnecting after the daemon restarts, the pool under concurrent goroutines, and the
# admin requests (Show, Pause/Resume, Reload; admin_token set and removed by a reload).
# The assertions are Go tests (protocol/go/integration_test.go), run with CS_ADDR set.
. "$(dirname "$0")/daemon_lib.sh"

GO_SRC=$(cd "$(dirname "$0")/../../protocol/go" && pwd)
command -v go >/dev/null || fail "go is not installed (scripts/lib.sh installs golang-go)"

make_db <<'SQL'
CREATE TABLE t (id bigint PRIMARY KEY, b boolean, f float8, txt text, y bytea, ts timestamp,
                tz timestamptz, n numeric, j jsonb, arr text[], d date, i4 int4);
INSERT INTO t VALUES (1, true, 1.5, 'héllo', '\x00ff', '2024-01-02 03:04:05.123456',
  '2024-01-02 04:04:05.123456+01', 12345678901234567890.50, '{"k": [1, 2]}', ARRAY['a', 'b'],
  '2024-02-29', 7);
INSERT INTO t (id) VALUES (2);
INSERT INTO t (id, txt) SELECT i, 'row ' || i FROM generate_series(3, 40) i;
CREATE TABLE flags (token text PRIMARY KEY);
-- Returns once the test inserts its token on the primary (and the replica replays it): a
-- miss that stays in flight exactly as long as the test wants, with no timing involved.
CREATE FUNCTION wait_flag(tok text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..400 LOOP
    IF EXISTS (SELECT 1 FROM flags WHERE token = tok) THEN RETURN true; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
SQL

queries() {
  cat <<'INI'

[query go_types]
sql = SELECT id, b, f, txt, y, ts, tz, n, j, arr, d, i4, 9223372036854775807::int8 AS big, '-9223372036854775808'::int8 AS small FROM t WHERE id = $1
params = id:int8
ttl = 300s

[query go_wait]
sql = SELECT wait_flag($1) AS ok, $1::text AS tok
params = tok:text
ttl = 300s

[query go_count]
sql = SELECT count(*) AS n FROM t
ttl = 300s
INI
}

REQUEST_TIMEOUT=25s
EXTRA_SERVICE="auth_token = sesame"
EXTRA_REPLICA="pool_size = 4"
write_config "$WORK/cs.ini"
queries >>"$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

# the queries of protocol/go/README.md's example
[query user_profile]
sql = SELECT id, txt AS name, tz AS seen FROM t WHERE id = $1
params = id:int8

[query user_orders]
sql = SELECT id, n AS total FROM t WHERE id = $1
params = id:int8
INI
# A second daemon on ports of its own, which the Go test itself stops and starts again.
MAIN_PORT=$PORT MAIN_APORT=$APORT MAIN_SOCK=$SOCK
PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/cs2.sock
write_config "$WORK/cs2.ini"
queries >>"$WORK/cs2.ini"
PORT2=$PORT
PORT=$MAIN_PORT APORT=$MAIN_APORT SOCK=$MAIN_SOCK

# Daemons the Go test starts write their pids here; kill whatever is left at exit.
PIDFILE=$WORK/go-daemons.pids
: >"$PIDFILE"
kill_go_daemons() {
  local pid
  while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$PIDFILE"
}
CLEANUPS+=(kill_go_daemons)

export CACHESVC_TOKEN=sesame # for cachesvc-cli (start_daemon's readiness check)
start_daemon "$WORK/cs.ini"

export GOCACHE=$CS_BUILD/go-cache GOPATH=$CS_BUILD/go-path GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
export CS_ADDR=127.0.0.1:$PORT CS_SOCK=$SOCK CS_TOKEN=sesame CS_CONF=$WORK/cs.ini
export CS_CACHESVC=$CACHESVC CS_CONF2=$WORK/cs2.ini CS_ADDR2=127.0.0.1:$PORT2 CS_PIDFILE=$PIDFILE
export CS_PSQL=$CS_PG_BIN/psql CS_PG_HOST=$CS_PG_SOCKET_DIR CS_PG_PORT=$CS_PG_PRIMARY_PORT CS_PG_DB=$DB
cd "$GO_SRC"
# CS_GO_TESTFLAGS: extra flags, e.g. -race (not in CI: it rebuilds the standard library)
go test ${CS_GO_TESTFLAGS:-} -count=1 -timeout 200s -run '^TestIntegration' -v . 2>&1 | tee "$WORK/go-test.log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || fail "go test failed ($rc)"
# Every integration test ran (none skipped, none missing).
n=$(grep -c '^--- PASS: TestIntegration' "$WORK/go-test.log" || true)
[ "$n" -ge 8 ] || fail "only $n Go integration tests passed"
! grep -q '^--- SKIP' "$WORK/go-test.log" || fail "Go integration tests were skipped"
ok "$n Go client integration tests passed"

# The Go load generator (protocol/go/cmd/cs-load-go) runs, pipelined and not, without errors.
go build -o "$WORK/cs-load-go" ./cmd/cs-load-go
for P in 1 8; do
  out=$("$WORK/cs-load-go" -addr "127.0.0.1:$PORT" -c 2 -d 1s -P "$P" -k 1:40 go_types)
  [ "$(echo "$out" | json errors)" = 0 ] || fail "cs-load-go -P $P: errors: $out"
  [ "$(echo "$out" | json requests)" -gt 0 ] || fail "cs-load-go -P $P: no requests: $out"
done
out=$("$WORK/cs-load-go" -addr "unix:$SOCK" -c 2 -unique -k 1:40 go_types)
[ "$(echo "$out" | json requests)" = 40 ] || fail "cs-load-go -unique: want 40 keys: $out"
ok "cs-load-go runs (pipelined and not, TCP and unix socket)"

# The README's copy-paste example builds (as a module of its own, with a replace directive)
# and runs against this daemon, with its address swapped in.
mkdir -p "$WORK/example"
awk '/^```go$/ {on = 1; next} on && /^```$/ {exit} on' README.md |
  sed "s/127.0.0.1:6380/127.0.0.1:$PORT/" >"$WORK/example/main.go"
grep -q 'cachesvc.Open' "$WORK/example/main.go" || fail "no example found in README.md"
cat >"$WORK/example/go.mod" <<MOD
module example.com/app

go 1.19

require cachesvc.dev/client v0.0.0

replace cachesvc.dev/client => $GO_SRC
MOD
(cd "$WORK/example" && go build -o app . && ./app) >"$WORK/example.out" 2>&1 || {
  cat "$WORK/example.out"
  fail "the README example failed"
}
grep -q '^from replica, .* old, data at LSN [0-9A-F]*/[0-9A-F]*$' "$WORK/example.out" ||
  fail "the README example printed: $(cat "$WORK/example.out")"
ok "the README example builds and runs: $(head -1 "$WORK/example.out")"
