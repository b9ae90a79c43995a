"""Gemini ``:streamGenerateContent?alt=sse`` <-> canonical stream events (sans-IO).

Each SSE ``data:`` is a whole ``GenerateContentResponse`` holding the next parts; ``functionCall`` args arrive
whole; ``usageMetadata`` is a running total; there is no end sentinel, the stream just ends.
See: https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

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
from polyroute.core.messages import FinishReason, Part, ReasoningPart, TextPart, ToolCallPart, Usage
from polyroute.errors import GatewayError
from polyroute.types import JSONObject
from polyroute.wire.gemini.errors import render_error
from polyroute.wire.gemini.parts import (
    parse_finish,
    parse_model_part,
    parse_usage,
    render_finish,
    render_tool_call,
    render_usage,
    synthetic_call_id,
)
from polyroute.wire.gemini.response import validate_response
from polyroute.wire.sse import SSEEvent

SSE_EOL = b"\r\n"
"""Gemini frames ``alt=sse`` events as ``data: {...}\\r\\n\\r\\n`` (observed on generativelanguage.googleapis.com)."""


@dataclass(slots=True)
class _OpenPart:
    index: int
    kind: StreamPartKind
    has_signature: bool


class StreamParser:
    """Gemini SSE events -> canonical ``StreamEvent``s. Sans-IO: ``feed()`` per event, ``finish()`` at end.

    Consecutive text (or unsigned reasoning) parts merge into one canonical part; a change of kind closes it.
    ``MessageEnd`` is sent from ``finish()``, since usage may still follow the chunk with ``finishReason``;
    a stream that ends without a ``finishReason`` gets no ``MessageEnd`` (it was cut off).
    """

    def __init__(self) -> None:
        self._started = False
        self._response_id = ""
        self._next_index = 0
        self._open: _OpenPart | None = None
        self._has_tool_calls = False
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Translate one SSE event.

        Raises:
            ValueError: the data is not a JSON ``GenerateContentResponse``, or holds a part that cannot stream.
        """
        try:
            body = orjson.loads(event.data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"Gemini stream event is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ValueError("Gemini stream event is not a JSON object")
        chunk = validate_response(body)
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            self._response_id = chunk.get("responseId", "")
            events.append(MessageStart(id=self._response_id, model=chunk.get("modelVersion", "")))
        candidates = chunk.get("candidates", [])
        candidate = candidates[0] if candidates else {}
        for raw_part in candidate.get("content", {}).get("parts", []):
            call_id = synthetic_call_id(self._response_id, self._next_index)
            for part in parse_model_part(raw_part, call_id=call_id):
                events.extend(self._on_part(part))
        if "usageMetadata" in chunk:
            events.extend(self._on_usage(parse_usage(chunk["usageMetadata"])))
        if "finishReason" in candidate:
            self._finish = parse_finish(candidate["finishReason"], has_tool_calls=self._has_tool_calls)
            events.extend(self._close())
        elif "blockReason" in chunk.get("promptFeedback", {}):
            self._finish = FinishReason.CONTENT_FILTER
        return events

    def finish(self) -> list[StreamEvent]:
        """End of stream: close any open part and, if a finish reason came, end the message."""
        events = self._close()
        if self._finish is not None:
            events.append(MessageEnd(finish_reason=self._finish, usage=self._usage))
        return events

    def _on_usage(self, usage: Usage) -> list[StreamEvent]:
        # usageMetadata is a running total repeated on every chunk; report it only when it changes.
        if usage == self._usage:
            return []
        self._usage = usage
        return [UsageUpdate(usage=usage)]

    def _on_part(self, part: Part) -> list[StreamEvent]:
        if isinstance(part, ToolCallPart):
            return self._on_tool_call(part)
        if isinstance(part, ReasoningPart):
            return self._on_reasoning(part)
        if isinstance(part, TextPart):
            # Gemini often ends with an empty text part; it opens nothing.
            return (
                [*self._ensure_open("text"), TextDelta(index=self._next_index - 1, text=part.text)] if part.text else []
            )
        raise ValueError(f"Gemini stream sent a {part.kind} part, which cannot be streamed")

    def _on_reasoning(self, part: ReasoningPart) -> list[StreamEvent]:
        open_part = self._open
        if open_part is None or open_part.kind != "reasoning" or open_part.has_signature:
            events = self._start("reasoning", signature=part.signature)
            if part.text:
                events.append(ReasoningDelta(index=self._next_index - 1, text=part.text))
            return events
        # Gemini puts the signature on the last thought chunk: it completes the open part, not a new one.
        events = [ReasoningDelta(index=open_part.index, text=part.text)] if part.text else []
        if part.signature is not None:
            open_part.has_signature = True
            events.append(SignatureDelta(index=open_part.index, signature=part.signature))
        return events

    def _on_tool_call(self, part: ToolCallPart) -> list[StreamEvent]:
        self._has_tool_calls = True
        events = self._close()
        index = self._next_index
        self._next_index += 1
        start = PartStart(
            index=index, part_kind="tool_call", call_id=part.call_id, name=part.name, signature=part.signature
        )
        # Gemini sends args whole, so the part opens, gets its one fragment and closes at once.
        events.extend([start, ToolArgumentsDelta(index=index, json_fragment=part.arguments), PartEnd(index=index)])
        return events

    def _ensure_open(self, kind: StreamPartKind) -> list[StreamEvent]:
        if self._open is not None and self._open.kind == kind:
            return []
        return self._start(kind, signature=None)

    def _start(self, kind: StreamPartKind, *, signature: str | None) -> list[StreamEvent]:
        events = self._close()
        self._open = _OpenPart(index=self._next_index, kind=kind, has_signature=signature is not None)
        self._next_index += 1
        events.append(PartStart(index=self._open.index, part_kind=kind, signature=signature))
        return events

    def _close(self) -> list[StreamEvent]:
        if self._open is None:
            return []
        index = self._open.index
        self._open = None
        return [PartEnd(index=index)]


@dataclass(slots=True)
class _RenderedPart:
    kind: StreamPartKind
    call_id: str = ""
    name: str = ""
    signature: str | None = None
    arguments: list[str] = field(default_factory=list)
    has_output: bool = False


class StreamRenderer:
    """Canonical ``StreamEvent``s -> Gemini ``alt=sse`` bytes. Sans-IO: ``feed()`` per event, ``finish()`` at end.

    Every delta becomes one chunk with one part; tool calls are held until ``PartEnd`` because Gemini sends
    ``args`` whole. A ``UsageUpdate`` becomes a usage-only chunk; ``MessageEnd`` a chunk with ``finishReason``.
    """

    def __init__(self) -> None:
        self._response_id = ""
        self._model = ""
        self._parts: dict[int, _RenderedPart] = {}

    def feed(self, event: StreamEvent) -> list[bytes]:
        """Translate one canonical event into zero or more SSE frames."""
        match event:
            case MessageStart():
                self._response_id, self._model = event.id, event.model
                return []
            case PartStart():
                self._parts[event.index] = _RenderedPart(
                    kind=event.part_kind, call_id=event.call_id or "", name=event.name or "", signature=event.signature
                )
                return []
            case TextDelta():
                return self._emit_part(event.index, {"text": event.text})
            case ReasoningDelta():
                return self._emit_part(event.index, {"text": event.text, "thought": True})
            case SignatureDelta():
                return self._on_signature(event)
            case ToolArgumentsDelta():
                self._parts[event.index].arguments.append(event.json_fragment)
                return []
            case PartEnd():
                return self._on_part_end(event.index)
            case UsageUpdate():
                return [self._frame({"usageMetadata": render_usage(event.usage)})]
            case _:
                return [self._frame(self._final_chunk(event))]

    def finish(self) -> list[bytes]:
        """End of stream; Gemini has no closing sentinel, so there is nothing to add."""
        return []

    def error(self, err: GatewayError) -> bytes:
        """An error sent in-band after the stream has begun, in Gemini's error shape."""
        _, body = render_error(err)
        return b"data: " + orjson.dumps(body) + SSE_EOL + SSE_EOL

    def _on_signature(self, event: SignatureDelta) -> list[bytes]:
        part = self._parts[event.index]
        if part.kind == "tool_call" or not part.has_output:
            part.signature = (part.signature or "") + event.signature
            return []
        return self._emit_part(event.index, {"text": "", "thought": True, "thoughtSignature": event.signature})

    def _on_part_end(self, index: int) -> list[bytes]:
        part = self._parts[index]
        if part.kind == "tool_call":
            call = ToolCallPart(call_id=part.call_id, name=part.name, arguments="".join(part.arguments))
            return self._emit_part(index, render_tool_call(call))
        if part.has_output or part.signature is None:
            return []
        # Only a signature and no text: the signature of a plain text part (see parts.parse_model_part).
        return self._emit_part(index, {"text": ""})

    def _emit_part(self, index: int, rendered: JSONObject) -> list[bytes]:
        part = self._parts[index]
        if part.signature is not None and not part.has_output:
            rendered["thoughtSignature"] = part.signature
        part.has_output = True
        content: JSONObject = {"role": "model", "parts": [rendered]}
        return [self._frame({"candidates": [{"content": content, "index": 0}]})]

    def _final_chunk(self, event: MessageEnd) -> JSONObject:
        chunk: JSONObject = {"candidates": [{"finishReason": render_finish(event.finish_reason), "index": 0}]}
        if event.usage is not None:
            chunk["usageMetadata"] = render_usage(event.usage)
        return chunk

    def _frame(self, chunk: JSONObject) -> bytes:
        chunk.setdefault("modelVersion", self._model)
        chunk.setdefault("responseId", self._response_id)
        return b"data: " + orjson.dumps(chunk) + SSE_EOL + SSE_EOL
