"""The sans-IO multipart/form-data parser: events at any chunking, headers and parameters, malformed bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.errors import InvalidRequestError
from polyroute.wire.multipart import MultipartParser, PartData, PartEnd, PartEvent, PartStart, boundary_of

BOUNDARY = b"----formdata-polyroute-7f3a"
FILE = bytes(range(256)) * 4 + b"\r\n--not-the-boundary\r\n" + b"\r\n------formdata-polyroute-7f3"


def form(*parts: tuple[str, bytes], preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    body = preamble
    for headers, data in parts:
        body += b"--" + BOUNDARY + b"\r\n" + headers.encode() + b"\r\n\r\n" + data + b"\r\n"
    return body + b"--" + BOUNDARY + b"--\r\n" + epilogue


BODY = form(
    ('Content-Disposition: form-data; name="model"', b"whisper-1"),
    ('Content-Disposition: form-data; name="file"; filename="a b.wav"\r\nContent-Type: Audio/WAV; rate=16000', FILE),
    ('Content-Disposition: form-data; name="prompt"', b""),
)


def collapse(events: list[PartEvent]) -> list[tuple[PartStart, bytes]]:
    """Parts with their data joined (data events may be split anywhere)."""
    parts: list[tuple[PartStart, bytes]] = []
    current: PartStart | None = None
    data = b""
    for event in events:
        if isinstance(event, PartStart):
            current, data = event, b""
        elif isinstance(event, PartData):
            assert event.data
            data += event.data
        else:
            assert isinstance(event, PartEnd) and current is not None
            parts.append((current, data))
            current = None
    return parts


def parse(body: bytes, sizes: list[int] | None = None) -> list[tuple[PartStart, bytes]]:
    parser = MultipartParser(BOUNDARY)
    events: list[PartEvent] = []
    position = 0
    for size in sizes or [len(body)]:
        events += parser.feed(body[position : position + size])
        position += size
    events += parser.feed(body[position:])
    parser.close()
    assert parser.is_done
    return collapse(events)


EXPECTED = [
    (PartStart(name="model", filename=None, content_type=None), b"whisper-1"),
    (PartStart(name="file", filename="a b.wav", content_type="audio/wav"), FILE),
    (PartStart(name="prompt", filename=None, content_type=None), b""),
]


def test_parser_reads_fields_and_a_file_in_one_piece() -> None:
    assert parse(BODY) == EXPECTED


def test_parser_reads_byte_by_byte() -> None:
    assert parse(BODY, [1] * len(BODY)) == EXPECTED


@given(st.lists(st.integers(min_value=1, max_value=97), max_size=60))
def test_parser_gives_the_same_parts_at_any_chunking(sizes: list[int]) -> None:
    assert parse(BODY, sizes) == EXPECTED


def test_parser_streams_file_data_before_the_part_ends() -> None:
    parser = MultipartParser(BOUNDARY)
    head = BODY[: BODY.index(FILE) + 600]
    events = parser.feed(head)

    data = b"".join(e.data for e in events if isinstance(e, PartData))
    assert data.endswith(FILE[: 600 - len(b"\r\n--" + BOUNDARY) + 1])
    assert not parser.is_done


def test_parser_ignores_preamble_epilogue_and_transport_padding() -> None:
    body = form(('Content-Disposition: form-data; name="a"', b"1"), preamble=b"ignore me\r\n", epilogue=b"trailing")
    body = body.replace(b"--" + BOUNDARY + b"\r\n", b"--" + BOUNDARY + b" \t \r\n", 1)
    parser = MultipartParser(BOUNDARY)
    events = [event for byte in range(len(body)) for event in parser.feed(body[byte : byte + 1])]

    assert collapse(events) == [(PartStart(name="a", filename=None, content_type=None), b"1")]
    assert parser.feed(b"more epilogue") == []


def test_parser_long_preamble_fed_in_pieces() -> None:
    body = b"x" * 5000 + form(('Content-Disposition: form-data; name="a"', b"1"))

    assert parse(body, [700] * 10) == [(PartStart(name="a", filename=None, content_type=None), b"1")]


@pytest.mark.parametrize(
    ("disposition", "name", "filename"),
    [
        ('form-data; name="file"; filename="say \\"hi\\".wav"', "file", 'say "hi".wav'),
        ("form-data; name=file; filename=plain.wav", "file", "plain.wav"),
        ("form-data; name=\"f\"; filename*=UTF-8''%C3%A9t%C3%A9.wav", "f", "été.wav"),
        ('FORM-DATA; NAME="x"', "x", None),
    ],
    ids=["escaped-quotes", "token-values", "rfc5987", "case"],
)
def test_parser_reads_disposition_parameters(disposition: str, name: str, filename: str | None) -> None:
    [(start, _)] = parse(form((f"Content-Disposition: {disposition}", b"")))

    assert (start.name, start.filename) == (name, filename)


def test_parser_part_with_no_headers_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="no Content-Disposition"):
        parse(b"--" + BOUNDARY + b"\r\n\r\ndata\r\n--" + BOUNDARY + b"--")


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (form(("Content-Type: text/plain", b"x")), "no Content-Disposition"),
        (form(('Content-Disposition: attachment; name="a"', b"x")), "is not form-data"),
        (form(("Content-Disposition: form-data", b"x")), "has no name"),
        (form(("no colon here", b"x")), "malformed part header line"),
        (form(('Content-Disposition: form-data; name="\xff"', b"x")).replace(b"\xc3\xbf", b"\xff"), "not UTF-8"),
        (form(("Content-Disposition: form-data; name=a; filename*=nope''%41", b"")), "unknown charset"),
        (b"--" + BOUNDARY + b"garbage\r\n", "unexpected bytes after a boundary"),
        (b"--" + BOUNDARY + b"x" * 2000, "a boundary line does not end"),
        (b"--" + BOUNDARY + b"\r\n" + b"X-Long: " + b"y" * 20000, "headers are larger than"),
        (b"--" + BOUNDARY + b"\r\n" + b"X-Long: " + b"y" * 20000 + b"\r\n\r\n", "headers are larger than"),
    ],
    ids=[
        "no-disposition",
        "attachment",
        "no-name",
        "no-colon",
        "not-utf8",
        "charset",
        "after-boundary",
        "endless-boundary-line",
        "endless-headers",
        "huge-headers",
    ],
)
def test_parser_refuses_malformed_bodies(body: bytes, phrase: str) -> None:
    with pytest.raises(InvalidRequestError, match=phrase):
        parse(body)


@pytest.mark.parametrize(
    "body",
    [b"", b"no boundary at all", b"--" + BOUNDARY + b"\r\n", BODY[:-20]],
    ids=["empty", "preamble-only", "headers-pending", "cut"],
)
def test_parser_close_refuses_a_body_that_ended_early(body: bytes) -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(body)

    with pytest.raises(InvalidRequestError, match="ended before the closing boundary"):
        parser.close()


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=abc123", b"abc123"),
        ('Multipart/Form-Data; charset=utf-8; boundary="a b:c"', b"a b:c"),
        ("multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxk", b"----WebKitFormBoundary7MA4YWxk"),
    ],
)
def test_boundary_of_reads_the_boundary(content_type: str, boundary: bytes) -> None:
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize(
    ("content_type", "phrase"),
    [
        ("application/json", "not application/json"),
        ("", "one without a content type"),
        ("multipart/form-data", "has no boundary"),
        ("multipart/mixed; boundary=x", "not multipart/mixed"),
    ],
)
def test_boundary_of_refuses_other_bodies(content_type: str, phrase: str) -> None:
    with pytest.raises(InvalidRequestError, match=phrase):
        boundary_of(content_type)
