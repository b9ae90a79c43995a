"""OpenAI Chat Completions SSE streams (``chat.completion.chunk``) <-> canonical ``StreamEvent``s (sans-IO).

Spec: https://platform.openai.com/docs/api-reference/chat-streaming and
https://platform.openai.com/docs/guides/function-calling#streaming
"""

from __future__ import annotations

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
from polyroute.core.messages import FinishReason, Usage
from polyroute.errors import GatewayError, InvalidRequestError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import as_list, as_object, decode_event, opt_int, opt_str, req_str
from polyroute.wire.openai_chat.errors import parse_error, render_stream_error
from polyroute.wire.openai_chat.relay import parse_usage
from polyroute.wire.openai_chat.response import (
    parse_finish_reason,
    reasoning_text,
    render_finish_reason,
    render_usage,
)
from polyroute.wire.sse import SSEEvent

DONE = "[DONE]"
"""The ``data`` of the sentinel event that ends an OpenAI stream."""
_DONE_FRAME = b"data: [DONE]\n\n"
_IN_BAND_ERROR_STATUS = 500
"""Status assumed for a ``data: {"error": ...}`` event: the HTTP status was already 200 when it arrived."""


class StreamParser:
    """OpenAI SSE events → canonical StreamEvents. Sans-IO: feed() per event, finish() at end.

    Only the first choice (``index`` 0) is followed. Parts are numbered in order of first appearance: the text
    part on the first non-empty ``content``, a reasoning part on the first ``reasoning_content``/``reasoning``
    delta, and a tool-call part on the first delta of each new ``tool_calls[].index``. A ``finish_reason``
    closes every open part; ``MessageEnd`` follows at ``[DONE]`` (or ``finish()``), after any usage chunk.
    """

    __slots__ = ("_finish_reason", "_is_ended", "_next_index", "_open", "_provider", "_started", "_tools", "_usage")

    def __init__(self, *, provider: str = "openai") -> None:
        """Create a parser; ``provider`` names the upstream in errors raised for in-band ``error`` events."""
        self._provider = provider
        self._started = False
        self._is_ended = False
        self._next_index = 0
        self._open: dict[str, int] = {}
        """Open part key (``text``, ``reasoning`` or ``tool:<index>``) → canonical part index."""
        self._tools: set[int] = set()
        self._finish_reason: FinishReason | None = None
        self._usage: Usage | None = None

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Translate one SSE event.

        Raises:
            UpstreamStatusError: the upstream sent an in-band ``{"error": ...}`` event.
            ValueError: the event is not well-formed OpenAI streaming JSON, or arrived after the end.
        """
        if self._is_ended:
            raise ValueError("OpenAI stream event after [DONE]")
        if event.data.strip() == DONE:
            return self._end("[DONE]")
        return decode_event(event.data, "OpenAI", self._on_chunk)

    def finish(self) -> list[StreamEvent]:
        """End of the stream: emits ``MessageEnd`` if ``[DONE]`` never came but a ``finish_reason`` did.

        Raises:
            ValueError: the stream was cut off (no ``[DONE]`` and no ``finish_reason``).
        """
        if self._is_ended:
            return []
        if self._finish_reason is None:
            raise ValueError("OpenAI stream ended before a finish_reason")
        return self._end("the end of the stream")

    def _end(self, where: str) -> list[StreamEvent]:
        if not self._started:
            raise ValueError(f"OpenAI stream reached {where} before any chunk")
        self._is_ended = True
        events = self._close_parts()
        # A [DONE] without any finish_reason: the upstream stopped without saying why.
        events.append(MessageEnd(finish_reason=self._finish_reason or FinishReason.ERROR, usage=self._usage))
        return events

    def _on_chunk(self, chunk: JSONObject) -> list[StreamEvent]:
        if "error" in chunk:
            body = orjson.dumps(chunk)
            raise parse_error(_IN_BAND_ERROR_STATUS, body, {}, provider=self._provider)
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            created = opt_int(chunk, "created", "")
            events.append(MessageStart(id=req_str(chunk, "id", ""), model=req_str(chunk, "model", ""), created=created))
        for index, value in enumerate(as_list(chunk.get("choices") or [], "choices")):
            choice = as_object(value, f"choices[{index}]")
            if opt_int(choice, "index", f"choices[{index}]") in (None, 0):
                events.extend(self._on_choice(choice, f"choices[{index}]"))
        # With stream_options.include_usage OpenAI sends usage in a last chunk whose choices are empty;
        # some compatible servers put it on the finish chunk instead, and others send "usage": null throughout.
        usage = parse_usage(chunk)
        if usage is not None:
            self._usage = usage
            events.append(UsageUpdate(usage=usage))
        return events

    def _on_choice(self, choice: JSONObject, param: str) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        delta = as_object(choice.get("delta") or {}, f"{param}.delta")
        reasoning = reasoning_text(delta, f"{param}.delta")
        if reasoning:
            events.extend(self._text("reasoning", reasoning))
        text = opt_str(delta, "content", f"{param}.delta") or opt_str(delta, "refusal", f"{param}.delta")
        if text:
            events.extend(self._text("text", text))
        calls = as_list(delta.get("tool_calls") or [], f"{param}.delta.tool_calls")
        for index, call in enumerate(calls):
            events.extend(self._tool_call(as_object(call, f"{param}.delta.tool_calls[{index}]"), index, param))
        finish_reason = parse_finish_reason(opt_str(choice, "finish_reason", param))
        if finish_reason is not None:
            self._finish_reason = finish_reason
            events.extend(self._close_parts())
        return events

    def _start(self, key: str) -> int:
        index = self._next_index
        self._next_index += 1
        self._open[key] = index
        return index

    def _text(self, key: StreamPartKind, text: str) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        index = self._open.get(key)
        if index is None:
            index = self._start(key)
            events.append(PartStart(index=index, part_kind=key))
        events.append(TextDelta(index=index, text=text) if key == "text" else ReasoningDelta(index=index, text=text))
        return events

    def _tool_call(self, call: JSONObject, position: int, param: str) -> list[StreamEvent]:
        call_param = f"{param}.delta.tool_calls[{position}]"
        tool_index = opt_int(call, "index", call_param)
        if tool_index is None:
            raise InvalidRequestError(f"{call_param}.index: is required", param=f"{call_param}.index")
        function = as_object(call.get("function") or {}, f"{call_param}.function")
        key = f"tool:{tool_index}"
        events: list[StreamEvent] = []
        index = self._open.get(key)
        if index is None:
            if tool_index in self._tools:
                raise InvalidRequestError(f"{call_param}: tool call {tool_index} after its end", param=call_param)
            self._tools.add(tool_index)
            call_id = req_str(call, "id", call_param)
            name = req_str(function, "name", f"{call_param}.function")
            index = self._start(key)
            events.append(PartStart(index=index, part_kind="tool_call", call_id=call_id, name=name))
        fragment = opt_str(function, "arguments", f"{call_param}.function")
        if fragment:
            events.append(ToolArgumentsDelta(index=index, json_fragment=fragment))
        return events

    def _close_parts(self) -> list[StreamEvent]:
        events: list[StreamEvent] = [PartEnd(index=index) for index in sorted(self._open.values())]
        self._open.clear()
        return events


class StreamRenderer:
    """Canonical StreamEvents → OpenAI ``chat.completion.chunk`` SSE frames. Sans-IO: feed() per event, finish().

    Frames follow OpenAI's own order: a first chunk with ``role: assistant``, content and tool-call deltas (a
    tool call opens with its ``index``, ``id``, ``type`` and ``function.name``, then argument fragments), a
    finish chunk, a usage chunk with empty ``choices`` when usage is known, and ``data: [DONE]``.
    """

    __slots__ = ("_created", "_id", "_model", "_now_s", "_tool_indexes", "_usage")

    def __init__(self, *, now_s: int = 0) -> None:
        self._id = ""
        self._model = ""
        self._now_s = now_s
        """``created`` when the upstream gave none: the caller owns the clock (wire/ is pure)."""
        self._created = 0
        self._tool_indexes: dict[int, int] = {}
        """Canonical part index → OpenAI ``tool_calls[].index``."""
        self._usage: Usage | None = None

    def feed(self, event: StreamEvent) -> list[bytes]:
        """Translate one canonical event into zero or more SSE frames."""
        match event:
            case MessageStart():
                self._id, self._model = event.id, event.model
                self._created = event.created if event.created is not None else self._now_s
                return [self._chunk({"role": "assistant", "content": ""})]
            case PartStart():
                return self._part_start(event)
            case TextDelta():
                return [self._chunk({"content": event.text})]
            case ReasoningDelta():
                return [self._chunk({"reasoning_content": event.text})]
            case ToolArgumentsDelta():
                return [self._arguments(event)]
            case UsageUpdate():
                self._usage = event.usage
                return []
            case MessageEnd():
                return self._message_end(event)
            case _:  # PartEnd and SignatureDelta: OpenAI has no frame for either
                return []

    def finish(self) -> list[bytes]:
        """End of the canonical stream; every frame was written as its event arrived, so nothing is pending."""
        return []

    def error(self, err: GatewayError) -> bytes:
        """An in-band ``data: {"error": ...}`` frame for a failure after the stream has begun."""
        return render_stream_error(err)

    def _part_start(self, event: PartStart) -> list[bytes]:
        if event.part_kind != "tool_call":
            return []
        tool_index = len(self._tool_indexes)
        self._tool_indexes[event.index] = tool_index
        tool_call: JSONObject = {
            "index": tool_index,
            "id": event.call_id,
            "type": "function",
            "function": {"name": event.name, "arguments": ""},
        }
        return [self._chunk({"tool_calls": [tool_call]})]

    def _arguments(self, event: ToolArgumentsDelta) -> bytes:
        tool_call: JSONObject = {
            "index": self._tool_indexes[event.index],
            "function": {"arguments": event.json_fragment},
        }
        return self._chunk({"tool_calls": [tool_call]})

    def _message_end(self, event: MessageEnd) -> list[bytes]:
        frames = [self._chunk({}, finish_reason=render_finish_reason(event.finish_reason))]
        usage = render_usage(event.usage or self._usage or Usage())
        if usage is not None:
            frames.append(self._frame({"choices": [], "usage": usage}))
        frames.append(_DONE_FRAME)
        return frames

    def _chunk(self, delta: JSONObject, *, finish_reason: str | None = None) -> bytes:
        choice: JSONObject = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._frame({"choices": [choice]})

    def _frame(self, fields: JSONObject) -> bytes:
        chunk: JSONValue = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            **fields,
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
