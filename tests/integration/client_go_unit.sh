#!/usr/bin/env bash
# client_go_unit.sh - the Go client's unit tests (protocol/go): codec, conformance cases,
# fuzz seeds and mutations, Conn and Client against an in-process fake server. No daemon:
# the integration tests in the package skip without CS_ADDR (client_go.sh runs them).
set -euo pipefail
: "${CS_BUILD:?CS_BUILD (the meson build dir) must be set; meson test sets it}"
command -v go >/dev/null || { echo "FAIL: go is not installed (scripts/lib.sh installs golang-go)" >&2; exit 1; }
cd "$(dirname "$0")/../../protocol/go"
export GOCACHE=$CS_BUILD/go-cache GOPATH=$CS_BUILD/go-path GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
unset CS_ADDR
# (go test runs the standard vet checks itself)
go test -count=1 -timeout 100s .   # (client_go builds and runs cmd/cs-load-go)
