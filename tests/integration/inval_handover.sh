#!/usr/bin/env bash
# inval_handover.sh - review 41 R41-2's residue: a standby reads the slot's confirmed position
# W0, then (its Redis synchronisation between) sends START_REPLICATION; a leader that confirms
# more in that window and then lets the slot go makes the standby's stream start at W1 > W0.
# The mapping record the new leader writes (<ns>:inv:qmap, "<fingerprint> <W>") must not
# claim changes the earlier leader decoded with its own mapping: W >= W1 (fence.c (e3)). The
# window is opened on purpose: a proxy in front of the primary holds the standby's
# START_REPLICATION while the leader commits, confirms and stops.
# Control: [invalidator] start_position_check = off (the slot is not read again once the
# stream holds it): the record says W0 < W1.
. "$(dirname "$0")/daemon_lib.sh"

users_db 20
FENCE=on
slot_pos() { primary postgres -c "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = '$SLOT'"; }
confirmed_past() { [ "$(slot_pos)" -ge "$1" ]; }

PPORT=$(free_port)
/usr/bin/python3 "$(dirname "$0")/hold_proxy.py" "$PPORT" "$CS_PG_PRIMARY_PORT" START_REPLICATION \
  "$WORK/held" >"$WORK/proxy.log" 2>&1 &
PROXY=$!
CLEANUPS+=("kill $PROXY")
proxy_up() { (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null; }
until_true 10 proxy_up || fail "the proxy did not start"

# round NAME CHECK: A (direct) leads and maps ho_user; B (through the proxy, also mapping
# ho_new, which A does not) stands by; B's START is held while A commits a change, confirms
# it and stops; then B takes over. Sets W0 (the slot before the change), W1 (after A stopped),
# W (B's record of ho_new) and HSTART (the horizon B logged when its stream began).
round() {
  local name=$1 check=$2
  PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/a$name.sock
  inval_config "$WORK/a$name.ini" ho_user
  start_streaming "$WORK/a$name.ini" "a$name"
  local pid_a=$DAEMON_PID
  PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/b$name.sock
  inval_config "$WORK/b$name.ini" ho_user
  echo "start_position_check = $check" >>"$WORK/b$name.ini"
  user_query ho_new >>"$WORK/b$name.ini"
  sed -i "s/^conninfo = host=127.0.0.1 port=$CS_PG_PRIMARY_PORT /conninfo = host=127.0.0.1 port=$PPORT /" "$WORK/b$name.ini"
  grep -q "port=$PPORT " "$WORK/b$name.ini" || fail "b's primary is not the proxy"
  start_daemon "$WORK/b$name.ini" "b$name"
  B_PID=$DAEMON_PID B_LOG=$DAEMON_LOG
  until_true 30 metric_is cachesvc_invalidator_state 1 || fail "b$name is not standing by: state $(metric cachesvc_invalidator_state)"

  rm -f "$WORK/held"
  kill -USR1 "$PROXY"
  until_true 20 test -e "$WORK/held" || fail "b$name's START_REPLICATION never came through the proxy"
  # B read the slot before its held START: at or below W0
  W0=$(slot_pos)
  local lsn
  lsn=$(lsn_num "$(commit_lsn "UPDATE users SET name = 'moved $name' WHERE id = 3")")
  until_true 20 confirmed_past "$lsn" || fail "a$name never confirmed $lsn (slot at $(slot_pos))"
  stop_daemon "$pid_a" || fail "a$name did not stop cleanly"
  W1=$(slot_pos)
  [ "$W1" -gt "$W0" ] || fail "the slot did not move while b$name's START was held ($W0, $W1)"
  kill -USR2 "$PROXY"
  until_true 30 streaming || fail "b$name never took over (state $(metric cachesvc_invalidator_state)): $(tail -n 20 "$B_LOG")"
  until_true 20 qmap_has_new || fail "b$name recorded no mapping of ho_new: $(qmap_cmd "$WORK/b$name.ini" hgetall)"
  local rec hex
  rec=$(qmap_cmd "$WORK/b$name.ini" hget ho_new)
  hex=${rec#* }
  W=$((16#$hex))
  hex=$(sed -n 's/.*streaming from slot .*horizon \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$B_LOG" | tail -1)
  [ -n "$hex" ] || fail "b$name logged no stream start"
  HSTART=$(lsn_num "$hex")
  stop_daemon "$B_PID" || fail "b$name did not stop cleanly"
}
qmap_has_new() { [ -n "$(qmap_cmd "$WORK/b$name.ini" hget ho_new)" ]; }

round 1 on
[ "$HSTART" -lt "$W1" ] ||
  fail "the window was not opened: b1's stream began at horizon $HSTART, the slot was at $W1"
ok "b1 read the slot at $HSTART, a1 confirmed up to $W1 before b1's START went through"
[ "$W" -ge "$W1" ] ||
  fail "b1's mapping record claims from $W, below $W1: changes a1 decoded with its mapping"
grep -q "was confirmed to .* before this stream held it" "$B_LOG" || fail "b1 did not say it raised its start"
ok "b1's mapping record starts at $W >= $W1 (the slot read again once the stream held it)"

# Control: the position is not read again: the record keeps the position read before START.
round 2 off
[ "$HSTART" -lt "$W1" ] || fail "control: the window was not opened ($HSTART, $W1)"
[ "$W" -lt "$W1" ] ||
  fail "control: with start_position_check off, b2's record was expected below $W1 (got $W)"
ok "control (start_position_check = off): b2's record claims from $W < $W1"
