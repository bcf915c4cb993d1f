#!/bin/sh
# SPDX-License-Identifier: MIT
# The benchmarks of issue 5 in one command: installs what is missing
# (build dependencies, libnats-dev, nats-server, serf; needs root or sudo
# only then), builds a Release tree with the benchmarks, runs them all and
# prints one table (ours, the baseline from the same run, the ratio).
#
#   scripts/bench.sh [--quick]   # full: ~5 min on 2 cores; quick: ~1.5 min
#
#   BUILD_DIR   build tree (default: build-bench)
#   NT_NO_INSTALL=1  never run apt-get (missing baselines show as n/a)
#
# Results and logs land in $BUILD_DIR/bench-results/.  docs/PERFORMANCE.md
# explains the method and each number.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)

quick=""
for a in "$@"; do
  case "$a" in
    --quick) quick=--quick ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument '$a' (try --help)" >&2; exit 2 ;;
  esac
done

if [ "${NT_NO_INSTALL:-0}" != 1 ]; then
  scripts/setup.sh libnats-dev nats-server serf
fi

BUILD_DIR=${BUILD_DIR:-build-bench}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$root/$BUILD_DIR" ;; esac
src="$root"
echo "bench: building Release in $BUILD_DIR" >&2
mkdir -p "$BUILD_DIR"
# A tree configured from another source directory (an older layout, a
# moved checkout) is configured afresh.
if [ -f "$BUILD_DIR/CMakeCache.txt" ] &&
   ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$src" "$BUILD_DIR/CMakeCache.txt"; then
  rm -rf "$BUILD_DIR/CMakeCache.txt" "$BUILD_DIR/CMakeFiles"
fi
log="$BUILD_DIR/build.log"
if ! { cmake -S "$src" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
         -DNT_BENCH=ON -DNT_TESTS=OFF &&
       cmake --build "$BUILD_DIR" -j "$(nproc 2>/dev/null || echo 2)" \
         --target bench_all; } >"$log" 2>&1; then
  tail -40 "$log" >&2
  echo "bench: build failed (full log: $log)" >&2
  exit 1
fi
exec bench/run.sh "$BUILD_DIR" $quick
