#!/usr/bin/env bash
# Install the linters and generators `make test` runs, pinned, into $(go env GOPATH)/bin. Cached:
# a tool already at the pinned version is kept. Each failure names the tool and its log.
set -euo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"

GOLANGCI_LINT_VERSION=v2.15.0
# Lints the GitHub workflow and checks its use of the gate action (make test-ci-templates).
ACTIONLINT_VERSION=v1.7.12
# The OpenAPI fuzzer of platform/tests/contract_fuzz.sh, from PyPI into a virtual environment of
# its own under .kit/ (nothing is installed into the system's Python).
SCHEMATHESIS_VERSION=4.32.5

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

if [ "$("$gobin/actionlint" -version 2>/dev/null | head -n 1)" != "$ACTIONLINT_VERSION" ]; then
  note "installing actionlint $ACTIONLINT_VERSION (once)"
  log="$KIT_STATE_DIR/logs/actionlint-install.log"
  GOBIN="$gobin" timeout 900 go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >"$log" 2>&1 ||
    die "go install actionlint $ACTIONLINT_VERSION failed: $(tail -n 1 "$log") (full log: $log)"
fi

# Prometheus and promtool: the rollback-trigger tests query a real Prometheus on loopback, and the
# generated rules are checked with promtool.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "prometheus and promtool are missing: install Prometheus 2.x (Debian: apt-get install prometheus; or https://prometheus.io/download/) and put both on PATH"
  fi
  note "installing Debian's prometheus (for prometheus and promtool; once)"
  log="$KIT_STATE_DIR/logs/apt-prometheus.log"
  if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends prometheus >"$log" 2>&1; then
    timeout 600 apt-get update >>"$log" 2>&1 || die "apt-get update failed (see $log)"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends prometheus >>"$log" 2>&1 ||
      die "apt-get install prometheus failed (see $log)"
  fi
  # The package may start a server of its own where an init system runs; the tests start theirs.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# Chromium: the browser check of report.html (verifier/tests/html_report.rs) loads each page
# headless with networking disabled.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "chromium is missing: install it (Debian: apt-get install chromium) and put it on PATH; the report.html browser check needs it"
  fi
  note "installing Debian's chromium (for the report.html browser check; once)"
  log="$KIT_STATE_DIR/logs/apt-chromium.log"
  if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends chromium fonts-dejavu-core >"$log" 2>&1; then
    timeout 600 apt-get update >>"$log" 2>&1 || die "apt-get update failed (see $log)"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends chromium fonts-dejavu-core >>"$log" 2>&1 ||
      die "apt-get install chromium failed (see $log)"
  fi
fi

# Compose: platform/compose-up.sh (make test-compose) brings docker-compose.yml up with either
# `docker compose` (v2) or `docker-compose`; Debian ships the latter as the package docker-compose
# (1.29 on Debian 12). No recommends: they would pull in a second engine package.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "Docker Compose is missing: install the Compose v2 plugin (https://docs.docker.com/compose/install/) or Debian's docker-compose (apt-get install docker-compose); make test-compose needs one"
  fi
  note "installing Debian's docker-compose (for make test-compose; once)"
  log="$KIT_STATE_DIR/logs/apt-docker-compose.log"
  if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends docker-compose >"$log" 2>&1; then
    timeout 600 apt-get update >>"$log" 2>&1 || die "apt-get update failed (see $log)"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends docker-compose >>"$log" 2>&1 ||
      die "apt-get install docker-compose failed (see $log)"
  fi
  timeout 60 docker-compose version >>"$log" 2>&1 || timeout 60 docker compose version >>"$log" 2>&1 ||
    die "Debian's docker-compose is installed but neither 'docker-compose version' nor 'docker compose version' runs (see $log)"
fi

# Schemathesis: a virtual environment made with Python 3.10 or newer, kept while it holds the pinned
# version; remade (--clear) otherwise.
venv="$KIT_STATE_DIR/venv-schemathesis"
if ! "$venv/bin/st" --version 2>/dev/null | grep -qx "st, version $SCHEMATHESIS_VERSION"; then
  python=
  for p in python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      python=$p
      break
    fi
  done
  [ -n "$python" ] || die "Python 3.10 or newer with the venv module is missing (Debian: apt-get install python3-venv); schemathesis needs it"
  note "installing schemathesis $SCHEMATHESIS_VERSION into $venv (once)"
  log="$KIT_STATE_DIR/logs/schemathesis-install.log"
  timeout 120 "$python" -m venv --clear "$venv" >"$log" 2>&1 || die "$python -m venv failed: $(tail -n 1 "$log") (full log: $log)"
  timeout 600 "$venv/bin/pip" install --disable-pip-version-check --no-input -q "schemathesis==$SCHEMATHESIS_VERSION" >>"$log" 2>&1 ||
    die "pip install schemathesis $SCHEMATHESIS_VERSION failed: $(tail -n 1 "$log") (full log: $log)"
fi
