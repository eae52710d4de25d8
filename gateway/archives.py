"""Photos out of an uploaded ZIP or TAR, entry by entry, with the limits that keep an
archive from being a weapon.

- zip-slip: entry names are never used as paths (blobs are keyed by content hash);
  still, an absolute name or one with ``..`` is refused as ``unsafe_path`` so what the
  client meant is not silently changed;
- bombs: each entry's size is capped (``max_entry_bytes``, the single-upload limit), its
  compression ratio too (``max_ratio``, ZIP), and all entries together
  (``max_total_bytes``) while reading, which also bounds a .tar.gz;
- ``max_entries`` caps the count of every entry (directories and hidden files too),
  read for a ZIP from its end record before its directory is parsed; a TAR is read as a
  stream without keeping headers, its overall ratio bounded (a .tar.gz of directory
  headers); links, devices and nested archives are refused; directories, hidden files
  and macOS ``__MACOSX`` metadata are skipped (counted).
"""

from __future__ import annotations

import io
import posixpath
import struct
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from gateway.filenames import sanitize_filename

# An entry is copied out in pieces into a file that stays in memory up to this size and
# goes to disk past it: a 50 MB photo in a ZIP costs the gateway 1 MiB, not 50.
SPOOL_MEMORY = 1024 * 1024
_PIECE = 256 * 1024


@dataclass
class Entry:
    name: str  # sanitised relative path inside the archive ("holiday/IMG_1.jpg")
    data: BinaryIO  # the entry's bytes, at position 0 (closed by whoever takes it)
    size: int


def spool(src: IO[bytes], limit: int) -> tuple[BinaryIO, int] | None:
    """``src`` copied into a spooled temporary file, or None (nothing kept) when it holds
    more than ``limit`` bytes; headers' sizes are never trusted."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    n = 0
    while piece := src.read(_PIECE):
        n += len(piece)
        if n > limit:
            out.close()
            return None
        out.write(piece)
    out.seek(0)
    return cast(BinaryIO, out), n  # typeshed: IO[bytes]; in w+b mode it is a BinaryIO


@dataclass
class Refused:
    name: str
    code: str
    message: str


@dataclass
class Limits:
    max_entries: int
    max_entry_bytes: int
    max_total_bytes: int
    max_ratio: float


class ArchiveError(Exception):
    """The archive as a whole is unusable (corrupt, too many entries)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def archive_kind(stream: IO[bytes]) -> str | None:
    """ "zip", "tar" or None, from the content (names lie)."""
    pos = stream.tell()
    head = stream.read(512)
    stream.seek(pos)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return "tar"  # compressed: only tar is accepted inside; tarfile says if it is not
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def _clean_name(raw: str) -> str | None:
    """The entry's relative path with each part sanitised; None when it escapes."""
    raw = raw.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        return None
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    return posixpath.join(*(sanitize_filename(p, default="file") for p in parts))


def _skipped(raw: str) -> bool:
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


# A central directory record is 46 bytes plus its name, extra field and comment; a
# real one stays far under this per entry (a 255-byte name, a few extra fields).
_CD_BYTES_PER_ENTRY = 1024
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
# A TAR header block, counted as unpacked bytes: 100,000 empty directory entries are 51 MB
# to parse from a .tar.gz of 200 KB.
_TAR_HEADER = 512
# Below this much unpacked, a .tar.gz's overall ratio is not judged (tiny archives of
# small flat images compress well and are harmless).
_RATIO_FLOOR = 1024 * 1024


