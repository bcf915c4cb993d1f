#!/bin/bash
# SPDX-License-Identifier: MIT
# Installs the build into a scratch prefix, then builds an external
# program against it with find_package(notifier) (shared and static) and
# with pkg-config, and runs each.
#   test_install.sh BUILD_DIR SOURCE_DIR [SANITIZE_FLAGS]
set -euo pipefail
build=$1 src=$2 san=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/include/notifier/notifier.h"
test -f "$prefix/lib/pkgconfig/notifier.pc" -o -f "$prefix/lib/$(gcc -print-multiarch)/pkgconfig/notifier.pc"
libdir=$(dirname "$(find "$prefix" -name notifier.pc | head -1)")/..
flags=""
[ -n "$san" ] && flags="-fsanitize=$san"

# 1. CMake package.
cmake -S "$src/tests/install/consumer" -B "$work/cm" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$work/cm" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/cm/consumer"
"$work/cm/consumer_static"

# 2. pkg-config.
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046
cc $flags -o "$work/pc" "$src/tests/install/consumer/main.c" \
  $(pkg-config --cflags --libs notifier)
LD_LIBRARY_PATH="$libdir" "$work/pc"
# shellcheck disable=SC2046
cc $flags -o "$work/pc_static" "$src/tests/install/consumer/main.c" \
  $(pkg-config --cflags notifier) "$libdir/libnotifier.a" \
  $(pkg-config --static --libs-only-l notifier | sed 's/-lnotifier //') \
  -L"$libdir"
"$work/pc_static"
echo "install: ok"
