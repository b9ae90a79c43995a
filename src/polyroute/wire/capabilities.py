"""What each wire format can express, and which parts of a canonical request a target would lose.

Every translator declares ``CAPABILITIES``, a set of the names below; the contract tests check each
claim against the translator's own ``render_request`` (a claimed feature changes the rendered body).
Fields every format has (messages, system prompt, text, tools with JSON Schemas, max tokens) need no
name. ``dropped_fields`` is what the request log records and what strict mode rejects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final

from polyroute.core.messages import ChatRequest, ImagePart, Message, Part, ReasoningPart, TextPart, ToolResultPart

TEMPERATURE: Final = "temperature"
TOP_P: Final = "top_p"
TOP_K: Final = "top_k"
STOP: Final = "stop"
JSON_OBJECT: Final = "response_format.json_object"
JSON_SCHEMA: Final = "response_format.json_schema"
TOOL_CHOICE_NONE: Final = "tool_choice.none"
TOOL_CHOICE_REQUIRED: Final = "tool_choice.required"
TOOL_CHOICE_TOOL: Final = "tool_choice.tool"
PARALLEL_TOOL_CALLS: Final = "parallel_tool_calls"
REASONING_EFFORT: Final = "reasoning_effort"
REASONING_BUDGET: Final = "reasoning_budget_tokens"
USER_ID: Final = "user_id"
IMAGE_URL: Final = "image_url"
"""Images by URL are sent as URLs; without it the gateway fetches them and sends the bytes."""
TOOL_RESULT_IMAGES: Final = "tool_result_images"
"""Tool results may carry images; without it they travel in a user turn right after the result."""

ALL: Final = frozenset(
    {
        TEMPERATURE,
        TOP_P,
        TOP_K,
        STOP,
        JSON_OBJECT,
        JSON_SCHEMA,
        TOOL_CHOICE_NONE,
        TOOL_CHOICE_REQUIRED,
        TOOL_CHOICE_TOOL,
        PARALLEL_TOOL_CALLS,
        REASONING_EFFORT,
        REASONING_BUDGET,
        USER_ID,
        IMAGE_URL,
        TOOL_RESULT_IMAGES,
    }
)

_TOOL_CHOICE_NAMES: Final = {"none": TOOL_CHOICE_NONE, "required": TOOL_CHOICE_REQUIRED, "tool": TOOL_CHOICE_TOOL}
_RESPONSE_FORMAT_NAMES: Final = {"json_object": JSON_OBJECT, "json_schema": JSON_SCHEMA}

# A request field and the test of whether the request uses it (fields absent here are handled below).
_SCALAR_FIELDS: Final[tuple[tuple[str, Callable[[ChatRequest], bool]], ...]] = (
    (TEMPERATURE, lambda r: r.temperature is not None),
    (TOP_P, lambda r: r.top_p is not None),
    (TOP_K, lambda r: r.top_k is not None),
    (STOP, lambda r: bool(r.stop)),
    (PARALLEL_TOOL_CALLS, lambda r: r.parallel_tool_calls is not None),
    (REASONING_EFFORT, lambda r: r.reasoning_effort is not None),
    (REASONING_BUDGET, lambda r: r.reasoning_budget_tokens is not None),
    (USER_ID, lambda r: r.user_id is not None),
)


def dropped_fields(request: ChatRequest, *, source: str, target: str, capabilities: frozenset[str]) -> list[str]:
    """Names of what the client sent that a ``target`` request cannot carry, in a stable order.

    ``source`` and ``target`` are ``WireFormat`` values. Same-format pairs lose nothing (their
    extensions are re-emitted). Reasoning parts made by another format are dropped on purpose (a
    signature is never forged) and are reported as ``reasoning``; tool-result images are moved, not
    dropped, and URL images are fetched, so neither is listed.
    """
    if source == target:
        return []
    dropped = [name for name, used in _SCALAR_FIELDS if name not in capabilities and used(request)]
    choice = request.tool_choice
    if choice is not None and choice.mode in _TOOL_CHOICE_NAMES and _TOOL_CHOICE_NAMES[choice.mode] not in capabilities:
        dropped.append(_TOOL_CHOICE_NAMES[choice.mode])
    response_format = request.response_format
    if response_format is not None:
        name = _RESPONSE_FORMAT_NAMES.get(response_format.mode)
        if name is not None and name not in capabilities:
            dropped.append(name)
    dropped.extend(sorted(request.extensions.get(source, {})))
    if _has_foreign_reasoning(request, target):
        dropped.append("reasoning")
    return dropped


def _has_foreign_reasoning(request: ChatRequest, target: str) -> bool:
    return any(
        isinstance(part, ReasoningPart) and part.source_format != target
        for message in request.messages
        for part in message.parts
    )


def has_url_images(request: ChatRequest) -> bool:
    """Whether any image in the request (tool results included) is given by URL."""
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, ImagePart) and part.url is not None:
                return True
            if isinstance(part, ToolResultPart) and any(
                isinstance(item, ImagePart) and item.url is not None for item in part.content
            ):
                return True
    return False


def hoist_tool_result_images(request: ChatRequest) -> ChatRequest:
    """Move images out of tool results into the same user turn, right after the results.

    For formats whose tool results carry text only (OpenAI, Gemini, Ollama): each result keeps its
    text (or a note that its images follow), and the images travel as ordinary user content, so the
    model still sees them.
    """
    if not any(
        isinstance(part, ToolResultPart) and any(isinstance(item, ImagePart) for item in part.content)
        for message in request.messages
        for part in message.parts
    ):
        return request
    return replace(request, messages=tuple(_hoist(message) for message in request.messages))


def _hoist(message: Message) -> Message:
    parts: list[Part] = []
    images: list[Part] = []
    for part in message.parts:
        if isinstance(part, ToolResultPart) and any(isinstance(item, ImagePart) for item in part.content):
            texts = tuple(item for item in part.content if isinstance(item, TextPart))
            moved = [item for item in part.content if isinstance(item, ImagePart)]
            note = TextPart(text=f"[{len(moved)} image(s) from this tool result follow]")
            parts.append(replace(part, content=(*texts, note)))
            images.extend(moved)
        else:
            parts.append(part)
    return replace(message, parts=(*parts, *images))
