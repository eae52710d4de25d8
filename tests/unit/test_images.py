"""Upload validation and decoding against real files crafted here (Pillow, numpy, raw bytes)."""

from __future__ import annotations

import io
import pickle
import struct
import tempfile
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps

from services.media import images
from services.media.images import ImageError, decode_bgr, encode_image, inspect_image, sniff_format

MB = 1 << 20
LIMITS = {"max_bytes": 50 * MB, "max_pixels": 40_000_000}

RED_BGR = (0, 0, 255)
WHITE = (255, 255, 255)


# --------------------------------------------------------------------------- crafting


def save(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def raw_png(
    width: int,
    height: int,
    *,
    bit_depth: int,
    color_type: int,
    pixels: bytes | None = None,
    idat: bytes | None = None,
    after_idat: bytes = b"",
) -> bytes:
    """A PNG assembled byte by byte, for layouts Pillow cannot write (48/64-bit) or lies."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    if idat is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
        stride = width * channels * bit_depth // 8
        rows = [b"\x00" + pixels[y * stride : (y + 1) * stride] for y in range(height)]  # filter 0
        idat = zlib.compress(b"".join(rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + after_idat
        + png_chunk(b"IEND", b"")
    )


def samples16(*values: int) -> bytes:
    return struct.pack(f">{len(values)}H", *values)  # PNG samples are big-endian


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def marked_rgb(w: int = 40, h: int = 20) -> Image.Image:
    """Gray image with a red block in the stored top-left corner."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[:8, :8] = (255, 0, 0)
    return Image.fromarray(a)


def error_of(fn, *args, **kwargs) -> ImageError:
    with pytest.raises(ImageError) as info:
        fn(*args, **kwargs)
    return info.value


def assert_close(actual, expected, tol: int = 0):
    diff = np.abs(np.asarray(actual, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.max() <= tol, f"{actual} != {expected} (tolerance {tol})"


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


class Pipe:
    """A non-seekable stream (e.g. a socket or a pipe)."""

    def __init__(self, data: bytes):
        self._inner = io.BytesIO(data)

    def read(self, size=-1):
        return self._inner.read(size)

    def seekable(self):
        return False


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp", "tiff"])
def test_sniff_recognises_each_allowed_format_from_real_files(fmt):
    data = save(Image.new("RGB", (4, 4)), fmt.upper())
    assert sniff_format(data[:32]) == fmt


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8",
        b"hello world, definitely not a jpeg",
        b"GIF89a\x01\x00\x01\x00",
        b"II+\x00\x08\x00\x00\x00",  # GIF, BigTIFF: not allowed
        b"BMW service report 2024.........",
        b"RIFF\x10\x00\x00\x00WAVEfmt ",
    ],
)
def test_sniff_rejects_everything_else(head):
    assert sniff_format(head) is None


# --------------------------------------------------------------------------- basic refusals


@pytest.mark.parametrize("data", [b"", io.BytesIO(b"")])
def test_zero_bytes_is_empty_file(data):
    e = error_of(inspect_image, data, **LIMITS)
    assert (e.code, e.status) == ("empty_file", 400)
    assert error_of(decode_bgr, b"", max_pixels=100).code == "empty_file"


def test_text_file_renamed_jpg_is_unsupported_format():
    text = b"Dear customer,\nplease find the photo attached.\n" * 20
    with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
        f.write(text)
        f.flush()
        f.seek(0)
        e = error_of(inspect_image, f, **LIMITS)
    assert (e.code, e.status) == ("unsupported_format", 415)
    assert error_of(decode_bgr, text, max_pixels=10**6).code == "unsupported_format"


def test_real_image_in_a_format_outside_the_allowlist_is_unsupported():
    gif = save(Image.new("P", (8, 8)), "GIF")
    assert error_of(inspect_image, gif, **LIMITS).status == 415


@pytest.mark.parametrize("wrap", [bytes, io.BytesIO, Pipe], ids=["bytes", "stream", "pipe"])
def test_over_max_bytes_is_file_too_large(wrap):
    data = save(Image.fromarray(noise(64, 64)), "PNG")
    e = error_of(inspect_image, wrap(data), max_bytes=len(data) - 1, max_pixels=10**6)
    assert (e.code, e.status) == ("file_too_large", 413)
    assert inspect_image(wrap(data), max_bytes=len(data), max_pixels=10**6).size_bytes == len(data)


# --------------------------------------------------------------------------- decompression bombs


def bomb_png(width=20000, height=20000) -> bytes:
    # The IDAT is garbage: had anything tried to decode it, the answer would be
    # invalid_image, not too_many_pixels.
    return raw_png(width, height, bit_depth=8, color_type=6, idat=b"\x00garbage" * 8)


def test_png_claiming_20000x20000_is_refused_from_its_header(monkeypatch):
    # With Pillow's own bomb limit switched off, ours is the only protection left.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    data = bomb_png()
    tracemalloc.start()
    try:
        e = error_of(inspect_image, io.BytesIO(data), **LIMITS)
        e2 = error_of(decode_bgr, data, max_pixels=LIMITS["max_pixels"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (e.code, e.status) == ("too_many_pixels", 413)
    assert e2.code == "too_many_pixels"
    assert "20000x20000" in e.message
    assert peak < 1 * MB  # 20000x20000 RGBA would be 1.6 GB


def _patch_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", h, w) + data[sof + 9 :]


def _patch_bmp_size(data: bytes, w: int, h: int) -> bytes:
    return data[:18] + struct.pack("<ii", w, h) + data[26:]


def _patch_tiff_size(data: bytes, w: int, h: int) -> bytes:
    out = bytearray(data)
    ifd = struct.unpack_from("<I", out, 4)[0]
    for i in range(struct.unpack_from("<H", out, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, typ = struct.unpack_from("<HH", out, entry)
        if tag in (256, 257):
            struct.pack_into("<H" if typ == 3 else "<I", out, entry + 8, w if tag == 256 else h)
    return bytes(out)


def _patch_webp_size(data: bytes, w: int, h: int) -> bytes:
    assert data[12:16] == b"VP8X"
    return data[:24] + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little") + data[30:]


def _lying_header(fmt: str) -> bytes:
    im = Image.new("RGB", (16, 16), (10, 20, 30))
    if fmt == "png":
        return bomb_png(60000, 60000)
    if fmt == "jpeg":
        return _patch_jpeg_size(save(im, "JPEG"), 65000, 65000)
    if fmt == "bmp":
        return _patch_bmp_size(save(im, "BMP"), 60000, 60000)
    if fmt == "tiff":
        return _patch_tiff_size(save(im, "TIFF"), 65000, 65000)
    return _patch_webp_size(save(im, "WEBP", exif=exif_bytes(1)), 16384, 16384)  # VP8X


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp", "tiff"])
def test_every_format_is_checked_against_max_pixels_from_the_header(fmt, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    data = _lying_header(fmt)
    assert sniff_format(data) == fmt
    assert error_of(inspect_image, data, **LIMITS).code == "too_many_pixels"
    assert error_of(decode_bgr, data, max_pixels=LIMITS["max_pixels"]).code == "too_many_pixels"


def test_our_limit_not_pillows_decides():
    # 96 Mpx is past Pillow's default warning threshold (89 Mpx): an operator who
    # allows it must get the image, with no DecompressionBombWarning on the way.
    data = bomb_png(12000, 8000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = inspect_image(data, max_bytes=MB, max_pixels=100_000_000)
    assert (info.width, info.height) == (12000, 8000)
    assert error_of(inspect_image, data, max_bytes=MB, max_pixels=95_999_999).code == "too_many_pixels"


def test_pillow_globals_are_left_alone():
    before = Image.MAX_IMAGE_PIXELS
    data = save(Image.fromarray(noise(8, 8)), "PNG")
    inspect_image(data, **LIMITS)
    decode_bgr(data, max_pixels=100)
    assert Image.MAX_IMAGE_PIXELS == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --------------------------------------------------------------------------- truncation


def _truncated(fmt: str) -> bytes:
    data = save(Image.fromarray(noise(128, 128)), fmt.upper())
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp", "tiff"])
@pytest.mark.parametrize("load_truncated", [False, True], ids=["default", "flag-set-by-someone-else"])
def test_truncated_file_is_invalid_image(fmt, load_truncated, monkeypatch):
    # Some ML libraries set LOAD_TRUNCATED_IMAGES = True at import; a half-grey
    # "decoded" photo must still be refused.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    e = error_of(decode_bgr, _truncated(fmt), max_pixels=10**6)
    assert (e.code, e.status) == ("invalid_image", 400)


@pytest.mark.parametrize("load_truncated", [False, True], ids=["default", "flag-set-by-someone-else"])
def test_png_missing_only_its_iend_chunk_still_decodes(load_truncated, monkeypatch):
    # Every pixel is there; Pillow and browsers accept it, and so do we, either way.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    a = noise(8, 8)
    data = encode_image(a, "png")
    assert data.endswith(png_chunk(b"IEND", b""))
    assert decode_bgr(data[:-12], max_pixels=100).tolist() == a.tolist()


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp"])
def test_inspect_finds_a_body_cut_short_from_the_structure_and_decode_still_would(fmt):
    data = _truncated(fmt)
    assert error_of(inspect_image, data, **LIMITS).code == "invalid_image"
    assert error_of(decode_bgr, data, max_pixels=10**6).code == "invalid_image"


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp", "tiff"])
def test_file_cut_inside_its_header_is_invalid_image(fmt):
    data = save(Image.new("RGB", (16, 16)), fmt.upper(), **({"exif": exif_bytes(1)} if fmt != "bmp" else {}))
    e = error_of(inspect_image, data[:20], **LIMITS)
    assert e.code == "invalid_image"


# --------------------------------------------------------------------------- pixel layouts


def test_cmyk_jpeg_with_adobe_inverted_storage_comes_out_rgb():
    im = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # pure red in CMYK
    data = save(im, "JPEG", quality=95)
    assert b"Adobe" in data  # libjpeg stores CMYK inverted and marks it with APP14 "Adobe"
    assert inspect_image(data, **LIMITS).mode == "CMYK"
    out = decode_bgr(data, max_pixels=10**6)
    assert out.shape == (16, 32, 3)
    assert_close(out[8, 16], RED_BGR, tol=3)


def test_16bit_grayscale_png_is_scaled_not_clipped():
    g = np.array([[0, 32768, 65535, 255, 256, 65280]], dtype=np.uint16)
    data = save(Image.fromarray(g), "PNG")
    assert data[24] == 16  # IHDR bit depth: really a 16-bit file
    assert inspect_image(data, **LIMITS).mode == "I;16"
    out = decode_bgr(data, max_pixels=100)
    assert out[0, :, 0].tolist() == [0, 128, 255, 0, 1, 255]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_16bit_rgb_png_is_scaled_per_channel():
    pixels = samples16(65535, 32768, 0) + samples16(0, 65535, 32768)  # 2x1, 48-bit
    data = raw_png(2, 1, bit_depth=16, color_type=2, pixels=pixels)
    out = decode_bgr(data, max_pixels=100)
    assert out.tolist() == [[[0, 128, 255], [128, 255, 0]]]


def test_64bit_rgba_png_alpha_is_composited_over_white():
    opaque_red = samples16(65535, 0, 0, 65535)
    transparent_black = samples16(0, 0, 0, 0)
    data = raw_png(2, 1, bit_depth=16, color_type=6, pixels=opaque_red + transparent_black)
    out = decode_bgr(data, max_pixels=100)
    assert out.tolist() == [[list(RED_BGR), list(WHITE)]]


def test_palette_png_with_transparency():
    im = Image.new("P", (3, 1))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putdata([0, 1, 2])
    data = save(im, "PNG", transparency=bytes([0, 255, 128]))  # tRNS: clear, opaque, half
    assert inspect_image(data, **LIMITS).mode == "P"
    out = decode_bgr(data, max_pixels=100)
    assert out[0, 0].tolist() == list(WHITE)
    assert out[0, 1].tolist() == list(RED_BGR)
    assert_close(out[0, 2], (255, 127, 127), tol=1)  # half blue over white


def test_rgba_png_transparent_pixels_become_white_not_their_hidden_colour():
    a = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    data = save(Image.fromarray(a), "PNG")
    out = decode_bgr(data, max_pixels=100)
    assert out[0, 0].tolist() == list(WHITE)  # hidden red must not show
    assert out[0, 1].tolist() == [255, 0, 0]
    assert_close(out[0, 2], (127, 127, 127), tol=1)


@pytest.mark.parametrize(
    "mode,fmt", [("L", "JPEG"), ("L", "PNG"), ("LA", "PNG"), ("1", "PNG"), ("1", "BMP"), ("P", "BMP"), ("L", "TIFF")]
)
def test_grayscale_like_modes_give_three_equal_channels(mode, fmt):
    a = np.zeros((10, 20), np.uint8)
    a[:, 10:] = 255
    im = Image.fromarray(a).convert(mode)
    out = decode_bgr(save(im, fmt), max_pixels=1000)
    assert out.shape == (10, 20, 3)
    assert_close(out[5, 2], (0, 0, 0), tol=2)
    assert_close(out[5, 17], WHITE, tol=2)


def test_grayscale_jpeg():
    data = save(Image.new("L", (30, 10), 200), "JPEG")
    info = inspect_image(data, **LIMITS)
    assert (info.format, info.mode, info.width, info.height) == ("jpeg", "L", 30, 10)
    assert_close(decode_bgr(data, max_pixels=1000)[5, 5], (200, 200, 200), tol=1)


def test_webp_lossless_lossy_and_alpha():
    a = noise(12, 20)
    lossless = save(Image.fromarray(a), "WEBP", lossless=True)
    assert decode_bgr(lossless, max_pixels=1000).tolist() == a[..., ::-1].tolist()

    lossy = save(Image.new("RGB", (20, 12), (255, 0, 0)), "WEBP", quality=90)
    assert lossy[12:16] == b"VP8 "
    assert_close(decode_bgr(lossy, max_pixels=1000)[6, 10], RED_BGR, tol=8)

    rgba = np.zeros((12, 20, 4), np.uint8)
    rgba[:, :10] = (0, 255, 0, 255)
    with_alpha = save(Image.fromarray(rgba), "WEBP", lossless=True)
    out = decode_bgr(with_alpha, max_pixels=1000)
    assert out[6, 2].tolist() == [0, 255, 0]
    assert out[6, 15].tolist() == list(WHITE)


@pytest.mark.parametrize(
    "options", [{"lossless": True}, {"quality": 80}, {"exif": exif_bytes(1)}], ids=["VP8L", "VP8", "VP8X"]
)
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_webp_header_parse_agrees_with_pillow(mode, options):
    im = Image.fromarray(noise(9, 13)).convert(mode)
    if mode == "RGBA":
        im.putalpha(128)
    data = save(im, "WEBP", **options)
    info = inspect_image(data, **LIMITS)
    with Image.open(io.BytesIO(data)) as ref:
        assert (info.width, info.height, info.mode) == (ref.width, ref.height, ref.mode)


@pytest.mark.parametrize("options", [{}, {"compression": "tiff_lzw"}, {"compression": "tiff_adobe_deflate"}])
def test_tiff_plain_and_compressed(options):
    a = noise(10, 14, seed=3)
    data = save(Image.fromarray(a), "TIFF", **options)
    assert decode_bgr(data, max_pixels=1000).tolist() == a[..., ::-1].tolist()


def test_bmp():
    a = noise(7, 5, seed=4)  # odd width: BMP rows are padded to 4 bytes
    data = save(Image.fromarray(a), "BMP")
    assert inspect_image(data, **LIMITS).format == "bmp"
    assert decode_bgr(data, max_pixels=1000).tolist() == a[..., ::-1].tolist()


# --------------------------------------------------------------------------- orientation


def test_exif_rotated_jpeg_comes_out_upright():
    # Orientation 6: the camera was turned clockwise; the stored 40x20 picture is shown
    # rotated 90 degrees clockwise, so the stored top-left corner ends up top-right.
    data = save(marked_rgb(40, 20), "JPEG", quality=95, exif=exif_bytes(6))
    info = inspect_image(data, **LIMITS)
    assert (info.width, info.height) == (20, 40)
    out = decode_bgr(data, max_pixels=10**4)
    assert out.shape == (40, 20, 3)
    assert_close(out[3, 16], RED_BGR, tol=10)  # top-right is red
    for corner in (out[3, 3], out[36, 3], out[36, 16]):
        assert_close(corner, (128, 128, 128), tol=10)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pillows_exif_transpose(orientation):
    data = save(Image.fromarray(noise(6, 10, seed=orientation)), "PNG", exif=exif_bytes(orientation))
    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))[..., ::-1]
    out = decode_bgr(data, max_pixels=100)
    assert out.tolist() == expected.tolist()
    info = inspect_image(data, **LIMITS)
    assert (info.height, info.width) == out.shape[:2]


def test_png_exif_after_the_pixel_data_is_seen_by_inspect_and_decode_alike():
    a = noise(4, 9)
    plain = save(Image.fromarray(a), "PNG")
    iend = plain.rindex(b"IEND") - 4
    exif = exif_bytes(8)[6:] if exif_bytes(8).startswith(b"Exif") else exif_bytes(8)
    data = plain[:iend] + png_chunk(b"eXIf", exif) + plain[iend:]
    info = inspect_image(data, **LIMITS)
    out = decode_bgr(data, max_pixels=100)
    assert (info.width, info.height) == (4, 9)
    assert out.tolist() == np.rot90(a, 1)[..., ::-1].tolist()


def test_webp_exif_orientation():
    data = save(marked_rgb(40, 20), "WEBP", lossless=True, exif=exif_bytes(6))
    info = inspect_image(data, **LIMITS)
    assert (info.width, info.height) == (20, 40)
    out = decode_bgr(data, max_pixels=10**4)
    assert out[3, 16].tolist() == list(RED_BGR)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_does_not_reject_the_photo():
    data = save(Image.new("RGB", (8, 4)), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f garbage")
    assert inspect_image(data, **LIMITS).width == 8
    assert decode_bgr(data, max_pixels=100).shape == (4, 8, 3)


# --------------------------------------------------------------------------- streams


def test_inspect_reads_a_stream_about_once_and_rewinds_it():
    """The header, then one pass over the structure (chunk CRCs, the end marker:
    media/completeness.py), nothing decoded."""
    data = save(Image.fromarray(noise(600, 600)), "PNG")
    assert len(data) > MB
    stream = CountingStream(data)
    stream.seek(1234)  # wherever the caller left it, the image starts at 0
    info = inspect_image(stream, **LIMITS)
    assert (info.format, info.width, info.size_bytes) == ("png", 600, len(data))
    assert stream.bytes_read < len(data) + 64 * 1024
    assert stream.tell() == 0


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp", "tiff"])
def test_spooled_upload_on_disk_is_decoded_and_left_open_at_zero(fmt):
    # werkzeug spools uploads to a real temporary file past a size; libtiff in
    # particular likes to read straight from a file descriptor.
    a = noise(40, 30, seed=9)
    data = encode_image(a, fmt)
    with tempfile.SpooledTemporaryFile(max_size=64) as f:
        f.write(data)
        assert f._rolled  # really on disk
        info = inspect_image(f, **LIMITS)
        assert f.tell() == 0
        out = decode_bgr(f, max_pixels=10**4)
        assert f.tell() == 0 and not f.closed
        assert f.read() == data
    assert info.format == fmt and out.shape == (40, 30, 3)


def test_non_seekable_stream_is_decoded():
    data = encode_image(noise(5, 6), "png")
    assert decode_bgr(Pipe(data), max_pixels=100).shape == (5, 6, 3)


# --------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("fmt,tol", [("png", 0), ("bmp", 0), ("tiff", 0), ("jpeg", 12), ("webp", 12)])
def test_encode_round_trip(fmt, tol):
    a = np.zeros((24, 32, 3), np.uint8)
    a[:, :16] = (255, 0, 0)  # blue in BGR
    a[:, 16:] = (0, 200, 100)
    data = encode_image(a, fmt, quality=95)
    assert sniff_format(data) == fmt
    info = inspect_image(data, **LIMITS)
    assert (info.mime, info.extension) == (images.FORMAT_MIME[fmt], images.FORMAT_EXTENSION[fmt])
    out = decode_bgr(data, max_pixels=10**4)
    assert_close(out[12, 4], a[12, 4], tol)
    assert_close(out[12, 28], a[12, 28], tol)


def test_encode_quality_matters_for_jpeg():
    a = noise(64, 64)
    assert len(encode_image(a, "jpeg", quality=30)) < len(encode_image(a, "jpeg", quality=95))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((0, 4, 3), np.uint8),
    ],
)
def test_encode_rejects_non_bgr_arrays(bad):
    with pytest.raises(ValueError):
        encode_image(bad, "png")


def test_encode_rejects_unknown_format_and_bad_quality():
    a = noise(2, 2)
    with pytest.raises(ValueError):
        encode_image(a, "gif")
    with pytest.raises(ValueError):
        encode_image(a, "jpeg", quality=0)


def test_format_maps_cover_the_same_formats():
    assert (
        set(images.FORMAT_MIME)
        == set(images.FORMAT_EXTENSION)
        == {"jpeg", "png", "webp", "bmp", "tiff", "heic", "avif"}
    )
    assert set(images.OUTPUT_FORMATS) == {"jpeg", "png", "webp", "bmp", "tiff"}
    assert not any(ext.startswith(".") for ext in images.FORMAT_EXTENSION.values())


# --------------------------------------------------------------------------- errors


def test_image_error_carries_code_status_and_survives_pickling():
    e = ImageError("too_many_pixels", "too big")
    assert (e.code, e.message, e.status, str(e)) == ("too_many_pixels", "too big", 413, "too big")
    clone = pickle.loads(pickle.dumps(e))
    assert (clone.code, clone.message, clone.status) == (e.code, e.message, e.status)


def test_decoded_array_is_independent_and_writable():
    out = decode_bgr(encode_image(noise(3, 3), "png"), max_pixels=100)
    assert out.flags.c_contiguous and out.flags.writeable and out.flags.owndata
    assert out.dtype == np.uint8


# --------------------------------------------------------------------------- fuzzing

_SEEDS = {
    "jpeg": save(Image.fromarray(noise(16, 16)), "JPEG", exif=exif_bytes(6)),
    "png": save(Image.fromarray(noise(16, 16)).convert("P"), "PNG", transparency=3),
    "webp": save(Image.fromarray(noise(16, 16)), "WEBP", exif=exif_bytes(3)),
    "bmp": save(Image.fromarray(noise(16, 16)), "BMP"),
    "tiff": save(Image.fromarray(noise(16, 16)), "TIFF", compression="tiff_lzw"),
}


@st.composite
def damaged_files(draw):
    data = bytearray(_SEEDS[draw(st.sampled_from(sorted(_SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(1, len(data))) :]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_files())
def test_damaged_files_give_an_image_or_an_image_error_never_anything_else(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; not our concern here
        for call in (
            lambda: inspect_image(data, max_bytes=MB, max_pixels=10**5),
            lambda: decode_bgr(data, max_pixels=10**5),
        ):
            try:
                result = call()
            except ImageError as e:
                assert e.status in (400, 413, 415)
                continue
            if isinstance(result, np.ndarray):
                assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3
