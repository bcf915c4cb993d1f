# SPDX-License-Identifier: MIT
# Helpers for the multi-process CLI tests (sourced by tests/cli/cli_*.sh).
#
# Every process a test starts is recorded and killed on exit (trap EXIT);
# waits poll a condition until a deadline, never a bare sleep; daemons
# listen on 127.0.0.1:0 and report the bound address on stdout's first
# line (--print-address); other free ports are found at run time.  Every
# stderr file is scanned for sanitizer reports at the end, and a report
# fails the test.  NT_KEEP=1 keeps the scratch directory for a post-mortem.
#
# Needs: NOTIFIER and NOTIFIERD (paths of the built binaries; ctest passes
# them in the environment), bash and python3.

set -euo pipefail

: "${NOTIFIER:?set NOTIFIER to the path of the notifier binary}"
: "${NOTIFIERD:?set NOTIFIERD to the path of the notifierd binary}"
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }

# Leak checks on, wherever the sanitizer options come from.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# The tests say everything on the command line; none of the user's
# settings may leak in.
unset NOTIFIER_SERVER NOTIFIER_KEY NOTIFIER_KEY_FILE NOTIFIER_LISTEN \
    NOTIFIER_ADVERTISE NOTIFIER_SEEDS NOTIFIER_WORKERS NOTIFIER_LOG_LEVEL \
    NOTIFIER_LOG_FORMAT

T=$(mktemp -d "${TMPDIR:-/tmp}/nt-cli.XXXXXX")
TEST_NAME=$(basename "$0" .sh)
declare -a PIDS=()
declare -A PID=() ADDR=() NODE_ID=()
STEP="setup"
SANITIZER_RE='ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: [A-Za-z]*Sanitizer'

log() {
    printf '[%s] %s\n' "$TEST_NAME" "$*" >&2
}

step() {
    STEP=$*
    log "-- $STEP"
}

fail() {
    log "FAIL ($STEP): $*"
    exit 1
}

# alive PID: true while the process runs (a zombie counts as gone).
alive() {
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) ||
        return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# gone_within PID SECONDS: waits until PID exits; false at the deadline.
gone_within() {
    local pid=$1 end=$((SECONDS + $2))
    while alive "$pid"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.05
    done
}

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# stop PID [SIGNAL]: signals PID (TERM by default), waits up to 20 s for it
# to exit and sets STOP_RC to its exit status.
stop() {
    local pid=$1 sig=${2:-TERM}
    kill "-$sig" "$pid" 2>/dev/null || true
    if ! gone_within "$pid" 20; then
        kill -KILL "$pid" 2>/dev/null || true
        fail "process $pid did not exit within 20 s of SIG$sig"
    fi
    STOP_RC=0
    wait "$pid" || STOP_RC=$?
    forget_pid "$pid"
}

# reap PID SECONDS: waits for a process that should exit by itself; sets
# STOP_RC.
reap() {
    local pid=$1
    if ! gone_within "$pid" "$2"; then
        fail "process $pid did not exit within $2 s"
    fi
    STOP_RC=0
    wait "$pid" || STOP_RC=$?
    forget_pid "$pid"
}

check_sanitizers() {
    local f bad=0
    for f in "$@"; do
        if [ -f "$f" ] && grep -qE "$SANITIZER_RE" "$f"; then
            log "sanitizer report in $f:"
            sed 's/^/    /' "$f" >&2
            bad=1
        fi
    done
    return "$bad"
}

