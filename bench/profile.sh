#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Profiles our RPC and notification paths the way docs/PERFORMANCE.md
# reports them, from a tree built by scripts/bench.sh.
#
#   bench/profile.sh [BUILD_DIR] [--callgrind]
#
# For each workload (RPC 1 outstanding, RPC 64 in flight, notifications
# 1 -> 1) it records both processes with `perf record -e cpu-clock` (this
# VM has no hardware counters), prints the time by category (thread
# hand-offs, TCP, AEAD, malloc, locks, our code, nng) and counts context
# switches per operation against the raw nng equivalent.  --callgrind also
# runs each workload under valgrind's callgrind and prints the top
# inclusive functions of each process (instructions, not time).
# Output files go to BUILD_DIR/bench-results/profile/.
set -u
B=${1:-build-bench}
[ "${1:-}" = "--callgrind" ] && B=build-bench
CG=0
for a in "$@"; do [ "$a" = "--callgrind" ] && CG=1; done
B=$(cd "$B" && pwd)
BIN="$B/bench"
OUT="$B/bench-results/profile"
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "profile: perf is not installed" >&2; exit 1; }

# Time by category from a perf.data file.
categories() {
  perf report -i "$1" --sort dso,sym --stdio 2>/dev/null | grep -v '^#' |
    grep '%' | awk '
  { pct = $1; sub("%", "", pct); dso = $2; sym = $0; sub(/.*\] /, "", sym)
    c = "other"
    if (dso ~ /sodium/) c = "libsodium (AEAD seal/open)"
    else if (dso ~ /notifier/) c = "libnotifier own code"
    else if (dso ~ /nng/) c = "libnng own code"
    else if (sym ~ /crng|get_random|getrandom/) c = "kernel getrandom (nonces)"
    else if (sym ~ /malloc|free|calloc|realloc|_int_|tcache|unlink_chunk/) c = "malloc/free"
    else if (dso !~ /kernel/ && sym ~ /pthread_mutex|lll_lock|lll_unlock|pthread_cond|condvar|futex|rwlock/) c = "libc locks/condvars"
    else if (dso ~ /kernel/ && sym ~ /futex/) c = "kernel futex"
    else if (dso ~ /kernel/ && sym ~ /finish_task_switch|_raw_spin_unlock_irq|schedule|pick_next|enqueue|dequeue|update_curr|try_to_wake|select_task|ttwu|switch|__pv_queued|rseq/) c = "kernel scheduler (thread hand-offs)"
    else if (dso ~ /kernel/ && sym ~ /tcp|skb|sock|ip_|net_|__dev|inet|dev_|loopback|napi|iov|copy_|readv|writev|sendmsg|recvmsg|check_object/) c = "kernel TCP/socket I/O"
    else if (dso ~ /kernel/ && sym ~ /epoll|ep_|poll/) c = "kernel epoll"
    else if (dso ~ /kernel/) c = "kernel other (syscall entry/exit...)"
    else if (dso ~ /libc/ && sym ~ /mem(cpy|move|set|cmp)|str/) c = "libc memcpy/strlen"
    else if (dso ~ /libc/) c = "libc other"
    s[c] += pct }
  END { for (k in s) printf "    %6.2f%%  %s\n", s[k], k }' | sort -rn
}

# Context switches and CPU time per operation: switches OPS CMD...
switches() {
  local ops=$1
  shift
  perf stat -x, -e context-switches,task-clock "$@" 2>"$OUT/stat.txt" |
    grep RESULT
  awk -F, -v ops="$ops" '
    $3 == "context-switches" { printf "    %.2f context switches per op\n", $1 / ops }
    $3 == "task-clock" { printf "    %.1f us CPU (both processes) per op\n", $1 * 1000 / ops }' \
    "$OUT/stat.txt"
}

echo "== RPC, 100 B, 1 outstanding (20000 calls + 2100 warm-up)"
perf record -q -e cpu-clock -F 4000 -o "$OUT/rpc-lat.data" \
  "$BIN/bench_nt" rpc-lat --size 100 --count 20000 | grep RESULT
categories "$OUT/rpc-lat.data"
echo "  notifier:"
switches 22100 "$BIN/bench_nt" rpc-lat --size 100 --count 20000
echo "  raw nng:"
switches 22100 "$BIN/bench_nng" rpc-lat --size 100 --count 20000

echo "== RPC, 100 B, 64 in flight (4 s)"
perf record -q -e cpu-clock -F 4000 -o "$OUT/rpc-tput.data" \
  "$BIN/bench_nt" rpc-tput --size 100 --seconds 4 | grep RESULT
categories "$OUT/rpc-tput.data"
echo "  raw nng for comparison:"
perf record -q -e cpu-clock -F 4000 -o "$OUT/nng-tput.data" \
  "$BIN/bench_nng" rpc-tput --size 100 --seconds 4 | grep RESULT
categories "$OUT/nng-tput.data"

echo "== Notifications, 100 B, 1 -> 1 (4 s)"
perf record -q -e cpu-clock -F 4000 -o "$OUT/pub.data" \
  "$BIN/bench_nt" pub --subs 1 --size 100 --seconds 4 | grep RESULT
categories "$OUT/pub.data"
echo "  top symbols outside the kernel:"
perf report -i "$OUT/pub.data" --sort dso,sym --stdio 2>/dev/null |
  grep -v '^#' | grep '%' | grep -v kernel | head -15 | sed 's/^/  /'

if [ $CG = 1 ]; then
  command -v valgrind >/dev/null || { echo "profile: no valgrind" >&2; exit 1; }
  for w in "rpc-lat --size 100 --count 3000" "pub --subs 1 --size 100 --seconds 2"; do
    name=${w%% *}
    rm -f "$OUT"/callgrind.out.*
    echo "== callgrind: bench_nt $w (first file: this process, second: the forked node)"
    (cd "$OUT" && valgrind -q --tool=callgrind "$BIN/bench_nt" $w | grep RESULT)
    for f in "$OUT"/callgrind.out.*; do
      mv "$f" "$OUT/cg-$name-${f##*.}"
      echo "  $OUT/cg-$name-${f##*.}:"
      callgrind_annotate --inclusive=yes "$OUT/cg-$name-${f##*.}" 2>/dev/null |
        grep -E 'notifier|sodium' | head -12 | sed 's/^/  /'
    done
  done
fi
