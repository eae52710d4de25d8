#!/usr/bin/env bash
# `make up`: install what is missing, start Redis, the gateway, the enhance, segment and
# camera workers, the exporter, the autoscaler and nginx under honcho (the processes of
# docker-compose; Prometheus too when it is installed, Grafana only in compose), wait
# until they answer, print the URL. `make down` stops exactly this process group.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bash infra/local/install.sh

export KADR_VAR=${KADR_VAR:-$ROOT/var}
# nginx listens on this machine only unless asked (KADR_HTTP_HOST=0.0.0.0 to serve others).
export KADR_HTTP_HOST=${KADR_HTTP_HOST:-127.0.0.1}
export KADR_HTTP_PORT=${KADR_HTTP_PORT:-8080}
export KADR_REDIS_PORT=${KADR_REDIS_PORT:-6379}
export KADR_GATEWAY_PORT=${KADR_GATEWAY_PORT:-8000}
export KADR_REDIS_URL=${KADR_REDIS_URL:-redis://127.0.0.1:$KADR_REDIS_PORT/0}
export KADR_CACHE_REDIS_URL=${KADR_CACHE_REDIS_URL:-redis://127.0.0.1:$KADR_REDIS_PORT/1}
export KADR_STORAGE_DIR=${KADR_STORAGE_DIR:-$KADR_VAR/blobs}
export KADR_MODELS_DIR=${KADR_MODELS_DIR:-$KADR_VAR/models}
export GUNICORN_BIND=127.0.0.1:$KADR_GATEWAY_PORT
export NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
export KADR_EXPORTER_PORT=${KADR_EXPORTER_PORT:-9100}
export KADR_AUTOSCALER_METRICS_PORT=${KADR_AUTOSCALER_METRICS_PORT:-9104}
export KADR_JANITOR_PORT=${KADR_JANITOR_PORT:-9105}
KADR_PROMETHEUS_PORT=${KADR_PROMETHEUS_PORT:-9090}
PIDFILE=$KADR_VAR/run/honcho.pid

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "kadr is already running (pid $(cat "$PIDFILE")); 'make down' first"; exit 1
fi
for port in "$KADR_HTTP_PORT" "$KADR_REDIS_PORT" "$KADR_GATEWAY_PORT"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    echo "port $port is in use; set KADR_HTTP_PORT / KADR_REDIS_PORT / KADR_GATEWAY_PORT"; exit 1
  fi
done
mkdir -p logs "$KADR_VAR"/{redis,run,blobs,models}
# Redis wants a password here too: every local process reads it from the file.
bash infra/local/secrets.sh
export KADR_REDIS_PASSWORD_FILE=${KADR_REDIS_PASSWORD_FILE:-$KADR_VAR/secrets/redis_password}
(umask 077 && printf 'include %s\nrequirepass "%s"\n' "$ROOT/infra/redis/redis.conf" \
  "$(cat "$KADR_REDIS_PASSWORD_FILE")" > "$KADR_VAR/run/redis.conf")
.venv/bin/python infra/nginx/render.py --profile local --prefix "$KADR_VAR/run/nginx" \
  --listen "$KADR_HTTP_HOST:$KADR_HTTP_PORT" --upstream "127.0.0.1:$KADR_GATEWAY_PORT" \
  --out "$KADR_VAR/run/nginx/nginx.conf"

PROCFILE=$KADR_VAR/run/Procfile
cp infra/local/Procfile "$PROCFILE"
PROM_BIN=$(command -v prometheus || true)
if [ -n "$PROM_BIN" ]; then
  .venv/bin/python infra/prometheus/render.py --out "$KADR_VAR/run/prometheus.yml" \
    --listen "127.0.0.1:$KADR_PROMETHEUS_PORT" --target "gateway=127.0.0.1:$KADR_GATEWAY_PORT" \
    --target "exporter=127.0.0.1:$KADR_EXPORTER_PORT" --target "autoscaler=127.0.0.1:$KADR_AUTOSCALER_METRICS_PORT" \
    --target "janitor=127.0.0.1:$KADR_JANITOR_PORT" \
    --target "enhance=127.0.0.1:${KADR_ENHANCE_METRICS_PORT:-9101}" \
    --target "segment=127.0.0.1:${KADR_SEGMENT_METRICS_PORT:-9102}" \
    --target "camera=127.0.0.1:${KADR_CAMERA_METRICS_PORT:-9103}"
  mkdir -p "$KADR_VAR/prometheus"
  echo "prometheus: exec $PROM_BIN --config.file=$KADR_VAR/run/prometheus.yml --storage.tsdb.path=$KADR_VAR/prometheus --web.listen-address=127.0.0.1:$KADR_PROMETHEUS_PORT >> logs/prometheus.log 2>&1" >> "$PROCFILE"
fi

setsid .venv/bin/honcho -f "$PROCFILE" -d "$ROOT" start >> logs/honcho.log 2>&1 < /dev/null &
echo $! > "$PIDFILE"

URL=http://127.0.0.1:$KADR_HTTP_PORT
echo "waiting for $URL/readyz ..."
for _ in $(seq 1 180); do
  body=$(curl -s "$URL/readyz" || true)
  if echo "$body" | .venv/bin/python -c 'import json,sys; b=json.load(sys.stdin); q=b["checks"]["queues"]; sys.exit(0 if b["checks"]["redis"]["ok"] and all(v["workers"] for v in q.values()) else 1)' 2>/dev/null; then
    break
  fi
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "the stack stopped during start-up; see logs/"; tail -n 20 logs/*.log; exit 1
  fi
  sleep 1
done

KEYFILE=$KADR_VAR/dev-api-key
if [ ! -s "$KEYFILE" ]; then
  .venv/bin/kadr keys create local-dev > "$KEYFILE" 2>/dev/null
  chmod 600 "$KEYFILE"
  echo "created an API key for you in $KEYFILE"
fi
echo
echo "kadr is up: $URL   (web UI: $URL/ , API docs: $URL/api/docs, readiness: $URL/readyz, logs: logs/)"
echo "metrics: gateway $URL/metrics, exporter http://127.0.0.1:$KADR_EXPORTER_PORT/metrics" \
  "${PROM_BIN:+, Prometheus http://127.0.0.1:$KADR_PROMETHEUS_PORT}"
curl -s "$URL/readyz" | .venv/bin/python -m json.tool || true
echo "API key: $(cat "$KEYFILE")"
echo "Weights missing? run: .venv/bin/kadr models download   (stop with: make down)"
