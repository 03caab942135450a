#!/usr/bin/env bash
# What `make demo`, `make drill`, `make compare` and `make mutants` need before they run: the
# dependencies' images (platform/setup.sh run) and the two programs (make build), side by side.
# The images are mostly downloads, unpacking and a few small Go builds; the build is mostly the
# Rust compiler. On a fresh 2-core machine running them one after the other left one core idle
# for minutes. Either failing fails this script with that one's exit code, after both ended.
#   platform/setup-and-build.sh MAKE    MAKE: the make to run `build` with ($(MAKE))
set -uo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
make_cmd=${1:-make}

{
  code=0
  bash "$here/setup.sh" run || code=$?
  [ "$code" -eq 0 ] && echo "platform: the dependencies' images are ready (${SECONDS} s)"
  exit "$code"
} &
setup_pid=$!
# An interrupt reaches both (same process group); a TERM to this script alone is passed on.
trap 'kill "$setup_pid" 2>/dev/null; wait "$setup_pid" 2>/dev/null; exit 143' TERM

build=0
"$make_cmd" build || build=$?
[ "$build" -eq 0 ] && echo "platform: the service and the verifier are built (${SECONDS} s)"
setup=0
wait "$setup_pid" || setup=$?
if [ "$setup" -ne 0 ]; then
  echo "platform/setup.sh run failed (exit $setup); its message is above" >&2
  exit "$setup"
fi
if [ "$build" -ne 0 ]; then
  echo "make build failed (exit $build); the compiler's message is above" >&2
fi
exit "$build"
