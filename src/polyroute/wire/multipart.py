"""A sans-IO ``multipart/form-data`` parser: body bytes in as they arrive, part events out.

Only what could be the start of a boundary is held back, so a part's data flows through in pieces and
is never buffered whole. Part headers are capped in size. The preamble and epilogue are ignored.
See: https://www.rfc-editor.org/rfc/rfc7578 and https://www.rfc-editor.org/rfc/rfc2046#section-5.1.1
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from polyroute.errors import InvalidRequestError

MAX_HEADER_BYTES = 16 * 1024
"""Largest header block of one part."""
_MAX_BOUNDARY_LINE = 1024
_BOUNDARY = re.compile(r"""boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))""", re.IGNORECASE)
_PARAM = re.compile(r""";\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)""")


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part begins; its data follows in ``PartData`` events until ``PartEnd``."""

    name: str
    """The form field's name (``Content-Disposition: form-data; name=...``)."""
    filename: str | None
    """The file name, for a file field; None for a plain field."""
    content_type: str | None
    """The part's ``Content-Type``, lower-cased and without parameters; None when not given."""


@dataclass(frozen=True, slots=True)
class PartData:
    """A piece of the current part's data."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part is complete."""


PartEvent = PartStart | PartData | PartEnd


class _State(Enum):
    PREAMBLE = "preamble"
    AFTER_BOUNDARY = "after_boundary"
    HEADERS = "headers"
    BODY = "body"
    DONE = "done"


def _bad(detail: str) -> InvalidRequestError:
    return InvalidRequestError(f"request body is not valid multipart/form-data: {detail}")


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type.

    Raises:
        InvalidRequestError: another content type, or no usable boundary.
    """
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise InvalidRequestError(
            f"expected a multipart/form-data body, not {media_type or 'one without a content type'}"
        )
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise _bad("the content type has no boundary")
    return (match.group(1) or match.group(2)).encode("latin-1")


class MultipartParser:
    """Bytes of a ``multipart/form-data`` body → ``PartStart``, ``PartData``…, ``PartEnd`` per part."""

    __slots__ = ("_buffer", "_delimiter", "_first", "_max_header_bytes", "_state")

    def __init__(self, boundary: bytes, *, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self._first = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._max_header_bytes = max_header_bytes
        self._buffer = bytearray()
        self._state = _State.PREAMBLE

    @property
    def is_done(self) -> bool:
        """Whether the closing boundary has been read."""
        return self._state is _State.DONE

    def feed(self, data: bytes) -> list[PartEvent]:
        """The events that ``data`` completes.

        Raises:
            InvalidRequestError: the body is malformed (the message says how).
        """
        if self._state is _State.DONE:
            return []
        self._buffer += data
        events: list[PartEvent] = []
        while self._step(events):
            pass
        return events

    def close(self) -> None:
        """Check that the body ended after its closing boundary.

        Raises:
            InvalidRequestError: the body ended early.
        """
        if self._state is not _State.DONE:
            raise _bad("the body ended before the closing boundary")

    def _step(self, events: list[PartEvent]) -> bool:
        """Advance by one state if the buffer allows it; False when more bytes are needed."""
        state = self._state
        if state is _State.BODY:
            return self._body(events)
        if state is _State.HEADERS:
            return self._headers(events)
        if state is _State.AFTER_BOUNDARY:
            return self._after_boundary()
        return self._preamble()  # DONE never steps: feed() returns first, and reaching it stops the loop

    def _preamble(self) -> bool:
        buffer = self._buffer
        found = buffer.find(self._first)
        if found < 0:
            # Only a partial boundary at the end can matter; the rest of the preamble is dropped.
            del buffer[: max(0, len(buffer) - len(self._first) + 1)]
            return False
        del buffer[: found + len(self._first)]
        self._state = _State.AFTER_BOUNDARY
        return True

    def _after_boundary(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer.startswith(b"--"):
            self._state = _State.DONE
            buffer.clear()
            return False
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > _MAX_BOUNDARY_LINE:
                raise _bad("a boundary line does not end")
            return False
        # RFC 2046 allows linear whitespace (transport padding) after a boundary.
        if buffer[:end].strip(b" \t"):
            raise _bad("unexpected bytes after a boundary")
        del buffer[: end + 2]
        self._state = _State.HEADERS
        return True

    def _headers(self, events: list[PartEvent]) -> bool:
        buffer = self._buffer
        if buffer.startswith(b"\r\n"):
            end, skip = 0, 2
        else:
            end, skip = buffer.find(b"\r\n\r\n"), 4
            if end < 0:
                if len(buffer) > self._max_header_bytes:
                    raise _bad(f"a part's headers are larger than {self._max_header_bytes} bytes")
                return False
        if end > self._max_header_bytes:
            raise _bad(f"a part's headers are larger than {self._max_header_bytes} bytes")
        block = bytes(buffer[:end])
        del buffer[: end + skip]
        events.append(_part_start(block))
        self._state = _State.BODY
        return True

    def _body(self, events: list[PartEvent]) -> bool:
        buffer = self._buffer
        found = buffer.find(self._delimiter)
        if found < 0:
            keep = len(self._delimiter) - 1
            if len(buffer) > keep:
                events.append(PartData(bytes(buffer[:-keep])))
                del buffer[:-keep]
            return False
        if found:
            events.append(PartData(bytes(buffer[:found])))
        del buffer[: found + len(self._delimiter)]
        events.append(PartEnd())
        self._state = _State.AFTER_BOUNDARY
        return True


def _part_start(block: bytes) -> PartStart:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("a part's headers are not UTF-8") from None
    headers: dict[str, str] = {}
    for line in text.split("\r\n") if text else ():
        name, colon, value = line.partition(":")
        if not colon:
            raise _bad(f"malformed part header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise _bad("a part has no Content-Disposition header")
    if disposition.partition(";")[0].strip().lower() != "form-data":
        raise _bad("a part's Content-Disposition is not form-data")
    params = _params(disposition)
    field_name = params.get("name")
    if field_name is None:
        raise _bad("a part has no name")
    filename = params.get("filename*") or params.get("filename")
    content_type = headers.get("content-type")
    media_type = content_type.partition(";")[0].strip().lower() if content_type else None
    return PartStart(name=field_name, filename=filename, content_type=media_type or None)


def _params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for match in _PARAM.finditer(value):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key.endswith("*"):
            # RFC 5987: charset'language'percent-encoded (RFC 7578 §4.2 discourages it; some clients send it).
            charset, _, rest = raw.partition("'")
            try:
                raw = unquote(rest.partition("'")[2], encoding=charset or "utf-8", errors="replace")
            except LookupError:
                raise _bad(f"unknown charset {charset[:40]!r} in {key}") from None
        params.setdefault(key, raw)
    return params
