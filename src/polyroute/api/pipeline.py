"""The inference pipeline shared by every client-facing API: any client format to any upstream format.

A request is parsed once into the canonical form by the client's translator. When the upstream speaks
the client's own format, the client's body is forwarded as it came (only the model changed) and the
answer relayed as it is, watched for usage; otherwise it is rendered by the upstream's translator and
the answer translated back, streamed event by event through sans-IO parsers and renderers:

    upstream bytes ─▶ upstream stream_parser ─▶ StreamEvents ─▶ client stream_renderer ─▶ client bytes

A stream's HTTP status is sent with its first bytes, so a failure before anything was produced is an
ordinary error answer; after that, failures are delivered in-band in the client's format.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from polyroute.api.outcome import Outcome
from polyroute.api.responses import ClientDisconnectedError, DisconnectWatch, send_bytes
from polyroute.api.services import Services
from polyroute.core.accumulate import Accumulator
from polyroute.core.estimate import estimate_usage
from polyroute.core.events import MessageStart, StreamEvent, is_content
from polyroute.core.messages import ChatRequest, ChatResponse, ReasoningPart, TextPart
from polyroute.core.reasoning import ForeignReasoningFilter
from polyroute.core.signatures import seal_event, seal_response, unseal_request
from polyroute.errors import (
    GatewayError,
    InvalidRequestError,
    UnsupportedFeatureError,
    UpstreamConnectionError,
    UpstreamEmptyAnswerError,
    UpstreamError,
    UpstreamProtocolError,
)
from polyroute.routing.table import Deployment
from polyroute.types import JSONObject
from polyroute.upstream.client import UpstreamStream, status_error
from polyroute.wire import WireFormat
from polyroute.wire import capabilities as cap
from polyroute.wire.registry import TRANSLATORS, StreamChunkParser, StreamRenderer, Translator

logger = logging.getLogger(__name__)

SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)
NDJSON_HEADERS = ((b"content-type", b"application/x-ndjson"), (b"cache-control", b"no-cache"))
JSON_HEADERS = ((b"content-type", b"application/json"),)
STRICT_HEADER = b"x-polyroute-strict"
_END = {"type": "http.response.body", "body": b"", "more_body": False}
_MAX_CACHED_HEADERS = 10_000


def stream_headers(fmt: WireFormat) -> tuple[tuple[bytes, bytes], ...]:
    """The response headers of a stream in ``fmt`` (Ollama streams NDJSON, every other format SSE)."""
    return NDJSON_HEADERS if fmt is WireFormat.OLLAMA else SSE_HEADERS


def is_strict(scope: Scope) -> bool:
    """Whether the client asked for strict translation (``X-Polyroute-Strict: true``)."""
    for name, value in scope["headers"]:
        if name == STRICT_HEADER:
            return value.strip().lower() in (b"true", b"1", b"yes")
    return False


def load_answer(body: bytes, deployment: Deployment) -> JSONObject:
    """An upstream's non-streamed answer as a JSON object.

    Raises:
        UpstreamProtocolError: the answer is not a JSON object.
    """
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise UpstreamProtocolError(
            f"{deployment.provider} answered with something that is not a JSON object", provider=deployment.provider
        )
    return answer


class ResponseHeaders:
    """Response headers naming what answered, built once per deployment and kind of answer."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, bytes], tuple[tuple[bytes, bytes], ...]] = {}

    def __call__(
        self, deployment: Deployment, base: tuple[tuple[bytes, bytes], ...]
    ) -> tuple[tuple[bytes, bytes], ...]:
        key = (deployment.provider, deployment.model, base[0][1])
        found = self._cache.get(key)
        if found is None:
            found = (
                *base,
                (b"x-polyroute-provider", deployment.provider.encode()),
                (b"x-polyroute-model", deployment.model.encode()),
            )
            if len(self._cache) < _MAX_CACHED_HEADERS:
                self._cache[key] = found
        return found


