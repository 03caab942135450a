#!/usr/bin/env bash
# Benchmark of the verifier's load engines (a benchmark, not a test): `make bench-verifier`.
#
# Against nginx on loopback pinned to one core, with each generator pinned to the other:
#   1. saturation throughput and requests per generator CPU-second for the open engine,
#      the closed (goose) engine, wrk and oha;
#   2. a stall test: 2000 req/s, the target SIGSTOPped for 1 s, the verifier's p99 beside
#      the p99 computed from the schedule, and oha's --latency-correction figure;
#   3. the open engine's peak RSS after about 1 M requests.
#
# Installs what is missing (nginx and wrk from Debian, oha with cargo). Traffic goes only to
# 127.0.0.1; every run is bounded by its duration. Environment knobs: BENCH_PORT,
# BENCH_SECONDS (saturation run length), BENCH_ROUNDS (saturation rounds, default 5),
# BENCH_CONNS, BENCH_TARGET_CPU, BENCH_GEN_CPU, BENCH_PROFILE (the verifier's build profile:
# fat, the default, the faster generator (verifier/README.md, Benchmark); release, what
# `make build` gives).
#
# A shared or virtual machine drifts by 10-20 % within a minute, so the saturation runs go in
# rounds, the four generators one after another in each (the open engine right after wrk), and
# the table shows each one's median with its range; the open engine's ratios to wrk and oha are
# taken within each round, then the median of those is printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORT=${BENCH_PORT:-18080}
SECONDS_RUN=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNS:-50}
TARGET_CPU=${BENCH_TARGET_CPU:-0}
GEN_CPU=${BENCH_GEN_CPU:-1}
URL="http://127.0.0.1:${PORT}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/verifier-bench.XXXXXX")

log() { printf 'bench: %s\n' "$*" >&2; }

