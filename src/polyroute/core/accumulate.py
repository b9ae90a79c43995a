"""Fold canonical stream events into the final ``ChatResponse`` (sans-IO).

Used for usage logging and for non-stream clients served by stream-only upstreams.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from polyroute.core.events import (
    MessageEnd,
    MessageStart,
    PartEnd,
    PartStart,
    ReasoningDelta,
    SignatureDelta,
    StreamEvent,
    StreamPartKind,
    TextDelta,
    ToolArgumentsDelta,
    UsageUpdate,
)
from polyroute.core.messages import ChatResponse, FinishReason, Part, ReasoningPart, TextPart, ToolCallPart, Usage


@dataclass(slots=True, kw_only=True)
class _PartBuilder:
    """Mutable state of one part while its deltas arrive."""

    part_kind: StreamPartKind
    call_id: str = ""
    name: str = ""
    chunks: list[str] = field(default_factory=list)
    signature: list[str] | None = None
    redacted: str | None = None
    is_ended: bool = False

    def build(self, source_format: str | None) -> Part:
        text = "".join(self.chunks)
        signature = None if self.signature is None else "".join(self.signature)
        if self.part_kind == "text":
            return TextPart(text=text)
        if self.part_kind == "tool_call":
            return ToolCallPart(call_id=self.call_id, name=self.name, arguments=text, signature=signature)
        return ReasoningPart(text=text, signature=signature, redacted=self.redacted, source_format=source_format)


class Accumulator:
    """Folds a ``StreamEvent`` sequence into a ``ChatResponse``. Sans-IO: ``feed()`` per event, ``result()`` at end.

    Malformed sequences raise ``ValueError`` (translators turn that into a protocol error at the border):
    any event before ``MessageStart`` or after ``MessageEnd``, a second ``MessageStart`` or ``MessageEnd``,
    ``PartStart`` for an index already used, a delta or ``PartEnd`` for an unknown or already-ended index,
    a delta of the wrong kind for its part, and a tool-call ``PartStart`` without ``call_id`` or ``name``.
    Parts left open are accepted and returned as they stand, so a cut-off stream can still be accounted.
    """

    __slots__ = ("_finish_reason", "_is_ended", "_parts", "_source_format", "_start", "_usage")

    def __init__(self, *, source_format: str | None = None) -> None:
        """Create an empty accumulator; ``source_format`` is stamped on reasoning parts (a ``WireFormat`` value)."""
        self._source_format = source_format
        self._start: MessageStart | None = None
        self._parts: dict[int, _PartBuilder] = {}
        self._usage = Usage()
        self._finish_reason: FinishReason | None = None
        self._is_ended = False

    def feed(self, event: StreamEvent) -> None:
        """Fold one event into the state.

        Raises:
            ValueError: the event cannot follow the events fed so far.
        """
        if isinstance(event, MessageStart):
            self._on_message_start(event)
            return
        if self._start is None:
            raise ValueError(f"{event.kind} before message_start")
        if self._is_ended:
            raise ValueError(f"{event.kind} after message_end")
        match event:
            case PartStart():
                self._on_part_start(event)
            case TextDelta():
                self._open_part(event.index, event.kind, "text").chunks.append(event.text)
            case ReasoningDelta():
                self._open_part(event.index, event.kind, "reasoning").chunks.append(event.text)
            case ToolArgumentsDelta():
                self._open_part(event.index, event.kind, "tool_call").chunks.append(event.json_fragment)
            case SignatureDelta():
                self._on_signature_delta(event)
            case PartEnd():
                self._open_part(event.index, event.kind).is_ended = True
            case UsageUpdate():
                self._usage = event.usage
            case _:  # MessageEnd, the only kind left; a class pattern here would leave an untakeable branch
                self._on_message_end(event)

    def result(self) -> ChatResponse:
        """The response accumulated so far; parts in index order.

        Raises:
            ValueError: no ``MessageStart`` has been fed.
        """
        if self._start is None:
            raise ValueError("no message_start; nothing to accumulate")
        parts = tuple(self._parts[index].build(self._source_format) for index in sorted(self._parts))
        return ChatResponse(
            id=self._start.id,
            model=self._start.model,
            created=self._start.created,
            parts=parts,
            finish_reason=self._finish_reason,
            usage=self._usage,
        )

    def _on_message_start(self, event: MessageStart) -> None:
        if self._start is not None:
            raise ValueError("message_start after message_start")
        self._start = event

    def _on_part_start(self, event: PartStart) -> None:
        if event.index in self._parts:
            raise ValueError(f"part_start for index {event.index}, which was already started")
        if event.part_kind == "tool_call" and (event.call_id is None or event.name is None):
            raise ValueError(f"tool_call part_start at index {event.index} lacks call_id or name")
        self._parts[event.index] = _PartBuilder(
            part_kind=event.part_kind,
            call_id=event.call_id or "",
            name=event.name or "",
            signature=None if event.signature is None else [event.signature],
            redacted=event.redacted,
        )

    def _on_signature_delta(self, event: SignatureDelta) -> None:
        part = self._open_part(event.index, event.kind)
        if part.part_kind == "text":
            raise ValueError(f"signature_delta for text part at index {event.index}")
        if part.signature is None:
            part.signature = []
        part.signature.append(event.signature)

    def _on_message_end(self, event: MessageEnd) -> None:
        # Every parser emits running totals (Anthropic's message_delta usage is cumulative, OpenAI sends one
        # final usage chunk), so the latest report wins; adding them would double-count. See events.py.
        if event.usage is not None:
            self._usage = event.usage
        self._finish_reason = event.finish_reason
        self._is_ended = True

    def _open_part(self, index: int, event_kind: str, part_kind: StreamPartKind | None = None) -> _PartBuilder:
        part = self._parts.get(index)
        if part is None:
            raise ValueError(f"{event_kind} for index {index}, which has no part_start")
        if part.is_ended:
            raise ValueError(f"{event_kind} for index {index}, which has already ended")
        if part_kind is not None and part.part_kind != part_kind:
            raise ValueError(f"{event_kind} for index {index}, which is a {part.part_kind} part")
        return part


def accumulate(events: Iterable[StreamEvent], *, source_format: str | None = None) -> ChatResponse:
    """Fold a whole event sequence into a ``ChatResponse``.

    Raises:
        ValueError: the sequence is malformed (see ``Accumulator``).
    """
    accumulator = Accumulator(source_format=source_format)
    for event in events:
        accumulator.feed(event)
    return accumulator.result()
