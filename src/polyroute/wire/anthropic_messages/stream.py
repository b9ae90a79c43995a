"""Anthropic Messages SSE streams <-> canonical ``StreamEvent``s (sans-IO).

Spec: https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from typing import NoReturn

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
from polyroute.core.messages import FinishReason, Usage
from polyroute.errors import GatewayError, InvalidRequestError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.anthropic_messages.errors import error_status, parse_error, render_error
from polyroute.wire.anthropic_messages.response import (
    parse_stop_reason,
    parse_usage,
    render_stop_reason,
    render_usage,
    usage_fields,
)
from polyroute.wire.fields import as_object, decode_event, opt_str, req_str
from polyroute.wire.sse import SSEEvent, encode_event

_PART_KINDS: dict[str, StreamPartKind] = {
    "text": "text",
    "tool_use": "tool_call",
    "thinking": "reasoning",
    "redacted_thinking": "reasoning",
}
"""``content_block.type`` → canonical part kind. Other (server-tool) blocks are rejected as a protocol error."""
_DELTA_FIELDS: dict[str, str] = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
    "signature_delta": "signature",
}
"""``content_block_delta.delta.type`` → the field holding its text. Other delta types (citations) are skipped."""


class StreamParser:
    """Anthropic SSE events → canonical StreamEvents. Sans-IO: feed() per event, finish() at end.

    Dispatches on the ``type`` inside ``data`` and skips unknown event types, as Anthropic asks of clients.
    """

    __slots__ = ("_is_stopped", "_provider", "_stop_reason", "_usage")

    def __init__(self, *, provider: str = "anthropic") -> None:
        """Create a parser; ``provider`` names the upstream in errors raised for in-band ``error`` events."""
        self._provider = provider
        self._usage: dict[str, int] | None = None
        self._stop_reason: FinishReason | None = None
        self._is_stopped = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Translate one SSE event.

        Raises:
            UpstreamStatusError: the upstream sent an ``error`` event (mapped like an HTTP error of that type).
            ValueError: the event is not well-formed Anthropic streaming JSON.
        """
        return decode_event(event.data, "Anthropic", self._dispatch)

    def finish(self) -> list[StreamEvent]:
        """End of the stream; nothing is pending, since every event translates as it arrives.

        Raises:
            ValueError: the stream ended before ``message_stop``.
        """
        if not self._is_stopped:
            raise ValueError("Anthropic stream ended before message_stop")
        return []

    def _dispatch(self, data: JSONObject) -> list[StreamEvent]:
        match req_str(data, "type", "data"):
            case "message_start":
                return self._on_message_start(as_object(data.get("message"), "message"))
            case "content_block_start":
                return _on_block_start(_index(data), as_object(data.get("content_block"), "content_block"))
            case "content_block_delta":
                return _on_block_delta(_index(data), as_object(data.get("delta"), "delta"))
            case "content_block_stop":
                return [PartEnd(index=_index(data))]
            case "message_delta":
                return self._on_message_delta(data)
            case "message_stop":
                self._is_stopped = True
                finish = self._stop_reason or FinishReason.ERROR
                return [MessageEnd(finish_reason=finish, usage=self._current_usage())]
            case "error":
                self._raise_error(as_object(data.get("error"), "error"))
            case _:  # ping and event types newer than this parser
                return []

    def _on_message_start(self, message: JSONObject) -> list[StreamEvent]:
        events: list[StreamEvent] = [
            MessageStart(id=req_str(message, "id", "message"), model=req_str(message, "model", "message"))
        ]
        if message.get("usage") is not None:
            self._usage = usage_fields(message["usage"], "message.usage")
            events.append(UsageUpdate(usage=parse_usage(self._usage)))
        return events

    def _on_message_delta(self, data: JSONObject) -> list[StreamEvent]:
        delta = as_object(data.get("delta", {}), "delta")
        stop_reason = parse_stop_reason(opt_str(delta, "stop_reason", "delta"))
        if stop_reason is not None:
            self._stop_reason = stop_reason
        if data.get("usage") is None:
            return []
        # Anthropic's message_delta usage is cumulative: its fields replace those from message_start, never add.
        # https://docs.anthropic.com/en/docs/build-with-claude/streaming#event-types
        self._usage = {**(self._usage or {}), **usage_fields(data["usage"], "usage")}
        return [UsageUpdate(usage=parse_usage(self._usage))]

    def _current_usage(self) -> Usage | None:
        return None if self._usage is None else parse_usage(self._usage)

    def _raise_error(self, error: JSONObject) -> NoReturn:
        error_type = opt_str(error, "type", "error")
        body = orjson.dumps({"type": "error", "error": error})
        raise parse_error(error_status(error_type), body, {}, provider=self._provider)


def _index(data: JSONObject) -> int:
    index = data.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise InvalidRequestError("index: must be an integer", param="index")
    return index


def _on_block_start(index: int, block: JSONObject) -> list[StreamEvent]:
    block_type = req_str(block, "type", "content_block")
    part_kind = _PART_KINDS.get(block_type)
    if part_kind is None:
        raise InvalidRequestError(f"content_block.type: unsupported {block_type!r}", param="content_block.type")
    if part_kind == "tool_call":
        name = req_str(block, "name", "content_block")
        return [PartStart(index=index, part_kind=part_kind, call_id=req_str(block, "id", "content_block"), name=name)]
    if block_type == "redacted_thinking":
        return [PartStart(index=index, part_kind=part_kind, redacted=req_str(block, "data", "content_block"))]
    signature = opt_str(block, "signature", "content_block") or None
    events: list[StreamEvent] = [PartStart(index=index, part_kind=part_kind, signature=signature)]
    # Blocks start empty in practice; text already present at the start is not dropped if that ever changes.
    text = opt_str(block, "text" if part_kind == "text" else "thinking", "content_block")
    if text:
        events.append(_text_delta(part_kind, index, text))
    return events


