# syntax=docker/dockerfile:1
# The gateway and the ops processes (exporter, autoscaler): no torch, no OpenCV, so the
# image stays small and the gateway never has the ML stack to import by accident.
#   docker build -f infra/docker/gateway.Dockerfile -t kadr-gateway .

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip wheel "setuptools<81"
WORKDIR /src
# Project metadata first: the dependency layer is rebuilt only when pyproject changes.
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY services services
COPY client client
# Not editable: the venv must work without /src, which stays in this stage.
RUN pip install ".[gateway,ops]"

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Fixed uid/gid: the named volumes (blobs) are shared with the worker image, same uid.
RUN groupadd --system --gid 10001 kadr \
 && useradd --system --uid 10001 --gid kadr --home-dir /app --no-create-home --shell /usr/sbin/nologin kadr \
 && mkdir -p /data/blobs /data/models /run/kadr-metrics \
 && chown -R kadr:kadr /data /run/kadr-metrics
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# gunicorn reads its config by path (-c gateway/gunicorn.conf.py).
COPY --chown=kadr:kadr gateway gateway
COPY --chown=kadr:kadr services services
COPY --chown=kadr:kadr client client
USER kadr
EXPOSE 8000 9100 9104
CMD ["gunicorn", "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"]
