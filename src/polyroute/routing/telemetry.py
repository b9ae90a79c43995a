"""Live per-deployment signals for routing decisions: in-flight requests, TTFT (EWMA and p95), success rate.

One ``Telemetry`` per worker process, fed from the request path and read by routing; no locks and no
I/O (a worker runs one event loop). Labels are deployments as ``provider/model``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

MAX_LABELS: Final = 10_000
"""Labels tracked per worker; later new labels are ignored, so arbitrary model names cannot grow memory."""
BUCKET_S: Final = 10.0
"""Width of one success-rate bucket (seconds)."""
BUCKETS: Final = 30
"""Success-rate buckets kept: the current one and the 29 before it, so the last 290 to 300 seconds."""
MIN_REQUESTS: Final = 5
"""Fewer finished requests than this in the window give no success rate."""
P95_EVERY: Final = 16
"""The cached p95 is recomputed once this many TTFTs arrived since it was last computed."""


class _Signals:
    """The mutable state of one label; every field is updated in place."""

    __slots__ = (
        "bucket_ids",
        "ewma_ttft_ms",
        "failed",
        "fresh_ttfts",
        "in_flight",
        "next_ttft",
        "ok",
        "p95_ttft_ms",
        "ttfts",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        self.ewma_ttft_ms: float | None = None
        # A ring of recent TTFTs: appended to until full, then overwritten at next_ttft.
        self.ttfts: list[float] = []
        self.next_ttft = 0
        # TTFTs recorded since p95_ttft_ms was computed.
        self.fresh_ttfts = 0
        self.p95_ttft_ms: float | None = None
        # The bucket (int(now // BUCKET_S)) each slot counts; a slot from an older bucket is reset on write.
        self.bucket_ids = [-1] * BUCKETS
        self.ok = [0] * BUCKETS
        self.failed = [0] * BUCKETS


class Telemetry:
    """Per-worker live signals per deployment label.

    Args:
        alpha: weight of the newest TTFT in the exponentially weighted moving average, in (0, 1].
        samples: how many recent TTFTs the p95 is taken over.
        clock: monotonic seconds; injected by tests.
        max_labels: how many labels are tracked at most.

    Raises:
        ValueError: ``alpha``, ``samples`` or ``max_labels`` out of range.
    """

    __slots__ = ("_alpha", "_clock", "_labels", "_max_labels", "_samples")

    def __init__(
        self,
        *,
        alpha: float = 0.2,
        samples: int = 256,
        clock: Callable[[], float] = time.monotonic,
        max_labels: int = MAX_LABELS,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], not {alpha!r}")
        if samples < 1 or max_labels < 0:
            raise ValueError("samples must be positive and max_labels not negative")
        self._alpha = alpha
        self._samples = samples
        self._clock = clock
        self._max_labels = max_labels
        self._labels: dict[str, _Signals] = {}

    def _tracked(self, label: str) -> _Signals | None:
        signals = self._labels.get(label)
        if signals is None and len(self._labels) < self._max_labels:
            signals = self._labels[label] = _Signals()
        return signals

    def started(self, label: str) -> None:
        """One more request is in flight on ``label``."""
        signals = self._tracked(label)
        if signals is not None:
            signals.in_flight += 1

    def finished(self, label: str, *, ttft_ms: float | None, ok: bool) -> None:
        """A request on ``label`` ended; a successful one with a TTFT also feeds the EWMA and the p95 ring."""
        signals = self._tracked(label)
        if signals is None:
            return
        if signals.in_flight > 0:
            signals.in_flight -= 1
        bucket = int(self._clock() // BUCKET_S)
        slot = bucket % BUCKETS
        if signals.bucket_ids[slot] != bucket:
            signals.bucket_ids[slot] = bucket
            signals.ok[slot] = signals.failed[slot] = 0
        if not ok:
            signals.failed[slot] += 1
            return
        signals.ok[slot] += 1
        if ttft_ms is not None:
            self._record_ttft(signals, ttft_ms)

    def _record_ttft(self, signals: _Signals, ttft_ms: float) -> None:
        ewma = signals.ewma_ttft_ms
        signals.ewma_ttft_ms = ttft_ms if ewma is None else ewma + self._alpha * (ttft_ms - ewma)
        ring = signals.ttfts
        if len(ring) < self._samples:
            ring.append(ttft_ms)
        else:
            ring[signals.next_ttft] = ttft_ms
            signals.next_ttft = (signals.next_ttft + 1) % self._samples
        signals.fresh_ttfts += 1

    def in_flight(self, label: str) -> int:
        """Requests on ``label`` started and not yet finished (0 for an unknown label)."""
        signals = self._labels.get(label)
        return 0 if signals is None else signals.in_flight

    def ewma_ttft_ms(self, label: str) -> float | None:
        """The moving average of successful requests' TTFT; None before the first one."""
        signals = self._labels.get(label)
        return None if signals is None else signals.ewma_ttft_ms

    def p95_ttft_ms(self, label: str) -> float | None:
        """Nearest-rank p95 of the last ``samples`` TTFTs; None before the first one.

        The value is cached and recomputed only after ``P95_EVERY`` new TTFTs, so it may lag by up to 15.
        """
        signals = self._labels.get(label)
        if signals is None or not signals.ttfts:
            return None
        if signals.p95_ttft_ms is None or signals.fresh_ttfts >= P95_EVERY:
            ordered = sorted(signals.ttfts)
            signals.p95_ttft_ms = ordered[(95 * len(ordered) + 99) // 100 - 1]
            signals.fresh_ttfts = 0
        return signals.p95_ttft_ms

    def success_rate(self, label: str) -> float | None:
        """Share of requests that finished ok in the last ``BUCKETS`` buckets; None with fewer than 5."""
        signals = self._labels.get(label)
        if signals is None:
            return None
        oldest = int(self._clock() // BUCKET_S) - BUCKETS + 1
        ok = failed = 0
        for bucket, bucket_ok, bucket_failed in zip(signals.bucket_ids, signals.ok, signals.failed, strict=True):
            if bucket >= oldest:
                ok += bucket_ok
                failed += bucket_failed
        total = ok + failed
        return None if total < MIN_REQUESTS else ok / total
