#!/usr/bin/env bash
# inval_primary_restart.sh - the primary restarts: the invalidator reconnects with backoff
# and resumes from its slot; changes made right after the restart are invalidated. Restarts
# the primary: on a private sandbox, so it runs beside the others.
. "$(dirname "$0")/daemon_lib.sh"
use_private_sandbox --replicas 1

users_db 20
FENCE=on
inval_config "$WORK/cs.ini" pr_user
start_streaming "$WORK/cs.ini"
fill pr_user 4
reconnects=$(metric cachesvc_invalidator_reconnects_total)

pgctl() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$CS_PG_BIN/pg_ctl" "$@"; else "$CS_PG_BIN/pg_ctl" "$@"; fi
}
pgctl -D "$CS_SANDBOX_DIR/primary" -m fast -w -t 60 restart -l "$CS_SANDBOX_DIR/log/primary.log" >/dev/null ||
  fail "primary restart failed"
until_true 30 primary postgres -c "SELECT 1" >/dev/null || fail "primary not back"
lsn=$(commit_lsn "UPDATE users SET name = 'four' WHERE id = 4")
until_true 40 metric_ge cachesvc_invalidator_reconnects_total $((reconnects + 1)) || fail "no reconnect"
until_true 40 streaming || fail "not streaming again after the primary restart"
wait_invalidated "$lsn"
cached pr_user 4 && fail "the change after the primary restart was not invalidated"
fresh() { [ "$(cli --json get pr_user 4 | json rows)" = '[[4, "four"]]' ]; }
until_true 20 fresh || fail "stale after restart: $(cli --json get pr_user 4)"
ok "primary restarted: reconnected with backoff, resumed from the slot, invalidated"
