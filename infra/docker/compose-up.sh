#!/usr/bin/env bash
# `make compose-up`: the compose deployment on this host, with docker compose or
# podman-compose. Builds the images that are missing (KADR_BUILD=1: rebuild; cached layers
# make that quick), starts the services of COMPOSE_PROFILES, waits for every healthcheck,
# then prints the URL and how to make an API key.
#   COMPOSE_PROFILES=video,monitoring make compose-up
#   KADR_COMPOSE_SKIP=grafana ...        # leave services out (Grafana: no registry here)
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/docker/compose-env.sh
TAG=${KADR_VERSION:-latest}
WAIT=${KADR_COMPOSE_WAIT_SECONDS:-600}


[ -s var/secrets/redis_password ] || bash infra/local/secrets.sh

# Public images that cannot be pulled here are replaced by the Debian stand-ins.
for pair in NGINX=nginx:1.27-alpine REDIS=redis:7.4-alpine PROMETHEUS=prom/prometheus:v2.55.1; do
  var=KADR_${pair%%=*}_IMAGE
  [ -z "${!var:-}" ] || continue
  if ! pullable "${pair#*=}"; then
    name=$(tr '[:upper:]' '[:lower:]' <<<"${pair%%=*}")
    have "kadr-$name:$TAG" && [ "${KADR_BUILD:-0}" != 1 ] || need_stand_ins=1
    export "$var=kadr-$name:$TAG"
  fi
done
builds=()
for img in gateway worker; do
  have "kadr-$img:$TAG" && [ "${KADR_BUILD:-0}" != 1 ] || builds+=("$img")
done
[ -z "${need_stand_ins:-}" ] || builds+=(stand-ins)
[ ${#builds[@]} -eq 0 ] || ENGINE=$ENGINE bash infra/docker/build.sh "${builds[@]}"

if [ "$ENGINE" = docker ]; then
  "${COMPOSE[@]}" up -d --no-build --wait --wait-timeout "$WAIT"
else
  read -r -a services <<<"$(python3 infra/docker/compose_services.py docker-compose.yml 2>/dev/null \
                            || /usr/bin/python3 infra/docker/compose_services.py docker-compose.yml)"
  "${COMPOSE[@]}" up -d --no-build "${services[@]}" >/dev/null
  # podman runs healthchecks from systemd timers, which a container host without systemd
  # lacks: ask each container's healthcheck here until it passes.
  mapfile -t names < <(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}')
  deadline=$((SECONDS + WAIT))
  for name in "${names[@]}"; do
    until podman healthcheck run "$name" >/dev/null 2>&1; do
      state=$(podman inspect -f '{{.State.Status}}' "$name" 2>/dev/null || echo gone)
      if [ "$state" != running ] || [ $SECONDS -ge $deadline ]; then
        echo "compose-up: $name is $state, not healthy; its last log lines:" >&2
        podman logs --tail 30 "$name" >&2 || true
        exit 1
      fi
      sleep 2
    done
    echo "compose-up: $name healthy"
  done
fi
port=${KADR_HTTP_PORT:-8080}
exec_cmd="${COMPOSE[*]} exec gateway"
[ "$ENGINE" = docker ] || exec_cmd="podman exec ${PROJECT}_gateway_1"
cat <<MSG
kadr is up: http://127.0.0.1:$port/
An API key: $exec_cmd kadr keys create NAME
Weights:    see README (models volume); stop with make compose-down
MSG
