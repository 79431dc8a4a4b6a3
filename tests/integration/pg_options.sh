#!/usr/bin/env bash
# pg_options.sh - a user's options= in a conninfo is kept: merged with cachesvc's own session
# settings (the user's first, cachesvc's after them, so cachesvc's win where both set one GUC).
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE SCHEMA s1;
CREATE TABLE s1.opt_t (id bigint PRIMARY KEY, v text);
INSERT INTO s1.opt_t VALUES (1, 'from s1');
SQL

EXTRA_SERVICE="primary_fallback = off"
write_config "$WORK/cs.ini"
# the replica's conninfo with the user's own options: a search_path the query depends on,
# and a TimeZone that conflicts with cachesvc's (UTC, which the result encoder relies on)
sed -i "/^\[replica r1\]/{n;s|\$| options='-c search_path=s1 -c TimeZone=Asia/Tokyo'|}" "$WORK/cs.ini"
grep -q "search_path=s1" "$WORK/cs.ini" || fail "config not rewritten"
cat >>"$WORK/cs.ini" <<'INI'

[query opt_row]
sql = SELECT v, current_setting('search_path') AS sp, current_setting('TimeZone') AS tz,
      current_setting('DateStyle') AS ds FROM opt_t WHERE id = $1
params = id:int8
ttl = 1m
INI
start_daemon "$WORK/cs.ini"

out=$(cli --json get opt_row 1) || fail "get failed: $out"
echo "$out" | grep -q '"source":"replica"' || fail "not read from the replica: $out"
echo "$out" | grep -q '"from s1"' || fail "the user's search_path was not applied: $out"
echo "$out" | grep -q '"s1"' || fail "search_path is not s1: $out"
ok "the user's options (search_path=s1) reach the session"
echo "$out" | grep -q '"UTC"' || fail "cachesvc's TimeZone=UTC lost to the user's: $out"
echo "$out" | grep -q '"ISO, MDY"\|"ISO' || fail "cachesvc's DateStyle missing: $out"
ok "cachesvc's own settings still apply and win a conflict (TimeZone UTC)"
