"""Who may call what: keys looked up by digest (cached), and the per-request gate of limits and budgets.

``KeyRing`` answers "which key is this secret" from the key store, caching each answer for
``ttl_s`` (1 s), so a key revoked through any worker or instance is refused everywhere within about
a second, while a flood of requests costs one store lookup per key per second. Unknown secrets are
remembered for ``negative_ttl_s`` so a flood of invalid keys never reaches the database.

``Gate`` runs after the model is resolved: the key's model patterns, then one limiter decision
(requests, tokens, concurrency, budget); after the answer, it gives back the concurrency lease and
charges the tokens and the cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import Scope

from polyroute.core.keys import ApiKey, digest
from polyroute.core.messages import Usage
from polyroute.errors import LimiterUnavailableError, PermissionDeniedError, RateLimitedError
from polyroute.limits.base import Admission, Limiter, Refusal
from polyroute.routing.table import Deployment
from polyroute.storage.base import KeyStore

logger = logging.getLogger(__name__)

_REFUSAL_MESSAGES = {
    Refusal.REQUESTS: "request rate limit reached for this key",
    Refusal.TOKENS: "token rate limit reached for this key",
    Refusal.CONCURRENCY: "too many concurrent requests for this key",
    Refusal.BUDGET: "budget exhausted for this key",
}


class KeyRing:
    """Keys by secret, with a short-lived cache of both answers."""

    def __init__(
        self, store: KeyStore, *, ttl_s: float = 1.0, negative_ttl_s: float = 5.0, max_entries: int = 100_000
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[ApiKey | None]] = {}
        """Lookups under way: concurrent requests with the same secret share one store query."""

    async def find(self, secret: bytes) -> ApiKey | None:
        """The stored key for ``secret`` (revoked and expired ones included), or None."""
        key_digest = digest(secret)
        now = time.monotonic()
        cached = self._cache.get(key_digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._pending.get(key_digest)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._pending[key_digest] = asyncio.get_running_loop().create_future()
        try:
            found = await self._store.by_digest(key_digest)
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved here: waiters (if any) get it too
            raise
        except BaseException:
            pending.cancel()
            raise
        finally:
            del self._pending[key_digest]
        pending.set_result(found)
        self._cache[key_digest] = (now + (self._ttl_s if found is not None else self._negative_ttl_s), found)
        self._cache.move_to_end(key_digest)
        if len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return found

    def forget_key(self, key: ApiKey) -> None:
        """Drop the cached answer for ``key`` (this worker changed it; others see the change within ``ttl_s``)."""
        self._cache.pop(key.digest, None)


@dataclass(slots=True)
class Ticket:
    """An admitted request's hold on its key's limits, given back by ``Gate.settle``."""

    key: ApiKey
    admission: Admission | None
    """None when the key has neither limits nor a budget (nothing to give back or charge)."""


def rate_limit_headers(admission: Admission | None) -> list[tuple[bytes, bytes]]:
    """``X-RateLimit-*`` for the tightest request window, and the budget warning, where they apply."""
    if admission is None:
        return []
    headers = []
    window = admission.window
    if window is not None:
        headers += [
            (b"x-ratelimit-limit", str(window.limit).encode()),
            (b"x-ratelimit-remaining", str(max(0, window.remaining)).encode()),
            (b"x-ratelimit-reset", str(max(0, round(window.reset_s))).encode()),
        ]
    if admission.budget_warning:
        headers.append((b"x-polyroute-budget-warning", b"true"))
    return headers


class Gate:
    """Model permission, limits and budgets for one request, before and after it."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def admit(self, scope: Scope, deployment: Deployment, requested: str) -> Ticket | None:
        """Let the request through or raise; None when the request carries no key (open access).

        Raises:
            PermissionDeniedError: the key may not use this model (``model_not_allowed``).
            RateLimitedError: a limit or the budget says no (``rate_limit_exceeded``, ``budget_exceeded``).
        """
        state = scope["state"]
        key: ApiKey | None = state.get("key")
        if key is None:
            return None
        if key.models and not key.allows_model(requested, deployment.label, deployment.model):
            raise PermissionDeniedError(
                f"this key may not use the model {requested!r}", code="model_not_allowed", param="model"
            )
        if key.limits.is_unlimited and key.budget.is_unlimited:
            return Ticket(key, None)
        admission = await self.limiter.admit(
            key.id, key.limits, key.budget, now=time.time(), request_id=state.get("request_id") or ""
        )
        if not admission.admitted:
            refusal = admission.refusal or Refusal.REQUESTS
            code = "budget_exceeded" if refusal is Refusal.BUDGET else "rate_limit_exceeded"
            # No Retry-After when waiting cannot help (a total budget spent, a limit of 0).
            error = RateLimitedError(_REFUSAL_MESSAGES[refusal], retry_after_s=admission.retry_after_s, code=code)
            state["response_headers"] = rate_limit_headers(admission)
            raise error
        state["response_headers"] = rate_limit_headers(admission)
        return Ticket(key, admission)

    async def settle(self, ticket: Ticket | None, usage: Usage | None, cost_usd: float | None) -> None:
        """Give back the lease and charge what the request used (each attempted whatever the other did)."""
        if ticket is None or ticket.admission is None:
            return
        tokens = 0
        if usage is not None:
            tokens = (usage.input_tokens or 0) + (usage.output_tokens or 0)
        key_id = ticket.key.id
        if ticket.admission.lease is not None:
            try:
                await self.limiter.release(key_id, ticket.admission.lease)
            except LimiterUnavailableError as exc:
                # The answer has gone out; the lease expires on its own.
                logger.error("key %s: lease not given back: %s", key_id, exc)
        if tokens or cost_usd:
            try:
                await self.limiter.charge(key_id, tokens=tokens, cost_usd=cost_usd, now=time.time())
            except LimiterUnavailableError as exc:
                logger.error("key %s: usage not charged (%s tokens, %s USD): %s", key_id, tokens, cost_usd, exc)
