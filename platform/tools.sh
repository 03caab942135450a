#!/usr/bin/env bash
# Install the linters and generators `make test` runs, pinned, into $(go env GOPATH)/bin. Cached:
# a tool already at the pinned version is kept. Each failure names the tool and its log.
set -euo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"

GOLANGCI_LINT_VERSION=v2.15.0

command -v go >/dev/null 2>&1 || die "go is missing: install Go 1.26 (https://go.dev/dl/)"
command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust 1.95 with rustup (https://rustup.rs)"
for c in rustfmt clippy-driver; do
  command -v "$c" >/dev/null 2>&1 || die "$c is missing: rustup component add ${c%-driver}"
done
gobin=$(go env GOPATH)/bin
mkdir -p "$KIT_STATE_DIR/logs"

if ! "$gobin/golangci-lint" version 2>/dev/null | grep -q "version ${GOLANGCI_LINT_VERSION#v} "; then
  note "installing golangci-lint $GOLANGCI_LINT_VERSION (once)"
  log="$KIT_STATE_DIR/logs/golangci-lint-install.log"
  GOBIN="$gobin" timeout 900 go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION" >"$log" 2>&1 ||
    die "go install golangci-lint $GOLANGCI_LINT_VERSION failed: $(tail -n 1 "$log") (full log: $log)"
fi
