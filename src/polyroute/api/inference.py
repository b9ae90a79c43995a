"""The raw ASGI endpoint every client-facing chat API is built on.

One request: read and parse the body in the client's format, resolve the deployment, then either relay
(the upstream speaks the client's format: the body goes on with only the model changed, and the answer
comes back as sent) or translate through :class:`~polyroute.api.pipeline.Pipeline`. Subclasses adapt
the few things that differ by API: where the model is named, whether it streams, what happens after.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from polyroute.api.access import Ticket
from polyroute.api.attempts import run_attempts
from polyroute.api.outcome import Outcome
from polyroute.api.pipeline import (
    JSON_HEADERS,
    Exchange,
    Pipeline,
    is_strict,
    load_answer,
    stream_headers,
)
from polyroute.api.responses import ClientDisconnectedError, DisconnectWatch, parse_json_object, read_body, send_bytes
from polyroute.core.accumulate import Accumulator
from polyroute.core.messages import ChatRequest, ChatResponse
from polyroute.errors import GatewayError, UpstreamConnectionError, UpstreamError
from polyroute.routing.table import Deployment
from polyroute.upstream.client import UpstreamStream
from polyroute.wire import WireFormat
from polyroute.wire.registry import TRANSLATORS, StreamChunkParser, Translator

logger = logging.getLogger(__name__)

_END = {"type": "http.response.body", "body": b"", "more_body": False}


class InferenceEndpoint:
    """A chat endpoint speaking ``fmt`` to its clients and any format to the upstream."""

    relay_same_format = True
    """Forward the client's body untouched when the upstream speaks the same format."""

    def __init__(self, pipeline: Pipeline, fmt: WireFormat) -> None:
        self.pipeline = pipeline
        self.services = pipeline.services
        self.format = fmt
        self.translator: Translator = TRANSLATORS[fmt]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = Outcome(self.format.value)
        ticket: Ticket | None = None
        try:
            payload = parse_json_object(await read_body(scope, receive, self.services.max_body_bytes))
            request = await self.parse(scope, payload)
            outcome.model, outcome.is_stream = request.model, request.stream
            pinned = self.provider(scope, payload)
            deployment = outcome.deployment = self.services.routing.current.resolve(request.model, provider=pinned)
            ticket = await self.services.gate.admit(scope, deployment, request.model)
            exchange = Exchange(
                scope=scope,
                client=self.translator,
                request=request,
                deployment=deployment,
                outcome=outcome,
                receive=receive,
                send=send,
                strict=is_strict(scope),
            )

            async def attempt(candidate: Deployment) -> None:
                exchange.deployment = candidate
                await self.serve(exchange, payload)

            await run_attempts(self.services, scope, outcome, deployment, attempt, pinned=pinned is not None)
        except GatewayError as error:
            outcome.fail(error.status_code, error.code)
            raise
        except ClientDisconnectedError:
            outcome.fail(499, "client_disconnected")
        finally:
            await self.finish(scope, outcome, ticket)

    async def finish(self, scope: Scope, outcome: Outcome, ticket: Ticket | None) -> None:
        """After the answer: its cost, the key's charge and lease, and the request-log row (always)."""
        try:
            outcome.price(self.services.prices)
            await self.services.gate.settle(ticket, outcome.usage, outcome.cost_usd)
        finally:
            outcome.record(self.services.request_log, scope)

    async def parse(self, scope: Scope, payload: dict[str, Any]) -> ChatRequest:
        """The canonical request (the model as the client named it)."""
        del scope
        return self.translator.parse_request(payload)

    def provider(self, scope: Scope, payload: dict[str, Any]) -> str | None:
        """The provider the request is pinned to, if any (by the path)."""
        del payload
        params = scope.get("path_params")
        return params.get("provider") if params else None

    async def serve(self, exchange: Exchange, payload: dict[str, Any]) -> None:
        """Answer through the deployment: relayed when formats match, translated otherwise."""
        if self.relay_same_format and exchange.deployment.target.wire_format is self.format:
            await self.relay(exchange, payload)
        else:
            await self.pipeline.serve(exchange, self.on_result)

    async def on_result(self, exchange: Exchange, response: ChatResponse) -> None:
        """Called with the complete answer after it was sent; nothing by default."""
        del exchange, response

    def relay_body(self, payload: dict[str, Any], deployment: Deployment) -> bytes:
        """The client's body for the upstream: only the model changes."""
        payload["model"] = deployment.model
        return orjson.dumps(payload)

    async def relay(self, exchange: Exchange, payload: dict[str, Any]) -> None:
        """Same-format path: forward the body, return the answer's bytes as they are."""
        deployment = exchange.deployment
        path = self.translator.request_path(deployment.model, stream=exchange.request.stream)
        body = self.relay_body(payload, deployment)
        if not exchange.request.stream:
            reply = await self.services.upstream.post(deployment.target, path, body)
            _note_answer(exchange, self.translator, reply.body)
            headers = [
                *self.pipeline.headers(deployment, JSON_HEADERS),
                *exchange.outcome.usage_headers(self.services.prices),
            ]
            await send_bytes(exchange.send, reply.status, reply.body, headers)
            return
        async with self.services.upstream.open_stream(deployment.target, path, body) as source:
            start = self.pipeline.headers(deployment, stream_headers(self.format))
            await exchange.send({"type": "http.response.start", "status": 200, "headers": list(start)})
            tap = _Tap(self.translator.stream_parser(provider=deployment.provider), deployment.target.wire_format)
            with DisconnectWatch(exchange.receive) as watch:
                error = await _relay(source, tap, exchange)
        outcome = exchange.outcome
        if watch.disconnected:
            outcome.fail(499, "client_disconnected")
            return
        outcome.set_usage(tap.accumulator.result().usage if tap.started else None)
        if error is None and not tap.ended:
            error = UpstreamConnectionError(
                f"{deployment.provider} ended the stream before it finished", provider=deployment.provider
            )
        if error is not None:
            outcome.fail(error.status_code, error.code)
            frame = self.translator.stream_renderer(now_s=0).error(error)
            await exchange.send({"type": "http.response.body", "body": frame, "more_body": True})
        await exchange.send(_END)


