"""map_transport_errors for every aiohttp client exception, and UpstreamTarget's headers, rotation and redaction."""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import client_exceptions
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from polyroute.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from polyroute.routing.config import ProviderConfig
from polyroute.routing.discovery import make_target
from polyroute.upstream.auth import auth_headers
from polyroute.upstream.client import Endpoint, Timeouts, UpstreamTarget
from polyroute.upstream.transport import map_transport_errors
from polyroute.wire import WireFormat

PASSWORD = "hunter2-url-password"
QUERY_KEY = "AIzaSy-query-string-key"
HEADER_KEY = "sk-header-secret-0123456789"
SECRET_URL = f"https://admin:{PASSWORD}@api.example.com/v1/chat/completions?key={QUERY_KEY}"
LEAKS = (PASSWORD, QUERY_KEY, HEADER_KEY, "?key=", "admin:")

TIMEOUTS = Timeouts(connect_s=1.0, first_byte_s=2.0, stream_idle_s=3.0, total_s=4.0)

KEY = ConnectionKey("api.example.com", 443, True, True, None, None, None)
REQUEST = aiohttp.RequestInfo(
    URL(SECRET_URL),
    "POST",
    CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {HEADER_KEY}"})),
    URL(SECRET_URL),
)
REFUSED = ConnectionRefusedError(111, "Connect call failed ('203.0.113.7', 443)")

# Every aiohttp client exception: how to build a realistic one, and the gateway error it must become.
CASES: dict[str, tuple[Callable[[], Exception], type[UpstreamError]]] = {
    "ClientError": (lambda: aiohttp.ClientError(SECRET_URL), UpstreamProtocolError),
    "ClientConnectionError": (
        lambda: aiohttp.ClientConnectionError(f"Connection closed: {SECRET_URL}"),
        UpstreamConnectionError,
    ),
    "ClientConnectionResetError": (
        lambda: client_exceptions.ClientConnectionResetError("Cannot write to closing transport"),
        UpstreamConnectionError,
    ),
    "ClientOSError": (lambda: aiohttp.ClientOSError(104, "Connection reset by peer"), UpstreamConnectionError),
    "ClientConnectorError": (lambda: aiohttp.ClientConnectorError(KEY, REFUSED), UpstreamConnectionError),
    "ClientConnectorDNSError": (
        lambda: client_exceptions.ClientConnectorDNSError(KEY, socket.gaierror(-2, "Name or service not known")),
        UpstreamConnectionError,
    ),
    "ClientProxyConnectionError": (
        lambda: aiohttp.ClientProxyConnectionError(KEY, REFUSED),
        UpstreamConnectionError,
    ),
    "UnixClientConnectorError": (
        lambda: client_exceptions.UnixClientConnectorError(
            "/run/ollama.sock", KEY, FileNotFoundError(2, "No such file")
        ),
        UpstreamConnectionError,
    ),
    "ClientSSLError": (
        lambda: aiohttp.ClientSSLError(KEY, ssl.SSLError(1, "[SSL] record layer failure")),
        UpstreamConnectionError,
    ),
    "ClientConnectorSSLError": (
        lambda: aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version")),
        UpstreamConnectionError,
    ),
    "ClientConnectorCertificateError": (
        lambda: aiohttp.ClientConnectorCertificateError(
            KEY, ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        ),
        UpstreamConnectionError,
    ),
    "ServerConnectionError": (lambda: aiohttp.ServerConnectionError(SECRET_URL), UpstreamConnectionError),
    "ServerDisconnectedError": (lambda: aiohttp.ServerDisconnectedError(), UpstreamConnectionError),
    "ServerFingerprintMismatch": (
        lambda: aiohttp.ServerFingerprintMismatch(b"\x01" * 32, b"\x02" * 32, "api.example.com", 443),
        UpstreamConnectionError,
    ),
    "ServerTimeoutError": (
        lambda: aiohttp.ServerTimeoutError(f"Timeout on reading data from socket {SECRET_URL}"),
        UpstreamTimeoutError,
    ),
    "ConnectionTimeoutError": (
        lambda: aiohttp.ConnectionTimeoutError(f"Connection timeout to host {SECRET_URL}"),
        UpstreamTimeoutError,
    ),
    "SocketTimeoutError": (
        lambda: aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
        UpstreamTimeoutError,
    ),
    "ClientPayloadError": (
        lambda: aiohttp.ClientPayloadError("Response payload is not completed"),
        UpstreamConnectionError,
    ),
    "ClientResponseError": (
        lambda: aiohttp.ClientResponseError(REQUEST, (), status=400, message="Bad Request"),
        UpstreamProtocolError,
    ),
    "ContentTypeError": (
        lambda: aiohttp.ContentTypeError(
            REQUEST, (), status=200, message="Attempt to decode JSON with unexpected mimetype: text/html"
        ),
        UpstreamProtocolError,
    ),
    "ClientHttpProxyError": (
        lambda: aiohttp.ClientHttpProxyError(REQUEST, (), status=407, message="Proxy Authentication Required"),
        UpstreamProtocolError,
    ),
    "TooManyRedirects": (lambda: aiohttp.TooManyRedirects(REQUEST, (), status=302), UpstreamProtocolError),
    "WSServerHandshakeError": (
        lambda: aiohttp.WSServerHandshakeError(REQUEST, (), status=400, message="Invalid response status"),
        UpstreamProtocolError,
    ),
    "InvalidURL": (lambda: aiohttp.InvalidURL(SECRET_URL, "bad port"), UpstreamProtocolError),
    "InvalidUrlClientError": (lambda: aiohttp.InvalidUrlClientError(SECRET_URL), UpstreamProtocolError),
    "InvalidUrlRedirectClientError": (
        lambda: aiohttp.InvalidUrlRedirectClientError(SECRET_URL, "Server attempted redirecting to a non-URL"),
        UpstreamProtocolError,
    ),
    "NonHttpUrlClientError": (lambda: aiohttp.NonHttpUrlClientError(SECRET_URL), UpstreamProtocolError),
    "NonHttpUrlRedirectClientError": (
        lambda: aiohttp.NonHttpUrlRedirectClientError(SECRET_URL),
        UpstreamProtocolError,
    ),
    "RedirectClientError": (lambda: aiohttp.RedirectClientError(SECRET_URL), UpstreamProtocolError),
    "UploadAbortedError": (
        lambda: client_exceptions.UploadAbortedError("The request body was not fully sent"),
        UpstreamProtocolError,
    ),
}


