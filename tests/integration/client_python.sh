#!/usr/bin/env bash
# client_python.sh - the Python client (protocol/python, package cachesvc) against a real
# daemon: hit/miss and sources, typed values of every column type, every opcode, tiers,
# bypass, LSN tokens, pipelining out of order, request vs protocol errors, the reply
# limit, auth, the pool, reconnect after the daemon restarts, the asyncio API, and the admin
# requests (show, pause/resume, reload; admin_token set and removed by a reload).
# The checks are protocol/python/tests/integration_daemon.py, run with Debian's
# /usr/bin/python3 (python3-msgpack); it asks this script, over two FIFOs, to restart,
# stop or start the daemon or to write on the primary.
. "$(dirname "$0")/daemon_lib.sh"

PY=/usr/bin/python3
SRC=$(cd "$(dirname "$0")/../.." && pwd)/protocol/python
"$PY" -c 'import msgpack' 2>/dev/null ||
  fail "$PY cannot import msgpack: install python3-msgpack (scripts/lib.sh does)"

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric, born date, seen timestamptz,
                    at timestamp, avatar bytea, tags text[], meta jsonb, ok boolean, score float8,
                    big bigint);
INSERT INTO items SELECT i, 'item ' || i, i * 1.25 + 0.005, '2000-01-01'::date + i,
  '2024-01-02 03:04:05.123456+00'::timestamptz + i * interval '1 hour',
  '2024-01-02 03:04:05'::timestamp + i * interval '1 minute',
  decode('00ff' || lpad(to_hex(i), 2, '0'), 'hex'), ARRAY['a', 'b'],
  jsonb_build_object('k', i, 'nested', jsonb_build_array(1, NULL, 'x')), i % 2 = 0, i / 4.0,
  9007199254740992 + i
FROM generate_series(1, 50) i;
INSERT INTO items (id) VALUES (51);
SQL

EXTRA_SERVICE="auth_token = sesame"
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query py_item]
sql = SELECT id, name, price, born, seen, at, avatar, tags, meta, ok, score, big FROM items WHERE id = $1
params = id:int8
ttl = 5m

[query user_profile]
sql = SELECT id, name, price, seen FROM items WHERE id = $1
params = id:int8
ttl = 5m

[query py_names]
sql = SELECT id, name FROM items WHERE id <= $1 ORDER BY id
params = upto:int8
kind = list
ttl = 5m

[query py_slow]
sql = SELECT pg_sleep($1) IS NULL AS slept, $2::int8 AS n
params = secs:float8, n:int8

[query py_boom]
sql = SELECT 1 / (id - $1) AS x FROM items WHERE id = $1
params = id:int8
INI
export CACHESVC_TOKEN=sesame
start_daemon "$WORK/cs.ini"

# Two FIFOs, opened read-write here so neither side blocks on open and a Python that dies
# early cannot hang the loop below.
mkfifo "$WORK/cmd" "$WORK/ans"
exec 5<>"$WORK/cmd" 6<>"$WORK/ans"
CS_PORT=$PORT CS_SOCK=$SOCK CS_TOKEN=sesame CS_CONF=$WORK/cs.ini PYTHONDONTWRITEBYTECODE=1 \
  "$PY" -u "$SRC/tests/integration_daemon.py" "$WORK/cmd" "$WORK/ans" &
PYPID=$!
CLEANUPS+=("kill -KILL $PYPID")
starts=1
while kill -0 "$PYPID" 2>/dev/null; do
  read -r -t 1 cmd arg1 arg2 <&5 || continue
  case $cmd in
    restart)
      stop_daemon || fail "cachesvc exited with an error on SIGTERM"
      starts=$((starts + 1))
      start_daemon "$WORK/cs.ini" "cachesvc$starts"
      echo done >&6 ;;
    stop)
      stop_daemon || fail "cachesvc exited with an error on SIGTERM"
      echo done >&6 ;;
    start)
      starts=$((starts + 1))
      start_daemon "$WORK/cs.ini" "cachesvc$starts"
      echo done >&6 ;;
    write)
      lsn=$(commit_lsn "UPDATE items SET name = '$arg2' WHERE id = $arg1")
      echo "done $lsn" >&6 ;;
    *)
      echo "failed: unknown command $cmd" >&6
      fail "the Python test sent an unknown command: $cmd" ;;
  esac
done
rc=0
wait "$PYPID" || rc=$?
[ $rc -eq 0 ] || fail "the Python client checks failed (exit $rc)"
ok "the Python client passed every check against the daemon"
