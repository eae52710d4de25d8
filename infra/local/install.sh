#!/usr/bin/env bash
# Installs everything kadr needs on a fresh Debian/Ubuntu machine: system packages
# (redis-server, nginx, prometheus) and the project virtualenv with the ML stack.
# Idempotent: every step checks first, so `make up` and `make test` can call it each time.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.kadr-installed"

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
# Prometheus (and its promtool) for `make up` and the monitoring tests; without its
# recommended node exporter, which would take port 9100 from kadr's exporter.
need_norec=()
command -v prometheus >/dev/null 2>&1 || need_norec+=(prometheus)
# podman + podman-compose: tests/deploy runs docker-compose.yml for real with them (runc:
# crun refuses hybrid cgroups; debootstrap builds the base image where no registry answers).
command -v podman-compose >/dev/null 2>&1 || need_apt+=(podman podman-compose runc catatonit debootstrap)
if [ "${KADR_INSTALL_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium chromium-driver)
  # Node.js loads every web module once in tests/unit/test_web_modules.py (no build step,
  # so a broken import would otherwise show only in the browser).
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
fi
if [ $((${#need_apt[@]} + ${#need_norec[@]})) -gt 0 ]; then
  echo "install: apt-get install ${need_apt[*]} ${need_norec[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  [ ${#need_apt[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  [ ${#need_norec[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends "${need_norec[@]}" >/dev/null
  # Debian starts the packaged services; kadr runs its own instances on its own ports.
  for svc in redis-server nginx prometheus; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# Re-install only when the dependency list changed.
want=$(cat pyproject.toml infra/local/install.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip wheel "setuptools<81"
# torch first, pinned: on this platform pip takes these builds from local disk.
"$PIP" install -q "torch==2.14.1" "torchvision==0.29.1" "opencv-python-headless<5"
# basicsr's declared deps drag in tb-nightly (training only) and the non-headless
# OpenCV that would shadow the headless one: install the four without deps ...
"$PIP" install -q --no-deps --no-build-isolation \
  "basicsr==1.4.2" "facexlib==0.3.0" "gfpgan==1.3.8" "realesrgan==0.3.0"
# ... then the project with its runtime extras (which list what those four need).
"$PIP" install -q -e ".[gateway,enhance,segment,camera,ops,dev]"
echo "$want" > "$STAMP"
echo "install: done ($VENV)"
