from __future__ import annotations

import dataclasses

import pytest

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
from polyroute.core.messages import FinishReason, Usage

_EVENTS: list[tuple[StreamEvent, str]] = [
    (MessageStart(id="r1", model="m"), "message_start"),
    (PartStart(index=0, part_kind="text"), "part_start"),
    (TextDelta(index=0, text="a"), "text_delta"),
    (ReasoningDelta(index=0, text="a"), "reasoning_delta"),
    (SignatureDelta(index=0, signature="s"), "signature_delta"),
    (ToolArgumentsDelta(index=0, json_fragment="{"), "tool_arguments_delta"),
    (PartEnd(index=0), "part_end"),
    (UsageUpdate(usage=Usage(input_tokens=1)), "usage_update"),
    (MessageEnd(finish_reason=FinishReason.STOP), "message_end"),
]


@pytest.mark.parametrize(("event", "kind"), _EVENTS, ids=[kind for _, kind in _EVENTS])
def test_stream_event_default_kind_is_discriminator(event: StreamEvent, kind: str) -> None:
    assert event.kind == kind


@pytest.mark.parametrize(("event", "kind"), _EVENTS, ids=[kind for _, kind in _EVENTS])
def test_stream_event_assignment_raises_frozen_error(event: StreamEvent, kind: str) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.kind = kind  # type: ignore[misc]


def test_stream_event_kinds_are_unique() -> None:
    kinds = [kind for _, kind in _EVENTS]
    assert len(set(kinds)) == len(kinds)


def test_part_start_optional_fields_default_to_none() -> None:
    event = PartStart(index=1, part_kind="reasoning")
    assert (event.call_id, event.name, event.signature, event.redacted) == (None, None, None, None)


def test_message_start_and_end_optional_fields_default_to_none() -> None:
    assert MessageStart(id="r1", model="m").created is None
    assert MessageEnd(finish_reason=FinishReason.LENGTH).usage is None


def test_stream_event_positional_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError):
        TextDelta(0, "a")  # type: ignore[misc]
