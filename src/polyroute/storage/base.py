"""Storage values and Protocols: what the gateway records, and the interfaces that record it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, Protocol, TypedDict, Unpack

from polyroute.core.keys import ApiKey, KeyStatus, KeyType
from polyroute.types import JSONObject, JSONValue


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
    client_format: str | None = None
    """The wire format the client spoke (a ``WireFormat`` value); None when not known."""
    upstream_format: str | None = None
    """The wire format sent to the upstream; None when no upstream was called."""
    dropped_fields: str | None = None
    """Comma-separated request fields the upstream format could not carry (``top_k,logit_bias``); None if none."""
    cache_read_tokens: int | None = None
    """Prompt tokens served from the provider's prompt cache; None when not reported."""
    cache_write_tokens: int | None = None
    """Prompt tokens written to the provider's prompt cache; None when not reported."""
    reasoning_tokens: int | None = None
    """Completion tokens spent on reasoning; None when not reported."""
    cost_usd: float | None = None
    """Tokens x price; None when the price (or the usage) is unknown, never 0 for unknown."""
    estimated: bool = False
    """Whether the token counts were estimated because the upstream reported none."""
    attempts: int | None = None
    """How many upstream attempts the request made (None when it made none)."""
    fallback: bool = False
    """Whether the answer came from another deployment than the first one planned."""


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


class LogPage(NamedTuple):
    """One page of request-log rows (``RequestRecord`` fields as a dict), newest first, and how many match in all."""

    rows: list[JSONObject]
    total: int


class LogFilters(TypedDict, total=False):
    """Filters of ``UsageQueries.logs``; a row must match every one given (None filters nothing)."""

    key_id: str | None
    model: str | None
    """The model name the client asked for (``requested_model``)."""
    provider: str | None
    status: int | None
    """The HTTP status sent to the client."""
    since: float | None
    """Only rows with ``created_at >= since`` (Unix seconds)."""


LATENCY_MAX_ROWS: Final = 200_000
"""How many request-log rows ``UsageQueries.latency_summary`` reads at most (the most recent in the window)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Percentiles:
    """Nearest-rank percentiles of a set of durations in milliseconds (each is one of the values)."""

    p50: float
    p95: float
    p99: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyGroup:
    """Request counts and latency percentiles of one provider, or one provider and model."""

    provider: str
    model: str | None
    """The upstream model (else the requested one); None when grouping by provider, or when neither is known."""
    requests: int
    errors: int
    """Requests answered with a status >= 400."""
    latency_ms: Percentiles
    """Of ``latency_ms``: arrival to the last byte sent."""
    ttft_ms: Percentiles | None
    """Of ``ttft_ms`` over streamed requests that recorded one; None when there are none."""


class LatencySummary(NamedTuple):
    """The groups of ``UsageQueries.latency_summary``, and whether rows in the window were left unread."""

    groups: list[LatencyGroup]
    capped: bool
    """True when the window held more rows than the cap: only the most recent ones were counted."""


class UsageQueries(Protocol):
    """Reads over the request log for usage reports, budgets and latency summaries, and its retention purge."""

    async def history(
        self,
        *,
        bucket: Literal["hour", "day"],
        group_by: Literal["key", "model", "provider"] | None,
        since: float,
        until: float,
        key_id: str | None = None,
    ) -> list[JSONObject]:
        """Totals per UTC time bucket (and per group) of the requests in ``since <= created_at < until``."""
        ...

    async def logs(self, *, limit: int, offset: int = 0, **filters: Unpack[LogFilters]) -> LogPage:
        """Request-log rows matching every given filter, newest first."""
        ...

    async def spend(self, key_id: str, *, since: float) -> float:
        """The summed ``cost_usd`` of ``key_id``'s requests since ``since`` (Unix seconds); unknown costs add 0."""
        ...

    async def purge_request_logs_older_than(self, cutoff: float) -> int:
        """Delete every request record created before ``cutoff`` (Unix seconds); return how many were deleted."""
        ...

    async def latency_summary(
        self,
        *,
        since: float,
        until: float,
        group_by: Literal["provider", "model"],
        provider: str | None = None,
        max_rows: int = LATENCY_MAX_ROWS,
    ) -> LatencySummary:
        """Requests, errors and latency/TTFT percentiles per provider (or provider and model) in ``[since, until)``."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredResponse:
    """One stored turn of the Responses API, kept for ``previous_response_id`` and ``GET /v1/responses/{id}``."""

    id: str
    """The response id sent to the client (``resp_...``), minted by the gateway."""
    created_at: float
    """Unix time in seconds (``time.time()``) when the response was created."""
    key_id: str | None
    """Id of the API key that owns the response; None when unauthenticated. Only the owner may read it."""
    model: str
    """The model name the client asked for."""
    input_items: bytes
    """UTF-8 JSON array: the turn's full resolved input (earlier history, then the new input) as input items."""
    response: bytes
    """UTF-8 JSON object: the response exactly as sent to the client."""


