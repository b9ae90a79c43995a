"""OpenAI Responses API (``POST /v1/responses``) <-> canonical form.

Pure translation: no I/O, no settings, no clock. Spec: https://platform.openai.com/docs/api-reference/responses
Split along the translator seam (STYLE §14): request, response, stream, errors, and tools (the tool kinds
the canonical form lacks, and the shapes their calls are answered in).
Mapping tables, item ids and known gaps: docs/formats/responses.md.
"""

from __future__ import annotations

from typing import Final

from polyroute.wire import WireFormat
from polyroute.wire import capabilities as cap
from polyroute.wire.framing import SSEStreamParser
from polyroute.wire.openai_responses.errors import parse_error, render_error
from polyroute.wire.openai_responses.request import parse_request, render_request
from polyroute.wire.openai_responses.response import parse_response, render_response
from polyroute.wire.openai_responses.stream import StreamParser, StreamRenderer
from polyroute.wire.openai_responses.tools import NAMESPACE_SEPARATOR, NO_SHAPES, ToolShape, ToolShapes, tool_shapes

FORMAT: Final = WireFormat.RESPONSES
CAPABILITIES: Final = frozenset(
    {
        cap.TEMPERATURE,
        cap.TOP_P,
        cap.JSON_OBJECT,
        cap.JSON_SCHEMA,
        cap.TOOL_CHOICE_NONE,
        cap.TOOL_CHOICE_REQUIRED,
        cap.TOOL_CHOICE_TOOL,
        cap.PARALLEL_TOOL_CALLS,
        cap.REASONING_EFFORT,
        cap.USER_ID,
        cap.IMAGE_URL,
        cap.TOOL_RESULT_IMAGES,
    }
)


def request_path(model: str, *, stream: bool) -> str:
    """Responses takes the model and ``stream`` in the body, under one path."""
    del model, stream
    return "/responses"


def stream_parser(*, provider: str) -> SSEStreamParser:
    """A byte-level parser for one Responses SSE stream."""
    return SSEStreamParser(StreamParser(provider=provider))


def stream_renderer(*, now_s: int, tool_shapes: ToolShapes = NO_SHAPES) -> StreamRenderer:
    """A renderer for one Responses SSE stream to a client; ``now_s`` fills ``created_at`` if unknown.

    ``tool_shapes`` (from ``tool_shapes(request body)``) renders calls of namespace members and custom tools as
    the client declared them.
    """
    return StreamRenderer(now_s=now_s, tool_shapes=tool_shapes)


__all__ = [
    "CAPABILITIES",
    "FORMAT",
    "NAMESPACE_SEPARATOR",
    "NO_SHAPES",
    "StreamParser",
    "StreamRenderer",
    "ToolShape",
    "ToolShapes",
    "parse_error",
    "parse_request",
    "parse_response",
    "render_error",
    "render_request",
    "render_response",
    "request_path",
    "stream_parser",
    "stream_renderer",
    "tool_shapes",
]
