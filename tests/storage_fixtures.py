"""Storage fixtures: a temp SQLite URL, and a fresh PostgreSQL database per test session."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import URL, Connection, make_url

from polyroute.storage.base import RequestRecord
from polyroute.storage.migrate import alembic_config
from polyroute.storage.sql import create_engine, migration_transaction
from polyroute.storage.tables import metadata

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
WEIRD = "'; DROP TABLE api_key; -- \" \\ % _ ` $1 ? :name %(x)s é 日本語 👩\u200d💻 \u202e \u2028 e\u0301 \t\n\r"
"""Text to store verbatim: SQL and both drivers' parameter syntax, LIKE wildcards, quotes, escapes, and
non-ASCII (accents, CJK, an emoji ZWJ sequence, right-to-left override, line separator, combining mark)."""


def make_record(n: int = 0, **overrides: Any) -> RequestRecord:
    """A plausible record; ``n`` makes the id and the timestamp distinct and increasing."""
    values: dict[str, Any] = {
        "id": f"req-{n:06d}",
        "created_at": 1_700_000_000.123456 + n,
        "key_id": None,
        "endpoint": "/v1/chat/completions",
        "requested_model": "gpt-4o-mini",
        "provider": "openai",
        "upstream_model": "gpt-4o-mini-2024-07-18",
        "status": 200,
        "latency_ms": 123.456,
        "ttft_ms": None,
        "prompt_tokens": 12,
        "completion_tokens": 34,
        "is_stream": False,
        "error_code": None,
    }
    values.update(overrides)
    return RequestRecord(**values)


async def migrate_to(url: str, revision: str, *, downgrade: bool = False) -> None:
    """Upgrade (or downgrade) the database at ``url`` to ``revision``, as ``migrate.upgrade`` does for head."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if downgrade else command.upgrade)(config, revision)

    engine = create_engine(url)
    try:
        async with migration_transaction(engine) as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


def schema_diff(connection: Connection) -> list[Any]:
    """Differences between the migrated database and ``tables.metadata`` (empty when they match)."""
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


def services_required() -> bool:
    """Whether a missing service must fail the run (CI) instead of skipping."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "false", "0") or os.environ.get("POLYROUTE_TEST_REQUIRE_SERVICES") == "1"


def _run_in_thread(coro_fn: Any, *args: Any) -> Any:
    # A private event loop in its own thread, so pytest-asyncio's loops are never touched.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro_fn(*args)).result()


async def _admin_execute(admin_url: URL, statement: str) -> None:
    conn = await asyncpg.connect(admin_url.render_as_string(hide_password=False), timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL in a directory that does not exist yet."""
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'polyroute.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of each backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """Create ``polyroute_test_<random>`` for this session and drop it afterwards; yields its asyncpg URL."""
    admin_url = make_url(os.environ.get("POLYROUTE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL)
    admin_url = admin_url.set(drivername="postgresql")
    name = f"polyroute_test_{secrets.token_hex(6)}"
    try:
        _run_in_thread(_admin_execute, admin_url, f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        message = f"PostgreSQL not reachable at {admin_url.host}:{admin_url.port or 5432}: {type(exc).__name__}: {exc}"
        if services_required():
            pytest.fail(f"{message} (CI or POLYROUTE_TEST_REQUIRE_SERVICES=1: PostgreSQL is required)", pytrace=False)
        pytest.skip(message)
    yield admin_url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    # WITH (FORCE) (PostgreSQL 13+) ends connections a failed test may have leaked.
    _run_in_thread(_admin_execute, admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def postgres_url(postgres_session_url: str) -> str:
    """The session database, emptied of polyroute's tables before the test."""
    url = make_url(postgres_session_url).set(drivername="postgresql")
    await _admin_execute(
        url, "DROP TABLE IF EXISTS request_log, stored_response, api_key, audit_log, gateway_setting, alembic_version"
    )
    return postgres_session_url
