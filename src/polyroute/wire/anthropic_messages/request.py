"""Anthropic Messages request bodies (``POST /v1/messages``) <-> ``ChatRequest``, and content blocks.

Spec: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from polyroute.core.messages import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    ResponseFormat,
    Role,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import as_list, as_object, fail, field_path, opt_bool, opt_float, opt_int, opt_str, req_str

FORMAT = "anthropic"
"""``WireFormat.ANTHROPIC``: the key of ``extensions`` and the ``source_format`` of reasoning parts."""

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the canonical request has none; Anthropic requires the field."""

_KNOWN_FIELDS = frozenset(
    {"model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "stream"}
    | {"tools", "tool_choice", "metadata"}
)
_TOOL_CHOICES: dict[str, ToolChoice] = {
    "auto": ToolChoice(mode="auto"),
    "any": ToolChoice(mode="required"),
    "none": ToolChoice(mode="none"),
}
"""Anthropic ``tool_choice.type`` → canonical mode; ``tool`` (a named tool) is handled apart."""
_TOOL_CHOICE_TYPES: dict[str, str] = {"auto": "auto", "required": "any", "none": "none", "tool": "tool"}
"""Canonical ``ToolChoice.mode`` → Anthropic ``tool_choice.type``."""
_IMAGE_SOURCES = ("base64", "url")


# --- content blocks ------------------------------------------------------------------------------------------------


def _parse_text(block: JSONObject, param: str) -> TextPart:
    return TextPart(text=req_str(block, "text", param))


def _parse_image(block: JSONObject, param: str) -> ImagePart:
    source_param = field_path(param, "source")
    source = as_object(block.get("source"), source_param)
    source_type = req_str(source, "type", source_param)
    if source_type == "url":
        return ImagePart(url=req_str(source, "url", source_param))
    if source_type == "base64":
        return ImagePart(
            data=req_str(source, "data", source_param), media_type=req_str(source, "media_type", source_param)
        )
    fail(field_path(source_param, "type"), f"must be one of {', '.join(_IMAGE_SOURCES)}")


def _parse_tool_use(block: JSONObject, param: str) -> ToolCallPart:
    tool_input = as_object(block.get("input"), field_path(param, "input"))
    return ToolCallPart(
        call_id=req_str(block, "id", param),
        name=req_str(block, "name", param),
        arguments=orjson.dumps(tool_input).decode(),
    )


def _parse_tool_result(block: JSONObject, param: str) -> ToolResultPart:
    content_param = field_path(param, "content")
    content = block.get("content")
    parts: tuple[TextPart | ImagePart, ...] = ()
    if isinstance(content, str):
        parts = (TextPart(text=content),)
    elif content is not None:
        items = as_list(content, content_param)
        parts = tuple(_parse_result_item(item, f"{content_param}[{index}]") for index, item in enumerate(items))
    return ToolResultPart(
        call_id=req_str(block, "tool_use_id", param),
        content=parts,
        is_error=bool(opt_bool(block, "is_error", param)),
    )


def _parse_result_item(item: JSONValue, param: str) -> TextPart | ImagePart:
    part = parse_block(item, param, allowed=_RESULT_BLOCKS)
    assert isinstance(part, TextPart | ImagePart)  # _RESULT_BLOCKS admits only these
    return part


def _parse_thinking(block: JSONObject, param: str) -> ReasoningPart:
    return ReasoningPart(
        text=req_str(block, "thinking", param), signature=req_str(block, "signature", param), source_format=FORMAT
    )


def _parse_redacted_thinking(block: JSONObject, param: str) -> ReasoningPart:
    return ReasoningPart(redacted=req_str(block, "data", param), source_format=FORMAT)


_BLOCK_PARSERS: dict[str, Callable[[JSONObject, str], Part]] = {
    "text": _parse_text,
    "image": _parse_image,
    "tool_use": _parse_tool_use,
    "tool_result": _parse_tool_result,
    "thinking": _parse_thinking,
    "redacted_thinking": _parse_redacted_thinking,
}
"""Content block ``type`` → parser. Other block types (document, server tools, …) are rejected."""
_RESULT_BLOCKS = frozenset({"text", "image"})
_BLOCKS_BY_ROLE: dict[str, frozenset[str]] = {
    "user": frozenset({"text", "image", "tool_result"}),
    "assistant": frozenset({"text", "tool_use", "thinking", "redacted_thinking"}),
}
ASSISTANT_BLOCKS = _BLOCKS_BY_ROLE["assistant"]


def parse_block(value: JSONValue, param: str, *, allowed: frozenset[str]) -> Part:
    """One content block → a canonical part.

    Raises:
        InvalidRequestError: the block is malformed or its type is not in ``allowed``.
    """
    block = as_object(value, param)
    block_type = req_str(block, "type", param)
    if block_type not in allowed:
        fail(field_path(param, "type"), f"unsupported content block type {block_type!r}")
    return _BLOCK_PARSERS[block_type](block, param)


def _render_arguments(arguments: str) -> JSONObject:
    # OpenAI-style streams send "" for a tool that takes no arguments; Anthropic wants an object.
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        fail("arguments", "tool call arguments are not a JSON object; Anthropic cannot express them")
    return value


def _render_image(part: ImagePart) -> JSONObject:
    if part.data is not None:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": part.media_type, "data": part.data},
        }
    return {"type": "image", "source": {"type": "url", "url": part.url}}


