"""Canonical stream events: index-based parts with explicit start and end, like Anthropic content blocks.

A well-formed stream is ``MessageStart``, then per part ``PartStart``, deltas and ``PartEnd`` (parts may
interleave), with ``UsageUpdate`` anywhere, and finally ``MessageEnd``. Every ``Usage`` carried by an
event is the running total so far, never an increment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from polyroute.core.messages import FinishReason, Usage

StreamPartKind: TypeAlias = Literal["text", "reasoning", "tool_call"]
"""Part kinds a model can stream; images and tool results never arrive as deltas."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStart:
    """The response has begun."""

    id: str
    model: str
    created: int | None = None
    """Unix time in seconds, when the upstream sends one."""
    kind: Literal["message_start"] = "message_start"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartStart:
    """A new content part begins at ``index``."""

    index: int
    """Position of the part in the final message; unique within one message."""
    part_kind: StreamPartKind
    call_id: str | None = None
    """Tool call id; required when ``part_kind`` is ``tool_call``."""
    name: str | None = None
    """Tool name; required when ``part_kind`` is ``tool_call``."""
    signature: str | None = None
    """Opaque signature known up front (Gemini sends it with the part); later ``SignatureDelta``s append to it."""
    redacted: str | None = None
    """Encrypted reasoning that arrives whole (Anthropic ``redacted_thinking``); reasoning parts only."""
    kind: Literal["part_start"] = "part_start"


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    """More text for the text part at ``index``."""

    index: int
    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasoningDelta:
    """More reasoning text for the reasoning part at ``index``."""

    index: int
    text: str
    kind: Literal["reasoning_delta"] = "reasoning_delta"


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureDelta:
    """A fragment of the opaque signature of the reasoning or tool-call part at ``index``; fragments concatenate."""

    index: int
    signature: str
    kind: Literal["signature_delta"] = "signature_delta"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolArgumentsDelta:
    """A fragment of the raw JSON arguments of the tool-call part at ``index``; fragments concatenate in order."""

    index: int
    json_fragment: str
    kind: Literal["tool_arguments_delta"] = "tool_arguments_delta"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartEnd:
    """The part at ``index`` is complete."""

    index: int
    kind: Literal["part_end"] = "part_end"


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageUpdate:
    """Token counts so far (a running total that replaces any earlier one)."""

    usage: Usage
    kind: Literal["usage_update"] = "usage_update"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEnd:
    """The response is complete."""

    finish_reason: FinishReason
    usage: Usage | None = None
    """Final running total, or None when the upstream sent none here (earlier ``UsageUpdate``s then stand)."""
    kind: Literal["message_end"] = "message_end"


StreamEvent: TypeAlias = (
    MessageStart
    | PartStart
    | TextDelta
    | ReasoningDelta
    | SignatureDelta
    | ToolArgumentsDelta
    | PartEnd
    | UsageUpdate
    | MessageEnd
)


def is_content(event: StreamEvent) -> bool:
    """Whether the event carries something of the answer itself (text, reasoning, a tool call)."""
    if isinstance(event, TextDelta | ReasoningDelta):
        return bool(event.text)
    return isinstance(event, PartStart) and event.part_kind == "tool_call"
