"""NDJSON framing: decoding at byte granularity, blank lines, errors, the line cap, finish(), and encoding."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.types import JSONValue
from polyroute.wire.ndjson import DEFAULT_MAX_LINE_BYTES, NDJSONDecoder, aiter_values, encode_line

OLLAMA_VALUES: list[JSONValue] = [
    {
        "model": "llama3.2",
        "created_at": "2024-07-01T00:00:00Z",
        "message": {"role": "assistant", "content": "Caf\u00e9 \U0001f600"},
        "done": False,
    },
    {
        "model": "llama3.2",
        "created_at": "2024-07-01T00:00:01Z",
        "message": {"role": "assistant", "content": "!"},
        "done": False,
    },
    {
        "model": "llama3.2",
        "created_at": "2024-07-01T00:00:02Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 26,
        "eval_count": 2,
        "total_duration": 1.5e9,
    },
]
FIXTURE = (
    orjson.dumps(OLLAMA_VALUES[0])
    + b"\n\n"
    + orjson.dumps(OLLAMA_VALUES[1], option=orjson.OPT_INDENT_2).replace(b"\n", b" ")
    + b"\r\n   \n"
    + orjson.dumps(OLLAMA_VALUES[2])
    + b"\n"
)


def _decode(chunks: Iterable[bytes], **kwargs: int) -> list[JSONValue]:
    decoder = NDJSONDecoder(**kwargs)
    values: list[JSONValue] = []
    for chunk in chunks:
        values.extend(decoder.feed(chunk))
    values.extend(decoder.finish())
    return values


def test_ndjson_decoder_whole_fixture_gives_expected_values() -> None:
    assert _decode([FIXTURE]) == OLLAMA_VALUES


@pytest.mark.parametrize("split", range(1, len(FIXTURE)))
def test_ndjson_decoder_any_split_point_gives_same_values(split: int) -> None:
    assert _decode([FIXTURE[:split], FIXTURE[split:]]) == OLLAMA_VALUES


def test_ndjson_decoder_one_byte_chunks_give_same_values() -> None:
    assert _decode(FIXTURE[i : i + 1] for i in range(len(FIXTURE))) == OLLAMA_VALUES


@given(st.lists(st.integers(min_value=0, max_value=len(FIXTURE)), max_size=40))
def test_ndjson_decoder_random_rechunking_gives_same_values(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(FIXTURE)]
    assert _decode(FIXTURE[a:b] for a, b in zip(bounds, bounds[1:], strict=False)) == OLLAMA_VALUES


def test_ndjson_decoder_final_line_without_newline_is_parsed_on_finish() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n{"done":tr') == [{"a": 1}]
    assert decoder.feed(b"ue}") == []
    assert decoder.finish() == [{"done": True}]


def test_ndjson_decoder_finish_with_only_whitespace_pending_returns_nothing() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b"1\n  ") == [1]
    assert decoder.finish() == []
    assert decoder.finish() == []


def test_ndjson_decoder_invalid_line_raises_naming_line_number() -> None:
    decoder = NDJSONDecoder()
    with pytest.raises(ValueError, match="line 3"):
        decoder.feed(b'{"ok":1}\n\n{"ok":\n')


def test_ndjson_decoder_invalid_final_line_raises_on_finish() -> None:
    decoder = NDJSONDecoder()
    decoder.feed(b"1\nnot json")
    with pytest.raises(ValueError, match="line 2"):
        decoder.finish()


def test_ndjson_decoder_invalid_utf8_raises() -> None:
    with pytest.raises(ValueError, match="line 1"):
        NDJSONDecoder().feed(b'"\xff"\n')


def test_ndjson_decoder_default_line_cap_is_sixteen_mebibytes() -> None:
    assert DEFAULT_MAX_LINE_BYTES == 16 * 1024 * 1024


def test_ndjson_decoder_line_at_cap_is_accepted() -> None:
    assert _decode([b'"' + b"x" * 8 + b'"\n'], max_line_bytes=10) == ["x" * 8]


def test_ndjson_decoder_complete_line_over_cap_raises() -> None:
    with pytest.raises(ValueError, match="line 2 exceeds 10 bytes"):
        NDJSONDecoder(max_line_bytes=10).feed(b"1\n" + b"1" * 11 + b"\n")


def test_ndjson_decoder_unterminated_line_over_cap_raises_across_chunks() -> None:
    decoder = NDJSONDecoder(max_line_bytes=10)
    decoder.feed(b"[1,2,3")
    with pytest.raises(ValueError, match="line 1 exceeds 10 bytes"):
        decoder.feed(b",4,5,6")


def test_ndjson_decoder_accepts_bytearray() -> None:
    assert _decode([bytearray(b"[1]\n")]) == [[1]]  # type: ignore[list-item]


def test_encode_line_is_compact_json_with_newline() -> None:
    assert encode_line({"model": "m", "message": {"content": "a\nb"}, "done": False}) == (
        b'{"model":"m","message":{"content":"a\\nb"},"done":false}\n'
    )


def test_encode_line_unserialisable_value_raises_type_error() -> None:
    with pytest.raises(TypeError):
        encode_line(2**70)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8")),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(st.characters(codec="utf-8")), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.lists(_JSON, max_size=5), st.integers(min_value=1, max_value=9))
def test_encode_line_then_decode_round_trips_values(values: list[JSONValue], size: int) -> None:
    stream = b"".join(encode_line(value) for value in values)
    assert _decode(stream[i : i + size] for i in range(0, len(stream), size)) == values


async def _chunks(stream: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(stream), size):
        yield stream[i : i + size]


async def test_aiter_values_yields_values_including_unterminated_last_line() -> None:
    stream = FIXTURE + b'{"tail":true}'
    values = [value async for value in aiter_values(_chunks(stream, 5))]
    assert values == [*OLLAMA_VALUES, {"tail": True}]


async def test_aiter_values_line_over_cap_raises() -> None:
    with pytest.raises(ValueError, match="exceeds 4 bytes"):
        [value async for value in aiter_values(_chunks(b"[1,2,3]\n", 100), max_line_bytes=4)]
