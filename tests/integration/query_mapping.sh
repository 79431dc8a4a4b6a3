#!/usr/bin/env bash
# query_mapping.sh [cluster] - a query's entries are used only while the invalidator's leader maps that
# query's definition (review 36 R36-1, R36-2). Invalidations come from the process holding the
# replication slot, decoded with its own config; a process with a query the leader does not map
# (or maps otherwise) filled entries nobody invalidated: stale until their TTL. The leader now
# records at each stream start the mapping it decodes with (keyspace.h <ns>:inv:qmap: each
# query's map fingerprint and the position its stream started from); a process uses a query
# only while the record is its definition's, and covers a new record with one generation bump
# fenced at that position (entries filled before retired).
#  (a) leader L maps qu alone; daemon B (no invalidator) also has qi on table items: B never
#      serves qi from the cache (says so: log, gauge), and answers its changes.
#  (b) L restarted with qi: B covers L's new record with a bump and caches qi; the entry a
#      process without the mechanism filled in (a) (stale since) is not served; changes to
#      items now invalidate B's qi entries.
#  (c) R36-2: L restarted without qi (its record deleted: B bypasses again), items changed
#      meanwhile, L restarted with qi again: B's entry from before the removal is not served.
#  (d) review 41 R41-1: B reloaded with qi's invalidate_on changed while L maps the old one:
#      B bypasses qi (it compared the record with its old definition and kept serving); L
#      reloaded with the same change: both L's own engine and B cache qi again.
#  (e) review 41 R41-3: a malformed record ("<fp> -000000000000001", whose lsn strtoull read as
#      2^64-1) makes qi bypass, raises no fence; the leader's next start rewrites it. The
#      record deleted by hand: the streaming leader writes it again (R41-4).
#  (f) review 36 R36-7: a process whose primary is unreachable cannot bump a query new to
#      Redis (its fence is the primary's position): it says so (log, gauge).
# Negative controls (tests/integration/shard_drive --no-query-map, the engine alone with B's
# config, cs_engine_test_no_query_map: the record ignored): in (a) and (c) the stale row is
# served from the cache.
# "cluster": the same on a private 3-master Redis Cluster (the record in bucket 0's slot, the
# cover through C_DEF_BUMP and its GEN_SET fan-out, skipped when already covered).
. "$(dirname "$0")/daemon_lib.sh"
DRIVE=$CS_BUILD/tests/integration/shard_drive

users_db 20 "CREATE TABLE items (id bigint PRIMARY KEY, v text);" \
  "INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 20) i;" \
  "CREATE PUBLICATION cs_pub FOR TABLE users, items;"
wait_replicas
MODE=${1:-single}
# item_query [EXTRA RULE]: qi reads one items row by id, invalidated by it (and EXTRA RULE)
item_query() {
  printf '\n[query qi]\nsql = SELECT id, v FROM items WHERE id = $1\nparams = id:int8\ninvalidate_on = items(id = $1)%s\n' "${1:+, $1}"
}
if [ "$MODE" = cluster ]; then
  private_redis_cluster 3 0
  to_cluster() { sed -i "s|^url = .*|url = redis://127.0.0.1\ncluster = on\nnodes = $RC_NODES|" "$1"; }
  gen_qi() { redis-cli -c -p "${RC_PORTS[0]}" get "{$NS:0}:g:qi"; }
  qf_qi() { redis-cli -c -p "${RC_PORTS[0]}" get "{$NS:0}:qf:qi"; }
else
  to_cluster() { :; }
  gen_qi() { redis get "$NS:g:qi"; }
  qf_qi() { redis get "$NS:qf:qi"; }
fi
qm() { qmap_cmd "$WORK/b.ini" "$@"; } # the leader's record, as B reads it
L_PORT=$PORT L_APORT=$APORT
B_PORT=$(free_port) B_APORT=$(free_port)
# the leader's configs: qu alone (l1), qu and qi (l2)
FENCE=on EXTRA_REDIS="namespace = $NS" inval_config "$WORK/l1.ini" qu replica1
FENCE=on EXTRA_REDIS="namespace = $NS" inval_config "$WORK/l2.ini" qu replica1
item_query >>"$WORK/l2.ini"
# B: qu and qi, no invalidator
PORT=$B_PORT APORT=$B_APORT SOCK=$WORK/b.sock FENCE=on EXTRA_REDIS="namespace = $NS" \
  write_config "$WORK/b.ini" replica1
{ user_query qu; item_query; } >>"$WORK/b.ini"
for f in l1 l2 b; do to_cluster "$WORK/$f.ini"; done

