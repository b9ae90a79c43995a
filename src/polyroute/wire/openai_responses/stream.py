"""OpenAI Responses SSE streams <-> canonical ``StreamEvent``s (sans-IO).

Spec: https://platform.openai.com/docs/api-reference/responses-streaming and
https://platform.openai.com/docs/guides/streaming-responses
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import orjson

from polyroute.core.events import (
    MessageEnd,
    MessageStart,
    PartEnd,
    PartStart,
    ReasoningDelta,
    StreamEvent,
    StreamPartKind,
    TextDelta,
    ToolArgumentsDelta,
    UsageUpdate,
)
from polyroute.core.messages import ChatResponse, FinishReason, ReasoningPart, TextPart, ToolCallPart, Usage
from polyroute.errors import GatewayError, InvalidRequestError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import as_list, as_object, decode_event, fail, field_path, opt_int, opt_str, req_str
from polyroute.wire.openai_responses.errors import failure_error, in_band_error
from polyroute.wire.openai_responses.request import parse_function_call, parse_reasoning_item
from polyroute.wire.openai_responses.response import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    MESSAGE_TEXT_FIELDS,
    call_item_prefix,
    created_at,
    incomplete_reason,
    item_id,
    message_item,
    output_text,
    parse_finish_reason,
    parse_usage,
    reasoning_item,
    reasoning_item_id,
    render_response,
    render_usage,
    response_object,
    tool_call_item,
)
from polyroute.wire.openai_responses.tools import (
    HOSTED_CALL_ITEMS,
    NO_SHAPES,
    ToolShape,
    ToolShapes,
    custom_input,
)
from polyroute.wire.sse import SSEEvent, encode_event

_DONE = "[DONE]"
"""Some Responses-compatible servers end with Chat Completions' sentinel; it carries nothing and is skipped."""
_END_EVENTS: dict[str, str] = {
    COMPLETED: "response.completed",
    "incomplete": "response.incomplete",
    FAILED: "response.failed",
}
"""Final ``status`` → the event that carries the finished response."""

_PartKey = tuple[int, int]
"""An upstream part: (``output_index``, ``content_index``); a function call's content index is -1."""
_CALL = -1


@dataclass(slots=True)
class _OpenPart:
    """A canonical part the parser has started and not yet ended."""

    index: int
    chunks: list[str] = field(default_factory=list)


