"""Usage reports and budgets (admin keys only): history, request logs, per-key budgets, retention.

``GET /api/usage/history?bucket=hour|day&group_by=key|model|provider&since=&until=&key_id=``,
``GET /api/usage/logs`` and ``GET /api/usage/request-logs`` (the same rows: paged with ``limit`` and
``offset``, filtered by ``key_id``, ``model``, ``provider``, ``status``, ``since``, newest first),
``GET /api/usage/budget?key_id=`` and ``POST /api/usage/budget`` (``{"key_id", "daily_usd",
"weekly_usd", "monthly_usd", "total_usd", "warn_fraction"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from polyroute.api.admin import actor_of, int_param, json_response
from polyroute.api.key_service import BudgetSpec, KeyChanges, KeyService, key_record, parse_body
from polyroute.api.responses import parse_json_object
from polyroute.errors import InvalidRequestError
from polyroute.limits.base import Limiter
from polyroute.storage.base import UsageQueries

logger = logging.getLogger(__name__)

_DAY_S = 86400.0
_BUCKETS = ("hour", "day")
_GROUPS = ("key", "model", "provider")


def _float_param(request: Request, name: str, default: float | None) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequestError(f"{name} must be a number (Unix seconds)", param=name) from None
    if not 0 <= value < 1e11:
        raise InvalidRequestError(f"{name} must be Unix seconds", param=name)
    return value


def _choice(request: Request, name: str, choices: tuple[str, ...], default: str | None) -> Any:
    raw = request.query_params.get(name, default)
    if raw is not None and raw not in choices:
        raise InvalidRequestError(f"{name} must be one of {', '.join(choices)}", param=name)
    return raw


class UsageApi:
    """The usage and budget routes."""

    def __init__(self, queries: UsageQueries, keys: KeyService, limiter: Limiter) -> None:
        self.queries = queries
        self.keys = keys
        self.limiter = limiter

    async def history(self, request: Request) -> Response:
        now = time.time()
        until = _float_param(request, "until", None)
        until = now if until is None else until
        since = _float_param(request, "since", None)
        since = until - 7 * _DAY_S if since is None else since
        rows = await self.queries.history(
            bucket=_choice(request, "bucket", _BUCKETS, "day"),
            group_by=_choice(request, "group_by", _GROUPS, None),
            since=since,
            until=until,
            key_id=request.query_params.get("key_id"),
        )
        return json_response({"object": "list", "data": rows, "since": since, "until": until})

    async def logs(self, request: Request) -> Response:
        status = request.query_params.get("status")
        if status is not None and not (status.isdigit() and 100 <= int(status) <= 599):
            raise InvalidRequestError("status must be an HTTP status", param="status")
        page = await self.queries.logs(
            limit=int_param(request, "limit", 50, low=1),
            offset=int_param(request, "offset", 0, high=10**9),
            key_id=request.query_params.get("key_id"),
            model=request.query_params.get("model"),
            provider=request.query_params.get("provider"),
            status=int(status) if status is not None else None,
            since=_float_param(request, "since", None),
        )
        return json_response({"object": "list", "data": page.rows, "total": page.total})

    async def budget(self, request: Request) -> Response:
        key_id = request.query_params.get("key_id")
        if not key_id:
            raise InvalidRequestError("key_id is required", param="key_id")
        key = await self.keys.get(key_id)
        state = await self.limiter.state(key.id, now=time.time())
        return json_response({"key_id": key.id, "budget": key_record(key)["budget"], "spend_usd": state.spend_usd})

    async def set_budget(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        key_id = body.pop("key_id", None)
        if not isinstance(key_id, str) or not key_id:
            raise InvalidRequestError("key_id is required", param="key_id")
        budget = parse_body(BudgetSpec, body)
        actor, ip = actor_of(request)
        changes = KeyChanges.model_validate({"budget": budget.model_dump(include=budget.model_fields_set)})
        key = await self.keys.update(key_id, changes, actor=actor, ip=ip, now=time.time())
        return json_response({"key_id": key.id, "budget": key_record(key)["budget"]})


class Retention:
    """Deletes request-log rows older than the retention age, once an hour, in the background."""

    def __init__(self, queries: UsageQueries, *, days: float, interval_s: float = 3600.0) -> None:
        self._queries = queries
        self._days = days
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Delete what is past the retention age now; returns how many rows went."""
        return await self._queries.purge_request_logs_older_than(time.time() - self._days * _DAY_S)

    async def _loop(self) -> None:
        while True:
            try:
                deleted = await self.run_once()
                if deleted:
                    logger.info("request log retention: deleted %d rows older than %s days", deleted, self._days)
            except Exception:  # a background task: log and try again next time
                logger.exception("request log retention failed")
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        """Begin the hourly purge (nothing when retention is off)."""
        if self._days > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def aclose(self) -> None:
        """Stop the purge."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
