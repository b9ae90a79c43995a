"""Raw ASGI helpers for the hot path: body reading, JSON and error responses, disconnect watching.

Errors are rendered in the caller's own API format, chosen from the request path. No stack trace or
internal detail ever reaches a client: unexpected exceptions become a generic 500 naming the request id.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from polyroute.errors import (
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
)
from polyroute.types import JSONObject
from polyroute.wire import WireFormat
from polyroute.wire.registry import TRANSLATORS

logger = logging.getLogger(__name__)

JSON_HEADERS = ((b"content-type", b"application/json"),)


class ClientDisconnectedError(Exception):
    """The client went away before the request body arrived."""


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """The whole request body, refusing more than ``max_bytes`` as soon as it is exceeded.

    Raises:
        PayloadTooLargeError: the declared or received size is over the limit.
        ClientDisconnectedError: the client disconnected mid-body.
    """
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"request body is larger than the limit of {max_bytes} bytes")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be one JSON object.

    Raises:
        InvalidRequestError: empty, not UTF-8, not JSON, or not an object; the message says which.
    """
    if not body:
        raise InvalidRequestError("request body is empty; expected a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Decoding only on this error path tells broken bytes from a bad JSON text (such as a lone
        # "\ud800" escape or a BOM, whose orjson messages also mention UTF-8 or surrogates).
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError("request body is not valid UTF-8") from None
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"request body must be a JSON object, not {type(value).__name__}")
    return value


async def send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]
) -> None:
    """Send a complete response with a body already serialised."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# Path prefixes of the client-facing APIs that do not speak OpenAI's error shape.
_PATH_FORMATS = (
    ("/v1/messages", WireFormat.ANTHROPIC),
    ("/v1beta/", WireFormat.GEMINI),
    # Ollama's own routes; the rest of /api/ is management, which answers in OpenAI's shape.
    ("/api/chat", WireFormat.OLLAMA),
    ("/api/generate", WireFormat.OLLAMA),
    ("/api/tags", WireFormat.OLLAMA),
    ("/api/show", WireFormat.OLLAMA),
    ("/api/version", WireFormat.OLLAMA),
    ("/api/embed", WireFormat.OLLAMA),
    ("/v1/api/", WireFormat.OLLAMA),
    ("/v1/responses", WireFormat.RESPONSES),
)


def client_format(path: str) -> WireFormat:
    """The API format a request path speaks (OpenAI unless the path belongs to another API)."""
    for prefix, fmt in _PATH_FORMATS:
        if path.startswith(prefix):
            return fmt
    if path.startswith("/v1/models/") and ":" in path.rpartition("/")[2]:
        return WireFormat.GEMINI  # Gemini's v1 surface: /v1/models/{model}:generateContent
    return WireFormat.OPENAI


def render_error(error: GatewayError, path: str) -> tuple[int, JSONObject]:
    """Status and body for an error, in the API format the path speaks."""
    return TRANSLATORS[client_format(path)].render_error(error)


def error_headers(error: GatewayError) -> list[tuple[bytes, bytes]]:
    """Headers for an error response: JSON, and the error's own (such as Retry-After)."""
    return [*JSON_HEADERS, *((k.lower().encode(), v.encode()) for k, v in error.headers.items())]


async def send_error(scope: Scope, send: Send, error: GatewayError) -> None:
    """Render ``error`` in the caller's format and send it."""
    status, body = render_error(error, scope["path"])
    await send_bytes(send, status, orjson.dumps(body), error_headers(error))


def _request_id(scope: Scope) -> str | None:
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


class _Rendered(Response):
    """A Starlette response carrying bytes already rendered (for exception handlers)."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(content=body, status_code=status)
        self.raw_headers = [*self.raw_headers, *headers]


def gateway_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: a GatewayError in the caller's format."""
    assert isinstance(exc, GatewayError)
    status, body = render_error(exc, request.url.path)
    return _Rendered(status, orjson.dumps(body), error_headers(exc))


def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 rendered as gateway errors."""
    status = getattr(exc, "status_code", 404)
    error: GatewayError
    if status == 405:
        # RFC 9110 §15.5.6: a 405 must list the allowed methods; Starlette puts them in ``Allow``.
        error = MethodNotAllowedError(
            f"method {request.method} is not allowed on {request.url.path}", headers=getattr(exc, "headers", None)
        )
    else:
        error = NotFoundError(f"no route for {request.method} {request.url.path}")
    return gateway_error_handler(request, error)


def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """The last resort: log with the request id, tell the client only that it failed."""
    request_id = _request_id(request.scope)
    logger.error("unhandled error in request %s", request_id, exc_info=exc)
    error = GatewayError(f"internal error; quote request id {request_id} when reporting it", code="internal_error")
    return gateway_error_handler(request, error)


class DisconnectWatch:
    """Cancels the current task when the client disconnects; the ``with`` block then ends quietly.

    Used around a relay that would otherwise keep reading the upstream for a client that is gone
    (uvicorn drops writes to a closed connection silently).
    """

    __slots__ = ("_receive", "_task", "_watcher", "disconnected")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.disconnected = False
        self._task: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None

    def __enter__(self) -> DisconnectWatch:
        self._task = asyncio.current_task()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._watcher is not None:
            self._watcher.cancel()
        if self.disconnected and exc_type is asyncio.CancelledError and self._task is not None:
            self._task.uncancel()
            return True
        return False

    async def _watch(self) -> None:
        message: Message = await self._receive()
        while message["type"] != "http.disconnect":
            message = await self._receive()
        self.disconnected = True
        if self._task is not None:
            self._task.cancel()
