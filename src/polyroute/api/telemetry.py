"""Latency telemetry from the request log (admin keys only): ``GET /api/telemetry/summary``.

Query: ``window`` (``<n>m``, ``<n>h`` or ``<n>d``, default ``1h``, at most ``30d``) and ``provider``.
Per provider and per provider and model: requests, errors, error rate, and nearest-rank p50/p95/p99
of latency and of time to first token (streamed requests only), in milliseconds rounded to 0.1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from polyroute.api.admin import json_response
from polyroute.errors import InvalidRequestError
from polyroute.storage.base import LatencyGroup, Percentiles, UsageQueries
from polyroute.types import JSONObject

DEFAULT_WINDOW: Final = "1h"
MAX_WINDOW_S: Final = 30 * 86400
_WINDOW = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNIT_S: Final = {"m": 60, "h": 3600, "d": 86400}


def parse_window(raw: str) -> float:
    """Seconds in a window such as ``15m``, ``1h``, ``24h`` or ``7d``.

    Raises:
        InvalidRequestError: not a positive whole number of minutes, hours or days, or longer than 30 days.
    """
    match = _WINDOW.fullmatch(raw)
    if match is None or int(match[1]) * _UNIT_S[match[2]] > MAX_WINDOW_S:
        raise InvalidRequestError(
            "window must be a whole number of minutes, hours or days (such as 15m, 1h, 24h, 7d), at most 30d",
            param="window",
        )
    return float(int(match[1]) * _UNIT_S[match[2]])


def _percentiles(values: Percentiles) -> JSONObject:
    return {"p50": round(values.p50, 1), "p95": round(values.p95, 1), "p99": round(values.p99, 1)}


def _group(group: LatencyGroup, *, with_model: bool) -> JSONObject:
    row: JSONObject = {"provider": group.provider}
    if with_model:
        row["model"] = group.model
    row["requests"] = group.requests
    row["errors"] = group.errors
    row["error_rate"] = round(group.errors / group.requests, 4)
    row["latency_ms"] = _percentiles(group.latency_ms)
    row["ttft_ms"] = None if group.ttft_ms is None else _percentiles(group.ttft_ms)
    return row


class TelemetryApi:
    """The telemetry summary route."""

    def __init__(self, queries: UsageQueries, *, clock: Callable[[], float] = time.time) -> None:
        self.queries = queries
        self.clock = clock

    async def summary(self, request: Request) -> Response:
        window = request.query_params.get("window", DEFAULT_WINDOW)
        until = self.clock()
        since = until - parse_window(window)
        provider = request.query_params.get("provider") or None
        providers = await self.queries.latency_summary(since=since, until=until, group_by="provider", provider=provider)
        models = await self.queries.latency_summary(since=since, until=until, group_by="model", provider=provider)
        return json_response(
            {
                "window": window,
                "since": since,
                "until": until,
                "capped": providers.capped or models.capped,
                "providers": [_group(group, with_model=False) for group in providers.groups],
                "models": [_group(group, with_model=True) for group in models.groups],
            }
        )
