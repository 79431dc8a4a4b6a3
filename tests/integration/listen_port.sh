#!/usr/bin/env bash
# listen_port.sh - issue 20 item 4: SO_REUSEPORT is opt-in. A second daemon on a port in use
# fails to start with an error naming the port and the reason; with so_reuseport = on in
# both, two daemons share the port (the kernel spreads connections over them).
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE t (id int PRIMARY KEY);
SQL
write_config "$WORK/a.ini"
# The second daemon: same client port, its own unix socket and admin port.
APORT2=$(free_port)
sed -e "s|^unix_socket = .*|unix_socket = $WORK/b.sock|" -e "s|^admin_listen = .*|admin_listen = 127.0.0.1:$APORT2|" \
  "$WORK/a.ini" >"$WORK/b.ini"

start_daemon "$WORK/a.ini" a
A=$DAEMON_PID
set +e
out=$(timeout 30 "$CACHESVC" -c "$WORK/b.ini" 2>&1)
rc=$?
set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a second daemon on port $PORT: exit $rc (want a startup error): $out"
echo "$out" | grep -q "cannot listen on 127.0.0.1:$PORT: Address already in use (another process holds the port" ||
  fail "no clear error for a port in use: $out"
cli ping >/dev/null || fail "the first daemon stopped answering"
stop_daemon "$A" || fail "the first daemon did not exit cleanly"
ok "a port in use: the second daemon exits $rc: $(echo "$out" | grep -o 'cannot listen.*' | head -1)"

for f in a b; do
  sed -i "s|^\[cachesvc\]$|[cachesvc]\nso_reuseport = on|" "$WORK/$f.ini"
done
start_daemon "$WORK/a.ini" a2
A=$DAEMON_PID
start_daemon "$WORK/b.ini" b2
B=$DAEMON_PID
kill -0 "$A" || fail "daemon a exited when b started"
# Both accept on the port: connections land on both (counted by each one's metrics).
for _ in $(seq 60); do cli ping >/dev/null || fail "ping failed with two daemons on one port"; done
ca=$(APORT=$APORT http /metrics | sed -n 's/^cachesvc_connections_total \([0-9]*\)$/\1/p')
cb=$(APORT=$APORT2 http /metrics | sed -n 's/^cachesvc_connections_total \([0-9]*\)$/\1/p')
[ "${ca:-0}" -gt 0 ] && [ "${cb:-0}" -gt 0 ] || fail "so_reuseport: connections a=$ca b=$cb (want both > 0)"
stop_daemon "$A" || fail "a did not exit cleanly"
stop_daemon "$B" || fail "b did not exit cleanly"
ok "so_reuseport = on: two daemons share port $PORT (connections a=$ca, b=$cb)"
