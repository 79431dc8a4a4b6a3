#!/usr/bin/env bash
# inval_handover.sh [PART...] - review 41 R41-2's residue and review 48: a standby reads the
# slot's confirmed position W0, then (its Redis synchronisation between) sends
# START_REPLICATION; a leader that confirms more in that window and then lets the slot go makes
# the standby's stream start at W1 > W0. Everything the standby's setup concluded rests on W0;
# once its stream holds the slot it reads the position again and, finding W1, sets up again
# from there. The window is opened on purpose: a proxy in front of the primary holds the
# standby's START_REPLICATION (or the answer to its slot query) while the leader commits,
# confirms and stops.
#   map:    the mapping record the new leader writes (<ns>:inv:qmap "<fingerprint> <W>") must
#           not claim changes the earlier leader decoded with its own mapping: W >= W1
#           (fence.c (e3)).
#   mapneg: control, [invalidator] start_position_check = off: the record says W0 < W1.
#   deb:    a whole-table bump the leader debounced (min_lifetime) and recorded as owed in
#           <ns>:inv:deb inside the window, after the standby's synchronisation read it (review
#           48 R48-1, the reviewer's reproduction): the new leader performs it.
#   debneg: its control (start_position_check = off: the bump is never performed, the stale
#           entry stays served).
#   loss:   Redis restarts from a file that lost the leader's last writes (the entry it
#           deleted is back, its fence gone, inv:pos back at or above W0, another run): the new
#           leader's synchronisation must find the loss, as it runs at W1 (review 49 R49-1, the
#           reviewer's reproduction, here with the START held): the entry is not served.
#   lossneg: its control (start_position_check = off: the synchronisation checks against W0,
#           says nothing was lost, and the stale entry is served).
#   gap:    review 50 R50-2 (the reviewer's reproduction): A creates the slot, its START is
#           held, B takes the slot and performs the gap flush; when A leads later it does not
#           flush again (its gap_owed went with its restart; the gap key is what Redis owes).
#           Its control was run by hand: without the fix, A's takeover bumps again.
#   readhang: review 52 R52-1: the position's read once the stream holds the slot hangs (the
#           pool's query held by the proxy) while the slot was free when first read: the pool
#           fails it at half the step's time, the position read before START stands, and the
#           stream goes on without a restart. Its control was run by hand: with the read's
#           deadline at the step's, the step deadline restarted the stream first.
. "$(dirname "$0")/daemon_lib.sh"

users_db 20
FENCE=on
slot_pos() { primary postgres -c "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = '$SLOT'"; }
confirmed_past() { [ "$(slot_pos)" -ge "$1" ]; }
agg_query() { printf '\n[query ho_all]\nsql = SELECT id, name FROM users WHERE id = $1\nparams = id:int8\nkind = aggregate\nttl = 1h\nmin_lifetime = 6s\ninvalidate_on = users\n'; }
gen() { local g; g=$(redis get "$NS:g:ho_all"); echo "${g:-0}"; }
gen_ge() { [ "$(gen)" -ge "$1" ]; }
deb_owed() { [ -n "$(redis hget "$NS:inv:deb" ho_all)" ]; }

PPORT=$(free_port)
/usr/bin/python3 "$(dirname "$0")/hold_proxy.py" "$PPORT" "$CS_PG_PRIMARY_PORT" "$WORK/arm" \
  "$WORK/held" >"$WORK/proxy.log" 2>&1 &
