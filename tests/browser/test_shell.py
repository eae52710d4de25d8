"""The shell: the key form, navigation by keyboard, every page at phone width."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import allow_http_errors, open_app, shot
from tests.e2e.conftest import create_key, running_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(redis_server, models_dir, tmp_path_factory):
    with running_stack(redis_server, models_dir, tmp_path_factory.mktemp("ui-shell"), services=("camera",)) as s:
        s["key"] = create_key(s["env"], "browser")
        yield s


def test_key_is_asked_once_and_kept_in_browser_storage(stack, page):
    resp = page.goto(stack["url"] + "/")
    # The key sits in the page's storage: no inline or foreign script may run beside it.
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["cache-control"] == "no-cache"
    page.get_by_text("Enter your API key above").wait_for()
    allow_http_errors(page, 401)
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Save key").click()
    page.get_by_role("alert").filter(has_text="refused the API key").wait_for()
    page.get_by_label("API key").fill(stack["key"])
    page.get_by_label("API key").press("Enter")
    page.get_by_role("button", name="Forget key").wait_for()
    page.reload()
    page.get_by_role("heading", name="Photos", exact=True).wait_for()
    assert page.evaluate("localStorage.getItem('kadr.apiKey')") == stack["key"]
    page.get_by_role("button", name="Forget key").click()
    page.get_by_text("Enter your API key above").wait_for()


def test_sections_are_reachable_by_keyboard(stack, page):
    open_app(page, stack["url"], key=stack["key"])
    for name, heading in (("Video", "Video"), ("Cameras", "Cameras"), ("Ops", "Ops"), ("Photos", "Photos")):
        page.get_by_role("link", name=name, exact=True).focus()
        page.keyboard.press("Enter")
        page.get_by_role("heading", name=heading, exact=True).first.wait_for()
        expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")


@pytest.mark.parametrize("route", ["photos", "video", "cameras", "ops"])
def test_every_page_fits_a_phone(stack, phone_page, route):
    open_app(phone_page, stack["url"], route=route, key=stack["key"])
    phone_page.locator("main h1").first.wait_for()
    phone_page.wait_for_load_state("networkidle")
    shot(phone_page, route)
    overflow = phone_page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{route} is {overflow}px wider than a phone screen"
    unlabeled = phone_page.evaluate("""[...document.querySelectorAll('main input, main select, main button')]
        .filter(e => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label')
                     && !e.getAttribute('aria-labelledby') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
        .map(e => e.outerHTML.slice(0, 80))""")
    assert unlabeled == [], f"controls without a label on {route}: {unlabeled}"


def test_ops_page_shows_queues_workers_memory_and_a_lost_worker(stack, page):
    open_app(page, stack["url"], route="ops", key=stack["key"])
    camera_row = page.locator("#ops-queues tr[data-queue='camera']")
    camera_row.wait_for()
    expect(camera_row.locator("td").nth(2)).to_have_text("1")  # one live process serves the queue
    workers = page.locator("#ops-workers tbody tr")
    workers.first.wait_for()
    assert "camera" in workers.first.inner_text()
    assert "MiB" in workers.first.locator("td").nth(2).inner_text()
    page.locator("#ops-memory").get_by_text("Host memory used").wait_for()
    # The worker goes away: within a few refreshes the page says so, without a reload.
    stack["worker"].stop()
    page.get_by_text("No live worker processes.").wait_for(timeout=30_000)
    page.locator("#ops-readiness.bad").wait_for()
    expect(page.locator("#ops-readiness")).to_contain_text("no worker on camera")
