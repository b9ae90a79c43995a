"""FakeProvider: a real aiohttp server on 127.0.0.1 speaking one provider's own wire format.

``FakeProvider("openai" | "anthropic" | "gemini" | "ollama")`` serves that format's routes, checks the
credential the way the real API does (answering with the real API's own error shape), records every
request and answers from a script of :class:`~tests.fakes.Reply` objects. Like ``FakeUpstream`` it runs
in its own thread and event loop, so synchronous SDK clients (or a gateway) can call it.

Replies come from the golden wire fixtures (``golden_reply``) or from small builders (``text_reply``,
``tool_call_reply``) that write what each provider sends: JSON bodies, SSE events (Anthropic with
``event:`` lines and a ``ping``, Gemini framed ``data: {...}\\r\\n\\r\\n``, OpenAI ending ``data: [DONE]``)
and Ollama NDJSON lines.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from aiohttp import web

from tests.fakes import LoopbackServer, Received, Reply

Format = Literal["openai", "anthropic", "gemini", "ollama"]
FORMATS: Final[tuple[Format, ...]] = ("openai", "anthropic", "gemini", "ollama")
PROVIDER_KEY: Final = "sk-fake-provider-key-0123456789"
"""The credential every fake accepts unless told otherwise."""
FIXTURES: Final = Path(__file__).parent / "fixtures" / "wire"

DEFAULT_MODELS: Final[Mapping[Format, tuple[str, ...]]] = {
    "openai": ("gpt-4o", "gpt-4o-mini"),
    "anthropic": ("claude-opus-4-6", "claude-haiku-4-5"),
    "gemini": ("gemini-2.5-flash", "gemini-2.5-pro"),
    "ollama": ("llama3.2:latest", "qwen3:latest"),
}
STREAM_CONTENT_TYPES: Final[Mapping[Format, str]] = {
    "openai": "text/event-stream",
    "anthropic": "text/event-stream",
    "gemini": "text/event-stream",
    "ollama": "application/x-ndjson",
}
CREATED: Final = 1_741_569_952
CREATED_AT: Final = "2025-03-10T01:25:52.123456789Z"
"""Ollama's ``created_at`` for built replies (RFC 3339 with nanoseconds, as Go writes it)."""


def base_url_for(fmt: Format, root: str) -> str:
    """What a polyroute provider's ``base_url`` is for a server at ``root`` speaking ``fmt``.

    OpenAI-style paths are relative to ``/v1``; the other formats' paths start at the host root.
    """
    return f"{root}/v1" if fmt == "openai" else root


def provider_config(fake: FakeProvider, name: str | None = None) -> dict[str, Any]:
    """A polyroute routing ``providers[]`` entry pointing at ``fake`` (its format, URL, key and models)."""
    entry: dict[str, Any] = {
        "name": name or f"fake-{fake.format}",
        "format": fake.format,
        "base_url": fake.base_url,
        "models": list(fake.models),
    }
    if fake.api_key is not None:
        entry["api_key"] = fake.api_key
    return entry


@dataclass
class ProviderRequest(Received):
    """A request the fake saw, with its query string."""

    query: dict[str, str] = field(default_factory=dict)


# --- golden fixtures ---------------------------------------------------------------------------------


def golden_bytes(fmt: Format, name: str) -> bytes:
    """The exact bytes of a golden fixture."""
    return (FIXTURES / fmt / name).read_bytes()


def split_events(fmt: Format, data: bytes) -> list[bytes]:
    """A stream transcript cut into the units a server writes: SSE events (with their blank line) or lines."""
    if fmt == "ollama":
        return data.splitlines(keepends=True)
    separator = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
    pieces = data.split(separator)
    events = [piece + separator for piece in pieces[:-1]]
    return events + ([pieces[-1]] if pieces[-1] else [])


def golden_reply(fmt: Format, name: str, **overrides: Any) -> Reply:
    """A reply that sends a golden fixture byte for byte: streams event by event, errors with their status.

    ``error_<status>[_<what>].json`` files answer with that status.
    """
    data = golden_bytes(fmt, name)
    if name.endswith((".sse", ".ndjson")):
        reply = Reply(events=split_events(fmt, data), content_type=STREAM_CONTENT_TYPES[fmt])
    else:
        status = int(name.split("_")[1].split(".")[0]) if name.startswith("error_") else 200
        reply = Reply(status=status, raw_body=data)
    for key, value in overrides.items():
        setattr(reply, key, value)
    return reply