as_l() { PORT=$L_PORT APORT=$L_APORT SOCK=$WORK/cs.sock; }
as_b() { PORT=$B_PORT APORT=$B_APORT SOCK=$WORK/b.sock; }
# drive KEY [--no-query-map]: one round of GETs of qi KEY by the engine alone with B's config
# (ROUNDS, default 1); its last answer line
drive() {
  "$DRIVE" --rounds "${ROUNDS:-1}" ${2:+"$2"} "$WORK/b.ini" qi "$1" 2>"$WORK/drive.err" |
    grep '^round=' | tail -1 || fail "shard_drive: $(cat "$WORK/drive.err")"
}
# update_item ID V: on the primary; waits until L's invalidator confirmed it
update_item() {
  local lsn
  lsn=$(commit_lsn "UPDATE items SET v = '$2' WHERE id = $1")
  as_l
  wait_invalidated "$lsn"
  as_b
}
never_cached() { # QUERY KEY: 5 reads by B, none from the cache
  local r
  for _ in 1 2 3 4 5; do
    r=$(cli --json get "$1" "$2") || fail "B's get $1 $2: $r"
    grep -q '"source":"cache"' <<<"$r" && return 1
    sleep 0.2
  done
  return 0
}

# ---- (a) the leader does not map qi ----
as_l
start_streaming "$WORK/l1.ini" L1
L_PID=$DAEMON_PID
as_b
start_daemon "$WORK/b.ini" B
B_PID=$DAEMON_PID
fill qu 1
until_true 15 metric_is cachesvc_queries_unmapped 1 || fail "(a) B never saw that the leader does not map qi: gauge $(metric cachesvc_queries_unmapped)"
never_cached qi 1 || fail "(a) B served qi from the cache though the leader does not map it: $(cli --json get qi 1)"
grep -q 'query qi: the invalidator.s leader maps no definition of it' "$WORK/B.log" || fail "(a) B did not say why qi bypasses: $(grep -a qi "$WORK/B.log" | tail -3)"
metric_ge cachesvc_query_unmapped_total 1 || fail "(a) no unmapped poll counted"
ok "(a) the leader maps qu alone: B serves qu from the cache, qi never (gauge 1, logged)"
# control: the engine with B's config and the record ignored fills qi 1, keeps it through a
# change nobody invalidates, and serves the old row
l=$(ROUNDS=2 drive 1 --no-query-map)
[[ $l == *"src=cache"*"v1"* ]] || fail "(a) control: no fill of qi 1 with the record ignored: $l"
update_item 1 a-new
l=$(drive 1 --no-query-map)
[[ $l == *"src=cache"*"v1" ]] || fail "(a) control: with the record ignored the stale qi 1 was expected from the cache: $l"
r=$(cli --json get qi 1)
grep -q '"a-new"' <<<"$r" && ! grep -q '"source":"cache"' <<<"$r" || fail "(a) B after the change: $r"
l2=$(drive 1)
[[ $l2 != *"src=cache"* && $l2 == *"a-new"* ]] || fail "(a) the driver with the record used: $l2"
ok "(a) control: with the record ignored the stale row of qi 1 is served from the cache ($l); B and the driver with it answer the change"

