"""The limiter's contract: admission before a request, charging after it, and the state of every window.

Two implementations satisfy it: ``memory.InProcessLimiter`` (one worker, the embedded default) and
``redis.RedisLimiter`` (any number of workers and instances; each decision is one atomic Lua script).

Semantics, the same in both:
- Request limits (per minute, hour, day) are exact rolling windows: a request is admitted when fewer
  than the limit were admitted in the last 60 s / 3600 s / 86400 s, and admission counts it.
- Token limits (per minute, day) are checked before a request (refused when the tokens charged in
  the rolling window already reach the limit) and charged after it with the real usage. Charges
  are summed in buckets (``TOKEN_BUCKETS_S``: 1 s for the minute, 60 s for the day) and a bucket
  counts until its end plus the window, so a charge counts for at most one bucket longer, never less.
- Concurrency: a lease per admitted request, given back by ``release``; a lease not given back
  (a crashed worker) expires after ``LEASE_TTL_S``.
- Budgets are per UTC calendar day, ISO week (Monday 00:00 UTC), calendar month, and in total:
  refused when the spend already reaches a limit, charged after the request with its cost, so a
  request that crosses the limit finishes and the next one is refused.
- Only what a key limits is kept: admissions are remembered for the longest request window it
  limits (``state`` counts a longer window from those only), tokens in the token windows it limits,
  spend when it has a budget. ``charge`` records what the key's latest admission through the same
  limiter object limited; a key with no limit and no budget costs nothing.
- When several checks refuse, the one that clears last is reported and ``retry_after_s`` is when all
  have cleared; None when waiting cannot help (a total budget, or a limit of 0). Ties go to the
  first in the order budget, requests, tokens, concurrency. A full concurrency limit suggests
  ``CONCURRENCY_RETRY_S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from polyroute.core.keys import Budget, Limits

LEASE_TTL_S: Final = 900.0
"""How long a concurrency lease lives if its request never gives it back."""
CONCURRENCY_RETRY_S: Final = 1.0
"""The retry suggested when the concurrency limit is full (when a lease comes back is unknowable)."""
REQUEST_WINDOWS_S: Final = (("minute", 60.0), ("hour", 3600.0), ("day", 86400.0))
"""The request windows: name (as in ``KeyState.requests``) and length."""
TOKEN_WINDOWS_S: Final = (("minute", 60.0), ("day", 86400.0))
"""The token windows: name (as in ``KeyState.tokens``) and length."""
TOKEN_BUCKETS_S: Final = (1.0, 60.0)
"""The resolution of each token window, in the order of ``TOKEN_WINDOWS_S``."""


class Refusal(StrEnum):
    """Why a request was not admitted."""

    REQUESTS = "requests"
    TOKENS = "tokens"
    CONCURRENCY = "concurrency"
    BUDGET = "budget"


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """The tightest applicable window, for the ``X-RateLimit-*`` headers."""

    limit: int
    remaining: int
    reset_s: float
    """Seconds until the window next frees room (for a rolling window: until its oldest request leaves)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """The verdict on one request."""

    admitted: bool
    refusal: Refusal | None = None
    retry_after_s: float | None = None
    """Seconds until a retry can succeed (when refused)."""
    window: Window | None = None
    """The tightest request window after this decision; None when the key has no request limit."""
    lease: str | None = None
    """The concurrency lease to give back with ``release`` (when the key has a concurrency limit)."""
    budget_warning: bool = False
    """Whether spend has passed the budget's warning fraction in some period."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyState:
    """Every window of one key at one moment (for ``GET /api/rate-limits``)."""

    requests: dict[str, int]
    """Requests counted in each window: ``minute``, ``hour``, ``day``."""
    tokens: dict[str, int]
    """Tokens charged in each window: ``minute``, ``day``."""
    concurrent: int
    spend_usd: dict[str, float]
    """Spend in each budget period: ``day``, ``week``, ``month``, ``total``."""


class Limiter(Protocol):
    """Decides admission and keeps the counts, globally for every worker that shares it."""

    async def admit(self, key_id: str, limits: Limits, budget: Budget, *, now: float, request_id: str) -> Admission:
        """Check every limit of the key and, if all pass, count the request (and take a lease)."""
        ...

    async def release(self, key_id: str, lease: str) -> None:
        """Give back a concurrency lease (idempotent)."""
        ...

    async def charge(self, key_id: str, *, tokens: int, cost_usd: float | None, now: float) -> None:
        """Record a finished request's tokens and cost against the key's token windows and budgets."""
        ...

    async def state(self, key_id: str, *, now: float) -> KeyState:
        """The key's current counts."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
