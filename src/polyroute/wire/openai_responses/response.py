"""OpenAI Responses response bodies (``response`` objects) <-> ``ChatResponse``, statuses, usage and output items.

Spec: https://platform.openai.com/docs/api-reference/responses/object
"""

from __future__ import annotations

from typing import TypeGuard

from polyroute.core.messages import ChatResponse, FinishReason, Part, ReasoningPart, TextPart, ToolCallPart, Usage
from polyroute.errors import InvalidRequestError
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.fields import as_list, as_object, fail, field_path, opt_int, opt_str, req_str
from polyroute.wire.openai_responses.request import FORMAT, parse_function_call, parse_reasoning_item
from polyroute.wire.openai_responses.tools import HOSTED_CALL_ITEMS, NO_SHAPES, ToolShape, ToolShapes, custom_input

COMPLETED = "completed"
INCOMPLETE = "incomplete"
FAILED = "failed"
IN_PROGRESS = "in_progress"

_STATUSES: dict[str, FinishReason | None] = {
    COMPLETED: FinishReason.STOP,
    FAILED: FinishReason.ERROR,
    "cancelled": FinishReason.ERROR,
    # Not finished yet (background responses): nothing to say about why it stopped.
    IN_PROGRESS: None,
    "queued": None,
}
"""Response ``status`` → canonical; ``incomplete`` is decided by ``_INCOMPLETE_REASONS``. Unknown → ``None``."""
_INCOMPLETE_REASONS: dict[str, FinishReason] = {
    "max_output_tokens": FinishReason.LENGTH,
    "max_messages": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    # steered: stopped at a safe boundary on the client's request, not cut off.
    "steered": FinishReason.STOP,
}
"""``incomplete_details.reason`` → canonical. An unknown (newer) reason reads as ``LENGTH``: the output was cut."""
_RENDERED_STATUSES: dict[FinishReason, tuple[str, str | None]] = {
    FinishReason.STOP: (COMPLETED, None),
    FinishReason.TOOL_CALLS: (COMPLETED, None),
    FinishReason.LENGTH: (INCOMPLETE, "max_output_tokens"),
    FinishReason.CONTENT_FILTER: (INCOMPLETE, "content_filter"),
    FinishReason.ERROR: (FAILED, None),
}
"""Canonical finish reason → ``status`` and ``incomplete_details.reason``."""
FAILED_ERROR: JSONObject = {"code": "server_error", "message": "The model failed to complete the response."}
"""``error`` of a response rendered from a turn that finished with ``FinishReason.ERROR``."""
_KNOWN_FIELDS = frozenset(
    {"id", "object", "created_at", "status", "model", "output", "usage", "incomplete_details", "error"}
)


def _echo_defaults() -> JSONObject:
    """Request echoes ``render_response`` writes when it knows no better (a fresh copy each call)."""
    return {
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
    }


_ECHO_DEFAULTS = _echo_defaults()
"""Compared with an upstream's echoes: equal ones are not kept in extensions, since rendering writes them anyway."""
MESSAGE_TEXT_FIELDS: dict[str, str] = {"output_text": "text", "refusal": "refusal"}
"""Output message content part ``type`` → the field holding its text; a refusal is what the user reads, so text."""


# --- statuses and usage --------------------------------------------------------------------------------------------


def parse_finish_reason(status: str | None, reason: str | None, *, has_tool_calls: bool) -> FinishReason | None:
    """A response's ``status`` (absent reads as completed) and ``incomplete_details.reason`` → canonical.

    A completed response that made function calls finished with ``TOOL_CALLS``; Responses has no field for it.
    An incomplete response without a reason stays ``None`` (not stated).
    """
    if status == INCOMPLETE:
        return None if reason is None else _INCOMPLETE_REASONS.get(reason, FinishReason.LENGTH)
    finish = _STATUSES.get(status or COMPLETED)
    if finish is FinishReason.STOP and has_tool_calls:
        return FinishReason.TOOL_CALLS
    return finish


