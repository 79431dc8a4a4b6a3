#!/usr/bin/env bash
# deps.sh - installs the Node client's dependencies (node_modules) with `npm ci` from
# package-lock.json, once per lock file: tests running side by side take a lock, and a
# stamp of the lock file's hash skips the install when node_modules already matches.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 1; }
exec 9>"${TMPDIR:-/tmp}/cachesvc-node-deps.$(id -u).lock"
flock -w 300 9 || { echo "timed out waiting for another npm ci" >&2; exit 1; }
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.cs-stamp 2>/dev/null || true)" != "$want" ]; then
  npm ci --no-audit --no-fund >&2
  echo "$want" >node_modules/.cs-stamp
fi
