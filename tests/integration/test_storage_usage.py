"""``SqlUsageQueries`` against every backend, over rows written by ``SqlRequestLogSink``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.storage.base import LogPage, RequestRecord, UsageQueries
from polyroute.storage.migrate import upgrade
from polyroute.storage.sql import SqlRequestLogSink, create_engine
from polyroute.storage.usage import SqlUsageQueries
from tests.storage_fixtures import WEIRD, make_record

# mypy checks here that SqlUsageQueries satisfies the UsageQueries Protocol.
_QUERIES_CLASS: type[UsageQueries] = SqlUsageQueries

D = 1_699_920_000  # 2023-11-14T00:00:00Z: the start of a UTC day (so also of an hour)
HOUR, DAY = 3600, 86400

# One request per line: (created_at, key, model, provider, status, prompt, completion, cache_read, cache_write,
# reasoning, cost). Costs are binary fractions, so sums are exact in any order on both databases.
ROWS = [
    (D - 0.5, "key_a", "m1", "openai", 200, 5, 5, None, None, None, 2.0),  # r0: the day and hour before D
    (D + 10, "key_a", "m1", "openai", 200, 100, 50, 10, 5, 7, 0.25),  # r1
    (D + 3599.5, "key_a", "m1", "openai", 500, None, None, None, None, None, None),  # r2
    (D + 3600, "key_b", "m2", "anthropic", 200, 200, 20, None, 4, 3, 0.5),  # r3: exactly on an hour boundary
    (D + 7201, "key_a", "m2", "anthropic", 429, 1, 0, None, None, None, 0.125),  # r4
    (D + DAY, "key_b", "m1", "openai", 200, 1000, 500, 300, None, 100, 1.0),  # r5: exactly on a day boundary
    (D + DAY + 60, None, "m1", None, 401, None, None, None, None, None, None),  # r6: unauthenticated, refused
]


def record_of(n: int, line: tuple[Any, ...]) -> RequestRecord:
    created_at, key_id, model, provider, status, prompt, completion, cache_read, cache_write, reasoning, cost = line
    return make_record(
        n,
        created_at=created_at,
        key_id=key_id,
        requested_model=model,
        provider=provider,
        status=status,
        error_code=None if status < 400 else "some_error",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        cost_usd=cost,
        estimated=n == 4,
    )


RECORDS = [record_of(n, line) for n, line in enumerate(ROWS)]


def totals(
    bucket: int, group: str | None, requests: int, errors: int, *tokens: int, cost: float | None
) -> dict[str, Any]:
    prompt, completion, cache_read, cache_write, reasoning = tokens
    return {
        "bucket": bucket,
        "group": group,
        "requests": requests,
        "errors": errors,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
        "cost_usd": cost,
    }


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine over a freshly migrated database of each backend."""
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def usage(engine: AsyncEngine) -> SqlUsageQueries:
    """Queries over ``RECORDS``, written through the sink in a shuffled order."""
    await SqlRequestLogSink(engine).write_batch([RECORDS[n] for n in (3, 0, 6, 1, 5, 2, 4)])
    return SqlUsageQueries(engine)


@pytest.fixture
async def empty(engine: AsyncEngine) -> SqlUsageQueries:
    """Queries over an empty request log."""
    return SqlUsageQueries(engine)


async def test_history_by_hour_without_grouping(usage: SqlUsageQueries) -> None:
    rows = await usage.history(bucket="hour", group_by=None, since=D, until=D + 2 * DAY)
    assert rows == [
        totals(D, None, 2, 1, 100, 50, 10, 5, 7, cost=0.25),
        totals(D + HOUR, None, 1, 0, 200, 20, 0, 4, 3, cost=0.5),
        totals(D + 2 * HOUR, None, 1, 1, 1, 0, 0, 0, 0, cost=0.125),
        totals(D + DAY, None, 2, 1, 1000, 500, 300, 0, 100, cost=1.0),
    ]
    assert all(type(row["bucket"]) is int and type(row["prompt_tokens"]) is int for row in rows)


