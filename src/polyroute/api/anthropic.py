"""Anthropic Messages for clients: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Messages use the shared inference endpoint (relay to Anthropic upstreams, translation to the rest).
Token counts are exact for Anthropic upstreams (their own counting endpoint answers) and an estimate
otherwise (``core/estimate.py``), marked by the ``x-polyroute-estimated: true`` header.
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from polyroute.api.inference import InferenceEndpoint
from polyroute.api.pipeline import JSON_HEADERS, Pipeline, load_answer
from polyroute.api.responses import parse_json_object, read_body, send_bytes
from polyroute.core.estimate import estimate_input_tokens
from polyroute.wire import WireFormat, anthropic_messages

_COUNT_PATH = "/v1/messages/count_tokens"
_ESTIMATED = (b"x-polyroute-estimated", b"true")


def messages_endpoint(pipeline: Pipeline) -> InferenceEndpoint:
    """``POST /v1/messages``."""
    return InferenceEndpoint(pipeline, WireFormat.ANTHROPIC)


class CountTokensEndpoint:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": n}`` for a Messages request body."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.services = pipeline.services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        payload = parse_json_object(await read_body(scope, receive, self.services.max_body_bytes))
        # A count needs no max_tokens; the parser insists on one for real requests.
        request = anthropic_messages.parse_request({**payload, "max_tokens": payload.get("max_tokens") or 1})
        deployment = self.services.planner.plan(request.model).deployments[0]
        if deployment.target.wire_format is WireFormat.ANTHROPIC:
            payload["model"] = deployment.model
            payload.pop("max_tokens", None)
            payload.pop("stream", None)
            reply = await self.services.upstream.post(deployment.target, _COUNT_PATH, orjson.dumps(payload))
            answer = load_answer(reply.body, deployment)
            await send_bytes(send, 200, orjson.dumps(answer), self.pipeline.headers(deployment, JSON_HEADERS))
            return
        body = orjson.dumps({"input_tokens": estimate_input_tokens(request)})
        await send_bytes(send, 200, body, (*self.pipeline.headers(deployment, JSON_HEADERS), _ESTIMATED))
