#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets with clang and runs each for SECONDS
# (default 30) on a scratch copy of its committed seed corpus.
#   ./scripts/fuzz.sh 20          # what CI runs
#   ./scripts/fuzz.sh 14400       # four hours per target
# Crashes, leaks and timeouts fail the run; reproducers land in
# build-fuzz/artifacts/.
set -eu
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-30}
./scripts/setup.sh clang libclang-rt-14-dev
BUILD_DIR=${BUILD_DIR:-build-fuzz}
cmake -S . -B "$BUILD_DIR" -DCMAKE_C_COMPILER=clang -DNT_FUZZ=ON \
  -DNT_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc 2>/dev/null || echo 2)" \
  --target fuzz_gossip_frame fuzz_data_frame fuzz_text fuzz_cli_parse >/dev/null
mkdir -p "$BUILD_DIR/artifacts"
status=0
for t in gossip_frame data_frame text cli_parse; do
  work="$BUILD_DIR/corpus/$t"
  rm -rf "$work" && mkdir -p "$work"
  cp tests/fuzz/corpus/$t/* "$work"/
  echo "fuzz: $t for ${SECONDS_PER}s"
  if ! "$BUILD_DIR/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_PER" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$BUILD_DIR/artifacts/$t-" "$work" \
      >"$BUILD_DIR/fuzz-$t.log" 2>&1; then
    echo "fuzz: $t FAILED (see $BUILD_DIR/fuzz-$t.log)"; tail -30 "$BUILD_DIR/fuzz-$t.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$BUILD_DIR/fuzz-$t.log" | tr '\n' ' '; echo
  fi
done
[ $status -eq 0 ] && echo "FUZZ PASSED" || echo "FUZZ FAILED"
exit $status
