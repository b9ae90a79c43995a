"""In-process health: one worker's cooldowns, broken credentials and breakers in plain dicts.

The default for a single worker, and the local mirror inside ``RedisHealth``. Times are wall-clock
epoch seconds (``clock``), the same as the Redis variant shares between hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from polyroute.health.base import EntryKind, FailureKind, HealthEntry, LastError
from polyroute.health.bus import InProcessChangeBus
from polyroute.health.entries import Entry, EntryKey
from polyroute.health.profile import ResilienceProfile
from polyroute.health.store import HealthStore, clear_keys, reset_keys
from polyroute.health.transitions import R, Step, claim, failure_key, failure_step, succeeded

MAX_MESSAGE_CHARS: Final = 300
"""Error messages are kept this short (they are shown in the API and stored in Redis)."""


class InProcessHealth:
    """Health state of one worker (see ``base.Health``)."""

    def __init__(self, profile: ResilienceProfile | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.profile = profile or ResilienceProfile()
        self.clock = clock
        self.store = HealthStore()
        self.bus = InProcessChangeBus()

    def wait_s(self, deployment: str, credential: str) -> float:
        return self.store.wait_s(deployment, credential, self.clock)

    async def claim_probe(self, deployment: str) -> bool:
        return self.apply(EntryKey(EntryKind.BREAKER, deployment, ""), claim(self.profile, self.clock()))

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
        key, step = self.failure_step(
            deployment, credential, kind, retry_after_s=retry_after_s, status=status, message=message
        )
        return self.apply(key, step)

    def success(self, deployment: str, credential: str) -> None:
        for key, _, step in self.success_steps(deployment, credential):
            self.apply(key, step)

    def entries(self) -> list[HealthEntry]:
        return self.store.entries(self.clock())

    async def reset(self, deployment: str | None = None) -> int:
        return self.drop(reset_keys(self.store.keys(self.clock()), deployment))

    async def clear(self, deployment: str, credential: str | None = None) -> int:
        return self.drop(clear_keys(self.store.keys(self.clock()), deployment, credential))

    async def set_profile(self, profile: ResilienceProfile) -> None:
        self.profile = profile

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def failure_step(
        self,
        deployment: str,
        credential: str,
        kind: FailureKind,
        *,
        retry_after_s: float | None,
        status: int | None,
        message: str,
    ) -> tuple[EntryKey, Step[float]]:
        """The key and step of a failure; a breaker failure is counted in this instance's rate window now."""
        now = self.clock()
        window = (0, 0)
        if kind is FailureKind.FAILURE:
            window = self.store.windows.record(deployment, now, window_s=self.profile.window_s, failed=True)
        error = LastError(status=status, message=message[:MAX_MESSAGE_CHARS], at=now)
        step = failure_step(kind, self.profile, retry_after_s=retry_after_s, error=error, window=window)
        return failure_key(kind, deployment, credential), step

    def success_steps(self, deployment: str, credential: str) -> list[tuple[EntryKey, Entry, Step[None]]]:
        """Count the success in the rate window; returns the entries it changes (key, current entry, step)."""
        now = self.clock()
        store = self.store
        store.windows.record(deployment, now, window_s=self.profile.window_s, failed=False)
        if not store.has_label(deployment):
            return []
        step = succeeded(now)
        changes = []
        for key in (EntryKey(EntryKind.COOLDOWN, deployment, credential), EntryKey(EntryKind.BREAKER, deployment, "")):
            current = store.get(key, now)
            if current is not None and step(current)[0] != current:
                changes.append((key, current, step))
        return changes

    def apply(self, key: EntryKey, step: Step[R]) -> R:
        """Run a step on the local entry and store the outcome."""
        current = self.store.get(key, self.clock())
        entry, result = step(current)
        if entry is not current:
            self.store.put(key, entry)
        return result

    def drop(self, keys: list[EntryKey]) -> int:
        """Delete entries; returns how many there were."""
        for key in keys:
            self.store.put(key, None)
        return len(keys)
