"""Gemini ``Part`` <-> canonical parts, usage and finish reasons: the pieces requests, responses and streams share.

See: https://ai.google.dev/api/caching#Part and https://ai.google.dev/api/generate-content#UsageMetadata
"""

from __future__ import annotations

import orjson

from polyroute.core.messages import (
    FinishReason,
    ImagePart,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.gemini.types import PartParam, UsageMetadataParam

SOURCE_FORMAT = "gemini"
"""``WireFormat.GEMINI``; stamped on reasoning parts so only this format re-emits them."""

SYNTHETIC_CALL_ID_PREFIX = "gemini_call_"
"""Ids we make up for calls Gemini sent without one; never sent back to Gemini (it matches by name and order)."""

_FINISH_REASONS: dict[str, FinishReason] = {
    "FINISH_REASON_UNSPECIFIED": FinishReason.STOP,
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "LANGUAGE": FinishReason.CONTENT_FILTER,
    "OTHER": FinishReason.ERROR,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "MALFORMED_FUNCTION_CALL": FinishReason.ERROR,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "IMAGE_RECITATION": FinishReason.CONTENT_FILTER,
    "IMAGE_OTHER": FinishReason.ERROR,
    "NO_IMAGE": FinishReason.ERROR,
    "UNEXPECTED_TOOL_CALL": FinishReason.ERROR,
    "TOO_MANY_TOOL_CALLS": FinishReason.ERROR,
    "MISSING_THOUGHT_SIGNATURE": FinishReason.ERROR,
    "MALFORMED_RESPONSE": FinishReason.ERROR,
}
"""Gemini ``Candidate.FinishReason`` -> canonical. Gemini says STOP after a function call; see ``parse_finish``."""

_RENDERED_FINISH_REASONS: dict[FinishReason, str] = {
    FinishReason.STOP: "STOP",
    FinishReason.LENGTH: "MAX_TOKENS",
    FinishReason.TOOL_CALLS: "STOP",
    FinishReason.CONTENT_FILTER: "SAFETY",
    FinishReason.ERROR: "OTHER",
}
"""Canonical -> Gemini; Gemini has no tool-call reason (a ``functionCall`` part ends with STOP)."""


def parse_finish(reason: str, *, has_tool_calls: bool) -> FinishReason:
    """Map a ``finishReason``; unknown future values count as errors rather than silently as STOP."""
    finish = _FINISH_REASONS.get(reason, FinishReason.ERROR)
    return FinishReason.TOOL_CALLS if finish is FinishReason.STOP and has_tool_calls else finish


def render_finish(reason: FinishReason) -> str:
    """Canonical finish reason -> Gemini ``finishReason``."""
    return _RENDERED_FINISH_REASONS[reason]


def parse_usage(metadata: UsageMetadataParam) -> Usage:
    """``usageMetadata`` -> ``Usage``.

    ``promptTokenCount`` already includes cached tokens, as ``Usage.input_tokens`` wants.
    ``candidatesTokenCount`` excludes thoughts (Gemini bills ``thoughtsTokenCount`` separately), while
    ``Usage.output_tokens`` includes reasoning, so output is their sum. ``toolUsePromptTokenCount`` is not mapped.
    """
    candidates = metadata.get("candidatesTokenCount")
    thoughts = metadata.get("thoughtsTokenCount")
    output = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    return Usage(
        input_tokens=metadata.get("promptTokenCount"),
        output_tokens=output,
        cache_read_tokens=metadata.get("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def render_usage(usage: Usage) -> JSONObject:
    """``Usage`` -> ``usageMetadata``; the inverse of ``parse_usage``, omitting what was not reported."""
    metadata: JSONObject = {}
    if usage.input_tokens is not None:
        metadata["promptTokenCount"] = usage.input_tokens
    if usage.output_tokens is not None:
        metadata["candidatesTokenCount"] = usage.output_tokens - (usage.reasoning_tokens or 0)
    if usage.cache_read_tokens is not None:
        metadata["cachedContentTokenCount"] = usage.cache_read_tokens
    if usage.reasoning_tokens is not None:
        metadata["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.input_tokens is not None and usage.output_tokens is not None:
        metadata["totalTokenCount"] = usage.input_tokens + usage.output_tokens
    return metadata


def synthetic_call_id(response_id: str, index: int) -> str:
    """Deterministic id for a call Gemini sent without one: prefix, response id, canonical part index."""
    return f"{SYNTHETIC_CALL_ID_PREFIX}{response_id}_{index}" if response_id else f"{SYNTHETIC_CALL_ID_PREFIX}{index}"


def parse_model_part(part: PartParam, *, call_id: str) -> list[Part]:
    """One model-side Gemini part -> canonical parts (``call_id`` is used when the call has no ``id``).

    ``args`` become raw JSON text here (canonical arguments are text; Gemini's are an object). A text part
    carrying a ``thoughtSignature`` becomes the text plus an empty reasoning part holding the signature, because
    canonical text has no signature; ``render_model_parts`` folds it back.

    Raises:
        ValueError: the part has no text, media or function call.
    """
    signature = part.get("thoughtSignature")
    call = part.get("functionCall")
    if call is not None:
        arguments = orjson.dumps(call.get("args", {})).decode()
        return [
            ToolCallPart(call_id=call.get("id", call_id), name=call["name"], arguments=arguments, signature=signature)
        ]
    media = parse_media(part)
    if media is not None:
        return [media]
    if "text" not in part:
        raise ValueError("part has no text, inlineData, fileData or functionCall")
    text = part["text"]
    if part.get("thought", False):
        return [ReasoningPart(text=text, signature=signature, source_format=SOURCE_FORMAT)]
    parts: list[Part] = [TextPart(text=text)] if text or signature is None else []
    if signature is not None:
        parts.append(ReasoningPart(signature=signature, source_format=SOURCE_FORMAT))
    return parts


def parse_media(part: PartParam) -> ImagePart | None:
    """``inlineData`` / ``fileData`` -> ``ImagePart`` (any MIME type rides here; see docs/formats/gemini.md)."""
    blob = part.get("inlineData")
    if blob is not None:
        return ImagePart(data=blob["data"], media_type=blob["mimeType"])
    file = part.get("fileData")
    if file is not None:
        return ImagePart(url=file["fileUri"], media_type=file.get("mimeType"))
    return None


def render_media(part: ImagePart) -> JSONObject:
    """``ImagePart`` -> ``inlineData`` or ``fileData``."""
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type or "application/octet-stream", "data": part.data}}
    file: JSONObject = {"fileUri": part.url or ""}
    if part.media_type is not None:
        file["mimeType"] = part.media_type
    return {"fileData": file}


def render_arguments(arguments: str) -> JSONObject:
    """Raw JSON text -> Gemini ``args``; text that is not a JSON object renders as ``{}`` (Gemini needs an object)."""
    try:
        value: JSONValue = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def render_model_parts(parts: tuple[Part, ...] | list[Part]) -> list[JSONObject]:
    """Canonical assistant parts -> Gemini parts. Reasoning from other formats is dropped, never forged.

    Raises:
        ValueError: a tool result among the parts (they belong in user turns).
    """
    rendered: list[JSONObject] = []
    for part in parts:
        if isinstance(part, ReasoningPart):
            _render_reasoning(part, rendered)
        elif isinstance(part, TextPart):
            rendered.append({"text": part.text})
        elif isinstance(part, ToolCallPart):
            rendered.append(render_tool_call(part))
        elif isinstance(part, ToolResultPart):
            raise ValueError("a tool result cannot be model output")
        else:
            rendered.append(render_media(part))
    return rendered


def render_tool_call(part: ToolCallPart) -> JSONObject:
    """``ToolCallPart`` -> a ``functionCall`` part; made-up ids stay home, signatures go back."""
    call: JSONObject = {"name": part.name, "args": render_arguments(part.arguments)}
    if not part.call_id.startswith(SYNTHETIC_CALL_ID_PREFIX):
        call["id"] = part.call_id
    rendered: JSONObject = {"functionCall": call}
    if part.signature is not None:
        rendered["thoughtSignature"] = part.signature
    return rendered


def _render_reasoning(part: ReasoningPart, rendered: list[JSONObject]) -> None:
    if part.source_format != SOURCE_FORMAT:
        return
    if not part.text and part.signature is not None:
        # The signature of a plain text part (see parse_model_part): fold it back onto that text.
        previous = rendered[-1] if rendered else None
        if previous is not None and _is_unsigned_text(previous):
            previous["thoughtSignature"] = part.signature
        else:
            rendered.append({"text": "", "thoughtSignature": part.signature})
        return
    thought: JSONObject = {"text": part.text, "thought": True}
    if part.signature is not None:
        thought["thoughtSignature"] = part.signature
    rendered.append(thought)


def _is_unsigned_text(part: JSONObject) -> bool:
    return "text" in part and "thought" not in part and "thoughtSignature" not in part
