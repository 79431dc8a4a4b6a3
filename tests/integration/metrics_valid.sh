#!/usr/bin/env bash
# metrics_valid.sh - /metrics is valid Prometheus text exposition (issue 20 item 6): with the
# invalidator streaming and some traffic (hits, misses, an invalidation), `promtool check
# metrics` reports no error and no lint problem; every family has exactly one HELP and one
# TYPE line and its samples in one group; the standard process_* families, cachesvc_build_info,
# the labelled state gauges and cachesvc_log_dropped_total are there; /healthz answers
# text/plain.
. "$(dirname "$0")/daemon_lib.sh"

command -v promtool >/dev/null || { echo "SKIP: promtool not installed (Debian package prometheus)"; exit 77; }

users_db 10 "ALTER TABLE users REPLICA IDENTITY FULL;" "CREATE PUBLICATION cs_pub FOR TABLE users;"

FENCE=on
inval_config "$WORK/cs.ini" mv_user
start_streaming "$WORK/cs.ini"

# traffic: misses, then hits once filled, then an invalidation
for i in 1 2 3; do fill mv_user $i; done
src mv_user 1 >/dev/null
lsn=$(commit_lsn "UPDATE users SET name = 'changed' WHERE id = 2")
wait_invalidated "$lsn"
cached mv_user 2 && fail "the UPDATE left its entry"
metric_ge cachesvc_cache_hits_total 3 || fail "no hits counted"
metric_ge cachesvc_cache_misses_total 3 || fail "no misses counted"
metric_ge cachesvc_invalidator_keys_total 1 || fail "no invalidation counted"
ok "traffic: hits, misses, an invalidation"

http /metrics >"$WORK/metrics.txt"
[ -s "$WORK/metrics.txt" ] || fail "/metrics is empty"

# promtool: parse errors and lint problems both fail
rc=0
promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1 || rc=$?
if [ $rc != 0 ] || [ -s "$WORK/promtool.out" ]; then
  head -40 "$WORK/promtool.out" >&2
  fail "promtool check metrics: exit $rc, $(wc -l <"$WORK/promtool.out") lines of problems"
fi
ok "promtool check metrics: no error, no lint problem"

# every family: exactly one HELP and one TYPE; its samples in one group (the family of a
# sample is its name, less _bucket/_sum/_count for histograms and summaries)
awk '
  /^# HELP / { help[$3]++; cur = $3; next }
  /^# TYPE / { type[$3]++; typ[$3] = $4; cur = $3; next }
  /^#/ || /^$/ { next }
  {
    n = $1; sub(/\{.*/, "", n); fam = n
    if (!(fam in typ)) { f2 = fam; sub(/_(bucket|sum|count)$/, "", f2); if (f2 in typ) fam = f2 }
    if (!(fam in typ)) { print "no TYPE before sample " n; bad = 1 }
    if (fam != cur) {
      if (fam in closed) { print "family " fam " split into several groups"; bad = 1 }
      closed[cur] = 1; cur = fam
    }
  }
  END {
    for (f in type) if (type[f] != 1) { print f " has " type[f] " TYPE lines"; bad = 1 }
    for (f in help) if (help[f] != 1) { print f " has " help[f] " HELP lines"; bad = 1 }
    for (f in type) if (!(f in help)) { print f " has no HELP"; bad = 1 }
    for (f in help) if (!(f in type)) { print f " has no TYPE"; bad = 1 }
    exit bad
  }' "$WORK/metrics.txt" >"$WORK/families.out" || { head -40 "$WORK/families.out" >&2; fail "families not well formed"; }
ok "every family has one HELP, one TYPE and one group of samples"

has() { grep -q "^$1" "$WORK/metrics.txt" || fail "no sample $1"; }
for m in process_cpu_seconds_total process_resident_memory_bytes process_open_fds \
    process_max_fds process_start_time_seconds 'cachesvc_build_info{version="' \
    cachesvc_log_dropped_total 'cachesvc_invalidator_status{state="streaming"} 1' \
    'cachesvc_invalidator_state 3' 'cachesvc_pg_state{server="r1",state="up"} 1' \
    'cachesvc_pg_state{server="primary",state="up"} 1' 'cachesvc_metrics_type_mismatches 0'; do
  has "$m"
done
ok "process_*, build_info, log_dropped, labelled state gauges present"

hdr=$(exec 3<>"/dev/tcp/127.0.0.1/$APORT"; printf 'GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n' >&3; cat <&3)
printf '%s' "$hdr" | grep -qi '^Content-Type: text/plain; charset=utf-8' || fail "/healthz content type: $hdr"
printf '%s' "$hdr" | sed '1,/^\r$/d' | grep -qx ok || fail "/healthz body: $hdr"
ok "/healthz: text/plain, ok"

# unhealthy: the only replica never answers; /healthz says why, as text/plain, with a 503
stop_daemon || fail "cachesvc did not exit cleanly"
write_config "$WORK/down.ini" down1
start_daemon "$WORK/down.ini" down
healthz_raw() { exec 3<>"/dev/tcp/127.0.0.1/$APORT"; printf 'GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n' >&3; cat <&3; exec 3<&-; }
is_503() { [[ $(healthz_raw) =~ ^HTTP/1\.[01]\ 503\  ]]; } # no early-exit reader in a pipefail pipe
until_true 15 is_503 || fail "/healthz never 503 with its only replica down: $(healthz_raw)"
hdr=$(healthz_raw)
printf '%s' "$hdr" | grep -qi '^Content-Type: text/plain; charset=utf-8' || fail "/healthz 503 content type: $hdr"
why=$(printf '%s' "$hdr" | sed '1,/^\r$/d')
[ -n "$why" ] && [ "$why" != ok ] || fail "/healthz 503 without a reason: $hdr"
ok "/healthz: 503, text/plain, reason \"$why\""
