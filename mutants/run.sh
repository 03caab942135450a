#!/usr/bin/env bash
# The mutation check of the release gate (`make mutants`; mutants/README.md).
#
#   bash mutants/run.sh            every mutant of mutants/mutants.txt
#   bash mutants/run.sh 06 11      the named mutants only
#   bash mutants/run.sh --check    only check that every patch still applies to this tree (fast;
#                                  `make test-go` runs it)
#
# Each mutant is one patch applied alone to a copy of reference-service/, built, and run through
# its gates (smoke, drill, compare) with the verifier until one fails it. First the unmutated
# service runs through every gate the selection needs and must pass each (compare: judge no
# regression), or the table would mean nothing. Prints one row per mutant (caught or missed, by
# which rules) and the wall time; the reports are kept under reports/mutants/.
#
# Environment: VERIFIER (default target/release/verifier, from `make build`), MUTANTS_LOCK (a
# file: each control run, and each mutant's build and gates, then hold `flock` on it, so other
# heavy jobs of a shared machine run in between).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
list=mutants/mutants.txt

die() {
  printf 'mutants: %s\n' "$*" >&2
  exit 1
}
note() { printf 'mutants: %s\n' "$*" >&2; }
trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# mutants.txt, parsed: ids[i], patches[i], gates[i], whats[i].
ids=() patches=() gates=() whats=()
while IFS='|' read -r id patch gate what; do
  id=$(trim "$id")
  case $id in '' | '#'*) continue ;; esac
  ids+=("$id") patches+=("$(trim "$patch")") gates+=("$(trim "$gate")") whats+=("$(trim "$what")")
