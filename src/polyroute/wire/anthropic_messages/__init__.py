"""Anthropic Messages API (``POST /v1/messages``) <-> canonical form.

Pure translation: no I/O, no settings, no clock. Spec: https://docs.anthropic.com/en/api/messages
Split along the translator seam (STYLE §14): request, response, stream, errors.
"""

from __future__ import annotations

from typing import Final

from polyroute.wire import WireFormat
from polyroute.wire import capabilities as cap
from polyroute.wire.anthropic_messages.errors import parse_error, render_error
from polyroute.wire.anthropic_messages.request import parse_request, render_request
from polyroute.wire.anthropic_messages.response import parse_response, render_response
from polyroute.wire.anthropic_messages.stream import StreamParser, StreamRenderer
from polyroute.wire.framing import SSEStreamParser

FORMAT: Final = WireFormat.ANTHROPIC
CAPABILITIES: Final = frozenset(
    {
        cap.TEMPERATURE,
        cap.TOP_P,
        cap.TOP_K,
        cap.STOP,
        cap.JSON_SCHEMA,
        cap.REASONING_EFFORT,
        cap.TOOL_CHOICE_NONE,
        cap.TOOL_CHOICE_REQUIRED,
        cap.TOOL_CHOICE_TOOL,
        cap.PARALLEL_TOOL_CALLS,
        cap.REASONING_BUDGET,
        cap.USER_ID,
        cap.IMAGE_URL,
        cap.TOOL_RESULT_IMAGES,
    }
)


def request_path(model: str, *, stream: bool) -> str:
    """Anthropic takes the model in the body and one path for both kinds of answer."""
    del model, stream
    return "/v1/messages"


def stream_parser(*, provider: str) -> SSEStreamParser:
    """A byte-level parser for one Anthropic SSE stream."""
    return SSEStreamParser(StreamParser(provider=provider))


def stream_renderer(*, now_s: int) -> StreamRenderer:
    """A renderer for one Anthropic SSE stream to a client (which carries no creation time)."""
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
