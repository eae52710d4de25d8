"""A ``callback_url`` on new work: checked against the destination policy at once
(services/upkeep/callbacks.py), so a forbidden or unresolvable one is a 400 now rather
than a failed delivery later. Deliveries check again when they connect."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gateway.context import Kadr
from gateway.errors import ApiError
from services.upkeep.callbacks import MAX_URL, CallbackRefused, check, networks

DESCRIPTION = (
    "told once, by a signed POST, when this ends (GET /api/v1/callbacks/secret has the key to "
    "check it); http(s), public addresses only unless the operator allows a network"
)


def field() -> Any:  # pydantic's Field() is typed Any so it fits any annotation
    return Field(None, max_length=MAX_URL, description=DESCRIPTION)


def checked(k: Kadr, url: str | None) -> str:
    if not url:
        return ""
    try:
        check(url, networks(k.settings.callback_allow_networks))
    except CallbackRefused as e:
        raise ApiError(400, e.code, e.message, details={"field": "callback_url"})
    return url
