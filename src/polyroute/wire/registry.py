"""The translator contract every wire-format module satisfies, and the registry of them.

A translator is a module (STYLE §16): the functions below at module level, checked by mypy where
``TRANSLATORS`` is built and at run time by the contract tests. It lives here rather than in
``wire/__init__.py`` because the format modules import ``polyroute.wire`` themselves.

Streams are byte-level at this seam: ``stream_parser()`` puts the format's framing (SSE or NDJSON)
in front of its event parser, and ``stream_renderer()`` returns framed bytes, so callers never need
to know how a format frames its events.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from polyroute.core.events import StreamEvent
from polyroute.core.messages import ChatRequest, ChatResponse
from polyroute.errors import GatewayError, UpstreamStatusError
from polyroute.types import JSONObject
from polyroute.wire import WireFormat, anthropic_messages, gemini, ollama, openai_chat, openai_responses


class StreamChunkParser(Protocol):
    """Upstream bytes → canonical events (sans-IO).

    When ``feed`` raises (an in-band error event, malformed data), ``pending`` holds the events of
    that chunk that came before the failure, so nothing the upstream said first is lost.
    """

    pending: list[StreamEvent]

    def feed(self, chunk: bytes) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]: ...


class StreamRenderer(Protocol):
    """Canonical events → the client's framed bytes (sans-IO)."""

    def feed(self, event: StreamEvent) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...

    def error(self, err: GatewayError) -> bytes: ...


class Translator(Protocol):
    """What a wire-format module provides."""

    @property
    def FORMAT(self) -> WireFormat: ...

    @property
    def CAPABILITIES(self) -> frozenset[str]: ...

    def parse_request(self, body: JSONObject, *, model: str | None = None) -> ChatRequest:
        """Client body → canonical request; ``model`` (from the URL, where the format puts it there) wins."""

    def render_request(self, request: ChatRequest) -> JSONObject:
        """Canonical request → upstream body (``request.model`` is the upstream's model id)."""

    def request_path(self, model: str, *, stream: bool) -> str:
        """The path under the provider's ``base_url`` a request for ``model`` is posted to."""

    def parse_response(self, body: JSONObject) -> ChatResponse:
        """Upstream answer → canonical response."""

    def render_response(self, response: ChatResponse, *, now_s: int) -> JSONObject:
        """Canonical response → client answer; ``now_s`` stands in when the upstream gave no time."""

    def parse_error(
        self, status_code: int, body: bytes, headers: Mapping[str, str], *, provider: str
    ) -> UpstreamStatusError:
        """Upstream error answer → the matching gateway error."""

    def render_error(self, error: GatewayError) -> tuple[int, JSONObject]:
        """Gateway error → client status and body."""

    def stream_parser(self, *, provider: str) -> StreamChunkParser:
        """A parser for one upstream stream in this format."""

    def stream_renderer(self, *, now_s: int) -> StreamRenderer:
        """A renderer for one client stream in this format."""


_ALL: dict[WireFormat, Translator] = {
    WireFormat.OPENAI: openai_chat,
    WireFormat.ANTHROPIC: anthropic_messages,
    WireFormat.GEMINI: gemini,
    WireFormat.OLLAMA: ollama,
    WireFormat.RESPONSES: openai_responses,
}

TRANSLATORS: Mapping[WireFormat, Translator] = MappingProxyType(_ALL)
"""Every wire format's translator; the contract tests iterate over it."""


class TranslatorVariant:
    """A format's translator with some of its functions replaced by a subclass.

    For endpoints that speak a variant of a format: Gemini's JSON-array streaming, Ollama's
    ``/api/generate``. Everything not overridden is the base format's.
    """

    def __init__(self, base: Translator) -> None:
        self.base = base

    @property
    def FORMAT(self) -> WireFormat:
        return self.base.FORMAT

    @property
    def CAPABILITIES(self) -> frozenset[str]:
        return self.base.CAPABILITIES

    def parse_request(self, body: JSONObject, *, model: str | None = None) -> ChatRequest:
        return self.base.parse_request(body, model=model)

    def render_request(self, request: ChatRequest) -> JSONObject:
        return self.base.render_request(request)

    def request_path(self, model: str, *, stream: bool) -> str:
        return self.base.request_path(model, stream=stream)

    def parse_response(self, body: JSONObject) -> ChatResponse:
        return self.base.parse_response(body)

    def render_response(self, response: ChatResponse, *, now_s: int) -> JSONObject:
        return self.base.render_response(response, now_s=now_s)

    def parse_error(
        self, status_code: int, body: bytes, headers: Mapping[str, str], *, provider: str
    ) -> UpstreamStatusError:
        return self.base.parse_error(status_code, body, headers, provider=provider)

    def render_error(self, error: GatewayError) -> tuple[int, JSONObject]:
        return self.base.render_error(error)

    def stream_parser(self, *, provider: str) -> StreamChunkParser:
        return self.base.stream_parser(provider=provider)

    def stream_renderer(self, *, now_s: int) -> StreamRenderer:
        return self.base.stream_renderer(now_s=now_s)