async def test_history_by_day_grouped_by_key(usage: SqlUsageQueries) -> None:
    rows = await usage.history(bucket="day", group_by="key", since=D - DAY, until=D + 2 * DAY)
    assert rows == [
        totals(D - DAY, "key_a", 1, 0, 5, 5, 0, 0, 0, cost=2.0),
        totals(D, "key_a", 3, 2, 101, 50, 10, 5, 7, cost=0.375),
        totals(D, "key_b", 1, 0, 200, 20, 0, 4, 3, cost=0.5),
        totals(D + DAY, "key_b", 1, 0, 1000, 500, 300, 0, 100, cost=1.0),
        totals(D + DAY, None, 1, 1, 0, 0, 0, 0, 0, cost=None),  # unknown key last; no known cost is None
    ]


async def test_history_by_day_grouped_by_model(usage: SqlUsageQueries) -> None:
    rows = await usage.history(bucket="day", group_by="model", since=D, until=D + 2 * DAY)
    assert rows == [
        totals(D, "m1", 2, 1, 100, 50, 10, 5, 7, cost=0.25),
        totals(D, "m2", 2, 1, 201, 20, 0, 4, 3, cost=0.625),
        totals(D + DAY, "m1", 2, 1, 1000, 500, 300, 0, 100, cost=1.0),
    ]


async def test_history_by_hour_grouped_by_provider(usage: SqlUsageQueries) -> None:
    rows = await usage.history(bucket="hour", group_by="provider", since=D - HOUR, until=D + 2 * DAY)
    assert [(row["bucket"], row["group"], row["requests"], row["cost_usd"]) for row in rows] == [
        (D - HOUR, "openai", 1, 2.0),
        (D, "openai", 2, 0.25),
        (D + HOUR, "anthropic", 1, 0.5),
        (D + 2 * HOUR, "anthropic", 1, 0.125),
        (D + DAY, "openai", 1, 1.0),
        (D + DAY, None, 1, None),
    ]


async def test_history_for_one_key(usage: SqlUsageQueries) -> None:
    rows = await usage.history(bucket="day", group_by="model", since=0, until=D + 10 * DAY, key_id="key_a")
    assert rows == [
        totals(D - DAY, "m1", 1, 0, 5, 5, 0, 0, 0, cost=2.0),
        totals(D, "m1", 2, 1, 100, 50, 10, 5, 7, cost=0.25),
        totals(D, "m2", 1, 1, 1, 0, 0, 0, 0, cost=0.125),
    ]
    assert await usage.history(bucket="day", group_by=None, since=0, until=D + 10 * DAY, key_id="key_zzz") == []


async def test_history_includes_since_and_excludes_until(usage: SqlUsageQueries) -> None:
    before_r3 = await usage.history(bucket="hour", group_by=None, since=D + 10, until=D + HOUR)
    assert [(row["bucket"], row["requests"]) for row in before_r3] == [(D, 2)]
    from_r3 = await usage.history(bucket="hour", group_by=None, since=D + HOUR, until=D + HOUR + 0.001)
    assert [(row["bucket"], row["requests"]) for row in from_r3] == [(D + HOUR, 1)]
    assert await usage.history(bucket="hour", group_by=None, since=D + 11, until=D + 3599) == []


async def test_history_cost_is_none_only_when_no_cost_is_known(usage: SqlUsageQueries) -> None:
    only_unknown = await usage.history(bucket="hour", group_by=None, since=D + 3000, until=D + HOUR)
    mixed = await usage.history(bucket="hour", group_by=None, since=D, until=D + HOUR)
    assert [row["cost_usd"] for row in only_unknown] == [None]
    assert [row["cost_usd"] for row in mixed] == [0.25]


async def test_history_buckets_negative_and_fractional_times_by_floor(engine: AsyncEngine) -> None:
    times = [-3600.5, -3600.0, -0.5, 0.0, 3599.999, 3600.0, 86399.999999]
    await SqlRequestLogSink(engine).write_batch([make_record(n, created_at=t) for n, t in enumerate(times)])
    usage = SqlUsageQueries(engine)
    hours = await usage.history(bucket="hour", group_by=None, since=-10 * HOUR, until=DAY)
    assert [(row["bucket"], row["requests"]) for row in hours] == [
        (-7200, 1),
        (-3600, 2),
        (0, 2),
        (3600, 1),
        (82800, 1),
    ]
    days = await usage.history(bucket="day", group_by=None, since=-10 * HOUR, until=DAY)
    assert [(row["bucket"], row["requests"]) for row in days] == [(-DAY, 3), (0, 4)]