def _render_reasoning(part: ReasoningPart) -> JSONObject | None:
    # Signatures are only valid for the provider that issued them; never forge or forward foreign ones.
    if part.source_format != FORMAT:
        return None
    if part.redacted is not None:
        return {"type": "redacted_thinking", "data": part.redacted}
    if part.signature is None:
        return None
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def render_part(part: Part) -> JSONObject | None:
    """A canonical part → one content block; None when Anthropic must not receive it.

    Raises:
        InvalidRequestError: tool call arguments that are not a JSON object.
    """
    match part:
        case TextPart():
            return {"type": "text", "text": part.text}
        case ImagePart():
            return _render_image(part)
        case ToolCallPart():
            return {
                "type": "tool_use",
                "id": part.call_id,
                "name": part.name,
                "input": _render_arguments(part.arguments),
            }
        case ToolResultPart():
            result: JSONObject = {"type": "tool_result", "tool_use_id": part.call_id}
            if part.content:
                result["content"] = [block for item in part.content if (block := render_part(item)) is not None]
            if part.is_error:
                result["is_error"] = True
            return result
        case _:  # ReasoningPart, the only kind left
            return _render_reasoning(part)


def render_parts(parts: tuple[Part, ...]) -> list[JSONValue]:
    """Canonical parts → content blocks, dropping those Anthropic must not receive."""
    return [block for part in parts if (block := render_part(part)) is not None]


# --- requests ------------------------------------------------------------------------------------------------------


def _parse_messages(values: list[JSONValue]) -> tuple[tuple[TextPart, ...], tuple[Message, ...]]:
    """The turns, and system text sent as ``role: "system"`` turns (as Claude Code does).

    System turns before the first user or assistant turn join the system prompt; later ones stay
    where they are, as user text, so the conversation keeps its order.
    """
    system: list[TextPart] = []
    messages: list[Message] = []
    for index, value in enumerate(values):
        param = f"messages[{index}]"
        message = as_object(value, param)
        if message.get("role") != "system":
            messages.append(_parse_message(message, param))
            continue
        content = message.get("content")
        texts = _parse_system(content) if content is not None else ()
        if messages:
            messages.append(Message(role="user", parts=texts))
        else:
            system.extend(texts)
    return tuple(system), tuple(messages)


