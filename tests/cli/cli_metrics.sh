#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# notifierd --metrics: GET /metrics serves valid Prometheus text with every
# family operators need (messages and bytes by kind, RPC latency
# histogram, queue depths, drops by reason, auth failures, gossip rounds,
# members by state, digest, time since the last change); counters move
# with traffic; `notifier stats --prometheus` shows the same families over
# the protocol; a bad --metrics address exits 2.
source "$(dirname "$0")/lib.sh"

KEY=$T/key
new_key "$KEY"

step "bad --metrics address exits 2"
usage_d "$NOTIFIERD" --listen 127.0.0.1:0 --print-address --key-file "$KEY" \
    --metrics nohost
grep -q 'bad or unusable address' "$T/err" || fail "metrics: $(cat "$T/err")"

step "a node serving metrics, and one more member"
start_daemon m --echo echo --metrics 127.0.0.1:0
start_daemon b --seed "${ADDR[m]}"
MADDR=$(sed -n 's/.*msg="metrics listening" address=\([^ ]*\).*/\1/p' "$T/m.err" | head -n 1)
[[ "$MADDR" =~ ^127\.0\.0\.1:[1-9][0-9]*$ ]] || fail "no metrics address in the log: '$MADDR'"
S=(-k "$KEY" -s "${ADDR[m]}")
until_ok 20 "two members" "$NOTIFIER" "${S[@]}" wait --members 2 --converged

fetch() { # FILE: GET /metrics into FILE
    python3 - "$MADDR" "$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=5) as r:
    assert r.status == 200, r.status
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/plain"), ctype
    open(sys.argv[2], "wb").write(r.read())
PY
}

# check FILE: parses as Prometheus text; prints "name value" for samples.
check() {
    python3 - "$1" <<'PY'
import re, sys
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$')
types = {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        _, _, name, t = line.split(" ")
        types[name] = t
        continue
    if line.startswith("#") or not line:
        continue
    m = sample.match(line)
    if not m:
        sys.exit("bad line: %r" % line)
    base = re.sub(r'_(bucket|sum|count)$', '', m.group(1))
    if m.group(1) not in types and base not in types:
        sys.exit("sample without TYPE: %r" % line)
    print(m.group(1) + (m.group(2) or ""), m.group(3))
PY
}

step "GET /metrics"
"$NOTIFIER" "${S[@]}" rpc echo 1 echo hi >/dev/null || fail "rpc failed"
fetch "$T/m1.txt" || fail "GET /metrics failed"
check "$T/m1.txt" >"$T/m1.samples" || fail "not Prometheus text: $(tail -n 1 "$T/m1.samples")"
for fam in 'notifier_frames_total{direction="in",kind="rpc"}' \
    'notifier_bytes_total{direction="out",kind="gossip"}' \
    'notifier_rpc_latency_seconds_bucket{le="+Inf"}' \
    'notifier_rpc_latency_seconds_count' \
    'notifier_queue_depth{queue="workers"}' \
    'notifier_drops_total{reason="auth"}' \
    'notifier_drops_total{reason="queue_full"}' \
    'notifier_auth_failures_total' 'notifier_gossip_rounds_total' \
    'notifier_members{state="alive"}' 'notifier_members{state="dead"}' \
    'notifier_directory_converged' \
    'notifier_directory_seconds_since_change'; do
    grep -qF "$fam " "$T/m1.samples" || fail "missing $fam"
done
grep -q '^notifier_directory_digest_info{digest="[0-9a-f]\{64\}"} 1$' "$T/m1.samples" ||
    fail "no digest info"
grep -qx 'notifier_members{state="alive"} 2' "$T/m1.samples" ||
    fail "alive members: $(grep 'state="alive"' "$T/m1.samples")"

step "counters move with traffic"
served1=$(awk '$1=="notifier_rpc_served_total" {print $2}' "$T/m1.samples")
for i in 1 2 3; do
    "$NOTIFIER" "${S[@]}" rpc echo "$i" echo x >/dev/null || fail "rpc $i"
done
fetch "$T/m2.txt"
check "$T/m2.txt" >"$T/m2.samples"
served2=$(awk '$1=="notifier_rpc_served_total" {print $2}' "$T/m2.samples")
[ "$served2" -eq $((served1 + 3)) ] || fail "rpc_served $served1 -> $served2"

step "the same families through notifier stats --prometheus"
"$NOTIFIER" "${S[@]}" stats --prometheus >"$T/p.txt" || fail "stats --prometheus"
check "$T/p.txt" >"$T/p.samples" || fail "stats --prometheus is not Prometheus text"
diff <(sed 's/[{ ].*//' "$T/m2.samples" | sort -u) \
     <(sed 's/[{ ].*//' "$T/p.samples" | sort -u) >"$T/fam.diff" ||
    fail "families differ: $(cat "$T/fam.diff")"

step "peer lifecycle at info, in logfmt"
grep -q "level=info msg=\"member up\" peer=${NODE_ID[b]} address=${ADDR[b]}" "$T/m.err" ||
    fail "no member up line for b in m's log"
stop "${PID[b]}"
until_ok 20 "m logs b's leave" grep -q "level=info msg=\"member left\" peer=${NODE_ID[b]}" "$T/m.err"
stop "${PID[m]}"
log "metrics ok"
