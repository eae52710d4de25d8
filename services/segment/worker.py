"""The segment worker's process: a pool process (services.runtime.worker_process) serving
the segment models, with the upkeep every pool process hosts."""

from __future__ import annotations

from services.contracts.tasks import SEGMENT_QUEUE
from services.runtime.worker_process import WorkerProcess
from services.segment.models import register_models
from services.segment.settings import SegmentSettings


def create_worker(settings: SegmentSettings) -> WorkerProcess:
    return WorkerProcess(
        settings,
        service="segment",
        queues=[SEGMENT_QUEUE],
        register_models=lambda: register_models(settings),
        warm=settings.warm_models,
        torch_threads=settings.torch_threads,
    )
