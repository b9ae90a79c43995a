"""The outermost ASGI app: serves the inference hot path directly, everything else through Starlette.

Measured on the benchmark: every await in an endpoint resumes each coroutine frame below it, so the
Starlette stack (ServerErrorMiddleware, the middleware list, ExceptionMiddleware, Router, Route)
costs CPU on every upstream read and client write. For the few exact paths that carry inference
traffic, this dispatcher does the same work (request id, authentication, error rendering) in one
frame, with the same objects the middleware uses, and hands every other request to Starlette.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polyroute.api.responses import send_error
from polyroute.errors import GatewayError
from polyroute.middleware.authentication import Authenticator
from polyroute.middleware.request_id import RequestIds

logger = logging.getLogger(__name__)


class InferenceDispatcher:
    """Routes ``(method, path)`` hits to raw ASGI endpoints; misses go to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[tuple[str, str], ASGIApp],
        *,
        ids: RequestIds,
        authenticator: Authenticator,
    ) -> None:
        self._app = app
        self._routes = dict(routes)
        self._ids = ids
        self._authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._routes.get((scope.get("method", ""), scope["path"])) if scope["type"] == "http" else None
        if endpoint is None:
            await self._app(scope, receive, send)
            return
        header = self._ids.assign(scope)
        started = False

        state = scope["state"]

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header, *state.get("response_headers", ())]
            await send(message)

        error = await self._authenticator.check(scope)
        if error is not None:
            await send_error(scope, send_with_id, error)
            return
        try:
            await endpoint(scope, receive, send_with_id)
        except GatewayError as exc:
            if not started:
                await send_error(scope, send_with_id, exc)
        except Exception as exc:  # the outermost handler of this path: log, answer generically
            request_id = scope["state"]["request_id"]
            logger.error("unhandled error in request %s", request_id, exc_info=exc)
            if not started:
                failure = GatewayError(
                    f"internal error; quote request id {request_id} when reporting it", code="internal_error"
                )
                await send_error(scope, send_with_id, failure)
