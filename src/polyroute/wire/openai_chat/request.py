"""OpenAI Chat Completions request bodies (``POST /v1/chat/completions``) <-> ``ChatRequest``.

Spec: https://platform.openai.com/docs/api-reference/chat/create
Reasoning parts are never rendered: Chat Completions has no field that takes reasoning back as input.
"""

from __future__ import annotations

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
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import as_list, as_object, fail, field_path, opt_bool, opt_float, opt_int, opt_str, req_str

FORMAT = "openai"
"""``WireFormat.OPENAI``: the key of ``extensions`` and the ``source_format`` of reasoning parts."""

_KNOWN_FIELDS = frozenset(
    {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "max_tokens"}
    | {"max_completion_tokens", "temperature", "top_p", "stop", "stream", "reasoning_effort", "user"}
)
_TOOL_CHOICES: dict[str, ToolChoice] = {
    "auto": ToolChoice(mode="auto"),
    "none": ToolChoice(mode="none"),
    "required": ToolChoice(mode="required"),
}
"""OpenAI ``tool_choice`` string → canonical; the object form naming a function is handled apart."""
_RESPONSE_FORMATS: dict[str, ResponseFormat] = {
    "text": ResponseFormat(mode="text"),
    "json_object": ResponseFormat(mode="json_object"),
}
"""``response_format.type`` → canonical; ``json_schema``, which carries a schema, is handled apart."""
_SYSTEM_ROLES = frozenset({"system", "developer"})
_DATA_URL_PREFIX = "data:"
_BASE64_MARKER = ";base64,"


# --- content -------------------------------------------------------------------------------------------------------


def _parse_image(part: JSONObject, param: str) -> ImagePart:
    # image_url.detail has no canonical field and is dropped.
    image_param = field_path(param, "image_url")
    url = req_str(as_object(part.get("image_url"), image_param), "url", image_param)
    if not url.startswith(_DATA_URL_PREFIX):
        return ImagePart(url=url)
    media_type, marker, data = url[len(_DATA_URL_PREFIX) :].partition(_BASE64_MARKER)
    if not marker or not media_type:
        fail(field_path(image_param, "url"), "a data: URL must have the form data:<media type>;base64,<data>")
    return ImagePart(data=data, media_type=media_type)


def _parse_content_part(value: JSONValue, param: str, *, allow_images: bool) -> TextPart | ImagePart:
    part = as_object(value, param)
    part_type = req_str(part, "type", param)
    if part_type == "text":
        return TextPart(text=req_str(part, "text", param))
    if part_type == "image_url" and allow_images:
        return _parse_image(part, param)
    fail(field_path(param, "type"), f"unsupported content part type {part_type!r}")


def _parse_content(message: JSONObject, param: str, *, allow_images: bool = False) -> tuple[TextPart | ImagePart, ...]:
    content = message.get("content")
    if content is None:
        return ()
    if isinstance(content, str):
        return (TextPart(text=content),)
    items = as_list(content, field_path(param, "content"))
    return tuple(
        _parse_content_part(item, f"{param}.content[{index}]", allow_images=allow_images)
        for index, item in enumerate(items)
    )


def _parse_tool_call(value: JSONValue, param: str) -> ToolCallPart:
    call = as_object(value, param)
    if req_str(call, "type", param) != "function":
        fail(field_path(param, "type"), "must be 'function'")
    function_param = field_path(param, "function")
    function = as_object(call.get("function"), function_param)
    # The arguments text is kept byte for byte; it is the model's output and may not even be valid JSON.
    return ToolCallPart(
        call_id=req_str(call, "id", param),
        name=req_str(function, "name", function_param),
        arguments=req_str(function, "arguments", function_param),
    )


def _parse_assistant(message: JSONObject, param: str) -> Message:
    parts: list[Part] = list(_parse_content(message, param))
    calls = as_list(message.get("tool_calls") or [], field_path(param, "tool_calls"))
    parts.extend(_parse_tool_call(call, f"{param}.tool_calls[{index}]") for index, call in enumerate(calls))
    return Message(role="assistant", parts=tuple(parts))


def _parse_tool_result(message: JSONObject, param: str) -> ToolResultPart:
    return ToolResultPart(call_id=req_str(message, "tool_call_id", param), content=_parse_content(message, param))


# --- messages ------------------------------------------------------------------------------------------------------


