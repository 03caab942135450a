#!/usr/bin/env bash
# Remove what an earlier, interrupted run left behind: every container and network carrying the
# kit's label (KIT_LABEL, from lib.sh). Run at the start of `make test`; safe to run any time no
# kit test is running. Containers from other projects are never touched.
set -euo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"

engine_answers || die "no Docker engine answers; run platform/engine.sh first"
mapfile -t containers < <(timeout 30 docker ps -aq --filter "label=$KIT_LABEL")
if [ ${#containers[@]} -gt 0 ]; then
  note "removing ${#containers[@]} leftover container(s) labelled $KIT_LABEL"
  timeout 60 docker rm -f -v "${containers[@]}" >/dev/null || die "could not remove leftover containers: ${containers[*]}"
fi
mapfile -t networks < <(timeout 30 docker network ls -q --filter "label=$KIT_LABEL")
# testcontainers-rs creates networks without labels; they are named kit-* by the kit's tests.
mapfile -t named < <(timeout 30 docker network ls --format '{{.Name}}' --filter 'name=^kit-')
networks+=("${named[@]}")
if [ ${#networks[@]} -gt 0 ]; then
  note "removing ${#networks[@]} leftover network(s)"
  timeout 60 docker network rm "${networks[@]}" >/dev/null 2>&1 || note "some leftover networks are still in use; left alone"
fi
