#!/usr/bin/env bash
# load_data.sh - loads the chat data set of DESIGN.md section 9 into a sandbox and waits until
# every replica has replayed it.
#
#   bench/load_data.sh [--scale F] [--db NAME]
#
# users: 100000 * F rows; messages: 2000000 * F rows (~200-byte content) spread over
# 20000 * F conversations (~100 messages each) and over the users (~20 messages each);
# indexes (conv_id, created_at desc) and (user_id); REPLICA IDENTITY FULL on messages (the
# invalidator keys messages by conv_id, outside the primary key); pg_stat_statements; then
# VACUUM ANALYZE. The database (default "bench") is dropped and made again. Data is
# deterministic (setseed), so runs compare. The sandbox comes from the environment
# (CS_PG_PRIMARY_PORT ...) or from $CS_SANDBOX_DIR/env.sh. Prints "users messages convs".
set -euo pipefail

SCALE=1
DB=bench
while [ $# -gt 0 ]; do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --db) DB=$2; shift 2 ;;
    *) echo "usage: load_data.sh [--scale F] [--db NAME]" >&2; exit 2 ;;
  esac
done
if [ -z "${CS_PG_PRIMARY_PORT:-}" ]; then
  [ -f "${CS_SANDBOX_DIR:-}/env.sh" ] || { echo "load_data.sh: no sandbox (set CS_SANDBOX_DIR)" >&2; exit 2; }
  . "$CS_SANDBOX_DIR/env.sh"
fi

USERS=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 100000 * s }')
MESSAGES=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 2000000 * s }')
CONVS=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 20000 * s }')
[ "$USERS" -ge 100 ] || { echo "load_data.sh: --scale too small" >&2; exit 2; }

pg() { # PORT DB [psql args]
  local port=$1 db=$2
  shift 2
  "$CS_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$CS_PG_SOCKET_DIR" -p "$port" -U postgres -d "$db" "$@"
}

pg "$CS_PG_PRIMARY_PORT" postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
pg "$CS_PG_PRIMARY_PORT" postgres -c "CREATE DATABASE $DB"
pg "$CS_PG_PRIMARY_PORT" "$DB" -v users="$USERS" -v messages="$MESSAGES" -v convs="$CONVS" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE users (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE TABLE messages (
  id bigint NOT NULL,
  conv_id bigint NOT NULL,
  user_id bigint NOT NULL,
  content text NOT NULL,
  created_at timestamptz NOT NULL
);
SELECT setseed(0.42);
INSERT INTO users
  SELECT i, 'user ' || i, 'user' || i || '@example.com',
         timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1, :users) i;
-- 200 bytes of content each: an md5 padded with another.
INSERT INTO messages
  SELECT i, 1 + floor(random() * :convs)::bigint, 1 + floor(random() * :users)::bigint,
         rpad(md5(i::text), 200, md5((i + 1)::text)),
         timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1, :messages) i;
ALTER TABLE messages ADD PRIMARY KEY (id);
CREATE INDEX messages_conv_created ON messages (conv_id, created_at DESC);
CREATE INDEX messages_user ON messages (user_id);
ALTER TABLE messages REPLICA IDENTITY FULL;
VACUUM ANALYZE users;
VACUUM ANALYZE messages;
SQL

lsn=$(pg "$CS_PG_PRIMARY_PORT" "$DB" -c "SELECT pg_current_wal_lsn()")
for i in $(seq 1 "${CS_PG_REPLICAS:-0}"); do
  v="CS_PG_REPLICA${i}_PORT"
  deadline=$((SECONDS + 600))
  until [ "$(pg "${!v}" postgres -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ]; do
    [ $SECONDS -lt $deadline ] || { echo "load_data.sh: replica$i did not replay $lsn" >&2; exit 1; }
    sleep 0.2
  done
done
echo "$USERS $MESSAGES $CONVS"
