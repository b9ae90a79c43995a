"""How the key, audit and settings stores put values into text columns, identically on SQLite and Postgres.

JSON is written ASCII-only (everything else escaped), so any ``str`` inside it (NUL and lone surrogates
included) is stored and read back exactly. Plain text columns are stored as given, which Postgres
cannot do for NUL or a lone surrogate; such text is refused on every dialect, so the stores behave the same.
"""

from __future__ import annotations

import json

from polyroute.types import JSONValue

_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder()


def dump_json(value: JSONValue, *, field: str) -> str:
    """``value`` as compact ASCII JSON text.

    Raises:
        ValueError: ``value`` holds NaN or an infinity, which JSON cannot express.
    """
    try:
        return _ENCODER.encode(value)
    except ValueError as exc:
        raise ValueError(f"{field} is not JSON: {exc}") from exc


def load_json(text: str) -> JSONValue:
    """The value ``dump_json`` wrote as ``text``."""
    value: JSONValue = _DECODER.decode(text)
    return value


def is_storable_text(value: str) -> bool:
    """Whether every dialect can store ``value`` in a text column (no NUL, no lone surrogate).

    Lookups use it too: text that cannot be stored matches no row, and Postgres would reject it as a parameter.
    """
    if value.isascii():
        return "\x00" not in value
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def checked_text(value: str, *, field: str) -> str:
    """``value`` itself, if every dialect can store it in a text column.

    Raises:
        ValueError: ``value`` contains NUL (Postgres text cannot hold it) or a lone surrogate (not encodable).
    """
    if not is_storable_text(value):
        raise ValueError(f"{field} contains a NUL character or a lone surrogate, which cannot be stored")
    return value


def checked_optional_text(value: str | None, *, field: str) -> str | None:
    """``checked_text`` for a nullable column."""
    return None if value is None else checked_text(value, field=field)
