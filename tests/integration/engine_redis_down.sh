#!/usr/bin/env bash
# engine_redis_down.sh - Redis stopped: requests are served from the replicas (bypass,
# counted), no client error; Redis back: the daemon reconnects and caches again. Uses a
# private Redis so the shared one keeps serving the other tests.
. "$(dirname "$0")/daemon_lib.sh"

make_db <<'SQL'
CREATE TABLE items (id bigint PRIMARY KEY, v text);
INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 100) i;
SQL
private_redis --appendonly no
stop_redis() {
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  private_redis_gone
}

EXTRA_REDIS="timeout = 300ms"
write_config "$WORK/cs.ini"
sed -i "s|^url = .*|url = redis://127.0.0.1:$RPORT/0|" "$WORK/cs.ini"
cat >>"$WORK/cs.ini" <<'INI'

[query rd_item]
sql = SELECT v FROM items WHERE id = $1
params = id:int8
INI
start_daemon "$WORK/cs.ini"

cli --json get rd_item 1 | json source | grep -qx replica || fail "first read"
cli --json get rd_item 1 | json source | grep -qx cache || fail "second read not cached"
ok "cached while Redis is up"

stop_redis
for i in 1 2 3 4 5; do
  src=$(cli --json get rd_item 1 | json source) || fail "request failed with Redis down"
  [ "$src" = replica ] || fail "with Redis down, source $src"
done
[ "$(metric cachesvc_bypass_redis_total)" -ge 5 ] || fail "bypass not counted: $(metric cachesvc_bypass_redis_total)"
[ "$(metric cachesvc_redis_up)" = 0 ] || fail "redis_up still 1"
ok "Redis down: served from the replica, bypass counted ($(metric cachesvc_bypass_redis_total))"

start_redis
until_true 30 metric_is cachesvc_redis_up 1 || fail "the daemon never reconnected to Redis"
cached_again() {
  cli --json get rd_item 1 >/dev/null && [ "$(cli --json get rd_item 1 | json source)" = cache ]
}
until_true 10 cached_again || fail "Redis back, but nothing is cached again"
ok "Redis back: reconnected with backoff and caching again"