@dataclass(slots=True, kw_only=True)
class Exchange:
    """One request on its way through the pipeline: who asked, in which format, and where it goes."""

    scope: Scope
    client: Translator
    request: ChatRequest
    deployment: Deployment
    outcome: Outcome
    receive: Receive
    send: Send
    strict: bool
    response_id: str | None = None
    """When set, the id the client sees instead of the upstream's (the Responses API stores by it)."""
    credential: int | None = None
    """Which of the provider's credentials this attempt uses (None: the next in rotation)."""
    accept_empty: bool = True
    """Pass an empty answer on as it is (no other candidate would follow); else it fails the attempt."""


ResultHook = Callable[[Exchange, ChatResponse], Any]
"""Called with the complete canonical answer once it has been sent (e.g. to store a Response)."""


class Pipeline:
    """Sends canonical requests to any upstream format and answers in the client's format."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.headers = ResponseHeaders()

    def upstream_request(self, exchange: Exchange) -> tuple[Translator, ChatRequest]:
        """The upstream's translator and the request adapted to what it can carry.

        Raises:
            UnsupportedFeatureError: strict mode, and the target cannot carry something the client sent.
        """
        target = exchange.deployment.target.wire_format
        upstream = TRANSLATORS[target]
        request = unseal_request(exchange.request)
        dropped = cap.dropped_fields(
            request, source=exchange.client.FORMAT, target=target, capabilities=upstream.CAPABILITIES
        )
        if dropped:
            if exchange.strict:
                raise UnsupportedFeatureError(
                    f"the {target.value} format of {exchange.deployment.provider} cannot carry: {', '.join(dropped)}",
                    param=dropped[0],
                )
            exchange.outcome.dropped = dropped
        if cap.TOOL_RESULT_IMAGES not in upstream.CAPABILITIES:
            request = cap.hoist_tool_result_images(request)
        return upstream, replace(request, model=exchange.deployment.model)

    async def _inline_images(self, upstream: Translator, request: ChatRequest) -> ChatRequest:
        if cap.IMAGE_URL in upstream.CAPABILITIES or not cap.has_url_images(request):
            return request
        return await self.services.images.inline(request)

    async def serve(self, exchange: Exchange, on_result: ResultHook | None = None) -> None:
        """Answer ``exchange`` through its deployment, streamed or not, in the client's format."""
        upstream, request = self.upstream_request(exchange)
        request = await self._inline_images(upstream, request)
        try:
            body = orjson.dumps(upstream.render_request(request))
        except InvalidRequestError as error:
            # The canonical request cannot be put into the target format (e.g. tool arguments that are not JSON).
            error.message = f"cannot send this request to {exchange.deployment.provider}: {error.message}"
            raise
        path = upstream.request_path(request.model, stream=request.stream)
        if request.stream:
            await self._stream(exchange, upstream, path, body, on_result)
        else:
            await self._complete(exchange, upstream, path, body, on_result)

    async def _complete(
        self, exchange: Exchange, upstream: Translator, path: str, body: bytes, on_result: ResultHook | None
    ) -> None:
        deployment = exchange.deployment
        reply = await self.services.upstream.post(deployment.target, path, body, credential=exchange.credential)
        response = _parse_answer(upstream, load_answer(reply.body, deployment), deployment)
        if not exchange.accept_empty and not response.has_content:
            raise empty_answer(deployment)
        if upstream.FORMAT is not exchange.client.FORMAT:
            response = seal_response(response)
        if exchange.response_id is not None:
            response = replace(response, id=exchange.response_id)
        exchange.outcome.set_usage(response.usage)
        exchange.outcome.upstream_model = response.model or None
        rendered = exchange.client.render_response(response, now_s=int(time.time()))
        if on_result is not None:
            # Before the answer is sent: a client may follow up (previous_response_id) the moment it arrives.
            await on_result(exchange, response)
        headers = [*self.headers(deployment, JSON_HEADERS), *exchange.outcome.usage_headers(self.services.prices)]
        await send_bytes(exchange.send, 200, orjson.dumps(rendered), headers)

    async def _stream(
        self, exchange: Exchange, upstream: Translator, path: str, body: bytes, on_result: ResultHook | None
    ) -> None:
        deployment = exchange.deployment
        outcome = exchange.outcome
        stream = self.services.upstream.open_stream(deployment.target, path, body, credential=exchange.credential)
        async with stream as source:
            pump = _Pump(
                exchange,
                upstream.stream_parser(provider=deployment.provider),
                exchange.client.stream_renderer(now_s=int(time.time())),
                self.headers(deployment, stream_headers(exchange.client.FORMAT)),
                on_result,
            )
            with DisconnectWatch(exchange.receive) as watch:
                await pump.run(source)
        if watch.disconnected:
            outcome.fail(499, "client_disconnected")
            return
        response = pump.accumulator.result() if pump.started_message else None
        if response is not None:
            outcome.upstream_model = response.model or None
            if response.usage.input_tokens is None and response.usage.output_tokens is None:
                # Nothing reported (some streams): count, and say the counts are estimates.
                text = "".join(p.text for p in response.parts if isinstance(p, TextPart | ReasoningPart))
                outcome.set_usage(estimate_usage(exchange.request, text))
                outcome.estimated = True
            else:
                outcome.set_usage(response.usage)
        if pump.error is not None:
            outcome.fail(pump.error.status_code, pump.error.code)


