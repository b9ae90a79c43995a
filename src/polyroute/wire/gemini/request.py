"""Gemini ``GenerateContentRequest`` <-> canonical ``ChatRequest``.

See: https://ai.google.dev/api/generate-content#request-body
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, cast

import orjson
from pydantic import ValidationError

from polyroute.core.messages import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from polyroute.errors import InvalidRequestError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.gemini.parts import (
    SOURCE_FORMAT,
    SYNTHETIC_CALL_ID_PREFIX,
    parse_media,
    parse_model_part,
    render_media,
    render_model_parts,
)
from polyroute.wire.gemini.types import (
    DECLARATIONS_ADAPTER,
    REQUEST_ADAPTER,
    ContentParam,
    GenerateContentRequestParam,
    GenerationConfigParam,
    PartParam,
)

_ROLES: dict[str, str] = {"user": "user", "model": "assistant"}
"""Gemini ``Content.role`` -> canonical role."""

_RENDERED_ROLES: dict[str, str] = {"user": "user", "assistant": "model"}

_TOOL_MODES: dict[str, str] = {"AUTO": "auto", "ANY": "required", "NONE": "none"}
"""``functionCallingConfig.mode`` -> ``ToolChoice.mode`` (ANY with one allowed name becomes ``tool``)."""

_RENDERED_TOOL_MODES: dict[str, str] = {"auto": "AUTO", "required": "ANY", "none": "NONE", "tool": "ANY"}

_JSON_MIME = "application/json"
_TEXT_MIME = "text/plain"
_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")


_OPAQUE_KEYS = frozenset(
    {"args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema"}
    | {"parameters_json_schema", "response_schema", "response_json_schema", "labels", "metadata"}
)
"""Keys whose values are the caller's own data (JSON Schemas, call arguments): never renamed."""


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def camel_case_keys(value: JSONValue) -> JSONValue:
    """The request with snake_case field names written as camelCase, as Gemini's JSON mapping allows both.

    Clients such as google-genai send some fields snake_case (``parameters_json_schema``); the values
    of the keys in ``_OPAQUE_KEYS`` are left exactly as sent.
    """
    if isinstance(value, list):
        return [camel_case_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: JSONObject = {}
    for key, item in value.items():
        name = _camel(key) if "_" in key else key
        out[name] = item if key in _OPAQUE_KEYS else camel_case_keys(item)
    return out


def parse_request(body: JSONObject, *, model: str | None = None) -> ChatRequest:
    """Gemini request body -> canonical request; ``model`` comes from the URL path and is required.

    ``stream`` is left False: Gemini chooses streaming by endpoint, so the caller sets it.

    Raises:
        InvalidRequestError: naming the offending field, e.g. ``contents[1].parts[0]``.
    """
    if not model:
        raise InvalidRequestError("the model is named in the URL path: /v1beta/models/{model}:generateContent")
    body = cast(JSONObject, camel_case_keys(body))
    try:
        request = REQUEST_ADAPTER.validate_python(body)
    except ValidationError as exc:
        raise _invalid(exc, prefix="") from exc
    extensions: JSONObject = {key: value for key, value in body.items() if key not in REQUEST_ADAPTER_KEYS}
    config = request.get("generationConfig", {})
    config_extra = _leftovers(body.get("generationConfig"), config)
    mime = config.get("responseMimeType")
    if mime is not None and mime not in (_JSON_MIME, _TEXT_MIME):
        config_extra["responseMimeType"] = mime
    _extend(extensions, "generationConfig", config_extra)
    tool_choice = _parse_tool_choice(request, extensions)
    return ChatRequest(
        model=model,
        messages=_parse_contents(request["contents"]),
        system=_parse_system(request.get("systemInstruction")),
        tools=_parse_tools(request.get("tools", []), extensions),
        tool_choice=tool_choice,
        max_output_tokens=config.get("maxOutputTokens"),
        temperature=config.get("temperature"),
        top_p=config.get("topP"),
        top_k=config.get("topK"),
        stop=tuple(config.get("stopSequences", ())),
        response_format=_parse_response_format(config),
        reasoning_effort=config.get("thinkingConfig", {}).get("thinkingLevel"),
        reasoning_budget_tokens=config.get("thinkingConfig", {}).get("thinkingBudget"),
        extensions={SOURCE_FORMAT: extensions} if extensions else {},
    )


REQUEST_ADAPTER_KEYS = frozenset(GenerateContentRequestParam.__annotations__)


def _invalid(exc: ValidationError, *, prefix: str) -> InvalidRequestError:
    error = exc.errors()[0]
    path = prefix
    for item in error["loc"]:
        path += f"[{item}]" if isinstance(item, int) else (f".{item}" if path else str(item))
    return InvalidRequestError(f"{path}: {error['msg']}", param=path)


def _leftovers(raw: JSONValue | None, known: Mapping[str, Any]) -> JSONObject:
    """Keys of ``raw`` that validation did not keep, recursing into the one nested config we read."""
    if not isinstance(raw, dict):
        return {}
    extra: JSONObject = {key: value for key, value in raw.items() if key not in known}
    thinking = _leftovers(raw.get("thinkingConfig"), known.get("thinkingConfig", {}))
    _extend(extra, "thinkingConfig", thinking)
    return extra


def _extend(target: JSONObject, key: str, value: JSONObject) -> None:
    if value:
        target[key] = value


def _parse_system(content: ContentParam | None) -> tuple[TextPart, ...]:
    if content is None:
        return ()
    system: list[TextPart] = []
    for index, part in enumerate(content["parts"]):
        if set(part) != {"text"}:
            param = f"systemInstruction.parts[{index}]"
            raise InvalidRequestError(f"{param}: systemInstruction takes text parts only", param=param)
        system.append(TextPart(text=part["text"]))
    return tuple(system)


def _parse_contents(contents: list[ContentParam]) -> tuple[Message, ...]:
    pending: dict[str, list[str]] = {}
    messages: list[Message] = []
    for i, content in enumerate(contents):
        role = _ROLES[content.get("role", "user")]
        parts: list[Part] = []
        for j, part in enumerate(content["parts"]):
            param = f"contents[{i}].parts[{j}]"
            if sum(field in part for field in _DATA_FIELDS) != 1:
                raise InvalidRequestError(f"{param}: set exactly one of {', '.join(_DATA_FIELDS)}", param=param)
            if role == "assistant":
                call_id = f"{SYNTHETIC_CALL_ID_PREFIX}{i}_{j}"
                parts.extend(_parse_model_part(part, param=param, call_id=call_id, pending=pending))
            else:
                parts.append(_parse_user_part(part, param=param, pending=pending))
        messages.append(Message(role="assistant" if role == "assistant" else "user", parts=tuple(parts)))
    return tuple(messages)


def _parse_model_part(part: PartParam, *, param: str, call_id: str, pending: dict[str, list[str]]) -> list[Part]:
    if "functionResponse" in part:
        raise InvalidRequestError(f"{param}: functionResponse belongs in a user turn", param=param)
    parsed = parse_model_part(part, call_id=call_id)
    for item in parsed:
        if isinstance(item, ToolCallPart):
            pending.setdefault(item.name, []).append(item.call_id)
    return parsed


def _parse_user_part(part: PartParam, *, param: str, pending: dict[str, list[str]]) -> Part:
    if "functionCall" in part:
        raise InvalidRequestError(f"{param}: functionCall belongs in a model turn", param=param)
    media = parse_media(part)
    if media is not None:
        return media
    result = part.get("functionResponse")
    if result is None:
        return TextPart(text=part["text"])
    calls = pending.get(result["name"], [])
    call_id = result.get("id")
    if call_id is None:
        if not calls:
            raise InvalidRequestError(f"{param}: functionResponse matches no earlier functionCall", param=param)
        call_id = calls[0]
    if call_id in calls:
        calls.remove(call_id)
    return _tool_result(call_id, result["response"])


def _tool_result(call_id: str, response: Any) -> ToolResultPart:
    """``{"output": text}`` and ``{"error": text}`` (the documented wrappers) unwrap to their text."""
    if isinstance(response, dict) and len(response) == 1:
        ((key, value),) = response.items()
        if key in ("output", "error") and isinstance(value, str):
            return ToolResultPart(call_id=call_id, content=(TextPart(text=value),), is_error=key == "error")
    return ToolResultPart(call_id=call_id, content=(TextPart(text=orjson.dumps(response).decode()),))


def _parse_tools(tools: list[dict[str, Any]], extensions: JSONObject) -> tuple[ToolSpec, ...]:
    specs: list[ToolSpec] = []
    others: list[JSONValue] = []
    for index, tool in enumerate(tools):
        extra = {key: value for key, value in tool.items() if key != "functionDeclarations"}
        if extra:
            others.append(extra)
        try:
            declarations = DECLARATIONS_ADAPTER.validate_python(tool.get("functionDeclarations", []))
        except ValidationError as exc:
            raise _invalid(exc, prefix=f"tools[{index}].functionDeclarations") from exc
        for declaration in declarations:
            schema = declaration.get("parametersJsonSchema", declaration.get("parameters", {}))
            specs.append(
                ToolSpec(name=declaration["name"], description=declaration.get("description"), parameters=schema)
            )
    if others:
        extensions["tools"] = others
    return tuple(specs)


def _parse_tool_choice(request: GenerateContentRequestParam, extensions: JSONObject) -> ToolChoice | None:
    config = request.get("toolConfig", {}).get("functionCallingConfig", {})
    if "mode" not in config:
        return None
    mode = _TOOL_MODES[config["mode"]]
    names = config.get("allowedFunctionNames", [])
    if mode == "required" and len(names) == 1:
        return ToolChoice(mode="tool", name=names[0])
    if names:
        # Canonical choice cannot name a subset of tools; the list rides along for Gemini upstreams.
        extensions["toolConfig"] = {"functionCallingConfig": {"allowedFunctionNames": cast(JSONValue, names)}}
    return ToolChoice(mode=cast(Any, mode))


def _parse_response_format(config: GenerationConfigParam) -> ResponseFormat | None:
    mime = config.get("responseMimeType")
    schema = config.get("responseJsonSchema")
    if schema is not None:
        return ResponseFormat(mode="json_schema", schema=schema)
    if mime == _JSON_MIME:
        return ResponseFormat(mode="json_object")
    if mime == _TEXT_MIME:
        return ResponseFormat(mode="text")
    return None


def render_request(request: ChatRequest) -> JSONObject:
    """Canonical request -> Gemini body (the model goes in the URL, so it is not in the body).

    Raises:
        InvalidRequestError: a tool result answers no earlier tool call, or carries an image.
    """
    body: JSONObject = {"contents": _render_messages(request.messages)}
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": part.text} for part in request.system]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_render_tool(tool) for tool in request.tools]}]
    if request.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _render_tool_choice(request.tool_choice)}
    config = _render_generation_config(request)
    if config:
        body["generationConfig"] = config
    return _merge(body, request.extensions.get(SOURCE_FORMAT, {}))


