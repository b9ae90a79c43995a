"""A brute-force reference limiter, random programs for it, and a runner comparing a real limiter with it.

The model keeps every admission, charge and lease and recomputes each answer from scratch with
``datetime`` calendars, so it shares no code (and no cleverness) with the implementations. Times,
costs and budgets sit on a 1/8 grid, where float arithmetic is exact in Python, in Lua and in µs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from polyroute.core.keys import Budget, Limits
from polyroute.limits.base import (
    CONCURRENCY_RETRY_S,
    LEASE_TTL_S,
    REQUEST_WINDOWS_S,
    TOKEN_BUCKETS_S,
    TOKEN_WINDOWS_S,
    Admission,
    KeyState,
    Limiter,
    Refusal,
    Window,
)

NEVER = math.inf

INSTANTS = [
    datetime(2024, 2, 28, 23, 59, 30, tzinfo=UTC),  # leap day ahead, then March
    datetime(2023, 12, 31, 23, 58, 0, tzinfo=UTC),  # a Sunday: week, month and year end together
    datetime(2024, 6, 9, 23, 59, 59, tzinfo=UTC),  # a Sunday
    datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC),
]


@functools.cache
def period_ends(now: float) -> dict[str, tuple[object, float]]:
    """The id and end of the UTC day, ISO week and month holding ``now``, from ``datetime``."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.date()
    monday = day - timedelta(days=day.weekday())
    next_month = (day.replace(day=1) + timedelta(days=32)).replace(day=1)

    def at(d: object) -> float:
        return datetime.combine(d, datetime.min.time(), UTC).timestamp()  # type: ignore[arg-type]

    return {
        "day": (day, at(day + timedelta(days=1))),
        "week": (day.isocalendar()[:2], at(monday + timedelta(days=7))),
        "month": ((day.year, day.month), at(next_month)),
    }