def render_status(finish_reason: FinishReason | None) -> tuple[str, JSONObject | None]:
    """Canonical finish reason → ``status`` and ``incomplete_details``; None (not stated) reads as incomplete."""
    if finish_reason is None:
        return INCOMPLETE, None
    status, reason = _RENDERED_STATUSES[finish_reason]
    return status, None if reason is None else {"reason": reason}


def _details(usage: JSONObject, key: str) -> JSONObject:
    value = usage.get(key)
    return {} if value is None else as_object(value, f"usage.{key}")


def parse_usage(value: JSONValue) -> Usage:
    """A Responses ``usage`` object → canonical ``Usage``; null or absent counts stay ``None``.

    Responses counts as the canonical form does: ``input_tokens`` includes cached tokens and ``output_tokens``
    includes reasoning tokens, so the numbers carry over unchanged.

    Raises:
        InvalidRequestError: a count is not an integer.
    """
    if value is None:
        return Usage()
    usage = as_object(value, "usage")
    input_details = _details(usage, "input_tokens_details")
    output_details = _details(usage, "output_tokens_details")
    return Usage(
        input_tokens=opt_int(usage, "input_tokens", "usage"),
        output_tokens=opt_int(usage, "output_tokens", "usage"),
        cache_read_tokens=opt_int(input_details, "cached_tokens", "usage.input_tokens_details"),
        cache_write_tokens=opt_int(input_details, "cache_write_tokens", "usage.input_tokens_details"),
        reasoning_tokens=opt_int(output_details, "reasoning_tokens", "usage.output_tokens_details"),
    )


def render_usage(usage: Usage) -> JSONObject | None:
    """Canonical ``Usage`` → Responses ``usage``; None when nothing was reported.

    Counts that were not reported are left out rather than invented (``total_tokens`` needs both halves).
    """
    if usage == Usage():
        return None
    rendered: JSONObject = {}
    if usage.input_tokens is not None:
        rendered["input_tokens"] = usage.input_tokens
    input_details = {
        key: count
        for key, count in (("cached_tokens", usage.cache_read_tokens), ("cache_write_tokens", usage.cache_write_tokens))
        if count is not None
    }
    if input_details:
        rendered["input_tokens_details"] = dict(input_details)
    if usage.output_tokens is not None:
        rendered["output_tokens"] = usage.output_tokens
    if usage.reasoning_tokens is not None:
        rendered["output_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.input_tokens is not None and usage.output_tokens is not None:
        rendered["total_tokens"] = usage.input_tokens + usage.output_tokens
    return rendered


# --- output items --------------------------------------------------------------------------------------------------


def item_id(prefix: str, response_id: str, output_index: int) -> str:
    """The id of the output item at ``output_index``: a pure function of the response id and the position."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{output_index}"


def is_item_id(signature: str | None) -> TypeGuard[str]:
    """Whether a reasoning part's signature is a Responses reasoning item id (as this format's parsers set it)."""
    return signature is not None and signature.startswith("rs_")


def reasoning_item_id(signature: str | None, response_id: str, output_index: int) -> str:
    """A reasoning item's own id when its part carries one, else the position-derived id."""
    return signature if is_item_id(signature) else item_id("rs", response_id, output_index)


def output_text(text: str) -> JSONObject:
    """One ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": []}


def message_item(item_id_: str, text: str | None, *, status: str = COMPLETED) -> JSONObject:
    """An assistant ``message`` item; ``text`` None gives the empty item a stream opens with."""
    content: list[JSONValue] = [] if text is None else [output_text(text)]
    return {"id": item_id_, "type": "message", "status": status, "role": "assistant", "content": content}


def function_call_item(
    item_id_: str, part: ToolCallPart, *, status: str = COMPLETED, shape: ToolShape | None = None
) -> JSONObject:
    """A ``function_call`` item; a ``shape`` gives the name (and ``namespace``) the client declared."""
    item: JSONObject = {"id": item_id_, "type": "function_call", "status": status, "call_id": part.call_id}
    item["name"] = part.name if shape is None else shape.name
    if shape is not None and shape.namespace is not None:
        item["namespace"] = shape.namespace
    item["arguments"] = part.arguments
    return item


def custom_tool_call_item(item_id_: str, part: ToolCallPart, shape: ToolShape) -> JSONObject:
    """A ``custom_tool_call`` item: the ``input`` text read from the call's JSON arguments."""
    item: JSONObject = {"id": item_id_, "type": "custom_tool_call", "call_id": part.call_id, "name": shape.name}
    if shape.namespace is not None:
        item["namespace"] = shape.namespace
    item["input"] = custom_input(part.arguments)
    return item


