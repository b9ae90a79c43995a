"""RequestIdMiddleware driven directly with hand-made ASGI scope, receive and send (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from polyroute.middleware.request_id import RequestIdMiddleware, RequestIds


class Recorder:
    """The inner app: remembers the scope it saw and answers with a start, two body parts."""

    def __init__(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.scope: Scope | None = None
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        start: Message = {"type": "http.response.start", "status": 200}
        if self.headers is not None:
            start["headers"] = self.headers
        await send(start)
        await send({"type": "http.response.body", "body": b"hel", "more_body": True})
        await send({"type": "http.response.body", "body": b"lo"})


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def http_scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/v1/models", "headers": list(headers)}


async def run(scope: dict[str, Any], inner: Recorder | None = None) -> tuple[Recorder, list[Message]]:
    inner = inner or Recorder()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestIdMiddleware(inner, ids=RequestIds())(scope, no_body, send)
    return inner, sent


def response_ids(sent: list[Message]) -> list[bytes]:
    return [value for message in sent for name, value in message.get("headers", ()) if name == b"x-request-id"]


async def test_request_id_generated_when_header_absent() -> None:
    inner, sent = await run(http_scope())

    assert inner.scope is not None
    generated = inner.scope["state"]["request_id"]
    assert len(generated) == 24
    assert int(generated, 16) >= 0
    assert response_ids(sent) == [generated.encode()]


async def test_request_id_generated_ids_differ() -> None:
    first, _ = await run(http_scope())
    second, _ = await run(http_scope())

    assert first.scope is not None and second.scope is not None
    assert first.scope["state"]["request_id"] != second.scope["state"]["request_id"]


@pytest.mark.parametrize(
    "value",
    [b"abc", b"req_01HZX5.abc-DEF:42", b"0" * 128, b"7f3c1e2a-8d4b-4c1a-9f00-1234567890ab"],
    ids=["short", "punctuation", "max-length", "uuid"],
)
async def test_request_id_sane_header_is_accepted(value: bytes) -> None:
    inner, sent = await run(http_scope((b"x-request-id", value)))

    assert inner.scope is not None
    assert inner.scope["state"]["request_id"] == value.decode()
    assert response_ids(sent) == [value]


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"0" * 129,
        b"has space",
        b"new\nline",
        b"crlf\r\nx-injected: 1",
        b"slash/path",
        b"<script>",
        "caf\u00e9".encode(),
        b"tab\t",
    ],
    ids=["empty", "too-long", "space", "newline", "crlf", "slash", "markup", "utf8", "tab"],
)
async def test_request_id_bad_header_is_replaced(value: bytes) -> None:
    inner, sent = await run(http_scope((b"x-request-id", value)))

    assert inner.scope is not None
    replaced = inner.scope["state"]["request_id"]
    assert replaced.encode() != value
    assert len(replaced) == 24
    assert response_ids(sent) == [replaced.encode()]


async def test_request_id_only_first_header_is_considered() -> None:
    inner, _ = await run(http_scope((b"x-request-id", b"bad value"), (b"x-request-id", b"good")))

    assert inner.scope is not None
    assert inner.scope["state"]["request_id"] != "good"


async def test_request_id_header_added_once_to_start_only() -> None:
    _, sent = await run(http_scope((b"x-request-id", b"abc")))

    start, *body = sent
    assert start["type"] == "http.response.start"
    assert [name for name, _ in start["headers"]].count(b"x-request-id") == 1
    assert all("headers" not in message for message in body)
    assert [message.get("body") for message in body] == [b"hel", b"lo"]


async def test_request_id_keeps_the_apps_own_headers() -> None:
    inner = Recorder(headers=[(b"content-type", b"application/json")])

    _, sent = await run(http_scope((b"x-request-id", b"abc")), inner)

    assert sent[0]["headers"] == [(b"content-type", b"application/json"), (b"x-request-id", b"abc")]


async def test_request_id_keeps_existing_state() -> None:
    scope = {**http_scope(), "state": {"principal": "admin"}}

    inner, _ = await run(scope)

    assert inner.scope is not None
    assert inner.scope["state"]["principal"] == "admin"
    assert "request_id" in inner.scope["state"]


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
async def test_request_id_non_http_scope_passes_through_untouched(kind: str) -> None:
    scope: dict[str, Any] = {"type": kind, "headers": []}
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send({"type": f"{kind}.marker"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestIdMiddleware(inner, ids=RequestIds())(scope, no_body, send)

    assert seen == [{"type": kind, "headers": []}]
    assert sent == [{"type": f"{kind}.marker"}]
