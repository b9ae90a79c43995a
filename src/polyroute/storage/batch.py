"""``BatchingRequestLog``: buffers request records in memory and writes them in batches off the hot path.

Delivery is at least once: a batch whose write fails (or times out after the database committed it)
is written again. A crash loses at most the records of the last ``interval_s``; ``aclose()`` loses none
unless the sink keeps failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from polyroute.storage.base import RequestLogSink, RequestRecord

logger = logging.getLogger(__name__)

_LOG_EVERY_S = 60.0


class BatchingRequestLog:
    """A ``RequestLog`` that a background task flushes to a ``RequestLogSink``.

    Records are written every ``interval_s``, sooner once ``max_batch`` wait, in batches of at most
    ``max_batch``. A failed batch is kept and retried on the next tick. At most ``max_buffered``
    records wait; past that the oldest are dropped, so a dead database cannot exhaust memory.
    """

    def __init__(
        self,
        sink: RequestLogSink,
        *,
        interval_s: float = 1.0,
        max_batch: int = 1000,
        max_buffered: int = 100_000,
        write_timeout_s: float = 30.0,
    ) -> None:
        if interval_s <= 0 or write_timeout_s <= 0:
            raise ValueError("interval_s and write_timeout_s must be positive")
        if not 1 <= max_batch <= max_buffered:
            raise ValueError("need 1 <= max_batch <= max_buffered")
        self._sink = sink
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._max_buffered = max_buffered
        self._write_timeout_s = write_timeout_s
        self._buffer: deque[RequestRecord] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._is_closed = False
        self._failures = 0
        self._dropped = 0
        self._dropped_total = 0
        self._next_failure_log = 0.0
        self._next_drop_log = 0.0

    @property
    def pending(self) -> int:
        """Records waiting to be written."""
        return len(self._buffer)

    @property
    def dropped_total(self) -> int:
        """Records dropped since start because the buffer was full or the log was closed."""
        return self._dropped_total

    def record(self, entry: RequestRecord) -> None:
        """Queue ``entry``; O(1), no I/O, never raises."""
        if self._is_closed:
            self._drop(1)
            return
        self._buffer.append(entry)
        if len(self._buffer) > self._max_buffered:
            self._buffer.popleft()
            self._drop(1)
        if len(self._buffer) >= self._max_batch:
            self._wakeup.set()

    async def start(self) -> None:
        """Start the background flush task (once)."""
        if self._task is not None or self._stopping.is_set():
            raise RuntimeError("BatchingRequestLog can only be started once")
        self._task = asyncio.create_task(self._run(), name="polyroute-request-log-flush")

    async def aclose(self) -> None:
        """Stop the flush task and write every buffered record; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wakeup.set()
        if self._task is not None:
            await asyncio.wait([self._task])
            if not self._task.cancelled() and self._task.exception() is not None:
                logger.error("request log: flush task failed: %s", _describe(self._task.exception()))
        if not await self._drain():
            logger.error("request log: %d records not written at shutdown", len(self._buffer))
            self._drop(len(self._buffer))
            self._buffer.clear()
        self._is_closed = True
        self._report_drops(force=True)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._wait_for_tick()
            if self._stopping.is_set():
                return
            await self._drain()
            self._report_drops()

    async def _wait_for_tick(self) -> None:
        # After a failure, wait out the interval even if max_batch records pile up: no hot retry loop.
        event = self._stopping if self._failures else self._wakeup
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._interval_s):
                await event.wait()

    async def _drain(self) -> bool:
        """Write everything buffered; on a failure put the batch back in front and return False."""
        self._wakeup.clear()
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self._max_batch, len(self._buffer)))]
            is_written = False
            try:
                is_written = await self._write(batch)
            finally:
                if not is_written:  # also when cancelled mid-write: the rows stay for aclose()
                    self._buffer.extendleft(reversed(batch))
                    self._trim()
            if not is_written:
                return False
        return True

    async def _write(self, batch: list[RequestRecord]) -> bool:
        try:
            async with asyncio.timeout(self._write_timeout_s):
                await self._sink.write_batch(batch)
        except Exception as exc:  # background task: log, keep the rows, retry on the next tick
            self._failures += 1
            now = time.monotonic()
            if self._failures == 1 or now >= self._next_failure_log:
                self._next_failure_log = now + _LOG_EVERY_S
                logger.warning(
                    "request log: writing %d records failed (%s), attempt %d; %d records buffered",
                    len(batch),
                    _describe(exc),
                    self._failures,
                    len(self._buffer) + len(batch),
                )
            return False
        if self._failures:
            logger.info("request log: write succeeded after %d failed attempts", self._failures)
            self._failures = 0
        return True

    def _trim(self) -> None:
        excess = len(self._buffer) - self._max_buffered
        for _ in range(excess):
            self._buffer.popleft()
        if excess > 0:
            self._drop(excess)

    def _drop(self, count: int) -> None:
        self._dropped += count
        self._dropped_total += count

    def _report_drops(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._dropped and (force or now >= self._next_drop_log):
            logger.warning(
                "request log: dropped %d records (buffer limit %d or log closed)", self._dropped, self._max_buffered
            )
            self._dropped = 0
            self._next_drop_log = now + _LOG_EVERY_S


def _describe(exc: BaseException | None) -> str:
    """Name the exception and its causes by type only: messages may quote row values."""
    names: list[str] = []
    while exc is not None and len(names) < 4:
        names.append(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(names)
