#!/usr/bin/env bash
# Benchmark: create-order at fixed arrival rates against the full service and against a bare
# net/http handler that only inserts the order (bench/bare), both on the same PostgreSQL on
# loopback. Prints throughput, p50 and p99 for each, and the service/bare throughput ratio.
#
#   bench/bench.sh     rates from BENCH_RATES (default "200 400 800 1200 1600"), BENCH_DURATION each
#                      (default 15s); BENCH_PAYMENTS=false runs the service with the payments
#                      kill switch on (no downstream call), the closest match to the bare handler;
#                      BENCH_P99_MS (default 100) is the p99 ceiling for the same-p99 comparison;
#                      BENCH_KEEP=1 keeps the logs and the service's final /metrics.
#
# Load comes from vegeta (open model: requests are sent on schedule whether or not earlier ones
# have answered), because every create-order needs its own Idempotency-Key and the arrival rate
# must be fixed; wrk is closed-model and oha cannot vary a header per request.
# Needs: a Docker engine, the PostgreSQL image ($KIT_IMAGE_POSTGRES), vegeta (installed with
# `go install github.com/tsenart/vegeta/v12@v12.13.0` when missing), python3. Traffic stays on
# 127.0.0.1; every run is bounded by BENCH_DURATION.
set -euo pipefail

cd "$(dirname "$0")/.."
RATES=${BENCH_RATES:-"200 400 800 1200 1600"}
DURATION=${BENCH_DURATION:-15s}
IMAGE=${KIT_IMAGE_POSTGRES:-docker.io/library/postgres:15-bookworm}
GOBIN=$(go env GOPATH)/bin
VEGETA=${VEGETA:-$GOBIN/vegeta}
SECRET=bench-secret-bench-secret-bench-secret-01
work=$(mktemp -d)
pids=()
container=""

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n "$container" ]] && docker rm -f "$container" >/dev/null 2>&1 || true
  if [[ -n "${BENCH_KEEP:-}" ]]; then echo "kept logs and the service's final /metrics in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [[ ! -x "$VEGETA" ]]; then
  echo "installing vegeta v12.13.0" >&2
  GOBIN=$GOBIN go install github.com/tsenart/vegeta/v12@v12.13.0
fi

echo "== building"
go build -o "$work/bin/" ./cmd/service ./cmd/paymentsim ./bench/bare

echo "== starting PostgreSQL ($IMAGE) on loopback"
container=$(docker run -d --label io.deliverykit.managed=true --label io.deliverykit.run=bench \
  -e POSTGRES_USER=kit -e POSTGRES_PASSWORD=kit -e POSTGRES_DB=kit -p 127.0.0.1::5432 "$IMAGE" \
  -c max_connections=200 -c synchronous_commit=on)
for _ in $(seq 1 120); do
  docker exec "$container" pg_isready -U kit -d kit -h 127.0.0.1 >/dev/null 2>&1 && break
  sleep 0.5
done
# Connect to the container's own address when this host can reach it: the loopback port goes
# through docker-proxy, a userspace copy that would charge the chattier service more than the
# bare handler. BENCH_PG_VIA_LOOPBACK=1 measures through the published port instead.
pghost=127.0.0.1
port=$(docker port "$container" 5432/tcp | head -n1 | sed 's/.*://')
ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$container")
if [[ -z "${BENCH_PG_VIA_LOOPBACK:-}" && -n "$ip" ]] && docker exec "$container" true && timeout 2 bash -c "exec 3<>/dev/tcp/$ip/5432" 2>/dev/null; then
  pghost=$ip port=5432
fi
echo "   PostgreSQL at $pghost:$port"
docker exec "$container" psql -q -U kit -d kit -c 'CREATE DATABASE service' -c 'CREATE DATABASE bare' >/dev/null

# listen_addr FILE PATTERN: waits for a "listening" line and prints the address in it. Every
# process binds 127.0.0.1:0, so the benchmark never collides with anything else on the machine.
listen_addr() {
  for _ in $(seq 1 200); do
    if addr=$(grep -o "$2" "$1" 2>/dev/null | head -n1 | grep -o '127\.0\.0\.1:[0-9]*'); then
      echo "$addr"; return 0
    fi
    sleep 0.05
  done
  echo "did not start: $1" >&2; cat "$1" >&2; return 1
}

"$work/bin/paymentsim" -addr 127.0.0.1:0 -latency 0s -jitter 0s >"$work/paymentsim.log" 2>&1 & pids+=($!)
payments=$(listen_addr "$work/paymentsim.log" '"addr":"[^"]*"')
ORDERS_HTTP_ADDR=127.0.0.1:0 ORDERS_LOG_LEVEL=info \
ORDERS_DATABASE_URL="postgres://kit:kit@$pghost:$port/service?sslmode=disable" \
ORDERS_PAYMENTS_URL=http://$payments \
ORDERS_JWT_SECRET=$SECRET ORDERS_RATE_LIMIT_RPS=1000000 ORDERS_RATE_LIMIT_BURST=1000000 \
ORDERS_DRAIN_DELAY=0s ORDERS_PPROF_ADDR=${BENCH_PPROF_ADDR:-} ORDERS_PAYMENTS_ENABLED=${BENCH_PAYMENTS:-true} \
  "$work/bin/service" >"$work/service.log" 2>"$work/service.err" & pids+=($!)
BARE_HTTP_ADDR=127.0.0.1:0 BARE_DATABASE_URL="postgres://kit:kit@$pghost:$port/bare?sslmode=disable" \
  "$work/bin/bare" >"$work/bare.log" 2>&1 & pids+=($!)
service_url=http://$(listen_addr "$work/service.log" '"msg":"listening","addr":"[^"]*"')/v1/orders
bare_url=http://$(listen_addr "$work/bare.log" 'listening on [^ ]*')/v1/orders

tool() { python3 bench/benchtool.py "$@"; }
token=$(tool token "$SECRET")

# attack NAME URL RATE: one fixed-rate run, one printed line, one row in results.jsonl.
attack() {
  local name=$1 url=$2 rate=$3
  tool targets "$url" "$rate" "$DURATION" "$token" >"$work/targets.json"
  "$VEGETA" attack -format=json -targets="$work/targets.json" -rate="$rate" -duration="$DURATION" \
    -timeout=5s -max-workers=512 >"$work/$name-$rate.bin"
  "$VEGETA" report -type=json <"$work/$name-$rate.bin" | tool one "$name" "$rate" "$work/results.jsonl"
}

echo "== warm-up"
DURATION=3s attack service "$service_url" 50 >/dev/null
DURATION=3s attack bare "$bare_url" 50 >/dev/null
: >"$work/results.jsonl"

echo "== create-order, fixed arrival rate, $DURATION per step (machine: $(nproc) cores)"
for rate in $RATES; do
  attack bare "$bare_url" "$rate"
  attack service "$service_url" "$rate"
done

curl -sf -m 5 "${service_url%/v1/orders}/metrics" >"$work/service-metrics.txt" || true
tool summary "$work/results.jsonl" "${BENCH_P99_MS:-100}"
