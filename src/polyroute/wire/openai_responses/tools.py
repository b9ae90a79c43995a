"""OpenAI Responses ``tools``: function, namespace, custom and hosted tools <-> canonical ``ToolSpec``s.

Only function tools exist in the canonical form, so the other kinds are reshaped on the way in and the calls
are shaped back on the way out:

- a ``namespace`` groups function (or custom) tools; each member becomes a tool named
  ``<namespace>__<member>`` (see ``flat_name``), and its calls go back to the client as items carrying
  ``namespace`` and the member's own ``name``;
- a ``custom`` tool takes free-form text; it becomes a function tool with one string argument ``input``
  (its grammar, if any, is given to the model in the descriptions), and its calls go back as
  ``custom_tool_call`` items whose ``input`` is that argument;
- hosted tools (``web_search``, ``file_search``, ``mcp``, …) are run by OpenAI itself; they are kept aside
  as they came, for an upstream that speaks Responses.

``tool_shapes`` gives, for one request, the map from canonical tool name to the shape the client declared,
which the response and stream renderers use. Spec: https://platform.openai.com/docs/guides/function-calling
Mapping tables: docs/formats/responses.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import orjson

from polyroute.core.messages import ToolSpec
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import as_list, as_object, fail, field_path, opt_bool, opt_str, req_str

NAMESPACE_SEPARATOR: Final = "__"
"""Joins a namespace and a member's name into one function name; made of characters function names allow
(``[a-zA-Z0-9_-]``), it keeps the joined name valid when both parts are."""
MAX_NAME_LENGTH: Final = 64
"""The longest function name OpenAI accepts (``^[a-zA-Z0-9_-]{1,64}$``); longer joined names are shortened."""
_HASH_LENGTH = 8
HOSTED_TOOLS: Final = "hosted_tools"
"""The key of ``extensions["responses"]`` holding the hosted tools of a request, as the client sent them."""
CUSTOM_INPUT: Final = "input"
"""The one argument of the function tool a custom tool becomes: the tool's free-form text input."""
FREE_FORM: Final = "free-form text"
"""The description of ``input`` when a custom tool sets no grammar."""
HOSTED_CALL_ITEMS: Final = frozenset(
    {"web_search_call", "file_search_call", "code_interpreter_call", "image_generation_call", "mcp_call"}
    | {"mcp_list_tools"}
)
"""Output items of hosted tools the upstream ran itself: the model's answer already uses their results, and the
canonical form has no place for them, so parsers skip them. Items asking the client to act (``local_shell_call``,
``computer_call``, ``mcp_approval_request``, …) are not among them: they cannot be answered through the gateway."""
_MEMBER_TYPES = frozenset({"function", "custom"})


@dataclass(frozen=True, slots=True)
class ToolShape:
    """How the client declared a tool that the canonical form knows by another name or with another input."""

    name: str
    """The tool's own name: a namespace member's name without the namespace."""
    namespace: str | None = None
    custom: bool = False
    """A custom tool: its calls carry free-form ``input`` text rather than JSON ``arguments``."""


ToolShapes = Mapping[str, ToolShape]
"""Canonical tool name → the shape its calls are rendered in; tools absent are plain function tools."""
NO_SHAPES: Final[ToolShapes] = MappingProxyType({})


def flat_name(namespace: str | None, name: str) -> str:
    """The canonical name of tool ``name`` in ``namespace``: ``<namespace>__<name>``, or ``name`` alone.

    A joined name longer than ``MAX_NAME_LENGTH`` is cut and ends with ``_`` and 8 hex digits of its SHA-256,
    so it stays valid and distinct, and is the same on every request.
    """
    if namespace is None:
        return name
    joined = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
    if len(joined) <= MAX_NAME_LENGTH:
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:_HASH_LENGTH]
    return f"{joined[: MAX_NAME_LENGTH - _HASH_LENGTH - 1]}_{digest}"


def custom_arguments(text: str) -> str:
    """A custom tool call's ``input`` text as the JSON arguments of the function tool it became."""
    return orjson.dumps({CUSTOM_INPUT: text}).decode()


def custom_input(arguments: str) -> str:
    """The ``input`` text of a custom tool call from the JSON arguments the model gave the function tool.

    Arguments that are not an object with a string ``input`` are passed on as they are, so the client sees
    what the model wrote (and can tell it what went wrong) instead of an empty input.
    """
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    text = value.get(CUSTOM_INPUT) if isinstance(value, dict) else None
    return text if isinstance(text, str) else arguments


