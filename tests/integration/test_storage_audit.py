"""``SqlAuditLog`` against every backend: SQLite always, PostgreSQL under the ``postgres`` marker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from polyroute.storage.audit import AuditEntry, SqlAuditLog
from polyroute.storage.base import AuditLog
from polyroute.storage.migrate import upgrade
from polyroute.storage.sql import create_engine
from tests.storage_fixtures import WEIRD

T0 = 1_700_000_000.123456
# mypy checks here that SqlAuditLog satisfies the AuditLog Protocol.
_LOG_CLASS: type[AuditLog] = SqlAuditLog


def make_entry(n: int = 0, **overrides: Any) -> AuditEntry:
    """A plausible entry; ``n`` makes the time and the target distinct and increasing."""
    values: dict[str, Any] = {
        "at": T0 + n,
        "actor": "key_admin",
        "action": "key.update",
        "target": f"key_{n:04d}",
        "ip": "203.0.113.7",
        "before": {"name": "old", "limits": {"requests_per_minute": None}},
        "after": {"name": "new", "limits": {"requests_per_minute": 0}},
    }
    values.update(overrides)
    return AuditEntry(**values)


@pytest.fixture
async def audit(database_url: str) -> AsyncIterator[SqlAuditLog]:
    """An audit log over a freshly migrated database of each backend."""
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield SqlAuditLog(engine)
    finally:
        await engine.dispose()


async def count_rows(audit: SqlAuditLog) -> int:
    async with audit._engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM audit_log")) or 0)


async def test_record_then_recent_returns_the_same_entry(audit: SqlAuditLog) -> None:
    entry = make_entry(1)
    await audit.record(entry)
    assert await audit.recent(limit=10) == [entry]


async def test_recent_is_newest_first_and_limited(audit: SqlAuditLog) -> None:
    entries = [make_entry(n) for n in range(6)]
    for entry in (entries[3], entries[0], entries[5], entries[1], entries[4], entries[2]):
        await audit.record(entry)
    assert await audit.recent(limit=100) == entries[::-1]
    assert await audit.recent(limit=2) == [entries[5], entries[4]]
    assert await audit.recent(limit=0) == []


async def test_recent_entries_at_the_same_time_come_in_reverse_order_of_recording(audit: SqlAuditLog) -> None:
    first, second, third = (make_entry(0, action=action) for action in ("key.create", "key.update", "key.revoke"))
    for entry in (first, second, third):
        await audit.record(entry)
    assert await audit.recent(limit=3) == [third, second, first]


async def test_recent_on_an_empty_log_is_empty(audit: SqlAuditLog) -> None:
    assert await audit.recent(limit=50) == []


async def test_recent_negative_limit_raises_value_error(audit: SqlAuditLog) -> None:
    with pytest.raises(ValueError):
        await audit.recent(limit=-1)


async def test_optional_fields_none_round_trip(audit: SqlAuditLog) -> None:
    entry = AuditEntry(at=T0, actor=None, action="key.bootstrap", target=None, ip=None)
    await audit.record(entry)
    [got] = await audit.recent(limit=1)
    assert got == entry
    assert (got.actor, got.target, got.ip, got.before, got.after) == (None,) * 5


async def test_empty_before_and_after_stay_empty_objects_not_none(audit: SqlAuditLog) -> None:
    entry = make_entry(1, before={}, after={})
    await audit.record(entry)
    [got] = await audit.recent(limit=1)
    assert (got.before, got.after) == ({}, {})


async def test_every_text_field_with_sql_metacharacters_and_unicode_round_trips(audit: SqlAuditLog) -> None:
    entry = make_entry(
        1,
        actor=f"session:{WEIRD}",
        action=WEIRD,
        target=WEIRD[::-1],
        ip=WEIRD,
        before={WEIRD: [WEIRD, {"nul": "a\x00b", "surrogate": "\udc80"}]},
        after={"name": WEIRD, "big": 2**70, "float": 0.1 + 0.2, "null": None, "bool": False},
    )
    await audit.record(entry)
    assert await audit.recent(limit=1) == [entry]


async def test_huge_before_and_after_round_trip(audit: SqlAuditLog) -> None:
    entry = make_entry(
        1, before={"metadata": {"blob": "y" * 3_000_000}}, after={f"k{n}": [n] * 3 for n in range(30_000)}
    )
    await audit.record(entry)
    assert await audit.recent(limit=1) == [entry]


@pytest.mark.parametrize(
    "overrides",
    [
        {"actor": "a\x00"},
        {"action": "\x00"},
        {"target": "\ud800"},
        {"ip": "1.2.3.4\x00"},
        {"after": {"x": float("nan")}},
    ],
    ids=["nul-actor", "nul-action", "surrogate-target", "nul-ip", "nan-after"],
)
async def test_record_unstorable_field_raises_value_error_and_stores_nothing(
    audit: SqlAuditLog, overrides: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        await audit.record(make_entry(1, **overrides))
    assert await count_rows(audit) == 0
