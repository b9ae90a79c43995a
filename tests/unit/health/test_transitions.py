"""The pure state machine: every transition of cooldowns, broken credentials and breakers, and the waits."""

from __future__ import annotations

import pytest

from polyroute.health import PROBE, EntryKind, EntryState, FailureKind, HealthEntry, LastError, ResilienceProfile
from polyroute.health.entries import Breaker, Broken, Cooldown, Entry, EntryKey
from polyroute.health.transitions import (
    BREAKER_MEMORY_S,
    auth_failed,
    backoff_s,
    breaker_wait_s,
    claim,
    combined_wait_s,
    failed,
    failure_key,
    failure_step,
    live,
    rate_limited,
    succeeded,
    view,
)

T0 = 1_700_000_000.0
PROFILE = ResilienceProfile()


def _error(at: float = T0, status: int | None = 500) -> LastError:
    return LastError(status=status, message="upstream failed", at=at)


def _fail(
    entry: Entry | None, now: float, *, requests: int = 1, failures: int = 1, profile: ResilienceProfile = PROFILE
) -> tuple[Entry | None, float]:
    return failed(profile, now, error=_error(now), requests=requests, failures=failures)(entry)


def _fail_times(count: int, now: float = T0, profile: ResilienceProfile = PROFILE) -> Breaker:
    entry: Entry | None = None
    for _ in range(count):
        entry, _ = _fail(entry, now, profile=profile)
    assert isinstance(entry, Breaker)
    return entry


def _cool(entry: Entry | None, now: float, retry_after_s: float | None = None) -> tuple[Entry | None, float]:
    return rate_limited(PROFILE, now, retry_after_s=retry_after_s, error=_error(now, 429))(entry)


# Cooldowns


def test_rate_limited_without_retry_after_starts_at_the_base() -> None:
    entry, wait = _cool(None, T0)
    assert wait == 1.0
    assert entry == Cooldown(until=T0 + 1, strikes=1, expires_at=T0 + 1 + 60, last_error=_error(T0, 429))


def test_rate_limited_doubles_per_consecutive_429_up_to_the_max() -> None:
    entry: Entry | None = None
    waits = []
    for strike in range(9):
        entry, wait = _cool(entry, T0 + strike)
        waits.append(wait)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert isinstance(entry, Cooldown)
    assert entry.strikes == 9


def test_rate_limited_honours_retry_after_and_still_counts_the_strike() -> None:
    entry, wait = _cool(None, T0, retry_after_s=120.0)
    assert wait == 120.0
    assert isinstance(entry, Cooldown)
    assert (entry.until, entry.strikes) == (T0 + 120, 1)
    entry, wait = _cool(entry, T0 + 120)
    assert wait == 2.0


def test_rate_limited_negative_retry_after_means_no_wait() -> None:
    entry, wait = _cool(None, T0, retry_after_s=-3.0)
    assert wait == 0.0
    assert isinstance(entry, Cooldown)
    assert entry.until == T0


def test_rate_limited_forgets_strikes_once_the_memory_expired() -> None:
    entry, _ = _cool(None, T0)
    entry, _ = _cool(entry, T0 + 1)
    assert isinstance(entry, Cooldown)
    assert entry.strikes == 2
    _, wait = _cool(entry, entry.expires_at)
    assert wait == 1.0


def test_success_resets_strikes() -> None:
    entry, _ = _cool(None, T0)
    assert succeeded(T0 + 5)(entry) == (None, None)
    _, wait = _cool(None, T0 + 6)
    assert wait == 1.0


def test_backoff_caps_huge_counts_without_overflow() -> None:
    assert backoff_s(30.0, 300.0, 10_000) == 300.0
    assert backoff_s(1.0, 60.0, 1) == 1.0


# Broken credentials


def test_auth_failure_blocks_for_broken_credential_s() -> None:
    entry, wait = auth_failed(PROFILE, T0, error=_error(status=401))(None)
    assert wait == 600.0
    assert entry == Broken(until=T0 + 600, expires_at=T0 + 600, last_error=_error(status=401))


def test_auth_failure_with_zero_block_changes_nothing() -> None:
    profile = ResilienceProfile(broken_credential_s=0)
    assert auth_failed(profile, T0, error=_error(status=403))(None) == (None, 0.0)


def test_broken_credential_expires() -> None:
    entry, _ = auth_failed(PROFILE, T0, error=_error(status=401))(None)
    assert live(entry, T0 + 599.9) is entry
    assert live(entry, T0 + 600) is None


