#!/bin/sh
# SPDX-License-Identifier: MIT
# Configures and builds notifier into a build directory.
#   BUILD_DIR   (default: build)
#   NT_SANITIZE e.g. address,undefined  (default: none)
#   NT_WERROR   1 to turn warnings into errors (default: 1)
#   BUILD_TYPE  (default: RelWithDebInfo)
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
jobs=$(nproc 2>/dev/null || echo 2)
werror=ON
[ "${NT_WERROR:-1}" = "1" ] || werror=OFF
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DNT_WERROR=$werror -DNT_SANITIZE="${NT_SANITIZE:-}" >/dev/null
cmake --build "$BUILD_DIR" -j "$jobs"
