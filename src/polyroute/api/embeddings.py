"""The embeddings endpoints: ``POST /v1/embeddings`` (and pinned to a provider), ``GET /v1/embeddings``.

Requests and answers are OpenAI's; each attempt goes to its provider's media API (OpenAI-compatible,
Gemini, Ollama or Cohere, translated by ``wire/embeddings.py``), in batches where the API caps them.
Usage is the upstream's count, else an estimate (marked as such), and is charged like chat.
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from typing import Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from polyroute.api.media import MediaCall, MediaEndpoint
from polyroute.api.models import ModelListing
from polyroute.api.outcome import Outcome
from polyroute.api.pipeline import ResponseHeaders
from polyroute.api.responses import JSON_HEADERS, parse_json_object, read_body, send_bytes
from polyroute.api.services import Services
from polyroute.core.estimate import default_counter
from polyroute.core.messages import Usage
from polyroute.errors import InvalidRequestError
from polyroute.routing.config import ModelType
from polyroute.routing.pricing import Price, cost_usd
from polyroute.routing.table import Deployment
from polyroute.wire.embeddings import (
    EMBEDDING_APIS,
    EmbeddingApi,
    EmbeddingBatch,
    EmbeddingRequest,
    Vector,
    batches,
    dropped_fields,
    estimate_input_tokens,
    parse_request,
    render_response,
)

_JSON_CONTENT: Final = {"Content-Type": "application/json"}


class EmbeddingsEndpoint(MediaEndpoint[EmbeddingRequest]):
    """``POST /v1/embeddings`` and ``POST /v1/providers/{provider}/embeddings``."""

    kind = ModelType.EMBEDDING

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.headers = ResponseHeaders()

    async def parse(self, scope: Scope, receive: Receive) -> EmbeddingRequest:
        return parse_request(parse_json_object(await read_body(scope, receive, self.services.max_body_bytes)))

    async def serve(self, call: MediaCall[EmbeddingRequest]) -> None:
        request, deployment, outcome = call.request, call.deployment, call.outcome
        api = _api_of(deployment, request)
        outcome.dropped = dropped_fields(request, api) or None
        vectors: list[Vector] = []
        reported: list[int | None] = []
        model: str | None = None
        for batch in batches(request, api):
            answer = await self._call(call, api, batch)
            vectors.extend(answer.vectors)
            reported.append(answer.input_tokens)
            model = model or answer.model
        outcome.upstream_model = model or deployment.model
        if all(tokens is not None for tokens in reported):
            input_tokens = sum(tokens or 0 for tokens in reported)
        else:
            input_tokens = estimate_input_tokens(request, counter=default_counter())
            outcome.estimated = True
        body = render_response(
            vectors,
            encoding=request.wanted_encoding,
            model=outcome.upstream_model,
            input_tokens=input_tokens,
            provider=deployment.provider,
        )
        outcome.set_usage(Usage(input_tokens=input_tokens, output_tokens=0))
        outcome.cost_usd = self._cost(deployment, outcome)
        headers = [*self.headers(deployment, JSON_HEADERS), *outcome.usage_headers(self.services.prices)]
        await send_bytes(call.send, 200, orjson.dumps(body), headers)

    async def _call(self, call: MediaCall[EmbeddingRequest], api: EmbeddingApi, batch: slice) -> EmbeddingBatch:
        """One upstream call for the inputs in ``batch``."""
        deployment = call.deployment
        data = orjson.dumps(api.render(call.request, deployment.model, batch))
        reply = await self.services.upstream.request(
            deployment.target,
            "POST",
            api.path(deployment.model),
            data=data,
            headers=_JSON_CONTENT,
            credential=call.candidate.credential,
        )
        return api.parse(reply.body, len(range(call.request.count)[batch]), deployment.provider)

    def _cost(self, deployment: Deployment, outcome: Outcome) -> float | None:
        """The cost at the model's input price: an embedding has no output, so no output price is needed."""
        price = self.services.prices.table.lookup(deployment.provider, outcome.upstream_model or deployment.model)
        if price is None or outcome.usage is None:
            return None
        return cost_usd(_no_output_price_needed(price), outcome.usage)


def _no_output_price_needed(price: Price) -> Price:
    above = _no_output_price_needed(price.above) if price.above is not None else None
    return replace(price, output=price.output if price.output is not None else Decimal(0), above=above)


def _api_of(deployment: Deployment, request: EmbeddingRequest) -> EmbeddingApi:
    """The embedding API of the deployment's provider, checked against what the request needs.

    Raises:
        InvalidRequestError: the provider's media API serves no embeddings, or the input is token ids
            and this API takes text only.
    """
    media_api = deployment.target.media_api
    api = EMBEDDING_APIS.get(media_api) if media_api is not None else None
    if media_api is None or api is None:
        served = f"its media API ({media_api.value}) serves" if media_api is not None else "it serves"
        raise InvalidRequestError(
            f"{deployment.label} cannot embed: {served} no embeddings", param="model", code="unsupported_media_api"
        )
    if request.tokens and not api.takes_tokens:
        raise InvalidRequestError(
            f"{deployment.label} ({media_api.value} embeddings API) takes text only; input given as token ids "
            "can be embedded by OpenAI-compatible providers only",
            param="input",
            code="unsupported_input",
        )
    return api


class EmbeddingModels:
    """``GET /v1/embeddings``: the embedding models of the live routing table, as an OpenAI list."""

    def __init__(self, services: Services) -> None:
        self._listing = ModelListing(services.routing, created=int(time.time()))

    async def list(self, request: Request) -> Response:
        data = self._listing.entries(provider=request.query_params.get("provider"), wanted=ModelType.EMBEDDING.value)
        return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


def routes(services: Services) -> list[Route]:
    """The embeddings routes."""
    endpoint = EmbeddingsEndpoint(services)
    models = EmbeddingModels(services)
    return [
        Route("/v1/embeddings", endpoint, methods=["POST"]),
        Route("/v1/embeddings", models.list, methods=["GET"]),
        Route("/v1/providers/{provider}/embeddings", endpoint, methods=["POST"]),
    ]
