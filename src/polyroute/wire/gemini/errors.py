"""Gemini error bodies ``{"error": {"code", "message", "status"}}`` <-> gateway errors.

See: https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
"""

from __future__ import annotations

import re
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
from polyroute.types import JSONObject, JSONValue
from polyroute.wire.upstream_errors import error_message, retry_after_s

_ERROR_STATUSES: dict[str, type[UpstreamStatusError]] = {
    "INVALID_ARGUMENT": UpstreamBadRequestError,
    "FAILED_PRECONDITION": UpstreamBadRequestError,
    "OUT_OF_RANGE": UpstreamBadRequestError,
    "NOT_FOUND": UpstreamBadRequestError,
    "ALREADY_EXISTS": UpstreamBadRequestError,
    "ABORTED": UpstreamBadRequestError,
    "CANCELLED": UpstreamBadRequestError,
    "UNAUTHENTICATED": UpstreamAuthError,
    "PERMISSION_DENIED": UpstreamAuthError,
    "RESOURCE_EXHAUSTED": UpstreamRateLimitError,
    "INTERNAL": UpstreamServerError,
    "UNAVAILABLE": UpstreamServerError,
    "DEADLINE_EXCEEDED": UpstreamServerError,
    "UNKNOWN": UpstreamServerError,
    "DATA_LOSS": UpstreamServerError,
    "UNIMPLEMENTED": UpstreamServerError,
}
"""google.rpc ``Code`` names (the ``error.status`` field) -> gateway error class; the HTTP status decides otherwise."""

_STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""HTTP status we answer with -> google.rpc ``Code`` name, as the Gemini API pairs them."""

_RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def parse_error(status_code: int, body: bytes, headers: Mapping[str, str], *, provider: str) -> UpstreamStatusError:
    """Turn a Gemini error answer into the matching :class:`UpstreamStatusError`.

    The structured ``error.status`` picks the class; without one the HTTP status does. A 429 reads its delay
    from ``RetryInfo.retryDelay`` in ``error.details``, else from ``Retry-After``.
    """
    error = _error_object(body)
    raw_message = error.get("message")
    message = (
        raw_message if isinstance(raw_message, str) else (body.decode("utf-8", "replace").strip() or "(empty body)")
    )
    message = error_message(provider, status_code, message)
    status = error.get("status")
    upstream_type = status if isinstance(status, str) else None
    error_class = _ERROR_STATUSES.get(upstream_type or "") or _class_for_status(status_code)
    if _reason(error.get("details")) in _CREDENTIAL_REASONS:
        # Gemini answers a bad key with 400 INVALID_ARGUMENT; it is our credential, not the caller's request.
        error_class = UpstreamAuthError
    if error_class is UpstreamRateLimitError or status_code == 429:
        delay_s = _retry_delay(error.get("details"))
        if delay_s is None:
            delay_s = retry_after_s(headers)
        return UpstreamRateLimitError(message, provider=provider, retry_after_s=delay_s, upstream_type=upstream_type)
    return error_class(message, provider=provider, upstream_status=status_code, upstream_type=upstream_type)


def _class_for_status(status_code: int) -> type[UpstreamStatusError]:
    if status_code in (401, 403):
        return UpstreamAuthError
    return UpstreamBadRequestError if 400 <= status_code < 500 else UpstreamServerError


def _error_object(body: bytes) -> JSONObject:
    try:
        value: JSONValue = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    # The REST endpoints answer a single object; streamGenerateContent without alt=sse wraps it in a list.
    if isinstance(value, list) and value:
        value = value[0]
    error = value.get("error") if isinstance(value, dict) else None
    return error if isinstance(error, dict) else {}


_ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
_CREDENTIAL_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})
"""``ErrorInfo.reason`` values that mean the gateway's own credential is wrong."""


def _reason(details: JSONValue | None) -> str | None:
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and detail.get("@type") == _ERROR_INFO_TYPE:
                reason = detail.get("reason")
                return reason if isinstance(reason, str) else None
    return None


def _retry_delay(details: JSONValue | None) -> float | None:
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO_TYPE:
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def render_error(error: GatewayError) -> tuple[int, JSONObject]:
    """The client-facing status and body for an error, in Gemini's shape."""
    status = _STATUS_NAMES.get(error.status_code, "UNKNOWN")
    if isinstance(error, UpstreamBadRequestError) and error.upstream_type in _ERROR_STATUSES:
        status = error.upstream_type or status
    body: JSONObject = {"error": {"code": error.status_code, "message": error.message, "status": status}}
    return error.status_code, body
