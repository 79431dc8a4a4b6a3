#!/usr/bin/env bash
# admin_ops.sh - issue 20 item 5: admin operations need a token of their own. With
# admin_token set, a client holding only auth_token reads but cannot INVALIDATE, SHOW, pause,
# resume or reload (auth); the admin token can. ADMIN pause makes a query's requests bypass
# the cache (answers from PostgreSQL, nothing stored: fills and Redis keys do not grow),
# survives a reload, and resume starts a new generation (an entry cached before the pause is
# not served again) then serves from the cache; ADMIN reload runs the checked reload and
# answers applied or refused with the reason; rotating admin_token by reload voids the admin
# rights of connections that said HELLO before it (the same connection is refused after).
. "$(dirname "$0")/daemon_lib.sh"
CLI_LEAKS=1 # the cli's own commands: leak-checked (daemon_lib.sh cli)

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text);
ALTER TABLE users REPLICA IDENTITY FULL;
CREATE PUBLICATION cs_pub FOR TABLE users;
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 10) i;
SQL

EXTRA_SERVICE="auth_token = sesame
admin_token = opensesame"
FENCE=on
write_config "$WORK/base.ini"
conf() { # [ADMIN_TOKEN] [EXTRA QUERY SECTION]
  sed "s/^admin_token = .*/admin_token = ${1:-opensesame}/" "$WORK/base.ini" >"$WORK/cs.ini"
  cat >>"$WORK/cs.ini" <<'INI'

[query au_user]
sql = SELECT id, name FROM users WHERE id = $1
params = id:int8
ttl = 60s
invalidate_on = users(id = $1)
INI
  printf '%s\n' "${2:-}" >>"$WORK/cs.ini"
  invalidator_section >>"$WORK/cs.ini"
}
conf
export CACHESVC_TOKEN=sesame
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never started streaming"
data() { CACHESVC_TOKEN=sesame cli "$@"; }
adm() { CACHESVC_TOKEN=${ADMIN_TOKEN:-opensesame} cli "$@"; }
refused() { # WHAT CMD...: the command must fail with auth naming the admin token
  local what=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" = 1 ] || fail "$what with the data token: exit $rc, want 1: $out"
  grep -q "auth.*admin token" <<<"$out" || fail "$what with the data token: not the admin auth error: $out"
}
field() { grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2-; } # FIELD < JSON row

