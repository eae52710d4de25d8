"""How jobs, batches and videos are shown to clients: records (services/contracts/records.py)
into the response models of gateway/responses.py, dumped as JSON-safe dicts with links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from gateway.responses import BatchItemView, BatchView, CallbackView, JobView
from gateway.video_responses import ResultSetView, VideoView
from services.contracts.records import (
    AnyJob,
    Batch,
    EnhanceJob,
    EnhanceOutput,
    EnhanceResult,
    PhotoInfo,
    PhotoInput,
    SegmentJob,
    StabilizeJob,
    VideoInfo,
)

_PUBLIC_INPUT = ("name", "format", "width", "height", "bytes", "sha256")
_HIDDEN_RESULT = ("blob",)


def callback_view(record: Mapping[str, Any]) -> CallbackView | None:
    """The completion callback of a job or batch: where, and how its delivery went."""
    url = record.get("callback_url")
    if not url:
        return None
    outcome = record.get("callback") or {"state": "waiting"}
    return cast(CallbackView, {"url": url, **outcome})


def _photo(inp: PhotoInput | None) -> PhotoInfo | None:
    # The blob key is the store's, not the client's.
    return cast(PhotoInfo, {k: v for k, v in inp.items() if k in _PUBLIC_INPUT}) if inp else None


def _output(result: EnhanceResult | None) -> EnhanceOutput | None:
    return cast(EnhanceOutput, {k: v for k, v in result.items() if k not in _HIDDEN_RESULT}) if result else None


def _record(job: AnyJob) -> dict[str, Any]:
    """The fields of ``RecordView``, which every kind's view shows alike."""
    return {
        "id": job["id"],
        "kind": job["kind"],
        "state": job["state"],
        "progress": job["progress"],
        "created_at": job["created_at"],
        "started_at": job["started_at"],
        "finished_at": job["finished_at"],
        "params": job["params"] or {},
        "error": job["error"],
        "callback": callback_view(job),
    }


def _unstored(part: Mapping[str, Any] | None) -> Any:
    """A video's input or another kind's part, without the store's blob keys."""
    return {k: v for k, v in part.items() if not k.endswith("blob")} if part else None


def job_view(job: AnyJob) -> dict[str, Any]:
    """Any kind's record as GET /jobs/{id} shows it; a photo's input and result keep only
    their public fields."""
    photo = job["kind"] == "enhance"
    jid = job["id"]
    links = {"self": f"/api/v1/jobs/{jid}"}
    if (job["input"] or {}).get("blob"):
        links["input"] = f"/api/v1/jobs/{jid}/input"
    if job["state"] == "succeeded":
        links["result"] = f"/api/v1/jobs/{jid}/result"
    if job["batch_id"]:
        links["batch"] = f"/api/v1/batches/{job['batch_id']}"
    return JobView(
        **_record(job),
        input=_photo(job["input"]) if photo else _unstored(job["input"]),
        result=_output(job["result"]) if photo else _unstored(job["result"]),
        batch_id=job["batch_id"] or None,
        estimate=job["estimate"],
        links=links,
    ).model_dump(mode="json")


def _item(j: EnhanceJob) -> BatchItemView:
    links = {"self": f"/api/v1/jobs/{j['id']}"}
    if (j["input"] or {}).get("blob"):
        links["input"] = f"/api/v1/jobs/{j['id']}/input"
    if j["state"] == "succeeded":
        links["result"] = f"/api/v1/jobs/{j['id']}/result"
    elif j["state"] == "skipped" and j.get("duplicate_of"):
        links["result"] = f"/api/v1/jobs/{j['duplicate_of']}/result"  # processed once, under that item
    return BatchItemView(
        id=j["id"],
        name=(j["input"] or {}).get("name", ""),
        variant=j.get("variant") or "default",
        state=j["state"],
        progress=j["progress"],
        error=j["error"],
        result=_output(j["result"]),
        duplicate_of=j.get("duplicate_of") or None,
        links=links,
    )


def item_view(j: EnhanceJob) -> dict[str, Any]:
    return _item(j).model_dump(mode="json")


def batch_view(batch: Batch, items: list[EnhanceJob] | None = None) -> dict[str, Any]:
    bid = batch["id"]
    base = f"/api/v1/batches/{bid}"
    return BatchView(
        id=bid,
        kind=batch["kind"],
        name=batch.get("name") or "",
        state=batch["state"],
        open=batch.get("open", False),
        paused=batch.get("paused", False),
        progress=batch["progress"],
        percent=round(batch["progress"] * 100, 2),
        total=batch["total"],
        photos=batch.get("photos", 0),
        counts=batch["counts"],
        throughput_per_s=batch.get("throughput_per_s"),
        eta_seconds=batch.get("eta_seconds"),
        created_at=batch["created_at"],
        closed_at=batch.get("closed_at"),
        params=batch.get("params") or {},
        variants=batch["variants"],
        running=batch["running"],
        items=[_item(j) for j in items or []],
        callback=callback_view(batch),
        links={
            "self": base,
            "items": f"{base}/items",
            "events": f"{base}/events",
            "manifest_csv": f"{base}/manifest.csv",
            "manifest_jsonl": f"{base}/manifest.jsonl",
            "archive": f"{base}/archive",
        },
    ).model_dump(mode="json")


def _result_set(job: StabilizeJob) -> ResultSetView:
    res = job["result"]
    return ResultSetView(
        id=job["id"],
        method=job["params"]["method"],
        params=job["params"].get("params", {}),
        callback=callback_view(job),
        state=job["state"],
        progress=job["progress"],
        error=job["error"],
        summary=res["summary"] if res else None,
        improvement_pct=res["improvement_pct"] if res else None,
        timings=res["timings"] if res else None,
    )


def result_set_view(job: StabilizeJob) -> dict[str, Any]:
    """One result set (stabilization run) of a video."""
    return _result_set(job).model_dump(mode="json")


def video_view(job: SegmentJob, results: list[StabilizeJob]) -> dict[str, Any]:
    vid = job["id"]
    inp = cast(VideoInfo, {k: v for k, v in (job["input"] or {}).items() if not k.endswith("blob")})
    return VideoView(
        **_record(job),
        input=inp,
        result=job["result"],
        results=[_result_set(r) for r in results],
        links={
            "self": f"/api/v1/videos/{vid}",
            "metrics": f"/api/v1/videos/{vid}/metrics",
            "overlay": f"/api/v1/videos/{vid}/overlay.mp4",
            "frames": f"/api/v1/videos/{vid}/frames/{{n}}",
        },
    ).model_dump(mode="json")