def _render_messages(messages: tuple[Message, ...]) -> list[JSONValue]:
    names: dict[str, str] = {}
    contents: list[JSONValue] = []
    for i, message in enumerate(messages):
        if message.role == "assistant":
            for j, part in enumerate(message.parts):
                if isinstance(part, ToolResultPart):
                    param = f"messages[{i}].parts[{j}]"
                    raise InvalidRequestError(f"{param}: a tool result cannot appear in an assistant turn", param=param)
                if isinstance(part, ToolCallPart):
                    names[part.call_id] = part.name
            parts = render_model_parts(message.parts)
        else:
            parts = [
                _render_user_part(part, param=f"messages[{i}].parts[{j}]", names=names)
                for j, part in enumerate(message.parts)
            ]
        if parts:  # a turn of nothing but foreign reasoning renders empty, and Gemini rejects empty turns
            contents.append({"role": _RENDERED_ROLES[message.role], "parts": cast(JSONValue, parts)})
    return contents


def _render_user_part(part: Part, *, param: str, names: Mapping[str, str]) -> JSONObject:
    if isinstance(part, ImagePart):
        return render_media(part)
    if isinstance(part, ToolResultPart):
        return _render_tool_result(part, param=param, names=names)
    if isinstance(part, TextPart):
        return {"text": part.text}
    raise InvalidRequestError(f"{param}: a {part.kind} part cannot appear in a user turn", param=param)


