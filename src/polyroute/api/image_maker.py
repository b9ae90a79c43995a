"""Drawing images through one deployment's media API: OpenAI-compatible, Pollinations or Gemini.

Translation lives in ``wire/images.py``; this module makes the calls and converts between the forms:
an image given only by URL is fetched when the client wants base64, through the gateway's image
fetcher (size cap, http(s) only, no loopback or private address unless allowed). An answer that
cannot be read, or that holds no image, is an ``UpstreamError``, so the next candidate may try.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson
from yarl import URL

from polyroute.api.services import Services
from polyroute.core.messages import ChatRequest, ImagePart, Message, Part, Usage
from polyroute.errors import InvalidRequestError, UpstreamEmptyAnswerError, UpstreamProtocolError
from polyroute.routing.table import Deployment
from polyroute.types import JSONObject
from polyroute.wire import MediaApi
from polyroute.wire import images as wire

_JSON: Final = {"Content-Type": "application/json"}
_OPENAI_PATH: Final = "/images/generations"
_MAX_SEED: Final = 2**31 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Drawing:
    """What one deployment drew."""

    images: list[wire.GeneratedImage]
    usage: Usage | None = None
    upstream_model: str | None = None
    answer: JSONObject | None = None
    """An OpenAI-compatible upstream's whole answer (its fields other than ``data`` go back to the client)."""
    raw: bytes | None = None
    """That answer's bytes, while they can be passed on as they are (no image had to change form)."""


_Found = tuple[list[wire.GeneratedImage], Usage | None, str | None]
"""One call's images, token counts and model version."""
_Drawer = Callable[[Deployment, int | None, wire.ImageRequest], Awaitable[Drawing]]


