# The kit's two commands:
#   make demo   the main job: the smoke gate end to end against the reference service
#   make test   every suite, after provisioning what they need (engine, images, tools)
#
# Both run platform/setup.sh first: it starts a Docker engine when none answers, builds the local
# images (cached), installs pinned tools and sweeps containers an interrupted run left behind.
# The suites then run in a second make, which reads the image names setup just wrote.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

-include .kit/images.env
export $(filter KIT_IMAGE_%,$(.VARIABLES))
# This machine carries /.dockerenv, so testcontainers would reach published ports through the
# bridge gateway; tests talk to containers over loopback. Ryuk cannot be pulled; the label sweep
# in platform/sweep.sh does its job.
export TESTCONTAINERS_HOST_OVERRIDE ?= 127.0.0.1
export TESTCONTAINERS_RYUK_DISABLED ?= true
export CARGO_TERM_COLOR ?= never

GOBIN := $(shell go env GOPATH 2>/dev/null)/bin
GOLANGCI_LINT := $(GOBIN)/golangci-lint
ACTIONLINT := $(GOBIN)/actionlint
SERVICE := reference-service
# sqlc's generated code is checked in; `make test` regenerates it in memory and fails on a diff.
SQLC_VERSION := v1.31.1

.PHONY: help setup test demo drill mutants demo-run drill-run test-platform test-go test-contract test-compose test-rust test-ci-templates test-deploy build compare compare-run bench-service bench-verifier bench-judge bench-judge-service bench-profiles

help:
	@echo "make demo   run the main job: the smoke gate end to end (see README.md)"
	@echo "make test   run every test suite (provisions the engine, images and tools first)"
	@echo "make drill  the chaos drill; make mutants: the gates against planted weaknesses"
	@echo "make bench-service, make bench-verifier, make bench-judge: benchmarks"

setup:
	@bash platform/setup.sh

test: setup
	@$(MAKE) test-platform test-go test-contract test-compose test-rust test-ci-templates test-deploy
	@echo "make test: every suite passed"

# First: its sweep check removes every kit-labelled container, so no suite may run beside it.
test-platform:
	@echo "== platform: sweep, image cache, stand-in contracts"
	@bash platform/tests/platform_test.sh

test-go:
	@echo "== go: gofmt, vet, golangci-lint, test -race ($(SERVICE))"
	@cd $(SERVICE) && unformatted=$$(gofmt -l .) && if [ -n "$$unformatted" ]; then \
	  echo "gofmt: these files need formatting: $$unformatted" >&2; exit 1; fi
	@cd $(SERVICE) && go vet ./...
	@cd $(SERVICE) && $(GOLANGCI_LINT) run ./...
	@cd $(SERVICE) && go run github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION) diff
	@cd $(SERVICE) && go test -race -count=1 ./...
	@bash mutants/run.sh --check

# Schemathesis against the service and its real dependencies in containers: every check, the
# stateful phase, a tenant and an admin token; zero failures and zero server errors (~100 s).
test-contract:
	@echo "== contract: schemathesis fuzz of reference-service/api/openapi.yaml"
	@bash platform/tests/contract_fuzz.sh

# docker-compose.yml brought up for real with the local images (platform/compose-up.sh, through
# Debian's docker-compose or Compose v2): /readyz through Toxiproxy and its proxy list, then down.
# Then broken on purpose (a proxy missing, one disabled, the database unreachable, a TERM), each
# run failing by name and leaving nothing behind (~1 min). It publishes 127.0.0.1:8080 and :8474.
test-compose:
	@echo "== compose: docker-compose.yml up with the local images, checked through Toxiproxy, down"
	@bash platform/tests/compose_test.sh

test-rust:
	@echo "== rust: fmt, clippy, tests (verifier)"
	@cargo fmt --all --check
	@cargo clippy --workspace --all-targets --locked -- -D warnings
	@cargo test --workspace --locked --no-fail-fast

# The Kubernetes manifests of a sharded run, decoded strictly into the k8s.io/api types and their
# wiring checked (deploy/kubernetes/validate); no cluster is involved.
test-deploy:
	@echo "== deploy: Kubernetes manifests against the API types (deploy/kubernetes)"
	@cd deploy/kubernetes/validate && unformatted=$$(gofmt -l .) && if [ -n "$$unformatted" ]; then \
	  echo "gofmt: these files need formatting: $$unformatted" >&2; exit 1; fi
	@cd deploy/kubernetes/validate && go vet ./...
	@cd deploy/kubernetes/validate && go test -count=1 ./...

