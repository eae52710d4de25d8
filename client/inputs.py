"""Which files a ``kadr enhance`` run covers, and the relative path each output keeps."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}


class InputError(Exception):
    pass


def collect(paths: Iterable[str | Path], exclude: Path | None = None) -> dict[str, Path]:
    """``{relative path: file}``: a file given by name is taken as is (under its own name);
    a directory gives its images, recursively, relative to it, without hidden files and
    without ``exclude`` (the output directory may well sit inside the input one)."""
    found: dict[str, Path] = {}
    excluded = exclude.resolve() if exclude else None
    for arg in paths:
        p = Path(arg)
        pairs: Iterable[tuple[str, Path]]
        if p.is_dir():
            pairs = _walk(p, excluded)
        elif p.is_file():
            pairs = [(p.name, p)]
        else:
            raise InputError(f"{arg}: no such file or directory")
        for rel, f in pairs:
            if rel in found and found[rel].resolve() != f.resolve():
                raise InputError(
                    f"{found[rel]} and {f} would both be written as {rel}; "
                    "enhance them in separate runs or with separate --out"
                )
            found[rel] = f
    return dict(sorted(found.items()))


def _walk(root: Path, excluded: Path | None) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (excluded is None or (here / d).resolve() != excluded)
        )
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            f = here / name
            yield f.relative_to(root).as_posix(), f
