"""OpenAI Responses request bodies (``POST /v1/responses``) <-> ``ChatRequest``.

Spec: https://platform.openai.com/docs/api-reference/responses/create
Mapping tables and the choices made where the formats differ: docs/formats/responses.md.
"""

from __future__ import annotations

from collections.abc import Callable

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
from polyroute.wire.openai_responses.tools import HOSTED_TOOLS, custom_arguments, flat_name, parse_tools

FORMAT = "responses"
"""``WireFormat.RESPONSES``: the key of ``extensions`` and the ``source_format`` of reasoning parts."""

_KNOWN_FIELDS = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens"}
    | {"temperature", "top_p", "stream", "user"}
)
"""Top-level fields read whole into the canonical form; ``text``, ``reasoning`` and ``safety_identifier``
are read in part and handled apart."""
_TOOL_CHOICES: dict[str, ToolChoice] = {
    "auto": ToolChoice(mode="auto"),
    "none": ToolChoice(mode="none"),
    "required": ToolChoice(mode="required"),
}
"""Responses ``tool_choice`` string → canonical; ``{"type": "function" | "custom", "name": …}`` is handled apart."""
_NAMED_CHOICES = frozenset({"function", "custom"})
_TEXT_FORMATS: dict[str, ResponseFormat] = {
    "text": ResponseFormat(mode="text"),
    "json_object": ResponseFormat(mode="json_object"),
}
"""``text.format.type`` → canonical; ``json_schema``, which carries a schema, is handled apart."""
_TEXT_PART_FIELDS: dict[str, str] = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
"""Message content part ``type`` → the field holding its text. A refusal is what the user read, so it is text."""
_MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})
_SYSTEM_ROLES = frozenset({"system", "developer"})
_DATA_URL_PREFIX = "data:"
_BASE64_MARKER = ";base64,"
SUMMARY_SEPARATOR = "\n\n"
"""Joins the ``summary_text`` entries of one reasoning item into the canonical reasoning text."""


# --- content -------------------------------------------------------------------------------------------------------


def parse_image_url(url: str, param: str) -> ImagePart:
    """An ``image_url`` value → ``ImagePart``; a ``data:`` URL is split into media type and base64 data.

    Raises:
        InvalidRequestError: a ``data:`` URL that is not ``data:<media type>;base64,<data>``.
    """
    if not url.startswith(_DATA_URL_PREFIX):
        return ImagePart(url=url)
    media_type, marker, data = url[len(_DATA_URL_PREFIX) :].partition(_BASE64_MARKER)
    if not marker or not media_type:
        fail(param, "a data: URL must have the form data:<media type>;base64,<data>")
    return ImagePart(data=data, media_type=media_type)


def _parse_input_image(part: JSONObject, param: str) -> ImagePart:
    # ``detail`` has no canonical field and is dropped.
    if opt_str(part, "file_id", param) is not None:
        fail(field_path(param, "file_id"), "images by file id are not supported; send image_url")
    return parse_image_url(req_str(part, "image_url", param), field_path(param, "image_url"))


def _parse_content_part(value: JSONValue, param: str, *, allow_images: bool) -> TextPart | ImagePart:
    part = as_object(value, param)
    part_type = req_str(part, "type", param)
    if part_type in _TEXT_PART_FIELDS:
        return TextPart(text=req_str(part, _TEXT_PART_FIELDS[part_type], param))
    if part_type == "input_image" and allow_images:
        return _parse_input_image(part, param)
    fail(field_path(param, "type"), f"unsupported content part type {part_type!r}")


def _parse_content(item: JSONObject, param: str, *, allow_images: bool) -> tuple[TextPart | ImagePart, ...]:
    content = item.get("content")
    if isinstance(content, str):
        return (TextPart(text=content),)
    content_param = field_path(param, "content")
    items = as_list(content, content_param)
    return tuple(
        _parse_content_part(part, f"{content_param}[{index}]", allow_images=allow_images)
        for index, part in enumerate(items)
    )


