"""Anthropic Messages response bodies <-> ``ChatResponse``, stop reasons and usage.

Spec: https://docs.anthropic.com/en/api/messages (response) and
https://docs.anthropic.com/en/api/handling-stop-reasons
"""

from __future__ import annotations

from polyroute.core.messages import ChatResponse, FinishReason, Usage
from polyroute.errors import InvalidRequestError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.anthropic_messages.request import ASSISTANT_BLOCKS, FORMAT, parse_block, render_parts
from polyroute.wire.fields import as_list, as_object, opt_int, opt_str, req_str

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    # pause_turn: a server-tool loop paused; the turn is over for now and the client may continue it.
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}
"""Anthropic ``stop_reason`` → canonical. An unknown (newer) value reads as ``STOP``."""
_FINISH_REASONS: dict[FinishReason, str | None] = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.CONTENT_FILTER: "refusal",
    # Anthropic has no stop reason for a failed turn; null says "not stated" rather than inventing one.
    FinishReason.ERROR: None,
}
"""Canonical finish reason → Anthropic ``stop_reason``."""
_KNOWN_FIELDS = frozenset({"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"})
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def parse_stop_reason(stop_reason: str | None) -> FinishReason | None:
    """Anthropic ``stop_reason`` → canonical; None stays None."""
    if stop_reason is None:
        return None
    return _STOP_REASONS.get(stop_reason, FinishReason.STOP)


def render_stop_reason(finish_reason: FinishReason | None) -> str | None:
    """Canonical finish reason → Anthropic ``stop_reason``."""
    return None if finish_reason is None else _FINISH_REASONS[finish_reason]


def usage_fields(value: JSONValue, param: str) -> dict[str, int]:
    """The integer token counts of an Anthropic ``usage`` object (other fields are ignored)."""
    usage = as_object(value, param)
    return {key: count for key in _USAGE_FIELDS if (count := opt_int(usage, key, param)) is not None}


def parse_usage(fields: dict[str, int]) -> Usage:
    """Anthropic usage counts → canonical ``Usage``.

    Anthropic's ``input_tokens`` counts only uncached input; cache reads and writes are reported apart.
    Canonical ``input_tokens`` includes them (OpenAI's ``prompt_tokens``), so the three are summed.
    """
    cache_read = fields.get("cache_read_input_tokens")
    cache_write = fields.get("cache_creation_input_tokens")
    uncached = fields.get("input_tokens")
    total = None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0)
    return Usage(
        input_tokens=total,
        output_tokens=fields.get("output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def render_usage(usage: Usage) -> JSONObject:
    """Canonical ``Usage`` → Anthropic ``usage``; counts that were not reported are left out.

    ``input_tokens`` becomes the uncached remainder, floored at 0 when a foreign upstream's numbers disagree.
    """
    uncached = None
    if usage.input_tokens is not None:
        uncached = max(0, usage.input_tokens - (usage.cache_read_tokens or 0) - (usage.cache_write_tokens or 0))
    fields: dict[str, int | None] = {
        "input_tokens": uncached,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }
    return {key: value for key, value in fields.items() if value is not None}


def parse_response(body: JSONObject) -> ChatResponse:
    """Upstream response body → canonical response.

    Unknown top-level fields, a ``stop_sequence`` and a ``stop_reason`` that the canonical finish reason does
    not determine (``stop_sequence``, ``pause_turn``, …) are kept in ``extensions["anthropic"]``.

    Raises:
        ValueError: the body is not a well-formed Anthropic message.
    """
    try:
        return _parse_response(body)
    except InvalidRequestError as exc:
        raise ValueError(f"malformed Anthropic response: {exc.message}") from exc


def _parse_response(body: JSONObject) -> ChatResponse:
    content = as_list(body.get("content"), "content")
    stop_reason = opt_str(body, "stop_reason", "")
    finish_reason = parse_stop_reason(stop_reason)
    extensions = {key: value for key, value in body.items() if key not in _KNOWN_FIELDS}
    if render_stop_reason(finish_reason) != stop_reason:
        extensions["stop_reason"] = stop_reason
    stop_sequence = opt_str(body, "stop_sequence", "")
    if stop_sequence is not None:
        extensions["stop_sequence"] = stop_sequence
    usage = body.get("usage")
    return ChatResponse(
        id=req_str(body, "id", ""),
        model=req_str(body, "model", ""),
        parts=tuple(
            parse_block(item, f"content[{index}]", allowed=ASSISTANT_BLOCKS) for index, item in enumerate(content)
        ),
        finish_reason=finish_reason,
        usage=Usage() if usage is None else parse_usage(usage_fields(usage, "usage")),
        extensions={FORMAT: extensions} if extensions else {},
    )


def render_response(response: ChatResponse, *, now_s: int = 0) -> JSONObject:
    """Canonical response → Anthropic body.

    Raises:
        InvalidRequestError: a tool call whose arguments are not a JSON object.
    """
    del now_s  # an Anthropic message carries no creation time
    body: JSONObject = {
        "id": response.id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": render_parts(response.parts),
        "stop_reason": render_stop_reason(response.finish_reason),
        "stop_sequence": None,
        "usage": render_usage(response.usage),
    }
    body.update(response.extensions.get(FORMAT, {}))
    return body
