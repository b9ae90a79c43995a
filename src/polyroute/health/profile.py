"""The resilience profile: every threshold of cooldowns, broken credentials and circuit breakers.

It is what ``GET /api/resilience`` shows and ``PUT /api/resilience`` accepts (``to_json``/``from_json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from polyroute.types import JSONObject


@dataclass(frozen=True, slots=True, kw_only=True)
class ResilienceProfile:
    """How long deployments rest after failures, and when a circuit breaker opens.

    Raises:
        ValueError: a field has the wrong type or is out of range (the message names the field).
    """

    cooldown_base_s: float = 1.0
    """The first cooldown after a 429 without ``Retry-After``; it doubles with each further 429."""
    cooldown_max_s: float = 60.0
    """The longest cooldown without ``Retry-After``; strikes are forgotten this long after a cooldown ends."""
    broken_credential_s: float = 600.0
    """How long a credential is blocked after an upstream 401/403 (0 disables it)."""
    failure_threshold: int = 5
    """Consecutive failures that open a deployment's breaker."""
    failure_rate: float = 0.5
    """The failure fraction over ``window_s`` that opens the breaker (with ``min_requests``).

    The rate window is counted per instance (each worker counts the requests it sent); only the breaker
    it opens is shared.
    """
    min_requests: int = 20
    """Requests needed in the window before ``failure_rate`` is applied."""
    window_s: float = 60.0
    """The length of the failure-rate window (counted in whole seconds)."""
    open_s: float = 30.0
    """How long a breaker stays open the first time; it doubles on each re-open after a failed probe."""
    max_open_s: float = 300.0
    """The longest a breaker stays open."""
    probe_timeout_s: float = 30.0
    """How long a claimed half-open probe blocks other callers (a crashed prober cannot wedge the breaker)."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "int":
                _check_int(field.name, value)
            else:
                _check_seconds(field.name, value)
                object.__setattr__(self, field.name, float(value))
        _check_ranges(self)

    def to_json(self) -> JSONObject:
        """Every field by name."""
        return dict(asdict(self))

    @classmethod
    def from_json(cls, data: object, *, base: ResilienceProfile | None = None) -> ResilienceProfile:
        """Parse a JSON object; fields it omits keep their value in ``base`` (the defaults if None).

        Raises:
            ValueError: not an object, an unknown field, or a field of the wrong type or range.
        """
        if not isinstance(data, Mapping):
            raise ValueError("the resilience profile must be a JSON object")
        known = {field.name for field in fields(cls)}
        for name in data:
            if name not in known:
                raise ValueError(f"{name}: unknown field")
        return replace(base or cls(), **dict(data))


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name}: must be an integer, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: must be at least 1")


def _check_seconds(name: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name}: must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: must be a finite number of at least 0")


def _check_ranges(profile: ResilienceProfile) -> None:
    for name in ("cooldown_base_s", "cooldown_max_s", "window_s", "open_s", "max_open_s", "probe_timeout_s"):
        if getattr(profile, name) <= 0:
            raise ValueError(f"{name}: must be greater than 0")
    if not 0 < profile.failure_rate <= 1:
        raise ValueError("failure_rate: must be greater than 0 and at most 1")
    if profile.cooldown_max_s < profile.cooldown_base_s:
        raise ValueError("cooldown_max_s: must be at least cooldown_base_s")
    if profile.max_open_s < profile.open_s:
        raise ValueError("max_open_s: must be at least open_s")
