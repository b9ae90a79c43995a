"""Login sessions: a random 256-bit token in an HttpOnly cookie, kept server-side only as its SHA-256 digest.

Each session is one settings-store entry, ``auth.session.<digest>``, holding its times and the address
it was created from; the token itself is stored nowhere. A session stands in for an admin key on
management routes only: ``Authenticator`` asks ``Sessions.admit`` when a management request carries no key.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Final

from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import Scope

from polyroute.core.keys import digest
from polyroute.errors import AuthenticationError, GatewayError
from polyroute.storage.base import SettingsStore
from polyroute.types import JSONObject

COOKIE: Final = "polyroute_session"
LIFETIME_S: Final = 12 * 3600.0
_PREFIX: Final = "auth.session."
_TOKEN_BYTES: Final = 32
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{43}")
"""What ``secrets.token_urlsafe(32)`` makes; anything else is refused without a store lookup."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A live login session."""

    digest: str
    """SHA-256 of the token (hex): the session's name in the store."""
    created_at: float
    expires_at: float

    @property
    def actor(self) -> str:
        """How the audit log names whoever holds this session."""
        return f"session:{self.digest[:8]}"


def cookie_token(scope: Scope) -> str | None:
    """The session token a request's ``Cookie`` header carries, if any."""
    for name, value in scope["headers"]:
        if name == b"cookie":
            token = cookie_parser(value.decode("latin-1")).get(COOKIE)
            if token:
                return token
    return None


def is_https(scope: Scope) -> bool:
    """Whether the client reached us over HTTPS (directly, or through a proxy that says so)."""
    if scope.get("scheme") == "https":
        return True
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"x-forwarded-proto":
            return value.split(b",")[0].strip().lower() == b"https"
    return False


def set_session_cookie(response: Response, token: str, *, scope: Scope, max_age_s: float) -> None:
    """Give the client the session cookie: HttpOnly, SameSite=Strict, and Secure over HTTPS."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(max_age_s),
        path="/",
        secure=is_https(scope),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, *, scope: Scope) -> None:
    """Tell the client to drop the session cookie."""
    response.delete_cookie(COOKIE, path="/", secure=is_https(scope), httponly=True, samesite="strict")


class Sessions:
    """Creates, finds and ends sessions in the settings store."""

    def __init__(self, store: SettingsStore, *, lifetime_s: float = LIFETIME_S) -> None:
        self._store = store
        self.lifetime_s = lifetime_s

    async def create(self, *, ip: str | None, now: float) -> tuple[str, Session]:
        """A new session and its token (shown only to the client, in the cookie); expired sessions are removed."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        session = Session(digest=digest(token), created_at=now, expires_at=now + self.lifetime_s)
        record: JSONObject = {"created_at": session.created_at, "expires_at": session.expires_at, "ip": ip}
        await self._store.put(_PREFIX + session.digest, record)
        # Sessions are written once, so one last written a lifetime ago has expired.
        await self._store.purge(_PREFIX, updated_before=now - self.lifetime_s)
        return token, session

    async def find(self, token: str, *, now: float) -> Session | None:
        """The live session for ``token``, or None (unknown, ended or expired)."""
        if not _TOKEN.fullmatch(token):
            return None
        token_digest = digest(token)
        record = await self._store.get(_PREFIX + token_digest)
        if not isinstance(record, dict):
            return None
        created_at, expires_at = record.get("created_at"), record.get("expires_at")
        if not isinstance(created_at, float | int) or not isinstance(expires_at, float | int) or expires_at <= now:
            return None
        return Session(digest=token_digest, created_at=float(created_at), expires_at=float(expires_at))

    async def end(self, token: str, *, now: float) -> Session | None:
        """End the session for ``token``; returns it, or None when there was no live one."""
        session = await self.find(token, now=now)
        if session is not None:
            await self._store.delete(_PREFIX + session.digest)
        return session

    async def end_all(self) -> int:
        """End every session; returns how many were stored."""
        return await self._store.purge(_PREFIX)

    async def admit(self, scope: Scope) -> GatewayError | None:
        """None when the request's cookie names a live session (then in ``scope["state"]["session"]``)."""
        token = cookie_token(scope)
        if token is None:
            return AuthenticationError(
                "missing API key: send an admin key as 'Authorization: Bearer <key>' (or x-api-key), "
                "or log in with POST /api/auth/login",
                code="missing_api_key",
            )
        session = await self.find(token, now=time.time())
        if session is None:
            return AuthenticationError(
                "the session has expired or was ended: log in again (POST /api/auth/login)", code="invalid_session"
            )
        state = scope.setdefault("state", {})
        state["session"] = session
        state["actor"] = session.actor
        return None
