#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# An abrupt partition between two network namespaces (root only; skipped
# otherwise): node a alone in one, b and c in the other, linked by a veth
# pair.  Cutting the link (no FIN, no RST) under a stream of calls: calls
# to the far side end with a clear status within their timeout (never a
# hang), each side detects the other as dead, the near side keeps
# working.  Restoring the link: seeds are retried, both sides converge to
# one view (equal digests everywhere).
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
    echo "SKIPPED: needs root and iproute2 (network namespaces)"
    exit 77
fi

tag=nt$$
NA=${tag}a NB=${tag}b
net=10.$((200 + RANDOM % 50)).$((RANDOM % 250)).0
pfx=${net%.0}
IPA=$pfx.1 IPB=$pfx.2
ns_cleanup() {
    ip netns del "$NA" 2>/dev/null || true
    ip netns del "$NB" 2>/dev/null || true
}
trap 'ns_cleanup; cleanup' EXIT

step "two namespaces: $NA ($IPA) and $NB ($IPB)"
ip netns add "$NA"
ip netns add "$NB"
ip link add "${tag}va" type veth peer name "${tag}vb"
ip link set "${tag}va" netns "$NA"
ip link set "${tag}vb" netns "$NB"
ip -n "$NA" addr add "$IPA/24" dev "${tag}va"
ip -n "$NB" addr add "$IPB/24" dev "${tag}vb"
for ns in "$NA" "$NB"; do ip -n "$ns" link set lo up; done
ip -n "$NA" link set "${tag}va" up
ip -n "$NB" link set "${tag}vb" up

KEY=$T/key
new_key "$KEY"

# start_in NS NAME LISTEN_IP [args]: notifierd inside a namespace.
start_in() {
    local ns=$1 name=$2 ip=$3 end
    shift 3
    ip netns exec "$ns" "$NOTIFIERD" --listen "$ip:0" --print-address \
        --key-file "$KEY" --log-level info "$@" >"$T/$name.out" \
        2>"$T/$name.err" </dev/null &
    PID[$name]=$!
    PIDS+=("$!")
    end=$((SECONDS + 15))
    until [ -s "$T/$name.out" ]; do
        alive "${PID[$name]}" || fail "$name exited at start: $(tail -n 2 "$T/$name.err")"
        [ "$SECONDS" -lt "$end" ] || fail "$name did not start"
        sleep 0.05
    done
    ADDR[$name]=$(head -n 1 "$T/$name.out")
    log "$name in $ns at ${ADDR[$name]}"
}

# cli NS SERVER args: the CLI inside a namespace, bounded.
cli() {
    local ns=$1 server=$2
    shift 2
    timeout 20 ip netns exec "$ns" "$NOTIFIER" -k "$KEY" -s "$server" "$@"
}

start_in "$NA" a "$IPA" --echo far
start_in "$NB" b "$IPB" --seed "${ADDR[a]}" --echo near
start_in "$NB" c "$IPB" --seed "${ADDR[a]}"
step "converge: three members"
cli "$NB" "${ADDR[b]}" --timeout 20000 wait --members 3 --converged >/dev/null ||
    fail "no convergence before the partition"
cli "$NB" "${ADDR[b]}" rpc far 1 echo before >/dev/null || fail "rpc before"

step "cut the link under a stream of calls"
# A stream of calls to the far side, in the background.
(
    for i in $(seq 1 40); do
        if cli "$NB" "${ADDR[c]}" --timeout 2000 rpc far "$i" echo x \
            >>"$T/stream.out" 2>>"$T/stream.err"; then
            echo ok >>"$T/stream.status"
        else
            echo "fail $?" >>"$T/stream.status"
        fi
    done
) &
STREAM=$!
sleep 0.3 # let a few calls succeed first (pacing, not waiting)
t0=$(date +%s%N)
ip -n "$NA" link set "${tag}va" down

alive_is() { # NS SERVER N: the server sees exactly N alive members
    cli "$1" "$2" --json stats >"$T/st.json" 2>/dev/null || return 1
    py "$T/st.json" "d['members_alive'] == $3"
}
until_ok 30 "b sees a dead" alive_is "$NB" "${ADDR[b]}" 2
t1=$(date +%s%N)
until_ok 30 "a sees b and c dead" alive_is "$NA" "${ADDR[a]}" 1
log "detection: $(((t1 - t0) / 1000000)) ms on the b side"

# No call hangs: each ended by itself (the stream finishes), with ok or a
# clear failure; the near side still serves.
for i in $(seq 1 600); do alive "$STREAM" || break; sleep 0.1; done
alive "$STREAM" && fail "the call stream is stuck"
wait "$STREAM" || true
oks=$(grep -c '^ok' "$T/stream.status" || true)
fails=$(grep -c '^fail' "$T/stream.status" || true)
[ $((oks + fails)) -eq 40 ] || fail "stream: $oks ok + $fails failed != 40"
[ "$fails" -gt 0 ] || fail "no call noticed the partition"
grep -vE '^notifier: ' "$T/stream.err" | grep -q . &&
    fail "a failure was not one clean line: $(head -n 3 "$T/stream.err")"
log "stream: $oks ok, $fails failed cleanly"
cli "$NB" "${ADDR[c]}" rpc near 1 echo hi >/dev/null || fail "the near side stopped serving"

step "heal"
t2=$(date +%s%N)
ip -n "$NA" link set "${tag}va" up
until_ok 60 "b's side sees all three again" alive_is "$NB" "${ADDR[b]}" 3
until_ok 60 "a sees all three again" alive_is "$NA" "${ADDR[a]}" 3
cli "$NB" "${ADDR[b]}" --timeout 30000 wait --members 3 --converged >/dev/null ||
    fail "no convergence after healing"
t3=$(date +%s%N)
log "heal: one view again after $(((t3 - t2) / 1000000)) ms"
digest() { cli "$1" "$2" --json stats | python3 -c 'import json,sys;print(json.load(sys.stdin)["digest"])'; }
until_ok 30 "equal digests" bash -c "
    [ \"\$($(declare -f digest cli); KEY=$KEY NOTIFIER=$NOTIFIER digest $NA ${ADDR[a]})\" = \
      \"\$($(declare -f digest cli); KEY=$KEY NOTIFIER=$NOTIFIER digest $NB ${ADDR[b]})\" ]"
cli "$NB" "${ADDR[b]}" rpc far 2 echo after >/dev/null || fail "rpc after healing"

for n in a b c; do stop "${PID[$n]}"; done
log "partition ok"
