"""The in-process limiter: exact rolling windows, leases and budgets in plain Python structures, for one worker.

No method awaits, so each decision is atomic on the event loop. Every operation is O(1) amortised
(a refusal's retry time may walk one key's window). Idle keys' window state is dropped; a key that
spent keeps one fixed-size spend record, because its total must outlive idleness. Nothing survives
a restart. Times are the caller's ``now`` (Unix seconds), assumed not to step back.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections import OrderedDict, deque
from datetime import date, timedelta
from typing import Final

from polyroute.core.keys import Budget, Limits
from polyroute.limits.base import (
    CONCURRENCY_RETRY_S,
    LEASE_TTL_S,
    REQUEST_WINDOWS_S,
    TOKEN_BUCKETS_S,
    TOKEN_WINDOWS_S,
    Admission,
    KeyState,
    Refusal,
    Window,
)

_ADMITTED: Final = Admission(admitted=True)
_NEVER: Final = math.inf
_DAY_S: Final = 86400.0
_EPOCH: Final = date(1970, 1, 1)
_COMPACT_AT: Final = 256
"""A key's admission list drops its expired head once the head is this long and half the list."""
_SWEEP_PER_ADMIT: Final = 2
"""At most this many idle keys are dropped per admission (amortised eviction)."""
_TOKENS_MINUTE: Final = 1
_TOKENS_DAY: Final = 2
_SPEND: Final = 4
"""Bits of a key's charge plan: what ``charge`` records for it."""


