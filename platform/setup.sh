#!/usr/bin/env bash
# Everything `make test` and `make demo` need before they run, idempotent and cached:
# a Docker engine that answers, the local images, the tools, and no leftovers from earlier runs.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/engine.sh"
bash "$here/images.sh"
bash "$here/tools.sh"
bash "$here/sweep.sh"
