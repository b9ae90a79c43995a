"""``SqlSettingsStore``: gateway-wide settings changed at run time, as JSON text in ``gateway_setting``."""

from __future__ import annotations

import time

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.storage.encoding import checked_text, dump_json, is_storable_text, load_json
from polyroute.storage.tables import gateway_setting
from polyroute.types import JSONValue

__all__ = ["SqlSettingsStore"]

# ON CONFLICT ... DO UPDATE reads the same on SQLite (3.24+) and PostgreSQL (9.5+).
_UPSERT = text(
    f"INSERT INTO {gateway_setting.name} (name, value, updated_at) VALUES (:name, :value, :updated_at) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)


class SqlSettingsStore:
    """A ``SettingsStore`` over SQLAlchemy Core; values are JSON text, read back as written."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, name: str) -> JSONValue | None:
        """The stored value, or None (also for a stored JSON ``null``)."""
        if not is_storable_text(name):
            return None
        query = select(gateway_setting.c.value).where(gateway_setting.c.name == name)
        async with self._engine.connect() as conn:
            stored = await conn.scalar(query)
        return None if stored is None else load_json(stored)

    async def put(self, name: str, value: JSONValue) -> None:
        """Store ``value`` under ``name``, replacing what was there.

        Raises:
            ValueError: ``name`` cannot be stored verbatim (NUL, lone surrogate), or ``value`` is not JSON.
        """
        params = {
            "name": checked_text(name, field="name"),
            "value": dump_json(value, field="value"),
            "updated_at": time.time(),
        }
        async with self._engine.begin() as conn:
            await conn.execute(_UPSERT, params)

    async def delete(self, name: str) -> bool:
        """Remove ``name``; return whether it was stored."""
        if not is_storable_text(name):
            return False
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(gateway_setting).where(gateway_setting.c.name == name))
        return bool(result.rowcount)

    async def purge(self, prefix: str, *, updated_before: float | None = None) -> int:
        """Remove every name starting with ``prefix`` (only those last written before ``updated_before``, if given).

        Raises:
            ValueError: ``prefix`` cannot be stored verbatim (NUL, lone surrogate).
        """
        query = delete(gateway_setting).where(
            gateway_setting.c.name.startswith(checked_text(prefix, field="prefix"), autoescape=True)
        )
        if updated_before is not None:
            query = query.where(gateway_setting.c.updated_at < updated_before)
        async with self._engine.begin() as conn:
            result = await conn.execute(query)
        return int(result.rowcount or 0)