# shellcheck source=verifier/bench/nginx.sh
. "$ROOT/verifier/bench/nginx.sh"
cleanup() {
    nginx_stop
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

install_tools() {
    local missing=()
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v wrk >/dev/null || missing+=(wrk)
    [[ -x /usr/bin/time ]] || missing+=(time)
    if ((${#missing[@]})); then
        log "installing ${missing[*]} from Debian"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v oha >/dev/null; then
        log "installing oha with cargo (a few minutes, once)"
        cargo install oha --locked --quiet
    fi
    command -v jq >/dev/null || { apt-get install -y -qq jq >/dev/null; }
}

# Runs a generator pinned to GEN_CPU under /usr/bin/time; leaves "elapsed user sys maxrss_kb".
timed() {
    local out=$1; shift
    /usr/bin/time -f "%e %U %S %M" -o "$out" taskset -c "$GEN_CPU" "$@"
}

# /usr/bin/time puts "Command exited with non-zero status N" first when the exit is not 0.
cpu_of() { tail -n1 "$1" | awk '{printf "%.3f", $2 + $3}'; }
rss_mb_of() { tail -n1 "$1" | awk '{printf "%.1f", $4 / 1024}'; }

scenario_open() { # rate seconds max_in_flight
    cat <<EOF
name: bench-open
defaults: { timeout: 5s, connect_timeout: 1s }
journeys: [{ name: get, steps: [{ name: get, method: GET, path: / }] }]
load:
  open:
    phases: [{ steady: { rate: $1, duration: ${2}s } }]
    max_in_flight: $3
EOF
}

scenario_closed() { # users seconds
    cat <<EOF
name: bench-closed
defaults: { timeout: 5s, connect_timeout: 1s }
journeys: [{ name: get, steps: [{ name: get, method: GET, path: / }] }]
load:
  closed:
    phases: [{ ramp: { users: $1, duration: 1s } }, { steady: { duration: $(($2 - 1))s } }]
EOF
}

PROFILE=${BENCH_PROFILE:-fat}
VERIFIER="$ROOT/target/$PROFILE/verifier"
run_verifier() { # scenario-file report-dir time-file
    timed "$3" "$VERIFIER" run "$1" --target "$URL" --report-dir "$2" --progress off >/dev/null 2>&1 || true
}


main() {
    case $PROFILE in
    release | fat) ;;
    *) log "BENCH_PROFILE=$PROFILE: use fat (the default) or release"; exit 2 ;;
    esac
    install_tools
    log "building the verifier (profile $PROFILE; the first fat build takes about 9 minutes on 2 cores)"
    (cd "$ROOT" && cargo build --profile "$PROFILE" --locked -p verifier --bin verifier --quiet)
    nginx_start '{"ok":true}'
    log "target: nginx on CPU $TARGET_CPU, generators on CPU $GEN_CPU, $CONNS connections, ${SECONDS_RUN}s runs"

    declare -A REQ CPU RSS PER
    # One saturation run of generator $1 in round $2: sets REQ, CPU, RSS and appends to PER.
    saturate() {
        local g=$1 r=$2
        case $g in
        wrk)
            timed "$WORK/wrk.time" wrk -t1 -c"$CONNS" -d"${SECONDS_RUN}s" "$URL/" >"$WORK/wrk.txt"
            REQ[wrk]=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt") ;;
        oha)
            timed "$WORK/oha.time" oha -z "${SECONDS_RUN}s" -c "$CONNS" --no-tui --output-format json "$URL/" >"$WORK/oha.json"
            REQ[oha]=$(jq '[.statusCodeDistribution[]] | add' "$WORK/oha.json") ;;
        open)
            scenario_open 500000 "$SECONDS_RUN" "$CONNS" >"$WORK/open.yaml"
            rm -rf "$WORK/open"
            run_verifier "$WORK/open.yaml" "$WORK/open" "$WORK/open.time"
            REQ[open]=$(jq '.overall.requests' "$WORK/open/report.json") ;;
        closed)
            scenario_closed "$CONNS" "$SECONDS_RUN" >"$WORK/closed.yaml"
            rm -rf "$WORK/closed"
            run_verifier "$WORK/closed.yaml" "$WORK/closed" "$WORK/closed.time"
            REQ[closed]=$(jq '.overall.requests' "$WORK/closed/report.json") ;;
        esac
        CPU[$g]=$(cpu_of "$WORK/$g.time"); RSS[$g]=$(rss_mb_of "$WORK/$g.time")
        local per
        per=$(awk -v n="${REQ[$g]}" -v c="${CPU[$g]}" 'BEGIN {printf "%.0f", (c > 0 ? n / c : 0)}')
        PER[$g]+=" $per"
        log "round $r: $g ${REQ[$g]} requests, $per req/CPU-s"
    }
    # open engine / generator $1 per CPU-second in the round just run
    ratio() { awk -v a="${PER[open]##* }" -v b="${PER[$1]##* }" 'BEGIN {printf "%.3f", a / b}'; }
    local RATIO_WRK="" RATIO_OHA=""
    for r in $(seq 1 "$ROUNDS"); do
        for g in wrk open oha closed; do saturate "$g" "$r"; done
        RATIO_WRK+=" $(ratio wrk)" RATIO_OHA+=" $(ratio oha)"
    done
    # median and range of a list of numbers
    med() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk -v f="${2:-%d}" '{a[NR] = $1} END {printf f, (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
    range() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk -v f="${2:-%d}" 'NR == 1 {lo = $1} {hi = $1} END {printf f "-" f, lo, hi}'; }

    echo
    echo "### Saturation ($ROUNDS rounds of ${SECONDS_RUN}s, $CONNS connections, nginx on one core; verifier built with the $PROFILE profile)"
    echo
    row() { printf '| %-23s | %9s | %14s | %13s | %6s |\n' "$@"; }
    row "generator" "req/s" "req/CPU-s" "range" "RSS MB"
    row "---" "---:" "---:" "---:" "---:"
    for g in wrk oha open closed; do
        local name=$g
        [[ $g == open ]] && name="verifier open (hyper)"
        [[ $g == closed ]] && name="verifier closed (goose)"
        row "$name" \
            "$(awk -v n="${REQ[$g]}" -v s="$SECONDS_RUN" 'BEGIN {printf "%.0f", n / s}')" \
            "$(med "${PER[$g]}")" "$(range "${PER[$g]}")" "${RSS[$g]}"
    done
    echo
    echo "Open engine per CPU-second, median of the rounds' ratios (range): $(med "$RATIO_OHA" %.2f)x oha" \
        "($(range "$RATIO_OHA" %.2f)), $(med "$RATIO_WRK" %.2f)x wrk ($(range "$RATIO_WRK" %.2f)); req/s is the last round."

    # Stall: 2000 req/s for 10 s; the target is stopped 3 s in for 1 s.
    local rate=2000 dur=10
    # Only the worker serves requests; stopping it by pid with the shell's own kill and
    # clock keeps the measured stall within a millisecond of the real one.
    local workers
    workers=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
    stall() { # command... ; runs it in the background and stalls nginx under it
        "$@" >/dev/null 2>&1 &
        local gen=$!
        sleep 3
        local t1 t2
        # shellcheck disable=SC2086
        kill -STOP $workers
        t1=$EPOCHREALTIME
        sleep 1
        t2=$EPOCHREALTIME
        # shellcheck disable=SC2086
        kill -CONT $workers
        wait "$gen" || true
        awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.4f", b - a}'
    }
    log "stall test: verifier open engine"
    scenario_open "$rate" "$dur" 4000 >"$WORK/stall.yaml"
    local stall_v
    stall_v=$(stall "$VERIFIER" run "$WORK/stall.yaml" --target "$URL" --report-dir "$WORK/stall" --progress off)
    local p99_v
    p99_v=$(jq '.overall.p99_us / 1e6' "$WORK/stall/report.json")
    # From the schedule: every arrival due inside the stall waits for its end, so the k-th
    # worst latency is (stall - k/rate); p99 is the (1 % of all arrivals)-th worst.
    local expected_v
    expected_v=$(awk -v s="$stall_v" -v r="$rate" -v d="$dur" 'BEGIN {printf "%.4f", s - 0.01 * r * d / r}')

    log "stall test: oha --latency-correction"
    local stall_o
    stall_o=$(stall sh -c "oha -z ${dur}s -q $rate -c $CONNS --latency-correction --no-tui --output-format json $URL/ >'$WORK/oha-stall.json'")
    local p99_o
    p99_o=$(jq '.latencyPercentiles.p99' "$WORK/oha-stall.json")
    local expected_o
    expected_o=$(awk -v s="$stall_o" -v r="$rate" -v d="$dur" 'BEGIN {printf "%.4f", s - 0.01 * r * d / r}')

    echo
    echo "### Stall: ${rate} req/s for ${dur}s, target SIGSTOPped for ~1 s"
    echo
    printf '| %-30s | %10s | %16s | %8s |\n' "generator" "p99 (s)" "from schedule (s)" "error"
    printf '| %-30s | %10s | %16s | %8s |\n' "---" "---:" "---:" "---:"
    printf '| %-30s | %10.4f | %16s | %7.2f%% |\n' "verifier open" "$p99_v" "$expected_v" \
        "$(awk -v a="$p99_v" -v b="$expected_v" 'BEGIN {printf "%.2f", (a - b) / b * 100}')"
    printf '| %-30s | %10.4f | %16s | %7.2f%% |\n' "oha --latency-correction" "$p99_o" "$expected_o" \
        "$(awk -v a="$p99_o" -v b="$expected_o" 'BEGIN {printf "%.2f", (a - b) / b * 100}')"

    # Peak RSS after ~1 M requests at 80 % of the open engine's saturation rate.
    local sat rate_m secs_m
    sat=$(awk -v n="${REQ[open]}" -v s="$SECONDS_RUN" 'BEGIN {printf "%d", n / s}')
    rate_m=$(awk -v s="$sat" 'BEGIN {printf "%d", s * 0.8}')
    secs_m=$(awk -v r="$rate_m" 'BEGIN {printf "%d", 1050000 / r + 1}')
    log "memory: ${rate_m} req/s for ${secs_m}s"
    scenario_open "$rate_m" "$secs_m" "$CONNS" >"$WORK/mem.yaml"
    run_verifier "$WORK/mem.yaml" "$WORK/mem" "$WORK/mem.time"
    echo
    echo "### Memory"
    echo
    echo "verifier open engine: $(jq '.overall.requests' "$WORK/mem/report.json") requests," \
        "peak RSS $(rss_mb_of "$WORK/mem.time") MB"
}

# Run, unless another bench script sources this one for its helpers.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
