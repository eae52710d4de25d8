"""Finding 9, in part: the outbound camera webhook followed redirects with its signed
headers and body. A 307 to another host now ends the delivery there, reported with the
Location it named, and the other host gets nothing."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.camera.webhook import deliver


class _Server:
    def __init__(self, status: int, location: str = ""):
        self.hits: list[dict] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.hits.append(dict(self.headers))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_with_the_signature(status):
    elsewhere = _Server(204)
    receiver = _Server(status, location=elsewhere.url)
    try:
        out = deliver(receiver.url, b'{"id": "e1"}', "camera-secret-0123456789", attempts=3,
                      backoff_seconds=0.01, timeout_seconds=5)
        assert out["delivered"] is False and out["attempts"] == 1, out
        assert f"HTTP {status}" in out["error"] and elsewhere.url in out["error"]
        assert len(receiver.hits) == 1 and elsewhere.hits == []
    finally:
        receiver.close()
        elsewhere.close()


def test_a_plain_receiver_still_gets_it_signed():
    receiver = _Server(204)
    try:
        out = deliver(receiver.url, b'{"id": "e2"}', "camera-secret-0123456789", attempts=3,
                      backoff_seconds=0.01, timeout_seconds=5)
        assert out == {"delivered": True, "attempts": 1, "status": 204}
        assert receiver.hits[0]["X-Kadr-Signature"].startswith("sha256=")
    finally:
        receiver.close()
