"""The raw ASGI endpoint every client-facing chat API is built on.

One request: read and parse the body in the client's format, resolve the deployment, then either relay
(the upstream speaks the client's format: the body goes on with only the model changed, and the answer
comes back as sent) or translate through :class:`~polyroute.api.pipeline.Pipeline`. Subclasses adapt
the few things that differ by API: where the model is named, whether it streams, what happens after.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from polyroute.api.access import Ticket
from polyroute.api.attempts import Attempts, Try, finish_request, plan_request
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
from polyroute.core.events import is_content
from polyroute.core.messages import ChatRequest, ChatResponse
from polyroute.errors import GatewayError, UpstreamConnectionError, UpstreamEmptyAnswerError, UpstreamError
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
            plan = plan_request(self.services, scope, request, provider=pinned)
            deployment = outcome.deployment = plan.deployments[0]
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

            async def attempt(candidate: Try, hedged_send: Send | None) -> None:
                current = exchange if hedged_send is None else replace(exchange, send=hedged_send)
                current.deployment = candidate.deployment
                current.credential = candidate.credential
                current.accept_empty = candidate.last
                await self.serve(current, payload)

            await Attempts(self.services, scope, send, outcome, plan, attempt).run()
        except GatewayError as error:
            outcome.fail(error.status_code, error.code)
            raise
        except ClientDisconnectedError:
            outcome.fail(499, "client_disconnected")
        finally:
            await self.finish(scope, outcome, ticket)

    async def finish(self, scope: Scope, outcome: Outcome, ticket: Ticket | None) -> None:
        """After the answer: its cost, the key's charge and lease, and the request-log row (always)."""
        await finish_request(self.services, scope, outcome, ticket)

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
            reply = await self.services.upstream.post(deployment.target, path, body, credential=exchange.credential)
            _note_answer(exchange, self.translator, reply.body)
            headers = [
                *self.pipeline.headers(deployment, JSON_HEADERS),
                *exchange.outcome.usage_headers(self.services.prices),
            ]
            await send_bytes(exchange.send, reply.status, reply.body, headers)
            return
        upstream = self.services.upstream
        async with upstream.open_stream(deployment.target, path, body, credential=exchange.credential) as source:
            start = self.pipeline.headers(deployment, stream_headers(self.format))
            tap = _Tap(self.translator.stream_parser(provider=deployment.provider), deployment.target.wire_format)
            with DisconnectWatch(exchange.receive) as watch:
                error = await _relay(
                    source, tap, exchange, {"type": "http.response.start", "status": 200, "headers": list(start)}
                )
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

    __slots__ = ("accumulator", "content", "ended", "parser", "started", "watching")

    def __init__(self, parser: StreamChunkParser, fmt: WireFormat) -> None:
        self.parser = parser
        self.accumulator = Accumulator(source_format=fmt.value)
        self.started = False
        self.ended = False
        self.content = False
        """Text, reasoning or a tool call has been seen (the answer is not empty)."""
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
                elif not self.content and is_content(event):
                    self.content = True
        except (GatewayError, ValueError) as exc:
            # The relay stays byte-exact; the row just lacks usage (and the end is taken on trust).
            logger.info("stream tap stopped: %s", exc)
            self.watching = False
            self.ended = True
            self.content = True


async def _relay(source: UpstreamStream, tap: _Tap, exchange: Exchange, start: Message) -> UpstreamError | None:
    """Copy the upstream's bytes to the client as they arrive; a failure after the commit point is returned.

    Nothing goes out before the first content (text, reasoning, a tool call): until then a failure, or
    an answer that ends empty, is raised, and the next candidate may still answer.
    """
    held: list[bytes] | None = []
    while True:
        try:
            chunk = await source.read()
        except UpstreamError as error:
            if held is None:
                return error
            if not exchange.accept_empty:
                raise
            await _commit(exchange, start, held)
            return error
        if not chunk:
            tap.feed(b"", final=True)
            if held is not None:
                if not exchange.accept_empty:
                    raise _nothing_said(exchange.deployment, ended=tap.ended)
                await _commit(exchange, start, held)
            return None
        tap.feed(chunk)
        if held is None:
            await exchange.send({"type": "http.response.body", "body": chunk, "more_body": True})
        elif tap.content:
            held.append(chunk)
            await _commit(exchange, start, held)
            held = None
        else:
            held.append(chunk)


async def _commit(exchange: Exchange, start: Message, held: list[bytes]) -> None:
    """The commit point of a relayed stream: its status, and what was held back until content came."""
    exchange.outcome.mark_first_byte()
    await exchange.send(start)
    if held:
        await exchange.send({"type": "http.response.body", "body": b"".join(held), "more_body": True})


def _nothing_said(deployment: Deployment, *, ended: bool) -> UpstreamError:
    provider = deployment.provider
    if ended:
        return UpstreamEmptyAnswerError(f"{provider} answered with no content and no tool call", provider=provider)
    return UpstreamConnectionError(f"{provider} ended the stream before it finished", provider=provider)


def _note_answer(exchange: Exchange, translator: Translator, body: bytes) -> None:
    """Usage and the answering model from a relayed answer, when it can be read (the bytes go on regardless)."""
    try:
        response = translator.parse_response(load_answer(body, exchange.deployment))
    except (GatewayError, ValueError, KeyError, TypeError):
        return
    exchange.outcome.set_usage(response.usage)
    exchange.outcome.upstream_model = response.model or None
    if not exchange.accept_empty and not response.has_content:
        raise _nothing_said(exchange.deployment, ended=True)
