"""InProcessHealth end to end with an injected clock, and the in-process change bus."""

from __future__ import annotations

import pytest

from polyroute.health import (
    PROBE,
    EntryKind,
    EntryState,
    FailureKind,
    Health,
    InProcessChangeBus,
    InProcessHealth,
    ResilienceProfile,
)
from polyroute.health.memory import MAX_MESSAGE_CHARS

T0 = 1_700_000_000.0
GPT = "openai/gpt-4o"
MINI = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> InProcessHealth:
    return InProcessHealth(clock=clock)


async def _fail(health: Health, count: int, deployment: str = GPT, credential: str = "k1") -> list[float]:
    return [await health.failure(deployment, credential, FailureKind.FAILURE, status=503) for _ in range(count)]


def test_in_process_health_satisfies_the_protocol() -> None:
    health: Health = InProcessHealth()
    assert health.wait_s(GPT, "k1") == 0.0
    assert health.entries() == []


async def test_rate_limited_cools_down_that_credential_only(health: InProcessHealth, clock: Clock) -> None:
    assert await health.failure(GPT, "k1", FailureKind.RATE_LIMITED, status=429) == 1.0
    assert health.wait_s(GPT, "k1") == 1.0
    assert health.wait_s(GPT, "k2") == 0.0
    assert health.wait_s(MINI, "k1") == 0.0
    clock.now += 0.25
    assert health.wait_s(GPT, "k1") == 0.75
    clock.now += 0.75
    assert health.wait_s(GPT, "k1") == 0.0


async def test_rate_limited_backs_off_exponentially_and_success_resets(health: InProcessHealth, clock: Clock) -> None:
    waits = []
    for _ in range(4):
        waits.append(await health.failure(GPT, "k1", FailureKind.RATE_LIMITED))
        clock.now += waits[-1]
    assert waits == [1.0, 2.0, 4.0, 8.0]
    health.success(GPT, "k1")
    assert await health.failure(GPT, "k1", FailureKind.RATE_LIMITED) == 1.0


async def test_retry_after_is_honoured(health: InProcessHealth) -> None:
    assert await health.failure(GPT, "k1", FailureKind.RATE_LIMITED, retry_after_s=42.0) == 42.0
    assert health.wait_s(GPT, "k1") == 42.0


async def test_auth_failure_blocks_the_credential_on_every_deployment_of_the_provider(
    health: InProcessHealth, clock: Clock
) -> None:
    assert await health.failure(GPT, "k1", FailureKind.AUTH, status=401, message="invalid key") == 600.0
    assert health.wait_s(GPT, "k1") == 600.0
    assert health.wait_s(MINI, "k1") == 600.0
    assert health.wait_s(MINI, "k2") == 0.0
    assert health.wait_s(CLAUDE, "k1") == 0.0
    [entry] = health.entries()
    assert (entry.kind, entry.provider, entry.credential, entry.state) == (
        EntryKind.BROKEN,
        "openai",
        "k1",
        EntryState.BROKEN,
    )
    assert entry.last_error is not None
    assert (entry.last_error.status, entry.last_error.message) == (401, "invalid key")
    clock.now += 600
    assert health.wait_s(MINI, "k1") == 0.0
    assert health.entries() == []


async def test_rate_limits_and_auth_failures_do_not_count_for_the_breaker(health: InProcessHealth) -> None:
    for _ in range(10):
        await health.failure(GPT, "k1", FailureKind.RATE_LIMITED)
        await health.failure(GPT, "k1", FailureKind.AUTH)
    assert {entry.kind for entry in health.entries()} == {EntryKind.COOLDOWN, EntryKind.BROKEN}


