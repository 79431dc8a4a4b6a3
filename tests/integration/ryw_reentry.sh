#!/usr/bin/env bash
# ryw_reentry.sh - issue 13 item 11: read-your-writes requests waiting for a replica, then
# sent to the primary at the wait's end (on_tick's walk of the wait list), where the
# submit fails synchronously: the primary's pool connect is refused at once, so the
# server is banned, its queue failed and every engine callback - the flight's retry, its
# failure and answer, a nested walk of the same list from the server's notify - runs
# inside that submit. Every request must be answered, and nothing touched after it was
# freed (ASan build).
# The "primary" is a proxy to the sandbox primary on a unix socket that accepts only its
# first connection (the health monitor's) and then removes the socket, so a pool connect
# fails inside PQconnectStartParams (ENOENT: synchronously, unlike a refused TCP connect).
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
INSERT INTO items SELECT i, 'v' || i FROM generate_series(0, 100) i;
SQL

PDIR=$WORK/pgproxy
mkdir -p "$PDIR"
cat >"$WORK/proxy.py" <<'PY'
import os, socket, sys, threading
path, target_port, accept_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ls = socket.socket(socket.AF_UNIX)
ls.bind(path)
ls.listen(8)
print('listening', flush=True)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
threads = []
for _ in range(accept_n):
    c, _ = ls.accept()
    t = socket.create_connection(('127.0.0.1', target_port))
    for a, b in ((c, t), (t, c)):
        th = threading.Thread(target=pipe, args=(a, b), daemon=True)
        th.start()
        threads.append(th)
os.unlink(path) # from now on, connects to path fail at once (ENOENT)
ls.close()
print('closed', flush=True)
for th in threads:
    th.join()
PY
"$PY3" "$WORK/proxy.py" "$PDIR/.s.PGSQL.5432" "$CS_PG_PRIMARY_PORT" 1 >"$WORK/proxy.log" 2>&1 &
PROXY=$!
CLEANUPS+=("kill $PROXY")
until_true 10 grep -q listening "$WORK/proxy.log" || fail "proxy did not start"

# The replica serves the batch tier only: no replica fits the (default-tier) requests below.
EXTRA_REPLICA='tier = batch' EXTRA_SERVICE='ryw_wait = 300ms
verify_interval = 0' REQUEST_TIMEOUT=10s write_config "$WORK/cs.ini" replica1
sed -i "s|host=127.0.0.1 port=$CS_PG_PRIMARY_PORT |host=$PDIR port=5432 |" "$WORK/cs.ini"
grep -q "host=$PDIR port=5432 " "$WORK/cs.ini" || fail "test bug: primary not proxied"
cat >>"$WORK/cs.ini" <<'INI'

[query rr_item]
sql = SELECT id, v FROM items WHERE id = $1
params = id:int8
INI
start_daemon "$WORK/cs.ini"
until_true 10 grep -q closed "$WORK/proxy.log" || fail "the monitor never connected through the proxy"
until_true 10 metric_is 'cachesvc_pg_up{server="primary",role="primary"}' 1 || fail "primary not up"
ok "primary up through a proxy that now refuses new connections"

# A real token (the primary's position: a token beyond it is refused at once, ryw_forged.sh)
# that no replica of the requests' tier can serve: every request waits, then goes to the
# primary, whose connect is refused synchronously.
TOKEN=$(primary "$DB" -c "SELECT pg_current_wal_lsn()")
pids=()
for i in $(seq 1 8); do
  cli -t 8000 --json --lsn $TOKEN get rr_item "$i" >"$WORK/get$i.out" 2>"$WORK/get$i.err" &
  pids+=($!)
done
# and 40 more, pipelined on few connections
"$BURST" -p "$PORT" -c 4 -n 10 -t 8000 --lsn $TOKEN rr_item %i >"$WORK/burst.out" 2>"$WORK/burst.err" &
burst=$!
for i in $(seq 1 8); do
  rc=0
  wait "${pids[$((i - 1))]}" || rc=$?
  [ $rc = 1 ] || fail "request $i: exit $rc (want a server error): $(cat "$WORK/get$i.out" "$WORK/get$i.err")"
  grep -q 'server: unavailable' "$WORK/get$i.err" || fail "request $i: $(cat "$WORK/get$i.err")"
done
wait "$burst" || fail "burst: replies missing: $(cat "$WORK/burst.err")"
"$PY3" - "$(cat "$WORK/burst.out")" <<'PY' || fail "burst: $(cat "$WORK/burst.out")"
import json, sys
t = json.loads(sys.argv[1])
assert t['ok'] + sum(t['errors'].values()) == t['sent'] == 40, 'replies missing'
assert set(t['errors']) <= {'unavailable'}, t['errors']
PY
ok "every read-your-writes request answered (unavailable: no replica reached the token, the primary refused)"
kill -0 "$DAEMON_PID" || fail "cachesvc died"
[ "$(cli --json --tier batch get rr_item 3 | json rows)" = '[[3, "v3"]]' ] || fail "the daemon does not serve on"
stop_daemon || fail "exit status $?"
! grep -q 'AddressSanitizer\|runtime error:\|LeakSanitizer' "$WORK/cachesvc.log" || fail "sanitizer report"
ok "serves on, clean exit, no sanitizer report"
