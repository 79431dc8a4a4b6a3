#!/usr/bin/env bash
# check_gate.sh - issue 20 items 1 and 2: `cachesvc --check` is a deploy gate. It fails
# (exit 1, naming the server) when the primary, a replica or Redis cannot be reached, unless
# --offline asks for the file alone; and an invalidate_on column that does not exist fails it
# with that reason (also on a REPLICA IDENTITY FULL table), not with an ALTER TABLE hint.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE full_t (id int PRIMARY KEY, v text);
ALTER TABLE full_t REPLICA IDENTITY FULL;
CREATE TABLE def_t (id int PRIMARY KEY, v text);
CREATE PUBLICATION cs_pub FOR TABLE full_t, def_t;
SQL
FENCE=on
good() { # FILE [REPLICAS...]
  local f=$1
  shift
  write_config "$f" "$@"
  invalidator_section >>"$f"
  cat >>"$f" <<'INI'

[query by_id]
sql = SELECT id, v FROM full_t WHERE id = $1
params = id:int
invalidate_on = full_t(id = $1)
INI
}
check() { # FILE [ARGS...] -> output in $out, status in $rc
  set +e
  out=$(timeout 60 "$CACHESVC" -c "$@" --check 2>&1)
  rc=$?
  set -e
}

good "$WORK/ok.ini"
check "$WORK/ok.ini"
[ "$rc" = 0 ] && echo "$out" | grep -q ": ok$" || fail "a good config with every server up: exit $rc: $out"
ok "every server up: --check exits 0"

good "$WORK/down.ini" replica1 down
check "$WORK/down.ini"
[ "$rc" = 1 ] || fail "a replica down: --check exit $rc, want 1: $out"
echo "$out" | grep -q "\[replica r2\]: cannot reach" || fail "a replica down: not named: $out"
check "$WORK/down.ini" --offline
[ "$rc" = 0 ] && echo "$out" | grep -q "ok (offline" || fail "--offline with a replica down: exit $rc: $out"
ok "a replica down: --check exits 1 naming [replica r2]; --check --offline exits 0"

sed "s|^url = .*|url = redis://127.0.0.1:$(free_port)/0|" "$WORK/ok.ini" >"$WORK/noredis.ini"
check "$WORK/noredis.ini"
[ "$rc" = 1 ] && echo "$out" | grep -q "\[redis\] url: cannot reach Redis" || fail "Redis down: exit $rc: $out"
# only the [primary] section's conninfo changes: the first conninfo line is the primary's
awk -v p="$(free_port)" '/^conninfo = / && !done { sub(/port=[0-9]+/, "port=" p); done = 1 } 1' "$WORK/ok.ini" >"$WORK/noprimary.ini"
check "$WORK/noprimary.ini"
[ "$rc" = 1 ] && echo "$out" | grep -q "\[primary\]: cannot reach" || fail "primary down: exit $rc: $out"
ok "Redis or the primary down: --check exits 1 naming it"

for t in full_t def_t; do
  sed -e "s|FROM full_t WHERE|FROM $t WHERE|" -e "s|^invalidate_on = full_t(id = \$1)|invalidate_on = $t(nope = \$1)|" \
    "$WORK/ok.ini" >"$WORK/col_$t.ini"
  check "$WORK/col_$t.ini"
  [ "$rc" = 1 ] || fail "invalidate_on = $t(nope): --check exit $rc, want 1: $out"
  echo "$out" | grep -q "\[query by_id\] invalidate_on: column nope does not exist in table public.$t" ||
    fail "invalidate_on = $t(nope): no 'does not exist': $out"
  ! echo "$out" | grep -q "REPLICA IDENTITY" || fail "invalidate_on = $t(nope): a replica identity hint: $out"
done
ok "an invalidate_on column that does not exist: refused as such, on FULL and default identity"
