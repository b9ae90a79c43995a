"""``SqlKeyStore``: API keys in the ``api_key`` table (SQLite and PostgreSQL).

Metadata, model patterns, limits, budget and networks are JSON text; limits and budgets keep every
field, so None (no limit) and 0 (nothing allowed) stay apart. Text that no dialect could store
verbatim (NUL, lone surrogates) is refused with ``ValueError`` rather than altered.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.core.keys import ApiKey, Budget, KeyStatus, KeyType, Limits
from polyroute.storage.base import KeyPage
from polyroute.storage.encoding import checked_optional_text, checked_text, dump_json, is_storable_text, load_json
from polyroute.storage.tables import api_key

__all__ = ["KeyPage", "SqlKeyStore"]

_LIMIT_FIELDS = tuple(f.name for f in fields(Limits))
_BUDGET_FIELDS = tuple(f.name for f in fields(Budget))
# Derived from the secret, so an update never writes them (nor the id it is addressed by).
_FIXED_COLUMNS = frozenset({"id", "digest", "display"})


class SqlKeyStore:
    """A ``KeyStore`` over SQLAlchemy Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, key: ApiKey) -> None:
        """Store a new key.

        Raises:
            ValueError: a key with this id or digest exists already, or a field cannot be stored (see module).
        """
        row = _to_row(key)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(api_key).values(row))
        except IntegrityError as exc:
            raise ValueError(f"an API key with id {key.id!r} or the same digest exists already") from exc

    async def by_digest(self, digest: str) -> ApiKey | None:
        """The key whose secret has this SHA-256 digest (hex), revoked ones included."""
        return await self._one(api_key.c.digest, digest)

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked ones included."""
        return await self._one(api_key.c.id, key_id)

    async def list(
        self, *, key_type: KeyType | None = None, status: KeyStatus | None = None, limit: int = 50, offset: int = 0
    ) -> KeyPage:
        """Keys matching the filters, newest first (ties by id), and how many match in all.

        Raises:
            ValueError: ``limit`` or ``offset`` is negative.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        conditions: list[ColumnElement[bool]] = []
        if key_type is not None:
            conditions.append(api_key.c.type == key_type.value)
        if status is not None:
            conditions.append(api_key.c.status == status.value)
        page = (
            select(api_key)
            .where(*conditions)
            .order_by(api_key.c.created_at.desc(), api_key.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        counted = select(func.count()).select_from(api_key).where(*conditions)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(page)).all()
            total = await conn.scalar(counted)
        return KeyPage([_from_row(row) for row in rows], int(total or 0))

    async def update(self, key: ApiKey) -> None:
        """Replace every stored setting of ``key.id``; its digest and display (both of the secret) never change.

        Raises:
            KeyError: no key has this id.
            ValueError: a field cannot be stored (see module).
        """
        values = {name: value for name, value in _to_row(key).items() if name not in _FIXED_COLUMNS}
        async with self._engine.begin() as conn:
            result: CursorResult[Any] = await conn.execute(update(api_key).where(api_key.c.id == key.id).values(values))
        if result.rowcount == 0:
            raise KeyError(key.id)

    async def count(self) -> int:
        """How many keys exist (revoked ones included)."""
        async with self._engine.connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(api_key))
        return int(total or 0)

    async def _one(self, column: ColumnElement[str], value: str) -> ApiKey | None:
        if not is_storable_text(value):
            return None
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_key).where(column == value))).first()
        return None if row is None else _from_row(row)


def _to_row(key: ApiKey) -> dict[str, Any]:
    """The column values of ``key``; raises ``ValueError`` for what cannot be stored verbatim."""
    return {
        "id": checked_text(key.id, field="id"),
        "type": key.type.value,
        "digest": checked_text(key.digest, field="digest"),
        "display": checked_text(key.display, field="display"),
        "name": checked_optional_text(key.name, field="name"),
        "owner": checked_optional_text(key.owner, field="owner"),
        "metadata": dump_json(key.metadata, field="metadata"),
        "models": dump_json(list(key.models), field="models"),
        "limits": dump_json({name: getattr(key.limits, name) for name in _LIMIT_FIELDS}, field="limits"),
        "budget": dump_json({name: getattr(key.budget, name) for name in _BUDGET_FIELDS}, field="budget"),
        "ips": dump_json(list(key.ips), field="ips"),
        "no_log": key.no_log,
        "status": key.status.value,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "rotated_from": checked_optional_text(key.rotated_from, field="rotated_from"),
        "fallback_scope": key.fallback_scope,
    }


def _from_row(row: Row[Any]) -> ApiKey:
    values = row._mapping
    # Fields stored by another version of this code are ignored if unknown, defaulted if missing.
    limits = _object(values["limits"])
    budget = _object(values["budget"])
    return ApiKey(
        id=values["id"],
        type=KeyType(values["type"]),
        digest=values["digest"],
        display=values["display"],
        name=values["name"],
        owner=values["owner"],
        metadata=_object(values["metadata"]),
        models=tuple(_strings(values["models"])),
        limits=Limits(**{name: limits[name] for name in _LIMIT_FIELDS if name in limits}),
        budget=Budget(**{name: budget[name] for name in _BUDGET_FIELDS if name in budget}),
        ips=tuple(_strings(values["ips"])),
        no_log=bool(values["no_log"]),
        status=KeyStatus(values["status"]),
        created_at=values["created_at"],
        expires_at=values["expires_at"],
        revoked_at=values["revoked_at"],
        rotated_from=values["rotated_from"],
        fallback_scope=values["fallback_scope"],
    )


def _object(text: str) -> dict[str, Any]:
    value = load_json(text)
    if not isinstance(value, dict):
        raise ValueError(f"stored JSON is not an object: {text[:80]!r}")
    return value


def _strings(text: str) -> list[str]:
    value = load_json(text)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return cast("list[str]", value)
    raise ValueError(f"stored JSON is not an array of strings: {text[:80]!r}")
