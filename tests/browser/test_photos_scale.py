"""The Photos page at seed 000's scale: 10,000 files picked in Chromium, uploaded into
one batch through nginx and gunicorn, a reload in the middle, the same files picked
again. Measured in the page: the cards in the DOM, the JS heap, how long a click waits
for the next frame and the longest task while uploads run. The numbers go to
``test-artifacts/browser/photos_scale.json`` (the README quotes them).

The enhance worker is held off its queue (``cancel_consumer``): the test is about the
page and the upload path, and 10,000 enhancements would take the 2-core machine hours."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from testbed.stack import wait_for
from tests.browser.conftest import SHOTS, allow_http_errors, count_uploads, open_app, shot, uploads
from tests.e2e.conftest import create_key, key_session, running_stack

pytestmark = pytest.mark.slow
FILES = 10_000
MAX_CARDS = 150  # cards in the DOM at any time (about 80 fill a 1280x900 window with overscan)
MAX_HEAP_BYTES = 32 << 20  # measured ~6 MiB with all 10,000 files
MAX_ANSWER_MS = 1000  # the bound: a click answers within a second
UPLOAD_WAIT = 900  # seconds for 10,000 uploads at nginx's 20 requests/s per address


@pytest.fixture(scope="module")
def stack(redis_server, models_dir, tmp_path_factory):
    # 12 files per request: below the page's first group size, so it must learn the limit.
    with running_stack(
        redis_server,
        models_dir,
        tmp_path_factory.mktemp("ui-photos-scale"),
        services=("enhance",),
        KADR_MAX_BATCH_FILES="12",
    ) as s:
        s["key"] = create_key(s["env"], "photos")
        # Polite: it shares 127.0.0.1 (and nginx's rate limit) with the page's uploads.
        s["api"] = key_session(s["key"], s["url"])
        yield s


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """10,000 distinct 16x16 PNGs (about 100 bytes each) in one folder."""
    import io

    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("ten-thousand")
    rng = np.random.default_rng(5)
    for i in range(FILES):
        arr = np.zeros((16, 16, 3), np.uint8)
        arr[:] = rng.integers(0, 255, 3, dtype=np.uint8)
        arr[i % 16, (i // 16) % 16] = (i % 251, (i // 251) % 251, 7)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        (d / f"photo_{i:05d}.png").write_bytes(buf.getvalue())
    return d


# Per pointerdown: the time from the input to the frame after it was handled; and every
# long task (over 50 ms) with its duration.
PROBES = """(() => {
  window.__answers = []; window.__long = [];
  addEventListener("pointerdown", (ev) => {
    const t0 = ev.timeStamp;
    requestAnimationFrame(() => setTimeout(() => window.__answers.push(performance.now() - t0), 0));
  }, true);
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); })
    .observe({ type: "longtask", buffered: true });
})()"""


def probes(page, reset=True) -> dict:
    got = page.evaluate("({answers: window.__answers, long: window.__long})")
    if reset:
        page.evaluate("window.__answers = []; window.__long = []")
    return got


def cards(page) -> int:
    return page.locator(".ph-item").count()


def heap(cdp) -> int:
    cdp.send("HeapProfiler.collectGarbage")
    return int(cdp.send("Runtime.getHeapUsage")["usedSize"])


def uploaded(page) -> int:
    return page.evaluate(
        "(JSON.parse(localStorage.getItem('kadr.photos.batch'))?.files || []).filter(f => f[2] === 'u').length"
    )


def server_batch(stack, bid: str) -> dict:
    r = stack["api"].get(f"{stack['url']}/api/v1/batches/{bid}", params={"limit": 0}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def server_names(stack, bid: str) -> list[str]:
    names, offset = [], 0
    while offset is not None:
        r = stack["api"].get(
            f"{stack['url']}/api/v1/batches/{bid}/items", params={"offset": offset, "limit": 500}, timeout=30
        )
        assert r.status_code == 200, r.text
        page = r.json()
        names += [it["name"] for it in page["items"]]
        offset = page.get("next_offset")
    return names


def test_ten_thousand_files_upload_into_one_batch_across_a_reload(stack, page, photo_dir):
    # 429: nginx's per-address rate limit (the page waits Retry-After and sends again);
    # 400: the first group over the stack's 12 files per request.
    allow_http_errors(page, 400, 429)
    page.add_init_script(PROBES)
    count_uploads(page)
    cdp = page.context.new_cdp_session(page)
    from celery import Celery

    control = Celery(broker=stack["env"]["KADR_REDIS_URL"]).control
    node = stack["worker"].node
    assert control.cancel_consumer("enhance", destination=[node], reply=True, timeout=10)
    files = sorted(str(p) for p in photo_dir.iterdir())
    names = {p.rsplit("/", 1)[1] for p in files}
    stats: dict = {
        "files": FILES,
        "bounds": {"cards": MAX_CARDS, "heap_bytes": MAX_HEAP_BYTES, "answer_ms": MAX_ANSWER_MS},
    }

    open_app(page, stack["url"], "photos", key=stack["key"])
    page.get_by_label("Quality", exact=True).select_option("fast")
    t0 = time.monotonic()
    page.get_by_label("Choose photos").set_input_files(files)
    expect(page.locator("#ph-ready")).to_contain_text(f"{FILES} ready", timeout=120_000)
    stats["pick_s"] = round(time.monotonic() - t0, 2)
    # The longest task here is Chromium's own: handing 10,000 files to the page is ~1.9 s
    # in one task with an empty change handler too; the page reads them in 30 ms slices.
    stats["pick"] = {
        "cards": cards(page),
        "heap_bytes": heap(cdp),
        "longest_task_ms": max(probes(page)["long"], default=0),
    }
    assert stats["pick"]["cards"] <= MAX_CARDS, stats

    page.get_by_role("button", name=f"Upload and enhance {FILES} photos").click()
    expect(page.locator("#ph-batch-state")).to_have_text("uploading")
    bid = page.evaluate("JSON.parse(localStorage.getItem('kadr.photos.batch')).id")

    # While uploads run: clicks answer, the DOM stays small, scrolling shows the right cards.
    samples = []
    t0 = time.monotonic()
    while (done := uploaded(page)) < 3000 and time.monotonic() - t0 < UPLOAD_WAIT:
        page.locator("#ph-totals").click()
        y = page.evaluate("document.documentElement.scrollHeight") * (len(samples) % 4) / 4
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(500)
        samples.append({"uploaded": done, "cards": cards(page)})
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1500)
    assert done >= 3000, f"only {done} files uploaded in {UPLOAD_WAIT} s"
    during = probes(page)
    stats["uploading"] = {
        "samples": len(samples),
        "max_cards": max(s["cards"] for s in samples),
        "clicks": len(during["answers"]),
        "slowest_answer_ms": round(max(during["answers"]), 1),
        "longest_task_ms": max(during["long"], default=0),
        "heap_bytes": heap(cdp),
        "files_per_s": round(done / (time.monotonic() - t0), 1),
    }
    assert stats["uploading"]["max_cards"] <= MAX_CARDS, stats
    assert during["answers"] and stats["uploading"]["slowest_answer_ms"] < MAX_ANSWER_MS, stats
    assert stats["uploading"]["longest_task_ms"] < MAX_ANSWER_MS, stats

    # The middle of the list shows the middle files (the virtual list maps scroll to rows).
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight / 2)")
    page.wait_for_timeout(500)
    shown = page.locator(".ph-item .ph-name").all_inner_texts()
    middle = sorted(int(n[6:11]) for n in shown)
    assert middle and 3000 < middle[len(middle) // 2] < 7000, middle
    shot(page, "uploading-middle")

    # At most 3 requests at a time, several files in each (one request per file would be
    # 1). How many files a request carries, and how many nginx refused (429 past 20
    # requests/s per address) and the page sent again, depend on how fast the stack
    # answers: 8 and 4.6 files per accepted request on a quiet and a busy 2-core box.
    # Reported; the bound counts the accepted requests only.
    sent = uploads(page)
    stats["uploading"]["files"] = done
    stats["uploading"]["requests"] = sent["total"]
    stats["uploading"]["refused_and_sent_again"] = sent["total"] - sent["accepted"]
    stats["uploading"]["most_at_once"] = sent["max"]
    assert sent["max"] <= 3 and 0 < sent["accepted"] and sent["accepted"] * 2 < done, sent

    # Reload mid-batch: the page takes the batch from the server and names what is missing.
    page.reload()
    missing = page.locator("#ph-missing-title")
    expect(missing).to_contain_text("photos not uploaded", timeout=120_000)
    # Uploads cut by the reload may still land after the page read the batch: at most the
    # three requests in flight (16 files each) more than the page counted.
    on_server = server_batch(stack, bid)["total"]
    counted = FILES - int(missing.inner_text().split()[0])
    assert counted <= on_server <= counted + 3 * 16, (missing.inner_text(), on_server)
    assert page.locator(".ph-missing-list li").count() <= 51
    stats["after_reload"] = {
        "on_server": on_server,
        "cards": cards(page),
        "heap_bytes": heap(cdp),
        "longest_task_ms": max(probes(page)["long"], default=0),
    }
    assert stats["after_reload"]["cards"] <= MAX_CARDS, stats
    shot(page, "after-reload")

    # The same 10,000 picked again: those the batch has are recognised, the rest go up,
    # and the page closes the batch when nothing is missing.
    t0 = time.monotonic()
    page.get_by_label("Choose photos").set_input_files(files)
    expect(missing).to_be_hidden(timeout=60_000)
    wait_for(
        lambda: not server_batch(stack, bid)["open"], UPLOAD_WAIT, "the page to upload the rest and close the batch"
    )
    stats["rest_s"] = round(time.monotonic() - t0, 1)
    end = server_batch(stack, bid)
    got = server_names(stack, bid)
    assert end["total"] == FILES and len(got) == FILES and set(got) == names, (end["total"], len(got))
    expect(page.locator("#ph-totals")).to_contain_text(f"of {FILES}")
    stats["end"] = {
        "cards": cards(page),
        "heap_bytes": heap(cdp),
        "longest_task_ms": max(probes(page)["long"], default=0),
        "localstorage_chars": page.evaluate("localStorage.getItem('kadr.photos.batch').length"),
    }
    assert stats["end"]["cards"] <= MAX_CARDS, stats
    for phase in ("pick", "uploading", "after_reload", "end"):
        assert stats[phase]["heap_bytes"] < MAX_HEAP_BYTES, stats
    shot(page, "all-in")
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "photos_scale.json").write_text(json.dumps(stats, indent=2))
    print(json.dumps(stats))
    # Leave nothing queued behind for the module's next user of this Redis (the page
    # first, or it would meet the deleted batch's 404s).
    page.goto("about:blank")
    stack["api"].delete(f"{stack['url']}/api/v1/batches/{bid}", timeout=60)
