"""Camera webhook credentials: HMAC signatures with a replay window, and tokens."""

from __future__ import annotations

import pytest

from services.contracts.camera_auth import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOKEN_HEADER,
    CameraAuthError,
    signature,
    signed_headers,
    verify,
    verify_hmac,
    verify_token,
)

SECRET = "s3cret-of-camera-01"
BODY = b'{"ts": 1700000000.5, "plate": "A123BC77"}'
NOW = 1_700_000_100.0


def test_valid_signature_is_accepted():
    verify_hmac(SECRET, signed_headers(SECRET, BODY, NOW), BODY, now=NOW)
    # Headers arrive in any case; a few seconds of camera clock skew is fine.
    h = {k.lower(): v for k, v in signed_headers(SECRET, BODY, NOW - 30).items()}
    verify("hmac", SECRET, h, {}, BODY, now=NOW)


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"123.5." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, "123.5", BODY) == "sha256=" + expected


@pytest.mark.parametrize(
    "case",
    [
        "tampered_body",
        "wrong_secret",
        "stale",
        "future",
        "missing_signature",
        "missing_timestamp",
        "garbage_timestamp",
        "timestamp_changed",
        "bare_hex",
    ],
)
def test_bad_signatures_are_rejected(case):
    headers = signed_headers(SECRET, BODY, NOW)
    body = BODY
    now = NOW
    if case == "tampered_body":
        body = BODY.replace(b"A123BC77", b"B123BC77")
    elif case == "wrong_secret":
        headers = signed_headers("another-camera-secret", BODY, NOW)
    elif case == "stale":
        now = NOW + 301
    elif case == "future":
        now = NOW - 301
    elif case == "missing_signature":
        del headers[SIGNATURE_HEADER]
    elif case == "missing_timestamp":
        del headers[TIMESTAMP_HEADER]
    elif case == "garbage_timestamp":
        headers[TIMESTAMP_HEADER] = "yesterday"
    elif case == "timestamp_changed":  # a replay with a fresh timestamp but the old signature
        headers[TIMESTAMP_HEADER] = f"{NOW + 1:.3f}"
    elif case == "bare_hex":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].removeprefix("sha256=")
    with pytest.raises(CameraAuthError):
        verify("hmac", SECRET, headers, {}, body, now=now)


def test_token_in_header_or_query_is_accepted():
    verify_token(SECRET, {TOKEN_HEADER: SECRET}, {})
    verify_token(SECRET, {}, {"token": SECRET})
    verify("token", SECRET, {}, {"token": SECRET}, b"anything", now=NOW)


@pytest.mark.parametrize(
    "headers,query",
    [
        ({TOKEN_HEADER: "wrong"}, {}),
        ({}, {"token": SECRET + "x"}),
        ({}, {}),
        ({TOKEN_HEADER: ""}, {"token": ""}),
        ({TOKEN_HEADER: "ключ"}, {}),
    ],
)
def test_wrong_or_missing_token_is_rejected(headers, query):
    with pytest.raises(CameraAuthError):
        verify("token", SECRET, headers, query, b"", now=NOW)


def test_token_mode_ignores_signatures_and_hmac_mode_ignores_tokens():
    with pytest.raises(CameraAuthError):
        verify("token", SECRET, signed_headers(SECRET, BODY, NOW), {}, BODY, now=NOW)
    with pytest.raises(CameraAuthError):
        verify("hmac", SECRET, {TOKEN_HEADER: SECRET}, {"token": SECRET}, BODY, now=NOW)
