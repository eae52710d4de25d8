"""Pure parts of the camera service: event analysis, the MJPEG parser, camera settings."""

from __future__ import annotations

import io

import cv2
import pytest
from pydantic import ValidationError

from services.camera.events import analyse, event_roi
from services.camera.sources import iter_mjpeg, source_mode
from services.contracts.settings import CameraConfig, CameraListSettings
from testbed.mjpeg_server import scene
from testbed.plates import scene_with_plate


def _no_plates(img, roi=None, max_plates=5):
    return []


def test_sharpest_offset_wins_and_missing_frames_are_reported():
    sharp = scene()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4)
    out = analyse(
        {"ts": 100.0},
        [2.0, 3.0, 4.0, 9.0],
        [(98.0, blurred), (97.0, sharp), (96.0, blurred.copy()), None],
        {},
        find_plates=_no_plates,
    )
    assert out.result["snow"]["offset"] == 3.0 and out.result["snow"]["ts"] == 97.0
    assert out.images["snow"] is sharp
    assert out.result["candidates"][3] == {"offset": 9.0, "asked_ts": 91.0, "missing": True}
    assert out.result["frames_found"] == 3


def test_roi_decides_sharpness_when_given():
    base = scene()
    left_sharp = base.copy()
    left_sharp[:, 160:] = cv2.GaussianBlur(base, (0, 0), 4)[:, 160:]
    right_sharp = base.copy()
    right_sharp[:, :160] = cv2.GaussianBlur(base, (0, 0), 4)[:, :160]
    lookups = [(1.0, left_sharp), (2.0, right_sharp)]
    params = {"ts": 5.0, "vehicle_box": [170, 0, 140, 240]}
    assert event_roi(params) == (170, 0, 140, 240)
    assert analyse(params, [4.0, 3.0], lookups, {}, find_plates=_no_plates).result["snow"]["offset"] == 3.0
    params["plate_box"] = [0, 0, 150, 240]  # the plate's box outranks the vehicle's
    assert analyse(params, [4.0, 3.0], lookups, {}, find_plates=_no_plates).result["snow"]["offset"] == 4.0
    # A box outside the frame falls back to the whole frame instead of failing.
    far = {"ts": 5.0, "plate_box": [1000, 1000, 10, 10]}
    assert analyse(far, [4.0, 3.0], lookups, {}, find_plates=_no_plates).result["candidates"][0]["roi"] is False


def test_uploads_stand_in_without_buffer_and_plates_are_cropped():
    img, (x, y, w, h) = scene_with_plate(480, 640, plate_width=200, seed=1)
    from services.camera.plates import find_plates

    out = analyse({"ts": 1.0}, [2.0], [None], {"overview": img}, find_plates=find_plates)
    assert out.result["snow"]["upload"] == "overview"
    plates = out.result["plates"]
    assert plates and plates[0]["source"] == "overview"
    crop = out.images["plate_0"]
    assert crop.shape[1] >= w and crop.shape[0] >= h


def _part(data: bytes, with_length: bool) -> bytes:
    head = b"--b\r\nContent-Type: image/jpeg\r\n"
    if with_length:
        head += f"Content-Length: {len(data)}\r\n".encode()
    return head + b"\r\n" + data + b"\r\n"


@pytest.mark.parametrize("with_length", [True, False])
def test_mjpeg_parts_are_split(with_length):
    frames = [bytes([0xFF, 0xD8]) + bytes([i]) * 50 + b"\n\r\n--x" + bytes([0xFF, 0xD9]) for i in range(3)]
    stream = io.BufferedReader(io.BytesIO(b"".join(_part(f, with_length) for f in frames) + b"--b--\r\n"))
    assert list(iter_mjpeg(stream, b"b")) == frames


def test_camera_settings():
    s = CameraListSettings(cameras=[{"id": "gate", "source": "rtsp://u:p@cam/1", "secret": "x" * 16}])
    cam = s.camera("gate")
    assert cam.offsets == [2.0, 3.0, 4.0] and cam.buffer_seconds == 10 and cam.auth == "hmac"
    assert "x" * 16 not in repr(s) and s.camera("nope") is None
    assert source_mode(cam.source) == "packets" and source_mode("http://cam/video.mjpg") == "mjpeg"
    assert source_mode("/data/clip.mp4") == "file"
    for bad in (
        {"id": "a b", "secret": "x" * 16},
        {"id": "events", "secret": "x" * 16},
        {"id": "g", "secret": "short"},
        {"id": "g", "secret": "x" * 16, "offsets": [12]},
        {"id": "g", "secret": "x" * 16, "auth": "basic"},
    ):
        with pytest.raises(ValidationError):
            CameraConfig(**bad)
    with pytest.raises(ValidationError):
        CameraListSettings(cameras=[{"id": "g", "secret": "x" * 16}, {"id": "g", "secret": "y" * 16}])


def _reader(cam, **kw):
    from services.camera.sources import SourceReader, make_ring

    ring = make_ring(cam)
    return SourceReader(cam, ring, **kw), ring


def test_file_source_plays_into_a_jpeg_ring(tmp_path):
    from testbed.stack import wait_for
    from testbed.synthetic_video import make_video, write_video

    path = write_video(make_video(10, 64, 96, seed=2).frames, tmp_path / "clip.mp4", fps=25)
    reader, ring = _reader(CameraConfig(id="demo", source=str(path), fps=25, secret="x" * 16))
    reader.start()
    try:
        wait_for(lambda: ring.stats()["frames"] >= 15, 10, "the clip to play (and loop) into the ring")
        h = reader.health()
        assert h["up"] and h["mode"] == "jpeg" and h["source_mode"] == "file"
        ts, frame = ring.nearest(h["newest_ts"])
        assert frame.shape == (64, 96, 3)
    finally:
        reader.stop()


def test_packet_mode_keeps_h264_packets(tmp_path):
    """What an RTSP camera gets, fed from an H.264 file (no RTSP server in tests)."""
    from services.camera.ring_buffer import PacketRing
    from services.camera.sources import SourceReader
    from testbed.stack import wait_for
    from testbed.synthetic_video import make_video, write_video

    path = write_video(make_video(12, 64, 96, seed=3).frames, tmp_path / "clip.mp4", fps=25)
    cam = CameraConfig(id="rtsp", source=str(path), secret="x" * 16)
    ring = PacketRing(max_seconds=10)
    reader = SourceReader(cam, ring, backoff_initial=0.05)
    reader.mode = "packets"
    reader.start()
    try:
        wait_for(lambda: ring.stats()["frames"] >= 12, 10, "packets in the ring")
        st = ring.stats()
        assert st["mode"] == "packets" and st["codec"] == "h264"
        got = ring.frames_at([0.0], st["newest_ts"])[0]
        assert got is not None and got[1].shape == (64, 96, 3)
    finally:
        reader.stop()


def test_unreachable_source_backs_off_and_reports_down():
    from testbed.stack import free_port, wait_for

    cam = CameraConfig(id="gone", source=f"http://127.0.0.1:{free_port()}/x.mjpg", secret="x" * 16)
    reader, ring = _reader(cam, timeout=1, backoff_initial=0.02, backoff_max=0.05)
    reader.start()
    try:
        wait_for(lambda: reader.reconnects >= 3, 10, "reconnect attempts")
        h = reader.health()
        assert h["up"] is False and h["frames"] == 0 and h["last_error"]
    finally:
        reader.stop()
