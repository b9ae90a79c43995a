"""The health contract: what routing asks before an attempt and reports after it, and the change bus.

Two implementations: ``memory.InProcessHealth`` (one worker) and ``redis.RedisHealth`` (every worker
and instance sharing one Redis). Both run the same state machine (``transitions``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from polyroute.health.profile import ResilienceProfile
from polyroute.types import JSONObject

PROBE: Final = -1.0
"""What ``wait_s`` returns when the breaker is half-open: the caller may try to ``claim_probe``."""


class FailureKind(StrEnum):
    """What a failed attempt tells about the deployment."""

    RATE_LIMITED = "rate_limited"
    """Upstream 429: the deployment+credential cools down; not counted by the breaker."""
    AUTH = "auth"
    """Upstream 401/403: the provider's credential is blocked; not counted by the breaker."""
    FAILURE = "failure"
    """5xx, timeout, connection error, empty or unreadable answer: counted by the breaker."""


class EntryKind(StrEnum):
    """The three kinds of health state."""

    COOLDOWN = "cooldown"
    BROKEN = "broken"
    BREAKER = "breaker"


class EntryState(StrEnum):
    """What an entry currently means for routing."""

    COOLING = "cooling"
    BROKEN = "broken"
    OPEN = "open"
    HALF_OPEN = "half_open"
    CLOSED = "closed"
    """A closed breaker that has counted consecutive failures (fewer than the threshold)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LastError:
    """The latest failure recorded on an entry."""

    status: int | None
    """The upstream HTTP status, when there was one."""
    message: str
    """A short, already-redacted description."""
    at: float
    """When it happened (epoch seconds)."""

    def to_json(self) -> JSONObject:
        return {"status": self.status, "message": self.message, "at": self.at}


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthEntry:
    """One deployment, credential or breaker with state, as the API shows it."""

    kind: EntryKind
    deployment: str | None
    """The ``provider/model`` label; None for a broken credential (it blocks the whole provider)."""
    provider: str
    credential: str | None
    """The credential fingerprint (``-`` when keyless); None for a breaker."""
    state: EntryState
    until: float | None
    """When the state ends (epoch seconds): cooldown, block, open breaker or claimed probe; else None."""
    consecutive_failures: int
    """Consecutive 429s for a cooldown, consecutive failures for a breaker, 0 for a broken credential."""
    last_error: LastError | None

    def to_json(self) -> JSONObject:
        return {
            "kind": self.kind.value,
            "deployment": self.deployment,
            "provider": self.provider,
            "credential": self.credential,
            "state": self.state.value,
            "until": self.until,
            "consecutive_failures": self.consecutive_failures,
            "last_error": None if self.last_error is None else self.last_error.to_json(),
        }


class Health(Protocol):
    """Cooldowns, broken credentials and circuit breakers of deployments, read without I/O on the hot path."""

    profile: ResilienceProfile

    @property
    def bus(self) -> ChangeBus:
        """Tells every worker sharing this state that a named setting changed."""
        ...

    def wait_s(self, deployment: str, credential: str) -> float:
        """0.0: may be tried now; ``PROBE``: half-open, ``claim_probe`` first; > 0: seconds until it may be tried.

        The largest of: the deployment+credential's cooldown, the block of the credential on the
        deployment's provider (the label before its first ``/``), and the deployment's open breaker.
        A local memory read; one dict lookup when nothing is known about the deployment.
        """
        ...

    async def claim_probe(self, deployment: str) -> bool:
        """Claim the half-open probe; True for exactly one caller (until the claim expires), or when closed."""
        ...

    async def failure(
        self,
        deployment: str,
        credential: str,
        kind: FailureKind,
        *,
        retry_after_s: float | None = None,
        status: int | None = None,
        message: str = "",
    ) -> float:
        """Record a failed attempt; returns the wait it started for this deployment+credential (0 if none)."""
        ...

    def success(self, deployment: str, credential: str) -> None:
        """Record a successful attempt: resets 429 strikes and closes a half-open breaker. Cheap when clean."""
        ...

    def entries(self) -> list[HealthEntry]:
        """Every cooldown, broken credential and breaker with state."""
        ...

    async def reset(self, deployment: str | None = None) -> int:
        """Clear the breaker and cooldowns of one deployment, or every entry (None); returns entries cleared."""
        ...

    async def clear(self, deployment: str, credential: str | None = None) -> int:
        """Clear a deployment's cooldowns and its provider's broken marks (of one credential, or all)."""
        ...

    async def set_profile(self, profile: ResilienceProfile) -> None:
        """Replace the profile for every worker that shares this state."""
        ...

    async def start(self) -> None:
        """Load shared state and start listening for changes."""
        ...

    async def aclose(self) -> None:
        """Stop background work and release connections."""
        ...


class ChangeBus(Protocol):
    """Tells every worker that a named setting changed, so each reloads it."""

    def subscribe(self, callback: Callable[[str], Awaitable[None] | None]) -> None:
        """Call ``callback(topic)`` for every published topic (including this worker's own)."""
        ...

    async def publish(self, topic: str) -> None:
        """Announce that ``topic`` changed."""
        ...