def _parse_tool_output(item: JSONObject, param: str) -> tuple[TextPart | ImagePart, ...]:
    output = item.get("output")
    if isinstance(output, str):
        return (TextPart(text=output),) if output else ()
    output_param = field_path(param, "output")
    parts = as_list(output, output_param)
    results: list[TextPart | ImagePart] = []
    for index, value in enumerate(parts):
        part_param = f"{output_param}[{index}]"
        part = as_object(value, part_param)
        part_type = req_str(part, "type", part_param)
        if part_type == "input_text":
            results.append(TextPart(text=req_str(part, "text", part_param)))
        elif part_type == "input_image":
            results.append(_parse_input_image(part, part_param))
        else:
            fail(field_path(part_param, "type"), f"unsupported tool output part type {part_type!r}")
    return tuple(results)


def reasoning_text(item: JSONObject, param: str) -> str:
    """The readable text of a reasoning item: its ``summary`` texts, or else its ``content`` reasoning texts.

    Raises:
        InvalidRequestError: ``summary`` or ``content`` is malformed.
    """
    texts: list[str] = []
    for key in ("summary", "content"):
        values = item.get(key)
        if values is None:
            continue
        entries_param = field_path(param, key)
        for index, value in enumerate(as_list(values, entries_param)):
            texts.append(req_str(as_object(value, f"{entries_param}[{index}]"), "text", f"{entries_param}[{index}]"))
        if texts:
            break
    return SUMMARY_SEPARATOR.join(texts)


def parse_reasoning_item(item: JSONObject, param: str) -> ReasoningPart:
    """A ``reasoning`` item → ``ReasoningPart``: summaries as text, the item id as signature, encrypted content.

    Raises:
        InvalidRequestError: the item is malformed.
    """
    return ReasoningPart(
        text=reasoning_text(item, param),
        signature=opt_str(item, "id", param),
        redacted=opt_str(item, "encrypted_content", param),
        source_format=FORMAT,
    )


def _call_name(item: JSONObject, param: str) -> str:
    return flat_name(opt_str(item, "namespace", param), req_str(item, "name", param))


def parse_function_call(item: JSONObject, param: str) -> ToolCallPart:
    """A ``function_call`` item → ``ToolCallPart``; the arguments text is kept byte for byte.

    A call of a namespace member is named as the canonical tool is (``<namespace>__<name>``, see ``tools``).

    Raises:
        InvalidRequestError: ``call_id``, ``name``, ``namespace`` or ``arguments`` is missing or not a string.
    """
    return ToolCallPart(
        call_id=req_str(item, "call_id", param),
        name=_call_name(item, param),
        arguments=req_str(item, "arguments", param),
    )


def parse_custom_tool_call(item: JSONObject, param: str) -> ToolCallPart:
    """A ``custom_tool_call`` item → ``ToolCallPart`` whose arguments are ``{"input": <the item's input>}``.

    Raises:
        InvalidRequestError: ``call_id``, ``name``, ``namespace`` or ``input`` is missing or not a string.
    """
    return ToolCallPart(
        call_id=req_str(item, "call_id", param),
        name=_call_name(item, param),
        arguments=custom_arguments(req_str(item, "input", param)),
    )


# --- input items ---------------------------------------------------------------------------------------------------


class _Conversation:
    """Collects input items into the system prompt and canonical turns, merging consecutive same-role items."""

    __slots__ = ("messages", "system")

    def __init__(self, system: list[TextPart]) -> None:
        self.system = system
        self.messages: list[Message] = []

    def add(self, role: Role, parts: tuple[Part, ...]) -> None:
        if self.messages and self.messages[-1].role == role:
            self.messages[-1] = Message(role=role, parts=(*self.messages[-1].parts, *parts))
        else:
            self.messages.append(Message(role=role, parts=parts))


def _add_message(conversation: _Conversation, item: JSONObject, param: str) -> None:
    role = req_str(item, "role", param)
    if role not in _MESSAGE_ROLES:
        fail(field_path(param, "role"), "must be one of user, assistant, system, developer")
    parts = _parse_content(item, param, allow_images=role == "user")
    if role not in _SYSTEM_ROLES:
        conversation.add("user" if role == "user" else "assistant", parts)
    elif conversation.messages:
        # A system or developer message after the conversation has begun keeps its place, as user text:
        # the canonical form has no system turns, and moving it would change what it follows.
        conversation.add("user", parts)
    else:
        conversation.system.extend(part for part in parts if isinstance(part, TextPart))


