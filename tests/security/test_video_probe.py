"""Finding 5: FFmpeg read uploads with whatever demuxer its probing picked and any
protocol, and a missing PyAV made every video upload a 500. Now the demuxer is the one
the magic bytes name, forced; nested opens may read plain files only; and without PyAV
the answer is 503 video_unavailable."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from services.media.video import VideoError, open_input, probe
from testbed.synthetic_video import write_video


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("v") / "v.mp4"
    write_video(np.zeros((6, 64, 96, 3), np.uint8), path)
    return path.read_bytes()


def test_the_demuxer_is_the_one_the_magic_bytes_name(mp4):
    with open_input(io.BytesIO(mp4)) as c:
        assert c.format.name == "mov"  # forced, not probed
    # Matroska magic in front of MP4 content: read as Matroska (and refused), never
    # handed to whichever demuxer FFmpeg's probing would like better.
    forged = b"\x1a\x45\xdf\xa3" + mp4[4:]
    with pytest.raises(VideoError) as e:
        probe(io.BytesIO(forged))
    assert e.value.code == "invalid_video"


def test_nested_opens_may_read_plain_files_only(tmp_path, mp4):
    """The options every open carries: a concat: or http: URL is refused by FFmpeg."""
    import av

    from services.media.video import _SAFE_OPTIONS

    path = tmp_path / "a.mp4"
    path.write_bytes(mp4)
    for url in (f"concat:{path}|{path}", f"subfile,,start,0,end,100,,:{path}", "http://127.0.0.1:9/x.m3u8"):
        with pytest.raises((av.error.FFmpegError, ValueError)):
            av.open(url, options=dict(_SAFE_OPTIONS), timeout=2)


def test_without_pyav_video_uploads_answer_503_not_500(gateway, mp4, monkeypatch):
    client, auth, _ = gateway()
    monkeypatch.setitem(sys.modules, "av", None)  # what "import av" meets where PyAV is not installed
    r = client.post("/api/v1/videos", headers=auth, data={"file": (io.BytesIO(mp4), "v.mp4")})
    assert r.status_code == 503 and r.json["error"]["code"] == "video_unavailable", r.json
