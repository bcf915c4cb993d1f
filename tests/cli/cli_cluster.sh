#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Three notifierd processes seeded by each other, driven by the CLI:
# wait for members and convergence; members/subs/stats in text and JSON;
# rpc echo round trips (text, JSON, binary payloads from stdin, several
# targets, no target); pub arriving as exact sink lines; sub --count N
# printing exactly N lines; reply --echo and reply RESPONSE answering rpc;
# graceful leave of a sub; client failover across --server entries; a
# wrong key and a taken port failing cleanly.
source "$(dirname "$0")/lib.sh"

KEY=$T/key
new_key "$KEY"

step "three daemons seeded by each other"
# a: echo svc, sinks ev/put and bin/raw; b: echo svc, sink ev/put;
# c: echo solo.  Each is seeded with the ones started before it (and a
# with nobody): the rest they learn through gossip.
start_daemon a --echo svc --sink ev/put --sink bin/raw
need_real_port a
start_daemon b --seed "${ADDR[a]}" --echo svc --sink ev/put
start_daemon c --seed "${ADDR[a]}" --seed "${ADDR[b]}" --echo solo
need_real_port b
need_real_port c
A=${ADDR[a]} B=${ADDR[b]} C=${ADDR[c]}
# The client talks to a, unless told otherwise.
nt() { "$NOTIFIER" -k "$KEY" -s "$A" "$@"; }

step "wait --members 3 --converged"
expect 0 nt --timeout 30000 wait --members 3 --converged
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "wait printed something"
for s in "$B" "$C"; do
    expect 0 "$NOTIFIER" -k "$KEY" -s "$s" --timeout 20000 wait --members 3 --converged
done
expect 0 nt wait
expect_err 1 notifier 'wait: 4 members' nt --timeout 300 wait --members 4

step "members, text and JSON"
expect 0 nt members
for n in a b c; do
    grep -qE "^${NODE_ID[$n]} +${ADDR[$n]} +alive" "$T/out" ||
        fail "members text lacks $n: $(cat "$T/out")"
done
expect 0 nt --json members
cp "$T/out" "$T/members.json"
py "$T/members.json" 'd["node"] == args[0]' "${NODE_ID[a]}" || fail "members node"
py "$T/members.json" \
    'sorted((m["id"], m["address"]) for m in d["members"] if m["state"] == "alive") == sorted(zip(args[0::2], args[1::2]))' \
    "${NODE_ID[a]}" "$A" "${NODE_ID[b]}" "$B" "${NODE_ID[c]}" "$C" ||
    fail "members JSON: $(cat "$T/members.json")"
expect 0 "$NOTIFIER" -k "$KEY" -s "$C" --json members
py "$T/out" 'd["node"] == args[0] and sum(m["state"] == "alive" for m in d["members"]) == 3' \
    "${NODE_ID[c]}" || fail "members seen by c: $(cat "$T/out")"

step "subs, text and JSON"
expect 0 nt subs
grep -qE "^${NODE_ID[c]} +rpc +solo +echo " "$T/out" || fail "subs text: $(cat "$T/out")"
grep -qE "^${NODE_ID[b]} +notify +ev +put " "$T/out" || fail "subs text: $(cat "$T/out")"
expect 0 nt --json subs
py "$T/out" \
    'sorted((s["node"], s["kind"], s["object"], s["cmd"], s["slice"]) for s in d["subs"]) == sorted([(args[0], "rpc", "svc", "echo", False), (args[0], "notify", "ev", "put", False), (args[0], "notify", "bin", "raw", False), (args[1], "rpc", "svc", "echo", False), (args[1], "notify", "ev", "put", False), (args[2], "rpc", "solo", "echo", False)])' \
    "${NODE_ID[a]}" "${NODE_ID[b]}" "${NODE_ID[c]}" ||
    fail "subs JSON: $(cat "$T/out")"
py "$T/out" 'all(s["mask"] == 0 and s["value"] == 0 for s in d["subs"])' ||
    fail "subs JSON match"

