"""The shared aiohttp session, and the one place aiohttp's exceptions become gateway errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import orjson

from polyroute.errors import UpstreamConnectionError, UpstreamProtocolError, UpstreamTimeoutError


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


@contextmanager
def map_transport_errors(provider: str) -> Iterator[None]:
    """Convert aiohttp and timeout exceptions to :class:`UpstreamError` subclasses (most specific first).

    Messages name the provider and the failure, never URLs with credentials or headers.
    """
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeoutError(f"{provider} did not answer in time", provider=provider) from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamConnectionError(
            f"{provider} is unreachable: {exc.os_error.strerror or type(exc.os_error).__name__}", provider=provider
        ) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise UpstreamConnectionError(f"{provider} closed the connection", provider=provider) from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamConnectionError(f"{provider} sent a truncated answer", provider=provider) from exc
    except aiohttp.ClientResponseError as exc:
        raise UpstreamProtocolError(
            f"{provider} sent an invalid HTTP answer ({exc.message})", provider=provider
        ) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientOSError) as exc:
        raise UpstreamConnectionError(f"{provider} connection failed: {type(exc).__name__}", provider=provider) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamProtocolError(f"{provider} request failed: {type(exc).__name__}", provider=provider) from exc
