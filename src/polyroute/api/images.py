"""Image generation in OpenAI's shape: ``POST /v1/images/generations`` (and pinned), ``GET`` lists image models.

Requests are planned, admitted and tried over their candidates by the shared media endpoint; each
attempt draws through the deployment's media API (``api/image_maker.py``). ``response_format`` is
always honoured: an image the upstream gave in the other form is converted. See docs/images.md.
"""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from polyroute.api.image_maker import ImageMaker
from polyroute.api.media import MediaCall, MediaEndpoint
from polyroute.api.models import ModelListing
from polyroute.api.pipeline import JSON_HEADERS, ResponseHeaders
from polyroute.api.responses import parse_json_object, read_body, send_bytes
from polyroute.api.services import Services
from polyroute.routing.config import ModelType
from polyroute.wire import MediaApi
from polyroute.wire import images as wire


class ImagesEndpoint(MediaEndpoint[wire.ImageRequest]):
    """``POST /v1/images/generations``: OpenAI's request and answer, whatever API draws the image."""

    kind = ModelType.IMAGE

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self._maker = ImageMaker(services)
        self._headers = ResponseHeaders()

    async def parse(self, scope: Scope, receive: Receive) -> wire.ImageRequest:
        return wire.parse_request(parse_json_object(await read_body(scope, receive, self.services.max_body_bytes)))

    async def serve(self, call: MediaCall[wire.ImageRequest]) -> None:
        request, deployment, outcome = call.request, call.deployment, call.outcome
        want = request.response_format
        outcome.dropped = None  # an earlier candidate's API may have dropped what this one carries
        if deployment.target.media_api is not MediaApi.OPENAI:
            outcome.dropped = wire.dropped_fields(request) or None
            # OpenAI's default; an OpenAI-compatible upstream's answer is passed on in the form it came.
            want = want or wire.ImageFormat.URL
        drawing = await self._maker.draw(deployment, call.candidate.credential, request, want)
        outcome.set_usage(drawing.usage)
        outcome.upstream_model = drawing.upstream_model
        if drawing.raw is not None:
            body = drawing.raw
        else:
            created = drawing.answer.get("created") if drawing.answer is not None else None
            rendered = wire.render_response(
                created if isinstance(created, int) else int(time.time()),
                drawing.images,
                want or wire.ImageFormat.URL,
                base=drawing.answer,
            )
            body = orjson.dumps(rendered)
        headers = [*self._headers(deployment, JSON_HEADERS), *outcome.usage_headers(self.services.prices)]
        await send_bytes(call.send, 200, body, headers)


def routes(services: Services) -> list[Route]:
    """The images routes."""
    endpoint = ImagesEndpoint(services)
    listing = ModelListing(services.routing, created=int(time.time()))

    async def list_image_models(request: Request) -> Response:
        """``GET /v1/images/generations``: the image models and aliases, as ``/v1/models`` lists them."""
        del request
        body = {"object": "list", "data": listing.entries(wanted=ModelType.IMAGE.value)}
        return Response(orjson.dumps(body), media_type="application/json")

    return [
        Route("/v1/images/generations", endpoint, methods=["POST"]),
        Route("/v1/images/generations", list_image_models, methods=["GET"]),
        Route("/v1/providers/{provider}/images/generations", endpoint, methods=["POST"]),
    ]
