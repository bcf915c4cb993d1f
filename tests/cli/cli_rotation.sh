#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Key rotation without downtime, as SECURITY.md describes it: every node
# and client reads one key file (nodes re-read it on SIGHUP).  (1) add the
# new key (accepted everywhere), (2) put it first (used for sending), (3)
# drop the old one.  Through every step the two nodes stay members of each
# other and calls keep working, for clients that follow the same file and,
# until step 2, for clients that still hold only the old key; at the end a
# client with only the old key is refused.  A bad file on SIGHUP changes
# nothing.
source "$(dirname "$0")/lib.sh"

K1=$T/k1 K2=$T/k2 KEY=$T/cluster.keys
new_key "$K1"
new_key "$K2"
cp "$K1" "$KEY"

start_daemon a --echo echo
start_daemon b --seed "${ADDR[a]}" --echo echo2
with() { # KEYFILE args: the CLI with that key, against a
    "$NOTIFIER" -k "$1" -s "${ADDR[a]}" --timeout 3000 "${@:2}"
}
until_ok 20 "two members" with "$K1" wait --members 2 --converged

# reloads NODE: how many times NODE logged a key reload.
reloads() { grep -c 'msg="keys reloaded"' "$T/$1.err" || true; }
# reloaded NODE N: NODE logged at least N reloads (re-counted on each try).
reloaded() { test "$(reloads "$1")" -ge "$2"; }
# hup STEP: SIGHUP both, wait until both logged the reload.
hup() {
    local want
    for n in a b; do
        want=$(( $(reloads "$n") + 1 ))
        kill -HUP "${PID[$n]}"
        until_ok 10 "$n reloads keys ($1)" reloaded "$n" "$want"
    done
}
works() { # KEYFILE: calls through both nodes' services work with that key
    with "$1" rpc echo 1 echo x >/dev/null && with "$1" rpc echo2 1 echo y >/dev/null
}

step "1: install the new key everywhere (still sending with the old)"
cat "$K1" "$K2" >"$KEY"
hup 1
works "$K1" || fail "a client with the old key only was refused after step 1"
works "$KEY" || fail "a client following the key file was refused after step 1"

step "2: send with the new key everywhere"
cat "$K2" "$K1" >"$KEY"
hup 2
works "$KEY" || fail "a client following the key file was refused after step 2"
until_ok 20 "still two members" with "$KEY" wait --members 2 --converged

step "3: remove the old key"
cp "$K2" "$KEY"
hup 3
works "$KEY" || fail "refused after step 3"
works "$K2" || fail "a client with the new key only was refused after step 3"
until_ok 20 "still two members, converged" with "$K2" wait --members 2 --converged
expect 1 with "$K1" rpc echo 1 echo x
grep -q 'authentication' "$T/err" || fail "old key: $(cat "$T/err")"
with "$K2" --json stats >"$T/st.json" || fail "stats"
py "$T/st.json" "d['members_alive'] == 2 and d['members_dead'] == 0" ||
    fail "a node was cut off during the rotation"

step "a bad key file on SIGHUP changes nothing"
echo "not a key" >"$KEY"
kill -HUP "${PID[a]}"
until_ok 10 "a logs the failed reload" grep -q 'key reload failed; keys unchanged' "$T/a.err"
works "$K2" || fail "keys changed after a bad reload"

stop "${PID[a]}"
stop "${PID[b]}"
log "rotation ok"
