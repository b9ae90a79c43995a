"""OpenAI Chat Completions (``POST /v1/chat/completions``) <-> canonical form, and the relay helpers.

Pure translation: no I/O, no clock. Spec: https://platform.openai.com/docs/api-reference/chat
Split along the translator seam (STYLE §14): request, response, stream, errors; ``relay`` holds what
the byte-for-byte same-format path needs (usage, the answering model, whether a stream finished).
"""

from __future__ import annotations

from typing import Final

from polyroute.wire import WireFormat
from polyroute.wire import capabilities as cap
from polyroute.wire.framing import SSEStreamParser
from polyroute.wire.openai_chat.errors import parse_error, render_error, render_stream_error
from polyroute.wire.openai_chat.relay import StreamTap, drop_usage_chunk, has_content, parse_usage
from polyroute.wire.openai_chat.request import parse_request, render_request
from polyroute.wire.openai_chat.response import parse_response, render_response
from polyroute.wire.openai_chat.stream import StreamParser, StreamRenderer

FORMAT: Final = WireFormat.OPENAI
CAPABILITIES: Final = frozenset(
    {
        cap.TEMPERATURE,
        cap.TOP_P,
        cap.STOP,
        cap.JSON_OBJECT,
        cap.JSON_SCHEMA,
        cap.TOOL_CHOICE_NONE,
        cap.TOOL_CHOICE_REQUIRED,
        cap.TOOL_CHOICE_TOOL,
        cap.PARALLEL_TOOL_CALLS,
        cap.REASONING_EFFORT,
        cap.USER_ID,
        cap.IMAGE_URL,
    }
)


def request_path(model: str, *, stream: bool) -> str:
    """Chat Completions takes the model in the body; ``base_url`` already ends in ``/v1``."""
    del model, stream
    return "/chat/completions"


def stream_parser(*, provider: str) -> SSEStreamParser:
    """A byte-level parser for one Chat Completions SSE stream."""
    return SSEStreamParser(StreamParser(provider=provider))


def stream_renderer(*, now_s: int) -> StreamRenderer:
    """A renderer for one Chat Completions SSE stream to a client; ``now_s`` fills ``created`` if unknown."""
    return StreamRenderer(now_s=now_s)


__all__ = [
    "CAPABILITIES",
    "FORMAT",
    "StreamParser",
    "StreamRenderer",
    "StreamTap",
    "has_content",
    "drop_usage_chunk",
    "parse_error",
    "parse_request",
    "parse_response",
    "parse_usage",
    "render_error",
    "render_request",
    "render_response",
    "render_stream_error",
    "request_path",
    "stream_parser",
    "stream_renderer",
]
