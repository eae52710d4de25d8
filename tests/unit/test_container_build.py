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


def test_the_images_dependency_file_holds_the_dependencies_and_nothing_that_changes_without_them():
    """The images install from project_deps.py's file, so an edit of pyproject.toml's tool
    settings or version leaves the 6 GB dependency layer cached, and a dependency edit does not."""
    import tomllib

    pd = _load("project_deps")
    project_file = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = project_file["project"]
    out = tomllib.loads(pd.deps_only(project))
    assert out["project"]["name"] == "kadr"
    assert out["project"]["dependencies"] == project["dependencies"]
    assert out["project"]["optional-dependencies"] == project["optional-dependencies"]
    assert out["project"]["requires-python"] == project["requires-python"]
    assert out["build-system"]["build-backend"] == project_file["build-system"]["build-backend"]
    # An empty shell: installing it installs the extras' dependencies and no kadr code.
    assert out["tool"] == {"setuptools": {"packages": []}}

    edited = dict(project, version="9.9", description="other", readme="OTHER.md")
    assert pd.deps_only(edited) == pd.deps_only(project)
    more = dict(project, dependencies=[*project["dependencies"], "rich>=13"])
    assert pd.deps_only(more) != pd.deps_only(project)


def test_both_images_install_their_dependencies_from_that_file_and_label_every_stage():
    for name in ("gateway", "worker"):
        text = (ROOT / f"infra/docker/{name}.Dockerfile").read_text()
        assert "python3 /in/project_deps.py /in/pyproject.toml > /deps/pyproject.toml" in text
        builder = text[text.index(" AS builder") : text.rindex("\nFROM ")]
        assert "COPY --from=deps /deps/pyproject.toml ./" in builder
        assert "COPY pyproject.toml" not in builder, f"{name}: the builder would rebuild on every pyproject edit"
        # build.sh prunes dangling images by this label; a stage without it would pile up.
        stages = text.split("\nFROM ${BASE_IMAGE}")[1:]
        assert all("\nLABEL io.kadr.stage=" in s.split("\nRUN", 1)[0] for s in stages), name
