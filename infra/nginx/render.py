#!/usr/bin/env python3
"""Render nginx.conf for compose (upstream ``gateway``) or for a local run, from one template.

    python infra/nginx/render.py --profile compose --out nginx.conf
    python infra/nginx/render.py --profile local --prefix var/run/nginx --listen 127.0.0.1:8080 \
        --upstream 127.0.0.1:8000 --out var/run/nginx/nginx.conf

The body-size limit comes from the gateway's settings (KADR_MAX_REQUEST_BYTES) unless given.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).with_name("nginx.conf.template")

PROFILES = {
    "compose": dict(
        listen="8080",
        upstream="gateway:8000",
        stream_upstream="",
        pid_path="/var/run/nginx.pid",
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        static_root="/srv/kadr/web",
        worker_processes="auto",
        temp_paths="",
        user="",
    ),
    "local": dict(listen="127.0.0.1:8080", upstream="127.0.0.1:8000", stream_upstream="", worker_processes="2"),
}


def render(
    profile: str,
    *,
    prefix: Path | None = None,
    rate: str = "20r/s",
    burst: int = 40,
    max_body_bytes: int | None = None,
    **overrides: str,
) -> str:
    values = {
        "profile": profile,
        "mime_types": "/etc/nginx/mime.types",
        "rate": rate,
        "burst": str(burst),
        "static_root": str(ROOT / "web"),
    }
    values.update(PROFILES[profile])
    if profile == "local":
        prefix = (prefix or ROOT / "var/run/nginx").resolve()
        # Logs go to the process's own output, which the runner (honcho, tests) files
        # under logs/ with everything else.
        values.update(
            pid_path=str(prefix / "nginx.pid"),
            error_log="stderr",
            access_log="/dev/stdout",
            temp_paths="".join(
                f"    {k}_temp_path {prefix / 'tmp' / k};\n"
                for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
            # Started by root, nginx's workers would run as nobody and could not
            # write request bodies over the 1 MB buffer (any phone photo) into a
            # temp dir under root's private directories: 500 on upload.
            user="user root;\n" if os.geteuid() == 0 else "",
        )
    if max_body_bytes is None:
        sys.path.insert(0, str(ROOT))
        from gateway.settings import GatewaySettings

        max_body_bytes = GatewaySettings().max_request_bytes
    values["client_max_body_size"] = str(max_body_bytes)
    values.update({k: str(v) for k, v in overrides.items() if v is not None})
    values["stream_upstream"] = values["stream_upstream"] or values["upstream"]
    text = TEMPLATE.read_text()
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", v)
    if "{{" in text:
        raise ValueError("unfilled placeholder in nginx template: " + text[text.index("{{") :][:40])
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=sorted(PROFILES), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prefix", type=Path)
    p.add_argument("--listen")
    p.add_argument("--upstream")
    p.add_argument("--stream-upstream", help="where SSE streams and ?wait= polls go (default: --upstream)")
    p.add_argument("--static-root")
    p.add_argument("--rate", default="20r/s")
    p.add_argument("--burst", type=int, default=40)
    p.add_argument("--max-body-bytes", type=int)
    a = p.parse_args(argv)
    text = render(
        a.profile,
        prefix=a.prefix,
        rate=a.rate,
        burst=a.burst,
        max_body_bytes=a.max_body_bytes,
        listen=a.listen,
        upstream=a.upstream,
        stream_upstream=a.stream_upstream,
        static_root=a.static_root,
    )
    if a.profile == "local":
        prefix = (a.prefix or ROOT / "var/run/nginx").resolve()
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "tmp" / k).mkdir(parents=True, exist_ok=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)


if __name__ == "__main__":
    main()
