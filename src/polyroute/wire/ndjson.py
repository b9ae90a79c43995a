r"""Newline-delimited JSON framing (Ollama's streaming format): a sans-IO decoder, an encoder, an async adapter.

Values are separated by ``\n`` (a ``\r`` before it is JSON whitespace and so allowed); blank lines are
skipped. See: https://github.com/ndjson/ndjson-spec
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import cast

import orjson

from polyroute.types import JSONValue

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest line (terminator excluded) a decoder accepts before it raises ``ValueError``."""


class NDJSONDecoder:
    """Bytes → JSON values, one per line. Sans-IO: ``feed()`` per chunk, ``finish()`` at end of stream.

    Lines are split as bytes and parsed whole, so chunks may split anywhere, including inside a UTF-8
    character. A final line without a trailing newline is parsed by ``finish()``.
    """

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._max_line_bytes = max_line_bytes
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._line_number = 0

    def feed(self, chunk: bytes) -> list[JSONValue]:
        """Consume a chunk; return the values of the lines it completed.

        Raises:
            ValueError: a line is not valid JSON (the message names its 1-based line number), or a line
                grew past ``max_line_bytes``.
        """
        values: list[JSONValue] = []
        chunk = bytes(chunk)
        start = 0
        end = chunk.find(b"\n")
        while end != -1:
            self._parse_into(values, self._take_line(chunk[start:end]))
            start = end + 1
            end = chunk.find(b"\n", start)
        rest = chunk[start:]
        if rest:
            self._pending.append(rest)
            self._pending_bytes += len(rest)
            self._check_length(self._pending_bytes)
        return values

    def finish(self) -> list[JSONValue]:
        """End the stream; parse a final line that had no trailing newline.

        Raises:
            ValueError: that final line is not valid JSON.
        """
        values: list[JSONValue] = []
        if self._pending:
            self._parse_into(values, self._take_line(b""))
        return values

    def _take_line(self, tail: bytes) -> bytes:
        line = tail
        if self._pending:
            line = b"".join([*self._pending, tail])
            self._pending.clear()
            self._pending_bytes = 0
        self._check_length(len(line))
        return line

    def _check_length(self, size: int) -> None:
        if size > self._max_line_bytes:
            raise ValueError(f"NDJSON line {self._line_number + 1} exceeds {self._max_line_bytes} bytes")

    def _parse_into(self, values: list[JSONValue], line: bytes) -> None:
        self._line_number += 1
        if not line.strip():
            return
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON on NDJSON line {self._line_number}: {exc}") from exc
        values.append(cast(JSONValue, value))


def encode_line(value: JSONValue) -> bytes:
    r"""Serialise one value as a compact JSON line ending in ``\n``.

    Raises:
        TypeError: ``value`` is not JSON-serialisable (``orjson.JSONEncodeError``), e.g. an int beyond 64 bits.
    """
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)


async def aiter_values(
    chunks: AsyncIterable[bytes], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> AsyncIterator[JSONValue]:
    """Decode an async byte stream into JSON values, including a final line without a newline."""
    decoder = NDJSONDecoder(max_line_bytes=max_line_bytes)
    async for chunk in chunks:
        for value in decoder.feed(chunk):
            yield value
    for value in decoder.finish():
        yield value
