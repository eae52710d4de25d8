"""The base of every path, query and form model the API validates.

flask-openapi3 asks a query or form model for its JSON schema on every request, to
know which fields are lists or files, and pydantic builds the schema anew each time:
0.5 ms of a 2 ms upload. These models never change after import, so each schema is
built once per set of arguments; callers get a copy, as if freshly built.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints

# Every id kadr hands out (jobs, batches, videos, events) is a UUID; a path id is held to
# that alphabet, so "<id>:children" or "<id>:items" can never name another record's key.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# Pages start at most this far in (Redis takes 64-bit offsets; a bigger number was a 500).
MAX_OFFSET = 10_000_000

_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


class RequestModel(BaseModel):
    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            key = (cls, args, tuple(sorted(kwargs.items())))
            hash(key)
        except TypeError:  # an unhashable argument: nothing to key a cache on
            return super().model_json_schema(*args, **kwargs)
        if key not in _SCHEMAS:
            _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        return copy.deepcopy(_SCHEMAS[key])
