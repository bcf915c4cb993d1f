#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's first command: install what is missing, build, then run a
# local cluster demo (three notifierd processes driven by the notifier CLI;
# see scripts/cluster_demo.sh).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build} ./scripts/build.sh >/dev/null
exec ./scripts/cluster_demo.sh "${BUILD_DIR:-build}"
