"""The helpers of the container build (infra/docker): which host pip sources become build
contexts, and which services `make compose-up` hands to podman-compose."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "infra/docker" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_local_pip_sources_become_one_context_with_paths_inside_it(tmp_path):
    ps = _load("pip_sources")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "idx/a/simple").mkdir(parents=True)
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs/ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    conf = {
        "find-links": f"{tmp_path}/wheels",
        "extra-index-url": f"file://{tmp_path}/idx/a/simple https://example.org/simple",
        "cert": f"{tmp_path}/certs/ca.pem",
    }
    args = ps.build_args(conf)
    contexts = [v for k, v in zip(args[::2], args[1::2]) if k == "--build-context"]
    build_args = dict(v.split("=", 1) for k, v in zip(args[::2], args[1::2]) if k == "--build-arg")
    assert contexts == [f"wheels={tmp_path}", f"pipca={tmp_path}/certs"]
    assert build_args["PIP_LOCAL_FIND_LINKS"] == "/wheels/wheels"
    # Remote indexes stay the image's own pip's business; only local folders are handed in.
    assert build_args["PIP_LOCAL_INDEXES"] == "file:///wheels/idx/a/simple"
    assert build_args["PIP_LOCAL_CERT"] == "/pipca/ca.pem"


def test_no_local_sources_means_no_contexts(tmp_path):
    ps = _load("pip_sources")
    assert ps.build_args({"extra-index-url": "https://example.org/simple", "find-links": f"{tmp_path}/none"}) == []


def test_compose_services_follow_profiles_and_skips():
    cs = _load("compose_services")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    default = cs.selected(compose, set(), set())
    assert "gateway" in default and "segment" not in default and "prometheus" not in default
    every = cs.selected(compose, {"video", "monitoring"}, {"grafana"})
    assert set(every) == set(compose["services"]) - {"grafana"}
