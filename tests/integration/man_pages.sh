#!/usr/bin/env bash
# man_pages.sh - the manual pages in man/: each renders without a groff warning; each
# documents every option its program's --help lists (long options, and the short ones
# shown as "-x"); man/cachesvc.ini.5 is what scripts/gen-ini-man writes from
# cachesvc/config/CONFIG.md now, and names every key CONFIG.md documents. No sandbox needed.
# Usage: man_pages.sh SOURCE_ROOT CACHESVC CLI WARM VERIFY
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
[ $# -eq 5 ] || fail "usage: $0 SOURCE_ROOT CACHESVC CLI WARM VERIFY"
SRC=$1
MAN=$SRC/man
command -v groff >/dev/null || { echo "SKIP: no groff (Debian's groff-base)"; exit 77; }

# 1. Every page renders with every groff warning on and no output on stderr.
for page in "$MAN"/*.[1-8]; do
  out=$(groff -man -Tutf8 -ww -z "$page" 2>&1) || fail "$(basename "$page"): groff failed: $out"
  [ -z "$out" ] || fail "$(basename "$page"): groff warnings: $out"
  # man(1) itself (preconv, tbl, ...) renders it too, where man-db is installed
  if command -v man >/dev/null; then
    out=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null) || fail "$(basename "$page"): man -l failed: $out"
    [ -z "$out" ] || fail "$(basename "$page"): man -l warnings: $out"
  fi
done
ok "every page renders without warnings (groff -man -ww, man -l)"

# The page's text with troff escapes for dashes and fonts removed: what a reader searches.
page_text() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\&//g' "$1"; }

# options_of BINARY: the options --help shows: every --long-option, and every short
# option at the start of a help line ("  -c, --config", "  -h HOST").
options_of() {
  local help
  help=$("$1" --help) || fail "$1 --help failed"
  [ -n "$help" ] || fail "$1 --help printed nothing"
  { grep -oE -- '(^|[^a-zA-Z0-9-])--[a-z][a-z0-9-]*' <<<"$help" | sed 's/^[^-]*//'
    grep -oE -- '^ +-[a-zA-Z]([ ,]|$)' <<<"$help" | tr -d ' ,'
  } | sort -u
}

# check_page PAGE BINARY: each option of BINARY's --help is documented in PAGE: it is (a
# whole word of) the tag of a .TP entry, as in OPTIONS; a mention in an example is not enough.
check_page() {
  local page=$1 bin=$2 opt text missing=() n=0
  text=$(page_text "$page" | awk 'prev == ".TP" { print } { prev = $0 }')
  while read -r opt; do
    n=$((n + 1))
    grep -qE -- "(^|[^a-zA-Z0-9-])${opt}([^a-zA-Z0-9-]|\$)" <<<"$text" || missing+=("$opt")
  done < <(options_of "$bin")
  [ "$n" -gt 0 ] || fail "no option found in $bin --help"
  [ ${#missing[@]} -eq 0 ] || fail "$(basename "$page") does not document: ${missing[*]}"
  ok "$(basename "$page") documents all $n options of $(basename "$bin") --help"
}
check_page "$MAN/cachesvc.8" "$2"
check_page "$MAN/cachesvc-cli.1" "$3"
check_page "$MAN/cachesvc-warm.1" "$4"
check_page "$MAN/cachesvc-verify.1" "$5"

# 2. cachesvc.ini.5 is current: regenerate and compare.
fresh=$(mktemp /tmp/cs-man-ini.XXXXXX)
trap 'rm -f "$fresh"' EXIT
bash "$SRC/scripts/gen-ini-man" - >"$fresh" || fail "scripts/gen-ini-man failed"
diff -u "$MAN/cachesvc.ini.5" "$fresh" >&2 ||
  fail "man/cachesvc.ini.5 is not what scripts/gen-ini-man writes from CONFIG.md: run scripts/gen-ini-man"
ok "man/cachesvc.ini.5 matches scripts/gen-ini-man's output"

# 3. ... and names every section and key of CONFIG.md's tables (read independently of the
# generator: the "## [section]" headings and the first column of "| key | type |" tables).
text=$(page_text "$MAN/cachesvc.ini.5")
missing=()
nkeys=0
while IFS=$'\t' read -r section key; do
  nkeys=$((nkeys + 1))
  # the key is the tag of a .TP entry below the section's .SH heading
  awk -v sec="$(tr '[:lower:]' '[:upper:]' <<<"$section")" -v key="$key" '
    /^\.SH / { h = $0; sub(/^\.SH "?/, "", h); sub(/"$/, "", h); cur = (h == sec) }
    cur && prev == ".TP" && $0 == key { found = 1 }
    { prev = $0 }
    END { exit !found }' <<<"$text" || missing+=("$section $key")
done < <(awk '
  /^## \[/ { sec = substr($0, 4); inkeys = 0; next }
  /^#/ { sec = ""; inkeys = 0; next }
  /^\| key \| type \|/ { inkeys = (sec != ""); next }
  /^\|/ && inkeys { split($0, c, "|"); k = c[2]; gsub(/[ `]/, "", k); if (k !~ /^-+$/) print sec "\t" k; next }
  { inkeys = 0 }' "$SRC/cachesvc/config/CONFIG.md")
[ "$nkeys" -gt 40 ] || fail "read only $nkeys keys from CONFIG.md"
[ ${#missing[@]} -eq 0 ] || fail "cachesvc.ini.5 lacks: ${missing[*]}"
ok "cachesvc.ini.5 documents all $nkeys keys of CONFIG.md under their sections"
