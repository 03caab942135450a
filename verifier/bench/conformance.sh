#!/usr/bin/env bash
# What contract conformance costs the open engine (a benchmark, not a test):
#   bash verifier/bench/conformance.sh
#
# nginx on loopback answers every GET with the contract's example order (application/json); the
# release verifier runs the same open-model load three times: without `contract:`, with the
# default sampling (first 20 per step and status, then 1 in 50), and judging every response
# (`every: 1`). Prints generator CPU seconds (getrusage, from report.json), achieved throughput,
# how many responses were judged and how many samples were dropped. Traffic goes only to
# 127.0.0.1; each run is bounded by its duration. Knobs: BENCH_PORT, BENCH_RATE, BENCH_SECONDS,
# BENCH_TARGET_CPU, BENCH_GEN_CPU.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORT=${BENCH_PORT:-18081}
RATE=${BENCH_RATE:-3000}
SECONDS_RUN=${BENCH_SECONDS:-10}
TARGET_CPU=${BENCH_TARGET_CPU:-0}
GEN_CPU=${BENCH_GEN_CPU:-1}
URL="http://127.0.0.1:${PORT}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/verifier-conformance.XXXXXX")

log() { printf 'bench: %s\n' "$*" >&2; }
# shellcheck source=verifier/bench/nginx.sh
. "$ROOT/verifier/bench/nginx.sh"
cleanup() {
    nginx_stop
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ORDER='{"id":"0193a9c2-6b1e-7c3d-9a55-1f2e3d4c5b6a","status":"paid","customer_email":"alice@example.com","currency":"EUR","amount_minor":2500,"items":[{"sku":"BOOK-1","quantity":2,"unit_price_minor":1250}],"card_last4":"4242","payment_id":"ch_7b1f0c3e","version":2,"created_at":"2026-11-24T05:00:00Z","updated_at":"2026-11-24T05:00:01Z"}'

nginx_start "$ORDER"

(cd "$ROOT" && cargo build --release --locked -p verifier --quiet)
VERIFIER="$ROOT/target/release/verifier"

scenario() { # contract-section
    cat <<EOF
name: conformance-cost
defaults: { timeout: 5s, connect_timeout: 1s }
journeys: [{ name: get, steps: [{ name: get-order, method: GET, path: /v1/orders/0193a9c2-6b1e-7c3d-9a55-1f2e3d4c5b6a }] }]
load:
  open:
    phases: [{ steady: { rate: $RATE, duration: ${SECONDS_RUN}s } }]
    max_in_flight: 512
$1
EOF
}

printf '| %-22s | %9s | %9s | %12s | %8s | %s\n' variant "req/s" "CPU s" "CPU µs/req" judged "dropped"
for variant in none sampled every; do
    case $variant in
        none) section="" ;;
        sampled) section="contract: { openapi: $ROOT/reference-service/api/openapi.yaml }" ;;
        every) section="contract: { openapi: $ROOT/reference-service/api/openapi.yaml, conformance: { first: 0, every: 1 } }" ;;
    esac
    scenario "$section" >"$WORK/$variant.yaml"
    taskset -c "$GEN_CPU" "$VERIFIER" run "$WORK/$variant.yaml" --target "$URL" \
        --report-dir "$WORK/$variant" --progress off >/dev/null 2>&1 || true
    jq -r --arg v "$variant" '
        ([.verdict.rules[] | select(.id == "contract.getOrder") | .detail] | first // "") as $d
        | [$v, (.throughput_rps | floor), .generator.cpu_seconds, (.generator.cpu_seconds * 1e6 / .overall.requests | floor),
           (($d | capture("(?<j>[0-9]+) judged") | .j) // "-"),
           (($d | capture("(?<x>[0-9]+) samples dropped") | .x) // "0")]
        | @tsv' "$WORK/$variant/report.json" 2>/dev/null \
        | awk -F'\t' '{ printf "| %-22s | %9s | %9.2f | %12s | %8s | %s\n", $1, $2, $3, $4, $5, $6 }' \
        || log "$variant: no report"
done
