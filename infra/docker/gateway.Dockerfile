# syntax=docker/dockerfile:1
# The gateway and the ops processes (exporter, autoscaler, janitor): no torch, no OpenCV,
# so the image stays small and the gateway never has the ML stack to import by accident.
#   docker build -f infra/docker/gateway.Dockerfile -t kadr-gateway .
#   bash infra/docker/build.sh gateway     # the same, with this host's base and pip sources
ARG BASE_IMAGE=python:3.11-slim

# Optional build contexts from the host (see worker.Dockerfile): wheels on its disk and
# the CA bundle its pip trusts.
FROM scratch AS wheels
FROM scratch AS pipca

# The dependency lists alone (infra/docker/project_deps.py): the builder's layers below
# then change when a dependency does, not with every edit of pyproject.toml's tool settings.
FROM ${BASE_IMAGE} AS deps
LABEL io.kadr.stage=deps
COPY pyproject.toml infra/docker/project_deps.py /in/
RUN mkdir /deps && python3 /in/project_deps.py /in/pyproject.toml > /deps/pyproject.toml

FROM ${BASE_IMAGE} AS builder
LABEL io.kadr.stage=builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
ARG PIP_LOCAL_FIND_LINKS="" PIP_LOCAL_INDEXES="" PIP_LOCAL_CERT=""
RUN { echo "[global]"; \
      [ -z "$PIP_LOCAL_FIND_LINKS" ] || echo "find-links = $PIP_LOCAL_FIND_LINKS"; \
      [ -z "$PIP_LOCAL_INDEXES" ] || echo "extra-index-url = $PIP_LOCAL_INDEXES"; \
      [ -z "$PIP_LOCAL_CERT" ] || echo "cert = $PIP_LOCAL_CERT"; } > /etc/pip.conf \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN --mount=type=bind,from=pipca,target=/pipca \
    pip install --upgrade pip wheel "setuptools<81"
WORKDIR /src
# The dependencies only: this layer and the final stage's venv copy change with the
# dependency lists, not with the code, which goes in at the end of the final stage.
COPY --from=deps /deps/pyproject.toml ./
RUN --mount=type=bind,from=wheels,target=/wheels --mount=type=bind,from=pipca,target=/pipca \
    pip install ".[gateway,ops]" && pip uninstall -y kadr

FROM ${BASE_IMAGE}
# Every stage carries io.kadr.stage: build.sh prunes kadr's own dangling images by it.
LABEL io.kadr.stage=image
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Fixed uid/gid: the named volumes (blobs) are shared with the worker image, same uid.
RUN groupadd --system --gid 10001 kadr \
 && useradd --system --uid 10001 --gid kadr --home-dir /app --no-create-home --shell /usr/sbin/nologin kadr \
 && mkdir -p /data/blobs /data/models /run/kadr-metrics \
 && chown -R kadr:kadr /data /run/kadr-metrics
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# gunicorn reads its config by path (-c gateway/gunicorn.conf.py). Root-owned: the
# processes run as kadr and have no business writing their own code.
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY services services
COPY client client
# The project itself (the kadr command: `kadr keys create`).
RUN pip install --no-deps --no-build-isolation --no-compile --no-cache-dir . && rm -rf build ./*.egg-info
USER kadr
EXPOSE 8000 9100 9104 9105
CMD ["gunicorn", "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"]
