"""Every error the gateway raises, as data: status, type, code, and whether a retry may help.

Hierarchy::

    GatewayError                        status_code, error_type, code, message, retryable, headers
    ├── RequestError                    the caller is at fault (4xx); never triggers fallback
    │   ├── InvalidRequestError         400; carries ``param`` (the offending field path)
    │   │   └── UnsupportedFeatureError 400; strict mode: the target format cannot express ``param``
    │   ├── AuthenticationError         401
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404; no such route or object
    │   │   └── ModelNotFoundError      404; unknown model, with close matches in the message
    │   ├── MethodNotAllowedError       405
    │   ├── PayloadTooLargeError        413
    │   └── RateLimitedError            429; our own limiter; carries ``retry_after_s``
    ├── UpstreamError                   an upstream call failed; carries ``provider``
    │   ├── UpstreamStatusError         upstream answered 4xx/5xx; carries ``upstream_status``
    │   │   ├── UpstreamBadRequestError     4xx other than 401/403/429; status passed through
    │   │   ├── UpstreamAuthError           401/403 from upstream; our credential is wrong; rendered as 502
    │   │   ├── UpstreamRateLimitError      429; retryable; carries ``retry_after_s``
    │   │   └── UpstreamServerError         5xx and 529; retryable; rendered as 502
    │   ├── UpstreamTimeoutError        504; retryable
    │   ├── UpstreamConnectionError     502; retryable
    │   ├── UpstreamProtocolError       502; the upstream sent something unparseable
    │   └── UpstreamEmptyAnswerError    502; a successful answer with no content and no tool call
    ├── NoDeploymentAvailableError      503
    └── LimiterUnavailableError         503; the shared limiter (Redis) did not answer in time
    ConfigError                         start-up only; not a GatewayError; never rendered to a client
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from polyroute.types import JSONObject


class GatewayError(Exception):
    """Base of every error that is rendered to a client."""

    status_code: int = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers: Mapping[str, str] = headers or {}

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(message={self.message!r}, code={self.code!r})"


class RequestError(GatewayError):
    """The caller is at fault; never retried against another upstream."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidRequestError(RequestError):
    """The request body or parameters are invalid; ``param`` names the field."""

    default_code = "invalid_request"


class UnsupportedFeatureError(InvalidRequestError):
    """Strict mode: the request uses something the target wire format cannot express; ``param`` names it."""

    default_code = "unsupported_feature"


class AuthenticationError(RequestError):
    """No credential, or one we do not know."""

    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(RequestError):
    """A known credential that may not do this."""

    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFoundError(RequestError):
    """No such route or object."""

    status_code = 404
    error_type = "not_found_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    """The requested model resolves to no deployment."""

    error_type = "invalid_request_error"
    default_code = "model_not_found"


class MethodNotAllowedError(RequestError):
    """The route exists but not for this HTTP method."""

    status_code = 405
    default_code = "method_not_allowed"


class PayloadTooLargeError(RequestError):
    """The request body is larger than the configured limit."""

    status_code = 413
    default_code = "payload_too_large"


class RateLimitedError(RequestError):
    """Our own limiter said no."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None, code: str | None = None) -> None:
        headers = {"Retry-After": str(max(1, round(retry_after_s)))} if retry_after_s is not None else {}
        super().__init__(message, code=code, headers=headers)
        self.retry_after_s = retry_after_s
        """Seconds until a retry can succeed; None when waiting will not help (no ``Retry-After`` is sent)."""


class UpstreamError(GatewayError):
    """An upstream call failed."""

    status_code = 502
    error_type = "upstream_error"
    default_code: ClassVar[str | None] = "upstream_error"
    retryable = True

    def __init__(self, message: str, *, provider: str, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message, code=code, param=param)
        self.provider = provider


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        upstream_status: int,
        code: str | None = None,
        param: str | None = None,
        upstream_type: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, code=code, param=param)
        self.upstream_status = upstream_status
        self.upstream_type = upstream_type


class UpstreamBadRequestError(UpstreamStatusError):
    """A 4xx from upstream: the request itself was refused; the status is passed to the client."""

    retryable = False

    error_type = "invalid_request_error"
    default_code = None

    def __init__(self, message: str, *, provider: str, upstream_status: int, **kwargs: str | None) -> None:
        super().__init__(message, provider=provider, upstream_status=upstream_status, **kwargs)
        self.status_code = upstream_status


class UpstreamAuthError(UpstreamStatusError):
    """The upstream refused the gateway's credential (401/403).

    Rendered as 502: the caller's own key was accepted, and only the operator can fix this one.
    """

    default_code = "upstream_auth_failed"


class UpstreamRateLimitError(UpstreamStatusError):
    """The upstream said 429."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "upstream_rate_limited"

    def __init__(
        self, message: str, *, provider: str, retry_after_s: float | None = None, **kwargs: str | None
    ) -> None:
        super().__init__(message, provider=provider, upstream_status=429, **kwargs)
        self.retry_after_s = retry_after_s
        if retry_after_s is not None:
            self.headers = {"Retry-After": str(max(1, round(retry_after_s)))}


class UpstreamServerError(UpstreamStatusError):
    """A 5xx (or 529 overloaded) from upstream."""


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer in time."""

    status_code = 504
    default_code = "upstream_timeout"


class UpstreamConnectionError(UpstreamError):
    """The upstream could not be reached, or dropped the connection."""

    default_code = "upstream_unreachable"


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that is not what its format promises."""

    default_code = "upstream_protocol_error"
    retryable = False


class UpstreamEmptyAnswerError(UpstreamError):
    """The upstream answered successfully with nothing in it: no text, no reasoning, no tool call."""

    default_code = "empty_answer"


class NoDeploymentAvailableError(GatewayError):
    """Every candidate deployment failed or is unavailable; ``details`` says what was tried."""

    status_code = 503
    error_type = "service_unavailable_error"
    default_code = "all_models_failed"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        details: JSONObject | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, headers=headers)
        self.details: JSONObject = details or {}
        """``total_attempts``, ``tried_models`` and ``error_history`` (messages truncated and redacted)."""


class LimiterUnavailableError(GatewayError):
    """The shared limiter (Redis) could not be reached or did not answer in time; limits cannot be checked."""

    status_code = 503
    error_type = "service_unavailable_error"
    default_code = "limiter_unavailable"
    retryable = True


class ConfigError(Exception):
    """The configuration is invalid. Raised at start-up only; ``problems`` lists ``path: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
