"""Request ids: taken from a sane ``X-Request-Id`` header or made up, stored in ``scope["state"]``, echoed back."""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestIdMiddleware:
    """Gives every HTTP request an id (``scope["state"]["request_id"]``) and an ``x-request-id`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                raw = value if _ACCEPTABLE.fullmatch(value) else None
                break
        if raw is None:
            raw = os.urandom(12).hex().encode()
        scope.setdefault("state", {})["request_id"] = raw.decode()
        header = (b"x-request-id", raw)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
