"""Phone-sized photos through the real enhance worker: time, memory, and the cost of the
system around the models, each against a baseline in the same run.

For every case (size x format x quality x faces): the photo goes to a real Celery enhance
worker (started as ``make up`` starts it, infra/local/worker.sh's environment), and the
bench records
- wall time (submit → succeeded) and the job's own time;
- the pool process's peak resident memory over its level when the job started, per phase
  (detect, faces, background), as the worker measures it (VmHWM, restarted at each
  phase's end) and reports it in the job's result;
- seconds per output megapixel;
- the ratio of the job's time to the bare model forward over the same work in this
  process: the super-resolution network over the same tile grid (the tile the job
  reports), RetinaFace on the same-size copy, GFPGAN and ParseNet once per face
  restored. Decoding, alignment, paste-back, encoding and the service around them are
  what the ratio adds.

Goals (issue 13): every case succeeds; peak over idle <= 400 MiB at any size; job time
<= 1.10 x the bare forward.

Writes bench/results/real_photos.json. Weights: official when KADR_BENCH_MODELS_DIR
holds them, otherwise random weights in the official formats (same compute; random
RetinaFace "finds" thousands of faces, so every default case restores the full 20).
``--quick`` runs 3 MP only (a minute or two per case) to check the bench itself;
bench/gpu_smoke.sh runs the large cases on a CUDA device.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.enhance_overhead import models_dir_for  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from testbed import photos  # noqa: E402

if TYPE_CHECKING:
    from services.enhance.upsamplers import UpsamplerKind
from testbed.stack import kadr_env, proc_status_kib, start_redis, start_worker, stop_on_sigterm, wait_for  # noqa: E402

MIB = 2**20
QUALITIES = ("fast", "medium", "high")
FACES = {"defaults": 20, "no_faces": 0}
PEAK_GOAL_MIB = 400
RATIO_GOAL = 1.10


class Worker:
    """One enhance worker as deployed, and a way to hand it jobs (as the gateway does)."""

    def __init__(self, tmp: Path, models_dir: Path, budget: int | None):
        self.redis_proc, self.url = start_redis(tmp / "redis")
        extra = {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        if budget:
            extra["KADR_ENHANCE_MEMORY_BUDGET_BYTES"] = str(budget)
        self.env = kadr_env(redis_url=self.url, storage_dir=tmp / "blobs", models_dir=models_dir, **extra)
        import redis as redis_lib

        from services.enhance.settings import EnhanceSettings
        from services.platform.celery_app import create_celery
        from services.store.blobs import open_store
        from services.store.jobs import JobStore

        self.settings = EnhanceSettings(
            redis_url=self.url,
            cache_redis_url=self.env["KADR_CACHE_REDIS_URL"],
            storage_dir=tmp / "blobs",
            models_dir=models_dir,
        )
        self.r = redis_lib.Redis.from_url(self.url, decode_responses=True)
        self.store, self.blobs = JobStore(self.r), open_store(self.settings)
        self.celery = create_celery(self.settings)
        self.proc = start_worker("enhance", self.env, tmp / "logs")
        from services.store.workers import live_workers

        wait_for(
            lambda: any(
                w["service"] == "enhance" and w["models"].get("gfpgan", {}).get("state") == "ready"
                for w in live_workers(self.r)
            ),
            300,
            "the enhance worker to load its models",
        )
        self.pid = next(w["pid"] for w in live_workers(self.r) if w["service"] == "enhance")

    def run(self, data: bytes, fmt: str, params: dict) -> dict:
        from services.contracts.schemas import EnhanceParams
        from services.contracts.tasks import ENHANCE_PHOTO, EnhancePhotoTask, send_options
        from services.store.jobs import TERMINAL, new_id

        # Every case differs in input or params, so none is a result-cache hit.
        job_id = new_id()
        self.blobs.put_bytes(f"jobs/{job_id}/input", data)
        inp = {
            "blob": f"jobs/{job_id}/input",
            "name": f"photo.{fmt}",
            "format": fmt,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.store.create(
            kind="enhance", owner="bench", params=EnhanceParams(**params).model_dump(), input=inp, job_id=job_id
        )
        payload = EnhancePhotoTask(job_id=job_id, soft_time_limit=3000, time_limit=3300).model_dump()
        self.store.set_task(job_id, ENHANCE_PHOTO, payload)
        time.sleep(1.0)  # let the pool process settle (heartbeat, GC) before its idle level is read
        idle = proc_status_kib(self.pid, "VmRSS")
        t0 = time.perf_counter()
        # With the payload's time limits, as every sender does: a bare send gets the worker's
        # default (600 s), which a 24 MP photo with faces outlasts on a slower CPU.
        self.celery.send_task(ENHANCE_PHOTO, args=[payload], **send_options(ENHANCE_PHOTO, payload))
        # Polled, not subscribed: a read every 0.25 s costs the worker nothing measurable
        # next to a job of minutes.
        job = wait_for(
            lambda: (j := self.store.get(job_id)) is not None and j["state"] in TERMINAL and j,
            7200,
            "the photo's job",
            interval=0.25,
        )
        wall = time.perf_counter() - t0
        self.blobs.delete_prefix(f"jobs/{job_id}")
        # The worker measures its own peak per phase (VmHWM over its size at the photo's start).
        memory = (job.get("result") or {}).get("memory") or {}
        return {
            "job": job,
            "wall_s": wall,
            "idle_mib": idle / 1024,
            "peak_over_idle_mib": memory.get("peak_mib"),
            "phases_mib": memory.get("phases_mib"),
            "held_after_mib": memory.get("held_after_mib"),
        }

    def stop(self):
        self.proc.stop()
        self.celery.close()
        self.redis_proc.stop()


class BareForward:
    """The models alone, in this process, on the work a job did."""

    def __init__(self, models_dir: Path):
        import torch

        from services.enhance import models
        from services.runtime.device import select_device

        self.torch = torch
        self.device = select_device("auto")
        self.models_dir = models_dir
        self.restorer = models.build_restorer(models_dir, self.device)
        self.upsamplers: dict[UpsamplerKind, Any] = {}

    def tiles(self, img, quality: str, tile: int, pad: int = 10) -> float:
        """Seconds of the network's forward over ``img``'s tile grid (inputs prepared
        beforehand and not timed)."""
        if quality == "fast":
            return 0.0
        from services.enhance import models

        kind: UpsamplerKind = "general_x4v3" if quality == "medium" else "x2plus"
        if kind not in self.upsamplers:
            self.upsamplers[kind] = models.build_upsampler(kind, self.models_dir, self.device)
        net = self.upsamplers[kind].model
        h, w = img.shape[:2]
        mod = 2 if kind == "x2plus" else 1
        total = 0.0
        torch = self.torch
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                crop = img[max(y0 - pad, 0) : min(y0 + tile + pad, h), max(x0 - pad, 0) : min(x0 + tile + pad, w)]
                x = torch.from_numpy(crop[..., ::-1].copy().transpose(2, 0, 1)).unsqueeze(0).float().div_(255)
                if mod > 1 and (x.shape[2] % 2 or x.shape[3] % 2):
                    x = torch.nn.functional.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2), "reflect")
                if self.device.type == "cuda":
                    x = x.to(self.device).half()  # as the worker runs it there
                else:
                    x = x.contiguous(memory_format=torch.channels_last)
                self._sync()
                t0 = time.perf_counter()
                with torch.inference_mode():
                    net(x)
                self._sync()
                total += time.perf_counter() - t0
        return total

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def detect(self, img, scale: float) -> float:
        """Seconds of RetinaFace on the copy the job's detector saw (``detect_scale``)."""
        import cv2

        h, w = img.shape[:2]
        small = (
            cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            if scale < 1
            else img
        )
        self._sync()
        t0 = time.perf_counter()
        with self.torch.inference_mode():
            self.restorer.face_helper.face_det.detect_faces(small, 0.97)
        self._sync()
        return time.perf_counter() - t0

    def face(self, repeats: int = 3) -> float:
        """Seconds of one face: GFPGAN and ParseNet on a 512x512 face (median of a few),
        without the worker's heap hand-backs between their stages."""
        import numpy as np

        from services.enhance import paste
        from services.enhance.memory import unsettled
        from services.enhance.pipeline import _restore_face

        face = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            with unsettled():  # the model alone: no memory handed back between its stages
                restored, _ = _restore_face(self.restorer, face, 0.5)
                paste.parse_labels(restored, self.restorer.face_helper.face_parse, self.device)
            self._sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3mp,12mp,24mp")
    ap.add_argument("--formats", default="jpeg,heic")
    ap.add_argument("--qualities", default=",".join(QUALITIES))
    ap.add_argument("--faces", default=",".join(FACES))
    ap.add_argument("--quick", action="store_true", help="3 MP only")
    ap.add_argument("--budget", type=int, default=0, help="KADR_ENHANCE_MEMORY_BUDGET_BYTES for the worker")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/real_photos.json")
    args = ap.parse_args()
    stop_on_sigterm()
    sizes = ["3mp"] if args.quick else args.sizes.split(",")
    import torch

    # Before any torch op makes its thread pool: the pool's threads inherit flush-to-zero
    # from here (random weights give denormals, 3x slower without it), as in the worker.
    torch.set_flush_denormal(True)
    cases: list[dict[str, Any]] = []
    bare_cache: dict[tuple[Any, ...], float] = {}  # tiles by (size, quality, tile), detection by (size, scale)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="kadr-bench-photos-") as t:
        tmp = Path(t)
        models_dir, weights_kind = models_dir_for(tmp)
        worker = Worker(tmp, models_dir, args.budget or None)
        bare = BareForward(models_dir)
        face_s = bare.face()

        def save(complete: bool) -> dict[str, Any]:
            """The report so far, written after every case: a run stopped halfway keeps what it measured."""
            ok = [c for c in cases if c["state"] == "succeeded"]
            ratios = [c["ratio_to_bare"] for c in ok if c.get("ratio_to_bare")]
            result = {
                "bench": "real_photos",
                "machine": machine_info(),
                "weights": weights_kind,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                "minutes": round((time.time() - started) / 60, 1),
                "settings": {
                    "upscale": 2,
                    "faces_default": FACES["defaults"],
                    "worker_env": {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")},
                    "memory_budget_mib": (args.budget or worker.settings.enhance_memory_budget_bytes) // MIB,
                },
                "bare_face_s": round(face_s, 3),
                "goals": {
                    "all_succeed": len(ok) == len(cases),
                    "peak_over_idle_mib_max": max((c["peak_over_idle_mib"] or 0 for c in cases), default=None),
                    "peak_goal_mib": PEAK_GOAL_MIB,
                    "ratio_to_bare_max": max(ratios, default=None),
                    "ratio_goal": RATIO_GOAL,
                },
                "complete": complete,
                "cases": cases,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")
            return result

        try:
            for size in sizes:
                w, h = photos.SIZES[size]
                img = photos.photo(w, h)
                encoded = {fmt: photos.encode(img, fmt) for fmt in args.formats.split(",")}
                for quality in args.qualities.split(","):
                    for fmt, data in encoded.items():
                        for faces_name in args.faces.split(","):
                            params = {"quality": quality, "upscale": 2, "max_faces": FACES[faces_name]}
                            got = worker.run(data, fmt, params)
                            job = got["job"]
                            case = {
                                "size": size,
                                "width": w,
                                "height": h,
                                "format": fmt,
                                "input_bytes": len(data),
                                "quality": quality,
                                "faces": faces_name,
                                "state": job["state"],
                                "wall_s": round(got["wall_s"], 2),
                                "idle_mib": round(got["idle_mib"]),
                                "peak_over_idle_mib": got["peak_over_idle_mib"],
                                "phases_mib": got["phases_mib"],
                                "held_after_mib": got["held_after_mib"],
                            }
                            if job["state"] == "succeeded":
                                res = job["result"]
                                out_mp = res["width"] * res["height"] / 1e6
                                key = (size, quality, res["tile_used"])
                                if key not in bare_cache:
                                    bare_cache[key] = bare.tiles(img, quality, res["tile_used"] or 0)
                                n_faces = res["faces_restored"] + res["faces_failed"]
                                # Timed again after each job with faces: this machine's speed
                                # drifts by 10-20 % over a run, and a face is most of such a job.
                                face_s = bare.face(repeats=2) if n_faces else face_s
                                case["bare_face_s"] = round(face_s, 3)
                                bare_s = bare_cache[key] + n_faces * face_s
                                if FACES[faces_name]:
                                    dkey = (size, res["detect_scale"])
                                    if dkey not in bare_cache:
                                        bare_cache[dkey] = bare.detect(img, res["detect_scale"])
                                    bare_s += bare_cache[dkey]
                                total = res["timings"]["total_seconds"]
                                case.update(
                                    job_s=round(total, 2),
                                    tile=res["tile_used"],
                                    faces_restored=n_faces,
                                    detect_scale=res["detect_scale"],
                                    output_mp=round(out_mp, 1),
                                    s_per_output_mp=round(total / out_mp, 3),
                                    bare_forward_s=round(bare_s, 2) if bare_s else None,
                                    ratio_to_bare=round(total / bare_s, 3) if bare_s else None,
                                    timings=res["timings"],
                                )
                            else:
                                case["error"] = job.get("error")
                            cases.append(case)
                            print(json.dumps({k: v for k, v in case.items() if k != "timings"}), flush=True)
                            save(complete=False)
        finally:
            worker.stop()
    result = save(complete=True)
    print(json.dumps(result["goals"], indent=2))


if __name__ == "__main__":
    main()
