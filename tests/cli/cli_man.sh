#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The committed man pages (docs/man/notifierd.8, docs/man/notifier.1) are
# generated from the programs' own --help and per-command help: rebuilding
# them from the binaries under test must give the same pages, so --help and
# the man pages cannot drift apart.  Regenerate with scripts/gen_man.sh.
source "$(dirname "$0")/lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$(dirname "$NOTIFIER")/../.." && pwd)
command -v help2man >/dev/null || fail "help2man is not installed (scripts/setup.sh installs it)"

step "regenerate from the binaries and compare"
"$SRC/scripts/gen_man.sh" "$BUILD" "$T" >"$T/gen.out" 2>&1 ||
    fail "gen_man.sh failed: $(tail -n 3 "$T/gen.out")"
for page in notifierd.8 notifier.1; do
    diff -u "$SRC/docs/man/$page" "$T/$page" >"$T/$page.diff" ||
        fail "$page is out of date with --help (run scripts/gen_man.sh): $(head -n 20 "$T/$page.diff")"
done

step "every option of --help is in the page"
for opt in $("$NOTIFIERD" --help | grep -oE -- '--[a-z-]+' | sort -u); do
    grep -qF -- "${opt//-/\\-}" "$SRC/docs/man/notifierd.8" || fail "notifierd.8 lacks $opt"
done
for opt in $("$NOTIFIER" --help | grep -oE -- '--[a-z-]+' | sort -u); do
    grep -qF -- "${opt//-/\\-}" "$SRC/docs/man/notifier.1" || fail "notifier.1 lacks $opt"
done
log "man pages match --help"
