"""Request ids: taken from a sane ``X-Request-Id`` header or made up, stored in ``scope["state"]``, echoed back."""

from __future__ import annotations

import itertools
import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    """Assigns request ids: the client's if sane, else a per-process random prefix and a counter.

    Ids identify requests in logs; they are not secrets, so a counter (cheaper than reading the
    system's randomness on every request) is enough.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def assign(self, scope: Scope) -> tuple[bytes, bytes]:
        """Store the request's id in ``scope["state"]["request_id"]``; returns the response header."""
        raw = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                raw = value if _ACCEPTABLE.fullmatch(value) else None
                break
        if raw is None:
            raw = f"{self._prefix}{next(self._counter):012x}".encode()
        scope.setdefault("state", {})["request_id"] = raw.decode()
        return (b"x-request-id", raw)


class RequestIdMiddleware:
    """Gives every HTTP request an id (``scope["state"]["request_id"]``) and an ``x-request-id`` header."""

    def __init__(self, app: ASGIApp, *, ids: RequestIds) -> None:
        self.app = app
        self._ids = ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = self._ids.assign(scope)
        state = scope["state"]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Headers a handler asked for on whatever response goes out (X-RateLimit-*, errors included).
                message["headers"] = [*message.get("headers", ()), header, *state.get("response_headers", ())]
            await send(message)

        await self.app(scope, receive, send_with_id)
