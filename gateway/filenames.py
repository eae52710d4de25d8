"""Safe file names from whatever a client sent, and de-duplication for archives.

Uploaded names are only ever metadata (blob keys are ours), but they come back in
``Content-Disposition`` headers and as entries of zip downloads that users unpack on
Windows, macOS and Linux. So a sanitised name must be a plain single path component
that every one of those systems accepts, while keeping the user's own letters:
Cyrillic and Chinese names are common for our users and are kept as they are.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["MAX_NAME_BYTES", "sanitize_filename", "unique_names"]

# ext4, APFS and most other file systems cap one name at 255 bytes; 120 Chinese
# characters are 360 bytes of UTF-8, so the character limit alone is not enough.
MAX_NAME_BYTES = 255

_SEPARATORS = re.compile(r"[/\\]")
# Refused by Windows in any name (the path separators are handled separately).
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
# Bidirectional overrides let "photo\u202egpj.exe" display as "photoexe.jpg".
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Device names Windows reserves whatever the extension ("con.txt" opens the console).
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}
)
# Longer "extensions" are more likely part of the name ("v1.final draft of the report").
_MAX_EXT_LEN = 16


def sanitize_filename(name: str, *, default: str = "file", max_len: int = 120) -> str:
    """A safe, non-empty single file name of at most ``max_len`` characters.

    Directories (``/`` and ``\\``) are dropped, as are control characters, bidi
    overrides and leading/trailing dots and spaces; characters Windows refuses
    become ``_``; whitespace runs become one space; Windows device names get a
    ``_`` prefix. Unicode is NFC-normalised and letters of any script are kept.
    The extension survives truncation when it can, and the UTF-8 form never
    exceeds :data:`MAX_NAME_BYTES`. The result is stable: sanitising it again
    returns it unchanged.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    cleaned = _clean(name) or _clean(default) or "file"
    fitted = _truncate_keeping_ext(cleaned, max_len)
    if _is_reserved(fitted):
        fitted = _truncate_keeping_ext("_" + fitted, max_len)
    return fitted


def _clean(name: str) -> str:
    components = [part for part in _SEPARATORS.split(name) if part]
    name = components[-1] if components else ""
    # Whitespace (tabs, newlines, NBSP, ideographic space) becomes a space before
    # control characters are dropped, so "a\tb" stays two words instead of "ab".
    name = "".join(" " if ch.isspace() else ch for ch in name)
    name = "".join(_replacement(ch) for ch in name)
    name = " ".join(name.split())
    # Leading dots hide files (and "..") on Unix; Windows silently drops trailing
    # dots and spaces, which would make the unpacked name differ from ours.
    name = name.strip(". ")
    # Last, because dropping a character can bring a letter and its combining mark together.
    return unicodedata.normalize("NFC", name)


def _replacement(ch: str) -> str:
    if ch in _WINDOWS_FORBIDDEN:
        return "_"
    # Cc: control characters. Cs: lone surrogates (from undecodable bytes), which
    # cannot be encoded as UTF-8 and would break every later use of the name.
    if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS:
        return ""
    return ch


def _is_reserved(name: str) -> bool:
    stem = name.split(".", 1)[0].rstrip(" ")
    return stem.upper() in _WINDOWS_RESERVED


def _split_ext(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    ext = name[dot:] if dot > 0 else ""
    if not ext or len(ext) > _MAX_EXT_LEN or " " in ext:
        return name, ""
    return name[:dot], ext


def _truncate_keeping_ext(name: str, max_len: int) -> str:
    if len(name) <= max_len and len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, ext = _split_ext(name)
    room_chars = max_len - len(ext)
    room_bytes = MAX_NAME_BYTES - len(ext.encode())
    if ext and room_chars >= 1:
        stem = _prefix(stem, room_chars, room_bytes)
        if stem:
            return stem + ext
    return _prefix(name, max_len, MAX_NAME_BYTES).rstrip(". ")


def _prefix(text: str, max_chars: int, max_bytes: int) -> str:
    # Cutting the UTF-8 form and ignoring the torn last character keeps whole characters.
    return text[:max_chars].encode()[:max_bytes].decode("utf-8", "ignore")


def unique_names(names: Iterable[str]) -> list[str]:
    """The same names, in order, with case-insensitive duplicates renamed ``name (2).ext``.

    Every name's first occurrence keeps its name. A generated name never takes one
    that appears literally anywhere in the input, so in
    ``["a.jpg", "a.jpg", "a (2).jpg"]`` the user's own "a (2).jpg" keeps its name and
    the duplicate becomes "a (3).jpg". Case-insensitive (Unicode case folding,
    canonical equivalence) because Windows and macOS file systems are.
    """
    names = list(names)
    keys = [_fold(n) for n in names]
    taken = set(keys)
    emitted: set[str] = set()
    next_number: dict[str, int] = {}
    out = []
    for name, key in zip(names, keys):
        if key not in emitted:
            emitted.add(key)
            out.append(name)
            continue
        renamed = _next_free(name, taken, next_number)
        taken.add(_fold(renamed))
        out.append(renamed)
    return out


def _next_free(name: str, taken: set[str], next_number: dict[str, int]) -> str:
    stem, ext = _split_ext(name)
    base = _fold(name)
    # Remember where each base stopped, so n copies of one name cost O(n), not O(n^2).
    n = next_number.get(base, 2)
    while _fold(candidate := f"{stem} ({n}){ext}") in taken:
        n += 1
    next_number[base] = n + 1
    return candidate


def _fold(name: str) -> str:
    # Canonical caseless matching (Unicode 3.13, D145): "É" composed or decomposed, any case.
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())
