# Sourced by compose-up.sh / compose-down.sh: which engine and compose CLI to use.
# docker compose where a Docker engine answers, else podman-compose (ENGINE=podman or
# ENGINE=docker to choose). Sets ENGINE and the COMPOSE array.
PROJECT=${KADR_COMPOSE_PROJECT:-kadr}
if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    ENGINE=docker
  elif command -v podman-compose >/dev/null; then
    ENGINE=podman
  else
    echo "compose: neither docker compose (with a running engine) nor podman-compose is here" >&2
    exit 1
  fi
fi
source infra/docker/engine.sh
if [ "$ENGINE" = podman ]; then
  # docker-compose.yml's metrics tmpfs: podman's way of giving it to the container's user.
  export KADR_TMPFS_OWNER=${KADR_TMPFS_OWNER:-U}
  COMPOSE=(podman-compose -p "$PROJECT" -f docker-compose.yml)
else
  COMPOSE=(docker compose -p "$PROJECT" -f docker-compose.yml)
fi
