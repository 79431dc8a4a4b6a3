#!/usr/bin/env bash
# engine_garbage.sh - a client sending garbage is disconnected; a client announcing a
# huge frame is disconnected before anything is allocated; other clients are unaffected.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v text);
INSERT INTO items VALUES (1, 'one');
SQL
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query gb_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
INI
start_daemon "$WORK/cs.ini"
exec 5<>"/dev/tcp/127.0.0.1/$PORT"
good_ping() {
  printf '\x00\x00\x00\x01\x01\x02\x00\x00\x00\x00\x00\x07\xc0' >&5
  local r
  r=$(timeout 5 dd bs=13 count=1 <&5 2>/dev/null | od -An -tx1 | tr -d ' \n')
  [ "${r:8:4}" = 0182 ] || fail "the well-behaved client got '$r'"
}
good_ping

closed_after() { # BYTES_CMD: sends, then expects an error frame and EOF within 5 s
  exec 6<>"/dev/tcp/127.0.0.1/$PORT"
  eval "$1" >&6 2>/dev/null || true
  local r
  r=$(timeout 5 cat <&6 | od -An -tx1 | tr -d ' \n') || fail "connection not closed within 5 s"
  exec 6<&-
  echo "$r"
}
r=$(closed_after "head -c 4096 /dev/urandom")
ok "random bytes: disconnected (reply: ${r:0:40}...)"
r=$(closed_after "printf '\xff\xff\xff\xff\x01\x03\x00\x00\x00\x00\x00\x01'")
[ "${r:8:4}" = 01ff ] || fail "huge length: no error frame: $r"
ok "a 4 GiB frame header: error frame and disconnect, nothing allocated"
r=$(closed_after "printf '\x00\x00\x00\x03\x01\x03\x00\x00\x00\x00\x00\x02\xdd\xff\xff'")
[ "${r:8:4}" = 01ff ] || fail "array(2^32) body: no error frame: $r"
ok "a body declaring a 4-billion-element array: error frame and disconnect"
r=$(closed_after "printf '\x00\x00\x00\x01\x01\x63\x00\x00\x00\x00\x00\x03\xc0'")
[ "${r:8:4}" = 01ff ] || fail "unknown opcode: no error frame: $r"
ok "an unknown opcode: error frame and disconnect"

for i in 1 2 3; do good_ping; done
cli --json get gb_item 1 | json rows | grep -q one || fail "a fresh client is not served"
[ "$(metric cachesvc_protocol_errors_total)" -ge 3 ] || fail "protocol errors not counted"
kill -0 "$DAEMON_PID" || fail "the daemon died"
ok "other clients unaffected; protocol errors counted ($(metric cachesvc_protocol_errors_total))"
exec 5<&-
