"""Ollama NDJSON chat streams <-> canonical ``StreamEvent``s (sans-IO; framing in ``wire.ndjson``)."""

from __future__ import annotations

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
from polyroute.core.messages import ToolCallPart, Usage
from polyroute.errors import GatewayError, UpstreamProtocolError, UpstreamServerError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.ndjson import encode_line
from polyroute.wire.ollama.errors import render_error
from polyroute.wire.ollama.response import (
    _FINISH_REASONS,
    FORMAT,
    _finish_reason,
    _parse_created,
    _parse_usage,
    _render_tool_call,
    _render_usage,
    _response_calls,
    _response_id,
    render_created,
)
from polyroute.wire.upstream_errors import MAX_ERROR_MESSAGE_CHARS


class StreamParser:
    """Ollama NDJSON lines (decoded) → canonical StreamEvents. Sans-IO: feed() per line, finish() at end.

    Thinking and content become reasoning and text parts; each tool call arrives whole and becomes a
    complete tool-call part. The ``done: true`` line carries usage and the finish reason.
    """

    def __init__(self, *, provider: str = FORMAT) -> None:
        self._provider = provider
        self._prefix: str | None = None
        self._open: tuple[int, StreamPartKind] | None = None
        self._next_index = 0
        self._calls = 0
        self._is_done = False

    def feed(self, value: JSONValue) -> list[StreamEvent]:
        """Translate one decoded NDJSON line.

        Raises:
            UpstreamServerError: the line is Ollama's in-band ``{"error": ...}``.
            UpstreamProtocolError: the line is not a chat stream line, or follows the ``done`` line.
        """
        if isinstance(value, dict) and isinstance(value.get("error"), str):
            raise UpstreamServerError(
                f"{self._provider} stream error: {value['error']}"[:MAX_ERROR_MESSAGE_CHARS],
                provider=self._provider,
                upstream_status=200,
            )
        if not isinstance(value, dict) or not isinstance(value.get("message", {}), dict) or self._is_done:
            raise UpstreamProtocolError("unexpected Ollama stream line", provider=self._provider)
        events: list[StreamEvent] = []
        if self._prefix is None:
            self._prefix = _response_id(value.get("created_at"))
            model = value.get("model")
            created = _parse_created(value.get("created_at"))
            events.append(MessageStart(id=self._prefix, model=model if isinstance(model, str) else "", created=created))
        message = value.get("message", {})
        assert isinstance(message, dict)
        self._text(events, "reasoning", message.get("thinking"))
        self._text(events, "text", message.get("content"))
        for call in _response_calls(message.get("tool_calls"), self._prefix, self._calls):
            self._close(events)
            self._calls += 1
            index = self._take_index()
            events.append(PartStart(index=index, part_kind="tool_call", call_id=call.call_id, name=call.name))
            events += [ToolArgumentsDelta(index=index, json_fragment=call.arguments), PartEnd(index=index)]
        if value.get("done") is True:
            self._close(events)
            self._is_done = True
            has_calls = self._calls > 0
            reason = _finish_reason(value.get("done_reason"), has_calls)
            events.append(MessageEnd(finish_reason=reason, usage=_parse_usage(value)))
        return events

    def finish(self) -> list[StreamEvent]:
        """End of the byte stream; a stream cut off before ``done`` leaves the message without an end."""
        events: list[StreamEvent] = []
        self._close(events)
        return events

    def _text(self, events: list[StreamEvent], kind: StreamPartKind, text: JSONValue | None) -> None:
        if not isinstance(text, str) or not text:
            return
        if self._open is None or self._open[1] != kind:
            self._close(events)
            self._open = (self._take_index(), kind)
            events.append(PartStart(index=self._open[0], part_kind=kind))
        index = self._open[0]
        events.append(TextDelta(index=index, text=text) if kind == "text" else ReasoningDelta(index=index, text=text))

    def _take_index(self) -> int:
        self._next_index += 1
        return self._next_index - 1

    def _close(self, events: list[StreamEvent]) -> None:
        if self._open is not None:
            events.append(PartEnd(index=self._open[0]))
            self._open = None


class StreamRenderer:
    """Canonical StreamEvents → Ollama NDJSON lines. Sans-IO: feed() per event, finish() at end.

    Tool-call arguments are buffered until the part ends, because Ollama sends each call whole.
    Reasoning text from any upstream is shown as ``thinking``: it is this answer's output, not a replay.
    """

    def __init__(self, *, now_s: int = 0) -> None:
        self._now_s = now_s
        self._head: JSONObject = {}
        self._calls: dict[int, tuple[str, list[str]]] = {}
        self._usage = Usage()

    def feed(self, event: StreamEvent) -> list[bytes]:
        """Translate one event into zero or more NDJSON lines.

        Raises:
            UpstreamProtocolError: a finished tool call's arguments are not a JSON object.
        """
        match event:
            case MessageStart():
                self._head = {"model": event.model}
                created_at = render_created(event.created or self._now_s or None)
                if created_at is not None:
                    self._head["created_at"] = created_at
            case PartStart(part_kind="tool_call"):
                self._calls[event.index] = (event.name or "", [])
            case TextDelta() if event.text:
                return [self._line({"content": event.text})]
            case ReasoningDelta() if event.text:
                return [self._line({"content": "", "thinking": event.text})]
            case ToolArgumentsDelta() if event.index in self._calls:
                self._calls[event.index][1].append(event.json_fragment)
            case PartEnd() if event.index in self._calls:
                name, fragments = self._calls.pop(event.index)
                call = ToolCallPart(call_id="", name=name, arguments="".join(fragments))
                return [self._line({"content": "", "tool_calls": [_render_tool_call(call)]})]
            case UsageUpdate():
                self._usage = event.usage
            case MessageEnd():
                return [self._end(event)]
        return []

    def finish(self) -> list[bytes]:
        """End of the event stream; Ollama needs no closing frame beyond the ``done`` line."""
        return []

    def error(self, err: GatewayError) -> bytes:
        """An error delivered in-band after the stream has begun, as Ollama does: ``{"error": ...}``."""
        return encode_line(render_error(err)[1])

    def _line(self, message: JSONObject) -> bytes:
        return encode_line({**self._head, "message": {"role": "assistant", **message}, "done": False})

    def _end(self, event: MessageEnd) -> bytes:
        usage = event.usage if event.usage is not None else self._usage
        line: JSONObject = {**self._head, "message": {"role": "assistant", "content": ""}, "done": True}
        line["done_reason"] = _FINISH_REASONS[event.finish_reason]
        line.update(_render_usage(usage))
        return encode_line(line)
