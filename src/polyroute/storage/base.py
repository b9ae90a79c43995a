"""Storage values and Protocols: what the gateway records, and the interfaces that record it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class RequestRecord(NamedTuple):
    """One row of the request log: a request the gateway answered, without any body content.

    A NamedTuple, not a frozen dataclass: one is built on every request, and a tuple in column
    order is also what the SQL sink hands to the driver (a frozen dataclass cost ~5 us to build).
    """

    id: str
    """The request id (the ``x-request-id`` sent to the client); not unique across clients."""
    created_at: float
    """Unix time in seconds (``time.time()``) when the request arrived."""
    key_id: str | None
    """Id of the API key that made the request; None when unauthenticated."""
    endpoint: str
    """The route path, e.g. ``/v1/chat/completions``."""
    requested_model: str | None
    """The model name the client asked for."""
    provider: str | None
    """The provider that served the final attempt."""
    upstream_model: str | None
    """The model the upstream said answered."""
    status: int
    """HTTP status sent to the client."""
    latency_ms: float
    """Time from arrival to the last byte sent."""
    ttft_ms: float | None
    """Time to the first streamed byte; None for non-streaming requests."""
    prompt_tokens: int | None
    """As reported by the upstream; None when not reported."""
    completion_tokens: int | None
    """As reported by the upstream; None when not reported."""
    is_stream: bool
    """Whether the client asked for a streamed response."""
    error_code: str | None
    """The ``code`` of the error sent to the client; None on success."""


class RequestLog(Protocol):
    """Accepts request records on the hot path."""

    def record(self, entry: RequestRecord) -> None:
        """Queue ``entry`` for storage; must not block or do I/O."""
        ...


class RequestLogSink(Protocol):
    """Durable storage that request records are written to in batches."""

    async def write_batch(self, entries: Sequence[RequestRecord]) -> None:
        """Store all of ``entries`` atomically, or raise (the caller may then retry the same batch)."""
        ...