def test_success_leaves_a_broken_credential_alone() -> None:
    entry, _ = auth_failed(PROFILE, T0, error=_error(status=401))(None)
    assert succeeded(T0 + 1)(entry) == (entry, None)


# Breaker


def test_breaker_counts_failures_below_the_threshold_without_opening() -> None:
    entry = _fail_times(4)
    assert (entry.failures, entry.open_until, entry.opens) == (4, None, 0)
    assert breaker_wait_s(entry, T0) == 0.0


def test_breaker_opens_at_the_threshold() -> None:
    entry = _fail_times(4)
    opened, wait = _fail(entry, T0 + 1)
    assert wait == 30.0
    assert isinstance(opened, Breaker)
    assert (opened.failures, opened.opens, opened.open_until) == (5, 1, T0 + 31)
    assert opened.expires_at == T0 + 31 + BREAKER_MEMORY_S


def test_breaker_opens_on_failure_rate_with_min_requests() -> None:
    opened, wait = _fail(None, T0, requests=20, failures=10)
    assert wait == 30.0
    assert isinstance(opened, Breaker)
    assert opened.open_until == T0 + 30


@pytest.mark.parametrize(("requests", "failures"), [(19, 19), (20, 9), (40, 19)])
def test_breaker_stays_closed_below_min_requests_or_rate(requests: int, failures: int) -> None:
    entry, wait = _fail(None, T0, requests=requests, failures=failures)
    assert wait == 0.0
    assert isinstance(entry, Breaker)
    assert entry.open_until is None


def test_breaker_failure_while_open_is_counted_but_does_not_extend() -> None:
    opened = _fail_times(5)
    entry, wait = _fail(opened, T0 + 10)
    assert wait == 0.0
    assert isinstance(entry, Breaker)
    assert (entry.failures, entry.open_until, entry.opens) == (6, opened.open_until, 1)


def test_breaker_half_open_after_open_s_and_one_probe_claims() -> None:
    opened = _fail_times(5)
    assert breaker_wait_s(opened, T0 + 29) == pytest.approx(1.0)
    assert breaker_wait_s(opened, T0 + 30) == PROBE
    claimed, won = claim(PROFILE, T0 + 30)(opened)
    assert won
    assert isinstance(claimed, Breaker)
    assert claimed.probe_until == T0 + 60
    assert claim(PROFILE, T0 + 31)(claimed) == (claimed, False)
    assert breaker_wait_s(claimed, T0 + 31) == pytest.approx(29.0)


def test_claim_while_open_refuses_and_while_closed_allows() -> None:
    opened = _fail_times(5)
    assert claim(PROFILE, T0 + 1)(opened) == (opened, False)
    assert claim(PROFILE, T0)(None) == (None, True)
    closed = _fail_times(2)
    assert claim(PROFILE, T0)(closed) == (closed, True)


def test_probe_claim_expires_after_probe_timeout() -> None:
    claimed, _ = claim(PROFILE, T0 + 30)(_fail_times(5))
    assert isinstance(claimed, Breaker)
    assert breaker_wait_s(claimed, T0 + 60) == PROBE
    again, won = claim(PROFILE, T0 + 60)(claimed)
    assert won
    assert isinstance(again, Breaker)
    assert again.probe_until == T0 + 90


def test_probe_success_closes_and_resets_counts() -> None:
    claimed, _ = claim(PROFILE, T0 + 30)(_fail_times(5))
    assert succeeded(T0 + 31)(claimed) == (None, None)


def test_success_while_open_changes_nothing() -> None:
    opened = _fail_times(5)
    assert succeeded(T0 + 1)(opened) == (opened, None)


def test_success_while_closed_resets_consecutive_failures() -> None:
    assert succeeded(T0)(_fail_times(3)) == (None, None)


def test_probe_failure_reopens_twice_as_long_up_to_max_open_s() -> None:
    entry: Entry | None = _fail_times(5)
    now = T0
    lengths = []
    for _ in range(6):
        assert isinstance(entry, Breaker)
        assert entry.open_until is not None
        now = entry.open_until
        entry, _ = claim(PROFILE, now)(entry)
        entry, wait = _fail(entry, now + 1)
        lengths.append(wait)
    assert lengths == [60, 120, 240, 300, 300, 300]
    assert isinstance(entry, Breaker)
    assert (entry.opens, entry.probe_until) == (7, None)


def test_breaker_is_forgotten_after_its_memory() -> None:
    entry = _fail_times(2)
    assert live(entry, T0 + BREAKER_MEMORY_S - 1) is entry
    assert live(entry, T0 + BREAKER_MEMORY_S) is None
    fresh, _ = _fail(entry, T0 + BREAKER_MEMORY_S)
    assert isinstance(fresh, Breaker)
    assert fresh.failures == 1


