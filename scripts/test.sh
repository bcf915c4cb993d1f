#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's second command: install what is missing, build, run the
# whole test suite (ctest over the CUnit suites) and print a summary.
#   NT_SANITIZE=address,undefined ./scripts/test.sh   (what CI runs)
#   CTEST_ARGS="-L unit" ./scripts/test.sh            (a subset)
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ -n "${NT_SANITIZE:-}" ]; then
  BUILD_DIR=${BUILD_DIR:-build-$(echo "$NT_SANITIZE" | tr ',' '-')}
else
  BUILD_DIR=${BUILD_DIR:-build}
fi
export BUILD_DIR
./scripts/build.sh
root=$(pwd)
cd "$BUILD_DIR"
# Sanitizer runtime options: fail on the first report, check leaks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
# Leaks inside nng 1.5.2 only; each one is explained in the file.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/sanitizers/lsan.supp}
start=$(date +%s)
set +e
# shellcheck disable=SC2086
ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" ${CTEST_ARGS:-}
rc=$?
set -e
echo
if [ $rc -eq 0 ]; then
  echo "TESTS PASSED ($(($(date +%s) - start)) s, build: $BUILD_DIR)"
else
  echo "TESTS FAILED (exit $rc, build: $BUILD_DIR); see the output above"
fi
exit $rc
