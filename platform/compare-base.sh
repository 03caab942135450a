#!/usr/bin/env bash
# Builds the orders service at a git ref as the baseline of `make compare`: the ref's
# reference-service/ is exported into a cache directory keyed by its commit and built there once;
# target/compare/baseline links to the build. Usage: platform/compare-base.sh <git ref>
set -euo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"

ref=${1:-}
[ -n "$ref" ] || die "compare: give the baseline as BASE=<git ref>, e.g. make compare BASE=v1.4.0"
cd "$KIT_ROOT"
sha=$(git rev-parse --verify --quiet "$ref^{commit}") ||
  die "compare: BASE=$ref is not a commit of this repository (git rev-parse found nothing)"
short=${sha:0:12}
out="$KIT_ROOT/target/compare/$short"
if [ -x "$out/service" ]; then
  note "compare: baseline $ref ($short) already built"
else
  git cat-file -e "$sha:reference-service/cmd/service" 2>/dev/null ||
    die "compare: $ref ($short) has no reference-service/cmd/service to build"
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  git archive "$sha" reference-service | tar -x -C "$src"
  note "compare: building the baseline service at $ref ($short)"
  mkdir -p "$out"
  log="$KIT_STATE_DIR/logs/compare-$short.log"
  mkdir -p "$(dirname "$log")"
  (cd "$src/reference-service" && timeout 900 go build -o "$out/service" ./cmd/service) >"$log" 2>&1 ||
    die "compare: building $ref ($short) failed: $(tail -n 1 "$log") (full log: $log)"
fi
ln -sfn "$short" "$KIT_ROOT/target/compare/baseline"
note "compare: baseline is $ref ($short) at target/compare/baseline/service"
