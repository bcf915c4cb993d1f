#!/bin/bash
# SPDX-License-Identifier: MIT
# A local cluster demo: three notifierd processes with a fresh key, then
# the notifier CLI shows members, an RPC round trip, a notification at a
# sink, a weighted slice split, and a clean stop.
#   scripts/cluster_demo.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
BIN=$BUILD_DIR/src/cli
notifier=$BIN/notifier
notifierd=$BIN/notifierd
work=$(mktemp -d)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Waits (bounded) until FILE has at least N lines; prints nothing.
wait_lines() {
  local file=$1 n=$2 i
  for i in $(seq 1 200); do
    [ "$(wc -l <"$file" 2>/dev/null || echo 0)" -ge "$n" ] && return 0
    sleep 0.05
  done
  echo "demo: timed out waiting for $file" >&2
  return 1
}

# Starts a node; its bound address ends up in $addr.  (Not run in a
# subshell, so that its pid is recorded for the cleanup.)
start_node() { # NAME ARGS...
  local name=$1; shift
  "$notifierd" --listen 127.0.0.1:0 --print-address --log-level info "$@" \
    >"$work/$name.out" 2>"$work/$name.log" &
  pids+=($!)
  wait_lines "$work/$name.out" 1
  addr=$(head -1 "$work/$name.out")
}

step "a fresh cluster key"
"$notifier" keygen >"$work/key"
chmod 600 "$work/key"
export NOTIFIER_KEY_FILE=$work/key
echo "written to a temporary key file (notifier keygen)"

step "three notifierd nodes"
start_node n1 --echo echo; a1=$addr
start_node n2 --seed "$a1" --sink orders/created; a2=$addr
start_node n3 --seed "$a1" --echo echo; a3=$addr
echo "n1 $a1  serves RPC echo/echo"
echo "n2 $a2  sink for orders/created"
echo "n3 $a3  serves RPC echo/echo"
export NOTIFIER_SERVER=$a1,$a2

step "wait for convergence, then the members as n1 sees them"
"$notifier" wait --members 3 --converged --timeout 15000
"$notifier" members

step "RPC round trip: echo is served by n1 and n3 (two full registrations)"
"$notifier" rpc echo @user:42 echo "hello cluster"
"$notifier" --json rpc echo @user:42 echo "hello json"; echo

step "a notification arriving at n2's sink"
"$notifier" pub orders 42 created "order 42: 3 widgets"
wait_lines "$work/n2.out" 2
echo "n2 printed: $(sed -n 2p "$work/n2.out")"

step "weighted slices: two subscribers with weights 1 and 3 share 'work'"
"$notifier" sub work all do --slice 1 >"$work/w1.out" 2>/dev/null &
pids+=($!)
"$notifier" sub work all do --slice 3 >"$work/w3.out" 2>/dev/null &
pids+=($!)
"$notifier" wait --members 5 --converged --timeout 15000
total=200
for i in $(seq 1 $total); do
  "$notifier" pub work "$i" do "job $i"
done
for i in $(seq 1 200); do
  got=$(( $(wc -l <"$work/w1.out") + $(wc -l <"$work/w3.out") ))
  [ "$got" -ge $total ] && break
  sleep 0.05
done
c1=$(wc -l <"$work/w1.out")
c3=$(wc -l <"$work/w3.out")
echo "published $total: weight 1 got $c1, weight 3 got $c3 (expect about 50 / 150)"

step "routing table and a few counters"
"$notifier" subs
"$notifier" stats | grep -E "^(published|delivered|rpc_calls|members_alive|converged|gossip_rounds) "

step "stop the cluster (SIGTERM: graceful leave)"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
pids=()
grep -h "node left" "$work"/n*.log | sed "s/^/  /" || true
echo "all nodes stopped (exit status $rc)"
[ "$rc" -eq 0 ] && [ "$c1" -gt 0 ] && [ "$c3" -gt "$c1" ]
