"""Fetching and checking the weight files of weight_catalog.py: ``verify`` hashes what is
on disk against the pinned sha256, ``download`` fetches what is missing or wrong.

The CLI (``kadr models``) imports this module, so it must stay free of torch and other
heavy imports; ``requests`` is imported only when a download actually runs. Nothing here
touches the network at import time.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from services.runtime.weight_catalog import WeightFile, selected

if TYPE_CHECKING:
    import requests

CHUNK_BYTES = 1024 * 1024

VerifyStatus = Literal["ok", "missing", "checksum_mismatch"]
ProgressCallback = Callable[[str, int, "int | None"], None]  # (name, bytes_done, bytes_total)


@dataclass(frozen=True)
class VerifyResult:
    name: str
    filename: str
    path: Path
    status: VerifyStatus
    expected_sha256: str
    actual_sha256: str | None  # None when the file is missing

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class DownloadResult:
    name: str
    filename: str
    path: Path
    action: Literal["downloaded", "already_present"]
    size_bytes: int


class WeightsDownloadError(Exception):
    """A download failed; the message is meant for the operator, as is."""


def digest_matches(entry: WeightFile, actual: str) -> bool:
    if len(entry.sha256) == 64:
        return actual == entry.sha256
    return len(entry.sha256) >= 8 and actual.startswith(entry.sha256)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        # Streamed: the GFPGAN file alone is ~350 MB.
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify(models_dir: Path, names: Iterable[str] | None = None) -> list[VerifyResult]:
    results = []
    for entry in selected(names):
        path = Path(models_dir) / entry.filename
        if not path.is_file():
            results.append(VerifyResult(entry.name, entry.filename, path, "missing", entry.sha256, None))
            continue
        actual = sha256_of(path)
        status: VerifyStatus = "ok" if digest_matches(entry, actual) else "checksum_mismatch"
        results.append(VerifyResult(entry.name, entry.filename, path, status, entry.sha256, actual))
    return results


def download(
    models_dir: Path,
    names: Iterable[str] | None = None,
    *,
    session: requests.Session | None = None,
    on_progress: ProgressCallback | None = None,
    timeout: float = 30,
) -> list[DownloadResult]:
    """Fetch missing or corrupt files; files that already verify are left alone.

    ``session`` is anything with ``requests.Session.get`` semantics (tests pass a fake).
    Raises WeightsDownloadError with an operator-readable message on any failure; a file
    is only ever moved into place after its sha256 matched, so a failed or interrupted
    download never leaves a half-written weight file where the workers would load it.
    """
    models_dir = Path(models_dir)
    entries = selected(names)
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsDownloadError(f"cannot create the models directory {models_dir}: {exc}") from None
    if session is None:
        import requests  # deferred: the gateway imports this module only to verify

        session = requests.Session()

    results = []
    for entry, check in zip(entries, verify(models_dir, [e.name for e in entries])):
        if check.ok:
            results.append(
                DownloadResult(entry.name, entry.filename, check.path, "already_present", check.path.stat().st_size)
            )
            continue
        size = _fetch(entry, models_dir, session=session, on_progress=on_progress, timeout=timeout)
        results.append(DownloadResult(entry.name, entry.filename, check.path, "downloaded", size))
    return results


def _fetch(
    entry: WeightFile,
    models_dir: Path,
    *,
    session: requests.Session,
    on_progress: ProgressCallback | None,
    timeout: float,
) -> int:
    import requests

    target = models_dir / entry.filename
    # Same directory as the target so the final os.replace is an atomic rename.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=models_dir)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    done = 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with session.get(entry.url, stream=True, timeout=timeout) as response:
                    response.raise_for_status()
                    total = _content_length(response) or entry.size_bytes
                    for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                        if not chunk:
                            continue
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(entry.name, done, total)
            except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
                raise WeightsDownloadError(
                    f"could not download {entry.filename} from {entry.url}: the machine seems to be offline "
                    f"or the host is unreachable ({type(exc).__name__}). Copy the file into {models_dir} "
                    "by other means, then run `kadr models verify`."
                ) from None
            except requests.HTTPError as exc:
                code = exc.response.status_code if exc.response is not None else "?"
                raise WeightsDownloadError(
                    f"could not download {entry.filename} from {entry.url}: the server answered HTTP {code}"
                ) from None
            except requests.RequestException as exc:
                raise WeightsDownloadError(f"could not download {entry.filename} from {entry.url}: {exc}") from None
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if not digest_matches(entry, actual):
            raise WeightsDownloadError(
                f"{entry.filename} downloaded from {entry.url} has sha256 {actual}, expected {entry.sha256}; "
                "the file was discarded"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise WeightsDownloadError(f"could not write {entry.filename} into {models_dir}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return done


def _content_length(response: requests.Response) -> int | None:
    try:
        value = int(response.headers.get("Content-Length", ""))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None
