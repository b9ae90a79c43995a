"""``SqlUsageQueries``: usage reports, request-log pages, spend, latency summaries and the retention purge.

Buckets are UTC hours or days starting at ``floor(created_at / size) * size`` (Unix seconds), computed
in SQL the same way on SQLite and PostgreSQL (``sql.FloorInt``). A "model" is the name the client
asked for (``requested_model``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final, Literal, Unpack

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Double,
    Integer,
    Row,
    Select,
    case,
    cast,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from polyroute.storage.base import (
    LATENCY_MAX_ROWS,
    LatencyGroup,
    LatencySummary,
    LogFilters,
    LogPage,
    Percentiles,
    RequestRecord,
)
from polyroute.storage.encoding import is_storable_text
from polyroute.storage.sql import FloorInt
from polyroute.storage.tables import request_log
from polyroute.types import JSONObject

__all__ = ["LatencyGroup", "LatencySummary", "LogFilters", "LogPage", "Percentiles", "SqlUsageQueries"]

_BUCKET_S: Final = {"hour": 3600, "day": 86400}
_GROUP_COLUMNS: Final = {
    "key": request_log.c.key_id,
    "model": request_log.c.requested_model,
    "provider": request_log.c.provider,
}
_TOKEN_COLUMNS: Final = (
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_LOG_COLUMNS: Final = tuple(request_log.c[name] for name in RequestRecord._fields)
_PURGE_BATCH: Final = 5000
_PARTITION_ROWS: Final = 2000


class SqlUsageQueries:
    """A ``UsageQueries`` over SQLAlchemy Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def history(
        self,
        *,
        bucket: Literal["hour", "day"],
        group_by: Literal["key", "model", "provider"] | None,
        since: float,
        until: float,
        key_id: str | None = None,
    ) -> list[JSONObject]:
        """Totals per UTC time bucket (and per group) of the requests in ``since <= created_at < until``.

        Each row has ``bucket`` (its start, Unix seconds), ``group`` (the key id, model or provider; None
        when not grouping or not recorded), ``requests``, ``errors`` (status >= 400), the summed token
        counts (``prompt_tokens``, ``completion_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
        ``reasoning_tokens``; unreported counts add 0) and ``cost_usd`` (None when no row's cost is known).
        Rows are ordered by bucket, then group (by code point, None last). Only buckets with requests appear.

        Raises:
            ValueError: an unknown ``bucket`` or ``group_by``.
        """
        if bucket not in _BUCKET_S:
            raise ValueError(f"bucket must be one of {sorted(_BUCKET_S)}, not {bucket!r}")
        if group_by is not None and group_by not in _GROUP_COLUMNS:
            raise ValueError(f"group_by must be None or one of {sorted(_GROUP_COLUMNS)}, not {group_by!r}")
        if key_id is not None and not is_storable_text(key_id):
            return []
        query = _history_query(_BUCKET_S[bucket], _GROUP_COLUMNS[group_by] if group_by else None, since, until, key_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        history = [_history_row(row._mapping) for row in rows]
        # Sorted here, not in SQL: SQLite and Postgres collate text (and place NULLs) differently.
        history.sort(key=lambda row: (row["bucket"], row["group"] is None, row["group"] or ""))
        return history

    async def logs(self, *, limit: int, offset: int = 0, **filters: Unpack[LogFilters]) -> LogPage:
        """Request-log rows matching every given filter, newest first, and how many match in all.

        Filters: ``key_id``, ``model`` (the requested model), ``provider``, ``status`` and ``since``
        (``created_at >= since``). Each row is the ``RequestRecord`` fields as a dict.

        Raises:
            ValueError: ``limit`` or ``offset`` is negative.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        texts = {
            request_log.c.key_id: filters.get("key_id"),
            request_log.c.requested_model: filters.get("model"),
            request_log.c.provider: filters.get("provider"),
        }
        if any(value is not None and not is_storable_text(value) for value in texts.values()):
            return LogPage([], 0)  # the sink never stores such text, so nothing can match
        conditions: list[ColumnElement[bool]] = [
            column == value for column, value in texts.items() if value is not None
        ]
        status, since = filters.get("status"), filters.get("since")
        if status is not None:
            conditions.append(request_log.c.status == status)
        if since is not None:
            conditions.append(request_log.c.created_at >= since)
        page = (
            select(*_LOG_COLUMNS)
            .where(*conditions)
            .order_by(request_log.c.created_at.desc(), request_log.c.seq.desc())
            .limit(limit)
            .offset(offset)
        )
        counted = select(func.count()).select_from(request_log).where(*conditions)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(page)).all()
            total = await conn.scalar(counted)
        # Column names come back as SQLAlchemy's quoted_name (a str subclass); plain str keys serialise anywhere.
        return LogPage([{str(name): value for name, value in row._mapping.items()} for row in rows], int(total or 0))

    async def spend(self, key_id: str, *, since: float) -> float:
        """The summed ``cost_usd`` of ``key_id``'s requests with ``created_at >= since``; unknown costs add 0."""
        if not is_storable_text(key_id):
            return 0.0
        query = select(func.coalesce(func.sum(request_log.c.cost_usd), 0.0)).where(
            request_log.c.key_id == key_id, request_log.c.created_at >= since
        )
        async with self._engine.connect() as conn:
            total = await conn.scalar(query)
        return float(total or 0.0)

    async def latency_summary(
        self,
        *,
        since: float,
        until: float,
        group_by: Literal["provider", "model"],
        provider: str | None = None,
        max_rows: int = LATENCY_MAX_ROWS,
    ) -> LatencySummary:
        """Requests, errors and latency/TTFT percentiles per provider (or provider and model) in ``[since, until)``.

        A model is ``upstream_model``, else ``requested_model``. Percentiles are nearest-rank: the p-th of
        n sorted values is the ``ceil(p * n / 100)``-th, always a recorded value. TTFT percentiles cover
        streamed requests that recorded one. Rows without a provider (refused before any upstream was
        called) are not counted. Groups are ordered by provider, then model (by code point, None last).
        Only the ``max_rows`` most recent rows of the window are read; ``capped`` says there were more.

        Raises:
            ValueError: an unknown ``group_by``, or ``max_rows`` below 1.
        """
        if group_by not in ("provider", "model"):
            raise ValueError(f"group_by must be 'provider' or 'model', not {group_by!r}")
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        if provider is not None and not is_storable_text(provider):
            return LatencySummary([], capped=False)
        query = _latency_query(since, until, by_model=group_by == "model", provider=provider, limit=max_rows + 1)
        groups: dict[tuple[str, str | None], _Samples] = {}
        read = 0
        async with self._engine.connect() as conn:
            # Streamed in partitions, so the event loop runs between them instead of stalling on 200,000 rows.
            result = await conn.stream(query)
            async for partition in result.partitions(_PARTITION_ROWS):
                _add_samples(groups, partition[: max_rows - read])
                read += len(partition)
        return LatencySummary(await _latency_groups(groups), capped=read > max_rows)

    async def purge_request_logs_older_than(self, cutoff: float, *, batch_size: int = _PURGE_BATCH) -> int:
        """Delete every request record created before ``cutoff`` (Unix seconds); return how many were deleted.

        Deletes ``batch_size`` rows per transaction, so writers (SQLite's single write lock) wait at most
        one batch; rows older than ``cutoff`` written meanwhile are deleted too.

        Raises:
            ValueError: ``batch_size`` is not positive.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        doomed = select(request_log.c.seq).where(request_log.c.created_at < cutoff).limit(batch_size)
        statement = delete(request_log).where(request_log.c.seq.in_(doomed.scalar_subquery()))
        deleted = 0
        while True:
            async with self._engine.begin() as conn:
                result: CursorResult[Any] = await conn.execute(statement)
            deleted += result.rowcount
            if result.rowcount < batch_size:
                return deleted


def _history_query(
    size_s: int, group: ColumnElement[Any] | None, since: float, until: float, key_id: str | None
) -> Select[Any]:
    # Literal constants, not bound parameters: GROUP BY must repeat the SELECT expression's exact text.
    # Both operands are doubles, so a plain "/" divides exactly as Python's / does.
    hours_or_days = request_log.c.created_at.op("/", return_type=Double)(literal_column(f"{size_s}.0", Double))
    start = FloorInt(hours_or_days) * literal_column(str(size_s), Integer)
    conditions = [request_log.c.created_at >= since, request_log.c.created_at < until]
    if key_id is not None:
        conditions.append(request_log.c.key_id == key_id)
    query = select(
        start.label("bucket"),
        (group if group is not None else literal_column("NULL")).label("grp"),
        func.count().label("requests"),
        func.count(case((request_log.c.status >= 400, 1))).label("errors"),
        # Summed as doubles: exact below 2**53, and never SQLite's "integer overflow" error.
        *(func.coalesce(func.sum(cast(request_log.c[name], Double)), 0.0).label(name) for name in _TOKEN_COLUMNS),
        func.sum(request_log.c.cost_usd).label("cost_usd"),
    ).where(*conditions)
    return query.group_by(start, group) if group is not None else query.group_by(start)


def _history_row(values: Any) -> JSONObject:
    row: JSONObject = {
        "bucket": int(values["bucket"]),
        "group": values["grp"],
        "requests": int(values["requests"]),
        "errors": int(values["errors"]),
    }
    for name in _TOKEN_COLUMNS:
        row[name] = int(values[name])
    cost = values["cost_usd"]
    row["cost_usd"] = None if cost is None else float(cost)
    return row


_LatencyRow = tuple[str, str | None, int, float, float | None, bool]
"""provider, model, status, latency_ms, ttft_ms, is_stream."""


def _latency_query(
    since: float, until: float, *, by_model: bool, provider: str | None, limit: int
) -> Select[*_LatencyRow]:
    log = request_log.c
    model = func.coalesce(log.upstream_model, log.requested_model) if by_model else literal_column("NULL")
    conditions = [log.created_at >= since, log.created_at < until, log.provider.is_not(None)]
    if provider is not None:
        conditions.append(log.provider == provider)
    return (
        select(log.provider, model.label("model"), log.status, log.latency_ms, log.ttft_ms, log.is_stream)
        .where(*conditions)
        .order_by(log.created_at.desc(), log.seq.desc())
        .limit(limit)
    )


class _Samples:
    __slots__ = ("errors", "latencies", "ttfts")

    def __init__(self) -> None:
        self.errors = 0
        self.latencies: list[float] = []
        self.ttfts: list[float] = []


def _add_samples(groups: dict[tuple[str, str | None], _Samples], rows: Sequence[Row[*_LatencyRow]]) -> None:
    for provider, model, status, latency_ms, ttft_ms, is_stream in rows:
        samples = groups.get((provider, model))
        if samples is None:
            samples = groups[provider, model] = _Samples()
        samples.latencies.append(latency_ms)
        if status >= 400:
            samples.errors += 1
        if is_stream and ttft_ms is not None:
            samples.ttfts.append(ttft_ms)


async def _latency_groups(groups: dict[tuple[str, str | None], _Samples]) -> list[LatencyGroup]:
    # Sorted here, not in SQL: SQLite and Postgres collate text (and place NULLs) differently.
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] is None, item[0][1] or ""))
    summary = []
    for (provider, model), samples in ordered:
        summary.append(
            LatencyGroup(
                provider=provider,
                model=model,
                requests=len(samples.latencies),
                errors=samples.errors,
                latency_ms=_percentiles(samples.latencies),
                ttft_ms=_percentiles(samples.ttfts) if samples.ttfts else None,
            )
        )
        await asyncio.sleep(0)  # sorting 200,000 values takes ~40 ms; let requests run between groups
    return summary


def _percentiles(values: list[float]) -> Percentiles:
    values.sort()
    n = len(values)
    # Nearest rank: index ceil(p * n / 100) - 1, computed in integers so float rounding never moves a rank.
    return Percentiles(
        p50=float(values[(50 * n + 99) // 100 - 1]),
        p95=float(values[(95 * n + 99) // 100 - 1]),
        p99=float(values[(99 * n + 99) // 100 - 1]),
    )