class StreamParser:
    """Responses SSE events → canonical StreamEvents. Sans-IO: feed() per event, finish() at end.

    Dispatches on the ``type`` inside ``data`` and skips event types it does not use. Message content parts and
    function calls stream as they arrive. A reasoning item is emitted whole at its ``response.output_item.done``:
    only there is its ``encrypted_content`` complete, and the canonical part must carry it from its start.
    """

    __slots__ = ("_closed", "_has_tool_calls", "_is_ended", "_next_index", "_open", "_provider", "_started")

    def __init__(self, *, provider: str = "openai") -> None:
        """Create a parser; ``provider`` names the upstream in errors raised for in-band failures."""
        self._provider = provider
        self._started = False
        self._is_ended = False
        self._next_index = 0
        self._open: dict[_PartKey, _OpenPart] = {}
        self._closed: set[_PartKey] = set()
        self._has_tool_calls = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Translate one SSE event.

        Raises:
            UpstreamStatusError: the upstream sent ``response.failed`` or an ``error`` event.
            ValueError: the event is not well-formed Responses streaming JSON, or came after the response ended.
        """
        if event.data.strip() == _DONE:
            return []
        if self._is_ended:
            raise ValueError("Responses stream event after the response ended")
        return decode_event(event.data, "Responses", self._dispatch)

    def finish(self) -> list[StreamEvent]:
        """End of the stream; nothing is pending, since every event translates as it arrives.

        Raises:
            ValueError: the stream ended before ``response.completed`` or ``response.incomplete``.
        """
        if not self._is_ended:
            raise ValueError("Responses stream ended before response.completed")
        return []

    def _dispatch(self, data: JSONObject) -> list[StreamEvent]:
        event_type = req_str(data, "type", "data")
        if event_type == "error":
            error: JSONObject = {key: data[key] for key in ("code", "message", "param") if key in data}
            raise in_band_error(error, provider=self._provider)
        handler = _HANDLERS.get(event_type)
        if handler is None:  # summaries, annotations, hosted tools and event types newer than this parser
            return []
        if not self._started and event_type not in _START_EVENTS:
            raise InvalidRequestError(f"type: {event_type} before response.created", param="type")
        return handler(self, data)

    def _on_response_start(self, data: JSONObject) -> list[StreamEvent]:
        if self._started:
            return []
        self._started = True
        response = as_object(data.get("response"), "response")
        return [
            MessageStart(
                id=req_str(response, "id", "response"),
                model=req_str(response, "model", "response"),
                created=created_at(response, "response"),
            )
        ]

    def _on_item_added(self, data: JSONObject) -> list[StreamEvent]:
        output_index = _index(data, "output_index")
        item = as_object(data.get("item"), "item")
        item_type = req_str(item, "type", "item")
        if item_type == "function_call":
            call = parse_function_call({"arguments": "", **item}, "item")
            return self._start_call(output_index, call)
        if item_type not in _OTHER_ITEMS:
            fail("item.type", f"unsupported output item type {item_type!r}")
        return []

    def _on_content_added(self, data: JSONObject) -> list[StreamEvent]:
        part = as_object(data.get("part"), "part")
        part_type = req_str(part, "type", "part")
        if part_type == "reasoning_text":  # reasoning arrives whole with its item
            return []
        if part_type not in MESSAGE_TEXT_FIELDS:
            fail("part.type", f"unsupported content part type {part_type!r}")
        key = (_index(data, "output_index"), _index(data, "content_index"))
        return [*self._start_text(key), *self._text(key, opt_str(part, MESSAGE_TEXT_FIELDS[part_type], "part") or "")]

    def _on_text_delta(self, data: JSONObject) -> list[StreamEvent]:
        key = (_index(data, "output_index"), _index(data, "content_index"))
        events = [] if key in self._open else self._start_text(key)
        return [*events, *self._text(key, req_str(data, "delta", "data"))]

    def _on_text_done(self, data: JSONObject) -> list[StreamEvent]:
        key = (_index(data, "output_index"), _index(data, "content_index"))
        field_name = "refusal" if req_str(data, "type", "data") == "response.refusal.done" else "text"
        return self._catch_up(key, req_str(data, field_name, "data"))

    def _on_content_done(self, data: JSONObject) -> list[StreamEvent]:
        key = (_index(data, "output_index"), _index(data, "content_index"))
        part = as_object(data.get("part"), "part")
        part_type = req_str(part, "type", "part")
        if part_type not in MESSAGE_TEXT_FIELDS:
            return []
        return self._end_text(key, req_str(part, MESSAGE_TEXT_FIELDS[part_type], "part"))

    def _on_arguments_delta(self, data: JSONObject) -> list[StreamEvent]:
        key = (_index(data, "output_index"), _CALL)
        open_part = self._open.get(key)
        if open_part is None:
            raise InvalidRequestError(
                "output_index: arguments for a function call that is not open", param="output_index"
            )
        fragment = req_str(data, "delta", "data")
        open_part.chunks.append(fragment)
        return [ToolArgumentsDelta(index=open_part.index, json_fragment=fragment)] if fragment else []

    def _on_arguments_done(self, data: JSONObject) -> list[StreamEvent]:
        return self._catch_up((_index(data, "output_index"), _CALL), req_str(data, "arguments", "data"))

    def _on_item_done(self, data: JSONObject) -> list[StreamEvent]:
        output_index = _index(data, "output_index")
        item = as_object(data.get("item"), "item")
        item_type = req_str(item, "type", "item")
        if item_type == "function_call":
            key = (output_index, _CALL)
            call = parse_function_call(item, "item")
            events = [] if key in self._open or key in self._closed else self._start_call(output_index, call)
            return [*events, *self._end(key, call.arguments)]
        if item_type == "message":
            return self._end_message(output_index, item)
        if item_type == "reasoning":
            return self._reasoning(parse_reasoning_item(item, "item"))
        if item_type not in HOSTED_CALL_ITEMS:  # a hosted tool the upstream ran: its results are in the answer
            fail("item.type", f"unsupported output item type {item_type!r}")
        return []

    def _on_response_end(self, data: JSONObject) -> list[StreamEvent]:
        response = as_object(data.get("response"), "response")
        self._is_ended = True
        events: list[StreamEvent] = [PartEnd(index=part.index) for part in sorted(self._open.values(), key=_order)]
        self._open.clear()
        status = opt_str(response, "status", "response")
        finish = parse_finish_reason(
            status, incomplete_reason(response, "response"), has_tool_calls=self._has_tool_calls
        )
        if finish is None:  # an incomplete response that gives no reason was cut short
            finish = (
                FinishReason.LENGTH if req_str(data, "type", "data") == "response.incomplete" else FinishReason.STOP
            )
        usage = parse_usage(response.get("usage"))
        if usage == Usage():
            events.append(MessageEnd(finish_reason=finish))
        else:
            events += [UsageUpdate(usage=usage), MessageEnd(finish_reason=finish, usage=usage)]
        return events

    def _on_failed(self, data: JSONObject) -> NoReturn:
        response = as_object(data.get("response"), "response")
        error = response.get("error")
        failure: JSONObject = {"message": "the upstream response failed"}
        if error is not None:
            failure = as_object(error, "response.error")
        raise in_band_error(failure, provider=self._provider)

    # --- parts ---

    def _new_index(self, key: _PartKey) -> int:
        if key in self._open or key in self._closed:
            raise InvalidRequestError(f"output_index: part {key} opened twice", param="output_index")
        index = self._next_index
        self._next_index += 1
        self._open[key] = _OpenPart(index=index)
        return index

    def _start_text(self, key: _PartKey) -> list[StreamEvent]:
        return [PartStart(index=self._new_index(key), part_kind="text")]

    def _start_call(self, output_index: int, call: ToolCallPart) -> list[StreamEvent]:
        self._has_tool_calls = True
        key = (output_index, _CALL)
        events: list[StreamEvent] = [
            PartStart(index=self._new_index(key), part_kind="tool_call", call_id=call.call_id, name=call.name)
        ]
        if call.arguments:
            self._open[key].chunks.append(call.arguments)
            events.append(ToolArgumentsDelta(index=self._open[key].index, json_fragment=call.arguments))
        return events

    def _text(self, key: _PartKey, text: str) -> list[StreamEvent]:
        if not text:
            return []
        open_part = self._open[key]
        open_part.chunks.append(text)
        return [TextDelta(index=open_part.index, text=text)]

    def _catch_up(self, key: _PartKey, final: str) -> list[StreamEvent]:
        """The part of ``final`` that its deltas did not bring, for servers that skip or shorten deltas."""
        open_part = self._open.get(key)
        if open_part is None:
            return []
        sent = "".join(open_part.chunks)
        if len(final) <= len(sent) or not final.startswith(sent):
            return []
        rest = final[len(sent) :]
        open_part.chunks.append(rest)
        if key[1] == _CALL:
            return [ToolArgumentsDelta(index=open_part.index, json_fragment=rest)]
        return [TextDelta(index=open_part.index, text=rest)]

    def _end(self, key: _PartKey, final: str) -> list[StreamEvent]:
        events = self._catch_up(key, final)
        open_part = self._open.pop(key, None)
        if open_part is not None:
            self._closed.add(key)
            events.append(PartEnd(index=open_part.index))
        return events

    def _end_text(self, key: _PartKey, final: str) -> list[StreamEvent]:
        if key in self._open or key in self._closed:
            return self._end(key, final)
        # A part seen only now, finished: start it and give it its whole text at once.
        return [*self._start_text(key), *self._text(key, final), *self._end(key, final)]

    def _end_message(self, output_index: int, item: JSONObject) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for content_index, value in enumerate(as_list(item.get("content"), "item.content")):
            param = f"item.content[{content_index}]"
            part = as_object(value, param)
            part_type = req_str(part, "type", param)
            if part_type not in MESSAGE_TEXT_FIELDS:
                fail(field_path(param, "type"), f"unsupported content part type {part_type!r}")
            events.extend(
                self._end_text((output_index, content_index), req_str(part, MESSAGE_TEXT_FIELDS[part_type], param))
            )
        return events

    def _reasoning(self, part: ReasoningPart) -> list[StreamEvent]:
        index = self._next_index
        self._next_index += 1
        events: list[StreamEvent] = [
            PartStart(index=index, part_kind="reasoning", signature=part.signature, redacted=part.redacted)
        ]
        if part.text:
            events.append(ReasoningDelta(index=index, text=part.text))
        events.append(PartEnd(index=index))
        return events


def _order(part: _OpenPart) -> int:
    return part.index


def _index(data: JSONObject, key: str) -> int:
    value = opt_int(data, key, "data")
    if value is None:
        raise InvalidRequestError(f"{key}: is required", param=key)
    return value


_START_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
_OTHER_ITEMS = frozenset({"message", "reasoning"}) | HOSTED_CALL_ITEMS
"""Output item types whose ``response.output_item.added`` starts no canonical part."""
_HANDLERS: dict[str, Callable[[StreamParser, JSONObject], list[StreamEvent]]] = {
    "response.created": StreamParser._on_response_start,
    "response.in_progress": StreamParser._on_response_start,
    "response.queued": StreamParser._on_response_start,
    "response.output_item.added": StreamParser._on_item_added,
    "response.content_part.added": StreamParser._on_content_added,
    "response.output_text.delta": StreamParser._on_text_delta,
    "response.refusal.delta": StreamParser._on_text_delta,
    "response.output_text.done": StreamParser._on_text_done,
    "response.refusal.done": StreamParser._on_text_done,
    "response.content_part.done": StreamParser._on_content_done,
    "response.function_call_arguments.delta": StreamParser._on_arguments_delta,
    "response.function_call_arguments.done": StreamParser._on_arguments_done,
    "response.output_item.done": StreamParser._on_item_done,
    "response.completed": StreamParser._on_response_end,
    "response.incomplete": StreamParser._on_response_end,
    "response.failed": StreamParser._on_failed,
}
"""Event ``type`` → handler. ``error`` is handled first; any other type is skipped."""


# --- rendering -----------------------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _Item:
    """One output item the renderer has opened: a canonical part as it streams."""

    output_index: int
    item_id: str
    part_kind: StreamPartKind
    call_id: str = ""
    name: str = ""
    shape: ToolShape | None = None
    """A tool call's shape as the client declared the tool; None for a function tool (and other parts)."""
    signature: str | None = None
    redacted: str | None = None
    chunks: list[str] = field(default_factory=list)
    has_summary: bool = False
    is_done: bool = False

    def part(self) -> TextPart | ToolCallPart | ReasoningPart:
        text = "".join(self.chunks)
        if self.part_kind == "text":
            return TextPart(text=text)
        if self.part_kind == "tool_call":
            return ToolCallPart(call_id=self.call_id, name=self.name, arguments=text)
        return ReasoningPart(text=text, signature=self.signature, redacted=self.redacted)

    def json(self) -> JSONObject:
        """The item as ``response.output_item.done`` and the final response show it."""
        part = self.part()
        if isinstance(part, TextPart):
            return message_item(self.item_id, part.text)
        if isinstance(part, ToolCallPart):
            return tool_call_item(self.item_id, part, self.shape)
        return reasoning_item(self.item_id, part)

    @property
    def is_custom(self) -> bool:
        """A custom tool's call: its ``input`` is read from the whole arguments, so it is sent at the end."""
        return self.shape is not None and self.shape.custom


