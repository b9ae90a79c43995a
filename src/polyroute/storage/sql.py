"""The SQL request log over SQLAlchemy Core (async): SQLite via aiosqlite, PostgreSQL via asyncpg.

Every dialect difference lives in this module, in the ``_dialect_*`` helpers and ``migration_transaction``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, event, func, select, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from polyroute.storage.base import RequestRecord
from polyroute.storage.tables import request_log

logger = logging.getLogger(__name__)

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
# Execution option read by the SQLite "begin" listener: which BEGIN to emit (DEFERRED or IMMEDIATE).
_SQLITE_BEGIN = "polyroute_sqlite_begin"
# Key of the Postgres advisory lock that serialises concurrent migrations ("polyrout" as an int64).
_MIGRATION_LOCK_KEY = int.from_bytes(b"polyrout", "big")
_MAX_TEXT_CHARS = 1024
_INT64_MAX = 2**63 - 1
_FIELDS = RequestRecord._fields
_NULLABLE = frozenset(c.name for c in request_log.columns if c.nullable)
_COLUMNS = tuple((name, name in _NULLABLE) for name in _FIELDS)


def create_engine(url: str) -> AsyncEngine:
    """Create the async engine for a ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URL.

    SQLite gets WAL journal mode, ``synchronous=NORMAL`` and a 5 s busy timeout on every connection,
    and the database file's parent directory is created. ``sqlite://`` and ``postgresql://`` URLs are
    accepted and given the async driver.

    Raises:
        ValueError: the URL names another database or driver.
    """
    parsed = _async_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _dialect_sqlite_engine(parsed)
    return _dialect_postgres_engine(parsed)


async def ping(engine: AsyncEngine, *, timeout_s: float = 2.0) -> bool:
    """Return whether ``SELECT 1`` succeeds within ``timeout_s``; never raises (for readiness checks)."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # readiness must answer False, whatever broke
        logger.warning("database ping failed: %s", type(exc).__name__)
        return False
    return True


@asynccontextmanager
async def migration_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Open a transaction that holds the database-wide migration lock until it commits.

    Postgres takes a transaction-scoped advisory lock; SQLite begins ``IMMEDIATE`` (the write lock),
    so processes that migrate at the same time run one after the other.
    """
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            yield conn


class FloorInt(FunctionElement[int]):
    """``floor(x)`` as a 64-bit integer on every dialect, e.g. ``FloorInt(column.op("/")(literal_column("3600.0")))``.

    SQLite has ``floor()`` only when built with its math functions, and ``CAST`` truncates there but
    rounds on Postgres, so each dialect has its own SQL. ``x`` is repeated on SQLite: give it no bound
    parameters (use ``literal_column`` for constants), so ``GROUP BY`` can match the same text.
    """

    type = BigInteger()
    name = "floor_int"
    inherit_cache = True


@compiles(FloorInt)
def _dialect_floor_postgres(element: FloorInt, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(floor({compiler.process(element.clauses, **kw)}) AS BIGINT)"


@compiles(FloorInt, "sqlite")
def _dialect_floor_sqlite(element: FloorInt, compiler: SQLCompiler, **kw: Any) -> str:
    # CAST truncates toward zero; a comparison is 0 or 1 in SQLite, which corrects negative non-integers.
    x = compiler.process(element.clauses, **kw)
    return f"(CAST({x} AS INTEGER) - ({x} < CAST({x} AS INTEGER)))"


class SqlRequestLogSink:
    """Writes request records to the ``request_log`` table and reads them back."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Written once per dialect and handed to the driver's own executemany (aiosqlite and asyncpg
        # share that coroutine): SQLAlchemy's per-row parameter processing doubled the cost of a row
        # (76k vs 39k instructions per row under callgrind, SQLite with both indexes).
        self._insert = _dialect_insert_sql(engine.dialect.paramstyle)

    async def write_batch(self, entries: Sequence[RequestRecord]) -> None:
        """Insert ``entries`` in one transaction with a single executemany ``INSERT``."""
        if not entries:
            return
        rows = [_to_row(entry) for entry in entries]
        async with self._engine.begin() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is None:
                raise RuntimeError("the database connection is closed")
            # SQLite: inside the BEGIN SQLAlchemy emitted; asyncpg: executemany is atomic by itself.
            await driver.executemany(self._insert, rows)

    async def recent(self, limit: int = 100) -> list[RequestRecord]:
        """Return up to ``limit`` records, newest first."""
        columns = [request_log.c[name] for name in _FIELDS]
        query = select(*columns).order_by(request_log.c.created_at.desc(), request_log.c.seq.desc()).limit(limit)
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [RequestRecord(**row._asdict()) for row in result]

    async def count(self) -> int:
        """Return the number of stored records."""
        async with self._engine.connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(request_log))
        return int(total or 0)


