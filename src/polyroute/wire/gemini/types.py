"""Gemini request and response shapes as TypedDicts, validated once at the border with pydantic.

See: https://ai.google.dev/api/generate-content
"""

from __future__ import annotations

from typing import Any, Literal, Required

from pydantic import ConfigDict, TypeAdapter
from typing_extensions import TypedDict

_STRICT = ConfigDict(strict=True)


class BlobParam(TypedDict, total=False):
    """``inlineData``: base64 bytes with their MIME type."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    mimeType: Required[str]
    data: Required[str]


class FileDataParam(TypedDict, total=False):
    """``fileData``: a file by URI (Files API, GCS)."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    mimeType: str
    fileUri: Required[str]


class FunctionCallParam(TypedDict, total=False):
    """``functionCall``: structured ``args``; ``id`` is optional and often absent."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    name: Required[str]
    args: dict[str, Any]
    id: str


class FunctionResponseParam(TypedDict, total=False):
    """``functionResponse``: the tool's result as an object."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    name: Required[str]
    response: Required[dict[str, Any]]
    id: str


class PartParam(TypedDict, total=False):
    """One ``Part``; exactly one data field is set (checked after validation)."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    text: str
    inlineData: BlobParam
    fileData: FileDataParam
    functionCall: FunctionCallParam
    functionResponse: FunctionResponseParam
    thought: bool
    thoughtSignature: str


class ContentParam(TypedDict, total=False):
    """One turn; ``role`` defaults to ``user`` when absent."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    role: Literal["user", "model"]
    parts: Required[list[PartParam]]


class FunctionDeclarationParam(TypedDict, total=False):
    """A callable function; ``parameters`` is an OpenAPI schema, ``parametersJsonSchema`` a JSON Schema."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    name: Required[str]
    description: str
    parameters: dict[str, Any]
    parametersJsonSchema: dict[str, Any]


class FunctionCallingConfigParam(TypedDict, total=False):
    """``toolConfig.functionCallingConfig``."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    mode: Literal["AUTO", "ANY", "NONE"]
    allowedFunctionNames: list[str]


class ToolConfigParam(TypedDict):
    """``toolConfig``."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    functionCallingConfig: FunctionCallingConfigParam


class ThinkingConfigParam(TypedDict, total=False):
    """``generationConfig.thinkingConfig``; fields not listed ride in extensions."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    thinkingBudget: int
    thinkingLevel: str


class GenerationConfigParam(TypedDict, total=False):
    """``generationConfig``; fields not listed ride in extensions."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    temperature: float
    topP: float
    topK: int
    maxOutputTokens: int
    stopSequences: list[str]
    responseMimeType: str
    responseJsonSchema: dict[str, Any]
    thinkingConfig: ThinkingConfigParam


class GenerateContentRequestParam(TypedDict, total=False):
    """The body of ``:generateContent`` / ``:streamGenerateContent`` (the model is in the URL path)."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]
    contents: Required[list[ContentParam]]
    systemInstruction: ContentParam
    tools: list[dict[str, Any]]
    toolConfig: ToolConfigParam
    generationConfig: GenerationConfigParam


class UsageMetadataParam(TypedDict, total=False):
    """``usageMetadata`` token counts."""

    promptTokenCount: int
    candidatesTokenCount: int
    cachedContentTokenCount: int
    thoughtsTokenCount: int
    totalTokenCount: int


class CandidateContentParam(TypedDict, total=False):
    """``candidates[].content``; the API omits ``parts`` on blocked or empty candidates."""

    role: str
    parts: list[PartParam]


class CandidateParam(TypedDict, total=False):
    """One candidate; only the first is read."""

    content: CandidateContentParam
    finishReason: str


class PromptFeedbackParam(TypedDict, total=False):
    """``promptFeedback``: set when the prompt itself was blocked."""

    blockReason: str


class GenerateContentResponseParam(TypedDict, total=False):
    """A whole response, or one streamed chunk (each SSE ``data:`` has this shape)."""

    candidates: list[CandidateParam]
    promptFeedback: PromptFeedbackParam
    usageMetadata: UsageMetadataParam
    responseId: str
    modelVersion: str


REQUEST_ADAPTER = TypeAdapter(GenerateContentRequestParam)
RESPONSE_ADAPTER = TypeAdapter(GenerateContentResponseParam)
DECLARATIONS_ADAPTER = TypeAdapter(list[FunctionDeclarationParam])

__all__ = [
    "DECLARATIONS_ADAPTER",
    "REQUEST_ADAPTER",
    "RESPONSE_ADAPTER",
    "CandidateParam",
    "ContentParam",
    "FunctionDeclarationParam",
    "GenerateContentRequestParam",
    "GenerateContentResponseParam",
    "GenerationConfigParam",
    "PartParam",
    "UsageMetadataParam",
]
