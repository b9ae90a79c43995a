"""Creating, changing, revoking and rotating API keys, with every action in the audit log.

Shared by the management API and the ``polyroute keys`` command. Request bodies are validated here
(``KeySpec``/``KeyChanges``): every field is bounded, unknown fields are refused, and nothing is stored
unless the whole body is valid.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from polyroute.core.keys import (
    DEFAULTS,
    ApiKey,
    KeyStatus,
    KeyType,
    digest,
    display_of,
    new_key_id,
    new_secret,
)
from polyroute.errors import InvalidRequestError, NotFoundError
from polyroute.routing.config import FallbackScope
from polyroute.storage.base import AuditEntry, AuditLog, KeyStore
from polyroute.types import JSONObject

MAX_METADATA_BYTES = 16 * 1024
MAX_LIMIT = 10**9
MAX_USD = 10.0**9
_Count = Annotated[int, Field(ge=0, le=MAX_LIMIT)]
_Usd = Annotated[float, Field(ge=0, le=MAX_USD, allow_inf_nan=False)]
_Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
"""Names, owners, patterns and networks: printable, no control characters (NUL included)."""
_UNION_TAGS = frozenset({"float", "int", "str", "bool", "datetime", "date", "none", "list", "dict"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class LimitsSpec(_Strict):
    """Per-key limits; a missing field keeps the type's default, null removes the limit."""

    requests_per_minute: _Count | None = None
    requests_per_hour: _Count | None = None
    requests_per_day: _Count | None = None
    tokens_per_minute: _Count | None = None
    tokens_per_day: _Count | None = None
    max_concurrent: _Count | None = None


class BudgetSpec(_Strict):
    """Spending limits in USD."""

    daily_usd: _Usd | None = None
    weekly_usd: _Usd | None = None
    monthly_usd: _Usd | None = None
    total_usd: _Usd | None = None
    warn_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8


def _check_networks(values: list[str]) -> list[str]:
    for value in values:
        ipaddress.ip_network(value, strict=False)  # raises ValueError, reported with the field's path
    return values


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
    return value


class KeyChanges(_Strict):
    """What ``PATCH /api/keys/{id}`` may change (only the fields given)."""

    name: _Text | None = None
    owner: _Text | None = None
    metadata: dict[str, Any] | None = None
    models: Annotated[list[_Text], Field(max_length=256)] | None = None
    limits: LimitsSpec | None = None
    budget: BudgetSpec | None = None
    ips: Annotated[list[_Text], Field(max_length=256)] | None = None
    expires_at: float | datetime | None = None
    no_log: bool | None = None
    fallback_scope: FallbackScope | None = None
    """How far fallback may wander for this key's requests; null in a change: back to the alias's or global."""

    @field_validator("ips")
    @classmethod
    def _valid_networks(cls, value: list[str] | None) -> list[str] | None:
        return value if value is None else _check_networks(value)

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return value if value is None else _check_metadata(value)


class KeySpec(KeyChanges):
    """``POST /api/keys``: a new key's type and settings."""

    type: KeyType = KeyType.FULL


