"""``SqlSettingsStore`` against every backend: SQLite always, PostgreSQL under the ``postgres`` marker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from polyroute.storage.base import SettingsStore
from polyroute.storage.migrate import upgrade
from polyroute.storage.settings_store import SqlSettingsStore
from polyroute.storage.sql import create_engine
from polyroute.types import JSONValue
from tests.storage_fixtures import WEIRD

# mypy checks here that SqlSettingsStore satisfies the SettingsStore Protocol.
_STORE_CLASS: type[SettingsStore] = SqlSettingsStore


@pytest.fixture
async def settings(database_url: str) -> AsyncIterator[SqlSettingsStore]:
    """A settings store over a freshly migrated database of each backend."""
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield SqlSettingsStore(engine)
    finally:
        await engine.dispose()


async def stored_rows(settings: SqlSettingsStore) -> list[tuple[Any, ...]]:
    async with settings._engine.connect() as conn:
        rows = await conn.execute(text("SELECT name, value, updated_at FROM gateway_setting ORDER BY updated_at"))
        return [tuple(row) for row in rows]


async def test_get_unknown_name_is_none(settings: SqlSettingsStore) -> None:
    assert await settings.get("ip_filter") is None


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        0,
        -1,
        2**80,
        0.1 + 0.2,
        -0.0,
        "",
        WEIRD,
        "nul \x00 and surrogate \ud800",
        [],
        {},
        [1, "two", None, [3.5], {"four": False}],
        {"allow": ["10.0.0.0/8"], "deny": [], "nested": {"a": {"b": {"c": None}}}},
    ],
    ids=repr,
)
async def test_put_then_get_returns_an_equal_value(settings: SqlSettingsStore, value: JSONValue) -> None:
    await settings.put("setting", value)
    got = await settings.get("setting")
    assert got == value
    assert type(got) is type(value)


async def test_put_json_null_reads_back_as_none(settings: SqlSettingsStore) -> None:
    await settings.put("password_hash", None)
    assert await settings.get("password_hash") is None
    assert [row[:2] for row in await stored_rows(settings)] == [("password_hash", "null")]


async def test_put_replaces_the_value_and_updated_at(settings: SqlSettingsStore) -> None:
    before = time.time()
    await settings.put("require_login", False)
    [(_, _, first_at)] = await stored_rows(settings)
    await settings.put("require_login", {"enabled": True})
    [(_, value, second_at)] = await stored_rows(settings)
    after = time.time()
    assert await settings.get("require_login") == {"enabled": True}
    assert value == '{"enabled":true}'
    assert before <= first_at <= second_at <= after


async def test_names_are_independent(settings: SqlSettingsStore) -> None:
    await settings.put("a", 1)
    await settings.put("b", 2)
    await settings.put("A", 3)
    assert [await settings.get(name) for name in ("a", "b", "A", "c")] == [1, 2, 3, None]


async def test_name_with_sql_metacharacters_and_unicode_round_trips(settings: SqlSettingsStore) -> None:
    await settings.put(WEIRD, {"v": WEIRD})
    assert await settings.get(WEIRD) == {"v": WEIRD}
    assert [row[0] for row in await stored_rows(settings)] == [WEIRD]


async def test_huge_value_round_trips(settings: SqlSettingsStore) -> None:
    prices: dict[str, JSONValue] = {
        f"provider/model-{n}": {"input": n / 1e6, "output": n / 5e5, "note": "ü" * 50} for n in range(50_000)
    }
    await settings.put("prices", prices)
    assert await settings.get("prices") == prices


@pytest.mark.parametrize(
    ("name", "value"),
    [("a\x00b", 1), ("\udfff", 1), ("ok", float("nan")), ("ok", [float("inf")])],
    ids=["nul-name", "surrogate-name", "nan", "infinity"],
)
async def test_put_unstorable_raises_value_error_and_stores_nothing(
    settings: SqlSettingsStore, name: str, value: JSONValue
) -> None:
    with pytest.raises(ValueError):
        await settings.put(name, value)
    assert await stored_rows(settings) == []


async def test_get_unstorable_name_is_none(settings: SqlSettingsStore) -> None:
    await settings.put("a", 1)
    assert await settings.get("a\x00") is None
    assert await settings.get("\ud800") is None


async def test_delete_removes_one_name(settings: SqlSettingsStore) -> None:
    await settings.put("a", 1)
    await settings.put("b", 2)
    assert await settings.delete("a") is True
    assert await settings.delete("a") is False
    assert await settings.delete("a\x00") is False
    assert [await settings.get(name) for name in ("a", "b")] == [None, 2]


async def test_purge_removes_names_with_the_prefix_only(settings: SqlSettingsStore) -> None:
    for name in ("auth.session.1", "auth.session.2", "auth.sessionX", "auth.password", "ip_filter"):
        await settings.put(name, 1)
    assert await settings.purge("auth.session.") == 2
    assert [row[0] for row in await stored_rows(settings)] == ["auth.sessionX", "auth.password", "ip_filter"]


async def test_purge_treats_like_wildcards_in_the_prefix_literally(settings: SqlSettingsStore) -> None:
    await settings.put("a_b%c.1", 1)
    await settings.put("aXbYc.1", 2)
    assert await settings.purge("a_b%c.") == 1
    assert await settings.get("aXbYc.1") == 2


async def test_purge_updated_before_keeps_newer_writes(settings: SqlSettingsStore) -> None:
    await settings.put("s.old", 1)
    await settings.put("s.new", 2)
    async with settings._engine.begin() as conn:
        await conn.execute(text("UPDATE gateway_setting SET updated_at = 1000 WHERE name = 's.old'"))
    assert await settings.purge("s.", updated_before=time.time() - 60) == 1
    assert [await settings.get(name) for name in ("s.old", "s.new")] == [None, 2]
