"""Fetch-and-inline for images given by URL, for providers that take images only as data.

Translators do no I/O (images by URL stay URLs in the canonical form); this step runs only when the
target format lacks ``image_url`` (Gemini, Ollama). Each image is capped in size and time, must be
``http(s)``, must say it is an image, and by default may not come from a loopback, private or
link-local address literal or ``localhost``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from dataclasses import replace

import aiohttp
from yarl import URL

from polyroute.core.messages import ChatRequest, ImagePart, Message, Part, ToolResultPart
from polyroute.errors import InvalidRequestError, UpstreamError
from polyroute.upstream.client import UpstreamClient
from polyroute.upstream.transport import map_transport_errors

_PROVIDER = "image fetch"
_MAX_IMAGES = 32


class ImageFetcher:
    """Replaces URL images in a canonical request by their bytes."""

    def __init__(self, upstream: UpstreamClient, *, max_bytes: int, timeout_s: float, allow_private: bool) -> None:
        self._upstream = upstream
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._allow_private = allow_private

    async def inline(self, request: ChatRequest) -> ChatRequest:
        """The request with every URL image (tool results included) fetched and inlined.

        Raises:
            InvalidRequestError: an image could not be fetched, is too large, is not an image, or is
                at an address the gateway may not read; the message names the URL's host.
        """
        urls = sorted({url for url in _image_urls(request)})
        if len(urls) > _MAX_IMAGES:
            raise InvalidRequestError(f"too many images given by URL ({len(urls)}); at most {_MAX_IMAGES}")
        fetched = dict(zip(urls, await asyncio.gather(*(self._fetch(url) for url in urls)), strict=True))
        return replace(request, messages=tuple(_inlined(message, fetched) for message in request.messages))

    async def _fetch(self, url: str) -> ImagePart:
        parsed = URL(url)
        self._check(parsed)
        try:
            with map_transport_errors(_PROVIDER):
                async with self._upstream.session.get(parsed, timeout=self._timeout, allow_redirects=False) as response:
                    if response.status != 200:
                        raise InvalidRequestError(f"image at {parsed.host} answered HTTP {response.status}")
                    media_type = response.content_type
                    if not media_type.startswith("image/"):
                        raise InvalidRequestError(f"image at {parsed.host} is {media_type or 'untyped'}, not an image")
                    data = await self._read(response, parsed)
        except UpstreamError as exc:
            raise InvalidRequestError(f"image at {parsed.host} could not be fetched: {exc.message}") from None
        return ImagePart(data=base64.b64encode(data).decode("ascii"), media_type=media_type)

    async def _read(self, response: aiohttp.ClientResponse, url: URL) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self._max_bytes:
                raise InvalidRequestError(f"image at {url.host} is larger than {self._max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise InvalidRequestError("images by URL must use http or https")
        if self._allow_private:
            return
        host = url.host.strip("[]").lower()
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidRequestError("images may not be fetched from localhost")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return
        if address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified:
            raise InvalidRequestError(f"images may not be fetched from the address {host}")


def _image_urls(request: ChatRequest) -> list[str]:
    urls: list[str] = []
    for message in request.messages:
        for part in message.parts:
            items = part.content if isinstance(part, ToolResultPart) else (part,)
            urls.extend(item.url for item in items if isinstance(item, ImagePart) and item.url is not None)
    return urls


def _inlined(message: Message, fetched: dict[str, ImagePart]) -> Message:
    parts: list[Part] = []
    for part in message.parts:
        if isinstance(part, ImagePart) and part.url is not None:
            parts.append(fetched[part.url])
        elif isinstance(part, ToolResultPart):
            content = tuple(
                fetched[item.url] if isinstance(item, ImagePart) and item.url is not None else item
                for item in part.content
            )
            parts.append(replace(part, content=content))
        else:
            parts.append(part)
    return replace(message, parts=tuple(parts))