PROXY=$!
CLEANUPS+=("kill $PROXY")
proxy_up() { (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null; }
until_true 10 proxy_up || fail "the proxy did not start"

# handover NAME CHECK MODE: A (direct) leads; B (through the proxy; start_position_check =
# CHECK) stands by; B's START is held while `window_MODE` runs (A commits, confirms), A stops,
# then B's START goes through and B takes over. Sets W0 (the slot when B's START was held),
# W1 (after A stopped), PA (A's port), B_LOG.
handover() {
  local name=$1 check=$2 mode=$3 pid_a
  PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/a$name.sock
  inval_config "$WORK/a$name.ini" ho_user
  [ "$mode" = deb ] && agg_query >>"$WORK/a$name.ini"
  start_streaming "$WORK/a$name.ini" "a$name"
  pid_a=$DAEMON_PID PA=$PORT
  PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/b$name.sock
  inval_config "$WORK/b$name.ini" ho_user
  echo "start_position_check = $check" >>"$WORK/b$name.ini"
  case $mode in deb) agg_query ;; map) user_query ho_new ;; esac >>"$WORK/b$name.ini"
  sed -i "s/^conninfo = host=127.0.0.1 port=$CS_PG_PRIMARY_PORT /conninfo = host=127.0.0.1 port=$PPORT /" "$WORK/b$name.ini"
  grep -q "port=$PPORT " "$WORK/b$name.ini" || fail "b$name's primary is not the proxy"
  start_daemon "$WORK/b$name.ini" "b$name"
  B_PID=$DAEMON_PID B_LOG=$DAEMON_LOG
  until_true 30 metric_is cachesvc_invalidator_state 1 || fail "b$name is not standing by: state $(metric cachesvc_invalidator_state)"

  rm -f "$WORK/held"
  # the loss case holds the answer to B's slot query (before its synchronisation in either
  # order); the others B's START_REPLICATION
  if [ "$mode" = loss ]; then
    echo "reply database = current_database(), active" >"$WORK/arm"
  else
    echo "request START_REPLICATION" >"$WORK/arm"
  fi
  kill -USR1 "$PROXY"
  until_true 20 test -e "$WORK/held" || fail "b$name's setup never came through the proxy"
  W0=$(slot_pos) # B read the slot before its held START: at or below W0
  "window_$mode"
  stop_daemon "$pid_a" || fail "a$name did not stop cleanly"
  W1=$(slot_pos)
  [ "$W1" -gt "$W0" ] || fail "the slot did not move while b$name's START was held ($W0, $W1)"
  if declare -F "after_$mode" >/dev/null; then "after_$mode"; fi
  kill -USR2 "$PROXY"
  until_true 30 streaming || fail "b$name never took over (state $(metric cachesvc_invalidator_state)): $(tail -n 20 "$B_LOG")"
}
# the position B's setup read before its START (the log line of a slot that moved)
read_before() {
  local hex
  hex=$(sed -n 's/.*was confirmed to .* before this stream held it (\([0-9A-F]*\/[0-9A-F]*\) when read.*/\1/p' "$B_LOG" | head -1)
  [ -n "$hex" ] || fail "b did not say its slot moved: $(grep -a 'streaming from' "$B_LOG")"
  lsn_num "$hex"
}
# the first stream start B logged: its horizon is the position its setup used
first_start() {
  local hex
  hex=$(sed -n 's/.*streaming from slot .*horizon \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$B_LOG" | head -1)
  [ -n "$hex" ] || fail "no stream start logged"
  lsn_num "$hex"
}

window_map() {
  local lsn
  lsn=$(lsn_num "$(commit_lsn "UPDATE users SET name = 'moved' WHERE id = 3")")
  until_true 20 confirmed_past "$lsn" || fail "a never confirmed $lsn (slot at $(slot_pos))"
}
qmap_has_new() { [ -n "$(qmap_cmd "$B_CONF" hget ho_new)" ]; }
# record_w: B's record of ho_new ("<fingerprint> <hex>") as a number
record_w() {
  local rec
  B_CONF=$1
  until_true 20 qmap_has_new || fail "no mapping of ho_new recorded: $(qmap_cmd "$B_CONF" hgetall)"
  rec=$(qmap_cmd "$B_CONF" hget ho_new)
  echo $((16#${rec#* }))
}

window_deb() {
  local lsn
  G0=$(gen)
  primary "$DB" -c "UPDATE users SET name = 'c1-$name' WHERE id = 3" >/dev/null
  until_true 10 gen_ge $((G0 + 1)) || fail "deb: change 1 did not bump at once"
  fill_a() { PORT=$PA cli get ho_all 4 >/dev/null 2>&1 && cached ho_all 4; }
  until_true 20 fill_a || fail "deb: could not cache ho_all 4 through a"
  lsn=$(lsn_num "$(commit_lsn "UPDATE users SET name = 'c2-$name' WHERE id = 4")")
  until_true 10 deb_owed || fail "deb: change 2 was not debounced"
  until_true 20 confirmed_past "$lsn" || fail "deb: a never confirmed $lsn"
  G1=$(gen)
}

part_map() {
  local w h
  handover 1 on map
  h=$(read_before)
  [ "$h" -lt "$W1" ] || fail "map: the window was not opened: b1 read the slot at $h, it was at $W1"
  ok "map: b1 read the slot at $h, a1 confirmed up to $W1 before b1's START went through"
  metric_ge cachesvc_invalidator_start_moved_total 1 || fail "map: not counted"
  [ "$(first_start)" -ge "$W1" ] || fail "map: b1's stream began at horizon $(first_start), below $W1"
  w=$(record_w "$WORK/b1.ini")
  [ "$w" -ge "$W1" ] || fail "map: b1's mapping record claims from $w, below $W1: changes a1 decoded with its mapping"
  ok "map: b1 synchronised from the slot's real position: its horizon and mapping record start at $w >= $W1"
  stop_daemon "$B_PID" || fail "b1 did not stop cleanly"
}
part_mapneg() {
  local w h
  handover 2 off map
  h=$(first_start)
  [ "$h" -lt "$W1" ] || fail "mapneg: the window was not opened ($h, $W1)"
  w=$(record_w "$WORK/b2.ini")
  [ "$w" -lt "$W1" ] || fail "mapneg: with start_position_check off, b2's record was expected below $W1 (got $w)"
  ok "mapneg: control (start_position_check = off): b2's record claims from $w < $W1"
  stop_daemon "$B_PID" || fail "b2 did not stop cleanly"
}
deb_case() {
  local name=$1 check=$2 r
  handover "$name" "$check" deb
  ok "deb: a$name bumped change 1 ($G0 -> $G1), debounced change 2 (owed in inv:deb), confirmed it and stopped inside b$name's window"
  if until_true 25 gen_ge $((G1 + 1)); then
    [ "$check" = on ] || fail "debneg: b$name performed the owed bump with start_position_check off: the control proves nothing"
    r=$(cli --json get ho_all 4)
    grep -q "\"c2-$name\"" <<<"$r" || fail "deb: after the bump ho_all 4 answers $r"
    ok "deb: b$name performed the owed bump (generation $(gen)): ho_all 4 answers c2-$name"
  else
    [ "$check" = off ] || fail "deb: b$name never performed a$name's owed bump: generation $(gen), inv:deb $(redis hget "$NS:inv:deb" ho_all), ho_all 4 answers $(cli --json get ho_all 4)"
    r=$(cli --json get ho_all 4)
    grep -q "\"c2-$name\"" <<<"$r" && fail "debneg: ho_all 4 answers the new row ($r): the control proves nothing"
    ok "debneg: control (start_position_check = off): the owed bump is never performed, the old row served ($r)"
  fi
  stop_daemon "$B_PID" || fail "b$name did not stop cleanly"
}
part_deb() { deb_case 3 on; }
part_debneg() { deb_case 4 off; }

window_loss() {
  local lsn
  PORT=$PA fill ho_user 3
  K=$(redis keys "$NS:e:ho_user:*:*" | head -1)
  [ -n "$K" ] || fail "loss: no entry of ho_user 3"
  redis copy "$K" "$NS:bak" replace >/dev/null
  P0=$(redis get "$NS:inv:pos")
  lsn=$(lsn_num "$(commit_lsn "UPDATE users SET name = 'moved-$name' WHERE id = 3")")
  until_true 20 confirmed_past "$lsn" || fail "loss: a never confirmed $lsn"
}
# Redis back from a file without the last second: another run, inv:pos back to P0 (>= W0),
# the entry a deleted for the update back, its fence gone
after_loss() {
  redis set "$NS:epoch" "0000000000000000000000000000000000000000:00" >/dev/null
  redis set "$NS:inv:pos" "$P0" >/dev/null
  redis copy "$NS:bak" "$K" replace >/dev/null
  redis del "$NS:f:ho_user:${K#"$NS:e:ho_user:"*:}" >/dev/null
}
loss_case() {
  local name=$1 check=$2 r
  redis del "$NS:bak" >/dev/null
  for k in $(redis keys "$NS:e:ho_user:*"); do redis del "$k" >/dev/null; done
  handover "$name" "$check" loss
  sleep 1 # a generations poll
  r=$(cli --json get ho_user 3)
  if [ "$check" = on ]; then
    grep -q "\"moved-$name\"" <<<"$r" || fail "loss: b$name serves $r after Redis lost a$name's last writes (the entry it deleted is back)"
    grep -q "Redis LOST DATA" "$B_LOG" || fail "loss: b$name did not say Redis lost data"
    ok "loss: Redis lost a$name's last writes inside b$name's window: b$name's synchronisation at $W1 found it, ho_user 3 answers moved-$name"
  else
    grep -q '"source":"cache"' <<<"$r" && ! grep -q "\"moved-$name\"" <<<"$r" ||
      fail "lossneg: with start_position_check off, b$name was expected to serve the stale entry: $r"
    ok "lossneg: control (start_position_check = off): the synchronisation at $W0 kept the stale entry: $r"
  fi
  stop_daemon "$B_PID" || fail "b$name did not stop cleanly"
}
part_loss() { loss_case 5 on; }
part_lossneg() { loss_case 6 off; }

part_gap() {
  local pid_a pa aa g0 slot_was=$SLOT
  SLOT=${SLOT}_gap
  CLEANUPS+=("SLOT=$SLOT drop_slot")
  PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/a7.sock
  inval_config "$WORK/a7.ini" ho_user
  sed -i "s/^conninfo = host=127.0.0.1 port=$CS_PG_PRIMARY_PORT /conninfo = host=127.0.0.1 port=$PPORT /" "$WORK/a7.ini"
  rm -f "$WORK/held"
  echo "request START_REPLICATION" >"$WORK/arm"
  kill -USR1 "$PROXY"
  start_daemon "$WORK/a7.ini" a7
  pid_a=$DAEMON_PID pa=$PORT aa=$APORT
  until_true 20 test -e "$WORK/held" || fail "gap: a7's START never came through the proxy"
  grep -q "creating it" "$WORK/a7.log" || fail "gap: a7 did not create the slot: $(grep -a invalidator "$WORK/a7.log" | tail -3)"
  PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/b7.sock
  inval_config "$WORK/b7.ini" ho_user
  start_streaming "$WORK/b7.ini" b7
  B_PID=$DAEMON_PID
  grep -q "gap flushed" "$WORK/b7.log" || fail "gap: b7 took the new slot without the gap flush"
  kill -USR2 "$PROXY"
  PORT=$pa APORT=$aa
  until_true 30 metric_is cachesvc_invalidator_state 1 || fail "gap: a7 is not standing by: $(tail -n 5 "$WORK/a7.log")"
  g0=$(redis get "$NS:g:ho_user")
  stop_daemon "$B_PID" || fail "b7 did not stop cleanly"
  until_true 30 streaming || fail "gap: a7 never took over: $(tail -n 20 "$WORK/a7.log")"
  sleep 1 # a generations poll
  [ "$(redis get "$NS:g:ho_user")" = "$g0" ] ||
    fail "gap: a7 flushed again when it took over ($g0 -> $(redis get "$NS:g:ho_user")): $(grep -a 'gap flushed' "$WORK/a7.log")"
  ok "gap: a7 created the slot, b7 took it and flushed; a7 leading later flushed nothing again (generation $g0)"
  stop_daemon "$pid_a" || fail "a7 did not stop cleanly"
  SLOT=$slot_was
}

part_readhang() {
  local pid
  PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/rh.sock
  inval_config "$WORK/rh.ini" ho_user
  sed -i "s/^conninfo = host=127.0.0.1 port=$CS_PG_PRIMARY_PORT /conninfo = host=127.0.0.1 port=$PPORT /" "$WORK/rh.ini"
  grep -q "port=$PPORT " "$WORK/rh.ini" || fail "readhang: the primary is not the proxy"
  rm -f "$WORK/held"
  echo "request active_pid::text" >"$WORK/arm"
  kill -USR1 "$PROXY"
  start_daemon "$WORK/rh.ini" rh
  pid=$DAEMON_PID
  until_true 20 test -e "$WORK/held" || fail "readhang: the position's read never came through the proxy: $(grep -a invalidator "$WORK/rh.log" | tail -3)"
  until_true 15 grep -q "the slot was free when read, so the position read stands" "$WORK/rh.log" ||
    fail "readhang: the failed read did not let the position stand: $(grep -a invalidator "$WORK/rh.log" | tail -4)"
  until_true 20 streaming || fail "readhang: not streaming: $(grep -a invalidator "$WORK/rh.log" | tail -4)"
  kill -USR2 "$PROXY"
  ! grep -q "replication setup timed out" "$WORK/rh.log" ||
    fail "readhang: the stream restarted at the step deadline: $(grep -a 'timed out' "$WORK/rh.log")"
  ok "readhang: the read held, failed by the pool at its deadline: the position read before START stood and the stream began without a restart"
  stop_daemon "$pid" || fail "rh did not stop cleanly"
}

for p in "${@:-map mapneg deb debneg loss lossneg gap readhang}"; do
  for q in $p; do "part_$q"; done
done