step "stats, text and JSON"
expect 0 nt stats
[ "$(wc -l <"$T/out")" -ge 3 ] || fail "stats text: $(cat "$T/out")"
expect 0 nt --json stats
py "$T/out" 'isinstance(d, dict) and d["node"] == args[0]' "${NODE_ID[a]}" ||
    fail "stats JSON: $(cat "$T/out")"

step "rpc echo round trip"
expect 0 nt rpc solo 7 echo hello
out_is "hello"
expect 0 nt rpc solo @user:42 echo "two words"
out_is "two words"
expect 0 nt --json rpc solo 7 echo hello
py "$T/out" 'd == [{"node": args[0], "status": "ok", "data": "hello"}]' \
    "${NODE_ID[c]}" || fail "rpc --json: $(cat "$T/out")"
# svc has two full registrations (a and b): two replies.
expect 0 nt rpc svc 1 echo hi
out_is $'hi\nhi'
expect 0 nt --json rpc svc 0xff echo hi
py "$T/out" 'sorted(r["node"] for r in d) == sorted(args) and all(r["status"] == "ok" and r["data"] == "hi" for r in d)' \
    "${NODE_ID[a]}" "${NODE_ID[b]}" || fail "rpc svc --json: $(cat "$T/out")"
# An empty payload comes back as an empty line.
expect 0 nt rpc solo 1 echo ""
out_is ""

step "rpc payloads from stdin, escaped when not printable"
printf 'a\000b\\c \xff\n' >"$T/payload"
STDIN=$T/payload expect 0 nt rpc solo 1 echo -
out_is 'a\x00b\x5cc \xff\x0a'
STDIN=$T/payload expect 0 nt rpc solo 1 echo
out_is 'a\x00b\x5cc \xff\x0a'
STDIN=$T/payload expect 0 nt --json rpc solo 1 echo
py "$T/out" 'len(d) == 1 and d[0]["status"] == "ok" and __import__("base64").b64decode(d[0]["data_base64"]) == b"a\0b\\c \xff\n"' ||
    fail "binary rpc --json: $(cat "$T/out")"
printf 'h\xc3\xa9 "q"\n' >"$T/utf8"
STDIN=$T/utf8 expect 0 nt --json rpc solo 1 echo
py "$T/out" 'd[0]["data"] == "h\u00e9 \"q\"\n" and "data_base64" not in d[0]' ||
    fail "UTF-8 rpc --json: $(cat "$T/out")"

step "rpc failures exit 1 with one line"
expect_err 1 notifier 'rpc: nosuch 1 echo: no registration matches' nt rpc nosuch 1 echo x
[ ! -s "$T/out" ] || fail "no-target rpc printed on stdout"
expect_err 1 notifier 'no registration matches' nt rpc solo 1 other x
expect_err 1 notifier 'no registration matches' nt --json rpc solo 1 other x

step "pub arrives as exact sink lines"
expect 0 nt pub ev 42 put hello
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "pub printed something"
until_ok 10 "a's sink line" sink_has a "ev 42 put hello"
until_ok 10 "b's sink line" sink_has b "ev 42 put hello"
expect 0 "$NOTIFIER" -k "$KEY" -s "$C" pub bin 0x10 raw 'sp ace\tx'
until_ok 10 "a's bin sink line" sink_has a 'bin 16 raw sp ace\x5ctx'
STDIN=$T/payload expect 0 nt pub bin 18446744073709551615 raw
until_ok 10 "a's binary sink line" \
    sink_has a 'bin 18446744073709551615 raw a\x00b\x5cc \xff\x0a'
expect 0 nt pub bin @user:42 raw ""
HASH=$(python3 -c 'print(0x77e4a5be974a0c9d)')
until_ok 10 "a's @text sink line" sink_has a "bin $HASH raw "
[ "$(sink_count a "ev 42 put hello")" = 1 ] || fail "a got ev 42 twice"
[ "$(sink_count b "ev 42 put hello")" = 1 ] || fail "b got ev 42 twice"
if grep -q '^bin ' "$T/b.out"; then fail "b printed bin lines it never subscribed"; fi

