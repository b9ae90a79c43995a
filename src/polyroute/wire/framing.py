"""Byte-level stream parsers: a framing decoder (SSE or NDJSON) in front of a format's event parser.

Every translator's ``stream_parser()`` returns one of these, so the upstream layer feeds raw bytes and
receives canonical ``StreamEvent``s whatever the framing. Sans-IO, like the decoders and parsers inside.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from polyroute.core.events import StreamEvent
from polyroute.types import JSONValue
from polyroute.wire.ndjson import NDJSONDecoder
from polyroute.wire.sse import SSEDecoder, SSEEvent

_Item = TypeVar("_Item", contravariant=True)


class EventParser(Protocol[_Item]):
    """A format's sans-IO stream parser over one framed item (an SSE event or an NDJSON value)."""

    def feed(self, item: _Item, /) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]: ...


class SSEStreamParser:
    """Bytes → SSE events → canonical events."""

    __slots__ = ("_decoder", "_parser", "pending")

    def __init__(self, parser: EventParser[SSEEvent]) -> None:
        self._decoder = SSEDecoder()
        self._parser = parser
        self.pending: list[StreamEvent] = []
        """After ``feed`` raised: the events of that chunk that came before the failure."""

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """Consume a chunk of the upstream's bytes; the canonical events it completed.

        Raises:
            ValueError: the framing is broken (a line past the size cap).
            UpstreamError: the format's parser met an in-band error or a malformed event.
        """
        out: list[StreamEvent] = []
        try:
            for event in self._decoder.feed(chunk):
                out.extend(self._parser.feed(event))
        except BaseException:
            self.pending = out
            raise
        return out

    def finish(self) -> list[StreamEvent]:
        """End of the upstream's bytes; whatever the parser still holds."""
        self._decoder.finish()
        return self._parser.finish()


class NDJSONStreamParser:
    """Bytes → JSON lines → canonical events."""

    __slots__ = ("_decoder", "_parser", "pending")

    def __init__(self, parser: EventParser[JSONValue]) -> None:
        self._decoder = NDJSONDecoder()
        self._parser = parser
        self.pending: list[StreamEvent] = []
        """After ``feed`` raised: the events of that chunk that came before the failure."""

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """Consume a chunk of the upstream's bytes; the canonical events it completed.

        Raises:
            ValueError: a line is not JSON or is past the size cap.
            UpstreamError: the format's parser met an in-band error or a malformed value.
        """
        out: list[StreamEvent] = []
        try:
            for value in self._decoder.feed(chunk):
                out.extend(self._parser.feed(value))
        except BaseException:
            self.pending = out
            raise
        return out

    def finish(self) -> list[StreamEvent]:
        """End of the upstream's bytes: a last unterminated line is parsed, then the parser finishes."""
        out: list[StreamEvent] = []
        for value in self._decoder.finish():
            out.extend(self._parser.feed(value))
        out.extend(self._parser.finish())
        return out
