#!/usr/bin/env bash
# Benchmark: create-order at fixed arrival rates against the full service and against a bare
# net/http handler that only inserts the order (bench/bare), both on the same PostgreSQL on
# loopback. Prints throughput, p50 and p99 for each, and the service/bare throughput ratio.
# A third side, "work", is bench/bare doing the service's storage and payments work for a new
# order without its middleware: service/work is what the middleware costs, work/bare what the
# playbook's durability (idempotency key, outbox, audit, the settling transaction, the payments
# call) costs.
#
#   bench/bench.sh     rates from BENCH_RATES (default "200 400 800 1200 1600"), BENCH_DURATION each
#                      (default 15s); BENCH_PAYMENTS=false runs the service with the payments
#                      kill switch on (no downstream call), the closest match to the bare handler;
#                      BENCH_P99_MS (default 100) is the p99 ceiling for the same-p99 comparison;
#                      BENCH_KEEP=1 keeps the logs and the service's final /metrics.
#   BENCH_BASE=<ref>   before and after in one run: also builds the service and bench/bare of that
#                      git ref (exported with git archive, the repository is not touched) and adds
#                      two sides, "basesvc" and "basework", on their own databases of the same
#                      PostgreSQL, taking turns with the current ones at every step.
#   BENCH_SIDES        the sides to run, in turn (default "bare work service", plus "basework
#                      basesvc" with BENCH_BASE); each step starts with the next side in the list.
#   BENCH_SEARCH=1     instead of the grid, searches each side's highest rate that keeps up (every
#                      request answered 2xx, throughput >= 98 % of the offered rate, p99 <= BENCH_P99_MS)
#                      by bisection between BENCH_SEARCH_LO (default 400) and BENCH_SEARCH_HI (default
#                      2400) to BENCH_SEARCH_STEP (default 50/s), BENCH_SEARCH_DURATION (default 10s)
#                      per probe, the sides taking turns so that drift of the machine hits all of
#                      them; a failed probe is repeated once; at most 8 rounds (about 10 minutes in
#                      all on 2 cores).
#
# Every step also prints the CPU each process spent per order (milliseconds of CPU time per
# request sent): the service or the bare handler, PostgreSQL (the container's cgroup), the payments
# stand-in and vegeta, and how many of the machine's cores were busy in all, other work included.
#
# Load comes from vegeta (open model: requests are sent on schedule whether or not earlier ones
# have answered), because every create-order needs its own Idempotency-Key and the arrival rate
# must be fixed; wrk is closed-model and oha cannot vary a header per request.
# Needs: a Docker engine, the PostgreSQL image ($KIT_IMAGE_POSTGRES), vegeta (installed with
# `go install github.com/tsenart/vegeta/v12@v12.13.0` when missing), python3. Traffic stays on
# 127.0.0.1; every run is bounded by BENCH_DURATION.
set -euo pipefail

