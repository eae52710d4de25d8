#!/usr/bin/env bash
# `make down`: stop the process group `make up` started, and nothing else.
set -uo pipefail
cd "$(dirname "$0")/../.."
KADR_VAR=${KADR_VAR:-$PWD/var}
PIDFILE=$KADR_VAR/run/honcho.pid
if [ ! -f "$PIDFILE" ]; then echo "kadr is not running (no $PIDFILE)"; exit 0; fi
pid=$(cat "$PIDFILE")
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  # gunicorn and Celery finish in-flight work within their graceful timeout (30 s).
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
fi
rm -f "$PIDFILE"
echo "kadr stopped"
