#!/usr/bin/env bash
# auth_failures.sh - issue 14 item 12: failed authentication is counted, logged (rate
# limited) and ends the connection at the third failure; PING needs no HELLO (PROTOCOL.md
# section 2), every other request before a good HELLO is refused with `auth`.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE items (id int PRIMARY KEY, v text);
INSERT INTO items VALUES (1, 'one');
SQL
EXTRA_SERVICE="auth_token = s3cret" write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query af_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int4
INI
export CACHESVC_TOKEN=s3cret # for cachesvc-cli (start_daemon's PING, the checks below)
start_daemon "$WORK/cs.ini"

r=$("$HOSTILE" -p "$PORT" auth s3cret 1)
[ "$r" = '{"ping":0,"hello":[0],"closed":0}' ] || fail "PING before HELLO, then the right token: $r"
ok "PING before HELLO answered; the right token accepted: $r"

r=$("$HOSTILE" -p "$PORT" auth wrong 5)
case $r in
  '{"ping":0,"hello":[6,6,6,-1],"closed":1}' | '{"ping":0,"hello":[6,6,6],"closed":1}') ;;
  *) fail "three wrong tokens on one connection: $r (want three auth errors, then closed)" ;;
esac
ok "wrong tokens: auth, auth, auth, closed: $r"
[ "$(metric cachesvc_auth_failures_total)" = 3 ] || fail "failures counted: $(metric cachesvc_auth_failures_total)"

# a guessing burst: 20 connections x 3 guesses; the log stays short
for _ in $(seq 20); do "$HOSTILE" -p "$PORT" auth guess 3 >/dev/null; done
[ "$(metric cachesvc_auth_failures_total)" = 63 ] || fail "failures counted: $(metric cachesvc_auth_failures_total), want 63"
lines=$(grep -c "authentication failed" "$WORK/cachesvc.log" || true)
[ "$lines" -ge 1 ] && [ "$lines" -le 3 ] || fail "$lines log lines for 63 failures"
grep -m1 "authentication failed" "$WORK/cachesvc.log" | grep -q "127.0.0.1:" || fail "the log line names no peer"
ok "63 failures counted, $lines log lines: $(grep "authentication failed" "$WORK/cachesvc.log" | tail -1 | cut -c 25-)"

# other requests before HELLO: auth, connection kept
out=$(CACHESVC_TOKEN= cli get af_item 1 2>&1) && fail "a GET without the token was served: $out"
echo "$out" | grep -q auth || fail "a GET without the token got '$out'"
[ "$(rows af_item 1)" = '[["one"]]' ] || fail "the right token is not served: $(rows af_item 1)"
ok "GET without the token: auth; with it: served"