# ---- (b) the leader restarted with qi ----
as_l
stop_daemon "$L_PID"
start_streaming "$WORK/l2.ini" L2
L_PID=$DAEMON_PID
as_b
until_true 20 metric_is cachesvc_queries_unmapped 0 || fail "(b) B still sees qi unmapped: $(tail -3 "$WORK/B.log")"
r=$(cli --json get qi 1)
grep -q '"a-new"' <<<"$r" || fail "(b) B served the entry filled before the leader mapped qi: $r"
fill qi 1
rows qi 1 | grep -q 'a-new' || fail "(b) B's entry of qi 1: $(rows qi 1)"
fill qi 2
as_l
n=$(metric cachesvc_query_map_covers_total)
as_b
n=$((n + $(metric cachesvc_query_map_covers_total)))
[ "$n" -ge 1 ] || fail "(b) no bump covered the leader's new record"
g=$(gen_qi)
qm hget qi | grep -q '^[0-9a-f]\{16\} [0-9A-F]\{16\}$' || fail "(b) the leader's record of qi: $(qm hgetall)"
[ "$(qm hget qi)" = "$(qm hget qi/c)" ] || fail "(b) the record not covered: $(qm hgetall)"
update_item 1 b-new
until_true 10 eval 'rows qi 1 | grep -q b-new' || fail "(b) B after a change of items 1: $(cli --json get qi 1)"
ok "(b) the leader maps qi: covering bumps sent: $n, the stale entry of (a) retired, B caches qi and its changes are invalidated (generation $g)"

# ---- (c) R36-2: qi removed from the leader, changed meanwhile, added again ----
rows qi 2 | grep -q '"v2"' || fail "(c) B's entry of qi 2: $(rows qi 2)"
[ "$(src qi 2)" = cache ] || fail "(c) qi 2 not cached before the removal"
as_l
stop_daemon "$L_PID"
start_streaming "$WORK/l1.ini" L3
L_PID=$DAEMON_PID
as_b
until_true 20 metric_is cachesvc_queries_unmapped 1 || fail "(c) B did not see qi removed from the leader: $(qm hgetall)"
[ -z "$(qm hget qi)" ] || fail "(c) the record of qi survived its removal: $(qm hgetall)"
update_item 2 c-new
never_cached qi 2 || fail "(c) B served qi 2 from the cache while the leader does not map qi"
rc=0
out=$("$CS_BUILD/cachesvc/cachesvc-verify" -c "$WORK/b.ini" --json 2>"$WORK/verify.err") || rc=$?
[ $rc = 0 ] && grep -q "query qi: the invalidator's leader maps no definition of it" "$WORK/verify.err" ||
  fail "(c) cachesvc-verify reported the entries no process uses (exit $rc): $out $(cat "$WORK/verify.err")"
l=$(drive 2 --no-query-map)
[[ $l == *"src=cache"*"v2" ]] || fail "(c) control: with the record ignored the entry from before the removal was expected (stale): $l"
as_l
stop_daemon "$L_PID"
start_streaming "$WORK/l2.ini" L4
L_PID=$DAEMON_PID
as_b
until_true 20 metric_is cachesvc_queries_unmapped 0 || fail "(c) B still sees qi unmapped after it was added again"
r=$(cli --json get qi 2)
grep -q '"c-new"' <<<"$r" || fail "(c) qi added again: B served the entry from before its removal: $r"
fill qi 2
rows qi 2 | grep -q c-new || fail "(c) B's new entry of qi 2: $(rows qi 2)"
ok "(c) cachesvc-verify skips qi while the leader does not map it (its stale entry is used by no process)"
ok "(c) qi removed from the leader and added again: its entry from before the removal (stale: $l with the record ignored) is not served; B caches the new row"

# ---- (d) R41-1: a reload that changes qi's invalidate_on ----
{ sed '/^\[query qi\]/,$d' "$WORK/b.ini"; item_query "users(id = \$1)"; } >"$WORK/b2.ini"
cp "$WORK/b2.ini" "$WORK/b.ini"
kill -HUP "$B_PID"
until_true 15 grep -q 'reloaded ' "$WORK/B.log" || fail "(d) B did not reload: $(tail -3 "$WORK/B.log")"
until_true 20 metric_is cachesvc_queries_unmapped 1 || fail "(d) B reloaded with qi's invalidate_on changed still uses the leader's record of the old one"
never_cached qi 2 || fail "(d) B serves qi from the cache though the leader maps its old invalidate_on"
ok "(d) B reloaded with qi's invalidate_on changed while the leader maps the old one: qi bypasses the cache on B"
{ sed '/^\[query qi\]/,$d' "$WORK/l2.ini"; item_query "users(id = \$1)"; } >"$WORK/l3.ini"
cp "$WORK/l3.ini" "$WORK/l2.ini"
as_l
kill -HUP "$L_PID"
until_true 15 grep -q 'reloaded ' "$WORK/L4.log" || fail "(d) L did not reload: $(tail -3 "$WORK/L4.log")"
until_true 20 metric_is cachesvc_queries_unmapped 0 || fail "(d) the leader's own engine bypasses qi after its reload: $(qm hgetall)"
fill qi 3
as_b
until_true 20 metric_is cachesvc_queries_unmapped 0 || fail "(d) B still bypasses qi after the leader's reload: $(qm hgetall)"
fill qi 3
update_item 3 d-new
until_true 10 eval 'rows qi 3 | grep -q d-new' || fail "(d) B after a change of items 3: $(cli --json get qi 3)"
ok "(d) the leader reloaded with the same change: its own engine and B cache qi again, and its changes are invalidated"

