#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# notifier bench against one notifierd: usage errors exit 2 before any
# network; `bench rpc` through the server to a `bench serve` responder
# (every call ok, sane latency figures, one JSON object); `bench pub`
# with in-process subscribers (every notification arrives) and from a
# member node; serve's own counts when it leaves, and its --msgs exit; an
# interrupted run still prints its summary; no responder, no subscriber
# and an unreachable server exit 1 with one line on stderr.  Counts only,
# never speeds: no wall-clock assertions.
source "$(dirname "$0")/lib.sh"

N=$NOTIFIER
KEY=$T/key
new_key "$KEY"

step "usage errors exit 2 with one line, before any network"
U=("$N" -k "$KEY" -s 127.0.0.1:1)
usage "${U[@]}" bench
usage "${U[@]}" bench nosuch
usage "${U[@]}" bench rpc extra
usage "${U[@]}" bench rpc --msgs x
usage "${U[@]}" bench rpc --msgs -3
usage "${U[@]}" bench rpc --msgs 4294967296
usage "${U[@]}" bench rpc --msgs 0
usage "${U[@]}" bench rpc --size 1048577
grep -q 'payload limit' "$T/err" || fail "oversized --size: $(cat "$T/err")"
usage "${U[@]}" bench rpc --size 1k
usage "${U[@]}" bench rpc --inflight 0
usage "${U[@]}" bench rpc --inflight 1025
usage "${U[@]}" bench rpc --duration 0
usage "${U[@]}" bench rpc --duration abc
usage "${U[@]}" bench pub --duration inf
usage "${U[@]}" bench rpc --subs 1
usage "${U[@]}" bench pub --subs 65
usage "${U[@]}" bench serve --size 10
usage "${U[@]}" bench serve --inflight 2
usage "${U[@]}" bench rpc --object ''
usage "${U[@]}" bench pub --cmd ''
usage "${U[@]}" bench rpc --count 3
usage "${U[@]}" bench rpc --listen nohost
usage "${U[@]}" pub --msgs 3 a 1 c x
usage "$N" -k "$KEY" bench rpc
expect 0 "$N" bench --help
grep -q '^usage: notifier bench' "$T/out" || fail "bench --help: $(head -n 1 "$T/out")"

step "a daemon and a bench serve responder"
start_daemon d
need_real_port d
S=${ADDR[d]}
B=("$N" -k "$KEY" -s "$S")
"${B[@]}" --json bench serve >"$T/serve.out" 2>"$T/serve.err" </dev/null &
SERVE=$!
PIDS+=("$SERVE")
# The responder answers calls and counts notifications of bench/echo.
until_ok 30 "bench serve's registrations reach the server" \
    subs_is "$S" bench echo 2
CALLS=0

step "bench rpc: 200 calls, 4 in flight, all ok"
expect 0 "${B[@]}" --json bench rpc --msgs 200 --inflight 4
[ "$(wc -l <"$T/out")" = 1 ] || fail "--json printed $(wc -l <"$T/out") lines"
py "$T/out" '(d["mode"] == "rpc" and d["count"] == 200 and d["ok"] == 200
    and d["errors"] == 0 and d["error_counts"] == [] and d["inflight"] == 4
    and d["size"] == 100 and d["msgs"] == 200 and not d["interrupted"])' ||
    fail "summary: $(cat "$T/out")"
py "$T/out" '(0 < d["latency_us"]["p50"] <= d["latency_us"]["p90"]
    <= d["latency_us"]["p99"] <= d["latency_us"]["max"]
    and d["elapsed_s"] > 0 and d["calls_per_s"] > 0)' ||
    fail "latency figures: $(cat "$T/out")"
CALLS=$((CALLS + 200))

step "bench rpc: text summary, empty and large payloads"
expect 0 "${B[@]}" bench rpc --msgs 50 --size 0
grep -qE '^  calls +50 ok, 0 errors in ' "$T/out" || fail "text: $(cat "$T/out")"
grep -qE '^  latency +p50 [0-9]+ us, p90 [0-9]+ us, p99 [0-9]+ us, max [0-9]+ us' \
    "$T/out" || fail "text: $(cat "$T/out")"
expect 0 "${B[@]}" --json bench rpc --msgs 20 --size 65536 --inflight 2
py "$T/out" 'd["ok"] == 20 and d["errors"] == 0' || fail "64 KiB: $(cat "$T/out")"
CALLS=$((CALLS + 70))

step "bench rpc from a member node"
expect 0 "${B[@]}" --json bench rpc --msgs 100 --inflight 3 \
    --listen 127.0.0.1:0
py "$T/out" 'd["ok"] == 100 and d["errors"] == 0 and d["member"]' ||
    fail "member rpc: $(cat "$T/out")"
CALLS=$((CALLS + 100))

