#!/usr/bin/env bash
# pg_notices.sh - issue 20 item 7: a server notice raised by a query (RAISE NOTICE/WARNING,
# with a DETAIL) reaches the daemon's log as one formatted line naming the server, not
# libpq's raw multi-line text on stderr.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t VALUES (1, 'a'), (2, 'b');
CREATE FUNCTION noisy(i int) RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF i = 1 THEN
    RAISE NOTICE 'noisy notice %', i USING DETAIL = 'notice detail';
  ELSE
    RAISE WARNING 'noisy warning %', i;
  END IF;
  RETURN i;
END $$;
SQL
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query loud]
sql = SELECT id, v, noisy(id) AS n FROM t WHERE id = $1
params = id:int
ttl = 60s
INI
start_daemon "$WORK/cs.ini"
[ "$(rows loud 1)" = '[[1,"a",1]]' ] || fail "loud 1: $(rows loud 1)"
[ "$(rows loud 2)" = '[[2,"b",2]]' ] || fail "loud 2: $(rows loud 2)"
log=$WORK/cachesvc.log
until_true 5 grep -q 'noisy warning 2' "$log" || fail "the warning never reached the log"
grep -qE '^[0-9-]+ [0-9:.]+ UTC \[[0-9]+\] INFO postgres r1: NOTICE:  noisy notice 1 \| DETAIL:  notice detail$' "$log" ||
  fail "the notice is not one formatted INFO line: $(grep -n 'noisy' "$log")"
grep -qE '^[0-9-]+ [0-9:.]+ UTC \[[0-9]+\] WARNING postgres r1: WARNING:  noisy warning 2$' "$log" ||
  fail "the warning is not one formatted WARNING line: $(grep -n 'noisy' "$log")"
! grep -qE '^(NOTICE|WARNING|DETAIL):' "$log" || fail "raw libpq notice text in the log: $(grep -nE '^(NOTICE|WARNING|DETAIL):' "$log")"
ok "server notices: $(grep -o 'INFO postgres r1: NOTICE.*' "$log" | head -1)"