def _parse_messages(values: list[JSONValue]) -> tuple[tuple[TextPart, ...], tuple[Message, ...]]:
    """Split OpenAI messages into the canonical system prompt and turns.

    System and developer messages are gathered into the system prompt wherever they stand; consecutive
    ``role: tool`` messages become one user message of tool results.
    """
    system: list[TextPart] = []
    messages: list[Message] = []
    for index, value in enumerate(values):
        param = f"messages[{index}]"
        message = as_object(value, param)
        role = req_str(message, "role", param)
        if role in _SYSTEM_ROLES:
            system.extend(part for part in _parse_content(message, param) if isinstance(part, TextPart))
        elif role == "user":
            messages.append(Message(role="user", parts=_parse_content(message, param, allow_images=True)))
        elif role == "assistant":
            messages.append(_parse_assistant(message, param))
        elif role == "tool":
            result = _parse_tool_result(message, param)
            if messages and messages[-1].role == "user" and _is_tool_results(messages[-1]):
                messages[-1] = Message(role="user", parts=(*messages[-1].parts, result))
            else:
                messages.append(Message(role="user", parts=(result,)))
        else:
            fail(field_path(param, "role"), "must be one of system, developer, user, assistant, tool")
    return tuple(system), tuple(messages)


def _is_tool_results(message: Message) -> bool:
    return all(isinstance(part, ToolResultPart) for part in message.parts)


def _parse_tool(value: JSONValue, param: str) -> ToolSpec:
    tool = as_object(value, param)
    if req_str(tool, "type", param) != "function":
        fail(field_path(param, "type"), "must be 'function'")
    function_param = field_path(param, "function")
    function = as_object(tool.get("function"), function_param)
    parameters = function.get("parameters")
    return ToolSpec(
        name=req_str(function, "name", function_param),
        description=opt_str(function, "description", function_param),
        parameters={} if parameters is None else as_object(parameters, field_path(function_param, "parameters")),
    )


def _parse_tool_choice(value: JSONValue) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in _TOOL_CHOICES:
            fail("tool_choice", "must be one of auto, none, required, or an object naming a function")
        return _TOOL_CHOICES[value]
    choice = as_object(value, "tool_choice")
    if req_str(choice, "type", "tool_choice") != "function":
        fail("tool_choice.type", "must be 'function'")
    function = as_object(choice.get("function"), "tool_choice.function")
    return ToolChoice(mode="tool", name=req_str(function, "name", "tool_choice.function"))


def _parse_response_format(value: JSONValue) -> ResponseFormat | None:
    if value is None:
        return None
    response_format = as_object(value, "response_format")
    mode = req_str(response_format, "type", "response_format")
    if mode in _RESPONSE_FORMATS:
        return _RESPONSE_FORMATS[mode]
    if mode != "json_schema":
        fail("response_format.type", "must be one of text, json_object, json_schema")
    spec = as_object(response_format.get("json_schema"), "response_format.json_schema")
    schema = spec.get("schema")
    return ResponseFormat(
        mode="json_schema",
        name=req_str(spec, "name", "response_format.json_schema"),
        schema=None if schema is None else as_object(schema, "response_format.json_schema.schema"),
        strict=opt_bool(spec, "strict", "response_format.json_schema"),
    )


def _parse_stop(value: JSONValue) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    items = as_list(value, "stop")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            fail(f"stop[{index}]", "must be a string")
    return tuple(item for item in items if isinstance(item, str))


def parse_request(body: JSONObject, *, model: str | None = None) -> ChatRequest:
    """Client body → canonical request; ``model``, when given, stands in for the body's.

    ``max_completion_tokens`` wins over the deprecated ``max_tokens`` when both are sent. Fields the
    canonical form has no place for (``n``, ``seed``, ``stream_options``, ``logprobs``, …) are kept in
    ``extensions["openai"]``; message ``name`` fields, image ``detail`` and tool ``strict`` are dropped.

    Raises:
        InvalidRequestError: naming the offending field, e.g. ``messages[2].content[0].type``.
    """
    system, messages = _parse_messages(as_list(body.get("messages"), "messages"))
    tools = as_list(body.get("tools") or [], "tools")
    max_tokens = opt_int(body, "max_completion_tokens", "")
    if max_tokens is None:
        max_tokens = opt_int(body, "max_tokens", "")
    extensions = {key: value for key, value in body.items() if key not in _KNOWN_FIELDS}
    return ChatRequest(
        model=model if model is not None else req_str(body, "model", ""),
        messages=messages,
        system=system,
        tools=tuple(_parse_tool(item, f"tools[{index}]") for index, item in enumerate(tools)),
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls", ""),
        response_format=_parse_response_format(body.get("response_format")),
        max_output_tokens=max_tokens,
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        stop=_parse_stop(body.get("stop")),
        stream=bool(opt_bool(body, "stream", "")),
        reasoning_effort=opt_str(body, "reasoning_effort", ""),
        user_id=opt_str(body, "user", ""),
        extensions={FORMAT: extensions} if extensions else {},
    )


# --- rendering -----------------------------------------------------------------------------------------------------