# Failure kinds → entries


def test_failure_key_routes_each_kind() -> None:
    assert failure_key(FailureKind.RATE_LIMITED, "openai/gpt-4o", "k1") == EntryKey(
        EntryKind.COOLDOWN, "openai/gpt-4o", "k1"
    )
    assert failure_key(FailureKind.AUTH, "openai/gpt-4o", "k1") == EntryKey(EntryKind.BROKEN, "openai", "k1")
    assert failure_key(FailureKind.FAILURE, "openai/gpt-4o", "k1") == EntryKey(EntryKind.BREAKER, "openai/gpt-4o", "")


def test_failure_step_of_each_kind() -> None:
    error = _error()
    cooldown, wait = failure_step(FailureKind.RATE_LIMITED, PROFILE, retry_after_s=7.0, error=error, window=(0, 0))(
        None
    )
    assert (type(cooldown), wait) == (Cooldown, 7.0)
    broken, wait = failure_step(FailureKind.AUTH, PROFILE, retry_after_s=None, error=error, window=(0, 0))(None)
    assert (type(broken), wait) == (Broken, 600.0)
    breaker, wait = failure_step(FailureKind.FAILURE, PROFILE, retry_after_s=None, error=error, window=(20, 20))(None)
    assert (type(breaker), wait) == (Breaker, 30.0)


# Combined waits and views


def test_combined_wait_is_the_largest_applicable_wait() -> None:
    cooldown, _ = _cool(None, T0, retry_after_s=10)
    broken, _ = auth_failed(PROFILE, T0, error=_error())(None)
    opened = _fail_times(5)
    assert combined_wait_s(None, None, None, T0) == 0.0
    assert combined_wait_s(cooldown, None, None, T0) == 10.0
    assert combined_wait_s(cooldown, broken, None, T0) == 600.0
    assert combined_wait_s(cooldown, None, opened, T0) == 30.0
    assert combined_wait_s(cooldown, None, opened, T0 + 25) == 5.0
    assert combined_wait_s(cooldown, None, opened, T0 + 40) == PROBE
    assert combined_wait_s(None, broken, opened, T0 + 40) == 560.0
    assert combined_wait_s(cooldown, None, None, T0 + 11) == 0.0
    assert combined_wait_s(None, None, _fail_times(2), T0) == 0.0


def test_view_of_each_state() -> None:
    key = EntryKey(EntryKind.BREAKER, "openai/gpt-4o", "")
    closed = _fail_times(2)
    opened = _fail_times(5)
    claimed, _ = claim(PROFILE, T0 + 30)(opened)
    assert isinstance(claimed, Breaker)
    moments = [(closed, T0), (opened, T0), (opened, T0 + 30), (claimed, T0 + 31), (claimed, T0 + 60)]
    assert [_state_until(view(key, entry, now)) for entry, now in moments] == [
        (EntryState.CLOSED, None),
        (EntryState.OPEN, T0 + 30),
        (EntryState.HALF_OPEN, None),
        (EntryState.HALF_OPEN, T0 + 60),
        (EntryState.HALF_OPEN, None),
    ]
    shown = view(key, opened, T0)
    assert shown is not None
    assert (shown.deployment, shown.provider, shown.credential, shown.consecutive_failures) == (
        "openai/gpt-4o",
        "openai",
        None,
        5,
    )


def _state_until(entry: HealthEntry | None) -> tuple[EntryState, float | None]:
    assert entry is not None
    return entry.state, entry.until


def test_view_of_cooldown_and_broken() -> None:
    cooldown, _ = _cool(None, T0)
    assert cooldown is not None
    shown = view(EntryKey(EntryKind.COOLDOWN, "openai/gpt-4o", "k1"), cooldown, T0)
    assert shown is not None
    assert (shown.state, shown.until, shown.consecutive_failures, shown.credential) == (
        EntryState.COOLING,
        T0 + 1,
        1,
        "k1",
    )
    assert view(EntryKey(EntryKind.COOLDOWN, "openai/gpt-4o", "k1"), cooldown, T0 + 1) is None
    broken, _ = auth_failed(PROFILE, T0, error=_error(status=401))(None)
    assert broken is not None
    shown = view(EntryKey(EntryKind.BROKEN, "openai", "k1"), broken, T0)
    assert shown is not None
    assert (shown.kind, shown.deployment, shown.provider, shown.state, shown.until) == (
        EntryKind.BROKEN,
        None,
        "openai",
        EntryState.BROKEN,
        T0 + 600,
    )
