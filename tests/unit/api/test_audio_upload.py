"""Reading an audio upload from ASGI messages: spooling, limits while reading, malformed and hostile forms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from polyroute.api import audio_upload
from polyroute.api.audio_upload import AudioForm, AudioUpload, read_audio_form
from polyroute.api.responses import ClientDisconnectedError
from polyroute.errors import InvalidRequestError, PayloadTooLargeError

BOUNDARY = "UnitBoundary"


def multipart(fields: Sequence[tuple[str, str]] = (("model", "whisper-1"),), file: bytes | None = b"RIFF") -> bytes:
    body = b""
    for name, value in fields:
        body += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode()
        body += b"\r\n"
    if file is not None:
        body += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'.encode()
        body += b"Content-Type: audio/wav\r\n\r\n" + file + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def scope(*, length: int | None = None, content_type: str | None = None) -> dict[str, Any]:
    headers = [(b"content-type", (content_type or f"multipart/form-data; boundary={BOUNDARY}").encode())]
    if content_type == "":
        headers = []
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "headers": headers}


def receiver(body: bytes, *, piece: int = 1000, disconnect_after: int | None = None) -> Any:
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)] or [b""]
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if disconnect_after is not None and sent >= disconnect_after:
            return {"type": "http.disconnect"}
        index = sent
        sent += 1
        return {"type": "http.request", "body": pieces[index], "more_body": index + 1 < len(pieces)}

    return receive


async def read(body: bytes, *, max_file_bytes: int = 10_000_000, **options: Any) -> AudioForm:
    return await read_audio_form(scope(), receiver(body, **options), max_file_bytes=max_file_bytes)


async def all_bytes(upload: AudioUpload) -> bytes:
    return b"".join([chunk async for chunk in upload.chunks()])


async def test_form_fields_and_small_file_stay_in_memory() -> None:
    data = bytes(range(256)) * 20
    form = await read(multipart((("model", "whisper-1"), ("prompt", "héllo")), data), piece=7)

    assert form.fields == [("model", "whisper-1"), ("prompt", "héllo")]
    assert form.file is not None
    assert (form.file.filename, form.file.content_type, form.file.size) == ("a.wav", "audio/wav", len(data))
    assert form.file.head == data[:4096]
    assert not form.file.is_spooled
    assert await all_bytes(form.file) == data
    form.file.close()


async def test_large_file_is_spooled_and_can_be_read_twice_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_upload, "SPOOL_BYTES", 4096)
    monkeypatch.setattr(audio_upload, "READ_BYTES", 1000)
    data = bytes(range(251)) * 100
    form = await read(multipart(file=data), piece=333)

    assert form.file is not None and form.file.is_spooled
    first, second = form.file.chunks(), form.file.chunks()
    a = [await anext(first), await anext(second), await anext(first)]
    assert a[0] == a[1] == data[:1000] and a[2] == data[1000:2000]
    assert await all_bytes(form.file) == data
    form.file.close()
    form.file.close()


async def test_form_without_a_file() -> None:
    form = await read(multipart(file=None))

    assert form.file is None and form.fields == [("model", "whisper-1")]


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    with pytest.raises(PayloadTooLargeError, match="file: larger than the limit of 1000 bytes$"):
        await read_audio_form(scope(length=1000 + 1024 * 1024 + 1), receive, max_file_bytes=1000)


async def test_file_over_the_limit_is_refused_while_reading() -> None:
    with pytest.raises(PayloadTooLargeError, match="limit of 2097152 bytes \\(2 MiB\\)"):
        await read(multipart(file=bytes(2 * 1024 * 1024 + 1)), max_file_bytes=2 * 1024 * 1024, piece=65536)


async def test_body_over_the_limit_is_refused_even_without_a_file() -> None:
    body = multipart(file=None) + bytes(1024 * 1024 + 10)
    with pytest.raises(PayloadTooLargeError):
        await read(body, max_file_bytes=10, piece=65536)


async def test_client_leaving_mid_body() -> None:
    with pytest.raises(ClientDisconnectedError):
        await read(multipart(file=bytes(5000)), piece=1000, disconnect_after=2)


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (multipart([("f", "x")] * (audio_upload.MAX_PARTS + 1), None), "more than 64 parts"),
        (multipart([("prompt", "x" * (audio_upload.MAX_FIELD_BYTES + 1))], None), "prompt: longer than 65536 bytes"),
        (multipart([("prompt", "ok")], None).replace(b"ok", b"\xff\xfe"), "prompt: not valid UTF-8"),
        (multipart().replace(b'name="file"', b'name="audio"'), "audio: unexpected file field"),
        (multipart()[: -len(f"--{BOUNDARY}--\r\n")] + multipart(fields=()), "file: only one file may be sent"),
    ],
    ids=["parts", "long-field", "utf8", "other-file-field", "two-files"],
)
async def test_hostile_forms_are_refused(body: bytes, phrase: str) -> None:
    with pytest.raises(InvalidRequestError, match=phrase):
        await read(body)


async def test_missing_content_type_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="not one without a content type"):
        await read_audio_form(scope(content_type=""), receiver(b""), max_file_bytes=10)
