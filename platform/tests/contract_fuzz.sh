#!/usr/bin/env bash
# The contract fuzz: schemathesis (pinned, .kit/venv-schemathesis, made by platform/tools.sh) runs
# every check and every phase, stateful included, against the reference service built from this
# tree and wired to its real dependencies: PostgreSQL, Redis, NATS (JetStream) and the payments
# stand-in as containers. A tenant token for /v1 and an admin token for /admin (devtoken). Passes
# with zero failures and zero server errors; a finding is a contract the service does not keep.
#
#   bash platform/tests/contract_fuzz.sh                    # about 75 s of generation, ~100 s in all
#   CONTRACT_FUZZ_SECONDS=30 CONTRACT_FUZZ_SEED=1 bash ...  # shorter, or replaying a printed seed
#
# Every wait is bounded; the containers carry the kit's label and a run label, and are removed on
# any exit, as is the service process. Traffic goes only to 127.0.0.1. Reports and the service's
# log stay in .kit/contract-fuzz/ for the last run.
set -euo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"
cd "$KIT_ROOT"

seconds=${CONTRACT_FUZZ_SECONDS:-75}
seed=${CONTRACT_FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))}
st="$KIT_STATE_DIR/venv-schemathesis/bin/st"
out="$KIT_STATE_DIR/contract-fuzz"
run_id="contract-fuzz-$$"
secret='contract-fuzz-secret-0123456789abcdef-local'
started=$SECONDS

[ -x "$st" ] || die "contract fuzz: $st is missing; run platform/tools.sh (make setup) first"
# Image names: from make (which exports .kit/images.env), else from that file.
if [ -z "${KIT_IMAGE_POSTGRES:-}" ]; then
  [ -f "$KIT_STATE_DIR/images.env" ] || die "contract fuzz: .kit/images.env is missing; run platform/images.sh (make setup) first"
  # shellcheck disable=SC1091
  . "$KIT_STATE_DIR/images.env"
fi
engine_answers || die "contract fuzz: no Docker engine answers; run platform/engine.sh first"

