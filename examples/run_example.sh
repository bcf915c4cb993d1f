#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs one example the way a user would, with a fresh random cluster key:
# starts its server programs one after the other (each prints
# "READY host:port" as its first line; every server after the first joins
# through the first), runs the client against the first server, then
# stops the servers by closing their stdin and prints what every program
# wrote.  Exits non-zero when any program fails, says something on stderr
# that looks like a sanitizer report, or misses a deadline.
#
#   run_example.sh -s 'SERVER [ARGS]' [-s ...] -c 'CLIENT [ARGS]'
#
# Used by the example_* tests (ctest -L example).

set -euo pipefail

servers=()
client=
while getopts "s:c:" opt; do
    case $opt in
    s) servers+=("$OPTARG") ;;
    c) client=$OPTARG ;;
    *) echo "usage: $0 -s SERVER [-s SERVER...] -c CLIENT" >&2; exit 2 ;;
    esac
done
[ -n "$client" ] && [ ${#servers[@]} -gt 0 ] ||
    { echo "usage: $0 -s SERVER [-s SERVER...] -c CLIENT" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cat_pids=()
stdin_fds=()
cleanup() {
    local p
    for p in "${pids[@]}" "${cat_pids[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

NOTIFIER_KEY=$(head -c 32 /dev/urandom | base64)
export NOTIFIER_KEY
unset NOTIFIER_LISTEN
seed=
status=0

# closing_stdins CMD...: runs CMD without our ends of the servers' stdin
# pipes, so that a server sees end-of-file as soon as we close ours.
closing_stdins() {
    local f
    for f in "${stdin_fds[@]}"; do
        exec {f}>&-
    done
    exec "$@"
}

sanitizer_report() {
    grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$1"
}

for i in "${!servers[@]}"; do
    mkfifo "$tmp/in$i" "$tmp/out$i"
    # shellcheck disable=SC2086  # the command line is split on purpose
    (
        export NOTIFIER_SEEDS=$seed
        closing_stdins ${servers[$i]}
    ) <"$tmp/in$i" >"$tmp/out$i" 2>"$tmp/err$i" &
    pids+=($!)
    exec {w}>"$tmp/in$i"
    stdin_fds+=("$w")
    exec {r}<"$tmp/out$i"
    if ! read -r -t 30 line <&"$r" || [[ $line != READY\ * ]]; then
        echo "run_example: '${servers[$i]}' did not start" >&2
        cat "$tmp/err$i" >&2
        exit 1
    fi
    (closing_stdins cat) <&"$r" >"$tmp/log$i" &
    cat_pids+=($!)
    exec {r}<&-
    [ -n "$seed" ] || seed=${line#READY }
done

rc=0
# shellcheck disable=SC2086
(
    export NOTIFIER_SEEDS=$seed
    closing_stdins timeout 60 $client
) >"$tmp/client" 2>"$tmp/client.err" || rc=$?

# Closing stdin asks each server to drain and leave.
for w in "${stdin_fds[@]}"; do
    exec {w}>&-
done
for i in "${!pids[@]}"; do
    src=0
    # Bounded: a server that does not leave within 30 s is killed.
    timeout 30 tail --pid="${pids[$i]}" -f /dev/null ||
        kill -9 "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" || src=$?
    wait "${cat_pids[$i]}" || true # the rest of its output is in the log
    echo "\$ ${servers[$i]##*/}"
    cat "$tmp/log$i"
    if [ "$src" -ne 0 ] || sanitizer_report "$tmp/err$i"; then
        echo "run_example: '${servers[$i]}' failed (status $src):" >&2
        cat "$tmp/err$i" >&2
        status=1
    fi
    echo
done
pids=()
cat_pids=()
echo "\$ ${client##*/}"
cat "$tmp/client"
if [ "$rc" -ne 0 ] || sanitizer_report "$tmp/client.err"; then
    echo "run_example: '$client' failed (status $rc):" >&2
    cat "$tmp/client.err" >&2
    status=1
fi
exit $status
