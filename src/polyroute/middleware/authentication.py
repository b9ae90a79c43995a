"""API key check: ``Authorization: Bearer <key>`` (or ``x-api-key``) against the admin key's hash.

Keys are looked up by their SHA-256 digest, never compared as plain text. ``open_access`` (no admin key,
loopback listener only) lets every request through, as the start-up log says.
"""

from __future__ import annotations

import hashlib
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


class Authenticator:
    """Decides whether a request's key is accepted; the verdict is an error to render, or None."""

    def __init__(self, *, key_hashes: Iterable[bytes], open_access: bool) -> None:
        # A set lookup by SHA-256 digest: the stored value is a hash, so timing reveals nothing usable.
        self._hashes = frozenset(key_hashes)
        self._open = open_access

    def check(self, scope: Scope) -> AuthenticationError | None:
        """None when the request may proceed (its principal is then in ``scope["state"]``)."""
        if self._open:
            return None
        key = presented_key(scope["headers"])
        if key is None:
            return AuthenticationError(
                "missing API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        if hashlib.sha256(key).digest() not in self._hashes:
            return AuthenticationError("invalid API key")
        scope.setdefault("state", {})["principal"] = "admin"
        return None


class AuthenticationMiddleware:
    """Rejects requests without a valid key, except on public paths."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, public_paths: Iterable[str]) -> None:
        self.app = app
        self._authenticator = authenticator
        self._public = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self._public:
            error = self._authenticator.check(scope)
            if error is not None:
                await send_error(scope, send, error)
                return
        await self.app(scope, receive, send)
