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
