"""Login pieces without a server: the per-address attempt counter, sessions in a settings store, the
authenticator's order (IP filter, open paths, keys, then sessions on management routes only)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import SecretStr

from polyroute.api.access import KeyRing
from polyroute.api.auth import OPEN_PATHS, LoginThrottle, Passwords
from polyroute.api.ip_filter import IpFilter
from polyroute.api.sessions import COOKIE, LIFETIME_S, Sessions, cookie_token, is_https
from polyroute.app import check_settings
from polyroute.core.ip_rules import IpRules
from polyroute.core.keys import digest
from polyroute.errors import ConfigError
from polyroute.middleware.authentication import Authenticator
from polyroute.settings import Settings
from polyroute.types import JSONValue
from tests.unit.middleware.test_authentication import ADMIN_KEY, DictKeyStore, stored


class DictSettingsStore:
    """A ``SettingsStore`` in a dict, with each name's last write time."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[JSONValue, float]] = {}

    async def get(self, name: str) -> JSONValue | None:
        found = self.values.get(name)
        return None if found is None else found[0]

    async def put(self, name: str, value: JSONValue) -> None:
        self.values[name] = (value, time.time())

    async def delete(self, name: str) -> bool:
        return self.values.pop(name, None) is not None

    async def purge(self, prefix: str, *, updated_before: float | None = None) -> int:
        gone = [
            n
            for n, (_, at) in self.values.items()
            if n.startswith(prefix) and (updated_before is None or at < updated_before)
        ]
        for name in gone:
            del self.values[name]
        return len(gone)


def scope(path: str, *headers: tuple[bytes, bytes], client: str = "127.0.0.1") -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "headers": list(headers), "state": {}, "client": (client, 1)}


# LoginThrottle


def test_throttle_refuses_after_max_attempts_until_the_window_ends() -> None:
    throttle = LoginThrottle(max_failures=3, window_s=60.0)
    assert [throttle.begin("192.0.2.1", now=100.0) for _ in range(3)] == [None, None, None]
    assert throttle.begin("192.0.2.1", now=110.0) == pytest.approx(50.0)
    assert throttle.begin("192.0.2.2", now=110.0) is None  # per address
    assert throttle.begin("192.0.2.1", now=160.0) is None  # a new window


def test_throttle_success_clears_the_count() -> None:
    throttle = LoginThrottle(max_failures=2, window_s=60.0)
    throttle.begin("192.0.2.1", now=0.0)
    throttle.succeeded("192.0.2.1")
    assert throttle.begin("192.0.2.1", now=1.0) is None
    assert throttle.begin("192.0.2.1", now=1.0) is None
    assert throttle.begin("192.0.2.1", now=1.0) is not None


def test_throttle_forgets_the_oldest_address_beyond_its_bound() -> None:
    throttle = LoginThrottle(max_failures=1, window_s=60.0, max_addresses=2)
    for address in ("a", "b", "c"):
        throttle.begin(address, now=0.0)
    assert throttle.begin("a", now=0.0) is None  # forgotten
    assert throttle.begin("c", now=0.0) is not None


# Passwords


async def test_passwords_bootstrap_stores_the_initial_password_once() -> None:
    store = DictSettingsStore()
    passwords = Passwords(store)
    assert await passwords.bootstrap("first password!!")
    first = await passwords.stored()
    assert first is not None and "first password" not in first
    assert not await passwords.bootstrap("second password!!")
    assert await passwords.stored() == first
    assert await passwords.matches(first, "first password!!")
    assert not await passwords.matches(first, "second password!!")
    assert not await Passwords(DictSettingsStore()).bootstrap(None)


def test_check_settings_refuses_a_short_initial_password(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="POLYROUTE_INITIAL_PASSWORD must be at least 12"):
        check_settings(Settings(data_dir=tmp_path, initial_password=SecretStr("short")))


# Sessions


async def test_sessions_store_only_the_digest_and_expire() -> None:
    store = DictSettingsStore()
    sessions = Sessions(store)
    now = time.time()
    token, session = await sessions.create(ip="192.0.2.1", now=now)
    assert len(token) == 43  # 256 bits, URL-safe base64
    assert session.digest == digest(token)
    assert session.actor == f"session:{digest(token)[:8]}"
    assert session.expires_at == now + LIFETIME_S
    assert all(token not in name and token not in str(value) for name, value in store.values.items())
    assert await sessions.find(token, now=now + 1) == session
    assert await sessions.find(token, now=now + LIFETIME_S) is None
    assert await sessions.find(token[:-1] + ("A" if token[-1] != "A" else "B"), now=now) is None
    assert await sessions.find("short", now=now) is None


