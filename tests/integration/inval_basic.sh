#!/usr/bin/env bash
# inval_basic.sh - the invalidator removes exactly the keys each committed change affects:
# UPDATE, INSERT, DELETE, an UPDATE moving a row between keys, multi-row and multi-table
# transactions, a rollback (nothing), TRUNCATE (generation bump), ALTER TABLE mid-stream,
# NULL keys, TOASTed rows, and a change to a table no query depends on (nothing).
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text, email text);
ALTER TABLE users REPLICA IDENTITY FULL;
CREATE TABLE messages (id bigserial PRIMARY KEY, conv_id bigint NOT NULL, user_id bigint NOT NULL,
                       content text NOT NULL);
ALTER TABLE messages REPLICA IDENTITY FULL;
CREATE TABLE unrelated (id int PRIMARY KEY, v text);
-- the unrelated table is published too: its changes reach the invalidator and cost a lookup
CREATE PUBLICATION cs_pub FOR TABLE users, messages, unrelated;
INSERT INTO users SELECT i, 'user ' || i, 'u' || i || '@x' FROM generate_series(1, 10) i;
INSERT INTO messages (conv_id, user_id, content)
  SELECT 10 * (1 + i % 3), 1 + i % 5, 'm' || i FROM generate_series(1, 30) i;
SQL

FENCE=on
write_config "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query iv_user]
sql = SELECT id, name, email FROM users WHERE id = $1
params = id:int8
invalidate_on = users(id = $1)

[query iv_email]
sql = SELECT id FROM users WHERE email = $1
params = email:text
invalidate_on = users(email = $1)

[query iv_conv]
sql = SELECT id, user_id, content FROM messages WHERE conv_id = $1 ORDER BY id
params = conv_id:int8
kind = list
invalidate_on = messages(conv_id = $1)

[query iv_count]
sql = SELECT count(*) AS n FROM messages WHERE user_id = $1
params = user_id:int8
kind = aggregate
stale_while_revalidate = 0
min_lifetime = 0
invalidate_on = messages(user_id = $1)

[query iv_all]
sql = SELECT count(*) AS n FROM messages
kind = aggregate
stale_while_revalidate = 0
min_lifetime = 0
invalidate_on = messages
INI
invalidator_section >>"$WORK/cs.ini"
start_daemon "$WORK/cs.ini"
until_true 30 streaming || fail "the invalidator never started streaming"
ok "invalidator streaming"

