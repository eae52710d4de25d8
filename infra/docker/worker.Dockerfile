# syntax=docker/dockerfile:1
# The enhance, segment and camera workers: one image, the command picks the service.
# The install order mirrors infra/local/install.sh (see the comments there for why).
#   docker build -f infra/docker/worker.Dockerfile -t kadr-worker .
#   bash infra/docker/build.sh worker      # the same, with this host's base and pip sources
ARG BASE_IMAGE=python:3.11-slim

# Build contexts a host may supply (infra/docker/build.sh does): "wheels", folders of
# wheels or simple indexes on its disk, and "pipca", the CA bundle its pip trusts. Empty
# unless supplied: a host with a registry and plain internet needs neither.
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
# CPU wheels by default: the CUDA build adds gigabytes to the image and ~290 MiB of
# resident memory to every worker process, which a 2.9 GB box cannot spare.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# pip settings pointing into the contexts above (paths under /wheels and /pipca), written
# to this stage's pip.conf only: the final image carries no trace of the build host.
ARG PIP_LOCAL_FIND_LINKS="" PIP_LOCAL_INDEXES="" PIP_LOCAL_CERT=""
RUN { echo "[global]"; \
      [ -z "$PIP_LOCAL_FIND_LINKS" ] || echo "find-links = $PIP_LOCAL_FIND_LINKS"; \
      [ -z "$PIP_LOCAL_INDEXES" ] || echo "extra-index-url = $PIP_LOCAL_INDEXES"; \
      [ -z "$PIP_LOCAL_CERT" ] || echo "cert = $PIP_LOCAL_CERT"; } > /etc/pip.conf \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN --mount=type=bind,from=pipca,target=/pipca \
    pip install --upgrade pip wheel "setuptools<81"
RUN --mount=type=bind,from=wheels,target=/wheels --mount=type=bind,from=pipca,target=/pipca \
    pip install --index-url "$TORCH_INDEX_URL" "torch==2.14.1" "torchvision==0.29.1" \
 && pip install "opencv-python-headless<5"
# Without deps: basicsr's pull in tb-nightly and a non-headless OpenCV that shadows the
# headless one. No build isolation: basicsr's setup.py imports the installed torch.
RUN --mount=type=bind,from=pipca,target=/pipca \
    pip install --no-deps --no-build-isolation \
      "basicsr==1.4.2" "facexlib==0.3.0" "gfpgan==1.3.8" "realesrgan==0.3.0"
WORKDIR /src
# The project's dependencies only (the extras list the four packages' runtime deps: addict,
# future, lmdb, pyyaml, tqdm, yapf, filterpy, numba, scipy, scikit-image; PyAV; psutil):
# this layer, and the final stage's copy of the venv, change only with those lists,
# not with every change of the code, which goes in at the end of the final stage.
COPY --from=deps /deps/pyproject.toml ./
RUN --mount=type=bind,from=wheels,target=/wheels --mount=type=bind,from=pipca,target=/pipca \
    pip install ".[enhance,segment,camera,ops]" && pip uninstall -y kadr

FROM ${BASE_IMAGE}
# Every stage carries io.kadr.stage: build.sh prunes kadr's own dangling images by it.
LABEL io.kadr.stage=image
# libgomp1: numba's OpenMP threading layer. The torch, OpenCV-headless and PyAV wheels
# bundle every other library they load (headless: no libGL, no glib).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 kadr \
 && useradd --system --uid 10001 --gid kadr --home-dir /app --no-create-home --shell /usr/sbin/nologin kadr \
 && mkdir -p /data/blobs /data/models /run/kadr-metrics \
 && chown -R kadr:kadr /data /run/kadr-metrics
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY services services
COPY client client
# The project itself (the kadr command: `kadr models download`); then fail the build, not
# the first task: the model modules import (torchvision shim included) and no non-headless
# OpenCV or tb-nightly slipped in.
RUN pip install --no-deps --no-build-isolation --no-compile --no-cache-dir . \
 && rm -rf build ./*.egg-info \
 && python -c "import cv2, av, torch; import services.enhance.models, services.segment.models, services.camera.plates" \
 && ! pip list 2>/dev/null | grep -iE '^(opencv-python|tb-nightly) '
USER kadr
EXPOSE 9101 9102 9103
CMD ["celery", "-A", "services.enhance.tasks", "worker", "-Q", "enhance", "-n", "enhance@%h", "-c", "1", "--pool", "prefork"]
