"""Gemini API (``:generateContent`` / ``:streamGenerateContent?alt=sse``) <-> canonical form.

Pure translation: no I/O. Spec: https://ai.google.dev/api/generate-content — notes in docs/formats/gemini.md.
Split along the STYLE §14 seam: ``request``, ``response``, ``stream``, ``errors`` (plus shared ``parts``, ``types``).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from polyroute.wire import WireFormat
from polyroute.wire import capabilities as cap
from polyroute.wire.framing import SSEStreamParser
from polyroute.wire.gemini.errors import parse_error, render_error
from polyroute.wire.gemini.request import parse_request, render_request
from polyroute.wire.gemini.response import parse_response, render_response
from polyroute.wire.gemini.stream import StreamParser, StreamRenderer

FORMAT: Final = WireFormat.GEMINI
CAPABILITIES: Final = frozenset(
    {
        cap.TEMPERATURE,
        cap.TOP_P,
        cap.TOP_K,
        cap.STOP,
        cap.JSON_OBJECT,
        cap.JSON_SCHEMA,
        cap.TOOL_CHOICE_NONE,
        cap.TOOL_CHOICE_REQUIRED,
        cap.TOOL_CHOICE_TOOL,
        cap.REASONING_EFFORT,
        cap.REASONING_BUDGET,
    }
)


def request_path(model: str, *, stream: bool) -> str:
    """Gemini names the model and the kind of answer in the path; streams are asked for as SSE."""
    name = quote(model.removeprefix("models/"), safe="-._~@")
    if stream:
        return f"/v1beta/models/{name}:streamGenerateContent?alt=sse"
    return f"/v1beta/models/{name}:generateContent"


def stream_parser(*, provider: str) -> SSEStreamParser:
    """A byte-level parser for one Gemini ``alt=sse`` stream."""
    del provider  # Gemini streams carry no in-band error events to attribute
    return SSEStreamParser(StreamParser())


def stream_renderer(*, now_s: int) -> StreamRenderer:
    """A renderer for one Gemini ``alt=sse`` stream to a client (which carries no creation time)."""
    del now_s
    return StreamRenderer()


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
