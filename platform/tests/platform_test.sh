#!/usr/bin/env bash
# Tests of the platform itself, against the real engine and the locally built images:
# the sweep removes exactly what is labelled, the image build is cached, and the PostgreSQL and
# Redis stand-ins honour the official images' contracts. Run by `make test` after setup and
# before the suites start containers of their own (the sweep would remove those too).
set -uo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"
set -a
# shellcheck disable=SC1091
. "$KIT_STATE_DIR/images.env"
set +a

passed=0
failed=0
run_id="platform-test-$$"
cleanup() {
  docker rm -f -v $(docker ps -aq --filter "label=io.deliverykit.run=$run_id") >/dev/null 2>&1 || true
  docker network rm "kit-$run_id" "other-$run_id" "shards-$run_id" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Arguments select checks by function name (e.g. `platform_test.sh redis_accepts_remote_connections`).
only=("$@")

check() {
  local name=$1
  shift
  if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $1 "* ]]; then
    return 0
  fi
  local out
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    printf '%s\n' "$out" | tail -n 5 | sed 's/^/     /'
  fi
}

# Polls for a log line with a deadline; prints the logs on failure.
wait_log() {
  local container=$1 line=$2 want=${3:-1} deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    [ "$(docker logs "$container" 2>&1 | grep -cF "$line")" -ge "$want" ] && return 0
    sleep 0.5
  done
  docker logs "$container" 2>&1 | tail -n 5
  return 1
}

sweep_removes_only_labelled() {
  docker network create --label "$KIT_LABEL" "kit-$run_id" >/dev/null
  docker network create "other-$run_id" >/dev/null
  local kept
  kept=$(docker create --label "io.deliverykit.run=$run_id" "$KIT_IMAGE_TOXIPROXY")
  docker create --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" "$KIT_IMAGE_TOXIPROXY" >/dev/null
  docker run -d --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" "$KIT_IMAGE_TOXIPROXY" >/dev/null
  bash "$KIT_ROOT/platform/sweep.sh" || return 1
  local left
  left=$(docker ps -aq --filter "label=io.deliverykit.run=$run_id")
  [ "$left" = "${kept:0:12}" ] || { echo "left behind: $left (want only ${kept:0:12})"; return 1; }
  ! docker network inspect "kit-$run_id" >/dev/null 2>&1 || { echo "labelled network survived"; return 1; }
  docker network inspect "other-$run_id" >/dev/null 2>&1 || { echo "unlabelled network was removed"; return 1; }
}

images_are_cached() {
  local start=$SECONDS out
  out=$(bash "$KIT_ROOT/platform/images.sh" 2>&1) || { echo "$out"; return 1; }
  [ -z "$out" ] || { echo "a second run rebuilt something: $out"; return 1; }
  ((SECONDS - start <= 5)) || { echo "a cached run took $((SECONDS - start))s"; return 1; }
}

postgres_honours_the_official_contract() {
  local c init
  init=$(mktemp -d)
  echo "CREATE TABLE from_init (x int); INSERT INTO from_init VALUES (42);" >"$init/01.sql"
  chmod -R a+rX "$init"
  c=$(docker run -d --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" \
    -e POSTGRES_USER=alice -e POSTGRES_PASSWORD=s3cret -e POSTGRES_DB=shop \
    -v "$init:/docker-entrypoint-initdb.d:ro" "$KIT_IMAGE_POSTGRES")
  # The readiness line twice: once from the initialisation server, once from the real one.
  wait_log "$c" "database system is ready to accept connections" 2 || return 1
  local got
  got=$(docker exec -e PGPASSWORD=s3cret "$c" psql -h 127.0.0.1 -U alice -d shop -tAc 'SELECT x FROM from_init') || return 1
  [ "$got" = 42 ] || { echo "init script result: $got"; return 1; }
  # From another container the password is checked (scram-sha-256); like the official image,
  # only connections from inside the container itself are trusted.
  local ip
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$c")
  remote() {
    docker run --rm --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" -e PGPASSWORD="$1" \
      --entrypoint psql "$KIT_IMAGE_POSTGRES" -h "$ip" -U alice -d shop -tAc 'SELECT 1'
  }
  [ "$(remote s3cret)" = 1 ] || { echo "the right password was refused from another container"; return 1; }
  if remote wrong >/dev/null 2>&1; then
    echo "a wrong password was accepted from another container"
    return 1
  fi
  # Restarted on the same data: no second initialisation.
  docker restart "$c" >/dev/null
  wait_log "$c" "Skipping initialization" 1 || return 1
  rm -rf "$init"
}

postgres_without_password_refuses_to_start() {
  local c
  c=$(docker run -d --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" "$KIT_IMAGE_POSTGRES")
  wait_log "$c" "superuser password is not specified" 1 || return 1
  sleep 1
  [ "$(docker inspect -f '{{.State.Running}}' "$c")" = false ] || { echo "still running"; return 1; }
}

redis_accepts_remote_connections() {
  local c
  c=$(docker run -d --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" "$KIT_IMAGE_REDIS")
  wait_log "$c" "Ready to accept connections" 1 || return 1
  # From another container: protected mode must be off, as in the official image.
  local ip got
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$c")
  got=$(docker run --rm --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" --entrypoint redis-cli \
    "$KIT_IMAGE_REDIS" -h "$ip" ping) || return 1
  [ "$got" = PONG ] || { echo "redis-cli said: $got"; return 1; }
}

toxiproxy_reports_its_release_version() {
  local c port got
  c=$(docker run -d -p 127.0.0.1::8474 --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" "$KIT_IMAGE_TOXIPROXY")
  port=$(docker port "$c" 8474/tcp | head -n 1 | sed 's/.*://')
  local deadline=$((SECONDS + 20))
  until got=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/version" 2>/dev/null); do
    ((SECONDS < deadline)) || { echo "no answer on 127.0.0.1:$port"; return 1; }
    sleep 0.2
  done
  [[ "$got" == *"\"${KIT_IMAGE_TOXIPROXY##*:}\""* ]] || { echo "GET /version: $got"; return 1; }
}

verifier_image_is_static_and_runs() {
  local got code
  got=$(docker run --rm --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" "$KIT_IMAGE_VERIFIER" --version) || return 1
  [[ "$got" == "verifier "* ]] || { echo "--version: $got"; return 1; }
  # FROM scratch: nothing but the binary, so a dynamically linked one would not start at all.
  code=0
  got=$(docker run --rm --label "$KIT_LABEL" --label "io.deliverykit.run=$run_id" "$KIT_IMAGE_VERIFIER" \
    run /nowhere.yaml --shard 4/4 --start-at 2030-01-01T00:00:00Z 2>&1) || code=$?
  [ "$code" = 2 ] && [[ "$got" == *"3/4"* ]] || { echo "--shard 4/4: exit $code: $got"; return 1; }
}

# Issue 16's proof with the image itself: four shard containers of one plan against a target
# container on a network of their own (reached by name, so the static binary resolves names),
# then the merge in a fifth. The stand-in counts what arrived: every arrival of the plan exactly
# once, and no two with the same ${seq} (each shard has its own range).
verifier_shard_containers_merge_into_one_run() {
  local net="shards-$run_id" dir start ip got i code
  local labels=(--label "$KIT_LABEL" --label "io.deliverykit.run=$run_id")
  docker network create "${labels[@]}" "$net" >/dev/null || return 1
  docker run -d "${labels[@]}" --network "$net" --name "pay-$run_id" \
    -e PAYMENTSIM_LATENCY=2ms -e PAYMENTSIM_JITTER=1ms "$KIT_IMAGE_PAYMENTSIM" >/dev/null || return 1
  dir=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'; cleanup" EXIT
  chmod 777 "$dir"
  cat >"$dir/scenario.yaml" <<'YAML'
name: sharded-charges
journeys:
  - name: charge
    steps:
      - name: charge
        method: POST
        path: /v1/charges
        headers: { Idempotency-Key: "key-${seq}" }
        body:
          json: { order_id: "o-${seq}", tenant_id: t, amount_minor: 100, currency: EUR, card_number: "4242424242424242" }
        expect_status: [201]
load:
  open:
    phases:
      - steady: { rate: 200, duration: 5s }
budgets:
  min_samples: 100
  error_rate: 0
  endpoints:
    charge: { p99: 1s }
YAML
  # Far enough ahead for four containers to start on a busy machine.
  start=$(date -u -d '+8 seconds' +%FT%TZ)
  for i in 0 1 2 3; do
    docker run -d "${labels[@]}" --network "$net" --name "shard-$i-$run_id" -v "$dir:/work" \
      "$KIT_IMAGE_VERIFIER" run /work/scenario.yaml --target "http://pay-$run_id:8090" \
      --shard "$i/4" --start-at "$start" --report-dir "/work/shard-$i" --progress off >/dev/null || return 1
  done
  for i in 0 1 2 3; do
    code=$(docker wait "shard-$i-$run_id") || return 1
    [ "$code" = 0 ] || { echo "shard $i: exit $code"; docker logs "shard-$i-$run_id" 2>&1 | tail -n 5; return 1; }
  done
  code=0
  got=$(docker run --rm "${labels[@]}" -v "$dir:/work" "$KIT_IMAGE_VERIFIER" \
    merge /work/shard-0/report.json /work/shard-1/report.json /work/shard-2/report.json \
    /work/shard-3/report.json --report-dir /work/merged 2>&1) || code=$?
  # 0 pass; 4 when a shard's generator fell behind on a busy machine (the merge names it).
  [ "$code" = 0 ] || [ "$code" = 4 ] || { echo "merge: exit $code: $got"; return 1; }
  [ -s "$dir/merged/report.html" ] || { echo "merge wrote no report.html"; return 1; }
  local merged shards
  merged=$(jq '.overall.requests' "$dir/merged/report.json")
  shards=$(jq -s 'map(.overall.requests) | add' "$dir"/shard-{0,1,2,3}/report.json)
  [ "$merged" = 1000 ] && [ "$shards" = 1000 ] || { echo "requests: merged $merged, shards $shards, plan 1000"; return 1; }
  ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "pay-$run_id")
  got=$(curl -fsS --max-time 5 "http://$ip:8090/v1/calls") || return 1
  [ "$(jq '.summary.calls' <<<"$got")" = 1000 ] && [ "$(jq '.summary.replays' <<<"$got")" = 0 ] &&
    [ "$(jq '[.calls[].idempotency_key] | unique | length' <<<"$got")" = 1000 ] ||
    { echo "the stand-in saw: $(jq -c .summary <<<"$got")"; return 1; }
}

check "sweep removes labelled leftovers and nothing else" sweep_removes_only_labelled
check "a second image build is a no-op" images_are_cached
check "postgres stand-in honours POSTGRES_* and initdb.d, restarts without re-init" postgres_honours_the_official_contract
check "postgres stand-in refuses to start without a password, as the official one" postgres_without_password_refuses_to_start
check "redis stand-in accepts connections from other containers" redis_accepts_remote_connections
check "toxiproxy stand-in reports its release version" toxiproxy_reports_its_release_version
check "verifier image: a static binary that runs and refuses a bad --shard" verifier_image_is_static_and_runs
check "verifier image: four shard containers and their merge are one run, every arrival once" verifier_shard_containers_merge_into_one_run

echo "platform: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
