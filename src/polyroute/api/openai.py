"""OpenAI Chat Completions: ``POST /v1/chat/completions`` and the provider-pinned variant.

Same-format fast path: the client's body is forwarded with only ``model`` (and the seed's
``provider`` field) changed; a streamed answer is relayed byte for byte as it arrives, watched
by :class:`~polyroute.wire.openai_chat.StreamTap` for usage and completeness.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from polyroute.api.access import Ticket
from polyroute.api.attempts import run_attempts
from polyroute.api.inference import InferenceEndpoint
from polyroute.api.outcome import Outcome
from polyroute.api.pipeline import SSE_HEADERS, Exchange, Pipeline, is_strict
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
            deployment = outcome.deployment = self.services.routing.current.resolve(outcome.model, provider=provider)
            ticket = await self.services.gate.admit(scope, deployment, outcome.model)
            payload.pop("provider", None)

            async def attempt(candidate: Deployment) -> None:
                await self._attempt(scope, receive, send, outcome, payload, candidate)

            await run_attempts(self.services, scope, outcome, deployment, attempt, pinned=provider is not None)
        except GatewayError as error:
            outcome.fail(error.status_code, error.code)
            raise
        except ClientDisconnectedError:
            outcome.fail(499, "client_disconnected")
        finally:
            await self.finish(scope, outcome, ticket)

    async def _attempt(
        self, scope: Scope, receive: Receive, send: Send, outcome: Outcome, payload: dict[str, Any], target: Deployment
    ) -> None:
        """One deployment: relayed when it speaks OpenAI's format, translated otherwise."""
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
            )
            await self.pipeline.serve(exchange)
            return
        body = {**payload, "model": target.model}
        hide_usage = bool(outcome.is_stream and target.target.stream_usage and _ask_for_usage(body))
        data = orjson.dumps(body)
        if outcome.is_stream:
            await self._stream(target, data, receive, send, outcome, hide_usage=hide_usage)
        else:
            await self._complete(target, data, send, outcome)

    async def _complete(self, deployment: Deployment, data: bytes, send: Send, outcome: Outcome) -> None:
        reply = await self.services.upstream.post(deployment.target, _PATH, data)
        answer = _load_answer(reply.body, deployment)
        outcome.set_usage(openai_chat.parse_usage(answer))
        model = answer.get("model")
        outcome.upstream_model = model if isinstance(model, str) else None
        headers = [*self.pipeline.headers(deployment, _JSON_HEADERS), *outcome.usage_headers(self.services.prices)]
        await send_bytes(send, reply.status, reply.body, headers)

    async def _stream(
        self, deployment: Deployment, data: bytes, receive: Receive, send: Send, outcome: Outcome, *, hide_usage: bool
    ) -> None:
        tap = openai_chat.StreamTap()
        async with self.services.upstream.open_stream(deployment.target, _PATH, data) as upstream:
            headers = list(self.pipeline.headers(deployment, SSE_HEADERS))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            with DisconnectWatch(receive) as watch:
                error = await _relay(upstream, tap, send, outcome, hide_usage=hide_usage)
            if watch.disconnected:
                outcome.fail(499, "client_disconnected")
        outcome.upstream_model = tap.model or None
        outcome.set_usage(tap.usage)
        if not watch.disconnected:
            if error is None and not tap.is_done:
                if tap.is_finished:
                    await send({"type": "http.response.body", "body": _DONE, "more_body": True})
                else:
                    error = UpstreamConnectionError(
                        f"{deployment.provider} ended the stream before it finished", provider=deployment.provider
                    )
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


async def _relay(
    upstream: UpstreamStream, tap: openai_chat.StreamTap, send: Send, outcome: Outcome, *, hide_usage: bool
) -> UpstreamError | None:
    """Copy the upstream's bytes to the client as they arrive; an upstream failure is returned, not raised.

    With ``hide_usage`` the usage-only chunk the gateway asked for is left out of what the client gets.
    """
    while True:
        try:
            chunk = await upstream.read()
        except UpstreamError as error:
            return error
        if not chunk:
            return None
        outcome.mark_first_byte()
        tap.feed(chunk)
        if hide_usage and _USAGE_KEY in chunk:
            chunk = openai_chat.drop_usage_chunk(chunk)
            if not chunk:
                continue
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


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
