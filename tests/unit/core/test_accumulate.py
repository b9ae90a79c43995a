from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.core.accumulate import Accumulator, accumulate
from polyroute.core.events import (
    MessageEnd,
    MessageStart,
    PartEnd,
    PartStart,
    ReasoningDelta,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ToolArgumentsDelta,
    UsageUpdate,
)
from polyroute.core.messages import FinishReason, ReasoningPart, TextPart, ToolCallPart, Usage

_START = MessageStart(id="r1", model="m", created=1700000000)


def _interleaved_events() -> list[StreamEvent]:
    return [
        _START,
        PartStart(index=0, part_kind="reasoning"),
        ReasoningDelta(index=0, text="Let me "),
        PartStart(index=1, part_kind="text"),
        ReasoningDelta(index=0, text="think."),
        TextDelta(index=1, text="Calling "),
        SignatureDelta(index=0, signature="sig-"),
        SignatureDelta(index=0, signature="abc"),
        PartEnd(index=0),
        TextDelta(index=1, text="tools."),
        PartEnd(index=1),
        PartStart(index=3, part_kind="tool_call", call_id="call_b", name="time"),
        PartStart(index=2, part_kind="tool_call", call_id="call_a", name="weather"),
        ToolArgumentsDelta(index=2, json_fragment='{"ci'),
        ToolArgumentsDelta(index=3, json_fragment='{"tz": '),
        ToolArgumentsDelta(index=2, json_fragment='ty": "Par'),
        UsageUpdate(usage=Usage(input_tokens=10)),
        ToolArgumentsDelta(index=3, json_fragment='"UTC"'),
        ToolArgumentsDelta(index=2, json_fragment='is"}'),
        ToolArgumentsDelta(index=3, json_fragment=", oops"),
        PartEnd(index=2),
        PartEnd(index=3),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS, usage=Usage(input_tokens=10, output_tokens=42)),
    ]


def test_accumulate_interleaved_parts_orders_by_index_and_concatenates() -> None:
    response = accumulate(_interleaved_events(), source_format="anthropic_messages")
    assert response.id == "r1"
    assert response.model == "m"
    assert response.created == 1700000000
    assert response.parts == (
        ReasoningPart(text="Let me think.", signature="sig-abc", source_format="anthropic_messages"),
        TextPart(text="Calling tools."),
        ToolCallPart(call_id="call_a", name="weather", arguments='{"city": "Paris"}'),
        ToolCallPart(call_id="call_b", name="time", arguments='{"tz": "UTC", oops'),
    )
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.usage == Usage(input_tokens=10, output_tokens=42)


def test_accumulate_invalid_json_arguments_are_byte_identical_to_fragments() -> None:
    fragments = ['{"a": "\\u00e9', "\u00e9 ", "", "]]]"]
    events: list[StreamEvent] = [
        _START,
        PartStart(index=0, part_kind="tool_call", call_id="c", name="f"),
        *(ToolArgumentsDelta(index=0, json_fragment=fragment) for fragment in fragments),
        PartEnd(index=0),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS),
    ]
    part = accumulate(events).parts[0]
    assert isinstance(part, ToolCallPart)
    assert part.arguments == "".join(fragments)


def test_accumulate_usage_updates_replace_not_add() -> None:
    events: list[StreamEvent] = [
        _START,
        UsageUpdate(usage=Usage(input_tokens=10, output_tokens=1)),
        UsageUpdate(usage=Usage(input_tokens=10, output_tokens=5)),
        MessageEnd(finish_reason=FinishReason.STOP, usage=Usage(input_tokens=10, output_tokens=7)),
    ]
    assert accumulate(events).usage == Usage(input_tokens=10, output_tokens=7)


def test_accumulate_message_end_without_usage_keeps_latest_update() -> None:
    events: list[StreamEvent] = [
        _START,
        UsageUpdate(usage=Usage(output_tokens=3, reasoning_tokens=2)),
        MessageEnd(finish_reason=FinishReason.LENGTH),
    ]
    response = accumulate(events)
    assert response.usage == Usage(output_tokens=3, reasoning_tokens=2)
    assert response.finish_reason is FinishReason.LENGTH


def test_accumulate_no_usage_reported_is_empty_usage() -> None:
    assert accumulate([_START]).usage == Usage()


