#!/usr/bin/env bash
# show_views.sh - SHOW (PROTOCOL.md 3.8) over the protocol and `cachesvc-cli show`: the
# queries, servers, clients, invalidator and config views carry real values; an unknown view
# is bad_params naming the views; SHOW needs HELLO with the token like every request.
. "$(dirname "$0")/daemon_lib.sh"
CLI_LEAKS=1 # the cli's own commands: leak-checked (daemon_lib.sh cli)

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text);
ALTER TABLE users REPLICA IDENTITY FULL;
CREATE PUBLICATION cs_pub FOR TABLE users;
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 10) i;
SQL

EXTRA_SERVICE="auth_token = sesame
max_clients = 16"
FENCE=on
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query sv_user]
sql = SELECT id, name FROM users WHERE id = $1
params = id:int8
ttl = 60s
invalidate_on = users(id = $1)
INI
# a long query (its SQL is wider than any fixed line buffer) and a replica password: the
# table shows the one whole, show config masks the other
LONGSQL="SELECT id, name, $(for i in $(seq 30); do printf 'id + %d AS c%d, ' "$i" "$i"; done)0 AS z FROM users WHERE id = \$1"
printf '\n[query sv_long]\nsql = %s\nparams = id:int8\nttl = 60s\n' "$LONGSQL" >>"$WORK/cs.ini"
awk '/^\[/ { sec = $0 } sec == "[replica r1]" && /^conninfo = / { $0 = $0 " password=hunter2" } { print }' \
  "$WORK/cs.ini" >"$WORK/cs.tmp" && mv "$WORK/cs.tmp" "$WORK/cs.ini"
grep -q 'password=hunter2' "$WORK/cs.ini" || fail "test setup: no password in r1's conninfo"
invalidator_section >>"$WORK/cs.ini"
export CACHESVC_TOKEN=sesame
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never started streaming"

# ---- SHOW before HELLO with the token: refused (raw frame on a held TCP connection) ------
# frame: len 14, v1, op 0x08, flags 0, reqid 1; body {"what": "queries"}
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf '\x00\x00\x00\x0e\x01\x08\x00\x00\x00\x00\x00\x01\x81\xa4what\xa7queries' >&3
timeout 1 cat <&3 >"$WORK/raw.out" || true
op=$(od -An -tx1 -j5 -N1 "$WORK/raw.out" | tr -d ' ')
[ "$op" = ff ] || fail "SHOW before HELLO: reply opcode '$op', want ff (error): $(tr -c '[:print:]' . <"$WORK/raw.out")"
grep -q "HELLO with the auth token first" "$WORK/raw.out" || fail "SHOW before HELLO: not the auth error: $(tr -c '[:print:]' . <"$WORK/raw.out")"
ok "SHOW before HELLO-with-token refused (auth); the connection stays open and idle"

# ---- traffic: 1 miss + 3 hits on sv_user ------------------------------------------------
for _ in 1 2 3 4; do cli get sv_user 1 >/dev/null || fail "get sv_user 1 failed"; done

# ---- queries --------------------------------------------------------------------------------
out=$(cli --json show queries) || fail "show queries failed: $out"
row=$(grep '"name":"sv_user"' <<<"$out") || fail "no sv_user row: $out"
[ "$(jnum hits <<<"$row")" = 3 ] || fail "hits != 3: $row"
[ "$(jnum misses <<<"$row")" = 1 ] || fail "misses != 1: $row"
[ "$(jnum fills <<<"$row")" = 1 ] || fail "fills != 1: $row"
grep -q '"params":"id:int8"' <<<"$row" || fail "params: $row"
grep -q '"ttl_ms":60000' <<<"$row" || fail "ttl_ms: $row"
grep -q '"kind":"row"' <<<"$row" || fail "kind: $row"
grep -q '"pending_bump":false' <<<"$row" || fail "pending_bump: $row"
ok "show queries: $row"

# ---- servers --------------------------------------------------------------------------------
out=$(cli --json show servers) || fail "show servers failed: $out"
row=$(grep '"name":"r1"' <<<"$out") || fail "no r1 row: $out"
grep -q '"role":"replica"' <<<"$row" || fail "r1 role: $row"
grep -q '"state":"up"' <<<"$row" || fail "r1 state: $row"
grep -q '"in_recovery":true' <<<"$row" || fail "r1 in_recovery: $row"
grep -Eq '"lsn":"[0-9A-F]+/[0-9A-F]+"' <<<"$row" || fail "r1 lsn: $row"
grep -q '"role":"primary"' <<<"$out" || fail "no primary row: $out"
[ "$(jnum queries <<<"$row")" -ge 1 ] || fail "r1 served no query: $row"
ok "show servers: $row"

# ---- slots: one Redis serves every slot --------------------------------------------------------
out=$(cli --json show slots) || fail "show slots failed: $out"
[ "$(grep -c '"first":' <<<"$out")" = 1 ] || fail "one Redis: want one slot range: $out"
grep -q '"first":0,"last":16383,"node":"redis://127.0.0.1:'"$CS_REDIS_PORT"'/[0-9]*","ready":true' <<<"$out" ||
  fail "one Redis: want slots 0-16383 on redis://127.0.0.1:$CS_REDIS_PORT, ready: $out"
ok "show slots (one Redis): $out"