class StreamRenderer:
    """Canonical StreamEvents → Responses SSE bytes. Sans-IO: feed() per event, finish() at end.

    Emits the API's own typed events, each with the next ``sequence_number``: ``response.created`` and
    ``response.in_progress``; per part an output item (a text part is a message with one ``output_text``), its
    deltas and its ``done`` events; and finally ``response.completed`` (``response.incomplete`` for
    ``LENGTH`` and ``CONTENT_FILTER``, ``response.failed`` for ``ERROR``) carrying the same response object
    ``render_response`` would give for what was streamed.

    Tool calls take the shapes in ``tool_shapes``: a namespace member's call is a ``function_call`` with
    ``namespace``; a custom tool's is a ``custom_tool_call`` whose ``input`` is sent whole when the call ends
    (one ``response.custom_tool_call_input.delta``, then ``.done``), since it is read from the complete arguments.
    """

    __slots__ = ("_items", "_now_s", "_order", "_sequence", "_shapes", "_start", "_usage")

    def __init__(self, *, now_s: int = 0, tool_shapes: ToolShapes = NO_SHAPES) -> None:
        """Create a renderer; ``now_s`` is ``created_at`` when the upstream gave none (wire/ reads no clock)."""
        self._now_s = now_s
        self._shapes = tool_shapes
        self._sequence = 0
        self._start = MessageStart(id="", model="")
        self._items: dict[int, _Item] = {}
        """Canonical part index → its output item."""
        self._order: list[_Item] = []
        """Output items by ``output_index``."""
        self._usage: Usage | None = None

    def feed(self, event: StreamEvent) -> list[bytes]:
        """Translate one canonical event into zero or more SSE frames."""
        match event:
            case MessageStart():
                self._start = event
                response = self._response(IN_PROGRESS, [])
                return [
                    self._frame("response.created", response=response),
                    self._frame("response.in_progress", response=response),
                ]
            case PartStart():
                return self._part_start(event)
            case TextDelta() | ReasoningDelta() | ToolArgumentsDelta():
                return self._delta(event)
            case PartEnd():
                return self._part_end(self._items[event.index])
            case UsageUpdate():
                self._usage = event.usage
                return []
            case MessageEnd():
                return self._message_end(event)
            case _:  # SignatureDelta: a reasoning item's id is settled when it opens; Responses has no signatures
                return []

    def finish(self) -> list[bytes]:
        """End of the canonical stream; every frame was written as its event arrived, so nothing is pending."""
        return []

    def error(self, err: GatewayError) -> bytes:
        """A ``response.failed`` event for a failure after the stream has begun, with the items finished so far."""
        response = self._response(FAILED, [item.json() for item in self._order if item.is_done])
        response["error"] = failure_error(err)
        response["usage"] = None if self._usage is None else render_usage(self._usage)
        return self._frame("response.failed", response=response)

    def _frame(self, event_type: str, **fields: JSONValue) -> bytes:
        payload: JSONObject = {"type": event_type, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return encode_event(orjson.dumps(payload), event=event_type)

    def _response(self, status: str, output: list[JSONValue]) -> JSONObject:
        start = self._start
        created = start.created if start.created is not None else self._now_s
        return response_object(start.id, start.model, created, status=status, output=output)

    def _part_start(self, event: PartStart) -> list[bytes]:
        output_index = len(self._order)
        response_id = self._start.id
        name = event.name or ""
        shape = self._shapes.get(name) if event.part_kind == "tool_call" else None
        if event.part_kind == "reasoning":
            new_id = reasoning_item_id(event.signature, response_id, output_index)
        else:
            prefix = "msg" if event.part_kind == "text" else call_item_prefix(shape)
            new_id = item_id(prefix, response_id, output_index)
        item = _Item(
            output_index=output_index,
            item_id=new_id,
            part_kind=event.part_kind,
            call_id=event.call_id or "",
            name=name,
            shape=shape,
            signature=event.signature,
            redacted=event.redacted,
        )
        self._items[event.index] = item
        self._order.append(item)
        if item.part_kind == "text":
            added = message_item(item.item_id, None, status=IN_PROGRESS)
        elif item.part_kind == "tool_call":
            call = ToolCallPart(call_id=item.call_id, name=item.name, arguments="")
            added = tool_call_item(item.item_id, call, shape, status=IN_PROGRESS)
        else:
            added = reasoning_item(item.item_id, None)
        frames = [self._frame("response.output_item.added", output_index=output_index, item=added)]
        if item.part_kind == "text":
            frames.append(self._frame("response.content_part.added", **_content(item), part=output_text("")))
        return frames

    def _delta(self, event: TextDelta | ReasoningDelta | ToolArgumentsDelta) -> list[bytes]:
        item = self._items[event.index]
        delta = event.json_fragment if isinstance(event, ToolArgumentsDelta) else event.text
        if not delta:
            return []
        item.chunks.append(delta)
        location: JSONObject = {"item_id": item.item_id, "output_index": item.output_index}
        if isinstance(event, TextDelta):
            return [self._frame("response.output_text.delta", **_content(item), delta=delta, logprobs=[])]
        if isinstance(event, ToolArgumentsDelta):
            if item.is_custom:
                return []
            return [self._frame("response.function_call_arguments.delta", **location, delta=delta)]
        frames: list[bytes] = []
        if not item.has_summary:
            item.has_summary = True
            empty = _summary("")
            frames.append(self._frame("response.reasoning_summary_part.added", **location, summary_index=0, part=empty))
        frames.append(self._frame("response.reasoning_summary_text.delta", **location, summary_index=0, delta=delta))
        return frames

    def _part_end(self, item: _Item) -> list[bytes]:
        item.is_done = True
        text = "".join(item.chunks)
        location: JSONObject = {"item_id": item.item_id, "output_index": item.output_index}
        frames: list[bytes] = []
        if item.part_kind == "text":
            frames.append(self._frame("response.output_text.done", **_content(item), text=text, logprobs=[]))
            frames.append(self._frame("response.content_part.done", **_content(item), part=output_text(text)))
        elif item.part_kind == "tool_call":
            frames.extend(self._call_end(item, text, location))
        elif item.has_summary:
            frames.append(self._frame("response.reasoning_summary_text.done", **location, summary_index=0, text=text))
            frames.append(
                self._frame("response.reasoning_summary_part.done", **location, summary_index=0, part=_summary(text))
            )
        frames.append(self._frame("response.output_item.done", output_index=item.output_index, item=item.json()))
        return frames

    def _call_end(self, item: _Item, arguments: str, location: JSONObject) -> list[bytes]:
        if not item.is_custom:
            name = item.name if item.shape is None else item.shape.name  # a namespace member's own name
            return [self._frame("response.function_call_arguments.done", **location, arguments=arguments, name=name)]
        text = custom_input(arguments)
        frames = [self._frame("response.custom_tool_call_input.delta", **location, delta=text)] if text else []
        frames.append(self._frame("response.custom_tool_call_input.done", **location, input=text))
        return frames

    def _message_end(self, event: MessageEnd) -> list[bytes]:
        frames: list[bytes] = []
        for item in self._order:
            if not item.is_done:  # parts left open end with the response
                frames.extend(self._part_end(item))
        start = self._start
        usage = event.usage or self._usage or Usage()
        response = ChatResponse(
            id=start.id,
            model=start.model,
            created=start.created,
            parts=tuple(item.part() for item in self._order),
            finish_reason=event.finish_reason,
            usage=usage,
        )
        body = render_response(response, now_s=self._now_s, tool_shapes=self._shapes)
        status = body["status"]
        assert isinstance(status, str)  # render_response always writes one of _END_EVENTS' keys
        frames.append(self._frame(_END_EVENTS[status], response=body))
        return frames


def _content(item: _Item) -> JSONObject:
    return {"item_id": item.item_id, "output_index": item.output_index, "content_index": 0}


def _summary(text: str) -> JSONObject:
    return {"type": "summary_text", "text": text}
