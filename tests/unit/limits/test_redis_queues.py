"""The Redis limiter's two queues: commands waiting for a pooled connection (first come, first served, bounded
in time), and writes Redis did not take (order, retries, what is never sent twice, what is reported lost)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from polyroute.errors import LimiterUnavailableError
from polyroute.limits.redis import (
    _CHARGE_SCRIPT,
    _FORGET_SCRIPT,
    _Backlog,
    _Slots,
    _unavailable,
    _UnsentError,
    _Write,
)


async def test_slots_go_to_waiters_in_arrival_order() -> None:
    slots = _Slots(1)
    slots.free -= 1  # taken, as a command does when one is free
    served: list[int] = []

    async def command(number: int) -> None:
        await slots.wait(5.0)
        served.append(number)
        await asyncio.sleep(0)
        slots.release()

    waiting = [asyncio.create_task(command(number)) for number in range(5)]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*waiting)
    assert served == [0, 1, 2, 3, 4]
    assert (slots.free, len(slots.waiters)) == (1, 0)


async def test_a_slot_wait_that_times_out_is_unsent_and_leaves_the_queue() -> None:
    slots = _Slots(1)
    slots.free -= 1
    with pytest.raises(_UnsentError, match="no free connection within 0.01 s"):
        await slots.wait(0.01)
    assert not slots.waiters
    slots.release()
    assert slots.free == 1


async def test_a_slot_handed_to_a_waiter_that_gave_up_goes_to_the_next() -> None:
    slots = _Slots(1)
    slots.free -= 1
    first = asyncio.create_task(slots.wait(5.0))
    second = asyncio.create_task(slots.wait(5.0))
    await asyncio.sleep(0)
    slots.release()  # handed to the first ...
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1.0)
    assert (slots.free, len(slots.waiters)) == (0, 0)


async def test_a_waiter_cancelled_before_its_turn_is_skipped() -> None:
    slots = _Slots(1)
    slots.free -= 1
    first = asyncio.create_task(slots.wait(5.0))
    await asyncio.sleep(0)
    first.cancel()
    slots.release()  # the cancelled waiter has not run yet: it is skipped and the slot is free
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (slots.free, len(slots.waiters)) == (1, 0)


def _failure(cause: Exception) -> LimiterUnavailableError:
    error = _unavailable(cause)
    error.__cause__ = cause
    return error


NOT_SENT = _UnsentError("ConnectionError")
"""No connection could be had: the write never left."""
LOST_ANSWER = RedisTimeoutError("Timeout reading")
"""The write was sent and its answer did not come: it may have run."""


class Redis:
    """Takes writes in order, after failing the first ``failures`` attempts with ``cause``."""

    def __init__(self, failures: int = 0, cause: Exception = NOT_SENT) -> None:
        self.failures = failures
        self.cause = cause
        self.attempts: list[str] = []
        self.landed: list[str] = []

    async def write(self, write: _Write) -> None:
        self.attempts.append(write.key_id)
        if len(self.attempts) <= self.failures:
            raise _failure(self.cause)
        self.landed.append(write.key_id)


async def _drained(backlog: _Backlog) -> None:
    async with asyncio.timeout(5):
        while len(backlog):
            await asyncio.sleep(0.01)


def _release(key_id: str, not_before: float = 0.0) -> _Write:
    return _Write(None, key_id, ("lease",), not_before)


def _charge(key_id: str) -> _Write:
    return _Write(_CHARGE_SCRIPT, key_id, ("", "5", "1", "0", ""), 0.0, 5, None)


async def test_backlog_sends_writes_in_order_until_redis_takes_them() -> None:
    redis = Redis(failures=2)
    backlog = _Backlog(redis.write, max_pending=10)
    for key_id in ("a", "b", "c"):
        backlog.add(_release(key_id))
    await _drained(backlog)
    assert redis.attempts == ["a", "a", "a", "b", "c"]
    assert redis.landed == ["a", "b", "c"]


async def test_backlog_retries_a_charge_only_while_it_never_reached_redis(caplog: pytest.LogCaptureFixture) -> None:
    unsent = Redis(failures=1, cause=NOT_SENT)
    backlog = _Backlog(unsent.write, max_pending=10)
    backlog.add(_charge("a"))
    await _drained(backlog)
    assert unsent.landed == ["a"]

    lost = Redis(failures=1, cause=LOST_ANSWER)
    backlog = _Backlog(lost.write, max_pending=10)
    backlog.add(_charge("a"))
    backlog.add(_release("b"))
    await _drained(backlog)
    assert (lost.attempts, lost.landed) == (["a", "b"], ["b"])  # it may have been counted: not sent again
    assert "key a: a charge of 5 tokens, None USD got no answer and may not be recorded" in caplog.text


async def test_backlog_waits_for_a_writes_time() -> None:
    redis = Redis()
    backlog = _Backlog(redis.write, max_pending=10)
    due = asyncio.get_running_loop().time() + 0.1
    backlog.add(_Write(_FORGET_SCRIPT, "a", ("member",), due))
    await asyncio.sleep(0.05)
    assert redis.attempts == []
    await _drained(backlog)
    assert redis.landed == ["a"]


async def test_backlog_logs_a_write_that_fails_otherwise_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    landed: list[str] = []

    async def write(write: _Write) -> None:
        if write.key_id == "a":
            raise ValueError("a script error")
        landed.append(write.key_id)

    backlog = _Backlog(write, max_pending=10)
    backlog.add(_release("a"))
    backlog.add(_release("b"))
    await _drained(backlog)
    assert landed == ["b"]
    assert [(record.levelno, record.getMessage()) for record in caplog.records] == [
        (logging.ERROR, "key a: a lease's release (it expires on its own) failed")
    ]


async def test_backlog_close_reports_what_never_landed(caplog: pytest.LogCaptureFixture) -> None:
    redis = Redis(failures=10**6)
    backlog = _Backlog(redis.write, max_pending=10)
    backlog.add(_release("a"))
    backlog.add(_charge("b"))
    await backlog.aclose(0.05)
    assert len(backlog) == 0
    lost = caplog.records[-1].getMessage()
    assert lost.endswith("1 lease releases (they expire after 900 s), 1 charges (5 tokens, 0.000000 USD not counted)")