class _Calendar:
    """The UTC day, ISO week and calendar month holding one instant: ids and end times."""

    __slots__ = ("day", "day_end", "month", "month_end", "start", "week", "week_end")

    def __init__(self, now: float) -> None:
        day = int(now // _DAY_S)
        self.start = day * _DAY_S
        self.day = day
        self.day_end = self.start + _DAY_S
        self.week = (day + 3) // 7  # day 0 (1970-01-01) was a Thursday; weeks start on Monday
        self.week_end = (self.week * 7 + 4) * _DAY_S
        first = _EPOCH + timedelta(days=day)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        self.month = first.year * 12 + first.month - 1
        self.month_end = (following - _EPOCH).days * _DAY_S


class _Spend:
    """A key's spend in its current day, week and month (ids of the periods they belong to) and in total."""

    __slots__ = ("day", "day_usd", "month", "month_usd", "total_usd", "week", "week_usd")

    def __init__(self) -> None:
        self.day = self.week = self.month = -(2**62)
        self.day_usd = self.week_usd = self.month_usd = self.total_usd = 0.0

    def add(self, cost_usd: float, calendar: _Calendar) -> None:
        # A late charge for a period already left behind goes to that period, which nobody reads again.
        if calendar.day > self.day:
            self.day, self.day_usd = calendar.day, 0.0
        if calendar.day == self.day:
            self.day_usd += cost_usd
        if calendar.week > self.week:
            self.week, self.week_usd = calendar.week, 0.0
        if calendar.week == self.week:
            self.week_usd += cost_usd
        if calendar.month > self.month:
            self.month, self.month_usd = calendar.month, 0.0
        if calendar.month == self.month:
            self.month_usd += cost_usd
        self.total_usd += cost_usd

    def current(self, calendar: _Calendar) -> tuple[float, float, float, float]:
        return (
            self.day_usd if self.day == calendar.day else 0.0,
            self.week_usd if self.week == calendar.week else 0.0,
            self.month_usd if self.month == calendar.month else 0.0,
            self.total_usd,
        )


class _Tokens:
    """One token window: per-bucket sums, oldest first, and their running total."""

    __slots__ = ("bucket_s", "buckets", "length_s", "total")

    def __init__(self, index: int) -> None:
        self.length_s = TOKEN_WINDOWS_S[index][1]
        self.bucket_s = TOKEN_BUCKETS_S[index]
        self.buckets: deque[list[int]] = deque()
        """``[bucket number, tokens]``; bucket n covers ``[n, n + 1) * bucket_s``."""
        self.total = 0

    def expire(self, now: float) -> None:
        horizon = now - self.length_s
        buckets, bucket_s = self.buckets, self.bucket_s
        while buckets and (buckets[0][0] + 1) * bucket_s <= horizon:
            self.total -= buckets.popleft()[1]

    def retry(self, limit: int, now: float) -> float | None:
        """Seconds until fewer than ``limit`` tokens count (after ``expire``), or None when that is already so."""
        total = self.total
        if total < limit:
            return None
        if limit <= 0:
            return _NEVER
        for number, tokens in self.buckets:
            total -= tokens
            if total < limit:
                return (number + 1) * self.bucket_s + self.length_s - now
        return _NEVER  # pragma: no cover - the total is the sum of the buckets

    def add(self, tokens: int, now: float) -> float:
        """Charge ``tokens`` at ``now``; returns when they stop counting."""
        number = int(now // self.bucket_s)
        buckets = self.buckets
        if buckets and buckets[-1][0] >= number:
            last = buckets[-1]
            last[1] += tokens
            number = last[0]
        else:
            buckets.append([number, tokens])
        self.total += tokens
        return (number + 1) * self.bucket_s + self.length_s

    def counted(self, now: float) -> int:
        horizon = now - self.length_s
        return sum(tokens for number, tokens in self.buckets if (number + 1) * self.bucket_s > horizon)


class _Key:
    """One key's windows: admission times, token windows, leases."""

    __slots__ = (
        "budget",
        "budgeted",
        "head",
        "horizon_s",
        "idle_until",
        "leases",
        "limits",
        "starts",
        "times",
        "token_limits",
        "token_plan",
        "tokens",
        "windows",
    )

    def __init__(self) -> None:
        self.limits: Limits | None = None
        """The limits this state was last configured for."""
        self.token_plan = 0
        """The ``_TOKENS_*`` bits of those limits."""
        self.budget: Budget | None = None
        self.budgeted = False
        """Whether ``budget`` sets any limit."""
        self.times: list[float] = []
        """Admission times, oldest first; ``times[head:]`` are remembered."""
        self.head = 0
        self.starts = [0, 0, 0]
        """Per request window: the index of its oldest admission."""
        self.windows: tuple[tuple[int, float, int], ...] = ()
        """The limited request windows, shortest first: (index, length, limit)."""
        self.tokens: list[_Tokens | None] = [None, None]
        self.token_limits: tuple[tuple[_Tokens, int], ...] = ()
        self.leases: dict[str, float] = {}
        """Lease → expiry, in order of expiry (the TTL is the same for all)."""
        self.horizon_s = LEASE_TTL_S
        self.idle_until = 0.0
        """When every window of the key is empty, if nothing happens in between."""

    def configure(self, limits: Limits) -> None:
        self.limits = limits
        counts = (limits.requests_per_minute, limits.requests_per_hour, limits.requests_per_day)
        self.windows = tuple(
            (index, length, limit)
            for index, ((_, length), limit) in enumerate(zip(REQUEST_WINDOWS_S, counts, strict=True))
            if limit is not None
        )
        self.starts = [self.head] * 3
        self.horizon_s = max(LEASE_TTL_S, self.windows[-1][1] if self.windows else 0.0)
        limited = []
        self.token_plan = 0
        for index, (bit, limit) in enumerate(
            ((_TOKENS_MINUTE, limits.tokens_per_minute), (_TOKENS_DAY, limits.tokens_per_day))
        ):
            if limit is not None:
                limited.append((self.token_window(index), limit))
                self.token_plan |= bit
        self.token_limits = tuple(limited)

    def token_window(self, index: int) -> _Tokens:
        window = self.tokens[index]
        if window is None:
            window = self.tokens[index] = _Tokens(index)
        return window

    def request_retry(self, now: float) -> float | None:
        """Move each limited window past admissions that left it; the wait until all have room, or None."""
        times = self.times
        count = len(times)
        starts = self.starts
        retry = None
        start = self.head
        for index, length, limit in self.windows:
            cutoff = now - length
            start = starts[index]
            while start < count and times[start] <= cutoff:
                start += 1
            starts[index] = start
            if count - start >= limit:
                wait = times[count - limit] + length - now if limit > 0 else _NEVER
                if retry is None or wait > retry:
                    retry = wait
        self.head = start  # the longest window's, as windows are shortest first
        if start >= _COMPACT_AT and start * 2 >= count:
            del times[:start]
            self.starts = [max(0, each - start) for each in starts]
            self.head = 0
        return retry

    def lease_retry(self, maximum: int, now: float) -> float | None:
        leases = self.leases
        while leases:
            first = next(iter(leases))
            if leases[first] > now:
                break
            del leases[first]
        if len(leases) < maximum:
            return None
        return CONCURRENCY_RETRY_S if maximum > 0 else _NEVER

    def window(self, now: float) -> Window | None:
        """The tightest request window: least remaining, then latest reset."""
        times = self.times
        total = len(times)
        best: tuple[int, int, float] | None = None
        for index, length, limit in self.windows:
            start = self.starts[index]
            count = total - start
            remaining = limit - count if limit > count else 0
            reset = times[start] + length - now if count else 0.0
            if best is None or remaining < best[1] or (remaining == best[1] and reset > best[2]):
                best = (limit, remaining, reset)
        if best is None:
            return None
        return Window(limit=best[0], remaining=best[1], reset_s=best[2])


def _worse(refusal: Refusal | None, retry: float, kind: Refusal, wait: float | None) -> tuple[Refusal | None, float]:
    if wait is not None and (refusal is None or wait > retry):
        return kind, wait
    return refusal, retry


class InProcessLimiter:
    """Limits and budgets for the keys of one worker process (the embedded default)."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        """Window state, least recently used first (for eviction of idle keys)."""
        self._plans: dict[str, int] = {}
        """What ``charge`` records per key (``_TOKENS_*``/``_SPEND`` bits), from its latest admission."""
        self._spend: dict[str, _Spend] = {}
        self._calendar_now = _Calendar(0.0)
        self._lease_ids = itertools.count(1)

    async def admit(self, key_id: str, limits: Limits, budget: Budget, *, now: float, request_id: str) -> Admission:
        """Check the key's limits and budget at ``now``; count the request and take a lease if all pass."""
        if limits.is_unlimited and budget.is_unlimited:
            self._plans.pop(key_id, None)
            return _ADMITTED
        key = self._key(key_id, now)
        # The same settings objects come back request after request: compare by identity first.
        if key.limits is not limits:
            if key.limits != limits:
                key.configure(limits)
            key.limits = limits
        if key.budget is not budget:
            key.budget, key.budgeted = budget, not budget.is_unlimited
        self._plans[key_id] = key.token_plan | (_SPEND if key.budgeted else 0)
        refusal: Refusal | None = None
        retry = 0.0
        warning = False
        if key.budgeted:
            wait, warning = self._budget_retry(key_id, budget, now)
            refusal, retry = _worse(refusal, retry, Refusal.BUDGET, wait)
        if key.windows:
            refusal, retry = _worse(refusal, retry, Refusal.REQUESTS, key.request_retry(now))
        for tokens, limit in key.token_limits:
            tokens.expire(now)
            refusal, retry = _worse(refusal, retry, Refusal.TOKENS, tokens.retry(limit, now))
        maximum = limits.max_concurrent
        if maximum is not None:
            refusal, retry = _worse(refusal, retry, Refusal.CONCURRENCY, key.lease_retry(maximum, now))
        if refusal is not None:
            return Admission(
                admitted=False,
                refusal=refusal,
                retry_after_s=None if retry == _NEVER else retry,
                window=key.window(now),
                budget_warning=warning,
            )
        if key.windows:
            key.times.append(now)
        lease = None
        if maximum is not None:
            lease = str(next(self._lease_ids))
            key.leases[lease] = now + LEASE_TTL_S
        key.idle_until = max(key.idle_until, now + key.horizon_s)
        return Admission(admitted=True, window=key.window(now), lease=lease, budget_warning=warning)

    async def release(self, key_id: str, lease: str) -> None:
        """Give back a lease (idempotent)."""
        key = self._keys.get(key_id)
        if key is not None:
            key.leases.pop(lease, None)

    async def charge(self, key_id: str, *, tokens: int, cost_usd: float | None, now: float) -> None:
        """Add a finished request's tokens and cost to what the key's latest admission limited."""
        plan = self._plans.get(key_id)
        if not plan:
            return
        if tokens > 0 and plan & (_TOKENS_MINUTE | _TOKENS_DAY):
            key = self._keys.get(key_id)
            if key is None:
                key = self._keys[key_id] = _Key()
            for index, bit in enumerate((_TOKENS_MINUTE, _TOKENS_DAY)):
                if plan & bit:
                    key.idle_until = max(key.idle_until, key.token_window(index).add(tokens, now))
        if cost_usd is not None and cost_usd > 0 and plan & _SPEND:
            spend = self._spend.get(key_id)
            if spend is None:
                spend = self._spend[key_id] = _Spend()
            spend.add(cost_usd, self._calendar(now))

    async def state(self, key_id: str, *, now: float) -> KeyState:
        """The key's counts at ``now``.

        A request window longer than the longest one the key limits counts only remembered admissions.
        """
        requests = dict.fromkeys((name for name, _ in REQUEST_WINDOWS_S), 0)
        tokens = dict.fromkeys((name for name, _ in TOKEN_WINDOWS_S), 0)
        concurrent = 0
        key = self._keys.get(key_id)
        if key is not None:
            times = key.times
            for name, length in REQUEST_WINDOWS_S:
                requests[name] = len(times) - bisect_right(times, now - length, key.head)
            for (name, _), window in zip(TOKEN_WINDOWS_S, key.tokens, strict=True):
                if window is not None:
                    tokens[name] = window.counted(now)
            concurrent = sum(1 for expiry in key.leases.values() if expiry > now)
        spend = self._spend.get(key_id)
        day, week, month, total = spend.current(self._calendar(now)) if spend is not None else (0.0, 0.0, 0.0, 0.0)
        return KeyState(
            requests=requests,
            tokens=tokens,
            concurrent=concurrent,
            spend_usd={"day": day, "week": week, "month": month, "total": total},
        )

    async def aclose(self) -> None:
        """Nothing to release."""

    def _key(self, key_id: str, now: float) -> _Key:
        keys = self._keys
        for _ in range(_SWEEP_PER_ADMIT):
            if not keys:
                break
            oldest = next(iter(keys))
            if keys[oldest].idle_until > now:
                break
            del keys[oldest]
        key = keys.get(key_id)
        if key is None:
            key = keys[key_id] = _Key()
        else:
            keys.move_to_end(key_id)
        return key

    def _calendar(self, now: float) -> _Calendar:
        calendar = self._calendar_now
        if not calendar.start <= now < calendar.day_end:
            calendar = self._calendar_now = _Calendar(now)
        return calendar

    def _budget_retry(self, key_id: str, budget: Budget, now: float) -> tuple[float | None, bool]:
        """The wait until no budget period is exhausted (None: none is), and whether spend passed the warning."""
        calendar = self._calendar(now)
        spend = self._spend.get(key_id)
        day, week, month, total = spend.current(calendar) if spend is not None else (0.0, 0.0, 0.0, 0.0)
        retry = None
        warning = False
        for limit, spent, end in (
            (budget.daily_usd, day, calendar.day_end),
            (budget.weekly_usd, week, calendar.week_end),
            (budget.monthly_usd, month, calendar.month_end),
            (budget.total_usd, total, _NEVER),
        ):
            if limit is None:
                continue
            if spent >= limit:
                wait = end - now
                if retry is None or wait > retry:
                    retry = wait
            if spent >= budget.warn_fraction * limit:
                warning = True
        return retry, warning
