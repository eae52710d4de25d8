"""How jobs and batches are shown to clients (JSON-safe dicts with links)."""
from __future__ import annotations

from services.common.schemas import BatchItemView, BatchView, JobView

_PUBLIC_INPUT = ("name", "format", "width", "height", "bytes", "sha256")
_HIDDEN_RESULT = ("blob",)


def job_view(job: dict) -> dict:
    jid = job["id"]
    links = {"self": f"/api/v1/jobs/{jid}"}
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
                   links=links).model_dump(mode="json")


def batch_view(batch: dict, items: list[dict]) -> dict:
    bid = batch["id"]
    views = []
    for j in items:
        result = {k: v for k, v in (j.get("result") or {}).items() if k not in _HIDDEN_RESULT} or None
        views.append(BatchItemView(id=j["id"], name=(j.get("input") or {}).get("name", ""),
                                   state=j["state"], progress=j["progress"] or 0.0,
                                   error=j.get("error"), result=result))
    return BatchView(id=bid, kind=batch["kind"], state=batch["state"], progress=batch["progress"],
                     total=batch["total"], counts=batch["counts"], created_at=batch["created_at"],
                     params=batch.get("params") or {}, items=views,
                     links={"self": f"/api/v1/batches/{bid}",
                            "archive": f"/api/v1/batches/{bid}/archive"}).model_dump(mode="json")
