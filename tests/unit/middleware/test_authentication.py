"""AuthenticationMiddleware driven directly with hand-made ASGI scope, receive and send (no server)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from polyroute.api.access import KeyRing
from polyroute.core.keys import ApiKey, KeyStatus, KeyType, digest
from polyroute.middleware.authentication import AuthenticationMiddleware, Authenticator, presented_key
from polyroute.storage.base import KeyPage

ADMIN_KEY = "pr-admin-0123456789abcdef"
OTHER_KEY = "pr-second-key-fedcba9876543210"
PUBLIC = ("/health", "/ready")


class Inner:
    """The protected app: records the scopes it was called with and answers 204."""

    def __init__(self) -> None:
        self.calls: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def http_scope(path: str = "/v1/chat/completions", *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": list(headers), "state": {}}


class DictKeyStore:
    """Keys by digest in a dict (the SQL store is tested against real databases elsewhere); counts lookups."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = {key.digest: key for key in keys}
        self.lookups = 0

    async def by_digest(self, key_digest: str) -> ApiKey | None:
        self.lookups += 1
        return self.keys.get(key_digest)

    async def create(self, key: ApiKey) -> None:
        self.keys[key.digest] = key

    async def get(self, key_id: str) -> ApiKey | None:
        return next((k for k in self.keys.values() if k.id == key_id), None)

    async def list(self, **_: Any) -> KeyPage:
        return KeyPage(list(self.keys.values()), len(self.keys))

    async def update(self, key: ApiKey) -> None:
        self.keys[key.digest] = key

    async def count(self) -> int:
        return len(self.keys)


def stored(secret: str, key_type: KeyType = KeyType.ADMIN, **changes: Any) -> ApiKey:
    key = ApiKey(id=f"key_{secret[-4:]}", type=key_type, digest=digest(secret), display=secret[:8], created_at=0.0)
    return replace(key, **changes)


async def call(
    scope: dict[str, Any],
    *,
    open_access: bool = False,
    keys: tuple[str, ...] = (ADMIN_KEY,),
    records: list[ApiKey] | None = None,
) -> tuple[Inner, list[Message]]:
    inner = Inner()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    store = DictKeyStore(records if records is not None else [stored(k) for k in keys])
    middleware = AuthenticationMiddleware(
        inner,
        authenticator=Authenticator(keys=None if open_access else KeyRing(store)),
        public_paths=PUBLIC,
    )
    await middleware(scope, no_body, send)
    return inner, sent


def rejection(sent: list[Message]) -> tuple[int, dict[str, bytes], dict[str, Any]]:
    start, body = sent
    headers = {name.decode(): value for name, value in start["headers"]}
    return start["status"], headers, orjson.loads(body["body"])


# Accepted


@pytest.mark.parametrize(
    "header",
    [
        (b"authorization", f"Bearer {ADMIN_KEY}".encode()),
        (b"authorization", f"bearer {ADMIN_KEY}".encode()),
        (b"authorization", f"BEARER   {ADMIN_KEY}  ".encode()),
        (b"x-api-key", ADMIN_KEY.encode()),
    ],
    ids=["bearer", "lowercase-scheme", "extra-spaces", "x-api-key"],
)
async def test_authentication_valid_key_passes_and_sets_principal(header: tuple[bytes, bytes]) -> None:
    inner, sent = await call(http_scope("/v1/chat/completions", header))

    assert len(inner.calls) == 1
    assert inner.calls[0]["state"]["key"].type is KeyType.ADMIN
    assert sent[0]["status"] == 204


async def test_authentication_any_configured_key_passes() -> None:
    inner, _ = await call(http_scope("/v1/models", (b"x-api-key", OTHER_KEY.encode())), keys=(ADMIN_KEY, OTHER_KEY))

    assert len(inner.calls) == 1


@pytest.mark.parametrize("path", PUBLIC)
async def test_authentication_public_path_passes_without_key(path: str) -> None:
    inner, sent = await call(http_scope(path))

    assert len(inner.calls) == 1
    assert "key" not in inner.calls[0]["state"]
    assert sent[0]["status"] == 204


async def test_authentication_open_access_passes_without_key() -> None:
    inner, _ = await call(http_scope("/v1/chat/completions"), open_access=True, keys=())

    assert len(inner.calls) == 1


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
async def test_authentication_non_http_scope_passes(kind: str) -> None:
    inner, _ = await call({"type": kind, "path": "/v1/models", "headers": []})

    assert len(inner.calls) == 1


# Rejected


@pytest.mark.parametrize(
    "headers",
    [
        (),
        ((b"authorization", b"Bearer "),),
        ((b"authorization", b"Bearer"),),
        ((b"authorization", b"Basic dXNlcjpwYXNz"),),
        ((b"x-api-key", b""),),
        ((b"content-type", b"application/json"),),
    ],
    ids=["none", "empty-bearer", "scheme-only", "basic", "empty-x-api-key", "unrelated"],
)
async def test_authentication_missing_key_is_401_missing_api_key(headers: tuple[tuple[bytes, bytes], ...]) -> None:
    inner, sent = await call(http_scope("/v1/chat/completions", *headers))

    status, response_headers, body = rejection(sent)
    assert inner.calls == []
    assert status == 401
    assert response_headers["content-type"] == b"application/json"
    assert int(response_headers["content-length"]) == len(sent[1]["body"])
    assert body["error"]["code"] == "missing_api_key"
    assert body["error"]["type"] == "authentication_error"
    assert "Authorization: Bearer" in body["error"]["message"]


