"""SSE framing: decoding at byte granularity, field rules, the line cap, finish(), and encoding."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.wire.sse import DEFAULT_MAX_LINE_BYTES, SSEDecoder, SSEEvent, aiter_events, encode_event

ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","role":"assistant"}}\n'
    b"\n"
    b"event: ping\n"
    b'data: {"type": "ping"}\n'
    b"\n"
    b"event: content_block_delta\r\n"
    b'data: {"type":"content_block_delta","delta":{"text":"caf\xc3\xa9 \xf0\x9f\x98\x80"}}\r\n'
    b"\r\n"
    b"event: message_stop\r"
    b'data: {"type":"message_stop"}\r'
    b"\r"
)
OPENAI_STREAM = (
    b": ping\n"
    b"\n"
    b'data: {"choices":[{"delta":{"content":"Hi \xf0\x9f\x91\x8b"}}]}\n'
    b"\n"
    b"id: 7\n"
    b"retry: 1500\n"
    b"data: line one\n"
    b"data:line two\n"
    b"data:  indented\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
FIXTURE = ANTHROPIC_STREAM + OPENAI_STREAM
EXPECTED = [
    SSEEvent(event="message_start", data='{"type":"message_start","message":{"id":"msg_1","role":"assistant"}}'),
    SSEEvent(event="ping", data='{"type": "ping"}'),
    SSEEvent(event="content_block_delta", data='{"type":"content_block_delta","delta":{"text":"café 😀"}}'),
    SSEEvent(event="message_stop", data='{"type":"message_stop"}'),
    SSEEvent(data='{"choices":[{"delta":{"content":"Hi 👋"}}]}'),
    SSEEvent(data="line one\nline two\n indented", id="7", retry=1500),
    SSEEvent(data="[DONE]", id="7"),
]


def _decode(chunks: Iterable[bytes], **kwargs: int) -> list[SSEEvent]:
    decoder = SSEDecoder(**kwargs)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events


def test_sse_decoder_whole_fixture_gives_expected_events() -> None:
    assert _decode([FIXTURE]) == EXPECTED


@pytest.mark.parametrize("split", range(1, len(FIXTURE)))
def test_sse_decoder_any_split_point_gives_same_events(split: int) -> None:
    assert _decode([FIXTURE[:split], FIXTURE[split:]]) == EXPECTED


def test_sse_decoder_one_byte_chunks_give_same_events() -> None:
    assert _decode(FIXTURE[i : i + 1] for i in range(len(FIXTURE))) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(FIXTURE)), max_size=40))
def test_sse_decoder_random_rechunking_gives_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(FIXTURE)]
    chunks = [FIXTURE[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert _decode(chunks) == EXPECTED


def test_sse_decoder_crlf_split_across_chunks_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n\r") == [SSEEvent(data="a")]
    assert decoder.feed(b"\ndata: b\n\n") == [SSEEvent(data="b")]


def test_sse_decoder_emoji_split_inside_character_decodes_without_replacement() -> None:
    encoded = "data: 😀\n\n".encode()
    decoder = SSEDecoder()
    assert decoder.feed(encoded[:7]) == []
    assert decoder.feed(encoded[7:9]) == []
    assert decoder.feed(encoded[9:]) == [SSEEvent(data="😀")]


def test_sse_decoder_invalid_utf8_becomes_replacement_character() -> None:
    assert _decode([b"data: a\xffb\n\n"]) == [SSEEvent(data="a\ufffdb")]


def test_sse_decoder_leading_bom_is_stripped_once() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n\xef\xbb\xbfdata: y\n\n"
    assert _decode([stream[:2], stream[2:]]) == [SSEEvent(data="x")]


def test_sse_decoder_field_without_colon_has_empty_value() -> None:
    assert _decode([b"data\n\ndata\ndata\n\n"]) == [SSEEvent(data=""), SSEEvent(data="\n")]


def test_sse_decoder_empty_event_field_defaults_to_message() -> None:
    assert _decode([b"event:\ndata: x\n\n"]) == [SSEEvent(data="x")]


def test_sse_decoder_block_without_data_is_not_dispatched() -> None:
    stream = b"event: ping\nretry: 10\n\nid: 3\n\ndata: x\n\n"
    assert _decode([stream]) == [SSEEvent(data="x", id="3")]


def test_sse_decoder_id_persists_and_empty_id_resets_it() -> None:
    stream = b"id: a\ndata: 1\n\ndata: 2\n\nid\ndata: 3\n\n"
    assert [event.id for event in _decode([stream])] == ["a", "a", ""]


def test_sse_decoder_id_with_nul_is_ignored() -> None:
    assert _decode([b"id: 1\n\nid: a\x00b\ndata: x\n\n"]) == [SSEEvent(data="x", id="1")]


@pytest.mark.parametrize("value", ["", "12a", "-5", "  5", "١٢"], ids=["empty", "letters", "sign", "space", "arabic"])
def test_sse_decoder_retry_not_ascii_digits_is_ignored(value: str) -> None:
    stream = f"retry:{value}\ndata: x\n\n".encode()
    assert _decode([stream]) == [SSEEvent(data="x")]


def test_sse_decoder_retry_applies_only_to_its_own_event() -> None:
    assert [event.retry for event in _decode([b"retry: 5\ndata: a\n\ndata: b\n\n"])] == [5, None]


def test_sse_decoder_unknown_field_and_comments_are_ignored() -> None:
    stream = b": keep-alive\nfoo: bar\n:data: no\ndata: yes\n\n"
    assert _decode([stream]) == [SSEEvent(data="yes")]


def test_sse_decoder_done_marker_is_an_ordinary_event() -> None:
    assert _decode([b"data: [DONE]\n\n"]) == [SSEEvent(data="[DONE]")]


def test_sse_decoder_finish_after_complete_stream_is_not_truncated() -> None:
    decoder = SSEDecoder()
    decoder.feed(FIXTURE)
    assert decoder.finish() == []
    assert decoder.is_truncated is False


@pytest.mark.parametrize(
    "tail",
    [b"data: last\n", b"data: last", b"event: x\n", b": comment"],
    ids=["no-blank-line", "no-newline", "fields-without-data", "partial-comment"],
)
def test_sse_decoder_finish_discards_unterminated_event_and_flags_truncation(tail: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n\n" + tail) == [SSEEvent(data="first")]
    assert decoder.finish() == []
    assert decoder.is_truncated is True


def test_sse_decoder_finish_resets_state_for_a_new_stream() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"event: x\ndata: stale\ndata: pa")
    decoder.finish()
    assert decoder.feed(b"data: fresh\n\n") == [SSEEvent(data="fresh")]


def test_sse_decoder_default_line_cap_is_sixteen_mebibytes() -> None:
    assert DEFAULT_MAX_LINE_BYTES == 16 * 1024 * 1024


def test_sse_decoder_line_at_cap_is_accepted() -> None:
    assert _decode([b"data: " + b"x" * 4 + b"\n\n"], max_line_bytes=10) == [SSEEvent(data="xxxx")]


def test_sse_decoder_complete_line_over_cap_raises() -> None:
    with pytest.raises(ValueError, match="exceeds 10 bytes"):
        SSEDecoder(max_line_bytes=10).feed(b"data: " + b"x" * 5 + b"\n")


def test_sse_decoder_unterminated_line_over_cap_raises_across_chunks() -> None:
    decoder = SSEDecoder(max_line_bytes=10)
    decoder.feed(b"data: xxx")
    with pytest.raises(ValueError, match="exceeds 10 bytes"):
        decoder.feed(b"xx")


def test_sse_decoder_pending_line_completed_over_cap_raises() -> None:
    decoder = SSEDecoder(max_line_bytes=10)
    decoder.feed(b"data: xxx")
    with pytest.raises(ValueError, match="exceeds 10 bytes"):
        decoder.feed(b"xx\n")


def test_sse_decoder_accepts_bytearray_and_memoryview() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(bytearray(b"data: a\n")) == []  # type: ignore[arg-type]
    assert decoder.feed(memoryview(b"\n")) == [SSEEvent(data="a")]  # type: ignore[arg-type]


def test_encode_event_data_only_frames_one_data_line() -> None:
    assert encode_event("hello") == b"data: hello\n\n"


def test_encode_event_with_event_and_id_frames_fields_first() -> None:
    assert encode_event(b'{"a":1}', event="delta", id="9") == b'event: delta\nid: 9\ndata: {"a":1}\n\n'


def test_encode_event_multiline_data_splits_into_data_lines() -> None:
    assert encode_event("a\nb\r\nc\rd\n") == b"data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"


@pytest.mark.parametrize(
    ("event", "id_"),
    [("a\nb", None), ("a\rb", None), (None, "1\n2"), (None, "1\x002")],
    ids=["event-lf", "event-cr", "id-lf", "id-nul"],
)
def test_encode_event_unsafe_field_value_raises(event: str | None, id_: str | None) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        encode_event("x", event=event, id=id_)


def test_encode_event_invalid_utf8_bytes_raises() -> None:
    with pytest.raises(ValueError):
        encode_event(b"\xff")


_TEXT = st.text(st.characters(codec="utf-8"))
_FIELD = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"))


@given(data=_TEXT, event=st.none() | _FIELD, id_=st.none() | _FIELD)
def test_encode_event_then_decode_round_trips_text(data: str, event: str | None, id_: str | None) -> None:
    decoded = _decode([encode_event(data, event=event, id=id_)])
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert decoded == [SSEEvent(event=event or "message", data=normalised, id=id_)]


@given(st.lists(_TEXT, min_size=1, max_size=5), st.integers(min_value=1, max_value=7))
def test_encode_event_stream_decodes_in_small_chunks(items: list[str], size: int) -> None:
    stream = b"".join(encode_event(item) for item in items)
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert [event.data for event in _decode(chunks)] == [
        item.replace("\r\n", "\n").replace("\r", "\n") for item in items
    ]


async def _chunks(stream: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(stream), size):
        yield stream[i : i + size]


async def test_aiter_events_yields_events_of_async_chunks() -> None:
    events = [event async for event in aiter_events(_chunks(FIXTURE + b"data: cut", 3))]
    assert events == EXPECTED


async def test_aiter_events_line_over_cap_raises() -> None:
    with pytest.raises(ValueError, match="exceeds 4 bytes"):
        [event async for event in aiter_events(_chunks(b"data: long\n\n", 100), max_line_bytes=4)]


def test_sse_decoder_empty_chunk_between_cr_and_lf_keeps_one_line_ending() -> None:
    """Regression: an empty read after a chunk ending in "\\r" made the following "\\n" a blank line."""
    decoder = SSEDecoder()
    events = [
        *decoder.feed(b"event: a\r"),
        *decoder.feed(b""),
        *decoder.feed(b"\ndata: x\r\n\r\n"),
    ]
    assert events == [SSEEvent(event="a", data="x")]