rm -rf "$out"
mkdir -p "$out/bin"
containers=()
service_pid=
cleanup() {
  local code=$?
  if [ -n "$service_pid" ]; then
    kill -TERM "$service_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$service_pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  if [ ${#containers[@]} -gt 0 ]; then
    timeout 60 docker rm -f -v "${containers[@]}" >/dev/null 2>&1 || note "contract fuzz: could not remove ${containers[*]} (platform/sweep.sh will)"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The service and the token minter from this tree, so the fuzz judges the code beside the contract.
(cd reference-service && timeout 300 go build -o "$out/bin/" ./cmd/service ./cmd/devtoken) >"$out/build.log" 2>&1 ||
  die "contract fuzz: building the service failed: $(tail -n 3 "$out/build.log")"

# start NAME IMAGE PORT [ENV...] [-- ARGS...]: a labelled container publishing PORT on a random
# loopback port; prints nothing, records the id.
start() {
  local name=$1 image=$2 port=$3
  shift 3
  local envs=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=(-e "$1"); shift; done
  [ $# -gt 0 ] && shift
  args=("$@")
  local id
  id=$(timeout 60 docker run -d --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" \
    --name "kit-$run_id-$name" -p "127.0.0.1::$port" "${envs[@]}" "$image" "${args[@]}") ||
    die "contract fuzz: could not start $name ($image)"
  containers+=("$id")
}
addr() { timeout 10 docker port "kit-$run_id-$1" "$2/tcp" | head -n 1; }

start postgres "$KIT_IMAGE_POSTGRES" 5432 POSTGRES_USER=kit POSTGRES_PASSWORD=kit POSTGRES_DB=kit
start redis "$KIT_IMAGE_REDIS" 6379
start nats "$KIT_IMAGE_NATS" 4222 -- -js -sd /data
start payments "$KIT_IMAGE_PAYMENTSIM" 8090 PAYMENTSIM_ADDR=0.0.0.0:8090

pg_ready() { timeout 5 docker exec "kit-$run_id-postgres" pg_isready -h 127.0.0.1 -U kit -d kit; }
wait_until 60 "PostgreSQL to accept connections" pg_ready || die "contract fuzz: PostgreSQL never became ready"
pg=$(addr postgres 5432) redis=$(addr redis 6379) nats=$(addr nats 4222) payments=$(addr payments 8090)
for a in "$pg" "$redis" "$nats" "$payments"; do
  case $a in 127.0.0.1:*) ;; *) die "contract fuzz: a dependency is not published on loopback: '$a'" ;; esac
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# The rate limit is raised so the fuzz meets the contract's rules rather than its 429 (declared
# everywhere, exercised by the service's own tests and the verifier's security pass).
env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
  ORDERS_HTTP_ADDR="127.0.0.1:$port" \
  ORDERS_DATABASE_URL="postgres://kit:kit@$pg/kit?sslmode=disable" \
  ORDERS_REDIS_ADDR="$redis" ORDERS_NATS_URL="nats://$nats" ORDERS_PAYMENTS_URL="http://$payments" \
  ORDERS_JWT_SECRET="$secret" ORDERS_RATE_LIMIT_RPS=100000 ORDERS_RATE_LIMIT_BURST=100000 \
  ORDERS_DRAIN_DELAY=0s ORDERS_SHUTDOWN_GRACE=5s ORDERS_LOG_LEVEL=warn \
  "$out/bin/service" >"$out/service.log" 2>&1 &
service_pid=$!
ready() { kill -0 "$service_pid" && curl -fsS --max-time 2 "$base/readyz"; }
wait_until 60 "the service to answer /readyz" ready || {
  tail -n 20 "$out/service.log" >&2
  die "contract fuzz: the service did not become ready (log: $out/service.log)"
}

export CONTRACT_FUZZ_TENANT_TOKEN CONTRACT_FUZZ_ADMIN_TOKEN
CONTRACT_FUZZ_TENANT_TOKEN=$(ORDERS_JWT_SECRET=$secret "$out/bin/devtoken" -tenant fuzz -sub schemathesis)
CONTRACT_FUZZ_ADMIN_TOKEN=$(ORDERS_JWT_SECRET=$secret "$out/bin/devtoken" -tenant ops -sub schemathesis -roles admin)

# The documented createOrder example, replayed as given: the same key and body twice are one order,
# the second answer a replay. (The fuzzer below gives each order a fresh key, as clients should.)
example=$("$KIT_STATE_DIR/venv-schemathesis/bin/python" - <<'PY'
import json, yaml
doc = yaml.safe_load(open("reference-service/api/openapi.yaml"))
op = doc["paths"]["/v1/orders"]["post"]
key = doc["components"]["parameters"]["IdempotencyKey"]["example"]
body = op["requestBody"]["content"]["application/json"]["examples"]["order"]["value"]
print(key)
print(json.dumps(body))
PY
) || die "contract fuzz: could not read the createOrder example from the contract"
key=$(sed -n 1p <<<"$example") body=$(sed -n 2p <<<"$example")
for attempt in first replay; do
  headers=$(curl -sS --max-time 10 -o /dev/null -D - -X POST "$base/v1/orders"     -H "Authorization: Bearer $CONTRACT_FUZZ_TENANT_TOKEN" -H "Idempotency-Key: $key"     -H 'Content-Type: application/json' --data "$body") || die "contract fuzz: the createOrder example did not get an answer"
  status=$(awk 'NR == 1 {print $2}' <<<"$headers")
  [ "$status" = 201 ] || die "contract fuzz: the createOrder example, $attempt, answered $status, not 201"
  if [ "$attempt" = replay ] && ! grep -qi '^Idempotent-Replayed: true' <<<"$headers"; then
    die "contract fuzz: the createOrder example sent twice was not replayed"
  fi
done

note "contract fuzz: schemathesis $("$st" --version | awk '{print $NF}'), all checks and phases, ${seconds}s, seed $seed, against $base"
fuzz_start=$SECONDS
code=0
PYTHONPATH="$KIT_ROOT/platform/tests/contract_fuzz" SCHEMATHESIS_HOOKS=hooks \
  timeout $((seconds + 120)) "$st" --config-file platform/tests/contract_fuzz/schemathesis.toml --no-color \
  run reference-service/api/openapi.yaml --url "$base" \
  --max-time "$seconds" --seed "$seed" \
  --report junit,ndjson --report-dir "$out/report" >"$out/schemathesis.log" 2>&1 || code=$?
fuzz_seconds=$((SECONDS - fuzz_start))
tail -n 40 "$out/schemathesis.log"

# Server errors are counted from the service's side too: its own access log would need info level,
# so the metrics the service exports are read instead (5xx by route).
server_errors=$(curl -fsS --max-time 5 "$base/metrics" | awk '/^http_server_requests_total\{/ && /code_class="5xx"/ {n += $NF} END {print n + 0}')
note "contract fuzz: schemathesis exit $code in ${fuzz_seconds}s (${SECONDS}s with setup and teardown pending); server errors counted by the service: $server_errors"
if [ "$code" -ne 0 ]; then
  die "contract fuzz: schemathesis found failures (seed $seed; log: $out/schemathesis.log, reports: $out/report)"
fi
[ "$server_errors" -eq 0 ] || die "contract fuzz: the service answered $server_errors request(s) with 5xx (log: $out/service.log)"
note "contract fuzz: passed in $((SECONDS - started))s"
