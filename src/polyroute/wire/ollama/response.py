"""Ollama ``/api/chat`` response bodies <-> canonical ``ChatResponse``; helpers the stream shares."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import orjson

from polyroute.core.messages import ChatResponse, FinishReason, Part, ReasoningPart, TextPart, ToolCallPart, Usage
from polyroute.errors import UpstreamProtocolError
from polyroute.types import JSONObject, JSONValue

FORMAT: Final = "ollama"
"""Key of this format in ``extensions`` and value stamped on reasoning parts (``WireFormat.OLLAMA``)."""

_DONE_REASONS: dict[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    # Sent when an empty ``messages`` list only loads or unloads the model; nothing was generated.
    "load": FinishReason.STOP,
    "unload": FinishReason.STOP,
}
"""Ollama ``done_reason`` → canonical; an unknown reason reads as ``stop``."""

_FINISH_REASONS: dict[FinishReason, str] = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    # Ollama says "stop" after tool calls; it has no reason for filtering or errors.
    FinishReason.TOOL_CALLS: "stop",
    FinishReason.CONTENT_FILTER: "stop",
    FinishReason.ERROR: "stop",
}
"""Canonical → Ollama ``done_reason``."""

_RESPONSE_FIELDS: frozenset[str] = frozenset(
    {"model", "created_at", "message", "done", "done_reason", "prompt_eval_count", "eval_count"},
)


def parse_response(body: JSONObject) -> ChatResponse:
    """Upstream non-streamed ``/api/chat`` body → canonical response.

    Raises:
        UpstreamProtocolError: the body is not an Ollama chat response.
    """
    if not isinstance(body.get("model"), str) or not isinstance(body.get("message"), dict):
        raise UpstreamProtocolError("Ollama response lacks model or message", provider=FORMAT)
    message = body["message"]
    assert isinstance(message, dict)
    created_at = body.get("created_at")
    prefix = _response_id(created_at)
    parts: list[Part] = []
    thinking = message.get("thinking")
    if isinstance(thinking, str) and thinking:
        parts.append(ReasoningPart(text=thinking, source_format=FORMAT))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(TextPart(text=content))
    parts.extend(_response_calls(message.get("tool_calls"), prefix, 0))
    # created_at is kept verbatim: it has nanoseconds, canonical ``created`` has seconds.
    extension = {key: value for key, value in body.items() if key not in _RESPONSE_FIELDS or key == "created_at"}
    return ChatResponse(
        id=prefix,
        model=str(body["model"]),
        created=_parse_created(created_at),
        parts=tuple(parts),
        finish_reason=_finish_reason(body.get("done_reason"), any(isinstance(p, ToolCallPart) for p in parts)),
        usage=_parse_usage(body),
        extensions={FORMAT: extension} if extension else {},
    )


def _response_id(created_at: JSONValue | None) -> str:
    # Ollama issues no ids; derive one from created_at (nanosecond resolution) so it is deterministic.
    digits = "".join(ch for ch in created_at if ch.isdigit()) if isinstance(created_at, str) else ""
    return f"ollama-{digits or '0'}"


def _response_calls(calls: JSONValue | None, prefix: str, start: int) -> list[ToolCallPart]:
    if not isinstance(calls, list):
        return []
    parts = []
    for j, call in enumerate(calls, start):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise UpstreamProtocolError("Ollama tool call lacks function.name", provider=FORMAT)
        arguments = function.get("arguments")
        parts.append(
            ToolCallPart(
                call_id=f"{prefix}-call-{j}",
                name=str(function["name"]),
                arguments=orjson.dumps({} if arguments is None else arguments).decode(),
            )
        )
    return parts


def _parse_created(created_at: JSONValue | None) -> int | None:
    if not isinstance(created_at, str):
        return None
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return None
    # A time without an offset is read as UTC, so the result does not depend on the host's zone.
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def render_created(created: int | None) -> str | None:
    """Unix seconds → Ollama's RFC 3339 ``created_at`` (UTC, ``Z``)."""
    if created is None:
        return None
    return datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")


def _finish_reason(done_reason: JSONValue | None, has_tool_calls: bool) -> FinishReason:
    reason = _DONE_REASONS.get(done_reason, FinishReason.STOP) if isinstance(done_reason, str) else FinishReason.STOP
    # Ollama reports "stop" after tool calls; canonical clients expect tool_calls then.
    return FinishReason.TOOL_CALLS if has_tool_calls and reason == FinishReason.STOP else reason


def _parse_usage(body: Mapping[str, JSONValue]) -> Usage:
    return Usage(input_tokens=_json_int(body.get("prompt_eval_count")), output_tokens=_json_int(body.get("eval_count")))


def _json_int(value: JSONValue | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _render_usage(usage: Usage) -> JSONObject:
    counts: JSONObject = {}
    if usage.input_tokens is not None:
        counts["prompt_eval_count"] = usage.input_tokens
    if usage.output_tokens is not None:
        counts["eval_count"] = usage.output_tokens
    return counts


def render_response(response: ChatResponse, *, now_s: int = 0) -> JSONObject:
    """Canonical response → Ollama ``/api/chat`` body (``done: true``); reasoning text becomes ``thinking``.

    ``created_at`` is the upstream's time, or ``now_s`` when it gave none (and ``now_s`` is not 0).

    Raises:
        UpstreamProtocolError: a tool call's arguments are not a JSON object, which Ollama cannot carry.
    """
    extension = dict(response.extensions.get(FORMAT, {}))
    message: JSONObject = {
        "role": "assistant",
        "content": "".join(p.text for p in response.parts if isinstance(p, TextPart)),
    }
    thinking = "".join(p.text for p in response.parts if isinstance(p, ReasoningPart))
    if thinking:
        message["thinking"] = thinking
    calls: list[JSONValue] = [_render_tool_call(p) for p in response.parts if isinstance(p, ToolCallPart)]
    if calls:
        message["tool_calls"] = calls
    body: JSONObject = {"model": response.model}
    created_at = extension.pop("created_at", None) or render_created(response.created or now_s or None)
    if created_at is not None:
        body["created_at"] = created_at
    body.update(message=message, done=True)
    body["done_reason"] = _FINISH_REASONS[response.finish_reason or FinishReason.STOP]
    body.update(extension)
    body.update(_render_usage(response.usage))
    return body


def _render_tool_call(call: ToolCallPart) -> JSONObject:
    arguments = _arguments_object(call.arguments)
    if arguments is None:
        raise UpstreamProtocolError(f"tool call {call.name!r} arguments are not a JSON object", provider=FORMAT)
    return {"function": {"name": call.name, "arguments": arguments}}


def _arguments_object(text: str) -> JSONObject | None:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
