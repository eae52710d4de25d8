"""Finding 1: archive metadata bombs. A ZIP's whole central directory was parsed before
any limit (100,000 entries in 4.8 MB: 37 MB and 7.5 s in the gateway), directories and
hidden entries were not counted, tar kept every header in memory, and a .tar.gz had no
overall ratio limit. Each is refused now, before the work it would cost."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
import zipfile

import pytest

from gateway import archives
from testbed.photos import flat_png

LIMITS = archives.Limits(max_entries=10_000, max_entry_bytes=50 * 2**20, max_total_bytes=4 * 2**30, max_ratio=100.0)


def _run(data: bytes):
    kind = archives.archive_kind(io.BytesIO(data))
    return list(archives.iter_archive(io.BytesIO(data), kind, LIMITS))


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for n in names:
            zf.writestr(n, b"")
    return buf.getvalue()


def test_a_zip_of_100000_entries_is_refused_before_its_directory_is_parsed(monkeypatch):
    bomb = _zip([f"d{i}/" for i in range(100_000)])
    parsed = []
    real = zipfile.ZipFile
    monkeypatch.setattr(archives.zipfile, "ZipFile", lambda *a, **k: parsed.append(1) or real(*a, **k))
    tracemalloc.start()
    with pytest.raises(archives.ArchiveError) as e:
        _run(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert e.value.code == "too_many_entries" and "100000" in e.value.message
    assert parsed == [] and peak < 1 * 2**20  # the tail record only (64 KiB), not 37 MB of entries


@pytest.mark.parametrize("kind", ["directories", "hidden files"])
def test_skipped_entries_count_against_the_limit(kind):
    names = [f"d{i}/" for i in range(10_001)] if kind == "directories" else [f".h{i}" for i in range(10_001)]
    with pytest.raises(archives.ArchiveError) as e:
        _run(_zip(names))
    assert e.value.code == "too_many_entries"


def test_a_zip64_record_is_read_for_the_count():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for i in range(3):
            with zf.open(f"p{i}.png", "w", force_zip64=True) as f:
                f.write(flat_png(seed=i))
    assert archives._zip_directory(io.BytesIO(buf.getvalue()))[0] == 3
    assert [type(x).__name__ for x in _run(buf.getvalue())] == ["Entry"] * 3


def _targz(n_dirs: int, photos: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i in range(n_dirs):
            info = tarfile.TarInfo(f"d{i}")
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for i in range(photos):
            data = flat_png(seed=i)
            info = tarfile.TarInfo(f"p{i}.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_targz_of_directory_headers_is_refused_without_keeping_them():
    bomb = _targz(100_000)
    assert len(bomb) < 600_000  # ~470 KB
    tracemalloc.start()
    with pytest.raises(archives.ArchiveError) as e:
        _run(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # The overall ratio stops it first (51 MB of headers from ~470 KB), long before 38 MB
    # of kept headers; the count would stop it at 10,000 otherwise.
    assert e.value.code in ("compression_ratio", "too_many_entries") and peak < 8 * 2**20, (e.value.code, peak)


def test_a_targz_under_the_count_but_over_the_ratio_is_refused():
    with pytest.raises(archives.ArchiveError) as e:
        _run(_targz(9_000))
    assert e.value.code == "compression_ratio"


def test_an_ordinary_targz_of_photos_passes():
    got = _run(_targz(3, photos=20))
    assert sum(isinstance(x, archives.Entry) for x in got) == 20 and got.count(None) == 3