def _text_delta(part_kind: StreamPartKind, index: int, text: str) -> StreamEvent:
    return TextDelta(index=index, text=text) if part_kind == "text" else ReasoningDelta(index=index, text=text)


def _on_block_delta(index: int, delta: JSONObject) -> list[StreamEvent]:
    delta_type = req_str(delta, "type", "delta")
    field = _DELTA_FIELDS.get(delta_type)
    if field is None:
        return []
    value = req_str(delta, field, "delta")
    match delta_type:
        case "text_delta":
            return [TextDelta(index=index, text=value)]
        case "input_json_delta":
            return [ToolArgumentsDelta(index=index, json_fragment=value)]
        case "thinking_delta":
            return [ReasoningDelta(index=index, text=value)]
        case _:  # signature_delta
            return [SignatureDelta(index=index, signature=value)]


def _frame(data: JSONObject) -> bytes:
    event_type = data["type"]
    assert isinstance(event_type, str)  # every frame built here names its type
    return encode_event(orjson.dumps(data), event=event_type)


class StreamRenderer:
    """Canonical StreamEvents → Anthropic SSE bytes. Sans-IO: feed() per event, finish() at end.

    ``message_start`` is held back one event so that a ``UsageUpdate`` right after ``MessageStart`` fills
    its ``usage``; other ``UsageUpdate``s are carried in the closing ``message_delta``.
    """

    __slots__ = ("_part_kinds", "_pending_start", "_usage")

    def __init__(self) -> None:
        self._pending_start: MessageStart | None = None
        self._usage: Usage | None = None
        self._part_kinds: dict[int, StreamPartKind] = {}

    def feed(self, event: StreamEvent) -> list[bytes]:
        """Translate one canonical event into zero or more SSE frames."""
        if isinstance(event, MessageStart):
            self._pending_start = event
            return []
        frames: list[bytes] = []
        if self._pending_start is not None:
            start, self._pending_start = self._pending_start, None
            if isinstance(event, UsageUpdate):
                self._usage = event.usage
                return [self._message_start(start, event.usage)]
            frames.append(self._message_start(start, None))
        frames.extend(self._render(event))
        return frames

    def finish(self) -> list[bytes]:
        """Flush a ``message_start`` still held back (a stream that ended right after it)."""
        if self._pending_start is None:
            return []
        start, self._pending_start = self._pending_start, None
        return [self._message_start(start, None)]

    def error(self, err: GatewayError) -> bytes:
        """An in-band ``event: error`` for a failure after the stream has begun."""
        _, body = render_error(err)
        return _frame(body)

    def _message_start(self, start: MessageStart, usage: Usage | None) -> bytes:
        # Anthropic's SDKs require usage on message_start; zeros stand in until message_delta brings the counts.
        rendered: JSONValue = render_usage(usage) if usage is not None else {"input_tokens": 0, "output_tokens": 0}
        message: JSONObject = {
            "id": start.id,
            "type": "message",
            "role": "assistant",
            "model": start.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": rendered,
        }
        return _frame({"type": "message_start", "message": message})

    def _render(self, event: StreamEvent) -> list[bytes]:
        match event:
            case PartStart():
                self._part_kinds[event.index] = event.part_kind
                return [_frame({"type": "content_block_start", "index": event.index, "content_block": _block(event)})]
            case TextDelta():
                return [_delta(event.index, {"type": "text_delta", "text": event.text})]
            case ReasoningDelta():
                return [_delta(event.index, {"type": "thinking_delta", "thinking": event.text})]
            case ToolArgumentsDelta():
                return [_delta(event.index, {"type": "input_json_delta", "partial_json": event.json_fragment})]
            case SignatureDelta():
                return self._signature(event)
            case PartEnd():
                return [_frame({"type": "content_block_stop", "index": event.index})]
            case UsageUpdate():
                self._usage = event.usage
                return []
            case _:  # MessageEnd; feed() consumes every MessageStart
                assert isinstance(event, MessageEnd)
                return self._message_end(event)

    def _signature(self, event: SignatureDelta) -> list[bytes]:
        # Anthropic signs thinking blocks only; a tool-call signature (Gemini) has nowhere to go.
        if self._part_kinds.get(event.index) != "reasoning":
            return []
        return [_delta(event.index, {"type": "signature_delta", "signature": event.signature})]

    def _message_end(self, event: MessageEnd) -> list[bytes]:
        usage = event.usage or self._usage
        delta: JSONObject = {"stop_reason": render_stop_reason(event.finish_reason), "stop_sequence": None}
        # message_delta must carry usage.output_tokens for the SDKs; 0 stands in when nothing was reported.
        rendered: JSONValue = render_usage(usage) if usage is not None else {"output_tokens": 0}
        return [
            _frame({"type": "message_delta", "delta": delta, "usage": rendered}),
            _frame({"type": "message_stop"}),
        ]


def _delta(index: int, delta: JSONObject) -> bytes:
    return _frame({"type": "content_block_delta", "index": index, "delta": delta})


def _block(event: PartStart) -> JSONObject:
    if event.part_kind == "text":
        return {"type": "text", "text": ""}
    if event.part_kind == "tool_call":
        return {"type": "tool_use", "id": event.call_id, "name": event.name, "input": {}}
    if event.redacted is not None:
        return {"type": "redacted_thinking", "data": event.redacted}
    return {"type": "thinking", "thinking": "", "signature": event.signature or ""}
