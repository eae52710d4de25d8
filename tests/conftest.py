"""Shared fixtures: a real redis-server per test session, generated model weights,
and helpers to build settings objects for in-process code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from testbed.stack import start_redis

ARTIFACTS = Path(os.environ.get("KADR_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.stop()


@pytest.fixture()
def redis_client(redis_server):
    import redis

    r = redis.Redis.from_url(redis_server, decode_responses=True)
    r.flushall()
    yield r
    r.close()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """Randomly initialised weights in the official file formats (never offered to users)."""
    from testbed.weights import make_random_weights

    d = tmp_path_factory.mktemp("models")
    make_random_weights(d)
    return d


@pytest.fixture()
def storage_dir(tmp_path) -> Path:
    d = tmp_path / "blobs"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def _restore_float_mode():
    """Model loaders turn on flush-to-zero (random weights make denormals that slow the
    CPU 3x). That is process-wide CPU state; in the shared test process it would make
    hypothesis refuse every float strategy, so each test leaves it as it found it."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)
