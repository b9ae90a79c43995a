"""Responses errors: OpenAI's error shape, for whole answers and for failures that arrive inside a stream.

Spec: https://platform.openai.com/docs/guides/error-codes and
https://platform.openai.com/docs/api-reference/responses-streaming/error
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from polyroute.errors import GatewayError, UpstreamStatusError
from polyroute.types import JSONObject
from polyroute.wire.openai_chat.errors import parse_error as _parse_openai_error
from polyroute.wire.openai_chat.errors import render_error as _render_openai_error

_ERROR_STATUSES: dict[str, int] = {
    "server_error": 500,
    "rate_limit_exceeded": 429,
    "vector_store_timeout": 504,
    "invalid_prompt": 400,
    "data_residency_mismatch": 400,
    "bio_policy": 400,
    "misalignment_policy_violation": 400,
    "invalid_image": 400,
    "invalid_image_format": 400,
    "invalid_base64_image": 400,
    "invalid_image_url": 400,
    "image_too_large": 400,
    "image_too_small": 400,
    "image_parse_error": 400,
    "image_content_policy_violation": 400,
    "invalid_image_mode": 400,
    "image_file_too_large": 400,
    "unsupported_image_media_type": 400,
    "empty_image_file": 400,
    "failed_to_download_image": 400,
    "image_file_not_found": 400,
}
"""In-band ``error.code`` → the HTTP status it stands for; an unknown or missing code reads as 500."""
_DEFAULT_STATUS = 500
_RATE_LIMITED_STATUS = 429


def parse_error(status_code: int, body: bytes, headers: Mapping[str, str], *, provider: str) -> UpstreamStatusError:
    """Turn an upstream error answer into the matching :class:`UpstreamStatusError` (OpenAI's shape)."""
    return _parse_openai_error(status_code, body, headers, provider=provider)


def render_error(error: GatewayError) -> tuple[int, JSONObject]:
    """The client-facing status and body for an error, in OpenAI's shape."""
    return _render_openai_error(error)


def in_band_error(error: JSONObject, *, provider: str) -> UpstreamStatusError:
    """An ``error`` stream event or a failed response's ``error`` → the gateway error its code stands for."""
    code = error.get("code")
    status = _ERROR_STATUSES.get(code, _DEFAULT_STATUS) if isinstance(code, str) else _DEFAULT_STATUS
    return parse_error(status, orjson.dumps({"error": error}), {}, provider=provider)


def failure_error(error: GatewayError) -> JSONObject:
    """A failed response's ``error`` for a gateway error: OpenAI's code for its kind, the gateway's message."""
    code = "rate_limit_exceeded" if error.status_code == _RATE_LIMITED_STATUS else "server_error"
    return {"code": code, "message": error.message}