step "pub failures exit 1 with one line"
expect_err 1 notifier 'pub: nothing 1 here: no registration matches' nt pub nothing 1 here x

step "sub --count N prints exactly N lines"
# (Background processes run the binary itself, not the nt function, so
# that $! is the notifier process.)
"$NOTIFIER" -k "$KEY" -s "$A" sub ev all put --count 3 \
    >"$T/sub.out" 2>"$T/sub.err" </dev/null &
SUB=$!
PIDS+=("$SUB")
# Ready when a (the publishers' server) routes ev/put to a third node.
until_ok 20 "the sub registration reaches a" subs_is "$A" ev put 3
expect 0 nt pub --count 5 ev 9 put n
reap "$SUB" 20
[ "$STOP_RC" = 0 ] || fail "sub --count 3 exited $STOP_RC: $(cat "$T/sub.err")"
[ "$(cat "$T/sub.out")" = $'ev 9 put n\nev 9 put n\nev 9 put n' ] ||
    fail "sub printed: $(cat "$T/sub.out")"
[ ! -s "$T/sub.err" ] || fail "sub wrote to stderr: $(cat "$T/sub.err")"
# It left: its registration is gone everywhere, at once (no failure
# detection needed).
until_ok 10 "the sub's registration leaves a" subs_is "$A" ev put 2
until_ok 10 "the sub's registration leaves c" subs_is "$C" ev put 2

step "sub --json, a match, and SIGTERM"
"$NOTIFIER" -k "$KEY" -s "$A" --json sub ev 3:1 put \
    >"$T/subj.out" 2>"$T/subj.err" </dev/null &
SUBJ=$!
PIDS+=("$SUBJ")
until_ok 20 "the JSON sub reaches a" subs_is "$A" ev put 3
expect 0 nt pub ev 4 put skipped
expect 0 nt pub ev 5 put $'caf\xc3\xa9'
expect 0 nt pub ev 0x9 put last
has_lines() { test "$(lines "$1")" -ge "$2"; } # re-counted on every try
until_ok 10 "two JSON lines" has_lines "$T/subj.out" 2
stop "$SUBJ" TERM
[ "$STOP_RC" = 0 ] || fail "sub on SIGTERM exited $STOP_RC"
python3 - "$T/subj.out" <<'PY' || fail "sub --json: $(cat "$T/subj.out")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# Different ids may be delivered by different workers: any order.
assert sorted((r["object"], r["id"], r["cmd"], r["data"]) for r in rows) == \
    [("ev", 5, "put", "caf\u00e9"), ("ev", 9, "put", "last")], rows
assert all("data_base64" not in r for r in rows), rows
assert all(len(r["from"]) == 32 for r in rows), rows
PY
until_ok 10 "the JSON sub leaves" subs_is "$A" ev put 2

step "reply --echo answers rpc, then exits after --count"
"$NOTIFIER" -k "$KEY" -s "$B" reply q all ask --echo --count 2 \
    >"$T/reply.out" 2>"$T/reply.err" </dev/null &
REPLY=$!
PIDS+=("$REPLY")
until_ok 20 "the reply registration reaches a" subs_is "$A" q ask 1
expect 0 nt rpc q 5 ask ping
out_is "ping"
STDIN=$T/payload expect 0 nt rpc q 6 ask
out_is 'a\x00b\x5cc \xff\x0a'
reap "$REPLY" 20
[ "$STOP_RC" = 0 ] || fail "reply --count 2 exited $STOP_RC: $(cat "$T/reply.err")"
[ "$(sort "$T/reply.out")" = $'q 5 ask ping\nq 6 ask a\\x00b\\x5cc \\xff\\x0a' ] ||
    fail "reply printed: $(cat "$T/reply.out")"