@pytest.mark.parametrize(
    "header",
    [
        (b"authorization", b"Bearer pr-wrong-key"),
        (b"x-api-key", b"pr-wrong-key"),
        (b"authorization", f"Bearer {ADMIN_KEY}x".encode()),
        (b"authorization", f"Bearer {ADMIN_KEY.upper()}".encode()),
    ],
    ids=["bearer", "x-api-key", "suffix", "case"],
)
async def test_authentication_wrong_key_is_401_invalid_api_key(header: tuple[bytes, bytes]) -> None:
    inner, sent = await call(http_scope("/v1/chat/completions", header))

    status, _, body = rejection(sent)
    assert inner.calls == []
    assert status == 401
    assert body["error"] == {
        "message": "invalid API key",
        "type": "authentication_error",
        "code": "invalid_api_key",
        "param": None,
    }


async def test_authentication_rejection_does_not_echo_presented_key() -> None:
    _, sent = await call(http_scope("/v1/chat/completions", (b"authorization", b"Bearer pr-leaky-guess")))

    assert b"pr-leaky-guess" not in sent[1]["body"]


async def test_authentication_no_keys_configured_and_not_open_rejects_everything() -> None:
    inner, sent = await call(http_scope("/v1/models", (b"x-api-key", ADMIN_KEY.encode())), keys=())

    assert inner.calls == []
    assert rejection(sent)[2]["error"]["code"] == "invalid_api_key"


async def test_authentication_public_paths_match_exactly() -> None:
    inner, sent = await call(http_scope("/health/../v1/models"))

    assert inner.calls == []
    assert rejection(sent)[0] == 401


# Helpers


def test_digest_is_stable_sha256_hex() -> None:
    assert digest(ADMIN_KEY) == hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
    assert digest(ADMIN_KEY.encode()) == digest(ADMIN_KEY)
    assert digest(ADMIN_KEY) != digest(OTHER_KEY)


@pytest.mark.parametrize(
    ("record", "path", "status", "code"),
    [
        (stored(ADMIN_KEY, status=KeyStatus.REVOKED), "/v1/models", 403, "key_revoked"),
        (stored(ADMIN_KEY, expires_at=1.0), "/v1/models", 401, "key_expired"),
        (stored(ADMIN_KEY, ips=("10.0.0.0/8",)), "/v1/models", 403, "ip_not_allowed"),
        (stored(ADMIN_KEY, KeyType.FULL), "/api/keys", 403, "admin_key_required"),
        (stored(ADMIN_KEY, KeyType.TEST), "/api/usage/history", 403, "admin_key_required"),
    ],
    ids=["revoked", "expired", "ip", "full-on-management", "test-on-management"],
)
async def test_authentication_refusals(record: ApiKey, path: str, status: int, code: str) -> None:
    scope = http_scope(path, (b"x-api-key", ADMIN_KEY.encode()))
    scope["client"] = ("127.0.0.1", 5000)
    inner, sent = await call(scope, records=[record])

    assert inner.calls == []
    assert rejection(sent)[0] == status
    assert rejection(sent)[2]["error"]["code"] == code


async def test_inference_keys_may_call_ollama_routes_under_api() -> None:
    scope = http_scope("/api/chat", (b"x-api-key", ADMIN_KEY.encode()))
    inner, _ = await call(scope, records=[stored(ADMIN_KEY, KeyType.TEST, expires_at=time.time() + 60)])

    assert len(inner.calls) == 1


async def test_invalid_keys_are_remembered_briefly() -> None:
    store = DictKeyStore([])
    ring = KeyRing(store, negative_ttl_s=60)
    for _ in range(100):
        assert await ring.find(b"pr_full_guess") is None
    assert store.lookups == 1


async def test_valid_keys_are_cached_for_the_ttl_only() -> None:
    store = DictKeyStore([stored(ADMIN_KEY)])
    ring = KeyRing(store, ttl_s=0.05)
    for _ in range(10):
        assert await ring.find(ADMIN_KEY.encode()) is not None
    assert store.lookups == 1
    time.sleep(0.06)
    await ring.find(ADMIN_KEY.encode())
    assert store.lookups == 2


def test_presented_key_first_usable_header_wins() -> None:
    headers = [(b"authorization", b"Bearer "), (b"x-api-key", b"from-x"), (b"authorization", b"Bearer later")]

    assert presented_key(headers) == b"from-x"


def test_presented_key_none_without_credential_headers() -> None:
    assert presented_key([(b"host", b"127.0.0.1")]) is None
