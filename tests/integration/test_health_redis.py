"""RedisHealth against a real Redis: state shared between instances, atomic probe claims, outages.

Each test uses its own key prefix on the shared test server (``redis_url`` from tests/redis_fixtures.py)
and deletes its keys afterwards. Without Redis the tests skip, unless CI or POLYROUTE_TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Protocol

import pytest
import redis.asyncio

from polyroute.health import PROBE, EntryKind, EntryState, FailureKind, Health, RedisHealth, ResilienceProfile

pytestmark = pytest.mark.redis

GPT = "openai/gpt-4o"
FAST = ResilienceProfile(failure_threshold=3, open_s=30, max_open_s=120)


class Make(Protocol):
    """Starts a RedisHealth on the test's prefix (closed and cleaned up after the test)."""

    def __call__(self, profile: ResilienceProfile | None = FAST, url: str | None = None) -> Awaitable[RedisHealth]: ...


class Clock:
    """Epoch time that tests move forward; shared by the instances of one test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def eventually(check: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the change did not arrive in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make(redis_url: str, clock: Clock) -> AsyncIterator[Make]:
    """Starts RedisHealth instances on one fresh prefix; closes them and deletes the prefix's keys."""
    prefix = f"test-health-{secrets.token_hex(6)}"
    async with AsyncExitStack() as stack:

        async def start(profile: ResilienceProfile | None = FAST, url: str | None = None) -> RedisHealth:
            health = RedisHealth(url or redis_url, prefix=prefix, clock=clock, profile=profile)
            await health.start()
            stack.push_async_callback(health.aclose)
            return health

        yield start
    client = redis.asyncio.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match="{" + prefix + "}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_health_satisfies_the_protocol(make: Make) -> None:
    health: Health = await make()
    assert health.wait_s(GPT, "k1") == 0.0


async def test_failures_on_one_instance_open_the_breaker_on_another(make: Make) -> None:
    a, b = await make(), await make()
    assert [await a.failure(GPT, "k1", FailureKind.FAILURE, status=503) for _ in range(3)] == [0.0, 0.0, 30.0]
    assert a.wait_s(GPT, "k1") == 30.0
    await eventually(lambda: b.wait_s(GPT, "k2") == 30.0)
    [entry] = b.entries()
    assert (entry.kind, entry.state, entry.consecutive_failures) == (EntryKind.BREAKER, EntryState.OPEN, 3)


async def test_cooldowns_and_broken_credentials_are_shared(make: Make) -> None:
    a, b = await make(), await make()
    assert await a.failure(GPT, "k1", FailureKind.RATE_LIMITED, retry_after_s=12.0, status=429) == 12.0
    assert await a.failure(GPT, "k2", FailureKind.AUTH, status=401, message="bad key") == 600.0
    await eventually(lambda: b.wait_s(GPT, "k1") == 12.0 and b.wait_s("openai/o3", "k2") == 600.0)
    assert await b.failure(GPT, "k1", FailureKind.RATE_LIMITED) == 2.0  # the strike made on A counts on B


async def test_concurrent_failures_on_two_instances_are_all_counted(make: Make) -> None:
    profile = ResilienceProfile(failure_threshold=1000)
    a, b = await make(profile), await make(profile)
    await asyncio.gather(*(h.failure(GPT, "k1", FailureKind.FAILURE) for h in (a, b) for _ in range(15)))
    await eventually(lambda: [e.consecutive_failures for e in a.entries()] == [30])
    await eventually(lambda: [e.consecutive_failures for e in b.entries()] == [30])


async def test_only_one_instance_wins_the_probe(make: Make, clock: Clock) -> None:
    a, b = await make(), await make()
    for _ in range(3):
        await a.failure(GPT, "k1", FailureKind.FAILURE)
    await eventually(lambda: b.wait_s(GPT, "k1") > 0)
    clock.now += 30
    assert a.wait_s(GPT, "k1") == PROBE
    assert b.wait_s(GPT, "k1") == PROBE
    claims = await asyncio.gather(*(h.claim_probe(GPT) for _ in range(5) for h in (a, b)))
    assert sorted(claims) == [False] * 9 + [True]
    await eventually(lambda: a.wait_s(GPT, "k1") == 30.0 and b.wait_s(GPT, "k1") == 30.0)


async def test_probe_failure_reopens_longer_and_success_closes_everywhere(make: Make, clock: Clock) -> None:
    a, b = await make(), await make()
    for _ in range(3):
        await a.failure(GPT, "k1", FailureKind.FAILURE)
    clock.now += 30
    await eventually(lambda: b.wait_s(GPT, "k1") == PROBE)
    assert await b.claim_probe(GPT)
    assert await b.failure(GPT, "k1", FailureKind.FAILURE) == 60.0
    await eventually(lambda: a.wait_s(GPT, "k1") == 60.0)
    clock.now += 60
    assert await a.claim_probe(GPT)
    a.success(GPT, "k1")
    assert a.wait_s(GPT, "k1") == 0.0
    await eventually(lambda: b.entries() == [])


