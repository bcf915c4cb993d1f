#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One notifierd: every bad flag, address or key exits 2 with one line on
# stderr before anything binds; flags win over the environment; the
# configuration can come from the environment alone; the start line names
# the node id and the bound address (--print-address prints it alone on
# stdout); SIGTERM and SIGINT leave gracefully and exit 0; both log
# formats.
source "$(dirname "$0")/lib.sh"

D=$NOTIFIERD
KEY=$T/key
new_key "$KEY"

step "help and version"
expect 0 "$D" --help
grep -q '^usage: notifierd --listen' "$T/out" || fail "help: $(head -n 1 "$T/out")"
for f in --listen --advertise --seed --key-file --workers --echo --sink \
    --log-level --log-format --print-address; do
    grep -q -- "$f" "$T/out" || fail "--help does not mention $f"
done
expect 0 "$D" -h
expect 0 "$D" --version
grep -qxE 'notifierd [0-9]+\.[0-9]+\.[0-9]+' "$T/out" || fail "version: $(cat "$T/out")"

step "bad flags exit 2 before anything binds"
# --print-address is given each time: the address line would come right
# after binding, so an empty stdout shows nothing was bound.
L=(--listen 127.0.0.1:0 --print-address)
usage_d "$D" "${L[@]}" --key-file "$KEY" --bogus
usage_d "$D" "${L[@]}" --key-file "$KEY" extra
usage_d "$D" "${L[@]}" --key-file "$KEY" --listen
usage_d "$D" "${L[@]}" --key-file "$KEY" --print-address=yes
usage_d "$D" --print-address --key-file "$KEY"
grep -qx 'notifierd: no listen address: give --listen or set NOTIFIER_LISTEN' "$T/err" ||
    fail "no listen: $(cat "$T/err")"
for a in nohost 127.0.0.1 127.0.0.1:65536 "" :1 "a b:1" "[::1]"; do
    usage_d "$D" --print-address --key-file "$KEY" --listen "$a"
    grep -q 'bad or unusable address' "$T/err" || fail "listen '$a': $(cat "$T/err")"
done
for a in nohost 127.0.0.1:0 "a:1,b:2" ""; do
    usage_d "$D" "${L[@]}" --key-file "$KEY" --advertise "$a"
done
for s in nohost 127.0.0.1:0 "a:1,,b:2" "" 127.0.0.1:99999; do
    usage_d "$D" "${L[@]}" --key-file "$KEY" --seed 127.0.0.1:9 --seed "$s"
    grep -q -- '--seed' "$T/err" || fail "seed '$s': $(cat "$T/err")"
done
for w in -1 x 1025 1.5 ""; do
    usage_d "$D" "${L[@]}" --key-file "$KEY" --workers "$w"
done
usage_d "$D" "${L[@]}" --key-file "$KEY" --log-level loud
usage_d "$D" "${L[@]}" --key-file "$KEY" --log-format xml
for s in noslash /cmd obj/ / ""; do
    usage_d "$D" "${L[@]}" --key-file "$KEY" --sink "$s"
    grep -q -- '--sink' "$T/err" || fail "sink '$s': $(cat "$T/err")"
done
usage_d "$D" "${L[@]}" --key-file "$KEY" --sink a/b --sink a/b
usage_d "$D" "${L[@]}" --key-file "$KEY" --echo ""
usage_d "$D" "${L[@]}" --key-file "$KEY" --echo svc --echo svc
usage_d "$D" "${L[@]}" --key-file "$KEY" --echo "$(printf 'o%.0s' {1..256})"

step "a cluster key is required and checked before binding"
usage_d "$D" "${L[@]}"
grep -qx 'notifierd: no cluster key: give --key-file or set NOTIFIER_KEY/NOTIFIER_KEY_FILE' "$T/err" ||
    fail "no key: $(cat "$T/err")"
usage_d "$D" "${L[@]}" --key-file "$T/nonexistent"
grep -q 'nonexistent: No such file or directory' "$T/err" || fail "$(cat "$T/err")"
echo "not a key" >"$T/badkey"
usage_d "$D" "${L[@]}" --key-file "$T/badkey"
grep -q 'authentication failed' "$T/err" || fail "$(cat "$T/err")"
usage_d "$D" "${L[@]}" --key-file "$T"
NOTIFIER_KEY=garbage usage_d "$D" "${L[@]}"
NOTIFIER_KEY_FILE="$T/badkey" usage_d "$D" "${L[@]}"

