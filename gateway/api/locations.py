"""Answers that point at what a request made: 201 or 202 with a ``Location`` header."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


def accepted(body: dict[str, Any], location: str) -> Response:
    resp = jsonify(body)
    resp.status_code = 202
    resp.headers["Location"] = location
    return resp


def created(body: dict[str, Any], location: str, status: int = 201) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Location"] = location
    return resp