def test_accumulate_part_start_signature_and_redacted_are_kept() -> None:
    events: list[StreamEvent] = [
        _START,
        PartStart(index=0, part_kind="reasoning", redacted="ENCRYPTED"),
        PartEnd(index=0),
        PartStart(index=1, part_kind="reasoning", signature="g1"),
        SignatureDelta(index=1, signature="g2"),
        PartStart(index=2, part_kind="tool_call", call_id="c", name="f", signature="t1"),
        PartStart(index=3, part_kind="tool_call", call_id="d", name="g"),
        SignatureDelta(index=3, signature="t2"),
    ]
    assert accumulate(events).parts == (
        ReasoningPart(redacted="ENCRYPTED"),
        ReasoningPart(signature="g1g2"),
        ToolCallPart(call_id="c", name="f", arguments="", signature="t1"),
        ToolCallPart(call_id="d", name="g", arguments="", signature="t2"),
    )


def test_accumulate_truncated_stream_returns_open_parts_without_finish_reason() -> None:
    events: list[StreamEvent] = [_START, PartStart(index=0, part_kind="text"), TextDelta(index=0, text="cut")]
    response = accumulate(events)
    assert response.parts == (TextPart(text="cut"),)
    assert response.finish_reason is None


def test_accumulator_result_can_be_read_mid_stream() -> None:
    accumulator = Accumulator()
    accumulator.feed(_START)
    accumulator.feed(PartStart(index=0, part_kind="text"))
    accumulator.feed(TextDelta(index=0, text="a"))
    assert accumulator.result().parts == (TextPart(text="a"),)
    accumulator.feed(TextDelta(index=0, text="b"))
    assert accumulator.result().parts == (TextPart(text="ab"),)


def test_accumulator_result_without_message_start_raises() -> None:
    with pytest.raises(ValueError, match="no message_start"):
        Accumulator().result()


_MALFORMED: dict[str, tuple[list[StreamEvent], str]] = {
    "delta_before_start": ([TextDelta(index=0, text="a")], "text_delta before message_start"),
    "second_start": ([_START, _START], "message_start after message_start"),
    "delta_unknown_index": ([_START, TextDelta(index=5, text="a")], "index 5, which has no part_start"),
    "part_end_twice": (
        [_START, PartStart(index=0, part_kind="text"), PartEnd(index=0), PartEnd(index=0)],
        "part_end for index 0, which has already ended",
    ),
    "delta_after_part_end": (
        [_START, PartStart(index=0, part_kind="text"), PartEnd(index=0), TextDelta(index=0, text="a")],
        "already ended",
    ),
    "part_start_twice": (
        [_START, PartStart(index=0, part_kind="text"), PartStart(index=0, part_kind="text")],
        "already started",
    ),
    "wrong_delta_kind": (
        [_START, PartStart(index=0, part_kind="text"), ReasoningDelta(index=0, text="a")],
        "reasoning_delta for index 0, which is a text part",
    ),
    "arguments_for_text": (
        [_START, PartStart(index=0, part_kind="text"), ToolArgumentsDelta(index=0, json_fragment="{")],
        "which is a text part",
    ),
    "signature_for_text": (
        [_START, PartStart(index=0, part_kind="text"), SignatureDelta(index=0, signature="s")],
        "signature_delta for text part",
    ),
    "tool_call_without_call_id": (
        [_START, PartStart(index=0, part_kind="tool_call", name="f")],
        "lacks call_id or name",
    ),
    "tool_call_without_name": (
        [_START, PartStart(index=0, part_kind="tool_call", call_id="c")],
        "lacks call_id or name",
    ),
    "event_after_end": (
        [_START, MessageEnd(finish_reason=FinishReason.STOP), UsageUpdate(usage=Usage())],
        "usage_update after message_end",
    ),
    "end_twice": (
        [_START, MessageEnd(finish_reason=FinishReason.STOP), MessageEnd(finish_reason=FinishReason.STOP)],
        "message_end after message_end",
    ),
}


@pytest.mark.parametrize(("events", "message"), _MALFORMED.values(), ids=_MALFORMED.keys())
def test_accumulate_malformed_sequence_raises_value_error(events: list[StreamEvent], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        accumulate(events)


@st.composite
def _text_and_cuts(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(st.text())
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(text)))))
    bounds = [0, *cuts, len(text)]
    return text, [text[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


@given(_text_and_cuts())
def test_accumulate_any_split_into_deltas_rebuilds_text(case: tuple[str, list[str]]) -> None:
    text, pieces = case
    events: list[StreamEvent] = [
        _START,
        PartStart(index=0, part_kind="text"),
        *(TextDelta(index=0, text=piece) for piece in pieces),
        PartEnd(index=0),
        MessageEnd(finish_reason=FinishReason.STOP),
    ]
    assert accumulate(events).parts == (TextPart(text=text),)
