#!/usr/bin/env bash
# Builds kadr's images (kadr-gateway, kadr-worker; and the stand-ins for nginx, Redis and
# Prometheus where their public images cannot be pulled) with podman or docker.
#   bash infra/docker/build.sh [gateway] [worker] [stand-ins]    # default: gateway worker
# BASE_IMAGE: the Python 3.11 base (default python:3.11-slim when it can be had, else the
# locally bootstrapped Debian of base.sh). KADR_VERSION tags the images (default latest).
# Layers are cached by the engine: a second build with unchanged inputs takes seconds.
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

build() {  # name dockerfile [target]
  local started=$SECONDS
  echo "build: kadr-$1:$TAG from $BASE_IMAGE"
  local log; log=$(mktemp /tmp/kadr-build.XXXXXX)
  if ! $ENGINE build -f "infra/docker/$2" ${3:+--target "$3"} --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      "${pip_args[@]}" -t "kadr-$1:$TAG" . >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" | tail -n 40 >&2
    echo "build: kadr-$1:$TAG failed (whole log: $log)" >&2
    return 1
  fi
  rm -f "$log"
  echo "build: kadr-$1:$TAG in $((SECONDS - started)) s"
}

for t in "${targets[@]}"; do
  case $t in
    gateway) build gateway gateway.Dockerfile ;;
    worker) build worker worker.Dockerfile ;;
    stand-ins)
      for svc in nginx redis prometheus; do build "$svc" stand-ins.Dockerfile "$svc"; done ;;
    *) echo "build: unknown target $t" >&2; exit 2 ;;
  esac
done
