"""Every error leaves the gateway as JSON: {"error": {"code", "message", "request_id"}}."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, g, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from services.platform.metrics import REJECTIONS, STORAGE_FULL
from services.store.blobs import StorageFull

log = logging.getLogger("kadr.gateway")


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, details: Any = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers or {}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message, "request_id": g.get("request_id", "")}}
    if details is not None:
        body["error"]["details"] = details
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    if 400 <= status < 500 or status in (503, 507):
        REJECTIONS.labels(reason=code).inc()
        log.info("request refused: %s", code, extra={"status": status, "reason": message})
    return resp


def _field_hint(model: type | None, field: str) -> str:
    info = getattr(model, "model_fields", {}).get(field) if model else None
    return f" (allowed: {info.description})" if info is not None and info.description else ""


def validation_message(e: ValidationError, model: type | None = None) -> tuple[str, list[dict[str, str]]]:
    parts: list[str] = []
    details: list[dict[str, str]] = []
    for err in e.errors(include_url=False, include_input=False):
        loc = ".".join(str(x) for x in err["loc"]) or "body"
        field = str(err["loc"][0]) if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}{_field_hint(model, field)}")
        details.append({"field": loc, "message": msg})
    return "; ".join(parts), details


def openapi_validation_callback(e: ValidationError) -> Response:
    message, details = validation_message(e, _model_of(e))
    return error_response(400, "invalid_parameters", message, details)


def _model_of(e: ValidationError) -> type | None:
    from services.contracts import schemas

    return getattr(schemas, e.title, None) or _FORM_MODELS.get(e.title)


_FORM_MODELS: dict[str, type] = {}


def register_form_model(model: type) -> None:
    _FORM_MODELS[model.__name__] = model


def kadr_floor() -> int:
    from flask import current_app

    floor: int = current_app.extensions["kadr"].settings.storage_free_floor_bytes
    return floor


def install(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError) -> Response:
        return error_response(e.status, e.code, e.message, e.details, e.headers)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            400: "bad_request",
            429: "rate_limited",
        }
        code = codes.get(e.code or 500, "http_error")
        msg = e.description or code
        if e.code == 413:
            msg = "the request body is larger than the server accepts"
        return error_response(e.code or 500, code, msg)

    @app.errorhandler(redis.exceptions.OutOfMemoryError)
    def _redis_full(e: redis.exceptions.OutOfMemoryError) -> Response:
        # A write that raced past the high-water mark and met Redis's own refusal: the
        # guard's answer, never a 500.
        from gateway.storage_guard import redis_refused

        err = redis_refused()
        return error_response(err.status, err.code, err.message, headers=err.headers)

    @app.errorhandler(StorageFull)
    def _disk_full(e: StorageFull) -> Response:
        # The disk filled between the floor's reading and this upload's write: the
        # write left nothing behind (storage.py), the client is told to come back.
        from gateway.storage_guard import disk_full

        STORAGE_FULL.labels(store="blobs").inc()
        log.error("the file store ran out of space during an upload: %s", e)
        err = disk_full(0, kadr_floor())
        return error_response(err.status, err.code, err.message, err.details, err.headers)

    @app.errorhandler(RecursionError)
    def _too_deep(e: RecursionError) -> Response:
        # The JSON parser recursing into [[[[...]]]]: the body's fault, not ours.
        return error_response(400, "invalid_body", "the JSON body is nested too deeply")

    @app.errorhandler(Exception)
    def _crash(e: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; quote the request id")