def _zip_directory(stream: IO[bytes]) -> tuple[int, int] | None:
    """(entries, central directory bytes) from the end-of-central-directory record (ZIP64
    too), read from the tail before zipfile parses anything; None when there is none."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    tail_len = min(size, 22 + 65535)  # the record, and a comment of at most 64 KiB
    stream.seek(size - tail_len)
    tail = stream.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    entries, cd_size = struct.unpack("<HI", tail[at + 10 : at + 16])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        loc = at - 20
        if loc >= 0 and tail[loc : loc + 4] == _EOCD64_LOCATOR:
            (rec_at,) = struct.unpack("<Q", tail[loc + 8 : loc + 16])
            stream.seek(rec_at)
            rec = stream.read(56)
            if len(rec) == 56 and rec[:4] == b"PK\x06\x06":
                entries, cd_size = struct.unpack("<QQ", rec[32:48])
    return entries, cd_size


class _Counter:
    """Bytes read from the uploaded (compressed) stream, for a TAR's overall ratio."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.read_bytes = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.read_bytes += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def iter_archive(stream: IO[bytes], kind: str, limits: Limits) -> Iterator[Entry | Refused | None]:
    """Yields an Entry per usable file, a Refused per refused one, None per skipped one.
    Every entry counts against ``max_entries``, directories and hidden files included;
    a ZIP's entry count is read from its last record before its directory is parsed, and
    a TAR's headers are not kept (tarfile's list of members is emptied as it goes)."""
    total = 0
    count = 0

    def counted() -> None:
        nonlocal count
        count += 1
        if count > limits.max_entries:
            raise ArchiveError("too_many_entries", f"the archive has more than {limits.max_entries} entries")

    def account(name: str, size: int, compressed: int | None) -> Refused | None:
        nonlocal total
        if size > limits.max_entry_bytes:
            return Refused(name, "file_too_large", f"{name}: {size} bytes, over the {limits.max_entry_bytes} limit")
        if compressed is not None and size > 1024 and size / max(compressed, 1) > limits.max_ratio:
            return Refused(
                name,
                "compression_ratio",
                f"{name}: compressed {size / max(compressed, 1):.0f}:1, over the {limits.max_ratio:g}:1 limit",
            )
        total += size
        if total > limits.max_total_bytes:
            raise ArchiveError("archive_too_large", f"the archive unpacks to more than {limits.max_total_bytes} bytes")
        return None

    if kind == "zip":
        directory = _zip_directory(stream)
        stream.seek(0)
        if directory is not None:
            entries, cd_size = directory
            if entries > limits.max_entries:
                raise ArchiveError(
                    "too_many_entries",
                    f"the archive has {entries} entries; at most "
                    f"{limits.max_entries} are accepted (directories and hidden files count)",
                )
            if cd_size > (entries + 1) * _CD_BYTES_PER_ENTRY:
                raise ArchiveError(
                    "invalid_archive", f"the ZIP's directory takes {cd_size} bytes for {entries} entries"
                )
        try:
            zf = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, OSError) as e:
            raise ArchiveError("invalid_archive", f"not a readable ZIP: {e}")
        with zf:
            for info in zf.infolist():
                counted()
                if info.is_dir() or _skipped(info.filename):
                    yield None
                    continue
                name = _clean_name(info.filename)
                if name is None:
                    yield Refused(info.filename[:200], "unsafe_path", f"{info.filename[:200]}: path leaves the archive")
                    continue
                if (refused := account(name, info.file_size, info.compress_size)) is not None:
                    yield refused
                    continue
                if info.flag_bits & 0x1:  # needs a password we do not have
                    yield Refused(name, "encrypted_entry", f"{name}: encrypted; send it unencrypted")
                    continue
                try:
                    with zf.open(info) as f:
                        spooled = spool(f, limits.max_entry_bytes)
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
                    yield Refused(name, "invalid_archive_entry", f"{name}: cannot be read ({e})")
                    continue
                if spooled is None:
                    yield Refused(name, "file_too_large", f"{name}: over the {limits.max_entry_bytes} limit")
                    continue
                yield Entry(name, *spooled)
        return

    raw = _Counter(stream)
    try:
        tf = tarfile.open(fileobj=raw, mode="r|*")  # a stream: members are read once, in order
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArchiveError("invalid_archive", f"not a readable TAR: {e}")
    unpacked = 0
    with tf:
        try:
            for member in tf:
                # tarfile keeps every header it read; nothing here needs them (typeshed omits .members)
                tf.members = []  # type: ignore[attr-defined]
                counted()
                unpacked += _TAR_HEADER + (member.size if member.isfile() else 0)
                if unpacked > _RATIO_FLOOR and unpacked / max(raw.read_bytes, 1) > limits.max_ratio:
                    raise ArchiveError(
                        "compression_ratio", f"the archive unpacks to over {limits.max_ratio:g} times its size"
                    )
                if member.isdir() or _skipped(member.name):
                    yield None
                    continue
                name = _clean_name(member.name)
                if name is None:
                    yield Refused(member.name[:200], "unsafe_path", f"{member.name[:200]}: path leaves the archive")
                    continue
                if not member.isfile():
                    yield Refused(name, "not_a_file", f"{name}: links and devices are not accepted")
                    continue
                if (refused := account(name, member.size, None)) is not None:
                    yield refused
                    continue
                spooled = spool(tf.extractfile(member) or io.BytesIO(), limits.max_entry_bytes)
                if spooled is None:
                    yield Refused(name, "file_too_large", f"{name}: over the {limits.max_entry_bytes} limit")
                    continue
                yield Entry(name, *spooled)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ArchiveError("invalid_archive", f"the TAR is damaged: {e}")


def is_nested_archive(data: IO[bytes]) -> bool:
    return archive_kind(data) is not None
