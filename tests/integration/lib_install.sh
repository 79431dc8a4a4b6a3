#!/usr/bin/env bash
# lib_install.sh - installs the project into a temporary DESTDIR, compiles and links
# cachesvc/lib/examples/example_sync.c with nothing but the installed header and
# `pkg-config --cflags --libs cachesvc`, checks that no internal header was installed,
# and runs the example against the sandbox (a miss from a replica, then a hit).
set -euo pipefail
: "${CS_BUILD:?CS_BUILD must be set; meson test sets it}"
: "${CS_EXAMPLE_SRC:?CS_EXAMPLE_SRC must be set; meson test sets it}"
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

DEST=$(mktemp -d /tmp/cs-lib-install.XXXXXX)
trap '[ -n "${CS_KEEP_WORK:-}" ] || rm -rf "$DEST"' EXIT
meson install -C "$CS_BUILD" --no-rebuild --destdir "$DEST" --quiet >"$DEST/install.log" 2>&1 ||
  { cat "$DEST/install.log" >&2; fail "meson install failed"; }

pc=$(find "$DEST" -name cachesvc.pc | head -1)
[ -n "$pc" ] || fail "no cachesvc.pc installed"
hdr=$(find "$DEST" -name cachesvc.h | head -1)
[ -n "$hdr" ] || fail "cachesvc.h not installed"
for internal in engine.h config.h cs_proto.h lib_int.h check.h; do
  [ -z "$(find "$DEST" -name "$internal")" ] || fail "internal header $internal was installed"
done
so=$(find "$DEST" -name 'libcachesvc.so.0*' | head -1)
[ -n "$so" ] || fail "libcachesvc.so.0 not installed"
ok "installed $(basename "$so"), $(basename "$hdr") and $(basename "$pc"), no internal headers"

# Build the example out of the tree: only the installed header and pkg-config.
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$DEST
flags=$(pkg-config --cflags --libs cachesvc) || fail "pkg-config cachesvc failed"
san=()
# A sanitized library needs its runtime first in the program: build the example the same way.
if [ -n "${CS_SANITIZE:-}" ] && [ "$CS_SANITIZE" != none ]; then
  san=(-fsanitize="$CS_SANITIZE")
fi
mkdir -p "$DEST/example"
cp "$CS_EXAMPLE_SRC" "$DEST/example/example_sync.c"
# shellcheck disable=SC2086
(cd "$DEST/example" && cc -std=c11 -Wall -Wextra -Werror "${san[@]}" example_sync.c $flags \
  -o example_sync) || fail "the example does not build with: $flags"
ok "example_sync.c built with: $flags"
libdir=$(dirname "$so")

# Run it against the sandbox (skip from here on without one).
. "$(dirname "$0")/daemon_lib.sh"
make_db <<'SQL'
CREATE TABLE users (id bigint PRIMARY KEY, name text);
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 50) i;
SQL
write_config "$WORK/lib.ini" replica1
cat >>"$WORK/lib.ini" <<'INI'

[query user_profile]
sql = SELECT id, name FROM users WHERE id = $1
params = id:int8
ttl = 60s
INI
out=$(LD_LIBRARY_PATH=$libdir "$DEST/example/example_sync" "$WORK/lib.ini" user_profile 42 2>"$WORK/example.log") ||
  { cat "$WORK/example.log" >&2; fail "example_sync failed: $out"; }
echo "$out"
echo "$out" | grep -q 'name=user 42' || fail "example did not print the row"
echo "$out" | head -1 | grep -q 'source=replica' || fail "first read not from a replica"
ok "the installed example read user_profile 42 through the library"
