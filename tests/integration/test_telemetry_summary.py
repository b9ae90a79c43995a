"""``SqlUsageQueries.latency_summary`` on every backend, and ``GET /api/telemetry/summary`` over SQLite."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Route

from polyroute.api.responses import gateway_error_handler
from polyroute.api.telemetry import TelemetryApi, parse_window
from polyroute.errors import GatewayError, InvalidRequestError
from polyroute.storage.base import LatencyGroup, LatencySummary, Percentiles, RequestRecord
from polyroute.storage.migrate import upgrade
from polyroute.storage.sql import SqlRequestLogSink, create_engine
from polyroute.storage.usage import SqlUsageQueries
from tests.storage_fixtures import WEIRD, make_record

T = 1_700_000_000.0
WINDOW = 100.0
GPT4O = "gpt-4o-2024-08-06"

# (offset from T, provider, upstream_model, requested_model, status, latency_ms, ttft_ms, is_stream)
ROWS: list[tuple[Any, ...]] = [
    (-0.001, "openai", GPT4O, "gpt-4o", 200, 7777.0, None, False),  # r0: just before T
    (1.0, "openai", GPT4O, "gpt-4o", 200, 10.0, 5.0, True),  # r1..r4: streamed, TTFT 5..20
    (2.0, "openai", GPT4O, "gpt-4o", 200, 20.0, 10.0, True),
    (3.0, "openai", GPT4O, "gpt-4o", 500, 30.0, 15.0, True),
    (4.0, "openai", GPT4O, "gpt-4o", 200, 40.0, 20.0, True),
    (5.0, "openai", GPT4O, "gpt-4o", 200, 50.0, None, False),  # r5..r10: not streamed
    (6.0, "openai", GPT4O, "gpt-4o", 200, 60.0, None, False),
    (7.0, "openai", GPT4O, "gpt-4o", 429, 70.0, None, False),
    (8.0, "openai", GPT4O, "gpt-4o", 200, 80.0, None, False),
    (9.0, "openai", GPT4O, "gpt-4o", 200, 90.0, None, False),
    (10.0, "openai", GPT4O, "gpt-4o", 200, 100.0, None, False),
    (11.0, "openai", GPT4O, "gpt-4o", 502, 110.0, None, True),  # r11: streamed, failed before the first byte
    (12.0, "openai", None, "gpt-4o-mini", 200, 1000.0, 999.0, False),  # r12: a TTFT on a non-stream is ignored
    (13.0, "openai", None, "gpt-4o-mini", 200, 3000.0, None, False),  # r13: no upstream model: the requested one
    (14.0, "anthropic", "claude-x", "claude", 200, 250.54, 40.26, True),  # r14
    (15.0, None, None, "gpt-4o", 401, 5.0, None, False),  # r15: refused before any provider: not counted
    (WINDOW, "openai", GPT4O, "gpt-4o", 200, 8888.0, None, False),  # r16: exactly at T + WINDOW
]


def record_of(n: int, row: tuple[Any, ...]) -> RequestRecord:
    offset, provider, upstream, requested, status, latency, ttft, is_stream = row
    return make_record(
        n,
        created_at=T + offset,
        provider=provider,
        upstream_model=upstream,
        requested_model=requested,
        status=status,
        latency_ms=latency,
        ttft_ms=ttft,
        is_stream=is_stream,
        error_code=None if status < 400 else "some_error",
    )


RECORDS = [record_of(n, row) for n, row in enumerate(ROWS)]


def pct(p50: float, p95: float, p99: float) -> Percentiles:
    return Percentiles(p50=p50, p95=p95, p99=p99)


def group(
    provider: str, model: str | None, requests: int, errors: int, latency: Percentiles, ttft: Percentiles | None
) -> LatencyGroup:
    return LatencyGroup(
        provider=provider, model=model, requests=requests, errors=errors, latency_ms=latency, ttft_ms=ttft
    )


ANTHROPIC = pct(250.54, 250.54, 250.54), pct(40.26, 40.26, 40.26)
GPT4O_TTFT = pct(10.0, 20.0, 20.0)  # 5, 10, 15, 20: ranks ceil(2) = 2, ceil(3.8) = 4, ceil(3.96) = 4


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
    await SqlRequestLogSink(engine).write_batch(random.Random(7).sample(RECORDS, len(RECORDS)))
    return SqlUsageQueries(engine)


async def test_latency_summary_by_model(usage: SqlUsageQueries) -> None:
    summary = await usage.latency_summary(since=T, until=T + WINDOW, group_by="model")
    assert summary == LatencySummary(
        [
            group("anthropic", "claude-x", 1, 0, *ANTHROPIC),
            # 11 latencies 10..110: ranks ceil(5.5) = 6, ceil(10.45) = 11, ceil(10.89) = 11
            group("openai", GPT4O, 11, 3, pct(60.0, 110.0, 110.0), GPT4O_TTFT),
            group("openai", "gpt-4o-mini", 2, 0, pct(1000.0, 3000.0, 3000.0), None),
        ],
        capped=False,
    )


async def test_latency_summary_by_provider(usage: SqlUsageQueries) -> None:
    summary = await usage.latency_summary(since=T, until=T + WINDOW, group_by="provider")
    assert summary == LatencySummary(
        [
            group("anthropic", None, 1, 0, *ANTHROPIC),
            # 13 latencies 10..110, 1000, 3000: ranks ceil(6.5) = 7, ceil(12.35) = 13, ceil(12.87) = 13
            group("openai", None, 13, 3, pct(70.0, 3000.0, 3000.0), GPT4O_TTFT),
        ],
        capped=False,
    )


async def test_latency_summary_percentiles_are_nearest_rank(engine: AsyncEngine) -> None:
    latencies = random.Random(3).sample(range(1, 101), 100)
    records = [
        make_record(n, created_at=T + n, latency_ms=float(ms), is_stream=n < 40, ttft_ms=float(ms) if n < 40 else None)
        for n, ms in enumerate(latencies)
    ]
    await SqlRequestLogSink(engine).write_batch(records)
    [row] = (await SqlUsageQueries(engine).latency_summary(since=T, until=T + 1000, group_by="provider")).groups
    assert (row.requests, row.latency_ms) == (100, pct(50.0, 95.0, 99.0))
    ttfts = sorted(latencies[:40])  # 40 values: the 20th, 38th and 40th smallest
    assert row.ttft_ms == pct(ttfts[19], ttfts[37], ttfts[39])


async def test_latency_summary_includes_since_and_excludes_until(usage: SqlUsageQueries) -> None:
    only_r3 = await usage.latency_summary(since=T + 3, until=T + 4, group_by="model")
    assert only_r3.groups == [group("openai", GPT4O, 1, 1, pct(30.0, 30.0, 30.0), pct(15.0, 15.0, 15.0))]
    r0_to_r16 = await usage.latency_summary(since=T - 0.001, until=T + WINDOW + 0.001, group_by="provider")
    assert [(g.provider, g.requests, g.latency_ms.p99) for g in r0_to_r16.groups] == [
        ("anthropic", 1, 250.54),
        ("openai", 15, 8888.0),
    ]
    assert (await usage.latency_summary(since=T + 15, until=T + WINDOW, group_by="model")).groups == []


async def test_latency_summary_filters_by_provider(usage: SqlUsageQueries) -> None:
    by_model = await usage.latency_summary(since=T, until=T + WINDOW, group_by="model", provider="anthropic")
    assert by_model.groups == [group("anthropic", "claude-x", 1, 0, *ANTHROPIC)]
    by_provider = await usage.latency_summary(since=T, until=T + WINDOW, group_by="provider", provider="anthropic")
    assert by_provider.groups == [group("anthropic", None, 1, 0, *ANTHROPIC)]
    nothing = LatencySummary([], capped=False)
    assert await usage.latency_summary(since=T, until=T + WINDOW, group_by="model", provider="azure") == nothing
    assert await usage.latency_summary(since=T, until=T + WINDOW, group_by="model", provider="openai\x00") == nothing


async def test_latency_summary_reads_only_the_most_recent_rows(usage: SqlUsageQueries) -> None:
    capped = await usage.latency_summary(since=T, until=T + WINDOW, group_by="model", max_rows=3)
    assert capped.capped is True  # r14, r13 and r12 (r15 has no provider, so is not a row read)
    assert [(g.provider, g.model, g.requests) for g in capped.groups] == [
        ("anthropic", "claude-x", 1),
        ("openai", "gpt-4o-mini", 2),
    ]
    every = await usage.latency_summary(since=T, until=T + WINDOW, group_by="model", max_rows=14)
    assert every.capped is False and sum(g.requests for g in every.groups) == 14
    assert (await usage.latency_summary(since=T, until=T + WINDOW, group_by="model", max_rows=13)).capped is True


async def test_latency_summary_groups_unicode_verbatim(engine: AsyncEngine) -> None:
    records = [make_record(n, created_at=T + n, provider=WEIRD, upstream_model=WEIRD) for n in range(3)]
    await SqlRequestLogSink(engine).write_batch(records)
    usage = SqlUsageQueries(engine)
    summary = await usage.latency_summary(since=T, until=T + 10, group_by="model", provider=WEIRD)
    assert [(g.provider, g.model, g.requests) for g in summary.groups] == [(WEIRD, WEIRD, 3)]


async def test_latency_summary_on_an_empty_log_is_empty(engine: AsyncEngine) -> None:
    summary = await SqlUsageQueries(engine).latency_summary(since=0, until=2e9, group_by="provider")
    assert summary == LatencySummary([], capped=False)


@pytest.mark.parametrize(("group_by", "max_rows"), [("key", 10), ("", 10), ("model", 0)])
async def test_latency_summary_bad_arguments_raise_value_error(
    engine: AsyncEngine, group_by: Any, max_rows: int
) -> None:
    with pytest.raises(ValueError):
        await SqlUsageQueries(engine).latency_summary(since=0, until=1, group_by=group_by, max_rows=max_rows)


@pytest.mark.parametrize(
    ("raw", "seconds"), [("15m", 900), ("1h", 3600), ("24h", 86400), ("7d", 604800), ("30d", 2592000)]
)
def test_parse_window_accepts_minutes_hours_and_days(raw: str, seconds: float) -> None:
    assert parse_window(raw) == seconds


@pytest.mark.parametrize("raw", ["banana", "", "0h", "31d", "721h", "1.5h", "-1h", "1H", "1w", "h", " 1h", "1000000m"])
def test_parse_window_rejects_other_text(raw: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_window(raw)
    assert caught.value.param == "window"


@pytest.fixture
async def client(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The summary route in a bare Starlette app over a SQLite log holding ``RECORDS``; now is ``T + WINDOW``."""
    await upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    await SqlRequestLogSink(engine).write_batch(RECORDS)
    api = TelemetryApi(SqlUsageQueries(engine), clock=lambda: T + WINDOW)
    app = Starlette(
        routes=[Route("/api/telemetry/summary", api.summary, methods=["GET"])],
        exception_handlers={GatewayError: gateway_error_handler},
    )
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            yield client
    finally:
        await engine.dispose()


