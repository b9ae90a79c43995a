"""A fast fake OpenAI-compatible upstream for benchmarks.

A raw asyncio protocol server (uvloop + httptools, both already dependencies of polyroute) so that it
costs far less CPU per request than anything it sits behind. It answers:

* ``POST /v1/chat/completions``: a fixed, realistic ``chat.completion`` JSON with ``usage``; when the
  body has ``"stream": true``, an SSE stream of ``--chunks`` content chunks, a finish chunk, a usage
  chunk and ``data: [DONE]`` (chunked transfer encoding).
* ``GET /v1/models`` (for gateways that discover models) and ``GET /health``, whose answer counts the
  model-list requests served so far (``{"status":"ok","model_lists":N}``).

``--delay-ms`` adds a fixed delay before each chat answer (the "20 ms upstream" variant);
``--chunk-delay-ms`` spaces stream chunks; ``--fail-status 500`` makes every chat request (streamed
or not) fail at once with that status and an OpenAI error body (the failing upstream of the failover
case). Connections are kept alive (HTTP/1.1) unless the client asks to close. Run:
``python bench/fake_upstream.py --port 9000 [--delay-ms 20] [--fail-status 500]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
from typing import cast

import httptools
import uvloop

MODEL = "bench-model"
_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
_WORDS = ("Hello", " there", "!", " This", " is", " a", " fixed", " benchmark", " answer", " from", " the", " fake")
_USAGE = {"prompt_tokens": 42, "completion_tokens": 24, "total_tokens": 66}


def _completion_body() -> bytes:
    text = "Hello there! This is a fixed benchmark answer from the fake upstream, long enough to look real. " * 2
    doc = {
        "id": "chatcmpl-bench0000000000000000000000001",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text.strip(), "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            **_USAGE,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _chunk(delta: dict[str, object], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    doc: dict[str, object] = {
        "id": "chatcmpl-bench0000000000000000000000002",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        doc["usage"] = usage
    payload = b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def stream_events(n_chunks: int) -> list[bytes]:
    """The SSE events (already framed as HTTP chunks) of one streamed answer, terminator included."""
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": _WORDS[i % len(_WORDS)]}) for i in range(n_chunks)]
    events.append(_chunk({}, finish="stop"))
    events.append(_chunk({}, usage=dict(_USAGE)))
    done = b"data: [DONE]\n\n"
    events.append(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
    return events


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        status.encode(),
        content_type,
        len(body),
    )
    return head + body


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_MODELS = _response(
    "200 OK",
    json.dumps(
        {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1_700_000_000, "owned_by": "bench"}]}
    ).encode(),
)
_NOT_FOUND = _response("404 Not Found", b'{"error":{"message":"not found","type":"invalid_request_error"}}')
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}


def failure(status: int) -> bytes:
    """A complete error answer with ``status`` and the body an OpenAI server sends on a server error."""
    message = "The server had an error while processing your request."
    doc = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    body = json.dumps(doc, separators=(",", ":")).encode()
    return _response(f"{status} {_REASONS.get(status, 'Error')}", body)


class Config:
    """Precomputed answers and delays shared by every connection."""

    def __init__(self, delay_ms: float, chunk_delay_ms: float, n_chunks: int, fail_status: int = 0) -> None:
        self.delay = delay_ms / 1000.0
        self.failure = failure(fail_status) if fail_status else None
        """Sent at once for every chat request when set (``--fail-status``)."""
        self.chunk_delay = chunk_delay_ms / 1000.0
        self.completion = _response("200 OK", _completion_body())
        self.events = stream_events(n_chunks)
        self.stream_all = _STREAM_HEAD + b"".join(self.events)
        self.served = 0
        self.model_lists = 0


class FakeProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection; answers requests in order, keep-alive by default."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.tail: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_response("400 Bad Request", b"{}"))
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.tail is not None:
            self.tail.cancel()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        keep_alive = self.parser.should_keep_alive()
        path = self.url.split(b"?", 1)[0]
        self.cfg.served += 1
        if method == b"POST" and path.endswith(b"/chat/completions") and self.cfg.failure is not None:
            self._send(self.cfg.failure, keep_alive)
        elif method == b"POST" and path.endswith(b"/chat/completions"):
            streaming = _STREAM_RE.search(b"".join(self.body)) is not None
            if self.cfg.delay or (streaming and self.cfg.chunk_delay) or self.tail is not None:
                self.tail = asyncio.ensure_future(self._answer_later(streaming, keep_alive, self.tail))
                return
            self._send(self.cfg.stream_all if streaming else self.cfg.completion, keep_alive)
        elif method == b"GET" and path.endswith(b"/models"):
            self.cfg.model_lists += 1
            self._send(_MODELS, keep_alive)
        elif method == b"GET" and path == b"/health":
            self._send(_response("200 OK", b'{"status":"ok","model_lists":%d}' % self.cfg.model_lists), keep_alive)
        else:
            self._send(_NOT_FOUND, keep_alive)

    def _send(self, data: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if not keep_alive:
            self.transport.close()

    async def _answer_later(self, streaming: bool, keep_alive: bool, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.shield(previous)
        if self.cfg.delay:
            await asyncio.sleep(self.cfg.delay)
        if not streaming:
            self._send(self.cfg.completion, keep_alive)
        elif not self.cfg.chunk_delay:
            self._send(self.cfg.stream_all, keep_alive)
        else:
            await self._trickle()
            self._send(b"", keep_alive)
        if self.tail is asyncio.current_task():
            self.tail = None

    async def _trickle(self) -> None:
        if self.transport is None:
            return
        self.transport.write(_STREAM_HEAD + self.cfg.events[0])
        for event in self.cfg.events[1:]:
            await asyncio.sleep(self.cfg.chunk_delay)
            if self.transport is None:
                return
            self.transport.write(event)


async def serve(host: str, port: int, cfg: Config) -> None:
    """Serve until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeProtocol(cfg), host, port, backlog=4096, reuse_address=True)
    failing = ", every chat request fails" if cfg.failure is not None else ""
    print(f"fake upstream on http://{host}:{port} (delay {cfg.delay * 1000:g} ms{failing})", flush=True)
    started = time.monotonic()
    try:
        async with server:
            await server.serve_forever()
    finally:
        print(f"fake upstream served {cfg.served} requests in {time.monotonic() - started:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fixed delay before each chat answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="gap between stream chunks")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per streamed answer")
    parser.add_argument(
        "--fail-status", type=int, default=0, help="answer every chat request at once with this HTTP status (0: off)"
    )
    args = parser.parse_args()
    cfg = Config(args.delay_ms, args.chunk_delay_ms, args.chunks, args.fail_status)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port, cfg))


if __name__ == "__main__":
    main()
