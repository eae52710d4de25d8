"""Catalog of the official model weight files, and the code that fetches and checks them.

Every file is pinned by URL *and* sha256: a release asset that changes under the same
URL (or a proxy that serves an error page) must never be loaded as a model. Files are
stored flat in the models directory under their upstream file names, which is also
where facexlib looks for its detector/parser weights (``model_rootpath``).

This module is imported by the gateway (readiness) and the CLI (``kadr models``), so it
must stay free of torch and other heavy imports; ``requests`` is imported only when a
download actually runs. Nothing here touches the network at import time.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import requests

CHUNK_BYTES = 1024 * 1024

_GFPGAN = "https://github.com/TencentARC/GFPGAN/releases/download"
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download"
_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_TORCHVISION = "https://download.pytorch.org/models"


@dataclass(frozen=True)
class WeightFile:
    name: str  # catalog key used across kadr (settings, readiness, CLI)
    filename: str  # upstream file name; also the on-disk name
    url: str
    # The full digest, or for torchvision files the digest prefix their name carries:
    # that prefix is what torch.hub's own check_hash verifies, and no full digest is published.
    sha256: str
    version: str  # model version where the project names one, else its release tag
    service: str  # the worker service that loads it
    size_bytes: int | None = None  # lets progress show a total when no Content-Length is sent


CATALOG: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile(
            name="gfpgan_v1.4",
            filename="GFPGANv1.4.pth",
            url=f"{_GFPGAN}/v1.3.4/GFPGANv1.4.pth",
            sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
            version="1.4",
            service="enhance",
            size_bytes=348_632_874,
        ),
        WeightFile(
            # The URL is the one facexlib.detection.init_detection_model itself uses.
            name="retinaface_resnet50",
            filename="detection_Resnet50_Final.pth",
            url=f"{_FACEXLIB}/v0.1.0/detection_Resnet50_Final.pth",
            sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
            version="0.1.0",
            service="enhance",
            size_bytes=109_497_761,
        ),
        WeightFile(
            # The URL is the one facexlib.parsing.init_parsing_model itself uses.
            name="parsenet",
            filename="parsing_parsenet.pth",
            url=f"{_FACEXLIB}/v0.2.2/parsing_parsenet.pth",
            sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
            version="0.2.2",
            service="enhance",
            size_bytes=85_331_193,
        ),
        WeightFile(
            name="realesr_general_x4v3",
            filename="realesr-general-x4v3.pth",
            url=f"{_REAL_ESRGAN}/v0.2.5.0/realesr-general-x4v3.pth",
            sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
            version="0.2.5.0",
            service="enhance",
            size_bytes=4_885_111,
        ),
        WeightFile(
            name="realesrgan_x2plus",
            filename="RealESRGAN_x2plus.pth",
            url=f"{_REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth",
            sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            version="0.2.1",
            service="enhance",
            size_bytes=67_061_725,
        ),
        *(
            WeightFile(name=name, filename=filename, url=f"{_TORCHVISION}/{filename}",
                       sha256=filename.rsplit("-", 1)[1].removesuffix(".pth"),
                       version="torchvision-" + filename.rsplit("-", 1)[1].removesuffix(".pth"),
                       service="segment")
            for name, filename in (
                ("deeplabv3_resnet101", "deeplabv3_resnet101_coco-586e9e4e.pth"),
                ("deeplabv3_resnet50", "deeplabv3_resnet50_coco-cd0a2569.pth"),
                ("deeplabv3_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large-fc3c493d.pth"),
                ("lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_large-d234d4ea.pth"),
            )
        ),
    )
}

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


def missing(models_dir: Path, names: Iterable[str]) -> list[str]:
    """File names of the catalog entries not present (cheap: no hashing), for readiness."""
    return [_entry(n).filename for n in names if not weight_path(models_dir, n).is_file()]


def version_of(names: Iterable[str]) -> str:
    """One version string for a model built from several files (part of cache keys)."""
    return "+".join(_entry(n).version for n in names)


def weight_path(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / _entry(name).filename


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        # Streamed: the GFPGAN file alone is ~350 MB.
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify(models_dir: Path, names: Iterable[str] | None = None) -> list[VerifyResult]:
    results = []
    for entry in _select(names):
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
    entries = _select(names)
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


def _fetch(entry: WeightFile, models_dir: Path, *, session: requests.Session,
           on_progress: ProgressCallback | None, timeout: float) -> int:
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


def _entry(name: str) -> WeightFile:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown weight file {name!r}; known: {', '.join(sorted(CATALOG))}") from None


def _select(names: Iterable[str] | None) -> list[WeightFile]:
    if names is None:
        return list(CATALOG.values())
    return [_entry(n) for n in names]
