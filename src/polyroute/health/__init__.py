"""Deployment health: cooldowns after 429s, broken credentials after 401/403, and circuit breakers.

``InProcessHealth`` serves one worker; ``RedisHealth`` shares the state between every worker and
instance. Routing reads ``wait_s`` (no I/O) before an attempt and reports ``failure``/``success`` after.
"""

from __future__ import annotations

from polyroute.health.base import (
    PROBE,
    ChangeBus,
    EntryKind,
    EntryState,
    FailureKind,
    Health,
    HealthEntry,
    LastError,
)
from polyroute.health.bus import InProcessChangeBus, SharedChangeBus
from polyroute.health.memory import InProcessHealth
from polyroute.health.profile import ResilienceProfile
from polyroute.health.redis import RedisHealth

__all__ = [
    "PROBE",
    "ChangeBus",
    "EntryKind",
    "EntryState",
    "FailureKind",
    "Health",
    "HealthEntry",
    "InProcessChangeBus",
    "InProcessHealth",
    "LastError",
    "RedisHealth",
    "ResilienceProfile",
    "SharedChangeBus",
]
