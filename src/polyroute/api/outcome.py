"""What one inference request did, gathered as it runs and written to the request log at its end."""

from __future__ import annotations

import time

from starlette.types import Scope

from polyroute.core.messages import Usage
from polyroute.routing.table import Deployment
from polyroute.storage.base import RequestLog, RequestRecord


class Outcome:
    """The facts of one request for its request-log row (never any body content)."""

    __slots__ = (
        "client_format",
        "created_at",
        "deployment",
        "dropped",
        "error_code",
        "is_stream",
        "model",
        "started",
        "status",
        "ttft_ms",
        "upstream_model",
        "usage_in",
        "usage_out",
    )

    def __init__(self, client_format: str) -> None:
        self.started = time.perf_counter()
        self.created_at = time.time()
        self.client_format = client_format
        self.status = 200
        self.is_stream = False
        self.model: str | None = None
        self.deployment: Deployment | None = None
        self.upstream_model: str | None = None
        self.ttft_ms: float | None = None
        self.usage_in: int | None = None
        self.usage_out: int | None = None
        self.error_code: str | None = None
        self.dropped: list[str] | None = None

    def mark_first_byte(self) -> None:
        """Note the time to the first streamed byte (only the first call counts)."""
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000.0

    def set_usage(self, usage: Usage | None) -> None:
        """Keep the upstream's token counts (None stays None: nothing is invented)."""
        if usage is not None:
            self.usage_in, self.usage_out = usage.input_tokens, usage.output_tokens

    def fail(self, status: int, code: str | None) -> None:
        """Record the error the client was sent."""
        self.status, self.error_code = status, code

    def record(self, log: RequestLog, scope: Scope) -> None:
        """Queue this request's row."""
        deployment = self.deployment
        log.record(
            RequestRecord(
                id=scope["state"].get("request_id") or "",
                created_at=self.created_at,
                key_id=None,
                endpoint=scope["path"],
                requested_model=self.model,
                provider=deployment.provider if deployment else None,
                upstream_model=self.upstream_model,
                status=self.status,
                latency_ms=(time.perf_counter() - self.started) * 1000.0,
                ttft_ms=self.ttft_ms,
                prompt_tokens=self.usage_in,
                completion_tokens=self.usage_out,
                is_stream=self.is_stream,
                error_code=self.error_code,
                client_format=self.client_format,
                upstream_format=deployment.target.wire_format.value if deployment else None,
                dropped_fields=",".join(self.dropped) if self.dropped else None,
            )
        )