async def test_summary_default_window_is_one_hour(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/telemetry/summary")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    gpt4o_stats = {
        "requests": 12,  # r0..r11: the hour reaches back past T
        "errors": 3,
        "error_rate": 0.25,
        "latency_ms": {"p50": 60.0, "p95": 7777.0, "p99": 7777.0},
        "ttft_ms": {"p50": 10.0, "p95": 20.0, "p99": 20.0},
    }
    anthropic_stats = {
        "requests": 1,
        "errors": 0,
        "error_rate": 0.0,
        "latency_ms": {"p50": 250.5, "p95": 250.5, "p99": 250.5},  # rounded to 0.1 ms
        "ttft_ms": {"p50": 40.3, "p95": 40.3, "p99": 40.3},
    }
    assert response.json() == {
        "window": "1h",
        "since": T + WINDOW - 3600,
        "until": T + WINDOW,
        "capped": False,
        "providers": [
            {"provider": "anthropic", **anthropic_stats},
            {
                "provider": "openai",
                "requests": 14,
                "errors": 3,
                "error_rate": 0.2143,  # 3 / 14, to 4 places
                "latency_ms": {"p50": 70.0, "p95": 7777.0, "p99": 7777.0},  # 14 values: ranks 7, 14, 14
                "ttft_ms": {"p50": 10.0, "p95": 20.0, "p99": 20.0},
            },
        ],
        "models": [
            {"provider": "anthropic", "model": "claude-x", **anthropic_stats},
            {"provider": "openai", "model": GPT4O, **gpt4o_stats},
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "requests": 2,
                "errors": 0,
                "error_rate": 0.0,
                "latency_ms": {"p50": 1000.0, "p95": 3000.0, "p99": 3000.0},
                "ttft_ms": None,
            },
        ],
    }


async def test_summary_window_and_provider_filter(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/telemetry/summary", params={"window": "1m", "provider": "openai"})
    body = response.json()
    assert (body["window"], body["since"], body["until"]) == ("1m", T + WINDOW - 60, T + WINDOW)
    assert body["providers"] == body["models"] == []  # the last minute holds only r15, which has no provider
    response = await client.get("/api/telemetry/summary", params={"window": "15m", "provider": "anthropic"})
    body = response.json()
    assert [(p["provider"], p["requests"]) for p in body["providers"]] == [("anthropic", 1)]
    assert [(m["provider"], m["model"]) for m in body["models"]] == [("anthropic", "claude-x")]


@pytest.mark.parametrize("window", ["banana", "31d", "0m", ""])
async def test_summary_bad_window_is_a_400_naming_the_parameter(client: httpx.AsyncClient, window: str) -> None:
    response = await client.get("/api/telemetry/summary", params={"window": window})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "window", "invalid_request")
    assert "window" in error["message"]
