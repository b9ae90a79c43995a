"""OpenAI Chat Completions: ``POST /v1/chat/completions`` and the provider-pinned variant.

Same-format fast path: the client's body is forwarded with only ``model`` (and the seed's
``provider`` field) changed; a streamed answer is relayed byte for byte as it arrives, watched
by :class:`~polyroute.wire.openai_chat.StreamTap` for usage and completeness.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from polyroute.api.responses import (
    ClientDisconnectedError,
    DisconnectWatch,
    parse_json_object,
    read_body,
    send_bytes,
)
from polyroute.api.services import Services
from polyroute.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
)
from polyroute.routing.table import Deployment
from polyroute.storage.base import RequestRecord
from polyroute.upstream.client import UpstreamStream, status_error
from polyroute.wire import openai_chat

_PATH = "/chat/completions"
_SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)
_JSON_HEADERS = ((b"content-type", b"application/json"),)
_MAX_CACHED_HEADERS = 10_000
_DONE = b"data: [DONE]\n\n"
_END = {"type": "http.response.body", "body": b"", "more_body": False}
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def validate_chat(payload: dict[str, Any]) -> tuple[str, str | None, bool]:
    """Check what the gateway itself relies on: ``model``, ``messages``, ``stream``, ``provider``.

    Everything else is the upstream's to judge and passes through untouched.

    Raises:
        InvalidRequestError: naming the offending field.
    """
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' is required and must be a non-empty string", param="model")
    if _CONTROL_CHARACTERS.search(model):
        # The name may reach the upstream and the x-polyroute-model response header.
        raise InvalidRequestError("'model' must not contain control characters", param="model")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' is required and must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be an object", param=f"messages[{i}]")
        if not isinstance(message.get("role"), str):
            raise InvalidRequestError(f"messages[{i}].role must be a string", param=f"messages[{i}].role")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise InvalidRequestError("'stream' must be a boolean", param="stream")
    provider = payload.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise InvalidRequestError("'provider' must be a string", param="provider")
    return model, provider, bool(stream)


class _Outcome:
    """What one request did, gathered for its request-log row."""

    __slots__ = ("deployment", "error_code", "model", "status", "ttft_ms", "upstream_model", "usage_in", "usage_out")

    def __init__(self) -> None:
        self.status = 200
        self.model: str | None = None
        self.deployment: Deployment | None = None
        self.upstream_model: str | None = None
        self.ttft_ms: float | None = None
        self.usage_in: int | None = None
        self.usage_out: int | None = None
        self.error_code: str | None = None


class ChatCompletionsEndpoint:
    """Raw ASGI endpoint for chat completions; ``pinned`` takes the provider from the path."""

    def __init__(self, services: Services, *, pinned: bool = False) -> None:
        self.services = services
        self._pinned = pinned
        self._header_cache: dict[tuple[str, str, bytes], tuple[tuple[bytes, bytes], ...]] = {}

    def _headers(
        self, deployment: Deployment, base: tuple[tuple[bytes, bytes], ...]
    ) -> tuple[tuple[bytes, bytes], ...]:
        """Response headers naming what answered, built once per deployment and kind of answer."""
        key = (deployment.provider, deployment.model, base[0][1])
        found = self._header_cache.get(key)
        if found is None:
            found = (
                *base,
                (b"x-polyroute-provider", deployment.provider.encode()),
                (b"x-polyroute-model", deployment.model.encode()),
            )
            if len(self._header_cache) < _MAX_CACHED_HEADERS:
                self._header_cache[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        created_at = time.time()
        outcome = _Outcome()
        is_stream = False
        try:
            body = await read_body(scope, receive, self.services.max_body_bytes)
            payload = parse_json_object(body)
            outcome.model, provider, is_stream = validate_chat(payload)
            if self._pinned:
                provider = self._pinned_provider(scope, provider)
            deployment = outcome.deployment = self.services.routing.current.resolve(outcome.model, provider=provider)
            payload["model"] = deployment.model
            payload.pop("provider", None)
            data = orjson.dumps(payload)
            if is_stream:
                await self._stream(deployment, data, receive, send, outcome, started)
            else:
                await self._complete(deployment, data, send, outcome)
        except GatewayError as error:
            outcome.status, outcome.error_code = error.status_code, error.code
            raise
        except ClientDisconnectedError:
            outcome.status, outcome.error_code = 499, "client_disconnected"
        finally:
            self._record(scope, outcome, created_at, started, is_stream)

    @staticmethod
    def _pinned_provider(scope: Scope, from_body: str | None) -> str:
        provider: str = scope["path_params"]["provider"]
        if from_body is not None and from_body != provider:
            raise InvalidRequestError(
                f"body names provider {from_body!r} but the path pins {provider!r}", param="provider"
            )
        return provider

    async def _complete(self, deployment: Deployment, data: bytes, send: Send, outcome: _Outcome) -> None:
        reply = await self.services.upstream.post(deployment.target, _PATH, data)
        answer = _load_answer(reply.body, deployment)
        usage = openai_chat.parse_usage(answer)
        if usage is not None:
            outcome.usage_in, outcome.usage_out = usage.input_tokens, usage.output_tokens
        model = answer.get("model")
        outcome.upstream_model = model if isinstance(model, str) else None
        await send_bytes(send, reply.status, reply.body, self._headers(deployment, _JSON_HEADERS))

    async def _stream(
        self, deployment: Deployment, data: bytes, receive: Receive, send: Send, outcome: _Outcome, started: float
    ) -> None:
        tap = openai_chat.StreamTap()
        async with self.services.upstream.open_stream(deployment.target, _PATH, data) as upstream:
            headers = list(self._headers(deployment, _SSE_HEADERS))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            with DisconnectWatch(receive) as watch:
                error = await _relay(upstream, tap, send, outcome, started)
            if watch.disconnected:
                outcome.status, outcome.error_code = 499, "client_disconnected"
        outcome.upstream_model = tap.model or None
        if tap.usage is not None:
            outcome.usage_in, outcome.usage_out = tap.usage.input_tokens, tap.usage.output_tokens
        if not watch.disconnected:
            if error is None and not tap.is_done:
                if tap.is_finished:
                    await send({"type": "http.response.body", "body": _DONE, "more_body": True})
                else:
                    error = UpstreamConnectionError(
                        f"{deployment.provider} ended the stream before it finished", provider=deployment.provider
                    )
            if error is not None:
                outcome.status, outcome.error_code = error.status_code, error.code
                await send(
                    {"type": "http.response.body", "body": openai_chat.render_stream_error(error), "more_body": True}
                )
            await send(_END)

    def _record(self, scope: Scope, outcome: _Outcome, created_at: float, started: float, is_stream: bool) -> None:
        deployment = outcome.deployment
        self.services.request_log.record(
            RequestRecord(
                id=scope["state"].get("request_id") or "",
                created_at=created_at,
                key_id=None,
                endpoint=scope["path"],
                requested_model=outcome.model,
                provider=deployment.provider if deployment else None,
                upstream_model=outcome.upstream_model,
                status=outcome.status,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                ttft_ms=outcome.ttft_ms,
                prompt_tokens=outcome.usage_in,
                completion_tokens=outcome.usage_out,
                is_stream=is_stream,
                error_code=outcome.error_code,
            )
        )


async def _relay(
    upstream: UpstreamStream, tap: openai_chat.StreamTap, send: Send, outcome: _Outcome, started: float
) -> UpstreamError | None:
    """Copy the upstream's bytes to the client as they arrive; an upstream failure is returned, not raised."""
    while True:
        try:
            chunk = await upstream.read()
        except UpstreamError as error:
            return error
        if not chunk:
            return None
        if outcome.ttft_ms is None:
            outcome.ttft_ms = (time.perf_counter() - started) * 1000.0
        tap.feed(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


def _load_answer(body: bytes, deployment: Deployment) -> dict[str, Any]:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or "choices" not in answer:
        if isinstance(answer, dict) and "error" in answer:
            raise status_error(deployment.target, 502, body, {})
        raise UpstreamProtocolError(
            f"{deployment.provider} answered with something that is not a chat completion", provider=deployment.provider
        )
    return answer
