#!/usr/bin/env bash
# Everything `make test` and `make demo` need before they run, idempotent and cached:
# a Docker engine that answers, the local images, the tools, and no leftovers from earlier runs.
#   setup.sh        for the test suites: all of it
#   setup.sh run    for running scenarios (make demo, make drill): no linters or promtool
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/engine.sh"
bash "$here/images.sh"
if [ "${1:-}" != run ]; then
  bash "$here/tools.sh"
fi
bash "$here/sweep.sh"
