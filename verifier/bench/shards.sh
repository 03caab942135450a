#!/usr/bin/env bash
# Benchmark of a sharded run (a benchmark, not a test): `bash verifier/bench/shards.sh`.
#
# nginx on loopback (verifier/bench/nginx.sh) as the target; SHARDS processes of the release
# verifier each run `--shard I/SHARDS` of one open-model plan at RATE requests per second in
# total for BENCH_SECONDS, all starting at the same instant; then `verifier merge`. Prints, per
# shard, its requests, its generator CPU seconds and requests per CPU-second, and the merged
# verdict. Traffic goes only to 127.0.0.1; every run is bounded by its plan.
#
# Knobs: SHARDS (default 2), RATE (default 6000), BENCH_SECONDS (default 10), BENCH_PORT,
# BENCH_TARGET_CPU, VERIFIER (a release binary; default target/release/verifier, built if absent).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORT=${BENCH_PORT:-18081}
SHARDS=${SHARDS:-2}
RATE=${RATE:-6000}
SECONDS_RUN=${BENCH_SECONDS:-10}
TARGET_CPU=${BENCH_TARGET_CPU:-0}
URL="http://127.0.0.1:${PORT}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/verifier-shards.XXXXXX")
VERIFIER=${VERIFIER:-$ROOT/target/release/verifier}

log() { printf 'bench: %s\n' "$*" >&2; }

# shellcheck source=verifier/bench/nginx.sh
. "$ROOT/verifier/bench/nginx.sh"
cleanup() {
    nginx_stop
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [[ ! -x "$VERIFIER" ]]; then
    log "building the release verifier"
    (cd "$ROOT" && cargo build --release --locked -p verifier --quiet)
fi
command -v jq >/dev/null || { log "jq is missing"; exit 1; }
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    log "installing nginx-light from Debian (once)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
nginx_start '{"ok":true}'

cat >"$WORK/scenario.yaml" <<YAML
name: shard-bench
journeys:
  - name: get
    steps:
      - { name: get, method: GET, path: / }
load:
  open:
    phases:
      - steady: { rate: ${RATE}, duration: ${SECONDS_RUN}s }
    max_in_flight: 256
budgets:
  min_samples: 100
  error_rate: 0.001
  window: 2s
  endpoints:
    get: { p99: 100ms }
YAML

start_at=$(date -u -d '+3 seconds' +%FT%TZ)
pids=()
for ((i = 0; i < SHARDS; i++)); do
    "$VERIFIER" run "$WORK/scenario.yaml" --target "$URL" --shard "$i/$SHARDS" \
        --start-at "$start_at" --report-dir "$WORK/shard-$i" --progress off 2>"$WORK/shard-$i.log" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { log "a shard failed:"; cat "$WORK"/shard-*.log >&2; exit 1; }; done
reports=()
for ((i = 0; i < SHARDS; i++)); do reports+=("$WORK/shard-$i/report.json"); done
set +e
"$VERIFIER" merge "${reports[@]}" --report-dir "$WORK/merged" 2>"$WORK/merge.log"
code=$?
set -e

printf '%d shards, %d req/s in total for %d s, on %d cores\n' "$SHARDS" "$RATE" "$SECONDS_RUN" "$(nproc)"
printf '%-6s %10s %10s %14s %10s\n' shard requests cpu_s "req/CPU-s" generator
for ((i = 0; i < SHARDS; i++)); do
    jq -r --arg i "$i" '[$i, .overall.requests, .generator.cpu_seconds,
        (if .generator.cpu_seconds > 0 then (.overall.requests / .generator.cpu_seconds | floor) else 0 end),
        (.verdict.rules[] | select(.id == "generator") | .status)] | @tsv' "$WORK/shard-$i/report.json" |
        awk -F'\t' '{ printf "%-6s %10s %10s %14s %10s\n", $1, $2, $3, $4, $5 }'
done
jq -r '"merged: \(.overall.requests) requests, p50 \(.overall.p50_us) µs, p99 \(.overall.p99_us) µs, verdict \(.verdict.status) (exit \(.exit_code))"' \
    "$WORK/merged/report.json"
exit "$code"
