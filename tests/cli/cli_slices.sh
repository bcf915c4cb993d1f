#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Weighted slices across processes: two `notifier sub --slice` nodes with
# weights 1 and 3 on the same topic share 400 publishes (each goes to
# exactly one of them), about 1:3.  The bounds are wide (expected 100 for
# weight 1, standard deviation under 9; accepted 40..160) so that only a
# broken draw fails, never an unlucky one.
source "$(dirname "$0")/lib.sh"

KEY=$T/key
new_key "$KEY"
TOTAL=400

step "two daemons"
start_daemon a
need_real_port a
start_daemon b --seed "${ADDR[a]}"
need_real_port b
A=${ADDR[a]} B=${ADDR[b]}
expect 0 "$NOTIFIER" -k "$KEY" -s "$A" --timeout 30000 wait --members 2 --converged

step "slices with weights 1 and 3, one joined through each daemon"
"$NOTIFIER" -k "$KEY" -s "$A" sub w all go --slice 1 \
    >"$T/s1.out" 2>"$T/s1.err" </dev/null &
S1=$!
PIDS+=("$S1")
"$NOTIFIER" -k "$KEY" -s "$B" sub w all go --slice 3 \
    >"$T/s3.out" 2>"$T/s3.err" </dev/null &
S3=$!
PIDS+=("$S3")
until_ok 20 "both slices reach a" subs_is "$A" w go 2
expect 0 "$NOTIFIER" -k "$KEY" -s "$A" --timeout 20000 wait --members 4 --converged

step "$TOTAL publishes, each to exactly one slice"
expect 0 "$NOTIFIER" -k "$KEY" -s "$A" pub --count "$TOTAL" w @job go x
total() { echo $(($(lines "$T/s1.out") + $(lines "$T/s3.out"))); }
all_delivered() { test "$(total)" -ge "$TOTAL"; } # re-counted on every try
until_ok 30 "all $TOTAL notifications delivered" all_delivered
stop "$S1"
[ "$STOP_RC" = 0 ] || fail "slice 1 exited $STOP_RC"
stop "$S3"
[ "$STOP_RC" = 0 ] || fail "slice 3 exited $STOP_RC"
N1=$(lines "$T/s1.out")
N3=$(lines "$T/s3.out")
log "weight 1: $N1, weight 3: $N3"
[ $((N1 + N3)) = "$TOTAL" ] || fail "delivered $N1 + $N3, expected $TOTAL in all"
[ "$N1" -ge 40 ] && [ "$N1" -le 160 ] ||
    fail "weight 1 got $N1 of $TOTAL (expected about 100)"
for f in s1 s3; do
    if grep -vqE '^w [0-9]+ go x$' "$T/$f.out"; then
        fail "$f printed a line that is not a sink line"
    fi
done
[ "$(cut -d' ' -f2 "$T/s1.out" "$T/s3.out" | sort -u | wc -l)" = 1 ] ||
    fail "one id, @job, for every line"
[ ! -s "$T/s1.err" ] && [ ! -s "$T/s3.err" ] || fail "a slice wrote to stderr"