def call_item_prefix(shape: ToolShape | None) -> str:
    """The id prefix of a tool call's item: ``ctc`` for a custom tool's, ``fc`` for a function's."""
    return "ctc" if shape is not None and shape.custom else "fc"


def tool_call_item(
    item_id_: str, part: ToolCallPart, shape: ToolShape | None, *, status: str = COMPLETED
) -> JSONObject:
    """A tool call's item in the shape the client declared the tool in (``status`` is not a custom call's)."""
    if shape is not None and shape.custom:
        return custom_tool_call_item(item_id_, part, shape)
    return function_call_item(item_id_, part, status=status, shape=shape)


def reasoning_item(item_id_: str, part: ReasoningPart | None) -> JSONObject:
    """A ``reasoning`` item; ``part`` None gives the empty item a stream opens with.

    ``encrypted_content`` is written only for reasoning this format produced (its id is a reasoning item id):
    another provider's opaque data would be refused if the client sent it back.
    """
    item: JSONObject = {"id": item_id_, "type": "reasoning", "summary": []}
    if part is None:
        return item
    if part.text:
        item["summary"] = [{"type": "summary_text", "text": part.text}]
    if part.redacted is not None and is_item_id(part.signature):
        item["encrypted_content"] = part.redacted
    return item


def render_output(response_id: str, parts: tuple[Part, ...], tool_shapes: ToolShapes = NO_SHAPES) -> list[JSONValue]:
    """The response's parts as output items, one per part, with position-derived ids.

    Tool calls take the shapes in ``tool_shapes``. Images and tool results cannot appear in an answer; there is
    nothing to render them as.
    """
    output: list[JSONValue] = []
    for part in parts:
        index = len(output)
        if isinstance(part, TextPart):
            output.append(message_item(item_id("msg", response_id, index), part.text))
        elif isinstance(part, ToolCallPart):
            shape = tool_shapes.get(part.name)
            output.append(tool_call_item(item_id(call_item_prefix(shape), response_id, index), part, shape))
        elif isinstance(part, ReasoningPart):
            output.append(reasoning_item(reasoning_item_id(part.signature, response_id, index), part))
    return output


def _parse_message(item: JSONObject, param: str) -> list[Part]:
    content_param = field_path(param, "content")
    parts: list[Part] = []
    for index, value in enumerate(as_list(item.get("content"), content_param)):
        part_param = f"{content_param}[{index}]"
        part = as_object(value, part_param)
        part_type = req_str(part, "type", part_param)
        if part_type not in MESSAGE_TEXT_FIELDS:
            fail(field_path(part_param, "type"), f"unsupported content part type {part_type!r}")
        parts.append(TextPart(text=req_str(part, MESSAGE_TEXT_FIELDS[part_type], part_param)))
    return parts


def parse_output(value: JSONValue) -> tuple[Part, ...]:
    """A response's ``output`` list → canonical parts, in order; items of hosted tools the upstream ran are skipped.

    Raises:
        InvalidRequestError: an item is malformed or of a type the gateway cannot carry (such as a
            ``local_shell_call``, which asks the client to act).
    """
    parts: list[Part] = []
    for index, entry in enumerate(as_list(value, "output")):
        param = f"output[{index}]"
        item = as_object(entry, param)
        item_type = req_str(item, "type", param)
        if item_type == "message":
            parts.extend(_parse_message(item, param))
        elif item_type == "function_call":
            parts.append(parse_function_call(item, param))
        elif item_type == "reasoning":
            parts.append(parse_reasoning_item(item, param))
        elif item_type not in HOSTED_CALL_ITEMS:
            fail(field_path(param, "type"), f"unsupported output item type {item_type!r}")
    return tuple(parts)


