#!/usr/bin/env bash
# lib_near.sh - library mode with the near cache: an application whose callbacks re-issue
# GETs answered from the near cache (immediately) keeps its loop: its own timer fires on
# time (the library delivers such answers on the next loop pass, not in an endless chain).
. "$(dirname "$0")/daemon_lib.sh"
: "${CS_LIB_TEST:?CS_LIB_TEST (the lib_test binary) must be set; meson test sets it}"

items_db 1 10
EXTRA_SERVICE="near_cache_size = 1MB"
write_config "$WORK/lib.ini" replica1
item_query >>"$WORK/lib.ini"
out=$("$CS_LIB_TEST" near_chain "$WORK/lib.ini" w_item 3 2>"$WORK/lib_near.log") ||
  { cat "$WORK/lib_near.log" >&2; fail "near_chain: $out"; }
n=$(echo "$out" | jnum answers)
[ "$n" -ge 100 ] || fail "only $n chained answers: the near cache did not answer them ($out)"
ok "library mode: $n chained near-cache answers, the application's 200 ms timer fired on time: $out"
