# syntax=docker/dockerfile:1
# Stand-ins for the public nginx, Redis and Prometheus images, built from Debian's own
# packages on kadr's base, for hosts that reach no container registry. They take the same
# mounts, commands and healthchecks as the images docker-compose.yml names, so compose
# only swaps the image (KADR_NGINX_IMAGE, KADR_REDIS_IMAGE, KADR_PROMETHEUS_IMAGE).
#   bash infra/docker/build.sh stand-ins
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS nginx
# wget: the healthcheck, as in nginx:alpine. The package's own site and log files are
# not used: compose mounts kadr's nginx.conf, which logs to stdout/stderr.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx wget \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]

FROM ${BASE_IMAGE} AS redis
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
CMD ["redis-server"]

FROM ${BASE_IMAGE} AS prometheus
# Without recommends: no node exporter. Data in /prometheus as in prom/prometheus.
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
