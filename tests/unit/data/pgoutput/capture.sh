#!/bin/sh
# capture.sh - regenerates the pgoutput captures used by tests/unit/test_pgoutput.c.
#
# Starts a throwaway PostgreSQL 15 (unix socket only, in a temporary directory),
# runs a scripted workload, and dumps what pgoutput emits via
# pg_logical_slot_peek_binary_changes() as "LSN HEX" lines:
#   proto1.hex         proto_version 1, messages on, text datums
#   proto1_binary.hex  same slot and workload, binary on ('b' datums)
#   proto2_stream.hex  proto_version 2, streaming on, logical_decoding_work_mem=64kB
# Must run as root (initdb/pg_ctl run as user postgres via runuser). Regenerating
# changes LSNs, xids, OIDs and timestamps: update the expectations in the test.
set -eu

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
OUT=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d /tmp/cs-pgo-capture.XXXXXX)
PORT=5432   # no TCP listener: the port only names the socket inside $TMP
chown postgres "$TMP"

as_pg() { runuser -u postgres -- "$@"; }
psql_q() { as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$TMP" -p "$PORT" -U postgres -d postgres "$@"; }

cleanup() {
	as_pg "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

as_pg "$PGBIN/initdb" -D "$TMP/data" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/log" -w start \
	-o "-c listen_addresses='' -c unix_socket_directories='$TMP' -p $PORT -c wal_level=logical -c max_replication_slots=4" >/dev/null

psql_q <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t_default (id int PRIMARY KEY, name text, big text, m mood);
ALTER TABLE t_default ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE t_full (a int, b text);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE PUBLICATION pub FOR TABLE t_default, t_full;
SELECT 'slot' FROM pg_create_logical_replication_slot('s', 'pgoutput');

INSERT INTO t_default VALUES (1, 'one', NULL, 'ok');
INSERT INTO t_default VALUES (2, 'two', 'x', NULL), (3, NULL, NULL, 'sad');
UPDATE t_default SET name = 'uno' WHERE id = 1;
UPDATE t_default SET id = 20 WHERE id = 2;
DELETE FROM t_default WHERE id = 3;
INSERT INTO t_full VALUES (1, 'a'), (2, NULL);
UPDATE t_full SET b = 'b' WHERE a = 1;
DELETE FROM t_full WHERE a = 2;
INSERT INTO t_default VALUES (4, 'big', repeat('0123456789', 1000), 'happy');
UPDATE t_default SET name = 'bigger' WHERE id = 4;
BEGIN;
INSERT INTO t_default VALUES (5, 'rolled back', NULL, NULL);
ROLLBACK;
BEGIN;
SELECT 'm' FROM pg_logical_emit_message(true, 'cs', 'transactional');
INSERT INTO t_default VALUES (6, 'six', NULL, NULL);
COMMIT;
SELECT 'm' FROM pg_logical_emit_message(false, 'cs', 'not transactional');
ALTER TABLE t_default ADD COLUMN extra int;
INSERT INTO t_default VALUES (7, 'seven', NULL, NULL, 77);
ALTER TABLE t_default DROP COLUMN name;
INSERT INTO t_default VALUES (8, NULL, NULL, 88);
TRUNCATE t_full;
TRUNCATE t_default, t_full RESTART IDENTITY CASCADE;
SQL

peek() {
	psql_q -At -F ' ' -c "SELECT lsn, encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes($1)"
}
peek "'s', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub', 'messages', 'true'" \
	>"$OUT/proto1.hex"
peek "'s', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub', 'messages', 'true', 'binary', 'true'" \
	>"$OUT/proto1_binary.hex"

psql_q <<'SQL'
CREATE TABLE t_stream (id int PRIMARY KEY, payload text);
ALTER PUBLICATION pub ADD TABLE t_stream;
SELECT 'slot' FROM pg_create_logical_replication_slot('s2', 'pgoutput');
INSERT INTO t_stream VALUES (0, 'small');
BEGIN;
INSERT INTO t_stream SELECT i, repeat('p', 20) FROM generate_series(1, 500) i;
COMMIT;
BEGIN;
INSERT INTO t_stream SELECT i, repeat('q', 20) FROM generate_series(10001, 10500) i;
ROLLBACK;
BEGIN;
INSERT INTO t_stream VALUES (20000, 'kept');
SAVEPOINT sp;
INSERT INTO t_stream SELECT i, repeat('r', 20) FROM generate_series(20001, 20500) i;
ROLLBACK TO SAVEPOINT sp;
INSERT INTO t_stream VALUES (30000, 'after savepoint');
COMMIT;
SQL
psql_q -At -F ' ' >"$OUT/proto2_stream.hex" <<'SQL'
SET logical_decoding_work_mem = '64kB';
SELECT lsn, encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('s2', NULL, NULL,
	'proto_version', '2', 'publication_names', 'pub', 'messages', 'true', 'streaming', 'on');
SQL
for f in proto1 proto1_binary proto2_stream; do
	python3 "$OUT/expected.py" "$OUT/$f.hex" >"$OUT/$f.expected"
done
echo "captured into $OUT; now review the *.expected diffs, update the explicit"
echo "assertions in test_pgoutput.c, and rerun make_corpus.py for the fuzz seeds"
