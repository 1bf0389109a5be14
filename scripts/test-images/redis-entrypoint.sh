#!/bin/sh
# Stand-in for the official redis entrypoint: a first argument that is a flag or a .conf file means
# "redis-server <args>", and without a config file protected mode is off (as the official image does)
# so that clients behind a published port can connect.
set -e
case "$1" in
  -*|*.conf) set -- redis-server "$@" ;;
esac
if [ "$1" = redis-server ] && [ "${2%.conf}" = "${2:-}" ]; then
  shift
  set -- redis-server --protected-mode no "$@"
fi
exec "$@"
