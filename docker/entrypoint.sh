#!/bin/sh
# SPDX-License-Identifier: MIT
# Entrypoint of the notifier image: picks the program from the arguments.
#   (none)                         notifierd, configured by NOTIFIER_* variables
#   -... / --...                   notifierd with these flags
#   keygen|pub|rpc|sub|reply|members|subs|wait|stats|bench|help ...
#                                  the notifier CLI with this command
#   anything else                  run as given (notifierd, notifier, sh, ...)
#
# Addresses in containers: with NOTIFIER_LISTEN=0.0.0.0:PORT (the image's
# default) and no NOTIFIER_ADVERTISE, notifierd advertises the container's
# host name (its short id) with PORT.  Docker resolves that name on
# user-defined networks (every compose network is one), so each replica of
# a scaled service has an address of its own.  Set NOTIFIER_ADVERTISE only
# when the service has one container (e.g. its service name, node1:7070).
set -eu

case "${1:-}" in
  "") set -- notifierd ;;
  -*) set -- notifierd "$@" ;;
  keygen | pub | rpc | sub | reply | members | subs | wait | stats | bench | help)
    set -- notifier "$@" ;;
esac
exec "$@"
