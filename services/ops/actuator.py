"""Changes worker pools through Celery remote control (``pool_grow`` / ``pool_shrink``).

Which workers consume a queue and how many processes each runs come from the workers
themselves (``inspect active_queues`` and ``stats``), so the autoscaler needs no list
of hosts and follows workers that come and go. A worker started with Celery's own
``--autoscale`` refuses these commands; kadr's workers run a fixed ``-c`` that this
module moves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from celery import Celery

log = logging.getLogger("kadr.ops.actuator")


@dataclass
class NodePool:
    node: str  # Celery node name, e.g. enhance@host
    queues: list[str]
    processes: int
    pids: list[int] = field(default_factory=list)  # pool process pids (prefork); empty for threads
    host: str = ""
    main_pid: int | None = None


class ControlError(RuntimeError):
    pass


class CeleryPools:
    def __init__(self, app: Celery, timeout: float = 2.0):
        self.app, self.timeout = app, timeout

    def survey(self) -> list[NodePool]:
        insp = self.app.control.inspect(timeout=self.timeout)
        queues = insp.active_queues() or {}
        stats = insp.stats() or {}
        out = []
        for node in set(queues) | set(stats):
            qs = queues.get(node) or []
            pool = (stats.get(node) or {}).get("pool") or {}
            pids = list(pool.get("processes") or [])
            # prefork lists its live processes; threads/solo only have the configured limit.
            n = len(pids) if "processes" in pool else int(pool.get("max-concurrency") or 0)
            out.append(
                NodePool(
                    node=node,
                    queues=[q["name"] for q in qs],
                    processes=n,
                    pids=pids,
                    host=node.partition("@")[2],
                    main_pid=(stats.get(node) or {}).get("pid"),
                )
            )
        return out

    def _command(self, name: str, node: str, n: int) -> None:
        replies = self.app.control.broadcast(
            name, arguments={"n": n}, destination=[node], reply=True, timeout=self.timeout
        )
        answer = next((r[node] for r in replies or [] if node in r), None)
        if not answer or "ok" not in answer:
            raise ControlError(f"{name} {n} on {node}: {answer or 'no reply'}")

    def grow(self, node: str, n: int = 1) -> None:
        self._command("pool_grow", node, n)

    def shrink(self, node: str, n: int = 1) -> None:
        self._command("pool_shrink", node, n)
