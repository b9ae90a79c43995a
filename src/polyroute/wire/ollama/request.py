"""Ollama ``/api/chat`` request bodies <-> canonical ``ChatRequest``, validated at the border."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson

from polyroute.core.messages import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)
from polyroute.errors import InvalidRequestError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.ollama.response import FORMAT, _arguments_object, _json_int
from polyroute.wire.openai_chat.request import render_tool

_T = TypeVar("_T")

_OPTIONS: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "num_predict": "max_output_tokens",
}
"""Ollama ``options`` keys that have a canonical ``ChatRequest`` field; ``stop`` is handled on its own."""

_THINK_LEVELS: frozenset[str] = frozenset({"low", "medium", "high"})
"""String values of ``think`` (GPT-OSS); they map to ``reasoning_effort`` unchanged."""

_IMAGE_MAGIC: dict[str, str] = {
    "iVBORw0KGgo": "image/png",
    "/9j/": "image/jpeg",
    "R0lGOD": "image/gif",
    "UklGR": "image/webp",
}
"""Base64 prefixes of image signatures; Ollama sends bare base64, so the media type is sniffed."""

_JSON_TYPES: dict[type[Any], str] = {str: "a string", list: "an array", dict: "an object", bool: "a boolean"}
"""Names of the JSON types a field may be required to have, for error messages."""

_ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})
_KNOWN_FIELDS: frozenset[str] = frozenset({"model", "messages", "tools", "format", "options", "stream", "think"})
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,")


def _require(obj: JSONObject, key: str, kind: type[_T], param: str) -> _T:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise InvalidRequestError(f"{param} must be {_JSON_TYPES[kind]}", param=param)
    return value


def _optional(obj: JSONObject, key: str, kind: type[_T], param: str) -> _T | None:
    return None if obj.get(key) is None else _require(obj, key, kind, param)


def parse_request(body: JSONObject, *, model: str | None = None) -> ChatRequest:
    """Client ``/api/chat`` body → canonical request; ``model``, when given, stands in for the body's.

    Ollama's ``stream`` defaults to true. Unknown top-level fields and unmapped ``options`` go to
    ``extensions["ollama"]``.

    Raises:
        InvalidRequestError: naming the offending field, e.g. ``messages[1].role``.
    """
    if model is None:
        model = _require(body, "model", str, "model")
    raw_messages = _require(body, "messages", list, "messages")
    system, messages = _parse_messages(raw_messages)
    options = _optional(body, "options", dict, "options") or {}
    extension: JSONObject = {key: value for key, value in body.items() if key not in _KNOWN_FIELDS}
    rest = {key: value for key, value in options.items() if key not in _OPTIONS and key != "stop"}
    if rest:
        extension["options"] = rest
    think = body.get("think")
    effort = None
    if isinstance(think, str) and think in _THINK_LEVELS:
        effort = think
    elif isinstance(think, bool):
        extension["think"] = think
    elif think is not None:
        raise InvalidRequestError("think must be a boolean or one of low, medium, high", param="think")
    stream = _optional(body, "stream", bool, "stream")
    return ChatRequest(
        model=model,
        messages=messages,
        system=system,
        tools=_parse_tools(_optional(body, "tools", list, "tools") or []),
        stream=True if stream is None else stream,
        response_format=_parse_format(body.get("format")),
        reasoning_effort=effort,
        extensions={FORMAT: extension} if extension else {},
        temperature=_number(options, "temperature"),
        top_p=_number(options, "top_p"),
        top_k=_json_int(_number(options, "top_k", is_integer=True)),
        max_output_tokens=_json_int(_number(options, "num_predict", is_integer=True)),
        stop=_stop(options),
    )


def _number(options: JSONObject, key: str, *, is_integer: bool = False) -> float | None:
    value = options.get(key)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if value is None or is_int or (isinstance(value, float) and not is_integer):
        return value  # type: ignore[return-value]
    kind = "an integer" if is_integer else "a number"
    raise InvalidRequestError(f"options.{key} must be {kind}", param=f"options.{key}")


def _stop(options: JSONObject) -> tuple[str, ...]:
    stop = options.get("stop")
    if stop is None:
        return ()
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise InvalidRequestError("options.stop must be a list of strings", param="options.stop")
    return tuple(str(item) for item in stop)


def _parse_format(value: JSONValue | None) -> ResponseFormat | None:
    if value is None or value == "":
        return None
    if value == "json":
        return ResponseFormat(mode="json_object")
    if isinstance(value, dict):
        return ResponseFormat(mode="json_schema", schema=value)
    raise InvalidRequestError('format must be "json" or a JSON schema object', param="format")


def _parse_tools(tools: list[JSONValue]) -> tuple[ToolSpec, ...]:
    specs = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        function = _require(tool, "function", dict, f"{where}.function")
        description = _optional(function, "description", str, f"{where}.function.description")
        specs.append(
            ToolSpec(
                name=_require(function, "name", str, f"{where}.function.name"),
                description=description,
                parameters=_optional(function, "parameters", dict, f"{where}.function.parameters") or {},
            )
        )
    return tuple(specs)


def _parse_messages(raw: list[JSONValue]) -> tuple[tuple[TextPart, ...], tuple[Message, ...]]:
    system: list[TextPart] = []
    messages: list[Message] = []
    pending: dict[str, str] = {}  # unanswered call ids of the latest assistant turn → their tool names
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequestError(f"{where}.role must be one of {sorted(_ROLES)}", param=f"{where}.role")
        content = _optional(item, "content", str, f"{where}.content") or ""
        if role == "system":
            system.append(TextPart(text=content))
        elif role == "tool":
            result = _parse_tool_result(item, where, content, pending)
            last = messages[-1] if messages else None
            if last is not None and last.parts and isinstance(last.parts[-1], ToolResultPart):
                messages[-1] = Message(role="user", parts=(*last.parts, result))
            else:
                messages.append(Message(role="user", parts=(result,)))
        elif role == "user":
            messages.append(Message(role="user", parts=_content_parts(item, where, content)))
        else:
            message = _parse_assistant(item, where, content, i)
            pending = {p.call_id: p.name for p in message.parts if isinstance(p, ToolCallPart)}
            messages.append(message)
    return tuple(system), tuple(messages)


def _content_parts(item: JSONObject, where: str, content: str) -> tuple[TextPart | ImagePart, ...]:
    parts: list[TextPart | ImagePart] = [TextPart(text=content)] if content else []
    images = _optional(item, "images", list, f"{where}.images") or []
    for j, image in enumerate(images):
        if not isinstance(image, str):
            raise InvalidRequestError(f"{where}.images[{j}] must be a base64 string", param=f"{where}.images[{j}]")
        parts.append(_parse_image(image))
    return tuple(parts)


def _parse_image(data: str) -> ImagePart:
    match = _DATA_URL.match(data)
    if match:
        return ImagePart(data=data[match.end() :], media_type=match.group(1))
    media_type = next((kind for prefix, kind in _IMAGE_MAGIC.items() if data.startswith(prefix)), None)
    return ImagePart(data=data, media_type=media_type)


def _parse_assistant(item: JSONObject, where: str, content: str, i: int) -> Message:
    parts: list[Part] = []
    thinking = _optional(item, "thinking", str, f"{where}.thinking")
    if thinking:
        parts.append(ReasoningPart(text=thinking, source_format=FORMAT))
    parts.extend(_content_parts(item, where, content))
    calls = _optional(item, "tool_calls", list, f"{where}.tool_calls") or []
    for j, call in enumerate(calls):
        parts.append(_parse_tool_call(call, f"{where}.tool_calls[{j}]", f"call_{i}_{j}"))
    return Message(role="assistant", parts=tuple(parts))


def _parse_tool_call(call: JSONValue, where: str, call_id: str) -> ToolCallPart:
    if not isinstance(call, dict):
        raise InvalidRequestError(f"{where} must be an object", param=where)
    function = _require(call, "function", dict, f"{where}.function")
    arguments = _optional(function, "arguments", dict, f"{where}.function.arguments") or {}
    return ToolCallPart(
        call_id=call_id,
        name=_require(function, "name", str, f"{where}.function.name"),
        arguments=orjson.dumps(arguments).decode(),
    )


def _parse_tool_result(item: JSONObject, where: str, content: str, pending: dict[str, str]) -> ToolResultPart:
    # Ollama tool messages carry no call id: answer the first unanswered call of the same tool_name,
    # else the first unanswered call; a result that answers nothing gets an id of its own.
    name = _optional(item, "tool_name", str, f"{where}.tool_name")
    call_id = next((cid for cid, cname in pending.items() if cname == name), None)
    if call_id is None:
        call_id = next(iter(pending), f"result_{where[9:-1]}")
    pending.pop(call_id, None)
    return ToolResultPart(call_id=call_id, content=_content_parts(item, where, content))


def render_request(request: ChatRequest) -> JSONObject:
    """Canonical request → Ollama ``/api/chat`` body; reasoning from other formats is dropped.

    Raises:
        InvalidRequestError: an image is given by URL, which Ollama cannot take.
    """
    extension = dict(request.extensions.get(FORMAT, {}))
    messages: list[JSONValue] = [{"role": "system", "content": part.text} for part in request.system]
    names: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        messages.extend(_render_message(message, f"messages[{i}]", names))
    body: JSONObject = {"model": request.model, "messages": messages, "stream": request.stream}
    if request.tools:
        body["tools"] = [render_tool(tool) for tool in request.tools]
    fmt = request.response_format
    if fmt is not None and fmt.mode == "json_object":
        body["format"] = "json"
    elif fmt is not None and fmt.schema is not None:
        body["format"] = fmt.schema
    options = _render_options(request, extension.pop("options", None))
    if options:
        body["options"] = options
    think = _render_think(request)
    if think is not None:
        body["think"] = think
    body.update(extension)
    return body


def _render_options(request: ChatRequest, extra: JSONValue) -> JSONObject:
    options: JSONObject = dict(extra) if isinstance(extra, dict) else {}
    for key, field in _OPTIONS.items():
        value = getattr(request, field)
        if value is not None:
            options[key] = value
    if request.stop:
        options["stop"] = list(request.stop)
    return options


def _render_think(request: ChatRequest) -> JSONValue:
    effort = request.reasoning_effort
    if effort in _THINK_LEVELS:
        return effort
    if effort == "none":
        return False
    return True if effort is not None or request.reasoning_budget_tokens is not None else None


def _render_message(message: Message, where: str, names: dict[str, str]) -> list[JSONValue]:
    if message.role == "assistant":
        return [_render_assistant(message.parts, where, names)]
    rendered: list[JSONValue] = []
    has_plain = False
    for j, part in enumerate(message.parts):
        if isinstance(part, ToolResultPart):
            tool: JSONObject = {"role": "tool", **_render_content(part.content, f"{where}.parts[{j}].content")}
            if part.call_id in names:
                tool["tool_name"] = names[part.call_id]
            rendered.append(tool)
        else:
            has_plain = True
    if has_plain or not rendered:
        # Tool results are skipped here (they became tool messages above), so part indexes stay true.
        rendered.append({"role": "user", **_render_content(message.parts, f"{where}.parts")})
    return rendered


def _render_assistant(parts: tuple[Part, ...], where: str, names: dict[str, str]) -> JSONObject:
    thinking = "".join(p.text for p in parts if isinstance(p, ReasoningPart) and p.source_format == FORMAT)
    body: JSONObject = {"role": "assistant", **_render_content(parts, f"{where}.parts")}
    if thinking:
        body["thinking"] = thinking
    calls = [p for p in parts if isinstance(p, ToolCallPart)]
    if calls:
        body["tool_calls"] = [
            _render_tool_call(p, f"{where}.parts[{j}]") for j, p in enumerate(parts) if isinstance(p, ToolCallPart)
        ]
        names.update((call.call_id, call.name) for call in calls)
    return body


def _render_content(parts: tuple[Part, ...], where: str) -> JSONObject:
    # Ollama has one content string per message; separate text parts are joined by newlines.
    body: JSONObject = {"content": "\n".join(p.text for p in parts if isinstance(p, TextPart))}
    images: list[JSONValue] = []
    for j, part in enumerate(parts):
        if isinstance(part, ImagePart):
            if part.data is None:
                raise InvalidRequestError(
                    "Ollama accepts only inline base64 images, not image URLs",
                    code="unsupported_feature",
                    param=f"{where}[{j}]",
                )
            images.append(part.data)
    if images:
        body["images"] = images
    return body


def _render_tool_call(call: ToolCallPart, where: str) -> JSONObject:
    arguments = _arguments_object(call.arguments)
    if arguments is None:
        raise InvalidRequestError("Ollama tool call arguments must be a JSON object", param=where)
    return {"function": {"name": call.name, "arguments": arguments}}
