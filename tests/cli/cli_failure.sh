#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A node killed with SIGKILL: the survivors notice (members drops to 2,
# `wait --members 3` now fails, `wait --members 2 --converged` succeeds),
# its registrations leave the routing table, and a client whose first
# server was the dead node fails over and still gets its RPCs answered by
# the survivors.  Then SIGTERM: the survivors exit 0.
source "$(dirname "$0")/lib.sh"

KEY=$T/key
new_key "$KEY"

step "three daemons, each serving echo svc"
start_daemon a --echo svc
need_real_port a
start_daemon b --seed "${ADDR[a]}" --echo svc
start_daemon c --seed "${ADDR[a]}" --seed "${ADDR[b]}" --echo svc --echo only_c
need_real_port b
need_real_port c
A=${ADDR[a]} B=${ADDR[b]} C=${ADDR[c]}
nt() { "$NOTIFIER" -k "$KEY" -s "$C,$A,$B" "$@"; }
expect 0 nt --timeout 30000 wait --members 3 --converged
expect 0 nt rpc svc 1 echo hi
out_is $'hi\nhi\nhi'
expect 0 nt rpc only_c 1 echo hi

step "SIGKILL c"
stop "${PID[c]}" KILL
until_ok 40 "a sees 2 live members" live_members_is "$A" 2
until_ok 20 "b sees 2 live members" live_members_is "$B" 2
expect_err 1 notifier 'wait: 3 members' "$NOTIFIER" -k "$KEY" -s "$A" \
    --timeout 500 wait --members 3
expect 0 "$NOTIFIER" -k "$KEY" -s "$A" --timeout 20000 wait --members 2 --converged
expect 0 "$NOTIFIER" -k "$KEY" -s "$B" --json members
py "$T/out" 'args[0] not in [m["id"] for m in d["members"] if m["state"] in ("alive", "suspect")]' \
    "${NODE_ID[c]}" || fail "c still alive for b: $(cat "$T/out")"

step "its registrations are gone"
until_ok 20 "svc served by a and b only" subs_is "$A" svc echo 2
expect 0 "$NOTIFIER" -k "$KEY" -s "$A" --json subs
py "$T/out" 'all(s["node"] != args[0] for s in d["subs"])' "${NODE_ID[c]}" ||
    fail "c's registrations linger: $(cat "$T/out")"
expect_err 1 notifier 'only_c 1 echo: no registration matches' nt rpc only_c 1 echo hi

step "rpc still works through the survivors (the client fails over)"
expect 0 nt rpc svc 2 echo still
out_is $'still\nstill'
expect 0 nt --json rpc svc 3 echo j
py "$T/out" 'sorted(r["node"] for r in d) == sorted(args) and all(r["status"] == "ok" for r in d)' \
    "${NODE_ID[a]}" "${NODE_ID[b]}" || fail "rpc --json: $(cat "$T/out")"

step "SIGTERM: the survivors exit 0"
for n in b a; do
    stop "${PID[$n]}" TERM
    [ "$STOP_RC" = 0 ] || fail "notifierd $n exited $STOP_RC"
done
