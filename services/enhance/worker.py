"""The enhance worker's process: a pool process (services.runtime.worker_process) serving
the restorer and upsamplers, with the upkeep every pool process hosts."""

from __future__ import annotations

from services.contracts.tasks import ENHANCE_QUEUE
from services.enhance.models import register_models
from services.enhance.settings import EnhanceSettings
from services.runtime.worker_process import WorkerProcess


def create_worker(settings: EnhanceSettings) -> WorkerProcess:
    return WorkerProcess(
        settings,
        service="enhance",
        queues=[ENHANCE_QUEUE],
        register_models=lambda: register_models(settings),
        warm=settings.warm_models,
        torch_threads=settings.torch_threads,
    )
