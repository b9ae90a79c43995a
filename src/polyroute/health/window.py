"""Per-instance request and failure counts of each deployment over the breaker's rate window.

Counted in 1 s buckets, so the window is exact to a second. The counts are local to one worker: the
shared state records only the breaker itself, not every request (which would cost a network write each).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

_BUCKET_S: Final = 1.0


class _Counts:
    __slots__ = ("buckets", "failures", "requests")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        """[bucket number, requests, failures], oldest first."""
        self.requests = 0
        self.failures = 0


class RateWindows:
    """Requests and failures per deployment in the last ``window_s``."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, _Counts] = {}

    def record(self, deployment: str, now: float, *, window_s: float, failed: bool) -> tuple[int, int]:
        """Count one request (a failure when ``failed``); returns (requests, failures) in the window, it included."""
        counts = self._counts.get(deployment)
        if counts is None:
            counts = self._counts[deployment] = _Counts()
        number = math.floor(now / _BUCKET_S)
        _evict(counts, number - math.ceil(window_s / _BUCKET_S))
        buckets = counts.buckets
        if buckets and buckets[-1][0] >= number:
            bucket = buckets[-1]
        else:
            bucket = [number, 0, 0]
            buckets.append(bucket)
        bucket[1] += 1
        counts.requests += 1
        if failed:
            bucket[2] += 1
            counts.failures += 1
        return counts.requests, counts.failures

    def forget(self, deployment: str) -> None:
        """Drop a deployment's counts (its breaker closed: counts start again)."""
        self._counts.pop(deployment, None)

    def clear(self) -> None:
        self._counts.clear()


def _evict(counts: _Counts, oldest_gone: int) -> None:
    buckets = counts.buckets
    while buckets and buckets[0][0] <= oldest_gone:
        _, requests, failures = buckets.popleft()
        counts.requests -= requests
        counts.failures -= failures