@dataclass(slots=True)
class ParsedTools:
    """A request's ``tools``: the canonical specs, the hosted tools as sent, and the shapes to answer in."""

    specs: list[ToolSpec] = field(default_factory=list)
    hosted: list[JSONValue] = field(default_factory=list)
    shapes: dict[str, ToolShape] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)

    def add(self, spec: ToolSpec, shape: ToolShape | None, param: str) -> None:
        # A reshaped tool must own its canonical name, or its calls could not be told from the other's.
        if spec.name in self._names and (shape is not None or spec.name in self.shapes):
            fail(field_path(param, "name"), f"another tool is already known as {spec.name!r}")
        self._names.add(spec.name)
        self.specs.append(spec)
        if shape is not None:
            self.shapes[spec.name] = shape


def _joined(*texts: str | None) -> str | None:
    present = [text for text in texts if text]
    return "\n\n".join(present) if present else None


def _custom_format(tool: JSONObject, param: str) -> tuple[str | None, str]:
    """A custom tool's note for its description (None without a grammar) and the description of ``input``."""
    value = tool.get("format")
    if value is None:
        return None, FREE_FORM
    format_param = field_path(param, "format")
    input_format = as_object(value, format_param)
    if req_str(input_format, "type", format_param) != "grammar":  # "text": unconstrained
        return None, FREE_FORM
    definition = req_str(input_format, "definition", format_param).strip()
    syntax = opt_str(input_format, "syntax", format_param) or "grammar"
    note = (
        f"Pass the tool's input as the raw text of the `{CUSTOM_INPUT}` argument; "
        f"it must follow the {syntax} grammar given in that argument's description."
    )
    return note, definition or FREE_FORM


def _parameters(tool: JSONObject, tool_type: str, param: str) -> tuple[JSONObject, str | None]:
    """The JSON Schema of a member's arguments, and for a custom tool the note that joins its description."""
    if tool_type == "function":
        opt_bool(tool, "strict", param)  # validated, then dropped: the canonical tool has no strict flag
        parameters = tool.get("parameters")
        return ({} if parameters is None else as_object(parameters, field_path(param, "parameters"))), None
    note, input_description = _custom_format(tool, param)
    schema: JSONObject = {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string", "description": input_description}},
        "required": [CUSTOM_INPUT],
        "additionalProperties": False,
    }
    return schema, note


def _parse_member(
    tool: JSONObject, tool_type: str, param: str, namespace: str | None, context: str | None
) -> tuple[ToolSpec, ToolShape | None]:
    name = req_str(tool, "name", param)
    description = opt_str(tool, "description", param)
    parameters, note = _parameters(tool, tool_type, param)
    custom = tool_type == "custom"
    shape = ToolShape(name, namespace, custom) if custom or namespace is not None else None
    spec = ToolSpec(
        name=flat_name(namespace, name), description=_joined(description, note, context), parameters=parameters
    )
    return spec, shape


def _add_namespace(parsed: ParsedTools, tool: JSONObject, param: str) -> None:
    namespace = req_str(tool, "name", param)
    description = opt_str(tool, "description", param)
    context = None if not description else f"Part of the {namespace} tools: {description}"
    members_param = field_path(param, "tools")
    for index, value in enumerate(as_list(tool.get("tools"), members_param)):
        member_param = f"{members_param}[{index}]"
        member = as_object(value, member_param)
        member_type = req_str(member, "type", member_param)
        if member_type not in _MEMBER_TYPES:
            fail(field_path(member_param, "type"), f"a namespace holds function and custom tools, not {member_type!r}")
        parsed.add(*_parse_member(member, member_type, member_param, namespace, context), member_param)


def parse_tools(value: JSONValue) -> ParsedTools:
    """A request's ``tools`` (None when absent) → canonical specs, hosted tools and shapes, in order.

    Any tool type other than ``function``, ``custom`` and ``namespace`` counts as hosted.

    Raises:
        InvalidRequestError: a tool is malformed, or two tools would share one canonical name.
    """
    parsed = ParsedTools()
    if value is None:
        return parsed
    for index, entry in enumerate(as_list(value, "tools")):
        param = f"tools[{index}]"
        tool = as_object(entry, param)
        tool_type = req_str(tool, "type", param)
        if tool_type == "namespace":
            _add_namespace(parsed, tool, param)
        elif tool_type in _MEMBER_TYPES:
            parsed.add(*_parse_member(tool, tool_type, param, None, None), param)
        else:
            parsed.hosted.append(tool)
    return parsed


def tool_shapes(body: JSONObject) -> ToolShapes:
    """The shapes of a request body's reshaped tools (empty when it has none): what answers are rendered in.

    Raises:
        InvalidRequestError: as ``parse_tools`` (never for a body ``parse_request`` accepted).
    """
    shapes = parse_tools(body.get("tools")).shapes
    return MappingProxyType(shapes) if shapes else NO_SHAPES
