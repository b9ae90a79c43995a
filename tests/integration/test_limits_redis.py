"""RedisLimiter against a real Redis: the shared scenarios, the reference model, server time, two processes, outages.

The shared server (``POLYROUTE_TEST_REDIS_URL``, default redis://127.0.0.1:6379/0) gets a unique key
prefix per test, deleted afterwards. Tests that stop Redis or flush its scripts start a private
``redis-server`` on a free port. Without Redis they skip, unless CI or POLYROUTE_TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.core.keys import Budget, Limits
from polyroute.errors import LimiterUnavailableError
from polyroute.limits.base import LEASE_TTL_S, Refusal
from polyroute.limits.redis import RedisLimiter
from tests.storage_fixtures import services_required
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

pytestmark = pytest.mark.redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _unreachable(url: str) -> str | None:
    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
            client.ping()
    except (OSError, redis.RedisError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _missing(message: str) -> None:
    if services_required():
        pytest.fail(f"{message} (CI or POLYROUTE_TEST_REQUIRE_SERVICES=1: Redis is required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def redis_server() -> str:
    """The shared test Redis's URL."""
    url = os.environ.get("POLYROUTE_TEST_REDIS_URL") or DEFAULT_URL
    problem = _unreachable(url)
    if problem is not None:
        _missing(f"Redis not reachable at {url}: {problem}")
    return url


def _delete_prefix(url: str, prefix: str) -> None:
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def prefix(redis_server: str) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    name = f"polyroute-test:{secrets.token_hex(6)}:"
    yield name
    _delete_prefix(redis_server, name)


@pytest.fixture
async def limiter(redis_server: str, prefix: str) -> AsyncIterator[RedisLimiter]:
    """A limiter on the caller's clock, so tests choose the time."""
    created = RedisLimiter(
        redis_server, prefix=prefix, clock="caller", timeout_s=5.0
    )  # a loaded machine is not a fault
    yield created
    await created.aclose()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
async def test_redis_limiter_scenario(limiter: RedisLimiter, scenario: Scenario) -> None:
    await scenario(limiter, "key_scenario")


@pytest.mark.parametrize("moment", CALENDAR_INSTANTS, ids=lambda moment: moment.isoformat())
async def test_redis_budget_periods_end_where_the_calendar_says(limiter: RedisLimiter, moment: datetime) -> None:
    now = moment.timestamp()
    assert await budget_waits(limiter, "key_calendar", now) == expected_waits(now)


def test_redis_limiter_matches_the_reference_model(redis_server: str, prefix: str) -> None:
    key_ids = itertools.count()

    def body() -> None:
        with asyncio.Runner() as runner:
            shared = RedisLimiter(redis_server, prefix=prefix, clock="caller")

            @settings(max_examples=300, deadline=None)
            @given(program=PROGRAMS)
            def run(program: Program) -> None:
                runner.run(check_against_model(shared, f"key_{next(key_ids)}", program))

            @settings(max_examples=100, deadline=None)
            @given(seconds=st.integers(0, 2**33), eighths=st.integers(0, 7))
            def calendar(seconds: int, eighths: int) -> None:
                now = seconds + eighths / 8
                assert runner.run(budget_waits(shared, f"key_{next(key_ids)}", now)) == expected_waits(now)

            try:
                run()
                calendar()
            finally:
                runner.run(shared.aclose())

    in_thread(body)


async def test_server_time_is_used_unless_the_caller_clock_is_chosen(redis_server: str, prefix: str) -> None:
    limits = Limits(requests_per_minute=1)
    server = RedisLimiter(redis_server, prefix=prefix)
    try:
        assert (await server.admit("key_clock", limits, NO_BUDGET, now=0.0, request_id="a")).admitted
        # Another host's clock a year ahead changes nothing: the script reads Redis's TIME.
        refused = await server.admit("key_clock", limits, NO_BUDGET, now=time.time() + 365 * 86400, request_id="b")
        assert refused.refusal is Refusal.REQUESTS
        assert refused.retry_after_s is not None and 55 < refused.retry_after_s <= 60
        assert (await server.state("key_clock", now=0.0)).requests["minute"] == 1
    finally:
        await server.aclose()


