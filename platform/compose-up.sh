#!/usr/bin/env bash
# Brings docker-compose.yml up for real with the locally built images (.kit/images.env), waits
# for the orders service to answer /readyz through its Toxiproxy-fronted dependencies and for the
# Toxiproxy API to list its proxies, each enabled, then takes everything down again.
#
#   bash platform/compose-up.sh                   # up, check, down
#   KEEP=1 bash platform/compose-up.sh            # leave it running (take it down with the printed line)
#   bash platform/compose-up.sh OVERRIDE.yml ...  # with these files merged over docker-compose.yml
#                                                 # (platform/tests/compose_test.sh breaks the stack so)
#
# Bounded: 180 s for `up`, KIT_COMPOSE_READY_TIMEOUT (default 180) s for the service to answer
# /readyz, 120 s for `down`. `down` runs whatever happened: after a pass, a failed check, a
# timeout, and on Ctrl-C or TERM (so a `timeout` around this script takes the stack down too).
# Exit 0: the stack answered; 1: a check failed (the line says which); 2: it could not be tried.
#
# KIT_COMPOSE_PROJECT names the project (default kit-compose-PID): its network is then
# kit-compose-..._default and its containers carry the kit's label, so platform/sweep.sh removes
# what a killed run left behind.
#
# Works with `docker compose` (v2) and with Debian's `docker-compose` 1.29 (package
# docker-compose), which predates the Compose Specification's top-level `name:`: for it the file
# is passed without that line and the project is named with -p instead.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -f .kit/images.env ] || { echo "compose-up: .kit/images.env is missing; run make setup first" >&2; exit 2; }
set -a
# shellcheck disable=SC1091
. .kit/images.env
set +a

project=${KIT_COMPOSE_PROJECT:-kit-compose-$$}
ready_timeout=${KIT_COMPOSE_READY_TIMEOUT:-180}
overrides=()
for f in "$@"; do
  [ -f "$f" ] || { echo "compose-up: no such compose file: $f" >&2; exit 2; }
  overrides+=(-f "$f")
done

file=docker-compose.yml
tmp=
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose -p "$project" -f "$file" "${overrides[@]}")
elif command -v docker-compose >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  grep -v '^name:' "$file" >"$tmp/docker-compose.yml"
  compose=(docker-compose -p "$project" --project-directory "$PWD" -f "$tmp/docker-compose.yml" "${overrides[@]}")
else
  echo "compose-up: neither 'docker compose' nor 'docker-compose' is installed (make setup installs Debian's docker-compose; or apt-get install docker-compose)" >&2
  exit 2
fi

for port in 8080 8474; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    [ -z "$tmp" ] || rm -rf "$tmp"
    echo "compose-up: 127.0.0.1:$port is taken; the stack publishes the service and the Toxiproxy API there" >&2
    exit 2
  fi
done

# --foreground keeps each command in this script's process group, so a TERM or Ctrl-C sent to the
# group stops it at once and the traps below take the stack down.
bounded() {
  local seconds=$1
  shift
  timeout --foreground -k 10 "$seconds" "$@"
}
down() {
  bounded 120 "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 ||
    echo "compose-up: '${compose[*]} down' failed; platform/sweep.sh removes the leftovers" >&2
}
if [ -z "${KEEP:-}" ]; then
  trap 'down; [ -z "$tmp" ] || rm -rf "$tmp"' EXIT
  trap 'echo "compose-up: interrupted; taking the stack down" >&2; exit 130' INT
  trap 'echo "compose-up: terminated; taking the stack down" >&2; exit 143' TERM
fi

if ! bounded 180 "${compose[@]}" up -d --no-build; then
  echo "compose-up: '${compose[*]} up' failed or took over 180 s (its error is above)" >&2
  exit 1
fi

deadline=$((SECONDS + ready_timeout))
until answer=$(curl -sS --max-time 2 -w ' (HTTP %{http_code})' http://127.0.0.1:8080/readyz 2>&1) &&
  [[ "$answer" == *"(HTTP 200)" ]]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "compose-up: the service did not answer /readyz with 200 within ${ready_timeout} s; last answer: ${answer//$'\n'/ }" >&2
    echo "compose-up: the service's last lines:" >&2
    bounded 30 "${compose[@]}" logs --no-color --tail 30 service >&2 || true
    exit 1
  fi
  sleep 1
done

proxies=$(curl -fsS --max-time 5 http://127.0.0.1:8474/proxies) ||
  { echo "compose-up: the Toxiproxy API on 127.0.0.1:8474 did not answer GET /proxies" >&2; exit 1; }
listed=$(grep -o '"name":"[^"]*"' <<<"$proxies" | cut -d'"' -f4 | sort | paste -sd' ' -) || true
bad=0
for p in postgres redis nats payments; do
  if ! grep -q "\"name\":\"$p\"" <<<"$proxies"; then
    echo "compose-up: Toxiproxy has no proxy $p (it lists: ${listed:-none})" >&2
    bad=1
  elif ! grep -qE "\"name\":\"$p\"[^{}]*\"enabled\":true" <<<"$proxies"; then
    echo "compose-up: Toxiproxy's proxy $p is disabled" >&2
    bad=1
  fi
done
[ "$bad" -eq 0 ] || exit 1

echo "compose-up: ${compose[0]} brought the stack up; the service answers /readyz on 127.0.0.1:8080 through Toxiproxy (proxies postgres, redis, nats, payments)"
if [ -n "${KEEP:-}" ]; then
  echo "compose-up: left running; take it down with: ${compose[*]} down -v"
fi
