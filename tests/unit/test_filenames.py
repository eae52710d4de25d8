"""File name sanitising and de-duplication: examples users hit, plus invariants under hypothesis."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.filenames import MAX_NAME_BYTES, sanitize_filename, unique_names


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\Анна\\Desktop\\IMG_0001.JPG", "IMG_0001.JPG"),
        ("/var/tmp/mixed\\separators/shot.png", "shot.png"),
        ("holiday photos/", "holiday photos"),
        ("\\\\server\\share\\", "share"),
        ("Фото с отпуска.jpg", "Фото с отпуска.jpg"),
        ("我的照片 2024.png", "我的照片 2024.png"),
        ("e\u0301te\u0301.png", "\u00e9t\u00e9.png"),  # NFD from macOS becomes NFC
        ("  ..hidden.png  ", "hidden.png"),
        ("photo.jpg. . ", "photo.jpg"),  # Windows would drop these anyway
        ("a\tb\nc\r\nd.jpg", "a b c d.jpg"),
        ("many     spaces\u00a0and\u3000ideographic.jpg", "many spaces and ideographic.jpg"),
        ("nul\x00byte\x07bell\x7f.jpg", "nulbytebell.jpg"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # right-to-left override spoofing
        ('what<is>this:"a|b"?*.jpg', "what_is_this__a_b___.jpg"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Lpt1.tar.gz", "_Lpt1.tar.gz"),
        ("COM\u00b9.png", "_COM\u00b9.png"),
        ("NUL .jpg", "_NUL .jpg"),
        ("console.jpg", "console.jpg"),
        ("conman", "conman"),
    ],
)
def test_examples(raw, expected):
    assert sanitize_filename(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", ".", "..", "...", "/", "\x00\x01", "\u202e"])
def test_nothing_usable_left_gives_the_default(raw):
    assert sanitize_filename(raw) == "file"
    assert sanitize_filename(raw, default="image") == "image"


def test_a_bad_default_is_sanitised_too():
    assert sanitize_filename("", default="../con") == "_con"
    assert sanitize_filename("", default="") == "file"


def test_long_names_keep_their_extension():
    out = sanitize_filename("x" * 300 + ".jpeg")
    assert len(out) == 120 and out.endswith(".jpeg")
    assert sanitize_filename("abcdef.jpg", max_len=8) == "abcd.jpg"


def test_long_non_ascii_names_fit_a_255_byte_file_system_name():
    out = sanitize_filename("照" * 200 + ".png")
    assert out.endswith(".png") and len(out.encode()) <= MAX_NAME_BYTES
    assert len(out) == (MAX_NAME_BYTES - 4) // 3 + 4  # only whole characters


def test_extension_longer_than_the_limit_is_cut_like_the_rest():
    assert sanitize_filename("a.jpeg", max_len=3) == "a.j"
    assert sanitize_filename("abc.jpg", max_len=4) == "abc"  # no "." left dangling


def test_truncation_that_creates_a_device_name_is_caught():
    assert sanitize_filename("CONSOLE", max_len=3) == "_CO"
    assert sanitize_filename("AUX1234.txt", max_len=7) == "_AU.txt"


def test_max_len_must_be_positive():
    with pytest.raises(ValueError):
        sanitize_filename("a", max_len=0)


# --------------------------------------------------------------------------- unique_names


@pytest.mark.parametrize(
    "names,expected",
    [
        ([], []),
        (["a.jpg", "b.jpg"], ["a.jpg", "b.jpg"]),
        (["a.jpg", "A.JPG", "a.jpg"], ["a.jpg", "A (2).JPG", "a (3).jpg"]),
        # The user's own "a (2).jpg" keeps its name; the generated one steps around it.
        (["a.jpg", "a.jpg", "a (2).jpg"], ["a.jpg", "a (3).jpg", "a (2).jpg"]),
        (["a.jpg", "a.jpg", "a (2).jpg", "a (2).jpg"], ["a.jpg", "a (3).jpg", "a (2).jpg", "a (2) (2).jpg"]),
        (["README", "readme", "ReadMe"], ["README", "readme (2)", "ReadMe (3)"]),
        (["Фото.jpg", "ФОТО.JPG"], ["Фото.jpg", "ФОТО (2).JPG"]),
        (["\u00e9.png", "e\u0301.png"], ["\u00e9.png", "e\u0301 (2).png"]),  # same name on macOS
        (["x.tar.gz", "x.tar.gz"], ["x.tar.gz", "x.tar (2).gz"]),
    ],
)
def test_unique_names_examples(names, expected):
    assert unique_names(names) == expected


def test_unique_names_accepts_any_iterable_and_scales_linearly():
    out = unique_names("img.png" for _ in range(5000))
    assert out[0] == "img.png" and out[-1] == "img (5000).png"
    assert len({n.casefold() for n in out}) == 5000


# --------------------------------------------------------------------------- properties

names = st.text(st.characters(exclude_categories=()), max_size=300) | st.text(
    st.sampled_from(list("aA./\\ .\t\x00\u202e:*CONconлфя照\u0301é\ud800")), max_size=40
)


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs")


@settings(max_examples=500, deadline=None)
@given(names, st.integers(1, 200))
def test_sanitized_names_are_always_safe(raw, max_len):
    out = sanitize_filename(raw, max_len=max_len)
    assert out
    assert len(out) <= max_len
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
    assert "/" not in out and "\\" not in out
    assert not any(_is_control(ch) for ch in out)
    assert not out.startswith((".", " ")) and not out.endswith((".", " "))
    assert out == unicodedata.normalize("NFC", out)
    assert out.split(".")[0].rstrip(" ").upper() not in {"CON", "PRN", "AUX", "NUL"}
    assert sanitize_filename(out, max_len=max_len) == out  # stable


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a.jpg", "A.JPG", "a (2).jpg", "a (3).JPG", "b", "B", "b (2)", "Я.png", "я.PNG"])
        | st.text(max_size=8),
        max_size=30,
    )
)
def test_unique_names_are_unique_and_keep_first_occurrences(batch):
    out = unique_names(batch)
    assert len(out) == len(batch)
    assert len({n.casefold() for n in out}) == len(out)
    seen = set()
    for before, after in zip(batch, out):
        key = unicodedata.normalize("NFD", unicodedata.normalize("NFD", before).casefold())
        if key not in seen:
            assert after == before
        seen.add(key)


@settings(max_examples=200, deadline=None)
@given(st.lists(names, max_size=20))
def test_sanitize_then_unique_gives_a_safe_zip_listing(batch):
    out = unique_names(sanitize_filename(n) for n in batch)
    assert len({n.casefold() for n in out}) == len(out)
    assert all(n and "/" not in n and "\\" not in n for n in out)
