"""What one inference request did, gathered as it runs and written to the request log at its end."""

from __future__ import annotations

import time

from starlette.types import Scope

from polyroute.api.pricing import Prices
from polyroute.core.messages import Usage
from polyroute.routing.table import Deployment
from polyroute.storage.base import RequestLog, RequestRecord

_NO_USAGE = Usage()


class Outcome:
    """The facts of one request for its request-log row (never any body content)."""

    __slots__ = (
        "attempts",
        "client_format",
        "cost_usd",
        "created_at",
        "deployment",
        "dropped",
        "error_code",
        "estimated",
        "fallback",
        "is_stream",
        "model",
        "started",
        "status",
        "ttft_ms",
        "upstream_model",
        "usage",
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
        self.usage: Usage | None = None
        self.cost_usd: float | None = None
        self.estimated = False
        """Whether ``usage`` was estimated because the upstream reported none."""
        self.error_code: str | None = None
        self.dropped: list[str] | None = None
        self.attempts: int | None = None
        self.fallback = False

    def mark_first_byte(self) -> None:
        """Note the time to the first streamed byte (only the first call counts)."""
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000.0

    def set_usage(self, usage: Usage | None) -> None:
        """Keep the upstream's token counts (None stays None: nothing is invented)."""
        if usage is not None:
            self.usage = usage

    def price(self, prices: Prices) -> None:
        """Work out the cost (once), from the usage and the model that answered."""
        if self.cost_usd is None and self.deployment is not None:
            self.cost_usd = prices.cost(self.deployment, self.upstream_model, self.usage)

    def usage_headers(self, prices: Prices) -> list[tuple[bytes, bytes]]:
        """``X-Polyroute-Cost-USD`` and ``-Tokens-In``/``-Out`` for a complete answer (each only when known)."""
        self.price(prices)
        usage = self.usage or _NO_USAGE
        headers = []
        if self.cost_usd is not None:
            headers.append((b"x-polyroute-cost-usd", f"{self.cost_usd:.9f}".rstrip("0").rstrip(".").encode()))
        if usage.input_tokens is not None:
            headers.append((b"x-polyroute-tokens-in", str(usage.input_tokens).encode()))
        if usage.output_tokens is not None:
            headers.append((b"x-polyroute-tokens-out", str(usage.output_tokens).encode()))
        return headers

    def fail(self, status: int, code: str | None) -> None:
        """Record the error the client was sent."""
        self.status, self.error_code = status, code

    def record(self, log: RequestLog, scope: Scope) -> None:
        """Queue this request's row."""
        deployment = self.deployment
        usage = self.usage or _NO_USAGE
        state = scope["state"]
        log.record(
            RequestRecord(
                id=state.get("request_id") or "",
                created_at=self.created_at,
                key_id=state.get("key_id"),
                endpoint=scope["path"],
                requested_model=self.model,
                provider=deployment.provider if deployment else None,
                upstream_model=self.upstream_model,
                status=self.status,
                latency_ms=(time.perf_counter() - self.started) * 1000.0,
                ttft_ms=self.ttft_ms,
                prompt_tokens=usage.input_tokens,
                completion_tokens=usage.output_tokens,
                is_stream=self.is_stream,
                error_code=self.error_code,
                client_format=self.client_format,
                upstream_format=deployment.target.wire_format.value if deployment else None,
                dropped_fields=",".join(self.dropped) if self.dropped else None,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost_usd=self.cost_usd,
                estimated=self.estimated,
                attempts=self.attempts,
                fallback=self.fallback,
            )
        )
