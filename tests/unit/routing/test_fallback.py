"""The status -> action table and cooldowns."""

from __future__ import annotations

import inspect
import time

import pytest

from polyroute import errors
from polyroute.routing.fallback import ACTIONS, MAX_COOLDOWN_S, Action, Cooldowns, action_for

P = "p"


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (errors.UpstreamServerError("x", provider=P, upstream_status=500), Action.NEXT),
        (errors.UpstreamServerError("x", provider=P, upstream_status=529), Action.NEXT),
        (errors.UpstreamConnectionError("x", provider=P), Action.NEXT),
        (errors.UpstreamTimeoutError("x", provider=P), Action.NEXT),
        (errors.UpstreamProtocolError("x", provider=P), Action.NEXT),
        (errors.UpstreamAuthError("x", provider=P, upstream_status=401), Action.NEXT),
        (errors.UpstreamRateLimitError("x", provider=P, retry_after_s=3.0), Action.COOL_DOWN),
        (errors.UpstreamBadRequestError("x", provider=P, upstream_status=400), Action.RETURN),
        (errors.UpstreamBadRequestError("x", provider=P, upstream_status=422), Action.RETURN),
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


def test_cooldown_honours_retry_after_and_backs_off_without_it() -> None:
    cooldowns = Cooldowns()
    assert cooldowns.remaining_s("a/m") == 0.0
    assert cooldowns.cool("a/m", 0.05) == 0.05
    assert 0 < cooldowns.remaining_s("a/m") <= 0.05
    time.sleep(0.06)
    assert cooldowns.remaining_s("a/m") == 0.0
    lengths = [cooldowns.cool("b/m", None) for _ in range(9)]
    assert lengths == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, MAX_COOLDOWN_S, MAX_COOLDOWN_S, MAX_COOLDOWN_S]
    cooldowns.succeeded("b/m")
    assert cooldowns.cool("b/m", None) == 1.0
