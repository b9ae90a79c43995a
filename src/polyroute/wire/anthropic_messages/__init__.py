"""Anthropic Messages API (``POST /v1/messages``) <-> canonical form.

Pure translation: no I/O, no settings, no clock. Spec: https://docs.anthropic.com/en/api/messages
Split along the translator seam (STYLE §14): request, response, stream, errors.
"""

from __future__ import annotations

from polyroute.wire.anthropic_messages.errors import parse_error, render_error
from polyroute.wire.anthropic_messages.request import parse_request, render_request
from polyroute.wire.anthropic_messages.response import parse_response, render_response
from polyroute.wire.anthropic_messages.stream import StreamParser, StreamRenderer

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
