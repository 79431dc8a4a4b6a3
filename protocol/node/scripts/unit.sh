#!/usr/bin/env bash
# unit.sh - the Node client's unit tests (no server needed): codec, fuzz, conformance cases,
# and the client against a scripted fake server. Skips (77) when node is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "SKIP: node is not installed"; exit 77; }
scripts/deps.sh
exec node --test test/codec.test.js test/fuzz.test.js test/conformance.test.js test/client.test.js
