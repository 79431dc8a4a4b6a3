#!/usr/bin/env bash
# quickstart.sh - scripts/quickstart, the README's first command, as a user runs it: a
# private directory and free ports per run, the demo answering, Ctrl-C removing the sandbox
# (and keeping it with --keep), a failed daemon start exiting non-zero. It starts its own
# sandbox (PostgreSQL primary + 2 replicas + Redis); the suite's sandbox only gates it.
. "$(dirname "$0")/lib.sh"
: "${CS_BUILD:?CS_BUILD must be set; meson test sets it}"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CLI=$CS_BUILD/protocol/cachesvc-cli
WORK=$(mktemp -d /tmp/cs-quickstart.XXXXXX)
chmod 755 "$WORK"
QS_PID= QS_SAVE= QS2_PID=
cleanup() {
  local p d
  for p in $QS_PID $QS_SAVE $QS2_PID; do
    kill -INT -- "-$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }
  done
  for d in "$WORK"/cachesvc-quickstart.* "$WORK"/kept; do
    [ -d "$d" ] && "$REPO/scripts/sandbox" stop "$d" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_qs NAME ARGS...: runs quickstart in its own process group with SIGINT at its default
# (a background job of a script starts with it ignored; a terminal's foreground job does not),
# output in $WORK/NAME.out; sets QS_PID. The directory and port come from its banner.
start_qs() {
  local name=$1
  shift
  TMPDIR=$WORK XDG_RUNTIME_DIR= CS_QUICKSTART_BUILD=$CS_BUILD \
    setsid env --default-signal=INT "$REPO/scripts/quickstart" "$@" >"$WORK/$name.out" 2>&1 &
  QS_PID=$!
}
banner() { # NAME -> "DIR PORT" once cachesvc answers
  local name=$1 dir port
  until_true 120 grep -q "^cachesvc listens on" "$WORK/$name.out" ||
    { cat "$WORK/$name.out"; fail "$name: no banner"; }
  dir=$(sed -n 's/^Sandbox up in \([^ ]*\) .*/\1/p' "$WORK/$name.out")
  port=$(sed -n 's/^cachesvc listens on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$WORK/$name.out")
  [ -n "$dir" ] && [ -n "$port" ] || fail "$name: banner without directory or port"
  echo "$dir $port"
}
ctrl_c() { # waits for quickstart to finish after Ctrl-C; returns its status
  kill -INT -- "-$QS_PID"
  local st=0
  wait "$QS_PID" || st=$?
  QS_PID=
  return $st
}

# 1. A private directory and free ports; the demo answers; Ctrl-C removes the directory.
start_qs run1
read -r DIR1 PORT1 < <(banner run1)
case $DIR1 in "$WORK"/cachesvc-quickstart.*) ;; *) fail "run 1 directory $DIR1 is not private to the run" ;; esac
[ "$PORT1" != 6380 ] || fail "run 1 took the fixed port 6380"
until_true 60 "$CLI" -p "$PORT1" -t 2000 ping >/dev/null 2>&1 || fail "cachesvc on $PORT1 does not answer"
until_true 60 sh -c "'$CLI' -p $PORT1 -t 5000 --json get user_profile 42 2>/dev/null | grep -q '\"rows\":\\[\\[42,'" ||
  fail "the demo query user_profile 42 does not answer"
ok "run 1: private directory $DIR1, cachesvc on free port $PORT1, the demo answers"

# 2. A second run while the first one is still up: its own directory and ports.
# run 2 names its directory, relative to where it is run (not to the repository)
start_qs2() { (cd "$WORK" && TMPDIR=$WORK XDG_RUNTIME_DIR= CS_QUICKSTART_BUILD=$CS_BUILD exec setsid env --default-signal=INT "$REPO/scripts/quickstart" --keep run2dir >"$WORK/run2.out" 2>&1) & QS2_PID=$!; }
start_qs2
QS_SAVE=$QS_PID
QS_PID=$QS2_PID
read -r DIR2 PORT2 < <(banner run2)
[ "$DIR2" != "$DIR1" ] && [ "$PORT2" != "$PORT1" ] || fail "two runs share $DIR2 / $PORT2"
[ "$DIR2" = "$WORK/run2dir" ] || fail "a relative directory was not taken from the caller's directory: $DIR2"
until_true 60 "$CLI" -p "$PORT2" -t 2000 ping >/dev/null 2>&1 || fail "run 2 does not answer"
ok "run 2 beside run 1: $DIR2, port $PORT2"

# 3. Ctrl-C: run 2 (--keep) keeps its directory, run 1 removes its own; both stop cachesvc.
ctrl_c || true
QS2_PID=
[ -d "$DIR2" ] || fail "--keep removed $DIR2"
grep -q "kept $DIR2" "$WORK/run2.out" || fail "run 2 does not say it kept $DIR2"
mv "$DIR2" "$WORK/kept" 2>/dev/null || true
QS_PID=$QS_SAVE
QS_SAVE=
ctrl_c || true
[ ! -e "$DIR1" ] || fail "Ctrl-C left $DIR1 behind"
! "$CLI" -p "$PORT1" -t 500 ping >/dev/null 2>&1 || fail "cachesvc on $PORT1 still answers after Ctrl-C"
! pgrep -f -- "-D $DIR1/" >/dev/null && ! pgrep -f -- "-D $DIR2/" >/dev/null ||
  fail "a sandbox server still runs after Ctrl-C: $(pgrep -af -- "-D $WORK/")"
ok "Ctrl-C stops cachesvc and the sandbox and removes the run's directory; --keep keeps it"

# 3b. A directory of the user's that is not empty and holds no sandbox is refused before
#     anything runs, and left as it was (relative to the caller: "." here is theirs).
mkdir -p "$WORK/mine"
echo precious >"$WORK/mine/file"
st=0
(cd "$WORK/mine" && TMPDIR=$WORK CS_QUICKSTART_BUILD=$CS_BUILD timeout 60 "$REPO/scripts/quickstart" .) >"$WORK/mine.out" 2>&1 || st=$?
[ "$st" = 2 ] || fail "a non-empty directory of the user's: exit $st, want 2: $(cat "$WORK/mine.out")"
[ "$(cat "$WORK/mine/file" 2>/dev/null)" = precious ] || fail "the user's directory was touched"
grep -q "is not empty and holds no sandbox" "$WORK/mine.out" || fail "no reason given: $(cat "$WORK/mine.out")"
[ -e "$REPO/.git" ] || fail "the repository is gone"
ok "a non-empty directory of the user's (\".\"): refused, untouched"

# 4. A daemon that cannot start (its config names a missing primary user) makes quickstart
#    exit non-zero instead of idling.
mkdir -p "$WORK/bad/build/cachesvc" "$WORK/bad/build/protocol"
printf '#!/bin/sh\necho "cachesvc: cannot start (test)" >&2\nexit 3\n' >"$WORK/bad/build/cachesvc/cachesvc"
chmod +x "$WORK/bad/build/cachesvc/cachesvc"
st=0
TMPDIR=$WORK XDG_RUNTIME_DIR= CS_QUICKSTART_BUILD=$WORK/bad/build timeout 180 "$REPO/scripts/quickstart" >"$WORK/run3.out" 2>&1 || st=$?
[ "$st" = 3 ] || { cat "$WORK/run3.out"; fail "a failed cachesvc start: quickstart exited $st, want 3"; }
! compgen -G "$WORK/cachesvc-quickstart.*" >/dev/null || fail "a failed start left its directory behind"
ok "a failed cachesvc start: quickstart exits with its status and cleans up"