class ImageMaker:
    """Draws the images of a request through one deployment; shared by the images and chat endpoints."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._drawers: Mapping[MediaApi, _Drawer] = {
            MediaApi.OPENAI: self._openai,
            MediaApi.POLLINATIONS: self._pollinations,
            MediaApi.GEMINI: self._gemini,
        }

    async def draw(
        self, deployment: Deployment, credential: int | None, request: wire.ImageRequest, want: wire.ImageFormat | None
    ) -> Drawing:
        """The request's images, each in the form ``want`` asks for (None: as the upstream gave them).

        Raises:
            UpstreamError: the call failed, the answer is unreadable or holds no image, or an image
                given by URL could not be fetched for base64.
        """
        media_api = deployment.target.media_api
        drawer = self._drawers.get(media_api) if media_api is not None else None
        if drawer is None:
            raise UpstreamProtocolError(
                f"{deployment.provider} has no image API (media_api: {media_api or 'none'})",
                provider=deployment.provider,
            )
        drawing = await drawer(deployment, credential, request)
        if not drawing.images:
            raise _empty(deployment, "answered with no image")
        if want is None or all(image.has(want) for image in drawing.images):
            return drawing
        drawing = replace(drawing, raw=None)
        if want is wire.ImageFormat.B64_JSON:
            drawing = replace(drawing, images=await self._with_data(deployment, drawing.images))
        return drawing

    async def _openai(self, deployment: Deployment, credential: int | None, request: wire.ImageRequest) -> Drawing:
        body = orjson.dumps(wire.render_openai_request(request, deployment.model))
        reply = await self._services.upstream.request(
            deployment.target, "POST", _OPENAI_PATH, data=body, headers=_JSON, credential=credential
        )
        answer = _load(reply.body, deployment)
        try:
            images = wire.parse_openai_response(answer)
        except ValueError as exc:
            raise _unreadable(deployment, str(exc)) from None
        usage = wire.parse_openai_usage(answer)
        return Drawing(images=images, usage=usage, upstream_model=deployment.model, answer=answer, raw=reply.body)

    async def _pollinations(
        self, deployment: Deployment, credential: int | None, request: wire.ImageRequest
    ) -> Drawing:
        target = deployment.target
        root = wire.pollinations_root(target.base_url)
        first_seed = secrets.randbelow(_MAX_SEED - request.n)
        images: list[wire.GeneratedImage] = []
        # One image at a time: Pollinations' keyless tier allows one request in flight per address.
        for seed in range(first_seed, first_seed + request.n):
            url = wire.pollinations_url(
                root, request.prompt, model=deployment.model, seed=seed, width=request.width, height=request.height
            )
            # The key travels in the Authorization header, never in the URL the client is given.
            reply = await self._services.upstream.request(target, "GET", URL(url, encoded=True), credential=credential)
            if not reply.content_type.startswith("image/"):
                raise _unreadable(deployment, f"answered with {reply.content_type or 'no content type'}, not an image")
            if not reply.body:
                raise _empty(deployment, "sent an empty image")
            data = base64.b64encode(reply.body).decode("ascii")
            images.append(wire.GeneratedImage(url=url, data=data, media_type=reply.content_type))
        return Drawing(images=images, upstream_model=deployment.model)

    async def _gemini(self, deployment: Deployment, credential: int | None, request: wire.ImageRequest) -> Drawing:
        body = orjson.dumps(wire.render_gemini_request(request))
        path = wire.gemini_path(deployment.model)

        async def one() -> _Found:
            reply = await self._services.upstream.request(
                deployment.target, "POST", path, data=body, headers=_JSON, credential=credential
            )
            answer = _load(reply.body, deployment)
            try:
                images = wire.parse_gemini_response(answer)
            except ValueError as exc:
                raise _unreadable(deployment, str(exc)) from None
            version = answer.get("modelVersion")
            return images, wire.parse_gemini_usage(answer), version if isinstance(version, str) else None

        # Gemini draws one image per call: n images are n calls, made side by side.
        results = await _each(request.n, one)
        if not all(found for found, _, _ in results):
            raise _empty(deployment, "answered with no image")
        images = [found[0] for found, _, _ in results]
        return Drawing(images=images, usage=_sum(u for _, u, _ in results), upstream_model=results[0][2])

    async def _with_data(self, deployment: Deployment, images: list[wire.GeneratedImage]) -> list[wire.GeneratedImage]:
        """Each image with its bytes: a ``data:`` URL decoded, any other URL fetched by the image fetcher."""
        images = [wire.parse_data_url(image.url or "") or image if image.data is None else image for image in images]
        wanted = [image.url for image in images if image.data is None and image.url is not None]
        if not wanted:
            return images
        asked = Message(role="user", parts=tuple(ImagePart(url=url) for url in wanted))
        try:
            fetched = await self._services.images.inline(ChatRequest(model="", messages=(asked,)))
        except InvalidRequestError as exc:
            raise _unreadable(deployment, f"gave an image URL the gateway could not read ({exc.message})") from None
        found: dict[str | None, Part] = dict(zip(wanted, fetched.messages[0].parts, strict=True))
        return [_filled(image, found[image.url]) if image.url in found else image for image in images]


def _filled(image: wire.GeneratedImage, part: Part) -> wire.GeneratedImage:
    """The image with the bytes the fetcher read for its URL."""
    assert isinstance(part, ImagePart)  # the fetcher replaces each URL image by an inline one
    return replace(image, data=part.data, media_type=part.media_type)


async def _each(count: int, make: Callable[[], Coroutine[Any, Any, _Found]]) -> list[_Found]:
    """``count`` calls side by side; the first failure cancels the others and is raised as it is."""
    if count == 1:
        return [await make()]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(make()) for _ in range(count)]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def _sum(usages: Iterable[Usage | None]) -> Usage | None:
    total: Usage | None = None
    for usage in usages:
        if usage is not None:
            total = usage if total is None else _add(total, usage)
    return total


def _add(one: Usage, other: Usage) -> Usage:
    def plus(a: int | None, b: int | None) -> int | None:
        return None if a is None and b is None else (a or 0) + (b or 0)

    return Usage(
        input_tokens=plus(one.input_tokens, other.input_tokens),
        output_tokens=plus(one.output_tokens, other.output_tokens),
    )


def _load(body: bytes, deployment: Deployment) -> JSONObject:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise _unreadable(deployment, "answered with something that is not a JSON object")
    return answer


def _unreadable(deployment: Deployment, detail: str) -> UpstreamProtocolError:
    return UpstreamProtocolError(f"{deployment.provider} {detail}", provider=deployment.provider)


def _empty(deployment: Deployment, detail: str) -> UpstreamEmptyAnswerError:
    return UpstreamEmptyAnswerError(f"{deployment.provider} {detail}", provider=deployment.provider)
