"""The Photos page against the real stack: files in, options, streamed uploads, results
with a before/after slider, totals to 100 %, the ZIP; refused files explained while the
others finish; a reload mid-batch picks the batch up from the server."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from testbed.photos import flat_png
from tests.browser.conftest import allow_http_errors, count_uploads, open_app, shot, uploads
from tests.e2e.conftest import MAX_UPLOAD, create_key, running_stack

pytestmark = pytest.mark.slow
SLOW = 180_000  # enhance on random weights, on a shared 2-core machine


@pytest.fixture(scope="module")
def stack(redis_server, models_dir, tmp_path_factory):
    with running_stack(redis_server, models_dir, tmp_path_factory.mktemp("ui-photos"), services=("enhance",)) as s:
        s["key"] = create_key(s["env"], "photos")
        yield s


def png(name: str, seed: int) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": flat_png(w=96, h=64, seed=seed)}


def jpeg(w=96, h=64, seed=0) -> bytes:
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def noise_png(size: int, seed=0) -> bytes:
    """A photo over the stack's upload limit: noise does not compress."""
    from PIL import Image

    side = int((size / 3) ** 0.5) + 8
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def choose_cheap_options(page) -> None:
    """What keeps the work small: faces only, same size, at most one face."""
    page.get_by_label("Quality", exact=True).select_option("fast")
    page.get_by_label("Output scale", exact=True).select_option("1")
    page.get_by_label("Faces restored per photo", exact=True).fill("1")


def card(page, name: str):
    return page.locator(".ph-item").filter(has=page.locator(".ph-name", has_text=name))


def batch(stack, bid: str) -> dict:
    return requests.get(
        f"{stack['url']}/api/v1/batches/{bid}",
        params={"limit": 0},
        headers={"Authorization": f"Bearer {stack['key']}"},
        timeout=10,
    ).json()


def expect_compare_works(page, name: str) -> None:
    """Both images show, and the slider moves the cut by keyboard."""
    c = card(page, name)
    slider = c.get_by_role("slider", name=f"Before and after: {name}")
    expect(slider).to_be_visible()
    for img in ("img.ph-before", "img.ph-after"):
        # An <img> without a src is "complete" too: wait for the decoded picture itself.
        page.wait_for_function(
            "i => i.complete && i.naturalWidth > 0", arg=c.locator(img).element_handle(), timeout=30_000
        )
    slider.focus()
    page.keyboard.press("End")
    expect(slider).to_have_value("100")
    page.keyboard.press("ArrowLeft")
    expect(slider).to_have_value("99")
    assert "99%" in c.locator("figure").get_attribute("style")


def test_photos_upload_enhance_compare_and_zip(stack, page, tmp_path):
    count_uploads(page)
    open_app(page, stack["url"], "photos", key=stack["key"])
    expect(page.get_by_role("heading", name="Photos", exact=True)).to_be_visible()
    choose_cheap_options(page)
    files = [png("alpha.png", 1), png("beta.png", 2), png("gamma.png", 3), png("delta.png", 4)]
    page.get_by_label("Choose photos").set_input_files(files)
    expect(page.locator(".ph-item")).to_have_count(4)
    expect(page.locator("#ph-ready")).to_contain_text("4 ready")
    page.get_by_role("button", name="Remove delta.png").click()
    expect(page.locator(".ph-item")).to_have_count(3)
    page.get_by_role("button", name="Upload and enhance 3 photos").click()

    expect(page.locator("#ph-batch")).to_be_visible()
    expect(page.get_by_role("progressbar", name="Batch progress")).to_be_visible()
    for name in ("alpha.png", "beta.png", "gamma.png"):
        expect(card(page, name)).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(page.locator("#ph-percent")).to_have_text("100 %", timeout=SLOW)
    expect(page.get_by_role("progressbar", name="Batch progress")).to_have_js_property("value", 100)
    totals = page.locator("#ph-totals")
    expect(totals).to_contain_text("Done 3 of 3")
    expect(totals).to_contain_text("failed 0")
    expect(totals).to_contain_text("elapsed")
    expect(page.locator("#ph-batch-state")).to_have_text("finished")
    for name in ("alpha.png", "beta.png", "gamma.png"):
        expect_compare_works(page, name)
    seen = uploads(page)
    assert seen["total"] == 3 and seen["max"] <= 3, seen
    shot(page, "finished")

    # Options chosen in the form are what the batch ran with.
    bid = page.evaluate("JSON.parse(localStorage.getItem('kadr.photos.batch')).id")
    params = batch(stack, bid)["params"]
    assert (params["quality"], params["upscale"], params["max_faces"]) == ("fast", 1, 1)

    with page.expect_download() as dl:
        page.get_by_role("button", name="Download ZIP").click()
    path = tmp_path / "out.zip"
    dl.value.save_as(path)
    assert dl.value.suggested_filename == f"kadr-batch-{bid[:8]}.zip"
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["alpha.png", "beta.png", "gamma.png"]
        assert z.testzip() is None
        from PIL import Image

        assert Image.open(io.BytesIO(z.read("alpha.png"))).size == (96, 64)  # upscale 1


