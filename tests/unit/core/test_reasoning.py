"""The reasoning filter a crossing stream passes through."""

from __future__ import annotations

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
)
from polyroute.core.messages import FinishReason
from polyroute.core.reasoning import ForeignReasoningFilter

EVENTS: list[StreamEvent] = [
    MessageStart(id="r", model="m"),
    PartStart(index=0, part_kind="reasoning", signature="sig", redacted="blob"),
    ReasoningDelta(index=0, text="think"),
    SignatureDelta(index=0, signature="more"),
    PartEnd(index=0),
    PartStart(index=1, part_kind="text"),
    TextDelta(index=1, text="hi"),
    PartEnd(index=1),
    PartStart(index=2, part_kind="tool_call", call_id="c", name="f", signature="gem"),
    SignatureDelta(index=2, signature="tool-sig"),
    ToolArgumentsDelta(index=2, json_fragment="{}"),
    PartEnd(index=2),
    MessageEnd(finish_reason=FinishReason.TOOL_CALLS),
]


def run(keep_text: bool) -> list[StreamEvent]:
    keep = ForeignReasoningFilter(keep_text=keep_text)
    return [passed for event in EVENTS for passed in keep.feed(event)]


def test_keep_text_strips_signatures_and_encrypted_reasoning_only() -> None:
    out = run(keep_text=True)
    assert out[1] == PartStart(index=0, part_kind="reasoning")
    assert ReasoningDelta(index=0, text="think") in out
    assert not any(isinstance(e, SignatureDelta) and e.index == 0 for e in out)
    assert SignatureDelta(index=2, signature="tool-sig") in out  # tool-call signatures are sealed elsewhere
    assert len(out) == len(EVENTS) - 1


def test_drop_removes_reasoning_and_renumbers_the_rest() -> None:
    out = run(keep_text=False)
    assert out == [
        MessageStart(id="r", model="m"),
        PartStart(index=0, part_kind="text"),
        TextDelta(index=0, text="hi"),
        PartEnd(index=0),
        PartStart(index=1, part_kind="tool_call", call_id="c", name="f", signature="gem"),
        SignatureDelta(index=1, signature="tool-sig"),
        ToolArgumentsDelta(index=1, json_fragment="{}"),
        PartEnd(index=1),
        MessageEnd(finish_reason=FinishReason.TOOL_CALLS),
    ]
