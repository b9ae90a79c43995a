"""OpenAI Chat Completions: ``POST /v1/chat/completions`` and the provider-pinned variant.

Same-format fast path: the client's body is forwarded with only ``model`` (and the seed's
``provider`` field) changed; a streamed answer is relayed byte for byte as it arrives, watched
by :class:`~polyroute.wire.openai_chat.StreamTap` for usage and completeness.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from polyroute.api.access import Ticket
from polyroute.api.attempts import Attempts, Try, plan_request
from polyroute.api.chat_images import ChatImages
from polyroute.api.inference import InferenceEndpoint
from polyroute.api.outcome import Outcome
from polyroute.api.pipeline import SSE_HEADERS, Exchange, Pipeline, empty_answer, is_strict
from polyroute.api.responses import (
    ClientDisconnectedError,
    DisconnectWatch,
    parse_json_object,
    read_body,
    send_bytes,
)
from polyroute.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
)
from polyroute.routing.config import ModelType
from polyroute.routing.table import Deployment
from polyroute.upstream.client import UpstreamStream, status_error
from polyroute.wire import WireFormat, openai_chat

_PATH = "/chat/completions"
_JSON_HEADERS = ((b"content-type", b"application/json"),)
_DONE = b"data: [DONE]\n\n"
_END = {"type": "http.response.body", "body": b"", "more_body": False}
_USAGE_KEY = b'"usage"'
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


class ChatCompletionsEndpoint(InferenceEndpoint):
    """Raw ASGI endpoint for chat completions; the provider may be pinned by the path or the body.

    OpenAI upstreams take the fast path (validation of what the gateway relies on, byte relay);
    every other upstream format goes through the canonical pipeline.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, WireFormat.OPENAI)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = Outcome("openai")
        ticket: Ticket | None = None
        try:
            payload = parse_json_object(await read_body(scope, receive, self.services.max_body_bytes))
            outcome.model, provider, outcome.is_stream = validate_chat(payload)
            path_params = scope.get("path_params")
            if path_params:
                provider = _pinned_provider(path_params["provider"], provider)
            plan = plan_request(self.services, scope, payload, provider=provider, images=True)
            deployment = outcome.deployment = plan.deployments[0]
            ticket = await self.services.gate.admit(scope, deployment, outcome.model)
            payload.pop("provider", None)
            if self.services.routing.current.model_type(deployment) is ModelType.IMAGE:
                await ChatImages(self.services).serve(scope, send, payload, plan, outcome)
                return

            async def attempt(candidate: Try, hedged_send: Send | None) -> None:
                await self._attempt(scope, receive, hedged_send or send, outcome, payload, candidate)

            await Attempts(self.services, scope, send, outcome, plan, attempt).run()
        except GatewayError as error:
            outcome.fail(error.status_code, error.code)
            raise
        except ClientDisconnectedError:
            outcome.fail(499, "client_disconnected")
        finally:
            await self.finish(scope, outcome, ticket)

    async def _attempt(
        self, scope: Scope, receive: Receive, send: Send, outcome: Outcome, payload: dict[str, Any], candidate: Try
    ) -> None:
        """One deployment: relayed when it speaks OpenAI's format, translated otherwise."""
        target = candidate.deployment
        if target.target.wire_format is not WireFormat.OPENAI:
            exchange = Exchange(
                scope=scope,
                client=self.translator,
                request=self.translator.parse_request(payload),
                deployment=target,
                outcome=outcome,
                receive=receive,
                send=send,
                strict=is_strict(scope),
                credential=candidate.credential,
                accept_empty=candidate.last,
            )
            await self.pipeline.serve(exchange)
            return
        body = {**payload, "model": target.model}
        hide_usage = bool(outcome.is_stream and target.target.stream_usage and _ask_for_usage(body))
        data = orjson.dumps(body)
        if outcome.is_stream:
            await self._stream(candidate, data, receive, send, outcome, hide_usage=hide_usage)
        else:
            await self._complete(candidate, data, send, outcome)

    async def _complete(self, candidate: Try, data: bytes, send: Send, outcome: Outcome) -> None:
        deployment = candidate.deployment
        reply = await self.services.upstream.post(deployment.target, _PATH, data, credential=candidate.credential)
        answer = _load_answer(reply.body, deployment)
        if not candidate.last and not openai_chat.has_content(answer):
            raise empty_answer(deployment)
        outcome.set_usage(openai_chat.parse_usage(answer))
        model = answer.get("model")
        outcome.upstream_model = model if isinstance(model, str) else None
        headers = [*self.pipeline.headers(deployment, _JSON_HEADERS), *outcome.usage_headers(self.services.prices)]
        await send_bytes(send, reply.status, reply.body, headers)

    async def _stream(
        self, candidate: Try, data: bytes, receive: Receive, send: Send, outcome: Outcome, *, hide_usage: bool
    ) -> None:
        deployment = candidate.deployment
        tap = openai_chat.StreamTap()
        stream = self.services.upstream.open_stream(deployment.target, _PATH, data, credential=candidate.credential)
        async with stream as upstream:
            headers = list(self.pipeline.headers(deployment, SSE_HEADERS))
            relay = _Relay(
                upstream, tap, send, outcome, {"type": "http.response.start", "status": 200, "headers": headers}
            )
            with DisconnectWatch(receive) as watch:
                error = await relay.run(deployment, hide_usage=hide_usage, accept_empty=candidate.last)
            if watch.disconnected:
                outcome.fail(499, "client_disconnected")
        outcome.upstream_model = tap.model or None
        outcome.set_usage(tap.usage)
        if not watch.disconnected:
            if error is None and not tap.is_done:
                if tap.is_finished:
                    await send({"type": "http.response.body", "body": _DONE, "more_body": True})
                else:
                    error = _cut(deployment)
            if error is not None:
                outcome.fail(error.status_code, error.code)
                await send(
                    {"type": "http.response.body", "body": openai_chat.render_stream_error(error), "more_body": True}
                )
            await send(_END)


