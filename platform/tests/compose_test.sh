#!/usr/bin/env bash
# docker-compose.yml brought up for real by platform/compose-up.sh with the local images: once as
# shipped (the service answers /readyz through Toxiproxy, Toxiproxy lists its proxies), then
# broken on purpose through override files, to show the check fails with a line naming the
# cause, and that every run takes its stack down: after a pass, a failed check, a readiness
# timeout, and a TERM from an outer `timeout`. Each run publishes 127.0.0.1:8080 and :8474
# (compose-up.sh refuses to start when either is taken), so the runs go one after another.
set -uo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"

passed=0
failed=0
run_id="kit-compose-test-$$"
work=$(mktemp -d)
chmod a+rx "$work"
# Every project a check brings up (the checks run in subshells, so the list is fixed here).
projects=("$run_id-pass" "$run_id-proxies" "$run_id-unhealthy" "$run_id-terminated")
cleanup() {
  local p ids
  for p in "${projects[@]}"; do
    ids=$(timeout 30 docker ps -aq --filter "label=com.docker.compose.project=$p" 2>/dev/null)
    [ -z "$ids" ] || timeout 60 docker rm -f -v $ids >/dev/null 2>&1 || true
    timeout 30 docker network rm "${p}_default" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check() {
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    printf '%s\n' "$out" | tail -n 8 | sed 's/^/     /'
  fi
}

# compose_up NAME EXPECTED_EXIT [OVERRIDE...]: runs compose-up.sh as project NAME, prints its
# output, and fails unless it exits EXPECTED_EXIT.
compose_up() {
  local name=$1 want=$2 rc=0 out
  shift 2
  out=$(KIT_COMPOSE_PROJECT="$run_id-$name" timeout -k 150 420 bash "$KIT_ROOT/platform/compose-up.sh" "$@" 2>&1) || rc=$?
  printf '%s\n' "$out"
  [ "$rc" -eq "$want" ] || { echo "compose-up.sh exited $rc, want $want"; return 1; }
}

# Nothing of project NAME is left: no container, no network.
taken_down() {
  local p="$run_id-$1" left
  left=$(timeout 30 docker ps -a --filter "label=com.docker.compose.project=$p" --format '{{.Names}} ({{.Status}})')
  [ -z "$left" ] || { echo "left behind: $left"; return 1; }
  ! timeout 30 docker network inspect "${p}_default" >/dev/null 2>&1 || { echo "network ${p}_default left behind"; return 1; }
}

# override_toxiproxy NAME CONFIG: writes CONFIG as a Toxiproxy config and an override file that
# mounts it in place of platform/compose/toxiproxy.json; prints the override's path.
override_toxiproxy() {
  local name=$1 config=$2
  printf '%s\n' "$config" >"$work/$name.json"
  chmod a+r "$work/$name.json"
  printf 'services:\n  toxiproxy:\n    volumes:\n      - %s:/toxiproxy.json:ro\n' "$work/$name.json" >"$work/$name.yml"
  echo "$work/$name.yml"
}

stack_answers_and_is_taken_down() {
  local out
  out=$(compose_up pass 0) || { echo "$out"; return 1; }
  [[ "$out" == *"the service answers /readyz on 127.0.0.1:8080 through Toxiproxy"* ]] || { echo "$out"; return 1; }
  taken_down pass
}

a_missing_or_disabled_proxy_fails() {
  local out f
  # payments left out, redis disabled: the service still answers /readyz (it needs neither to
  # start), so only the proxy list can catch them.
  f=$(override_toxiproxy proxies '[
  { "name": "postgres", "listen": "0.0.0.0:8666", "upstream": "postgres:5432", "enabled": true },
  { "name": "redis", "listen": "0.0.0.0:8667", "upstream": "redis:6379", "enabled": false },
  { "name": "nats", "listen": "0.0.0.0:8668", "upstream": "nats:4222", "enabled": true }
]')
  out=$(compose_up proxies 1 "$f") || { echo "$out"; return 1; }
  [[ "$out" == *"Toxiproxy has no proxy payments (it lists: nats postgres redis)"* ]] || { echo "$out"; return 1; }
  [[ "$out" == *"Toxiproxy's proxy redis is disabled"* ]] || { echo "$out"; return 1; }
  taken_down proxies
}

# The database reached only through Toxiproxy, and its proxy disabled: the service never becomes
# ready, which also shows /readyz really goes through Toxiproxy.
an_unhealthy_service_fails_after_its_timeout() {
  local out f
  f=$(override_toxiproxy unhealthy "$(sed 's/"postgres:5432", "enabled": true/"postgres:5432", "enabled": false/' \
    "$KIT_ROOT/platform/compose/toxiproxy.json")")
  out=$(KIT_COMPOSE_READY_TIMEOUT=10 compose_up unhealthy 1 "$f") || { echo "$out"; return 1; }
  [[ "$out" == *"the service did not answer /readyz with 200 within 10 s"* ]] || { echo "$out"; return 1; }
  taken_down unhealthy
}

# An outer `timeout` ends the run while it waits for readiness: the TERM trap takes the stack down.
a_terminated_run_is_taken_down() {
  local out f rc=0
  f=$(override_toxiproxy terminated "$(sed 's/"postgres:5432", "enabled": true/"postgres:5432", "enabled": false/' \
    "$KIT_ROOT/platform/compose/toxiproxy.json")")
  out=$(KIT_COMPOSE_PROJECT="$run_id-terminated" timeout -k 150 15 bash "$KIT_ROOT/platform/compose-up.sh" "$f" 2>&1) || rc=$?
  [ "$rc" -eq 124 ] || { echo "$out"; echo "exit $rc, want 124 (timed out)"; return 1; }
  [[ "$out" == *"compose-up: terminated; taking the stack down"* ]] || { echo "$out"; return 1; }
  taken_down terminated
}

check "the stack answers /readyz through Toxiproxy and is taken down" stack_answers_and_is_taken_down
check "a missing and a disabled proxy fail the check by name, and the stack is taken down" a_missing_or_disabled_proxy_fails
check "an unready service fails the check after its timeout, and the stack is taken down" an_unhealthy_service_fails_after_its_timeout
check "a run ended by TERM takes its stack down" a_terminated_run_is_taken_down

echo "compose: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
