"""UpstreamClient: sends requests to a provider over the shared session and maps every failure.

``UpstreamTarget`` is a provider as this layer sees it: its URL, credentials in rotation, extra
headers and timeouts, all prepared once when the routing table is built.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType

import aiohttp
import orjson
from yarl import URL

from polyroute.errors import UpstreamError, UpstreamProtocolError, UpstreamStatusError
from polyroute.upstream.auth import auth_headers, media_auth_headers
from polyroute.upstream.transport import create_session, map_transport_errors
from polyroute.wire import MediaApi, WireFormat
from polyroute.wire.registry import TRANSLATORS

_REDACTED = "[redacted]"

MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""Largest non-streamed upstream answer the gateway accepts (images as base64 fit well within it)."""

# Where each format lists its models, and how to read the answer.
_MODEL_LIST_PATHS: Mapping[WireFormat, str] = {
    WireFormat.OPENAI: "/models",
    WireFormat.ANTHROPIC: "/v1/models",
    WireFormat.GEMINI: "/v1beta/models",
    WireFormat.OLLAMA: "/api/tags",
    WireFormat.RESPONSES: "/models",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Per-provider limits, in seconds."""

    connect_s: float
    first_byte_s: float
    stream_idle_s: float
    total_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where a provider lives and which format it speaks."""

    name: str
    wire_format: WireFormat
    base_url: str
    models_url: str | None = None
    """The model list's URL when it is not the format's usual path under ``base_url``."""


class UpstreamTarget:
    """A provider's endpoint and credentials, ready to send to."""

    __slots__ = (
        "_headers",
        "_media",
        "_prepared",
        "_urls",
        "base_url",
        "credential_ids",
        "media_api",
        "models_url",
        "name",
        "round_robin",
        "secrets",
        "stream_timeout",
        "stream_usage",
        "timeout",
        "wire_format",
    )

    def __init__(  # noqa: PLR0913  (a provider's settings, each named)
        self,
        endpoint: Endpoint,
        *,
        credentials: Sequence[str],
        headers: Mapping[str, str],
        timeouts: Timeouts,
        stream_usage: bool = True,
        round_robin: bool = False,
        media_api: MediaApi | None = None,
    ) -> None:
        self.name = endpoint.name
        self.round_robin = round_robin
        """Start each request at the next credential in turn (else: the first usable one, fill-first)."""
        self.stream_usage = stream_usage
        """Whether a streamed OpenAI-format request may ask for the final usage chunk (``stream_options``)."""
        self.wire_format = wire_format = endpoint.wire_format
        self.base_url = endpoint.base_url.rstrip("/")
        self.models_url = endpoint.models_url or self.base_url + _MODEL_LIST_PATHS[wire_format]
        self.secrets = tuple(sorted({c for c in credentials if c}, key=len, reverse=True))
        keys: Sequence[str | None] = credentials or (None,)
        prepared = [
            MappingProxyType(
                _merge_headers({"Content-Type": "application/json"}, headers, auth_headers(wire_format, key))
            )
            for key in keys
        ]
        self._prepared = tuple(prepared)
        self.media_api = media_api
        """The API its image, embedding and audio models speak; None when it serves none."""
        self._media = (
            tuple(MappingProxyType(_merge_headers(headers, media_auth_headers(media_api, key))) for key in keys)
            if media_api is not None
            else ()
        )
        self.credential_ids = tuple(credential_id(key) for key in keys)
        """A short, non-secret name per credential (``-`` when keyless), in config order."""
        self._headers: Iterator[Mapping[str, str]] = itertools.cycle(prepared)
        self._urls: dict[str, URL] = {}
        # sock_read bounds the wait for the answer to begin (and, for streams, every later gap). It
        # re-arms a timer on every read (~30k instructions per call under callgrind), so it is set
        # only where it is tighter than the total.
        self.timeout = _client_timeout(timeouts, sock_read_s=timeouts.first_byte_s)
        self.stream_timeout = _client_timeout(timeouts, sock_read_s=timeouts.stream_idle_s)

    def url(self, path: str) -> URL:
        """The parsed URL of an endpoint path under ``base_url`` (parsed once per path, not per call)."""
        found = self._urls.get(path)
        if found is None:
            found = self._urls[path] = URL(self.base_url + path)
        return found

    def next_headers(self) -> Mapping[str, str]:
        """Headers for the next call, rotating through the credentials in turn."""
        return next(self._headers)

    def headers_for(self, credential: int | None) -> Mapping[str, str]:
        """Headers authenticating with the credential at ``credential`` (None: the next in rotation)."""
        return next(self._headers) if credential is None else self._prepared[credential]

    def media_headers_for(self, credential: int | None) -> Mapping[str, str]:
        """Headers authenticating a media request (no content type: each request sets its own)."""
        if not self._media:
            return {}
        return self._media[0 if credential is None else credential]

    def redact(self, text: str) -> str:
        """Remove this provider's credentials from a text before it is stored or shown."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, _REDACTED)
        return text


def credential_id(key: str | None) -> str:
    """A credential's public name: ``k`` and 8 hex digits of its SHA-256 (``-`` for none); never the secret."""
    return "k" + hashlib.sha256(key.encode()).hexdigest()[:8] if key else "-"


def _client_timeout(timeouts: Timeouts, *, sock_read_s: float) -> aiohttp.ClientTimeout:
    sock_read = sock_read_s if sock_read_s < timeouts.total_s else None
    return aiohttp.ClientTimeout(total=timeouts.total_s, sock_connect=timeouts.connect_s, sock_read=sock_read)


def _merge_headers(*layers: Mapping[str, str]) -> dict[str, str]:
    """Later layers win, whatever the case of the header names (HTTP names are case-insensitive)."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    return dict(merged.values())


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """A complete, successful upstream answer."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class MediaReply:
    """A complete, successful answer of a media API."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]


class UpstreamStream:
    """An open streamed answer; ``read()`` returns the next bytes as they arrive, b"" at the end."""

    __slots__ = ("_content", "_name")

    def __init__(self, name: str, content: aiohttp.StreamReader) -> None:
        self._name = name
        self._content = content

    async def read(self) -> bytes:
        with map_transport_errors(self._name):
            return await self._content.readany()


class UpstreamClient:
    """Send requests to upstream targets over one pooled aiohttp session (opened by ``start()``)."""

    def __init__(self, *, connect_timeout_s: float) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the pooled session; must run inside the serving event loop."""
        self._http = create_session(connect_timeout_s=self._connect_timeout_s)

    async def aclose(self) -> None:
        """Close the session and every pooled connection."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session (for other upstream-layer helpers, such as the image fetcher)."""
        return self._session

    @property
    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("UpstreamClient.start() was not called")
        return self._http

    async def post(
        self, target: UpstreamTarget, path: str, body: bytes, *, credential: int | None = None
    ) -> UpstreamReply:
        """POST a JSON body and read the whole answer (with the given credential, else the next in rotation).

        Raises:
            UpstreamError: the matching subclass for a transport failure or an error status.
        """
        with map_transport_errors(target.name):
            async with self._session.post(
                target.url(path), data=body, headers=target.headers_for(credential), timeout=target.timeout
            ) as response:
                data = await _read_capped(response, target.name)
                if response.status >= 400:
                    raise status_error(target, response.status, data, response.headers)
                return UpstreamReply(response.status, data)

    @asynccontextmanager
    async def open_stream(
        self, target: UpstreamTarget, path: str, body: bytes, *, credential: int | None = None
    ) -> AsyncIterator[UpstreamStream]:
        """POST a JSON body whose answer is an event stream; yields it once the upstream said 2xx.

        The connection is returned to the pool only if the stream was read to its end; otherwise it
        is closed, which tells the upstream to stop generating.

        Raises:
            UpstreamError: transport failure, error status, or an answer that is not an event stream.
        """
        with map_transport_errors(target.name):
            response = await self._session.post(
                target.url(path), data=body, headers=target.headers_for(credential), timeout=target.stream_timeout
            )
        try:
            if response.status >= 400:
                with map_transport_errors(target.name):
                    data = await _read_capped(response, target.name)
                raise status_error(target, response.status, data, response.headers)
            if response.content_type not in ("text/event-stream", "application/x-ndjson"):
                raise UpstreamProtocolError(
                    f"{target.name} answered a streaming request with {response.content_type or 'no content type'}",
                    provider=target.name,
                )
            yield UpstreamStream(target.name, response.content)
        finally:
            if response.content.is_eof():
                response.release()
            else:
                response.close()

    async def request(  # noqa: PLR0913  (an HTTP call's parts, each optional and named)
        self,
        target: UpstreamTarget,
        method: str,
        url: str | URL,
        *,
        data: bytes | aiohttp.FormData | AsyncIterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        credential: int | None = None,
    ) -> MediaReply:
        """A media API call, read whole.

        ``url`` is a fixed path under ``base_url`` (parsed once and kept), or a ``URL`` (for addresses that
        carry request data, such as a prompt). The target's media credentials are sent; ``headers`` add to
        them (a content type, say).

        Raises:
            UpstreamError: the matching subclass for a transport failure or an error status.
        """
        address = url if isinstance(url, URL) else target.url(url)
        sent = {**target.media_headers_for(credential), **(headers or {})}
        with map_transport_errors(target.name):
            async with self._session.request(
                method, address, data=data, headers=sent, params=params, timeout=target.timeout
            ) as response:
                body = await _read_capped(response, target.name)
                if response.status >= 400:
                    raise status_error(target, response.status, body, response.headers)
                return MediaReply(response.status, body, response.content_type, response.headers)

    @asynccontextmanager
    async def open_bytes(
        self,
        target: UpstreamTarget,
        path: str,
        body: bytes,
        *,
        credential: int | None = None,
    ) -> AsyncIterator[tuple[str, UpstreamStream]]:
        """POST a JSON body whose answer is binary (audio), yielding its content type and a stream of its bytes.

        Raises:
            UpstreamError: transport failure or an error status.
        """
        sent = {**target.media_headers_for(credential), "Content-Type": "application/json"}
        with map_transport_errors(target.name):
            response = await self._session.post(
                target.url(path), data=body, headers=sent, timeout=target.stream_timeout
            )
        try:
            if response.status >= 400:
                with map_transport_errors(target.name):
                    data = await _read_capped(response, target.name)
                raise status_error(target, response.status, data, response.headers)
            yield response.content_type, UpstreamStream(target.name, response.content)
        finally:
            if response.content.is_eof():
                response.release()
            else:
                response.close()

    async def list_models(self, target: UpstreamTarget, *, timeout_s: float) -> list[str]:
        """The model ids the upstream lists.

        Raises:
            UpstreamError: the upstream could not be asked or gave an unreadable answer.
        """
        url = target.models_url
        headers = {k: v for k, v in target.next_headers().items() if k != "Content-Type"}
        with map_transport_errors(target.name):
            async with self._session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                data = await _read_capped(response, target.name)
                if response.status >= 400:
                    raise status_error(target, response.status, data, response.headers)
        return _model_ids(target, data)


async def _read_capped(response: aiohttp.ClientResponse, provider: str) -> bytes:
    """The whole body of a non-streamed answer, refusing one larger than ``MAX_ANSWER_BYTES``.

    An upstream that lies about its size, or never stops sending, cannot exhaust the gateway's memory.
    """
    declared = response.content_length
    if declared is not None and declared <= MAX_ANSWER_BYTES:
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise UpstreamProtocolError(
                f"{provider} sent an answer larger than {MAX_ANSWER_BYTES} bytes", provider=provider
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _model_ids(target: UpstreamTarget, data: bytes) -> list[str]:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    items = (body.get("data") or body.get("models")) if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise UpstreamProtocolError(f"{target.name} sent an unreadable model list", provider=target.name)
    ids: list[str] = []
    for item in items:
        if isinstance(item, dict):
            raw = item.get("id") or item.get("name") or item.get("model")
            if isinstance(raw, str) and raw:
                # Gemini names models "models/<id>".
                ids.append(raw.removeprefix("models/"))
    return ids


def status_error(target: UpstreamTarget, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamStatusError:
    """The error for an upstream's error answer, with the provider's credentials redacted.

    The body is redacted before it is parsed: every field taken from it (type, code and param too)
    is then clean, and truncating the message cannot leave part of a key behind.
    """
    for secret in target.secrets:
        body = body.replace(secret.encode(), _REDACTED.encode())
    error = TRANSLATORS[target.wire_format].parse_error(status, body, headers, provider=target.name)
    error.message = target.redact(error.message)
    return error


__all__ = [
    "Endpoint",
    "MediaReply",
    "Timeouts",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamReply",
    "UpstreamStream",
    "UpstreamTarget",
    "status_error",
]
