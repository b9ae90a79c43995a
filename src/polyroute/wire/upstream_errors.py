"""What every format's ``parse_error`` shares: the message cap and the reading of ``Retry-After``."""

from __future__ import annotations

import math
from collections.abc import Mapping

MAX_ERROR_MESSAGE_CHARS = 1000
"""Upstream error messages are cut to this length before they are stored or shown."""


def error_message(provider: str, status_code: int, text: str) -> str:
    """The gateway's message for an upstream error answer, capped at ``MAX_ERROR_MESSAGE_CHARS``."""
    return f"{provider} returned {status_code}: {text}"[:MAX_ERROR_MESSAGE_CHARS]


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or not a usable delay."""
    raw = headers.get("retry-after") or headers.get("Retry-After")
    try:
        seconds = float(raw) if raw else None
    except ValueError:
        return None
    # An HTTP-date, "inf" or "nan" is not a usable delay.
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else None
