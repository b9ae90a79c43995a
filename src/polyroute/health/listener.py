"""The Pub/Sub side of ``RedisHealth``: one subscription that reconnects with backoff, and throttled warnings.

After every (re)subscription ``on_connect`` runs (it reloads the full state, since messages sent while
disconnected are lost); then each message goes to ``on_message`` in the order Redis published them.
A silent connection is pinged, and one that stops answering is dropped and reconnected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)

BACKOFF_MIN_S: Final = 0.1
BACKOFF_MAX_S: Final = 5.0
_POLL_S: Final = 1.0
_PING_AFTER_S: Final = 5.0
"""A connection silent for this long is pinged."""
_DEAD_AFTER_S: Final = 15.0
"""A connection silent (pings unanswered) for this long is dropped and reconnected."""


class ThrottledLog:
    """Logs each warning (by message template) at most once per ``every_s``, counting the ones held back."""

    __slots__ = ("_clock", "_every_s", "_held", "_next")

    def __init__(self, every_s: float = 10.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if now < self._next.get(message, 0.0):
            self._held[message] = self._held.get(message, 0) + 1
            return
        held = self._held.pop(message, 0)
        self._next[message] = now + self._every_s
        if held:
            logger.warning(message + " (%d more like it held back)", *args, held)
        else:
            logger.warning(message, *args)


class Listener:
    """Keeps one subscription to ``channel`` alive in a background task."""

    def __init__(
        self,
        url: str,
        *,
        channel: str,
        name: str,
        timeout_s: float,
        on_connect: Callable[[], Awaitable[None]],
        on_message: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._url = url
        self._channel = channel
        self._name = name
        self._timeout_s = timeout_s
        self._on_connect = on_connect
        self._on_message = on_message
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self.connected = False
        self.log = ThrottledLog()

    async def start(self) -> None:
        """Start the task; returns once the first connection attempt has loaded the state or failed."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        await self._attempted.wait()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff_s = BACKOFF_MIN_S
        while True:
            try:
                await self._session()
            except Exception as exc:  # a background task: log, back off, reconnect
                if self.connected:
                    backoff_s = BACKOFF_MIN_S
                self.connected = False
                self.log.warning(
                    "health state: Redis subscription lost (%s: %s); reconnecting", type(exc).__name__, exc
                )
            finally:
                self._attempted.set()
            await asyncio.sleep(backoff_s)
            backoff_s = min(BACKOFF_MAX_S, backoff_s * 2)

    async def _session(self) -> None:
        # No retries inside redis-py: a reconnect must go through on_connect (messages may have been lost).
        client = Redis.from_url(
            self._url,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),
            client_name=self._name,
        )
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            confirmation = await pubsub.get_message(timeout=max(1.0, self._timeout_s * 4))
            if confirmation is None or confirmation["type"] != "subscribe":
                raise RedisConnectionError("the subscription was not confirmed")
            await self._on_connect()
            self.connected = True
            self._attempted.set()
            await self._receive(pubsub)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()

    async def _receive(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        while True:
            message = await pubsub.get_message(timeout=_POLL_S)
            now = loop.time()
            if message is not None:
                heard = now
                if message["type"] == "message":
                    await self._on_message(message["data"])
                continue
            if now - heard > _DEAD_AFTER_S:
                raise RedisConnectionError(f"no answer from Redis for {_DEAD_AFTER_S:.0f} s")
            if now - heard > _PING_AFTER_S and now - pinged > _PING_AFTER_S:
                await pubsub.ping()
                pinged = now
