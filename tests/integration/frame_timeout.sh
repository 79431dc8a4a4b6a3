#!/usr/bin/env bash
# frame_timeout.sh - issue 14 item 3: slowloris. Connections that send one byte a second
# never complete a frame; idle_timeout cannot close them (every byte resets it), but
# frame_timeout does: each is closed about frame_timeout after its frame's first byte, and
# counted. A slow but honest client whose frames each complete in time stays connected.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE t (id int PRIMARY KEY);
SQL
EXTRA_SERVICE="idle_timeout = 2s
frame_timeout = 3s" write_config "$WORK/cs.ini"
start_daemon "$WORK/cs.ini"

# the honest client: a PING every second, each frame sent in two halves 0.5 s apart
honest() {
  exec 5<>"/dev/tcp/127.0.0.1/$PORT"
  local i r
  for i in 1 2 3 4 5 6 7 8; do
    printf '\x00\x00\x00\x01\x01\x02\x00' >&5
    sleep 0.5
    printf '\x00\x00\x00\x00\x09\xc0' >&5
    r=$(timeout 5 dd bs=13 count=1 <&5 2>/dev/null | od -An -tx1 | tr -d ' \n')
    [ "${r:8:4}" = 0182 ] || { echo "honest client: ping $i got '$r'"; return 1; }
    sleep 0.5
  done
  exec 5<&-
}
honest >"$WORK/honest.out" 2>&1 &
hpid=$!

r=$("$HOSTILE" -p "$PORT" slow 20 8 1000)
ok "20 connections sending a byte a second for 8 s: $r"
[ "$(echo "$r" | jnum closed)" = 20 ] || fail "slow connections not all closed: $r"
last=$(echo "$r" | jnum last_close_ms)
first=$(echo "$r" | jnum first_close_ms)
[ "$first" -ge 2500 ] || fail "closed after $first ms, before frame_timeout (3 s)"
[ "$last" -le 5000 ] || fail "the last one closed after $last ms (frame_timeout 3 s + sweep)"
wait "$hpid" || fail "$(cat "$WORK/honest.out")"
[ "$(metric cachesvc_frame_timeout_closed_total)" = 20 ] ||
  fail "frame timeouts counted: $(metric cachesvc_frame_timeout_closed_total), want 20"
cli ping >/dev/null || fail "the daemon does not answer"
ok "closed between $first and $last ms (frame_timeout 3 s), counted; the honest slow client kept its connection"
