#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the multi-node suites under valgrind's memcheck with
# --leak-check=full and fails on any memory error or any definitely or
# indirectly lost block.
#
#   scripts/valgrind.sh [SUITE...]   # default: test_cluster test_faults test_calls
#
#   BUILD_DIR  a build without sanitizers (default: build-valgrind)
#
# "Possibly lost" and "still reachable" blocks are not failures: they are
# nng's own threads and caches (nng 1.5.2 has no nng_fini in its public
# API) and the sockets a node deliberately leaves to nng when nng cannot
# close them (docs/PROTOCOL.md, "nng 1.5.2 bugs designed around").  CI
# (.ci/run) runs this.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh valgrind
BUILD_DIR=${BUILD_DIR:-build-valgrind}
# Nodes under valgrind run many times slower than a test's native child
# process, which would then declare them dead: NT_TEST_SLOW makes the
# fault tests probe at a slower pace (test_faults.c, child_node.c).
export NT_TEST_SLOW=1
# Leaks inside nng 1.5.2 only; the reasons are in tests/sanitizers/lsan.supp.
supp=$(pwd)/tests/sanitizers/valgrind.supp
export BUILD_DIR
BUILD_TYPE=Debug NT_SANITIZE= ./scripts/build.sh >/dev/null
suites=${*:-test_cluster test_faults test_calls}
rc=0
for t in $suites; do
  exe=$(find "$BUILD_DIR/tests" -type f -name "$t" -perm -u+x | head -1)
  if [ -z "$exe" ]; then
    echo "valgrind: no test executable named $t in $BUILD_DIR/tests" >&2
    exit 2
  fi
  log="$BUILD_DIR/valgrind-$t.log"
  echo "valgrind: $t (log: $log)"
  start=$(date +%s)
  # --run-libc-freeres=no: at exit valgrind has glibc free its caches
  # after the other threads are gone; when one of them (nng's resolver,
  # redialing a socket nng could not close) died inside getaddrinfo
  # holding glibc's interface-cache lock, that hangs for good (seen once:
  # __libc_freeres -> check_pf.c freecache waiting on the lock).  Those
  # caches are "still reachable", which we do not count anyway.
  if (cd "$(dirname "$exe")" &&
      timeout 1200 valgrind --leak-check=full --error-exitcode=99 \
        --run-libc-freeres=no \
        --suppressions="$supp" \
        --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect "./$t") >"$log" 2>&1; then
    echo "valgrind: $t clean ($(($(date +%s) - start)) s): $(grep -E 'ERROR SUMMARY' "$log" | sed 's/^==[0-9]*== //')"
  else
    rc=1
    grep -v '^ts=' "$log" | tail -60
    echo "valgrind: $t FAILED (see $log)" >&2
  fi
done
exit $rc
