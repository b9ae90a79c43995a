"""Which of a provider's credentials a request uses, in which order.

``fill-first`` (the default) uses the first credential until it cools down or is refused, then the
next; ``round-robin`` starts each request at the next credential in turn (a per-worker counter). A
request that carries a session id (``X-Session-Id``) always starts at the same credential for that
session, so a provider's prompt cache, which is per credential, keeps serving it.
"""

from __future__ import annotations

import zlib

from polyroute.routing.table import Deployment


class CredentialRotation:
    """Per-worker round-robin counters, one per provider."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def order(self, deployment: Deployment, session: bytes | None) -> range | list[int]:
        """The credential indexes to try, in order."""
        target = deployment.target
        count = len(target.credential_ids)
        if count == 1:
            return range(1)
        if session is not None:
            start = zlib.crc32(session) % count  # one session, one credential: prompt caches keep working
        elif target.round_robin:
            start = self._next.get(deployment.provider, 0)
            self._next[deployment.provider] = (start + 1) % count
        else:
            return range(count)
        return [(start + i) % count for i in range(count)]
