"""Operation ids as the spec first published them. flask-openapi3 names an operation for
its blueprint, so a route moved into a blueprint of its own would get a new id, and
clients generated from the spec new method names; such a blueprint names its operations
for the blueprint its routes came from."""

from __future__ import annotations

from collections.abc import Callable

from flask_openapi3.utils import get_operation_id_for_path


def named_for(bp_name: str) -> Callable[..., str]:
    # No bp_name parameter: flask-openapi3 passes its own blueprint's name to one that has it.
    def operation_id(*, name: str, path: str, method: str) -> str:
        return get_operation_id_for_path(bp_name=bp_name, name=name, path=path, method=method)

    return operation_id