class ResponseStore(Protocol):
    """Stored Responses API turns, each readable only by the key that created it."""

    async def save(self, item: StoredResponse) -> None:
        """Store ``item``, replacing any stored response with the same id."""
        ...

    async def get(self, response_id: str, *, key_id: str | None) -> StoredResponse | None:
        """Return the response ``response_id`` if ``key_id`` owns it (None owns only unowned ones), else None."""
        ...

    async def delete(self, response_id: str, *, key_id: str | None) -> bool:
        """Delete the response ``response_id`` if ``key_id`` owns it; return whether one was deleted."""
        ...

    async def purge_older_than(self, cutoff: float) -> int:
        """Delete every response created before ``cutoff`` (Unix seconds); return how many were deleted."""
        ...


class KeyPage(NamedTuple):
    """One page of keys, newest first, and how many match in all."""

    keys: list[ApiKey]
    total: int


class KeyStore(Protocol):
    """API keys by id and by the digest of their secret."""

    async def create(self, key: ApiKey) -> None:
        """Store a new key. Raises ``ValueError`` if its id or digest exists already."""
        ...

    async def by_digest(self, digest: str) -> ApiKey | None:
        """The key whose secret has this SHA-256 digest (hex), revoked ones included."""
        ...

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked ones included."""
        ...

    async def list(
        self, *, key_type: KeyType | None = None, status: KeyStatus | None = None, limit: int = 50, offset: int = 0
    ) -> KeyPage:
        """Keys matching the filters, newest first."""
        ...

    async def update(self, key: ApiKey) -> None:
        """Replace the stored settings of ``key.id`` (the digest never changes). Raises ``KeyError`` if absent."""
        ...

    async def count(self) -> int:
        """How many keys exist (revoked ones included)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One management action, with secrets already redacted from ``before`` and ``after``."""

    at: float
    actor: str | None
    """The key id (or ``session:<user>``) that acted; None for the command line on the data dir."""
    action: str
    """E.g. ``key.create``, ``key.revoke``, ``settings.ip_filter``."""
    target: str | None
    ip: str | None
    before: JSONObject | None = None
    after: JSONObject | None = None


class AuditLog(Protocol):
    """The append-only record of management actions."""

    async def record(self, entry: AuditEntry) -> None:
        """Append ``entry``."""
        ...

    async def recent(self, *, limit: int) -> list[AuditEntry]:
        """The latest ``limit`` entries, newest first."""
        ...


class SettingsStore(Protocol):
    """Gateway-wide settings changed at run time (IP filter, login requirement, password hash, sessions, prices)."""

    async def get(self, name: str) -> JSONValue | None:
        """The stored value, or None."""
        ...

    async def put(self, name: str, value: JSONValue) -> None:
        """Store ``value`` under ``name``."""
        ...

    async def delete(self, name: str) -> bool:
        """Remove ``name``; return whether it was stored."""
        ...

    async def purge(self, prefix: str, *, updated_before: float | None = None) -> int:
        """Remove every name starting with ``prefix`` (only those last written before ``updated_before``, if given).

        Returns how many were removed.
        """
        ...
