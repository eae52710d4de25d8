"""Memory of one photo in the enhance pool process: its peak per phase, measured from
/proc/self, and glibc's freed heap handed back between phases. Process-wide state: one
photo at a time runs in a pool process.

Not done, measured: mapping GFPGAN's large buffers one by one (M_MMAP_THRESHOLD 8 MB
for the face phase) took a face from 440-500 to 320-360 MiB but cost 35 % more time a
face in the worker (4.4 -> 6.0 s, 20 faces of a 3 MP photo); mapping the tiles' buffers
cost 46 % (12.1 -> 17.7 s for 1.2 MP at tile 256). jemalloc and tcmalloc: 25-60 %."""
from __future__ import annotations

from services.common.metrics import PHOTO_PEAK_MEMORY


class MemoryWatch:
    """This process's peak resident memory per phase of one photo, over its size when the
    photo started (from /proc/self: VmHWM, restarted at each phase's end through
    clear_refs), and the heap's free pages handed back as each phase ends. Phases:
    "detect" (decoding and finding faces), "faces" (restoring them), "background" (the
    rest: tiles, paste-back, encoding; for a photo without face work, decoding too).
    Where /proc cannot be written, only the hand-back happens."""

    def __init__(self):
        self.peaks: dict[str, float] = {}
        self.start = _status_kib("VmRSS")
        self._restart()

    def phase_ended(self, ended: str) -> None:
        peak = _status_kib("VmHWM")
        if self.start is not None and peak is not None:
            self.peaks[ended] = max(self.peaks.get(ended, 0.0), (peak - self.start) / 1024)
        release_free_memory()
        self._restart()

    def report(self) -> dict:
        phases = {k: round(v, 1) for k, v in self.peaks.items()}
        for phase, mib in phases.items():
            PHOTO_PEAK_MEMORY.labels(phase=phase).observe(mib * 2**20)
        return {"peak_mib": max(phases.values(), default=None), "phases_mib": phases}

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


def _libc():
    import ctypes
    import ctypes.util
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lib if hasattr(lib, "malloc_trim") else None
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return None


_LIBC = _libc()