def _pinned_provider(provider: str, from_body: str | None) -> str:
    if from_body is not None and from_body != provider:
        raise InvalidRequestError(f"body names provider {from_body!r} but the path pins {provider!r}", param="provider")
    return provider


class _Relay:
    """Copies the upstream's bytes to the client as they arrive, from the first content on.

    Nothing goes out before the first content (text, reasoning, a refusal, a tool call): until then a
    failure, or an answer that ends empty, is raised, and the next candidate may still answer. Once
    committed, an upstream failure is returned, not raised (it goes in-band).
    """

    __slots__ = ("held", "outcome", "send", "start", "tap", "upstream")

    def __init__(
        self, upstream: UpstreamStream, tap: openai_chat.StreamTap, send: Send, outcome: Outcome, start: Message
    ) -> None:
        self.upstream = upstream
        self.tap = tap
        self.send = send
        self.outcome = outcome
        self.start = start
        self.held: list[bytes] | None = []

    async def run(self, deployment: Deployment, *, hide_usage: bool, accept_empty: bool) -> UpstreamError | None:
        """Relay to the end; with ``hide_usage`` the usage-only chunk the gateway asked for is left out."""
        tap, send = self.tap, self.send
        while True:
            try:
                chunk = await self.upstream.read()
            except UpstreamError as error:
                if self.held is not None:
                    if not accept_empty:
                        raise
                    await self._commit()
                return error
            if not chunk:
                if self.held is not None:
                    if not accept_empty:
                        raise empty_answer(deployment) if tap.is_finished else _cut(deployment)
                    await self._commit()
                return None
            tap.feed(chunk)
            if hide_usage and _USAGE_KEY in chunk:
                chunk = openai_chat.drop_usage_chunk(chunk)
                if not chunk:
                    continue
            if self.held is None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                continue
            self.held.append(chunk)
            if tap.has_content:
                await self._commit()

    async def _commit(self) -> None:
        held, self.held = self.held, None
        self.outcome.mark_first_byte()
        await self.send(self.start)
        if held:
            await self.send({"type": "http.response.body", "body": b"".join(held), "more_body": True})


def _cut(deployment: Deployment) -> UpstreamConnectionError:
    provider = deployment.provider
    return UpstreamConnectionError(f"{provider} ended the stream before it finished", provider=provider)


def _ask_for_usage(payload: dict[str, Any]) -> bool:
    """Ask for the final usage chunk if the client did not; True when the client did not (so it is hidden)."""
    options = payload.get("stream_options")
    if isinstance(options, dict):
        if options.get("include_usage") is True:
            return False
        payload["stream_options"] = {**options, "include_usage": True}
    else:
        payload["stream_options"] = {"include_usage": True}
    return True


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
