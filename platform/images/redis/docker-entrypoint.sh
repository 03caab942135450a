#!/bin/sh
# Stand-in for the official redis image's entrypoint: run as the redis user, and turn protected
# mode off as the official build does, so containers on a Docker network can connect.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = 'redis-server' ]; then
  shift
  conf=''
  if [ -n "$1" ] && [ "${1#-}" = "$1" ]; then
    conf=$1
    shift
  fi
  set -- redis-server $conf --protected-mode no "$@"
  if [ "$(id -u)" = '0' ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
