"""Reading an audio upload: the multipart body parsed as it arrives, the file spooled once, the size capped.

The file's bytes stay in memory up to ``SPOOL_BYTES`` and then go to an anonymous temporary file (written
in 1 MiB blocks off the event loop), so an upload is never held whole in memory, let alone twice. The
limit is enforced while reading: a declared ``Content-Length`` over it is refused before any byte is read.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO

from starlette.types import Receive, Scope

from polyroute.api.responses import ClientDisconnectedError
from polyroute.errors import InvalidRequestError, PayloadTooLargeError
from polyroute.wire.audio import SNIFF_BYTES
from polyroute.wire.multipart import MultipartParser, PartData, PartEnd, PartStart, boundary_of

SPOOL_BYTES = 1024 * 1024
"""Bytes of a file kept in memory before it moves to a temporary file; also the size of each disk write."""
READ_BYTES = 256 * 1024
"""Bytes per piece when the file is sent on."""
FORM_OVERHEAD_BYTES = 1024 * 1024
"""What the form may add to the file's size: boundaries, part headers, text fields."""
MAX_FIELD_BYTES = 64 * 1024
"""Largest text field (a prompt, say)."""
MAX_PARTS = 64


class AudioUpload:
    """An uploaded file: its start (for sniffing), its size, and its bytes readable any number of times."""

    __slots__ = ("_file", "_memory", "_pending", "content_type", "filename", "head", "size")

    def __init__(self, *, filename: str | None, content_type: str | None) -> None:
        self.filename = filename
        self.content_type = content_type
        self.head = b""
        """The first ``SNIFF_BYTES`` (or all, when shorter)."""
        self.size = 0
        self._memory = bytearray()
        self._pending = bytearray()
        self._file: IO[bytes] | None = None

    async def write(self, data: bytes) -> None:
        """Append ``data``; past ``SPOOL_BYTES`` the file moves to disk."""
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
        self.size += len(data)
        if self._file is None:
            self._memory += data
            if len(self._memory) > SPOOL_BYTES:
                self._file = await asyncio.to_thread(tempfile.TemporaryFile)
                self._pending, self._memory = self._memory, bytearray()
        else:
            self._pending += data
        if len(self._pending) >= SPOOL_BYTES:
            await self._flush()

    async def finish(self) -> None:
        """Write out what is still pending (call once the upload is complete)."""
        if self._pending:
            await self._flush()

    async def _flush(self) -> None:
        block, self._pending = bytes(self._pending), bytearray()
        assert self._file is not None
        await asyncio.to_thread(_write_through, self._file, block)

    @property
    def is_spooled(self) -> bool:
        """Whether the bytes are in a temporary file (rather than memory)."""
        return self._file is not None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes from the start, in pieces (positional reads: several readers may run at once)."""
        if self._file is None:
            view = memoryview(self._memory)
            for start in range(0, len(view), READ_BYTES):
                yield bytes(view[start : start + READ_BYTES])
            return
        descriptor = self._file.fileno()
        for start in range(0, self.size, READ_BYTES):
            yield await asyncio.to_thread(os.pread, descriptor, READ_BYTES, start)

    def close(self) -> None:
        """Free the memory and delete the temporary file."""
        self._memory = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None


def _write_through(file: IO[bytes], block: bytes) -> None:
    file.write(block)
    file.flush()  # positional reads go to the descriptor, past Python's buffer


@dataclass(slots=True)
class AudioForm:
    """A parsed form: its text fields in order, and its file (None when the form had none)."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    file: AudioUpload | None = None


def _too_large(max_file_bytes: int) -> PayloadTooLargeError:
    mib = f" ({max_file_bytes / (1024 * 1024):g} MiB)" if max_file_bytes >= 1024 * 1024 else ""
    return PayloadTooLargeError(f"file: larger than the limit of {max_file_bytes} bytes{mib}")


def _content_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1"))
    return ""


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


async def read_audio_form(scope: Scope, receive: Receive, *, max_file_bytes: int) -> AudioForm:
    """Parse the request's multipart form as it arrives, spooling its ``file``.

    Raises:
        InvalidRequestError: not a multipart form, a malformed one, or an unexpected part.
        PayloadTooLargeError: the file (or the whole body) is over the limit.
        ClientDisconnectedError: the client left mid-body.
    """
    parser = MultipartParser(boundary_of(_content_type(scope)))
    max_body = max_file_bytes + FORM_OVERHEAD_BYTES
    declared = _declared_length(scope)
    if declared is not None and declared > max_body:
        raise _too_large(max_file_bytes)
    reader = _FormReader(max_file_bytes)
    try:
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnectedError
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > max_body:
                raise _too_large(max_file_bytes)
            if chunk:
                await reader.handle(parser.feed(chunk))
            if not message.get("more_body", False):
                break
        parser.close()
        if reader.form.file is not None:
            await reader.form.file.finish()
    except BaseException:
        if reader.form.file is not None:
            reader.form.file.close()
        raise
    return reader.form


class _FormReader:
    """Folds part events into an ``AudioForm``."""

    __slots__ = ("_field", "_file", "_max_file_bytes", "_name", "_parts", "form")

    def __init__(self, max_file_bytes: int) -> None:
        self._max_file_bytes = max_file_bytes
        self.form = AudioForm()
        self._name = ""
        self._field = bytearray()
        self._file: AudioUpload | None = None
        """The upload while its part is being read; None in a text field."""
        self._parts = 0

    async def handle(self, events: list[PartStart | PartData | PartEnd]) -> None:
        for event in events:
            if isinstance(event, PartData):
                await self._data(event.data)
            elif isinstance(event, PartStart):
                self._start(event)
            else:
                self._end()

    def _start(self, part: PartStart) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequestError(f"the form has more than {MAX_PARTS} parts")
        self._name = part.name
        if part.name == "file":
            if self.form.file is not None:
                raise InvalidRequestError("file: only one file may be sent", param="file")
            self._file = self.form.file = AudioUpload(filename=part.filename, content_type=part.content_type)
        elif part.filename is not None:
            raise InvalidRequestError(f"{part.name[:64]}: unexpected file field; send the audio as file", param="file")
        else:
            self._field = bytearray()

    async def _data(self, data: bytes) -> None:
        if self._file is not None:
            if self._file.size + len(data) > self._max_file_bytes:
                raise _too_large(self._max_file_bytes)
            await self._file.write(data)
            return
        self._field += data
        if len(self._field) > MAX_FIELD_BYTES:
            raise InvalidRequestError(f"{self._name[:64]}: longer than {MAX_FIELD_BYTES} bytes", param=self._name)

    def _end(self) -> None:
        if self._file is None:
            try:
                value = self._field.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequestError(f"{self._name[:64]}: not valid UTF-8", param=self._name) from None
            self.form.fields.append((self._name, value))
        self._file = None
