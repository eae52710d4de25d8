"""Autoscaling policy: how many pool processes a queue should have. Pure, no I/O.

The origin's rules: add a process when CPU is above 80 %, the backlog is above twice
the processes, or tasks average more than 10 s; remove one when all of them are low;
wait 60 s between changes; stay within min/max per queue. Two rules beyond the origin,
both about not making things worse:

- never add a process that does not fit: free RAM (and free GPU memory when the queue
  runs on a GPU) must cover the *measured* footprint of one more, i.e. the biggest
  live process of that queue, plus a reserve. A process that cannot fit would get the
  whole worker OOM-killed, losing every running task, which is what the origin's
  2.9 GB box did;
- never remove a process that is mid-task: shrink only while some are idle, by at
  most the idle count (Celery's prefork pool also only stops inactive processes).

Growth also needs work waiting: a hot CPU with an empty queue is some other service's
load, and one more idle process would only take memory from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueState:
    queue: str
    backlog: int  # messages waiting, not yet taken by a process
    processes: int  # pool processes consuming the queue (all its workers)
    busy: int  # of those, running a job now
    avg_task_seconds: float | None  # recent mean; None when nothing ran lately
    footprint_bytes: int | None  # biggest live process's RSS; None when none is measured
    gpu_footprint_bytes: int | None = None  # its CUDA memory; None on CPU


@dataclass(frozen=True)
class HostState:
    cpu_percent: float
    free_ram_bytes: int
    free_gpu_bytes: int | None = None  # None: no GPU


@dataclass(frozen=True)
class Rules:
    min_processes: int = 1
    max_processes: int = 1
    default_footprint_bytes: int = 1 << 30  # until one process of the queue is measured
    cpu_high_percent: float = 80.0
    cpu_low_percent: float = 30.0
    backlog_per_process: float = 2.0
    task_seconds_high: float = 10.0
    cooldown_seconds: float = 60.0
    ram_reserve_bytes: int = 256 << 20
    gpu_reserve_bytes: int = 512 << 20


@dataclass(frozen=True)
class Decision:
    queue: str
    action: str  # "grow" | "shrink" | "hold"
    delta: int  # +n, -n or 0
    reason: str  # short, bounded vocabulary: it is a metric label
    detail: str = ""  # numbers behind the reason, for the log line


def decide(q: QueueState, host: HostState, rules: Rules, *, since_last_change: float | None) -> Decision:
    """One step for one queue. ``since_last_change``: seconds since this queue's pool
    last changed (None: never)."""
    idle = max(0, q.processes - q.busy)

    def hold(reason: str, detail: str = "") -> Decision:
        return Decision(q.queue, "hold", 0, reason, detail)

    if q.processes > rules.max_processes:
        if idle == 0:
            return hold("above_max_all_busy", f"{q.processes} > max {rules.max_processes}")
        n = min(idle, q.processes - rules.max_processes)
        return Decision(q.queue, "shrink", -n, "above_max", f"{q.processes} > max {rules.max_processes}")

    below_min = q.processes < rules.min_processes
    high = []
    if q.backlog > 0:
        if host.cpu_percent > rules.cpu_high_percent:
            high.append(f"cpu {host.cpu_percent:.0f}% > {rules.cpu_high_percent:.0f}%")
        if q.backlog > rules.backlog_per_process * max(q.processes, 1):
            high.append(f"backlog {q.backlog} > {rules.backlog_per_process:g} x {q.processes}")
        if q.avg_task_seconds is not None and q.avg_task_seconds > rules.task_seconds_high:
            high.append(f"avg task {q.avg_task_seconds:.1f}s > {rules.task_seconds_high:g}s")

    if below_min or high:
        reason = "below_min" if below_min else "load_high"
        detail = f"{q.processes} < min {rules.min_processes}" if below_min else "; ".join(high)
        if q.processes >= rules.max_processes:
            return hold("at_max", detail)
        if not below_min and since_last_change is not None and since_last_change < rules.cooldown_seconds:
            return hold("cooldown", f"{since_last_change:.0f}s < {rules.cooldown_seconds:g}s; {detail}")
        need = q.footprint_bytes or rules.default_footprint_bytes
        if host.free_ram_bytes - rules.ram_reserve_bytes < need:
            return hold(
                "ram_budget",
                f"free {host.free_ram_bytes >> 20} MiB - reserve "
                f"{rules.ram_reserve_bytes >> 20} MiB < one process {need >> 20} MiB",
            )
        if (
            q.gpu_footprint_bytes
            and host.free_gpu_bytes is not None
            and host.free_gpu_bytes - rules.gpu_reserve_bytes < q.gpu_footprint_bytes
        ):
            return hold(
                "gpu_budget",
                f"free GPU {host.free_gpu_bytes >> 20} MiB < one process {q.gpu_footprint_bytes >> 20} MiB + reserve",
            )
        return Decision(q.queue, "grow", 1, reason, detail)

    # At or below: a low threshold of 100 leaves CPU out, as a high one of 100 does above.
    low = (
        q.backlog == 0
        and host.cpu_percent <= rules.cpu_low_percent
        and (q.avg_task_seconds is None or q.avg_task_seconds <= rules.task_seconds_high)
    )
    if low and q.processes > rules.min_processes:
        if idle == 0:
            return hold("all_busy")
        if since_last_change is not None and since_last_change < rules.cooldown_seconds:
            return hold("cooldown", f"{since_last_change:.0f}s < {rules.cooldown_seconds:g}s; idle")
        return Decision(
            q.queue, "shrink", -1, "idle", f"backlog 0, cpu {host.cpu_percent:.0f}%, {idle} of {q.processes} idle"
        )
    return hold("steady")
