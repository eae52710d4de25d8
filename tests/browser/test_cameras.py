"""The Cameras page against a real camera worker buffering a live MJPEG camera: buffer
health per camera (live, unreachable, stream-less), refreshed while open and not after;
a webhook event appearing with its snow photo and plate crop; the detail by keyboard;
filters by camera and time kept in the URL."""

from __future__ import annotations

import json
import re
import time

import cv2
import pytest
import requests
from playwright.sync_api import expect

from services.contracts.camera_auth import TOKEN_HEADER
from testbed.mjpeg_server import MjpegServer
from testbed.plates import scene_with_plate
from testbed.stack import free_port, wait_for
from tests.browser.conftest import open_app, shot, video_plays
from tests.e2e.conftest import create_key, running_stack

pytestmark = pytest.mark.slow
GATE_TOKEN = "gate-camera-token-0123456789"
DOCK_TOKEN = "dock-camera-token-0123456789"
YARD_TOKEN = "yard-camera-token-0123456789"
SLOW = 120_000  # ms: the machine may be busy with other stacks
UI = 30_000

LOCAL_INPUT_JS = """t => { const d = new Date(t * 1000), p = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; }"""
IMAGE_LOADED_JS = "sel => [...document.querySelectorAll(sel)].some(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture(scope="module")
def stack(redis_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("ui-cameras")
    closed = free_port()  # nothing listens there: the dock camera stays down
    with MjpegServer(fps=10, period=4.0, sharp_seconds=0.5) as srv:
        cameras = [
            {"id": "gate", "source": srv.url, "fps": 10, "buffer_seconds": 10, "auth": "token", "secret": GATE_TOKEN},
            {"id": "dock", "source": f"http://127.0.0.1:{closed}/stream.mjpg", "auth": "token", "secret": DOCK_TOKEN},
            {"id": "yard", "auth": "token", "secret": YARD_TOKEN},
        ]
        with running_stack(
            redis_server, base / "models", base, services=("camera",), KADR_CAMERAS=json.dumps(cameras)
        ) as s:
            s["key"] = create_key(s["env"], "browser-cameras")
            s["api"] = requests.Session()
            s["api"].headers["Authorization"] = f"Bearer {s['key']}"
            yield s
            s["api"].close()


def _gate_buffer(stack) -> dict | None:
    cams = stack["api"].get(f"{stack['url']}/api/v1/cameras", timeout=10).json()["cameras"]
    return next(c for c in cams if c["id"] == "gate")["buffer"]


def post_event(stack, plate: str = "A123BC77") -> tuple[str, float]:
    """A gate event as the camera sends it (its token, an overview image with a plate),
    once the buffer reaches back past the 4 s offset."""
    wait_for(lambda: (_gate_buffer(stack) or {}).get("seconds_held", 0) >= 5, 120, "the gate buffer to hold 5 s")
    img, _ = scene_with_plate(480, 640, plate_width=200, seed=3)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    ts = time.time()
    resp = requests.post(
        f"{stack['url']}/api/v1/camera/gate/events",
        headers={TOKEN_HEADER: GATE_TOKEN},
        files={"overview": ("car.jpg", jpg.tobytes(), "image/jpeg")},
        data={"ts": f"{ts:.3f}", "plate": plate},
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"], ts


def wait_image(page, selector: str) -> None:
    page.wait_for_function(IMAGE_LOADED_JS, arg=selector, timeout=SLOW)


def local_input(page, ts: float) -> str:
    return page.evaluate(LOCAL_INPUT_JS, ts)


def test_buffer_health_per_camera_refreshes_while_open_and_stops_on_leave(stack, page):
    # A fake clock that still runs in real time: the test can jump ahead to the next refresh.
    page.clock.install()
    open_app(page, stack["url"], route="cameras", key=stack["key"])
    page.get_by_role("heading", name="Cameras", exact=True).wait_for()
    gate = page.locator('article.camera[data-camera="gate"]')
    expect(gate).to_have_attribute("data-health", "healthy", timeout=SLOW)
    expect(gate.locator(".health")).to_have_text("Healthy")
    expect(gate.locator('[data-field="buffered"]')).to_have_text(
        re.compile(r"(\d\.\d|\d+) s of 10 s · [1-9]\d* frames"), timeout=SLOW
    )
    expect(gate.locator('[data-field="memory"]')).to_have_text(re.compile(r"\S+ of 128 MiB \(\d+ %\)"))
    expect(gate.locator('[data-field="age"]')).to_have_text(re.compile(r"^\d\.\d s ago$"))
    expect(gate.locator('[data-field="drops"]')).to_contain_text("0 over budget")
    dock = page.locator('article.camera[data-camera="dock"]')
    expect(dock).to_have_attribute("data-health", "down", timeout=SLOW)
    expect(dock.locator(".health")).to_have_text("Down")
    expect(dock.locator(".health-detail")).to_contain_text("Source unreachable")
    yard = page.locator('article.camera[data-camera="yard"]')
    expect(yard).to_have_attribute("data-health", "none")
    expect(yard.locator(".health")).to_have_text("No stream")
    shot(page, "buffers")

    camera_calls: list[str] = []
    page.on("request", lambda r: camera_calls.append(r.url) if "/api/v1/camera" in r.url else None)
    status = page.locator("#cameras-status")
    before = status.text_content()
    with page.expect_request(lambda r: r.url.endswith("/api/v1/cameras"), timeout=UI):
        page.clock.run_for(5_000)
    expect(status).not_to_have_text(before, timeout=UI)

    # The shell's own navigation, by keyboard: the page unmounts and must stop polling.
    page.get_by_role("link", name="Photos", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('view').dataset.page === 'photos'")
    seen = len(camera_calls)
    page.clock.run_for(60_000)
    page.evaluate("new Promise(r => setTimeout(r, 0))")  # let anything the timers started go out
    assert camera_calls[seen:] == [], "the Cameras page kept polling after it was left"


def test_new_event_shows_snow_photo_and_plate_crop_and_filters_hide_it(stack, page):
    open_app(page, stack["url"], route="cameras", key=stack["key"])
    summary = page.locator("#events-summary")
    expect(summary).not_to_have_text("loading…", timeout=UI)
    # Hold the worker off its queue so the event is seen waiting before it finishes.
    from celery import Celery

    control = Celery(broker=stack["env"]["KADR_REDIS_URL"]).control
    node = stack["worker"].node
    assert control.cancel_consumer("camera", destination=[node], reply=True, timeout=10)
    try:
        event_id, ts = post_event(stack)
        # Appears by itself (the page refreshes), pending, then done without a reload.
        card = page.locator(f'#event-list li[data-event="{event_id}"]')
        expect(card).to_have_attribute("data-state", "queued", timeout=SLOW)
        expect(card).to_contain_text("processing…")
    finally:
        assert control.add_consumer("camera", destination=[node], reply=True, timeout=10)
    expect(card).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    wait_image(page, f'li[data-event="{event_id}"] img.snow')
    wait_image(page, f'li[data-event="{event_id}"] img.plate')
    expect(card).to_contain_text("A123BC77")
    assert page.locator("#event-list li").first.get_attribute("data-event") == event_id  # newest first

    # The detail, by keyboard.
    button = card.get_by_role("button")
    button.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", level=2)).to_contain_text("Event on gate")
    expect(dialog.locator("table.candidates tbody tr")).to_have_count(3, timeout=UI)
    scores = [float(t) for t in dialog.locator("table.candidates td.score").all_text_contents()]
    chosen = dialog.locator("table.candidates tr.chosen")
    expect(chosen).to_have_count(1)
    assert float(chosen.locator("td.score").text_content()) == max(scores)
    wait_image(page, "#event-detail img.snow-large")
    wait_image(page, "#event-detail img.plate-large")
    wait_image(page, "#event-detail img.candidate")
    # The clip plays: 5 s before the event to 3 s after, encoded from the buffered frames.
    expect(dialog.locator("video.clip")).to_have_count(1, timeout=UI)
    expect(dialog.locator("figure.clip figcaption")).to_contain_text("from buffered frames encoded as H.264")
    played = video_plays(page, "#event-detail video.clip")
    assert (played["width"], played["height"]) == (320, 240) and played["duration"] >= 6, played
    expect(page).to_have_url(re.compile(rf"[?&]event={event_id}"))
    shot(page, "detail")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    # The dialog's close event (which writes the URL) is a task queued after close().
    expect(page).not_to_have_url(re.compile("event="))

    # By camera: another camera has none of it.
    camera = page.get_by_label("Camera", exact=True)
    camera.select_option("dock")
    empty = page.locator("#events-empty")
    expect(empty).to_contain_text("No events match these filters", timeout=UI)
    expect(card).to_have_count(0)
    expect(page).to_have_url(re.compile("[?&]camera=dock"))
    camera.select_option("gate")
    expect(card).to_be_visible(timeout=UI)

    # By time: up to an hour before the event excludes it, and a reload keeps the filters.
    an_hour_before = local_input(page, ts - 3600)
    page.get_by_label("To", exact=True).fill(an_hour_before)
    expect(empty).to_contain_text("No events match these filters", timeout=UI)
    expect(card).to_have_count(0)
    expect(page).to_have_url(re.compile(r"[?&]until=\d+"))
    expect(page).to_have_url(re.compile("[?&]camera=gate"))
    page.reload()
    expect(page.get_by_label("Camera", exact=True)).to_have_value("gate", timeout=UI)
    # Chromium shows a datetime-local on a whole minute without its ":00" seconds.
    same_moment = re.compile("^" + re.escape(an_hour_before.removesuffix(":00")) + "(:00)?$")
    expect(page.get_by_label("To", exact=True)).to_have_value(same_moment)
    expect(empty).to_contain_text("No events match these filters", timeout=UI)
    shot(page, "filtered-out")

    # A range around it shows it again; clearing the filters empties the URL query.
    page.get_by_label("From", exact=True).fill(local_input(page, ts - 60))
    page.get_by_label("To", exact=True).fill(local_input(page, ts + 60))
    expect(page.locator(f'#event-list li[data-event="{event_id}"]')).to_be_visible(timeout=UI)
    page.get_by_role("button", name="Clear filters").click()
    expect(page.get_by_label("Camera", exact=True)).to_have_value("")
    expect(page.locator(f'#event-list li[data-event="{event_id}"]')).to_be_visible(timeout=UI)
    expect(page).to_have_url(re.compile("#/cameras$"))


def test_events_and_detail_fit_a_phone(stack, phone_page):
    page = phone_page
    event_id, _ = post_event(stack, plate="B456CD77")
    open_app(page, stack["url"], route="cameras", key=stack["key"])
    card = page.locator(f'#event-list li[data-event="{event_id}"]')
    expect(card).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    wait_image(page, f'li[data-event="{event_id}"] img.snow')
    expect(page.locator('article.camera[data-camera="gate"]')).to_have_attribute("data-health", "healthy", timeout=SLOW)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the Cameras page is {overflow}px wider than a phone screen"
    card.get_by_role("button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    wait_image(page, "#event-detail img.snow-large")
    wait_image(page, "#event-detail img.plate-large")
    shot(page, "phone-detail")
    wide = page.evaluate("""() => { const d = document.getElementById('event-detail');
        return [d.getBoundingClientRect().right - window.innerWidth, d.scrollWidth - d.clientWidth]; }""")
    assert wide[0] <= 0 and wide[1] <= 0, f"the event detail overflows a phone screen: {wide}"
    dialog.get_by_role("button", name="Close event").click()
    expect(dialog).to_be_hidden()