async def test_history_sums_past_int64_without_an_error(engine: AsyncEngine) -> None:
    await SqlRequestLogSink(engine).write_batch([make_record(n, prompt_tokens=2**62) for n in range(2)])
    [row] = await SqlUsageQueries(engine).history(bucket="day", group_by=None, since=0, until=2e9)
    assert row["prompt_tokens"] == 2**63


async def test_history_groups_unicode_and_sql_metacharacters_verbatim(engine: AsyncEngine) -> None:
    records = [make_record(n, created_at=D + n, key_id=WEIRD, requested_model=WEIRD, provider=WEIRD) for n in range(3)]
    await SqlRequestLogSink(engine).write_batch(records)
    usage = SqlUsageQueries(engine)
    for group_by in ("key", "model", "provider"):
        rows = await usage.history(bucket="day", group_by=group_by, since=D, until=D + DAY, key_id=WEIRD)
        assert [(row["group"], row["requests"]) for row in rows] == [(WEIRD, 3)]


async def test_history_on_an_empty_log_is_empty(empty: SqlUsageQueries) -> None:
    assert await empty.history(bucket="hour", group_by="key", since=0, until=2e9) == []


@pytest.mark.parametrize(("bucket", "group_by"), [("week", None), ("hour", "status"), ("", "key")])
async def test_history_unknown_bucket_or_group_raises_value_error(
    empty: SqlUsageQueries, bucket: Any, group_by: Any
) -> None:
    with pytest.raises(ValueError):
        await empty.history(bucket=bucket, group_by=group_by, since=0, until=1)


async def test_history_with_an_unstorable_key_is_empty(usage: SqlUsageQueries) -> None:
    assert await usage.history(bucket="day", group_by=None, since=0, until=2e9, key_id="key_a\x00") == []


async def test_logs_are_newest_first_as_record_dicts(usage: SqlUsageQueries) -> None:
    page = await usage.logs(limit=100)
    assert page == LogPage([record._asdict() for record in RECORDS[::-1]], 7)
    assert page.rows[2]["estimated"] is True and page.rows[0]["estimated"] is False
    assert page.rows[0]["is_stream"] is False


async def test_logs_page_through_every_row_once(usage: SqlUsageQueries) -> None:
    pages = [await usage.logs(limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [page.total for page in pages] == [7] * 4
    assert [[row["id"] for row in page.rows] for page in pages] == [
        ["req-000006", "req-000005", "req-000004"],
        ["req-000003", "req-000002", "req-000001"],
        ["req-000000"],
        [],
    ]
    assert await usage.logs(limit=0) == LogPage([], 7)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"key_id": "key_a"}, [4, 2, 1, 0]),
        ({"model": "m2"}, [4, 3]),
        ({"provider": "openai"}, [5, 2, 1, 0]),
        ({"status": 200}, [5, 3, 1, 0]),
        ({"status": 418}, []),
        ({"since": D + HOUR}, [6, 5, 4, 3]),
        ({"key_id": "key_a", "model": "m1", "since": D}, [2, 1]),
        ({"key_id": "key_b", "provider": "openai", "status": 200}, [5]),
        ({"key_id": None, "model": None, "provider": None, "status": None, "since": None}, [6, 5, 4, 3, 2, 1, 0]),
    ],
    ids=["key", "model", "provider", "status", "no-such-status", "since", "key-model-since", "three", "none"],
)
async def test_logs_filters(usage: SqlUsageQueries, filters: dict[str, Any], expected: list[int]) -> None:
    page = await usage.logs(limit=100, **filters)
    assert [row["id"] for row in page.rows] == [RECORDS[n].id for n in expected]
    assert page.total == len(expected)
    limited = await usage.logs(limit=1, offset=1, **filters)
    assert (limited.rows, limited.total) == (page.rows[1:2], len(expected))