def _add_function_call(conversation: _Conversation, item: JSONObject, param: str) -> None:
    conversation.add("assistant", (parse_function_call(item, param),))


def _add_custom_tool_call(conversation: _Conversation, item: JSONObject, param: str) -> None:
    conversation.add("assistant", (parse_custom_tool_call(item, param),))


def _add_tool_output(conversation: _Conversation, item: JSONObject, param: str) -> None:
    result = ToolResultPart(call_id=req_str(item, "call_id", param), content=_parse_tool_output(item, param))
    conversation.add("user", (result,))


def _add_reasoning(conversation: _Conversation, item: JSONObject, param: str) -> None:
    conversation.add("assistant", (parse_reasoning_item(item, param),))


_ITEM_PARSERS: dict[str, Callable[[_Conversation, JSONObject, str], None]] = {
    "message": _add_message,
    "function_call": _add_function_call,
    "function_call_output": _add_tool_output,
    "custom_tool_call": _add_custom_tool_call,
    "custom_tool_call_output": _add_tool_output,
    "reasoning": _add_reasoning,
}
"""Input item ``type`` → parser. Hosted-tool items and ``item_reference`` are rejected: the gateway runs no
hosted tools and keeps no items an upstream could resolve."""


def _parse_input(value: JSONValue, conversation: _Conversation) -> None:
    if value is None:
        return
    if isinstance(value, str):
        conversation.add("user", (TextPart(text=value),))
        return
    for index, entry in enumerate(as_list(value, "input")):
        param = f"input[{index}]"
        item = as_object(entry, param)
        item_type = opt_str(item, "type", param)
        if item_type is None:
            if "role" not in item:
                fail(field_path(param, "type"), "is required")
            item_type = "message"
        parser = _ITEM_PARSERS.get(item_type)
        if parser is None:
            fail(field_path(param, "type"), f"unsupported input item type {item_type!r}")
        parser(conversation, item, param)


# --- options -------------------------------------------------------------------------------------------------------


def _parse_tool_choice(value: JSONValue) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in _TOOL_CHOICES:
            fail("tool_choice", "must be one of auto, none, required, or an object naming a tool")
        return _TOOL_CHOICES[value]
    choice = as_object(value, "tool_choice")
    choice_type = req_str(choice, "type", "tool_choice")
    if choice_type not in _NAMED_CHOICES:
        fail("tool_choice.type", f"unsupported tool choice type {choice_type!r}; only function and custom tools")
    return ToolChoice(mode="tool", name=req_str(choice, "name", "tool_choice"))


def _parse_text_format(value: JSONValue) -> ResponseFormat:
    text_format = as_object(value, "text.format")
    mode = req_str(text_format, "type", "text.format")
    if mode in _TEXT_FORMATS:
        return _TEXT_FORMATS[mode]
    if mode != "json_schema":
        fail("text.format.type", "must be one of text, json_object, json_schema")
    # ``description`` has no canonical field and is dropped.
    return ResponseFormat(
        mode="json_schema",
        name=req_str(text_format, "name", "text.format"),
        schema=as_object(text_format.get("schema"), "text.format.schema"),
        strict=opt_bool(text_format, "strict", "text.format"),
    )


def _split_object(body: JSONObject, key: str, canonical: str) -> tuple[JSONValue, JSONObject]:
    """``body[key]`` split into its ``canonical`` member and the rest (which rides in extensions)."""
    value = body.get(key)
    if value is None:
        return None, {}
    obj = as_object(value, key)
    return obj.get(canonical), {name: item for name, item in obj.items() if name != canonical}


def _parse_user(body: JSONObject, extensions: JSONObject) -> str | None:
    user = opt_str(body, "user", "")
    if user is not None:
        return user
    # ``safety_identifier`` is the newer name for the same end-user id; it counts only when ``user`` is absent.
    identifier = opt_str(body, "safety_identifier", "")
    extensions.pop("safety_identifier", None)
    return identifier


