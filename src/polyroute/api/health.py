"""``/health`` (the process is up) and ``/ready`` (storage answers and routing is loaded); no auth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from polyroute.routing.table import LiveRoutingTable


async def health(request: Request) -> Response:
    """Liveness: answers as long as the worker serves."""
    return Response(b'{"status":"ok"}', media_type="application/json")


class Readiness:
    """Readiness: the database answers and a routing table is loaded."""

    def __init__(self, live: LiveRoutingTable, storage_ok: Callable[[], Awaitable[bool]]) -> None:
        self._live = live
        self._storage_ok = storage_ok

    async def check(self, request: Request) -> Response:
        """``GET /ready``."""
        storage = await self._storage_ok()
        providers = len(self._live.current.providers)
        body: dict[str, object] = {
            "status": "ready" if storage else "not_ready",
            "storage": "ok" if storage else "unreachable",
        }
        body["providers"] = providers
        return Response(orjson.dumps(body), status_code=200 if storage else 503, media_type="application/json")