def aiohttp_client_errors() -> set[str]:
    return {
        name
        for name, cls in inspect.getmembers(client_exceptions, inspect.isclass)
        if issubclass(cls, aiohttp.ClientError)
    }


def mapped(exc: BaseException, provider: str = "groq") -> UpstreamError:
    with pytest.raises(UpstreamError) as caught, map_transport_errors(provider):
        raise exc
    assert caught.value.__cause__ is exc
    return caught.value


# map_transport_errors


def test_map_transport_errors_cases_cover_every_aiohttp_client_error() -> None:
    assert aiohttp_client_errors() == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_map_transport_errors_aiohttp_error_becomes_upstream_error(name: str) -> None:
    make, expected = CASES[name]
    exc = make()
    assert type(exc).__name__ == name

    error = mapped(exc)

    assert type(error) is expected
    assert error.provider == "groq"
    assert error.message.startswith("groq ")


@pytest.mark.parametrize("name", sorted(CASES))
def test_map_transport_errors_message_has_no_url_credentials_or_query(name: str) -> None:
    exc = CASES[name][0]()

    error = mapped(exc)

    for leak in LEAKS:
        assert leak not in error.message
        assert leak not in str(error)
        assert leak not in repr(error)


def test_map_transport_errors_timeout_becomes_upstream_timeout() -> None:
    """asyncio.timeout() and aiohttp's ClientTimeout(total=...) both raise the builtin TimeoutError."""
    error = mapped(TimeoutError())

    assert type(error) is UpstreamTimeoutError
    assert (error.status_code, error.retryable) == (504, True)
    assert error.message == "groq did not answer in time"


def test_map_transport_errors_connector_error_names_the_os_failure() -> None:
    assert mapped(aiohttp.ClientConnectorError(KEY, REFUSED)).message == (
        "groq is unreachable: Connect call failed ('203.0.113.7', 443)"
    )