class _Tap:
    """Watches relayed bytes with the format's own parser: usage, and whether the stream finished.

    The client gets the bytes whatever the tap makes of them; a tap that cannot parse stops watching.
    """

    __slots__ = ("accumulator", "ended", "parser", "started", "watching")

    def __init__(self, parser: StreamChunkParser, fmt: WireFormat) -> None:
        self.parser = parser
        self.accumulator = Accumulator(source_format=fmt.value)
        self.started = False
        self.ended = False
        self.watching = True

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        if not self.watching:
            return
        try:
            for event in self.parser.finish() if final else self.parser.feed(chunk):
                self.accumulator.feed(event)
                if event.kind == "message_start":
                    self.started = True
                elif event.kind == "message_end":
                    self.ended = True
        except (GatewayError, ValueError) as exc:
            # The relay stays byte-exact; the row just lacks usage (and the end is taken on trust).
            logger.info("stream tap stopped: %s", exc)
            self.watching = False
            self.ended = True


async def _relay(source: UpstreamStream, tap: _Tap, exchange: Exchange) -> UpstreamError | None:
    """Copy the upstream's bytes to the client as they arrive; an upstream failure is returned."""
    while True:
        try:
            chunk = await source.read()
        except UpstreamError as error:
            return error
        if not chunk:
            tap.feed(b"", final=True)
            return None
        exchange.outcome.mark_first_byte()
        tap.feed(chunk)
        await exchange.send({"type": "http.response.body", "body": chunk, "more_body": True})


def _note_answer(exchange: Exchange, translator: Translator, body: bytes) -> None:
    """Usage and the answering model from a relayed answer, when it can be read (the bytes go on regardless)."""
    try:
        response = translator.parse_response(load_answer(body, exchange.deployment))
    except (GatewayError, ValueError, KeyError, TypeError):
        return
    exchange.outcome.set_usage(response.usage)
    exchange.outcome.upstream_model = response.model or None
