#!/usr/bin/env bash
# warm_fill.sh - cachesvc-warm fills 10k keys from a file through the daemon: afterwards
# every one is a hit (sampled) and the daemon counted 10k fills; a malformed line is
# reported with its number and skipped while the rest goes on; a second run finds
# everything cached; --refresh re-reads every key from the replica; a checkpoint of
# another input is refused.
. "$(dirname "$0")/daemon_lib.sh"
WARM=$CS_BUILD/cachesvc/cachesvc-warm
N=10000

items_db 0 $((N - 1))
write_config "$WORK/cs.ini" replica1
item_query >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini"

# The key file: N requests, comments and blank lines, quoting, and one malformed line.
{
  echo "# warm-up keys for w_item"
  echo
  for i in $(seq 0 $((N - 1))); do
    if [ "$i" = 5000 ]; then echo 'w_item "5000'; continue; fi   # unterminated quote
    if [ "$i" = 7000 ]; then echo "w_item \"7000\"   # quoted, with a comment"; continue; fi
    echo "w_item $i"
  done
} >"$WORK/keys.txt"
bad_line=$(grep -n '^w_item "5000$' "$WORK/keys.txt" | cut -d: -f1)

fills0=$(metric cachesvc_fills_total)
set +e
"$WARM" -p "$PORT" -c 32 --rate 0 --json --max-failures 1 "$WORK/keys.txt" \
  >"$WORK/r1.json" 2>"$WORK/warm1.log"
rc=$?
set -e
[ $rc = 0 ] || fail "warm exited $rc: $(cat "$WORK/r1.json" "$WORK/warm1.log")"
r1=$(cat "$WORK/r1.json")
[ "$(json filled <<<"$r1")" = $((N - 1)) ] || fail "filled: $r1"
[ "$(json already_cached <<<"$r1")" = 0 ] || fail "already cached: $r1"
[ "$(json skipped <<<"$r1")" = 1 ] || fail "skipped: $r1"
[ "$(json failed <<<"$r1")" = 0 ] || fail "failed: $r1"
[ "$(json total <<<"$r1")" = $N ] || fail "total: $r1"
[ "$(json status <<<"$r1")" = finished ] || fail "status: $r1"
grep -q "line $bad_line: malformed: unterminated quote" "$WORK/warm1.log" ||
  fail "the malformed line $bad_line was not reported: $(cat "$WORK/warm1.log")"
"$PY3" -c 'import json,sys; r=json.load(sys.stdin); f=r["first_failures"][0]; assert f["line"]=='"$bad_line"' and "malformed" in f["reason"], r' <<<"$r1" ||
  fail "report lacks the malformed line: $r1"
ok "10k keys warmed: $(json filled <<<"$r1") filled, line $bad_line reported and skipped ($(json rate <<<"$r1")/s)"

fills=$(( $(metric cachesvc_fills_total) - fills0 ))
[ "$fills" = $((N - 1)) ] || fail "the daemon counted $fills fills, want $((N - 1))"
ok "daemon fills_total went up by $fills"