@dataclass
class ReferenceLimiter:
    """Everything remembered, everything recomputed."""

    admissions: list[float] = field(default_factory=list)
    charges: tuple[list[tuple[float, int]], list[tuple[float, int]]] = field(default_factory=lambda: ([], []))
    spends: list[tuple[float, float]] = field(default_factory=list)
    leases: dict[int, float] = field(default_factory=dict)
    plan: tuple[bool, bool, bool] | None = None
    next_lease: int = 0

    def admit(self, limits: Limits, budget: Budget, now: float) -> Admission:
        if limits.is_unlimited and budget.is_unlimited:
            self.plan = None
            return Admission(admitted=True)
        self.plan = (limits.tokens_per_minute is not None, limits.tokens_per_day is not None, not budget.is_unlimited)
        waits: list[tuple[Refusal, float]] = []
        warning = self._check_budget(budget, now, waits)
        requests = _request_limits(limits)
        for length, limit in requests:
            inside = sorted(t for t in self.admissions if now - t < length)
            if len(inside) >= limit:
                waits.append((Refusal.REQUESTS, inside[len(inside) - limit] + length - now if limit > 0 else NEVER))
        for index, token_limit in enumerate((limits.tokens_per_minute, limits.tokens_per_day)):
            if token_limit is not None and self.tokens(index, now) >= token_limit:
                waits.append((Refusal.TOKENS, self._token_wait(index, token_limit, now)))
        if limits.max_concurrent is not None and self._concurrent(now) >= limits.max_concurrent:
            waits.append((Refusal.CONCURRENCY, CONCURRENCY_RETRY_S if limits.max_concurrent > 0 else NEVER))
        if waits:
            kind, wait = waits[0]
            for other, other_wait in waits[1:]:
                if other_wait > wait:
                    kind, wait = other, other_wait
            return Admission(
                admitted=False,
                refusal=kind,
                retry_after_s=None if wait == NEVER else wait,
                window=self._window(requests, now),
                budget_warning=warning,
            )
        if requests:
            self.admissions.append(now)
        lease = None
        if limits.max_concurrent is not None:
            self.next_lease += 1
            self.leases[self.next_lease] = now + LEASE_TTL_S
            lease = str(self.next_lease)
        return Admission(admitted=True, window=self._window(requests, now), lease=lease, budget_warning=warning)

    def release(self, lease: str) -> None:
        self.leases.pop(int(lease), None)

    def charge(self, tokens: int, cost_usd: float | None, now: float) -> None:
        if self.plan is None:
            return
        for index in (0, 1):
            if self.plan[index] and tokens > 0:
                self.charges[index].append((now, tokens))
        if self.plan[2] and cost_usd is not None and cost_usd > 0:
            self.spends.append((now, cost_usd))

    def state(self, now: float) -> KeyState:
        return KeyState(
            requests={name: sum(1 for t in self.admissions if now - t < length) for name, length in REQUEST_WINDOWS_S},
            tokens={name: self.tokens(index, now) for index, (name, _) in enumerate(TOKEN_WINDOWS_S)},
            concurrent=self._concurrent(now),
            spend_usd={
                **{name: self.spent(name, now) for name in ("day", "week", "month")},
                "total": self.spent("total", now),
            },
        )

    def tokens(self, index: int, now: float) -> int:
        return sum(tokens for expiry, tokens in self._token_expiries(index) if expiry > now)

    def spent(self, period: str, now: float) -> float:
        if period == "total":
            return sum(cost for _, cost in self.spends)
        current = period_ends(now)[period][0]
        return sum(cost for t, cost in self.spends if period_ends(t)[period][0] == current)

    def _token_expiries(self, index: int) -> list[tuple[float, int]]:
        length, bucket = TOKEN_WINDOWS_S[index][1], TOKEN_BUCKETS_S[index]
        return [((math.floor(t / bucket) + 1) * bucket + length, tokens) for t, tokens in self.charges[index]]

    def _token_wait(self, index: int, limit: int, now: float) -> float:
        if limit <= 0:
            return NEVER
        expiries = self._token_expiries(index)
        for moment in sorted({expiry for expiry, _ in expiries if expiry > now}):
            if sum(tokens for expiry, tokens in expiries if expiry > moment) < limit:
                return moment - now
        raise AssertionError("tokens never expire")

    def _check_budget(self, budget: Budget, now: float, waits: list[tuple[Refusal, float]]) -> bool:
        ends = period_ends(now)
        warning = False
        budgeted: list[tuple[str, float | None, float]] = [
            ("day", budget.daily_usd, ends["day"][1]),
            ("week", budget.weekly_usd, ends["week"][1]),
            ("month", budget.monthly_usd, ends["month"][1]),
            ("total", budget.total_usd, NEVER),
        ]
        for period, limit, end in budgeted:
            if limit is None:
                continue
            spent = self.spent(period, now)
            if spent >= limit:
                waits.append((Refusal.BUDGET, end - now))
            warning = warning or spent >= budget.warn_fraction * limit
        return warning

    def _concurrent(self, now: float) -> int:
        return sum(1 for expiry in self.leases.values() if expiry > now)

    def _window(self, requests: list[tuple[float, int]], now: float) -> Window | None:
        best: Window | None = None
        for length, limit in requests:
            inside = [t for t in self.admissions if now - t < length]
            remaining = max(0, limit - len(inside))
            reset = min(inside) + length - now if inside else 0.0
            if best is None or remaining < best.remaining or (remaining == best.remaining and reset > best.reset_s):
                best = Window(limit=limit, remaining=remaining, reset_s=reset)
        return best


def _request_limits(limits: Limits) -> list[tuple[float, int]]:
    counts = (limits.requests_per_minute, limits.requests_per_hour, limits.requests_per_day)
    return [(length, limit) for (_, length), limit in zip(REQUEST_WINDOWS_S, counts, strict=True) if limit is not None]


@dataclass(frozen=True)
class Step:
    """One call: ``op`` after the clock moved by ``dt_s``, or to a boundary an earlier call set."""

    op: str
    dt_s: float
    tokens: int = 0
    cost_usd: float | None = None
    pick: int = 0
    """Which held lease a release gives back."""
    boundary: int | None = None
    """Move the clock to this boundary (modulo their number) instead, plus ``nudge_s`` (never back)."""
    nudge_s: float = 0.0


@dataclass(frozen=True)
class Program:
    """A key's settings, a start instant and a sequence of calls."""

    limits: Limits
    budget: Budget
    start: float
    steps: list[Step]


_EIGHTHS = st.integers(0, 16).map(lambda n: n / 8)
_DT = st.one_of(
    # Steps that land exactly on window, bucket and lease boundaries, where off-by-one errors live.
    st.sampled_from([0.0, 1.0, 59.875, 60.0, 61.0, 3599.875, 3600.0, 86399.875, 86400.0, 86460.0, 7 * 86400.0]),
    st.integers(0, 4).map(float),
    st.integers(0, 40).map(lambda n: n / 8),
)
_STEP = st.builds(
    Step,
    op=st.sampled_from(["admit", "admit", "admit", "charge", "charge", "release", "state"]),
    dt_s=_DT,
    tokens=st.sampled_from([0, 25, 50, 100, 200, 400]) | st.integers(0, 500),
    cost_usd=st.none() | st.integers(0, 8).map(lambda n: n / 8),
    pick=st.integers(0, 7),
    boundary=st.none() | st.integers(0, 63),
    nudge_s=st.sampled_from([0.0, 0.0, -0.125]),
)


