"""A real Redis for tests: reachable at ``POLYROUTE_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/0).

Tests that need it skip, saying why, when it is not reachable; under CI (or with
``POLYROUTE_TEST_REQUIRE_SERVICES=1``) they fail instead.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

from tests.storage_fixtures import services_required

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if reply.startswith((b"+PONG", b"-NOAUTH")) else f"unexpected reply {reply!r}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis's URL (the server is shared: tests use their own key prefixes)."""
    url = os.environ.get("POLYROUTE_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    problem = _reachable(url)
    if problem is not None:
        message = f"Redis not reachable at {url}: {problem}"
        if services_required():
            pytest.fail(f"{message} (CI or POLYROUTE_TEST_REQUIRE_SERVICES=1: Redis is required)", pytrace=False)
        pytest.skip(message)
    return url