def _render_tool_result(part: ToolResultPart, *, param: str, names: Mapping[str, str]) -> JSONObject:
    name = names.get(part.call_id)
    if name is None:
        raise InvalidRequestError(f"{param}: tool result answers no earlier tool call", param=param)
    texts: list[str] = []
    for item in part.content:
        if isinstance(item, ImagePart):
            raise InvalidRequestError(f"{param}: Gemini tool results cannot carry images", param=param)
        texts.append(item.text)
    text = "".join(texts)
    try:
        response: JSONValue = orjson.loads(text)
    except orjson.JSONDecodeError:
        response = None
    if not isinstance(response, dict):
        response = {"error" if part.is_error else "output": text}
    result: JSONObject = {"name": name, "response": response}
    if not part.call_id.startswith(SYNTHETIC_CALL_ID_PREFIX):
        result["id"] = part.call_id
    return {"functionResponse": result}


def _render_tool(tool: ToolSpec) -> JSONObject:
    declaration: JSONObject = {"name": tool.name}
    if tool.description is not None:
        declaration["description"] = tool.description
    if tool.parameters:
        declaration["parameters"] = tool.parameters
    return declaration


def _render_tool_choice(choice: ToolChoice) -> JSONObject:
    config: JSONObject = {"mode": _RENDERED_TOOL_MODES[choice.mode]}
    if choice.mode == "tool" and choice.name is not None:
        config["allowedFunctionNames"] = [choice.name]
    return config