def parse_request(body: JSONObject, *, model: str | None = None) -> ChatRequest:
    """Client body → canonical request; ``model``, when given, stands in for the body's.

    ``instructions`` and the system or developer messages that open ``input`` form the system prompt;
    later ones stay in place as user text. Fields the canonical form has no place for (``store``,
    ``previous_response_id``, ``include``, ``metadata``, …, and the rest of ``text`` and ``reasoning``)
    are kept in ``extensions["responses"]``. Namespace members and custom tools become function tools, and
    hosted tools are kept in ``extensions["responses"]["hosted_tools"]`` (see ``tools``).

    Raises:
        InvalidRequestError: naming the offending field, e.g. ``input[3].content[0].image_url``.
    """
    extensions: JSONObject = {key: value for key, value in body.items() if key not in _KNOWN_FIELDS}
    text_format, text_rest = _split_object(body, "text", "format")
    effort, reasoning_rest = _split_object(body, "reasoning", "effort")
    for key, rest in (("text", text_rest), ("reasoning", reasoning_rest)):
        extensions.pop(key, None)
        if rest:
            extensions[key] = rest
    if effort is not None and not isinstance(effort, str):
        fail("reasoning.effort", "must be a string")
    instructions = opt_str(body, "instructions", "")
    conversation = _Conversation([] if instructions is None else [TextPart(text=instructions)])
    _parse_input(body.get("input"), conversation)
    tools = parse_tools(body.get("tools"))
    if tools.hosted:
        extensions[HOSTED_TOOLS] = tools.hosted
    return ChatRequest(
        model=model if model is not None else req_str(body, "model", ""),
        messages=tuple(conversation.messages),
        system=tuple(conversation.system),
        tools=tuple(tools.specs),
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls", ""),
        response_format=None if text_format is None else _parse_text_format(text_format),
        max_output_tokens=opt_int(body, "max_output_tokens", ""),
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        stream=bool(opt_bool(body, "stream", "")),
        reasoning_effort=effort,
        user_id=_parse_user(body, extensions),
        extensions={FORMAT: extensions} if extensions else {},
    )


# --- rendering -----------------------------------------------------------------------------------------------------


def render_image_url(part: ImagePart) -> str:
    """An ``ImagePart`` as an ``image_url`` value: the URL itself, or a ``data:`` URL for inline data."""
    if part.data is not None:
        return f"{_DATA_URL_PREFIX}{part.media_type};base64,{part.data}"
    return part.url or ""


def _render_input_image(part: ImagePart) -> JSONObject:
    return {"type": "input_image", "image_url": render_image_url(part), "detail": "auto"}


def _render_tool_output(part: ToolResultPart) -> JSONValue:
    # Responses has no error flag on a tool result; is_error is dropped.
    if not part.content:
        return ""
    if len(part.content) == 1 and isinstance(part.content[0], TextPart):
        return part.content[0].text
    return [
        {"type": "input_text", "text": item.text} if isinstance(item, TextPart) else _render_input_image(item)
        for item in part.content
    ]


def _render_reasoning(part: ReasoningPart) -> JSONObject | None:
    # Only this format's own reasoning goes back, and only when it carries its encrypted content: that makes the
    # item self-contained. An id alone would name a stored item that the function calls around it (sent without
    # item ids) could not be paired with, so such an item is left out rather than risk the upstream refusing it.
    if part.source_format != FORMAT or part.redacted is None:
        return None
    summary: list[JSONValue] = [{"type": "summary_text", "text": part.text}] if part.text else []
    return {"type": "reasoning", "summary": summary, "encrypted_content": part.redacted}