def test_variants_give_each_photo_an_output_per_variant_in_its_folder(stack, page, tmp_path):
    open_app(page, stack["url"], "photos", key=stack["key"])
    choose_cheap_options(page)
    for n, (name, scale) in enumerate((("same", "1"), ("same", "2")), start=1):
        page.get_by_role("button", name="Add variant").click()
        page.get_by_label(f"Variant {n} name (folder)").fill(name)
        page.get_by_label(f"Variant {n} output scale").select_option(scale)
    page.get_by_label("Choose photos").set_input_files([png("one.png", 11), png("two.png", 12)])
    start = page.get_by_role("button", name="Upload and enhance 2 photos")
    start.click()  # two variants named alike: refused in the form, nothing sent
    expect(page.get_by_label("Variant 2 name (folder)")).to_be_focused()
    expect(page.locator("#ph-batch")).to_be_hidden()
    page.get_by_label("Variant 2 name (folder)").fill("x2")
    start.click()

    expect(page.locator("#ph-batch-params")).to_contain_text("Variants: same (as above), x2 (2×)")
    expect(page.locator(".ph-item")).to_have_count(4)  # a card per photo and variant
    expect(page.locator(".ph-item[data-state='succeeded']")).to_have_count(4, timeout=SLOW)
    expect(page.locator("#ph-totals")).to_contain_text("Done 4 of 4")
    bid = page.evaluate("JSON.parse(localStorage.getItem('kadr.photos.batch')).id")
    assert [(v["name"], v["params"]["upscale"]) for v in batch(stack, bid)["variants"]] == [("same", 1), ("x2", 2)]
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download ZIP").click()
    dl.value.save_as(tmp_path / "v.zip")
    from PIL import Image

    with zipfile.ZipFile(tmp_path / "v.zip") as z:
        assert sorted(z.namelist()) == ["same/one.png", "same/two.png", "x2/one.png", "x2/two.png"]
        assert Image.open(io.BytesIO(z.read("x2/one.png"))).size == (192, 128)
        assert Image.open(io.BytesIO(z.read("same/one.png"))).size == (96, 64)
    # The variants are kept with the other options for the next batch.
    page.reload()
    expect(page.get_by_label("Variant 2 name (folder)")).to_have_value("x2", timeout=SLOW)


def test_refused_files_are_explained_while_the_others_finish(stack, page):
    allow_http_errors(page, 400, 413, 415)
    count_uploads(page)
    open_app(page, stack["url"], "photos", key=stack["key"])
    choose_cheap_options(page)
    big = noise_png(MAX_UPLOAD + 50_000)
    assert MAX_UPLOAD < len(big) < 2 * MAX_UPLOAD
    good = jpeg(seed=7)
    page.get_by_label("Choose photos").set_input_files(
        [
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"shopping list"},
            png("good1.png", 11),
            {"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": b"this is text, not a JPEG " * 20},
            {"name": "big.png", "mimeType": "image/png", "buffer": big},
            {"name": "cut.jpg", "mimeType": "image/jpeg", "buffer": good[: len(good) // 2]},
            {"name": "good2.jpg", "mimeType": "image/jpeg", "buffer": good},
        ]
    )
    # Refused in the browser: never uploaded.
    notes = card(page, "notes.txt")
    expect(notes).to_have_attribute("data-state", "rejected")
    expect(notes.locator(".ph-msg")).to_contain_text("not a photo kadr can read (its type is text/plain)")
    expect(page.locator("#ph-ready")).to_contain_text("5 ready")
    expect(page.locator("#ph-ready")).to_contain_text("1 refused")

    # A slow link, so the big upload's progress shows.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 300_000},
    )
    page.get_by_role("button", name="Upload and enhance 5 photos").click()
    bar = page.get_by_role("progressbar", name="Upload of big.png")
    page.wait_for_function(
        """() => { const b = document.querySelector('progress[aria-label="Upload of big.png"]');
                                      return b && !b.hidden && b.value > 0 && b.value < 1; }""",
        timeout=60_000,
    )
    expect(card(page, "big.png").locator(".state")).to_contain_text("uploading")
    expect(bar).to_be_hidden(timeout=60_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )

    # Refused by the server: its message, per file.
    expect(card(page, "fake.jpg").locator(".ph-msg")).to_contain_text("unsupported file type")
    expect(card(page, "fake.jpg")).to_have_attribute("data-state", "rejected")
    expect(card(page, "big.png").locator(".ph-msg")).to_contain_text(f"over the {MAX_UPLOAD} byte limit")
    expect(card(page, "big.png")).to_have_attribute("data-state", "rejected")
    # Cut short: refused at upload from its structure (no end-of-image marker), not
    # accepted and failed minutes later in the worker.
    expect(card(page, "cut.jpg")).to_have_attribute("data-state", "rejected")
    expect(card(page, "cut.jpg").locator(".ph-msg")).to_contain_text("cut short")
    expect(card(page, "cut.jpg").locator(".ph-msg")).to_contain_text("[invalid_image]")
    for name in ("good1.png", "good2.jpg"):
        expect(card(page, name)).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(page.locator("#ph-percent")).to_have_text("100 %", timeout=SLOW)
    expect(page.locator("#ph-totals")).to_contain_text("Done 2 of 2")
    expect(page.locator("#ph-totals")).to_contain_text("failed 0")
    expect(page.locator("#ph-totals")).to_contain_text("refused 4")
    expect(page.locator("#ph-batch-state")).to_have_text("finished")
    expect_compare_works(page, "good2.jpg")
    seen = uploads(page)
    assert seen["total"] == 5 and 1 < seen["max"] <= 3, seen
    shot(page, "refused")


