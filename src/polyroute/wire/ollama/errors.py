"""Ollama error bodies (``{"error": "text"}``) <-> gateway errors."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from polyroute.errors import (
    GatewayError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamRateLimitError,
    UpstreamServerError,
    UpstreamStatusError,
)
from polyroute.types import JSONObject
from polyroute.wire.upstream_errors import error_message, retry_after_s

_STATUS_ERRORS: dict[int, type[UpstreamStatusError]] = {
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    429: UpstreamRateLimitError,
}
"""Statuses with their own error class; other 4xx are bad requests, everything else a server error."""


def parse_error(status_code: int, body: bytes, headers: Mapping[str, str], *, provider: str) -> UpstreamStatusError:
    """Turn an Ollama error answer (``{"error": "text"}``) into the matching :class:`UpstreamStatusError`.

    A 404 (Ollama's "model not found") stays a 404 bad request: this deployment lacks the model.
    """
    message = error_message(provider, status_code, _error_text(body))
    cls = _STATUS_ERRORS.get(status_code)
    if cls is UpstreamRateLimitError:
        return UpstreamRateLimitError(message, provider=provider, retry_after_s=retry_after_s(headers))
    if cls is not None:
        return cls(message, provider=provider, upstream_status=status_code)
    if 400 <= status_code < 500:
        return UpstreamBadRequestError(message, provider=provider, upstream_status=status_code)
    return UpstreamServerError(message, provider=provider, upstream_status=status_code)


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return text or "(empty body)"
    error = value.get("error") if isinstance(value, dict) else None
    return error if isinstance(error, str) else text


def render_error(error: GatewayError) -> tuple[int, JSONObject]:
    """The client-facing status and body for an error, in Ollama's ``{"error": message}`` shape."""
    return error.status_code, {"error": error.message}
