"""Gemini for clients: model listings, generateContent, streamGenerateContent and countTokens.

Routes: ``GET /v1beta/models[/{model}]``, ``POST /v1beta/models/{model}:generateContent``,
``:streamGenerateContent`` (SSE with ``?alt=sse``, else one JSON array streamed) and ``:countTokens``.

The model may be a routed name with a slash (``openai/gpt-4o``): the whole path after ``models/`` up
to the last ``:`` is the model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from polyroute.api.inference import InferenceEndpoint
from polyroute.api.models import ModelListing
from polyroute.api.pipeline import JSON_HEADERS, Exchange, Pipeline
from polyroute.api.responses import parse_json_object, read_body, send_bytes
from polyroute.core.estimate import estimate_input_tokens
from polyroute.core.messages import ChatRequest
from polyroute.errors import InvalidRequestError, ModelNotFoundError, NotFoundError
from polyroute.routing.table import Deployment
from polyroute.wire import WireFormat, gemini
from polyroute.wire.gemini.array import JSONArrayStreamRenderer
from polyroute.wire.registry import TranslatorVariant

_GENERATE = "generateContent"
_STREAM = "streamGenerateContent"
_COUNT = "countTokens"
_METHODS = (_GENERATE, _STREAM, _COUNT)


def split_target(scope: Scope) -> tuple[str, str]:
    """``(model, method)`` from the path after ``/v1beta/models/``.

    Raises:
        NotFoundError: no ``:method`` or an unknown one.
    """
    target: str = scope["path_params"]["target"]
    model, sep, method = target.rpartition(":")
    if not sep or not model or method not in _METHODS:
        raise NotFoundError(f"no such Gemini method: models/{target} (expected :{', :'.join(_METHODS)})")
    return model.removeprefix("models/"), method


class GenerateContentEndpoint(InferenceEndpoint):
    """``POST /v1beta/models/{model}:(generateContent|streamGenerateContent|countTokens)``."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, WireFormat.GEMINI)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model, method = split_target(scope)
        if method == _COUNT:
            await self._count(scope, receive, send, model)
            return
        await super().__call__(scope, receive, send)

    async def parse(self, scope: Scope, payload: dict[str, Any]) -> ChatRequest:
        model, method = split_target(scope)
        request = gemini.parse_request(payload, model=model)
        return replace(request, stream=method == _STREAM)

    async def serve(self, exchange: Exchange, payload: dict[str, Any]) -> None:
        if exchange.request.stream and not _wants_sse(exchange):
            # The array form is only ever produced by translation (the upstream is asked for SSE).
            exchange.client = _ArrayClient()
            await self.pipeline.serve(exchange)
            return
        await super().serve(exchange, payload)

    def relay_body(self, payload: dict[str, Any], deployment: Deployment) -> bytes:
        """Gemini names the model in the path; the body goes on untouched."""
        del deployment
        return orjson.dumps(payload)

    async def _count(self, scope: Scope, receive: Receive, send: Send, model: str) -> None:
        payload = parse_json_object(await read_body(scope, receive, self.services.max_body_bytes))
        if "contents" not in payload and isinstance(payload.get("generateContentRequest"), dict):
            payload = payload["generateContentRequest"]
        request = gemini.parse_request(payload, model=model)
        deployment = self.services.planner.plan(request.model).deployments[0]
        body = orjson.dumps({"totalTokens": estimate_input_tokens(request)})
        headers = (*self.pipeline.headers(deployment, JSON_HEADERS), (b"x-polyroute-estimated", b"true"))
        await send_bytes(send, 200, body, headers)


def _wants_sse(exchange: Exchange) -> bool:
    query: bytes = exchange.scope.get("query_string", b"")
    return b"alt=sse" in query.split(b"&")


class _ArrayClient(TranslatorVariant):
    """The Gemini translator, streaming one JSON array instead of SSE (no ``alt=sse``)."""

    def __init__(self) -> None:
        super().__init__(gemini)

    def stream_renderer(self, *, now_s: int) -> JSONArrayStreamRenderer:
        del now_s
        return JSONArrayStreamRenderer()


Handler = Callable[[Request], Awaitable[Response]]


def is_gemini_client(request: Request) -> bool:
    """Whether a request on a shared path (``/v1/models``) comes from a Gemini client (by how it sends its key)."""
    return "x-goog-api-key" in request.headers or "key" in request.query_params


class GeminiModels:
    """``GET /v1beta/models`` and ``GET /v1beta/models/{model}`` in Gemini's shape."""

    def __init__(self, listing: ModelListing) -> None:
        self._listing = listing

    @staticmethod
    def or_openai(openai: Handler, gemini: Handler) -> Handler:
        """A handler for a path both APIs use (Gemini's ``/v1/models``): Gemini clients get Gemini's shape."""

        async def either(request: Request) -> Response:
            return await (gemini if is_gemini_client(request) else openai)(request)

        return either

    async def list_models(self, request: Request) -> Response:
        del request
        models = [_model(entry["id"]) for entry in self._listing.entries(wanted="text")]
        return Response(orjson.dumps({"models": models}), media_type="application/json")

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["target"].removeprefix("models/")
        if ":" in name.rpartition("/")[2]:
            raise NotFoundError(f"no route for GET /v1beta/models/{name}")
        for entry in self._listing.entries():
            if entry["id"] == name:
                return Response(orjson.dumps(_model(name)), media_type="application/json")
        raise ModelNotFoundError(f"model {name!r} is not served here", param="model")


def _model(model_id: str) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}",
        "baseModelId": model_id,
        "version": "polyroute",
        "displayName": model_id,
        "description": f"{model_id}, served through polyroute",
        "supportedGenerationMethods": [_GENERATE, _STREAM, _COUNT],
    }


__all__ = ["GeminiModels", "GenerateContentEndpoint", "InvalidRequestError", "split_target"]
