"""Event clips cut from the rings: a packet ring's clip is the camera's packets
remuxed (every decoded frame equals, bit for bit, a plain decode of the same
packets, which no re-encode could give), starts at a keyframe, covers the asked
seconds and keeps real time; a JPEG ring's clip is encoded once with one frame per
stored JPEG at its own time."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av")

from services.camera.clips import _to_annexb, annexb_parameter_sets, write_jpeg_clip, write_packet_clip  # noqa: E402
from services.camera.ring_buffer import CodecParams, JpegFrameRing, PacketRing, frame_to_bgr  # noqa: E402
from tests.unit.test_ring_buffer import brightness_frame, decode_all, encode, index_of  # noqa: E402

FPS = 25


def _read(path: str) -> tuple[av.video.stream.VideoStream, list[np.ndarray], list[float]]:
    with av.open(path) as c:
        s = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(s):
            frames.append(frame_to_bgr(f))
            times.append(float(f.pts * f.time_base))
        info = (c.format.name, s.codec_context.name, s.width, s.height, float(s.duration * s.time_base))
    return info, frames, times


def _filled_ring(packets, extradata=None, t0=1000.0) -> PacketRing:
    ring = PacketRing("h264", extradata, max_seconds=100, max_bytes=10**7)
    for i, (data, key) in enumerate(packets):
        ring.push(t0 + i / FPS, data, keyframe=key)
    return ring


@pytest.mark.parametrize("global_header", [False, True], ids=["inline-sps", "sdp-extradata"])
def test_packet_clip_is_the_cameras_packets_from_the_keyframe_before_the_start(tmp_path, global_header):
    packets, extradata = encode("libx264", n=100, global_header=global_header)
    ring = _filled_ring(packets, extradata)
    # 1.3 s before an event at frame 50 and 0.6 s after: frame 17.5 lies in the GOP at 10.
    params, clip = ring.clip_packets(1000 + 50 / FPS - 1.3, 1000 + 50 / FPS + 0.6)
    assert params == CodecParams("h264", extradata)
    assert [t for t, _ in clip] == [1000 + i / FPS for i in range(10, 66)]
    info = write_packet_clip(str(tmp_path / "c.mp4"), params, clip)
    assert (info.mode, info.frames, info.width, info.height) == ("copy", 56, 64, 48)
    (fmt, codec, w, h, duration), frames, times = _read(str(tmp_path / "c.mp4"))
    assert "mp4" in fmt and codec == "h264" and (w, h) == (64, 48)
    assert duration == pytest.approx(56 / FPS, abs=1e-3) == info.seconds
    assert times == pytest.approx([i / FPS for i in range(56)], abs=1e-3)
    reference = decode_all("h264", packets[10:66], extradata)
    assert len(frames) == 56 and all(np.array_equal(a, b) for a, b in zip(frames, reference))
    assert [index_of(f) for f in frames] == list(range(10, 66))


def test_mp4_style_extradata_and_length_prefixed_packets_are_unpacked(tmp_path):
    """A stream taken from an MP4 (avcC extradata, length-prefixed NAL units) clips too."""
    packets, _ = encode("libx264", n=30)
    src = tmp_path / "src.mp4"
    write_packet_clip(str(src), CodecParams("h264"), [(i / FPS, d) for i, (d, _) in enumerate(packets)])
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        avcc = bytes(s.codec_context.extradata)
        mp4_packets = [(bytes(p), bool(p.is_keyframe)) for p in c.demux(s) if p.size]
    assert avcc[0] == 1 and annexb_parameter_sets("h264", avcc).startswith(b"\0\0\0\1")
    assert _to_annexb(mp4_packets[1][0], 4) == packets[1][0]  # the very same NAL units
    ring = _filled_ring(mp4_packets, avcc)
    params, clip = ring.clip_packets(1000.0, 1000 + 29 / FPS)
    info = write_packet_clip(str(tmp_path / "again.mp4"), params, clip)
    _, frames, _ = _read(str(tmp_path / "again.mp4"))
    assert info.frames == len(frames) == 30
    assert all(np.array_equal(a, b) for a, b in zip(frames, decode_all("h264", packets)))


def test_a_clip_keeps_real_time_when_frames_arrive_unevenly(tmp_path):
    packets, _ = encode("libx264", n=40)
    ring = PacketRing("h264", max_seconds=100, max_bytes=10**7)
    arrival, t = [], 50.0
    for i, (data, key) in enumerate(packets):
        t += 0.04 if i % 10 else 0.5  # a stall before every keyframe
        ring.push(t, data, keyframe=key)
        arrival.append(t)
    params, clip = ring.clip_packets(arrival[0], arrival[-1])
    write_packet_clip(str(tmp_path / "c.mp4"), params, clip)
    _, _, times = _read(str(tmp_path / "c.mp4"))
    assert times == pytest.approx([a - arrival[0] for a in arrival], abs=1e-3)


def test_a_clip_never_joins_packets_of_two_codec_setups(tmp_path):
    a, _ = encode("libx264", n=20)
    b, _ = encode("libx264", n=20, w=96, h=64)
    ring = PacketRing("h264", max_seconds=100, max_bytes=10**7)
    for i, (data, key) in enumerate(a):
        ring.push(i / FPS, data, keyframe=key)
    ring.set_codec("h264")  # the camera reconnected at another size
    for i, (data, key) in enumerate(b):
        ring.push(1 + i / FPS, data, keyframe=key)
    params, clip = ring.clip_packets(0.0, 2.0)
    assert [t for t, _ in clip] == [1 + i / FPS for i in range(20)]
    info = write_packet_clip(str(tmp_path / "c.mp4"), params, clip)
    assert (info.width, info.height, info.frames) == (96, 64, 20)


def test_nothing_buffered_in_the_window_gives_no_packets():
    packets, _ = encode("libx264", n=20)
    ring = _filled_ring(packets)
    assert ring.clip_packets(2000.0, 2001.0) == (None, [])
    assert PacketRing("h264").clip_packets(0, 1) == (None, [])
    with pytest.raises(ValueError):
        write_packet_clip("/nonexistent/x.mp4", CodecParams("h264"), [])
    with pytest.raises(ValueError, match="H.264 or H.265"):
        write_packet_clip("/nonexistent/x.mp4", CodecParams("mjpeg"), [(0.0, b"x")])


def test_jpeg_clip_encodes_each_buffered_frame_at_its_time(tmp_path):
    ring = JpegFrameRing(max_seconds=100, max_bytes=10**8)
    for i in range(50):  # odd sides; grey 10 levels apart per frame, so lossy coding cannot mix them up
        ring.push(10 + i * 0.1, np.full((71, 99, 3), min(250, 10 * (i - 5)) if i >= 6 else 5, np.uint8))
    frames = ring.clip_frames(10 + 1.0, 10 + 3.0)
    assert [round(t, 6) for t, _ in frames] == [round(10 + i * 0.1, 6) for i in range(10, 31)]
    info = write_jpeg_clip(str(tmp_path / "c.mp4"), frames)
    assert (info.mode, info.codec, info.frames, info.width, info.height) == ("encoded", "h264", 21, 98, 70)
    (_, codec, w, h, duration), decoded, times = _read(str(tmp_path / "c.mp4"))
    assert (codec, w, h) == ("h264", 98, 70) and len(decoded) == 21
    assert duration == pytest.approx(2.1, abs=0.01) == info.seconds
    assert times == pytest.approx([i * 0.1 for i in range(21)], abs=1e-3)
    # Lossy twice (JPEG, H.264), but each frame is the one stored at that time.
    assert [round(f.mean() / 10) + 5 for f in decoded] == list(range(10, 31))


def test_jpeg_clip_skips_an_undecodable_frame_and_fails_on_none(tmp_path):
    good = cv2.imencode(".jpg", brightness_frame(3))[1].tobytes()
    info = write_jpeg_clip(str(tmp_path / "c.mp4"), [(0.0, good), (0.1, b"not a jpeg"), (0.2, good)])
    assert info.frames == 2
    with pytest.raises(ValueError, match="could be decoded"):
        write_jpeg_clip(str(tmp_path / "d.mp4"), [(0.0, b"junk")])


def test_clip_window_setting():
    from pydantic import ValidationError

    from services.contracts.settings import CameraConfig

    cam = dict(id="gate", secret="s" * 16)
    assert CameraConfig(**cam).clip_window() == (5.0, 3.0)
    assert CameraConfig(**cam, buffer_seconds=4).clip_window() == (1.0, 3.0)  # defaults shrink to fit
    assert CameraConfig(**cam, buffer_seconds=2, offsets=[1]).clip_window() == (0.0, 2.0)
    assert CameraConfig(**cam, clip_before_seconds=0, clip_after_seconds=0).clip_window() == (0.0, 0.0)
    with pytest.raises(ValidationError, match="must fit the 6.0 s buffer"):
        CameraConfig(**cam, buffer_seconds=6, clip_before_seconds=4)  # asked for: refused, not shrunk


def test_a_clip_waits_for_its_after_part_on_the_ring_not_on_a_clock():
    import threading

    ring = JpegFrameRing(max_seconds=10, max_bytes=10**7)
    frame = np.zeros((8, 8, 3), np.uint8)
    ring.push(1.0, frame)
    assert ring.wait_for_ts(1.0, timeout=0) is True
    assert ring.wait_for_ts(2.0, timeout=0.05) is False  # nothing newer: gives up at the timeout
    pusher = threading.Thread(target=lambda: [ring.push(1.0 + i / 10, frame) for i in range(1, 12)])
    pusher.start()
    assert ring.wait_for_ts(2.0, timeout=30) is True  # woken by the push, long before the timeout
    pusher.join()
    packets, _ = encode("libx264", n=3)
    pring = PacketRing("h264")
    assert pring.wait_for_ts(0.0, timeout=0) is False  # empty
    pring.push(0.5, packets[1][0], keyframe=False)  # undecodable, dropped, but its time was seen
    assert pring.wait_for_ts(0.5, timeout=0) is True
