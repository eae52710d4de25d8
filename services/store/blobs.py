"""Blob storage: images, videos, masks and results, addressed by opaque keys.

Keys are built by the code (``jobs/<uuid>/input``), never from user file names, so a
name like ``../../etc/passwd`` can only ever be metadata. ``BlobStore`` is the interface
an S3-compatible store would implement; ``LocalBlobStore`` keeps files in a directory.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from services.contracts.settings import Settings

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-.]+)*$")
CHUNK = 1024 * 1024


class BlobNotFound(KeyError):
    pass


class StorageFull(OSError):
    """The store has no room for a write (the disk is full, or a quota is reached). The
    write left nothing behind; workers fail the job with ``storage_full``."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class PrefixUsage:
    """What lies under a prefix: bytes and files, and the newest file's modification time
    (0 when empty). Hidden files (``.tmp-*`` writes in progress, NFS's ``.nfs*``) are
    neither counted nor listed."""

    bytes: int = 0
    files: int = 0
    newest: float = 0.0


def check_key(key: str) -> str:
    if not _KEY_RE.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


class BlobStore(Protocol):
    def put_bytes(self, key: str, data: bytes) -> int: ...
    def put_stream(self, key: str, stream: IO[bytes]) -> int: ...
    def writing(self, key: str) -> AbstractContextManager[BinaryIO]: ...
    def get_bytes(self, key: str) -> bytes: ...
    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]: ...
    def open(self, key: str) -> BinaryIO: ...
    def local_path(self, key: str) -> Path | None: ...
    def size(self, key: str) -> int: ...
    def exists(self, key: str) -> bool: ...
    def copy(self, src: str, dst: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    # Listing, for retention and usage (an S3 store: ListObjectsV2 with a delimiter).
    def folders(self, prefix: str) -> list[str]: ...
    def usage(self, prefix: str) -> PrefixUsage: ...
    # Free bytes where new blobs go; None where the store has no such notion (S3).
    def free_bytes(self) -> int | None: ...


class LocalBlobStore:
    """A directory of files. Writes go to a temp file and are renamed into place, so a
    reader (or a worker killed mid-write) never sees half a blob."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _temp(self, key: str) -> tuple[Path, int, str]:
        """The blob's final path and a hidden temp file beside it (same filesystem, so
        the rename that publishes it is atomic)."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        except OSError as e:
            _raise_full(e, key)
            raise
        return path, fd, tmp

    def _write(self, key: str, fill: Callable[[BinaryIO], object]) -> int:
        path, fd, tmp = self._temp(key)
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
                n = f.tell()
            os.replace(tmp, path)
        except BaseException as e:
            Path(tmp).unlink(missing_ok=True)
            _raise_full(e, key)
            raise
        return n

    def put_bytes(self, key: str, data: bytes) -> int:
        return self._write(key, lambda f: f.write(data))

    def put_stream(self, key: str, stream: IO[bytes]) -> int:
        return self._write(key, lambda f: shutil.copyfileobj(stream, f, CHUNK))

    @contextmanager
    def writing(self, key: str) -> Iterator[BinaryIO]:
        """A seekable file to write a blob into piece by piece (an encoder's strips); the
        blob appears when the block ends without an exception, and not at all otherwise."""
        path, fd, tmp = self._temp(key)
        try:
            with os.fdopen(fd, "w+b") as f:
                yield f
            os.replace(tmp, path)
        except BaseException as e:
            Path(tmp).unlink(missing_ok=True)
            _raise_full(e, key)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise BlobNotFound(key) from e

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        try:
            f = self._path(key).open("rb")
        except FileNotFoundError as e:
            raise BlobNotFound(key) from e
        with f:
            while chunk := f.read(chunk_size):
                yield chunk

    def open(self, key: str) -> BinaryIO:
        """A seekable binary file (decoders such as FFmpeg need to seek)."""
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as e:
            raise BlobNotFound(key) from e

    def local_path(self, key: str) -> Path | None:
        """The file itself, for servers that can send it with Range support; stores
        without local files (S3) return None and callers stream instead."""
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return path

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as e:
            raise BlobNotFound(key) from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def copy(self, src: str, dst: str) -> None:
        # A hard link costs no space; results are never modified in place.
        s, d = self._path(src), self._path(dst)
        if not s.is_file():
            raise BlobNotFound(src)
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = d.with_name(f".tmp-link-{os.getpid()}-{d.name}")
        tmp.unlink(missing_ok=True)
        try:
            try:
                os.link(s, tmp)
            except OSError as e:
                if e.errno in _FULL:
                    raise
                shutil.copyfile(s, tmp)
            os.replace(tmp, d)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            _raise_full(e, dst)
            raise

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        path = self._path(prefix.rstrip("/"))
        if path.is_file():
            path.unlink()
            return 1
        if not path.is_dir():
            return 0
        n = sum(1 for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path, ignore_errors=True)
        return n

    def folders(self, prefix: str) -> list[str]:
        """The names directly under ``prefix`` that hold blobs (hidden ones left out)."""
        path = self._path(prefix.rstrip("/"))
        try:
            with os.scandir(path) as it:
                return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def usage(self, prefix: str) -> PrefixUsage:
        total = files = 0
        newest = 0.0
        for root, dirs, names in os.walk(self._path(prefix.rstrip("/"))):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    st = os.lstat(os.path.join(root, name))
                except FileNotFoundError:
                    continue  # removed while we walked
                total += st.st_size
                files += 1
                newest = max(newest, st.st_mtime)
        return PrefixUsage(total, files, newest)

    def free_bytes(self) -> int | None:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize


def _raise_full(e: BaseException, key: str) -> None:
    """An out-of-space error as ``StorageFull`` (naming the blob); anything else as it was."""
    if isinstance(e, OSError) and not isinstance(e, StorageFull) and e.errno in _FULL:
        raise StorageFull(e.errno, f"no space left for {key}") from e


def open_store(settings: Settings) -> BlobStore:
    return LocalBlobStore(settings.storage_dir)
