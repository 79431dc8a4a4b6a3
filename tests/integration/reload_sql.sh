#!/usr/bin/env bash
# reload_sql.sh - issue 13 item 3: a SIGHUP that reorders or changes queries must never
# make a pooled connection run another query's SQL. Two queries with different columns,
# a replica pool of ONE connection, misses queued on it (each query sleeps a little), and
# eight SIGHUPs alternating the queries' order (the sixth also changes qa's SQL) while
# new misses keep arriving. Every answer of each query must carry that query's columns
# and the primary's row for its id; afterwards, what the cache serves too.
. "$(dirname "$0")/daemon_lib.sh"

N=20 # ids per query per batch
make_db <<'SQL'
CREATE TABLE ta (id bigint PRIMARY KEY, a_name text NOT NULL);
CREATE TABLE tb (id bigint PRIMARY KEY, b_num bigint NOT NULL, b_note text NOT NULL);
INSERT INTO ta SELECT i, 'a-' || i FROM generate_series(1, 400) i;
INSERT INTO tb SELECT i, i * 1000 + 7, 'b-' || i FROM generate_series(1, 400) i;
SQL

# Both take one int8 parameter, so either statement accepts the other's parameters: a
# mix-up is not an error, it is silently wrong rows (the defect).
QA1='SELECT id AS a_id, a_name FROM ta WHERE id = $1 AND pg_sleep(0.01) IS NOT NULL'
QA2='SELECT id AS a_id, a_name, length(a_name) AS a_len FROM ta WHERE id = $1 AND pg_sleep(0.01) IS NOT NULL'
QB='SELECT id AS b_id, b_num, b_note FROM tb WHERE id = $1 AND pg_sleep(0.01) IS NOT NULL'

REQUEST_TIMEOUT=60s EXTRA_SERVICE='queue_timeout = 60s
queue_max = 10000' EXTRA_REPLICA='pool_size = 1' write_config "$WORK/base.ini" replica1
q_section() { printf '\n[query %s]\nsql = %s\nparams = id:int8\nttl = 10m\n' "$1" "$2"; }
mkconf() { # ORDER(ab|ba) QA_SQL -> $WORK/cs.ini (written whole, then renamed)
  {
    cat "$WORK/base.ini"
    if [ "$1" = ab ]; then q_section qa "$2"; q_section qb "$QB"; else q_section qb "$QB"; q_section qa "$2"; fi
  } >"$WORK/cs.ini.new"
  mv "$WORK/cs.ini.new" "$WORK/cs.ini"
}
mkconf ab "$QA1"
start_daemon "$WORK/cs.ini"

# batch J: one MGET of N misses of qa and N of qb, interleaved (ids J*N+1 .. J*N+N).
batch() {
  local j=$1 args=() k id
  for k in $(seq 1 "$N"); do
    id=$((j * N + k))
    args+=(qa "$id" -- qb "$id" --)
  done
  unset 'args[${#args[@]}-1]'
  "$CLI" -p "$PORT" -t 60000 --json mget "${args[@]}" >"$WORK/batch$j.out" 2>"$WORK/batch$j.err" || true
}
reloads() { grep -c 'reloaded ' "$WORK/cachesvc.log" || true; }

# order and qa's SQL of reloads 1..8: the order flips every time, qa changes at reload 6
orders=(ab ba ab ba ab ba ab ba ab)
sqls=("$QA1" "$QA1" "$QA1" "$QA1" "$QA1" "$QA1" "$QA2" "$QA2" "$QA2")
pids=()
batch 0 &
pids+=($!)
for j in $(seq 1 8); do
  until_true 10 metric_ge cachesvc_inflight 1 || fail "batch $((j - 1)) never in flight"
  sleep 0.1 # its misses are queued on the replica's one connection now
  mkconf "${orders[$j]}" "${sqls[$j]}"
  kill -HUP "$DAEMON_PID"
  until_true 10 eval '[ "$(reloads)" -ge '"$j"' ]' || fail "reload $j not logged"
  batch "$j" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
