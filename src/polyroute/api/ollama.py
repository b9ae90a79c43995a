"""Ollama for clients: chat, generate, tags, show and version.

Routes: ``POST /api/chat`` (also at ``/v1/api/chat``), ``POST /api/generate``,
``GET /api/tags``, ``POST /api/show`` and ``GET /api/version``.

Chat uses the shared inference endpoint; generate is a one-turn chat reshaped (``wire/ollama/generate.py``)
and always translated. Listings describe routed models in Ollama's shape; sizes and digests that only
a local model file could have are reported as 0 and a digest of the name.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from polyroute.api.inference import InferenceEndpoint
from polyroute.api.models import ModelListing
from polyroute.api.pipeline import Exchange, Pipeline
from polyroute.api.responses import parse_json_object
from polyroute.core.messages import ChatRequest, ChatResponse
from polyroute.errors import InvalidRequestError, ModelNotFoundError
from polyroute.types import JSONObject
from polyroute.wire import WireFormat, ollama
from polyroute.wire.ollama.generate import GenerateStreamRenderer, parse_generate_request, render_generate_response
from polyroute.wire.registry import TranslatorVariant

API_VERSION = "0.9.0"
"""The Ollama API version reported by ``/api/version`` (the API surface implemented here)."""


def chat_endpoint(pipeline: Pipeline) -> InferenceEndpoint:
    """``POST /api/chat`` and ``POST /v1/api/chat``."""
    return InferenceEndpoint(pipeline, WireFormat.OLLAMA)


class _GenerateClient(TranslatorVariant):
    """The Ollama translator, taking and answering ``/api/generate``'s shapes."""

    def __init__(self) -> None:
        super().__init__(ollama)

    def parse_request(self, body: JSONObject, *, model: str | None = None) -> ChatRequest:
        return parse_generate_request(body, model=model)

    def render_response(self, response: ChatResponse, *, now_s: int) -> JSONObject:
        return render_generate_response(response, now_s=now_s)

    def stream_renderer(self, *, now_s: int) -> GenerateStreamRenderer:
        return GenerateStreamRenderer(now_s=now_s)


class GenerateEndpoint(InferenceEndpoint):
    """``POST /api/generate``: always translated, so the answer can be reshaped."""

    relay_same_format = False

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, WireFormat.OLLAMA)
        self.translator = _GenerateClient()

    async def parse(self, scope: Any, payload: dict[str, Any]) -> ChatRequest:
        del scope
        return parse_generate_request(payload)

    async def serve(self, exchange: Exchange, payload: dict[str, Any]) -> None:
        del payload
        await self.pipeline.serve(exchange)


def _modified_at(created: int) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")


def _details(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "",
        "family": entry["owned_by"],
        "families": None,
        "parameter_size": "",
        "quantization_level": "",
    }


class OllamaModels:
    """``GET /api/tags``, ``POST /api/show`` and ``GET /api/version``."""

    def __init__(self, listing: ModelListing, *, created: int) -> None:
        self._listing = listing
        self._modified_at = _modified_at(created)

    def _tag(self, entry: dict[str, Any]) -> dict[str, Any]:
        name = entry["id"]
        return {
            "name": name,
            "model": name,
            "modified_at": self._modified_at,
            "size": 0,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": _details(entry),
        }

    async def tags(self, request: Request) -> Response:
        del request
        models = [self._tag(entry) for entry in self._listing.entries(wanted="text")]
        return Response(orjson.dumps({"models": models}), media_type="application/json")

    async def show(self, request: Request) -> Response:
        payload = parse_json_object(await request.body())
        name = payload.get("model", payload.get("name"))
        if not isinstance(name, str) or not name:
            raise InvalidRequestError("'model' is required", param="model")
        for entry in self._listing.entries():
            if entry["id"] == name:
                body = {
                    "modelfile": "",
                    "parameters": "",
                    "template": "",
                    "details": _details(entry),
                    "model_info": {},
                    "capabilities": ["completion", "tools"] if entry["type"] == "text" else [],
                    "modified_at": self._modified_at,
                }
                return Response(orjson.dumps(body), media_type="application/json")
        raise ModelNotFoundError(f"model '{name}' not found", param="model")

    async def version(self, request: Request) -> Response:
        del request
        return Response(orjson.dumps({"version": API_VERSION}), media_type="application/json")
