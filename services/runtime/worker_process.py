"""What every worker pool process does when it starts and stops, whatever its service.

Called from ``worker_process_init``: after the fork, so models, Redis connections and
threads belong to the child that uses them. Models warm up in a background thread (the
pool's start-up handshake must not wait for weights); a task that arrives meanwhile
blocks on the registry's lock instead of starting a second load.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, worker_process_init, worker_process_shutdown
from redis import Redis

from services.runtime import worker_metrics
from services.runtime.registry import registry
from services.runtime.settings import PoolSettings
from services.store.batches import BatchStore
from services.store.blobs import BlobStore, open_store
from services.store.connection import connect
from services.store.jobs import JobStore
from services.store.workers import Heartbeat
from services.upkeep.batch_feed import Feeder
from services.upkeep.reaper import Reaper

if TYPE_CHECKING:
    from services.platform.dispatch import Dispatcher


@dataclass
class WorkerContext:
    store: JobStore
    redis: Redis
    cache: Redis
    blobs: BlobStore
    heartbeat: Heartbeat
    reaper: Reaper
    feeder: Feeder


def start_process(
    settings: PoolSettings,
    *,
    service: str,
    queues: list[str],
    register_models: Callable[[], None],
    warm: list[str],
    torch_threads: int = 0,
) -> WorkerContext:
    torch = sys.modules.get("torch")  # a service whose tasks run torch imported it already
    if torch is not None:
        # Flush-to-zero is per thread (the x86 MXCSR) and threads inherit it when they are
        # made: set it here, in the thread that runs the tasks, before any model thread or
        # OpenMP pool exists; denormal floats otherwise slow the CPU kernels 3x or more.
        torch.set_flush_denormal(True)
    if torch_threads:
        import torch

        # mypy keeps the name's type from above (ModuleType | None) across the import: no None here.
        torch.set_num_threads(torch_threads)  # type: ignore[union-attr]
    register_models()
    registry.announce_warm_up(warm)
    r = connect(settings.redis_url)
    hb = Heartbeat(
        r, service=service, queues=queues, models=registry.states, interval=settings.worker_heartbeat_seconds
    )
    hb.start()
    threading.Thread(target=registry.warm_up, args=(warm,), daemon=True, name="kadr-warmup").start()
    store = JobStore(r, settings.job_ttl_seconds)
    send = _sender(settings)
    feeder = Feeder(
        BatchStore(store),
        send,
        window=settings.batch_window,
        redispatch_seconds=settings.batch_redispatch_seconds,
        queue_limit=settings.max_queue_backlog,
    )
    reaper = Reaper(
        store,
        interval=settings.reaper_interval_seconds,
        grace_seconds=settings.orphan_grace_seconds,
        send=send,
        stranded_seconds=settings.stranded_message_seconds,
        also=feeder.tick,
    )  # retention has its own process: services/ops/janitor.py
    reaper.start()
    return WorkerContext(
        store=store,
        redis=r,
        cache=connect(settings.cache_redis_url),
        blobs=open_store(settings),
        heartbeat=hb,
        reaper=reaper,
        feeder=feeder,
    )


def _sender(settings: PoolSettings) -> Dispatcher:
    """Sends a task by name, as the gateway does (a producer of its own: the reaper runs
    beside the tasks, in any service's worker)."""
    from services.platform.celery_app import create_celery
    from services.platform.dispatch import Dispatcher

    return Dispatcher(create_celery(settings, name="kadr-reaper"))


def fail_on_hard_time_limit(settings: PoolSettings, job_id: str, limit: int | None = None) -> None:
    """The hard limit kills the pool process, so ``run_job`` never sees it: the parent
    process ends the job instead of leaving it ``running`` forever."""
    store = JobStore(connect(settings.redis_url), settings.job_ttl_seconds)
    store.transition(
        job_id,
        "failed",
        allowed_from=("queued", "running"),
        error={
            "code": "time_limit",
            "message": f"killed at the hard time limit ({limit or settings.task_time_limit_seconds} s)",
        },
    )


class WorkerProcess:
    """Hooks a service's tasks module into Celery's pool-process life cycle.

    ``ctx`` is the pool process's connections, set after the fork; tasks read it at run
    time. One instance per tasks module (the worker's entrypoint)."""

    def __init__(
        self,
        settings: PoolSettings,
        *,
        service: str,
        queues: list[str],
        register_models: Callable[[], None],
        warm: list[str],
        torch_threads: int = 0,
    ):
        self.settings, self.service, self.queues = settings, service, queues
        self.register_models, self.warm, self.torch_threads = register_models, warm, torch_threads
        self.ctx: WorkerContext | None = None
        worker_process_init.connect(self._init, weak=False)
        task_failure.connect(self._hard_time_limit, weak=False)
        worker_process_shutdown.connect(self._shutdown, weak=False)
        worker_metrics.install(settings, service)

    def context(self) -> WorkerContext:
        """The pool process's connections; a task that runs before the pool process
        started (no ``worker_process_init``) is a deployment error, said as such."""
        if self.ctx is None:
            raise RuntimeError(f"{self.service}: tasks run only in a pool process started by Celery")
        return self.ctx

    def _init(self, **_: Any) -> None:
        self.ctx = start_process(
            self.settings,
            service=self.service,
            queues=self.queues,
            register_models=self.register_models,
            warm=self.warm,
            torch_threads=self.torch_threads,
        )

    def _hard_time_limit(
        self, sender: object = None, exception: BaseException | None = None, args: Sequence[Any] | None = None, **_: Any
    ) -> None:
        # Every task payload is a dict with the job id (services.contracts.tasks).
        if isinstance(exception, TimeLimitExceeded) and args and isinstance(args[0], dict):
            fail_on_hard_time_limit(self.settings, args[0]["job_id"], args[0].get("time_limit"))

    def _shutdown(self, **_: Any) -> None:
        if self.ctx is not None:
            self.ctx.reaper.stop()
            self.ctx.heartbeat.stop()