# --- reply builders ----------------------------------------------------------------------------------


def pieces(text: str, count: int = 3) -> list[str]:
    """``text`` cut into at most ``count`` non-empty consecutive pieces."""
    if not text:
        return []
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _sse(data: Any, *, event: str | None = None, eol: str = "\n") -> bytes:
    head = f"event: {event}{eol}" if event is not None else ""
    body = data if isinstance(data, str) else _compact(data)
    return f"{head}data: {body}{eol}{eol}".encode()


def _gemini_sse(chunk: Any) -> bytes:
    # Gemini writes ``": "`` after keys and CRLF line ends (as generativelanguage.googleapis.com sends them).
    return f"data: {json.dumps(chunk, separators=(',', ': '), ensure_ascii=False)}\r\n\r\n".encode()


def _ndjson(value: Any) -> bytes:
    line = _compact(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (line + "\n").encode()


@dataclass(frozen=True)
class Answer:
    """What a built reply says: text or one tool call, plus usage."""

    text: str = ""
    tool_name: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    call_id: str = "call_0"
    model: str = ""
    input_tokens: int = 12
    output_tokens: int = 9

    @property
    def arguments_json(self) -> str:
        return _compact(dict(self.arguments))


def _openai(answer: Answer, *, stream: bool) -> Reply:
    cid = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    model = answer.model or "gpt-4o-2024-08-06"
    usage = {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    call: dict[str, Any] = {
        "id": answer.call_id,
        "type": "function",
        "function": {"name": answer.tool_name, "arguments": ""},
    }
    finish = "tool_calls" if answer.tool_name else "stop"
    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text or None, "refusal": None}
        if answer.tool_name:
            message["tool_calls"] = [{**call, "function": {**call["function"], "arguments": answer.arguments_json}}]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        body = {"id": cid, "object": "chat.completion", "created": CREATED, "model": model, "choices": [choice]}
        return Reply(json_body={**body, "usage": usage})

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [choice]}
        return _sse({**body, "usage": None})

    events = [chunk({"role": "assistant", "content": "" if not answer.tool_name else None})]
    events += [chunk({"content": piece}) for piece in pieces(answer.text)]
    if answer.tool_name:
        events.append(chunk({"tool_calls": [{"index": 0, **call}]}))
        events += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces(answer.arguments_json)
        ]
    events.append(chunk({}, finish))
    last = {"id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": []}
    events += [_sse({**last, "usage": usage}), b"data: [DONE]\n\n"]
    return Reply(events=events, content_type=STREAM_CONTENT_TYPES["openai"])


