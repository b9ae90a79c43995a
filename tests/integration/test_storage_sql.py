"""The SQL storage against every backend: SQLite always, PostgreSQL under the ``postgres`` marker."""

from __future__ import annotations

import asyncio

from sqlalchemy import inspect, text

from polyroute.storage.base import RequestRecord
from polyroute.storage.batch import BatchingRequestLog
from polyroute.storage.migrate import upgrade
from polyroute.storage.sql import SqlRequestLogSink, create_engine, ping
from tests.storage_fixtures import make_record, migrate_to, schema_diff

HEAD = "0004"


async def test_upgrade_creates_schema_matching_tables(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(schema_diff) == []
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("request_log"))
            response_indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("stored_response"))
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
    assert {ix["name"] for ix in indexes} == {"ix_request_log_created_at", "ix_request_log_key_id_created_at"}
    assert [ix["name"] for ix in response_indexes] == ["ix_stored_response_created_at"]
    assert version == HEAD


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
    assert [tuple(row) for row in rows] == [(HEAD,)]


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


async def test_upgrade_from_0001_keeps_rows_and_leaves_new_columns_null(database_url: str) -> None:
    await migrate_to(database_url, "0001")
    old = make_record(7, key_id="key_7", ttft_ms=12.5, is_stream=True)
    old_columns = RequestRecord._fields[:14]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("request_log"))
            assert [column["name"] for column in columns][1:] == list(old_columns)
            insert = text(f"INSERT INTO request_log ({', '.join(old_columns)}) VALUES (:{', :'.join(old_columns)})")
            await conn.execute(insert, dict(zip(old_columns, old[:14], strict=True)))
        await upgrade(database_url)
        [stored] = await SqlRequestLogSink(engine).recent()
        assert stored == old
        assert (stored.client_format, stored.upstream_format, stored.dropped_fields) == (None, None, None)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
            assert await conn.run_sync(schema_diff) == []
    finally:
        await engine.dispose()


async def test_downgrade_to_0001_drops_what_0002_added_and_keeps_rows(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        await SqlRequestLogSink(engine).write_batch([make_record(1, client_format="anthropic_messages")])
        await migrate_to(database_url, "0001", downgrade=True)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("request_log"))
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("request_log"))
            assert await conn.scalar(text("SELECT id FROM request_log")) == "req-000001"
    finally:
        await engine.dispose()
    assert "stored_response" not in tables
    assert [column["name"] for column in columns] == ["seq", *RequestRecord._fields[:14]]
    assert {ix["name"] for ix in indexes} == {"ix_request_log_created_at", "ix_request_log_key_id_created_at"}


async def test_sink_round_trips_format_translation_columns(database_url: str) -> None:
    await upgrade(database_url)
    translated = make_record(
        1, client_format="anthropic_messages", upstream_format="openai_chat", dropped_fields="top_k,logit_bias"
    )
    same_format = make_record(2, client_format="openai_chat", upstream_format="openai_chat")
    engine = create_engine(database_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch([make_record(0), translated, same_format])
        newest, middle, oldest = await sink.recent()
    finally:
        await engine.dispose()
    assert (newest, middle) == (same_format, translated)
    assert (middle.client_format, middle.upstream_format, middle.dropped_fields) == (
        "anthropic_messages",
        "openai_chat",
        "top_k,logit_bias",
    )
    assert (oldest.client_format, oldest.upstream_format, oldest.dropped_fields) == (None, None, None)


async def test_sink_coerces_values_a_database_rejects(database_url: str) -> None:
    await upgrade(database_url)
    odd = make_record(0, requested_model="a\x00b\ud800", latency_ms=float("nan"), ttft_ms=float("inf"))
    engine = create_engine(database_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch(
            [
                odd,
                make_record(1, prompt_tokens=2**70, endpoint="/v1/providers/\x00/x"),
                make_record(2, dropped_fields="top_k,bad\x00name"),
            ]
        )
        first, second, third = sorted(await sink.recent(), key=lambda r: r.created_at)
    finally:
        await engine.dispose()
    assert (first.requested_model, first.latency_ms, first.ttft_ms) == ("a\ufffdb?", 0.0, None)
    assert (second.prompt_tokens, second.endpoint) == (2**63 - 1, "/v1/providers/\ufffd/x")
    assert third.dropped_fields == "top_k,bad\ufffdname"


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


async def test_upgrade_creates_key_audit_and_settings_tables_with_indexes(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            key_indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("api_key"))
            audit_indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("audit_log"))
            setting_pk = await conn.run_sync(lambda c: inspect(c).get_pk_constraint("gateway_setting"))
    finally:
        await engine.dispose()
    assert sorted((ix["name"], ix["column_names"], bool(ix["unique"])) for ix in key_indexes) == [
        ("ix_api_key_created_at", ["created_at"], False),
        ("ix_api_key_digest", ["digest"], True),
    ]
    assert [(ix["name"], ix["column_names"]) for ix in audit_indexes] == [("ix_audit_log_at", ["at"])]
    assert setting_pk["constrained_columns"] == ["name"]


async def test_upgrade_from_0002_keeps_rows_and_defaults_the_usage_columns(database_url: str) -> None:
    await migrate_to(database_url, "0002")
    old = [make_record(1, key_id="key_1", client_format="openai_chat"), make_record(2, status=500, error_code="x")]
    old_columns = RequestRecord._fields[:17]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("request_log"))
            assert [column["name"] for column in columns][1:] == list(old_columns)
            insert = text(f"INSERT INTO request_log ({', '.join(old_columns)}) VALUES (:{', :'.join(old_columns)})")
            await conn.execute(insert, [dict(zip(old_columns, record[:17], strict=True)) for record in old])
        await upgrade(database_url)
        sink = SqlRequestLogSink(engine)
        assert await sink.recent() == old[::-1]
        stored = (await sink.recent())[0]
        assert stored[17:] == (None, None, None, None, False, None, False)
        new = make_record(3, cache_read_tokens=5, cost_usd=0.5, estimated=True)
        await sink.write_batch([new])
        assert await sink.recent() == [new, *old[::-1]]
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
            assert await conn.run_sync(schema_diff) == []
            for table in ("api_key", "audit_log", "gateway_setting"):
                assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0
    finally:
        await engine.dispose()


