#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages notifier needs to build and test, if any
# is missing.  Needs root (or sudo) only when something must be installed.
# Extra packages can be passed as arguments.
set -eu

need="build-essential cmake pkg-config libnng-dev libsodium-dev libcunit1-dev help2man python3 $*"
missing=""
for p in $need; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "setup: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "setup: need root to install:$missing" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once if they are missing or stale.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  $SUDO apt-get update -qq
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
