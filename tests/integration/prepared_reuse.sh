#!/usr/bin/env bash
# prepared_reuse.sh - a pooled connection keeps the statements it prepared (pgpool.c, up to
# PREPARED_MAX): two queries alternating on a replica pool of one connection are prepared
# once each (cachesvc_pg_prepares_total; pg_stat_statements does not count PREPARE or
# DEALLOCATE), and every answer is the right query's.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE ta (id bigint PRIMARY KEY, v text);
INSERT INTO ta SELECT i, 'v' || i FROM generate_series(1, 200) i;
SQL
wait_replicas
EXTRA_REPLICA='pool_size = 1' write_config "$WORK/cs.ini" replica1
cat >>"$WORK/cs.ini" <<'INI'

[query pr_a]
sql = SELECT id, v FROM ta WHERE id = $1
params = id:int8
ttl = 10m

[query pr_b]
sql = SELECT v, id FROM ta WHERE id = $1
params = id:int8
ttl = 10m
INI
start_daemon "$WORK/cs.ini"
prepares() { metric 'cachesvc_pg_prepares_total{server="r1"}'; }
before=$(prepares)
for i in $(seq 1 20); do
  a=$(cli get pr_a "$i") || fail "get pr_a $i"
  b=$(cli get pr_b "$i") || fail "get pr_b $i"
  [ "$(echo "$a" | head -1 | awk '{print $1}')" = id ] || fail "pr_a $i answered with pr_b's columns: $a"
  [ "$(echo "$b" | head -1 | awk '{print $1}')" = v ] || fail "pr_b $i answered with pr_a's columns: $b"
done
n=$(( $(prepares) - before ))
[ "$n" -le 2 ] || fail "40 misses of 2 alternating queries on one connection prepared $n times (statements are not kept)"
ok "40 alternating misses on one pooled connection: $n prepares, every answer the right query's"
