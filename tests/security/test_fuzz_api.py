"""Fuzzing every operation of the live API from its own OpenAPI document (Schemathesis):
nginx, gunicorn and Redis as deployed, a real key, no worker (jobs stay queued). Goal: no
server error and no answer that its documented schema does not describe.

The budget per operation is ``KADR_FUZZ_EXAMPLES`` (25 here: ~1,000 requests, ~20 s;
`make fuzz` runs 500). With 25 it finds the 500 an unbounded page offset gave (checked
by raising MAX_OFFSET back)."""

from __future__ import annotations

import json
import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from testbed.stack import gateway_behind_nginx, kadr_env, start_redis
from tests.e2e.conftest import create_key

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("KADR_FUZZ_EXAMPLES", "25"))
CAMERA_TOKEN = "fuzz-camera-token-0123456789"


@pytest.fixture(scope="module")
def live(models_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    rproc, rurl = start_redis(base / "redis")
    env = kadr_env(
        redis_url=rurl,
        storage_dir=base / "blobs",
        models_dir=models_dir,
        KADR_REQUIRED_QUEUES="[]",
        KADR_CAMERAS=json.dumps([{"id": "gate", "auth": "token", "secret": CAMERA_TOKEN}]),
    )
    try:
        # The per-client rate limit is nginx's own, tested elsewhere: out of the fuzzer's way.
        with gateway_behind_nginx(env, base / "logs", rate="10000r/s", burst=10000) as (url, _):
            yield {"url": url, "key": create_key(env, "fuzzer")}
    finally:
        rproc.stop()


def _spec() -> dict:
    """The document the live gateway serves at /api/openapi.json, built the same way here
    (the cases must be known before the stack starts); the test checks they are equal."""
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    return create_app(GatewaySettings(redis_url="redis://127.0.0.1:1/0")).test_client().get("/api/openapi.json").json


SPEC = _spec()
schema = schemathesis.openapi.from_dict(SPEC)


def test_the_fuzzed_document_is_the_one_the_gateway_serves(live):
    assert requests.get(f"{live['url']}/api/openapi.json", timeout=10).json() == SPEC


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error_or_off_its_schema(case, live):
    wait = (case.query or {}).get("wait")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool) and wait > 1:
        case.query["wait"] = 1  # a long poll holds its answer up to 60 s: the budget is for breadth
    case.call_and_validate(
        base_url=live["url"],
        headers={"Authorization": f"Bearer {live['key']}"},
        checks=[not_a_server_error, response_schema_conformance],
        timeout=75,
    )
