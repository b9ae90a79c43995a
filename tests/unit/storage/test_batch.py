from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from polyroute.storage.base import RequestRecord
from polyroute.storage.batch import BatchingRequestLog
from tests.storage_fixtures import make_record

WAIT_S = 5.0


class FakeSink:
    """Collects batches; fails the first ``fail_times`` writes (or all, when negative)."""

    def __init__(self, *, fail_times: int = 0) -> None:
        self.batches: list[list[RequestRecord]] = []
        self.attempts = 0
        self.fail_times = fail_times
        self._changed = asyncio.Condition()

    @property
    def rows(self) -> list[RequestRecord]:
        return [entry for batch in self.batches for entry in batch]

    async def write_batch(self, entries: Sequence[RequestRecord]) -> None:
        self.attempts += 1
        async with self._changed:
            self._changed.notify_all()
        if self.fail_times < 0 or self.attempts <= self.fail_times:
            raise ConnectionRefusedError(f"database down; first id {entries[0].id}")
        self.batches.append(list(entries))

    async def wait_for(self, *, rows: int = 0, attempts: int = 0) -> None:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: len(self.rows) >= rows and self.attempts >= attempts)


def records(count: int, start: int = 0) -> list[RequestRecord]:
    return [make_record(n) for n in range(start, start + count)]


async def test_batching_log_flushes_after_interval() -> None:
    sink = FakeSink()
    log = BatchingRequestLog(sink, interval_s=0.01)
    await log.start()
    for entry in records(3):
        log.record(entry)
    assert sink.batches == []  # record() only buffers
    await sink.wait_for(rows=3)
    assert sink.batches == [records(3)]
    await log.aclose()


async def test_batching_log_flushes_early_when_max_batch_waits() -> None:
    sink = FakeSink()
    log = BatchingRequestLog(sink, interval_s=3600, max_batch=5)
    await log.start()
    for entry in records(4):
        log.record(entry)
    await asyncio.sleep(0.05)
    assert sink.attempts == 0
    log.record(make_record(4))
    await sink.wait_for(rows=5)
    assert sink.batches == [records(5)]
    await log.aclose()


async def test_batching_log_aclose_writes_everything_in_order_in_max_batch_chunks() -> None:
    sink = FakeSink()
    log = BatchingRequestLog(sink, interval_s=3600, max_batch=4, max_buffered=100)
    await log.start()
    # Not yielding to the loop between records: the flush task cannot run before aclose().
    for entry in records(10):
        log.record(entry)
    await log.aclose()
    assert [len(batch) for batch in sink.batches] == [4, 4, 2]
    assert sink.rows == records(10)
    assert log.pending == 0


async def test_batching_log_aclose_without_start_writes_everything() -> None:
    sink = FakeSink()
    log = BatchingRequestLog(sink)
    for entry in records(3):
        log.record(entry)
    await log.aclose()
    await log.aclose()
    assert sink.rows == records(3)


async def test_batching_log_failed_write_is_retried_and_logged_without_row_contents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="polyroute.storage.batch")
    sink = FakeSink(fail_times=2)
    log = BatchingRequestLog(sink, interval_s=0.01)
    await log.start()
    for entry in records(3):
        log.record(entry)
    await sink.wait_for(rows=3)
    await log.aclose()
    assert sink.attempts == 3
    assert sink.rows == records(3)
    assert "writing 3 records failed (ConnectionRefusedError), attempt 1" in caplog.text
    assert "write succeeded after 2 failed attempts" in caplog.text
    assert "req-" not in caplog.text


async def test_batching_log_after_failure_waits_for_interval_even_when_max_batch_waits() -> None:
    sink = FakeSink(fail_times=1)
    log = BatchingRequestLog(sink, interval_s=0.2, max_batch=2)
    await log.start()
    log.record(make_record(0))
    log.record(make_record(1))
    await sink.wait_for(attempts=1)
    for entry in records(20, start=2):
        log.record(entry)
        await asyncio.sleep(0)
    assert sink.attempts == 1  # no hot retry loop against a failing sink
    await sink.wait_for(rows=22)
    assert sink.rows == records(22)
    await log.aclose()


async def test_batching_log_cap_drops_oldest_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    sink = FakeSink()
    log = BatchingRequestLog(sink, max_batch=2, max_buffered=5)
    for entry in records(8):
        log.record(entry)
    assert log.pending == 5
    assert log.dropped_total == 3
    await log.aclose()
    assert sink.rows == records(5, start=3)
    assert "dropped 3 records" in caplog.text


async def test_batching_log_cap_applies_to_batches_kept_after_failure() -> None:
    sink = FakeSink(fail_times=-1)
    log = BatchingRequestLog(sink, interval_s=0.01, max_batch=4, max_buffered=6)
    await log.start()
    for entry in records(4):
        log.record(entry)
    await sink.wait_for(attempts=1)
    for entry in records(4, start=4):
        log.record(entry)
    await sink.wait_for(attempts=2)
    assert log.pending <= 6
    assert log.dropped_total >= 2
    sink.fail_times = 0
    await log.aclose()
    assert sink.rows == records(6, start=2)


async def test_batching_log_aclose_with_dead_sink_gives_up_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    sink = FakeSink(fail_times=-1)
    log = BatchingRequestLog(sink, interval_s=3600)
    await log.start()
    for entry in records(3):
        log.record(entry)
    await log.aclose()
    assert "3 records not written at shutdown" in caplog.text
    assert log.dropped_total == 3
    log.record(make_record(99))
    assert log.pending == 0
    assert log.dropped_total == 4


async def test_batching_log_slow_sink_times_out_and_retries() -> None:
    class SlowOnceSink(FakeSink):
        async def write_batch(self, entries: Sequence[RequestRecord]) -> None:
            if self.attempts == 0:
                self.attempts += 1
                await asyncio.sleep(3600)
            await super().write_batch(entries)

    sink = SlowOnceSink()
    log = BatchingRequestLog(sink, interval_s=0.01, write_timeout_s=0.05)
    await log.start()
    log.record(make_record(0))
    await sink.wait_for(rows=1)
    await log.aclose()
    assert sink.rows == [make_record(0)]


async def test_batching_log_start_twice_raises() -> None:
    log = BatchingRequestLog(FakeSink())
    await log.start()
    with pytest.raises(RuntimeError):
        await log.start()
    await log.aclose()


@pytest.mark.parametrize(
    "kwargs",
    [{"interval_s": 0}, {"write_timeout_s": -1}, {"max_batch": 0}, {"max_batch": 10, "max_buffered": 5}],
)
def test_batching_log_rejects_bad_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BatchingRequestLog(FakeSink(), **kwargs)  # type: ignore[arg-type]
