"""Finding 9, in part: the outbound camera webhook followed redirects with its signed
headers and body. A 307 to another host now ends the delivery there, reported with the
Location it named, and the other host gets nothing."""
from __future__ import annotations

import pytest

from services.camera.webhook import deliver
from tests.fixtures.http_receiver import Receiver


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_with_the_signature(status):
    elsewhere = Receiver(204)
    receiver = Receiver(status, location=elsewhere.url)
    try:
        out = deliver(receiver.url, b'{"id": "e1"}', "camera-secret-0123456789", attempts=3,
                      backoff_seconds=0.01, timeout_seconds=5)
        assert out["delivered"] is False and out["attempts"] == 1, out
        assert f"HTTP {status}" in out["error"] and elsewhere.url in out["error"]
        assert len(receiver.posts) == 1 and elsewhere.posts == []
    finally:
        receiver.close()
        elsewhere.close()


def test_a_plain_receiver_still_gets_it_signed():
    receiver = Receiver(204)
    try:
        out = deliver(receiver.url, b'{"id": "e2"}', "camera-secret-0123456789", attempts=3,
                      backoff_seconds=0.01, timeout_seconds=5)
        assert out == {"delivered": True, "attempts": 1, "status": 204}
        assert receiver.posts[0][0]["X-Kadr-Signature"].startswith("sha256=")
    finally:
        receiver.close()
