"""services.media: strip-at-a-time writers, metadata carried from input to output,
HEIF/AVIF headers read without a codec."""

from __future__ import annotations

import io
import struct

import numpy as np
import pillow_heif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from services.media import heif, image_writer, images, writers
from services.media.metadata import PhotoMeta, from_pillow
from testbed.photos import icc_profile

DATE_TAKEN = "2019:07:14 18:03:22"


def photo(h, w, seed=0):
    """Blocky content with fine noise: compresses like a photo, not like noise or a flat fill."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = np.repeat(np.repeat(base, 8, 0), 8, 1)[:h, :w].astype(np.int16)
    return np.clip(img + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)


def exif_block(orientation=1) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    e[0x010F] = "KadrCam"
    e.get_ifd(0x8769)[0x9003] = DATE_TAKEN
    e.get_ifd(0x8769)[0xA002] = 10  # PixelXDimension: must become the output's
    return e.tobytes()


META = PhotoMeta(icc_profile=icc_profile(), exif=exif_block(), dpi=(300.0, 300.0))


def write(fmt, img, rows=97, meta=META, quality=95):
    out = io.BytesIO()
    w = writers.open_writer(fmt, out, img.shape[1], img.shape[0], meta, quality=quality)
    for y in range(0, img.shape[0], rows):
        w.write(img[y : y + rows])
    w.close()
    return out.getvalue()


# --------------------------------------------------------------------------- writers


@pytest.mark.parametrize("quality", [95, 80])
def test_joined_jpeg_strips_decode_to_the_one_shot_encode(monkeypatch, quality):
    monkeypatch.setattr(image_writer, "STRIP_BYTES", 200 * 300 * 3)  # many strips on a small picture
    img = photo(1001, 300)
    data = write("jpeg", img, meta=PhotoMeta(), quality=quality)
    one = io.BytesIO()
    Image.fromarray(img[..., ::-1]).save(
        one, "JPEG", quality=quality, subsampling="4:4:4" if quality >= 90 else "4:2:0"
    )
    joined = Image.open(io.BytesIO(data))
    assert joined.size == (300, 1001)
    assert np.array_equal(np.asarray(joined), np.asarray(Image.open(one)))
    assert data.count(b"\xff\xd7") >= 3  # several strips were joined, each after RST7


@pytest.mark.parametrize("fmt", ["png", "tiff", "bmp"])
@settings(max_examples=8, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), rows=st.integers(1, 40))
def test_lossless_writers_give_back_every_pixel(fmt, h, w, rows):
    img = photo(h, w, seed=h * 71 + w)
    assert np.array_equal(images.decode_bgr(write(fmt, img, rows=rows), max_pixels=10**6), img)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff", "webp"])
def test_the_output_keeps_the_profile_the_exif_and_the_dpi(fmt):
    img = photo(60, 80)
    im = Image.open(io.BytesIO(write(fmt, img)))
    assert im.info.get("icc_profile") == META.icc_profile
    exif = im.getexif()
    assert exif.get(0x010F) == "KadrCam"
    assert exif.get_ifd(0x8769).get(0x9003) == DATE_TAKEN
    assert exif.get_ifd(0x8769).get(0xA002) == 80
    if fmt != "webp":  # WebP has no resolution field
        assert [round(d) for d in im.info["dpi"]] == [300, 300]


def test_bmp_keeps_the_dpi_only():
    im = Image.open(io.BytesIO(write("bmp", photo(20, 30))))
    assert [round(d) for d in im.info["dpi"]] == [300, 300] and "icc_profile" not in im.info


def test_a_writer_refuses_missing_or_extra_rows():
    out = io.BytesIO()
    w = writers.open_writer("png", out, 10, 5)
    w.write(photo(3, 10))
    with pytest.raises(writers.WriterError, match="3 of 5 rows"):
        w.close()
    with pytest.raises(writers.WriterError, match="more than 5 rows"):
        w.write(photo(3, 10))
    with pytest.raises(writers.WriterError, match="shape"):
        w.write(photo(2, 11))


def test_format_side_limits_are_refused_up_front():
    with pytest.raises(writers.WriterError, match="16383"):
        writers.open_writer("webp", io.BytesIO(), 20_000, 10)
    with pytest.raises(writers.WriterError, match="65535"):
        writers.open_writer("jpeg", io.BytesIO(), 70_000, 10)


def test_an_exif_block_too_big_for_jpeg_loses_its_maker_note_first():
    e = Image.Exif()
    e.get_ifd(0x8769)[0x9003] = DATE_TAKEN
    e.get_ifd(0x8769)[0x927C] = b"\0" * 70_000  # a maker note past one APP1 segment
    meta = PhotoMeta(exif=e.tobytes())
    im = Image.open(io.BytesIO(write("jpeg", photo(16, 16), meta=meta)))
    sub = im.getexif().get_ifd(0x8769)
    assert sub.get(0x9003) == DATE_TAKEN and 0x927C not in sub


# --------------------------------------------------------------------------- metadata


def test_orientation_is_applied_to_the_pixels_and_reset_to_one():
    img = photo(40, 60)
    src = io.BytesIO()
    Image.fromarray(img[..., ::-1]).save(
        src, "JPEG", quality=95, exif=exif_block(orientation=6), icc_profile=META.icc_profile, dpi=(240, 240)
    )
    bgr, meta = images.decode_photo(src.getvalue(), max_pixels=10**6)
    assert bgr.shape == (60, 40, 3)  # turned upright
    out = Image.open(io.BytesIO(write("jpeg", bgr, meta=meta)))
    assert out.getexif().get(0x0112) == 1
    assert out.getexif().get_ifd(0x8769).get(0x9003) == DATE_TAKEN
    assert out.info["icc_profile"] == META.icc_profile and [round(d) for d in out.info["dpi"]] == [240, 240]


def test_damaged_exif_does_not_cost_the_photo():
    im = Image.new("RGB", (4, 4))
    im.info["exif"] = b"Exif\x00\x00MM\x00*garbage"
    meta = from_pillow(im)
    assert meta.exif is None


# --------------------------------------------------------------------------- HEIF / AVIF


def heic_bytes(img, orientation=1, **kw) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(img[..., ::-1])).save(out, quality=90, exif=exif_block(orientation), **kw)
    return out.getvalue()


def avif_bytes(img, orientation=1) -> bytes:
    out = io.BytesIO()
    Image.fromarray(img[..., ::-1]).save(out, "AVIF", quality=90, exif=exif_block(orientation))
    return out.getvalue()


@pytest.mark.parametrize("make", [heic_bytes, avif_bytes])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_heif_and_avif_are_read_upright_with_their_metadata(make, orientation):
    img = photo(48, 80)
    data = make(img, orientation)
    info = images.inspect_image(data, max_bytes=10**7, max_pixels=10**6)
    upright = (48, 80) if orientation in (1, 3) else (80, 48)
    assert (info.height, info.width) == upright
    bgr, meta = images.decode_photo(data, max_pixels=10**6)
    assert bgr.shape[:2] == upright
    # The same turn as Pillow gives the JPEG of the same picture and tag.
    ref = io.BytesIO()
    Image.fromarray(img[..., ::-1]).save(ref, "PNG", exif=exif_block(orientation))
    expected = images.decode_bgr(ref.getvalue(), max_pixels=10**6)
    assert np.abs(bgr.astype(int) - expected).mean() < 12  # lossy codecs, same orientation
    out = Image.open(io.BytesIO(write("jpeg", bgr, meta=meta)))
    assert out.getexif().get(0x0112, 1) == 1 and out.getexif().get_ifd(0x8769).get(0x9003) == DATE_TAKEN


def test_heif_brands_are_sniffed():
    assert images.sniff_format(heic_bytes(photo(16, 16))[:64]) == "heic"
    assert images.sniff_format(avif_bytes(photo(16, 16))[:64]) == "avif"
    assert images.sniff_format(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom") is None  # an MP4


def _patch_ispe(data: bytes, width: int, height: int) -> bytes:
    at = data.index(b"ispe")
    return data[: at + 8] + struct.pack(">II", width, height) + data[at + 16 :]


def test_a_heic_claiming_30000x30000_is_refused_from_its_header():
    data = _patch_ispe(heic_bytes(photo(64, 64)), 30000, 30000)
    assert heif.read_header(io.BytesIO(data)).width == 30000
    with pytest.raises(images.ImageError) as info:
        images.inspect_image(data, max_bytes=10**7, max_pixels=40_000_000)
    assert info.value.code == "too_many_pixels" and info.value.status == 413
    assert "30000x30000" in info.value.message
    with pytest.raises(images.ImageError) as info:
        images.decode_photo(data, max_pixels=40_000_000)
    assert info.value.code == "too_many_pixels"


@pytest.mark.parametrize("cut", [20, 60, 200])
def test_a_cut_heif_header_is_an_invalid_image(cut):
    data = heic_bytes(photo(32, 32))[:cut]
    with pytest.raises(images.ImageError) as info:
        images.inspect_image(data, max_bytes=10**7, max_pixels=10**6)
    assert info.value.code in ("invalid_image", "unsupported_format")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_the_heif_reader_never_fails_other_than_cleanly(junk):
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + junk
    try:
        heif.read_header(io.BytesIO(data))
    except heif.HeifHeaderError:
        pass
