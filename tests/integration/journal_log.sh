#!/usr/bin/env bash
# journal_log.sh - issue 20 item 10: logging for journald. When stderr is the journal's
# stream (JOURNAL_STREAM names its device and inode, as systemd sets it) lines carry the
# syslog priority journald takes as their level ("<4>WARNING ..."), without the timestamp the
# journal records itself; log_format = text keeps the plain format, journal forces it.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE t (id int PRIMARY KEY);
SQL
write_config "$WORK/cs.ini"
run() { # NAME [EXTRA LINE]: starts and stops a daemon logging to $WORK/NAME.log, stderr's
        # device:inode given as JOURNAL_STREAM
  local name=$1 log=$WORK/$1.log
  sed "s|^\[cachesvc\]$|[cachesvc]\n${2:-}|" "$WORK/cs.ini" >"$WORK/$name.ini"
  : >"$log"
  JOURNAL_STREAM="$(stat -c '%d:%i' "$log")" "$CACHESVC" -c "$WORK/$name.ini" 2>>"$log" &
  DAEMON_PID=$! DAEMON_LOG=$log
  DAEMON_PIDS+=("$DAEMON_PID")
  until_true 30 daemon_answers || fail "$name: cachesvc did not come up: $(cat "$log")"
  stop_daemon || fail "$name: no clean exit"
}
run auto
grep -qE '^<6>INFO accepting clients on ' "$WORK/auto.log" || fail "auto on the journal stream: $(head -3 "$WORK/auto.log")"
! grep -qE '^[0-9]{4}-' "$WORK/auto.log" || fail "auto on the journal stream: timestamped lines: $(grep -E '^[0-9]{4}-' "$WORK/auto.log" | head -2)"
ok "stderr is the journal's stream: $(grep -m1 'accepting clients' "$WORK/auto.log")"

run text "log_format = text"
grep -qE '^[0-9-]+ [0-9:.]+ UTC \[[0-9]+\] INFO accepting clients on ' "$WORK/text.log" ||
  fail "log_format = text: $(head -3 "$WORK/text.log")"
ok "log_format = text keeps the plain format"

# A redirected stderr (not the journal's stream, though JOURNAL_STREAM is inherited).
sed "s|^\[cachesvc\]$|[cachesvc]|" "$WORK/cs.ini" >"$WORK/child.ini"
JOURNAL_STREAM="1:1" "$CACHESVC" -c "$WORK/child.ini" 2>"$WORK/child.log" &
DAEMON_PID=$! DAEMON_LOG=$WORK/child.log
DAEMON_PIDS+=("$DAEMON_PID")
until_true 30 daemon_answers || fail "child: cachesvc did not come up"
stop_daemon || fail "child: no clean exit"
grep -qE '^[0-9-]+ [0-9:.]+ UTC \[[0-9]+\] INFO accepting clients' "$WORK/child.log" ||
  fail "JOURNAL_STREAM of another stream: $(head -3 "$WORK/child.log")"
ok "JOURNAL_STREAM naming another stream (an inherited variable): plain format"
