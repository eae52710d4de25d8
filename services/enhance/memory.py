"""Memory of one photo in the enhance pool process: its peak per phase, measured from
/proc/self, and glibc's freed heap handed back between phases. Process-wide state: one
photo at a time runs in a pool process.

Inside one face's forward (GFPGAN, then ParseNet) the heap is handed back between its
stages too (:func:`settle`): each stage frees 8-64 MB buffers that glibc keeps, and the
next stage's differently sized ones land beside them. One face then grows the process
by 246-264 MiB over its start (live tensors: ~225) instead of 332-448, for ~13 % more
time a face (4.45 -> 5.06 s, interleaved in one process: the pages handed back are
faulted in again). Measured and not taken: mapping buffers of 8 MB and more one by one
(M_MMAP_THRESHOLD; in the worker the heap's older free chunks serve them first, and the
faces phase measured 501 MiB), for the tiles +46 % (every layer's map is 20 MB);
jemalloc and tcmalloc 25-60 % slower; channels-last convolutions (less reordering
inside oneDNN for one convolution, more fragmentation over the whole face)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from services.platform.metrics import PHOTO_PEAK_MEMORY

if TYPE_CHECKING:
    import ctypes


class MemoryWatch:
    """This process's peak resident memory per phase of one photo, over its size when the
    photo started (from /proc/self: VmHWM, restarted at each phase's end through
    clear_refs), and the heap's free pages handed back as each phase ends. Phases:
    "detect" (decoding and finding faces), "faces" (restoring them), "background" (the
    rest: tiles, paste-back, encoding; for a photo without face work, decoding too).
    Also what each phase leaves resident after the hand-back (the next phase starts on
    it). Where /proc cannot be written, only the hand-back happens."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self.held: dict[str, float] = {}
        self.start = _status_kib("VmRSS")
        self._restart()

    def phase_ended(self, ended: str) -> None:
        peak = _status_kib("VmHWM")
        if self.start is not None and peak is not None:
            self.peaks[ended] = max(self.peaks.get(ended, 0.0), (peak - self.start) / 1024)
        release_free_memory()
        held = _status_kib("VmRSS")
        if self.start is not None and held is not None:
            self.held[ended] = (held - self.start) / 1024
        self._restart()

    def report(self) -> dict[str, Any]:
        phases = {k: round(v, 1) for k, v in self.peaks.items()}
        for phase, mib in phases.items():
            PHOTO_PEAK_MEMORY.labels(phase=phase).observe(mib * 2**20)
        return {
            "peak_mib": max(phases.values(), default=None),
            "phases_mib": phases,
            "held_after_mib": {k: round(v, 1) for k, v in self.held.items()},
        }

    def _restart(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.start = None


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc keeps what a phase freed for
    later, and the next phase's peak would stack on top of it in the process's RSS)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def settle() -> None:
    """Between the stages of one face's forward: the heap's free pages back to the
    system, unless a benchmark is timing the bare model (:func:`unsettled`)."""
    if _settling.is_set():
        release_free_memory()


_settling = threading.Event()
_settling.set()


@contextmanager
def unsettled() -> Iterator[None]:
    """``with unsettled():`` the forwards run without handing memory back (the bench's
    bare-model baseline)."""
    _settling.clear()
    try:
        yield
    finally:
        _settling.set()


def _libc() -> ctypes.CDLL | None:
    import ctypes
    import ctypes.util

    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lib if hasattr(lib, "malloc_trim") else None
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return None


_LIBC = _libc()
