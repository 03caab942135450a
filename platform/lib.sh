# Shared helpers for the platform scripts. Sourced, never run.
# Every wait here has a deadline; every failure ends with one line that names the cause.

# The label every container the kit starts carries, and that sweep.sh removes by. Shell scripts use
# these two variables; Go has platformtest.ManagedLabel, and a Go test holds it to this line.
KIT_LABEL_KEY="io.deliverykit.managed"
KIT_LABEL="${KIT_LABEL_KEY}=true"
KIT_STATE_DIR="${KIT_STATE_DIR:-${KIT_ROOT:?}/.kit}"

die() {
  printf 'platform: %s\n' "$*" >&2
  exit 1
}

note() {
  printf 'platform: %s\n' "$*" >&2
}

# wait_until SECONDS DESCRIPTION COMMAND... : polls COMMAND every 0.5 s until it succeeds or the
# deadline passes; returns 1 on timeout so the caller can name the cause.
wait_until() {
  local budget=$1 what=$2
  shift 2
  local deadline=$((SECONDS + budget))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      note "timed out after ${budget}s waiting for ${what}"
      return 1
    fi
    sleep 0.5
  done
}

engine_answers() {
  timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}