done <"$list"
((${#ids[@]} > 0)) || die "$list lists no mutant"

check() {
  local bad=0 i p
  for p in mutants/*.patch; do
    printf '%s\n' "${patches[@]}" | grep -qxF "${p#mutants/}" || {
      note "$p is not listed in $list"
      bad=1
    }
  done
  for i in "${!ids[@]}"; do
    p=mutants/${patches[$i]}
    if [ ! -f "$p" ]; then
      note "mutant ${ids[$i]}: $p is missing"
      bad=1
    elif ! msg=$(git apply --check "$p" 2>&1); then
      note "mutant ${ids[$i]}: $p no longer applies to this tree (refresh it: apply it by hand, then git diff -U1 > $p):"
      printf '%s\n' "$msg" >&2
      bad=1
    fi
  done
  ((bad == 0)) || exit 1
  note "every patch applies (${#ids[@]} mutants)"
}

if [ "${1:-}" = "--check" ]; then
  check
  exit 0
fi

# The selection: the named ids, or every mutant.
sel=()
if (($# == 0)); then
  sel=("${!ids[@]}")
else
  for want in "$@"; do
    found=
    for i in "${!ids[@]}"; do
      [ "${ids[$i]}" = "$want" ] && found=$i
    done
    [ -n "$found" ] || die "no mutant $want in $list"
    sel+=("$found")
  done
fi
check

VERIFIER=${VERIFIER:-$root/target/release/verifier}
[ -x "$VERIFIER" ] || die "no verifier at $VERIFIER (make build, or set VERIFIER)"
command -v jq >/dev/null || die "jq is needed to read the reports"
if [ -z "${KIT_IMAGE_POSTGRES:-}" ] && [ -f .kit/images.env ]; then
  set -a
  # shellcheck disable=SC1091
  . .kit/images.env
  set +a
fi
export TESTCONTAINERS_HOST_OVERRIDE=${TESTCONTAINERS_HOST_OVERRIDE:-127.0.0.1}
export TESTCONTAINERS_RYUK_DISABLED=${TESTCONTAINERS_RYUK_DISABLED:-true}
# The service under test signs tokens with this secret; a sample, for these runs only.
export ORDERS_JWT_SECRET=mutants-only-secret-0123456789abcdef0123

lock() {
  [ -z "${MUTANTS_LOCK:-}" ] || {
    exec 9>>"$MUTANTS_LOCK"
    flock 9
  }
}
unlock() {
  [ -z "${MUTANTS_LOCK:-}" ] || flock -u 9
}

started=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$root/reports/mutants
rm -rf "$out"
mkdir -p "$out"

# build DIR: builds DIR/reference-service's service into DIR/service.
build() {
  (cd "$1/reference-service" && go build -trimpath -o "$1/service" ./cmd/service) >"$1/build.log" 2>&1
}

mkdir -p "$tmp/control"
cp -a reference-service "$tmp/control/"
note "building the unmutated service and devtoken"
lock
build "$tmp/control" || die "the unmutated service does not build: $(tail -n 5 "$tmp/control/build.log")"
(cd reference-service && go build -trimpath -o "$tmp/devtoken" ./cmd/devtoken) || die "devtoken does not build"
unlock
VERIFIER_TOKEN=$("$tmp/devtoken" -tenant demo)
export VERIFIER_TOKEN

scenario_of() {
  case $1 in
    smoke) echo scenarios/smoke.yaml ;;
    drill) echo scenarios/chaos-drill-short.yaml ;;
    compare) echo scenarios/compare.yaml ;;
    *) die "unknown gate $1 (smoke, drill or compare)" ;;
  esac
}

# gate NAME GATE SERVICE: runs GATE's scenario with SERVICE as the service under test (and the
# unmutated service as the compare baseline); sets code, failed (rule ids), inconc (rule ids).
gate() {
  local name=$1 g=$2 svc=$3 src dst dir
  src=$(scenario_of "$g")
  dst=$tmp/$name-$g.yaml
  dir=$out/$name-$g
  sed -e "s|command: \[target/bin/service\]|command: [\"$svc\"]|" \
    -e "s|command: \[target/compare/baseline/service\]|command: [\"$tmp/control/service\"]|" \
    -e "s|\.\./reference-service/|$root/reference-service/|g" \
    -e "s|\.\./dashboards/|$root/dashboards/|g" "$src" >"$dst"
  grep -qF "command: [\"$svc\"]" "$dst" || die "$src no longer says command: [target/bin/service]"
  code=0
  # Each scenario's plan bounds its run; the outer limit only guards against a hung start.
  timeout --kill-after=30s 900s "$VERIFIER" run "$dst" --report-dir "$dir" --progress off >"$dir.log" 2>&1 || code=$?
  failed=$(jq -r '[.verdict.rules[] | select(.status == "fail") | .id] | join(" ")' "$dir/report.json" 2>/dev/null || true)
  inconc=$(jq -r '[.verdict.rules[] | select(.status == "inconclusive") | .id] | join(" ")' "$dir/report.json" 2>/dev/null || true)
}

# The gates the selection needs, each first against the unmutated service.
need=()
for i in "${sel[@]}"; do
  IFS=',' read -ra gs <<<"${gates[$i]}"
  for g in "${gs[@]}"; do
    g=$(trim "$g")
    scenario_of "$g" >/dev/null
    [[ " ${need[*]} " == *" $g "* ]] || need+=("$g")
  done
done
# The compare gate's control is an A/A run (the unmutated service on both sides): it must judge
# no regression. Some statistics may stay inconclusive there (an interval straddling its limit:
# more load would settle it); a mutant then counts as caught by that gate only by a failed rule.
controls=()
for g in "${need[@]}"; do
  note "control: the unmutated service through the $g gate"
  lock
  t0=$SECONDS
  gate control "$g" "$tmp/control/service"
  unlock
  if ((code == 0)); then
    controls+=("$g pass")
  elif [ "$g" = compare ] && ((code == 4)) && [ -z "$failed" ]; then
    controls+=("$g no regression (inconclusive: $inconc)")
  else
    die "control: the unmutated service did not pass the $g gate (exit $code; failed: ${failed:-none}; inconclusive: ${inconc:-none}); see $out/control-$g.log"
  fi
  note "control: ${controls[-1]} in $((SECONDS - t0)) s"
done

# A few rule ids, then how many more.
some() {
  local -a r
  read -ra r <<<"$1"
  if ((${#r[@]} <= 4)); then
    printf '%s' "${r[*]}"
  else
    printf '%s (+%d more)' "${r[*]:0:4}" $((${#r[@]} - 4))
  fi
}

rows=()
caught=0
for i in "${sel[@]}"; do
  id=${ids[$i]}
  patch=${patches[$i]}
  weak=${patch%.patch}
  weak=${weak#"$id"-}
  lock
  t0=$SECONDS
  d=$tmp/m$id
  mkdir -p "$d"
  cp -a "$tmp/control/reference-service" "$d/"
  (cd "$d" && git apply "$root/mutants/$patch") || die "mutant $id: $patch does not apply"
  if ! build "$d"; then
    rows+=("$id | $weak | - | not built | $(tail -n 1 "$d/build.log") | $((SECONDS - t0)) s")
    rm -rf "$d"
    unlock
    continue
  fi
  result=missed by=- ran=()
  IFS=',' read -ra gs <<<"${gates[$i]}"
  for g in "${gs[@]}"; do
    g=$(trim "$g")
    note "mutant $id ($weak): $g gate"
    ran+=("$g")
    gate "$id" "$g" "$d/service"
    case $code in
      0) result=missed by=- ;;
      1)
        result=caught by=$(some "$failed")
        break
        ;;
      4) result=inconclusive by="inconclusive: $(some "$inconc")" ;;
      *) result="error (exit $code)" by="see reports/mutants/$id-$g.log" ;;
    esac
  done
  [ "$result" = caught ] && caught=$((caught + 1))
  rows+=("$id | $weak | $(
    IFS=,
    echo "${ran[*]}"
  ) | $result | $by | $((SECONDS - t0)) s")
  unlock
  note "mutant $id: $result${by:+ ($by)}"
  rm -rf "$d"
done

wall=$((SECONDS - started))
{
  echo "| id | weakness | gate | result | by rule(s) | time |"
  echo "|---|---|---|---|---|---:|"
  printf '| %s |\n' "${rows[@]}" | sort
  echo
  ctl=$(printf '%s, ' "${controls[@]}")
  echo "$caught of ${#sel[@]} caught; controls (unmutated): ${ctl%, }; wall time $((wall / 60)) min $((wall % 60)) s"
} | tee "$out/table.md"
((caught == ${#sel[@]}))