# --- response objects ----------------------------------------------------------------------------------------------


def response_object(
    response_id: str, model: str, created_at: int, *, status: str, output: list[JSONValue]
) -> JSONObject:
    """A ``response`` object without usage, details or error: the shape every rendering starts from."""
    body: JSONObject = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": output,
        "usage": None,
    }
    body.update(_echo_defaults())
    return body


def parse_response(body: JSONObject) -> ChatResponse:
    """Upstream ``response`` object → canonical response.

    Fields the canonical form has no place for (``text``, ``reasoning``, ``store``, ``service_tier``, and
    ``instructions``, ``tools``, … unless they equal what ``render_response`` writes anyway) are kept in
    ``extensions["responses"]``, so rendering the result gives the upstream's body back.

    Raises:
        ValueError: the body is not a well-formed Responses response.
    """
    try:
        return _parse_response(body)
    except InvalidRequestError as exc:
        raise ValueError(f"malformed Responses response: {exc.message}") from exc


def created_at(obj: JSONObject, param: str) -> int | None:
    """``created_at`` in whole seconds (the SDK types it as a number); None when absent.

    Raises:
        InvalidRequestError: it is not a number.
    """
    value = obj.get("created_at")
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    fail(field_path(param, "created_at"), "must be a number")


def incomplete_reason(obj: JSONObject, param: str) -> str | None:
    """``incomplete_details.reason``; None when either is absent or null.

    Raises:
        InvalidRequestError: ``incomplete_details`` is not an object or its reason not a string.
    """
    details = obj.get("incomplete_details")
    if details is None:
        return None
    details_param = field_path(param, "incomplete_details")
    return opt_str(as_object(details, details_param), "reason", details_param)


def _parse_response(body: JSONObject) -> ChatResponse:
    parts = parse_output(body.get("output"))
    has_tool_calls = any(isinstance(part, ToolCallPart) for part in parts)
    extensions = {
        key: value
        for key, value in body.items()
        if key not in _KNOWN_FIELDS and (key not in _ECHO_DEFAULTS or _ECHO_DEFAULTS[key] != value)
    }
    return ChatResponse(
        id=req_str(body, "id", ""),
        model=req_str(body, "model", ""),
        created=created_at(body, ""),
        parts=parts,
        finish_reason=parse_finish_reason(
            opt_str(body, "status", ""), incomplete_reason(body, ""), has_tool_calls=has_tool_calls
        ),
        usage=parse_usage(body.get("usage")),
        extensions={FORMAT: extensions} if extensions else {},
    )


def render_response(response: ChatResponse, *, now_s: int = 0, tool_shapes: ToolShapes = NO_SHAPES) -> JSONObject:
    """Canonical response → a Responses ``response`` object.

    Each part is one output item (a text part is a message with one ``output_text``). Item ids are derived from
    the response id and the item's position, except a reasoning item that carries its own id. ``created_at`` is
    ``now_s`` when the upstream gave none: the caller owns the clock (wire/ is pure). ``tool_shapes`` (from
    ``tool_shapes(request body)``) renders calls of namespace members and custom tools as the client declared them.
    """
    status, details = render_status(response.finish_reason)
    body = response_object(
        response.id,
        response.model,
        response.created if response.created is not None else now_s,
        status=status,
        output=render_output(response.id, response.parts, tool_shapes),
    )
    body["incomplete_details"] = details
    if status == FAILED:
        body["error"] = dict(FAILED_ERROR)
    body["usage"] = render_usage(response.usage)
    body.update(response.extensions.get(FORMAT, {}))
    return body