class _ItemWriter:
    """Writes canonical messages as Responses input items; a user's consecutive text and images share one message."""

    __slots__ = ("_content", "_role", "items")

    def __init__(self) -> None:
        self.items: list[JSONValue] = []
        self._content: list[JSONValue] = []
        self._role: Role = "user"

    def write(self, message: Message, param: str) -> None:
        self._role = message.role
        for index, part in enumerate(message.parts):
            item = self._part(part, f"{param}.parts[{index}]")
            if item is not None:
                self._flush()
                self.items.append(item)
        self._flush()

    def _part(self, part: Part, param: str) -> JSONObject | None:
        user = self._role == "user"
        match part:
            case TextPart() if user:
                self._content.append({"type": "input_text", "text": part.text})
                return None
            case TextPart():
                # Assistant history takes plain-string content (the API refuses input_text parts from the
                # assistant, and output_text parts belong to items with ids); one item per part keeps parts apart.
                return {"type": "message", "role": "assistant", "content": part.text}
            case ImagePart() if user:
                self._content.append(_render_input_image(part))
                return None
            case ToolResultPart() if user:
                return {"type": "function_call_output", "call_id": part.call_id, "output": _render_tool_output(part)}
            case ToolCallPart() if not user:
                return {
                    "type": "function_call",
                    "call_id": part.call_id,
                    "name": part.name,
                    "arguments": part.arguments,
                }
            case ReasoningPart() if not user:
                return _render_reasoning(part)
            case _:
                fail(param, f"a {self._role} message cannot carry a {part.kind} part")

    def _flush(self) -> None:
        if self._content:
            self.items.append({"type": "message", "role": self._role, "content": self._content})
            self._content = []


def _render_input(request: ChatRequest) -> list[JSONValue]:
    writer = _ItemWriter()
    # The first system part is ``instructions``; any further ones open ``input`` as developer messages.
    for part in request.system[1:]:
        writer.items.append(
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": part.text}]}
        )
    for index, message in enumerate(request.messages):
        writer.write(message, f"messages[{index}]")
    return writer.items


def _render_tool(tool: ToolSpec) -> JSONObject:
    rendered: JSONObject = {"type": "function", "name": tool.name}
    if tool.description is not None:
        rendered["description"] = tool.description
    rendered["parameters"] = tool.parameters
    # Responses makes function tools strict by default, which refuses most schemas written for other APIs.
    rendered["strict"] = False
    return rendered


def _render_tool_choice(choice: ToolChoice | None) -> JSONValue:
    if choice is None:
        return None
    if choice.mode == "tool":
        return {"type": "function", "name": choice.name}
    return choice.mode


def _render_text_format(response_format: ResponseFormat) -> JSONObject:
    if response_format.mode != "json_schema":
        return {"type": response_format.mode}
    rendered: JSONObject = {"type": "json_schema", "name": response_format.name or "response"}
    rendered["schema"] = response_format.schema if response_format.schema is not None else {}
    if response_format.strict is not None:
        rendered["strict"] = response_format.strict
    return rendered


def _merged(base: JSONValue, key: str, value: JSONValue) -> JSONObject | None:
    """``base`` (an extensions object) with ``key`` set to ``value``; None when both are empty."""
    merged: JSONObject = dict(base) if isinstance(base, dict) else {}
    if value is not None:
        merged[key] = value
    return merged or None


def render_request(request: ChatRequest) -> JSONObject:
    """Canonical request → Responses body; ``extensions["responses"]`` is re-emitted, canonical fields win.

    The first system part becomes ``instructions`` and any further ones lead ``input`` as developer messages.
    Reasoning parts go back only when this format made them and they carry encrypted content. Function tools
    are sent with ``strict: false``, followed by the hosted tools the client sent. ``stop``, ``top_k`` and the
    reasoning token budget have no Responses field.

    Raises:
        InvalidRequestError: a part the message's role cannot carry, such as a tool call in a user message.
    """
    body: JSONObject = dict(request.extensions.get(FORMAT, {}))
    hosted = body.pop(HOSTED_TOOLS, None)
    body["model"] = request.model
    body["input"] = _render_input(request)
    response_format = request.response_format
    optional: JSONObject = {
        "instructions": request.system[0].text if request.system else None,
        "tools": [*map(_render_tool, request.tools), *(hosted if isinstance(hosted, list) else ())] or None,
        "tool_choice": _render_tool_choice(request.tool_choice),
        "parallel_tool_calls": request.parallel_tool_calls,
        "text": _merged(
            body.get("text"), "format", None if response_format is None else _render_text_format(response_format)
        ),
        "reasoning": _merged(body.get("reasoning"), "effort", request.reasoning_effort),
        "max_output_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stream": request.stream or None,
        "user": request.user_id,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body