def _anthropic(answer: Answer, *, stream: bool) -> Reply:
    mid = "msg_01XFDUDYJgAACzvnptvVoYEL"
    model = answer.model or "claude-sonnet-4-5-20250929"
    stop = "tool_use" if answer.tool_name else "end_turn"
    blocks: list[dict[str, Any]] = [{"type": "text", "text": answer.text}] if answer.text else []
    tool = {"type": "tool_use", "id": answer.call_id, "name": answer.tool_name}
    if answer.tool_name:
        blocks.append({**tool, "input": dict(answer.arguments)})
    message = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": blocks}
    usage = {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}
    if not stream:
        return Reply(json_body={**message, "stop_reason": stop, "stop_sequence": None, "usage": usage})

    def event(data: dict[str, Any]) -> bytes:
        return _sse(data, event=str(data["type"]))

    start: dict[str, Any] = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {"input_tokens": answer.input_tokens, "output_tokens": 1}
    events = [event({"type": "message_start", "message": start}), event({"type": "ping"})]
    index = 0
    if answer.text:
        events.append(event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        events += [
            event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
            for piece in pieces(answer.text)
        ]
        events.append(event({"type": "content_block_stop", "index": 0}))
        index = 1
    if answer.tool_name:
        events.append(event({"type": "content_block_start", "index": index, "content_block": {**tool, "input": {}}}))
        events += [
            event(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": p},
                }
            )
            for p in ["", *pieces(answer.arguments_json)]
        ]
        events.append(event({"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": stop, "stop_sequence": None}
    events.append(event({"type": "message_delta", "delta": delta, "usage": {"output_tokens": answer.output_tokens}}))
    events.append(event({"type": "message_stop"}))
    return Reply(events=events, content_type=STREAM_CONTENT_TYPES["anthropic"])


def _gemini(answer: Answer, *, stream: bool) -> Reply:
    rid = "IZI2acSKMoWl0-kPmYj2yQc"
    model = answer.model or "gemini-2.5-flash"
    call = {"functionCall": {"name": answer.tool_name, "args": dict(answer.arguments)}}

    def usage(output: int) -> dict[str, Any]:
        total = answer.input_tokens + output
        return {"promptTokenCount": answer.input_tokens, "candidatesTokenCount": output, "totalTokenCount": total}

    def response(parts: list[dict[str, Any]], output: int, *, final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if final:
            candidate["finishReason"] = "STOP"
        candidate["index"] = 0
        return {"candidates": [candidate], "usageMetadata": usage(output), "modelVersion": model, "responseId": rid}

    if not stream:
        parts = ([{"text": answer.text}] if answer.text else []) + ([call] if answer.tool_name else [])
        body = json.dumps(response(parts, answer.output_tokens, final=True), indent=2, ensure_ascii=False)
        return Reply(raw_body=body.encode() + b"\n")
    chunks = [[{"text": piece}] for piece in pieces(answer.text)] + ([[call]] if answer.tool_name else [])
    events = [
        _gemini_sse(response(parts, answer.output_tokens * (i + 1) // len(chunks), final=i == len(chunks) - 1))
        for i, parts in enumerate(chunks)
    ]
    return Reply(events=events, content_type=STREAM_CONTENT_TYPES["gemini"])


def _ollama(answer: Answer, *, stream: bool) -> Reply:
    model = answer.model or "llama3.2"
    counts: dict[str, Any] = {
        "total_duration": 885095291,
        "load_duration": 3753500,
        "prompt_eval_count": answer.input_tokens,
    }
    counts |= {"prompt_eval_duration": 328493000, "eval_count": answer.output_tokens, "eval_duration": 552222000}
    call = {"function": {"name": answer.tool_name, "arguments": dict(answer.arguments)}}

    def line(message: dict[str, Any], *, done: bool) -> dict[str, Any]:
        value: dict[str, Any] = {"model": model, "created_at": CREATED_AT, "message": {"role": "assistant", **message}}
        if done:
            value["done_reason"] = "stop"
        value["done"] = done
        return value | counts if done else value

    if not stream:
        message: dict[str, Any] = {"content": answer.text}
        if answer.tool_name:
            message["tool_calls"] = [call]
        return Reply(raw_body=_ndjson(line(message, done=True)).rstrip(b"\n"))
    events = [_ndjson(line({"content": piece}, done=False)) for piece in pieces(answer.text)]
    if answer.tool_name:
        events.append(_ndjson(line({"content": "", "tool_calls": [call]}, done=False)))
    events.append(_ndjson(line({"content": ""}, done=True)))
    return Reply(events=events, content_type=STREAM_CONTENT_TYPES["ollama"])


_BUILDERS: Final[Mapping[Format, Callable[..., Reply]]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "ollama": _ollama,
}


def text_reply(
    fmt: Format, text: str = "Hello! How can I help?", *, stream: bool = False, **usage_and_model: Any
) -> Reply:
    """A plain text answer in ``fmt`` (``model``, ``input_tokens``, ``output_tokens`` may be given)."""
    return _BUILDERS[fmt](Answer(text=text, **usage_and_model), stream=stream)


def tool_call_reply(
    fmt: Format,
    name: str = "get_weather",
    arguments: Mapping[str, Any] | None = None,
    *,
    stream: bool = False,
    text: str = "",
    **extra: Any,
) -> Reply:
    """An answer calling one tool in ``fmt``; streams split the arguments over several deltas where the format does."""
    args = {"location": "Paris, France"} if arguments is None else arguments
    return _BUILDERS[fmt](Answer(text=text, tool_name=name, arguments=args, **extra), stream=stream)


# --- the server --------------------------------------------------------------------------------------


def _json_response(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, indent=2) + "\n", content_type="application/json")


_ANTHROPIC_401 = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
_ANTHROPIC_NO_VERSION = {
    "type": "error",
    "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"},
}
_OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer "
    "auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys."
)


class FakeProvider(LoopbackServer):
    """One provider format on 127.0.0.1, with a script of replies and a record of requests."""

    def __init__(self, fmt: Format, *, api_key: str | None = PROVIDER_KEY, models: Sequence[str] | None = None) -> None:
        super().__init__()
        self.format: Format = fmt
        self.api_key = None if fmt == "ollama" else api_key
        self.models = list(models if models is not None else DEFAULT_MODELS[fmt])
        self.script: deque[Reply] = deque()
        self.received: list[ProviderRequest] = []
        self.count_tokens_result = 14
        """``input_tokens`` answered by Anthropic's ``/v1/messages/count_tokens``."""
        self.stream_completed = threading.Event()
        self.stream_aborted = threading.Event()

    @property
    def base_url(self) -> str:
        """The ``base_url`` a polyroute provider config uses for this fake."""
        return base_url_for(self.format, self.root)

    def reset(self) -> None:
        self.script.clear()
        self.received.clear()
        self.count_tokens_result = 14
        self.stream_completed.clear()
        self.stream_aborted.clear()

    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        routes: dict[Format, list[web.RouteDef]] = {
            "openai": [web.post("/v1/chat/completions", self._chat), web.get("/v1/models", self._models)],
            "anthropic": [
                web.post("/v1/messages", self._chat),
                web.post("/v1/messages/count_tokens", self._count_tokens),
                web.get("/v1/models", self._models),
            ],
            # Gemini serves the same methods under the stable /v1 and under /v1beta.
            "gemini": [
                *(web.post(f"/{version}/models/{{call}}", self._gemini) for version in ("v1beta", "v1")),
                *(web.get(f"/{version}/models", self._models) for version in ("v1beta", "v1")),
            ],
            "ollama": [web.post("/api/chat", self._chat), web.get("/api/tags", self._models)],
        }
        app.add_routes(routes[self.format])
        return app

    async def _record(self, request: web.Request) -> ProviderRequest:
        received = ProviderRequest(
            request.method, request.path, dict(request.headers), await request.read(), query=dict(request.query)
        )
        self.received.append(received)
        return received

    def _auth_failure(self, request: web.Request) -> web.Response | None:
        """The real API's answer to a missing or wrong credential; None when the request may pass."""
        if self.api_key is None:
            return None
        if self.format == "openai":
            header = request.headers.get("Authorization", "")
            if not header:
                return _json_response(401, _openai_error(_OPENAI_NO_KEY, code=None))
            if header != f"Bearer {self.api_key}":
                shown = header.removeprefix("Bearer ")
                message = f"Incorrect API key provided: {shown[:3]}***{shown[-4:]}. You can find your API key at https://platform.openai.com/account/api-keys."
                return _json_response(401, _openai_error(message, code="invalid_api_key"))
            return None
        if self.format == "anthropic":
            # API keys go in x-api-key; the newest SDKs send them as a Bearer token, which the API also takes.
            keys = {request.headers.get("x-api-key"), request.headers.get("Authorization", "").removeprefix("Bearer ")}
            if self.api_key not in keys:
                return _json_response(401, _ANTHROPIC_401)
            if "anthropic-version" not in request.headers:
                return _json_response(400, _ANTHROPIC_NO_VERSION)
            return None
        key = request.headers.get("x-goog-api-key", request.query.get("key"))
        if key is None:
            return web.Response(
                status=403, body=golden_bytes("gemini", "error_403.json"), content_type="application/json"
            )
        if key != self.api_key:
            body = golden_bytes("gemini", "error_400_api_key.json")
            return web.Response(status=400, body=body, content_type="application/json")
        return None

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        failure = self._auth_failure(request)
        if failure is not None:
            return failure
        return _json_response(200, _model_list(self.format, self.models))

    async def _count_tokens(self, request: web.Request) -> web.Response:
        await self._record(request)
        failure = self._auth_failure(request)
        if failure is not None:
            return failure
        return _json_response(200, {"input_tokens": self.count_tokens_result})

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["call"].rpartition(":")
        if method not in ("generateContent", "streamGenerateContent") or not model:
            await self._record(request)
            message = f"Method not found: {request.path}"
            return _json_response(404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}})
        return await self._chat(request, stream=method == "streamGenerateContent")

    async def _chat(self, request: web.Request, *, stream: bool | None = None) -> web.StreamResponse:
        received = await self._record(request)
        failure = self._auth_failure(request)
        if failure is not None:
            return failure
        if stream is None:
            stream = _wants_stream(self.format, received)
        reply = self.script.popleft() if self.script else self._default(received, stream=stream)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.events is not None:
            if self.format == "gemini" and request.query.get("alt") != "sse":
                return await self._json_array(request, reply)
            return await self._stream(request, reply)
        body = reply.raw_body if reply.raw_body is not None else json.dumps(reply.json_body).encode()
        return web.Response(status=reply.status, body=body, content_type=reply.content_type, headers=reply.headers)

    def _default(self, received: ProviderRequest, *, stream: bool) -> Reply:
        model = ""
        if self.format != "gemini":
            model = str(_json_or_empty(received.body).get("model", ""))
        return text_reply(self.format, stream=stream, model=model)

    async def _stream(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        content_type = reply.content_type
        if content_type == "application/json":
            content_type = STREAM_CONTENT_TYPES[self.format]
        response = web.StreamResponse(status=reply.status, headers={"Content-Type": content_type, **reply.headers})
        await response.prepare(request)
        return await self._write_all(request, response, reply, list(reply.events or []))

    async def _json_array(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        """Gemini's ``streamGenerateContent`` without ``alt=sse``: one JSON array, written element by element."""
        elements = [_sse_data(event) for event in reply.events or []]
        writes = [(b"[" if i == 0 else b",\r\n") + element for i, element in enumerate(elements)] + [b"]"]
        response = web.StreamResponse(status=reply.status, headers={"Content-Type": "application/json; charset=UTF-8"})
        await response.prepare(request)
        return await self._write_all(request, response, reply, writes)

    async def _write_all(
        self, request: web.Request, response: web.StreamResponse, reply: Reply, writes: list[bytes]
    ) -> web.StreamResponse:
        try:
            for i, data in enumerate(writes):
                if reply.cut_after is not None and i >= reply.cut_after:
                    request.transport.close()  # type: ignore[union-attr]
                    return response
                await response.write(data)
                if reply.event_delay_s and i + 1 < len(writes):
                    await asyncio.sleep(reply.event_delay_s)
            await response.write_eof()
            self.stream_completed.set()
        except (ConnectionResetError, asyncio.CancelledError):
            self.stream_aborted.set()
            raise
        return response


def _openai_error(message: str, *, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _json_or_empty(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _wants_stream(fmt: Format, received: ProviderRequest) -> bool:
    # Ollama streams unless told not to; OpenAI and Anthropic stream only when asked.
    return bool(_json_or_empty(received.body).get("stream", fmt == "ollama"))


def _sse_data(event: bytes) -> bytes:
    """The pretty-printed JSON of one SSE event's ``data`` (as Gemini writes array elements)."""
    lines = event.decode().splitlines()
    data = "\n".join(line.removeprefix("data:").removeprefix(" ") for line in lines if line.startswith("data:"))
    return json.dumps(json.loads(data), indent=2, ensure_ascii=False).encode()


def _model_list(fmt: Format, models: Sequence[str]) -> dict[str, Any]:
    if fmt == "openai":
        data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "system"} for m in models]
        return {"object": "list", "data": data}
    if fmt == "anthropic":
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"} for m in models]
        return {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
    if fmt == "gemini":
        methods = ["generateContent", "countTokens", "streamGenerateContent"]
        entries = [
            {
                "name": f"models/{m}",
                "version": "001",
                "displayName": m,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": methods,
            }
            for m in models
        ]
        return {"models": entries}
    details = {"format": "gguf", "family": "llama", "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}
    entries = [
        {
            "name": m,
            "model": m,
            "modified_at": "2025-05-27T22:54:57.641643Z",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": details,
        }
        for m in models
    ]
    return {"models": entries}
