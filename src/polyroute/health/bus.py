"""Change buses: tell every worker "setting X changed, reload it".

``InProcessChangeBus`` calls this worker's subscribers. ``SharedChangeBus`` also sends the topic to
every other worker through a transport (``RedisHealth`` lends its connection and subscriber: ``RedisHealth.bus``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Callback = Callable[[str], Awaitable[None] | None]


class InProcessChangeBus:
    """Delivers topics to this worker's subscribers, in subscription order."""

    __slots__ = ("_callbacks",)

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []

    def subscribe(self, callback: Callback) -> None:
        self._callbacks.append(callback)

    async def publish(self, topic: str) -> None:
        await self.deliver(topic)

    async def deliver(self, topic: str) -> None:
        """Call every subscriber; one that raises is logged and does not stop the others."""
        for callback in self._callbacks:
            try:
                result = callback(topic)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a subscriber's reload failing must not stop the others (or the sender)
                logger.exception("change bus subscriber failed for topic %r", topic)


class SharedChangeBus(InProcessChangeBus):
    """Delivers topics here at once and, through ``send``, to every other worker (which ``deliver`` there)."""

    __slots__ = ("_send", "_seen")

    def __init__(self, send: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        self._send = send
        self._seen: set[str] = set()

    async def publish(self, topic: str) -> None:
        self._seen.add(topic)
        await self._send(topic)
        await self.deliver(topic)

    async def receive(self, topic: str) -> None:
        """A topic from another worker."""
        self._seen.add(topic)
        await self.deliver(topic)

    async def redeliver_seen(self) -> None:
        """Deliver every topic seen so far again (after missing messages while disconnected)."""
        for topic in sorted(self._seen):
            await self.deliver(topic)
