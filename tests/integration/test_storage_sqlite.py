from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from polyroute.storage.batch import BatchingRequestLog
from polyroute.storage.migrate import upgrade, upgrade_sync
from polyroute.storage.sql import SqlRequestLogSink, create_engine, ping
from tests.storage_fixtures import make_record, schema_diff


def db_path(url: str) -> Path:
    database = make_url(url).database
    assert database is not None
    return Path(database)


async def test_upgrade_creates_parent_dir_and_schema_matching_tables(sqlite_url: str) -> None:
    assert not db_path(sqlite_url).parent.exists()
    await upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(schema_diff) == []
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("request_log"))
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
    assert {ix["name"] for ix in indexes} == {"ix_request_log_created_at", "ix_request_log_key_id_created_at"}
    assert version == "0001"


async def test_upgrade_twice_is_a_noop_and_keeps_rows(sqlite_url: str) -> None:
    await upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch([make_record(1)])
        await upgrade(sqlite_url)
        assert await sink.count() == 1
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_are_serialised(sqlite_url: str) -> None:
    await asyncio.gather(*(upgrade(sqlite_url) for _ in range(4)))
    conn = sqlite3.connect(db_path(sqlite_url))
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
    finally:
        conn.close()


def test_upgrade_sync_migrates(sqlite_url: str) -> None:
    upgrade_sync(sqlite_url)
    upgrade_sync(sqlite_url)
    conn = sqlite3.connect(db_path(sqlite_url))
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
    finally:
        conn.close()


async def test_engine_sets_wal_synchronous_normal_and_busy_timeout(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(text("PRAGMA synchronous")) == 1  # NORMAL
            assert await conn.scalar(text("PRAGMA busy_timeout")) == 5000
    finally:
        await engine.dispose()


async def test_sink_round_trips_records_newest_first(sqlite_url: str) -> None:
    await upgrade(sqlite_url)
    written = [
        make_record(0),
        make_record(1, key_id="key_1", ttft_ms=45.5, is_stream=True, prompt_tokens=None, completion_tokens=None),
        make_record(2, status=502, error_code="upstream_error", upstream_model=None, provider=None),
        make_record(3, id="req-000000"),  # a repeated request id is stored, not rejected
    ]
    engine = create_engine(sqlite_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch(written)
        await sink.write_batch([])
        assert await sink.count() == 4
        assert await sink.recent() == written[::-1]
        assert await sink.recent(limit=2) == [written[3], written[2]]
    finally:
        await engine.dispose()


async def test_sink_coerces_values_a_database_rejects(sqlite_url: str) -> None:
    await upgrade(sqlite_url)
    odd = make_record(0, requested_model="a\x00b\ud800", latency_ms=float("nan"), ttft_ms=float("inf"))
    engine = create_engine(sqlite_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch([odd, make_record(1, prompt_tokens=2**70)])
        first, second = sorted(await sink.recent(), key=lambda r: r.created_at)
    finally:
        await engine.dispose()
    assert (first.requested_model, first.latency_ms, first.ttft_ms) == ("a\ufffdb?", 0.0, None)
    assert second.prompt_tokens == 2**63 - 1


async def test_batching_log_writes_through_sql_sink(sqlite_url: str) -> None:
    await upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
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


async def test_ping_is_true_for_a_working_database(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        assert await ping(engine) is True
    finally:
        await engine.dispose()


async def test_ping_is_false_when_the_database_is_unusable(tmp_path: Path) -> None:
    # Not a file that cannot be opened: aiosqlite then leaks a worker thread past the event loop.
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not an SQLite database file" * 100)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        assert await ping(engine) is False
    finally:
        await engine.dispose()
