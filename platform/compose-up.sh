#!/usr/bin/env bash
# Brings docker-compose.yml up for real with the locally built images (.kit/images.env), waits
# for the orders service to answer /readyz through its Toxiproxy-fronted dependencies and for the
# Toxiproxy API to list its proxies, then takes everything down again. Bounded: 180 s for the
# stack to come up, and `down` runs whatever happened.
#
#   bash platform/compose-up.sh            # up, check, down
#   KEEP=1 bash platform/compose-up.sh     # leave it running (take it down with the printed line)
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

project="kit-compose-$$"
file=docker-compose.yml
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose -p "$project" -f "$file")
elif command -v docker-compose >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  grep -v '^name:' "$file" >"$tmp/docker-compose.yml"
  compose=(docker-compose -p "$project" --project-directory "$PWD" -f "$tmp/docker-compose.yml")
else
  echo "compose-up: neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)" >&2
  exit 2
fi

for port in 8080 8474; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "compose-up: 127.0.0.1:$port is taken; the stack publishes the service and the Toxiproxy API there" >&2
    exit 2
  fi
done

down() { timeout 120 "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
if [ -z "${KEEP:-}" ]; then trap 'down; [ -z "${tmp:-}" ] || rm -rf "$tmp"' EXIT; fi

timeout 180 "${compose[@]}" up -d --no-build
deadline=$((SECONDS + 180))
until curl -fsS --max-time 2 http://127.0.0.1:8080/readyz >/dev/null 2>&1; do
  if [ "$SECONDS" -gt "$deadline" ]; then
    echo "compose-up: the service did not become ready within 180 s; its last lines:" >&2
    "${compose[@]}" logs --tail 30 service >&2 || true
    exit 1
  fi
  sleep 1
done
proxies=$(curl -fsS --max-time 2 http://127.0.0.1:8474/proxies)
for p in postgres redis nats payments; do
  grep -q "\"$p\"" <<<"$proxies" || { echo "compose-up: Toxiproxy has no proxy $p: $proxies" >&2; exit 1; }
done
echo "compose-up: ${compose[0]} brought the stack up; the service answers /readyz on 127.0.0.1:8080 through Toxiproxy (proxies postgres, redis, nats, payments)"
if [ -n "${KEEP:-}" ]; then
  echo "compose-up: left running; take it down with: ${compose[*]} down -v"
fi
