"""Ollama native chat API (``POST /api/chat``) <-> canonical form, with NDJSON streams.

Pure translation: no I/O, no clock. Spec: https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
Mapping tables, generated ids and known gaps: docs/formats/ollama.md.
"""

from __future__ import annotations

from typing import Final

from polyroute.wire import WireFormat
from polyroute.wire import capabilities as cap
from polyroute.wire.framing import NDJSONStreamParser
from polyroute.wire.ollama.errors import parse_error, render_error
from polyroute.wire.ollama.request import parse_request, render_request
from polyroute.wire.ollama.response import parse_response, render_response
from polyroute.wire.ollama.stream import StreamParser, StreamRenderer

FORMAT: Final = WireFormat.OLLAMA
CAPABILITIES: Final = frozenset(
    {
        cap.TEMPERATURE,
        cap.TOP_P,
        cap.TOP_K,
        cap.STOP,
        cap.JSON_OBJECT,
        cap.JSON_SCHEMA,
        cap.REASONING_EFFORT,
    }
)


def request_path(model: str, *, stream: bool) -> str:
    """Ollama takes the model and ``stream`` in the body."""
    del model, stream
    return "/api/chat"


def stream_parser(*, provider: str) -> NDJSONStreamParser:
    """A byte-level parser for one Ollama NDJSON stream."""
    return NDJSONStreamParser(StreamParser(provider=provider))


def stream_renderer(*, now_s: int) -> StreamRenderer:
    """A renderer for one Ollama NDJSON stream to a client; ``now_s`` fills ``created_at`` if unknown."""
    return StreamRenderer(now_s=now_s)


__all__ = [
    "CAPABILITIES",
    "FORMAT",
    "StreamParser",
    "StreamRenderer",
    "parse_error",
    "parse_request",
    "parse_response",
    "render_error",
    "render_request",
    "render_response",
    "request_path",
    "stream_parser",
    "stream_renderer",
]
