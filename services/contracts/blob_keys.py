"""Every blob key kadr writes or reads, built here and nowhere else.

The gateway writes uploads, the workers write results, the API serves both, and
retention and deletes remove them by folder: one layout, several processes, so it is
written once. Keys are ours, never a file's name (a user's name stays in the job record).
Everything one object owns lies under its folder, so deleting it is one prefix::

    jobs/<job>/input                           a single photo's upload
    jobs/<job>/result.<ext>                    its result
    batches/<batch>/inputs/<sha256 or id>      a batch's uploads (by content: shared once)
    batches/<batch>/results/<job>/result.<ext>
    videos/<video>/input, truth_input          an upload and its ground truth
    videos/<video>/frames|prob|truth/<n>.jpg|png, manifest.json   segmentation, per frame
    videos/<video>/results/<set>/mask|overlay/<n>.png|jpg, overlay.mp4, matte.mov, metrics.json
    camera/<event>/uploads/<kind>              a camera event's uploaded images
    camera/<event>/<kind>.jpg, clip.mp4        what the camera worker made of it
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The top-level folder of each kind of object that retention walks.
FOLDERS = {"photos": "jobs", "batches": "batches", "videos": "videos", "events": "camera"}
VIDEO_PARTS = ("frames", "prob", "truth")  # what a segmentation writes (its upload stays)


def folder(kind: str, ident: str) -> str:
    """An object's whole folder by its retention kind (``photos``, ``batches``, ...)."""
    return f"{FOLDERS[kind]}/{ident}"


# ---------------------------------------------------------------- photos and batches


def photo(job_id: str) -> str:
    return folder("photos", job_id)


def photo_input(job_id: str) -> str:
    return f"{photo(job_id)}/input"


def batch(batch_id: str) -> str:
    return folder("batches", batch_id)


def batch_input(batch_id: str, name: str) -> str:
    """``name``: the content's sha256 (identical photos share one file) or a fresh id."""
    return f"{batch(batch_id)}/inputs/{name}"


def enhance_result(job: Mapping[str, Any], extension: str) -> str:
    """A batch keeps every file under its own folder: retention removes a batch in one go."""
    base = f"{batch(job['batch_id'])}/results/{job['id']}" if job.get("batch_id") else photo(job["id"])
    return f"{base}/result.{extension}"


# ---------------------------------------------------------------- videos


def video(video_id: str) -> str:
    return folder("videos", video_id)


def video_input(video_id: str) -> str:
    return f"{video(video_id)}/input"


def video_truth_input(video_id: str) -> str:
    return f"{video(video_id)}/truth_input"


def video_part(video_id: str, part: str) -> str:
    """The folder of one of :data:`VIDEO_PARTS`."""
    assert part in VIDEO_PARTS, part
    return f"{video(video_id)}/{part}"


def video_frame(video_id: str, n: int) -> str:
    return f"{video_part(video_id, 'frames')}/{n:06d}.jpg"


def video_prob(video_id: str, n: int) -> str:
    return f"{video_part(video_id, 'prob')}/{n:06d}.png"


def video_truth(video_id: str, n: int) -> str:
    return f"{video_part(video_id, 'truth')}/{n:06d}.png"


def video_manifest(video_id: str) -> str:
    return f"{video(video_id)}/manifest.json"


def result_set(video_id: str, result_id: str) -> str:
    return f"{video(video_id)}/results/{result_id}"


def result_mask(video_id: str, result_id: str, n: int) -> str:
    return f"{result_set(video_id, result_id)}/mask/{n:06d}.png"


def result_overlay(video_id: str, result_id: str, n: int) -> str:
    return f"{result_set(video_id, result_id)}/overlay/{n:06d}.jpg"


def result_file(video_id: str, result_id: str, name: str) -> str:
    """``overlay.mp4``, ``matte.mov`` or ``metrics.json`` of a result set."""
    return f"{result_set(video_id, result_id)}/{name}"


# ---------------------------------------------------------------- camera events


def event(event_id: str) -> str:
    return folder("events", event_id)


def event_upload(event_id: str, kind: str) -> str:
    return f"{event(event_id)}/uploads/{kind}"


def event_image(event_id: str, kind: str) -> str:
    return f"{event(event_id)}/{kind}.jpg"


def event_clip(event_id: str) -> str:
    return f"{event(event_id)}/clip.mp4"
