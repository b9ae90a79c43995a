"""Gemini API (``:generateContent`` / ``:streamGenerateContent?alt=sse``) <-> canonical form.

Pure translation: no I/O. Spec: https://ai.google.dev/api/generate-content — notes in docs/formats/gemini.md.
Split along the STYLE §14 seam: ``request``, ``response``, ``stream``, ``errors`` (plus shared ``parts``, ``types``).
"""

from __future__ import annotations

from polyroute.wire.gemini.errors import parse_error, render_error
from polyroute.wire.gemini.request import parse_request, render_request
from polyroute.wire.gemini.response import parse_response, render_response
from polyroute.wire.gemini.stream import StreamParser, StreamRenderer

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