async def test_sessions_end_and_end_all() -> None:
    sessions = Sessions(DictSettingsStore())
    now = time.time()
    first, _ = await sessions.create(ip=None, now=now)
    second, _ = await sessions.create(ip=None, now=now)
    assert await sessions.end(first, now=now) is not None
    assert await sessions.end(first, now=now) is None
    assert await sessions.find(second, now=now) is not None
    assert await sessions.end_all() == 1
    assert await sessions.find(second, now=now) is None


async def test_sessions_create_purges_expired_ones() -> None:
    store = DictSettingsStore()
    sessions = Sessions(store, lifetime_s=60.0)
    await sessions.create(ip=None, now=time.time())
    old_name = next(iter(store.values))
    store.values[old_name] = (store.values[old_name][0], time.time() - 61)
    await sessions.create(ip=None, now=time.time())
    assert old_name not in store.values
    assert len(store.values) == 1


def test_cookie_token_and_https_detection() -> None:
    cookie = (b"cookie", f"theme=dark; {COOKIE}=tok123".encode())
    assert cookie_token(scope("/api/keys", cookie)) == "tok123"
    assert cookie_token(scope("/api/keys", (b"cookie", b"other=1"))) is None
    assert is_https({**scope("/"), "scheme": "https"})
    assert is_https(scope("/", (b"x-forwarded-proto", b"https, http")))
    assert not is_https(scope("/", (b"x-forwarded-proto", b"http")))
    assert not is_https(scope("/"))


# Authenticator: order of checks


async def authenticator(**rules: list[str]) -> tuple[Authenticator, Sessions, DictKeyStore]:
    settings = DictSettingsStore()
    ip_filter = IpFilter(settings)
    ip_filter.apply(IpRules.parse(rules))
    sessions = Sessions(settings)
    keys = DictKeyStore([stored(ADMIN_KEY)])
    auth = Authenticator(keys=KeyRing(keys), sessions=sessions, ip_filter=ip_filter, open_paths=OPEN_PATHS)
    return auth, sessions, keys


async def test_authenticator_ip_filter_refuses_before_any_key_lookup() -> None:
    auth, _, keys = await authenticator(block=["203.0.113.0/24"])
    bearer = (b"authorization", f"Bearer {ADMIN_KEY}".encode())
    refusal = await auth.check(scope("/v1/chat/completions", bearer, client="203.0.113.5"))
    assert refusal is not None and refusal.code == "ip_blocked" and refusal.status_code == 403
    assert keys.lookups == 0
    assert await auth.check(scope("/api/auth/login", client="203.0.113.5")) is not None
    assert await auth.check(scope("/v1/chat/completions", bearer, client="198.51.100.1")) is None


async def test_authenticator_allow_list_refuses_other_addresses() -> None:
    auth, _, _ = await authenticator(allow=["10.0.0.0/8"])
    refusal = await auth.check(scope("/v1/models", client="192.0.2.1"))
    assert refusal is not None and refusal.code == "ip_not_allowed"


async def test_authenticator_open_paths_need_no_key() -> None:
    auth, _, keys = await authenticator()
    for path in OPEN_PATHS:
        assert await auth.check(scope(path)) is None
    assert keys.lookups == 0


async def test_authenticator_session_only_on_management_routes_without_a_key() -> None:
    auth, sessions, keys = await authenticator()
    token, session = await sessions.create(ip=None, now=time.time())
    cookie = (b"cookie", f"{COOKIE}={token}".encode())
    managed = scope("/api/keys", cookie)
    assert await auth.check(managed) is None
    assert managed["state"]["session"] == session
    assert managed["state"]["actor"] == session.actor
    inference = await auth.check(scope("/v1/chat/completions", cookie))
    assert inference is not None and inference.code == "missing_api_key"
    ollama = await auth.check(scope("/api/chat", cookie))
    assert ollama is not None and ollama.code == "missing_api_key"
    assert keys.lookups == 0
    ended = await auth.check(scope("/api/keys", (b"cookie", f"{COOKIE}={'x' * 43}".encode())))
    assert ended is not None and ended.code == "invalid_session"
