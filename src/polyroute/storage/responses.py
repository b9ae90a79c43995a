"""``SqlResponseStore``: stored Responses API turns in the ``stored_response`` table (SQLite and PostgreSQL).

Serves ``previous_response_id``, ``GET``/``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``.
JSON is kept as text and handed back as the same UTF-8 bytes; it is never parsed here.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, CursorResult, delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.storage.base import StoredResponse
from polyroute.storage.tables import stored_response

__all__ = ["SqlResponseStore", "StoredResponse"]

_COLUMNS = ("id", "created_at", "key_id", "model", "input_items", "response")
# ON CONFLICT ... DO UPDATE reads the same on SQLite (3.24+) and PostgreSQL (9.5+), so one statement
# serves both without a dialect branch.
_UPSERT = text(
    f"INSERT INTO {stored_response.name} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + name for name in _COLUMNS)}) "
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in _COLUMNS[1:])}"
)


class SqlResponseStore:
    """A ``ResponseStore`` over SQLAlchemy Core; reads and deletes match the owner as well as the id."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, item: StoredResponse) -> None:
        """Insert ``item``, or replace the stored response with the same id (whoever owned it).

        Raises:
            UnicodeDecodeError: ``input_items`` or ``response`` is not UTF-8.
        """
        params = {
            "id": item.id,
            "created_at": item.created_at,
            "key_id": item.key_id,
            "model": item.model,
            "input_items": item.input_items.decode("utf-8"),
            "response": item.response.decode("utf-8"),
        }
        async with self._engine.begin() as conn:
            await conn.execute(_UPSERT, params)

    async def get(self, response_id: str, *, key_id: str | None) -> StoredResponse | None:
        """Return the response ``response_id`` if ``key_id`` owns it (None owns only unowned ones), else None."""
        query = select(*(stored_response.c[name] for name in _COLUMNS)).where(_owned(response_id, key_id))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return StoredResponse(
            id=row.id,
            created_at=row.created_at,
            key_id=row.key_id,
            model=row.model,
            input_items=row.input_items.encode("utf-8"),
            response=row.response.encode("utf-8"),
        )

    async def delete(self, response_id: str, *, key_id: str | None) -> bool:
        """Delete the response ``response_id`` if ``key_id`` owns it; return whether one was deleted."""
        return await self._delete_where(_owned(response_id, key_id)) > 0

    async def purge_older_than(self, cutoff: float) -> int:
        """Delete every response created before ``cutoff`` (Unix seconds); return how many were deleted."""
        return await self._delete_where(stored_response.c.created_at < cutoff)

    async def _delete_where(self, condition: ColumnElement[bool]) -> int:
        async with self._engine.begin() as conn:
            result: CursorResult[tuple[()]] = await conn.execute(delete(stored_response).where(condition))
        return result.rowcount


def _owned(response_id: str, key_id: str | None) -> ColumnElement[bool]:
    # "key_id = NULL" is never true in SQL; an unowned response is matched with IS NULL instead.
    owner = stored_response.c.key_id.is_(None) if key_id is None else stored_response.c.key_id == key_id
    return (stored_response.c.id == response_id) & owner
