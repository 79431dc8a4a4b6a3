#!/usr/bin/env bash
# output_limit.sh - issue 14 item 2: a client that sends MGETs of large rows and never reads
# is disconnected at client_output_hard_limit (counted), and the daemon's memory stays
# bounded (the old code grew one such connection to hundreds of MB: up to max_inflight
# MGETs kept completing into its output after reading stopped). An MGET whose own items
# pass the hard limit fails with too_large and the connection stays usable.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT i, repeat(md5(i::text), 3200) FROM generate_series(1, 2) i; -- ~100 kB each
SQL
EXTRA_SERVICE="max_reply = 1MB
client_output_soft_limit = 1MB
client_output_hard_limit = 8MB" write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query big_row]
sql = SELECT v FROM big WHERE id = $1
params = id:int4
INI
# ASan keeps freed memory in a quarantine (256 MB by default), which would count every
# Redis reply the daemon read and freed as resident; a small one keeps RSS meaningful.
ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=8" start_daemon "$WORK/cs.ini"

cli get big_row 1 >/dev/null || fail "cannot read the big row"
[ "$(src big_row 1)" = cache ] || fail "the big row is not cached"
rss_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$DAEMON_PID/status"; }
before=$(rss_kb VmRSS)

# 32 items x 100 kB = 3.2 MB per reply; 150 such MGETs written, nothing read.
r=$("$HOSTILE" -p "$PORT" noread big_row 1 32 150 30)
ok "never-reading client: $r"
[ "$(echo "$r" | jnum closed)" = 1 ] || fail "the client that never reads was not disconnected: $r"
sleep 1
peak=$(rss_kb VmHWM)
grow=$(((peak - before) / 1024))
echo "  RSS before $((before / 1024)) MB, peak $((peak / 1024)) MB"
[ "$grow" -lt 100 ] || fail "the daemon grew by $grow MB for one client that never reads"
[ "$(metric cachesvc_output_limit_closed_total)" -ge 1 ] || fail "the disconnect was not counted"
cli ping >/dev/null || fail "the daemon does not answer after the disconnect"
ok "disconnected at the hard limit (counted), peak RSS grew $grow MB"

# One MGET over the hard limit by itself (100 x 100 kB = 10 MB > 8 MB): too_large, and the
# connection stays.
args=()
for _ in $(seq 100); do args+=(big_row 1 --); done
out=$(cli --json mget "${args[@]:0:${#args[@]}-1}" 2>&1) && fail "a 10 MB MGET was answered: ${out:0:200}"
echo "$out" | grep -qi "too_large\|over .* bytes" || fail "a 10 MB MGET got '${out:0:300}', not too_large"
cli ping >/dev/null || fail "the daemon does not answer after the too_large MGET"
[ "$(src big_row 2)" = replica ] || fail "a GET after the too_large MGET was not served"
ok "an MGET over the hard limit by itself: too_large ($(echo "$out" | head -c 160))"
kill -0 "$DAEMON_PID" || fail "the daemon died"

# An MGET between half and all of the hard limit (60 x 100 kB = 6 MB < 8 MB) from a client
# that reads: answered whole, not cut off (its items are counted once, not as held items
# plus the reply).
closed=$(metric cachesvc_output_limit_closed_total)
out=$(cli --json mget --each big_row $(seq 60 | sed 's/.*/1/') 2>&1) || fail "a 6 MB MGET failed: ${out:0:300}"
[ "$(echo "$out" | grep -c '"source"')" = 60 ] || fail "a 6 MB MGET did not answer 60 items"
[ "$(metric cachesvc_output_limit_closed_total)" = "$closed" ] || fail "a 6 MB MGET closed its reader"
ok "an MGET of 6 MB (hard limit 8 MB) to a reading client: 60 items answered, not closed"