cleanup() {
    local rc=$? p f
    trap - EXIT
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do
        if ! gone_within "$p" 10; then
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    if ! check_sanitizers "$T"/*.err "$T"/err; then
        rc=1
    fi
    if [ "$rc" -ne 0 ]; then
        for f in "$T"/*.err "$T"/*.out "$T"/err "$T"/out; do
            [ -s "$f" ] || continue
            log "---- $(basename "$f") (last 40 lines)"
            tail -n 40 "$f" | sed 's/^/    /' >&2
        done
        log "FAILED"
    else
        log "PASSED"
    fi
    if [ "${NT_KEEP:-0}" = 1 ]; then
        log "scratch directory kept: $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT

# ---- Running commands ----------------------------------------------------

# expect RC CMD...: runs CMD (stdin from /dev/null unless STDIN names a
# file) with stdout in $T/out and stderr in $T/err; fails unless it exits
# RC and stderr is free of sanitizer reports.
expect() {
    local want=$1 rc=0
    shift
    "$@" <"${STDIN:-/dev/null}" >"$T/out" 2>"$T/err" || rc=$?
    check_sanitizers "$T/err" || fail "sanitizer report from: $*"
    if [ "$rc" != "$want" ]; then
        log "stdout: $(head -c 2000 "$T/out")"
        log "stderr: $(head -c 2000 "$T/err")"
        fail "exit status $rc, expected $want: $*"
    fi
}

# expect_err RC PROG REGEX CMD...: as expect, and stderr must be exactly one
# line, "PROG: ..." matching the extended REGEX.
expect_err() {
    local want=$1 prog=$2 re=$3
    shift 3
    expect "$want" "$@"
    local n
    n=$(wc -l <"$T/err")
    if [ "$n" != 1 ]; then
        log "stderr: $(cat "$T/err")"
        fail "expected exactly one line on stderr, got $n: $*"
    fi
    grep -qE "^$prog: " "$T/err" ||
        fail "stderr does not start with '$prog: ': $(cat "$T/err")"
    grep -qE -- "$re" "$T/err" ||
        fail "stderr '$(cat "$T/err")' does not match /$re/: $*"
}

# usage CMD...: exit 2, one stderr line from notifier, nothing on stdout.
usage() {
    expect_err 2 notifier . "$@"
    [ ! -s "$T/out" ] || fail "usage error printed on stdout: $*"
}

# usage_d CMD...: the same for notifierd.
usage_d() {
    expect_err 2 notifierd . "$@"
    [ ! -s "$T/out" ] || fail "usage error printed on stdout: $*"
}

# out_is TEXT: $T/out is exactly TEXT plus a newline.
out_is() {
    local got
    got=$(cat "$T/out"; echo x)
    [ "$got" = "$1"$'\n'x ] ||
        fail "stdout is '$(head -c 500 "$T/out")', expected '$1'"
}

# until_ok SECONDS WHAT CMD...: runs CMD (quietly) until it succeeds; fails
# with WHAT at the deadline.
until_ok() {
    local secs=$1 what=$2 end
    shift 2
    end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1 </dev/null; do
        [ "$SECONDS" -lt "$end" ] || fail "timed out after $secs s: $what"
        sleep 0.1
    done
}

# py FILE EXPR: true when the Python expression EXPR holds with d = the
# JSON document in FILE (and ids/addr available as lists from argv).
py() {
    python3 - "$@" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    d = json.load(f)
args = sys.argv[3:]
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}

# free_port: a TCP port that was free a moment ago (for addresses nothing
# listens on, never for listening).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# lines FILE: the number of complete lines in FILE (0 if missing).
lines() {
    if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# ---- Daemons --------------------------------------------------------------

# new_key FILE: a fresh cluster key (stderr kept for the sanitizer scan).
new_key() {
    "$NOTIFIER" keygen >"$1" 2>>"$T/keygen.err" </dev/null
}

# start_daemon NAME [notifierd options...]: starts notifierd on
# 127.0.0.1:0 with $KEY; fills PID[NAME], ADDR[NAME] (from --print-address)
# and NODE_ID[NAME] (from the "daemon ready" log line).
start_daemon() {
    local name=$1 end
    shift
    "$NOTIFIERD" --listen 127.0.0.1:0 --print-address --key-file "$KEY" \
        --log-level info "$@" >"$T/$name.out" 2>"$T/$name.err" </dev/null &
    PID[$name]=$!
    PIDS+=("$!")
    end=$((SECONDS + 15))
    until grep -q 'msg="daemon ready"' "$T/$name.err" 2>/dev/null; do
        alive "${PID[$name]}" || fail "notifierd $name exited at start"
        [ "$SECONDS" -lt "$end" ] || fail "notifierd $name did not start"
        sleep 0.05
    done
    ADDR[$name]=$(head -n 1 "$T/$name.out")
    NODE_ID[$name]=$(sed -n 's/.*msg="daemon ready" id=\([0-9a-f]*\) .*/\1/p' \
        "$T/$name.err" | head -n 1)
    [ -n "${NODE_ID[$name]}" ] || fail "no node id in $name's log"
    [[ "${ADDR[$name]}" =~ ^127\.0\.0\.1:[0-9]+$ ]] ||
        fail "notifierd $name printed '${ADDR[$name]}' as its address"
    grep 'msg="daemon ready"' "$T/$name.err" |
        grep -q "address=${ADDR[$name]}\( \|\$\)" ||
        fail "the log line of $name does not name ${ADDR[$name]}"
    log "notifierd $name: pid ${PID[$name]} ${ADDR[$name]} ${NODE_ID[$name]}"
}

# need_real_port NAME: the cluster tests need the bound port, which only a
# node with the transport reports (a port-0 listen must come back as the
# real port).
need_real_port() {
    [[ "${ADDR[$1]}" != *:0 ]] ||
        fail "notifierd $1 reports ${ADDR[$1]}: the bound port is unknown (no transport yet?)"
}

# sink_has NAME LINE: the daemon's stdout (after the address line) holds
# LINE exactly, as a whole line.
sink_has() {
    tail -n +2 "$T/$1.out" | grep -qxF -- "$2"
}

# sink_count NAME LINE: how many times it holds LINE.
sink_count() {
    tail -n +2 "$T/$1.out" | grep -cxF -- "$2" || true
}

# subs_is SERVER OBJECT CMD N: SERVER's routing table holds exactly N
# registrations of OBJECT/CMD (for polling with until_ok).
subs_is() {
    "$NOTIFIER" -k "$KEY" -s "$1" --json subs >"$T/subs.json" \
        2>>"$T/poll.err" </dev/null || return 1
    py "$T/subs.json" \
        'sum(s["object"] == args[0] and s["cmd"] == args[1] for s in d["subs"]) == int(args[2])' \
        "$2" "$3" "$4"
}

# live_members_is SERVER N: SERVER sees exactly N live members: alive or
# suspect, as `wait --members` counts them (a suspect is still a member
# until the failure detector declares it dead).
live_members_is() {
    "$NOTIFIER" -k "$KEY" -s "$1" --json members >"$T/members.json" \
        2>>"$T/poll.err" </dev/null || return 1
    py "$T/members.json" \
        'sum(m["state"] in ("alive", "suspect") for m in d["members"]) == int(args[0])' "$2"
}
