"""Process logging: one format for the gateway and uvicorn, with every configured secret redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

_REDACTED = "[redacted]"


class RedactionFilter(logging.Filter):
    """Replaces known secrets (keys from settings and config) in every record before it is written."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        cleaned = message
        for secret in self._secrets:
            cleaned = cleaned.replace(secret, _REDACTED)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self._clean_exc(record)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True

    def _clean_exc(self, record: logging.LogRecord) -> str:
        text = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return text


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Send gateway and uvicorn logs to stderr in one format, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactionFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
