"""Wire formats: pure, sans-IO translation between each provider API and the gateway.

The config's ``format:`` values are the members of :class:`WireFormat`.
"""

from __future__ import annotations

from enum import StrEnum


class WireFormat(StrEnum):
    """An HTTP API dialect, as named in config and logs."""

    OPENAI = "openai"
    """OpenAI Chat Completions (``/v1/chat/completions``) and the OpenAI-compatible family."""
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OLLAMA = "ollama"
    RESPONSES = "responses"
    """OpenAI Responses (``/v1/responses``)."""


class MediaApi(StrEnum):
    """The API a provider's image, embedding and audio models speak (the config's ``media_api:``)."""

    OPENAI = "openai"
    """``/images/generations``, ``/embeddings``, ``/audio/transcriptions|translations|speech`` (OpenAI-compatible)."""
    POLLINATIONS = "pollinations"
    """``GET /image/{prompt}`` answering with the image's bytes (gen.pollinations.ai)."""
    GEMINI = "gemini"
    """``:generateContent`` with image output, ``:batchEmbedContents``."""
    OLLAMA = "ollama"
    """``/api/embed``."""
    DEEPGRAM = "deepgram"
    """``POST /v1/listen`` with the audio as the body."""
    ASSEMBLYAI = "assemblyai"
    """``/v2/upload``, then ``/v2/transcript`` polled until done."""
    COHERE = "cohere"
    """``/v2/embed``."""


MEDIA_API_OF_FORMAT: dict[WireFormat, MediaApi | None] = {
    WireFormat.OPENAI: MediaApi.OPENAI,
    WireFormat.RESPONSES: MediaApi.OPENAI,
    WireFormat.GEMINI: MediaApi.GEMINI,
    WireFormat.OLLAMA: MediaApi.OLLAMA,
    WireFormat.ANTHROPIC: None,
}
"""A provider's media API when its config names none."""
