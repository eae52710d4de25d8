#!/usr/bin/env bash
# kadr's base image for hosts that reach no container registry: Debian bookworm
# (its python3 is 3.11, as python:3.11-slim's) bootstrapped from the Debian mirror apt
# already uses, then imported. The Dockerfiles take it as BASE_IMAGE; with a registry at
# hand the default python:3.11-slim needs none of this.
#   bash infra/docker/base.sh            # builds localhost/kadr-base:bookworm once
# Needs root, debootstrap and podman or docker (ENGINE=docker to choose).
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/docker/engine.sh
TAG=${KADR_BASE_IMAGE:-localhost/kadr-base:bookworm}
if $ENGINE image inspect "$TAG" >/dev/null 2>&1; then
  echo "base: $TAG is there"
  exit 0
fi
# The first deb.debian.org-style mirror apt is configured with (deb822 or one-line form).
mirror=$(grep -hoE '^(URIs:|deb) *(\[[^]]*\] *)?https?://[^ ]+' /etc/apt/sources.list.d/*.sources \
           /etc/apt/sources.list 2>/dev/null | grep -v security | grep -oE 'https?://[^ ]+' | head -n1 || true)
mirror=${KADR_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}
root=$(mktemp -d /var/tmp/kadr-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "base: debootstrap bookworm from $mirror"
# python3-venv brings ensurepip (the images make a venv); ca-certificates lets pip reach
# PyPI; passwd is in minbase (useradd). Nothing else: each image adds what it needs.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar --numeric-owner -C "$root" -c . | $ENGINE import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "base: $TAG built"