def test_map_transport_errors_connector_error_without_strerror_names_the_type() -> None:
    error = mapped(aiohttp.ClientConnectorCertificateError(KEY, ValueError("not a certificate")))

    assert error.message == "groq is unreachable: OSError"


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (aiohttp.ServerDisconnectedError(), "groq closed the connection"),
        (aiohttp.ClientPayloadError("x"), "groq sent a truncated answer"),
        (
            aiohttp.ClientResponseError(REQUEST, (), status=400, message="Bad Request"),
            "groq sent an invalid HTTP answer (Bad Request)",
        ),
        (aiohttp.ClientOSError(104, "reset"), "groq connection failed: ClientOSError"),
        (aiohttp.InvalidURL(SECRET_URL), "groq request failed: InvalidURL"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_map_transport_errors_message_says_what_failed(exc: Exception, message: str) -> None:
    assert mapped(exc).message == message


@pytest.mark.parametrize("exc", [ValueError("x"), KeyError("k"), OSError(5, "io")], ids=repr)
def test_map_transport_errors_other_exceptions_pass_through(exc: Exception) -> None:
    with pytest.raises(type(exc)) as caught, map_transport_errors("groq"):
        raise exc

    assert caught.value is exc


def test_map_transport_errors_cancellation_passes_through() -> None:
    with pytest.raises(asyncio.CancelledError), map_transport_errors("groq"):
        raise asyncio.CancelledError


def test_map_transport_errors_no_exception_is_no_error() -> None:
    with map_transport_errors("groq"):
        pass


# UpstreamTarget


def target(
    wire_format: WireFormat = WireFormat.OPENAI,
    credentials: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
    **endpoint: str,
) -> UpstreamTarget:
    where = Endpoint(
        name="p", wire_format=wire_format, base_url=endpoint.pop("base_url", "https://p.example/v1/"), **endpoint
    )
    return UpstreamTarget(where, credentials=credentials, headers=headers or {}, timeouts=TIMEOUTS)


def test_next_headers_rotates_through_credentials_in_turn() -> None:
    rotating = target(credentials=("k1", "k2", "k3"))

    seen = [rotating.next_headers()["Authorization"] for _ in range(7)]

    assert seen == ["Bearer k1", "Bearer k2", "Bearer k3", "Bearer k1", "Bearer k2", "Bearer k3", "Bearer k1"]


def test_next_headers_single_credential_every_time() -> None:
    single = target(credentials=("only",))

    assert {single.next_headers()["Authorization"] for _ in range(3)} == {"Bearer only"}


@pytest.mark.parametrize("wire_format", list(WireFormat), ids=str)
def test_next_headers_keyless_provider_sends_no_credential(wire_format: WireFormat) -> None:
    headers = target(wire_format).next_headers()

    assert headers == {"Content-Type": "application/json", **auth_headers(wire_format, None)}
    assert not {"authorization", "x-api-key", "x-goog-api-key"} & {name.lower() for name in headers}


def test_next_headers_include_configured_headers_and_content_type() -> None:
    headers = target(credentials=("k",), headers={"HTTP-Referer": "https://example.org"}).next_headers()

    assert headers == {
        "Content-Type": "application/json",
        "HTTP-Referer": "https://example.org",
        "Authorization": "Bearer k",
    }


def test_next_headers_credential_overrides_configured_same_header() -> None:
    headers = target(credentials=("k",), headers={"Authorization": "Bearer stale"}).next_headers()

    assert headers["Authorization"] == "Bearer k"


def test_next_headers_are_read_only() -> None:
    headers = target(credentials=("k",)).next_headers()

    with pytest.raises(TypeError):
        headers["Authorization"] = "Bearer other"  # type: ignore[index]


# auth: one row per wire format
AUTH_EXPECTED: dict[WireFormat, dict[str, str]] = {
    WireFormat.OPENAI: {"Authorization": "Bearer sk-1"},
    WireFormat.ANTHROPIC: {"x-api-key": "sk-1", "anthropic-version": "2023-06-01"},
    WireFormat.GEMINI: {"x-goog-api-key": "sk-1"},
    WireFormat.OLLAMA: {"Authorization": "Bearer sk-1"},
    WireFormat.RESPONSES: {"Authorization": "Bearer sk-1"},
}


def test_auth_expected_covers_every_wire_format() -> None:
    assert set(AUTH_EXPECTED) == set(WireFormat)


@pytest.mark.parametrize("wire_format", list(WireFormat), ids=str)
def test_auth_headers_per_wire_format(wire_format: WireFormat) -> None:
    assert auth_headers(wire_format, "sk-1") == AUTH_EXPECTED[wire_format]
    assert target(wire_format, ("sk-1",)).next_headers() == {
        "Content-Type": "application/json",
        **AUTH_EXPECTED[wire_format],
    }


@pytest.mark.parametrize("key", [None, ""], ids=repr)
def test_auth_headers_without_key_keep_only_fixed_headers(key: str | None) -> None:
    assert auth_headers(WireFormat.ANTHROPIC, key) == {"anthropic-version": "2023-06-01"}
    assert auth_headers(WireFormat.OPENAI, key) == {}


def test_redact_removes_every_credential() -> None:
    keyed = target(credentials=("sk-aaa-111", "sk-bbb-222"))

    text = keyed.redact("tried sk-aaa-111 then sk-bbb-222, and sk-aaa-111 again")

    assert text == "tried [redacted] then [redacted], and [redacted] again"


def test_redact_longer_credential_first_when_one_contains_another() -> None:
    keyed = target(credentials=("abc", "abcdef-long"))

    assert keyed.redact("key abcdef-long and abc") == "key [redacted] and [redacted]"


def test_redact_keyless_target_leaves_text_alone() -> None:
    assert target().redact("nothing secret here") == "nothing secret here"


def test_target_normalises_urls() -> None:
    plain = target(base_url="https://p.example/v1///")

    assert plain.base_url == "https://p.example/v1"
    assert plain.models_url == "https://p.example/v1/models"


@pytest.mark.parametrize(
    ("wire_format", "models_url"),
    [
        (WireFormat.OPENAI, "https://p.example/v1/models"),
        (WireFormat.ANTHROPIC, "https://p.example/v1/v1/models"),
        (WireFormat.GEMINI, "https://p.example/v1/v1beta/models"),
        (WireFormat.OLLAMA, "https://p.example/v1/api/tags"),
    ],
    ids=str,
)
def test_target_models_url_default_per_wire_format(wire_format: WireFormat, models_url: str) -> None:
    assert target(wire_format).models_url == models_url


def test_target_explicit_models_url_wins() -> None:
    assert target(models_url="https://m.example/catalog").models_url == "https://m.example/catalog"


def test_target_timeouts_first_byte_for_calls_and_idle_for_streams() -> None:
    timed = target()

    assert (timed.timeout.total, timed.timeout.sock_connect, timed.timeout.sock_read) == (4.0, 1.0, 2.0)
    assert (timed.stream_timeout.total, timed.stream_timeout.sock_connect, timed.stream_timeout.sock_read) == (
        4.0,
        1.0,
        3.0,
    )


def test_make_target_provider_timeout_caps_every_limit() -> None:
    config = ProviderConfig(
        name="slow", format="anthropic", base_url="https://a.example", api_keys=["k1", "k2"], timeout_s=1.5
    )

    made = make_target(config, Timeouts(connect_s=1.0, first_byte_s=10.0, stream_idle_s=1.0, total_s=60.0))

    assert (made.name, made.wire_format, made.base_url) == ("slow", WireFormat.ANTHROPIC, "https://a.example")
    # The first-byte limit equals the total here, so no per-read timer is armed for plain calls.
    assert (made.timeout.total, made.timeout.sock_read, made.stream_timeout.sock_read) == (1.5, None, 1.0)
    assert set(made.secrets) == {"k1", "k2"}
    assert [made.next_headers()["x-api-key"] for _ in range(3)] == ["k1", "k2", "k1"]


def test_next_headers_credential_overrides_configured_header_of_other_case() -> None:
    headers = target(credentials=("k",), headers={"authorization": "Bearer stale"}).next_headers()

    assert [value for name, value in headers.items() if name.lower() == "authorization"] == ["Bearer k"]
