#!/usr/bin/env bash
# What `make demo`, `make drill`, `make compare` and `make mutants` need before they run: the
# dependencies' images (platform/setup.sh run) and the two programs (make build), side by side.
# The images are mostly downloads, unpacking and a few small Go builds; the build is mostly the
# Rust compiler. On a fresh 2-core machine running them one after the other left one core idle
# for minutes. Either failing fails this script with that one's exit code, after both ended.
#   platform/setup-and-build.sh MAKE    MAKE: the make to run `build` with ($(MAKE))
set -uo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"
make_cmd=${1:-make}

# Both sides in the background, so that a TERM to this script (an outer `timeout`) is handled at
# once, not after a build of minutes: `wait` returns to the trap, a foreground child would not.
bash "$KIT_ROOT/platform/setup.sh" run &
setup_pid=$!
"$make_cmd" build &
build_pid=$!
trap 'kill "$setup_pid" "$build_pid" 2>/dev/null; wait; exit 143' TERM

# wait_side PID WHAT: waits for one side and says how it ended; returns its exit code.
wait_side() {
  local code=0
  wait "$1" || code=$?
  if [ "$code" -eq 0 ]; then note "$2 ready (${SECONDS} s)"; else note "$2 failed (exit $code); its message is above"; fi
  return "$code"
}
setup=0 build=0
wait_side "$setup_pid" "the dependencies' images (setup.sh run):" || setup=$?
wait_side "$build_pid" "the service and the verifier (make build):" || build=$?
[ "$setup" -ne 0 ] && exit "$setup"
exit "$build"
