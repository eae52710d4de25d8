"""The gateway app in-process (Flask's test client) on the session's real redis-server,
with a real API key: what each attack reaches without nginx in front."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from services.store.apikeys import create_key


@pytest.fixture()
def gateway(redis_server, redis_client, tmp_path):
    """(client, auth headers, settings); every test starts on an empty database."""

    def make(**settings):
        s = GatewaySettings(redis_url=redis_server, storage_dir=tmp_path / "blobs", **settings)
        key, _ = create_key(redis_client, "attacker")
        return create_app(s).test_client(), {"Authorization": f"Bearer {key}"}, s

    return make
