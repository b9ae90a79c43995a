"""``SqlKeyStore`` against every backend: SQLite always, PostgreSQL under the ``postgres`` marker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from polyroute.core.keys import ApiKey, Budget, KeyStatus, KeyType, Limits, digest, display_of, new_secret
from polyroute.storage.base import KeyStore
from polyroute.storage.keys import KeyPage, SqlKeyStore
from polyroute.storage.migrate import upgrade
from polyroute.storage.sql import create_engine
from tests.storage_fixtures import WEIRD

T0 = 1_700_000_000.123456
# mypy checks here that SqlKeyStore satisfies the KeyStore Protocol.
_STORE_CLASS: type[KeyStore] = SqlKeyStore


def make_key(n: int = 0, **overrides: Any) -> ApiKey:
    """A key with a real digest; ``n`` makes the id and the creation time distinct and increasing."""
    key_type = overrides.pop("type", KeyType.FULL)
    secret = new_secret(key_type)
    values: dict[str, Any] = {
        "id": f"key_{n:04d}",
        "type": key_type,
        "digest": digest(secret),
        "display": display_of(secret),
        "created_at": T0 + n,
    }
    values.update(overrides)
    return ApiKey(**values)


def full_key(n: int = 0, **overrides: Any) -> ApiKey:
    """A key with every field set away from its default."""
    values: dict[str, Any] = {
        "name": "ci runner",
        "owner": "team-infra",
        "metadata": {"team": "infra", "cost_center": 42, "tags": ["a", "b"], "nested": {"x": None, "y": 1.5}},
        "models": ("openai/*", "claude-*", "fast"),
        "limits": Limits(requests_per_minute=60, requests_per_hour=1000, tokens_per_day=2_000_000, max_concurrent=4),
        "budget": Budget(daily_usd=5.0, monthly_usd=100.25, warn_fraction=0.9),
        "ips": ("10.0.0.0/8", "2001:db8::/32"),
        "no_log": True,
        "status": KeyStatus.REVOKED,
        "expires_at": T0 + 86400.000001,
        "revoked_at": T0 + 3600.5,
        "rotated_from": "key_previous",
    }
    values.update(overrides)
    return make_key(n, **values)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlKeyStore]:
    """A store over a freshly migrated database of each backend."""
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield SqlKeyStore(engine)
    finally:
        await engine.dispose()


async def stored_columns(store: SqlKeyStore, key_id: str) -> dict[str, Any]:
    async with store._engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM api_key WHERE id = :id"), {"id": key_id})).one()
    return dict(row._mapping)


async def test_create_then_get_and_by_digest_return_the_same_key(store: SqlKeyStore) -> None:
    key = full_key(1)
    await store.create(key)
    assert await store.get(key.id) == key
    assert await store.by_digest(key.digest) == key


async def test_create_with_defaults_round_trips(store: SqlKeyStore) -> None:
    key = make_key(1, type=KeyType.TEST)
    await store.create(key)
    got = await store.get(key.id)
    assert got == key
    assert got is not None
    assert (got.metadata, got.models, got.ips, got.limits, got.budget) == ({}, (), (), Limits(), Budget())
    assert (got.name, got.owner, got.expires_at, got.revoked_at, got.rotated_from) == (None,) * 5
    assert (got.status, got.no_log, got.type) == (KeyStatus.ACTIVE, False, KeyType.TEST)


async def test_limits_and_budget_keep_none_apart_from_zero(store: SqlKeyStore) -> None:
    limits = Limits(requests_per_minute=0, requests_per_hour=None, requests_per_day=0, tokens_per_minute=None)
    budget = Budget(daily_usd=0.0, weekly_usd=None, monthly_usd=0.0, total_usd=None, warn_fraction=0.0)
    key = make_key(1, limits=limits, budget=budget)
    await store.create(key)
    got = await store.get(key.id)
    assert got is not None
    assert got.limits == limits and got.budget == budget
    assert (got.limits.requests_per_minute, got.limits.requests_per_hour) == (0, None)
    assert (got.budget.daily_usd, got.budget.weekly_usd, got.budget.warn_fraction) == (0.0, None, 0.0)
    assert not got.limits.is_unlimited and not got.budget.is_unlimited


async def test_limits_and_budget_are_stored_as_json_objects_of_every_field(store: SqlKeyStore) -> None:
    key = make_key(1, limits=Limits(max_concurrent=0), budget=Budget(total_usd=12.5), models=("a",), ips=())
    await store.create(key)
    columns = await stored_columns(store, key.id)
    assert json.loads(columns["limits"]) == {
        "requests_per_minute": None,
        "requests_per_hour": None,
        "requests_per_day": None,
        "tokens_per_minute": None,
        "tokens_per_day": None,
        "max_concurrent": 0,
    }
    assert json.loads(columns["budget"]) == {
        "daily_usd": None,
        "weekly_usd": None,
        "monthly_usd": None,
        "total_usd": 12.5,
        "warn_fraction": 0.8,
    }
    assert (json.loads(columns["models"]), json.loads(columns["ips"]), json.loads(columns["metadata"])) == (
        ["a"],
        [],
        {},
    )
    assert (columns["type"], columns["status"]) == ("full", "active")


async def test_stored_json_missing_or_unknown_fields_reads_with_defaults(store: SqlKeyStore) -> None:
    """Rows written by an older or newer version of the code still read."""
    key = make_key(1, limits=Limits(requests_per_minute=5), budget=Budget(daily_usd=1.0))
    await store.create(key)
    async with store._engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_key SET limits = :limits, budget = :budget WHERE id = :id"),
            {"id": key.id, "limits": '{"requests_per_minute":5,"per_fortnight":9}', "budget": '{"daily_usd":1.0}'},
        )
    assert await store.get(key.id) == key


async def test_create_duplicate_id_raises_value_error_and_keeps_the_first(store: SqlKeyStore) -> None:
    first = full_key(1)
    await store.create(first)
    with pytest.raises(ValueError, match="exists already"):
        await store.create(make_key(1, name="intruder"))
    assert await store.get(first.id) == first
    assert await store.count() == 1


async def test_create_duplicate_digest_raises_value_error_and_keeps_the_first(store: SqlKeyStore) -> None:
    first = full_key(1)
    await store.create(first)
    with pytest.raises(ValueError, match="exists already"):
        await store.create(make_key(2, digest=first.digest))
    assert await store.by_digest(first.digest) == first
    assert await store.get("key_0002") is None
    assert await store.count() == 1


async def test_store_still_works_after_a_duplicate_was_refused(store: SqlKeyStore) -> None:
    await store.create(make_key(1))
    with pytest.raises(ValueError):
        await store.create(make_key(1))
    await store.create(make_key(2))
    assert await store.count() == 2


async def test_get_and_by_digest_unknown_are_none(store: SqlKeyStore) -> None:
    await store.create(make_key(1))
    assert await store.get("key_missing") is None
    assert await store.by_digest(digest("pr_full_not-a-stored-secret")) is None
    assert await store.get("") is None


async def test_lookups_with_unstorable_text_are_none(store: SqlKeyStore) -> None:
    await store.create(make_key(1))
    assert await store.get("key_0001\x00") is None
    assert await store.get("key_\ud800") is None
    assert await store.by_digest("\x00") is None


async def test_revoked_keys_are_found_by_id_and_digest(store: SqlKeyStore) -> None:
    key = make_key(1, status=KeyStatus.REVOKED, revoked_at=T0 + 5)
    await store.create(key)
    assert await store.get(key.id) == key
    assert await store.by_digest(key.digest) == key


async def test_every_text_field_with_sql_metacharacters_and_unicode_round_trips(store: SqlKeyStore) -> None:
    key = full_key(
        1,
        id=f"key {WEIRD}",
        digest=f"digest {WEIRD}",
        display=f"pr_{WEIRD}",
        name=WEIRD,
        owner=WEIRD[::-1],
        metadata={WEIRD: WEIRD, "list": [WEIRD, {"k": WEIRD}], "nul": "a\x00b", "surrogate": "\ud800"},
        models=(WEIRD, "gpt-*"),
        ips=(WEIRD,),
        rotated_from=WEIRD,
    )
    await store.create(key)
    assert await store.get(key.id) == key
    assert await store.by_digest(key.digest) == key
    [listed] = (await store.list()).keys
    assert listed == key
    columns = await stored_columns(store, key.id)
    assert (columns["id"], columns["name"], columns["owner"]) == (key.id, WEIRD, WEIRD[::-1])


async def test_metadata_keeps_json_types_and_float_precision(store: SqlKeyStore) -> None:
    metadata: dict[str, Any] = {
        "big": 2**80,
        "negative": -(2**63),
        "float": 0.1 + 0.2,
        "tiny": 5e-324,
        "negative_zero": -0.0,
        "int_like_float": 3.0,
        "bool": True,
        "null": None,
        "empty": {"list": [], "object": {}, "string": ""},
        "order": {"z": 1, "a": 2, "m": 3},
    }
    key = make_key(1, metadata=metadata, created_at=T0 + 0.000001, expires_at=1e-7)
    await store.create(key)
    got = await store.get(key.id)
    assert got == key
    assert got is not None
    assert list(got.metadata["order"]) == ["z", "a", "m"]  # type: ignore[arg-type]
    assert type(got.metadata["int_like_float"]) is float and type(got.metadata["big"]) is int
    assert str(got.metadata["negative_zero"]) == "-0.0"
    assert (got.created_at, got.expires_at) == (T0 + 0.000001, 1e-7)


async def test_huge_metadata_round_trips(store: SqlKeyStore) -> None:
    nested: Any = "leaf"
    for depth in range(200):
        nested = {f"level{depth}": nested, "pad": ["é" * 10] * 3}
    metadata = {
        "blob": "x" * 4_000_000,
        "unicode": "日本語👩\u200d💻" * 50_000,
        "many": {f"k{n}": n for n in range(20_000)},
        "deep": nested,
    }
    key = make_key(1, metadata=metadata)
    await store.create(key)
    assert await store.get(key.id) == key
    assert await store.by_digest(key.digest) == key


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "a\x00b"},
        {"owner": "\x00"},
        {"id": "key_\x00"},
        {"display": "pr_\ud800"},
        {"rotated_from": "x\udfff"},
        {"metadata": {"nan": float("nan")}},
        {"metadata": {"inf": float("-inf")}},
    ],
    ids=["nul-name", "nul-owner", "nul-id", "surrogate-display", "surrogate-rotated-from", "nan", "infinity"],
)
async def test_create_unstorable_field_raises_value_error_and_stores_nothing(
    store: SqlKeyStore, overrides: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        await store.create(make_key(1, **overrides))
    assert await store.count() == 0


async def test_list_is_newest_first_with_total(store: SqlKeyStore) -> None:
    keys = [make_key(n) for n in range(5)]
    for key in (keys[2], keys[0], keys[4], keys[1], keys[3]):
        await store.create(key)
    page = await store.list()
    assert page == KeyPage(keys[::-1], 5)
    assert isinstance(page.keys, list)


async def test_list_ties_in_created_at_are_ordered_by_id_descending(store: SqlKeyStore) -> None:
    for key_id in ("key_b", "key_c", "key_a"):
        await store.create(make_key(0, id=key_id, created_at=T0))
    await store.create(make_key(0, id="key_old", created_at=T0 - 1))
    page = await store.list()
    assert [key.id for key in page.keys] == ["key_c", "key_b", "key_a", "key_old"]


async def test_list_limit_and_offset_page_through_every_key_once(store: SqlKeyStore) -> None:
    keys = [make_key(n) for n in range(7)]
    for key in keys:
        await store.create(key)
    pages = [await store.list(limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [page.total for page in pages] == [7, 7, 7, 7]
    assert [[key.id for key in page.keys] for page in pages] == [
        ["key_0006", "key_0005", "key_0004"],
        ["key_0003", "key_0002", "key_0001"],
        ["key_0000"],
        [],
    ]
    assert await store.list(limit=0) == KeyPage([], 7)


async def test_list_filters_by_type_and_status(store: SqlKeyStore) -> None:
    admin = make_key(1, type=KeyType.ADMIN)
    test_active = make_key(2, type=KeyType.TEST)
    test_revoked = make_key(3, type=KeyType.TEST, status=KeyStatus.REVOKED, revoked_at=T0 + 10)
    full_revoked = make_key(4, type=KeyType.FULL, status=KeyStatus.REVOKED, revoked_at=T0 + 11)
    full_active = make_key(5, type=KeyType.FULL)
    for key in (admin, test_active, test_revoked, full_revoked, full_active):
        await store.create(key)
    assert await store.list(key_type=KeyType.TEST) == KeyPage([test_revoked, test_active], 2)
    assert await store.list(status=KeyStatus.REVOKED) == KeyPage([full_revoked, test_revoked], 2)
    assert await store.list(key_type=KeyType.FULL, status=KeyStatus.ACTIVE) == KeyPage([full_active], 1)
    assert await store.list(key_type=KeyType.ADMIN, status=KeyStatus.REVOKED) == KeyPage([], 0)
    assert await store.list(status=KeyStatus.ACTIVE, limit=1, offset=1) == KeyPage([test_active], 3)


async def test_list_on_an_empty_store_is_empty(store: SqlKeyStore) -> None:
    assert await store.list() == KeyPage([], 0)


@pytest.mark.parametrize("paging", [{"limit": -1}, {"offset": -1}])
async def test_list_negative_limit_or_offset_raises_value_error(store: SqlKeyStore, paging: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        await store.list(**paging)


async def test_update_replaces_every_setting(store: SqlKeyStore) -> None:
    key, other = make_key(1), make_key(2)
    await store.create(key)
    await store.create(other)
    changed = full_key(1, digest=key.digest, display=key.display, type=KeyType.ADMIN, created_at=T0 - 5)
    await store.update(changed)
    assert await store.get(key.id) == changed
    assert await store.by_digest(key.digest) == changed
    assert await store.get(other.id) == other


async def test_update_can_clear_settings_back_to_defaults(store: SqlKeyStore) -> None:
    key = full_key(1)
    await store.create(key)
    cleared = make_key(1, digest=key.digest, display=key.display, type=key.type)
    await store.update(cleared)
    assert await store.get(key.id) == cleared


async def test_update_never_changes_the_digest_or_display(store: SqlKeyStore) -> None:
    key = make_key(1)
    await store.create(key)
    await store.update(replace(key, digest="f" * 64, display="pr_full_XXXX", name="renamed"))
    assert await store.get(key.id) == replace(key, name="renamed")
    assert await store.by_digest("f" * 64) is None


async def test_update_unknown_id_raises_key_error(store: SqlKeyStore) -> None:
    await store.create(make_key(1))
    with pytest.raises(KeyError):
        await store.update(make_key(2))
    assert await store.count() == 1


async def test_update_unstorable_field_raises_value_error_and_keeps_the_key(store: SqlKeyStore) -> None:
    key = full_key(1)
    await store.create(key)
    with pytest.raises(ValueError):
        await store.update(replace(key, name="bad\x00name"))
    with pytest.raises(ValueError):
        await store.update(replace(key, metadata={"x": float("nan")}))
    assert await store.get(key.id) == key


async def test_update_revokes_and_round_trips_the_revocation(store: SqlKeyStore) -> None:
    key = make_key(1)
    await store.create(key)
    revoked = replace(key, status=KeyStatus.REVOKED, revoked_at=T0 + 99.25)
    await store.update(revoked)
    assert await store.get(key.id) == revoked
    assert await store.list(status=KeyStatus.ACTIVE) == KeyPage([], 0)


async def test_count_includes_revoked_keys(store: SqlKeyStore) -> None:
    assert await store.count() == 0
    await store.create(make_key(1))
    await store.create(make_key(2, status=KeyStatus.REVOKED))
    assert await store.count() == 2
