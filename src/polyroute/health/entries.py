"""The stored form of health state: one immutable entry per key, and its JSON record.

A key is ``(kind, subject, credential)``: a cooldown is keyed by deployment and credential, a broken
credential by provider and credential, a breaker by deployment (credential ``""``). Every entry
carries ``expires_at``, after which it is forgotten (Redis expires the key at the same instant).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple, TypeAlias

import orjson

from polyroute.health.base import EntryKind, LastError
from polyroute.types import JSONObject, JSONValue


class EntryKey(NamedTuple):
    """What an entry is about."""

    kind: EntryKind
    subject: str
    """The deployment label (cooldown, breaker) or the provider name (broken credential)."""
    credential: str
    """The credential fingerprint; ``""`` for a breaker."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cooldown:
    """A deployment+credential resting after 429s."""

    until: float
    strikes: int
    """Consecutive 429s; the next cooldown without ``Retry-After`` doubles with each."""
    expires_at: float
    last_error: LastError | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Broken:
    """A provider credential blocked after an upstream 401/403."""

    until: float
    expires_at: float
    last_error: LastError | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Breaker:
    """A deployment's circuit breaker: closed (``open_until`` None), open, or half-open once open_until passed."""

    failures: int
    """Consecutive failures."""
    opens: int
    """Opens since the breaker was last closed; each re-open doubles the open time."""
    open_until: float | None
    probe_until: float | None
    """When the claimed half-open probe expires; None while unclaimed."""
    expires_at: float
    last_error: LastError | None = None


Entry: TypeAlias = Cooldown | Broken | Breaker

_TYPES: dict[EntryKind, type[Cooldown] | type[Broken] | type[Breaker]] = {
    EntryKind.COOLDOWN: Cooldown,
    EntryKind.BROKEN: Broken,
    EntryKind.BREAKER: Breaker,
}


def provider_of(deployment: str) -> str:
    """The provider part of a ``provider/model`` label."""
    return deployment.partition("/")[0]


def to_record(entry: Entry) -> JSONObject:
    """The entry as a JSON object (floats survive a JSON round trip exactly)."""
    record: JSONObject = {}
    for name in (field.name for field in fields(entry)):
        value = getattr(entry, name)
        record[name] = value.to_json() if isinstance(value, LastError) else value
    return record


def from_record(kind: EntryKind, record: JSONObject) -> Entry:
    """The entry of ``kind`` from its JSON object.

    Raises:
        ValueError: the record does not fit the entry (written by an incompatible version, or corrupted).
    """
    cls = _TYPES[kind]
    values: dict[str, object] = {}
    for field in fields(cls):
        value = record.get(field.name)
        if field.name == "last_error":
            values[field.name] = None if value is None else _last_error(kind, value)
        elif not _fits(field.type, value):
            raise ValueError(f"malformed {kind} record: {field.name}={value!r}")
        else:
            values[field.name] = value
    if set(record) - set(values):
        raise ValueError(f"malformed {kind} record: unknown fields {sorted(set(record) - set(values))}")
    return cls(**values)  # type: ignore[arg-type]


def _fits(annotation: object, value: JSONValue) -> bool:
    if value is None:
        return annotation == "float | None"
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if annotation == "int" else isinstance(value, int | float)


def _last_error(kind: EntryKind, value: JSONValue) -> LastError:
    if isinstance(value, dict):
        status, message, at = value.get("status"), value.get("message"), value.get("at")
        if (status is None or type(status) is int) and isinstance(message, str) and _fits("float", at):
            return LastError(status=status, message=message, at=float(at))  # type: ignore[arg-type]
    raise ValueError(f"malformed last_error in a {kind} record")


def encode(entry: Entry | None) -> bytes:
    """The entry as JSON bytes (``b""`` for none); equal entries encode to equal bytes."""
    return b"" if entry is None else orjson.dumps(to_record(entry))


def decode(kind: EntryKind, raw: bytes | str | None) -> Entry | None:
    """The entry from ``encode``'s bytes (None for none).

    Raises:
        ValueError: not a record of ``kind``.
    """
    if not raw:
        return None
    record = orjson.loads(raw)
    if not isinstance(record, dict):
        raise ValueError(f"malformed {kind} record")
    return from_record(kind, record)


def member_of(key: EntryKey) -> str:
    """The key as one string (a JSON array: labels may contain any character)."""
    return orjson.dumps([key.kind.value, key.subject, key.credential]).decode()


def key_of(member: str | bytes) -> EntryKey:
    """The key from ``member_of``'s string.

    Raises:
        ValueError: not a key written by ``member_of``.
    """
    parts = orjson.loads(member)
    if not (isinstance(parts, list) and len(parts) == 3 and all(isinstance(part, str) for part in parts)):
        raise ValueError(f"malformed health key {member!r}")
    return EntryKey(EntryKind(parts[0]), parts[1], parts[2])
