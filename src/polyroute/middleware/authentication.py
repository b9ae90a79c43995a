"""API key check: ``Authorization: Bearer <key>`` (or ``x-api-key``) against the admin key's hash.

Keys are compared as SHA-256 digests with a constant-time comparison. ``open_access`` (no admin key,
loopback listener only) lets every request through, as the start-up log says.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from polyroute.api.responses import send_error
from polyroute.errors import AuthenticationError


def hash_key(key: str) -> bytes:
    """The digest a key is stored and compared as."""
    return hashlib.sha256(key.encode()).digest()


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The credential a request carries, if any."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            return value
    return None


class AuthenticationMiddleware:
    """Rejects requests without a valid key, except on public paths or in open-access mode."""

    def __init__(
        self, app: ASGIApp, *, key_hashes: Iterable[bytes], public_paths: Iterable[str], open_access: bool
    ) -> None:
        self.app = app
        self._hashes = tuple(key_hashes)
        self._public = frozenset(public_paths)
        self._open = open_access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open or scope["path"] in self._public:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope["headers"])
        if key is None:
            await send_error(
                scope,
                send,
                AuthenticationError(
                    "missing API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
                ),
            )
            return
        digest = hashlib.sha256(key).digest()
        if not any(hmac.compare_digest(digest, h) for h in self._hashes):
            await send_error(scope, send, AuthenticationError("invalid API key"))
            return
        scope.setdefault("state", {})["principal"] = "admin"
        await self.app(scope, receive, send)
