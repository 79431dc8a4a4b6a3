#!/usr/bin/env bash
# sandbox_logical.sh - a pgoutput slot on the primary sees a committed change
# (and nothing of a rolled-back one).
. "$(dirname "$0")/lib.sh"

db=$(unique_name logical)
slot=${db}_slot
primary postgres -c "CREATE DATABASE $db"
cleanup() {
  primary "$db" -c "SELECT pg_drop_replication_slot('$slot')" >/dev/null 2>&1 || true
  primary postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

primary "$db" >/dev/null <<SQL
CREATE TABLE items (id int PRIMARY KEY, name text);
CREATE PUBLICATION pub FOR TABLE items;
SELECT 'slot' FROM pg_create_logical_replication_slot('$slot', 'pgoutput');
BEGIN; INSERT INTO items VALUES (99, 'rolled back'); ROLLBACK;
INSERT INTO items VALUES (7, 'sandbox-logical-marker');
SQL

changes=$(primary "$db" -c "SELECT encode(data, 'escape') FROM pg_logical_slot_get_binary_changes('$slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')")
types=$(primary "$db" -c "SELECT string_agg(chr(get_byte(data, 0)), '') FROM pg_logical_slot_peek_binary_changes('$slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')")

echo "$changes" | grep -q 'sandbox-logical-marker' || fail "the committed insert was not decoded"
echo "$changes" | grep -q 'rolled back' && fail "a rolled-back insert was decoded"
ok "pgoutput slot decoded the committed insert and skipped the rolled-back one"
[ -z "$types" ] || fail "changes were consumed, yet a peek returned '$types'"
ok "consumed changes are gone from the slot"