def _limit(*values: int) -> st.SearchStrategy[int | None]:
    # None (unlimited) mostly, so a program exercises a few limits at a time; 0 (never) rarely.
    return st.sampled_from([*[None] * 12, *values * 2, 0])


LIMITS = st.builds(
    Limits,
    requests_per_minute=_limit(1, 2, 3),
    requests_per_hour=_limit(2, 4, 6),
    requests_per_day=_limit(3, 5, 8),
    tokens_per_minute=_limit(50, 200, 400),
    tokens_per_day=_limit(300, 1000),
    max_concurrent=_limit(1, 2, 3),
)
BUDGETS = st.builds(
    Budget,
    daily_usd=st.none() | _EIGHTHS,
    weekly_usd=st.none() | _EIGHTHS,
    monthly_usd=st.none() | _EIGHTHS,
    total_usd=st.none() | _EIGHTHS,
    warn_fraction=st.sampled_from([0.5, 0.8, 1.0]),
)
PROGRAMS = st.builds(
    Program,
    limits=LIMITS,
    budget=BUDGETS,
    start=st.sampled_from([moment.timestamp() for moment in INSTANTS]),
    steps=st.lists(_STEP, min_size=8, max_size=40),
)


def _verdict(admission: Admission) -> tuple[object, ...]:
    return (
        admission.admitted,
        admission.refusal,
        admission.retry_after_s,
        admission.window,
        admission.lease is not None,
        admission.budget_warning,
    )


def _comparable_state(state: KeyState, limits: Limits) -> KeyState:
    # A window longer than the longest limited one counts only what is remembered: compared when limited.
    longest = max((length for length, _ in _request_limits(limits)), default=math.inf)
    return KeyState(
        requests={name: state.requests[name] for name, length in REQUEST_WINDOWS_S if length <= longest},
        tokens=state.tokens,
        concurrent=state.concurrent,
        spend_usd=state.spend_usd,
    )


def _boundaries(admitted: list[float], charged: list[float]) -> list[float]:
    """When something admitted or charged at these times stops counting."""
    ends = [t + length for t in admitted for length in (60.0, 3600.0, 86400.0, LEASE_TTL_S)]
    for t in charged:
        ends += [math.floor(t) + 61.0, math.floor(t / 60) * 60 + 60 + 86400.0]
    return ends


async def check_against_model(limiter: Limiter, key_id: str, program: Program) -> None:
    """Run ``program`` on ``limiter`` and on the model; every answer must be the same."""
    model = ReferenceLimiter()
    now = program.start
    held: list[tuple[str, str]] = []
    admitted: list[float] = []
    charged: list[float] = []
    for number, step in enumerate(program.steps):
        boundaries = _boundaries(admitted, charged)
        if step.boundary is not None and boundaries:
            now = max(now, boundaries[step.boundary % len(boundaries)] + step.nudge_s)
        else:
            now += step.dt_s
        where = f"step {number} ({step.op} at start+{now - program.start})"
        if step.op == "admit":
            got = await limiter.admit(key_id, program.limits, program.budget, now=now, request_id=f"r{number}")
            want = model.admit(program.limits, program.budget, now)
            assert _verdict(got) == _verdict(want), where
            if got.admitted:
                admitted.append(now)
            if got.lease is not None and want.lease is not None:
                held.append((got.lease, want.lease))
        elif step.op == "release" and held:
            lease, model_lease = held.pop(step.pick % len(held))
            await limiter.release(key_id, lease)
            await limiter.release(key_id, lease)
            model.release(model_lease)
        elif step.op == "charge":
            await limiter.charge(key_id, tokens=step.tokens, cost_usd=step.cost_usd, now=now)
            model.charge(step.tokens, step.cost_usd, now)
            charged.append(now)
        elif step.op == "state":
            got_state = _comparable_state(await limiter.state(key_id, now=now), program.limits)
            assert got_state == _comparable_state(model.state(now), program.limits), where


def in_thread(body: Callable[[], None]) -> None:
    """Run ``body`` (which runs its own event loops) in a private thread, so pytest-asyncio's loop is never touched."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(body).result()
