#!/usr/bin/env bash
# Everything `make test` and `make demo` need before they run, idempotent and cached:
# a Docker engine that answers, the local images, the tools, and no leftovers from earlier runs.
#   setup.sh        for the test suites: all of it
#   setup.sh run    for running scenarios (make demo, make drill): the dependencies' images only,
#                   no linters or promtool
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/engine.sh"
if [ "${1:-}" = run ]; then
  # A scenario run starts its dependencies as containers and the service and the verifier as
  # processes. The service and verifier images serve the test suites only (the compose stack,
  # sharded runs in containers); on a fresh machine the verifier image alone is a static release
  # build of ten minutes or more, which `make demo` need not wait for.
  bash "$here/images.sh" postgres redis nats toxiproxy paymentsim
else
  bash "$here/images.sh"
  bash "$here/tools.sh"
fi
bash "$here/sweep.sh"