async def test_breaker_lifecycle(health: InProcessHealth, clock: Clock) -> None:
    assert await _fail(health, 5) == [0.0, 0.0, 0.0, 0.0, 30.0]
    assert health.wait_s(GPT, "k1") == 30.0
    assert health.wait_s(GPT, "k2") == 30.0
    assert health.wait_s(MINI, "k1") == 0.0
    clock.now += 30
    assert health.wait_s(GPT, "k1") == PROBE
    assert await health.claim_probe(GPT)
    assert not await health.claim_probe(GPT)
    assert health.wait_s(GPT, "k1") == 30.0
    assert await _fail(health, 1) == [60.0]
    clock.now += 60
    assert health.wait_s(GPT, "k1") == PROBE
    assert await health.claim_probe(GPT)
    health.success(GPT, "k1")
    assert health.wait_s(GPT, "k1") == 0.0
    assert health.entries() == []
    assert await _fail(health, 4) == [0.0] * 4


async def test_crashed_prober_lets_another_claim_after_probe_timeout(health: InProcessHealth, clock: Clock) -> None:
    await _fail(health, 5)
    clock.now += 30
    assert await health.claim_probe(GPT)
    clock.now += 29.5
    assert health.wait_s(GPT, "k1") == 0.5
    assert not await health.claim_probe(GPT)
    clock.now += 0.5
    assert health.wait_s(GPT, "k1") == PROBE
    assert await health.claim_probe(GPT)


async def test_success_while_open_does_not_close(health: InProcessHealth) -> None:
    await _fail(health, 5)
    health.success(GPT, "k1")
    assert health.wait_s(GPT, "k1") == 30.0


async def test_success_resets_consecutive_failures(health: InProcessHealth) -> None:
    await _fail(health, 4)
    health.success(GPT, "k1")
    assert health.entries() == []
    assert await _fail(health, 4) == [0.0] * 4


async def test_breaker_opens_on_failure_rate(clock: Clock) -> None:
    health = InProcessHealth(ResilienceProfile(failure_threshold=1000), clock=clock)
    for _ in range(10):
        health.success(GPT, "k1")
        clock.now += 0.5
    assert await _fail(health, 9) == [0.0] * 9
    assert await _fail(health, 1) == [30.0]


async def test_failure_rate_needs_min_requests_within_the_window(clock: Clock) -> None:
    health = InProcessHealth(ResilienceProfile(failure_threshold=1000, min_requests=4), clock=clock)
    await _fail(health, 2)
    health.success(GPT, "k1")
    clock.now += 61
    assert await _fail(health, 1) == [0.0]
    health.success(GPT, "k1")
    health.success(GPT, "k1")
    assert await _fail(health, 1) == [30.0]


async def test_closing_the_breaker_starts_the_rate_window_afresh(clock: Clock) -> None:
    health = InProcessHealth(ResilienceProfile(failure_threshold=1000, min_requests=4), clock=clock)
    assert await _fail(health, 4) == [0.0, 0.0, 0.0, 30.0]
    clock.now += 30
    assert await health.claim_probe(GPT)
    health.success(GPT, "k1")
    assert await _fail(health, 2) == [0.0, 0.0]


async def test_wait_s_is_the_largest_applicable_wait(health: InProcessHealth, clock: Clock) -> None:
    await health.failure(GPT, "k1", FailureKind.RATE_LIMITED, retry_after_s=100.0)
    await _fail(health, 5)
    assert health.wait_s(GPT, "k1") == 100.0
    assert health.wait_s(GPT, "k2") == 30.0
    clock.now += 30
    assert health.wait_s(GPT, "k1") == 70.0
    assert health.wait_s(GPT, "k2") == PROBE
    await health.failure(MINI, "k2", FailureKind.AUTH)
    assert health.wait_s(GPT, "k2") == 600.0


