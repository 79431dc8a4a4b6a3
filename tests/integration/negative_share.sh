#!/usr/bin/env bash
# negative_share.sh - negative entries have their own memory share (issue 14 item 4):
# with negative_share = 4kB, 400 lookups of ids that do not exist are all answered (empty),
# but only about 4 kB of negative entries are stored (key + value + 64 bytes each, counted
# for their negative_ttl); the rest are counted as skipped. Found rows are still cached.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text);
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 20) i;
SQL
EXTRA_SERVICE="negative_share = 4kB"
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query ns_user]
sql = SELECT id, name FROM users WHERE id = $1
params = id:int8
negative_ttl = 30s
ttl = 60s
INI
start_daemon "$WORK/cs.ini"
for b in $(seq 0 7); do
  args=()
  for i in $(seq $((1000 + 50 * b)) $((1049 + 50 * b))); do args+=(ns_user "$i" --); done
  cli --json mget "${args[@]:0:${#args[@]}-1}" >"$WORK/mget.out" || fail "mget failed"
  [ "$(grep -o '"rows":\[\]' "$WORK/mget.out" | wc -l)" = 50 ] || fail "not 50 empty answers: $(head -c 300 "$WORK/mget.out")"
done
ok "400 lookups of missing ids answered (empty)"
sleep 0.5
n=0 bytes=0
for k in $(redis --scan --pattern "$NS:e:ns_user:*"); do
  n=$((n + 1))
  bytes=$((bytes + ${#k} + $(redis strlen "$k") + 64))
done
fills=$(metric cachesvc_negative_fills_total)
skipped=$(metric cachesvc_negative_skipped_total)
[ "$n" -ge 1 ] || fail "no negative entry stored at all"
[ "$bytes" -le 4096 ] || fail "$n negative entries take $bytes bytes (key + value + 64): over the 4 kB share"
[ "$skipped" -ge 300 ] || fail "only $skipped negative fills skipped ($fills stored, $n entries, $bytes bytes)"
[ "$((fills + skipped))" -ge 400 ] || fail "fills $fills + skipped $skipped < 400"
ok "$n negative entries stored ($bytes bytes <= 4096), $skipped skipped (counted)"
cli get ns_user 5 >/dev/null
until_true 10 eval '[ "$(src ns_user 5)" = cache ]' || fail "a found row is no longer cached"
ok "found rows are still cached"