def _async_url(url: str) -> URL:
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    return parsed.set(drivername=driver)


def _dialect_sqlite_engine(url: URL) -> AsyncEngine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, hide_parameters=True)
    event.listen(engine.sync_engine, "connect", _dialect_sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _dialect_sqlite_on_begin)
    return engine


def _dialect_sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # The sqlite3 driver emits no BEGIN before DDL and COMMITs on its own schedule; switch its
    # transaction handling off and let the "begin" listener emit BEGIN, as the SQLAlchemy docs advise
    # (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.execute("PRAGMA synchronous = NORMAL")
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            # Switching to WAL needs an exclusive lock, and SQLite fails at once (no busy wait) while
            # another connection holds one, e.g. workers opening a new file together. WAL is a property
            # of the file: the lock holder or a later connection switches it; this one still works.
            logger.info("SQLite journal_mode=WAL not set on this connection: %s", exc)
    finally:
        cursor.close()


def _dialect_sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _dialect_postgres_engine(url: URL) -> AsyncEngine:
    return create_async_engine(
        url,
        hide_parameters=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=10,
        pool_recycle=1800,
        pool_pre_ping=True,
        connect_args={"timeout": 10, "server_settings": {"application_name": "polyroute"}},
    )


def _dialect_insert_sql(paramstyle: str) -> str:
    marks = [f"${i}" for i in range(1, len(_FIELDS) + 1)] if paramstyle == "numeric_dollar" else ["?"] * len(_FIELDS)
    return f"INSERT INTO {request_log.name} ({', '.join(_FIELDS)}) VALUES ({', '.join(marks)})"


def _to_row(entry: RequestRecord) -> tuple[object, ...]:
    """Coerce values a database would reject, so one odd record cannot block every later batch."""
    if _is_storable(entry):
        return entry
    return tuple(_storable(value, nullable=nullable) for value, (_, nullable) in zip(entry, _COLUMNS, strict=True))


def _is_storable(entry: RequestRecord) -> bool:
    """The common case, checked cheaply.

    Only values that come from outside are checked (paths, model names, upstream codes, the client's
    field names, token counts and the cost computed from them); the rest are made by the gateway itself.
    """
    for value in (entry.endpoint, entry.requested_model, entry.upstream_model, entry.error_code, entry.dropped_fields):
        if value is not None and (len(value) > _MAX_TEXT_CHARS or not value.isascii() or "\x00" in value):
            return False
    counts = (
        entry.prompt_tokens,
        entry.completion_tokens,
        entry.cache_read_tokens,
        entry.cache_write_tokens,
        entry.reasoning_tokens,
    )
    for count in counts:
        if count is not None and not -_INT64_MAX <= count <= _INT64_MAX:
            return False
    return (
        math.isfinite(entry.latency_ms)
        and (entry.ttft_ms is None or math.isfinite(entry.ttft_ms))
        and (entry.cost_usd is None or math.isfinite(entry.cost_usd))
    )


def _storable(value: object, *, nullable: bool) -> object:
    if isinstance(value, str):
        if len(value) > _MAX_TEXT_CHARS:
            value = value[:_MAX_TEXT_CHARS]
        if value.isascii() and "\x00" not in value:
            return value
        # Postgres text cannot hold NUL; no driver can encode a lone surrogate.
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return max(-_INT64_MAX, min(value, _INT64_MAX))
    if isinstance(value, float) and not math.isfinite(value):
        # SQLite stores NaN as NULL, which a NOT NULL column rejects; infinities are no measurement.
        return None if nullable else 0.0
    return value