async def test_probe_claim_expires_for_a_crashed_prober(make: Make, clock: Clock) -> None:
    profile = ResilienceProfile(failure_threshold=1, probe_timeout_s=5)
    a, b = await make(profile), await make(profile)
    await a.failure(GPT, "k1", FailureKind.FAILURE)
    clock.now += 30
    assert await a.claim_probe(GPT)
    await a.aclose()
    await eventually(lambda: b.wait_s(GPT, "k1") == 5.0)
    assert not await b.claim_probe(GPT)
    clock.now += 5
    assert await b.claim_probe(GPT)


async def test_reset_on_one_instance_clears_the_other(make: Make) -> None:
    a, b = await make(), await make()
    for _ in range(3):
        await a.failure(GPT, "k1", FailureKind.FAILURE)
    await a.failure(GPT, "k1", FailureKind.RATE_LIMITED)
    await a.failure("openai/o3", "k1", FailureKind.RATE_LIMITED)
    await eventually(lambda: len(b.entries()) == 3)
    assert await b.reset(GPT) == 2
    await eventually(lambda: a.wait_s(GPT, "k1") == 0.0)
    assert [entry.deployment for entry in a.entries()] == ["openai/o3"]
    assert await b.reset() == 1
    await eventually(lambda: a.entries() == [])


async def test_clear_on_one_instance_clears_the_other(make: Make) -> None:
    a, b = await make(), await make()
    await a.failure(GPT, "k1", FailureKind.AUTH)
    await a.failure(GPT, "k1", FailureKind.RATE_LIMITED)
    await a.failure(GPT, "k2", FailureKind.RATE_LIMITED)
    await eventually(lambda: len(b.entries()) == 3)
    assert await b.clear(GPT, "k1") == 2
    await eventually(lambda: [(e.kind, e.credential) for e in a.entries()] == [(EntryKind.COOLDOWN, "k2")])


async def test_profile_set_on_one_instance_is_adopted_by_the_other(make: Make) -> None:
    a, b = await make(), await make()
    profile = ResilienceProfile(failure_threshold=2, open_s=7, max_open_s=70)
    await a.set_profile(profile)
    assert a.profile == profile
    await eventually(lambda: b.profile == profile)
    assert [await b.failure(GPT, "k1", FailureKind.FAILURE) for _ in range(2)] == [0.0, 7.0]


async def test_a_fresh_instance_loads_the_stored_state_and_profile(make: Make) -> None:
    a = await make()
    for _ in range(3):
        await a.failure(GPT, "k1", FailureKind.FAILURE, status=500, message="down")
    await a.failure("anthropic/claude", "-", FailureKind.AUTH, status=403)
    await a.set_profile(ResilienceProfile(open_s=3, max_open_s=3))
    fresh = await make(profile=None)
    assert fresh.profile.open_s == 3.0
    assert fresh.wait_s(GPT, "k9") == 30.0
    assert fresh.wait_s("anthropic/claude", "-") == 600.0
    assert [entry.to_json() for entry in fresh.entries()] == [entry.to_json() for entry in a.entries()]


async def test_subscriber_reconnects_and_reloads_missed_changes(make: Make, redis_url: str) -> None:
    a, b = await make(), await make()
    admin = redis.asyncio.Redis.from_url(redis_url)
    clients = await admin.client_list()
    [listener] = [c for c in clients if c.get("name") == f"polyroute-health-{b.instance_id}"]
    await admin.client_kill_filter(_id=listener["id"])
    await admin.aclose()
    for _ in range(3):
        await a.failure(GPT, "k1", FailureKind.FAILURE)
    await eventually(lambda: b.wait_s(GPT, "k1") == 30.0, timeout_s=5.0)


async def test_change_bus_delivers_a_topic_to_other_instances(make: Make) -> None:
    a, b = await make(), await make()
    seen_a: list[str] = []
    seen_b: list[str] = []
    a.bus.subscribe(seen_a.append)

    async def reload(topic: str) -> None:
        seen_b.append(topic)

    b.bus.subscribe(reload)
    await a.bus.publish("combos")
    assert seen_a == ["combos"]
    await eventually(lambda: seen_b == ["combos"])
    await asyncio.sleep(0.05)
    assert seen_a == ["combos"]


async def test_unreachable_redis_degrades_to_local_state(make: Make, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    health = await make(url=f"redis://127.0.0.1:{_free_port()}/0")
    assert [await health.failure(GPT, "k1", FailureKind.FAILURE) for _ in range(3)] == [0.0, 0.0, 30.0]
    assert await health.failure(GPT, "k1", FailureKind.RATE_LIMITED, retry_after_s=40.0) == 40.0
    assert health.wait_s(GPT, "k1") == 40.0
    assert await health.claim_probe("openai/o3")
    health.success(GPT, "k1")
    await health.set_profile(ResilienceProfile(open_s=1, max_open_s=1))
    assert health.profile.open_s == 1.0
    seen: list[str] = []
    health.bus.subscribe(seen.append)
    await health.bus.publish("combos")
    assert seen == ["combos"]
    assert await health.reset() == 1
    assert health.entries() == []
    assert any("Redis" in record.getMessage() for record in caplog.records)


async def test_unreachable_redis_does_not_slow_failures_down(make: Make) -> None:
    health = await make(url=f"redis://127.0.0.1:{_free_port()}/0")
    started = time.monotonic()
    for _ in range(50):
        await health.failure(GPT, "k1", FailureKind.FAILURE)
    assert time.monotonic() - started < 1.0