# ---- tokens ----------------------------------------------------------------------------------
[ "$(CACHESVC_TOKEN=sesame src au_user 1)" = replica ] || fail "a data client cannot read"
refused "show" data show queries
refused "invalidate" data invalidate au_user 1
refused "pause" data pause au_user
refused "reload" data reload
ok "the data token reads; show, invalidate, pause and reload need the admin token"
rc=0
out=$(CACHESVC_TOKEN=wrong cli get au_user 1 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q auth <<<"$out" || fail "a wrong token: exit $rc: $out"
adm show queries >/dev/null || fail "show with the admin token failed"
[ "$(CACHESVC_TOKEN=opensesame src au_user 1)" = cache ] || fail "the admin token cannot read"
ok "a wrong token is refused at HELLO; the admin token reads and shows"

# ---- pause: requests bypass the cache, nothing is stored --------------------------------
cli get au_user 5 >/dev/null
[ "$(src au_user 5)" = cache ] || fail "au_user 5 not cached before the pause"
row=$(adm --json pause au_user) || fail "pause failed: $row"
[ "$(field paused <<<"$row")" = true ] && [ "$(field changed <<<"$row")" = true ] ||
  fail "pause reply: $row"
keys0=$(redis dbsize)
fills0=$(adm --json show queries | grep '"name":"au_user"' | jnum fills)
for i in 2 3 4 2 3 4; do
  s=$(CACHESVC_TOKEN=sesame src au_user "$i")
  [ "$s" = replica ] || fail "paused au_user $i answered from $s, want replica"
done
[ "$(redis dbsize)" = "$keys0" ] || fail "a paused query stored keys: $keys0 -> $(redis dbsize)"
row=$(adm --json show queries | grep '"name":"au_user"')
[ "$(jnum fills <<<"$row")" = "$fills0" ] || fail "a paused query filled: $fills0 -> $row"
[ "$(field paused <<<"$row")" = true ] || fail "show queries: paused column: $row"
[ "$(CACHESVC_TOKEN=sesame cli --json stats | jnum bypass_paused)" -ge 6 ] || fail "bypass_paused: $(data stats)"
ok "paused: 6 requests from the replica, no fill, no key, show queries says paused"

# an update while paused reaches the reader without waiting for any TTL
primary "$DB" -c "UPDATE users SET name = 'renamed' WHERE id = 1"
until_true 15 sh -c "CACHESVC_TOKEN=sesame '$CLI' -p $PORT --json get au_user 1 | grep -q renamed" ||
  fail "paused au_user 1 never showed the update: $(data --json get au_user 1)"
row=$(adm --json pause au_user)
[ "$(field changed <<<"$row")" = false ] || fail "a second pause changed state: $row"

# ---- pause survives a reload; ADMIN reload answers applied --------------------------------
conf opensesame "$(printf '[query au_name]\nsql = SELECT name FROM users WHERE id = $1\nparams = id:int8\nttl = 60s\ninvalidate_on = users(id = $1)')"
row=$(adm --json reload) || fail "reload failed: $row"
grep -q '"reload":"applied"' <<<"$row" && [ "$(jnum queries <<<"$row")" = 2 ] || fail "reload reply: $row"
[ "$(CACHESVC_TOKEN=sesame rows au_name 3)" = '[["user 3"]]' ] ||
  fail "the reloaded query does not answer: $(data --json get au_name 3)"
# au_user's entries (the whole keyspace also holds what the reload's stream restart and the
# new query's bumps write meanwhile: a CI run counted one more key)
au_keys() { redis --scan --pattern "$NS:e:au_user:*" | wc -l; }
keys0=$(au_keys)
fills0=$(adm --json show queries | grep '"name":"au_user"' | jnum fills)
for i in 2 2 3; do
  [ "$(src au_user $i)" = replica ] || fail "after the reload au_user $i is not answered from the replica"
done
row=$(adm --json show queries | grep '"name":"au_user"')
[ "$(field paused <<<"$row")" = true ] || fail "the pause did not survive the reload: $row"
[ "$(jnum fills <<<"$row")" = "$fills0" ] && [ "$(au_keys)" = "$keys0" ] ||
  fail "after the reload a paused query stored: fills $fills0 -> $row, au_user entries $keys0 -> $(au_keys)"
ok "reload over the protocol: applied, 2 queries; au_user still paused (no fill, no key)"

# ---- resume: the cache serves again, with the current row ---------------------------------
row=$(adm --json resume au_user)
[ "$(field paused <<<"$row")" = false ] && [ "$(field changed <<<"$row")" = true ] || fail "resume reply: $row"
# (the resume's bump must land before a fill is stored: a GET racing it is served, not stored)
resumed_hit() { CACHESVC_TOKEN=sesame cli get au_user 1 >/dev/null && [ "$(CACHESVC_TOKEN=sesame src au_user 1)" = cache ]; }
until_true 10 resumed_hit || fail "resumed au_user 1 not from the cache"
CACHESVC_TOKEN=sesame cli --json get au_user 1 | grep -q renamed || fail "resumed au_user 1 is stale: $(data --json get au_user 1)"
# au_user 5 was cached before the pause: resume's new generation does not serve it again
[ "$(src au_user 5)" != cache ] || fail "resume served an entry stored before the pause"
[ "$(src au_user 5)" = cache ] || fail "au_user 5 not cached again after resume"
ok "resumed: a new generation (the entry from before the pause not served), then from the cache, current"

# ---- errors: unknown query, missing q, unknown op; a refused reload ------------------------
rc=0; out=$(adm pause nosuch 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q unknown_query <<<"$out" || fail "pause nosuch: exit $rc: $out"
rc=0; out=$(adm pause 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "pause without a query: exit $rc: $out"
# the server's own checks, on raw frames after HELLO with the admin token: ADMIN {"op":
# "pause"} (no q), {"op": "explode", "q": "au_user"}, {"op": "reload", "q": "au_user"}
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf '\x00\x00\x00\x1e\x01\x01\x00\x00\x00\x00\x00\x01\x83\xa1v\x01\xa6client\xa1t\xa5token\xaaopensesame' >&3
printf '\x00\x00\x00\x0a\x01\x09\x00\x00\x00\x00\x00\x02\x81\xa2op\xa5pause' >&3
printf '\x00\x00\x00\x16\x01\x09\x00\x00\x00\x00\x00\x03\x82\xa2op\xa7explode\xa1q\xa7au_user' >&3
printf '\x00\x00\x00\x15\x01\x09\x00\x00\x00\x00\x00\x04\x82\xa2op\xa6reload\xa1q\xa7au_user' >&3
timeout 1 cat <&3 >"$WORK/raw.out" || true
exec 3>&-
raw=$(tr -c '[:print:]' . <"$WORK/raw.out")
grep -q 'pause needs "q"' <<<"$raw" || fail "ADMIN pause without q: $raw"
grep -q 'unknown admin operation "explode"' <<<"$raw" || fail "ADMIN explode: $raw"
grep -q 'reload takes no "q"' <<<"$raw" || fail "ADMIN reload with q: $raw"
conf opensesame "$(printf '[query au_bad]\nsql = SELECT nope FROM users WHERE id = $1\nparams = id:int8\nttl = 60s')"
rc=0; row=$(adm --json reload 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q '"reload":"refused"' <<<"$row" && grep -q 'nope' <<<"$row" ||
  fail "a reload with SQL that does not prepare: exit $rc: $row"
[ "$(CACHESVC_TOKEN=sesame rows au_name 4)" = '[["user 4"]]' ] || fail "after a refused reload: $(data --json get au_name 4)"
ok "pause nosuch: unknown_query; no q, an unknown op, reload with q: bad_params; a refused reload exits 1 naming the column; the old config serves"

# ---- admin_token rotated by reload --------------------------------------------------------
# one connection (the cli reading commands from a pipe) says HELLO with the old admin token
# and shows; after the rotation its next admin request is refused on that same connection
mkfifo "$WORK/cmds"
CACHESVC_TOKEN=opensesame "$CLI" -p "$PORT" <"$WORK/cmds" >"$WORK/held.out" 2>&1 &
held=$!
exec 4>"$WORK/cmds"
echo "show invalidator" >&4
until_true 10 grep -q 'streaming' "$WORK/held.out" || fail "the held connection did not show: $(cat "$WORK/held.out")"
conf newsecret
row=$(adm --json reload 2>&1) || fail "reload to rotate the token failed: $row"
grep -q '"reload":"applied"' <<<"$row" || fail "rotation reload: $row"
rc=0; out=$(adm show queries 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "auth: bad or missing auth token" <<<"$out" || fail "the old admin token after rotation: exit $rc: $out"
ADMIN_TOKEN=newsecret adm show queries >/dev/null || fail "the new admin token is refused"
echo "show invalidator" >&4
exec 4>&-
wait "$held" || true
grep -q 'auth: show is an admin request' "$WORK/held.out" ||
  fail "a connection from before the rotation kept its admin rights: $(cat "$WORK/held.out")"
ok "admin_token rotated by reload: the old one refused, also on a connection opened before; the new one accepted"

# ---- config: admin_token may not equal auth_token ----------------------------------------
conf sesame
rc=0; out=$("$CACHESVC" -c "$WORK/cs.ini" --check --offline 2>&1) || rc=$?
[ "$rc" != 0 ] && grep -q "admin_token: equals auth_token" <<<"$out" || fail "admin_token = auth_token accepted: $out"
ok "admin_token equal to auth_token refused: ${out##*: }"
