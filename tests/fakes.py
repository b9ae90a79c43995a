"""FakeUpstream: a real aiohttp server on 127.0.0.1 speaking OpenAI's wire format, with scripted replies.

It runs in its own thread and event loop, so synchronous SDK clients can call a gateway that calls it.
Payload shapes follow OpenAI's API reference (chat.completion, chat.completion.chunk, error objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web

CREATED = 1_731_000_000


def completion(
    content: str = "Hello! How can I help you today?",
    *,
    model: str = "gpt-4o-2024-08-06",
    prompt_tokens: int = 19,
    completion_tokens: int = 9,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """A chat.completion object as OpenAI returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_6b68a8204b",
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None, *, include_usage: bool) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_6b68a8204b",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if include_usage:
        chunk["usage"] = None
    return chunk


def text_stream(
    pieces: Sequence[str] = ("Hel", "lo", "!", " How", " can", " I", " help?"),
    *,
    model: str = "gpt-4o-2024-08-06",
    include_usage: bool = False,
    prompt_tokens: int = 19,
    done: bool = True,
) -> list[bytes]:
    """SSE events of a streamed text answer, each a complete ``data: ...\\n\\n`` event."""
    chunks = [_chunk(model, {"role": "assistant", "content": "", "refusal": None}, None, include_usage=include_usage)]
    chunks += [_chunk(model, {"content": p}, None, include_usage=include_usage) for p in pieces]
    chunks.append(_chunk(model, {}, "stop", include_usage=include_usage))
    if include_usage:
        usage_chunk = _chunk(model, {}, None, include_usage=False)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_tokens + len(pieces),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        chunks.append(usage_chunk)
    events = [sse(c) for c in chunks]
    if done:
        events.append(b"data: [DONE]\n\n")
    return events


def tool_call_stream(
    name: str = "get_weather",
    argument_pieces: Sequence[str] = ('{"lo', 'cation": "Par', 'is, France"', "}"),
    *,
    call_id: str = "call_DdmO9pD3xa9XTPNJ32zg2hcA",
    model: str = "gpt-4o-2024-08-06",
) -> list[bytes]:
    """SSE events of a streamed tool call, arguments split as OpenAI splits them."""
    first = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}],
        "refusal": None,
    }
    chunks = [_chunk(model, first, None, include_usage=False)]
    chunks += [
        _chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}, None, include_usage=False)
        for p in argument_pieces
    ]
    chunks.append(_chunk(model, {}, "tool_calls", include_usage=False))
    return [*(sse(c) for c in chunks), b"data: [DONE]\n\n"]


def sse(payload: dict[str, Any]) -> bytes:
    """One SSE event in OpenAI's framing (compact JSON, as OpenAI sends it)."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def error_body(message: str, *, type_: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    """An OpenAI error object."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@dataclass
class Reply:
    """One scripted answer. ``events`` makes it a stream; ``cut_after`` drops the connection after N events."""

    status: int = 200
    json_body: Any = None
    raw_body: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    events: list[bytes] | None = None
    event_delay_s: float = 0.0
    cut_after: int | None = None
    chunked: bool = False
    """Send a JSON body with chunked transfer encoding (no Content-Length)."""


@dataclass
class Received:
    """A request the fake saw."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoopbackServer:
    """An aiohttp app served on 127.0.0.1 from its own thread and event loop: the plumbing of every fake upstream."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def build_app(self) -> web.Application:
        """The fake's routes."""
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class FakeUpstream(LoopbackServer):
    """An OpenAI-compatible server on 127.0.0.1 with a script of replies and a record of requests."""

    def __init__(self, models: Sequence[str] = ("gpt-4o", "gpt-4o-mini")) -> None:
        super().__init__()
        self.models = list(models)
        self.script: deque[Reply] = deque()
        self.received: list[Received] = []
        self.default: Callable[[Received], Reply] = lambda req: Reply(json_body=completion(model=req.json()["model"]))
        self.stream_aborted = threading.Event()
        self.stream_completed = threading.Event()
        self.closed_early = threading.Event()
        """Set when the client closed the connection before a scripted delay or stream was over."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.script.clear()
        self.received.clear()
        self.stream_aborted.clear()
        self.stream_completed.clear()
        self.closed_early.clear()
        self.default = lambda req: Reply(json_body=completion(model=req.json()["model"]))

    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.method, request.path, dict(request.headers), b""))
        data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "system"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received = Received(request.method, request.path, dict(request.headers), await request.read())
        self.received.append(received)
        reply = self.script.popleft() if self.script else self.default(received)
        if reply.delay_s and await self._left_during(request, reply.delay_s):
            self.closed_early.set()
            return web.Response(status=499)
        if reply.events is not None:
            return await self._stream(request, reply)
        body = reply.raw_body if reply.raw_body is not None else json.dumps(reply.json_body).encode()
        if reply.chunked:
            response = web.StreamResponse(status=reply.status, headers={"Content-Type": reply.content_type})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(body), 1024):
                await response.write(body[start : start + 1024])
            await response.write_eof()
            return response
        return web.Response(status=reply.status, body=body, content_type=reply.content_type, headers=reply.headers)

    async def _stream(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(
            status=reply.status, headers={"Content-Type": "text/event-stream", **reply.headers}
        )
        try:
            await response.prepare(request)
            for i, event in enumerate(reply.events or []):
                if reply.cut_after is not None and i >= reply.cut_after:
                    request.transport.close()  # type: ignore[union-attr]
                    return response
                await response.write(event)
                if reply.event_delay_s and i + 1 < len(reply.events or []):
                    await asyncio.sleep(reply.event_delay_s)
                if request.transport is None or request.transport.is_closing():
                    self.stream_aborted.set()
                    self.closed_early.set()
                    return response
            await response.write_eof()
            self.stream_completed.set()
        except (ConnectionResetError, asyncio.CancelledError):
            self.stream_aborted.set()
            self.closed_early.set()
            raise
        return response

    async def _left_during(self, request: web.Request, delay_s: float) -> bool:
        """Wait ``delay_s``; True as soon as the client has closed the connection meanwhile."""
        deadline = time.monotonic() + delay_s
        try:
            while (left := deadline - time.monotonic()) > 0:
                if request.transport is None or request.transport.is_closing():
                    return True
                await asyncio.sleep(min(left, 0.02))
        except asyncio.CancelledError:
            self.closed_early.set()
            raise
        return request.transport is None or request.transport.is_closing()


def wait_for_log_row(database: Path, request_id: str, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """The gateway's ``request_log`` row for ``request_id``, polling the SQLite file until it is flushed."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM request_log WHERE id = ?", (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        if time.monotonic() > deadline:
            raise AssertionError(f"no request_log row for {request_id} after {timeout_s}s")
        time.sleep(0.05)
