"""The services `make compose-up` starts: those of no profile plus those of the profiles in
COMPOSE_PROFILES, less KADR_COMPOSE_SKIP (comma-separated). docker compose selects by
profile itself; podman-compose 1.0 ignores profiles and must be given the names.

    python3 infra/docker/compose_services.py [docker-compose.yml]
"""

from __future__ import annotations

import os
import sys

import yaml


def selected(compose: dict, profiles: set[str], skip: set[str]) -> list[str]:
    return [
        name
        for name, svc in compose["services"].items()
        if name not in skip and (not svc.get("profiles") or profiles & set(svc["profiles"]))
    ]


def _names(var: str) -> set[str]:
    return {p.strip() for p in os.environ.get(var, "").split(",") if p.strip()}


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "docker-compose.yml") as f:
        print(" ".join(selected(yaml.safe_load(f), _names("COMPOSE_PROFILES"), _names("KADR_COMPOSE_SKIP"))))
