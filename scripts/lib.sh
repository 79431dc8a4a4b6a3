# lib.sh - shared by scripts/test, scripts/quickstart and bench: dependency install and build.
# Sourced, not run.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the build, the tests and the sandbox need.
CS_PACKAGES=(gcc meson ninja-build pkg-config libhiredis-dev libpq-dev libevent-dev
  libmsgpack-dev libcmocka-dev libjansson-dev postgresql-15 postgresql-client-15
  redis-server redis-tools python3 python3-msgpack golang-go libedit-dev
  libsystemd-dev systemd groff-base prometheus gdb iproute2)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_packages PKG...: installs whichever of PKG are missing (apt-get; sudo if needed).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Package lists on a fresh machine may be stale or empty: update once, then install.
  as_root apt-get update -q >/dev/null || true
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# Node.js and npm for the Node client's tests (protocol/node): Debian's, unless node and npm
# are already on PATH (e.g. nodesource's nodejs, which Debian's npm package conflicts with).
ensure_node() {
  command -v node >/dev/null && command -v npm >/dev/null && return 0
  ensure_packages nodejs npm
}

ensure_deps() {
  ensure_packages "${CS_PACKAGES[@]}"
  ensure_node
}

# build DIR [meson options...]: configures DIR once (reconfigures when options change), builds.
build() {
  local dir=$1
  shift
  if [ -f "$REPO/$dir/build.ninja" ]; then
    meson configure "$REPO/$dir" "$@" >/dev/null
  else
    meson setup "$REPO/$dir" "$REPO" "$@" >/dev/null
  fi
  ninja -C "$REPO/$dir" >&2
}
