"""Canonical values shared by every wire format (usage so far; messages arrive with translation)."""

from __future__ import annotations

from dataclasses import dataclass


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
