"""RedisLimiter against a real Redis: the shared scenarios, the reference model, server time, two processes, outages,
hundreds of concurrent requests, and writes whose answers are lost or that never reach Redis.

The shared server (``POLYROUTE_TEST_REDIS_URL``, default redis://127.0.0.1:6379/0) gets a unique key
prefix per test, deleted afterwards. Tests that stop Redis or flush its scripts start a private
``redis-server`` on a free port; tests that lose answers put a ``LossyProxy`` in front of the shared one.
Without Redis they skip, unless CI or POLYROUTE_TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
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
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from polyroute.api.access import Gate, Ticket
from polyroute.core.keys import ApiKey, Budget, KeyType, Limits
from polyroute.core.messages import Usage
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
                limiter.state("key_x", now=T0),
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(LimiterUnavailableError):
                    await call
                assert time.monotonic() - started < 2.0
            started = time.monotonic()
            await limiter.release("key_x", "lease")  # kept for a retry, not raised: the answer has gone out
            assert time.monotonic() - started < 2.0
            assert len(limiter._pending) == 1
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
        await limiter.charge("key_r", tokens=5, cost_usd=None, now=T0 + 2)  # never sent: kept for a retry
        private_redis.start()
        # A fresh server: no data, no scripts; the pooled connection is replaced and the script loaded.
        assert (await limiter.admit("key_r", limits, NO_BUDGET, now=T0 + 3, request_id="d")).admitted
        await drained(limiter)
        state = await limiter.state("key_r", now=T0 + 3)
        assert (state.requests["minute"], state.tokens["minute"]) == (1, 5)
    finally:
        await client.aclose()
        await limiter.aclose()


async def drained(limiter: RedisLimiter, timeout_s: float = 10.0) -> None:
    """Wait until every write the limiter kept for a retry has landed."""
    deadline = time.monotonic() + timeout_s
    while len(limiter._pending):
        assert time.monotonic() < deadline, f"{len(limiter._pending)} writes still pending"
        await asyncio.sleep(0.02)


class LossyProxy:
    """A TCP proxy in front of Redis that passes everything, loses every answer, or is down."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._db = parts.path
        self.mode: Literal["pass", "lose_answers", "down"] = "pass"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        """Listen on a free port; the URL to give the limiter."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}{self._db}"

    def go_down(self) -> None:
        """Drop every open connection and refuse new ones (until ``mode`` changes)."""
        self.mode = "down"
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def aclose(self) -> None:
        self.go_down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "down":
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pump(reader, upstream_writer, answers=False), self._pump(upstream_reader, writer, answers=True)
        )
        self._writers -= {writer, upstream_writer}

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answers: bool) -> None:
        try:
            while data := await source.read(65536):
                if not (answers and self.mode == "lose_answers"):
                    sink.write(data)
                    await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()


@pytest.fixture
async def proxy(redis_server: str) -> AsyncIterator[LossyProxy]:
    """A ``LossyProxy`` in front of the shared Redis."""
    created = LossyProxy(redis_server)
    yield created
    await created.aclose()


def _key(limits: Limits, budget: Budget = NO_BUDGET) -> ApiKey:
    return ApiKey(
        id=f"key_{secrets.token_hex(4)}",
        type=KeyType.FULL,
        digest="0" * 64,
        display="pr_test",
        limits=limits,
        budget=budget,
        created_at=T0,
    )


@pytest.mark.parametrize("pool", [8, None], ids=["8_connections", "default_pool"])
async def test_hundreds_of_concurrent_requests_are_admitted_settled_and_leave_no_lease(
    redis_server: str, prefix: str, pool: int | None
) -> None:
    """Regression: 64+ concurrent requests per worker got 503 (MaxConnectionsError), leaked leases, lost charges."""
    sizing: dict[str, Any] = {} if pool is None else {"max_connections": pool, "pool_timeout_s": 30.0}
    limiter = RedisLimiter(redis_server, prefix=prefix, **sizing)
    gate = Gate(limiter)
    key = _key(
        Limits(requests_per_minute=10**6, tokens_per_minute=10**9, max_concurrent=10**4), Budget(daily_usd=10.0**6)
    )
    requests = 600
    try:

        async def one(number: int) -> None:
            admission = await limiter.admit(key.id, key.limits, key.budget, now=time.time(), request_id=str(number))
            assert admission.admitted and admission.lease is not None
            await asyncio.sleep(0)
            await gate.settle(Ticket(key, admission), Usage(input_tokens=3, output_tokens=4), 0.001)

        await asyncio.gather(*(one(number) for number in range(requests)))
        connections = limiter._redis.connection_pool
        assert len(connections._available_connections) + len(connections._in_use_connections) <= (pool or 128)
        assert len(limiter._pending) == 0  # nothing needed a retry
        state = await limiter.state(key.id, now=time.time())
        assert (state.requests["minute"], state.concurrent, state.tokens["minute"]) == (requests, 0, 7 * requests)
        assert state.spend_usd["total"] == pytest.approx(0.001 * requests)
    finally:
        await limiter.aclose()


async def test_an_admission_that_waits_too_long_for_a_connection_is_refused_and_takes_nothing(
    redis_server: str, prefix: str
) -> None:
    limiter = RedisLimiter(redis_server, prefix=prefix, max_connections=1, pool_timeout_s=0.05)
    limits = Limits(requests_per_minute=10, max_concurrent=5)
    try:
        limiter._slots.free = 0  # the only connection is busy
        with pytest.raises(LimiterUnavailableError, match="no free connection within 0.05 s") as caught:
            await limiter.admit("key_busy", limits, NO_BUDGET, now=T0, request_id="r")
        assert (caught.value.status_code, caught.value.code) == (503, "limiter_unavailable")
        assert len(limiter._pending) == 0  # never sent: nothing to give back
        limiter._slots.release()
        state = await limiter.state("key_busy", now=T0)
        assert (state.requests["minute"], state.concurrent) == (0, 0)
    finally:
        await limiter.aclose()


async def test_an_admission_whose_answer_is_lost_gives_back_its_lease(
    redis_server: str, prefix: str, proxy: LossyProxy
) -> None:
    limiter = RedisLimiter(await proxy.start(), prefix=prefix, clock="caller", timeout_s=0.2)
    direct = redis.asyncio.Redis.from_url(redis_server)
    limits = Limits(requests_per_minute=10, max_concurrent=5)
    leases = f"{prefix}{{key_lost}}:lease"
    try:
        kept = await limiter.admit("key_lost", limits, NO_BUDGET, now=T0, request_id="a")
        proxy.mode = "lose_answers"
        with pytest.raises(LimiterUnavailableError):
            await limiter.admit("key_lost", limits, NO_BUDGET, now=T0 + 1, request_id="b")
        assert await direct.zcard(leases) == 2  # the script ran; only its answer was lost
        await asyncio.sleep(0.5)  # the undoing is due, and cannot get through yet
        assert (await direct.zcard(leases), len(limiter._pending)) == (2, 1)
        proxy.mode = "pass"
        await drained(limiter)
        assert await direct.zrange(leases, 0, -1) == [kept.lease.encode() if kept.lease else b""]
        state = await limiter.state("key_lost", now=T0 + 1)
        assert (state.requests["minute"], state.concurrent) == (1, 1)
    finally:
        await direct.aclose()
        await limiter.aclose()


async def test_a_settle_that_cannot_reach_redis_is_retried_until_it_lands(
    prefix: str, proxy: LossyProxy, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RedisLimiter(await proxy.start(), prefix=prefix, timeout_s=0.2)
    key = _key(Limits(tokens_per_minute=10**6, max_concurrent=3), Budget(total_usd=100.0))
    try:
        admission = await limiter.admit(key.id, key.limits, key.budget, now=time.time(), request_id="r")
        proxy.go_down()
        await Gate(limiter).settle(Ticket(key, admission), Usage(input_tokens=10, output_tokens=5), 0.25)
        assert len(limiter._pending) == 2  # the release and the charge, neither sent
        await asyncio.sleep(0.3)  # a few attempts while Redis stays out of reach
        proxy.mode = "pass"
        await drained(limiter)
        state = await limiter.state(key.id, now=time.time())
        assert (state.concurrent, state.tokens["minute"], state.spend_usd["total"]) == (0, 15, 0.25)
        assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    finally:
        await limiter.aclose()


async def test_a_charge_whose_answer_is_lost_is_counted_once_and_logged(
    prefix: str, proxy: LossyProxy, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RedisLimiter(await proxy.start(), prefix=prefix, clock="caller", timeout_s=0.2)
    limits = Limits(tokens_per_minute=1000)
    try:
        await limiter.admit("key_charge", limits, NO_BUDGET, now=T0, request_id="r")
        proxy.mode = "lose_answers"
        await limiter.charge("key_charge", tokens=7, cost_usd=None, now=T0)
        assert len(limiter._pending) == 0  # it may have run: not sent again
        assert "a charge of 7 tokens, None USD got no answer and may not be recorded" in caplog.text
        proxy.mode = "pass"
        assert (await limiter.state("key_charge", now=T0)).tokens["minute"] == 7
    finally:
        await limiter.aclose()


async def test_writes_beyond_the_retry_queue_are_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", timeout_s=0.2, max_pending=2)
    limiter._plans["key_gone"] = 7  # as if admitted with token limits and a budget
    try:
        for number in range(3):
            await limiter.release("key_gone", f"lease-{number}")
        await limiter.charge("key_gone", tokens=9, cost_usd=0.5, now=T0)
        assert len(limiter._pending) == 2
        # The first drop is reported at once, later ones together at most every 10 s (here: at the close,
        # with the two writes still pending then).
        assert [record.getMessage().split(": ", 1)[1] for record in caplog.records] == [
            "1 lease releases (they expire after 900 s), 0 charges (0 tokens, 0.000000 USD not counted)"
        ]
    finally:
        await limiter.aclose()
    assert caplog.records[-1].getMessage().split(": ", 1)[1] == (
        "2 lease releases (they expire after 900 s), 1 charges (9 tokens, 0.500000 USD not counted)"
    )
