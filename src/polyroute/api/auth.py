"""Login for the dashboard: ``/api/auth/login``, ``/logout``, ``/password``, and ``/api/settings/require-login``.

The password is ``POLYROUTE_INITIAL_PASSWORD`` on first start, kept as an Argon2id hash in the settings
store (``auth.password``). Against guessing, each worker counts login attempts per client address:
after ``LoginThrottle.max_failures`` without a success inside ``window_s``, that address gets 429 until
the window ends, without any password being checked. At most two hashes are computed at once per worker.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from polyroute.api.admin import actor_of, json_response
from polyroute.api.responses import parse_json_object
from polyroute.api.sessions import Session, Sessions, clear_session_cookie, cookie_token, set_session_cookie
from polyroute.core.passwords import hash_password, needs_rehash, password_problem, verify_password
from polyroute.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError, RateLimitedError
from polyroute.storage.base import AuditEntry, AuditLog, SettingsStore
from polyroute.types import JSONObject

PASSWORD_SETTING: Final = "auth.password"
REQUIRE_LOGIN_SETTING: Final = "auth.require_login"
OPEN_PATHS: Final = ("/api/auth/login", "/api/auth/logout")
"""Paths that need no key or session (the IP filter still applies): logging in, and ending a session."""

_NOT_SET_UP: Final = (
    "login is not set up: no password is configured. Set POLYROUTE_INITIAL_PASSWORD before the first start, "
    "or set one with PUT /api/auth/password and an admin key"
)
_T = TypeVar("_T")


class LoginThrottle:
    """Login attempts per client address in this worker; a success clears the address's count."""

    def __init__(self, *, max_failures: int = 10, window_s: float = 900.0, max_addresses: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._max_addresses = max_addresses
        self._attempts: OrderedDict[str | None, tuple[float, int]] = OrderedDict()
        """Address -> (start of its window, attempts without a success since)."""

    def begin(self, address: str | None, *, now: float) -> float | None:
        """Count an attempt; returns the seconds to wait instead when the address has used up its window."""
        started, count = self._attempts.get(address, (now, 0))
        if now - started >= self.window_s:
            started, count = now, 0
        if count >= self.max_failures:
            return started + self.window_s - now
        self._attempts[address] = (started, count + 1)
        self._attempts.move_to_end(address)
        if len(self._attempts) > self._max_addresses:
            self._attempts.popitem(last=False)
        return None

    def succeeded(self, address: str | None) -> None:
        """Forget the address's attempts."""
        self._attempts.pop(address, None)


class Passwords:
    """The stored password hash; hashing runs in threads, a few at a time."""

    def __init__(self, store: SettingsStore, *, max_concurrent: int = 2) -> None:
        self._store = store
        self._slots = asyncio.Semaphore(max_concurrent)

    async def _off_loop(self, work: Callable[..., _T], *args: str) -> _T:
        async with self._slots:
            return await asyncio.to_thread(work, *args)

    async def stored(self) -> str | None:
        """The stored hash, or None when no password is configured."""
        value = await self._store.get(PASSWORD_SETTING)
        stored = value.get("hash") if isinstance(value, dict) else None
        return stored if isinstance(stored, str) else None

    async def matches(self, stored: str, password: str) -> bool:
        """Whether ``password`` matches ``stored``; a match under old parameters is rehashed."""
        if not await self._off_loop(verify_password, stored, password):
            return False
        if needs_rehash(stored):
            await self.change(password, now=time.time())
        return True

    async def change(self, password: str, *, now: float) -> None:
        """Store a fresh hash of ``password``."""
        encoded = await self._off_loop(hash_password, password)
        await self._store.put(PASSWORD_SETTING, {"hash": encoded, "changed_at": now})

    async def bootstrap(self, initial: str | None) -> bool:
        """Store ``initial`` when no password is stored yet; returns whether it was stored."""
        if initial is None or await self.stored() is not None:
            return False
        await self.change(initial, now=time.time())
        return True


def _text_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} is required and must be a string", param=name)
    return value


def _only_fields(body: dict[str, Any], *names: str) -> None:
    for name in body:
        if name not in names:
            raise InvalidRequestError(f"unknown field {name!r}; expected {', '.join(names)}", param=str(name))