# The pipeline templates teams copy: actionlint over the workflow (and its use of the gate
# action), then the structure of the action and of the GitLab job.
test-ci-templates:
	@echo "== ci templates: actionlint, the gate action, the GitLab job"
	@$(ACTIONLINT) .github/workflows/*.yml
	@cargo test --locked -p verifier --test ci_templates

build:
	@cd $(SERVICE) && go build -o ../target/bin/ ./cmd/...
	@cargo build --release --locked -p verifier

# The service under test signs and checks tokens with this secret; demo and drill mint a token
# with it (target/bin/devtoken). A sample for local runs only.
DEMO_JWT_SECRET ?= demo-only-secret-change-me-0123456789abcdef
REPORTS := reports

# The smoke gate end to end: build both programs, bring the service's world up in containers,
# run scenarios/smoke.yaml, print the verdict. The exit code is the verdict's (README).
demo:
	@bash platform/setup-and-build.sh "$(MAKE)"
	@$(MAKE) demo-run

# The chaos drill (about 3 minutes): faults in each dependency under load, steady-state checks,
# nothing-lost read-backs.
drill:
	@bash platform/setup-and-build.sh "$(MAKE)"
	@$(MAKE) drill-run

# The runs themselves, in a second make that reads the image names setup just wrote
# (.kit/images.env does not exist yet when a fresh clone's first make starts).
demo-run:
	@./target/release/verifier env
	@export ORDERS_JWT_SECRET='$(DEMO_JWT_SECRET)' && \
	  export VERIFIER_TOKEN="$$(./target/bin/devtoken -tenant demo)" && \
	  code=0 && ./target/release/verifier run scenarios/smoke.yaml --report-dir $(REPORTS)/smoke || code=$$?; \
	  echo "make demo: verdict exit code $$code; reports in $(REPORTS)/smoke/ (report.html, summary.md, report.json, junit.xml)"; \
	  exit $$code

drill-run:
	@export ORDERS_JWT_SECRET='$(DEMO_JWT_SECRET)' && \
	  export VERIFIER_TOKEN="$$(./target/bin/devtoken -tenant demo)" && \
	  code=0 && ./target/release/verifier run scenarios/chaos-drill.yaml --report-dir $(REPORTS)/chaos-drill || code=$$?; \
	  echo "make drill: verdict exit code $$code; reports in $(REPORTS)/chaos-drill/"; \
	  exit $$code

# The mutation check (about 25 minutes; not part of `make test`): each planted weakness of
# mutants/ applied alone to a copy of the service and run through its gates (smoke, short drill,
# compare) until one fails it; one row per weakness, caught or missed and by which rules
# (mutants/README.md). MUTANTS="06 11" runs those only.
MUTANTS ?=
mutants:
	@bash platform/setup-and-build.sh "$(MAKE)"
	@bash mutants/run.sh $(MUTANTS)

# Performance acceptance against a release: BASE's service (built from that commit, cached by it)
# is the baseline, the working tree's the candidate; one paired run of scenarios/compare.yaml.
BASE ?= HEAD
compare:
	@bash platform/setup-and-build.sh "$(MAKE)"
	@$(MAKE) compare-run

compare-run:
	@bash platform/compare-base.sh "$(BASE)"
	@export ORDERS_JWT_SECRET='$(DEMO_JWT_SECRET)' && \
	  export VERIFIER_TOKEN="$$(./target/bin/devtoken -tenant demo)" && \
	  code=0 && ./target/release/verifier run scenarios/compare.yaml --report-dir $(REPORTS)/compare || code=$$?; \
	  echo "make compare: candidate (working tree) vs baseline $(BASE): verdict exit code $$code; reports in $(REPORTS)/compare/"; \
	  exit $$code

# Benchmarks print numbers; they are not part of `make test`.
bench-service: setup
	@cd $(SERVICE) && bash bench/bench.sh

# The load engines against wrk and oha on loopback; the verifier built with the fat profile
# (BENCH_PROFILE=release for what `make build` gives).
bench-verifier:
	@bash verifier/bench/bench.sh

# The build profiles side by side: rebuild time, and the open engine's requests per CPU-second.
bench-profiles:
	@bash verifier/bench/profiles.sh

# How good the regression judge is: power and false alarms, paired and two-run, on loopback.
bench-judge:
	@cargo run --release --locked -p verifier --example bench_judge

# The same against the reference service: A/A and a planted slowdown of its create path, paired.
bench-judge-service: setup
	@$(MAKE) build
	@bash verifier/bench/judge-service.sh
