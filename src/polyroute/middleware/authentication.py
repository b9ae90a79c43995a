"""API key check: the key a request presents, against the admin key's hash.

Each client API's own way of sending a key is accepted: ``Authorization: Bearer`` (OpenAI, Ollama
clients with headers), ``x-api-key`` (Anthropic), ``x-goog-api-key`` and, on Gemini's paths only, the
``?key=`` query parameter (Gemini).

Keys are looked up by their SHA-256 digest, never compared as plain text. ``open_access`` (no admin key,
loopback listener only) lets every request through, as the start-up log says. The gateway-wide IP
filter (``api/ip_filter.py``) runs before all of this; login sessions (``api/sessions.py``) are read
only on management routes, and only when no key is sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from polyroute.api.access import KeyRing
from polyroute.api.ip_filter import IpFilter
from polyroute.api.responses import client_format, send_error
from polyroute.api.sessions import Sessions
from polyroute.core.keys import KeyStatus
from polyroute.errors import AuthenticationError, GatewayError, PermissionDeniedError
from polyroute.wire import WireFormat

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


MANAGEMENT_PREFIXES = (
    "/api/keys",
    "/api/usage",
    "/api/rate-limits",
    "/api/compliance",
    "/api/settings",
    "/api/pricing",
    "/api/auth",
    "/api/resilience",
    "/api/models/availability",
    "/api/monitoring",
    "/api/telemetry",
    "/api/combos",
)
"""Management routes: admin keys (or a login session) only. Ollama's /api/chat etc. are inference."""


def is_management(path: str) -> bool:
    """Whether ``path`` is a management route."""
    return path.startswith(MANAGEMENT_PREFIXES)


def client_address(scope: Scope) -> str | None:
    """The client's IP address as the server saw it."""
    client = scope.get("client")
    return client[0] if client else None


class Authenticator:
    """Decides whether a request's key is accepted; the verdict is an error to render, or None.

    With ``keys`` None the gateway serves without keys (loopback only, enforced at start-up). The IP
    filter comes first, for every request. ``open_paths`` need no key (the IP filter still applies);
    a management request without a key may present a login session instead.
    """

    def __init__(
        self,
        *,
        keys: KeyRing | None,
        sessions: Sessions | None = None,
        ip_filter: IpFilter | None = None,
        open_paths: Iterable[str] = (),
    ) -> None:
        self._keys = keys
        self._sessions = sessions
        self._ip_filter = ip_filter
        self._open_paths = frozenset(open_paths)

    async def check(self, scope: Scope) -> GatewayError | None:
        """None when the request may proceed (its key is then ``scope["state"]["key"]``)."""
        if self._ip_filter is not None and (refusal := self._ip_filter.screen(scope)) is not None:
            return refusal
        if self._keys is None or scope["path"] in self._open_paths:
            return None
        secret = presented_key(scope["headers"], path=scope["path"], query=scope.get("query_string", b""))
        if secret is None:
            if self._sessions is not None and is_management(scope["path"]):
                return await self._sessions.admit(scope)
            return AuthenticationError(
                "missing API key: send it as 'Authorization: Bearer <key>' (or x-api-key, x-goog-api-key)",
                code="missing_api_key",
            )
        key = await self._keys.find(secret)
        if key is None:
            return AuthenticationError("invalid API key", code="invalid_api_key")
        if key.status is KeyStatus.REVOKED:
            return PermissionDeniedError("this API key has been revoked", code="key_revoked")
        if key.is_expired(time.time()):
            return AuthenticationError("this API key has expired", code="key_expired")
        if not key.allows_ip(client_address(scope)):
            return PermissionDeniedError("this API key may not be used from this address", code="ip_not_allowed")
        if is_management(scope["path"]) and not key.may_manage:
            return PermissionDeniedError("management routes need an admin key", code="admin_key_required")
        state = scope.setdefault("state", {})
        state["key"] = key
        state["key_id"] = key.id
        return None


class AuthenticationMiddleware:
    """Rejects requests without a valid key, except on public paths."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, public_paths: Iterable[str]) -> None:
        self.app = app
        self._authenticator = authenticator
        self._public = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self._public:
            error = await self._authenticator.check(scope)
            if error is not None:
                await send_error(scope, send, error)
                return
        await self.app(scope, receive, send)