# ---- (e) R41-3: a malformed record ----
as_l
stop_daemon "$L_PID"
as_b
rec=$(qm hget qi)
qm hset qi "${rec:0:16} -000000000000001" >/dev/null
g=$(gen_qi) qf=$(qf_qi)
until_true 20 metric_is cachesvc_queries_unmapped 1 || fail "(e) B used qi under a malformed record: $(qm hget qi)"
sleep 2
[ "$(gen_qi)" = "$g" ] && [ "$(qf_qi)" = "$qf" ] || fail "(e) a malformed record bumped qi: generation $g -> $(gen_qi), query fence $qf -> $(qf_qi)"
never_cached qi 3 || fail "(e) B served qi from the cache under a malformed record"
as_l
start_streaming "$WORK/l2.ini" L5
L_PID=$DAEMON_PID
qm hget qi | grep -q '^[0-9a-f]\{16\} [0-9A-F]\{16\}$' || fail "(e) the leader's start did not rewrite the malformed record: $(qm hget qi)"
as_b
until_true 20 metric_is cachesvc_queries_unmapped 0 || fail "(e) B still bypasses qi after the record was rewritten"
fill qi 3
ok "(e) a malformed record: qi bypassed, no bump, query fence $qf kept; the leader's start rewrote it and B caches qi"
# R41-4: the record deleted by hand: the leader re-asserts it within a status interval
qm del >/dev/null
until_true 15 eval '[ -n "$(qm hget qi)" ]' || fail "(e) the leader never re-asserted its record after it was deleted"
until_true 20 metric_is cachesvc_queries_unmapped 0 || fail "(e) B bypasses qi after the record was re-asserted"
fill qi 4
ok "(e) the record deleted: the leader re-asserted it, B caches qi again"

# ---- (f) R36-7: a bump waiting for the primary's position ----
stop_daemon "$B_PID"
as_l
stop_daemon "$L_PID"
PORT=$(free_port) APORT=$(free_port) SOCK=$WORK/f.sock
FENCE=on EXTRA_REDIS="namespace = $NS" write_config "$WORK/f.ini" replica1
DEAD=$(free_port)
awk -v dead="host=127.0.0.1 port=$DEAD user=postgres dbname=$DB connect_timeout=1" '
  /^\[/ { sec = $0 } sec == "[primary]" && /^conninfo = / { print "conninfo = " dead; next } { print }' \
  "$WORK/f.ini" >"$WORK/f2.ini"
{ cat "$WORK/f2.ini"; printf '\n[query qn]\nsql = SELECT id, v FROM items WHERE id = $1\nparams = id:int8\ninvalidate_on = items(id = $1)\n'; } >"$WORK/f.ini"
to_cluster "$WORK/f.ini"
start_daemon "$WORK/f.ini" F
until_true 30 metric_ge cachesvc_generation_bumps_pending 1 || fail "(f) no pending bump counted: $(metric cachesvc_generation_bumps_pending) $(tail -3 "$WORK/F.log")"
until_true 10 grep -q "query qn: its generation bump waits for the primary's position" "$WORK/F.log" || fail "(f) the waiting bump was not logged: $(grep -a qn "$WORK/F.log" | tail -3)"
ok "(f) the primary unreachable: qn's bump waits, logged, cachesvc_generation_bumps_pending $(metric cachesvc_generation_bumps_pending)"
stop_daemon
