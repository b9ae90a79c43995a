"""Gemini ``GenerateContentResponse`` <-> canonical ``ChatResponse``.

See: https://ai.google.dev/api/generate-content#generatecontentresponse
"""

from __future__ import annotations

import copy
from typing import cast

from pydantic import ValidationError

from polyroute.core.messages import ChatResponse, FinishReason, Part, ToolCallPart
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.gemini.parts import (
    SOURCE_FORMAT,
    parse_finish,
    parse_model_part,
    parse_usage,
    render_finish,
    render_model_parts,
    render_usage,
    synthetic_call_id,
)
from polyroute.wire.gemini.types import RESPONSE_ADAPTER, GenerateContentResponseParam, PartParam

CANDIDATE_EXTENSION_KEY = "_candidate"
"""Key in ``extensions["gemini"]`` holding fields of ``candidates[0]`` we do not map (safetyRatings, …)."""

_KNOWN_KEYS = frozenset(GenerateContentResponseParam.__annotations__)
_KNOWN_CANDIDATE_KEYS = frozenset({"content", "finishReason"})


def validate_response(body: JSONObject) -> GenerateContentResponseParam:
    """Check a response or stream chunk against the Gemini shape.

    Raises:
        ValueError: it is not a ``GenerateContentResponse``.
    """
    try:
        return RESPONSE_ADAPTER.validate_python(body)
    except ValidationError as exc:
        raise ValueError(f"not a Gemini GenerateContentResponse: {exc.errors()[0]['msg']}") from exc


def parse_parts(parts: list[PartParam], *, response_id: str) -> list[Part]:
    """Model parts of one candidate -> canonical parts, giving id-less calls ids from their position.

    Raises:
        ValueError: a part has no text, media or function call.
    """
    parsed: list[Part] = []
    for part in parts:
        parsed.extend(parse_model_part(part, call_id=synthetic_call_id(response_id, len(parsed))))
    return parsed


def parse_response(body: JSONObject) -> ChatResponse:
    """Gemini response body -> canonical response (first candidate only).

    Raises:
        ValueError: the body is not a ``GenerateContentResponse``; the caller reports it as a protocol error.
    """
    response = validate_response(body)
    response_id = response.get("responseId", "")
    candidates = response.get("candidates", [])
    candidate = candidates[0] if candidates else {}
    parts = parse_parts(candidate.get("content", {}).get("parts", []), response_id=response_id)
    finish: FinishReason | None = None
    if "finishReason" in candidate:
        has_calls = any(isinstance(part, ToolCallPart) for part in parts)
        finish = parse_finish(candidate["finishReason"], has_tool_calls=has_calls)
    elif "blockReason" in response.get("promptFeedback", {}):
        finish = FinishReason.CONTENT_FILTER
    extensions: JSONObject = {key: value for key, value in body.items() if key not in _KNOWN_KEYS}
    raw_candidates = body.get("candidates")
    if isinstance(raw_candidates, list) and raw_candidates and isinstance(raw_candidates[0], dict):
        extra = {key: value for key, value in raw_candidates[0].items() if key not in _KNOWN_CANDIDATE_KEYS}
        if extra:
            extensions[CANDIDATE_EXTENSION_KEY] = extra
    if "promptFeedback" in body:  # read for blockReason above, but kept whole for same-format clients
        extensions["promptFeedback"] = body["promptFeedback"]
    return ChatResponse(
        id=response_id,
        model=response.get("modelVersion", ""),
        parts=tuple(parts),
        finish_reason=finish,
        usage=parse_usage(response.get("usageMetadata", {})),
        extensions={SOURCE_FORMAT: extensions} if extensions else {},
    )


def render_response(response: ChatResponse, *, now_s: int = 0) -> JSONObject:
    """Canonical response -> Gemini response body (which carries no creation time, so ``now_s`` is unused)."""
    del now_s
    extensions = copy.deepcopy(dict(response.extensions.get(SOURCE_FORMAT, {})))
    candidate_extra = extensions.pop(CANDIDATE_EXTENSION_KEY, {})
    candidate: JSONObject = {"content": {"role": "model", "parts": cast(JSONValue, render_model_parts(response.parts))}}
    if response.finish_reason is not None:
        candidate["finishReason"] = render_finish(response.finish_reason)
    if isinstance(candidate_extra, dict):
        candidate.update(candidate_extra)
    body: JSONObject = {"candidates": [candidate]}
    usage = render_usage(response.usage)
    if usage:
        body["usageMetadata"] = usage
    body["modelVersion"] = response.model
    body["responseId"] = response.id
    body.update(extensions)
    return body
