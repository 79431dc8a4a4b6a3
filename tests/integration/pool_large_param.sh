#!/usr/bin/env bash
# pool_large_param.sh - a job whose pipeline does not fit the socket buffer (an 8 MB text
# parameter: libpq's PQflush returns 1) is written out under write interest and answered
# correctly, several at once on a pool of 2 with small requests between them; afterwards
# the pool's connections are idle without write interest (the daemon does not spin on an
# always-writable socket) and still answer. The pool keeps one persistent read event per
# connection and arms write interest only while libpq holds unsent output (pgpool.c).
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
SELECT 1;
SQL

EXTRA_SERVICE="primary_fallback = off
max_frame = 16MB
queue_timeout = 15s"
EXTRA_REPLICA="pool_size = 2"
REQUEST_TIMEOUT=20s
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query lp_len]
sql = SELECT length($1) AS n, md5($1) AS h
params = s:text
ttl = 1m
INI
start_daemon "$WORK/cs.ini"

# The C client caps a request at 1 MiB; the Python client (Debian's python3-msgpack, as
# client_python.sh) follows the server's max_frame. Four 8 MB GETs and six small ones sent
# at once over the client's connections.
PY=/usr/bin/python3
"$PY" -c 'import msgpack' 2>/dev/null ||
  fail "$PY cannot import msgpack: install python3-msgpack (scripts/lib.sh does)"
out=$(PYTHONPATH="$(cd "$(dirname "$0")/../.." && pwd)/protocol/python/src" \
  "$PY" - "127.0.0.1:$PORT" <<'PYEOF' 2>&1) || fail "large requests: $out"
import asyncio, hashlib, sys
from cachesvc import aio
SIZE = 8000000
async def main():
    async with aio.Client(sys.argv[1], timeout=30) as cs:
        big = [chr(ord("a") + i) * SIZE for i in range(4)]
        small = ["small%d" % i for i in range(6)]
        reqs = [cs.get("lp_len", [v]) for v in big] + [cs.get("lp_len", [v]) for v in small]
        res = await asyncio.gather(*reqs)
        for v, r in zip(big + small, res):
            want = [len(v), hashlib.md5(v.encode()).hexdigest()]
            got = list(r.rows[0])
            if got != want:
                sys.exit("wrong answer for a %d-byte parameter: %r, want %r" % (len(v), got, want))
            if r.meta.source.name.lower() != "replica":
                sys.exit("a %d-byte parameter: from %s, not the replica" % (len(v), r.meta.source.name))
    print("ok")
asyncio.run(main())
PYEOF
[ "$out" = ok ] || fail "large requests: $out"
ok "four 8 MB parameters at once over 2 connections, with small requests between: every answer right"

# Idle now: a connection left with write interest would wake the loop without end.
ticks() { awk '{ sub(/^.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$DAEMON_PID/stat"; }
sleep 0.5
t0=$(ticks)
sleep 2
t1=$(ticks)
hz=$(getconf CLK_TCK)
ms=$(( (t1 - t0) * 1000 / hz ))
[ "$ms" -lt 500 ] || fail "the idle daemon used $ms ms of CPU in 2 s: spinning on write readiness?"
out=$(cli --json get lp_len after) || fail "request after the large ones failed: $out"
echo "$out" | grep -q '"rows":\[\[5,"' || fail "wrong answer after the large ones: $out"
ok "idle afterwards ($ms ms of CPU in 2 s) and still answering"
