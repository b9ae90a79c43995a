"""Ollama native chat API (``POST /api/chat``) <-> canonical form, with NDJSON streams.

Pure translation: no I/O, no clock. Spec: https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
Mapping tables, generated ids and known gaps: docs/formats/ollama.md.
"""

from __future__ import annotations

from polyroute.wire.ollama.errors import parse_error, render_error
from polyroute.wire.ollama.request import parse_request, render_request
from polyroute.wire.ollama.response import parse_response, render_response
from polyroute.wire.ollama.stream import StreamParser, StreamRenderer

__all__ = [
    "StreamParser",
    "StreamRenderer",
    "parse_error",
    "parse_request",
    "parse_response",
    "render_error",
    "render_request",
    "render_response",
]