def test_reload_mid_batch_continues_from_the_server(stack, phone_page):
    page = phone_page
    open_app(page, stack["url"], "photos", key=stack["key"])
    choose_cheap_options(page)
    files = [png("one.png", 21), png("two.png", 22), png("three.png", 23)]
    held, holding = [], [True]

    # three.png's upload never reaches the server: the reload cuts it.
    def hold(route):
        if holding[0] and b'filename="three.png"' in (route.request.post_data_buffer or b""):
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/v1/batches/*/items", hold)
    page.get_by_label("Choose photos").set_input_files(files)
    page.get_by_role("button", name="Upload and enhance 3 photos").click()
    page.wait_for_function(
        "() => (JSON.parse(localStorage.getItem('kadr.photos.batch'))?.files || [])"
        ".filter(f => f[2] === 'u').length === 2",
        timeout=60_000,
    )
    assert held, "three.png's upload was not held"
    bid = page.evaluate("JSON.parse(localStorage.getItem('kadr.photos.batch')).id")
    title = page.locator("#ph-batch-title").inner_text()
    holding[0] = False

    page.reload()
    expect(page.locator("#ph-batch-title")).to_have_text(title)
    missing = page.locator("#ph-missing")
    expect(missing).to_contain_text("1 photo not uploaded")
    expect(missing).to_contain_text("three.png")
    expect(card(page, "three.png")).to_have_attribute("data-state", "missing")
    assert batch(stack, bid)["open"] is True  # waits for the missing photo
    for name in ("one.png", "two.png"):
        expect(card(page, name)).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(page.locator("#ph-percent")).not_to_have_text("100 %")
    shot(page, "after-reload")

    # All three picked again: the two the server has are recognised, only three.png goes up.
    page.get_by_label("Choose photos").set_input_files(files)
    expect(missing).to_be_hidden()
    expect(card(page, "three.png")).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(page.locator("#ph-percent")).to_have_text("100 %", timeout=SLOW)
    expect(page.locator("#ph-totals")).to_contain_text("Done 3 of 3")
    expect(page.locator(".ph-item")).to_have_count(3)
    end = batch(stack, bid)
    assert end["state"] == "succeeded" and end["total"] == 3 and end["percent"] == 100.0
    # The "before" of a photo uploaded before the reload comes from the server now.
    expect_compare_works(page, "one.png")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the finished batch is {overflow}px wider than a phone"


def test_a_photo_in_the_works_shows_its_progress_and_heic_photos_are_taken(stack, page):
    from testbed import photos

    open_app(page, stack["url"], "photos", key=stack["key"])
    page.get_by_label("Quality", exact=True).select_option("medium")
    page.get_by_label("Output scale", exact=True).select_option("")  # automatic: 2x where it fits
    page.get_by_label("Faces restored per photo", exact=True).fill("0")
    big = photos.encode(photos.photo(960, 720), "jpeg")
    heic = photos.encode(photos.photo(320, 240), "heic", orientation=6)
    assert len(big) < MAX_UPLOAD
    page.get_by_label("Choose photos").set_input_files(
        [
            {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big},
            {"name": "IMG_0001.HEIC", "mimeType": "image/heic", "buffer": heic},
        ]
    )
    expect(page.locator("#ph-ready")).to_contain_text("2 ready")
    page.get_by_role("button", name="Upload and enhance 2 photos").click()
    # While the worker goes through its tiles, the photo's own bar moves.
    page.wait_for_function(
        """() => { const b = document.querySelector('progress[aria-label="Enhancing big.jpg"]');
                                      return b && !b.hidden && b.value > 0 && b.value < 1; }""",
        timeout=SLOW,
    )
    expect(card(page, "big.jpg").locator(".state")).to_contain_text("enhancing")
    shot(page, "in-progress")
    for name in ("big.jpg", "IMG_0001.HEIC"):
        expect(card(page, name)).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    expect(page.get_by_role("progressbar", name="Enhancing big.jpg")).to_be_hidden()
    expect(card(page, "big.jpg").locator(".ph-meta")).to_contain_text("1920×1440")
    expect(card(page, "IMG_0001.HEIC").locator(".ph-meta")).to_contain_text("480×640")  # upright, then 2x
    expect_compare_works(page, "IMG_0001.HEIC")  # the original shown through the server's PNG
    bid = page.evaluate("JSON.parse(localStorage.getItem('kadr.photos.batch')).id")
    assert batch(stack, bid)["params"]["upscale"] is None
