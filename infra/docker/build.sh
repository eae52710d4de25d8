#!/usr/bin/env bash
# Builds kadr's images (kadr-gateway, kadr-worker; and the stand-ins for nginx, Redis and
# Prometheus where their public images cannot be pulled) with podman or docker.
#   bash infra/docker/build.sh [gateway] [worker] [stand-ins]    # default: gateway worker
# BASE_IMAGE: the Python 3.11 base (default python:3.11-slim when it can be had, else the
# locally bootstrapped Debian of base.sh). KADR_VERSION tags the images (default latest).
# Layers are cached by the engine: a second build with unchanged inputs takes seconds.
# What a build supersedes is removed (the previous image of each tag, and dangling images
# of kadr's own stages): the worker's dependency layer is 6 GB, and each superseded copy
# stayed on disk until a test host ran out of space. KADR_KEEP_OLD_IMAGES=1 keeps them.
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/docker/engine.sh
TAG=${KADR_VERSION:-latest}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gateway worker)


if [ -z "${BASE_IMAGE:-}" ]; then
  if pullable python:3.11-slim; then
    BASE_IMAGE=python:3.11-slim
  else
    BASE_IMAGE=${KADR_BASE_IMAGE:-localhost/kadr-base:bookworm}
    KADR_BASE_IMAGE=$BASE_IMAGE bash infra/docker/base.sh
  fi
fi
mapfile -t pip_args < <(python3 infra/docker/pip_sources.py)

image_id() { $ENGINE image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

engine_build() {  # image dockerfile target log
  $ENGINE build -f "infra/docker/$2" ${3:+--target "$3"} --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    "${pip_args[@]}" -t "$1" . >>"$4" 2>&1
}

build() {  # name dockerfile [target] [builder stage to keep as the cache]
  local started=$SECONDS image=kadr-$1:$TAG
  echo "build: $image from $BASE_IMAGE"
  local log old; log=$(mktemp /tmp/kadr-build.XXXXXX); old=$(image_id "$image")
  # The builder stage is tagged (kadr-<name>-builder) so that its last layer, the cache of
  # the dependency install, is no dangling image for the prune below to take.
  if ! { [ -z "${4:-}" ] || engine_build "kadr-$1-$4:$TAG" "$2" "$4" "$log"; } \
      || ! engine_build "$image" "$2" "${3:-}" "$log"; then
    grep -v "^WARNING: Location" "$log" | tail -n 40 >&2
    echo "build: $image failed (whole log: $log)" >&2
    return 1
  fi
  rm -f "$log"
  echo "build: $image in $((SECONDS - started)) s"
  if [ -n "$old" ] && [ "$old" != "$(image_id "$image")" ] && [ -z "${KADR_KEEP_OLD_IMAGES:-}" ]; then
    # With it go the intermediate layers only it used; one a container still runs is kept.
    $ENGINE rmi "$old" >/dev/null 2>&1 && echo "build: removed the superseded $image (${old:0:12})" \
      || echo "build: the superseded $image (${old:0:12}) is in use; kept"
  fi
}

prune() {
  [ -z "${KADR_KEEP_OLD_IMAGES:-}" ] || return 0
  # Only dangling images of kadr's labelled stages (io.kadr.stage): no one else's.
  local n; n=$($ENGINE image prune -f --filter label=io.kadr.stage 2>/dev/null | grep -c . || true)
  [ "$n" = 0 ] || echo "build: pruned $n dangling image(s) of superseded kadr builds"
}

for t in "${targets[@]}"; do
  case $t in
    gateway) build gateway gateway.Dockerfile "" builder ;;
    worker) build worker worker.Dockerfile "" builder ;;
    stand-ins)
      for svc in nginx redis prometheus; do build "$svc" stand-ins.Dockerfile "$svc"; done ;;
    *) echo "build: unknown target $t" >&2; exit 2 ;;
  esac
done
prune
