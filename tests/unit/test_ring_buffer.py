"""Pre-event rings: bounded by time and bytes, nothing lost uncounted, and a lookup
returns the frame nearest the asked time, decoded correctly.

The packet ring is fed a real H.264 stream (64x48, GOP 10, libx264 zerolatency)
encoded once per session. Frame i has mean brightness 40 + 3·i, so a decoded frame
tells which one it is within codec error; it must also equal, bit for bit, the
frame a plain sequential decode of the whole stream produces.
"""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

av = pytest.importorskip("av")

from services.camera import ring_buffer  # noqa: E402
from services.camera.ring_buffer import ENTRY_OVERHEAD_BYTES, JpegFrameRing, PacketRing, nearest_index  # noqa: E402

W, H, GOP, N = 64, 48, 10, 60


def brightness_frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    """Mean 40 + 3·i, with a fixed texture so the encoder has real work to do."""
    yy, xx = np.mgrid[0:h, 0:w]
    texture = ((xx // 8 + yy // 8) % 2) * 16 - 8  # zero-mean checkerboard
    return np.clip(40 + 3 * i + texture, 0, 255).astype(np.uint8)[..., None].repeat(3, 2)


# Colour conversion and quantisation darken these flat grey frames by 1-3 levels
# through H.264 (JPEG: under 1); centring on that keeps a frame within ±1.5 of its step.
CODEC_BIAS = -2.0


def index_of(frame: np.ndarray, bias: float = CODEC_BIAS) -> int:
    return round((float(frame.mean()) - 40 - bias) / 3)


def encode(
    codec: str,
    n: int = N,
    gop: int = GOP,
    w: int = W,
    h: int = H,
    global_header: bool = False,
    options: dict | None = None,
):
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
    ctx.gop_size = gop
    ctx.options = options or {"tune": "zerolatency", "preset": "ultrafast"}
    if global_header:  # parameter sets only in extradata, as MP4 / RTSP SDP deliver them
        ctx.flags |= av.codec.context.Flags.global_header
    packets = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(brightness_frame(i, w, h), format="bgr24")
        frame.pts = i
        packets += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    packets += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(None)]
    return packets, ctx.extradata


def decode_all(codec: str, packets, extradata=None) -> list[np.ndarray]:
    ctx = av.CodecContext.create(codec, "r")
    if extradata:
        ctx.extradata = extradata
    out = []  # converted the ring's way, so a lookup must match bit for bit
    for data, _ in packets:
        out += [ring_buffer.frame_to_bgr(f) for f in ctx.decode(av.Packet(data))]
    out += [ring_buffer.frame_to_bgr(f) for f in ctx.decode(None)]
    return out


class Stream(tuple):
    """(packets, reference frames), with a short repr for hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"<H.264 stream: {len(self[0])} packets, GOP {GOP}, {W}x{H}>"


@pytest.fixture(scope="session")
def h264():
    packets, _ = encode("libx264")
    assert len(packets) == N and [k for _, k in packets] == [i % GOP == 0 for i in range(N)]
    reference = decode_all("h264", packets)
    assert [index_of(f) for f in reference] == list(range(N))
    return Stream((packets, reference))


# --- hypothesis invariants -------------------------------------------------------

steps = st.lists(st.floats(0.01, 1.5, allow_nan=False), min_size=1, max_size=60)


def check_common(ring, pushed_ts: list[float]) -> None:
    s = ring.stats()
    assert s["bytes"] <= ring.max_bytes
    assert s["dropped_total"] == s["pushed_total"] - s["frames"] == len(pushed_ts) - s["frames"]
    held = ring.timestamps()
    assert all(a < b for a, b in zip(held, held[1:]))
    assert all(pushed_ts[-1] - t <= ring.max_seconds + 1e-6 for t in held)
    # Oldest go first: what a lookup can reach is always the newest pushes, in order...
    assert held == pushed_ts[len(pushed_ts) - len(held) :]
    if s["dropped_budget_total"] == s["dropped_undecodable_total"] == 0:
        # ...and while the budget suffices, it is the whole window.
        assert held == [t for t in pushed_ts if t >= pushed_ts[-1] - ring.max_seconds - 1e-6]
    if held:
        assert (s["oldest_ts"], s["newest_ts"]) == (held[0], held[-1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=steps,
    max_seconds=st.floats(0.2, 6.0),
    max_bytes=st.one_of(st.integers(300, 20_000), st.just(10**6)),
    queries=st.lists(st.floats(-2, 70), min_size=1, max_size=4),
    data=st.data(),
)
def test_jpeg_ring_invariants(steps, max_seconds, max_bytes, queries, data):
    ring = JpegFrameRing(max_seconds=max_seconds, max_bytes=max_bytes, quality=95)
    pushed: list[float] = []
    index: dict[float, int] = {}
    t = 0.0
    for i, dt in enumerate(steps):
        t += dt
        size = data.draw(st.sampled_from([(16, 16), (32, 48), (48, 64)]))
        ring.push(t, brightness_frame(i, size[1], size[0]))
        pushed.append(t)
        index[t] = i
        check_common(ring, pushed)
    held = ring.timestamps()
    for q in queries:
        got = ring.nearest(q)
        if not held:
            assert got is None
            continue
        best = min(held, key=lambda h: (abs(h - q), h))  # ties: the earlier frame
        assert got[0] == best
        assert index_of(got[1], bias=0.0) == index[best]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.floats(0.01, 1.0), min_size=12, max_size=N),
    max_seconds=st.floats(0.2, 6.0),
    max_bytes=st.one_of(st.integers(200, 20_000), st.just(10**6)),
    queries=st.lists(st.floats(-2, 70), min_size=1, max_size=3),
)
def test_packet_ring_invariants(h264, steps, max_seconds, max_bytes, queries):
    packets, reference = h264
    ring = PacketRing("h264", max_seconds=max_seconds, max_bytes=max_bytes)
    pushed: list[float] = []
    index: dict[float, int] = {}
    held_packets: list[int] = []  # model of what the ring holds, by packet index
    t = 0.0
    for i, dt in enumerate(steps):
        t += dt
        data, key = packets[i]
        ring.push(t, data, keyframe=key)
        pushed.append(t)
        index[t] = i
        check_common(ring, pushed)
        s = ring.stats()
        # Held packets are a suffix of the pushes that starts at a keyframe...
        held_packets = list(range(i + 1 - s["frames"], i + 1))
        assert not held_packets or packets[held_packets[0]][1]
        assert s["bytes"] == sum(len(packets[j][0]) + ENTRY_OVERHEAD_BYTES for j in held_packets)
        # ...and older than the window only as lead-in: the window start still needs it.
        cutoff = t - max_seconds - 1e-6
        lead = [j for j in held_packets if pushed[j] < cutoff]
        assert len(lead) == s["lead_in_frames"]
        assert all(not packets[j][1] for j in lead[1:]), "a whole GOP before the window was kept"
        assert not lead or pushed[lead[-1] + 1] >= cutoff
    held = ring.timestamps()
    for q in queries:
        got = ring.nearest(q)
        if not held:
            assert got is None
            continue
        best = min(held, key=lambda h: (abs(h - q), h))
        assert got[0] == best
        np.testing.assert_array_equal(got[1], reference[index[best]])


# --- packet ring: decoding -------------------------------------------------------


def fill(ring: PacketRing, packets, fps: float = 10.0, t0: float = 100.0) -> list[float]:
    ts = [t0 + i / fps for i in range(len(packets))]
    for t, (data, key) in zip(ts, packets):
        ring.push(t, data, keyframe=key)
    return ts


def test_packet_lookup_decodes_the_right_frame(h264):
    packets, reference = h264
    ring = PacketRing("h264", max_seconds=100, max_bytes=10**6)
    ts = fill(ring, packets)
    for i in range(N):
        got_ts, frame = ring.nearest(ts[i] + 0.03)  # nearer to i than to i + 1
        assert got_ts == ts[i]
        assert index_of(frame) == i
        np.testing.assert_array_equal(frame, reference[i])


def test_frames_at_decodes_each_gop_once(h264, monkeypatch):
    packets, reference = h264
    ring = PacketRing("h264", max_seconds=100, max_bytes=10**6)
    ts = fill(ring, packets, fps=10.0)  # GOP 10 = 1 s
    calls = []
    real = ring_buffer._decode_span

    def counting(span, wanted, threads=0):
        calls.append((len(span.data), sorted(wanted)))
        return real(span, wanted, threads)

    monkeypatch.setattr(ring_buffer, "_decode_span", counting)
    event = ts[-1]  # 5.9 s after the first frame
    got = ring.frames_at([0.5, 0.3, 2.0, 0.3], event)
    want = [54, 56, 39, 56]
    assert [index_of(f) for _, f in got] == want
    assert [t for t, _ in got] == [ts[i] for i in want]
    # GOP 50..59 decoded once up to packet 56 (both offsets), GOP 30..39 once up to 39.
    assert sorted(calls) == [(7, [4, 6]), (10, [9])]
    assert got[1][1] is not got[3][1]  # same frame twice: separate arrays


def test_lead_in_gop_is_kept_but_not_returned(h264):
    packets, reference = h264
    ring = PacketRing("h264", max_seconds=2.05, max_bytes=10**6)
    ts = fill(ring, packets[:35], fps=10.0)  # window from 101.35 s: frames 14..34, lead-in 10..13
    s = ring.stats()
    assert ring.timestamps() == ts[14:]
    assert s["frames"] == 25 and s["lead_in_frames"] == 4 and s["gops"] == 3
    got_ts, frame = ring.nearest(ts[0])  # asked before the window: its first frame
    assert got_ts == ts[14]
    np.testing.assert_array_equal(frame, reference[14])


def test_frames_at_tolerance_and_empty_ring(h264):
    packets, _ = h264
    ring = PacketRing("h264")
    assert ring.nearest(5.0) is None and ring.frames_at([2, 3], 5.0) == [None, None]
    ts = fill(ring, packets[:20], fps=10.0, t0=0.0)
    got = ring.frames_at([2.5, 0.5], ts[-1], tolerance=0.2)
    assert got[0] is None  # 0.6 s before the first frame
    assert got[1][0] == ts[14]


def test_budget_smaller_than_a_gop_waits_for_the_next_keyframe(h264):
    packets, _ = h264
    budget = sum(len(d) + ENTRY_OVERHEAD_BYTES for d, _ in packets[:6])
    ring = PacketRing("h264", max_seconds=100, max_bytes=budget)
    ts = fill(ring, packets[: GOP + 3])
    s = ring.stats()
    assert s["dropped_budget_total"] == 7  # the first GOP went whole when packet 6 overflowed...
    assert s["dropped_undecodable_total"] == 3  # ...so 7..9 had nothing to decode from
    assert s["frames"] == 3 and ring.timestamps() == ts[GOP:]


def test_packets_before_the_first_keyframe_are_dropped_and_counted(h264):
    packets, reference = h264
    ring = PacketRing("h264", max_seconds=100, max_bytes=10**6)
    fill(ring, packets[3:25], fps=10.0, t0=0.0)
    s = ring.stats()
    assert s["dropped_undecodable_total"] == GOP - 3 and s["frames"] == 15
    np.testing.assert_array_equal(ring.nearest(0.0)[1], reference[GOP])


def test_parameter_sets_in_extradata_only():
    packets, extradata = encode(
        "libx264", n=25, global_header=True, options={"tune": "zerolatency", "preset": "ultrafast"}
    )
    assert extradata, "encoder should have put SPS/PPS in extradata"
    ring = PacketRing("h264", extradata, max_seconds=100, max_bytes=10**6)
    ts = fill(ring, packets)
    assert index_of(ring.nearest(ts[17])[1]) == 17
    assert index_of(ring.nearest(ts[3])[1]) == 3


def test_set_codec_keeps_older_gops_decodable(h264):
    packets, _ = h264
    ring = PacketRing("h264", max_seconds=100, max_bytes=10**6)
    ts = fill(ring, packets[:20], fps=10.0, t0=0.0)
    bigger, extradata = encode("libx264", n=20, w=96, h=64, global_header=True)
    ring.set_codec("h264", extradata)
    ts2 = fill(ring, bigger, fps=10.0, t0=10.0)
    old, new = ring.frames_at([ts2[-1] - ts[15], 0.0], ts2[-1])
    assert old[1].shape == (H, W, 3) and index_of(old[1]) == 15
    assert new[1].shape == (64, 96, 3) and index_of(new[1]) == 19


def test_h265_stream():
    if "libx265" not in av.codecs_available:
        pytest.skip("PyAV build without libx265")
    packets, extradata = encode(
        "libx265", n=20, w=64, h=64, options={"preset": "ultrafast", "x265-params": "log-level=none:bframes=0"}
    )
    ring = PacketRing("hevc", extradata, max_seconds=100, max_bytes=10**6)
    ts = fill(ring, packets)
    for i in (0, 7, 13, 19):
        assert index_of(ring.nearest(ts[i])[1]) == i


def test_corrupt_packet_answers_with_the_newest_good_frame(h264):
    packets, _ = h264
    damaged = list(packets[:GOP])
    damaged[5] = (b"\x00\x00\x00\x01" + b"\xff" * 40, False)  # garbage where frame 5 was
    ring = PacketRing("h264", max_seconds=100, max_bytes=10**6)
    ts = fill(ring, damaged, fps=10.0, t0=0.0)
    got_ts, frame = ring.nearest(ts[5])
    assert got_ts <= ts[5]  # a frame at or before it, never a later one, with its own timestamp
    assert abs(index_of(frame) - 5) <= 1


# --- both rings ------------------------------------------------------------------


def test_jpeg_ring_round_trip_and_quality():
    levels = np.random.default_rng(0).integers(0, 8, (12, 16)) * 32
    img = np.kron(levels, np.ones((4, 4))).astype(np.uint8)[..., None].repeat(3, 2)  # 48x64 blocks
    sizes = {}
    for q in (50, 95):
        ring = JpegFrameRing(quality=q)
        ring.push(1.0, img)
        sizes[q] = ring.stats()["bytes"]
        ts, out = ring.nearest(1.0)
        assert ts == 1.0 and out.shape == img.shape
        assert np.abs(out.astype(int) - img).mean() < (12 if q == 50 else 4)
    assert sizes[50] < sizes[95]


@pytest.mark.parametrize("make", [lambda: JpegFrameRing(), lambda: PacketRing("h264")])
def test_timestamps_must_increase(make):
    ring = make()
    push = (
        (lambda t: ring.push(t, brightness_frame(0)))
        if isinstance(ring, JpegFrameRing)
        else (lambda t: ring.push(t, b"\x00", keyframe=True))
    )
    push(1.0)
    with pytest.raises(ValueError, match="increase"):
        push(1.0)
    with pytest.raises(ValueError, match="finite"):
        push(float("nan"))
    assert ring.stats()["pushed_total"] == 1


def test_nearest_index_ties_go_to_the_earlier_frame():
    assert nearest_index([], 1.0) is None
    assert nearest_index([1.0, 2.0], 1.5) == 0
    assert nearest_index([1.0, 2.0], 1.5000001) == 1
    assert nearest_index([1.0, 2.0], -5) == 0 and nearest_index([1.0, 2.0], 9) == 1


def test_stats_report_window_and_rate():
    ring = JpegFrameRing(max_seconds=2.0)
    for i in range(60):
        ring.push(i / 8, brightness_frame(i))  # exact in binary: the window edge is exact too
    s = ring.stats()
    assert s["frames"] == 17 and s["seconds_held"] == 2.0 and s["fps"] == 8.0
    assert s["dropped_age_total"] == 43 and s["dropped_budget_total"] == 0
    ring = JpegFrameRing(max_seconds=10.0)
    for i in range(275):
        ring.push(i / 25, brightness_frame(0))  # 10.96 - 10.0 rounds above 0.96
    assert ring.stats()["frames"] == 251


@pytest.mark.parametrize("kind", ["jpeg", "packets"])
def test_lookup_decodes_outside_the_lock(kind, h264, monkeypatch):
    """A slow decode must not stall the camera reader: push completes while a lookup
    is still decoding."""
    packets, _ = h264
    if kind == "jpeg":
        ring, name = JpegFrameRing(), "_decode_jpeg"
        ring.push(0.0, brightness_frame(0))
        push_next = lambda: ring.push(1.0, brightness_frame(1))  # noqa: E731
    else:
        ring, name = PacketRing("h264"), "_decode_span"
        ring.push(0.0, packets[0][0], keyframe=True)
        push_next = lambda: ring.push(1.0, packets[1][0], keyframe=False)  # noqa: E731
    entered, pushed = threading.Event(), threading.Event()
    seen = {}
    real = getattr(ring_buffer, name)

    def slow_decode(*args):
        entered.set()
        seen["push_done_during_decode"] = pushed.wait(timeout=10)
        return real(*args)

    monkeypatch.setattr(ring_buffer, name, slow_decode)
    reader = threading.Thread(target=lambda: seen.setdefault("got", ring.nearest(0.0)))
    reader.start()
    assert entered.wait(timeout=10)
    push_next()
    pushed.set()
    reader.join(timeout=10)
    assert seen["push_done_during_decode"] and seen["got"][0] == 0.0


@pytest.mark.parametrize("kind", ["jpeg", "packets"])
def test_concurrent_push_and_lookup(kind, h264):
    packets, reference = h264
    ring = JpegFrameRing(max_seconds=1.0) if kind == "jpeg" else PacketRing("h264", max_seconds=1.0)
    errors: list[BaseException] = []
    done = threading.Event()
    rounds = 3 * N

    def writer():
        try:
            for k in range(rounds):
                i = k % N
                if kind == "jpeg":
                    ring.push(k / 10, brightness_frame(i))
                else:
                    ring.push(k / 10, packets[i][0], keyframe=packets[i][1])
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            done.set()

    def reader():
        try:
            while not done.is_set():
                s = ring.stats()
                if s["newest_ts"] is None:
                    continue
                for got in ring.frames_at([0.0, 0.4, 0.9], s["newest_ts"]):
                    if got is not None:
                        ts, frame = got
                        k = round(ts * 10)
                        assert index_of(frame, 0.0 if kind == "jpeg" else CODEC_BIAS) == k % N
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors, errors[0]
    s = ring.stats()
    assert s["pushed_total"] == rounds and s["dropped_total"] == rounds - s["frames"]
