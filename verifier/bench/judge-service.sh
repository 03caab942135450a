#!/usr/bin/env bash
# How good the regression judge is against the reference service (a benchmark, not a test):
# `make bench-judge-service`.
#
# Builds the service at HEAD twice: as it is, and with a planted slowdown of its create path
# (a sleep of JUDGE_SLOWDOWN, default 3ms, before the order is placed). Then, in rounds, runs
# scenarios/compare.yaml twice: A/A (the same build on both sides) and A/B (the slowed build as
# the candidate), both services against the same containers, and tallies the judge's decision
# on create-order's p50 and p99 and on get-order's p50 (which the slowdown does not touch).
#
# Environment: JUDGE_ROUNDS (default 5), JUDGE_SLOWDOWN (a Go duration, default 3ms),
# JUDGE_VERIFIER (the verifier binary, default target/release/verifier). Traffic goes only to
# the services on loopback that the runs start; every run is bounded by the scenario's duration.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${JUDGE_ROUNDS:-5}
SLOWDOWN=${JUDGE_SLOWDOWN:-3ms}
VERIFIER=${JUDGE_VERIFIER:-$ROOT/target/release/verifier}
DEMO_JWT_SECRET=${DEMO_JWT_SECRET:-demo-only-secret-change-me-0123456789abcdef}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/judge-service.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log() { printf 'bench-judge-service: %s\n' "$*" >&2; }

[ -x "$VERIFIER" ] || { log "no verifier at $VERIFIER (make build, or set JUDGE_VERIFIER)"; exit 2; }
[ -x "$ROOT/target/bin/devtoken" ] || { log "no target/bin/devtoken (make build)"; exit 2; }
[[ $SLOWDOWN =~ ^[0-9]+(ms|us|µs)$ ]] || { log "JUDGE_SLOWDOWN=$SLOWDOWN: give a Go duration such as 3ms"; exit 2; }

cd "$ROOT"
# The local images platform/setup.sh built, and how tests reach containers (as the Makefile sets).
if [ -f .kit/images.env ]; then
    set -a
    # shellcheck source=/dev/null
    . .kit/images.env
    set +a
fi
export TESTCONTAINERS_HOST_OVERRIDE=${TESTCONTAINERS_HOST_OVERRIDE:-127.0.0.1}
export TESTCONTAINERS_RYUK_DISABLED=${TESTCONTAINERS_RYUK_DISABLED:-true}
sha=$(git rev-parse HEAD)
build() { # build <dir> <planted slowdown or empty>
    local out=$1 slow=$2 src
    src=$(mktemp -d "$WORK/src.XXXX")
    git archive "$sha" reference-service | tar -x -C "$src"
    if [ -n "$slow" ]; then
        python3 - "$src/reference-service/internal/httpapi/api.go" "$slow" <<'EOF'
import sys
path, slow = sys.argv[1], sys.argv[2]
s = open(path).read()
anchor = '\ta.log.DebugContext(ctx, "placing order"'
if anchor not in s or '\t"time"\n' not in s:
    sys.exit("the create path changed: the slowdown's anchor is not in " + path)
s = s.replace(anchor, '\ttime.Sleep(plantedSlowdown)\n' + anchor, 1)
s += '\nvar plantedSlowdown, _ = time.ParseDuration("' + slow + '")\n'
open(path, "w").write(s)
EOF
    fi
    mkdir -p "$out"
    (cd "$src/reference-service" && go build -o "$out/service" ./cmd/service)
}
log "building the service at ${sha:0:12}, as it is and with create-order slowed by $SLOWDOWN"
build "$WORK/base" ""
build "$WORK/slow" "$SLOWDOWN"

scenario() { # scenario <candidate binary> <file>
    sed -e "s#command: \[target/bin/service\]#command: [$1]#" \
        -e "s#command: \[target/compare/baseline/service\]#command: [$WORK/base/service]#" \
        scenarios/compare.yaml >"$2"
    grep -q "$1" "$2" || { log "scenarios/compare.yaml changed: cannot set the candidate"; exit 2; }
}
scenario "$WORK/base/service" "$WORK/aa.yaml"
scenario "$WORK/slow/service" "$WORK/ab.yaml"

export ORDERS_JWT_SECRET=$DEMO_JWT_SECRET
VERIFIER_TOKEN=$("$ROOT/target/bin/devtoken" -tenant demo)
export VERIFIER_TOKEN
: >"$WORK/rows"
started=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
    for kind in aa ab; do
        dir="$WORK/reports-$kind-$round"
        code=0
        "$VERIFIER" run "$WORK/$kind.yaml" --report-dir "$dir" >/dev/null 2>"$dir.err" || code=$?
        if [ ! -f "$dir/report.json" ]; then
            log "round $round $kind: no report (exit $code): $(tail -n 2 "$dir.err")"
            exit 1
        fi
        python3 - "$dir/report.json" "$kind" >>"$WORK/rows" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for j in r["comparison"]["judgements"]:
    if (j["endpoint"], j["statistic"]) in {("create-order", "p50"), ("create-order", "p99"), ("get-order", "p50")}:
        print(sys.argv[2], j["endpoint"], j["statistic"], j["decision"], j["baseline"], j["change"], j["low"], j["high"])
EOF
        log "round $round/$ROUNDS $kind: exit $code ($(( $(date +%s) - started )) s)"
    done
done

python3 - "$WORK/rows" "$SLOWDOWN" "$ROUNDS" <<'EOF'
import sys, collections
rows = [l.split() for l in open(sys.argv[1])]
slow, rounds = sys.argv[2], int(sys.argv[3])
t = collections.defaultdict(lambda: collections.Counter())
base = collections.defaultdict(list)
chg = collections.defaultdict(list)
for kind, ep, stat, dec, b, c, lo, hi in rows:
    t[(kind, ep, stat)][dec] += 1
    if b != "None":
        base[(ep, stat)].append(float(b))
    if c != "None":
        chg[(kind, ep, stat)].append(float(c))
print(f"reference service, create-order slowed by {slow}; scenarios/compare.yaml, {rounds} rounds")
print(f"{'run':<4} {'endpoint':<13} {'stat':<4} {'baseline':>9} {'mean change':>11}  regression  inconclusive  other")
for kind in ("aa", "ab"):
    for ep, stat in (("create-order", "p50"), ("create-order", "p99"), ("get-order", "p50")):
        c = t[(kind, ep, stat)]
        b = base[(ep, stat)]
        ch = chg[(kind, ep, stat)]
        n = sum(c.values())
        print(f"{'A/A' if kind == 'aa' else 'A/B':<4} {ep:<13} {stat:<4} "
              f"{(sum(b) / len(b) / 1000 if b else float('nan')):>6.1f} ms "
              f"{(100 * sum(ch) / len(ch) if ch else float('nan')):>+10.1f}%  "
              f"{c['regression']:>4}/{n}      {c['inconclusive']:>4}/{n}      {n - c['regression'] - c['inconclusive']:>3}/{n}")
EOF
log "done in $(( $(date +%s) - started )) s"
