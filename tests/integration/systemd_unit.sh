#!/usr/bin/env bash
# systemd_unit.sh - dist/systemd/cachesvc.service passes `systemd-analyze verify` with no
# message at all (unknown keys, bad values, a missing binary or man page all print one),
# and keeps the settings README.md "Run as a service" promises. Works offline (no running
# systemd needed); skipped (77) without systemd-analyze.
# Usage: systemd_unit.sh UNIT_FOR_THIS_BUILD SOURCE_ROOT
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
unit=$1 src=$2
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }

work=$(mktemp -d /tmp/cs-systemd-unit.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The unit of this build: ExecStart is the daemon in the build dir (verify checks it is
# executable); its Documentation= man pages are resolved against man/ of the source tree.
cp "$unit" "$work/cachesvc.service"
mkdir -p "$work/man/man8" "$work/man/man5"
ln -s "$src/man/cachesvc.8" "$work/man/man8/cachesvc.8"
ln -s "$src/man/cachesvc.ini.5" "$work/man/man5/cachesvc.ini.5"
# Without man(1) (no man-db) verify cannot look the pages up: skip that part of the check.
man_opt=()
command -v man >/dev/null || man_opt=(--man=no)
out=$(cd "$work" && MANPATH=$work/man SYSTEMD_LOG_LEVEL=info systemd-analyze verify "${man_opt[@]}" ./cachesvc.service 2>&1) ||
  fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify reported: $out"
ok "systemd-analyze verify: no message"

# The settings the service relies on (a typo in a key would be an 'Unknown key' above).
want=(
  'Type=notify' 'NotifyAccess=main' 'ExecReload=/bin/kill -HUP $MAINPID' 'DynamicUser=yes'
  'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes'
  'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'MemoryDenyWriteExecute=yes'
  'SystemCallFilter=@system-service' 'LimitNOFILE=65536' 'RuntimeDirectory=cachesvc'
)
for w in "${want[@]}"; do
  grep -qxF -- "$w" "$work/cachesvc.service" || fail "cachesvc.service lacks '$w'"
done
ok "the unit has ${#want[@]} required settings (notify, reload, hardening)"

# TimeoutStopSec outlasts the drain of a default config: request_timeout (5s) + 1 s.
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$work/cachesvc.service")
[ -n "$stop" ] && [ "$stop" -gt 6 ] || fail "TimeoutStopSec=${stop:-unset}s does not outlast the 6 s drain"
ok "TimeoutStopSec=${stop}s > the default drain (6 s)"

# Negative control: verify does flag a misspelt key in this setting.
sed 's/^MemoryDenyWriteExecute=/MemoryDenyWriteExecut=/' "$work/cachesvc.service" >"$work/bad.service"
bad=$(cd "$work" && MANPATH=$work/man systemd-analyze verify "${man_opt[@]}" ./bad.service 2>&1 || true)
grep -q "Unknown key" <<<"$bad" || fail "systemd-analyze verify did not flag an unknown key: $bad"
ok "negative control: a misspelt key is reported"