# ---- clients: the cli's own connection (unix socket) and the held idle TCP one -------------
out=$("$CLI" -s "$SOCK" --json show clients) || fail "show clients failed: $out"
[ "$(grep -c '"id":' <<<"$out")" = 2 ] || fail "want 2 client rows: $out"
row=$(grep '"transport":"unix"' <<<"$out") || fail "no unix client row (the cli's own): $out"
grep -q '"authed":true' <<<"$row" || fail "cli row not authed: $row"
grep -q '"inflight":0' <<<"$row" || fail "cli row inflight (SHOW is answered at once): $row"
grep -q '"peer":"unix socket"' <<<"$row" || fail "cli row peer: $row"
held=$(grep '"transport":"tcp"' <<<"$out") || fail "no tcp row (the held connection): $out"
grep -q '"authed":false' <<<"$held" || fail "held row authed: $held"
grep -q '"peer":"127.0.0.1:[0-9]*"' <<<"$held" || fail "held row peer: $held"
grep -q '"queued_bytes":0' <<<"$held" || fail "held row queued: $held"
grep -q '"paused":false' <<<"$held" || fail "held row paused: $held"
ok "show clients: $out"
exec 3>&-

# ---- invalidator ------------------------------------------------------------------------------
out=$(cli --json show invalidator) || fail "show invalidator failed: $out"
grep -q '"enabled":true' <<<"$out" || fail "invalidator enabled: $out"
grep -q '"state":"streaming"' <<<"$out" || fail "invalidator state: $out"
grep -q "\"slot\":\"$SLOT\"" <<<"$out" || fail "invalidator slot != $SLOT: $out"
grep -q '"publication":"cs_pub"' <<<"$out" || fail "invalidator publication: $out"
grep -q '"leader":true' <<<"$out" || fail "invalidator leader: $out"
grep -Eq '"confirmed_lsn":"[0-9A-F]+/[0-9A-F]+"' <<<"$out" || fail "confirmed_lsn: $out"
ok "show invalidator: $out"

# ---- config: secrets masked as --show-config masks them --------------------------------------
out=$(cli --json show config) || fail "show config failed: $out"
grep -q '"section":"cachesvc","key":"auth_token","value":"\*\*\*"' <<<"$out" ||
  fail "auth_token not masked: $(grep auth_token <<<"$out")"
grep -q "sesame" <<<"$out" && fail "the token appears in show config"
grep -q "hunter2" <<<"$out" && fail "r1's password appears in show config: $(grep hunter2 <<<"$out")"
grep -q '"section":"replica r1","key":"conninfo","value":".*password=\*\*\*' <<<"$out" ||
  fail "r1's conninfo not masked: $(grep '"replica r1","key":"conninfo"' <<<"$out")"
table=$(cli show config) || fail "show config (table) failed"
grep -qF "$LONGSQL" <<<"$table" || fail "the table cut sv_long's SQL: $(grep 'sv_long' <<<"$table" | head -2)"
grep -q "hunter2" <<<"$table" && fail "r1's password appears in the show config table"
grep -q "\"section\":\"cachesvc\",\"key\":\"listen\",\"value\":\"127.0.0.1:$PORT\"" <<<"$out" ||
  fail "listen: $(grep '"listen"' <<<"$out")"
grep -q '"section":"query sv_user","key":"params","value":"id:int8"' <<<"$out" ||
  fail "query params: $(grep sv_user <<<"$out" | head -3)"
want=$("$CACHESVC" -c "$WORK/cs.ini" --show-config | grep -c ' =')
got=$(grep -c '"key":' <<<"$out")
[ "$want" = "$got" ] || fail "show config has $got keys, --show-config $want"
ok "show config: auth_token masked, listen 127.0.0.1:$PORT, $got keys as --show-config"

# ---- table output and the views list -----------------------------------------------------
cli show queries | grep -q '^name ' || fail "show queries table has no header: $(cli show queries)"
[ "$(cli show | tr '\n' ' ')" = "queries servers clients invalidator config slots " ] ||
  fail "show without a view: $(cli show)"
ok "table output; show lists the views"

# ---- an unknown view ---------------------------------------------------------------------------
rc=0
out=$(cli show nosuch 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "show nosuch: exit $rc, want 1: $out"
grep -q "bad_params" <<<"$out" || fail "show nosuch: not bad_params: $out"
grep -q "queries, servers, clients, invalidator, config" <<<"$out" || fail "no view list: $out"
ok "unknown view: exit 1, $out"

# ---- a view name with a NUL byte is no view ------------------------------------------------
# HELLO {"v": 1, "client": "t", "token": "sesame"}, then SHOW {"what": "queries\0x"} (reqid 2)
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf '\x00\x00\x00\x1a\x01\x01\x00\x00\x00\x00\x00\x01\x83\xa1\x76\x01\xa6client\xa1\x74\xa5token\xa6sesame' >&3
printf '\x00\x00\x00\x10\x01\x08\x00\x00\x00\x00\x00\x02\x81\xa4what\xa9queries\x00x' >&3
timeout 1 cat <&3 >"$WORK/nul.out" || true
exec 3>&-
grep -q "no NUL byte" "$WORK/nul.out" || fail "SHOW \"queries\\0x\": $(tr -c '[:print:]' . <"$WORK/nul.out")"
ok "a view name with a NUL byte: bad_params"