async def test_entries_shape(health: InProcessHealth) -> None:
    await health.failure(GPT, "k1", FailureKind.RATE_LIMITED, retry_after_s=5.0, status=429, message="slow down")
    await _fail(health, 2)
    await health.failure(CLAUDE, "-", FailureKind.AUTH, status=403, message="forbidden")
    assert [entry.to_json() for entry in health.entries()] == [
        {
            "kind": "breaker",
            "deployment": GPT,
            "provider": "openai",
            "credential": None,
            "state": "closed",
            "until": None,
            "consecutive_failures": 2,
            "last_error": {"status": 503, "message": "", "at": T0},
        },
        {
            "kind": "broken",
            "deployment": None,
            "provider": "anthropic",
            "credential": "-",
            "state": "broken",
            "until": T0 + 600,
            "consecutive_failures": 0,
            "last_error": {"status": 403, "message": "forbidden", "at": T0},
        },
        {
            "kind": "cooldown",
            "deployment": GPT,
            "provider": "openai",
            "credential": "k1",
            "state": "cooling",
            "until": T0 + 5,
            "consecutive_failures": 1,
            "last_error": {"status": 429, "message": "slow down", "at": T0},
        },
    ]


async def test_long_messages_are_truncated(health: InProcessHealth) -> None:
    await health.failure(GPT, "k1", FailureKind.FAILURE, message="x" * 10_000)
    [entry] = health.entries()
    assert entry.last_error is not None
    assert len(entry.last_error.message) == MAX_MESSAGE_CHARS


async def test_reset_one_deployment_clears_its_breaker_and_cooldowns_only(health: InProcessHealth) -> None:
    await _fail(health, 5)
    await health.failure(GPT, "k1", FailureKind.RATE_LIMITED)
    await health.failure(GPT, "k2", FailureKind.RATE_LIMITED)
    await health.failure(MINI, "k1", FailureKind.RATE_LIMITED)
    await health.failure(GPT, "k3", FailureKind.AUTH)
    assert await health.reset(GPT) == 3
    assert health.wait_s(GPT, "k1") == 0.0
    assert health.wait_s(MINI, "k1") == 1.0
    assert health.wait_s(GPT, "k3") == 600.0
    assert await health.reset() == 2
    assert health.entries() == []
    assert health.wait_s(GPT, "k3") == 0.0


async def test_clear_removes_cooldowns_and_broken_marks(health: InProcessHealth) -> None:
    await health.failure(GPT, "k1", FailureKind.RATE_LIMITED)
    await health.failure(GPT, "k2", FailureKind.RATE_LIMITED)
    await health.failure(MINI, "k1", FailureKind.AUTH)
    await _fail(health, 5)
    assert await health.clear(GPT, "k1") == 2
    assert health.wait_s(GPT, "k2") == 30.0
    assert {(entry.kind, entry.credential) for entry in health.entries()} == {
        (EntryKind.COOLDOWN, "k2"),
        (EntryKind.BREAKER, None),
    }
    assert await health.clear(GPT) == 1
    assert [entry.kind for entry in health.entries()] == [EntryKind.BREAKER]


async def test_set_profile_applies_to_later_failures(health: InProcessHealth) -> None:
    await health.set_profile(ResilienceProfile(failure_threshold=2, open_s=3, max_open_s=3))
    assert await _fail(health, 2) == [0.0, 3.0]
    assert health.profile.failure_threshold == 2


async def test_start_and_aclose_are_harmless(health: InProcessHealth) -> None:
    await health.start()
    await health.aclose()


async def test_success_when_clean_creates_no_state(health: InProcessHealth) -> None:
    for _ in range(100):
        health.success(GPT, "k1")
    assert health.entries() == []
    assert health.wait_s(GPT, "k1") == 0.0


async def test_in_process_bus_calls_every_subscriber() -> None:
    bus = InProcessChangeBus()
    seen: list[str] = []

    async def async_callback(topic: str) -> None:
        seen.append(f"async:{topic}")

    def failing(topic: str) -> None:
        raise RuntimeError(topic)

    bus.subscribe(seen.append)
    bus.subscribe(failing)
    bus.subscribe(async_callback)
    await bus.publish("combos")
    assert seen == ["combos", "async:combos"]


async def test_health_exposes_a_change_bus(health: InProcessHealth) -> None:
    seen: list[str] = []
    health.bus.subscribe(seen.append)
    await health.bus.publish("pricing")
    assert seen == ["pricing"]
