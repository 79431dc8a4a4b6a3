#!/usr/bin/env bash
# redis_dns.sh - the Redis host name is resolved again (on the event loop) before every
# connect, so a DNS failover is followed: the name first points where no Redis listens, the
# cache stays down (requests bypass it); once DNS points the name at the real Redis, the next
# reconnect reaches it, without a restart. A tiny name server of the test's own answers the
# name with whatever address a file holds.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE rd_t (id bigint PRIMARY KEY, v text);
INSERT INTO rd_t SELECT i, 'v' || i FROM generate_series(1, 10) i;
SQL

NS_ADDR=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
NS_PORT=$((20000 + RANDOM % 10000))
echo 127.0.0.3 >"$WORK/answer" # nothing listens there
"$PY3" - "$NS_ADDR" "$NS_PORT" "$WORK/answer" >"$WORK/ns.log" 2>&1 <<'PY' &
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print('bound', flush=True)
while True:
    q, peer = s.recvfrom(512)
    if len(q) < 17:
        continue
    i = 12
    while i < len(q) and q[i] != 0:
        i += q[i] + 1
    question = q[12:i + 5]
    qtype = q[i + 1:i + 3]
    an = b''
    if qtype == b'\x00\x01':  # A: the address in the file, TTL 0
        ip = open(sys.argv[3]).read().strip()
        an = b'\xc0\x0c\x00\x01\x00\x01' + struct.pack('>I', 0) + b'\x00\x04' + socket.inet_aton(ip)
    hdr = q[:2] + b'\x81\x80' + struct.pack('>HHHH', 1, 1 if an else 0, 0, 0)
    s.sendto(hdr + question + an, peer)
PY
NSPID=$!
CLEANUPS+=("kill $NSPID")
until_true 10 grep -q bound "$WORK/ns.log" || fail "name server: $(cat "$WORK/ns.log")"
printf 'nameserver %s:%s\n' "$NS_ADDR" "$NS_PORT" >"$WORK/resolv.conf"

EXTRA_SERVICE="resolv_conf = $WORK/resolv.conf
dns_timeout = 1s"
EXTRA_REDIS="timeout = 300ms"
write_config "$WORK/cs.ini"
sed -i "s|^url = redis://127.0.0.1:|url = redis://cs-redis.test:|" "$WORK/cs.ini"
grep -q "redis://cs-redis.test:" "$WORK/cs.ini" || fail "config not rewritten"
cat >>"$WORK/cs.ini" <<'INI'

[query rd_row]
sql = SELECT v FROM rd_t WHERE id = $1
params = id:int8
ttl = 1m
INI
start_daemon "$WORK/cs.ini"
sleep 2
[ "$(metric cachesvc_redis_up)" = 0 ] || fail "redis up while its name points nowhere"
[ "$(src rd_row 1)" = replica ] || fail "requests not served while the cache is down"
[ "$(src rd_row 1)" = replica ] || fail "cached while the cache is down?"
ok "the name points where no Redis listens: the cache is down, requests bypass it"

echo 127.0.0.1 >"$WORK/answer" # the DNS failover
until_true 15 metric_is cachesvc_redis_up 1 || fail "redis never came up after the name moved: $(grep redis "$WORK/cachesvc.log" | tail -3)"
until_true 10 eval '[ "$(src rd_row 2)" = replica ] && [ "$(src rd_row 2)" = cache ]' || fail "the cache does not serve after the failover"
[ "$(metric cachesvc_dns_lookups_total)" -ge 3 ] || fail "the name was not looked up on every reconnect: $(metric cachesvc_dns_lookups_total)"
ok "after the name moved to the real Redis, a reconnect reached it ($(metric cachesvc_dns_lookups_total) lookups): fills and hits again"
