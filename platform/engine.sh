#!/usr/bin/env bash
# Make sure a Docker engine answers. If none does and this is a Debian-like machine where we are
# root, install Debian's docker.io and start dockerd in the background; anywhere else, say exactly
# what is missing. Idempotent: a second run with a live engine returns at once.
set -euo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"

ENGINE_START_TIMEOUT=${KIT_ENGINE_START_TIMEOUT:-60}
APT_TIMEOUT=${KIT_APT_TIMEOUT:-600}

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi

debian_like() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }

if ! command -v dockerd >/dev/null 2>&1; then
  if ! debian_like || [ "$(id -u)" -ne 0 ]; then
    die "no Docker engine answers and this is not a Debian-like machine where we are root: start Docker (https://docs.docker.com/engine/install/) or set DOCKER_HOST, then run again"
  fi
  note "no Docker engine answers; installing Debian's docker.io (once)"
  mkdir -p "$KIT_STATE_DIR"
  log="$KIT_STATE_DIR/apt-docker.log"
  if ! timeout "$APT_TIMEOUT" apt-get install -y --no-install-recommends docker.io iptables >"$log" 2>&1; then
    # A stale package list is the usual reason; refresh once and try again.
    timeout "$APT_TIMEOUT" apt-get update >>"$log" 2>&1 || die "apt-get update failed (see $log)"
    DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get install -y --no-install-recommends docker.io iptables >>"$log" 2>&1 ||
      die "apt-get install docker.io failed (see $log)"
  fi
fi

if [ -n "${DOCKER_HOST:-}" ] && [[ "$DOCKER_HOST" != unix:///var/run/docker.sock ]]; then
  die "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
fi
if [ "$(id -u)" -ne 0 ]; then
  die "dockerd is installed but not running, and starting it needs root: run 'sudo dockerd &' or start the docker service"
fi

mkdir -p "$KIT_STATE_DIR"
log="$KIT_STATE_DIR/dockerd.log"

# Live (not zombie) dockerd processes.
live_dockerd() { { ps -C dockerd -o pid=,stat= 2>/dev/null || true; } | awk '$2 !~ /^Z/ {print $1}'; }

pids=$(live_dockerd)
if [ -n "$pids" ]; then
  # One is starting, or is wedged: give it a moment, then replace it.
  if wait_until 15 "the running dockerd to answer" engine_answers; then
    note "Docker engine $(docker version --format '{{.Server.Version}}') answers"
    exit 0
  fi
  note "dockerd (pid $pids) does not answer; restarting it"
  kill $pids 2>/dev/null || true
  wait_until 10 "dockerd to exit" test -z "$(live_dockerd)" || kill -9 $pids 2>/dev/null || true
fi
# A dockerd that died (a killed session, a reboot) leaves pid files behind that name a dead or
# reused pid; dockerd and its containerd refuse to start over them.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid

note "starting dockerd in the background (log: $log)"
# setsid detaches it from make's process group, so an interrupted test run does not take the
# engine down with it.
setsid dockerd >"$log" 2>&1 </dev/null &
if ! wait_until "$ENGINE_START_TIMEOUT" "dockerd to answer" engine_answers; then
  die "dockerd did not answer within ${ENGINE_START_TIMEOUT}s; last log line: $(tail -n 1 "$log" 2>/dev/null)"
fi
note "Docker engine $(docker version --format '{{.Server.Version}}') answers"
