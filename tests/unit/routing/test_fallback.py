"""The status -> action table."""

from __future__ import annotations

import inspect

import pytest

from polyroute import errors
from polyroute.routing.fallback import ACTIONS, Action, action_for, is_context_length

P = "p"


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (errors.UpstreamServerError("x", provider=P, upstream_status=500), Action.NEXT),
        (errors.UpstreamServerError("x", provider=P, upstream_status=529), Action.NEXT),
        (errors.UpstreamConnectionError("x", provider=P), Action.NEXT),
        (errors.UpstreamTimeoutError("x", provider=P), Action.NEXT),
        (errors.UpstreamProtocolError("x", provider=P), Action.NEXT),
        (errors.UpstreamEmptyAnswerError("x", provider=P), Action.NEXT),
        (errors.UpstreamAuthError("x", provider=P, upstream_status=401), Action.BROKEN_CREDENTIAL),
        (errors.UpstreamAuthError("x", provider=P, upstream_status=403), Action.BROKEN_CREDENTIAL),
        (errors.UpstreamRateLimitError("x", provider=P, retry_after_s=3.0), Action.COOL_DOWN),
        (errors.UpstreamBadRequestError("x", provider=P, upstream_status=400), Action.RETURN),
        (errors.UpstreamBadRequestError("x", provider=P, upstream_status=422), Action.RETURN),
        (errors.UpstreamBadRequestError("x", provider=P, upstream_status=404), Action.RETURN),
        (
            errors.UpstreamBadRequestError("too long", provider=P, upstream_status=400, code="context_length_exceeded"),
            Action.LARGER_CONTEXT,
        ),
        (errors.InvalidRequestError("x"), Action.RETURN),
        (errors.GatewayError("x"), Action.RETURN),
    ],
)
def test_action_table(error: errors.GatewayError, action: Action) -> None:
    assert action_for(error) is action


def test_every_upstream_error_class_has_a_row() -> None:
    upstream = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.UpstreamError) and cls not in (errors.UpstreamError, errors.UpstreamStatusError)
    }
    rows = {kind for kind, _ in ACTIONS}
    assert all(any(issubclass(cls, row) and row is not errors.GatewayError for row in rows) for cls in upstream)


@pytest.mark.parametrize(
    ("message", "code", "upstream_type", "expected"),
    [
        ("This model's maximum context length is 8192 tokens.", None, None, True),
        ("prompt is too long: 250000 tokens > 200000 maximum", None, "invalid_request_error", True),
        ("The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", None, None, True),
        ("x", "context_length_exceeded", None, True),
        ("x", None, "request_too_large", True),
        ("temperature must be at most 2", "invalid_value", None, False),
        ("unknown model gpt-9", "model_not_found", None, False),
    ],
)
def test_context_length_errors_are_recognised(
    message: str, code: str | None, upstream_type: str | None, expected: bool
) -> None:
    error = errors.UpstreamBadRequestError(
        message, provider=P, upstream_status=400, code=code, upstream_type=upstream_type
    )
    assert is_context_length(error) is expected
    assert action_for(error) is (Action.LARGER_CONTEXT if expected else Action.RETURN)
