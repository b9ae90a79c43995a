"""One worker's copy of the health state: entries by key, indexed so that ``wait_s`` is a dict lookup.

``InProcessHealth`` keeps its whole state here; ``RedisHealth`` keeps its mirror of Redis here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

from polyroute.health.base import EntryKind, HealthEntry
from polyroute.health.entries import Breaker, Entry, EntryKey, provider_of
from polyroute.health.transitions import combined_wait_s, live, view
from polyroute.health.window import RateWindows


class HealthStore:
    """Entries by key; ``_labels`` counts each deployment's cooldowns and breaker for the fast path."""

    __slots__ = ("_broken", "_entries", "_labels", "windows")

    def __init__(self) -> None:
        self._entries: dict[tuple[EntryKind, str, str], Entry] = {}
        self._labels: dict[str, int] = {}
        """Deployments with a cooldown or a breaker entry, and how many they have."""
        self._broken = 0
        """How many broken-credential entries there are (usually none: then providers need no lookup)."""
        self.windows = RateWindows()

    def wait_s(self, deployment: str, credential: str, clock: Callable[[], float]) -> float:
        """See ``Health.wait_s``; reads the clock only when the deployment or a provider has state."""
        if deployment not in self._labels and not self._broken:
            return 0.0
        now = clock()
        entries = self._entries
        broken = entries.get((EntryKind.BROKEN, provider_of(deployment), credential)) if self._broken else None
        return combined_wait_s(
            entries.get((EntryKind.COOLDOWN, deployment, credential)),
            broken,
            entries.get((EntryKind.BREAKER, deployment, "")),
            now,
        )

    def has_label(self, deployment: str) -> bool:
        """Whether the deployment has a cooldown or breaker entry (live or not yet dropped)."""
        return deployment in self._labels

    def get(self, key: EntryKey, now: float) -> Entry | None:
        """The live entry at ``key`` (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is not None and live(entry, now) is None:
            self.put(key, None)
            return None
        return entry

    def put(self, key: EntryKey, entry: Entry | None) -> None:
        """Set (or with None delete) the entry at ``key``; a breaker that closes starts its rate window afresh."""
        old = self._entries.pop(key, None)
        if entry is not None:
            self._entries[key] = entry
        if _is_open(old) and not _is_open(entry):
            self.windows.forget(key.subject)
        change = (entry is not None) - (old is not None)
        if not change:
            return
        if key.kind is EntryKind.BROKEN:
            self._broken += change
            return
        count = self._labels.get(key.subject, 0) + change
        if count:
            self._labels[key.subject] = count
        else:
            del self._labels[key.subject]

    def replace_all(self, entries: Iterable[tuple[EntryKey, Entry]]) -> None:
        """Replace every entry (after loading the shared state)."""
        for key in self.keys(float("-inf")):
            self.put(key, None)
        for key, entry in entries:
            self.put(key, entry)

    def keys(self, now: float) -> list[EntryKey]:
        """Every live key (expired entries are dropped)."""
        # Every stored key is an EntryKey (``put`` takes only those); lookups may use plain tuples.
        return [cast(EntryKey, key) for key in list(self._entries) if self.get(cast(EntryKey, key), now) is not None]

    def entries(self, now: float) -> list[HealthEntry]:
        """Every entry with something to show, in key order."""
        shown = []
        for key in sorted(self.keys(now)):
            entry = view(key, self._entries[key], now)
            if entry is not None:
                shown.append(entry)
        return shown


def reset_keys(keys: Iterable[EntryKey], deployment: str | None) -> list[EntryKey]:
    """What ``reset`` clears: every key (None), or the deployment's breaker and cooldowns."""
    if deployment is None:
        return list(keys)
    return [key for key in keys if key.kind is not EntryKind.BROKEN and key.subject == deployment]


def clear_keys(keys: Iterable[EntryKey], deployment: str, credential: str | None) -> list[EntryKey]:
    """What ``clear`` clears: the deployment's cooldowns and its provider's broken marks (of one credential or all)."""
    provider = provider_of(deployment)
    cleared = []
    for key in keys:
        if credential is not None and key.credential != credential:
            continue
        if (key.kind is EntryKind.COOLDOWN and key.subject == deployment) or (
            key.kind is EntryKind.BROKEN and key.subject == provider
        ):
            cleared.append(key)
    return cleared


def _is_open(entry: Entry | None) -> bool:
    return isinstance(entry, Breaker) and entry.open_until is not None
