"""What a failed attempt leads to, as one table; and the cooldowns that 429s start.

The status → action table (docs/routing.md publishes the same rows):

| the attempt ended with | action |
|---|---|
| upstream 5xx or 529, connection error, timeout, unreadable answer | next deployment |
| upstream 429 | the deployment cools down (``Retry-After``, else exponential from 1 s to 60 s); next deployment |
| upstream 401/403 (the gateway's credential) | next deployment |
| upstream 400/404/422, or any error of the request itself | returned to the client at once |

A request tries at most ``MAX_ATTEMPTS`` deployments, never one twice, and never re-sends once the
upstream has begun answering (a stream past its first byte fails in-band instead).
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Final

from polyroute.errors import (
    GatewayError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamServerError,
    UpstreamTimeoutError,
)

MAX_ATTEMPTS: Final = 5
MAX_COOLDOWN_S: Final = 60.0


class Action(StrEnum):
    """What the gateway does after a failed attempt."""

    NEXT = "next"
    COOL_DOWN = "cool_down"
    RETURN = "return"


ACTIONS: Final[tuple[tuple[type[GatewayError], Action], ...]] = (
    (UpstreamRateLimitError, Action.COOL_DOWN),
    (UpstreamAuthError, Action.NEXT),
    (UpstreamBadRequestError, Action.RETURN),
    (UpstreamServerError, Action.NEXT),
    (UpstreamTimeoutError, Action.NEXT),
    (UpstreamConnectionError, Action.NEXT),
    (UpstreamProtocolError, Action.NEXT),
    (GatewayError, Action.RETURN),
)
"""The single source of truth: the first row whose class the error is an instance of decides."""


def action_for(error: GatewayError) -> Action:
    """The table's action for ``error``."""
    for kind, action in ACTIONS:
        if isinstance(error, kind):
            return action
    return Action.RETURN  # pragma: no cover  (GatewayError is the last row)


class Cooldowns:
    """Deployments resting after a 429, by ``provider/model`` (in-process)."""

    __slots__ = ("_strikes", "_until")

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}

    def cool(self, label: str, retry_after_s: float | None) -> float:
        """Start (or extend) a cooldown; returns its length in seconds."""
        strikes = self._strikes.get(label, 0) + 1
        self._strikes[label] = strikes
        length = retry_after_s if retry_after_s is not None else min(MAX_COOLDOWN_S, 2.0 ** (strikes - 1))
        self._until[label] = time.monotonic() + length
        return length

    def remaining_s(self, label: str) -> float:
        """Seconds left in the deployment's cooldown (0 when it may be tried)."""
        until = self._until.get(label)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._until[label]
            return 0.0
        return left

    def succeeded(self, label: str) -> None:
        """Forget past 429s after a success (the next cooldown starts short again)."""
        if self._strikes:
            self._strikes.pop(label, None)
