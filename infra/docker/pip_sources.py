"""Print the build arguments that hand this host's local pip sources to an image build.

The host's pip may take wheels from its own disk (find-links, file:// indexes: here torch
and torchvision, several GB that PyPI would send again) and trust a CA bundle of its own
(a TLS-inspecting proxy). The Dockerfiles accept both as optional build contexts, so
nothing about this host is written into them. One argument per line, for build.sh:

    python3 infra/docker/pip_sources.py
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from urllib.parse import urlparse

WHEELS, PIPCA = "/wheels", "/pipca"


def pip_config() -> dict[str, str]:
    """pip's own view of its settings (files and PIP_* variables), last one wins."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    conf: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        conf[name] = " ".join(shlex.split(value))
    return conf


def local_dir(location: str) -> str | None:
    url = urlparse(location)
    path = url.path if url.scheme == "file" else (location if not url.scheme else "")
    return path if path and os.path.isdir(path) else None


def build_args(conf: dict[str, str]) -> list[str]:
    links = [p for p in conf.get("find-links", "").split() if local_dir(p)]
    indexes = [u for u in conf.get("extra-index-url", "").split() if local_dir(u)]
    args: list[str] = []
    dirs = [local_dir(x) for x in links + indexes]
    if dirs:
        root = os.path.commonpath([os.path.realpath(d) for d in dirs if d])
        inside = lambda d: WHEELS + "/" + os.path.relpath(os.path.realpath(d), root)  # noqa: E731
        args += [
            "--build-context",
            f"wheels={root}",
            "--build-arg",
            "PIP_LOCAL_FIND_LINKS=" + " ".join(inside(local_dir(p)) for p in links),
            "--build-arg",
            "PIP_LOCAL_INDEXES=" + " ".join("file://" + inside(local_dir(u)) for u in indexes),
            # torch from PyPI's name with the local copies beside it: pip prefers a
            # local file of the same release, as on the host.
            "--build-arg",
            "TORCH_INDEX_URL=https://pypi.org/simple",
        ]
    cert = conf.get("cert", "")
    if cert and os.path.isfile(cert):
        args += [
            "--build-context",
            f"pipca={os.path.dirname(os.path.realpath(cert))}",
            "--build-arg",
            f"PIP_LOCAL_CERT={PIPCA}/{os.path.basename(os.path.realpath(cert))}",
        ]
    return args


if __name__ == "__main__":
    print("\n".join(build_args(pip_config())))
