r"""``streamGenerateContent`` without ``alt=sse``: the same chunks, streamed as one JSON array.

The Gemini API streams ``[{...},\r\n{...}]`` when SSE is not asked for; this wraps the SSE renderer
and reframes each of its events as an array element (sans-IO).
"""

from __future__ import annotations

from polyroute.core.events import StreamEvent
from polyroute.errors import GatewayError
from polyroute.wire.gemini.stream import StreamRenderer

_PREFIX = b"data: "
_SEPARATOR = b",\r\n"


class JSONArrayStreamRenderer:
    """Canonical ``StreamEvent``s -> Gemini's JSON-array stream bytes."""

    __slots__ = ("_inner", "_is_open")

    def __init__(self) -> None:
        self._inner = StreamRenderer()
        self._is_open = False

    def _element(self, frame: bytes) -> bytes:
        data = frame.removeprefix(_PREFIX).rstrip(b"\r\n")
        lead = _SEPARATOR if self._is_open else b"["
        self._is_open = True
        return lead + data

    def feed(self, event: StreamEvent) -> list[bytes]:
        """Translate one canonical event into zero or more array elements."""
        return [self._element(frame) for frame in self._inner.feed(event)]

    def finish(self) -> list[bytes]:
        """Close the array (an empty stream is ``[]``)."""
        elements = [self._element(frame) for frame in self._inner.finish()]
        return [*elements, b"]" if self._is_open else b"[]"]

    def error(self, err: GatewayError) -> bytes:
        """The error as the array's last element, and the array closed."""
        return self._element(self._inner.error(err)) + b"]"
