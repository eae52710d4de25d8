"""Progress on stderr: a tqdm bar on a terminal, a line every few seconds otherwise (logs
and CI capture stderr; a bar there is a wall of carriage returns)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm  # untyped (Any to mypy); imported at run time only when a bar is drawn


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    def __init__(
        self, total: int, *, stream: TextIO | None = None, interval: float = 5.0, tty: bool | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.failed = total, 0, 0
        self.eta: float | None = None
        self.note = ""
        self.interval, self._last = interval, time.monotonic()
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.tty = isatty() if tty is None else tty
        self.bar: tqdm | None = None
        self._start: tuple[float, int] | None = None
        if self.tty:
            from tqdm import tqdm

            # No rate or ETA of tqdm's own: the count jumps (resumed runs, bursts of
            # results), the server's estimate is better.
            self.bar = tqdm(
                total=total,
                unit="photo",
                file=self.stream,
                dynamic_ncols=True,
                bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )

    def update(self, done: int, failed: int, eta: float | None = None, note: str = "") -> None:
        """``eta``: the server's estimate; without one, this run's own pace is used."""
        if self._start is None:
            self._start = (time.monotonic(), done + failed)
        self.done, self.failed, self.note = done, failed, note
        self.eta = eta if eta is not None else self._own_eta()
        if self.bar is not None:
            self.bar.n = done + failed
            extra = f", {note}" if note else ""
            self.bar.set_postfix_str(f"failed {failed}, eta {fmt_seconds(self.eta)}{extra}", refresh=False)
            self.bar.refresh()
        elif time.monotonic() - self._last >= self.interval:
            self._line()

    def _own_eta(self) -> float | None:
        assert self._start is not None, "update sets it first"
        t0, n0 = self._start
        ended, elapsed = self.done + self.failed - n0, time.monotonic() - t0
        left = self.total - self.done - self.failed
        if left <= 0:
            return 0.0
        return left * elapsed / ended if ended > 0 and elapsed > 0 else None

    def _line(self) -> None:
        self._last = time.monotonic()
        extra = f", {self.note}" if self.note else ""
        print(
            f"{self.done}/{self.total} done, {self.failed} failed, eta {fmt_seconds(self.eta)}{extra}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            self._line()
