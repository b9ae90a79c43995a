"""Anthropic error bodies ``{"type": "error", "error": {"type", "message"}}`` <-> gateway errors.

Spec: https://docs.anthropic.com/en/api/errors
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from polyroute.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    LimiterUnavailableError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NoDeploymentAvailableError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RequestError,
    UnsupportedFeatureError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamConnectionError,
    UpstreamEmptyAnswerError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamServerError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from polyroute.types import JSONObject
from polyroute.wire.upstream_errors import error_message, retry_after_s

_ERROR_TYPES: dict[str, type[UpstreamStatusError]] = {
    "invalid_request_error": UpstreamBadRequestError,
    "not_found_error": UpstreamBadRequestError,
    "request_too_large": UpstreamBadRequestError,
    "authentication_error": UpstreamAuthError,
    "permission_error": UpstreamAuthError,
    # billing_error (402): the operator's account must be fixed, exactly like a rejected credential.
    "billing_error": UpstreamAuthError,
    "rate_limit_error": UpstreamRateLimitError,
    "api_error": UpstreamServerError,
    "timeout_error": UpstreamServerError,
    "overloaded_error": UpstreamServerError,
}
"""Anthropic ``error.type`` → gateway class; the status code decides only when the type is missing or unknown."""
_ERROR_STATUSES: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""The HTTP status Anthropic pairs with each ``error.type``; used for errors that arrive in-band in a stream."""
_RENDERED_TYPES: dict[type[GatewayError], str] = {
    GatewayError: "api_error",
    RequestError: "invalid_request_error",
    InvalidRequestError: "invalid_request_error",
    UnsupportedFeatureError: "invalid_request_error",
    AuthenticationError: "authentication_error",
    PermissionDeniedError: "permission_error",
    NotFoundError: "not_found_error",
    # Anthropic answers an unknown model with 404 not_found_error (our base class says invalid_request_error).
    ModelNotFoundError: "not_found_error",
    MethodNotAllowedError: "invalid_request_error",
    PayloadTooLargeError: "request_too_large",
    RateLimitedError: "rate_limit_error",
    UpstreamError: "api_error",
    UpstreamStatusError: "api_error",
    UpstreamBadRequestError: "invalid_request_error",
    UpstreamAuthError: "api_error",
    UpstreamRateLimitError: "rate_limit_error",
    UpstreamServerError: "api_error",
    UpstreamTimeoutError: "timeout_error",
    UpstreamConnectionError: "api_error",
    UpstreamProtocolError: "api_error",
    UpstreamEmptyAnswerError: "api_error",
    # Every deployment is failing or cooling down: Anthropic's SDKs back off and retry on overloaded_error.
    NoDeploymentAvailableError: "overloaded_error",
    LimiterUnavailableError: "api_error",
}
"""Gateway error class → Anthropic ``error.type``; the nearest class in the MRO wins."""


def error_status(error_type: str | None) -> int:
    """The status Anthropic uses for ``error_type`` (500 when unknown)."""
    return _ERROR_STATUSES.get(error_type or "", 500)


def parse_error(status_code: int, body: bytes, headers: Mapping[str, str], *, provider: str) -> UpstreamStatusError:
    """Turn an Anthropic error answer into the matching :class:`UpstreamStatusError`.

    The structured ``error.type`` is looked up in ``_ERROR_TYPES``; the status code decides otherwise.
    """
    message, error_type = _error_fields(body)
    message = error_message(provider, status_code, message)
    cls = _ERROR_TYPES.get(error_type or "") or _class_for_status(status_code)
    if cls is UpstreamRateLimitError:
        return UpstreamRateLimitError(
            message, provider=provider, retry_after_s=retry_after_s(headers), upstream_type=error_type
        )
    return cls(message, provider=provider, upstream_status=status_code, upstream_type=error_type)


def _class_for_status(status_code: int) -> type[UpstreamStatusError]:
    if status_code == 429:
        return UpstreamRateLimitError
    if status_code in (401, 403):
        return UpstreamAuthError
    if 400 <= status_code < 500:
        return UpstreamBadRequestError
    return UpstreamServerError


def _error_fields(body: bytes) -> tuple[str, str | None]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip() or "(empty body)", None
    error = value.get("error") if isinstance(value, dict) else None
    if not isinstance(error, dict):
        return orjson.dumps(value).decode(), None
    message = error.get("message")
    error_type = error.get("type")
    return (
        message if isinstance(message, str) else orjson.dumps(error).decode(),
        error_type if isinstance(error_type, str) else None,
    )


def render_error(error: GatewayError) -> tuple[int, JSONObject]:
    """The client-facing status and body for an error, in Anthropic's shape."""
    error_type = next(_RENDERED_TYPES[cls] for cls in type(error).__mro__ if cls in _RENDERED_TYPES)
    if isinstance(error, UpstreamBadRequestError) and error.upstream_type in _ERROR_STATUSES:
        error_type = error.upstream_type
    return error.status_code, {"type": "error", "error": {"type": error_type, "message": error.message}}
