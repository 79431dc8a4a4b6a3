#!/usr/bin/env bash
# inval_bigkey.sh - issue 13 item 7: a key whose row text does not fit the mapping's
# buffers must still be invalidated. A 512-byte bytea key (its row text "\x" + 1024 hex
# digits, its canonical key 1024 hex digits: cacheable) loses no UPDATE; a change to a
# row whose key can never be built (a 600-byte bytea: longer than any cache key) drops the
# whole query (unknown key) rather than nothing.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE blobs (k bytea PRIMARY KEY, v text NOT NULL);
CREATE PUBLICATION cs_pub FOR TABLE blobs;
-- rows 1..3: keys of 512 bytes (byte i repeated); row 9: a key of 600 bytes
INSERT INTO blobs SELECT decode(repeat(lpad(to_hex(i), 2, '0'), 512), 'hex'), 'old' || i
  FROM generate_series(1, 3) i;
INSERT INTO blobs VALUES (decode(repeat('09', 600), 'hex'), 'old9');
SQL

FENCE=on
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query bk_blob]
sql = SELECT v FROM blobs WHERE k = $1
params = k:bytea
invalidate_on = blobs(k = $1)
INI
invalidator_section >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never started streaming"

hexkey() { printf "%0$(($2 * 2))d" 0 | sed "s/00/$1/g"; } # BYTE COUNT -> hex digits
K1=$(hexkey 01 512)
K2=$(hexkey 02 512)
[ ${#K1} = 1024 ] || fail "test bug: key length ${#K1}"
# the CLI removes one leading backslash: \\x sends the PostgreSQL hex form \x...
get() { cli --json get bk_blob "\\\\x$1"; }
filled_now() { get "$1" >/dev/null && [ "$(get "$1" | json source)" = cache ]; }
fill() { until_true 20 filled_now "$1" || fail "could not get key ${1:0:8}... cached: $(get "$1")"; }

fill "$K1"
fill "$K2"
cached bk_blob "$K1" || fail "the 512-byte key is not stored under its canonical key"
ok "512-byte bytea keys cached (canonical key of 1024 hex digits)"

lsn=$(commit_lsn "UPDATE blobs SET v = 'new1' WHERE k = decode('$K1', 'hex')")
wait_invalidated "$lsn"
cached bk_blob "$K1" && fail "UPDATE of the row with a 512-byte key left its entry (invalidation lost)"
[ "$(get "$K1" | json rows)" = '[["new1"]]' ] || fail "after the UPDATE: $(get "$K1")"
ok "an UPDATE of a row with a 512-byte bytea key invalidates its entry"

fill "$K2"
gen=$(redis get $NS:g:bk_blob)
lsn=$(commit_lsn "UPDATE blobs SET v = 'new9' WHERE k = decode(repeat('09', 600), 'hex')")
wait_invalidated "$lsn"
[ "$(redis get $NS:g:bk_blob)" != "$gen" ] || fail "a change whose key cannot be built did not drop the query"
cached bk_blob "$K2" && fail "the query was not dropped: key 2 still cached"
ok "a change whose key cannot be built (600-byte key) drops the whole query"

stop_daemon || fail "cachesvc exited with status $?"
! grep -q 'ERROR: AddressSanitizer\|runtime error:' "$WORK/cachesvc.log" || fail "sanitizer report"
ok "clean exit"