# Every warmed key is a hit: the first 1000 keys by cs_burst, and a random sample by the cli.
out=$("$BURST" -p "$PORT" -c 10 -n 100 -t 20000 w_item %i)
[ "$(json cache <<<"$out")" = 1000 ] || fail "keys 0..999 not all hits: $out"
# (the 50 sampled keys read in one MGET, one answer line each: 50 cli processes took over a
# minute on a loaded machine)
sample=()
while [ ${#sample[@]} -lt 50 ]; do
  k=$((RANDOM % N))
  [ "$k" = 5000 ] || sample+=("$k")
done
out=$(cli --json mget --each w_item "${sample[@]}") || fail "sample mget failed: $out"
[ "$(grep -c . <<<"$out")" = 50 ] || fail "sample: $(grep -c . <<<"$out") answers for 50 keys: $out"
i=0
while read -r line; do
  [[ $line == '{"source":"cache",'* ]] ||
    fail "key ${sample[$i]}: not a hit after warming: $line"
  i=$((i + 1))
done <<<"$out"
ok "sampled keys are all hits (source=cache)"

# A second run: everything is already cached, nothing filled.
fills0=$(metric cachesvc_fills_total)
"$WARM" -p "$PORT" -c 32 --rate 0 --json --max-failures 1 "$WORK/keys.txt" >"$WORK/r2.json" 2>/dev/null ||
  fail "second run failed: $(cat "$WORK/r2.json")"
r2=$(cat "$WORK/r2.json")
[ "$(json already_cached <<<"$r2")" = $((N - 1)) ] || fail "second run: $r2"
[ "$(json filled <<<"$r2")" = 0 ] || fail "second run filled: $r2"
[ "$(metric cachesvc_fills_total)" = "$fills0" ] || fail "second run filled something"
ok "second run: all $((N - 1)) already cached, no fill"

# The malformed line makes the exit status 1 without --max-failures.
set +e
"$WARM" -p "$PORT" -c 32 --rate 0 --quiet "$WORK/keys.txt" >"$WORK/r3.txt" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "one skipped line with --max-failures 0: exit $rc, want 1"
grep -q "skipped  *1" "$WORK/r3.txt" || fail "text report: $(cat "$WORK/r3.txt")"
ok "exit 1 when failures exceed --max-failures (text report: $(grep -c . "$WORK/r3.txt") lines)"

# --refresh re-reads every key: each answer comes from the replica.
refreshes0=$(metric cachesvc_refresh_forced_total)
"$WARM" -p "$PORT" -c 32 --rate 0 --json --refresh --max-failures 1 "$WORK/keys.txt" \
  >"$WORK/r4.json" 2>/dev/null || fail "--refresh failed: $(cat "$WORK/r4.json")"
r4=$(cat "$WORK/r4.json")
[ "$(json filled <<<"$r4")" = $((N - 1)) ] || fail "--refresh: $r4"
[ "$(json already_cached <<<"$r4")" = 0 ] || fail "--refresh served from cache: $r4"
[ "$(json mode <<<"$r4")" = refresh ] || fail "--refresh mode: $r4"
refreshes=$(( $(metric cachesvc_refresh_forced_total) - refreshes0 ))
[ "$refreshes" = $((N - 1)) ] || fail "daemon counted $refreshes REFRESH requests"
ok "--refresh: all $((N - 1)) re-read (source=replica), daemon counted $refreshes refreshes"

# Unknown query and bad params are failures with their reason.
printf 'w_item 1\nno_such_query 1\nw_item notanumber\nw_item 1 2\n' >"$WORK/bad.txt"
set +e
"$WARM" -p "$PORT" --json --rate 0 "$WORK/bad.txt" >"$WORK/r5.json" 2>"$WORK/warm5.log"
rc=$?
set -e
r5=$(cat "$WORK/r5.json")
[ $rc = 1 ] || fail "server errors: exit $rc: $r5"
[ "$(json failed <<<"$r5")" = 3 ] || fail "server errors: $r5"
"$PY3" -c 'import json,sys; r=json.load(sys.stdin)["reasons"]; assert r.get("unknown_query")==1 and r.get("bad_params")==2, r' <<<"$r5" ||
  fail "reasons: $r5"
grep -q "line 2: unknown_query" "$WORK/warm5.log" || fail "line 2 not reported: $(cat "$WORK/warm5.log")"
ok "server errors counted by reason: $("$PY3" -c 'import json,sys; print(json.load(sys.stdin)["reasons"])' <<<"$r5")"

# A checkpoint belongs to its input: another file is refused.
"$WARM" -p "$PORT" --rate 0 --quiet --checkpoint "$WORK/ck" --max-failures 10 "$WORK/bad.txt" >/dev/null 2>&1 || true
[ -f "$WORK/ck" ] || fail "no checkpoint written"
set +e
"$WARM" -p "$PORT" --rate 0 --quiet --checkpoint "$WORK/ck" "$WORK/keys.txt" >/dev/null 2>"$WORK/warm6.log"
rc=$?
set -e
[ $rc = 2 ] || fail "a checkpoint of another input: exit $rc"
grep -q "belongs to another input" "$WORK/warm6.log" || fail "message: $(cat "$WORK/warm6.log")"
ok "a checkpoint of another input is refused: $(head -1 "$WORK/warm6.log")"