async def test_keys_share_one_hash_tag_and_expire(limiter: RedisLimiter, redis_server: str, prefix: str) -> None:
    limits = Limits(
        requests_per_minute=5, requests_per_hour=9, tokens_per_minute=100, tokens_per_day=500, max_concurrent=2
    )
    budget = Budget(daily_usd=5.0, weekly_usd=10.0, monthly_usd=20.0, total_usd=50.0)
    now = time.time()
    await limiter.admit("key_layout", limits, budget, now=now, request_id="r")
    await limiter.charge("key_layout", tokens=42, cost_usd=0.5, now=now)
    client = redis.asyncio.Redis.from_url(redis_server, decode_responses=True)
    try:
        keys = sorted([key async for key in client.scan_iter(match=f"{prefix}*")])
        suffixes = [key.removeprefix(f"{prefix}{{key_layout}}:") for key in keys]
        assert [suffix.split(":")[0] for suffix in suffixes] == ["lease", "req", "tok", "tok", "tok", "tok"] + [
            "usd"
        ] * 4
        for key in keys:
            ttl_ms = await client.pttl(key)
            if key.endswith(":usd:t"):
                assert ttl_ms == -1, key  # the total is never forgotten
            else:
                assert 0 < ttl_ms <= (31 * 86400 + 3600) * 1000, key
        assert await client.pttl(f"{prefix}{{key_layout}}:req") <= 3600 * 1000
        assert await client.pttl(f"{prefix}{{key_layout}}:lease") <= LEASE_TTL_S * 1000
    finally:
        await client.aclose()


def _hammer(url: str, prefix: str, limits: dict[str, int], barrier: Any, results: Any) -> None:
    """One process: 10 concurrent tasks, 20 admissions each, as soon as every process is ready."""

    async def run() -> int:
        limiter = RedisLimiter(url, prefix=prefix)
        await limiter.state("key_warm", now=0.0)  # connect before the start line
        await asyncio.to_thread(barrier.wait, 60)
        admitted = 0

        async def task() -> None:
            nonlocal admitted
            for _ in range(20):
                decision = await limiter.admit(
                    "key_shared", Limits(**limits), NO_BUDGET, now=time.time(), request_id="x"
                )
                admitted += decision.admitted

        await asyncio.gather(*(task() for _ in range(10)))
        await limiter.aclose()
        return admitted

    results.put(asyncio.run(run()))


@pytest.mark.parametrize("limits", [{"requests_per_minute": 37}, {"max_concurrent": 23}], ids=["requests", "leases"])
def test_two_processes_admit_exactly_the_limit(redis_server: str, limits: dict[str, int]) -> None:
    name = f"polyroute-test:{secrets.token_hex(6)}:"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_hammer, args=(redis_server, name, limits, barrier, results)) for _ in range(2)]
    try:
        for worker in workers:
            worker.start()
        admitted = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(30)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        _delete_prefix(redis_server, name)
    assert sum(admitted) == next(iter(limits.values()))


async def test_an_unreachable_redis_raises_limiter_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    try:
        with pytest.raises(LimiterUnavailableError) as caught:
            await limiter.admit("key_x", Limits(requests_per_minute=1), NO_BUDGET, now=T0, request_id="r")
        assert (caught.value.status_code, caught.value.code) == (503, "limiter_unavailable")
    finally:
        await limiter.aclose()


async def test_a_redis_that_never_answers_times_out_as_limiter_unavailable() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog and are never read
        limiter = RedisLimiter(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_s=0.2)
        try:
            calls = [
                limiter.admit("key_x", Limits(max_concurrent=1), NO_BUDGET, now=T0, request_id="r"),
                limiter.release("key_x", "lease"),
                limiter.state("key_x", now=T0),
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(LimiterUnavailableError):
                    await call
                assert time.monotonic() - started < 2.0
        finally:
            await limiter.aclose()


class PrivateRedis:
    """A ``redis-server`` of our own on a free port, to stop and flush without disturbing anyone."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", *arguments, "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while _unreachable(self.url) is not None:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private Redis server (needs the ``redis-server`` binary)."""
    if shutil.which("redis-server") is None:
        _missing("redis-server is not installed: cannot start a private Redis")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_scripts_are_loaded_again_after_a_flush_and_a_restart(private_redis: PrivateRedis) -> None:
    limits = Limits(requests_per_minute=2, tokens_per_minute=1000)
    limiter = RedisLimiter(private_redis.url, clock="caller", timeout_s=0.5)
    client = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        assert (await limiter.admit("key_r", limits, NO_BUDGET, now=T0, request_id="a")).admitted
        await client.script_flush()
        assert (await limiter.admit("key_r", limits, NO_BUDGET, now=T0 + 1, request_id="b")).admitted
        private_redis.stop()
        with pytest.raises(LimiterUnavailableError):
            await limiter.admit("key_r", limits, NO_BUDGET, now=T0 + 2, request_id="c")
        with pytest.raises(LimiterUnavailableError):
            await limiter.charge("key_r", tokens=5, cost_usd=None, now=T0 + 2)
        private_redis.start()
        # A fresh server: no data, no scripts; the pooled connection is replaced and the script loaded.
        assert (await limiter.admit("key_r", limits, NO_BUDGET, now=T0 + 3, request_id="d")).admitted
        assert (await limiter.state("key_r", now=T0 + 3)).requests["minute"] == 1
    finally:
        await client.aclose()
        await limiter.aclose()
