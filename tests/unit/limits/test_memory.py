"""InProcessLimiter: the shared scenarios, agreement with the reference model, and its own memory bounds."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.core.keys import Budget, Limits
from polyroute.limits.base import LEASE_TTL_S, Limiter
from polyroute.limits.memory import InProcessLimiter
from tests.unit.limits.reference import PROGRAMS, Program, check_against_model, in_thread
from tests.unit.limits.scenarios import (
    CALENDAR_INSTANTS,
    NO_BUDGET,
    SCENARIOS,
    T0,
    Scenario,
    budget_waits,
    expected_waits,
)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
async def test_in_process_limiter_scenario(scenario: Scenario) -> None:
    limiter = InProcessLimiter()
    await scenario(limiter, "key_scenario")
    await limiter.aclose()


def test_in_process_limiter_satisfies_the_protocol() -> None:
    limiter: Limiter = InProcessLimiter()
    assert limiter is not None


def test_in_process_limiter_matches_the_reference_model() -> None:
    @settings(max_examples=500, deadline=None)
    @given(program=PROGRAMS)
    def run(program: Program) -> None:
        asyncio.run(check_against_model(InProcessLimiter(), "key_model", program))

    in_thread(run)


@pytest.mark.parametrize("moment", CALENDAR_INSTANTS, ids=lambda moment: moment.isoformat())
async def test_in_process_budget_periods_end_where_the_calendar_says(moment: datetime) -> None:
    now = moment.timestamp()
    assert await budget_waits(InProcessLimiter(), "key_calendar", now) == expected_waits(now)


def test_in_process_budget_periods_match_datetime_anywhere() -> None:
    @settings(max_examples=300, deadline=None)
    @given(seconds=st.integers(0, 2**33), eighths=st.integers(0, 7))
    def run(seconds: int, eighths: int) -> None:
        now = seconds + eighths / 8
        assert asyncio.run(budget_waits(InProcessLimiter(), "key_calendar", now)) == expected_waits(now)

    in_thread(run)


async def test_admit_without_limits_returns_the_shared_verdict_and_keeps_nothing() -> None:
    limiter = InProcessLimiter()
    first = await limiter.admit("key_free", Limits(), Budget(), now=T0, request_id="a")
    second = await limiter.admit("key_free", Limits(), Budget(), now=T0, request_id="b")
    assert first is second
    assert not limiter._keys and not limiter._plans  # nothing allocated per request


async def test_idle_keys_window_state_is_dropped() -> None:
    limiter = InProcessLimiter()
    limits = Limits(requests_per_day=5, tokens_per_minute=100, max_concurrent=3)
    for number in range(1000):
        await limiter.admit(f"key_{number}", limits, NO_BUDGET, now=T0, request_id="r")
        await limiter.charge(f"key_{number}", tokens=10, cost_usd=None, now=T0)
    assert len(limiter._keys) == 1000
    later = T0 + 86400 + LEASE_TTL_S
    for _ in range(500):
        await limiter.admit("key_busy", limits, NO_BUDGET, now=later, request_id="r")
    assert list(limiter._keys) == ["key_busy"]


async def test_keys_active_within_their_horizon_are_kept() -> None:
    limiter = InProcessLimiter()
    limits = Limits(requests_per_minute=5)
    await limiter.admit("key_a", limits, NO_BUDGET, now=T0, request_id="r")
    for step in range(100):
        await limiter.admit("key_b", limits, NO_BUDGET, now=T0 + LEASE_TTL_S - 1 + step / 1000, request_id="r")
    assert set(limiter._keys) == {"key_a", "key_b"}


async def test_a_busy_keys_admission_list_stays_near_its_limit() -> None:
    limiter = InProcessLimiter()
    limits = Limits(requests_per_minute=10)
    for second in range(0, 100_000, 3):
        await limiter.admit("key_busy", limits, NO_BUDGET, now=T0 + second, request_id="r")
    key = limiter._keys["key_busy"]
    assert len(key.times) - key.head <= 10
    assert len(key.times) <= 300  # the expired head is cut once it reaches 256 entries
    assert (await limiter.state("key_busy", now=T0 + 99_999)).requests["minute"] == 10
