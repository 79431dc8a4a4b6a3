#!/usr/bin/env bash
# lib_exports.sh LIB - libcachesvc.so exports exactly the public API: every dynamic symbol
# it defines is a cachesvc_* function declared in include/cachesvc.h, and every function
# the header declares is exported. Needs no sandbox.
set -euo pipefail
lib=$1
header=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

# Defined dynamic symbols, without the version node's own (absolute) symbol.
defined=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u)
[ -n "$defined" ] || fail "no symbols exported from $lib"
stray=$(echo "$defined" | grep -v '^cachesvc_' || true)
[ -z "$stray" ] || fail "exported but not public API: $(echo $stray)"

declared=$(grep -o 'CACHESVC_API [^(]*(' "$header" | sed 's/($//; s/.*[ *]//' | grep '^cachesvc_' | sort -u)
[ -n "$declared" ] || fail "no CACHESVC_API declarations found in $header"
missing=$(comm -23 <(echo "$declared") <(echo "$defined"))
[ -z "$missing" ] || fail "declared but not exported: $(echo $missing)"
extra=$(comm -13 <(echo "$declared") <(echo "$defined"))
[ -z "$extra" ] || fail "exported but not declared in the header: $(echo $extra)"
echo "ok - $(echo "$defined" | wc -l) symbols exported, all of them cachesvc_* and declared"