cd "$(dirname "$0")/.."
KIT_ROOT=$(cd .. && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"
RATES=${BENCH_RATES:-"200 400 800 1200 1600"}
DURATION=${BENCH_DURATION:-15s}
# The official image is the default, as platform/images.conf names it.
IMAGE=${KIT_IMAGE_POSTGRES:-$(awk '$1 == "postgres" { print $2 }' "$KIT_ROOT/platform/images.conf")}
GOBIN=$(go env GOPATH)/bin
VEGETA=${VEGETA:-$GOBIN/vegeta}
SECRET=bench-secret-bench-secret-bench-secret-01
work=$(mktemp -d)
pids=()
container=""

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
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
base_sha=""
if [[ -n "${BENCH_BASE:-}" ]]; then
  base_sha=$(git -C "$KIT_ROOT" rev-parse --verify --quiet "$BENCH_BASE^{commit}") || {
    echo "BENCH_BASE=$BENCH_BASE is not a commit of this repository" >&2; exit 1; }
  echo "   and the base $BENCH_BASE (${base_sha:0:12}): its service and bench/bare"
  mkdir -p "$work/base"
  git -C "$KIT_ROOT" archive "$base_sha" reference-service | tar -x -C "$work/base"
  (cd "$work/base/reference-service" && go build -o "$work/basebin/" ./cmd/service ./bench/bare)
fi

echo "== starting PostgreSQL ($IMAGE) on loopback"
container=$(docker run -d --label "$KIT_LABEL" --label io.deliverykit.run=bench \
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
docker exec "$container" psql -q -U kit -d kit -c 'CREATE DATABASE service' -c 'CREATE DATABASE bare' \
  -c 'CREATE DATABASE work' -c 'CREATE DATABASE basesvc' -c 'CREATE DATABASE basework' >/dev/null

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
payments_pid=$!
payments=$(listen_addr "$work/paymentsim.log" '"addr":"[^"]*"')
declare -A url pid
# start_service NAME BINDIR: the service on database NAME; both sides of a before/after run get
# the same configuration.
start_service() {
  ORDERS_HTTP_ADDR=127.0.0.1:0 ORDERS_LOG_LEVEL=info \
  ORDERS_DATABASE_URL="postgres://kit:kit@$pghost:$port/$1?sslmode=disable" \
  ORDERS_PAYMENTS_URL=http://$payments \
  ORDERS_JWT_SECRET=$SECRET ORDERS_RATE_LIMIT_RPS=1000000 ORDERS_RATE_LIMIT_BURST=1000000 \
  ORDERS_DRAIN_DELAY=0s ORDERS_PPROF_ADDR=${BENCH_PPROF_ADDR:-} ORDERS_PAYMENTS_ENABLED=${BENCH_PAYMENTS:-true} \
    "$2/service" >"$work/$1.log" 2>"$work/$1.err" & pids+=($!)
  pid[$1]=$!
}
# start_bare NAME BINDIR [PAYMENTS]: bench/bare on database NAME, the "work" variant with payments.
# Both baselines get the service's default pool size (ORDERS_DATABASE_MAX_CONNS, 20).
start_bare() {
  BARE_HTTP_ADDR=127.0.0.1:0 BARE_DATABASE_URL="postgres://kit:kit@$pghost:$port/$1?sslmode=disable&pool_max_conns=20" \
  BARE_PAYMENTS_URL=${3:-} "$2/bare" >"$work/$1.log" 2>&1 & pids+=($!)
  pid[$1]=$!
}
start_service service "$work/bin"
start_bare bare "$work/bin"
start_bare work "$work/bin" "http://$payments"
default_sides="bare work service"
if [[ -n "$base_sha" ]]; then
  start_service basesvc "$work/basebin"
  start_bare basework "$work/basebin" "http://$payments"
  default_sides="bare work service basework basesvc"
fi
for name in service basesvc; do
  [[ -n "${pid[$name]:-}" ]] || continue
  url[$name]=http://$(listen_addr "$work/$name.log" '"msg":"listening","addr":"[^"]*"')/v1/orders
done
for name in bare work basework; do
  [[ -n "${pid[$name]:-}" ]] || continue
  url[$name]=http://$(listen_addr "$work/$name.log" 'listening on [^ ]*')/v1/orders
done
read -r -a side_list <<<"${BENCH_SIDES:-$default_sides}"
for name in "${side_list[@]}"; do
  [[ -n "${url[$name]:-}" ]] || { echo "BENCH_SIDES: no side $name here (BENCH_BASE unset?)" >&2; exit 1; }
done
# rotated N: the sides starting with the N-th, so no side always runs first (after a pause) or
# last (in the wake of the others' autovacuum and checkpoints).
rotated() {
  local n=$(( $1 % ${#side_list[@]} ))
  echo "${side_list[@]:n}" "${side_list[@]:0:n}"
}

tool() { python3 bench/benchtool.py "$@"; }
pg_cgroup=""
cid=$(docker inspect -f '{{.Id}}' "$container")
for d in /sys/fs/cgroup/cpuacct/docker/$cid /sys/fs/cgroup/system.slice/docker-$cid.scope /sys/fs/cgroup/docker/$cid; do
  if [[ -r $d/cpuacct.usage || -r $d/cpu.stat ]]; then pg_cgroup=$d; break; fi
done
[[ -n "$pg_cgroup" ]] || echo "   PostgreSQL's cgroup is not readable here: its CPU is not reported" >&2
# cpu_snapshot SIDE: "SIDE payments postgres vegeta busy total" in seconds of CPU; vegeta is this
# shell's waited-for children, the last two are the whole machine (/proc/stat).
ticks=$(getconf CLK_TCK)
# proc_cpu PID [children]: the process's user+system CPU (fields 14-15 of /proc/PID/stat), or with
# "children" that of its waited-for children (16-17); awk counts them after the name is cut off.
proc_cpu() {
  awk -v t="$ticks" -v f="$([[ ${2:-} == children ]] && echo 14 || echo 12)" \
    '{ sub(/^.*\) /, ""); printf "%.3f", ($f + $(f + 1)) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}
cgroup_cpu() {
  if [[ -z "$pg_cgroup" ]]; then echo 0
  elif [[ -r $pg_cgroup/cpuacct.usage ]]; then awk '{ printf "%.3f", $1 / 1e9 }' "$pg_cgroup/cpuacct.usage"
  else awk '$1 == "usage_usec" { printf "%.3f", $2 / 1e6 }' "$pg_cgroup/cpu.stat"; fi
}
cpu_snapshot() {
  echo "$(proc_cpu "${pid[$1]}") $(proc_cpu "$payments_pid") $(cgroup_cpu) $(proc_cpu $$ children)" \
    "$(awk -v t="$ticks" '$1 == "cpu" { printf "%.3f %.3f", ($2+$3+$4+$7+$8) / t, ($2+$3+$4+$5+$6+$7+$8+$9) / t }' /proc/stat)"
}
token=$(tool token "$SECRET")

# drain: empties every side's outbox, between steps, as a relay would. The bench runs no NATS, so
# the services' events would pile up and their backlog gauge (outbox.WatchBacklog: a count over
# every pending row, once a second per service) would cost PostgreSQL more with every step —
# tens of milliseconds of CPU a second by the end of a grid, charged to whichever side runs then.
drain() {
  for db in "${!pid[@]}"; do
    docker exec "$container" psql -qAt -U kit -d "$db" -c 'DELETE FROM outbox' >/dev/null 2>&1 || true
  done
}

# attack SIDE RATE: one fixed-rate run, two printed lines, one row in results.jsonl.
attack() {
  local name=$1 rate=$2
  drain
  tool targets "${url[$name]}" "$rate" "$DURATION" "$token" >"$work/targets.json"
  local before after
  before=$(cpu_snapshot "$name")
  "$VEGETA" attack -format=json -targets="$work/targets.json" -rate="$rate" -duration="$DURATION" \
    -timeout=5s -max-workers=512 >"$work/$name-$rate.bin"
  after=$(cpu_snapshot "$name")
  "$VEGETA" report -type=json <"$work/$name-$rate.bin" | tool one "$name" "$rate" "$work/results.jsonl" "$before" "$after"
}

echo "== warm-up"
for name in "${side_list[@]}"; do DURATION=3s attack "$name" 50 >/dev/null; done
: >"$work/results.jsonl"

if [[ -n "${BENCH_SEARCH:-}" ]]; then
  DURATION=${BENCH_SEARCH_DURATION:-10s}
  step=${BENCH_SEARCH_STEP:-50}
  ceiling=${BENCH_P99_MS:-100}
  declare -A lo hi
  for name in "${side_list[@]}"; do lo[$name]=${BENCH_SEARCH_LO:-400} hi[$name]=${BENCH_SEARCH_HI:-2400}; done
  echo "== create-order, bisection for the highest rate kept up with p99 <= $ceiling ms," \
    "${BENCH_SEARCH_LO:-400}..${BENCH_SEARCH_HI:-2400}/s to ${step}/s, $DURATION per probe, a failed probe repeated once" \
    "(machine: $(nproc) cores)"
  # Each round probes every side once, so drift of the machine hits all of them alike. A probe
  # halves its side's interval: up when it kept up, down when it failed twice in a row (one
  # checkpoint or autovacuum must not decide the result).
  for round in $(seq 1 8); do
    probed=0
    for name in $(rotated "$round"); do
      (( hi[$name] - lo[$name] > step )) || continue
      rate=$(( (lo[$name] + hi[$name]) / 2 / step * step ))
      (( rate > lo[$name] )) || rate=$(( lo[$name] + step ))
      attack "$name" "$rate"
      if ! tool kept "$work/results.jsonl" "$name" "$rate" "$ceiling"; then
        sleep 2
        attack "$name" "$rate"
      fi
      if tool kept "$work/results.jsonl" "$name" "$rate" "$ceiling"; then
        lo[$name]=$rate
      else
        hi[$name]=$rate
      fi
      probed=1
      sleep 2 # let PostgreSQL settle (checkpoint, autovacuum) before the next probe
    done
    (( probed )) || break
  done
  # The result is the summary's "highest tested rate kept up": every probe is a row there, and a
  # side none of whose probes kept up shows as "none", below the search's floor.
else
  echo "== create-order, fixed arrival rate, $DURATION per step (machine: $(nproc) cores)"
  step_no=0
  for rate in $RATES; do
    for name in $(rotated "$step_no"); do attack "$name" "$rate"; done
    step_no=$((step_no + 1))
  done
fi

curl -sf -m 5 "${url[service]%/v1/orders}/metrics" >"$work/service-metrics.txt" || true
# The settling updates are meant to be heap-only (no index touched: the tables keep free space per
# page); the share that was, per side's database, says whether that held under this load.
echo "== updates that were heap-only (HOT), per database: table hot/all"
for name in "${side_list[@]}"; do
  docker exec "$container" psql -qAt -U kit -d "$name" -c "SELECT string_agg(format('%s %s/%s', relname, n_tup_hot_upd, n_tup_upd), '  ' ORDER BY relname) FROM pg_stat_user_tables WHERE n_tup_upd > 0" |
    sed "s/^/   $name: /" || true
done
tool summary "$work/results.jsonl" "${BENCH_P99_MS:-100}"
