"""The Video page against a real segment worker (generated LR-ASPP weights): upload with
progress, the frame viewer (slider and arrow keys), the IoU chart and summary, another
stabilization method without segmenting again, the overlay download, refused files,
and a finished video opened from its link at phone width."""

from __future__ import annotations

import csv
import re
import zipfile

import pytest
import requests
from playwright.sync_api import expect

from testbed.stack import sample, scrape, wait_for
from testbed.synthetic_video import make_video, write_video
from tests.browser.conftest import allow_http_errors, open_app, shot, video_plays
from tests.e2e.conftest import create_key, running_stack

pytestmark = pytest.mark.slow
N_FRAMES = 12
MAX_FRAMES = 30
SLOW = 180_000  # ms: segmentation and stabilization on a loaded 2-core CPU


@pytest.fixture(scope="module")
def vstack(redis_server, models_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("ui-video")
    with running_stack(
        redis_server, models_dir, base, services=("segment",), KADR_MAX_VIDEO_FRAMES=str(MAX_FRAMES)
    ) as s:
        s["key"] = create_key(s["env"], "browser-video")
        s["session"] = requests.Session()
        s["session"].headers["Authorization"] = f"Bearer {s['key']}"
        s["clip"] = write_video(make_video(N_FRAMES, 96, 128, speed=4.0, seed=7).frames, base / "clip.mp4")
        s["long"] = write_video(make_video(MAX_FRAMES + 10, 32, 32, seed=1).frames, base / "long.mp4")
        s["text"] = base / "movie.mp4"
        s["text"].write_text("just some text, not a video\n")
        yield s


def _api(s, path, **kw):
    r = s["session"].get(f"{s['url']}/api/v1{path}", timeout=30, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def _segment_runs(s) -> float:
    return (
        sample(scrape(s["worker"].metrics_url), "kadr_worker_task_duration_seconds_count", task="segment.video") or 0.0
    )


def _pixels(page, kind: str) -> list[int]:
    """A coarse fingerprint of what a panel shows (its decoded pixels, not its URL)."""
    return page.evaluate(
        """(kind) => {
        const img = document.querySelector(`#vid-viewer img[data-kind="${kind}"]`);
        const c = document.createElement('canvas'); c.width = 16; c.height = 12;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0, 16, 12);
        return [...g.getImageData(0, 0, 16, 12).data];
    }""",
        kind,
    )


def _wait_frame(page, n: int) -> None:
    page.locator("#vid-frame-out").filter(has_text=re.compile(rf"^Frame {n} / {N_FRAMES - 1}$")).wait_for()
    for kind in ("original", "raw", "stable", "overlay"):
        page.locator(f'#vid-viewer img[data-kind="{kind}"][data-frame="{n}"]').wait_for()
    page.wait_for_function("""() => [...document.querySelectorAll('#vid-viewer img')]
        .every(i => i.complete && i.naturalWidth > 0)""")


def test_upload_view_compare_restabilize_and_download(vstack, page):
    open_app(page, vstack["url"], route="video", key=vstack["key"])
    page.get_by_role("heading", name="Video", exact=True).wait_for()
    # The options come from the API: classes, models, each method's ranges.
    page.locator("#vid-class option[value='person']").wait_for(state="attached")
    assert page.get_by_label("Target class").input_value() == "person"
    assert page.get_by_label("Processing size (px)").get_attribute("max") == "1024"
    assert f"{MAX_FRAMES} frames" in page.locator("#vid-limits").inner_text()

    page.get_by_label("Choose a video file").set_input_files(str(vstack["clip"]))
    page.get_by_text("clip.mp4 ·").wait_for()
    page.get_by_label("Processing size (px)").fill("128")
    page.get_by_label("Then stabilize with").select_option("moving_average")
    window = page.locator("#vid-upload-form").get_by_label(re.compile(r"^Window \(3–9\)"))
    assert (window.get_attribute("min"), window.get_attribute("max"), window.get_attribute("step")) == ("3", "9", "2")
    page.get_by_role("button", name="Upload and segment").click()

    # Upload progress ends full; then the segmentation state until it succeeds.
    page.get_by_text("Uploaded clip.mp4.").wait_for()
    assert page.locator("#vid-upload-progress").evaluate("e => e.value") == 1
    vid = re.search(r"#/video/([\w-]+)", page.url).group(1)
    page.locator("#vid-state").filter(has_text="succeeded").wait_for(timeout=SLOW)
    assert page.locator("#vid-progress").evaluate("e => e.value") == 1
    # The method chosen at upload runs by itself and is shown once ready.
    page.locator("#vid-viewer figcaption").filter(has_text="Stabilized mask (moving_average)").wait_for(timeout=SLOW)
    _wait_frame(page, 0)
    shot(page, "segmented")
    first = {k: _pixels(page, k) for k in ("original", "overlay")}

    # Scrub with the slider, then step with the arrow keys on the focused viewer.
    page.get_by_label("Frame", exact=True).fill("5")
    _wait_frame(page, 5)
    assert _pixels(page, "original") != first["original"]
    assert _pixels(page, "overlay") != first["overlay"]
    at5 = _pixels(page, "original")
    page.locator("#vid-viewer").focus()
    page.keyboard.press("ArrowRight")
    _wait_frame(page, 6)
    assert _pixels(page, "original") != at5
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    _wait_frame(page, 4)
    page.keyboard.press("End")
    _wait_frame(page, N_FRAMES - 1)
    assert page.get_by_label("Frame", exact=True).input_value() == str(N_FRAMES - 1)

    # The chart: one point per frame transition for raw and stabilized; the summary in words and a table.
    for cls in ("raw", "stable"):
        points = page.locator(f"#vid-chart svg polyline.{cls}").get_attribute("points").split()
        assert len(points) == N_FRAMES - 1
    headline = page.locator("#vid-headline").inner_text()
    assert re.search(r"moving_average .*mean IoU \d\.\d{3} raw → \d\.\d{3} stabilized", headline), headline
    expect(page.locator("#vid-chart svg desc")).to_have_text(headline)
    summary = page.locator("#vid-summary tbody").inner_text()
    assert "Mean instability" in summary and "Mean IoU between consecutive frames" in summary
    page.get_by_text("Per-frame values as a table").click()
    # The table is built on the details' toggle event, which fires after the click returns.
    expect(page.locator(".vid-series tbody tr")).to_have_count(N_FRAMES - 1)

    before = _api(vstack, f"/videos/{vid}")
    assert [r["method"] for r in before["results"]] == ["none", "moving_average"]
    runs = _segment_runs(vstack)
    assert runs == 1

    # A parameter outside the reported range is caught before anything is sent.
    try_form = page.locator("#vid-try-form")
    try_form.get_by_label("Method", exact=True).select_option("moving_average")
    try_form.get_by_label(re.compile(r"^Window \(3–9\)")).fill("4")
    page.get_by_role("button", name="Run this method").click()
    page.locator("#vid-try-error").filter(has_text="3–9").wait_for()

    # Another method on the stored probabilities: a new set, shown once ready; the old ones stay.
    try_form.get_by_label("Method", exact=True).select_option("exponential")
    try_form.get_by_label(re.compile(r"^Alpha \(0\.1–0\.9\)")).fill("0.3")
    page.get_by_role("button", name="Run this method").click()
    page.locator("#vid-viewer figcaption").filter(has_text="Stabilized mask (exponential)").wait_for(timeout=SLOW)
    page.locator("#vid-headline").filter(has_text="exponential").wait_for()
    _wait_frame(page, N_FRAMES - 1)
    expect(page.locator("#vid-result option")).to_have_text(
        ["#1 raw masks (no stabilization)", "#2 moving_average (window=5)", "#3 exponential (alpha=0.3)"]
    )
    shot(page, "second-method")

    after = _api(vstack, f"/videos/{vid}")
    assert len(after["results"]) == 3 and after["results"][2]["state"] == "succeeded"
    for field in ("started_at", "finished_at", "result"):
        assert after[field] == before[field], f"the video was segmented again ({field} changed)"
    assert _segment_runs(vstack) == runs

    # The earlier set stays selectable: viewer and chart follow the choice.
    page.get_by_label("Result set shown").select_option(label="#2 moving_average (window=5)")
    page.locator("#vid-viewer figcaption").filter(has_text="Stabilized mask (moving_average)").wait_for()
    page.locator("#vid-headline").filter(has_text="moving_average").wait_for()
    page.get_by_label("Result set shown").select_option(label="#3 exponential (alpha=0.3)")
    page.locator("#vid-headline").filter(has_text="exponential").wait_for()

    with page.expect_download() as dl:
        page.get_by_role("button", name="Download overlay MP4 (exponential)").click()
    assert dl.value.suggested_filename == "clip-overlay-exponential.mp4"
    data = open(dl.value.path(), "rb").read()
    assert data[4:8] == b"ftyp" and len(data) > 1000
    expected = (
        vstack["session"]
        .get(
            f"{vstack['url']}/api/v1/videos/{vid}/overlay.mp4", params={"result": after["results"][2]["id"]}, timeout=30
        )
        .content
    )
    assert data == expected
    video_plays(page, data=data)  # the overlay MP4 plays in Chromium, not only downloads

    # Compare methods: one chart per metric with one bar per result set, the report's numbers.
    report = _api(vstack, f"/videos/{vid}/report")
    ids = [r["result_id"] for r in report["result_sets"]]
    chart = page.locator("#vid-compare figure[data-metric='instability']")
    expect(chart.locator("g[data-result-id]")).to_have_count(3)
    for rid, row in zip(ids, report["result_sets"]):
        bar = chart.locator(f"g[data-result-id='{rid}'] rect")
        assert float(bar.get_attribute("data-value")) == row["instability"]
    assert page.locator("#vid-compare figure[data-metric='iou_truth']").count() == 0  # no truth video
    page.locator("#vid-compare").scroll_into_view_if_needed()
    shot(page, "compare")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Masks (PNG ZIP)").click()
    assert dl.value.suggested_filename == "clip-exponential-masks.zip"
    with zipfile.ZipFile(dl.value.path()) as zf:
        assert len(zf.namelist()) == N_FRAMES
    with page.expect_download() as dl:
        page.get_by_role("button", name="Report CSV").click()
    rows = list(csv.DictReader(open(dl.value.path(), newline="")))
    assert [r["method"] for r in rows] == ["none", "moving_average", "exponential"]
    # The key's videos come from the server: listed in a fresh browser profile too.
    assert page.locator("#vid-recent option").evaluate_all("os => os.map(o => o.value)")[0] == vid


def test_refused_files_show_the_servers_reason(vstack, page):
    open_app(page, vstack["url"], route="video", key=vstack["key"])
    allow_http_errors(page, 413, 415)
    upload = page.get_by_role("button", name="Upload and segment")
    page.locator("#vid-class option[value='person']").wait_for(state="attached")

    upload.click()
    page.locator("#vid-upload-error").filter(has_text="Choose a video file first").wait_for()

    page.get_by_label("Choose a video file").set_input_files(str(vstack["text"]))
    upload.click()
    err = page.get_by_role("alert").filter(has_text="movie.mp4")
    err.filter(has_text="unsupported_format").wait_for()
    assert "not an mp4, mov, avi, mkv or webm file" in err.inner_text()

    page.get_by_label("Choose a video file").set_input_files(str(vstack["long"]))
    upload.click()
    err = page.get_by_role("alert").filter(has_text="too_many_frames")
    err.wait_for()
    assert f"{MAX_FRAMES + 10} frames; at most {MAX_FRAMES} accepted" in err.inner_text()
    assert "#/video/" not in page.url
    assert page.locator("#vid-state").is_hidden()

    # Dropped on the drop zone instead of chosen: the same check, the same clear answer.
    page.locator(".vid-drop").evaluate("""(zone) => {
        const dt = new DataTransfer();
        dt.items.add(new File(['not a video either'], 'dropped.webm', {type: 'video/webm'}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""")
    page.get_by_text("dropped.webm ·").wait_for()
    upload.click()
    page.get_by_role("alert").filter(has_text="dropped.webm").filter(has_text="unsupported_format").wait_for()


def test_a_finished_video_opens_from_its_link_at_phone_width(vstack, phone_page):
    s, page = vstack, phone_page
    with open(s["clip"], "rb") as f:
        r = s["session"].post(
            f"{s['url']}/api/v1/videos", files={"file": ("walk.mp4", f)}, data={"processing_size": "128"}, timeout=60
        )
    assert r.status_code == 202, r.text
    vid = r.json()["id"]
    wait_for(
        lambda: _api(s, f"/videos/{vid}")["results"][0]["state"] == "succeeded",
        SLOW / 1000,
        "the raw result set",
        interval=0.5,
    )

    open_app(page, s["url"], route=f"video/{vid}", key=s["key"])
    page.get_by_role("heading", name="walk.mp4").wait_for()
    _wait_frame(page, 0)
    page.locator("#vid-chart svg polyline.stable").wait_for(state="attached")
    page.locator("#vid-viewer").focus()
    page.keyboard.press("ArrowRight")
    _wait_frame(page, 1)
    page.wait_for_load_state("networkidle")
    shot(page, "phone")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the video page is {overflow}px wider than a phone screen"
    unlabeled = page.evaluate("""[...document.querySelectorAll('main input, main select, main button')]
        .filter(e => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label')
                     && !(e.tagName === 'BUTTON' && e.textContent.trim()))
        .map(e => e.outerHTML.slice(0, 80))""")
    assert unlabeled == []