def parse_body(model: type[_Strict], body: object) -> Any:
    """Validate a JSON body; the first problem becomes an ``InvalidRequestError`` naming its field.

    Raises:
        InvalidRequestError: the body does not fit ``model``.
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        # pydantic names the union member it tried (``expires_at.float``); the field is what the caller needs.
        parts = [str(part) for part in first["loc"] if not (isinstance(part, str) and part in _UNION_TAGS)]
        path = ".".join(part for part in parts if "[" not in part) or "body"
        raise InvalidRequestError(f"{path}: {first['msg']}", param=path) from None


def _timestamp(value: float | datetime | None) -> float | None:
    if value is None:
        return None
    stamp = value.timestamp() if isinstance(value, datetime) else float(value)
    if not math.isfinite(stamp) or stamp < 0:
        raise InvalidRequestError("expires_at: must be a time after 1970", param="expires_at")
    return stamp


def key_record(key: ApiKey) -> JSONObject:
    """A key as the API shows it (never its secret or digest)."""
    return {
        "id": key.id,
        "object": "api_key",
        "type": key.type.value,
        "display": key.display,
        "name": key.name,
        "owner": key.owner,
        "metadata": key.metadata,
        "models": list(key.models),
        "limits": {name: getattr(key.limits, name) for name in LimitsSpec.model_fields},
        "budget": {name: getattr(key.budget, name) for name in BudgetSpec.model_fields},
        "ips": list(key.ips),
        "no_log": key.no_log,
        "fallback_scope": key.fallback_scope,
        "status": key.status.value,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "rotated_from": key.rotated_from,
    }


def _apply(key: ApiKey, changes: KeyChanges) -> ApiKey:
    given = changes.model_fields_set
    updates: dict[str, Any] = {}
    for name in ("name", "owner", "no_log"):
        if name in given and getattr(changes, name) is not None:
            updates[name] = getattr(changes, name)
    if "fallback_scope" in given:
        updates["fallback_scope"] = changes.fallback_scope.value if changes.fallback_scope else None
    if "metadata" in given:
        updates["metadata"] = changes.metadata or {}
    if "models" in given:
        updates["models"] = tuple(changes.models or ())
    if "ips" in given:
        updates["ips"] = tuple(changes.ips or ())
    if "expires_at" in given:
        updates["expires_at"] = _timestamp(changes.expires_at)
    if changes.limits is not None:
        fields = changes.limits.model_fields_set
        updates["limits"] = replace(key.limits, **{f: getattr(changes.limits, f) for f in fields})
    if changes.budget is not None:
        fields = changes.budget.model_fields_set
        updates["budget"] = replace(key.budget, **{f: getattr(changes.budget, f) for f in fields})
    return replace(key, **updates)


class KeyService:
    """Key lifecycle over a key store, recording each action in the audit log."""

    def __init__(self, store: KeyStore, audit: AuditLog, *, on_change: Callable[[ApiKey], None] | None = None) -> None:
        self.store = store
        self.audit = audit
        self._on_change = on_change
        """Told of every changed key (this worker's key cache drops it at once)."""

    async def _audit(
        self, action: str, *, actor: str | None, ip: str | None, now: float, before: ApiKey | None, after: ApiKey
    ) -> None:
        if self._on_change is not None:
            self._on_change(after)
        await self.audit.record(
            AuditEntry(
                at=now,
                actor=actor,
                action=action,
                target=after.id,
                ip=ip,
                before=key_record(before) if before is not None else None,
                after=key_record(after),
            )
        )

    async def create(self, spec: KeySpec, *, actor: str | None, ip: str | None, now: float) -> tuple[str, ApiKey]:
        """A new key from ``spec`` on top of its type's defaults; returns the secret (shown once) and the key."""
        defaults = DEFAULTS[spec.type]
        secret = new_secret(spec.type)
        base = ApiKey(
            id=new_key_id(),
            type=spec.type,
            digest=digest(secret),
            display=display_of(secret),
            limits=defaults.limits,
            created_at=now,
            expires_at=None if defaults.lifetime_s is None else now + defaults.lifetime_s,
        )
        key = _apply(base, spec)
        await self.store.create(key)
        await self._audit("key.create", actor=actor, ip=ip, now=now, before=None, after=key)
        return secret, key

    async def get(self, key_id: str) -> ApiKey:
        """The key with this id.

        Raises:
            NotFoundError: no such key.
        """
        key = await self.store.get(key_id)
        if key is None:
            raise NotFoundError(f"no API key with id {key_id!r}", param="id")
        return key

    async def update(
        self, key_id: str, changes: KeyChanges, *, actor: str | None, ip: str | None, now: float
    ) -> ApiKey:
        """Change a key's settings (its secret and type stay)."""
        before = await self.get(key_id)
        after = _apply(before, changes)
        await self.store.update(after)
        await self._audit("key.update", actor=actor, ip=ip, now=now, before=before, after=after)
        return after

    async def revoke(self, key_id: str, *, actor: str | None, ip: str | None, now: float) -> ApiKey:
        """Revoke a key: it stays stored, and is refused from now on (everywhere within a second)."""
        before = await self.get(key_id)
        if before.status is KeyStatus.REVOKED:
            return before
        after = replace(before, status=KeyStatus.REVOKED, revoked_at=now)
        await self.store.update(after)
        await self._audit("key.revoke", actor=actor, ip=ip, now=now, before=before, after=after)
        return after

    async def rotate(self, key_id: str, *, actor: str | None, ip: str | None, now: float) -> tuple[str, ApiKey]:
        """A new secret with the same settings; the old key is revoked."""
        old = await self.get(key_id)
        if old.status is KeyStatus.REVOKED:
            raise InvalidRequestError(f"API key {key_id!r} is revoked and cannot be rotated", param="id")
        secret = new_secret(old.type)
        new = replace(
            old,
            id=new_key_id(),
            digest=digest(secret),
            display=display_of(secret),
            created_at=now,
            rotated_from=old.id,
        )
        await self.store.create(new)
        await self.revoke(old.id, actor=actor, ip=ip, now=now)
        await self._audit("key.rotate", actor=actor, ip=ip, now=now, before=old, after=new)
        return secret, new

    async def ensure_bootstrap(self, admin_secret: str | None, *, now: float) -> str | None:
        """Make the bootstrap admin key usable; returns a secret that was generated (to print once).

        ``POLYROUTE_ADMIN_KEY`` is stored (by digest) as an admin key if it is not stored yet. Without it,
        an admin key is generated only when no key exists at all.
        """
        if admin_secret:
            if await self.store.by_digest(digest(admin_secret)) is None:
                key = ApiKey(
                    id=new_key_id(),
                    type=KeyType.ADMIN,
                    digest=digest(admin_secret),
                    display=display_of(admin_secret),
                    name="bootstrap (POLYROUTE_ADMIN_KEY)",
                    created_at=now,
                )
                try:
                    await self.store.create(key)
                except ValueError:
                    return None  # another instance stored it first
                await self._audit("key.bootstrap", actor=None, ip=None, now=now, before=None, after=key)
            return None
        if await self.store.count() > 0:
            return None
        secret, _ = await self.create(
            KeySpec(type=KeyType.ADMIN, name="bootstrap (generated)"), actor=None, ip=None, now=now
        )
        return secret
