#!/usr/bin/env bash
# listen_auth.sh - issue 14 item 16: a client port beyond loopback without auth_token is
# refused at start (and by --check) with an error saying why, unless allow_unauthenticated
# is on; with the flag, or with a token, the daemon starts and serves.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE t (id int PRIMARY KEY);
SQL
write_config "$WORK/base.ini"
variant() { # NAME LISTEN [EXTRA LINE]: a config with that listen address (and extra line)
  sed -e "s|^listen = .*|listen = $2|" -e "s|^\[cachesvc\]$|[cachesvc]\n${3:-}|" "$WORK/base.ini" >"$WORK/$1.ini"
}

for addr in "0.0.0.0:$PORT" "[::]:$PORT"; do
  variant open "$addr"
  set +e
  out=$(timeout 20 "$CACHESVC" -c "$WORK/open.ini" 2>&1)
  rc=$?
  set -e
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "listen = $addr without auth_token: exit $rc: $out"
  echo "$out" | grep -q "listen: .* is not a loopback address and auth_token is unset" ||
    fail "listen = $addr without auth_token: no clear error: $out"
  out=$(timeout 20 "$CACHESVC" -c "$WORK/open.ini" --check 2>&1) && fail "--check accepted listen = $addr: $out"
  ok "listen = $addr, no token: refused (exit $rc): ${out#cachesvc: }"
done

variant allowed "0.0.0.0:$PORT" "allow_unauthenticated = on"
start_daemon "$WORK/allowed.ini" allowed
cli ping >/dev/null || fail "no PING with allow_unauthenticated"
stop_daemon || fail "the daemon did not exit cleanly"
ok "listen = 0.0.0.0:$PORT with allow_unauthenticated = on: starts and serves"

variant token "0.0.0.0:$PORT" "auth_token = sesame"
CACHESVC_TOKEN=sesame start_daemon "$WORK/token.ini" token
CACHESVC_TOKEN=sesame cli ping >/dev/null || fail "no PING with the token"
stop_daemon || fail "the daemon did not exit cleanly"
ok "listen = 0.0.0.0:$PORT with auth_token: starts"

variant lo "127.0.0.2:$PORT"
out=$(timeout 20 "$CACHESVC" -c "$WORK/lo.ini" --check 2>&1) || fail "listen = 127.0.0.2 refused: $out"
ok "listen = 127.0.0.2 (loopback) without a token: accepted"
