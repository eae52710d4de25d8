#!/usr/bin/env bash
# One Celery worker of `make up`: SERVICE METRICS_PORT [celery worker options...].
# Its Prometheus sample directory starts empty each run (prometheus_client's
# multiprocess mode needs that), and is set before Python imports the client.
set -euo pipefail
service=$1 port=$2; shift 2
export PROMETHEUS_MULTIPROC_DIR=$KADR_VAR/run/metrics/$service
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
export KADR_METRICS_PORT=$port
# Fewer glibc malloc arenas: freed inference buffers go back to one pool instead of
# staying spread over per-thread arenas (bench/stack_memory.py: enhance peak -13 %).
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
exec .venv/bin/celery -A "services.$service.tasks" worker -Q "$service" -n "$service@%h" \
  --without-gossip --without-mingle "$@"
