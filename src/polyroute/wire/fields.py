"""Readers for fields of a parsed JSON body that raise ``InvalidRequestError`` naming the field's path.

Shared by the request parsers of every wire format (``messages[2].content[0].type``-style paths).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, TypeVar

import orjson

from polyroute.errors import InvalidRequestError
from polyroute.types import JSONObject, JSONValue


def fail(param: str, message: str) -> NoReturn:
    """Raise the validation error for ``param``."""
    raise InvalidRequestError(f"{param}: {message}", param=param)


def field_path(base: str, key: str) -> str:
    """``base.key``, or ``key`` at the top level."""
    return f"{base}.{key}" if base else key


def as_object(value: JSONValue, param: str) -> JSONObject:
    """``value`` if it is a JSON object, else a validation error naming ``param``."""
    if not isinstance(value, dict):
        fail(param, "must be an object")
    return value


def as_list(value: JSONValue, param: str) -> list[JSONValue]:
    """``value`` if it is a JSON array, else a validation error naming ``param``."""
    if not isinstance(value, list):
        fail(param, "must be an array")
    return value


def opt_str(obj: JSONObject, key: str, base: str) -> str | None:
    """The string at ``obj[key]``; None when absent or null."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    fail(field_path(base, key), "must be a string")


def req_str(obj: JSONObject, key: str, base: str) -> str:
    """The string at ``obj[key]``, which must be present."""
    value = opt_str(obj, key, base)
    if value is None:
        fail(field_path(base, key), "is required")
    return value


def opt_int(obj: JSONObject, key: str, base: str) -> int | None:
    """The integer at ``obj[key]``; None when absent or null."""
    value = obj.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    fail(field_path(base, key), "must be an integer")


def opt_float(obj: JSONObject, key: str) -> float | None:
    """The number at top-level ``obj[key]`` as a float; None when absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    fail(key, "must be a number")


def opt_bool(obj: JSONObject, key: str, base: str) -> bool | None:
    """The boolean at ``obj[key]``; None when absent or null."""
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    fail(field_path(base, key), "must be a boolean")


_T = TypeVar("_T")


def decode_event(data: str, what: str, handle: Callable[[JSONObject], _T]) -> _T:
    """Parse one streamed event's JSON object and hand it to ``handle``.

    Raises:
        ValueError: the data is not a JSON object, or ``handle`` found a field malformed (the message
            names ``what`` stream and the field).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{what} stream event is not JSON: {exc}") from exc
    try:
        return handle(as_object(value, "data"))
    except InvalidRequestError as exc:
        raise ValueError(f"malformed {what} stream event: {exc.message}") from exc