def _render_generation_config(request: ChatRequest) -> JSONObject:
    values: dict[str, JSONValue] = {
        "temperature": request.temperature,
        "topP": request.top_p,
        "topK": request.top_k,
        "maxOutputTokens": request.max_output_tokens,
        "stopSequences": list(request.stop) if request.stop else None,
    }
    config: JSONObject = {key: value for key, value in values.items() if value is not None}
    config.update(_render_response_format(request.response_format))
    thinking: dict[str, JSONValue] = {
        "thinkingBudget": request.reasoning_budget_tokens,
        "thinkingLevel": request.reasoning_effort,
    }
    _extend(config, "thinkingConfig", {key: value for key, value in thinking.items() if value is not None})
    return config


def _render_response_format(response_format: ResponseFormat | None) -> JSONObject:
    if response_format is None:
        return {}
    if response_format.mode == "text":
        return {"responseMimeType": _TEXT_MIME}
    rendered: JSONObject = {"responseMimeType": _JSON_MIME}
    if response_format.schema is not None:
        rendered["responseJsonSchema"] = response_format.schema
    return rendered


def _merge(base: JSONObject, extra: Mapping[str, JSONValue]) -> JSONObject:
    """Lay same-format extensions over a rendered body: objects merge, lists extend, anything else replaces."""
    for key, value in extra.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            current.extend(value)
        else:
            base[key] = copy.deepcopy(value)
    return base