def _render_image(part: ImagePart) -> JSONObject:
    url = part.url if part.data is None else f"data:{part.media_type};base64,{part.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _render_content(parts: list[TextPart | ImagePart]) -> JSONValue:
    """A lone text part as a plain string (the common form); anything else as a list of content parts."""
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return [
        {"type": "text", "text": part.text} if isinstance(part, TextPart) else _render_image(part) for part in parts
    ]


def render_tool_call(part: ToolCallPart) -> JSONObject:
    """A canonical tool call → an OpenAI ``tool_calls`` entry; the arguments text is passed through untouched."""
    return {"id": part.call_id, "type": "function", "function": {"name": part.name, "arguments": part.arguments}}


def _render_tool_result(part: ToolResultPart, param: str) -> JSONObject:
    # OpenAI tool messages take text only and have no error flag; is_error is dropped.
    texts: list[TextPart | ImagePart] = []
    for item in part.content:
        if not isinstance(item, TextPart):
            fail(param, "OpenAI tool messages cannot carry images")
        texts.append(item)
    return {"role": "tool", "tool_call_id": part.call_id, "content": _render_content(texts) if texts else ""}


def _render_user(message: Message, param: str) -> list[JSONValue]:
    rendered: list[JSONValue] = []
    content: list[TextPart | ImagePart] = []
    for index, part in enumerate(message.parts):
        if isinstance(part, ToolResultPart):
            # Tool results go first: OpenAI wants them right after the assistant message that made the calls.
            rendered.append(_render_tool_result(part, f"{param}.parts[{index}]"))
        elif isinstance(part, TextPart | ImagePart):
            content.append(part)
        else:
            fail(f"{param}.parts[{index}]", f"a user message cannot carry a {part.kind} part")
    if content:
        rendered.append({"role": "user", "content": _render_content(content)})
    return rendered


def _render_assistant(message: Message, param: str) -> JSONObject:
    texts: list[TextPart | ImagePart] = []
    calls: list[JSONValue] = []
    for index, part in enumerate(message.parts):
        if isinstance(part, TextPart):
            texts.append(part)
        elif isinstance(part, ToolCallPart):
            calls.append(render_tool_call(part))
        elif part.kind != "reasoning":
            fail(f"{param}.parts[{index}]", f"an assistant message cannot carry a {part.kind} part")
    rendered: JSONObject = {"role": "assistant", "content": _render_content(texts) if texts else None}
    if calls:
        rendered["tool_calls"] = calls
    return rendered


def _render_messages(request: ChatRequest) -> list[JSONValue]:
    rendered: list[JSONValue] = []
    if request.system:
        rendered.append({"role": "system", "content": "\n\n".join(part.text for part in request.system)})
    for index, message in enumerate(request.messages):
        param = f"messages[{index}]"
        if message.role == "user":
            rendered.extend(_render_user(message, param))
        else:
            rendered.append(_render_assistant(message, param))
    return rendered


def render_tool(tool: ToolSpec) -> JSONObject:
    """A canonical tool as an OpenAI-style function spec (Ollama takes the same shape)."""
    function: JSONObject = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    return {"type": "function", "function": function}


def _render_tool_choice(choice: ToolChoice | None) -> JSONValue:
    if choice is None:
        return None
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _render_response_format(response_format: ResponseFormat | None) -> JSONObject | None:
    if response_format is None:
        return None
    if response_format.mode != "json_schema":
        return {"type": response_format.mode}
    spec: JSONObject = {"name": response_format.name or "response"}
    if response_format.schema is not None:
        spec["schema"] = response_format.schema
    if response_format.strict is not None:
        spec["strict"] = response_format.strict
    return {"type": "json_schema", "json_schema": spec}


def render_request(request: ChatRequest) -> JSONObject:
    """Canonical request → OpenAI body; ``extensions["openai"]`` is re-emitted, canonical fields win.

    System parts are joined into one system message. Reasoning parts, ``top_k`` and the reasoning token
    budget are not sent: Chat Completions has no field for them. A streamed request asks for the final
    usage chunk (``stream_options.include_usage``) unless the extensions already say otherwise.

    Raises:
        InvalidRequestError: a part the OpenAI format cannot carry, such as an image in a tool result.
    """
    body: JSONObject = dict(request.extensions.get(FORMAT, {}))
    body["model"] = request.model
    body["messages"] = _render_messages(request)
    optional: JSONObject = {
        "tools": [render_tool(tool) for tool in request.tools] or None,
        "tool_choice": _render_tool_choice(request.tool_choice),
        "parallel_tool_calls": request.parallel_tool_calls,
        "response_format": _render_response_format(request.response_format),
        "max_completion_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop) or None,
        "stream": request.stream or None,
        "reasoning_effort": request.reasoning_effort,
        "user": request.user_id,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if request.stream and "stream_options" not in body:
        body["stream_options"] = {"include_usage": True}
    return body
