"""Whether this gateway process is still serving, or draining before it exits.

gunicorn recycles a worker after ``max_requests`` (and stops every worker on a deploy):
it stops accepting, then waits ``graceful_timeout`` for open requests before killing
them. An evented worker holds hundreds of streams and long polls that would each run
for minutes, so all of them would be cut at the timeout with a 502. Instead they look
here about once a second and end on their own: a stream closes (EventSource reconnects
to a live worker at once), a long poll answers with the job as it is.
"""

from __future__ import annotations

from typing import Protocol


class Worker(Protocol):  # what is read of gunicorn's worker (gunicorn ships no types)
    alive: bool


_worker: Worker | None = None


def bind(worker: Worker) -> None:
    """gunicorn's ``post_worker_init`` hook: the worker whose ``alive`` flag says it all."""
    global _worker
    _worker = worker


def draining() -> bool:
    return _worker is not None and not _worker.alive