def _parse_message(value: JSONValue, param: str) -> Message:
    message = as_object(value, param)
    role = req_str(message, "role", param)
    if role not in _BLOCKS_BY_ROLE:
        fail(field_path(param, "role"), "must be 'user', 'assistant' or 'system'")
    content_param = field_path(param, "content")
    content = message.get("content")
    if isinstance(content, str):
        return Message(role=_role(role), parts=(TextPart(text=content),))
    items = as_list(content, content_param)
    allowed = _BLOCKS_BY_ROLE[role]
    parts = tuple(parse_block(item, f"{content_param}[{index}]", allowed=allowed) for index, item in enumerate(items))
    return Message(role=_role(role), parts=parts)


def _role(role: str) -> Role:
    return "user" if role == "user" else "assistant"


def _parse_system(value: JSONValue) -> tuple[TextPart, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (TextPart(text=value),)
    items = as_list(value, "system")
    return tuple(_parse_text_block(item, f"system[{index}]") for index, item in enumerate(items))


def _parse_text_block(value: JSONValue, param: str) -> TextPart:
    part = parse_block(value, param, allowed=frozenset({"text"}))
    assert isinstance(part, TextPart)  # only text is allowed
    return part


def _parse_tool(value: JSONValue, param: str) -> ToolSpec:
    tool = as_object(value, param)
    return ToolSpec(
        name=req_str(tool, "name", param),
        description=opt_str(tool, "description", param),
        parameters=as_object(tool.get("input_schema"), field_path(param, "input_schema")),
    )


def _parse_tool_choice(value: JSONValue) -> tuple[ToolChoice | None, bool | None]:
    if value is None:
        return None, None
    choice = as_object(value, "tool_choice")
    choice_type = req_str(choice, "type", "tool_choice")
    disable_parallel = opt_bool(choice, "disable_parallel_tool_use", "tool_choice")
    parallel = None if disable_parallel is None else not disable_parallel
    if choice_type == "tool":
        return ToolChoice(mode="tool", name=req_str(choice, "name", "tool_choice")), parallel
    if choice_type not in _TOOL_CHOICES:
        fail("tool_choice.type", "must be one of auto, any, tool, none")
    return _TOOL_CHOICES[choice_type], parallel


def _parse_metadata(value: JSONValue) -> str | None:
    if value is None:
        return None
    metadata = as_object(value, "metadata")
    for key in metadata:
        if key != "user_id":
            fail(f"metadata.{key}", "unknown field")
    return opt_str(metadata, "user_id", "metadata")


def _thinking_budget(value: JSONValue) -> int | None:
    # Only {"type": "enabled", "budget_tokens": N} is canonical; any other shape rides in extensions verbatim.
    if isinstance(value, dict) and value.keys() == {"type", "budget_tokens"} and value["type"] == "enabled":
        return opt_int(value, "budget_tokens", "thinking")
    return None


_EFFORTS = frozenset({"low", "medium", "high", "max"})
"""``output_config.effort`` values; they map to ``reasoning_effort`` unchanged."""


def _parse_output_config(value: JSONValue, extensions: JSONObject) -> tuple[ResponseFormat | None, str | None]:
    """``output_config.format`` (a JSON Schema) and ``output_config.effort``; other keys stay in extensions."""
    if value is None:
        return None, None
    config = dict(as_object(value, "output_config"))
    response_format = None
    spec = config.get("format")
    if isinstance(spec, dict) and spec.get("type") == "json_schema" and isinstance(spec.get("schema"), dict):
        response_format = ResponseFormat(mode="json_schema", schema=as_object(spec["schema"], "output_config.format"))
        del config["format"]
    effort = config.get("effort")
    if isinstance(effort, str) and effort in _EFFORTS:
        del config["effort"]
    else:
        effort = None
    if config:
        extensions["output_config"] = config
    else:
        extensions.pop("output_config", None)
    return response_format, effort


def _render_output_config(request: ChatRequest, body: JSONObject) -> None:
    config = dict(as_object(body.get("output_config") or {}, "output_config"))
    response_format = request.response_format
    if response_format is not None and response_format.mode == "json_schema" and response_format.schema is not None:
        config["format"] = {"type": "json_schema", "schema": response_format.schema}
    if request.reasoning_effort in _EFFORTS:
        config["effort"] = request.reasoning_effort
    if config:
        body["output_config"] = config


def parse_request(body: JSONObject, *, model: str | None = None) -> ChatRequest:
    """Client body → canonical request; ``model``, when given, stands in for the body's.

    Raises:
        InvalidRequestError: naming the offending field, e.g. ``messages[2].content[0].type``.
    """
    max_tokens = opt_int(body, "max_tokens", "")
    if max_tokens is None or max_tokens < 1:
        fail("max_tokens", "is required and must be a positive integer")
    messages = as_list(body.get("messages"), "messages")
    stop = as_list(body.get("stop_sequences", []), "stop_sequences")
    tools = as_list(body.get("tools", []), "tools")
    tool_choice, parallel = _parse_tool_choice(body.get("tool_choice"))
    budget = _thinking_budget(body.get("thinking"))
    extensions = {key: value for key, value in body.items() if key not in _KNOWN_FIELDS}
    if budget is not None:
        del extensions["thinking"]
    response_format, effort = _parse_output_config(body.get("output_config"), extensions)
    system_turns, turns = _parse_messages(messages)
    return ChatRequest(
        model=model if model is not None else req_str(body, "model", ""),
        messages=turns,
        system=(*_parse_system(body.get("system")), *system_turns),
        tools=tuple(_parse_tool(item, f"tools[{index}]") for index, item in enumerate(tools)),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_output_tokens=max_tokens,
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        top_k=opt_int(body, "top_k", ""),
        stop=tuple(_stop_sequence(item, f"stop_sequences[{index}]") for index, item in enumerate(stop)),
        stream=bool(opt_bool(body, "stream", "")),
        reasoning_budget_tokens=budget,
        reasoning_effort=effort,
        response_format=response_format,
        user_id=_parse_metadata(body.get("metadata")),
        extensions={FORMAT: extensions} if extensions else {},
    )


def _stop_sequence(value: JSONValue, param: str) -> str:
    if not isinstance(value, str):
        fail(param, "must be a string")
    return value


def _render_tool(tool: ToolSpec) -> JSONObject:
    rendered: JSONObject = {"name": tool.name}
    if tool.description is not None:
        rendered["description"] = tool.description
    rendered["input_schema"] = tool.parameters
    return rendered


def _render_tool_choice(choice: ToolChoice | None, parallel: bool | None) -> JSONObject | None:
    if choice is None and parallel is None:
        return None
    rendered: JSONObject = {"type": _TOOL_CHOICE_TYPES[choice.mode] if choice else "auto"}
    if choice is not None and choice.name is not None:
        rendered["name"] = choice.name
    if parallel is not None:
        rendered["disable_parallel_tool_use"] = not parallel
    return rendered


def render_request(request: ChatRequest) -> JSONObject:
    """Canonical request → Anthropic body; ``extensions["anthropic"]`` is re-emitted, canonical fields win.

    Raises:
        InvalidRequestError: a tool call whose arguments are not a JSON object.
    """
    body: JSONObject = dict(request.extensions.get(FORMAT, {}))
    body["model"] = request.model
    body["max_tokens"] = request.max_output_tokens if request.max_output_tokens is not None else DEFAULT_MAX_TOKENS
    body["messages"] = [{"role": message.role, "content": render_parts(message.parts)} for message in request.messages]
    optional: JSONObject = {
        "system": [{"type": "text", "text": part.text} for part in request.system] or None,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "stop_sequences": list(request.stop) or None,
        "stream": request.stream or None,
        "tools": [_render_tool(tool) for tool in request.tools] or None,
        "tool_choice": _render_tool_choice(request.tool_choice, request.parallel_tool_calls),
        "metadata": None if request.user_id is None else {"user_id": request.user_id},
    }
    if request.reasoning_budget_tokens is not None:
        optional["thinking"] = {"type": "enabled", "budget_tokens": request.reasoning_budget_tokens}
    body.update({key: value for key, value in optional.items() if value is not None})
    _render_output_config(request, body)
    return body
