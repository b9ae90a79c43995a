"""Server-sent events framing: a sans-IO decoder, an encoder and an async adapter.

Lines and fields follow the WHATWG event-stream rules; ``[DONE]`` and other payload meanings are left
to the format modules. See: https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest line (terminator excluded) a decoder accepts before it raises ``ValueError``."""

_EOL = re.compile(rb"\r\n|\r|\n")
_TEXT_EOL = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True, kw_only=True)
class SSEEvent:
    """One dispatched server-sent event."""

    event: str = "message"
    """The event type; ``message`` when the block had no (or an empty) ``event`` field."""
    data: str
    r"""The event's ``data`` lines joined with ``\n``."""
    id: str | None = None
    """The last event ID seen on the stream so far (it persists across events, as the spec says)."""
    retry: int | None = None
    """The reconnection time in milliseconds, if this event's block carried a valid ``retry`` field."""


class SSEDecoder:
    r"""Bytes → :class:`SSEEvent`. Sans-IO: ``feed()`` per chunk, ``finish()`` at end of stream.

    Chunks may split anywhere: inside a UTF-8 character, between ``\r`` and ``\n``, or mid-field.
    Lines are split as bytes and decoded whole, so only genuinely invalid UTF-8 becomes U+FFFD.

    At end of stream the spec discards an event that was not closed by a blank line; ``finish()``
    does the same and sets :attr:`is_truncated` so callers can report a cut-off upstream.
    """

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._max_line_bytes = max_line_bytes
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._skip_lf = False
        self._at_stream_start = True
        self._is_truncated = False
        self._event_type = ""
        self._data: list[str] = []
        self._retry: int | None = None
        self._has_fields = False
        self._last_id: str | None = None

    @property
    def is_truncated(self) -> bool:
        """Whether the last ``finish()`` discarded an unterminated line or an undispatched event."""
        return self._is_truncated

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume a chunk; return the events it completed.

        Raises:
            ValueError: a line grew past ``max_line_bytes``.
        """
        events: list[SSEEvent] = []
        for line in self._split_lines(bytes(chunk)):
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[SSEEvent]:
        """End the stream. Always returns ``[]``: an event without its closing blank line is discarded."""
        self._is_truncated = bool(self._pending) or self._has_fields
        self._pending.clear()
        self._pending_bytes = 0
        self._skip_lf = False
        self._reset_event()
        return []

    def _split_lines(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []  # an empty read says nothing, not even that a pending "\r" stood alone
        if self._skip_lf:
            # The previous chunk ended in "\r"; a "\n" here completes that "\r\n", not a new line.
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        lines: list[bytes] = []
        start = 0
        for match in _EOL.finditer(chunk):
            line = chunk[start : match.start()]
            if self._pending:
                line = b"".join([*self._pending, line])
                self._pending.clear()
                self._pending_bytes = 0
            self._check_length(len(line))
            lines.append(line)
            start = match.end()
        rest = chunk[start:]
        if rest:
            self._pending.append(rest)
            self._pending_bytes += len(rest)
            self._check_length(self._pending_bytes)
        self._skip_lf = chunk.endswith(b"\r")
        return lines

    def _check_length(self, size: int) -> None:
        if size > self._max_line_bytes:
            raise ValueError(f"SSE line exceeds {self._max_line_bytes} bytes")

    def _process_line(self, raw: bytes) -> SSEEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if self._at_stream_start:
            self._at_stream_start = False
            line = line.removeprefix(_BOM)
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        self._has_fields = True
        value = value.removeprefix(" ")
        if name == "event":
            self._event_type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        # The spec dispatches only when a data field was seen; a block of bare event/id/retry is dropped.
        event = None
        if self._data:
            event = SSEEvent(
                data="\n".join(self._data),
                event=self._event_type or "message",
                id=self._last_id,
                retry=self._retry,
            )
        self._reset_event()
        return event

    def _reset_event(self) -> None:
        self._event_type = ""
        self._data = []
        self._retry = None
        self._has_fields = False


def encode_event(data: str | bytes, *, event: str | None = None, id: str | None = None) -> bytes:
    r"""Frame one event: optional ``event:`` and ``id:`` lines, one ``data:`` line per data line, a blank line.

    SSE cannot carry a carriage return inside data, so ``\r\n`` and ``\r`` in ``data`` arrive as ``\n``.

    Raises:
        ValueError: ``event`` or ``id`` contains a line break, ``id`` contains NUL, or ``data`` (as bytes)
            is not valid UTF-8.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    parts: list[str] = []
    if event is not None:
        _check_field_value("event", event)
        parts.append(f"event: {event}\n")
    if id is not None:
        _check_field_value("id", id)
        if "\0" in id:
            raise ValueError("SSE id must not contain NUL")
        parts.append(f"id: {id}\n")
    parts.extend(f"data: {line}\n" for line in _TEXT_EOL.split(text))
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def _check_field_value(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE {name} must not contain a line break")


async def aiter_events(
    chunks: AsyncIterable[bytes], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> AsyncIterator[SSEEvent]:
    """Decode an async byte stream into events, dropping an unterminated final event."""
    decoder = SSEDecoder(max_line_bytes=max_line_bytes)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    decoder.finish()  # always [] (an unterminated final event is discarded); called to close the decoder