until_ok 10 "the reply registration leaves" subs_is "$A" q ask 0
expect_err 1 notifier 'no registration matches' nt rpc q 5 ask ping

step "reply RESPONSE, a weighted slice on a match"
echo "from stdin" >"$T/resp"
"$NOTIFIER" -k "$KEY" -s "$C" reply q2 1:1 ask fixed --slice 2 \
    >"$T/r2.out" 2>"$T/r2.err" </dev/null &
R2=$!
PIDS+=("$R2")
"$NOTIFIER" -k "$KEY" -s "$C" reply q3 all ask - \
    >"$T/r3.out" 2>"$T/r3.err" <"$T/resp" &
R3=$!
PIDS+=("$R3")
until_ok 20 "the reply registrations reach a" subs_is "$A" q2 ask 1
until_ok 20 "the reply registrations reach a" subs_is "$A" q3 ask 1
expect 0 nt rpc q2 3 ask anything
out_is "fixed"
expect_err 1 notifier 'no registration matches' nt rpc q2 2 ask anything
expect 0 nt --json rpc q3 3 ask anything
py "$T/out" 'len(d) == 1 and d[0]["status"] == "ok" and d[0]["data"] == "from stdin\n"' ||
    fail "reply from stdin: $(cat "$T/out")"
expect 0 nt --json subs
py "$T/out" '[(s["slice"], s["weight"], s["mask"], s["value"]) for s in d["subs"] if s["object"] == "q2"] == [(True, 2, 1, 1)]' ||
    fail "slice registration: $(cat "$T/out")"
stop "$R2" INT
[ "$STOP_RC" = 0 ] || fail "reply on SIGINT exited $STOP_RC"
stop "$R3" TERM
[ "$STOP_RC" = 0 ] || fail "reply on SIGTERM exited $STOP_RC"
[ "$(cat "$T/r2.out")" = "q2 3 ask anything" ] || fail "r2 printed $(cat "$T/r2.out")"

step "the client fails over to the next --server"
DEAD=127.0.0.1:$(free_port)
expect 0 "$NOTIFIER" -k "$KEY" -s "$DEAD,$B" --json members
py "$T/out" 'd["node"] == args[0]' "${NODE_ID[b]}" || fail "failover: $(cat "$T/out")"
expect 0 "$NOTIFIER" -k "$KEY" -s "$DEAD" -s "$C" rpc solo 1 echo over
out_is "over"
expect_err 1 notifier "$DEAD" "$NOTIFIER" -k "$KEY" -s "$DEAD" --timeout 1000 members
expect_err 1 notifier . "$NOTIFIER" -k "$KEY" -s "$DEAD" rpc solo 1 echo x

step "a wrong key cannot talk to the cluster"
new_key "$T/otherkey"
expect_err 1 notifier . "$NOTIFIER" -k "$T/otherkey" -s "$A" --timeout 1000 members
expect_err 1 notifier . "$NOTIFIER" -k "$T/otherkey" -s "$A" --timeout 1000 rpc solo 1 echo x
expect_err 1 notifier . "$NOTIFIER" -k "$T/otherkey" -s "$A" --timeout 1000 sub ev all put

step "a taken port fails with exit 1 and one line"
# (The library may log its own line about the bind; ours is the last.)
expect 1 "$NOTIFIERD" --listen "$A" --key-file "$KEY" --print-address
tail -n 1 "$T/err" | grep -q "^notifierd: listen '$A': " ||
    fail "taken port: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "notifierd printed an address it did not bind"
expect_err 1 notifier "$A" nt sub ev all put --listen "$A"

step "SIGTERM: every daemon leaves and exits 0"
for n in c b a; do
    stop "${PID[$n]}" TERM
    [ "$STOP_RC" = 0 ] || fail "notifierd $n exited $STOP_RC"
    grep -q 'msg="node stopped"' "$T/$n.err" || fail "$n: no stop line"
done
