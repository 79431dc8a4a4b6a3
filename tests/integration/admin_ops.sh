#!/usr/bin/env bash
# admin_ops.sh - issue 20 item 5: admin operations need a token of their own. With
# admin_token set, a client holding only auth_token reads but cannot INVALIDATE, SHOW, pause,
# resume or reload (auth); the admin token can. ADMIN pause makes a query's requests bypass
# the cache (answers from PostgreSQL, nothing stored: fills and Redis keys do not grow),
# survives a reload, and resume serves from the cache again; ADMIN reload runs the checked
# reload and answers applied or refused with the reason; rotating admin_token by reload takes
# effect at once.
. "$(dirname "$0")/daemon_lib.sh"

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
[ "$(CACHESVC_TOKEN=sesame src au_user 2)" = replica ] || fail "the pause did not survive the reload"
ok "reload over the protocol: applied, 2 queries; au_user still paused"

# ---- resume: the cache serves again, with the current row ---------------------------------
row=$(adm --json resume au_user)
[ "$(field paused <<<"$row")" = false ] && [ "$(field changed <<<"$row")" = true ] || fail "resume reply: $row"
CACHESVC_TOKEN=sesame cli get au_user 1 >/dev/null
[ "$(CACHESVC_TOKEN=sesame src au_user 1)" = cache ] || fail "resumed au_user 1 not from the cache"
CACHESVC_TOKEN=sesame cli --json get au_user 1 | grep -q renamed || fail "resumed au_user 1 is stale: $(data --json get au_user 1)"
ok "resumed: served from the cache, current"

# ---- errors: unknown query, missing q, unknown op; a refused reload ------------------------
rc=0; out=$(adm pause nosuch 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q unknown_query <<<"$out" || fail "pause nosuch: exit $rc: $out"
rc=0; out=$(adm pause 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "pause without a query: exit $rc: $out"
conf opensesame "$(printf '[query au_bad]\nsql = SELECT nope FROM users WHERE id = $1\nparams = id:int8\nttl = 60s')"
rc=0; row=$(adm --json reload 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q '"reload":"refused"' <<<"$row" && grep -q 'nope' <<<"$row" ||
  fail "a reload with SQL that does not prepare: exit $rc: $row"
[ "$(CACHESVC_TOKEN=sesame rows au_name 4)" = '[["user 4"]]' ] || fail "after a refused reload: $(data --json get au_name 4)"
ok "pause nosuch: unknown_query; a refused reload exits 1 naming the column; the old config serves"

# ---- admin_token rotated by reload --------------------------------------------------------
conf newsecret
row=$(adm --json reload 2>&1) || fail "reload to rotate the token failed: $row"
grep -q '"reload":"applied"' <<<"$row" || fail "rotation reload: $row"
rc=0; out=$(adm show queries 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "auth: bad or missing auth token" <<<"$out" || fail "the old admin token after rotation: exit $rc: $out"
ADMIN_TOKEN=newsecret adm show queries >/dev/null || fail "the new admin token is refused"
ok "admin_token rotated by reload: the old one refused, the new one accepted"

# ---- config: admin_token may not equal auth_token ----------------------------------------
conf sesame
rc=0; out=$("$CACHESVC" -c "$WORK/cs.ini" --check --offline 2>&1) || rc=$?
[ "$rc" != 0 ] && grep -q "admin_token: equals auth_token" <<<"$out" || fail "admin_token = auth_token accepted: $out"
ok "admin_token equal to auth_token refused: ${out##*: }"
