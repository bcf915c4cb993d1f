#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's first command: install what is missing, build, run the demo.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build} ./scripts/build.sh >/dev/null
exec "${BUILD_DIR:-build}/examples/local_demo"
