#!/bin/sh
# SPDX-License-Identifier: MIT
# Generates the man pages notifierd(8) and notifier(1) from the programs'
# own --help (and, for notifier, `notifier help CMD` for every command)
# plus docs/man/*.h2m, with help2man.  The --help texts are the one
# source; tests/cli/cli_man.sh checks the committed pages still match.
#   scripts/gen_man.sh [BUILD_DIR] [OUT_DIR]    (default: build docs/man)
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
OUT=${2:-docs/man}
BIN=$BUILD_DIR/src/cli
command -v help2man >/dev/null || ./scripts/setup.sh help2man
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One COMMANDS section from every command's own help.
{
  echo "[COMMANDS]"
  for cmd in keygen pub rpc sub reply members subs wait stats bench; do
    echo ".SS $cmd"
    echo ".nf"
    "$BIN/notifier" help "$cmd" | sed -n '1,/^global options:/p' |
      sed '/^global options:/d' | sed 's/\\/\\e/g; s/^\./\\\&./'
    echo ".fi"
  done
} >"$tmp/commands.h2m"
cat docs/man/notifier.h2m "$tmp/commands.h2m" >"$tmp/notifier.h2m"

# A fixed date keeps the pages reproducible (and the check meaningful).
export SOURCE_DATE_EPOCH=1767225600
help2man --no-info --section 8 --name "one notifier cluster node as a daemon" \
  --include docs/man/notifierd.h2m --output "$OUT/notifierd.8" "$BIN/notifierd"
help2man --no-info --section 1 --name "command-line client for a notifier cluster" \
  --include "$tmp/notifier.h2m" --output "$OUT/notifier.1" "$BIN/notifier"
