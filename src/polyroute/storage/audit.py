"""``SqlAuditLog``: the append-only record of management actions in the ``audit_log`` table.

``before`` and ``after`` are JSON text. Text that no dialect could store verbatim (NUL, lone
surrogates) is refused with ``ValueError`` rather than altered, so an entry reads back as recorded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.storage.base import AuditEntry
from polyroute.storage.encoding import checked_optional_text, checked_text, dump_json, load_json
from polyroute.storage.tables import audit_log
from polyroute.types import JSONObject

__all__ = ["AuditEntry", "SqlAuditLog"]


class SqlAuditLog:
    """An ``AuditLog`` over SQLAlchemy Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, entry: AuditEntry) -> None:
        """Append ``entry``.

        Raises:
            ValueError: a field cannot be stored verbatim (see module), or ``before``/``after`` is not JSON.
        """
        row = {
            "at": entry.at,
            "actor": checked_optional_text(entry.actor, field="actor"),
            "action": checked_text(entry.action, field="action"),
            "target": checked_optional_text(entry.target, field="target"),
            "ip": checked_optional_text(entry.ip, field="ip"),
            "before": None if entry.before is None else dump_json(entry.before, field="before"),
            "after": None if entry.after is None else dump_json(entry.after, field="after"),
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(audit_log).values(row))

    async def recent(self, *, limit: int) -> list[AuditEntry]:
        """The latest ``limit`` entries, newest first (by ``at``, then by order of recording).

        Raises:
            ValueError: ``limit`` is negative.
        """
        if limit < 0:
            raise ValueError("limit must not be negative")
        query = select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_from_row(row) for row in rows]


def _from_row(row: Row[Any]) -> AuditEntry:
    values = row._mapping
    return AuditEntry(
        at=values["at"],
        actor=values["actor"],
        action=values["action"],
        target=values["target"],
        ip=values["ip"],
        before=_object_or_none(values["before"]),
        after=_object_or_none(values["after"]),
    )


def _object_or_none(text: str | None) -> JSONObject | None:
    if text is None:
        return None
    value = load_json(text)
    if not isinstance(value, dict):
        raise ValueError(f"stored JSON is not an object: {text[:80]!r}")
    return value
