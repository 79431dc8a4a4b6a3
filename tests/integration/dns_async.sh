#!/usr/bin/env bash
# dns_async.sh - host names are resolved on the event loop (evdns), never by a blocking
# getaddrinfo inside libpq or hiredis: with one replica's name hanging in DNS (a name server
# that never answers), the daemon keeps answering through the other replica with low latency;
# the hanging lookups time out (dns_timeout) and count as connect failures. And names work end
# to end: localhost for a replica, the primary (pool and invalidator) and Redis.
#
# When the test may make a private mount namespace (unshare -m, root), the daemon runs in one
# whose /etc/resolv.conf names the silent server, so the system resolver (what libpq and
# hiredis would use) hangs as well; otherwise the daemon's resolv_conf key names it.
# (CS_DNS_NO_NAMESPACE=1 forces the second way.)
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE dn_t (id bigint PRIMARY KEY, v text);
INSERT INTO dn_t SELECT i, 'v' || i FROM generate_series(1, 100) i;
CREATE PUBLICATION cs_pub FOR TABLE dn_t;
SQL

# Can the daemon run in a private mount namespace (root)? Then its /etc/resolv.conf can name
# the silent server, on port 53 (/etc/resolv.conf cannot name another).
NSWRAP=()
: >"$WORK/probe.conf"
if [ -z "${CS_DNS_NO_NAMESPACE:-}" ] && unshare -m --propagation private sh -c 'mount --bind "$0" /etc/resolv.conf' "$WORK/probe.conf" 2>/dev/null; then
  NSWRAP=(unshare -m --propagation private sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$WORK/resolv.conf")
  NS_PORT=53
else
  NS_PORT=$((20000 + RANDOM % 10000))
fi
# A name server that never answers: a UDP socket nobody reads, on a loopback address of
# this test's own.
NS_ADDR=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
"$PY3" - "$NS_ADDR" "$NS_PORT" >"$WORK/silent_ns.log" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print('bound', flush=True)
time.sleep(300)
PY
NSPID=$!
CLEANUPS+=("kill $NSPID")
until_true 10 grep -q bound "$WORK/silent_ns.log" || fail "silent name server: $(cat "$WORK/silent_ns.log")"
if [ ${#NSWRAP[@]} -gt 0 ]; then
  printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$NS_ADDR" >"$WORK/resolv.conf"
  echo "# the daemon's system resolver uses the silent name server too (private mount namespace)"
  RESOLV_KEY=""
else
  printf 'nameserver %s:%s\n' "$NS_ADDR" "$NS_PORT" >"$WORK/resolv.conf"
  echo "# no private mount namespace: only the daemon's resolv_conf names the silent server"
  RESOLV_KEY="resolv_conf = $WORK/resolv.conf"
fi

EXTRA_SERVICE="dns_timeout = 1s
primary_fallback = off
$RESOLV_KEY"
write_config "$WORK/cs.ini" replica1 replica1
# r1 by name (localhost, from the hosts file), r2 a name that hangs in DNS; the primary (pool
# and the invalidator's replication connection) and Redis by name too
sed -i "/^\[replica r1\]/{n;s/host=127.0.0.1/host=localhost/}" "$WORK/cs.ini"
sed -i "/^\[replica r2\]/{n;s/host=127.0.0.1/host=cs-dns-hang.invalid/}" "$WORK/cs.ini"
sed -i "/^\[primary\]/{n;s/host=127.0.0.1/host=localhost/}" "$WORK/cs.ini"
sed -i "s|^url = redis://127.0.0.1:|url = redis://localhost:|" "$WORK/cs.ini"
grep -q "host=cs-dns-hang.invalid" "$WORK/cs.ini" && grep -q "redis://localhost" "$WORK/cs.ini" || fail "config not rewritten"
cat >>"$WORK/cs.ini" <<'INI'

[query dn_row]
sql = SELECT v FROM dn_t WHERE id = $1
params = id:int8
ttl = 10m
invalidate_on = dn_t(id = $1)
INI
invalidator_section >>"$WORK/cs.ini"

"${NSWRAP[@]}" "$CACHESVC" -c "$WORK/cs.ini" >"$WORK/cachesvc.log" 2>&1 &
DAEMON_PID=$! DAEMON_LOG=$WORK/cachesvc.log
DAEMON_PIDS+=("$DAEMON_PID")
until_true 30 daemon_answers || fail "cachesvc did not come up"
until_true 10 eval '[ "$(src dn_row 1)" = replica ]' || fail "no read through r1 (localhost): $(cli get dn_row 1 2>&1)"
[ "$(src dn_row 1)" = cache ] || fail "not cached"
ok "replica, primary and Redis given as localhost: a miss through r1 and a hit"

# For 6 s, while r2's lookups hang and time out over and over, every request is answered
# within 1 s (a blocking getaddrinfo would stop the loop 2 s at a time).
end=$((SECONDS + 6))
n=0
while [ $SECONDS -lt $end ]; do
  n=$((n + 1))
  out=$(cli -t 1000 get dn_row $((n % 50 + 1)) 2>&1) || fail "request $n not answered within 1 s while r2's DNS hangs: $out"
done
until_true 10 metric_ge cachesvc_dns_timeouts_total 2 || fail "no DNS lookup timed out: $(http /metrics | grep dns)"
[ "$(metric 'cachesvc_pg_up{server="r2",role="replica"}')" = 0 ] || fail "r2 up?"
grep -q 'r2: down.*resolving "cs-dns-hang.invalid" timed out\|r2: down.*cs-dns-hang.invalid' "$WORK/cachesvc.log" || fail "r2's failure does not name the lookup: $(grep r2 "$WORK/cachesvc.log" | tail -3)"
ok "$n requests in 6 s all answered within 1 s while r2's name hangs in DNS ($(metric cachesvc_dns_timeouts_total) lookups timed out after dns_timeout 1s)"

until_true 30 streaming || fail "the invalidator (primary by name) never streamed: $(grep invalidator "$WORK/cachesvc.log" | tail -3)"
lsn=$(commit_lsn "UPDATE dn_t SET v = 'new' WHERE id = 1")
wait_invalidated "$lsn"
[ "$(metric cachesvc_dns_lookups_total)" -ge 4 ] || fail "lookups: $(metric cachesvc_dns_lookups_total)"
ok "the invalidator streams from the primary by name; $(metric cachesvc_dns_lookups_total) lookups in all"
stop_daemon || fail "exit status $?"
! grep -q 'AddressSanitizer\|LeakSanitizer\|runtime error:' "$WORK/cachesvc.log" || fail "sanitizer report"
ok "clean exit with lookups still hanging"
