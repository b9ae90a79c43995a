"""The SQL storage against every backend: SQLite always, PostgreSQL under the ``postgres`` marker."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect, text

from polyroute.storage.batch import BatchingRequestLog
from polyroute.storage.migrate import upgrade
from polyroute.storage.sql import SqlRequestLogSink, create_engine, ping
from tests.storage_fixtures import make_record, schema_diff


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of each backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


async def test_upgrade_creates_schema_matching_tables(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(schema_diff) == []
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("request_log"))
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
    assert {ix["name"] for ix in indexes} == {"ix_request_log_created_at", "ix_request_log_key_id_created_at"}
    assert version == "0001"


async def test_upgrade_twice_is_a_noop_and_keeps_rows(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch([make_record(1)])
        await upgrade(database_url)
        assert await sink.count() == 1
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_are_serialised(database_url: str) -> None:
    async with asyncio.timeout(60):  # a broken lock may deadlock; fail instead of hanging
        await asyncio.gather(*(upgrade(database_url) for _ in range(4)))
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in rows] == [("0001",)]


async def test_sink_round_trips_records_newest_first(database_url: str) -> None:
    await upgrade(database_url)
    written = [
        make_record(0),
        make_record(1, key_id="key_1", ttft_ms=45.5, is_stream=True, prompt_tokens=None, completion_tokens=None),
        make_record(2, status=502, error_code="upstream_error", upstream_model=None, provider=None),
        make_record(3, id="req-000000"),  # a repeated request id is stored, not rejected
    ]
    engine = create_engine(database_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch(written)
        await sink.write_batch([])
        assert await sink.count() == 4
        assert await sink.recent() == written[::-1]
        assert await sink.recent(limit=2) == [written[3], written[2]]
    finally:
        await engine.dispose()


async def test_sink_coerces_values_a_database_rejects(database_url: str) -> None:
    await upgrade(database_url)
    odd = make_record(0, requested_model="a\x00b\ud800", latency_ms=float("nan"), ttft_ms=float("inf"))
    engine = create_engine(database_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch([odd, make_record(1, prompt_tokens=2**70, endpoint="/v1/providers/\x00/x")])
        first, second = sorted(await sink.recent(), key=lambda r: r.created_at)
    finally:
        await engine.dispose()
    assert (first.requested_model, first.latency_ms, first.ttft_ms) == ("a\ufffdb?", 0.0, None)
    assert (second.prompt_tokens, second.endpoint) == (2**63 - 1, "/v1/providers/\ufffd/x")


async def test_batching_log_writes_through_sql_sink(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        sink = SqlRequestLogSink(engine)
        log = BatchingRequestLog(sink, interval_s=0.01, max_batch=500)
        await log.start()
        for n in range(1200):
            log.record(make_record(n))
        await log.aclose()
        assert await sink.count() == 1200
        assert (await sink.recent(limit=1))[0].id == "req-001199"
    finally:
        await engine.dispose()


async def test_ping_is_true_for_a_working_database(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await ping(engine) is True
    finally:
        await engine.dispose()


async def test_ping_is_false_when_the_postgres_server_refuses(unused_tcp_port: int) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{unused_tcp_port}/test")
    try:
        assert await ping(engine) is False
    finally:
        await engine.dispose()