async def test_downgrade_to_0002_drops_what_0003_added_and_keeps_rows(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        usage = make_record(1, cache_read_tokens=1, cache_write_tokens=2, reasoning_tokens=3, cost_usd=0.25)
        await SqlRequestLogSink(engine).write_batch([usage])
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO gateway_setting VALUES ('a', '1', 0)"))
        await migrate_to(database_url, "0002", downgrade=True)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("request_log"))
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("request_log"))
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            assert await conn.scalar(text("SELECT id FROM request_log")) == "req-000001"
        await upgrade(database_url)
        [again] = await SqlRequestLogSink(engine).recent()
    finally:
        await engine.dispose()
    assert version == "0002"
    assert {"api_key", "audit_log", "gateway_setting"}.isdisjoint(tables)
    assert [column["name"] for column in columns] == ["seq", *RequestRecord._fields[:17]]
    assert {ix["name"] for ix in indexes} == {"ix_request_log_created_at", "ix_request_log_key_id_created_at"}
    assert again == usage._replace(
        cache_read_tokens=None, cache_write_tokens=None, reasoning_tokens=None, cost_usd=None
    )


async def test_sink_round_trips_usage_columns(database_url: str) -> None:
    await upgrade(database_url)
    full = make_record(
        1, cache_read_tokens=1024, cache_write_tokens=0, reasoning_tokens=77, cost_usd=0.000123456789, estimated=True
    )
    zero_cost = make_record(2, cost_usd=0.0, cache_read_tokens=0, reasoning_tokens=0)
    engine = create_engine(database_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch([make_record(0), full, zero_cost])
        newest, middle, oldest = await sink.recent()
    finally:
        await engine.dispose()
    assert (newest, middle) == (zero_cost, full)
    assert (middle.cost_usd, middle.estimated, middle.cache_write_tokens) == (0.000123456789, True, 0)
    assert (newest.cost_usd, newest.estimated) == (0.0, False)
    assert oldest[17:] == (None, None, None, None, False, None, False)


async def test_sink_coerces_usage_values_a_database_rejects(database_url: str) -> None:
    await upgrade(database_url)
    records = [
        make_record(0, cost_usd=float("nan"), cache_read_tokens=2**70),
        make_record(1, cost_usd=float("inf"), reasoning_tokens=-(2**64), cache_write_tokens=2**63),
        make_record(2, cost_usd=float("-inf"), estimated=True),
    ]
    engine = create_engine(database_url)
    try:
        sink = SqlRequestLogSink(engine)
        await sink.write_batch(records)
        first, second, third = sorted(await sink.recent(), key=lambda r: r.created_at)
    finally:
        await engine.dispose()
    assert (first.cost_usd, first.cache_read_tokens) == (None, 2**63 - 1)
    assert (second.cost_usd, second.reasoning_tokens, second.cache_write_tokens) == (None, -(2**63 - 1), 2**63 - 1)
    assert (third.cost_usd, third.estimated) == (None, True)