grep -q 'reload refused\|reload failed' "$WORK/cachesvc.log" && fail "a reload was refused"
ok "8 reloads (order flipped each time, qa's SQL changed at the 6th) with misses queued"

primary "$DB" -c "SELECT id, a_name FROM ta ORDER BY id" >"$WORK/ta.txt"
primary "$DB" -c "SELECT id, b_num, b_note FROM tb ORDER BY id" >"$WORK/tb.txt"

# check.py WORK N FIRST LAST STRICT_FROM [final]: every item of batches FIRST..LAST is a
# result with its query's columns and the primary's row; qa may answer with its first
# definition only in batches before STRICT_FROM (sent before the SQL change took effect).
cat >"$WORK/check.py" <<'PY'
import json, sys
work, n, first, last, strict_from = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
final = len(sys.argv) > 6
ta = {int(l.split('|')[0]): l.rstrip('\n').split('|')[1] for l in open(work + '/ta.txt')}
tb = {}
for l in open(work + '/tb.txt'):
    i, num, note = l.rstrip('\n').split('|')
    tb[int(i)] = (int(num), note)
bad, served, cache = [], 0, 0
for j in range(first, last + 1):
    lines = [l for l in open('%s/batch%d.out' % (work, j)) if l.strip()]
    if len(lines) != 2 * n:
        bad.append('batch %d: %d answers, want %d' % (j, len(lines), 2 * n))
        continue
    for k in range(n):
        i = j * n + k + 1
        for q, line in (('qa', lines[2 * k]), ('qb', lines[2 * k + 1])):
            r = json.loads(line)
            if 'error' in r:
                bad.append('batch %d %s(%d): error %s' % (j, q, i, r))
                continue
            served += 1
            cache += r['source'] == 'cache'
            cols = [c['name'] for c in r['columns']]
            if q == 'qb':
                want = [(['b_id', 'b_num', 'b_note'], [[i, tb[i][0], tb[i][1]]])]
            else:
                v2 = (['a_id', 'a_name', 'a_len'], [[i, ta[i], len(ta[i])]])
                v1 = (['a_id', 'a_name'], [[i, ta[i]]])
                want = [v2] if j >= strict_from else [v1, v2]
            if (cols, r['rows']) not in want:
                bad.append('batch %d %s(%d) from %s: columns %s rows %s, want one of %s' %
                           (j, q, i, r['source'], cols, r['rows'], want))
for b in bad[:15]:
    print(b)
print('%d answers checked, %d from cache, %d wrong' % (served, cache, len(bad)))
if final and cache == 0:
    print('nothing was served from the cache: the cached answers were not checked')
    sys.exit(1)
sys.exit(1 if bad else 0)
PY
"$PY3" "$WORK/check.py" "$WORK" "$N" 0 8 6 || fail "answers with the wrong query's columns or rows"
ok "every answer during the reloads carried its own query's columns and the primary's rows"

# Afterwards: the same keys again. Entries filled during the storm are served from the
# cache now (qa's changed SQL bumped its generation: its old entries are gone), and every
# answer - cached or not - must be the current definition's.
until_true 10 eval '[ "$(redis dbsize)" -gt 0 ]' || fail "nothing was cached"
for j in $(seq 0 8); do
  mv "$WORK/batch$j.out" "$WORK/storm$j.out"
  batch "$j"
done
"$PY3" "$WORK/check.py" "$WORK" "$N" 0 8 0 final || fail "wrong answers after the reloads (cache content)"
ok "after the reloads every key answers its current definition, from the cache too"

stop_daemon || fail "cachesvc exited with status $?"
! grep -q 'ERROR: AddressSanitizer\|runtime error:' "$WORK/cachesvc.log" || fail "sanitizer report"
ok "clean exit"
