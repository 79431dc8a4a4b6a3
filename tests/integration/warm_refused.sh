#!/usr/bin/env bash
# warm_refused.sh - cachesvc-warm counts a key whose answer says stored=false as "refused",
# not "filled" (issue 13 item 15). fence = on and the only replica is the delayed one (2 s
# behind): right after a write to the keys (invalidated, so each has a per-key fence at the
# write's LSN) the replica still reads the old rows, the daemon refuses those fills and its
# batch-tier answers say stored=false. The report counts them as refused (>= 1), the
# outcomes add up to the total, refusals are not failures (exit 0 with --max-failures 0),
# and the daemon's refusal counters agree. Then, with the replica caught up, a REFRESH
# through cachesvc-cli --json says "stored": true, and a refused REFRESH says false.
. "$(dirname "$0")/daemon_lib.sh"
WARM=$CS_BUILD/cachesvc/cachesvc-warm
D=${CS_PG_DELAYED_REPLICA:-0}
[ "$D" != 0 ] || { echo "SKIP: needs a sandbox with a delayed replica"; exit 77; }
N=60

make_db <<SQL
CREATE TABLE wr_items (id bigint PRIMARY KEY, v bigint NOT NULL);
INSERT INTO wr_items SELECT i, 0 FROM generate_series(1, $N) i;
SQL
FENCE=on
EXTRA_SERVICE="max_replica_lag = 1h
primary_fallback = false"
write_config "$WORK/cs.ini" "replica$D"
cat >>"$WORK/cs.ini" <<'INI'

[query wr_item]
sql = SELECT id, v FROM wr_items WHERE id = $1
params = id:int8
ttl = 1h
invalidate_on = wr_items(id = $1)
INI
invalidator_section >>"$WORK/cs.ini"
# per-key fences outlive the run
sed -i 's/^status_interval = 100ms/status_interval = 100ms\nfence_ttl = 60s/' "$WORK/cs.ini"
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never streamed"
wait_replicas

for i in $(seq 1 $N); do echo "wr_item $i"; done >"$WORK/keys.txt"
refused_metrics() {
  echo $(($(metric cachesvc_fill_refused_fence_total) + $(metric cachesvc_fill_refused_horizon_total) +
    $(metric cachesvc_fill_refused_query_fence_total) + $(metric cachesvc_fill_refused_epoch_total)))
}

# A write to every key, then warm at once: the replica is 2 s behind the write, and the
# invalidator sets each key's fence within milliseconds (a fill that beats it is stored,
# then deleted by the invalidation: counted as filled, still consistent). On a machine so
# slow that the replica caught up before the warm-up read it, nothing is refused: then the
# round is repeated (not a timing assertion).
round=0
while :; do
  round=$((round + 1))
  [ $round -le 5 ] || fail "in 5 rounds no fill was refused: the warm-up never raced the delayed replica"
  ref0=$(refused_metrics)
  fills0=$(metric cachesvc_fills_total)
  primary "$DB" -c "UPDATE wr_items SET v = v + 1" >/dev/null
  set +e
  "$WARM" -p "$PORT" -c 32 --rate 0 --json --max-failures 0 "$WORK/keys.txt" \
    >"$WORK/r$round.json" 2>"$WORK/warm$round.log"
  rc=$?
  set -e
  r=$(cat "$WORK/r$round.json")
  [ $rc = 0 ] || fail "round $round: warm exited $rc (refusals are not failures): $r $(cat "$WORK/warm$round.log")"
  refused=$(json refused <<<"$r")
  [ "$refused" != null ] || fail "round $round: the report has no refused count: $r"
  filled=$(json filled <<<"$r")
  cached=$(json already_cached <<<"$r")
  failed=$(json failed <<<"$r")
  skipped=$(json skipped <<<"$r")
  [ "$(json total <<<"$r")" = $N ] && [ "$(json "done" <<<"$r")" = $N ] || fail "round $round: total/done: $r"
  [ $((filled + refused + cached + failed + skipped)) = $N ] ||
    fail "round $round: filled + refused + already cached + failed + skipped != $N: $r"
  [ "$failed" = 0 ] && [ "$skipped" = 0 ] || fail "round $round: failures: $r"
  # the daemon agrees: its refusals and stored fills match the report
  d_ref=$(($(refused_metrics) - ref0))
  d_fill=$(($(metric cachesvc_fills_total) - fills0))
  [ "$d_ref" = "$refused" ] || fail "round $round: report says $refused refused, the daemon refused $d_ref fills: $r"
  [ "$d_fill" = "$filled" ] || fail "round $round: report says $filled filled, the daemon stored $d_fill: $r"
  [ "$refused" -ge 1 ] && break
  echo "round $round: nothing refused (the replica caught up first), again: $r"
  wait_invalidated "$(primary "$DB" -c "SELECT pg_current_wal_lsn()")"
done
ok "warm right after a write: $filled filled, $refused refused, $cached already cached of $N; exit 0; the daemon agrees"

# the text report names the refusals too
lsn=$(commit_lsn "UPDATE wr_items SET v = v + 1 WHERE id <= 5")
wait_invalidated "$lsn"
head -5 "$WORK/keys.txt" >"$WORK/k5.txt"
"$WARM" -p "$PORT" --rate 0 "$WORK/k5.txt" >"$WORK/text.out" 2>&1 || fail "text run failed: $(cat "$WORK/text.out")"
grep -Eq '^  refused +[0-9]+' "$WORK/text.out" || fail "the text report has no refused line: $(cat "$WORK/text.out")"
ok "text report: $(grep -E '^  refused' "$WORK/text.out" | tr -s ' ')"

# REFRESH and "stored": refused right after a write, stored once the replica caught up
lsn=$(commit_lsn "UPDATE wr_items SET v = v + 1 WHERE id = 1")
wait_invalidated "$lsn"
out=$(cli --json refresh wr_item 1)
st_refused=$(json stored <<<"$out")
wait_replicas
out=$(cli --json refresh wr_item 1)
[ "$(json source <<<"$out")" = replica ] || fail "REFRESH not answered by the replica: $out"
[ "$(json stored <<<"$out")" = true ] || fail "REFRESH of a caught-up replica: want \"stored\": true: $out"
cached wr_item 1 || fail "REFRESH said stored, yet wr_item 1 is not cached"
ok "REFRESH on a caught-up replica: \"stored\": true (and right after a write: $st_refused)"