step "bench pub with 2 subscribers: every notification arrives"
expect 0 "${B[@]}" --json bench pub --msgs 500 --subs 2 --inflight 2
py "$T/out" '(d["mode"] == "pub" and d["published"] == 500
    and d["errors"] == 0 and d["subs"] == 2 and d["expected"] == 1000
    and d["received"] == 1000 and d["lost"] == 0
    and d["received_per_sub"] == [500, 500])' ||
    fail "summary: $(cat "$T/out")"
NOTES=500

step "bench pub from a member node, 1 subscriber"
expect 0 "${B[@]}" --json bench pub --msgs 300 --subs 1 --object bmember \
    --listen 127.0.0.1:0
py "$T/out" '(d["published"] == 300 and d["received"] == 300
    and d["lost"] == 0 and d["member"])' ||
    fail "member pub: $(cat "$T/out")"
expect 0 "${B[@]}" bench pub --msgs 10 --subs 1 --object btext
grep -qE '^  received +10 of 10, 0 lost, in ' "$T/out" ||
    fail "text: $(cat "$T/out")"

step "an interrupted run prints its summary and exits 0"
"${B[@]}" --json bench rpc --duration 60 >"$T/int.out" 2>"$T/int.err" \
    </dev/null &
INT=$!
PIDS+=("$INT")
end=$((SECONDS + 30))
# Plain progress lines (stderr is no terminal), the first after 1 s.
until grep -qE '^bench rpc: [0-9]+ calls, 0 errors, [0-9]+ calls/s$' \
    "$T/int.err" 2>/dev/null; do
    alive "$INT" || fail "bench rpc exited early: $(cat "$T/int.err")"
    [ "$SECONDS" -lt "$end" ] || fail "no progress line in 30 s"
    sleep 0.05
done
stop "$INT" INT
[ "$STOP_RC" = 0 ] || fail "interrupted bench rpc exited $STOP_RC"
py "$T/int.out" '(d["interrupted"] and d["ok"] > 0 and d["errors"] == 0
    and d["msgs"] is None and d["duration_s"] == 60)' ||
    fail "interrupted summary: $(cat "$T/int.out")"
CALLS=$((CALLS + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$T/int.out")))

step "bench serve counts what it served and leaves on SIGTERM"
stop "$SERVE" TERM
[ "$STOP_RC" = 0 ] || fail "bench serve exited $STOP_RC"
grep -q '^bench serve: ready at 127\.0\.0\.1:[0-9]*: ' "$T/serve.err" ||
    fail "no ready line: $(cat "$T/serve.err")"
py "$T/serve.out" '(d["mode"] == "serve" and d["calls"] == int(args[0])
    and d["notifications"] == int(args[1]))' "$CALLS" "$NOTES" ||
    fail "serve counted $(cat "$T/serve.out"), expected $CALLS calls and $NOTES notifications"
until_ok 30 "bench serve's registrations leave the server" \
    subs_is "$S" bench echo 0

step "bench serve --msgs N exits by itself after N"
"${B[@]}" --json bench serve --object bcount --msgs 30 \
    >"$T/serve2.out" 2>"$T/serve2.err" </dev/null &
SERVE2=$!
PIDS+=("$SERVE2")
until_ok 30 "the second responder reaches the server" \
    subs_is "$S" bcount echo 2
expect 0 "${B[@]}" --json bench rpc --object bcount --msgs 30
reap "$SERVE2" 20
[ "$STOP_RC" = 0 ] || fail "bench serve --msgs exited $STOP_RC"
py "$T/serve2.out" 'd["calls"] == 30 and not d["interrupted"]' ||
    fail "serve --msgs: $(cat "$T/serve2.out")"

step "no responder, no subscriber, unreachable server: exit 1, one line"
until_ok 30 "the second responder leaves the server" \
    subs_is "$S" bcount echo 0
expect_err 1 notifier '^notifier: bench: nobody/echo: [0-9]+ of [0-9]+ calls failed: .*no target.*bench serve' \
    "${B[@]}" --json bench rpc --object nobody --msgs 10 --inflight 2
py "$T/out" '(d["ok"] == 0 and d["errors"] >= 1
    and d["error_counts"][0]["code"] == -3)' ||
    fail "no-target summary: $(cat "$T/out")"
expect_err 1 notifier 'publishes failed: .*no target' \
    "${B[@]}" bench pub --object nobody --msgs 10
P=$(free_port)
expect_err 1 notifier "^notifier: bench: reaching 127\\.0\\.0\\.1:$P: " \
    "$N" -k "$KEY" -s "127.0.0.1:$P" --timeout 1000 bench rpc --msgs 5
[ ! -s "$T/out" ] || fail "unreachable: printed $(cat "$T/out")"

stop "${PID[d]}" TERM
[ "$STOP_RC" = 0 ] || fail "notifierd exited $STOP_RC"
