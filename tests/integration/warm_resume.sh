#!/usr/bin/env bash
# warm_resume.sh - an interrupted cachesvc-warm resumes from its checkpoint: after SIGTERM
# (graceful) and after kill -9, the next run with the same --checkpoint finishes the input,
# the final report counts everything, and nothing already done is done twice: the daemon
# sees exactly the requests the checkpoint does not cover, and across all runs there are
# exactly N misses (each key read from the replica once; N replica queries, counted by the
# replica itself with pg_stat_statements).
. "$(dirname "$0")/daemon_lib.sh"
WARM=$CS_BUILD/cachesvc/cachesvc-warm
N=10000
RATE=2500

items_db 1 $N "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"
write_config "$WORK/cs.ini" replica1
cat >>"$WORK/cs.ini" <<'INI'

[query w_item]
sql = SELECT v, 'warm_resume' AS tag FROM items WHERE id = $1
params = id:int8
INI
start_daemon "$WORK/cs.ini"
replica_port=$CS_PG_REPLICA1_PORT
pg "$replica_port" "$DB" -c "SELECT pg_stat_statements_reset()" >/dev/null
seq 1 $N | sed 's/^/w_item /' >"$WORK/keys.txt"
CK=$WORK/warm.ck
misses0=$(metric cachesvc_cache_misses_total)
WARM_ARGS=(-p "$PORT" -c 32 --rate $RATE --json --quiet --checkpoint "$CK" "$WORK/keys.txt")
warm() { "$WARM" "${WARM_ARGS[@]}"; }
# ck_done: requests the checkpoint counts as done
ck_done() { awk '$1 == "count" { s += $3 } END { print s + 0 }' "$CK"; }

# 1. SIGTERM: the run finishes what is in flight, saves the checkpoint, exits 3.
set +e
"$WARM" "${WARM_ARGS[@]}" >"$WORK/r1.json" 2>"$WORK/warm1.log" &
pid=$!
sleep 1.2
# (a loaded machine may start the tool late: stop it only once it has checkpointed work)
until_true 20 eval '[ "$(ck_done 2>/dev/null)" -gt 0 ]' || true
kill -TERM $pid
wait $pid
rc=$?
set -e
[ $rc = 3 ] || fail "after SIGTERM: exit $rc: $(cat "$WORK/r1.json" "$WORK/warm1.log")"
r1=$(cat "$WORK/r1.json")
[ "$(json status <<<"$r1")" = interrupted ] || fail "status after SIGTERM: $r1"
done1=$(json done <<<"$r1")
[ "$done1" -gt 0 ] && [ "$done1" -lt $N ] || fail "SIGTERM run did $done1 of $N"
[ "$(ck_done)" = "$done1" ] || fail "checkpoint has $(ck_done) done, report $done1"
grep -q '^low ' "$CK" || fail "checkpoint: $(head -5 "$CK")"
ok "SIGTERM after 1.2 s: exit 3, $done1 done, checkpoint $(grep '^low' "$CK"), $(grep -c '^done' "$CK" || true) done-above lines"

# 2. Resume, then kill -9 mid-run.
req0=$(metric cachesvc_requests_total)
set +e
"$WARM" "${WARM_ARGS[@]}" >"$WORK/r2.json" 2>"$WORK/warm2.log" &
pid=$!
sleep 1.5
# killed only once this run has checkpointed work of its own (a fixed 1.5 s was not always
# enough for the resumed run to start and reach a checkpoint on a loaded machine)
until_true 20 eval '[ "$(ck_done 2>/dev/null)" -gt "$done1" ]' || true
kill -KILL $pid
wait $pid 2>/dev/null
set -e
# The daemon finishes what was in flight when the tool died.
sleep 0.5
req_run2=$(( $(metric cachesvc_requests_total) - req0 ))
done2=$(ck_done)
[ "$done2" -gt "$done1" ] && [ "$done2" -lt $N ] || fail "after kill -9 the checkpoint says $done2 done"
[ "$req_run2" -ge $((done2 - done1)) ] || fail "checkpoint claims more than was sent"
ok "kill -9 after 1.5 s: checkpoint says $done2 done ($req_run2 requests reached the daemon)"

# 3. Resume to the end.
req0=$(metric cachesvc_requests_total)
warm >"$WORK/r3.json" 2>"$WORK/warm3.log" || fail "resume: $(cat "$WORK/r3.json" "$WORK/warm3.log")"
r3=$(cat "$WORK/r3.json")
req_run3=$(( $(metric cachesvc_requests_total) - req0 ))
[ "$(json status <<<"$r3")" = finished ] || fail "resume: $r3"
[ "$(json done <<<"$r3")" = $N ] || fail "resume did not count everything: $r3"
[ "$(json done_before <<<"$r3")" = "$done2" ] || fail "resume started from $(json done_before <<<"$r3"), checkpoint had $done2"
[ $(( $(json filled <<<"$r3") + $(json already_cached <<<"$r3") )) = $N ] || fail "resume counts: $r3"
[ "$(json failed <<<"$r3")" = 0 ] || fail "resume failures: $r3"
[ "$req_run3" = $((N - done2)) ] || fail "resume sent $req_run3 requests, want exactly $((N - done2)) (the lines the checkpoint lacks)"
grep -q '^finished 1$' "$CK" || fail "checkpoint not marked finished"
ok "resume: finished, done=$N (filled $(json filled <<<"$r3"), already cached $(json already_cached <<<"$r3")), sent exactly the $req_run3 missing lines"

# Across the three runs each key missed exactly once.
misses=$(( $(metric cachesvc_cache_misses_total) - misses0 ))
[ "$misses" = $N ] || fail "$misses misses across the runs, want $N"
calls=$(stmt_calls "$replica_port" "%AS tag FROM items WHERE id%")
[ "$calls" = $N ] || fail "$calls replica queries across the runs, want $N"
ok "across all runs: $misses misses, $calls replica queries for $N keys"

# 4. A finished checkpoint: nothing to do.
req0=$(metric cachesvc_requests_total)
warm >"$WORK/r4.json" 2>"$WORK/warm4.log" || fail "finished checkpoint: $(cat "$WORK/r4.json")"
[ "$(metric cachesvc_requests_total)" = "$req0" ] || fail "a finished checkpoint sent requests"
grep -q "nothing to do" "$WORK/warm4.log" || fail "$(cat "$WORK/warm4.log")"
ok "a finished checkpoint does nothing: $(head -c 100 "$WORK/warm4.log")"
