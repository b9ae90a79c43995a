"""API key check: the key a request presents, against the admin key's hash.

Each client API's own way of sending a key is accepted: ``Authorization: Bearer`` (OpenAI, Ollama
clients with headers), ``x-api-key`` (Anthropic), ``x-goog-api-key`` and, on Gemini's paths only, the
``?key=`` query parameter (Gemini).

Keys are looked up by their SHA-256 digest, never compared as plain text. ``open_access`` (no admin key,
loopback listener only) lets every request through, as the start-up log says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from polyroute.api.responses import client_format, send_error
from polyroute.errors import AuthenticationError
from polyroute.wire import WireFormat


def hash_key(key: str) -> bytes:
    """The digest a key is stored and compared as."""
    return hashlib.sha256(key.encode()).digest()


_KEY_HEADERS = (b"x-api-key", b"x-goog-api-key")


def presented_key(headers: Iterable[tuple[bytes, bytes]], *, path: str = "", query: bytes = b"") -> bytes | None:
    """The credential a request carries, if any."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
        elif name in _KEY_HEADERS and value:
            return value
    if query and client_format(path) is WireFormat.GEMINI:
        for pair in query.split(b"&"):
            name, _, value = pair.partition(b"=")
            if name == b"key" and value:
                return unquote_to_bytes(value)
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
        key = presented_key(scope["headers"], path=scope["path"], query=scope.get("query_string", b""))
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
