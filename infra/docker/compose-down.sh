#!/usr/bin/env bash
# `make compose-down`: stops and removes the deployment's containers and its network
# (podman-compose 1.0 leaves the network behind). Volumes stay unless KADR_COMPOSE_VOLUMES=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/docker/compose-env.sh
vol=(); [ "${KADR_COMPOSE_VOLUMES:-0}" != 1 ] || vol=(-v)
if [ "$ENGINE" = docker ]; then
  "${COMPOSE[@]}" --profile '*' down "${vol[@]}"
else
  "${COMPOSE[@]}" down -t 30 "${vol[@]}" >/dev/null 2>&1 || true
  # Whatever the compose CLI missed: containers of the project, then its network.
  mapfile -t left < <(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}')
  [ ${#left[@]} -eq 0 ] || podman rm -f -t 10 "${left[@]}" >/dev/null
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
  if [ ${#vol[@]} -gt 0 ]; then
    mapfile -t vols < <(podman volume ls --filter "label=io.podman.compose.project=$PROJECT" -q)
    [ ${#vols[@]} -eq 0 ] || podman volume rm -f "${vols[@]}" >/dev/null
  fi
fi
echo "compose-down: done"
