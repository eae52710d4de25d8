"""Print a pyproject.toml that holds only what pip needs to install kadr's dependencies.

The images install their dependencies from this file, not from the project's own
pyproject.toml, so that an edit to the tool settings (ruff, mypy, pytest), the version or
the description does not change the dependency layer. That layer holds torch: a change
to it rebuilds a 6 GB layer and copies it again into the final stage, and each superseded
copy stays on the build host's disk until pruned (a CI host ran out of space that way).

    python3 infra/docker/project_deps.py pyproject.toml > deps/pyproject.toml
    pip install "./deps[enhance,segment]"      # installs the extras, then kadr 0 (a shell)

Standard library only: it runs in the bare base image before anything is installed.
"""

from __future__ import annotations

import json
import sys
import tomllib
from typing import Any


def deps_only(project: dict[str, Any]) -> str:
    """TOML of the project's name, Python range and dependency lists (extras included)."""
    lines = [
        "[build-system]",
        'requires = ["setuptools>=68"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {json.dumps(project['name'])}",
        'version = "0"',
        f"requires-python = {json.dumps(project.get('requires-python', ''))}",
        f"dependencies = {json.dumps(project.get('dependencies', []))}",
        "",
        "[project.optional-dependencies]",
    ]
    # JSON's strings and arrays of strings are valid TOML: no TOML writer is needed.
    extras = project.get("optional-dependencies", {})
    lines += [f"{json.dumps(name)} = {json.dumps(reqs)}" for name, reqs in extras.items()]
    # No packages: installing this project installs its dependencies and an empty shell.
    lines += ["", "[tool.setuptools]", "packages = []", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        sys.stdout.write(deps_only(tomllib.load(f)["project"]))