class LoginApi:
    """The login, logout and password routes, and the ``require_login`` setting."""

    def __init__(
        self,
        passwords: Passwords,
        sessions: Sessions,
        *,
        store: SettingsStore,
        audit: AuditLog,
        throttle: LoginThrottle,
    ) -> None:
        self.passwords = passwords
        self.sessions = sessions
        self.store = store
        self.audit = audit
        self.throttle = throttle

    async def _record(self, action: str, actor: str | None, ip: str | None, **changes: JSONObject | None) -> None:
        await self.audit.record(AuditEntry(at=time.time(), actor=actor, action=action, target=None, ip=ip, **changes))

    def _attempt(self, ip: str | None, now: float) -> None:
        retry_after_s = self.throttle.begin(ip, now=now)
        if retry_after_s is not None:
            raise RateLimitedError(
                "too many failed login attempts from this address; try again later",
                retry_after_s=retry_after_s,
                code="too_many_login_attempts",
            )

    async def login(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        _only_fields(body, "password")
        password = _text_field(body, "password") or ""
        _, ip = actor_of(request)
        stored = await self.passwords.stored()
        if stored is None:
            raise PermissionDeniedError(_NOT_SET_UP, code="login_not_configured")
        now = time.time()
        self._attempt(ip, now)
        if not await self.passwords.matches(stored, password):
            await self._record("auth.login_failed", None, ip)
            raise AuthenticationError("wrong password", code="invalid_password")
        self.throttle.succeeded(ip)
        token, session = await self.sessions.create(ip=ip, now=now)
        response = json_response({"object": "session", "expires_at": session.expires_at})
        set_session_cookie(response, token, scope=request.scope, max_age_s=self.sessions.lifetime_s)
        await self._record("auth.login", session.actor, ip)
        return response

    async def logout(self, request: Request) -> Response:
        token = cookie_token(request.scope)
        session = await self.sessions.end(token, now=time.time()) if token else None
        if session is not None:
            await self._record("auth.logout", session.actor, actor_of(request)[1])
        response = Response(status_code=204)
        clear_session_cookie(response, scope=request.scope)
        return response

    async def change_password(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        _only_fields(body, "current", "new")
        new = _text_field(body, "new") or ""
        current = _text_field(body, "current", required=False)
        if (problem := password_problem(new)) is not None:
            raise InvalidRequestError(f"new {problem}", param="new")
        actor, ip = actor_of(request)
        session: Session | None = (request.scope.get("state") or {}).get("session")
        stored = await self.passwords.stored()
        now = time.time()
        if stored is not None and (current is not None or session is not None):
            await self._check_current(stored, current, actor=actor, ip=ip, now=now)
        await self.passwords.change(new, now=now)
        ended = await self.sessions.end_all()
        # A session caller proved the password just now: it gets a fresh session in place of the ended one.
        fresh = await self.sessions.create(ip=ip, now=now) if session is not None else None
        response = json_response({"changed_at": now, "sessions_ended": ended})
        if fresh is not None:
            set_session_cookie(response, fresh[0], scope=request.scope, max_age_s=self.sessions.lifetime_s)
        await self._record("auth.password_change", actor, ip)
        return response

    async def _check_current(
        self, stored: str, current: str | None, *, actor: str | None, ip: str | None, now: float
    ) -> None:
        if current is None:
            raise InvalidRequestError("current is required: send the password in use", param="current")
        self._attempt(ip, now)
        if not await self.passwords.matches(stored, current):
            await self._record("auth.password_change_failed", actor, ip)
            raise PermissionDeniedError("the current password is wrong", code="invalid_password")
        self.throttle.succeeded(ip)

    async def require_login(self, request: Request) -> Response:
        del request
        return json_response({"require_login": await self._require_login()})

    async def set_require_login(self, request: Request) -> Response:
        body = parse_json_object(await request.body())
        _only_fields(body, "require_login")
        value = body.get("require_login")
        if not isinstance(value, bool):
            raise InvalidRequestError("require_login is required and must be true or false", param="require_login")
        before = await self._require_login()
        await self.store.put(REQUIRE_LOGIN_SETTING, value)
        actor, ip = actor_of(request)
        await self._record(
            "settings.require_login", actor, ip, before={"require_login": before}, after={"require_login": value}
        )
        return json_response({"require_login": value})

    async def _require_login(self) -> bool:
        stored = await self.store.get(REQUIRE_LOGIN_SETTING)
        return stored if isinstance(stored, bool) else True
