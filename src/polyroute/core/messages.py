"""Canonical request, response and message values that every wire format translates to and from.

This module is the spec of the canonical form (STYLE §15): frozen, slotted, keyword-only dataclasses with
no validation of their own. Validation happens once, in each format's ``parse_*``, at the border.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, TypeAlias

from polyroute.types import JSONObject


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts exactly as the upstream reported them; None means not reported."""

    input_tokens: int | None = None
    """Prompt tokens, including any served from cache (OpenAI's ``prompt_tokens``)."""
    output_tokens: int | None = None
    """Completion tokens, including reasoning tokens."""
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TextPart:
    """Plain text from the user, the system prompt or the model."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImagePart:
    """An image given either by URL or inline as base64 data; exactly one of ``url`` and ``data`` is set."""

    url: str | None = None
    """Where the image lives; kept as a URL (translators do no I/O, so nothing is fetched here)."""
    data: str | None = None
    """Base64-encoded image bytes (no ``data:`` prefix)."""
    media_type: str | None = None
    """MIME type such as ``image/png``; required with ``data``, optional with ``url``."""
    kind: Literal["image"] = "image"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallPart:
    """The model asks for a tool to be run."""

    call_id: str
    """Provider-issued id; tool results refer back to it."""
    name: str
    arguments: str
    """Raw JSON text exactly as the model produced it (may be invalid JSON; we never re-serialise it)."""
    signature: str | None = None
    """Opaque token some providers attach to a call (Gemini's ``thoughtSignature``); sent back to the same format."""
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResultPart:
    """The result of running a tool, sent back inside a user message."""

    call_id: str
    """The ``ToolCallPart.call_id`` this result answers."""
    content: tuple[TextPart | ImagePart, ...] = ()
    is_error: bool = False
    """True when the tool failed and ``content`` describes the failure."""
    kind: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasoningPart:
    """The model's reasoning ("thinking"); only ever sent back to the format that produced it."""

    text: str = ""
    """Readable reasoning or reasoning summary; empty when the provider sent only ``redacted`` data."""
    signature: str | None = None
    """Opaque token proving the reasoning is genuine (Anthropic ``thinking.signature``); must round-trip intact."""
    redacted: str | None = None
    """Encrypted reasoning (Anthropic ``redacted_thinking.data``, OpenAI Responses ``encrypted_content``)."""
    source_format: str | None = None
    """``WireFormat`` value of the format that produced this part; other formats must drop it, not forward it."""
    kind: Literal["reasoning"] = "reasoning"


Part: TypeAlias = TextPart | ImagePart | ToolCallPart | ToolResultPart | ReasoningPart
PartKind: TypeAlias = Literal["text", "image", "tool_call", "tool_result", "reasoning"]
Role: TypeAlias = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One conversation turn; system prompts live on ``ChatRequest.system`` and tool results in user turns."""

    role: Role
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """A tool the model may call."""

    name: str
    description: str | None = None
    parameters: JSONObject = field(default_factory=dict)
    """JSON Schema of the arguments object, passed through as the client sent it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolChoice:
    """Whether and which tool the model must call."""

    mode: Literal["auto", "none", "required", "tool"]
    """``auto``: model decides; ``none``: no tools; ``required``: some tool; ``tool``: the one named."""
    name: str | None = None
    """The tool to call; set exactly when ``mode`` is ``tool``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseFormat:
    """The shape the model's text output must take."""

    mode: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    """Schema name (OpenAI requires one with ``json_schema``)."""
    schema: JSONObject | None = None
    """JSON Schema the output must satisfy; set exactly when ``mode`` is ``json_schema``."""
    strict: bool | None = None
    """Ask the provider to enforce the schema exactly; None means the provider default."""


class FinishReason(StrEnum):
    """Why the model stopped generating."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """A chat request in canonical form."""

    model: str
    """The model name the client asked for (not the upstream's name)."""
    messages: tuple[Message, ...]
    system: tuple[TextPart, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    response_format: ResponseFormat | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    """Effort level as the client spelled it (``minimal``, ``low``, ``medium``, ``high``, …); None means unset."""
    reasoning_budget_tokens: int | None = None
    """Token budget for reasoning (Anthropic ``thinking.budget_tokens``, Gemini ``thinkingBudget``)."""
    user_id: str | None = None
    """End-user id for abuse tracking (OpenAI ``user``, Anthropic ``metadata.user_id``)."""
    extensions: Mapping[str, JSONObject] = field(default_factory=dict)
    """Fields the canonical form can't express, keyed by WireFormat. Re-emitted only to the same format."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatResponse:
    """A complete (non-streamed or accumulated) chat response in canonical form."""

    id: str
    model: str
    created: int | None = None
    """Unix time in seconds as the upstream reported it; None when it did not."""
    parts: tuple[Part, ...] = ()
    """The assistant message's content, in order."""
    finish_reason: FinishReason | None = None
    """None only when a stream ended without saying why (e.g. it was cut off)."""
    usage: Usage = field(default_factory=Usage)
    extensions: Mapping[str, JSONObject] = field(default_factory=dict)
    """Fields the canonical form can't express, keyed by WireFormat. Re-emitted only to the same format."""

    @property
    def message(self) -> Message:
        """The response content as an assistant ``Message``, ready to append to a conversation."""
        return Message(role="assistant", parts=self.parts)

    @property
    def has_content(self) -> bool:
        """Whether the answer says anything: text, reasoning, a tool call or an image (else it is empty)."""
        return any(not isinstance(part, TextPart | ReasoningPart) or part.text for part in self.parts)
