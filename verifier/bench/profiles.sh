#!/usr/bin/env bash
# Which build profile the verifier should ship with (a benchmark, not a test):
# `make bench-profiles`.
#
# 1. Build time: the verifier crate rebuilt (its dependencies already built) under the `release`
#    profile and under the `fat` profile (fat LTO, one codegen unit), taking turns.
# 2. Generator cost: the open engine of each build against nginx on loopback, pinned as in
#    bench.sh, in BENCH_ROUNDS rounds that alternate which build goes first; requests per
#    CPU-second of each, and the per-round ratio fat / release (median and range).
#
# Traffic goes only to 127.0.0.1; every run is bounded by its duration.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=verifier/bench/bench.sh
. "$ROOT/verifier/bench/bench.sh"
BUILD_ROUNDS=${BENCH_BUILD_ROUNDS:-2}

build_once() { # profile; prints the wall seconds of rebuilding the verifier crate
    touch "$ROOT/verifier/src/lib.rs"
    local t0 t1
    t0=$EPOCHREALTIME
    (cd "$ROOT" && cargo build --profile "$1" --locked -p verifier --bin verifier --quiet)
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}'
}

profiles_main() {
    install_tools
    log "building both profiles once (dependencies included; the first is timed if nothing was built)"
    local t0 FIRST_REL FIRST_FAT
    t0=$EPOCHREALTIME
    (cd "$ROOT" && cargo build --profile release --locked -p verifier --bin verifier --quiet)
    FIRST_REL=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", b - a}')
    t0=$EPOCHREALTIME
    (cd "$ROOT" && cargo build --profile fat --locked -p verifier --bin verifier --quiet)
    FIRST_FAT=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", b - a}')
    local B_REL="" B_FAT=""
    for r in $(seq 1 "$BUILD_ROUNDS"); do
        B_REL+=" $(build_once release)"
        B_FAT+=" $(build_once fat)"
        log "build round $r: release${B_REL##* } s, fat${B_FAT##* } s"
    done
    cp "$ROOT/target/release/verifier" "$WORK/verifier-release"
    cp "$ROOT/target/fat/verifier" "$WORK/verifier-fat"

    nginx_start '{"ok":true}'
    scenario_open 500000 "$SECONDS_RUN" "$CONNS" >"$WORK/open.yaml"
    declare -A PER
    local RATIO=""
    one() { # build round
        rm -rf "$WORK/r-$1"
        VERIFIER="$WORK/verifier-$1"
        run_verifier "$WORK/open.yaml" "$WORK/r-$1" "$WORK/$1.time"
        local n c
        n=$(jq '.overall.requests' "$WORK/r-$1/report.json")
        c=$(cpu_of "$WORK/$1.time")
        PER[$1]+=" $(awk -v n="$n" -v c="$c" 'BEGIN {printf "%.0f", (c > 0 ? n / c : 0)}')"
        log "round $2: $1 $n requests, ${PER[$1]##* } req/CPU-s"
    }
    for r in $(seq 1 "$ROUNDS"); do
        if ((r % 2)); then one release "$r"; one fat "$r"; else one fat "$r"; one release "$r"; fi
        RATIO+=" $(awk -v a="${PER[fat]##* }" -v b="${PER[release]##* }" 'BEGIN {printf "%.3f", a / b}')"
    done
    med() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk -v f="${2:-%d}" '{a[NR] = $1} END {printf f, (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
    range() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk -v f="${2:-%d}" 'NR == 1 {lo = $1} {hi = $1} END {printf f "-" f, lo, hi}'; }
    echo
    echo "### Build profiles ($BUILD_ROUNDS rebuilds of the verifier crate; $ROUNDS rounds of ${SECONDS_RUN}s, open engine, nginx on one core)"
    echo
    echo "| profile | this run's first build s | rebuild s (median, range) | open engine req/CPU-s (median, range) |"
    echo "|---|---:|---:|---:|"
    echo "| release (no cross-crate LTO, 16 codegen units) | $FIRST_REL | $(med "$B_REL") ($(range "$B_REL")) | $(med "${PER[release]}") ($(range "${PER[release]}")) |"
    echo "| fat (fat LTO, 1 codegen unit) | $FIRST_FAT | $(med "$B_FAT") ($(range "$B_FAT")) | $(med "${PER[fat]}") ($(range "${PER[fat]}")) |"
    echo
    echo "fat / release per CPU-second, median of the rounds' ratios: $(med "$RATIO" %.3f) ($(range "$RATIO" %.3f))"
}

profiles_main "$@"
