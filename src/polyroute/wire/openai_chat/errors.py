"""OpenAI's error shape: upstream error answers in, gateway errors out (whole and in-band in a stream)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from polyroute.errors import (
    GatewayError,
    NoDeploymentAvailableError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamRateLimitError,
    UpstreamServerError,
    UpstreamStatusError,
)
from polyroute.types import JSONObject
from polyroute.wire.upstream_errors import error_message, retry_after_s


def parse_error(status_code: int, body: bytes, headers: Mapping[str, str], *, provider: str) -> UpstreamStatusError:
    """Turn an upstream error answer into the matching :class:`UpstreamStatusError`.

    Reads the structured ``error.type``/``error.code`` where present; tolerates the looser shapes
    OpenAI-compatible servers send (``{"error": "text"}``, ``{"message": ...}``, ``{"detail": ...}``,
    plain text).
    """
    message, error_type, code, param = _error_fields(body)
    message = error_message(provider, status_code, message)
    if status_code == 429:
        return UpstreamRateLimitError(
            message, provider=provider, retry_after_s=retry_after_s(headers), code=code, upstream_type=error_type
        )
    if status_code in (401, 403):
        return UpstreamAuthError(message, provider=provider, upstream_status=status_code, upstream_type=error_type)
    if 400 <= status_code < 500:
        return UpstreamBadRequestError(
            message, provider=provider, upstream_status=status_code, code=code, param=param, upstream_type=error_type
        )
    return UpstreamServerError(message, provider=provider, upstream_status=status_code, upstream_type=error_type)


def _error_fields(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    if not body.strip():
        return "(empty body)", None, None, None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text or "(empty body)"), None, None, None
    error = value.get("error", value) if isinstance(value, dict) else value
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("msg")
        return (
            message if isinstance(message, str) else orjson.dumps(error).decode(),
            _str(error.get("type")),
            _str(error.get("code")),
            _str(error.get("param")),
        )
    return (error if isinstance(error, str) else orjson.dumps(value).decode()), None, None, None


def _str(value: object) -> str | None:
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def render_error(error: GatewayError) -> tuple[int, JSONObject]:
    """The client-facing status and body for an error, in OpenAI's shape."""
    error_type = error.error_type
    if isinstance(error, UpstreamBadRequestError) and error.upstream_type:
        error_type = error.upstream_type
    inner: JSONObject = {"message": error.message, "type": error_type, "code": error.code, "param": error.param}
    if isinstance(error, NoDeploymentAvailableError) and error.details:
        inner["details"] = error.details
    return error.status_code, {"error": inner}


def render_stream_error(error: GatewayError) -> bytes:
    """An error delivered in-band after a stream has begun (the SDKs raise on ``data: {"error": ...}``)."""
    _, body = render_error(error)
    return b"data: " + orjson.dumps(body) + b"\n\n"
