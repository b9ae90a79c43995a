"""What a failed attempt leads to, as one table.

The status → action table (docs/routing.md publishes the same rows):

- upstream 5xx or 529, connection error, timeout before the first byte, unreadable or empty answer:
  the deployment's breaker counts a failure; next deployment.
- upstream 429: the credential cools down on this deployment (``Retry-After``, else exponential);
  next credential, then next deployment.
- upstream 401/403 (the gateway's credential): the credential is marked broken; next credential,
  then next deployment.
- upstream 400/404/422 saying the context window is too small: the configured fallbacks only.
- upstream 400/404/422, or any error of the request itself: returned to the client at once.

A request makes at most its ``max_attempts`` attempts (5 by default), never tries one deployment and
credential twice, and never re-sends once the upstream has begun answering (a stream past its first
content byte fails in-band instead).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from polyroute.errors import (
    GatewayError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamConnectionError,
    UpstreamEmptyAnswerError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamServerError,
    UpstreamTimeoutError,
)

MAX_ATTEMPTS: Final = 5


class Action(StrEnum):
    """What the gateway does after a failed attempt."""

    NEXT = "next"
    """The deployment failed: count it against its breaker and go to the next deployment."""
    COOL_DOWN = "cool_down"
    """Rate limited: rest this credential on this deployment; next credential, else next deployment."""
    BROKEN_CREDENTIAL = "broken_credential"
    """The upstream refused the credential: mark it broken; next credential, else next deployment."""
    LARGER_CONTEXT = "larger_context"
    """The prompt does not fit: only the configured fallbacks may help."""
    RETURN = "return"
    """The request itself is wrong: the client gets the error at once."""


ACTIONS: Final[tuple[tuple[type[GatewayError], Action], ...]] = (
    (UpstreamRateLimitError, Action.COOL_DOWN),
    (UpstreamAuthError, Action.BROKEN_CREDENTIAL),
    (UpstreamBadRequestError, Action.RETURN),
    (UpstreamServerError, Action.NEXT),
    (UpstreamTimeoutError, Action.NEXT),
    (UpstreamConnectionError, Action.NEXT),
    (UpstreamProtocolError, Action.NEXT),
    (UpstreamEmptyAnswerError, Action.NEXT),
    (GatewayError, Action.RETURN),
)
"""The single source of truth: the first row whose class the error is an instance of decides
(a bad request that is a context-length error is the one exception, see ``is_context_length``)."""

CONTEXT_LENGTH_CODES: Final = frozenset(
    {"context_length_exceeded", "string_above_max_length", "request_too_large", "model_context_window_exceeded"}
)
"""Error codes or types with which providers say a prompt does not fit the model's context window."""

CONTEXT_LENGTH_PHRASES: Final = (
    "context length",
    "context window",
    "context_length",
    "maximum context",
    "prompt is too long",
    "input is too long",
    "too many tokens",
    "input token count",
    "exceeds the maximum number of tokens",
    "reduce the length of the messages",
)
"""Phrases of the same errors where a provider sends no code (OpenAI, Anthropic, Gemini, Ollama, vLLM wording)."""


def is_context_length(error: UpstreamBadRequestError) -> bool:
    """Whether an upstream's refusal says the prompt does not fit the model's context window."""
    if error.code in CONTEXT_LENGTH_CODES or error.upstream_type in CONTEXT_LENGTH_CODES:
        return True
    message = error.message.lower()
    return any(phrase in message for phrase in CONTEXT_LENGTH_PHRASES)


def action_for(error: GatewayError) -> Action:
    """The table's action for ``error``."""
    for kind, action in ACTIONS:
        if isinstance(error, kind):
            if action is Action.RETURN and isinstance(error, UpstreamBadRequestError) and is_context_length(error):
                return Action.LARGER_CONTEXT
            return action
    return Action.RETURN  # pragma: no cover  (GatewayError is the last row)
