"""The shared aiohttp session, and the one place aiohttp's exceptions become gateway errors."""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Literal

import aiohttp
import orjson

from polyroute.errors import UpstreamConnectionError, UpstreamError, UpstreamProtocolError, UpstreamTimeoutError


def create_session(*, connect_timeout_s: float) -> aiohttp.ClientSession:
    """One pooled keep-alive session per worker; per-call timeouts are passed on each request."""
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=0,
        ttl_dns_cache=300,
        keepalive_timeout=60,
        enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        # One session serves every caller: cookies set by an upstream must never ride along on
        # another caller's request (and a jar costs a lookup per request).
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s),
        json_serialize=lambda value: orjson.dumps(value).decode(),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        trust_env=False,
    )


class _TransportErrors:
    """The context manager behind :func:`map_transport_errors` (a class: no generator per call)."""

    __slots__ = ("_provider",)

    def __init__(self, provider: str) -> None:
        self._provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        mapped = _mapped(exc, self._provider) if exc is not None else None
        if mapped is None:
            return False
        raise mapped from exc


def map_transport_errors(provider: str) -> AbstractContextManager[None]:
    """Convert aiohttp and timeout exceptions to :class:`UpstreamError` subclasses (most specific first).

    Messages name the provider and the failure, never URLs with credentials or headers.
    """
    return _TransportErrors(provider)


def _mapped(exc: BaseException, provider: str) -> UpstreamError | None:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeoutError(f"{provider} did not answer in time", provider=provider)
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return UpstreamConnectionError(f"{provider} is unreachable: {reason}", provider=provider)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return UpstreamConnectionError(f"{provider} closed the connection", provider=provider)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamConnectionError(f"{provider} sent a truncated answer", provider=provider)
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamProtocolError(f"{provider} sent an invalid HTTP answer ({exc.message})", provider=provider)
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientOSError):
        return UpstreamConnectionError(f"{provider} connection failed: {type(exc).__name__}", provider=provider)
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamProtocolError(f"{provider} request failed: {type(exc).__name__}", provider=provider)
    return None
