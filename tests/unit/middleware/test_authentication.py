"""AuthenticationMiddleware driven directly with hand-made ASGI scope, receive and send (no server)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from polyroute.middleware.authentication import AuthenticationMiddleware, Authenticator, hash_key, presented_key

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


async def call(
    scope: dict[str, Any], *, open_access: bool = False, keys: tuple[str, ...] = (ADMIN_KEY,)
) -> tuple[Inner, list[Message]]:
    inner = Inner()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = AuthenticationMiddleware(
        inner,
        authenticator=Authenticator(key_hashes=[hash_key(k) for k in keys], open_access=open_access),
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
    assert inner.calls[0]["state"]["principal"] == "admin"
    assert sent[0]["status"] == 204


async def test_authentication_any_configured_key_passes() -> None:
    inner, _ = await call(http_scope("/v1/models", (b"x-api-key", OTHER_KEY.encode())), keys=(ADMIN_KEY, OTHER_KEY))

    assert len(inner.calls) == 1


@pytest.mark.parametrize("path", PUBLIC)
async def test_authentication_public_path_passes_without_key(path: str) -> None:
    inner, sent = await call(http_scope(path))

    assert len(inner.calls) == 1
    assert "principal" not in inner.calls[0]["state"]
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


def test_hash_key_is_stable_sha256_digest() -> None:
    assert hash_key(ADMIN_KEY) == hash_key(ADMIN_KEY)
    assert hash_key(ADMIN_KEY) == hashlib.sha256(ADMIN_KEY.encode()).digest()
    assert len(hash_key(ADMIN_KEY)) == 32


def test_hash_key_differs_per_key() -> None:
    assert hash_key(ADMIN_KEY) != hash_key(OTHER_KEY)
    assert hash_key("k\u00e9y") == hashlib.sha256("k\u00e9y".encode()).digest()


def test_presented_key_first_usable_header_wins() -> None:
    headers = [(b"authorization", b"Bearer "), (b"x-api-key", b"from-x"), (b"authorization", b"Bearer later")]

    assert presented_key(headers) == b"from-x"


def test_presented_key_none_without_credential_headers() -> None:
    assert presented_key([(b"host", b"127.0.0.1")]) is None