class _Pump:
    """Drives one upstream stream through the parser, the accumulator and the client's renderer."""

    __slots__ = (
        "accumulator",
        "content",
        "cross_format",
        "ended",
        "held",
        "error",
        "exchange",
        "headers",
        "on_result",
        "parser",
        "reasoning",
        "renderer",
        "started",
        "started_message",
    )

    def __init__(
        self,
        exchange: Exchange,
        parser: StreamChunkParser,
        renderer: StreamRenderer,
        headers: tuple[tuple[bytes, bytes], ...],
        on_result: ResultHook | None,
    ) -> None:
        self.exchange = exchange
        self.on_result = on_result
        self.parser = parser
        self.renderer = renderer
        self.headers = headers
        self.accumulator = Accumulator(source_format=exchange.deployment.target.wire_format.value)
        self.cross_format = exchange.deployment.target.wire_format is not exchange.client.FORMAT
        # Anthropic clients take reasoning only with the signature of the model that made it.
        keep_text = exchange.client.FORMAT is not WireFormat.ANTHROPIC
        self.reasoning = ForeignReasoningFilter(keep_text=keep_text) if self.cross_format else None
        self.error: GatewayError | None = None
        self.started = False
        """Whether the response has begun (its status is then sent, and errors go in-band)."""
        self.content = False
        """Whether text, reasoning or a tool call has come (nothing is sent before: an empty answer may fall back)."""
        self.held: list[bytes] = []
        self.started_message = False
        self.ended = False

    async def run(self, source: UpstreamStream) -> None:
        """Relay until the upstream ends; raises only before the response has begun."""
        provider = self.exchange.deployment.provider
        try:
            while True:
                chunk = await source.read()
                if not chunk:
                    await self._emit(self.parser.finish(), self.renderer.finish())
                    break
                await self._emit(self.parser.feed(chunk), [])
            if not self.ended:
                raise UpstreamConnectionError(f"{provider} ended the stream before it finished", provider=provider)
            if not self.started:
                if not self.exchange.accept_empty:
                    raise empty_answer(self.exchange.deployment)
                await self._commit()
        except (GatewayError, ValueError) as exc:
            # Anything but an upstream error here means the upstream's bytes could not be read.
            error = exc if isinstance(exc, UpstreamError) else _protocol_error(provider, exc)
            await self._salvage()
            if not self.started and not self.exchange.accept_empty:
                raise error from None
            if not self.started and not self.held:
                raise error from None
            self.error = error
            await self._send(self.renderer.error(error), commit=True)
        await self.exchange.send(_END)

    async def _salvage(self) -> None:
        """Deliver what the upstream said before it failed within the same read."""
        partial, self.parser.pending = self.parser.pending, []
        if partial:
            # Partial events that are themselves malformed are left out: the error that follows says enough.
            with contextlib.suppress(UpstreamProtocolError):
                await self._emit(partial, [])

    async def _emit(self, events: list[StreamEvent], tail: list[bytes]) -> None:
        if self.reasoning is not None:
            events = [passed for event in events for passed in self.reasoning.feed(event)]
        frames: list[bytes] = []
        response_id = self.exchange.response_id
        for event in events:
            if event.kind == "message_start":
                self.started_message = True
                if response_id is not None:
                    assert isinstance(event, MessageStart)
                    event = replace(event, id=response_id)
            elif event.kind == "message_end":
                self.ended = True
            elif self.cross_format and event.kind == "part_start":
                event = seal_event(event)
            if not self.content and is_content(event):
                self.content = True
            try:
                self.accumulator.feed(event)
            except ValueError as exc:
                raise _protocol_error(self.exchange.deployment.provider, exc) from None
            frames.extend(self.renderer.feed(event))
        frames.extend(tail)
        if self.ended and self.on_result is not None:
            # Before the last frames go out: a client may follow up the moment it sees the end.
            hook, self.on_result = self.on_result, None
            await self._deliver(hook)
        if frames:
            await self._send(b"".join(frames))

    async def _deliver(self, hook: ResultHook) -> None:
        try:
            await hook(self.exchange, self.accumulator.result())
        except Exception:  # the stream commit point: the answer stands even if keeping it failed
            logger.exception(
                "request %s: keeping the finished answer failed", self.exchange.scope["state"].get("request_id")
            )

    async def _send(self, data: bytes, *, commit: bool = False) -> None:
        if not self.started:
            self.held.append(data)
            if self.content or commit:
                await self._commit()
            return
        await self.exchange.send({"type": "http.response.body", "body": data, "more_body": True})

    async def _commit(self) -> None:
        """The stream's commit point: its status, and what was held back until content came."""
        self.started = True
        self.exchange.outcome.mark_first_byte()
        await self.exchange.send({"type": "http.response.start", "status": 200, "headers": list(self.headers)})
        held, self.held = b"".join(self.held), []
        if held:
            await self.exchange.send({"type": "http.response.body", "body": held, "more_body": True})


def empty_answer(deployment: Deployment) -> UpstreamEmptyAnswerError:
    """The failure of an answer with no content and no tool call."""
    provider = deployment.provider
    return UpstreamEmptyAnswerError(f"{provider} answered with no content and no tool call", provider=provider)


def _protocol_error(provider: str, exc: Exception) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"{provider} sent a malformed stream: {exc}", provider=provider)


def _parse_answer(upstream: Translator, answer: JSONObject, deployment: Deployment) -> ChatResponse:
    if "error" in answer and len(answer) <= 2:
        # Some servers answer 200 with an error object instead of an error status.
        raise status_error(deployment.target, 502, orjson.dumps(answer), {})
    try:
        return upstream.parse_response(answer)
    except (InvalidRequestError, ValueError, KeyError, TypeError) as exc:
        raise UpstreamProtocolError(
            f"{deployment.provider} sent an answer that is not a valid {upstream.FORMAT.value} response: {exc}",
            provider=deployment.provider,
        ) from None


__all__ = [
    "JSON_HEADERS",
    "empty_answer",
    "ClientDisconnectedError",
    "Exchange",
    "Pipeline",
    "ResponseHeaders",
    "is_strict",
    "load_answer",
    "stream_headers",
]