step "bad environment values exit 2 too"
NOTIFIER_LISTEN=nohost usage_d "$D" --print-address --key-file "$KEY"
grep -q NOTIFIER_LISTEN "$T/err" || fail "$(cat "$T/err")"
NOTIFIER_SEEDS="127.0.0.1:9,," usage_d "$D" "${L[@]}" --key-file "$KEY"
NOTIFIER_ADVERTISE=x usage_d "$D" "${L[@]}" --key-file "$KEY"
NOTIFIER_WORKERS=many usage_d "$D" "${L[@]}" --key-file "$KEY"
NOTIFIER_LOG_LEVEL=loud usage_d "$D" "${L[@]}" --key-file "$KEY"
NOTIFIER_LOG_FORMAT=xml usage_d "$D" "${L[@]}" --key-file "$KEY"

step "start, log the id and the bound address, leave on SIGTERM"
start_daemon a --echo svc --sink ev/put --sink "orders/eu/created" --workers 2
[ "$(head -n 1 "$T/a.out")" = "${ADDR[a]}" ] || fail "first stdout line"
[[ "${NODE_ID[a]}" =~ ^[0-9a-f]{32}$ ]] || fail "node id '${NODE_ID[a]}'"
grep -q 'level=info msg="daemon ready" id=' "$T/a.err" || fail "ready line format"
stop "${PID[a]}" TERM
[ "$STOP_RC" = 0 ] || fail "SIGTERM: exit $STOP_RC"
grep -q 'msg="node stopped"' "$T/a.err" || fail "no stop line"
[ "$(wc -l <"$T/a.out")" = 1 ] || fail "stdout holds more than the address"

step "SIGINT leaves too"
start_daemon b
stop "${PID[b]}" INT
[ "$STOP_RC" = 0 ] || fail "SIGINT: exit $STOP_RC"
grep -q 'signal=SIGINT' "$T/b.err" || fail "no SIGINT in the log"

step "flags win over the environment"
NOTIFIER_LISTEN=nohost NOTIFIER_LOG_LEVEL=loud NOTIFIER_KEY=garbage \
    NOTIFIER_SEEDS=bad NOTIFIER_WORKERS=many NOTIFIER_LOG_FORMAT=xml \
    start_daemon c --seed 127.0.0.1:9 --workers 2 --log-format logfmt
grep -q 'seeds=127.0.0.1:9' "$T/c.err" || fail "seeds from the flag: $(cat "$T/c.err")"
stop "${PID[c]}"
[ "$STOP_RC" = 0 ] || fail "exit $STOP_RC"

step "configuration from the environment alone, JSON logs"
NOTIFIER_LISTEN=127.0.0.1:0 NOTIFIER_KEY="$(cat "$KEY")" \
    NOTIFIER_SEEDS="127.0.0.1:9,localhost:10" NOTIFIER_WORKERS=2 \
    NOTIFIER_LOG_LEVEL=debug NOTIFIER_LOG_FORMAT=json \
    "$D" --print-address >"$T/e.out" 2>"$T/e.err" </dev/null &
PID[e]=$!
PIDS+=("$!")
until_ok 15 "the env-configured daemon starts" grep -q '"daemon ready"' "$T/e.err"
stop "${PID[e]}"
[ "$STOP_RC" = 0 ] || fail "exit $STOP_RC"
python3 - "$T/e.err" "$(head -n 1 "$T/e.out")" <<'EOF' || fail "JSON log lines"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for l in lines:
    assert {"ts", "level", "msg"} <= set(l), l
start = [l for l in lines if l["msg"] == "daemon ready"]
assert len(start) == 1 and start[0]["level"] == "info", start
assert start[0]["address"] == sys.argv[2], start
assert start[0]["seeds"] == "127.0.0.1:9,localhost:10", start
assert len(start[0]["id"]) == 32, start
assert any(l["msg"] == "node stopped" for l in lines)
EOF

step "--log-level error keeps stderr quiet"
"$D" --listen 127.0.0.1:0 --print-address --key-file "$KEY" --log-level error \
    >"$T/q.out" 2>"$T/q.err" </dev/null &
PID[q]=$!
PIDS+=("$!")
until_ok 15 "the quiet daemon prints its address" test -s "$T/q.out"
stop "${PID[q]}"
[ "$STOP_RC" = 0 ] || fail "exit $STOP_RC"
[ ! -s "$T/q.err" ] || fail "stderr at --log-level error: $(cat "$T/q.err")"
