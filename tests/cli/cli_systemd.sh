#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The example unit and environment file in contrib/systemd/ work with these
# programs.  The unit passes `systemd-analyze verify` with no complaint
# (when systemd-analyze is installed; that part is skipped otherwise) and
# starts notifierd from the default install prefix.  notifierd started the
# way the unit starts it -- no flags, a clean environment holding the
# environment file's variables as systemd reads them, NOTIFIER_KEY_FILE
# pointing into the credentials directory -- joins a running node through
# its seed and serves, and on the unit's KillSignal leaves gracefully and
# exits 0.  Only the sample's addresses are replaced (they name example
# hosts and a fixed port): listen on 127.0.0.1:0, seed a local node, and
# advertise the bound address.
source "$(dirname "$0")/lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
UNIT=$SRC/contrib/systemd/notifierd.service
ENVF=$SRC/contrib/systemd/notifierd.env

step "the unit"
grep -qx 'ExecStart=/usr/local/bin/notifierd' "$UNIT" ||
    fail "ExecStart is not the default install path /usr/local/bin/notifierd"
grep -qx 'KillSignal=SIGTERM' "$UNIT" || fail "KillSignal is not SIGTERM"
grep -qx 'EnvironmentFile=/etc/notifier/notifierd.env' "$UNIT" ||
    fail "the unit does not read /etc/notifier/notifierd.env"
cred_var=$(sed -n 's/^Environment=\(NOTIFIER_KEY_FILE=%d\/cluster.key\)$/\1/p' "$UNIT")
[ -n "$cred_var" ] || fail "the unit does not point NOTIFIER_KEY_FILE at its credential"
grep -q '^LoadCredential=cluster.key:' "$UNIT" ||
    fail "the unit loads no cluster.key credential"
if command -v systemd-analyze >/dev/null; then
    sed "s#^ExecStart=.*#ExecStart=$NOTIFIERD#" "$UNIT" >"$T/notifierd.service"
    # --man=no: the man page need not be installed for this check.
    (cd "$T" && systemd-analyze verify --man=no notifierd.service) \
        >"$T/verify.out" 2>&1 || fail "systemd-analyze verify: $(cat "$T/verify.out")"
    [ ! -s "$T/verify.out" ] || fail "systemd-analyze verify: $(cat "$T/verify.out")"
    log "systemd-analyze verify: clean"
else
    log "systemd-analyze not installed: unit syntax not verified"
fi

step "the environment file"
# systemd's EnvironmentFile: KEY=VALUE lines, # comments, blank lines.
declare -a envs=()
while IFS= read -r line || [ -n "$line" ]; do
    case $line in '' | '#'*) continue ;; esac
    [[ $line =~ ^[A-Z_]+=.*$ ]] || fail "not an assignment: $line"
    name=${line%%=*}
    # Every variable must be one notifierd reads (its --help names them).
    "$NOTIFIERD" --help | grep -q "($name[;), ]" ||
        fail "$name is not a notifierd variable"
    case $name in
    NOTIFIER_LISTEN | NOTIFIER_ADVERTISE | NOTIFIER_SEEDS) ;; # replaced
    *) envs+=("$line") ;;
    esac
done <"$ENVF"

KEY=$T/cluster.key
new_key "$KEY"
start_daemon seed
mkdir -p "$T/credentials"
cp "$KEY" "$T/credentials/cluster.key"
sanitizer_env=()
for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS TSAN_OPTIONS; do
    [ -z "${!v:-}" ] || sanitizer_env+=("$v=${!v}")
done

step "notifierd as the unit starts it"
env -i PATH="$PATH" "${sanitizer_env[@]+"${sanitizer_env[@]}"}" \
    "${envs[@]}" NOTIFIER_LISTEN=127.0.0.1:0 NOTIFIER_SEEDS="${ADDR[seed]}" \
    "${cred_var/\%d/$T/credentials}" \
    "$NOTIFIERD" >"$T/unit.out" 2>"$T/unit.err" </dev/null &
PID[unit]=$!
PIDS+=("$!")
until_ok 15 "the unit's node is ready" grep -q 'msg="daemon ready"' "$T/unit.err"
grep 'msg="daemon ready"' "$T/unit.err" |
    grep -qE "seeds=\"?${ADDR[seed]}\"?( |\$)" ||
    fail "the node did not take its seed from the environment: $(cat "$T/unit.err")"
ADDR[unit]=$(sed -n 's/.*msg="daemon ready" id=[0-9a-f]* address=\([^ ]*\) .*/\1/p' \
    "$T/unit.err" | head -n 1)
[[ ${ADDR[unit]} =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "bound address: '${ADDR[unit]}'"
until_ok 20 "two members, converged" \
    "$NOTIFIER" -k "$KEY" -s "${ADDR[unit]}" wait --members 2 --converged
expect 0 "$NOTIFIER" -k "$KEY" -s "${ADDR[unit]}" --json stats
py "$T/out" "d['members_alive'] == 2" || fail "stats: $(cat "$T/out")"
# NOTIFIER_LOG_LEVEL=info from the file: peer lifecycle lines appear.
grep -q 'level=info' "$T/unit.err" || fail "no info lines: the log level was not taken"

step "KillSignal=SIGTERM: a graceful leave, exit 0"
stop "${PID[unit]}" TERM
[ "$STOP_RC" = 0 ] || fail "notifierd exited $STOP_RC on SIGTERM"
grep -q 'msg="node left"' "$T/unit.err" || fail "no graceful leave logged"
alone() {
    "$NOTIFIER" -k "$KEY" -s "${ADDR[seed]}" --json stats >"$T/seed.json" &&
        py "$T/seed.json" "d['members_alive'] == 1"
}
until_ok 20 "the seed sees it leave" alone
stop "${PID[seed]}"
log "unit and environment file ok"
