"""OpenAI Chat Completions response bodies (``chat.completion`` objects) <-> ``ChatResponse``.

Spec: https://platform.openai.com/docs/api-reference/chat/object
"""

from __future__ import annotations

from polyroute.core.messages import ChatResponse, FinishReason, Part, ReasoningPart, TextPart, ToolCallPart, Usage
from polyroute.errors import InvalidRequestError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import as_list, as_object, opt_int, opt_str, req_str
from polyroute.wire.openai_chat.relay import parse_usage
from polyroute.wire.openai_chat.request import FORMAT, render_tool_call

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    # function_call: the deprecated single-function form of tool_calls, still sent by some compatible servers.
    "function_call": FinishReason.TOOL_CALLS,
}
"""OpenAI ``finish_reason`` → canonical. An unknown (newer or vendor) value reads as ``STOP``."""
_RENDERED_FINISH_REASONS: dict[FinishReason, str | None] = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.CONTENT_FILTER: "content_filter",
    # OpenAI has no finish reason for a failed turn; null says "not stated" rather than inventing one.
    FinishReason.ERROR: None,
}
"""Canonical finish reason → OpenAI ``finish_reason``."""
_REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Message/delta fields holding reasoning text. Not OpenAI's own: DeepSeek and vLLM send ``reasoning_content``,
OpenRouter and newer vLLM send ``reasoning`` (https://api-docs.deepseek.com/guides/reasoning_model)."""
_KNOWN_FIELDS = frozenset({"id", "object", "created", "model", "choices", "usage"})


def parse_finish_reason(finish_reason: str | None) -> FinishReason | None:
    """OpenAI ``finish_reason`` → canonical; None stays None."""
    if finish_reason is None:
        return None
    return _FINISH_REASONS.get(finish_reason, FinishReason.STOP)


def render_finish_reason(finish_reason: FinishReason | None) -> str | None:
    """Canonical finish reason → OpenAI ``finish_reason``."""
    return None if finish_reason is None else _RENDERED_FINISH_REASONS[finish_reason]


def reasoning_text(obj: JSONObject, param: str) -> str | None:
    """The reasoning text of a message or delta, from whichever field the server used; None when absent."""
    for key in _REASONING_FIELDS:
        text = opt_str(obj, key, param)
        if text is not None:
            return text
    return None


def render_usage(usage: Usage) -> JSONObject | None:
    """Canonical ``Usage`` → OpenAI ``usage``; None when nothing was reported. Unknown counts render as 0."""
    if usage == Usage():
        return None
    prompt = usage.input_tokens or 0
    completion = usage.output_tokens or 0
    rendered: JSONObject = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.cache_read_tokens is not None:
        rendered["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    if usage.reasoning_tokens is not None:
        rendered["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return rendered


def _parse_message(message: JSONObject) -> tuple[Part, ...]:
    parts: list[Part] = []
    reasoning = reasoning_text(message, "choices[0].message")
    if reasoning:
        parts.append(ReasoningPart(text=reasoning, source_format=FORMAT))
    # A refusal arrives instead of content; it is what the user should read, so it becomes text.
    text = opt_str(message, "content", "choices[0].message") or opt_str(message, "refusal", "choices[0].message")
    if text:
        parts.append(TextPart(text=text))
    calls = as_list(message.get("tool_calls") or [], "choices[0].message.tool_calls")
    for index, value in enumerate(calls):
        param = f"choices[0].message.tool_calls[{index}]"
        call = as_object(value, param)
        function = as_object(call.get("function"), f"{param}.function")
        parts.append(
            ToolCallPart(
                call_id=req_str(call, "id", param),
                name=req_str(function, "name", f"{param}.function"),
                arguments=req_str(function, "arguments", f"{param}.function"),
            )
        )
    return tuple(parts)


def parse_response(body: JSONObject) -> ChatResponse:
    """Upstream ``chat.completion`` body → canonical response, from the first choice.

    Unknown top-level fields (``system_fingerprint``, ``service_tier``, …) are kept in ``extensions["openai"]``.

    Raises:
        ValueError: the body is not a well-formed chat completion.
    """
    try:
        return _parse_response(body)
    except InvalidRequestError as exc:
        raise ValueError(f"malformed OpenAI chat completion: {exc.message}") from exc


def _parse_response(body: JSONObject) -> ChatResponse:
    choices = as_list(body.get("choices"), "choices")
    if not choices:
        raise InvalidRequestError("choices: must not be empty", param="choices")
    choice = as_object(choices[0], "choices[0]")
    extensions = {key: value for key, value in body.items() if key not in _KNOWN_FIELDS}
    return ChatResponse(
        id=req_str(body, "id", ""),
        model=req_str(body, "model", ""),
        created=opt_int(body, "created", ""),
        parts=_parse_message(as_object(choice.get("message"), "choices[0].message")),
        finish_reason=parse_finish_reason(opt_str(choice, "finish_reason", "choices[0]")),
        usage=parse_usage(body) or Usage(),
        extensions={FORMAT: extensions} if extensions else {},
    )


def _render_message(parts: tuple[Part, ...]) -> JSONObject:
    # Images and tool results cannot appear in an assistant reply; there is nothing to render them as.
    texts = [part.text for part in parts if isinstance(part, TextPart)]
    calls: list[JSONValue] = [render_tool_call(part) for part in parts if isinstance(part, ToolCallPart)]
    reasoning = "".join(part.text for part in parts if isinstance(part, ReasoningPart))
    message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts else None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return message


def render_response(response: ChatResponse, *, now_s: int = 0) -> JSONObject:
    """Canonical response → an OpenAI ``chat.completion`` body.

    Text parts are joined into ``content``; reasoning text goes in ``reasoning_content`` as DeepSeek and vLLM
    send it. ``created`` is ``now_s`` when the upstream gave none: the caller owns the clock (wire/ is pure).
    """
    body: JSONObject = {
        "id": response.id,
        "object": "chat.completion",
        "created": response.created if response.created is not None else now_s,
        "model": response.model,
        "choices": [
            {
                "index": 0,
                "message": _render_message(response.parts),
                "logprobs": None,
                "finish_reason": render_finish_reason(response.finish_reason),
            }
        ],
    }
    usage = render_usage(response.usage)
    if usage is not None:
        body["usage"] = usage
    body.update(response.extensions.get(FORMAT, {}))
    return body
