"""Camera pre-event buffer: memory per buffered second, CPU per camera, event latency.

For 720p and 1080p at 25 fps, a synthetic street scene (textured background, moving
vehicles with plates, falling snow, sensor noise) is encoded once with libx264 at a
typical camera setting (preset veryfast, tune zerolatency = no B-frames, constant
bitrate target 2 / 4 Mbit/s, GOP 2 s), as a raw Annex-B stream. Then, per mode:

- packets: the stream is demuxed (PyAV, as a source reading a camera would) and
  each packet pushed into a ``PacketRing``. The ring's own cost (push only) is
  timed separately from demuxing, since a real camera delivers packets ready-made.
- jpeg: the stream is demuxed and decoded (the worker must decode to get pixels)
  and each frame pushed into a ``JpegFrameRing`` (quality 90), which encodes it.

Memory: the ring's byte count after 11 s (a full 10 s window). CPU per camera:
process CPU time / stream duration (share of one core); cameras per core = 1 / share.
Event latency: ``frames_at([2, 3, 4], event)`` + ``pick_sharpest`` on whole frames,
for events spread over the last 6 s; packet mode also with a 1 s GOP. Event clip (5 s
before + 3 s after): packets remuxed against JPEG frames encoded, wall and CPU. Goals
(10 s of 1080p25): ≤ 100 MB as JPEG,
≤ 10 MB as packets, event p95 ≤ 250 ms. Raw BGR would be 1.56 GB (the origin's 3 s
of 720p raw: 243 MB).

Writes bench/results/camera_buffer.json. ``python -m bench.camera_buffer``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from services.camera.ring_buffer import JpegFrameRing, PacketRing, frame_to_bgr  # noqa: E402
from services.camera.sharpness import pick_sharpest  # noqa: E402
from testbed.plates import plate_image  # noqa: E402

FPS = 25
WINDOW_S = 10.0
OFFSETS = [2.0, 3.0, 4.0]
RESOLUTIONS = {"720p": (1280, 720, 2_000_000), "1080p": (1920, 1080, 4_000_000)}
GOALS_1080P = {"jpeg_bytes_10s": 100e6, "packet_bytes_10s": 10e6, "event_p95_s": 0.250}


class Scene:
    """A fixed camera over a street: static textured background, vehicles crossing at
    different speeds, snow falling, and a little sensor noise (what a camera's own
    denoiser leaves)."""

    def __init__(self, w: int, h: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.w, self.h = w, h
        coarse = rng.normal(0, 1, (h // 24 + 2, w // 24 + 2)).astype(np.float32)
        bg = 120 + cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[..., None] * 25
        bg = np.repeat(bg, 3, 2) + rng.normal(0, 6, (h, w, 3))
        horizon = int(h * 0.45)
        for _ in range(14):  # buildings with windows above the road
            x0, bw = int(rng.integers(0, w)), int(rng.integers(w // 14, w // 6))
            top = int(rng.integers(h // 20, horizon - h // 10))
            bg[top:horizon, x0 : x0 + bw] = rng.uniform(60, 200, 3)
            for wy in range(top + 8, horizon - 12, max(12, h // 40)):
                for wx in range(x0 + 6, x0 + bw - 10, max(14, w // 80)):
                    bg[wy : wy + h // 90, wx : wx + w // 160] = rng.uniform(20, 240)
        bg[horizon:] = bg[horizon:] * 0.45 + 45  # road
        for y in (int(h * 0.62), int(h * 0.82)):  # lane markings
            for x in range(0, w, w // 12):
                bg[y : y + h // 120 + 1, x : x + w // 24] = 230
        self.bg = np.clip(bg, 0, 255).astype(np.uint8)
        self.cars = []
        for k in range(3):
            cw, ch = int(w * rng.uniform(0.16, 0.24)), int(h * rng.uniform(0.14, 0.2))
            body = np.empty((ch, cw, 3), np.uint8)
            body[:] = rng.uniform(30, 220, 3)
            body[ch // 8 : ch // 2, cw // 8 : cw - cw // 8] = 40  # windscreen
            plate = plate_image(max(60, cw // 4), number=f"{'ABE'[k]}{123 + k * 111}KM")
            py, px = ch - plate.shape[0] - ch // 12, (cw - plate.shape[1]) // 2
            body[py : py + plate.shape[0], px : px + plate.shape[1]] = plate
            lane_y = int(h * (0.5 + 0.15 * k))
            self.cars.append((body, lane_y, rng.uniform(-0.35, 0.35) * w / FPS or 3.0, rng.uniform(0, w)))
        n_flakes = w * h // 4000
        self.flakes = np.column_stack([rng.uniform(0, w, n_flakes), rng.uniform(0, h, n_flakes)])
        self.flake_v = np.column_stack([rng.normal(0.3, 0.6, n_flakes), rng.uniform(1.5, 4.5, n_flakes)]) * h / 720
        noise = rng.normal(0, 2.0, (4, h, w, 3))
        self.noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self.noise_down = np.clip(-noise, 0, 255).astype(np.uint8)

    def frame(self, i: int) -> np.ndarray:
        img = self.bg.copy()
        for body, lane_y, speed, x0 in self.cars:
            ch, cw = body.shape[:2]
            span = self.w + cw
            x = int((x0 + speed * i) % span) - cw
            a, b = max(0, x), min(self.w, x + cw)
            if b > a:
                img[lane_y : lane_y + ch, a:b] = body[:, a - x : b - x][: self.h - lane_y]
        self.flakes = (self.flakes + self.flake_v) % (self.w, self.h)
        xs, ys = self.flakes[:, 0].astype(int), self.flakes[:, 1].astype(int)
        for dy in (0, 1):
            for dx in (0, 1):
                img[np.minimum(ys + dy, self.h - 1), np.minimum(xs + dx, self.w - 1)] = 235
        k = i % len(self.noise_up)
        cv2.add(img, self.noise_up[k], dst=img)
        cv2.subtract(img, self.noise_down[k], dst=img)
        return img


def encode_stream(w: int, h: int, bitrate: int, gop: int, n: int) -> tuple[bytes, float]:
    """The synthetic camera: returns (Annex-B H.264 stream, encoder CPU seconds)."""
    scene = Scene(w, h)
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, FPS), Fraction(FPS)
    ctx.gop_size = gop
    ctx.bit_rate = bitrate
    ctx.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
    }
    out = io.BytesIO()
    cpu = 0.0
    for i in range(n):
        img = scene.frame(i)
        t0 = time.process_time()
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = i
        for p in ctx.encode(frame):
            out.write(bytes(p))
        cpu += time.process_time() - t0
    for p in ctx.encode(None):
        out.write(bytes(p))
    return out.getvalue(), cpu


def demux(stream: bytes):
    container = av.open(io.BytesIO(stream), mode="r", format="h264")
    try:
        for pkt in container.demux(video=0):
            if pkt.size:
                yield pkt
    finally:
        container.close()


def fill_packet_ring(stream: bytes, n: int) -> tuple[PacketRing, dict]:
    ring = PacketRing("h264", max_seconds=WINDOW_S, max_bytes=2**31)
    c0, w0 = time.process_time(), time.perf_counter()
    packets = []
    for i, pkt in enumerate(demux(stream)):
        data, key = bytes(pkt), bool(pkt.is_keyframe)
        packets.append((data, key))
        ring.push(i / FPS, data, keyframe=key)
    demux_push_cpu = time.process_time() - c0
    wall = time.perf_counter() - w0
    # The ring alone, on packets already in hand (what a camera client delivers).
    alone = PacketRing("h264", max_seconds=WINDOW_S, max_bytes=2**31)
    c0 = time.process_time()
    for i, (data, key) in enumerate(packets):
        alone.push(i / FPS, data, keyframe=key)
    push_cpu = time.process_time() - c0
    assert len(packets) == n, (len(packets), n)
    seconds = n / FPS
    return ring, {
        "keyframes": sum(k for _, k in packets),
        "stream_bytes_per_second": sum(len(d) for d, _ in packets) / seconds,
        "cpu_share_push_only": push_cpu / seconds,
        "cpu_share_demux_and_push": demux_push_cpu / seconds,
        "push_us_per_packet": push_cpu / n * 1e6,
        "wall_s_demux_and_push": wall,
    }


def fill_jpeg_ring(stream: bytes, n: int, quality: int) -> tuple[JpegFrameRing, dict]:
    ring = JpegFrameRing(max_seconds=WINDOW_S, max_bytes=2**31, quality=quality)
    container = av.open(io.BytesIO(stream), mode="r", format="h264")
    decode_cpu = push_cpu = 0.0
    i = 0
    try:
        frames = container.decode(video=0)
        while True:
            c0 = time.process_time()
            frame = next(frames, None)
            if frame is None:
                break
            img = frame_to_bgr(frame)
            c1 = time.process_time()
            ring.push(i / FPS, img)
            c2 = time.process_time()
            decode_cpu += c1 - c0
            push_cpu += c2 - c1
            i += 1
    finally:
        container.close()
    assert i == n, (i, n)
    seconds = n / FPS
    return ring, {
        "quality": quality,
        "cpu_share_encode_and_push": push_cpu / seconds,
        "cpu_share_camera_decode": decode_cpu / seconds,
        "cpu_share_total": (push_cpu + decode_cpu) / seconds,
        "encode_ms_per_frame": push_cpu / n * 1e3,
        "decode_ms_per_frame": decode_cpu / n * 1e3,
    }


def event_latency(ring, events: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    newest = ring.stats()["newest_ts"]
    times, cpu = [], []
    for ev in rng.uniform(newest - (WINDOW_S - max(OFFSETS)), newest, events):
        t0, c0 = time.perf_counter(), time.process_time()
        got = ring.frames_at(OFFSETS, float(ev))
        candidates = [g for g in got if g is not None]
        pick_sharpest(candidates)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert len(candidates) == len(OFFSETS)
    times.sort()
    # CPU seconds per event do not depend on what else the machine runs: with the
    # cores to spare, wall time falls towards CPU / parallelism.
    return {
        "events": events,
        "p50_s": statistics.median(times),
        "p95_s": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "max_s": times[-1],
        "cpu_s_per_event_mean": statistics.fmean(cpu),
    }


CLIP_S = (5.0, 3.0)  # a camera's default clip: seconds before and after the event


def clip_cost(pring, jring) -> dict:
    """An event clip cut at the end of the window: the packet ring's packets remuxed
    (no decode, no encode) against the JPEG ring's frames encoded to H.264 (CRF 23)."""
    import tempfile

    from services.camera.clips import write_jpeg_clip, write_packet_clip

    end = pring.stats()["newest_ts"]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kadr-clip-bench-") as tmp:
        for mode, cut in (
            ("copy", lambda path: write_packet_clip(path, *pring.clip_packets(end - sum(CLIP_S), end))),
            ("encoded", lambda path: write_jpeg_clip(path, jring.clip_frames(end - sum(CLIP_S), end))),
        ):
            path = os.path.join(tmp, f"{mode}.mp4")
            t0, c0 = time.perf_counter(), time.process_time()
            info = cut(path)
            out[mode] = {
                "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0,
                "bytes": os.path.getsize(path),
                "frames": info.frames,
                "seconds": info.seconds,
            }
    out["encoded_over_copy_cpu"] = out["encoded"]["cpu_s"] / max(out["copy"]["cpu_s"], 1e-9)
    return out


