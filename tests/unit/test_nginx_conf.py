"""nginx.conf (compose) and the local variant come from one template and both parse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testbed.stack import ROOT, binary


def _render(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "infra/nginx/render.py"), *args], check=True, capture_output=True, text=True
    )


def test_committed_compose_conf_is_the_rendered_template(tmp_path):
    out = tmp_path / "nginx.conf"
    _render("--profile", "compose", "--out", str(out))
    assert (ROOT / "nginx.conf").read_text() == out.read_text(), "nginx.conf is stale: run `make nginx-conf`"
    text = out.read_text()
    assert "server gateway:8000" in text and "limit_req_status 429" in text
    assert "proxy_set_header X-Request-ID $req_id" in text and "gzip_types application/json" in text


def test_local_conf_passes_nginx_t(tmp_path):
    prefix = tmp_path / "ngx"
    _render(
        "--profile",
        "local",
        "--prefix",
        str(prefix),
        "--listen",
        "127.0.0.1:1",
        "--upstream",
        "127.0.0.1:2",
        "--out",
        str(prefix / "nginx.conf"),
        "--max-body-bytes",
        "12345",
    )
    text = (prefix / "nginx.conf").read_text()
    assert "client_max_body_size 12345;" in text
    res = subprocess.run(
        [binary("nginx"), "-t", "-c", str(prefix / "nginx.conf"), "-p", str(prefix)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def test_body_limit_follows_the_gateway_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("KADR_MAX_REQUEST_BYTES", "777777")
    out = tmp_path / "n.conf"
    _render("--profile", "compose", "--out", str(out))
    assert "client_max_body_size 777777;" in out.read_text()


@pytest.mark.parametrize("profile", ["compose", "local"])
def test_no_placeholder_left(profile, tmp_path):
    out = tmp_path / "x.conf"
    _render("--profile", profile, "--prefix", str(tmp_path / "p"), "--out", str(out))
    assert "{{" not in out.read_text()
