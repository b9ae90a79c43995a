from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from polyroute.storage.migrate import upgrade, upgrade_sync
from polyroute.storage.sql import create_engine, ping


def db_path(url: str) -> Path:
    database = make_url(url).database
    assert database is not None
    return Path(database)


async def test_upgrade_creates_the_missing_parent_dir(sqlite_url: str) -> None:
    assert not db_path(sqlite_url).parent.exists()
    await upgrade(sqlite_url)
    conn = sqlite3.connect(db_path(sqlite_url))
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0004",)]
    finally:
        conn.close()


def test_upgrade_sync_migrates(sqlite_url: str) -> None:
    upgrade_sync(sqlite_url)
    upgrade_sync(sqlite_url)
    conn = sqlite3.connect(db_path(sqlite_url))
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0004",)]
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


async def test_ping_is_false_when_the_database_is_unusable(tmp_path: Path) -> None:
    # Not a file that cannot be opened: aiosqlite then leaks a worker thread past the event loop.
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not an SQLite database file" * 100)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        assert await ping(engine) is False
    finally:
        await engine.dispose()
