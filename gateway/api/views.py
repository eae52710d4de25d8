"""How jobs, batches and videos are shown to clients (JSON-safe dicts with links)."""
from __future__ import annotations

from services.contracts.schemas import BatchItemView, BatchView, JobView

_PUBLIC_INPUT = ("name", "format", "width", "height", "bytes", "sha256")
_HIDDEN_RESULT = ("blob",)


def callback_view(record: dict) -> dict | None:
    """The completion callback of a job or batch: where, and how its delivery went."""
    url = record.get("callback_url")
    if not url:
        return None
    return {"url": url, **(record.get("callback") or {"state": "waiting"})}


def job_view(job: dict) -> dict:
    jid = job["id"]
    links = {"self": f"/api/v1/jobs/{jid}"}
    if (job.get("input") or {}).get("blob"):
        links["input"] = f"/api/v1/jobs/{jid}/input"
    if job["state"] == "succeeded":
        links["result"] = f"/api/v1/jobs/{jid}/result"
    if job.get("batch_id"):
        links["batch"] = f"/api/v1/batches/{job['batch_id']}"
    result = {k: v for k, v in (job.get("result") or {}).items() if k not in _HIDDEN_RESULT} or None
    inp = {k: v for k, v in (job.get("input") or {}).items() if k in _PUBLIC_INPUT} or None
    return JobView(id=jid, kind=job["kind"], state=job["state"], progress=job["progress"] or 0.0,
                   created_at=job["created_at"], started_at=job.get("started_at"),
                   finished_at=job.get("finished_at"), params=job.get("params") or {}, input=inp,
                   result=result, error=job.get("error"), batch_id=job.get("batch_id") or None,
                   estimate=job.get("estimate"), callback=callback_view(job), links=links).model_dump(mode="json")


def item_view(j: dict) -> dict:
    result = {k: v for k, v in (j.get("result") or {}).items() if k not in _HIDDEN_RESULT} or None
    links = {"self": f"/api/v1/jobs/{j['id']}"}
    if (j.get("input") or {}).get("blob"):
        links["input"] = f"/api/v1/jobs/{j['id']}/input"
    if j["state"] == "succeeded":
        links["result"] = f"/api/v1/jobs/{j['id']}/result"
    elif j["state"] == "skipped" and j.get("duplicate_of"):
        links["result"] = f"/api/v1/jobs/{j['duplicate_of']}/result"  # processed once, under that item
    return BatchItemView(id=j["id"], name=(j.get("input") or {}).get("name", ""),
                         variant=j.get("variant") or "default", state=j["state"], progress=j["progress"] or 0.0,
                         error=j.get("error"), result=result, duplicate_of=j.get("duplicate_of") or None,
                         links=links).model_dump(mode="json")


def batch_view(batch: dict, items: list[dict] | None = None) -> dict:
    bid = batch["id"]
    base = f"/api/v1/batches/{bid}"
    return BatchView(id=bid, kind=batch["kind"], name=batch.get("name") or "", state=batch["state"],
                     open=batch.get("open", False), paused=batch.get("paused", False),
                     progress=batch["progress"], percent=round(batch["progress"] * 100, 2),
                     total=batch["total"], photos=batch.get("photos", 0), counts=batch["counts"],
                     throughput_per_s=batch.get("throughput_per_s"), eta_seconds=batch.get("eta_seconds"),
                     created_at=batch["created_at"], closed_at=batch.get("closed_at"),
                     params=batch.get("params") or {}, variants=batch.get("variants") or [],
                     running=batch.get("running") or [],
                     items=[item_view(j) for j in items or []], callback=callback_view(batch),
                     links={"self": base, "items": f"{base}/items", "events": f"{base}/events",
                            "manifest_csv": f"{base}/manifest.csv", "manifest_jsonl": f"{base}/manifest.jsonl",
                            "archive": f"{base}/archive"}).model_dump(mode="json")


def result_set_view(job: dict) -> dict:
    """One result set (stabilization run) of a video."""
    res = job.get("result") or {}
    return {"id": job["id"], "method": job["params"]["method"], "params": job["params"].get("params", {}),
            "callback": callback_view(job),
            "state": job["state"], "progress": job["progress"] or 0.0, "error": job.get("error"),
            "summary": res.get("summary"), "improvement_pct": res.get("improvement_pct"),
            "timings": res.get("timings")}


def video_view(job: dict, results: list[dict]) -> dict:
    vid = job["id"]
    inp = {k: v for k, v in (job.get("input") or {}).items() if not k.endswith("blob")}
    return {"id": vid, "kind": job["kind"], "state": job["state"], "progress": job["progress"] or 0.0,
            "created_at": job["created_at"], "started_at": job.get("started_at"),
            "finished_at": job.get("finished_at"), "params": job["params"], "input": inp,
            "result": job.get("result"), "error": job.get("error"), "callback": callback_view(job),
            "results": [result_set_view(r) for r in results],
            "links": {"self": f"/api/v1/videos/{vid}", "metrics": f"/api/v1/videos/{vid}/metrics",
                      "overlay": f"/api/v1/videos/{vid}/overlay.mp4",
                      "frames": f"/api/v1/videos/{vid}/frames/{{n}}"}}
