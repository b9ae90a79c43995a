"""``SqlResponseStore`` against every backend: SQLite always, PostgreSQL under the ``postgres`` marker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from polyroute.storage.base import ResponseStore
from polyroute.storage.migrate import upgrade
from polyroute.storage.responses import SqlResponseStore, StoredResponse
from polyroute.storage.sql import create_engine

T0 = 1_700_000_000.123456
# mypy checks here that SqlResponseStore satisfies the ResponseStore Protocol.
_STORE_CLASS: type[ResponseStore] = SqlResponseStore


def make_response(n: int = 0, **overrides: Any) -> StoredResponse:
    """A plausible stored turn; ``n`` makes the id and the timestamp distinct and increasing."""
    response_id = overrides.pop("id", f"resp_{n:06d}")
    values: dict[str, Any] = {
        "id": response_id,
        "created_at": T0 + n,
        "key_id": "key_a",
        "model": "gpt-4o-mini",
        "input_items": orjson.dumps([{"type": "message", "role": "user", "content": f"turn {n}"}]),
        "response": orjson.dumps({"id": response_id, "object": "response", "status": "completed", "output": []}),
    }
    values.update(overrides)
    return StoredResponse(**values)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlResponseStore]:
    """A store over a freshly migrated database of each backend."""
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield SqlResponseStore(engine)
    finally:
        await engine.dispose()


async def count_rows(store: SqlResponseStore) -> int:
    async with store._engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM stored_response")) or 0)


async def test_save_then_get_returns_the_same_bytes(store: SqlResponseStore) -> None:
    history = [
        {"type": "message", "role": "user", "content": 'héllo 👋 \u0000 \\n "quoted"'},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"a": 1}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "x" * 200_000},
    ]
    item = make_response(1, input_items=orjson.dumps(history), created_at=T0 + 0.000001)
    await store.save(item)
    got = await store.get("resp_000001", key_id="key_a")
    assert got == item
    assert got is not None and orjson.loads(got.input_items) == history


async def test_get_unknown_id_is_none(store: SqlResponseStore) -> None:
    await store.save(make_response(1))
    assert await store.get("resp_missing", key_id="key_a") is None


async def test_get_by_another_key_is_none(store: SqlResponseStore) -> None:
    await store.save(make_response(1, key_id="key_a"))
    assert await store.get("resp_000001", key_id="key_b") is None
    assert await store.get("resp_000001", key_id=None) is None
    assert await store.get("resp_000001", key_id="key_a") is not None


async def test_get_unowned_response_only_without_a_key(store: SqlResponseStore) -> None:
    item = make_response(1, key_id=None)
    await store.save(item)
    assert await store.get("resp_000001", key_id=None) == item
    assert await store.get("resp_000001", key_id="key_a") is None


async def test_save_same_id_overwrites(store: SqlResponseStore) -> None:
    await store.save(make_response(1))
    replacement = make_response(
        1, created_at=T0 + 50, model="gpt-4o", response=orjson.dumps({"id": "resp_000001", "status": "incomplete"})
    )
    await store.save(replacement)
    assert await store.get("resp_000001", key_id="key_a") == replacement
    assert await count_rows(store) == 1


async def test_save_rejects_bytes_that_are_not_utf8(store: SqlResponseStore) -> None:
    with pytest.raises(UnicodeDecodeError):
        await store.save(make_response(1, response=b'{"x": "\xff"}'))
    assert await count_rows(store) == 0


async def test_delete_by_owner_removes_the_response(store: SqlResponseStore) -> None:
    await store.save(make_response(1))
    await store.save(make_response(2))
    assert await store.delete("resp_000001", key_id="key_a") is True
    assert await store.get("resp_000001", key_id="key_a") is None
    assert await store.get("resp_000002", key_id="key_a") is not None
    assert await store.delete("resp_000001", key_id="key_a") is False


async def test_delete_by_another_key_keeps_the_response(store: SqlResponseStore) -> None:
    await store.save(make_response(1, key_id="key_a"))
    await store.save(make_response(2, key_id=None))
    assert await store.delete("resp_000001", key_id="key_b") is False
    assert await store.delete("resp_000001", key_id=None) is False
    assert await store.delete("resp_000002", key_id="key_a") is False
    assert await count_rows(store) == 2
    assert await store.delete("resp_000002", key_id=None) is True


async def test_purge_older_than_deletes_only_strictly_older(store: SqlResponseStore) -> None:
    for n in range(5):
        await store.save(make_response(n, key_id=f"key_{n % 2}"))
    assert await store.purge_older_than(T0 + 3) == 3
    assert await count_rows(store) == 2
    assert await store.get("resp_000003", key_id="key_1") is not None
    assert await store.get("resp_000004", key_id="key_0") is not None
    assert await store.purge_older_than(T0 + 3) == 0


async def test_purge_older_than_on_an_empty_table_is_zero(store: SqlResponseStore) -> None:
    assert await store.purge_older_than(T0 + 1_000_000) == 0
