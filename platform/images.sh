#!/usr/bin/env bash
# Build the local stand-in images named in platform/images.conf and write .kit/images.env.
#
# Cached: each image carries the hash of its recipe (this script, its folder, its package list) in
# the label io.deliverykit.recipe; an image whose label matches is kept as it is, so a second run
# takes seconds. Builds never pull: the Debian ones start from a rootfs made here by mmdebstrap,
# the Go ones are FROM scratch.
#
#   platform/images.sh            build what is missing or stale, write .kit/images.env
#   KIT_IMAGES=official ...       build nothing; export the official names (a machine that can pull)
set -euo pipefail
KIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=platform/lib.sh
. "$KIT_ROOT/platform/lib.sh"

BUILD_TIMEOUT=${KIT_IMAGE_BUILD_TIMEOUT:-900}
DEBIAN_MIRROR=${KIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${KIT_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
HERE="$KIT_ROOT/platform"
mkdir -p "$KIT_STATE_DIR/logs"
engine_answers || die "no Docker engine answers; run platform/engine.sh first"

declare -A OFFICIAL LOCAL
NAMES=()
while read -r name official local_tag; do
  [[ -z "${name:-}" || "$name" == \#* ]] && continue
  NAMES+=("$name")
  OFFICIAL[$name]=$official
  LOCAL[$name]=$local_tag
done <"$HERE/images.conf"

write_env() {
  local mode=$1 out="$KIT_STATE_DIR/images.env" tmp
  tmp=$(mktemp "$KIT_STATE_DIR/images.env.XXXXXX")
  {
    echo "# Written by platform/images.sh ($mode images); the Makefile exports these."
    for name in "${NAMES[@]}"; do
      # The kit's own programs have no official image: always the local build.
      if [ "$mode" = official ] && [ "${OFFICIAL[$name]}" != - ]; then ref=${OFFICIAL[$name]}; else ref=${LOCAL[$name]}; fi
      printf 'KIT_IMAGE_%s=%s\n' "${name^^}" "$ref"
    done
  } >"$tmp"
  mv "$tmp" "$out"
}

MODE=${KIT_IMAGES:-local}
case "$MODE" in
local | official) ;;
*) die "KIT_IMAGES=$MODE: use local (build stand-ins, the default) or official (a machine that can pull)" ;;
esac

# Bump when a change to this script must rebuild every image (an edit elsewhere in it need not).
RECIPE_VERSION=1

recipe_hash() {
  local name=$1
  {
    echo "$RECIPE_VERSION ${OFFICIAL[$name]} ${LOCAL[$name]} ${PACKAGES[$name]:-}"
    find "$HERE/images/$name" -type f -print0 | sort -z | xargs -0 cat
    # The kit's own programs change with their source.
    if [ "$name" = verifier ]; then
      find "$KIT_ROOT/verifier/src" "$KIT_ROOT/verifier/Cargo.toml" "$KIT_ROOT/Cargo.lock" "$KIT_ROOT/Cargo.toml" \
        "$KIT_ROOT/platform/images.conf" -type f -print0 | sort -z | xargs -0 cat
    elif [ "${OFFICIAL[$name]}" = - ]; then
      find "$KIT_ROOT/reference-service" -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.sql' -o -name '*.yaml' \) \
        -not -name '*_test.go' -print0 | sort -z | xargs -0 cat
    fi
  } | sha256sum | cut -c1-16
}

# Debian packages of the images built from a Debian rootfs.
declare -A PACKAGES=([postgres]=postgresql-15 [redis]=redis-server)

current_hash() {
  docker image inspect --format '{{ index .Config.Labels "io.deliverykit.recipe" }}' "$1" 2>/dev/null || true
}

# rootfs NAME PACKAGES... : an mmdebstrap'd Debian bookworm with the packages, imported as an image.
rootfs() {
  local name=$1 hash=$2
  shift 2
  local tag log
  tag="kit-local/rootfs-$name:$(echo "$RECIPE_VERSION $*" | sha256sum | cut -c1-16)"
  log="$KIT_STATE_DIR/logs/rootfs-$name.log"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"
    return
  fi
  command -v mmdebstrap >/dev/null 2>&1 || install_mmdebstrap
  local includes
  includes=$(IFS=,; echo "$*")
  note "building the $name rootfs from Debian packages ($includes); log: $log"
  # postgresql-common would create and start a cluster at install time; the entrypoint makes its
  # own from the environment, as the official image does.
  # Into a file first: piping straight into `docker import` would leave an empty image under the
  # tag when mmdebstrap fails, and the next run would take it for a finished rootfs.
  local tarball="$KIT_STATE_DIR/rootfs-$name.tar"
  if ! timeout "$BUILD_TIMEOUT" mmdebstrap --variant=minbase --include="$includes" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --aptopt='APT::Install-Recommends "false"' \
    --essential-hook='mkdir -p "$1/etc/postgresql-common" && echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.conf"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb' \
    bookworm "$tarball" \
    "deb $DEBIAN_MIRROR bookworm main" \
    "deb $DEBIAN_MIRROR bookworm-updates main" \
    "deb $DEBIAN_SECURITY bookworm-security main" >"$log" 2>&1; then
    rm -f "$tarball"
    die "the $name rootfs did not build: $(grep -m1 -iE 'error|fail|unable' "$log" || tail -n 1 "$log") (full log: $log)"
  fi
  if ! timeout "$BUILD_TIMEOUT" docker import --message "mmdebstrap bookworm + $includes" "$tarball" "$tag" >>"$log" 2>&1; then
    rm -f "$tarball"
    die "docker import of the $name rootfs failed: $(tail -n 1 "$log") (full log: $log)"
  fi
  rm -f "$tarball"
  echo "$tag"
}

install_mmdebstrap() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "mmdebstrap is missing and cannot be installed here: install it (apt-get install mmdebstrap) or run with KIT_IMAGES=official on a machine that can pull"
  fi
  note "installing mmdebstrap (once)"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends mmdebstrap \
    >"$KIT_STATE_DIR/logs/apt-mmdebstrap.log" 2>&1 ||
    die "apt-get install mmdebstrap failed (see $KIT_STATE_DIR/logs/apt-mmdebstrap.log)"
}

# gobin MODULE@VERSION OUTFILE [LDFLAGS] : a static binary from the Go module proxy.
gobin() {
  local pkg=$1 out=$2 ldflags="-s -w ${3:-}" log bindir
  log="$KIT_STATE_DIR/logs/go-install-$(basename "$out").log"
  command -v go >/dev/null 2>&1 || die "go is missing: install Go 1.26 (https://go.dev/dl/) to build $pkg"
  bindir=$(mktemp -d)
  if ! CGO_ENABLED=0 GOBIN="$bindir" GOFLAGS=-buildvcs=false timeout "$BUILD_TIMEOUT" \
    go install -trimpath -ldflags="$ldflags" "$pkg" >"$log" 2>&1; then
    rm -rf "$bindir"
    die "go install $pkg failed: $(tail -n 1 "$log") (full log: $log)"
  fi
  mv "$bindir"/* "$out"
  rm -rf "$bindir"
}

# dbuild NAME CONTEXT HASH [BASE] : docker build with the recipe label, no pull.
dbuild() {
  local name=$1 ctx=$2 hash=$3 base=${4:-} log
  log="$KIT_STATE_DIR/logs/build-$name.log"
  local args=(build --quiet --tag "${LOCAL[$name]}" --label "io.deliverykit.recipe=$hash"
    --label "io.deliverykit.official=${OFFICIAL[$name]}")
  [ -n "$base" ] && args+=(--build-arg "BASE=$base")
  # The classic builder resolves FROM against local images only; it never pulls a local tag.
  if ! DOCKER_BUILDKIT=0 timeout "$BUILD_TIMEOUT" docker "${args[@]}" "$ctx" >"$log" 2>&1; then
    die "docker build of ${LOCAL[$name]} failed: $(grep -v '^DEPRECATED\|^ *\(Install\|BuildKit\|Docker\|environment\|$\)' "$log" | tail -n 1) (full log: $log)"
  fi
}

build_one() {
  local name=$1 hash ctx
  hash=$(recipe_hash "$name")
  if [ "$(current_hash "${LOCAL[$name]}")" = "$hash" ]; then
    return
  fi
  local started=$SECONDS
  case "$name" in
  postgres | redis)
    local base
    base=$(rootfs "$name" "$hash" ${PACKAGES[$name]})
    dbuild "$name" "$HERE/images/$name" "$hash" "$base"
    # Older rootfs generations are dead weight (hundreds of MB each).
    docker images --format '{{.Repository}}:{{.Tag}}' "kit-local/rootfs-$name" | grep -vxF "$base" |
      xargs -r docker rmi >/dev/null 2>&1 || true
    ;;
  nats | toxiproxy)
    ctx=$(mktemp -d)
    cp "$HERE/images/$name"/* "$ctx/"
    if [ "$name" = nats ]; then
      gobin "github.com/nats-io/nats-server/v2@v${LOCAL[$name]##*:}" "$ctx/nats-server"
    else
      # The release build stamps the version; without it GET /version answers "git".
      gobin "github.com/Shopify/toxiproxy/v2/cmd/server@v${LOCAL[$name]##*:}" "$ctx/toxiproxy" \
        "-X github.com/Shopify/toxiproxy/v2.Version=${LOCAL[$name]##*:}"
    fi
    dbuild "$name" "$ctx" "$hash"
    rm -rf "$ctx"
    ;;
  paymentsim | service)
    command -v go >/dev/null 2>&1 || die "go is missing: install Go 1.26 (https://go.dev/dl/) to build $name"
    ctx=$(mktemp -d)
    cp "$HERE/images/$name"/* "$ctx/"
    local log="$KIT_STATE_DIR/logs/go-build-$name.log"
    if ! (cd "$KIT_ROOT/reference-service" && CGO_ENABLED=0 timeout "$BUILD_TIMEOUT" \
      go build -trimpath -ldflags='-s -w' -o "$ctx/app" "./cmd/$name") >"$log" 2>&1; then
      rm -rf "$ctx"
      die "go build of reference-service/cmd/$name failed: $(tail -n 1 "$log") (full log: $log)"
    fi
    dbuild "$name" "$ctx" "$hash"
    rm -rf "$ctx"
    ;;
  verifier)
    command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust (https://rustup.rs) to build the verifier image"
    ctx=$(mktemp -d)
    cp "$HERE/images/$name"/* "$ctx/"
    local log="$KIT_STATE_DIR/logs/cargo-build-$name.log" host
    host=$(rustc -vV | sed -n 's/^host: //p')
    # Static: glibc's own static libc (+crt-static), TLS by rustls, no OpenSSL. Its own target
    # directory, so these flags do not invalidate the workspace's build. The first build (every
    # crate, then fat LTO) takes 15-25 minutes on two busy cores; later ones reuse the crates.
    if ! (cd "$KIT_ROOT" && RUSTFLAGS='-C target-feature=+crt-static' \
      CARGO_TARGET_DIR="$KIT_STATE_DIR/target-static" timeout "${KIT_VERIFIER_BUILD_TIMEOUT:-2400}" \
      cargo build --release --locked -p verifier --target "$host") >"$log" 2>&1; then
      rm -rf "$ctx"
      die "cargo build of the static verifier failed: $(grep -m1 '^error' "$log" || tail -n 1 "$log") (full log: $log)"
    fi
    cp "$KIT_STATE_DIR/target-static/$host/release/verifier" "$ctx/verifier"
    # Without the line tables (186 MB → 42 MB); symbol names stay, so a backtrace still names
    # its functions.
    strip --strip-debug "$ctx/verifier" || die "strip (binutils) failed on the verifier binary"
    dbuild "$name" "$ctx" "$hash"
    rm -rf "$ctx"
    ;;
  *) die "platform/images.conf names '$name', which platform/images.sh does not know how to build" ;;
  esac
  note "built ${LOCAL[$name]} in $((SECONDS - started))s ($(docker image inspect --format '{{.Size}}' "${LOCAL[$name]}" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# Selected names as arguments (e.g. `images.sh postgres`), or all of them; with official images,
# only the kit's own programs among them, which have no official image.
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for name in "${NAMES[@]}"; do
    targets+=("$name")
  done
fi
for name in "${targets[@]}"; do
  [ -n "${LOCAL[$name]:-}" ] || die "unknown image '$name'; platform/images.conf names: ${NAMES[*]}"
  # A machine that can pull takes the official image of a name that has one.
  [ "$MODE" = official ] && [ "${OFFICIAL[$name]}" != - ] && continue
  build_one "$name"
done
# Images replaced by a rebuild are left untagged; remove those of ours.
docker image prune -f --filter label=io.deliverykit.recipe >/dev/null 2>&1 || true
write_env "$MODE"
