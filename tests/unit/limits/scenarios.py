"""Behaviour every ``Limiter`` must show, as scenarios run against each implementation with explicit clocks.

Each scenario is ``async def scenario(limiter, key_id)``; ``SCENARIOS`` lists them for parametrising.
Times are offsets from ``T0``, a Wednesday at noon UTC (a whole minute).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from polyroute.core.keys import Budget, Limits
from polyroute.limits.base import LEASE_TTL_S, Admission, Limiter, Refusal, Window
from tests.unit.limits.reference import period_ends

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC).timestamp()
NO_BUDGET = Budget()
NO_LIMITS = Limits()

Scenario = Callable[[Limiter, str], Awaitable[None]]


async def admit(
    limiter: Limiter, key_id: str, limits: Limits, budget: Budget = NO_BUDGET, *, at: float, t0: float = T0
) -> Admission:
    return await limiter.admit(key_id, limits, budget, now=t0 + at, request_id="req")


async def requests_per_minute_roll(limiter: Limiter, key_id: str) -> None:
    limits = Limits(requests_per_minute=3)
    first = await admit(limiter, key_id, limits, at=0)
    assert first == Admission(admitted=True, window=Window(limit=3, remaining=2, reset_s=60.0))
    await admit(limiter, key_id, limits, at=10)
    third = await admit(limiter, key_id, limits, at=20)
    assert third.window == Window(limit=3, remaining=0, reset_s=40.0)
    refused = await admit(limiter, key_id, limits, at=30)
    assert refused == Admission(
        admitted=False,
        refusal=Refusal.REQUESTS,
        retry_after_s=30.0,
        window=Window(limit=3, remaining=0, reset_s=30.0),
    )
    assert (await admit(limiter, key_id, limits, at=59.875)).retry_after_s == 0.125
    again = await admit(limiter, key_id, limits, at=60)  # the request at 0 has just left the window
    assert again.admitted
    assert again.window == Window(limit=3, remaining=0, reset_s=10.0)
    state = await limiter.state(key_id, now=T0 + 60)
    assert state.requests["minute"] == 3


async def requests_per_hour_and_day_roll(limiter: Limiter, key_id: str) -> None:
    limits = Limits(requests_per_hour=2, requests_per_day=3)
    await admit(limiter, key_id, limits, at=0)
    await admit(limiter, key_id, limits, at=1000)
    refused = await admit(limiter, key_id, limits, at=2000)
    assert (refused.refusal, refused.retry_after_s) == (Refusal.REQUESTS, 1600.0)
    assert refused.window == Window(limit=2, remaining=0, reset_s=1600.0)
    third = await admit(limiter, key_id, limits, at=3600)
    # Both windows are full: the one that frees room last is the tighter.
    assert third.window == Window(limit=3, remaining=0, reset_s=82800.0)
    day_full = await admit(limiter, key_id, limits, at=7200)
    assert (day_full.refusal, day_full.retry_after_s) == (Refusal.REQUESTS, 79200.0)
    assert (await admit(limiter, key_id, limits, at=86400)).admitted
    state = await limiter.state(key_id, now=T0 + 86400)
    assert state.requests == {"minute": 1, "hour": 1, "day": 3}


async def the_window_clearing_last_sets_the_retry(limiter: Limiter, key_id: str) -> None:
    limits = Limits(requests_per_minute=1, requests_per_hour=2)
    await admit(limiter, key_id, limits, at=0)
    await admit(limiter, key_id, limits, at=60)
    refused = await admit(limiter, key_id, limits, at=90)
    assert (refused.refusal, refused.retry_after_s) == (Refusal.REQUESTS, 3510.0)


async def refused_requests_are_not_counted(limiter: Limiter, key_id: str) -> None:
    limits = Limits(requests_per_minute=1)
    assert (await admit(limiter, key_id, limits, at=0)).admitted
    for at in range(1, 6):
        assert not (await admit(limiter, key_id, limits, at=at)).admitted
    assert (await admit(limiter, key_id, limits, at=60)).admitted
    assert (await limiter.state(key_id, now=T0 + 60)).requests["minute"] == 1


async def equal_remaining_reports_the_later_reset(limiter: Limiter, key_id: str) -> None:
    first = await admit(limiter, key_id, Limits(requests_per_minute=2, requests_per_hour=2), at=0)
    assert first.window == Window(limit=2, remaining=1, reset_s=3600.0)
    other = await admit(limiter, key_id + "-b", Limits(requests_per_minute=5, requests_per_day=100), at=0)
    assert other.window == Window(limit=5, remaining=4, reset_s=60.0)


async def a_limit_of_zero_refuses_for_good(limiter: Limiter, key_id: str) -> None:
    refused = await admit(limiter, key_id, Limits(requests_per_minute=0), at=0)
    assert refused == Admission(
        admitted=False, refusal=Refusal.REQUESTS, retry_after_s=None, window=Window(limit=0, remaining=0, reset_s=0.0)
    )
    tokens = await admit(limiter, key_id + "-t", Limits(tokens_per_day=0), at=0)
    assert (tokens.refusal, tokens.retry_after_s, tokens.window) == (Refusal.TOKENS, None, None)
    concurrency = await admit(limiter, key_id + "-c", Limits(max_concurrent=0), at=0)
    assert (concurrency.refusal, concurrency.retry_after_s) == (Refusal.CONCURRENCY, None)


async def tokens_per_minute_are_checked_before_and_charged_after(limiter: Limiter, key_id: str) -> None:
    limits = Limits(tokens_per_minute=100)
    assert await admit(limiter, key_id, limits, at=0) == Admission(admitted=True)
    await limiter.charge(key_id, tokens=60, cost_usd=None, now=T0 + 0.5)
    assert (await admit(limiter, key_id, limits, at=1)).admitted
    await limiter.charge(key_id, tokens=50, cost_usd=None, now=T0 + 1.5)  # crosses the limit: charged in full
    refused = await admit(limiter, key_id, limits, at=2)
    # 60 tokens in the second [0, 1) count until 61; then 50 remain, under the limit.
    assert refused == Admission(admitted=False, refusal=Refusal.TOKENS, retry_after_s=59.0)
    assert (await admit(limiter, key_id, limits, at=60.875)).retry_after_s == 0.125
    assert (await admit(limiter, key_id, limits, at=61)).admitted
    assert (await limiter.state(key_id, now=T0 + 61.875)).tokens == {"minute": 50, "day": 0}
    assert (await limiter.state(key_id, now=T0 + 62)).tokens == {"minute": 0, "day": 0}


async def tokens_per_day_count_by_the_minute(limiter: Limiter, key_id: str) -> None:
    limits = Limits(tokens_per_day=1000)
    await admit(limiter, key_id, limits, at=0)
    await limiter.charge(key_id, tokens=1000, cost_usd=None, now=T0 + 30)
    refused = await admit(limiter, key_id, limits, at=100)
    # The charge sits in the minute [0, 60) and counts until 60 s + one day.
    assert (refused.refusal, refused.retry_after_s) == (Refusal.TOKENS, 86360.0)
    assert (await limiter.state(key_id, now=T0 + 86459.875)).tokens["day"] == 1000
    assert (await admit(limiter, key_id, limits, at=86460)).admitted


async def only_limited_token_windows_are_charged(limiter: Limiter, key_id: str) -> None:
    await admit(limiter, key_id, Limits(tokens_per_minute=100), at=0)
    await limiter.charge(key_id, tokens=50, cost_usd=0.5, now=T0 + 1)
    state = await limiter.state(key_id, now=T0 + 1)
    assert state.tokens == {"minute": 50, "day": 0}
    assert state.spend_usd == {"day": 0.0, "week": 0.0, "month": 0.0, "total": 0.0}
    # The key's latest admission had no limit at all: nothing more is recorded.
    assert await admit(limiter, key_id, NO_LIMITS, at=2) == Admission(admitted=True)
    await limiter.charge(key_id, tokens=30, cost_usd=None, now=T0 + 2)
    assert (await limiter.state(key_id, now=T0 + 2)).tokens == {"minute": 50, "day": 0}


async def an_unlimited_key_is_admitted_and_costs_nothing(limiter: Limiter, key_id: str) -> None:
    admitted = await admit(limiter, key_id, NO_LIMITS, at=0)
    assert admitted == Admission(admitted=True)
    await limiter.charge(key_id, tokens=10_000, cost_usd=5.0, now=T0)
    state = await limiter.state(key_id, now=T0)
    assert state.requests == {"minute": 0, "hour": 0, "day": 0}
    assert state.tokens == {"minute": 0, "day": 0}
    assert state.concurrent == 0
    assert state.spend_usd == {"day": 0.0, "week": 0.0, "month": 0.0, "total": 0.0}


async def concurrency_leases_are_given_back(limiter: Limiter, key_id: str) -> None:
    limits = Limits(max_concurrent=2)
    first = await admit(limiter, key_id, limits, at=0)
    second = await admit(limiter, key_id, limits, at=0)
    assert first.lease is not None and second.lease is not None and first.lease != second.lease
    full = await admit(limiter, key_id, limits, at=1)
    assert full == Admission(admitted=False, refusal=Refusal.CONCURRENCY, retry_after_s=1.0)
    assert (await limiter.state(key_id, now=T0 + 1)).concurrent == 2
    await limiter.release(key_id, first.lease)
    await limiter.release(key_id, first.lease)  # idempotent
    await limiter.release(key_id, "no-such-lease")
    assert (await limiter.state(key_id, now=T0 + 1)).concurrent == 1
    assert (await admit(limiter, key_id, limits, at=2)).admitted
    assert not (await admit(limiter, key_id, limits, at=3)).admitted


async def leases_not_given_back_expire(limiter: Limiter, key_id: str) -> None:
    limits = Limits(max_concurrent=1)
    assert (await admit(limiter, key_id, limits, at=0)).admitted
    assert not (await admit(limiter, key_id, limits, at=LEASE_TTL_S - 0.125)).admitted
    assert (await limiter.state(key_id, now=T0 + LEASE_TTL_S - 0.125)).concurrent == 1
    assert (await limiter.state(key_id, now=T0 + LEASE_TTL_S)).concurrent == 0
    assert (await admit(limiter, key_id, limits, at=LEASE_TTL_S)).admitted


async def a_request_crossing_the_daily_budget_is_charged_and_the_next_refused(limiter: Limiter, key_id: str) -> None:
    budget = Budget(daily_usd=1.0, warn_fraction=0.5)
    quiet = await admit(limiter, key_id, NO_LIMITS, budget, at=0)
    assert quiet == Admission(admitted=True)
    await limiter.charge(key_id, tokens=0, cost_usd=0.75, now=T0 + 1)
    warned = await admit(limiter, key_id, NO_LIMITS, budget, at=2)
    assert warned == Admission(admitted=True, budget_warning=True)
    await limiter.charge(key_id, tokens=0, cost_usd=0.5, now=T0 + 3)
    refused = await admit(limiter, key_id, NO_LIMITS, budget, at=4)
    midnight = 12 * 3600.0
    assert refused == Admission(admitted=False, refusal=Refusal.BUDGET, retry_after_s=midnight - 4, budget_warning=True)
    assert (await limiter.state(key_id, now=T0 + 4)).spend_usd == {
        "day": 1.25,
        "week": 1.25,
        "month": 1.25,
        "total": 1.25,
    }
    assert (await admit(limiter, key_id, NO_LIMITS, budget, at=midnight - 0.125)).retry_after_s == 0.125
    assert await admit(limiter, key_id, NO_LIMITS, budget, at=midnight) == Admission(admitted=True)
    # Thursday: a new day, the same week and month.
    assert (await limiter.state(key_id, now=T0 + midnight)).spend_usd == {
        "day": 0.0,
        "week": 1.25,
        "month": 1.25,
        "total": 1.25,
    }


async def budget_periods_end_on_calendar_boundaries(limiter: Limiter, key_id: str) -> None:
    cases = [
        (Budget(weekly_usd=0.5), datetime(2024, 6, 9, 23, 59, 50, tzinfo=UTC), 10.0),  # Sunday → Monday
        (Budget(weekly_usd=0.5), datetime(2024, 6, 8, 23, 59, 50, tzinfo=UTC), 86410.0),  # Saturday: not yet
        (Budget(monthly_usd=0.5), datetime(2024, 2, 29, 23, 59, tzinfo=UTC), 60.0),  # leap day → March
        (Budget(monthly_usd=0.5), datetime(2023, 2, 28, 23, 59, tzinfo=UTC), 60.0),
        (Budget(monthly_usd=0.5), datetime(2023, 12, 31, 23, 0, tzinfo=UTC), 3600.0),  # → next year
        (Budget(daily_usd=0.5), datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC), 1.0),
    ]
    for number, (budget, moment, wait) in enumerate(cases):
        key = f"{key_id}-{number}"
        t0 = moment.timestamp()
        await admit(limiter, key, NO_LIMITS, budget, at=0, t0=t0)
        await limiter.charge(key, tokens=0, cost_usd=0.5, now=t0)
        refused = await admit(limiter, key, NO_LIMITS, budget, at=0, t0=t0)
        assert (refused.refusal, refused.retry_after_s) == (Refusal.BUDGET, wait), moment
        assert (await admit(limiter, key, NO_LIMITS, budget, at=wait - 0.125, t0=t0)).retry_after_s == 0.125
        assert (await admit(limiter, key, NO_LIMITS, budget, at=wait, t0=t0)).admitted, moment


async def a_total_budget_never_resets(limiter: Limiter, key_id: str) -> None:
    budget = Budget(total_usd=1.0)
    await admit(limiter, key_id, NO_LIMITS, budget, at=0)
    await limiter.charge(key_id, tokens=0, cost_usd=1.0, now=T0)
    for at in (0, 86400, 400 * 86400):
        refused = await admit(limiter, key_id, NO_LIMITS, budget, at=at)
        assert refused == Admission(admitted=False, refusal=Refusal.BUDGET, retry_after_s=None, budget_warning=True)
    assert (await limiter.state(key_id, now=T0 + 400 * 86400)).spend_usd["total"] == 1.0


async def a_budget_refusal_outlasting_a_request_refusal_is_reported(limiter: Limiter, key_id: str) -> None:
    limits, budget = Limits(requests_per_minute=1), Budget(daily_usd=0.5)
    await admit(limiter, key_id, limits, budget, at=0)
    await limiter.charge(key_id, tokens=0, cost_usd=0.5, now=T0 + 1)
    refused = await admit(limiter, key_id, limits, budget, at=10)
    assert refused == Admission(
        admitted=False,
        refusal=Refusal.BUDGET,
        retry_after_s=12 * 3600.0 - 10,
        window=Window(limit=1, remaining=0, reset_s=50.0),
        budget_warning=True,
    )


async def empty_charges_record_nothing(limiter: Limiter, key_id: str) -> None:
    await admit(limiter, key_id, Limits(tokens_per_minute=10), Budget(daily_usd=1.0), at=0)
    await limiter.charge(key_id, tokens=0, cost_usd=None, now=T0)
    await limiter.charge(key_id, tokens=0, cost_usd=0.0, now=T0)
    state = await limiter.state(key_id, now=T0)
    assert state.tokens == {"minute": 0, "day": 0}
    assert state.spend_usd == {"day": 0.0, "week": 0.0, "month": 0.0, "total": 0.0}


async def changed_limits_apply_to_what_is_remembered(limiter: Limiter, key_id: str) -> None:
    await admit(limiter, key_id, Limits(requests_per_hour=10), at=0)
    await admit(limiter, key_id, Limits(requests_per_hour=10), at=30)
    refused = await admit(limiter, key_id, Limits(requests_per_minute=2, requests_per_hour=10), at=40)
    assert (refused.admitted, refused.retry_after_s) == (False, 20.0)


async def a_late_charge_for_a_finished_day_leaves_today_alone(limiter: Limiter, key_id: str) -> None:
    budget = Budget(daily_usd=1.0)
    midnight = datetime(2025, 1, 16, tzinfo=UTC).timestamp()
    await limiter.admit(key_id, NO_LIMITS, budget, now=midnight - 10, request_id="r")
    await limiter.charge(key_id, tokens=0, cost_usd=0.25, now=midnight + 5)
    await limiter.charge(key_id, tokens=0, cost_usd=0.5, now=midnight - 1)  # finished just before midnight
    state = await limiter.state(key_id, now=midnight + 6)
    assert state.spend_usd == {"day": 0.25, "week": 0.75, "month": 0.75, "total": 0.75}


SCENARIOS: list[Scenario] = [
    requests_per_minute_roll,
    requests_per_hour_and_day_roll,
    the_window_clearing_last_sets_the_retry,
    refused_requests_are_not_counted,
    equal_remaining_reports_the_later_reset,
    a_limit_of_zero_refuses_for_good,
    tokens_per_minute_are_checked_before_and_charged_after,
    tokens_per_day_count_by_the_minute,
    only_limited_token_windows_are_charged,
    an_unlimited_key_is_admitted_and_costs_nothing,
    concurrency_leases_are_given_back,
    leases_not_given_back_expire,
    a_request_crossing_the_daily_budget_is_charged_and_the_next_refused,
    budget_periods_end_on_calendar_boundaries,
    a_total_budget_never_resets,
    a_budget_refusal_outlasting_a_request_refusal_is_reported,
    empty_charges_record_nothing,
    changed_limits_apply_to_what_is_remembered,
    a_late_charge_for_a_finished_day_leaves_today_alone,
]

CALENDAR_INSTANTS = [
    datetime(1970, 1, 1, tzinfo=UTC),  # a Thursday
    datetime(2000, 2, 29, 12, tzinfo=UTC),  # leap century
    datetime(2100, 2, 28, 23, 59, 59, tzinfo=UTC),  # not a leap year
    datetime(2023, 1, 1, tzinfo=UTC),  # a Sunday: ISO week 52 of 2022
    datetime(2024, 12, 30, tzinfo=UTC),  # a Monday: ISO week 1 of 2025
    datetime(2024, 3, 31, 23, 59, 59, 875000, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
    datetime(2025, 7, 4, 9, 30, tzinfo=UTC),
]


async def budget_waits(limiter: Limiter, key_id: str, now: float) -> dict[str, float | None]:
    """The retry after an exhausted (zero) budget of each period at ``now``."""
    budgets = {
        "day": Budget(daily_usd=0.0),
        "week": Budget(weekly_usd=0.0),
        "month": Budget(monthly_usd=0.0),
        "total": Budget(total_usd=0.0),
    }
    return {
        period: (await limiter.admit(f"{key_id}-{period}", NO_LIMITS, budget, now=now, request_id="r")).retry_after_s
        for period, budget in budgets.items()
    }


def expected_waits(now: float) -> dict[str, float | None]:
    """What ``budget_waits`` must return, from ``datetime``."""
    ends = period_ends(now)
    return {"day": ends["day"][1] - now, "week": ends["week"][1] - now, "month": ends["month"][1] - now, "total": None}