def memory(ring) -> dict:
    s = ring.stats()
    held_s = s["frames"] / FPS  # the packet ring's lead-in GOP counts: it is in memory
    return {
        "bytes_held": s["bytes"],
        "frames_held": s["frames"],
        "seconds_reachable": s["seconds_held"],
        "bytes_per_second": s["bytes"] / held_s,
        "bytes_per_10s": s["bytes"] / held_s * WINDOW_S,
        "lead_in_frames": s.get("lead_in_frames", 0),
    }


def run(resolutions: list[str], gop: int, quality: int, events: int, extra_gop: int = 0) -> dict:
    n = int((WINDOW_S + 1) * FPS)  # one second more than the window: eviction has run
    results = {}
    for name in resolutions:
        w, h, bitrate = RESOLUTIONS[name]
        t0 = time.perf_counter()
        stream, enc_cpu = encode_stream(w, h, bitrate, gop, n)
        print(
            f"{name}: encoded {n} frames in {time.perf_counter() - t0:.1f} s "
            f"({len(stream) * 8 / (n / FPS) / 1e6:.2f} Mbit/s)",
            flush=True,
        )
        pring, pinfo = fill_packet_ring(stream, n)
        jring, jinfo = fill_jpeg_ring(stream, n, quality)
        raw = w * h * 3
        res: dict[str, Any] = {
            "raw_bgr_bytes_per_frame": raw,
            "raw_bgr_bytes_per_10s": raw * FPS * WINDOW_S,
            "synthetic_encoder_cpu_share": enc_cpu / (n / FPS),
            "packets": {**memory(pring), **pinfo, "latency": event_latency(pring, events, 1)},
            "packets_one_decoder_thread": {},
            "jpeg": {**memory(jring), **jinfo, "latency": event_latency(jring, events, 1)},
        }
        pring.decode_threads = 1
        res["packets_one_decoder_thread"] = {"latency": event_latency(pring, events, 1)}
        res["clip_8s"] = c = clip_cost(pring, jring)
        print(
            f"  clip of {sum(CLIP_S):.0f} s: copy {c['copy']['wall_s'] * 1e3:.0f} ms "
            f"({c['copy']['bytes'] / 1e6:.2f} MB), encoded {c['encoded']['wall_s'] * 1e3:.0f} ms "
            f"({c['encoded']['bytes'] / 1e6:.2f} MB): {c['encoded_over_copy_cpu']:.0f}x the CPU",
            flush=True,
        )
        for mode in ("packets", "jpeg"):
            r = res[mode]
            # Packets: demuxing stands in for the camera client, which any mode needs.
            share = r["cpu_share_demux_and_push"] if mode == "packets" else r["cpu_share_total"]
            r["cameras_per_core"] = 1 / share if share > 0 else None
            lat = r["latency"]
            print(
                f"  {mode:7s}: {r['bytes_held'] / 1e6:7.1f} MB held for 10 s, "
                f"CPU {share * 100:6.2f} % of a core, "
                f"event p50 {lat['p50_s'] * 1e3:5.0f} ms p95 {lat['p95_s'] * 1e3:5.0f} ms "
                f"CPU {lat['cpu_s_per_event_mean'] * 1e3:4.0f} ms/event",
                flush=True,
            )
        lat = res["packets_one_decoder_thread"]["latency"]
        print(
            f"  packets, 1 decoder thread: event p50 {lat['p50_s'] * 1e3:.0f} ms p95 {lat['p95_s'] * 1e3:.0f} ms "
            f"CPU {lat['cpu_s_per_event_mean'] * 1e3:.0f} ms/event",
            flush=True,
        )
        if extra_gop and extra_gop != gop:
            # The camera's keyframe interval bounds how much a lookup decodes.
            stream, _ = encode_stream(w, h, bitrate, extra_gop, n)
            ring, info = fill_packet_ring(stream, n)
            res[f"packets_gop_{extra_gop}"] = {
                **memory(ring),
                "gop_frames": extra_gop,
                "stream_bytes_per_second": info["stream_bytes_per_second"],
                "latency": event_latency(ring, events, 1),
            }
            lat = res[f"packets_gop_{extra_gop}"]["latency"]
            print(
                f"  packets, GOP {extra_gop}: {res[f'packets_gop_{extra_gop}']['bytes_held'] / 1e6:.1f} MB held, "
                f"event p50 {lat['p50_s'] * 1e3:.0f} ms p95 {lat['p95_s'] * 1e3:.0f} ms "
                f"CPU {lat['cpu_s_per_event_mean'] * 1e3:.0f} ms/event",
                flush=True,
            )
        results[name] = res
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", nargs="+", default=list(RESOLUTIONS), choices=list(RESOLUTIONS))
    ap.add_argument("--gop", type=int, default=2 * FPS, help="frames between keyframes (default 2 s)")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality of the JPEG ring")
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument(
        "--extra-gop", type=int, default=FPS, help="also measure packet-mode latency with this GOP (0: skip)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "camera_buffer.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    results = run(args.resolutions, args.gop, args.quality, args.events, args.extra_gop)
    goals = {}
    if "1080p" in results:
        r = results["1080p"]
        goals = {
            # What the full 10 s window really holds (the packet ring's lead-in GOP included).
            "jpeg_10s_1080p_bytes": {"value": r["jpeg"]["bytes_held"], "goal_max": GOALS_1080P["jpeg_bytes_10s"]},
            "packets_10s_1080p_bytes": {
                "value": r["packets"]["bytes_held"],
                "goal_max": GOALS_1080P["packet_bytes_10s"],
            },
            "event_p95_s_jpeg_1080p": {"value": r["jpeg"]["latency"]["p95_s"], "goal_max": GOALS_1080P["event_p95_s"]},
            "event_p95_s_packets_1080p": {
                "value": r["packets"]["latency"]["p95_s"],
                "goal_max": GOALS_1080P["event_p95_s"],
            },
        }
        for g in goals.values():
            g["met"] = g["value"] <= g["goal_max"]
    doc = {
        "benchmark": "camera_buffer",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine_info(), "loadavg_1m_before_after": [load_before[0], os.getloadavg()[0]]},
        "settings": {
            "fps": FPS,
            "window_s": WINDOW_S,
            "frames_pushed": int((WINDOW_S + 1) * FPS),
            "event_offsets_s": OFFSETS,
            "events": args.events,
            "jpeg_quality": args.quality,
            "encoder": {
                "codec": "libx264",
                "preset": "veryfast",
                "tune": "zerolatency",
                "gop_frames": args.gop,
                "bitrate_bps": {k: v[2] for k, v in RESOLUTIONS.items()},
            },
            "sharpness": "laplacian variance on whole frames",
            "decode": "PyAV CodecContext, thread_type AUTO, thread_count 0; GOP spans of one event in parallel",
            "cpu_share": "process CPU seconds / stream seconds (1.0 = one core)",
            "pyav": av.__version__,
            "opencv": cv2.__version__,
        },
        "results": results,
        "goals": goals,
        "runtime_s": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for k, g in goals.items():
        print(f"{k}: {g['value']:.4g} (goal ≤ {g['goal_max']:.4g}) {'met' if g['met'] else 'NOT met'}")
    print(f"wrote {args.out} in {doc['runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
