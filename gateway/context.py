"""Per-app service handles (Redis, job store, blobs, the task dispatcher), built once in
the app factory from the settings object and reached through ``kadr()`` in views."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from gateway.fanout import Fanout
from gateway.holds import Holds
from gateway.settings import GatewaySettings
from gateway.storage_guard import StorageGuard
from services.platform.dispatch import Dispatcher
from services.store.batches import BatchStore
from services.store.blobs import BlobStore
from services.store.jobs import JobStore
from services.upkeep.batch_feed import Feeder


@dataclass
class Kadr:
    settings: GatewaySettings
    redis: Redis
    jobs: JobStore
    blobs: BlobStore
    send: Dispatcher  # the task messages: the same sender as the feeder and the reaper
    batches: BatchStore
    feeder: Feeder
    probe: Redis  # no retries: readiness answers at once when Redis is away
    fanout: Fanout  # the process's one subscription, for every stream and long poll
    holds: Holds  # caps on open streams and long polls
    storage: StorageGuard  # Redis's high-water mark: new work refused past it


def kadr() -> Kadr:
    k: Kadr = current_app.extensions["kadr"]
    return k
