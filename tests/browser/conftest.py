"""The web UI in Debian's headless Chromium, driven by Playwright, against the real
stack (redis-server, Celery workers, gunicorn, nginx serving web/).

Every test gets a fresh browser context; a JavaScript error or a console error fails
the test unless it matches ``page.allowed_console`` (e.g. the browser's own log line
for a 4xx the test provokes on purpose). A screenshot of each test's last screen is
kept under ``test-artifacts/browser/`` (``KADR_TEST_ARTIFACTS``), plus any taken with
``shot(page, name)`` along the way.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import ARTIFACTS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]
SHOTS = ARTIFACTS / "browser"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def new_page(browser, request, viewport=DESKTOP):
    ctx = browser.new_context(viewport=viewport, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    page.console_log: list[str] = []
    page.allowed_console: list[str] = []
    page.test_name = _safe(request.node.name)

    def on_console(msg):
        if msg.type in ("error", "assert"):
            page.console_log.append(f"console.{msg.type}: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: page.console_log.append(f"page error: {exc}"))
    return ctx, page


def _finish(ctx, page):
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{page.test_name}.png"), full_page=True)
    finally:
        ctx.close()
    unexpected = [line for line in page.console_log if not any(re.search(p, line) for p in page.allowed_console)]
    assert not unexpected, "errors in the browser console:\n" + "\n".join(unexpected)


@pytest.fixture()
def page(browser, request):
    ctx, p = new_page(browser, request)
    yield p
    _finish(ctx, p)


@pytest.fixture()
def phone_page(browser, request):
    ctx, p = new_page(browser, request, viewport=PHONE)
    yield p
    _finish(ctx, p)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{page.test_name}--{_safe(name)}.png"), full_page=True)


def allow_http_errors(page, *statuses: int) -> None:
    """Chromium logs every 4xx/5xx response as a console error; a test that provokes
    one on purpose allows exactly those statuses."""
    for s in statuses:
        page.allowed_console.append(rf"Failed to load resource: the server responded with a status of {s}\b")


def open_app(page, url: str, route: str = "photos", key: str | None = None) -> None:
    """Open the UI at ``route``; with ``key``, enter it in the key form as a user does."""
    page.goto(f"{url}/#/{route}")
    if key is not None:
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Save key").click()
        page.get_by_role("button", name="Forget key").wait_for()


def count_uploads(page) -> None:
    """Counts the page's uploads in flight, in the page itself (the events Playwright
    relays can arrive after the next upload has started). Read with ``uploads(page)``:
    ``total`` requests sent, ``accepted`` the 2xx among them (the rest were refused, e.g.
    nginx's 429 past 20 requests/s per address, which the page sends again)."""
    page.add_init_script("""(() => {
        const seen = window.__uploads = { now: 0, max: 0, total: 0, accepted: 0 };
        const open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
        XMLHttpRequest.prototype.open = function (method, url, ...rest) {
            this.__upload = method === "POST" && /[/]items$/.test(url);
            return open.call(this, method, url, ...rest);
        };
        XMLHttpRequest.prototype.send = function (...args) {
            if (this.__upload) {
                seen.now++; seen.total++; seen.max = Math.max(seen.max, seen.now);
                // readyState 4 comes before "load", whose handler may already start the next upload.
                const done = () => {
                  if (this.readyState !== 4) return;
                  seen.now--;
                  if (this.status >= 200 && this.status < 300) seen.accepted++;
                  this.removeEventListener("readystatechange", done);
                };
                this.addEventListener("readystatechange", done);
            }
            return send.apply(this, args);
        };
    })()""")


def uploads(page) -> dict:
    return page.evaluate("window.__uploads")


PLAY_JS = """async ([sel, src]) => {
  let v = document.querySelector(sel);
  if (src) {  // bytes fetched by the test: played from a blob: URL, as the UI plays clips
    v = document.createElement('video');
    v.muted = true; v.preload = 'auto';
    document.body.append(v);
    v.src = URL.createObjectURL(new Blob([Uint8Array.from(atob(src), c => c.charCodeAt(0))], {type: 'video/mp4'}));
  }
  const deadline = Date.now() + 60000;
  while (v.readyState < 4 && !v.error && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
  const ready = v.readyState;
  if (v.error) return {ready, error: v.error.code + ' ' + v.error.message};
  await v.play();
  const t0 = v.currentTime;
  await new Promise(r => setTimeout(r, 1200));
  const out = {ready, t0, t1: v.currentTime, duration: v.duration, width: v.videoWidth, height: v.videoHeight, error: null};
  v.pause();
  if (src) v.remove();
  return out;
}"""


def video_plays(page, selector: str | None = None, data: bytes | None = None) -> dict:
    """Play a <video> (``selector``) or MP4 ``data`` in Chromium: it must reach
    HAVE_ENOUGH_DATA (readyState 4) and its clock must advance while playing."""
    import base64

    got = page.evaluate(PLAY_JS, [selector, base64.b64encode(data).decode() if data else None])
    assert got["error"] is None and got["ready"] == 4, got
    assert got["t1"] > got["t0"] + 0.3, got
    return got