# fill: read each key twice so it is cached (the first read also proves the horizon allows
# fills once replicas pass it)
fill() { # QUERY PARAM
  until_true 20 filled_now "$@" || fail "could not get $1 $2 cached: $(cli --json get "$@")"
}
filled_now() { cli --json get "$@" >/dev/null && [ "$(src "$@")" = cache ]; }
# fill_many "QUERY [PARAM]"...: the same for several keys at once, each read twice by one MGET
# of them all (two cli processes instead of two per key: each took 1-4 s on a loaded machine)
fill_many() {
  local words=() k w
  for k in "$@"; do
    [ ${#words[@]} = 0 ] || words+=(--)
    read -r -a w <<<"$k"
    words+=("${w[@]}")
  done
  until_true 20 all_filled_now $# "${words[@]}" || fail "could not get $* cached: $(cli --json mget "${words[@]}")"
}
all_filled_now() { # N MGET-WORDS...: true when each of the N keys is answered from the cache
  local n=$1
  shift
  cli mget "$@" >/dev/null 2>&1 || true
  [ "$(cli --json mget "$@" | grep -c '^{"source":"cache",')" = "$n" ]
}
fill_many "iv_user 1" "iv_user 2" "iv_user 3" "iv_email u3@x" "iv_conv 10" "iv_conv 20" "iv_conv 30" \
  "iv_count 1" "iv_count 2" iv_all
ok "entries cached"

lsn=$(commit_lsn "UPDATE users SET name = 'changed' WHERE id = 2")
wait_invalidated "$lsn"
cached iv_user 2 && fail "UPDATE users 2 left its entry"
cached iv_user 1 && cached iv_user 3 || fail "UPDATE users 2 removed other users' entries"
for c in 10 20 30; do cached iv_conv $c || fail "UPDATE users removed iv_conv $c"; done
[ "$(cli --json get iv_user 2 | json rows)" = '[[2, "changed", "u2@x"]]' ] || fail "refill: $(cli --json get iv_user 2)"
ok "UPDATE: exactly the affected key is invalidated"

lsn=$(commit_lsn "INSERT INTO messages (conv_id, user_id, content) VALUES (10, 1, 'new')")
wait_invalidated "$lsn"
cached iv_conv 10 && fail "INSERT conv 10 left iv_conv 10"
cached iv_count 1 && fail "INSERT user 1 left iv_count 1"
cached iv_conv 20 && cached iv_count 2 || fail "INSERT removed unrelated keys"
ok "INSERT: the new row's keys (list and keyed aggregate) are invalidated"
fill_many "iv_conv 10" "iv_count 1" iv_all

id=$(primary "$DB" -c "SELECT min(id) FROM messages WHERE conv_id = 10")
lsn=$(commit_lsn "UPDATE messages SET conv_id = 20 WHERE id = $id")
wait_invalidated "$lsn"
cached iv_conv 10 && fail "moving a row left the old key"
cached iv_conv 20 && fail "moving a row left the new key"
cached iv_conv 30 || fail "moving a row removed an unrelated key"
ok "UPDATE moving a row from key 10 to key 20 invalidates both"
fill_many "iv_conv 10" "iv_conv 20" "iv_count 2"

id=$(primary "$DB" -c "SELECT min(id) FROM messages WHERE conv_id = 30")
uid=$(primary "$DB" -c "SELECT user_id FROM messages WHERE id = $id")
fill iv_count "$uid"
lsn=$(commit_lsn "DELETE FROM messages WHERE id = $id")
wait_invalidated "$lsn"
cached iv_conv 30 && fail "DELETE left the old row's key"
cached iv_count "$uid" && fail "DELETE left the old row's aggregate key"
ok "DELETE: the old row's keys are invalidated"
fill iv_conv 30

fill_many "iv_user 1" "iv_user 3"
lsn=$(commit_lsn "BEGIN; UPDATE users SET name = name || '!' WHERE id IN (1, 3); UPDATE messages SET content = 'x' WHERE conv_id = 30; COMMIT")
wait_invalidated "$lsn"
cached iv_user 1 || cached iv_user 3 || cached iv_conv 30 && fail "multi-row/multi-table transaction missed a key"
ok "multi-row, multi-table transaction: every key invalidated"
fill_many "iv_user 1" "iv_conv 30"

primary "$DB" -c "BEGIN; UPDATE users SET name = 'never' WHERE id = 1; ROLLBACK" >/dev/null
lsn=$(commit_lsn "UPDATE unrelated SET v = v WHERE false")
wait_invalidated "$lsn"
cached iv_user 1 || fail "a rolled-back transaction invalidated a key"
ok "a rolled-back transaction invalidates nothing"

keys_before=$(metric cachesvc_invalidator_keys_total)
rows_before=$(metric cachesvc_invalidator_rows_total)
primary "$DB" -c "INSERT INTO unrelated VALUES (1, 'a')" >/dev/null
lsn=$(commit_lsn "UPDATE unrelated SET v = 'b' WHERE id = 1")
wait_invalidated "$lsn"
[ "$(metric cachesvc_invalidator_rows_total)" -ge $((rows_before + 2)) ] || fail "the unrelated table's changes were not decoded"
[ "$(metric cachesvc_invalidator_keys_total)" = "$keys_before" ] || fail "a table nobody depends on invalidated keys"
cached iv_user 1 || fail "a change to an unrelated table removed an entry"
ok "a change to a table no query depends on invalidates nothing"

# NULL keys: the old email's entry goes when the email becomes NULL
lsn=$(commit_lsn "UPDATE users SET email = NULL WHERE id = 3")
wait_invalidated "$lsn"
cached iv_email 'u3%40x' && fail "email u3@x entry left after the email became NULL"
ok "an UPDATE to a NULL key invalidates the old key"

# ALTER TABLE mid-stream: the relation is re-described and followed
fill iv_user 5
primary "$DB" -c "ALTER TABLE users ADD COLUMN age int" >/dev/null
lsn=$(commit_lsn "UPDATE users SET age = 30, name = 'five' WHERE id = 5")
wait_invalidated "$lsn"
cached iv_user 5 && fail "after ADD COLUMN the UPDATE did not invalidate"
primary "$DB" -c "ALTER TABLE users DROP COLUMN age" >/dev/null
fill iv_user 5
lsn=$(commit_lsn "UPDATE users SET name = 'five again' WHERE id = 5")
wait_invalidated "$lsn"
cached iv_user 5 && fail "after DROP COLUMN the UPDATE did not invalidate"
ok "ALTER TABLE ADD/DROP COLUMN mid-stream: invalidation follows the new shape"

# TOASTed rows: a large content, then an UPDATE that leaves it untouched
primary "$DB" -c "INSERT INTO messages (conv_id, user_id, content) SELECT 40, 4, string_agg(md5(i::text), '') FROM generate_series(1, 4000) i" >/dev/null
fill_many "iv_conv 40" "iv_count 4"
lsn=$(commit_lsn "UPDATE messages SET user_id = 5 WHERE conv_id = 40")
wait_invalidated "$lsn"
cached iv_conv 40 && fail "UPDATE of a TOASTed row left iv_conv 40"
cached iv_count 4 && fail "UPDATE of a TOASTed row left the old user's count"
ok "rows with large TOASTed values: keys still computed and invalidated"

# TRUNCATE: every dependent query's generation moves
fill_many "iv_conv 20" iv_all
g_conv=$(redis get $NS:g:iv_conv); g_all=$(redis get $NS:g:iv_all); g_user=$(redis get $NS:g:iv_user)
lsn=$(commit_lsn "TRUNCATE messages")
wait_invalidated "$lsn"
[ "$(redis get $NS:g:iv_conv)" -gt "${g_conv:-0}" ] || fail "TRUNCATE did not bump iv_conv"
[ "$(redis get $NS:g:iv_all)" -gt "${g_all:-0}" ] || fail "TRUNCATE did not bump iv_all"
[ "$(redis get $NS:g:iv_user)" = "$g_user" ] || fail "TRUNCATE messages bumped iv_user"
[ "$(cli --json get iv_all | json rows)" = '[[0]]' ] || fail "after TRUNCATE: $(cli --json get iv_all)"
ok "TRUNCATE bumps the generation of every dependent query (and only those)"

# a transaction touching many keys (several INVAL batches) is applied whole
fill iv_user 1
lsn=$(commit_lsn "INSERT INTO users SELECT i, 'bulk ' || i, 'b' || i || '@x' FROM generate_series(1000, 1700) i")
wait_invalidated "$lsn"
lsn=$(commit_lsn "UPDATE users SET name = 'after bulk' WHERE id = 1")
wait_invalidated "$lsn"
cached iv_user 1 && fail "after a 701-row transaction the next change was not invalidated"
ok "a 701-row transaction (1402 keys, 11 batches) is applied and the stream goes on"

h=$(metric cachesvc_invalidator_lag_seconds_count)
[ "$h" -ge 8 ] || fail "invalidation lag histogram has $h samples"
ok "invalidation lag histogram populated ($h commits)"
# the same histogram's quantiles, exact to its resolution (not bucket bounds): present,
# positive, ordered, and no larger than the largest Prometheus bucket that holds them all
q50=$(metric 'cachesvc_invalidator_lag_quantile_seconds{q="0.5"}')
q99=$(metric 'cachesvc_invalidator_lag_quantile_seconds{q="0.99"}')
q999=$(metric 'cachesvc_invalidator_lag_quantile_seconds{q="0.999"}')
[ -n "$q50" ] && [ -n "$q99" ] && [ -n "$q999" ] || fail "no lag quantiles in /metrics (p50 '$q50', p99 '$q99')"
awk -v a="$q50" -v b="$q99" -v c="$q999" 'BEGIN { exit !(a > 0 && a <= b && b <= c) }' ||
  fail "lag quantiles not positive and ordered: p50 $q50 p99 $q99 p99.9 $q999"
ok "lag quantiles from the fine histogram: p50 $q50 s, p99 $q99 s"
# its first part, commit -> Commit message decoded: present, positive, ordered, and its
# median within the whole lag's tail (each commit's receive lag is part of its lag; the two
# sample sets differ only by commits of other tests still in flight)
r50=$(metric 'cachesvc_invalidator_receive_lag_quantile_seconds{q="0.5"}')
r999=$(metric 'cachesvc_invalidator_receive_lag_quantile_seconds{q="0.999"}')
[ -n "$r50" ] && [ -n "$r999" ] || fail "no receive lag quantiles in /metrics"
awk -v a="$r50" -v c="$r999" -v d="$q999" 'BEGIN { exit !(a > 0 && a <= c && a <= d) }' ||
  fail "receive lag quantiles wrong: p50 $r50, p99.9 $r999 (lag p99.9 $q999)"
ok "receive lag quantiles: p50 $r50 s, p99.9 $r999 s"
# and its first part, commit -> the walsender sent the Commit message (the XLogData's send
# time): recorded with the receive lag for every Commit, and on one host each commit's send
# lag is at most its receive lag (one clock), so every quantile is at most the receive lag's
s50=$(metric 'cachesvc_invalidator_send_lag_quantile_seconds{q="0.5"}')
s999=$(metric 'cachesvc_invalidator_send_lag_quantile_seconds{q="0.999"}')
[ -n "$s50" ] && [ -n "$s999" ] || fail "no send lag quantiles in /metrics"
awk -v a="$s50" -v c="$s999" -v r="$r50" -v rc="$r999" \
  'BEGIN { exit !(a > 0 && a <= c && a <= r && c <= rc) }' ||
  fail "send lag quantiles wrong: p50 $s50, p99.9 $s999 (receive p50 $r50, p99.9 $r999)"
ok "send lag quantiles: p50 $s50 s, p99.9 $s999 s"
