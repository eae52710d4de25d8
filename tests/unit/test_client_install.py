"""The CLI installed as a user on a laptop would: ``pip install kadr[client]`` into a fresh
virtual environment brings none of the server's packages, the user commands run and reach
for the server over HTTP, and the admin commands say what they need instead of a traceback."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = {"celery", "numpy", "pillow", "redis", "pydantic", "pydantic-settings", "torch", "flask", "av"}


def test_the_base_is_the_client_and_every_server_role_pulls_in_the_core():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in project["dependencies"]}
    assert base == {"click", "requests", "tqdm"}, base
    extras = project["optional-dependencies"]
    for role in ("gateway", "enhance", "segment", "camera", "ops", "dev"):
        assert "kadr[server]" in extras[role], role
    assert {"celery[redis]", "numpy", "pillow"} <= {re.split(r"[<>= ;]", d)[0] for d in extras["server"]}


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("client")
    src = tmp / "src"  # a copy: pip builds in the source tree and would leave build/ in ours
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("client", "gateway", "services"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{src}[client]"],
        check=True,
        timeout=900,
    )
    return venv


def _kadr(venv: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin/kadr"), *args], capture_output=True, text=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_client_install_holds_no_server_package(client_venv):
    out = subprocess.run(
        [str(client_venv / "bin/python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {p["name"].lower() for p in json.loads(out)}
    assert {"kadr", "click", "requests", "tqdm"} <= names, names
    assert not names & SERVER_ONLY, names & SERVER_ONLY


@pytest.mark.slow
def test_the_user_commands_run_and_reach_for_the_server(client_venv, tmp_path):
    for command in ("enhance", "batch", "usage"):
        res = _kadr(client_venv, command, "--help")
        assert res.returncode == 0 and "Usage:" in res.stdout, (command, res.stderr)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9")
    # Nothing listens there: the whole path up to the HTTP request ran on the client's packages.
    res = _kadr(
        client_venv,
        "enhance",
        str(photo),
        "--server",
        f"http://127.0.0.1:{_free_port()}",
        "--key",
        "k",
        "--out",
        str(tmp_path / "out"),
    )
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "ModuleNotFoundError" not in res.stderr, res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args", [("keys", "list"), ("models", "verify")])
def test_the_admin_commands_name_what_they_need(client_venv, args):
    res = _kadr(client_venv, *args)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"'kadr {args[0]}' runs on the server host" in res.stderr and "pip install 'kadr[server]'" in res.stderr