async def test_logs_filter_by_metacharacters_matches_exactly(engine: AsyncEngine) -> None:
    odd = make_record(1, key_id=WEIRD, requested_model="m%", provider="p_")
    await SqlRequestLogSink(engine).write_batch([make_record(0, requested_model="mx", provider="pq"), odd])
    usage = SqlUsageQueries(engine)
    assert (await usage.logs(limit=10, key_id=WEIRD)).rows == [odd._asdict()]
    assert (await usage.logs(limit=10, model="m%")).rows == [odd._asdict()]
    assert (await usage.logs(limit=10, provider="p_")).rows == [odd._asdict()]


async def test_logs_with_unstorable_filter_text_match_nothing(usage: SqlUsageQueries) -> None:
    assert await usage.logs(limit=10, key_id="key_a\x00") == LogPage([], 0)
    assert await usage.logs(limit=10, model="\ud800") == LogPage([], 0)


@pytest.mark.parametrize("paging", [{"limit": -1}, {"limit": 1, "offset": -1}])
async def test_logs_negative_limit_or_offset_raises_value_error(empty: SqlUsageQueries, paging: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        await empty.logs(**paging)


async def test_spend_sums_known_costs_since_a_time(usage: SqlUsageQueries) -> None:
    assert await usage.spend("key_a", since=D) == 0.375  # r1 0.25 + r2 unknown + r4 0.125
    assert await usage.spend("key_a", since=D - DAY) == 2.375
    assert await usage.spend("key_a", since=D + 7201) == 0.125  # since is inclusive
    assert await usage.spend("key_a", since=D + 7201.001) == 0.0
    assert await usage.spend("key_b", since=0) == 1.5


async def test_spend_without_known_costs_is_zero(usage: SqlUsageQueries, engine: AsyncEngine) -> None:
    await SqlRequestLogSink(engine).write_batch([make_record(9, key_id="key_free", cost_usd=None)])
    assert await usage.spend("key_free", since=0) == 0.0
    assert await usage.spend("key_unknown", since=0) == 0.0
    assert await usage.spend("key_a\x00", since=0) == 0.0
    assert type(await usage.spend("key_free", since=0)) is float


async def test_purge_deletes_only_strictly_older_rows(usage: SqlUsageQueries) -> None:
    assert await usage.purge_request_logs_older_than(D + HOUR) == 3  # r0, r1, r2; r3 is at the cutoff
    assert [row["id"] for row in (await usage.logs(limit=100)).rows] == [RECORDS[n].id for n in (6, 5, 4, 3)]
    assert await usage.purge_request_logs_older_than(D + HOUR) == 0


async def test_purge_on_an_empty_log_is_zero(empty: SqlUsageQueries) -> None:
    assert await empty.purge_request_logs_older_than(2e9) == 0


async def test_purge_deletes_in_batches(engine: AsyncEngine) -> None:
    await SqlRequestLogSink(engine).write_batch([make_record(n, created_at=D + n) for n in range(25)])
    deletes: list[str] = []

    def count_deletes(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count_deletes)
    try:
        usage = SqlUsageQueries(engine)
        assert await usage.purge_request_logs_older_than(D + 23, batch_size=5) == 23
        assert len(deletes) == 5  # 5 + 5 + 5 + 5 + 3
        deletes.clear()
        await SqlRequestLogSink(engine).write_batch([make_record(n, created_at=D - n) for n in range(1, 11)])
        assert await usage.purge_request_logs_older_than(D + 23, batch_size=5) == 10
        assert len(deletes) == 3  # 5 + 5, then an empty batch says there are no more
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count_deletes)
    assert [row["id"] for row in (await usage.logs(limit=10)).rows] == ["req-000024", "req-000023"]


async def test_purge_batch_size_must_be_positive(empty: SqlUsageQueries) -> None:
    with pytest.raises(ValueError):
        await empty.purge_request_logs_older_than(0, batch_size=0)
